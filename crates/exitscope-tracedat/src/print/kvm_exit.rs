//! `kvm_exit` records decoded from their fields: what `parse_kvm_exit` reads from the
//! rendered text, with only the reason rendered. Rendering the whole text and reading it
//! back is most of the work per record in a kvm_exit/kvm_entry trace.
//!
//! A plan is made once per format, from its print fmt, when the format has the layout the
//! kernels print (`[vcpu %u ]reason %s... rip 0x%lx info1 0x%016llx ...`, or the older
//! `reason %s rip 0x%lx info %llx %llx`): a keyword literal before each conversion. Any other
//! format gets no plan, and its records are rendered and parsed as text. A test checks on
//! random records of each layout that the two agree.

use std::ops::Range;

use exitscope_model::exit::{KvmExit, kvm_exit_reason};

use rustc_hash::FxHashMap;

use super::{Ctx, Expr, FieldKind, Piece, PrintFmt, Spec, c_width, conv, eval, field_int};

/// The value a conversion gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Vcpu,
    Rip,
    Info1,
    Info2,
    IntrInfo,
    ErrorCode,
}

/// How to decode the records of one `kvm_exit` format.
#[derive(Clone, Debug)]
pub(crate) struct ExitPlan {
    /// The pieces that render the reason (`%s` conversions).
    reason: Range<usize>,
    /// The numeric conversions: piece index and what it gives.
    values: Vec<(usize, Slot)>,
    /// The integer fields the reason depends on (at most [`KEY_FIELDS`]), when it depends
    /// on nothing else: records with the same values have the same reason.
    reason_fields: Option<Vec<usize>>,
}

/// The most fields a reason may depend on and be cached.
const KEY_FIELDS: usize = 4;

/// Reasons rendered so far into one text: by the values of the fields they depend on, where
/// in the text they are (`None`: the reason alone does not do).
#[derive(Debug, Default)]
pub(crate) struct ReasonCache(FxHashMap<[i64; KEY_FIELDS], Option<(u32, u32)>>);

impl ReasonCache {
    /// The text the ranges point into was cleared.
    pub(crate) fn clear(&mut self) {
        self.0.clear();
    }
}

/// Adds the fields `e` reads to `out`; false when it reads anything but integer fields.
fn int_fields(e: &Expr, fields: &[crate::format::Field], out: &mut Vec<usize>) -> bool {
    match e {
        Expr::Num(_) | Expr::Str(_) => true,
        Expr::Field(f) => {
            if !fields.get(*f).is_some_and(|x| x.kind == FieldKind::Int) {
                return false;
            }
            if !out.contains(f) {
                out.push(*f);
            }
            true
        }
        Expr::Unary(_, a) | Expr::Cast(_, _, a) | Expr::Symbolic(a, _) | Expr::Flags(a, _, _) => {
            int_fields(a, fields, out)
        }
        Expr::Binary(_, a, b) => int_fields(a, fields, out) && int_fields(b, fields, out),
        Expr::Cond(c, a, b) => {
            int_fields(c, fields, out) && int_fields(a, fields, out) && int_fields(b, fields, out)
        }
        _ => false,
    }
}

/// One decoded record: its reason is `reason`, a range of the text it was rendered into.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ExitValues {
    pub vcpu: Option<u32>,
    pub reason: (u32, u32),
    pub rip: Option<u64>,
    pub info1: Option<u64>,
    pub info2: Option<u64>,
    pub intr_info: Option<u64>,
    pub error_code: Option<u64>,
}

impl ExitValues {
    /// The exit, its reason in `text` (the text it was rendered into).
    pub(crate) fn exit(self, text: &str) -> KvmExit<'_> {
        let (a, n) = (self.reason.0 as usize, self.reason.1 as usize);
        KvmExit {
            vcpu: self.vcpu,
            reason: text.get(a..a + n).unwrap_or_default(),
            rip: self.rip,
            info1: self.info1,
            info2: self.info2,
            intr_info: self.intr_info,
            error_code: self.error_code,
        }
    }
}

/// What the literal before a conversion announces.
enum Word {
    Slot(Slot),
    Reason,
    /// `info`: the next two values (`info %llx %llx`).
    Info,
    /// A word the parse does not know (`requests` of 6.x kernels): it skips the word and a
    /// number after it.
    Other,
}

/// `lit` (the first piece when `first`) as ` word ` or ` word 0x`.
fn word_of(lit: &str, first: bool) -> Option<Word> {
    let body = if first { lit } else { lit.strip_prefix(' ')? };
    let (word, hex) = match body.strip_suffix(" 0x") {
        Some(w) => (w, true),
        None => (body.strip_suffix(' ')?, false),
    };
    Some(match (word, hex) {
        ("vcpu", false) => Word::Slot(Slot::Vcpu),
        ("reason", false) => Word::Reason,
        ("rip", _) => Word::Slot(Slot::Rip),
        ("info1", _) => Word::Slot(Slot::Info1),
        ("info2", _) => Word::Slot(Slot::Info2),
        ("intr_info", _) => Word::Slot(Slot::IntrInfo),
        ("error_code", _) => Word::Slot(Slot::ErrorCode),
        ("info", _) => Word::Info,
        (w, _) if !w.is_empty() && w.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') => {
            // (Every keyword the parse knows is listed above.)
            Word::Other
        }
        _ => return None,
    })
}

/// A conversion that prints its value as the parse reads it back: no `0x` of its own, no
/// precision (`%.0x` prints nothing for 0), and no spaces before the digits (they would part
/// them from the `0x` before the conversion).
fn readable(spec: &Spec, slot: Slot) -> bool {
    let plain = !spec.alt
        && !spec.plus
        && !spec.space
        && spec.precision.is_none()
        && (spec.width == 0 || spec.zero || spec.left);
    match slot {
        Slot::Vcpu => plain && matches!(spec.conv, b'u' | b'd' | b'i'),
        _ => plain && spec.conv == b'x',
    }
}

impl PrintFmt {
    /// The plan for decoding this format's records as a `kvm_exit`, if it has a layout the
    /// plan knows.
    pub(crate) fn kvm_exit_plan(&self, fields: &[crate::format::Field]) -> Option<ExitPlan> {
        let mut reason = None;
        let mut values: Vec<(usize, Slot)> = Vec::new();
        let mut i = 0;
        // The piece after the reason's conversions must be a field keyword (the parse's
        // reason ends there) or nothing.
        let mut after_reason = false;
        while i < self.pieces.len() {
            let Some(Piece::Lit(lit)) = self.pieces.get(i) else { return None };
            let word = word_of(lit, i == 0)?;
            if after_reason && matches!(word, Word::Reason | Word::Slot(Slot::Vcpu) | Word::Other) {
                return None;
            }
            i += 1;
            let mut take = |slot: Slot, i: &mut usize| -> Option<()> {
                match self.pieces.get(*i) {
                    Some(Piece::Conv(spec, _))
                        if readable(spec, slot) && values.iter().all(|&(_, s)| s != slot) =>
                    {
                        values.push((*i, slot));
                        *i += 1;
                        Some(())
                    }
                    _ => None,
                }
            };
            match word {
                Word::Slot(s) => take(s, &mut i)?,
                Word::Other => match self.pieces.get(i) {
                    // Digits only: no word the parse acts on.
                    Some(Piece::Conv(spec, _)) if b"xXudi".contains(&spec.conv) && !spec.alt => {
                        i += 1
                    }
                    _ => return None,
                },
                Word::Info => {
                    take(Slot::Info1, &mut i)?;
                    // `info %llx %llx`: a single space, then the second value.
                    match self.pieces.get(i) {
                        Some(Piece::Lit(l)) if l == " " => i += 1,
                        _ => return None,
                    }
                    take(Slot::Info2, &mut i)?;
                }
                Word::Reason => {
                    if reason.is_some() {
                        return None;
                    }
                    let from = i;
                    while let Some(Piece::Conv(spec, _)) = self.pieces.get(i) {
                        if spec.conv != b's' {
                            return None;
                        }
                        i += 1;
                    }
                    if i == from {
                        return None;
                    }
                    reason = Some(from..i);
                    after_reason = true;
                    continue;
                }
            }
            after_reason = false;
        }
        let reason = reason?;
        let mut key = Vec::new();
        let pure = self.pieces.get(reason.clone()).unwrap_or_default().iter().all(|p| match p {
            Piece::Conv(_, a) => self.args.get(*a).is_some_and(|e| int_fields(e, fields, &mut key)),
            Piece::Lit(_) => true,
        });
        let reason_fields = (pure && key.len() <= KEY_FIELDS).then_some(key);
        Some(ExitPlan { reason, values, reason_fields })
    }
}

impl ExitPlan {
    /// Decodes one record of `fmt` (the format this plan was made from), rendering its
    /// reason into `text`. `None` (with `text` as it was) when the reason alone does not
    /// give what the whole text would: the record is then rendered and parsed.
    /// `cache` holds the reasons rendered into `text` before (cleared with it).
    pub(crate) fn decode(
        &self,
        fmt: &PrintFmt,
        cx: &Ctx<'_>,
        text: &mut String,
        cache: &mut ReasonCache,
    ) -> Option<ExitValues> {
        let key = self.reason_fields.as_ref().map(|fs| {
            let mut k = [0i64; KEY_FIELDS];
            for (slot, &f) in k.iter_mut().zip(fs) {
                *slot = field_int(cx, f);
            }
            k
        });
        let reason = match key.and_then(|k| cache.0.get(&k)) {
            Some(&r) => r,
            None => {
                let r = self.render_reason(fmt, cx, text);
                if let Some(k) = key {
                    cache.0.insert(k, r);
                }
                r
            }
        };
        let mut v = ExitValues { reason: reason?, ..ExitValues::default() };
        for &(pi, slot) in &self.values {
            let Some(Piece::Conv(spec, a)) = fmt.pieces.get(pi) else { continue };
            let Some(arg) = fmt.args.get(*a) else { continue };
            let (u, bits) = c_width(spec, eval(cx, arg), cx.long_size);
            match slot {
                Slot::Vcpu => {
                    v.vcpu = if spec.conv == b'u' {
                        u32::try_from(u).ok()
                    } else {
                        // As `%d` prints it: sign-extended from its width.
                        let s = if bits == 64 {
                            u as i64
                        } else {
                            ((u << (64 - bits)) as i64) >> (64 - bits)
                        };
                        u32::try_from(s).ok()
                    }
                }
                Slot::Rip => v.rip = Some(u),
                Slot::Info1 => v.info1 = Some(u),
                Slot::Info2 => v.info2 = Some(u),
                Slot::IntrInfo => v.intr_info = Some(u),
                Slot::ErrorCode => v.error_code = Some(u),
            }
        }
        Some(v)
    }

    /// Renders the reason at the end of `text`: where it is, or `None` (with `text` as it
    /// was) when it does not give what the whole text would.
    fn render_reason(&self, fmt: &PrintFmt, cx: &Ctx<'_>, text: &mut String) -> Option<(u32, u32)> {
        let start = text.len();
        for p in fmt.pieces.get(self.reason.clone()).unwrap_or_default() {
            if let Piece::Conv(spec, a) = p
                && let Some(arg) = fmt.args.get(*a)
            {
                conv(cx, spec, arg, text);
            }
        }
        let rendered = text.get(start..).unwrap_or_default();
        let Some(r) = kvm_exit_reason(rendered) else {
            text.truncate(start);
            return None;
        };
        // `r` is a slice of `rendered`.
        let at = start + (r.as_ptr() as usize - rendered.as_ptr() as usize);
        Some((at as u32, r.len() as u32))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use exitscope_model::exit::parse_kvm_exit;

    use super::*;
    use crate::bytes::Endian;
    use crate::format::EventFormat;
    use crate::meta::Symbols;
    use crate::write::fixture::KVM_EXIT_FORMAT;

    const HEAD: &str = "name: kvm_exit\nID: 1\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\tfield:unsigned int exit_reason;\toffset:8;\tsize:4;\tsigned:0;\n\tfield:unsigned long guest_rip;\toffset:16;\tsize:8;\tsigned:0;\n\tfield:u32 isa;\toffset:24;\tsize:4;\tsigned:0;\n\tfield:u64 info1;\toffset:32;\tsize:8;\tsigned:0;\n\tfield:u64 info2;\toffset:40;\tsize:8;\tsigned:0;\n\tfield:u32 intr_info;\toffset:48;\tsize:4;\tsigned:0;\n\tfield:u32 error_code;\toffset:52;\tsize:4;\tsigned:0;\n\tfield:int vcpu_id;\toffset:56;\tsize:4;\tsigned:1;\n\n";

    /// The layouts of kernels' kvm_exit print formats, and some the plan must refuse.
    fn formats() -> Vec<(String, bool)> {
        let old = "print fmt: \"reason %s rip 0x%lx info %llx %llx\", __print_symbolic(REC->exit_reason, { 0, \"EXCEPTION_NMI\" }, { 10, \"CPUID\" }, { 48, \"EPT_VIOLATION\" }), REC->guest_rip, REC->info1, REC->info2\n";
        let no_vcpu = "print fmt: \"reason %s%s%s rip 0x%lx info1 0x%016llx info2 0x%016llx intr_info 0x%08x error_code 0x%08x\", (REC->isa == 1) ? __print_symbolic(REC->exit_reason & 0xffff, { 10, \"CPUID\" }, { 12, \"HLT\" }) : __print_symbolic(REC->exit_reason, { 0x072, \"cpuid\" }, { 0x400, \"npf\" }), (REC->isa == 1 && REC->exit_reason & ~0xffff) ? \" \" : \"\", (REC->isa == 1) ? __print_flags(REC->exit_reason & ~0xffff, \" \", { 0x80000000, \"FAILED_VMENTRY\" }, { 0x08000000, \"ENCLAVE_MODE\" }) : \"\", REC->guest_rip, REC->info1, REC->info2, REC->intr_info, REC->error_code\n";
        let signed_vcpu = "print fmt: \"vcpu %d reason %s rip 0x%x info1 0x%llx\", REC->vcpu_id, __print_symbolic(REC->exit_reason, { 10, \"CPUID\" }, { 7, \"rip\" }), REC->guest_rip, REC->info1\n";
        let refused = [
            "print fmt: \"reason %s rip %#lx\", __print_symbolic(REC->exit_reason, { 10, \"CPUID\" }), REC->guest_rip\n",
            "print fmt: \"reason %s vcpu %u\", __print_symbolic(REC->exit_reason, { 10, \"CPUID\" }), REC->vcpu_id\n",
            "print fmt: \"reason %s requests %u\", __print_symbolic(REC->exit_reason, { 10, \"CPUID\" }), REC->vcpu_id\n",
            "print fmt: \"reason %s rip 0x%lx requests %s\", __print_symbolic(REC->exit_reason, { 10, \"CPUID\" }), REC->guest_rip, __print_symbolic(REC->exit_reason, { 10, \"rip\" })\n",
            "print fmt: \"exit %s rip 0x%lx\", __print_symbolic(REC->exit_reason, { 10, \"CPUID\" }), REC->guest_rip\n",
            "print fmt: \"reason %d rip 0x%lx\", REC->exit_reason, REC->guest_rip\n",
            // Found by the fuzzer: space padding parts the digits from the `0x`.
            "print fmt: \"reason %s rip 0x%16lx\", __print_symbolic(REC->exit_reason, { 10, \"CPUID\" }), REC->guest_rip\n",
            "print fmt: \"reason %s rip 0x%.0lx\", __print_symbolic(REC->exit_reason, { 10, \"CPUID\" }), REC->guest_rip\n",
        ];
        // 6.x kernels add `requests` after `error_code`.
        let requests = "print fmt: \"vcpu %u reason %s rip 0x%lx info1 0x%016llx info2 0x%016llx intr_info 0x%08x error_code 0x%08x requests 0x%016llx\", REC->vcpu_id, __print_symbolic(REC->exit_reason, { 10, \"CPUID\" }, { 48, \"EPT_VIOLATION\" }), REC->guest_rip, REC->info1, REC->info2, REC->intr_info, REC->error_code, REC->info1\n";
        let padded = "print fmt: \"vcpu %-6u reason %-20s rip 0x%-20lx info1 0x%04llx info2 0x%llx\", REC->vcpu_id, __print_symbolic(REC->exit_reason, { 10, \"CPUID\" }, { 7, \"PF excp\" }), REC->guest_rip, REC->info1, REC->info2\n";
        let modern = KVM_EXIT_FORMAT.split_once("print fmt:").unwrap().1;
        let mut v = vec![
            (format!("{HEAD}print fmt:{modern}"), true),
            (format!("{HEAD}{old}"), true),
            (format!("{HEAD}{no_vcpu}"), true),
            (format!("{HEAD}{signed_vcpu}"), true),
            (format!("{HEAD}{padded}"), true),
            (format!("{HEAD}{requests}"), true),
        ];
        v.extend(refused.iter().map(|r| (format!("{HEAD}{r}"), false)));
        // The format of a 6.18 kernel, as its tracefs prints it.
        let real = include_str!("../../../../tests/data/tracedat/formats/kvm_exit.format");
        v.push((real.to_string(), true));
        v
    }

    #[test]
    fn decoded_exits_are_what_the_rendered_text_parses_to() {
        let syms = Symbols::default();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut rand = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut decoded = 0;
        let mut cached = 0;
        for (text, planned) in formats() {
            let mut shared = String::new();
            let mut cache = ReasonCache::default();
            let f = EventFormat::parse("kvm", &text).unwrap();
            let p = f.print.as_ref().unwrap();
            let plan = p.kvm_exit_plan(&f.fields);
            assert_eq!(plan.is_some(), planned, "{text}");
            let Some(plan) = plan else { continue };
            for k in 0..3000 {
                let mut payload = vec![0u8; 96];
                for b in payload.iter_mut() {
                    *b = rand() as u8;
                }
                // Reasons in and out of the tables, both ISAs, failed entries, small vCPUs.
                let reasons = [0u32, 10, 12, 48, 0x72, 0x400, 7, 0x8000_0030, 0x0800_000a];
                let r = if k % 4 == 0 { rand() as u32 } else { reasons[k % reasons.len()] };
                payload[8..12].copy_from_slice(&r.to_le_bytes());
                payload[24..28].copy_from_slice(&((k % 3) as u32).to_le_bytes());
                if k % 2 == 0 {
                    payload[56..60].copy_from_slice(&((k % 300) as i32 - 2).to_le_bytes());
                }
                let cx = Ctx {
                    payload: &payload,
                    fields: &f.fields,
                    endian: Endian::Little,
                    long_size: if k % 5 == 0 { 4 } else { 8 },
                    syms: &syms,
                };
                let mut whole = String::new();
                p.render(&cx, &mut whole);
                let want = parse_kvm_exit(&whole);
                // Each record alone, and in a text with a cache of the reasons before it.
                let mut reason = String::from("..");
                let alone = plan.decode(p, &cx, &mut reason, &mut ReasonCache::default());
                let len = shared.len();
                let with_cache = plan.decode(p, &cx, &mut shared, &mut cache);
                if shared.len() == len && with_cache.is_some() {
                    cached += 1;
                }
                assert_eq!(alone.map(|v| v.exit(&reason)), with_cache.map(|v| v.exit(&shared)));
                match alone {
                    Some(v) => {
                        assert_eq!(Some(v.exit(&reason)), want, "{whole:?}");
                        decoded += 1;
                    }
                    None => assert_eq!(reason, "..", "text left as it was"),
                }
            }
        }
        assert!(decoded > 10_000, "{decoded}");
        assert!(cached > 5_000, "{cached} reasons from the cache");
    }
}
