//! The few bits of the protobuf wire format a Perfetto trace needs, written by hand.
//!
//! A trace is a `Trace` message whose only field is `repeated TracePacket packet = 1`, so it
//! can be streamed: each packet is written as field 1 (length-delimited) as soon as it is
//! built. Inside a packet, messages nest a few levels deep (`TracePacket` → `TrackEvent` →
//! `DebugAnnotation`); [`message`] writes a nested message in place and then inserts its
//! length in front of it, so building a packet allocates nothing once the buffers have grown.
//!
//! Why by hand rather than `prost`: exitscope writes about a dozen messages and reads none;
//! `prost` would need the Perfetto `.proto` files vendored and a `prost-build` step (protoc or
//! its bundled parser) in the build, for generated code that would be mostly unused. The
//! encoder below is the whole wire format we need (varints, fixed64 doubles, length-delimited
//! strings and messages) and is checked against bytes from the reference implementation in
//! the tests.
//!
//! Field numbers are in [`fields`], from Perfetto's `protos/perfetto/trace/trace_packet.proto`,
//! `track_event/track_event.proto`, `track_event/track_descriptor.proto`,
//! `track_event/debug_annotation.proto`, `track_event/{thread,process,counter}_descriptor.proto`
//! and `interned_data/interned_data.proto`.

/// Wire type of varints.
const VARINT: u8 = 0;
/// Wire type of 64-bit fixed values (doubles).
const FIXED64: u8 = 1;
/// Wire type of strings, bytes and nested messages.
const LEN: u8 = 2;

/// Append `v` as a base-128 varint (least significant group first, high bit = more).
pub(crate) fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Bytes [`varint`] takes for `v`.
fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn key(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, u64::from(field) << 3 | u64::from(wire));
}

/// A `uint64`/`uint32`/enum field.
pub(crate) fn uint(out: &mut Vec<u8>, field: u32, v: u64) {
    key(out, field, VARINT);
    varint(out, v);
}

/// A `bool` field.
pub(crate) fn boolean(out: &mut Vec<u8>, field: u32, v: bool) {
    uint(out, field, u64::from(v));
}

/// A `double` field.
pub(crate) fn double(out: &mut Vec<u8>, field: u32, v: f64) {
    key(out, field, FIXED64);
    out.extend_from_slice(&v.to_le_bytes());
}

/// A `string` or `bytes` field.
pub(crate) fn bytes(out: &mut Vec<u8>, field: u32, v: &[u8]) {
    key(out, field, LEN);
    varint(out, v.len() as u64);
    out.extend_from_slice(v);
}

/// A nested message field whose body `body` appends to `out`. The body is written where it
/// ends up, then shifted right by the size of its length prefix.
pub(crate) fn message(out: &mut Vec<u8>, field: u32, body: impl FnOnce(&mut Vec<u8>)) {
    key(out, field, LEN);
    let at = out.len();
    body(out);
    let len = out.len() - at;
    let prefix = varint_len(len as u64);
    out.resize(out.len() + prefix, 0);
    out.copy_within(at..at + len, at + prefix);
    let mut v = len as u64;
    for b in &mut out[at..at + prefix] {
        *b = (v as u8 & 0x7f) | if v >= 0x80 { 0x80 } else { 0 };
        v >>= 7;
    }
}

/// Field numbers of the Perfetto messages exitscope writes.
#[allow(missing_docs)]
pub(crate) mod fields {
    /// `Trace`.
    pub const TRACE_PACKET: u32 = 1;

    /// `TracePacket`.
    pub mod packet {
        pub const TIMESTAMP: u32 = 8;
        pub const TRUSTED_PACKET_SEQUENCE_ID: u32 = 10;
        pub const TRACK_EVENT: u32 = 11;
        pub const INTERNED_DATA: u32 = 12;
        pub const SEQUENCE_FLAGS: u32 = 13;
        pub const TRACK_DESCRIPTOR: u32 = 60;
        /// `SequenceFlags.SEQ_INCREMENTAL_STATE_CLEARED`.
        pub const SEQ_INCREMENTAL_STATE_CLEARED: u64 = 1;
        /// `SequenceFlags.SEQ_NEEDS_INCREMENTAL_STATE`.
        pub const SEQ_NEEDS_INCREMENTAL_STATE: u64 = 2;
    }

    /// `TrackEvent`.
    pub mod event {
        pub const CATEGORY_IIDS: u32 = 3;
        pub const DEBUG_ANNOTATIONS: u32 = 4;
        pub const TYPE: u32 = 9;
        pub const NAME_IID: u32 = 10;
        pub const TRACK_UUID: u32 = 11;
        pub const DOUBLE_COUNTER_VALUE: u32 = 44;
        pub const TYPE_SLICE_BEGIN: u64 = 1;
        pub const TYPE_SLICE_END: u64 = 2;
        pub const TYPE_INSTANT: u64 = 3;
        pub const TYPE_COUNTER: u64 = 4;
    }

    /// `DebugAnnotation`.
    pub mod annotation {
        pub const NAME_IID: u32 = 1;
        pub const BOOL_VALUE: u32 = 2;
        pub const UINT_VALUE: u32 = 3;
        pub const STRING_VALUE: u32 = 6;
        pub const STRING_VALUE_IID: u32 = 17;
    }

    /// `TrackDescriptor` and the descriptors inside it.
    pub mod track {
        pub const UUID: u32 = 1;
        pub const NAME: u32 = 2;
        pub const PROCESS: u32 = 3;
        pub const THREAD: u32 = 4;
        pub const PARENT_UUID: u32 = 5;
        pub const COUNTER: u32 = 8;
        pub const DESCRIPTION: u32 = 14;
        /// `ProcessDescriptor.pid`, `ThreadDescriptor.pid`.
        pub const PID: u32 = 1;
        /// `ThreadDescriptor.tid`.
        pub const TID: u32 = 2;
        /// `ThreadDescriptor.thread_name`.
        pub const THREAD_NAME: u32 = 5;
        /// `ProcessDescriptor.process_name`.
        pub const PROCESS_NAME: u32 = 6;
        /// `CounterDescriptor.unit`.
        pub const COUNTER_UNIT: u32 = 3;
        /// `CounterDescriptor.unit_name`.
        pub const COUNTER_UNIT_NAME: u32 = 6;
        /// `CounterDescriptor.Unit.UNIT_COUNT`.
        pub const UNIT_COUNT: u64 = 2;
    }

    /// `InternedData` and its entries (`EventCategory`, `EventName`, `DebugAnnotationName`:
    /// `iid = 1, name = 2`; `InternedString`: `iid = 1, str = 2`).
    pub mod interned {
        pub const EVENT_CATEGORIES: u32 = 1;
        pub const EVENT_NAMES: u32 = 2;
        pub const DEBUG_ANNOTATION_NAMES: u32 = 3;
        pub const DEBUG_ANNOTATION_STRING_VALUES: u32 = 29;
        pub const IID: u32 = 1;
        pub const NAME: u32 = 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(x: u64) -> Vec<u8> {
        let mut out = Vec::new();
        varint(&mut out, x);
        assert_eq!(out.len(), varint_len(x), "{x}");
        out
    }

    #[test]
    fn varints_are_little_endian_base_128() {
        // The examples of the protobuf encoding guide, and the edges of each length.
        assert_eq!(v(0), [0x00]);
        assert_eq!(v(1), [0x01]);
        assert_eq!(v(127), [0x7f]);
        assert_eq!(v(128), [0x80, 0x01]);
        assert_eq!(v(150), [0x96, 0x01]);
        assert_eq!(v(300), [0xac, 0x02]);
        assert_eq!(v(16_383), [0xff, 0x7f]);
        assert_eq!(v(16_384), [0x80, 0x80, 0x01]);
        assert_eq!(v(u64::MAX), [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    }

    #[test]
    fn scalar_fields_carry_their_key() {
        let mut out = Vec::new();
        uint(&mut out, 1, 150);
        assert_eq!(out, [0x08, 0x96, 0x01]);
        out.clear();
        // Field 60 needs a two-byte key: (60 << 3 | 2) = 482.
        bytes(&mut out, 60, b"ab");
        assert_eq!(out, [0xe2, 0x03, 0x02, b'a', b'b']);
        out.clear();
        double(&mut out, 5, 1.5);
        assert_eq!(out, [0x29, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f]);
        out.clear();
        boolean(&mut out, 2, true);
        assert_eq!(out, [0x10, 0x01]);
    }

    #[test]
    fn nested_messages_get_their_length_in_front() {
        // The protobuf guide's `Test3 { c: Test1 { a: 150 } }`.
        let mut out = vec![0xaa];
        message(&mut out, 3, |m| uint(m, 1, 150));
        assert_eq!(out, [0xaa, 0x1a, 0x03, 0x08, 0x96, 0x01]);
        // Two levels, and an empty message.
        out.clear();
        message(&mut out, 11, |m| {
            uint(m, 9, 1);
            message(m, 4, |a| uint(a, 1, 2));
            message(m, 4, |_| {});
        });
        assert_eq!(out, [0x5a, 0x08, 0x48, 0x01, 0x22, 0x02, 0x08, 0x02, 0x22, 0x00]);
    }

    #[test]
    fn a_long_nested_message_gets_a_multi_byte_length() {
        let mut out = Vec::new();
        let body = vec![b'x'; 300];
        message(&mut out, 1, |m| bytes(m, 2, &body));
        // 300 bytes + key + 2-byte length = 303 = 0xaf 0x02.
        assert_eq!(&out[..3], [0x0a, 0xaf, 0x02]);
        assert_eq!(&out[3..6], [0x12, 0xac, 0x02]);
        assert_eq!(out.len(), 3 + 303);
        assert!(out[6..].iter().all(|&b| b == b'x'));
    }
}
