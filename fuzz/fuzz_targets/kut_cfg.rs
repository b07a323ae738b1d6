//! Fuzz the `unittests.cfg` reader: `cfg::parse` and `shell_words` on any text must never
//! panic; every entry it returns has a name, a file and a header line inside the input.
//!
//! `cargo +nightly fuzz run kut_cfg fuzz/corpus/kut_cfg`
#![no_main]

use exitscope_vmm::kut::cfg;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = cfg::shell_words(text);
    let _ = cfg::parse_timeout(text);
    if let Ok(entries) = cfg::parse(text) {
        let lines = text.lines().count();
        for e in &entries {
            assert!(!e.name.is_empty() && !e.file.is_empty());
            assert!(e.line >= 1 && e.line <= lines);
        }
        let _ = cfg::vmexit_entries(&entries);
    }
});
