//! The recording host at the head of a terminal report.
//!
//! ```text
//! # recorded on AMD EPYC 9B14 (microcode 0xa101148), kernel 6.18.44, kvm_pvm (PVM)
//! ```

use std::io::{self, Write};

use exitscope_analyze::report::Report;

/// One `# recorded on ...` line when the trace names its recording host; nothing otherwise
/// (the reading machine is never presented as the recording one).
pub fn write(report: &Report, w: &mut impl Write) -> io::Result<()> {
    match &report.host {
        Some(h) => writeln!(w, "# recorded on {}", h.short()),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_known_host_is_printed() {
        let mut r = Report::default();
        let mut out = Vec::new();
        write(&r, &mut out).unwrap();
        assert!(out.is_empty());
        let mut h = exitscope_host::Fingerprint::default();
        h.cpu.model_name = Some("Intel Xeon".into());
        h.os.release = Some("6.1.0".into());
        r.host = Some(h);
        write(&r, &mut out).unwrap();
        let t = String::from_utf8(out).unwrap();
        assert!(t.starts_with("# recorded on Intel Xeon (microcode unknown), kernel 6.1.0"), "{t}");
        assert_eq!(t.lines().count(), 1);
    }
}
