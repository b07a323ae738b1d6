//! # Brief overview
//!
//! A streaming parser for ftrace **text**: function_graph output in all its option variants
//! (CPU / proc / abstime / latency-flag / duration columns, overhead marks, funcgraph-tail,
//! retval and retaddr comments, irq markers, task-switch banners, event comments, `LOST`
//! lines), plain tracepoint lines from `trace` and `trace_pipe` (with any of the task, CPU
//! and flags columns trimmed away, as pasted captures often have them), the function
//! tracer's `func <-parent` lines, `ftrace_dump`'s latency format, and `trace-cmd report`'s
//! rendering of all of these (instance buffers included). It reads through a fixed buffer,
//! so memory does not grow with the input, and pushes [`Record`]s into a [`RecordSink`].
//!
//! ```
//! use exitscope_ftrace::parse_reader;
//! use exitscope_model::{Flow, Record, RecordKind, RecordSink};
//!
//! struct Durations(Vec<u64>);
//! impl RecordSink for Durations {
//!     fn record(&mut self, r: &Record<'_>) -> Flow {
//!         if let RecordKind::Exit { duration: Some(d), .. } = r.kind { self.0.push(d) }
//!         Flow::Continue
//!     }
//! }
//! let text = " 98)               |  vcpu_enter_guest [kvm]() {\n 98)   4.278 us    |  }\n";
//! let mut sink = Durations(vec![]);
//! let summary = parse_reader("seed", text.as_bytes(), &mut sink).unwrap();
//! assert_eq!(sink.0, [4278]);
//! assert_eq!(summary.records, 2);
//! ```
//!
//! What the parser does not do is pair entries with exits: that needs per-task stacks and
//! belongs to the analysis (`exitscope-analyze`). It does resolve which task wrote each line
//! where the text says so (proc column, event prefix, or the last task-switch banner on that
//! CPU), because that needs the text's context.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod line;
pub mod reader;

use std::io::{self, Read};

use exitscope_model::{Diagnostic, Flow, Record, RecordKind, RecordSink, Severity, Task};

use line::{Body, Line};

/// Counts of what one input contained. Every line is accounted for:
/// `lines == record_lines + ignored_lines + error_lines`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParseSummary {
    /// Bytes read.
    pub bytes: u64,
    /// Lines read.
    pub lines: u64,
    /// Lines that produced a record (a multi-line comment counts once, on its first line).
    pub record_lines: u64,
    /// Records produced.
    pub records: u64,
    /// Blank lines, headers, banner frames and comment continuation lines.
    pub ignored_lines: u64,
    /// Lines that could not be read (each has a diagnostic).
    pub error_lines: u64,
    /// True if the sink asked to stop before the end.
    pub stopped: bool,
}

/// Longest multi-line comment kept; longer ones are cut with a warning.
const MAX_COMMENT: usize = 64 * 1024;

/// Parser state carried from line to line.
pub struct TextParser {
    input: String,
    /// Current task per CPU, from task-switch banners (index = CPU; `u32::MAX` when the text
    /// has no CPU column is kept in `no_cpu_task`).
    cpu_tasks: Vec<Option<(String, u32)>>,
    no_cpu_task: Option<(String, u32)>,
    /// A `/* ...` comment that has not closed yet.
    open_comment: Option<OpenComment>,
    summary: ParseSummary,
}

struct OpenComment {
    line: u64,
    cpu: Option<u32>,
    timestamp: Option<u64>,
    name: String,
    text: String,
}

impl TextParser {
    /// A parser for the input called `input` (used in diagnostics).
    pub fn new(input: &str) -> Self {
        TextParser {
            input: input.to_string(),
            cpu_tasks: Vec::new(),
            no_cpu_task: None,
            open_comment: None,
            summary: ParseSummary::default(),
        }
    }

    /// Parse one line (1-based number `lineno`, without its newline).
    pub fn line<S: RecordSink + ?Sized>(&mut self, raw: &[u8], lineno: u64, sink: &mut S) -> Flow {
        self.apply(pre_parse(raw), lineno, sink)
    }

    /// Take one line that [`pre_parse`] (or [`pre_parse_chunk`]) has read: the part of
    /// [`TextParser::line`] that needs the state of the lines before it (task-switch banners,
    /// open comments). Pre-parsing on other threads and applying in order gives exactly the
    /// records and diagnostics of [`TextParser::line`].
    pub fn apply<S: RecordSink + ?Sized>(
        &mut self,
        pre: PreLine<'_>,
        lineno: u64,
        sink: &mut S,
    ) -> Flow {
        let (text, parsed) = match pre {
            PreLine::Text { text, parsed } => (text, parsed),
            PreLine::TooLong(len) => return self.too_long(len, lineno, sink),
            PreLine::NotUtf8 { at, byte } => {
                self.summary.lines += 1;
                return self.error(
                    sink,
                    lineno,
                    at,
                    format!("expected UTF-8 text, found byte {byte:#04x}; is this a binary file?"),
                );
            }
        };
        self.summary.lines += 1;
        if self.open_comment.is_some()
            && let Some(flow) = self.continue_comment(text, lineno, sink)
        {
            return flow;
        }
        match parsed {
            Ok(parsed) => self.emit(parsed, lineno, sink),
            Err(e) => {
                let found = excerpt(text, e.offset);
                self.error(
                    sink,
                    lineno,
                    e.offset,
                    format!("expected {}, found {found}", e.expected),
                )
            }
        }
    }

    /// [`TextParser::apply`] of [`pre_parse_str`]`(text)` when the line has the common
    /// function-graph shape ([`line::common_graph_record`]) and no comment is open: its record
    /// goes to `sink` straight from the text. `None` (nothing done) for any other line.
    #[inline]
    pub fn common_line<S: RecordSink + ?Sized>(
        &mut self,
        text: &str,
        lineno: u64,
        sink: &mut S,
    ) -> Option<Flow> {
        if self.open_comment.is_some() {
            return None;
        }
        let (cpu, kind) = line::common_graph_record(text)?;
        self.summary.lines += 1;
        self.summary.record_lines += 1;
        self.summary.records += 1;
        let task = self
            .cpu_tasks
            .get(cpu as usize)
            .and_then(Option::as_ref)
            .map(|(comm, pid)| Task::new(comm, *pid));
        let rec = Record { line: lineno, cpu: Some(cpu), task, timestamp: None, kind };
        Some(sink.record(&rec))
    }

    /// Report a line longer than [`reader::MAX_LINE`].
    pub fn too_long<S: RecordSink + ?Sized>(
        &mut self,
        len: u64,
        lineno: u64,
        sink: &mut S,
    ) -> Flow {
        self.summary.lines += 1;
        self.error(
            sink,
            lineno,
            0,
            format!(
                "expected a trace line shorter than {} bytes, found a line of {len} bytes",
                reader::MAX_LINE
            ),
        )
    }

    /// A `/* ...` comment is open: the next lines may continue it.
    pub fn has_open_comment(&self) -> bool {
        self.open_comment.is_some()
    }

    /// The line state carried from line to line (task-switch banners, an open comment) is
    /// untouched by `lines`: [`pre_parse`]d lines that are only events, skipped lines and
    /// unreadable lines. A chunk of such lines can be parsed by a parser of its own (on
    /// another thread) whose counts are then added with [`TextParser::add_counts`], when
    /// this parser has no open comment.
    pub fn context_free(lines: &[PreLine<'_>]) -> bool {
        lines.iter().all(|l| match l {
            PreLine::Text { parsed: Ok(Line::Event { .. } | Line::Skip), .. } => true,
            PreLine::Text { parsed: Ok(_), .. } => false,
            PreLine::Text { parsed: Err(_), .. }
            | PreLine::NotUtf8 { .. }
            | PreLine::TooLong(_) => true,
        })
    }

    /// The task of each CPU from the task-switch banners seen so far (see
    /// [`TextParser::set_banners`]).
    pub fn banners(&self) -> Banners {
        Banners { cpu_tasks: self.cpu_tasks.clone(), no_cpu_task: self.no_cpu_task.clone() }
    }

    /// Start from the task-switch banners of the lines before (a parser of its own for a
    /// chunk that holds function-graph lines without a task column).
    pub fn set_banners(&mut self, banners: Banners) {
        self.cpu_tasks = banners.cpu_tasks;
        self.no_cpu_task = banners.no_cpu_task;
    }

    /// Add the counts of lines parsed by another parser (see [`TextParser::context_free`]).
    pub fn add_counts(&mut self, s: &ParseSummary) {
        let t = &mut self.summary;
        t.lines += s.lines;
        t.record_lines += s.record_lines;
        t.records += s.records;
        t.ignored_lines += s.ignored_lines;
        t.error_lines += s.error_lines;
    }

    /// Flush state at end of input and return the counts.
    pub fn finish<S: RecordSink + ?Sized>(mut self, sink: &mut S) -> ParseSummary {
        if let Some(c) = self.open_comment.take() {
            let line = c.line;
            self.emit_comment(c, sink);
            let _ = sink.diagnostic(self.diag(
                line,
                0,
                Severity::Warning,
                "comment `/* ...` is not closed by `*/` before the end of the input".into(),
            ));
        }
        self.summary
    }

    fn diag(&self, line: u64, offset: usize, severity: Severity, message: String) -> Diagnostic {
        Diagnostic { file: self.input.clone(), line, column: offset as u64 + 1, severity, message }
    }

    fn error<S: RecordSink + ?Sized>(
        &mut self,
        sink: &mut S,
        line: u64,
        offset: usize,
        message: String,
    ) -> Flow {
        self.summary.error_lines += 1;
        let d = self.diag(line, offset, Severity::Error, message);
        sink.diagnostic(d)
    }

    fn banner_task(&self, cpu: Option<u32>) -> Option<Task<'_>> {
        let slot = match cpu {
            Some(c) => self.cpu_tasks.get(c as usize).and_then(Option::as_ref),
            None => self.no_cpu_task.as_ref(),
        };
        slot.map(|(comm, pid)| Task::new(comm, *pid))
    }

    fn set_banner_task(&mut self, cpu: Option<u32>, task: Task<'_>) {
        let owned = Some((task.comm.to_string(), task.pid));
        match cpu {
            Some(c) => {
                let c = c as usize;
                // CPU numbers come from the text; cap the table so junk cannot make it huge.
                if c < 1 << 16 {
                    if self.cpu_tasks.len() <= c {
                        self.cpu_tasks.resize(c + 1, None);
                    }
                    self.cpu_tasks[c] = owned;
                }
            }
            None => self.no_cpu_task = owned,
        }
    }

    fn push<S: RecordSink + ?Sized>(&mut self, rec: &Record<'_>, sink: &mut S) -> Flow {
        self.summary.records += 1;
        sink.record(rec)
    }

    fn emit<S: RecordSink + ?Sized>(
        &mut self,
        parsed: Line<'_>,
        lineno: u64,
        sink: &mut S,
    ) -> Flow {
        match parsed {
            Line::Skip => {
                self.summary.ignored_lines += 1;
                Flow::Continue
            }
            Line::Graph { abstime, cpu, task, body } => {
                self.summary.record_lines += 1;
                if let Body::Comment { name, text, open: true } = body {
                    self.open_comment = Some(OpenComment {
                        line: lineno,
                        cpu,
                        timestamp: abstime,
                        name: name.to_string(),
                        text: text.to_string(),
                    });
                    return Flow::Continue;
                }
                let kind = body_kind(body);
                self.summary.records += 1;
                // The banner task is borrowed from the parser's state, not copied per line.
                let task = task.or_else(|| {
                    let slot = match cpu {
                        Some(c) => self.cpu_tasks.get(c as usize).and_then(Option::as_ref),
                        None => self.no_cpu_task.as_ref(),
                    };
                    slot.map(|(comm, pid)| Task::new(comm, *pid))
                });
                let rec = Record { line: lineno, cpu, task, timestamp: abstime, kind };
                sink.record(&rec)
            }
            Line::TraceCmdGraph { task, cpu, timestamp, body } => {
                self.summary.record_lines += 1;
                let kind = body_kind(body);
                let rec = Record { line: lineno, cpu, task, timestamp, kind };
                self.push(&rec, sink)
            }
            Line::Event { task, cpu, timestamp, name, text } => {
                self.summary.record_lines += 1;
                let rec = Record {
                    line: lineno,
                    cpu,
                    task,
                    timestamp,
                    kind: RecordKind::Event { name, text, exit: None },
                };
                self.push(&rec, sink)
            }
            Line::Banner { cpu, prev, next } => {
                self.summary.record_lines += 1;
                self.set_banner_task(cpu, next);
                let rec = Record {
                    line: lineno,
                    cpu,
                    task: Some(next),
                    timestamp: None,
                    kind: RecordKind::TaskSwitch { prev, next },
                };
                self.push(&rec, sink)
            }
            Line::Lost { cpu, count } => {
                self.summary.record_lines += 1;
                let rec = Record {
                    line: lineno,
                    cpu: Some(cpu),
                    task: None,
                    timestamp: None,
                    kind: RecordKind::Lost { count },
                };
                self.push(&rec, sink)
            }
        }
    }

    /// Handle a line while a multi-line comment is open. Returns `None` when the line is not
    /// part of the comment and must be parsed normally.
    fn continue_comment<S: RecordSink + ?Sized>(
        &mut self,
        text: &str,
        lineno: u64,
        sink: &mut S,
    ) -> Option<Flow> {
        let t = text.trim_end();
        if let Some(last) = t.strip_suffix("*/") {
            let mut c = self.open_comment.take()?;
            append_capped(&mut c.text, last.trim());
            self.summary.ignored_lines += 1;
            return Some(self.emit_comment(c, sink));
        }
        // A line that is a record in its own right means the comment was never closed.
        if let Ok(l) = line::parse_line(text)
            && !matches!(l, Line::Skip)
            && !matches!(l, Line::Graph { body: Body::Leaf { .. }, cpu: None, .. })
        {
            let c = self.open_comment.take()?;
            let at = c.line;
            let flow = self.emit_comment(c, sink);
            let d = self.diag(
                at,
                0,
                Severity::Warning,
                format!("comment `/* ...` not closed by `*/` before line {lineno}"),
            );
            if sink.diagnostic(d) == Flow::Stop || flow == Flow::Stop {
                return Some(Flow::Stop);
            }
            return None;
        }
        if let Some(c) = self.open_comment.as_mut() {
            append_capped(&mut c.text, t.trim());
        }
        self.summary.ignored_lines += 1;
        Some(Flow::Continue)
    }

    fn emit_comment<S: RecordSink + ?Sized>(&mut self, c: OpenComment, sink: &mut S) -> Flow {
        let owned_banner = self.banner_task(c.cpu).map(|t| (t.comm.to_string(), t.pid));
        let task = owned_banner.as_ref().map(|(comm, pid)| Task::new(comm, *pid));
        let rec = Record {
            line: c.line,
            cpu: c.cpu,
            task,
            timestamp: c.timestamp,
            kind: RecordKind::Event { name: &c.name, text: &c.text, exit: None },
        };
        self.push(&rec, sink)
    }
}

fn append_capped(buf: &mut String, more: &str) {
    if buf.len() + more.len() < MAX_COMMENT {
        buf.push('\n');
        buf.push_str(more);
    }
}

fn body_kind(body: Body<'_>) -> RecordKind<'_> {
    match body {
        Body::Entry { func, depth } => RecordKind::Entry { func, depth },
        Body::Exit { func, duration, depth } => RecordKind::Exit { func, duration, depth },
        Body::Leaf { func, duration, depth } => RecordKind::Leaf { func, duration, depth },
        Body::Comment { name, text, .. } => RecordKind::Event { name, text, exit: None },
        Body::Irq { enter } => RecordKind::IrqMarker { enter },
    }
}

/// Up to 40 characters of `text` from byte `offset`, quoted, for "found ..." messages.
fn excerpt(text: &str, offset: usize) -> String {
    let start = (0..=offset.min(text.len())).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    let rest = &text[start..];
    if rest.is_empty() {
        return "the end of the line".to_string();
    }
    let mut end = rest.len().min(40);
    while !rest.is_char_boundary(end) {
        end -= 1;
    }
    let more = if end < rest.len() { "..." } else { "" };
    format!("{:?}{more}", &rest[..end])
}

/// The task each CPU runs as the task-switch banners said (the state
/// [`TextParser`] carries for function-graph lines without a task column).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Banners {
    cpu_tasks: Vec<Option<(String, u32)>>,
    no_cpu_task: Option<(String, u32)>,
}

impl Banners {
    /// The banners after `lines` (pre-parsed lines following the ones this state is of).
    pub fn apply(&mut self, lines: &[PreLine<'_>]) {
        for l in lines {
            if let PreLine::Text { parsed: Ok(Line::Banner { cpu, next, .. }), .. } = l {
                let owned = Some((next.comm.to_string(), next.pid));
                match cpu {
                    Some(c) if (*c as usize) < 1 << 16 => {
                        let c = *c as usize;
                        if self.cpu_tasks.len() <= c {
                            self.cpu_tasks.resize(c + 1, None);
                        }
                        self.cpu_tasks[c] = owned;
                    }
                    Some(_) => {}
                    None => self.no_cpu_task = owned,
                }
            }
        }
    }

    /// The banners of `lines` alone, to apply to the state before them with
    /// [`Banners::then`].
    pub fn of(lines: &[PreLine<'_>]) -> Banners {
        let mut b = Banners::default();
        b.apply(lines);
        b
    }

    /// This state followed by the banners of `later` ([`Banners::of`]).
    pub fn then(&mut self, later: &Banners) {
        if self.cpu_tasks.len() < later.cpu_tasks.len() {
            self.cpu_tasks.resize(later.cpu_tasks.len(), None);
        }
        for (c, t) in later.cpu_tasks.iter().enumerate() {
            if t.is_some() {
                self.cpu_tasks[c] = t.clone();
            }
        }
        if later.no_cpu_task.is_some() {
            self.no_cpu_task = later.no_cpu_task.clone();
        }
    }
}

/// One line as far as it can be read on its own, without the lines before it: see
/// [`TextParser::apply`].
#[derive(Debug)]
pub enum PreLine<'a> {
    /// The line's text and what the line grammar made of it.
    Text {
        /// The line, without its newline.
        text: &'a str,
        /// [`line::parse_line`] of it.
        parsed: Result<Line<'a>, line::LineError>,
    },
    /// A line that is not UTF-8: the offset of the first bad byte, and that byte.
    NotUtf8 {
        /// 0-based byte offset in the line.
        at: usize,
        /// The byte found there.
        byte: u8,
    },
    /// A line longer than [`reader::MAX_LINE`] (its length in bytes), not parsed.
    TooLong(u64),
}

/// Read one line (without its newline) as far as it can be read alone.
#[inline]
pub fn pre_parse(raw: &[u8]) -> PreLine<'_> {
    match std::str::from_utf8(raw) {
        Ok(text) => pre_parse_str(text),
        Err(e) => {
            let at = e.valid_up_to();
            PreLine::NotUtf8 { at, byte: raw.get(at).copied().unwrap_or(0) }
        }
    }
}

/// [`pre_parse`] of a line known to be UTF-8.
#[inline]
pub fn pre_parse_str(text: &str) -> PreLine<'_> {
    PreLine::Text { text, parsed: line::parse_line(text) }
}

/// Pre-parse every line of `chunk` (whole lines: it starts at a line start and ends after a
/// newline or at the end of the input) into `out`, split exactly as [`parse_reader`] splits a
/// stream (a trailing `\r` dropped, lines over [`reader::MAX_LINE`] not parsed). Returns the
/// number of lines.
pub fn pre_parse_chunk<'a>(chunk: &'a [u8], out: &mut Vec<PreLine<'a>>) -> u64 {
    let before = out.len();
    reader::for_each_line_in(chunk, |c| out.push(pre_parse_line(c)));
    (out.len() - before) as u64
}

/// [`pre_parse_str`] or [`pre_parse`] of one line as [`reader::for_each_line_in`] hands it.
#[inline]
pub fn pre_parse_line(c: reader::Chunk<'_>) -> PreLine<'_> {
    match c {
        reader::Chunk::Text(t) => pre_parse_str(t),
        reader::Chunk::Line(l) => pre_parse(l),
        reader::Chunk::TooLong(n) => PreLine::TooLong(n),
    }
}

/// Parse a whole stream. `input` names it in diagnostics.
pub fn parse_reader<R: Read, S: RecordSink + ?Sized>(
    input: &str,
    rdr: R,
    sink: &mut S,
) -> io::Result<ParseSummary> {
    let mut parser = TextParser::new(input);
    let mut lineno = 0u64;
    let mut stopped = false;
    let bytes = reader::for_each_line(rdr, |chunk| {
        lineno += 1;
        let flow = match chunk {
            reader::Chunk::Text(t) => match parser.common_line(t, lineno, sink) {
                Some(flow) => flow,
                None => parser.apply(pre_parse_str(t), lineno, sink),
            },
            reader::Chunk::Line(l) => parser.line(l, lineno, sink),
            reader::Chunk::TooLong(n) => parser.too_long(n, lineno, sink),
        };
        stopped = flow == Flow::Stop;
        !stopped
    })?;
    let mut summary = parser.finish(sink);
    summary.bytes = bytes;
    summary.stopped = stopped;
    Ok(summary)
}

/// A parser fed chunks of text as they arrive (a live `trace_pipe`), where [`parse_reader`]
/// pulls from a reader: lines may be split across chunks, and each chunk's records go to the
/// sink given with it (`exitscope top` hands every interval to a fresh analysis while the
/// parser's per-CPU task state and line numbers carry on).
///
/// ```
/// use exitscope_ftrace::Feed;
/// use exitscope_model::{Flow, Record, RecordSink};
/// struct Count(u64);
/// impl RecordSink for Count {
///     fn record(&mut self, _: &Record<'_>) -> Flow { self.0 += 1; Flow::Continue }
/// }
/// let mut feed = Feed::new("trace_pipe");
/// let mut a = Count(0);
/// feed.push(b"  vmm-5 [001] ..... 9.000001: kvm_cpuid: func 0 idx 0 rax 1 rbx 2 rcx 3 rdx 4, cpuid entry found\n  vmm-5 [001] ..... 9.0000", &mut a);
/// let mut b = Count(0);
/// feed.push(b"09: kvm_pio: pio_read at 0x4d0 size 1 count 1 val 0x0\n", &mut b);
/// assert_eq!((a.0, b.0), (1, 1));
/// ```
pub struct Feed {
    parser: TextParser,
    partial: Vec<u8>,
    /// The pending line grew past [`reader::MAX_LINE`]: skip to its end.
    skipping: Option<u64>,
    lineno: u64,
    bytes: u64,
}

impl Feed {
    /// A feed for the input called `input` (used in diagnostics).
    pub fn new(input: &str) -> Self {
        Feed {
            parser: TextParser::new(input),
            partial: Vec::new(),
            skipping: None,
            lineno: 0,
            bytes: 0,
        }
    }

    /// Parse the complete lines of `data` (after what an earlier push left unfinished) into
    /// `sink`; an unfinished last line waits for the next push.
    pub fn push<S: RecordSink + ?Sized>(&mut self, data: &[u8], sink: &mut S) {
        self.bytes += data.len() as u64;
        let mut rest = data;
        while let Some(nl) = memchr::memchr(b'\n', rest) {
            let (head, tail) = (&rest[..nl], &rest[nl + 1..]);
            rest = tail;
            self.lineno += 1;
            if let Some(skipped) = self.skipping.take() {
                self.parser.too_long(skipped + head.len() as u64, self.lineno, sink);
            } else if self.partial.is_empty() {
                self.parser.line(trim_cr(head), self.lineno, sink);
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(head);
                self.parser.line(trim_cr(&line), self.lineno, sink);
                line.clear();
                self.partial = line;
            }
        }
        match &mut self.skipping {
            Some(n) => *n += rest.len() as u64,
            None if self.partial.len() + rest.len() > reader::MAX_LINE => {
                self.skipping = Some((self.partial.len() + rest.len()) as u64);
                self.partial.clear();
            }
            None => self.partial.extend_from_slice(rest),
        }
    }

    /// The end of the stream: parse an unfinished last line, flush the parser's state, and
    /// return the counts of everything pushed.
    pub fn finish<S: RecordSink + ?Sized>(mut self, sink: &mut S) -> ParseSummary {
        if let Some(n) = self.skipping.take() {
            self.lineno += 1;
            self.parser.too_long(n, self.lineno, sink);
        } else if !self.partial.is_empty() {
            self.lineno += 1;
            let line = std::mem::take(&mut self.partial);
            self.parser.line(trim_cr(&line), self.lineno, sink);
        }
        let bytes = self.bytes;
        let mut summary = self.parser.finish(sink);
        summary.bytes = bytes;
        summary
    }

    /// Lines parsed so far.
    pub fn lines(&self) -> u64 {
        self.lineno
    }
}

fn trim_cr(l: &[u8]) -> &[u8] {
    l.strip_suffix(b"\r").unwrap_or(l)
}

#[cfg(test)]
mod tests;
