//! Fuzz the kvm-unit-tests image loader: `Elf32::parse` on any bytes must never panic,
//! and what it accepts must be consistent (every segment's file bytes inside the input,
//! `file_size <= mem_size`, symbol lookups and the boot information safe).
//!
//! `cargo +nightly fuzz run kut_multiboot fuzz/corpus/kut_multiboot`
#![no_main]

use exitscope_vmm::kut::multiboot::{self, Elf32};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = multiboot::find_header(data);
    if let Ok(elf) = Elf32::parse(data) {
        for seg in &elf.segments {
            let bytes = elf.file_bytes(seg);
            assert_eq!(bytes.len(), seg.file_size);
            assert!(seg.file_size as u64 <= seg.mem_size);
        }
        let (lo, hi) = elf.extent();
        assert!(lo <= hi);
        let _ = elf.symbol("iterations");
        let _ = elf.symbol("");
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = multiboot::boot_info(128 << 20, text, data);
    }
});
