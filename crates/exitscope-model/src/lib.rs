//! # Brief overview
//!
//! The record model shared by every exitscope parser (ftrace text, trace-cmd `trace.dat`) and
//! every analysis (call trees, exit statistics, event statistics). Parsers turn bytes into
//! [`Record`]s and push them into a [`RecordSink`]; analyses implement the sink. Nothing here
//! does I/O.
//!
//! ```
//! use exitscope_model::{Func, Record, RecordKind, RecordSink, Flow, Diagnostic};
//!
//! struct CountLeaves(u64);
//! impl RecordSink for CountLeaves {
//!     fn record(&mut self, rec: &Record<'_>) -> Flow {
//!         if let RecordKind::Leaf { .. } = rec.kind { self.0 += 1 }
//!         Flow::Continue
//!     }
//!     fn diagnostic(&mut self, _d: Diagnostic) -> Flow { Flow::Continue }
//! }
//! let mut sink = CountLeaves(0);
//! let rec = Record {
//!     line: 1, cpu: Some(0), task: None, timestamp: None,
//!     kind: RecordKind::Leaf { func: Func::new("kvm_cpuid", Some("kvm")), duration: Some(100), depth: 2 },
//! };
//! sink.record(&rec);
//! assert_eq!(sink.0, 1);
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::fmt;

pub mod bytes;
pub mod exit;

/// A duration or timestamp in nanoseconds. Trace text has at most nanosecond precision, so
/// integers are exact where floats would not be.
pub type Nanos = u64;

/// A kernel function as printed by `%ps`: `name` plus an optional module (`[kvm]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Func<'a> {
    /// Symbol name, with compiler suffixes such as `.part.119` kept.
    pub name: &'a str,
    /// Module the symbol lives in (`kvm`, `kvm_amd`), `None` for vmlinux.
    pub module: Option<&'a str>,
}

impl<'a> Func<'a> {
    /// A function named `name` in `module`.
    pub fn new(name: &'a str, module: Option<&'a str>) -> Self {
        Func { name, module }
    }
}

impl fmt::Display for Func<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.module {
            Some(m) => write!(f, "{} [{}]", self.name, m),
            None => f.write_str(self.name),
        }
    }
}

/// A task as the trace names it: `comm-pid`. The comm may be truncated (7 characters in
/// function_graph's proc column) or `<...>` when the kernel did not know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Task<'a> {
    /// Command name as printed.
    pub comm: &'a str,
    /// Thread id.
    pub pid: u32,
    /// The thread's process (thread group) id, when the input says: the `(tgid)` column of
    /// event text recorded with `record-tgid`, a perf.data sample's pid, a trace.dat's saved
    /// tgids. For a vCPU thread this is the VM's process (the VMM).
    pub tgid: Option<u32>,
}

impl<'a> Task<'a> {
    /// Thread `pid` named `comm`, its process unknown.
    pub fn new(comm: &'a str, pid: u32) -> Self {
        Task { comm, pid, tgid: None }
    }
}

/// One thing a trace says happened, in input order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// 1-based line number in the input (0 for binary inputs, whose position is in the
    /// diagnostics instead).
    pub line: u64,
    /// CPU the record was written on, when the trace says.
    pub cpu: Option<u32>,
    /// Task that wrote the record, when the trace says (proc column, event prefix, or the
    /// last task-switch banner on this CPU).
    pub task: Option<Task<'a>>,
    /// Absolute timestamp, when the trace has one (abstime column, event timestamp).
    pub timestamp: Option<Nanos>,
    /// What happened.
    pub kind: RecordKind<'a>,
}

/// The kinds of [`Record`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind<'a> {
    /// `f() {`: a call whose return comes later.
    Entry {
        /// The called function.
        func: Func<'a>,
        /// Call depth from the indentation (0 = outermost traced call).
        depth: u32,
    },
    /// `}` or `} /* f */`: the return of the innermost open call.
    Exit {
        /// The function named by funcgraph-tail or retval comments, if printed.
        func: Option<Func<'a>>,
        /// Duration of the call including children (`None` when the duration column is off).
        duration: Option<Nanos>,
        /// Call depth from the indentation.
        depth: u32,
    },
    /// `f();`: a call with no traced children, entry and return in one line.
    Leaf {
        /// The called function.
        func: Func<'a>,
        /// Duration (`None` when the duration column is off).
        duration: Option<Nanos>,
        /// Call depth from the indentation.
        depth: u32,
    },
    /// A tracepoint, trace_printk or marker record: an event line or a `/* ... */` comment
    /// inside a graph.
    Event {
        /// Event name (`kvm_exit`); empty for trace_printk messages without a name.
        name: &'a str,
        /// The event's printed arguments (everything after `name: `). Empty from a binary
        /// reader when the sink said it does not read it ([`RecordSink::text_use`]).
        text: &'a str,
        /// A `kvm_exit` decoded from its binary fields by a reader that can (trace.dat):
        /// what [`exit::parse_kvm_exit`] gives of `text` (tested to agree). `None` for other
        /// events and from text readers: parse `text` then.
        exit: Option<&'a exit::KvmExit<'a>>,
    },
    /// A task-switch banner: `prev => next` on `Record::cpu`.
    TaskSwitch {
        /// Task switched out.
        prev: Task<'a>,
        /// Task switched in; following records on this CPU belong to it.
        next: Task<'a>,
    },
    /// `CPU:N [LOST n EVENTS]`: the ring buffer dropped records on `Record::cpu`.
    Lost {
        /// Number of records lost, when the kernel knew it.
        count: Option<u64>,
    },
    /// `==========>` (true) or `<==========` (false): an interrupt starts or ends here.
    IrqMarker {
        /// True for the entry marker.
        enter: bool,
    },
}

/// Whether a producer should keep going.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Keep producing records.
    Continue,
    /// Stop early; the consumer has what it needs.
    Stop,
}

/// How serious a [`Diagnostic`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Severity {
    /// The input was read, but something in it looks inconsistent (e.g. indentation that
    /// disagrees with the braces). Numbers are still trustworthy.
    Warning,
    /// A line or record could not be read and was skipped.
    Error,
}

/// A problem found in an input, with its exact place. Parsers count these and keep going;
/// `--strict` turns errors into a failure.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Diagnostic {
    /// Input name as the user gave it (`-` for stdin).
    pub file: String,
    /// 1-based line (0 for binary inputs).
    pub line: u64,
    /// 1-based byte column (for binary inputs: the byte offset in the file).
    pub column: u64,
    /// Warning or error.
    pub severity: Severity,
    /// What was expected and what was found.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        if self.line == 0 {
            write!(f, "{}: byte {:#x}: {}: {}", self.file, self.column, sev, self.message)
        } else {
            write!(f, "{}:{}:{}: {}: {}", self.file, self.line, self.column, sev, self.message)
        }
    }
}

/// How much of an event's text a sink reads ([`RecordSink::text_use`]). Binary readers
/// (trace.dat, perf.data) render the text of each record from its print format, which costs
/// more than everything else they do per record; they skip it where no sink reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TextUse {
    /// The text of this event is never read: binary readers pass it empty.
    Never,
    /// Some records' text is read: binary readers ask [`RecordSink::wants_text`] for each
    /// one (passing it with empty text) and render it only when the answer is yes.
    Sometimes,
    /// Every record's text is read, but only for what [`exit::parse_kvm_exit`] gives of it:
    /// a reader that hands the decoded exit in [`RecordKind::Event::exit`] may treat this as
    /// [`TextUse::Sometimes`]; any other renders the text.
    Parsed,
    /// Every record's text is read.
    Always,
}

/// A consumer of records, the parser → analysis interface (modelled on grep-searcher's
/// `Sink`). Producers call [`RecordSink::record`] for each record in input order and
/// [`RecordSink::diagnostic`] for each problem, and stop when either returns [`Flow::Stop`].
pub trait RecordSink {
    /// Consume one record.
    fn record(&mut self, rec: &Record<'_>) -> Flow;
    /// Consume one diagnostic. The default keeps going.
    fn diagnostic(&mut self, diag: Diagnostic) -> Flow {
        let _ = diag;
        Flow::Continue
    }
    /// Whether this sink reads the text of [`RecordKind::Event`] records named `event`.
    /// Asked once per event name before any record, by readers for which text costs work.
    /// The default, [`TextUse::Always`], is always correct.
    fn text_use(&self, event: &str) -> TextUse {
        let _ = event;
        TextUse::Always
    }
    /// For an event whose [`RecordSink::text_use`] is [`TextUse::Sometimes`]: whether this
    /// sink reads the text of `rec`, the next record it will be given (here with empty
    /// text). The default is yes.
    fn wants_text(&self, rec: &Record<'_>) -> bool {
        let _ = rec;
        true
    }
}

impl<S: RecordSink + ?Sized> RecordSink for &mut S {
    fn record(&mut self, rec: &Record<'_>) -> Flow {
        (**self).record(rec)
    }
    fn diagnostic(&mut self, diag: Diagnostic) -> Flow {
        (**self).diagnostic(diag)
    }
    fn text_use(&self, event: &str) -> TextUse {
        (**self).text_use(event)
    }
    fn wants_text(&self, rec: &Record<'_>) -> bool {
        (**self).wants_text(rec)
    }
}

/// The kind of bytes an input held, as the ingest layer recognised them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
#[non_exhaustive]
pub enum InputFormat {
    /// ftrace text: `trace`, `trace_pipe`, `trace-cmd report`, `perf ftrace` output.
    FtraceText,
    /// trace-cmd's binary `trace.dat` (v6, v7).
    TraceDat,
    /// perf's `perf.data` (tracepoint samples).
    PerfData,
}

impl InputFormat {
    /// The name used in reports (`ftrace-text`, `trace-dat`, `perf-data`).
    pub fn as_str(self) -> &'static str {
        match self {
            InputFormat::FtraceText => "ftrace-text",
            InputFormat::TraceDat => "trace-dat",
            InputFormat::PerfData => "perf-data",
        }
    }
}

impl fmt::Display for InputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one input contained: the producer's counts, reported once at its end.
#[derive(Clone, Debug, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct InputSummary {
    /// Name as given (`-` for stdin).
    pub name: String,
    /// `ftrace-text`, `trace-dat` or `perf-data` (see [`InputFormat::as_str`]).
    pub format: String,
    /// Compression the input was wrapped in (`gzip`, `zstd`), `None` when it was plain.
    #[cfg_attr(feature = "serde", serde(default, skip_serializing_if = "Option::is_none"))]
    pub compression: Option<String>,
    /// Bytes read (after decompression).
    pub bytes: u64,
    /// Lines read (0 for binary inputs).
    pub lines: u64,
    /// Records produced.
    pub records: u64,
    /// Lines (or binary records) that could not be read.
    pub error_lines: u64,
    /// Blank, header and frame lines.
    pub ignored_lines: u64,
    /// The environment of the machine that recorded the input, when the input carries it
    /// (exitscope's `record` and `run` write it: a `# exitscope host: {json}` first line in
    /// text, an option of its own in trace.dat); `None` otherwise, never the reading
    /// machine's. Not serialized here: the report has it once, as `host`.
    #[cfg_attr(feature = "serde", serde(skip))]
    pub host: Option<exitscope_host::Fingerprint>,
}

/// A [`RecordSink`] that is told where each input begins and ends (the ingest layer calls
/// these around the records of every input, in order).
pub trait InputSink: RecordSink {
    /// Records of input `name` (format `format`) follow.
    fn begin_input(&mut self, name: &str, format: InputFormat);
    /// The input has ended; `summary` holds its producer's counts.
    fn end_input(&mut self, summary: &InputSummary);
    /// This sink as one that analyses chunks of a text input on other threads and merges the
    /// parts in order ([`ChunkedSink`]); `None` (the default) when it only takes records in
    /// order.
    fn chunked(&mut self) -> Option<&mut dyn ChunkedSink> {
        None
    }
}

/// A sink that can take a chunk of an input as a *part* analysed on another thread: the
/// ingest layer cuts a large text input into chunks at line ends, feeds each chunk's records
/// (numbered from 1 within the chunk) into a fresh part on a worker thread, and hands the
/// parts back in input order. A part that cannot be merged (the state it assumed at its
/// chunk's start was not the real one) is thrown away and its chunk's lines applied to this
/// sink in order instead, so the result is always that of one thread.
pub trait ChunkedSink: RecordSink {
    /// A maker of empty parts, called on worker threads; `None` when this sink cannot take
    /// parts at all (it streams records or exits to consumers that need them in order).
    fn part_maker(&self) -> Option<PartMaker>;
    /// `part` can be merged now. Before [`ChunkedSink::merge_part`] the lines the part left
    /// to the sink ([`ChunkPart::last_was_prefix`]) are applied to this sink in order.
    fn accepts(&self, part: &dyn ChunkPart) -> bool;
    /// Merge `part`, whose chunk starts after line `line_base` of the input.
    fn merge_part(&mut self, part: Box<dyn ChunkPart>, line_base: u64);
    /// A maker of empty parts for chunks that hold function-graph lines, task-switch banners
    /// or other lines whose meaning depends on the lines before them (the worker's parser
    /// starts such a chunk with the task-switch banners of all chunks before it); `None`
    /// (the default) when such chunks are applied in order.
    fn graph_part_maker(&self) -> Option<PartMaker> {
        None
    }
    /// The lines `part` left to the sink are about to be applied (after
    /// [`ChunkedSink::accepts`] said yes, before [`ChunkedSink::merge_part`]).
    fn prefix_begins(&mut self, part: &dyn ChunkPart) {
        let _ = part;
    }
}

/// Makes an empty [`ChunkPart`] (see [`ChunkedSink::part_maker`]).
pub type PartMaker = Box<dyn Fn() -> Box<dyn ChunkPart> + Send + Sync>;

/// The partial analysis of one chunk (see [`ChunkedSink`]).
pub trait ChunkPart: RecordSink + Send {
    /// The record just given was left to the sink: its line is applied to the sink itself,
    /// in order, before the part is merged (the part does not count it).
    fn last_was_prefix(&self) -> bool;
    /// Forget whether the last record was left to the sink (before a line that may give no
    /// record at all).
    fn clear_prefix(&mut self) {}
    /// The part saw something it cannot stand for (its chunk must be applied in order).
    fn usable(&self) -> bool;
    /// For the sink that made it to downcast.
    fn as_any(&self) -> &dyn std::any::Any;
    /// For the sink that made it to downcast.
    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any>;
}

/// Names of interrupt entry points and helpers that, on modern x86 (idtentry, ~5.8+), appear
/// nested inside whatever function they interrupted, with no `==========>` marker. Matched as
/// exact names or, for entries ending in `*`, as prefixes.
pub const INTERRUPT_FUNCTIONS: &[&str] = &[
    "irq_enter*",
    "irq_exit*",
    "__sysvec_*",
    "sysvec_*",
    "smp_*_interrupt",
    "smp_apic_timer_interrupt",
    "smp_reschedule_interrupt",
    "smp_call_function*_interrupt",
    "handle_irq_event*",
    "handle_edge_irq",
    "handle_fasteoi_irq",
    "generic_handle_irq*",
    "__do_softirq",
    "do_softirq*",
    "handle_softirqs",
    "xen_evtchn_do_upcall",
    "__xen_evtchn_do_upcall",
    "do_IRQ",
    "common_interrupt",
    "__common_interrupt",
    "asm_sysvec_*",
    "asm_common_interrupt",
];

/// Whether `name` is an interrupt entry point (see [`INTERRUPT_FUNCTIONS`]).
pub fn is_interrupt_function(name: &str) -> bool {
    // Compiler suffixes (`.isra.0`) do not change what the function is.
    let base = name.split_once('.').map_or(name, |(b, _)| b);
    INTERRUPT_FUNCTIONS.iter().any(|pat| glob_match(pat, base))
}

/// Tiny `*` glob (any run of characters), enough for symbol patterns.
fn glob_match(pat: &str, s: &str) -> bool {
    match pat.split_once('*') {
        None => pat == s,
        Some((head, tail)) => {
            let Some(rest) = s.strip_prefix(head) else { return false };
            if tail.is_empty() {
                return true;
            }
            // Try every split point; the patterns are short.
            (0..=rest.len()).any(|i| rest.is_char_boundary(i) && glob_match(tail, &rest[i..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn func_display_has_module_suffix_like_ps() {
        assert_eq!(
            Func::new("vcpu_enter_guest", Some("kvm")).to_string(),
            "vcpu_enter_guest [kvm]"
        );
        assert_eq!(Func::new("schedule", None).to_string(), "schedule");
    }

    #[test]
    fn interrupt_names_are_recognised() {
        for n in [
            "irq_enter_rcu",
            "irq_exit",
            "__sysvec_apic_timer_interrupt",
            "smp_irq_work_interrupt",
            "xen_evtchn_do_upcall",
            "__do_softirq",
            "handle_irq_event.isra.0",
        ] {
            assert!(is_interrupt_function(n), "{n}");
        }
        for n in ["kvm_emulate_cpuid", "irq_work_run", "schedule", "smp_call_function_many"] {
            assert!(!is_interrupt_function(n), "{n}");
        }
    }

    #[test]
    fn diagnostic_display_names_file_line_column() {
        let d = Diagnostic {
            file: "a.txt".into(),
            line: 12,
            column: 17,
            severity: Severity::Error,
            message: "expected a duration".into(),
        };
        assert_eq!(d.to_string(), "a.txt:12:17: error: expected a duration");
    }
}
