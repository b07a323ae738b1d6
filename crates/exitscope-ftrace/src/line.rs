//! The grammar of one ftrace text line, independent of any state. See
//! `shared/research/ftrace-fgraph-format.md` §3–§9 for the formats this follows.
//!
//! A function_graph line is `[ABSTIME |] [CPU)] [PROC |] [LATFLAGS |] [DURATION |] INDENT BODY`,
//! every column optional. Columns are found by pattern, never by fixed offsets: the header
//! widths do not track the data widths.

use exitscope_model::bytes::find_byte;
use exitscope_model::{Func, Nanos, RecordKind, Task};

/// One classified line.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// Empty, `#` header, `-----` banner frame, or another line that carries no record.
    Skip,
    /// A function_graph line.
    Graph {
        /// The abstime column (the record's ring-buffer time, µs resolution).
        abstime: Option<Nanos>,
        /// The CPU column.
        cpu: Option<u32>,
        /// The proc column.
        task: Option<Task<'a>>,
        /// What the line says.
        body: Body<'a>,
    },
    /// A tracepoint line: `comm-pid [cpu] flags ts: name: text`, any of the columns before
    /// the timestamp possibly trimmed away; also the function tracer's `ts: func <-parent`
    /// (event name `function`) and latency format's `comm-pid cpuFLAGS 123us : name: text`.
    Event {
        /// Task that wrote it, when the line still says.
        task: Option<Task<'a>>,
        /// CPU, when the line still says.
        cpu: Option<u32>,
        /// Timestamp (seconds.micros converted to ns, or a raw counter value).
        timestamp: Option<Nanos>,
        /// Event name.
        name: &'a str,
        /// Everything after `name: `.
        text: &'a str,
    },
    /// `trace-cmd report`'s rendering of a funcgraph record: an event line whose text is a
    /// duration column plus a graph body.
    TraceCmdGraph {
        /// Task that wrote it.
        task: Option<Task<'a>>,
        /// CPU.
        cpu: Option<u32>,
        /// Timestamp.
        timestamp: Option<Nanos>,
        /// The graph body.
        body: Body<'a>,
    },
    /// Task-switch banner ` N) prev => next`.
    Banner {
        /// CPU column.
        cpu: Option<u32>,
        /// Outgoing task.
        prev: Task<'a>,
        /// Incoming task.
        next: Task<'a>,
    },
    /// `CPU:N [LOST n EVENTS]`, `CPU:N [LOST EVENTS]`, trace-cmd's `CPU:N [n EVENTS DROPPED]`.
    Lost {
        /// CPU.
        cpu: u32,
        /// Count, when printed.
        count: Option<u64>,
    },
}

/// The function part of a graph line.
#[derive(Debug, PartialEq, Eq)]
pub enum Body<'a> {
    /// `f() {`
    Entry {
        /// Called function.
        func: Func<'a>,
        /// Depth from indentation.
        depth: u32,
    },
    /// `}` / `} /* f */` / `} /* f = 0x0 */` / `} /* f ret=0x0 */`
    Exit {
        /// Function named in the trailing comment.
        func: Option<Func<'a>>,
        /// Duration column value.
        duration: Option<Nanos>,
        /// Depth from indentation.
        depth: u32,
    },
    /// `f();`
    Leaf {
        /// Called function.
        func: Func<'a>,
        /// Duration column value.
        duration: Option<Nanos>,
        /// Depth from indentation.
        depth: u32,
    },
    /// `/* text */`: an event or trace_printk inside the graph. `open` is true when the
    /// comment continues on following lines (the kernel keeps inner newlines).
    Comment {
        /// Event name, or empty for trace_printk text.
        name: &'a str,
        /// Event text.
        text: &'a str,
        /// The comment is not closed on this line.
        open: bool,
    },
    /// `==========>` (true) / `<==========` (false).
    Irq {
        /// True for the entry marker.
        enter: bool,
    },
}

/// Why a line could not be read: what was expected at which byte.
#[derive(Debug, PartialEq, Eq)]
pub struct LineError {
    /// 0-based byte offset in the line handed to [`parse_line`].
    pub offset: usize,
    /// What the grammar wanted there.
    pub expected: &'static str,
}

type Res<T> = Result<T, LineError>;

fn err<T>(offset: usize, expected: &'static str) -> Res<T> {
    Err(LineError { offset, expected })
}

/// Classify and parse one line (no trailing newline).
pub fn parse_line(line: &str) -> Res<Line<'_>> {
    if let Some(l) = common_graph_line(line) {
        return l;
    }
    parse_line_general(line)
}

/// [`parse_line`] without the shortcuts for common shapes (they must agree with it: the
/// tests compare both on every line of every fixture).
pub(crate) fn parse_line_general(line: &str) -> Res<Line<'_>> {
    let b = line.as_bytes();
    let mut i = skip_ws(b, 0);
    // Capture prefixes that people paste with the trace: a dmesg timestamp and email quoting.
    i = strip_capture_prefix(b, i);
    let Some(&first) = b.get(i) else { return Ok(Line::Skip) };
    // `trace-cmd report` of an instance buffer prefixes its lines with `name: `; event
    // lines are recognised with it, markers here. (Graph lines start with a digit or `|`.)
    if first.is_ascii_alphabetic()
        && let Some(after) = instance_prefix(b, i)
        && b[after..].starts_with(b"CPU")
    {
        i = after;
    }
    let Some(&first) = b.get(i) else { return Ok(Line::Skip) };
    match first {
        b'#' => return Ok(Line::Skip),
        b'-' if b[i..].iter().all(|&c| c == b'-' || c == b' ') => return Ok(Line::Skip),
        b'C' if b[i..].starts_with(b"CPU:") => return parse_lost(line, i),
        // trace-cmd report's preamble.
        b'c' if b[i..].starts_with(b"cpus=") => return Ok(Line::Skip),
        b'C' if b[i..].starts_with(b"CPU ") && line.ends_with("is empty") => return Ok(Line::Skip),
        // funcgraph-overrun's extra line.
        b'(' if b[i..].starts_with(b"(Overruns:") => return Ok(Line::Skip),
        // ftrace_dump frame (`Dumping ftrace buffer:`, newer `Dumping ftrace instance X
        // buffer:`).
        b'D' if b[i..].starts_with(b"Dumping ftrace ")
            && line.trim_ascii_end().ends_with("buffer:") =>
        {
            return Ok(Line::Skip);
        }
        _ => {}
    }
    parse_graph_or_event(line, i)
}

/// The shape of nearly every line of a function_graph trace, ` CPU)  [DURATION] |  BODY`,
/// read without the general grammar's detours; `None` when the line has another shape (then
/// [`parse_line`] reads it the long way). It gives exactly what the general path gives: the
/// line starts with spaces and a CPU number closed by `)` (no dmesg or quote prefix, no
/// instance name, no abstime column), and after more spaces comes the `|` of an empty
/// duration column or a duration that [`parse_duration_column`] reads (it ends in `s`, so
/// it is neither a proc column nor latency flags, and it starts with a digit or a mark, so
/// it is no irq marker) followed by spaces and the first `|`.
#[inline]
fn common_graph_line(line: &str) -> Option<Res<Line<'_>>> {
    let (cpu, duration, body_start, depth) = common_graph_head(line.as_bytes())?;
    Some(parse_body(line, body_start, duration, depth).map(|body| Line::Graph {
        abstime: None,
        cpu: Some(cpu),
        task: None,
        body,
    }))
}

/// The columns of a line of the common shape (see [`common_graph_line`]): its CPU, its
/// duration, where its body starts and the depth its indentation says.
#[inline(always)]
fn common_graph_head(b: &[u8]) -> Option<(u32, Option<Nanos>, usize, u32)> {
    let mut i = skip_spaces(b, 0);
    let cpu_start = i;
    let mut n: u32 = 0;
    while let Some(&c) = b.get(i).filter(|c| c.is_ascii_digit()) {
        n = n.wrapping_mul(10).wrapping_add(u32::from(c - b'0'));
        i += 1;
    }
    // At most 9 digits: no overflow, and the same number the general path reads.
    if i == cpu_start || i - cpu_start > 9 || b.get(i) != Some(&b')') {
        return None;
    }
    let after_cpu = i + 1;
    let k = skip_spaces(b, after_cpu);
    let (bar, duration) = match b.get(k)? {
        b'|' => (k, None),
        c if c.is_ascii_digit() || matches!(c, b'+' | b'!' | b'#' | b'*' | b'@' | b'$') => {
            // A duration, spaces and the first `|` (the duration's bytes hold none): the
            // general path's column is the duration's bytes.
            let (d, end) = duration_at(b, k)?;
            let j = skip_spaces(b, end);
            if b.get(j) != Some(&b'|') {
                return None;
            }
            (j, Some(d))
        }
        _ => return None,
    };
    // Body: `|` + 2 spaces + 2 per depth level.
    let body_start = skip_spaces(b, bar + 1);
    let depth = depth_u32((body_start - (bar + 1)).saturating_sub(2) / 2);
    Some((n, duration, body_start, depth))
}

/// The record of a line of the common shape (` CPU)  [DURATION] |  BODY`) whose body is a call,
/// a leaf or a bare `}`: its CPU and kind, exactly what [`parse_line`] says of it as a
/// [`Line::Graph`] (no abstime or task column); `None` for any other line (the caller then
/// goes the long way). Built in place, without the [`Line`] in between: most lines of a
/// function-graph trace come this way.
#[inline(always)]
pub fn common_graph_record(line: &str) -> Option<(u32, RecordKind<'_>)> {
    let (cpu, duration, start, depth) = common_graph_head(line.as_bytes())?;
    let s = line.get(start..)?.trim_ascii_end();
    let b = s.as_bytes();
    let last = *b.last()?;
    // An exit with a comment, a comment, or a retval / retaddr comment (funcgraph-retval
    // ends the line in `*/`): the long way.
    let kind = if b[0] == b'}' || b.starts_with(b"/*") {
        if b.len() != 1 {
            return None;
        }
        RecordKind::Exit { func: None, duration, depth }
    } else if last == b'{' {
        RecordKind::Entry { func: parse_call(s[..s.len() - 1].trim_ascii_end())?, depth }
    } else if last == b';' {
        RecordKind::Leaf { func: parse_call(&s[..s.len() - 1])?, duration, depth }
    } else {
        return None;
    };
    Some((cpu, kind))
}

#[inline]
fn parse_graph_or_event(line: &str, start: usize) -> Res<Line<'_>> {
    let b = line.as_bytes();
    let mut i = start;
    let mut abstime = None;
    let mut cpu = None;
    // ABSTIME: `secs.micros |`
    if b.get(i).is_some_and(u8::is_ascii_digit) {
        let d_end = scan_digits(b, i);
        if b.get(d_end) == Some(&b'.') {
            let f_end = scan_digits(b, d_end + 1);
            let after = skip_ws(b, f_end);
            if f_end > d_end + 1 && b.get(after) == Some(&b'|') {
                abstime = parse_secs_micros(&line[i..f_end]);
                i = skip_ws(b, after + 1);
            }
        }
    }
    // CPU: `N)`
    if b.get(i).is_some_and(u8::is_ascii_digit) {
        // Scan and convert in one pass; this runs on every line.
        let mut j = i;
        let mut n: u64 = 0;
        while let Some(&c) = b.get(j).filter(|c| c.is_ascii_digit()) {
            n = n.saturating_mul(10).saturating_add(u64::from(c - b'0'));
            j += 1;
        }
        if b.get(j) == Some(&b')') {
            let c =
                u32::try_from(n).map_err(|_| LineError { offset: i, expected: "a CPU number" })?;
            cpu = Some(c);
            i = j + 1;
        }
    }
    if abstime.is_none() && cpu.is_none() {
        // Not a graph line with columns: an event line, trace-cmd report, or a bare graph body
        // (nocontext-info).
        if let Some(ev) = try_event_line(line, start)? {
            return Ok(ev);
        }
        if b.get(start) == Some(&b'|') {
            // Duration column only, no CPU column.
            return graph_after_columns(line, start, None, None, None);
        }
        if looks_like_duration_column(line, start) {
            return graph_after_columns(line, start, None, None, None);
        }
        return match parse_body(line, start, None, depth_u32(start / 2)) {
            Ok(body) => Ok(Line::Graph { abstime: None, cpu: None, task: None, body }),
            Err(_) => err(
                start,
                "a function_graph line (`N) ... |  f() {`) or an event line (`comm-pid [cpu] ts: name: ...`)",
            ),
        };
    }
    // After `N)`: a banner, an irq marker, proc / latency flags / duration columns, or a body.
    let rest = &line[i..];
    let t = rest.trim_ascii_start();
    if t.starts_with("==========>") || t.starts_with("<==========") {
        return Ok(Line::Graph {
            abstime,
            cpu,
            task: None,
            body: Body::Irq { enter: t.starts_with('=') },
        });
    }
    graph_after_columns(line, i, abstime, cpu, None)
}

/// Parse proc / latency-flag / duration columns starting at `i`, then the body.
#[inline]
fn graph_after_columns<'a>(
    line: &'a str,
    mut i: usize,
    abstime: Option<Nanos>,
    cpu: Option<u32>,
    mut task: Option<Task<'a>>,
) -> Res<Line<'a>> {
    let b = line.as_bytes();
    // Up to three `|`-terminated columns: proc, latency flags, duration.
    for _ in 0..3 {
        let Some(bar) = memchr::memchr(b'|', &b[i..]).map(|k| i + k) else {
            // No `|` at all: a task-switch banner ` N) prev => next`, or a line without a
            // duration column (nofuncgraph-duration) whose body follows `N) ` directly.
            if task.is_none()
                && let Some((prev, next)) = parse_banner(&line[i..])
            {
                return Ok(Line::Banner { cpu, prev, next });
            }
            // Depth = (spaces after `)` - 1) / 2.
            let body_start = skip_spaces(b, i);
            let spaces = body_start - i;
            let after_column = cpu.is_some() || task.is_some() || abstime.is_some();
            let depth = if after_column { spaces.saturating_sub(1) / 2 } else { spaces / 2 };
            let body = parse_body(line, body_start, None, depth_u32(depth))?;
            return Ok(Line::Graph { abstime, cpu, task, body });
        };
        let seg = line[i..bar].trim_ascii();
        if task.is_none() && is_proc_column(seg) {
            task = split_comm_pid(seg);
            i = bar + 1;
            continue;
        }
        if is_latency_flags(seg) {
            i = bar + 1;
            continue;
        }
        // The duration column.
        let duration = if seg.is_empty() {
            None
        } else if let Some(enter) = irq_marker(seg) {
            return Ok(Line::Graph { abstime, cpu, task, body: Body::Irq { enter } });
        } else {
            match parse_duration_column(seg) {
                Some(d) => Some(d),
                None => {
                    // A body containing `|` with no duration column (e.g. a comment).
                    let body_start = skip_spaces(b, i);
                    if let Ok(body) = parse_body(line, body_start, None, 0) {
                        let spaces = body_start - i;
                        let after_column = cpu.is_some() || task.is_some() || abstime.is_some();
                        let depth =
                            if after_column { spaces.saturating_sub(1) / 2 } else { spaces / 2 };
                        return Ok(Line::Graph {
                            abstime,
                            cpu,
                            task,
                            body: with_depth(body, depth_u32(depth)),
                        });
                    }
                    let off = i + (line[i..bar].len() - line[i..bar].trim_ascii_start().len());
                    return err(off, "a duration like \"0.080 us\" before `|`");
                }
            }
        };
        // Body: `|` + 2 spaces + 2 per depth level.
        let body_start = skip_spaces(b, bar + 1);
        let spaces = body_start - (bar + 1);
        let depth = depth_u32(spaces.saturating_sub(2) / 2);
        let body = parse_body(line, body_start, duration, depth)?;
        return Ok(Line::Graph { abstime, cpu, task, body });
    }
    err(i, "at most proc, latency-flags and duration columns before the function")
}

fn depth_u32(d: usize) -> u32 {
    u32::try_from(d).unwrap_or(u32::MAX)
}

fn with_depth(body: Body<'_>, d: u32) -> Body<'_> {
    match body {
        Body::Entry { func, .. } => Body::Entry { func, depth: d },
        Body::Exit { func, duration, .. } => Body::Exit { func, duration, depth: d },
        Body::Leaf { func, duration, .. } => Body::Leaf { func, duration, depth: d },
        other => other,
    }
}

/// The function part: `f() {`, `f();`, `}`, `} /* f */`, `/* comment */`.
#[inline]
fn parse_body(line: &str, start: usize, duration: Option<Nanos>, depth: u32) -> Res<Body<'_>> {
    let s = line[start..].trim_ascii_end();
    if s.is_empty() {
        return err(start, "a function call, `}` or a `/* comment */`");
    }
    let b = s.as_bytes();
    if b[0] == b'}' {
        let rest = s[1..].trim_ascii_start();
        let func = if let Some(c) = rest.strip_prefix("/*") {
            let inner = c.strip_suffix("*/").unwrap_or(c).trim_ascii();
            tail_func(inner)
        } else if rest.is_empty() {
            None
        } else if rest.starts_with('(') {
            // trace-cmd's ` (ret=0x0)` / ` (N)` suffixes.
            None
        } else {
            return err(start + 1, "nothing or a `/* f */` comment after `}`");
        };
        return Ok(Body::Exit { func, duration, depth });
    }
    if let Some(inner) = s.strip_prefix("/*") {
        let (inner, open) = match inner.strip_suffix("*/") {
            Some(x) => (x, false),
            None => (inner, true),
        };
        let inner = inner.trim_ascii();
        let (name, text) = split_event_text(inner);
        return Ok(Body::Comment { name, text, open });
    }
    // Strip a trailing comment (retval / retaddr): find the last `/*` that closes at the end.
    let mut code = s;
    if s.ends_with("*/")
        && let Some(k) = s.rfind("/*")
    {
        code = s[..k].trim_ascii_end();
    }
    let (is_entry, call) = if let Some(c) = code.strip_suffix('{') {
        (true, c.trim_ascii_end())
    } else if let Some(c) = code.strip_suffix(';') {
        (false, c)
    } else {
        return err(start + code.len(), "`{` or `;` at the end of a function call");
    };
    let func = parse_call(call).ok_or(LineError {
        offset: start,
        expected: "a call like `name()` or `name [module]()`",
    })?;
    Ok(if is_entry { Body::Entry { func, depth } } else { Body::Leaf { func, duration, depth } })
}

/// `name()`, `name [mod]()`, `name(a=1, b=0x2)`. Always inlined, like the other helpers
/// of the common line: a result returned through memory stalls the caller reading it back.
#[inline(always)]
fn parse_call(call: &str) -> Option<Func<'_>> {
    let call = call.strip_suffix(')')?;
    let b = call.as_bytes();
    // The argument list can contain parentheses; the name cannot contain `(` or spaces. One
    // scan finds the name's end and, usually, the space before the module.
    let p = find_space_or_paren(b)?;
    if b[p] == b'(' {
        return func_name_at(call[..p].trim_ascii_end(), None);
    }
    let open = p + b[p..].iter().position(|&c| c == b'(')?;
    let head = call[..open].trim_ascii_end();
    // `p` is the first space of `head`, unless the spaces were all trailing.
    func_name_at(head, Some(p).filter(|&p| p < head.len()))
}

/// `name` or `name [module]`.
#[inline(always)]
fn parse_func_name(head: &str) -> Option<Func<'_>> {
    func_name_at(head, find_byte(head.as_bytes(), b' '))
}

/// [`parse_func_name`] with the position of the first space of `head` known.
#[inline(always)]
fn func_name_at(head: &str, space: Option<usize>) -> Option<Func<'_>> {
    if head.is_empty() {
        return None;
    }
    match space {
        None => Some(Func::new(head, None)),
        Some(sp) => {
            let name = &head[..sp];
            let m = head[sp..].trim_ascii();
            let module = m.strip_prefix('[')?.strip_suffix(']')?;
            if module.is_empty() || module.as_bytes().contains(&b' ') {
                return None;
            }
            Some(Func::new(name, Some(module)))
        }
    }
}

/// The first space or `(` in `b` ([`exitscope_model::bytes::find_either`]).
#[inline(always)]
fn find_space_or_paren(b: &[u8]) -> Option<usize> {
    exitscope_model::bytes::find_either(b, b' ', b'(')
}

/// The function named in an exit comment: `f`, `f [mod]`, `f = 0x1`, `f ret=0x1`.
fn tail_func(inner: &str) -> Option<Func<'_>> {
    let mut end = inner.len();
    for pat in [" = ", " ret="] {
        if let Some(k) = inner.find(pat) {
            end = end.min(k);
        }
    }
    let mut head = inner[..end].trim_ascii();
    // A bare `=` at the end (`f =`), or a retval without name, is not a name.
    head = head.strip_suffix(" =").unwrap_or(head);
    // `} /* putname() */`: the name written as a call (Documentation/trace/ftrace.rst
    // prints tails this way, and so do captures edited after it).
    if head.ends_with(')')
        && let Some(open) = head.find('(')
    {
        head = head[..open].trim_ascii_end();
    }
    if head.starts_with("<-") || head.starts_with("ret=") || head.starts_with('=') {
        return None;
    }
    parse_func_name(head).or_else(|| {
        // Module suffix missing its bracket, or extra words: take the first token.
        head.split_whitespace().next().map(|n| Func::new(n, None))
    })
}

/// `name: args` if the comment starts with an identifier and `: `, else printk text.
fn split_event_text(inner: &str) -> (&str, &str) {
    if let Some(k) = inner.find(':') {
        let name = &inner[..k];
        let is_ident =
            !name.is_empty() && name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_');
        let rest = &inner[k + 1..];
        if is_ident && (rest.is_empty() || rest.starts_with(' ')) {
            return (name, rest.trim_ascii_start());
        }
    }
    ("", inner)
}

fn irq_marker(seg: &str) -> Option<bool> {
    if seg.starts_with("==========>") {
        Some(true)
    } else if seg.starts_with("<==========") {
        Some(false)
    } else {
        None
    }
}

/// `[mark] NUMBER unit`, with mark one of ` + ! # * @ $` (already trimmed of spaces).
/// Hand-rolled: this runs on most lines of a trace.
#[inline]
fn parse_duration_column(seg: &str) -> Option<Nanos> {
    let b = seg.as_bytes();
    match duration_at(b, 0)? {
        (d, end) if end == b.len() => Some(d),
        _ => None,
    }
}

/// [`parse_duration_column`] of the bytes from `start`: the duration and the offset after
/// its unit, which must be followed by the end, a space or a `|`.
#[inline(always)]
fn duration_at(b: &[u8], start: usize) -> Option<(Nanos, usize)> {
    let mut i = start;
    if matches!(b.get(i), Some(b'+' | b'!' | b'#' | b'*' | b'@' | b'$')) {
        i += 1;
        while b.get(i) == Some(&b' ') {
            i += 1;
        }
    }
    let num_start = i;
    let mut int = 0u64;
    while let Some(&c) = b.get(i).filter(|c| c.is_ascii_digit()) {
        int = int.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
        i += 1;
    }
    if i == num_start {
        return None;
    }
    let mut frac = 0u64;
    let mut frac_digits = 0u32;
    if b.get(i) == Some(&b'.') {
        i += 1;
        while let Some(&c) = b.get(i).filter(|c| c.is_ascii_digit()) {
            if frac_digits < 9 {
                frac = frac * 10 + u64::from(c - b'0');
                frac_digits += 1;
            }
            i += 1;
        }
    }
    if b.get(i) != Some(&b' ') {
        return None;
    }
    while b.get(i) == Some(&b' ') {
        i += 1;
    }
    let (scale_digits, unit_len): (u32, usize) = match b.get(i..i + 2) {
        Some(b"us") => (3, 2),
        Some(b"ns") => (0, 2),
        Some(b"ms") => (6, 2),
        _ if b.get(i) == Some(&b's') => (9, 1),
        _ => return None,
    };
    let end = i + unit_len;
    if !matches!(b.get(end), None | Some(b' ' | b'|')) {
        return None;
    }
    let whole = int.checked_mul(10u64.pow(scale_digits))?;
    // Fraction digits beyond the unit's nanosecond precision are truncated, like the kernel.
    let frac_ns = if frac_digits <= scale_digits {
        frac * 10u64.pow(scale_digits - frac_digits)
    } else {
        frac / 10u64.pow(frac_digits - scale_digits)
    };
    Some((whole.checked_add(frac_ns)?, end))
}

/// Decimal `num` in `unit` to integer nanoseconds, exactly (no floats).
pub fn parse_duration(num: &str, unit: &str) -> Option<Nanos> {
    let scale: u64 = match unit {
        "ns" => 1,
        "us" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        _ => return None,
    };
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if int.is_empty() || !int.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut v = int.parse::<u64>().ok()?.checked_mul(scale)?;
    let mut place = scale;
    for c in frac.bytes() {
        place /= 10;
        if place == 0 {
            // Below a nanosecond: ignore (truncate, as the kernel does).
            break;
        }
        v = v.checked_add(u64::from(c - b'0') * place)?;
    }
    Some(v)
}

fn looks_like_duration_column(line: &str, start: usize) -> bool {
    let b = line.as_bytes();
    match memchr::memchr(b'|', &b[start..]) {
        Some(k) => {
            let seg = line[start..start + k].trim_ascii();
            seg.is_empty() || parse_duration_column(seg).is_some() || irq_marker(seg).is_some()
        }
        None => false,
    }
}

/// `comm-pid` as in the proc column and banners; the pid is after the **last** `-`.
pub fn split_comm_pid(s: &str) -> Option<Task<'_>> {
    let k = memchr::memrchr(b'-', s.as_bytes())?;
    let pid = u32::try_from(parse_u64(&s.as_bytes()[k + 1..])?).ok()?;
    Some(Task::new(s.get(..k)?, pid))
}

/// `str::parse::<u64>` of bytes, by hand (it runs several times per event line): an
/// optional `+`, then at least one digit, no overflow.
#[inline]
fn parse_u64(b: &[u8]) -> Option<u64> {
    let d = match b {
        [b'+', rest @ ..] if !rest.is_empty() => rest,
        _ => b,
    };
    if d.is_empty() {
        return None;
    }
    let mut v = 0u64;
    for &c in d {
        let x = c.wrapping_sub(b'0');
        if x > 9 {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(x))?;
    }
    Some(v)
}

fn is_proc_column(seg: &str) -> bool {
    // Durations end in a unit letter; a proc column ends in the pid's digits.
    seg.as_bytes().last().is_some_and(u8::is_ascii_digit)
        && !seg.contains(' ')
        && split_comm_pid(seg).is_some()
}

/// Latency flags like `...1.`, `d.h1.`, `dNs2.`: 4–7 flag characters and no digits-only run.
fn is_latency_flags(seg: &str) -> bool {
    (4..=7).contains(&seg.len())
        && !seg.ends_with('s')
        && seg.bytes().all(|c| c == b'.' || c.is_ascii_alphanumeric())
        && seg.bytes().any(|c| c == b'.' || c.is_ascii_alphabetic())
        && parse_duration_column(seg).is_none()
}

/// ` prev => next` (banners), tolerating the centring spaces.
fn parse_banner(rest: &str) -> Option<(Task<'_>, Task<'_>)> {
    let (a, b) = rest.split_once("=>")?;
    Some((split_comm_pid(a.trim_ascii())?, split_comm_pid(b.trim_ascii())?))
}

fn parse_lost(line: &str, i: usize) -> Res<Line<'_>> {
    let s = &line[i + 4..];
    let d_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let cpu = s[..d_end]
        .parse::<u32>()
        .map_err(|_| LineError { offset: i + 4, expected: "a CPU number after `CPU:`" })?;
    let rest = s[d_end..].trim_ascii();
    let inner = rest
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .ok_or(LineError { offset: i + 4 + d_end, expected: "`[LOST n EVENTS]`" })?;
    let count = if let Some(x) = inner.strip_prefix("LOST ") {
        // `LOST 12 EVENTS` or `LOST EVENTS`
        x.strip_suffix(" EVENTS").and_then(|n| n.trim_ascii().parse::<u64>().ok())
    } else if let Some(x) = inner.strip_suffix(" EVENTS DROPPED") {
        x.trim_ascii().parse::<u64>().ok()
    } else if inner == "EVENTS DROPPED" {
        None
    } else {
        return err(i + 4 + d_end, "`[LOST n EVENTS]`");
    };
    Ok(Line::Lost { cpu, count })
}

/// `name: ` at `i` (an instance buffer's name as `trace-cmd report` prints it): the offset
/// after it, when the token ends in `:` and is not a timestamp.
fn instance_prefix(b: &[u8], i: usize) -> Option<usize> {
    // (The first token is short: a word-at-a-time scan beats memchr's set-up.)
    let end = find_byte(&b[i..], b' ').map(|k| i + k)?;
    let tok = &b[i..end];
    let name = tok.strip_suffix(b":")?;
    if name.is_empty() || name.iter().all(|c| c.is_ascii_digit() || *c == b'.') {
        return None;
    }
    Some(skip_ws(b, end))
}

/// The event timestamp of a line: `(start of the token, offset after its `:`, ns)`.
/// Accepts `secs.fraction:`, a raw counter `N:`, and latency format's `Nus:` / `Nus :` /
/// `Nus!:` (µs since the buffer started, then the delay mark). The token must be followed by
/// a space or the end of the line, and preceded by a space or the start.
#[inline]
fn find_timestamp(b: &[u8], start: usize) -> Option<(usize, usize, Nanos)> {
    for k in memchr::memchr_iter(b':', &b[start..]).map(|k| start + k) {
        if !matches!(b.get(k + 1), None | Some(b' ' | b'\t')) {
            continue;
        }
        let mut t_end = k;
        // Latency format with a blank mark: `123us :`.
        if k > start && b[k - 1] == b' ' {
            t_end = k - 1;
            if !b[..t_end].ends_with(b"us") {
                continue;
            }
        }
        let mut t0 = t_end;
        while t0 > start && !matches!(b[t0 - 1], b' ' | b'\t') {
            t0 -= 1;
        }
        let tok = &b[t0..t_end];
        if tok.is_empty() {
            continue;
        }
        // (The token lies between ASCII bytes of a `str`: it is UTF-8.)
        if let Some(ts) = parse_timestamp_bytes(tok) {
            return Some((t0, k + 1, ts));
        }
        // Latency format: `Nus` plus an optional mark character.
        let digits = tok.iter().take_while(|c| c.is_ascii_digit()).count();
        let tail = &tok[digits..];
        if digits > 0 && (tail == b"us" || (tail.len() == 3 && tail.starts_with(b"us"))) {
            let us = std::str::from_utf8(&tok[..digits]).ok()?.parse::<u64>().ok()?;
            return Some((t0, k + 1, us.checked_mul(1000)?));
        }
    }
    None
}

/// The columns before an event's timestamp, every one optional: `[inst: ] [comm-pid]
/// [(tgid)] [[cpu]] [flags]`, or latency format's `comm-pid cpuFLAGS`.
fn parse_context(ctx: &str) -> (Option<Task<'_>>, Option<u32>) {
    let mut s = ctx.trim_ascii();
    if let Some(after) = instance_prefix(s.as_bytes(), 0) {
        s = &s[after..];
    }
    let b = s.as_bytes();
    // ` [ddd]`: the CPU field. The comm may contain spaces, `-` and even `[`.
    let mut search = 0;
    while let Some(k) = find_byte(&b[search..], b'[').map(|k| search + k) {
        let d_end = scan_digits(b, k + 1);
        if d_end > k + 1 && b.get(d_end) == Some(&b']') && (k == 0 || b[k - 1] == b' ') {
            let cpu = parse_u64(&b[k + 1..d_end]).and_then(|c| u32::try_from(c).ok());
            return (context_task(&s[..k]), cpu);
        }
        search = k + 1;
    }
    // No brackets: trailing flags (`d..2.`), or latency format's CPU glued to its flags
    // (`1d..2.`), then the task.
    let mut head = s;
    let mut cpu = None;
    let k = head.rfind(' ').map_or(0, |k| k + 1);
    let last = &head[k..];
    let digits = last.bytes().take_while(u8::is_ascii_digit).count();
    // Flags never start with a digit (the first is the irqs-off column).
    if digits > 0 && digits < last.len() && is_latency_flags(&last[digits..]) {
        cpu = last[..digits].parse::<u32>().ok();
        head = head[..k].trim_ascii_end();
    } else if digits == 0 && is_latency_flags(last) {
        head = head[..k].trim_ascii_end();
    }
    (context_task(head), cpu)
}

/// `comm-pid` with an optional `(tgid)` after it.
fn context_task(head: &str) -> Option<Task<'_>> {
    let mut head = head.trim_ascii();
    // record-tgid: `(  123)`, or `(-------)` when the kernel had no tgid for the pid.
    let mut tgid = None;
    if head.ends_with(')')
        && let Some(p) = head.rfind('(')
    {
        tgid = head[p + 1..head.len() - 1].trim_ascii().parse::<u32>().ok();
        head = head[..p].trim_ascii_end();
    }
    split_comm_pid(head.trim_ascii_start()).map(|t| Task { tgid, ..t })
}

/// Event line: `[comm-pid] [(tgid)] [[cpu]] [flags] timestamp: name: text`, with any of the
/// columns before the timestamp trimmed away (people cut them when pasting), the function
/// tracer's `timestamp: func <-parent`, and latency format (`ftrace_dump`).
fn try_event_line(line: &str, start: usize) -> Res<Option<Line<'_>>> {
    let b = line.as_bytes();
    let Some((ts_start, ts_end, ts)) = find_timestamp(b, start) else {
        // An event line's CPU field with no timestamp after it.
        if let Some(k) = memchr::memmem::find(&b[start..], b"] ").map(|k| start + k)
            && b[start..k].contains(&b'[')
            && b[start..k].contains(&b'-')
        {
            return err(skip_ws(b, k + 1), "a timestamp like `140.314684:` after the CPU field");
        }
        return Ok(None);
    };
    if memchr::memchr(b'|', &b[start..ts_start]).is_some() {
        // A graph line's columns (its body may hold a comment with `N: ` in it).
        return Ok(None);
    }
    let (task, cpu) = parse_context(&line[start..ts_start]);
    let timestamp = Some(ts);
    let i = skip_ws(b, ts_end);
    let tok_end = find_byte(&b[i..], b' ').map_or(b.len(), |k| i + k);
    let (name, text_start) = match b[i..tok_end].strip_suffix(b":") {
        Some(n) if !n.is_empty() => (&line[i..tok_end - 1], tok_end),
        _ => {
            // The function tracer: `func <-parent` (or just `func` with noprint-parent).
            let rest = line[i..].trim_ascii_end();
            let (func, parent) = rest.split_once(" <-").map_or((rest, None), |(f, p)| (f, Some(p)));
            // A bare name after a bare timestamp is too weak a sign of a trace line.
            let context = parent.is_some() || task.is_some() || cpu.is_some();
            if !context || parse_func_name(func.trim_ascii()).is_none() {
                return err(i, "an event name followed by `:`");
            }
            return Ok(Some(Line::Event { task, cpu, timestamp, name: "function", text: rest }));
        }
    };
    let text = line[text_start..].trim_ascii_start();
    if name == "funcgraph_entry" || name == "funcgraph_exit" {
        // trace-cmd report: duration column and graph body follow.
        let tb = text_start + (line[text_start..].len() - text.len());
        let (duration, body_start, depth) = match memchr::memchr(b'|', &b[tb..]).map(|k| tb + k) {
            Some(bar) => {
                let seg = line[tb..bar].trim_ascii();
                let d = if seg.is_empty() {
                    None
                } else {
                    Some(parse_duration_column(seg).ok_or(LineError {
                        offset: tb,
                        expected: "a duration like \"0.080 us\" before `|`",
                    })?)
                };
                let bs = skip_spaces(b, bar + 1);
                (d, bs, depth_u32((bs - bar - 1).saturating_sub(2) / 2))
            }
            None => (None, tb, 0),
        };
        let body = parse_body(line, body_start, duration, depth)?;
        return Ok(Some(Line::TraceCmdGraph { task, cpu, timestamp, body }));
    }
    Ok(Some(Line::Event { task, cpu, timestamp, name, text: text.trim_ascii_end() }))
}

/// `secs.fraction` (6 decimals from the kernel, 9 with trace-cmd `--ts-ns`) or a raw counter.
fn parse_timestamp(ts: &str) -> Option<Nanos> {
    parse_timestamp_bytes(ts.as_bytes())
}

/// [`parse_timestamp`] of bytes.
#[inline]
fn parse_timestamp_bytes(b: &[u8]) -> Option<Nanos> {
    match b.iter().position(|&c| c == b'.') {
        None => parse_u64(b),
        Some(dot) => {
            let secs = parse_u64(&b[..dot])?;
            let mut ns = 0u64;
            let mut place = 100_000_000u64;
            for &c in b[dot + 1..].iter().take(9) {
                if !c.is_ascii_digit() {
                    return None;
                }
                ns += u64::from(c - b'0') * place;
                place /= 10;
            }
            secs.checked_mul(1_000_000_000)?.checked_add(ns)
        }
    }
}

fn parse_secs_micros(s: &str) -> Option<Nanos> {
    parse_timestamp(s)
}

fn strip_capture_prefix(b: &[u8], mut i: usize) -> usize {
    loop {
        // Email quoting.
        if b.get(i) == Some(&b'>') && matches!(b.get(i + 1), Some(b' ') | None) {
            i = skip_ws(b, i + 1);
            continue;
        }
        // dmesg `[  210.222389] `.
        if b.get(i) == Some(&b'[') {
            let j = skip_spaces(b, i + 1);
            let d = scan_digits(b, j);
            if d > j && b.get(d) == Some(&b'.') {
                let f = scan_digits(b, d + 1);
                if f > d + 1 && b.get(f) == Some(&b']') {
                    i = skip_ws(b, f + 1);
                    continue;
                }
            }
        }
        return i;
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    i
}

/// The first byte at or after `i` that is not a space (`b.len()` if none). Eight bytes at a
/// time: function_graph lines are mostly indentation.
#[inline]
fn skip_spaces(b: &[u8], mut i: usize) -> usize {
    const SPACES: u64 = 0x2020_2020_2020_2020;
    while let Some(w) = b.get(i..i + 8) {
        let mut x = [0u8; 8];
        x.copy_from_slice(w);
        let diff = u64::from_le_bytes(x) ^ SPACES;
        if diff != 0 {
            return i + (diff.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while b.get(i) == Some(&b' ') {
        i += 1;
    }
    i
}

fn scan_digits(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_scans_find_what_byte_loops_find() {
        let text = b"    f [kvm]  (x)\x80 \xff   (  0123456789abcdef (";
        for from in 0..=text.len() {
            let b = &text[..];
            let want = from + b[from..].iter().take_while(|&&c| c == b' ').count();
            assert_eq!(skip_spaces(b, from), want, "from {from}");
            for c in [b' ', b'(', b'f', 0x80, 0xff, 0x7f] {
                let t = &b[from..];
                assert_eq!(find_byte(t, c), t.iter().position(|&x| x == c), "{from} {c}");
            }
        }
        assert_eq!(skip_spaces(b"        ", 0), 8);
        assert_eq!(skip_spaces(b"", 0), 0);
        assert_eq!(skip_spaces(b"ab", 5), 5);
    }

    #[test]
    fn hand_rolled_numbers_read_what_std_reads() {
        let reference_ts = |ts: &str| -> Option<Nanos> {
            match ts.split_once('.') {
                None => ts.parse::<u64>().ok(),
                Some((s, f)) => {
                    let secs = s.parse::<u64>().ok()?;
                    let mut ns = 0u64;
                    let mut place = 100_000_000u64;
                    for c in f.bytes().take(9) {
                        if !c.is_ascii_digit() {
                            return None;
                        }
                        ns += u64::from(c - b'0') * place;
                        place /= 10;
                    }
                    secs.checked_mul(1_000_000_000)?.checked_add(ns)
                }
            }
        };
        let reference_task = |s: &str| -> Option<(String, u32)> {
            let k = s.rfind('-')?;
            let pid = s[k + 1..].parse::<u32>().ok()?;
            Some((s[..k].to_owned(), pid))
        };
        let samples = [
            "",
            "+",
            "-",
            "+1",
            "-1",
            "++1",
            "1.5",
            "140.314684",
            "1.",
            ".5",
            "+1.5",
            "1.+5",
            "1.2.3",
            "18446744073709551615",
            "18446744073709551616",
            "18446744073.709551615",
            "18446744074.0",
            "4294967295",
            "4294967296",
            "007",
            "1.1234567890x",
            "1.12345678x",
            "1:",
            "\u{e9}1",
            "a-1",
            "a-b-2",
            "-5",
            "a-",
            "a-+7",
            "a--7",
            "CPU 1/KVM-2001",
            "<...>-4294967296",
            "x-4294967295",
            "1 2",
        ];
        for t in samples {
            assert_eq!(parse_timestamp(t), reference_ts(t), "{t:?}");
            assert_eq!(parse_u64(t.as_bytes()), t.parse::<u64>().ok(), "{t:?}");
            assert_eq!(
                split_comm_pid(t).map(|k| (k.comm.to_owned(), k.pid)),
                reference_task(t),
                "{t:?}"
            );
        }
    }
}

#[cfg(test)]
mod call_tests {
    use super::*;

    /// The call grammar written plainly: the name ends at the first `(`; a space in it
    /// starts the module.
    fn plain_call(call: &str) -> Option<Func<'_>> {
        let call = call.strip_suffix(')')?;
        let head = call[..call.find('(')?].trim_ascii_end();
        if head.is_empty() {
            return None;
        }
        match head.find(' ') {
            None => Some(Func::new(head, None)),
            Some(sp) => {
                let m = head[sp..].trim_ascii();
                let module = m.strip_prefix('[')?.strip_suffix(']')?;
                (!module.is_empty() && !module.contains(' '))
                    .then(|| Func::new(&head[..sp], Some(module)))
            }
        }
    }

    #[test]
    fn one_scan_reads_calls_as_the_plain_grammar() {
        let seeds = [
            "kvm_load_guest_xsave_state [kvm]()",
            "f()",
            "a_long_function_name.part.119 [kvm_amd](a=1, b=(2))",
            "g [m] ()",
            "h\t[m]()",
            "x ()",
            "y(z [q])",
        ];
        let subst = [" ", "\t", "(", ")", "[", "]", "a", "", "  "];
        let mut n = 0;
        for seed in seeds {
            for at in 0..=seed.len() {
                for s in subst {
                    for cut in [at, (at + 1).min(seed.len())] {
                        let l = format!("{}{s}{}", &seed[..at], &seed[cut..]);
                        assert_eq!(parse_call(&l), plain_call(&l), "{l:?}");
                        n += 1;
                    }
                }
            }
        }
        assert!(n > 1000);
    }

    #[test]
    fn space_or_paren_scan_finds_what_a_byte_loop_finds() {
        let text = b"ab(cdefgh ijklmnop(q   \x80(\xff rstuvwxyz0123456789 (";
        for from in 0..=text.len() {
            for to in from..=text.len() {
                let t = &text[from..to];
                let want = t.iter().position(|&c| c == b' ' || c == b'(');
                assert_eq!(find_space_or_paren(t), want, "{from}..{to}");
            }
        }
    }
}
