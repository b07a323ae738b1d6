//! placeholder

pub mod kvm_events;
