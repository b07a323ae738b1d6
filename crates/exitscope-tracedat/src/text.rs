//! Kernel-style ftrace text from a trace.dat (`exitscope convert`).
//!
//! Files with function-graph records are written in the kernel's function_graph layout
//! with the `funcgraph-abstime`, `funcgraph-cpu`, `funcgraph-proc` and `funcgraph-tail`
//! columns on (other events become `/* name: text */` comments, task switches get the
//! kernel's banners, an entry immediately followed on its CPU by its return is merged
//! into a leaf `f();`). Other files are written as the `trace` file's event lines
//! (`comm-pid [cpu] flags secs.usecs: name: text`), function-graph records included
//! (rendered, like every event, from their print format).
//!
//! Timestamps are printed the way the kernel prints them: event lines round to the nearest
//! microsecond (`trace_print_time` uses `ns2usecs`, which adds 500 ns before dividing),
//! while function_graph's abstime column truncates (`print_graph_abs_time` divides).

use std::fmt::Write as _;
use std::io::{self, Write};

use crate::{Error, Graph, Merged, TraceDat};

/// Output layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// function_graph if the trace has function-graph records, else events.
    Auto,
    /// Event lines.
    Events,
    /// function_graph lines.
    Graph,
}

/// Error of [`write_text`].
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// Reading the trace failed.
    #[error(transparent)]
    Read(#[from] Error),
    /// Writing the output failed.
    #[error("writing the text: {0}")]
    Io(#[from] io::Error),
}

/// Statistics of a conversion.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TextStats {
    /// Records read.
    pub records: u64,
    /// Lines written.
    pub lines: u64,
    /// Events whose records are not printed exactly as the kernel would, once per event:
    /// `event kvm:kvm_x: <what and why>` (see [`crate::EventFormat::print_problems`]).
    pub warnings: Vec<String>,
}

/// `(secs, usecs)` of a ring-buffer timestamp as `trace_print_time` prints it:
/// `ns2usecs` rounds to the nearest microsecond.
fn event_time(ns: u64) -> (u64, u64) {
    let us = ns / 1000 + u64::from(ns % 1000 >= 500);
    (us / 1_000_000, us % 1_000_000)
}

/// `(secs, usecs)` of function_graph's abstime column: `print_graph_abs_time` truncates.
fn graph_time(ns: u64) -> (u64, u64) {
    (ns / 1_000_000_000, (ns % 1_000_000_000) / 1000)
}

fn lat_flags(flags: u8, pc: u8, out: &mut String) {
    let irqs_off = flags & 0x01 != 0;
    let bh_off = flags & 0x80 != 0;
    out.push(match (irqs_off, bh_off) {
        (true, true) => 'D',
        (true, false) => 'd',
        (false, true) => 'b',
        _ => '.',
    });
    let nr = flags & 0x04 != 0;
    let pr = flags & 0x20 != 0;
    let lazy = flags & 0x02 != 0;
    out.push(match (nr, pr, lazy) {
        (true, true, _) => 'N',
        (true, false, true) => 'B',
        (true, false, false) => 'n',
        (false, true, _) => 'p',
        (false, false, true) => 'L',
        _ => '.',
    });
    let nmi = flags & 0x40 != 0;
    let hard = flags & 0x08 != 0;
    let soft = flags & 0x10 != 0;
    out.push(match (nmi, hard, soft) {
        (true, true, _) => 'Z',
        (true, false, _) => 'z',
        (false, true, true) => 'H',
        (false, true, false) => 'h',
        (false, false, true) => 's',
        _ => '.',
    });
    for n in [pc & 0x0f, pc >> 4] {
        out.push(if n == 0 { '.' } else { char::from_digit(u32::from(n), 16).unwrap_or('?') });
    }
}

fn pad_to(out: &mut String, len: usize, width: usize) {
    out.extend(std::iter::repeat_n(' ', width.saturating_sub(len)));
}

fn push_int(out: &mut String, v: i64) {
    if v < 0 {
        out.push('-');
    }
    crate::print::push_radix(out, v.unsigned_abs(), 10);
}

/// `%5lu.%06lu`.
fn push_time(out: &mut String, secs: u64, usecs: u64) {
    let at = out.len();
    crate::print::push_radix(out, secs, 10);
    let n = out.len() - at;
    if n < 5 {
        out.insert_str(at, "     ".get(..5 - n).unwrap_or(""));
    }
    out.push('.');
    let at = out.len();
    crate::print::push_radix(out, usecs, 10);
    let n = out.len() - at;
    if n < 6 {
        out.insert_str(at, "000000".get(..6 - n).unwrap_or(""));
    }
}

/// Indentation of a call depth (2 columns per level), capped so that a corrupt depth
/// cannot produce gigabytes of spaces.
fn indent(depth: u32) -> usize {
    depth.min(1024) as usize * 2
}

/// `comm-pid` truncated to 7 chars of comm and centred in 14 columns.
fn proc_col(comm: &str, pid: i32, out: &mut String) {
    let cut = comm.char_indices().nth(7).map_or(comm.len(), |(i, _)| i);
    let comm = comm.get(..cut).unwrap_or(comm);
    let mut digits = usize::from(pid < 0) + 1;
    let mut p = pid.unsigned_abs() / 10;
    while p > 0 {
        digits += 1;
        p /= 10;
    }
    let len = comm.chars().count() + 1 + digits;
    let spaces = 14usize.saturating_sub(len);
    out.extend(std::iter::repeat_n(' ', spaces / 2));
    out.push_str(comm);
    out.push('-');
    push_int(out, i64::from(pid));
    out.extend(std::iter::repeat_n(' ', spaces - spaces / 2));
}

fn duration_col(ns: u64, out: &mut String) {
    let mark = match ns {
        n if n > 1_000_000_000 => '$',
        n if n > 100_000_000 => '@',
        n if n > 10_000_000 => '*',
        n if n > 1_000_000 => '#',
        n if n > 100_000 => '!',
        n if n > 10_000 => '+',
        _ => ' ',
    };
    out.push(mark);
    out.push(' ');
    let start = out.len();
    let us = ns / 1000;
    let rem = ns % 1000;
    crate::print::push_radix(out, us, 10);
    let digits = out.len() - start;
    if digits < 7 {
        out.push('.');
        let rem = [rem / 100, rem / 10 % 10, rem % 10];
        for d in rem.iter().take((7 - digits).min(3)) {
            out.push(char::from(b'0' + *d as u8));
        }
    }
    let len = out.len() - start;
    out.push_str(" us ");
    out.extend(std::iter::repeat_n(' ', 8usize.saturating_sub(len)));
    out.push_str("|  ");
}

/// Writes the whole trace as kernel-style text.
///
/// # Errors
/// Reading errors of the trace and I/O errors of `w`.
pub fn write_text(
    t: &TraceDat<'_>,
    layout: Layout,
    w: &mut impl Write,
) -> Result<TextStats, TextError> {
    let graph = match layout {
        Layout::Graph => true,
        Layout::Events => false,
        Layout::Auto => t.has_graph_records(4096)?,
    };
    let ncpu = t.header.cpu_count.max(1);
    let cpu_w = (ncpu - 1).max(1).to_string().len();
    let mut stats = TextStats::default();
    let mut line = String::with_capacity(512);
    let mut text = String::with_capacity(256);
    if graph {
        writeln!(
            w,
            "# tracer: function_graph\n#\n#     TIME        CPU  TASK/PID         DURATION                  FUNCTION CALLS\n#      |          |     |    |           |   |                     |   |   |   |"
        )?;
    } else {
        writeln!(
            w,
            "# tracer: nop\n#\n#                                _-----=> irqs-off/BH-disabled\n#                               / _----=> need-resched\n#                              | / _---=> hardirq/softirq\n#                              || / _--=> preempt-depth\n#                              ||| / _-=> migrate-disable\n#                              |||| /     delay\n#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION\n#              | |         |   |||||     |         |"
        )?;
    }
    let nstreams = t.streams.len();
    let mut skip_exit = vec![false; nstreams];
    let mut last_pid: Vec<Option<i32>> = vec![None; ncpu as usize + 1];
    let mut depth: Vec<u32> = vec![0; ncpu as usize + 1];
    let mut warned = vec![false; t.header.formats.len()];
    let mut m = t.merge()?;
    while let Some(it) = m.next_event()? {
        stats.records += 1;
        line.clear();
        match it {
            Merged::Lost { cpu, count, .. } => {
                let _ = match count {
                    Some(n) => writeln!(line, "CPU:{cpu} [LOST {n} EVENTS]"),
                    None => writeln!(line, "CPU:{cpu} [LOST EVENTS]"),
                };
            }
            Merged::Event(ev) => {
                let Some(fmt) = t.format_of(ev.payload) else { continue };
                if let Some(w) = t.format_index(ev.payload).and_then(|i| warned.get_mut(i))
                    && !*w
                {
                    *w = true;
                    for p in fmt.print_problems() {
                        stats.warnings.push(format!("event {}:{}: {p}", fmt.system, fmt.name));
                    }
                }
                let pid = t.pid(ev.payload);
                let comm = t.header.cmdlines.comm(pid as u32).unwrap_or("<...>");
                if !graph {
                    let (secs, usecs) = event_time(ev.ts);
                    // "%16s-%-7d [%03d] "
                    pad_to(&mut line, comm.len(), 16);
                    line.push_str(comm);
                    line.push('-');
                    let at = line.len();
                    push_int(&mut line, i64::from(pid));
                    let n = line.len() - at;
                    line.extend(std::iter::repeat_n(' ', 7usize.saturating_sub(n)));
                    line.push_str(" [");
                    let at = line.len();
                    crate::print::push_radix(&mut line, u64::from(ev.cpu), 10);
                    let n = line.len() - at;
                    if n < 3 {
                        line.insert_str(at, "00".get(..3 - n).unwrap_or(""));
                    }
                    line.push_str("] ");
                    let (f, pc) = t.flags(ev.payload);
                    lat_flags(f, pc, &mut line);
                    line.push(' ');
                    push_time(&mut line, secs, usecs);
                    line.push_str(": ");
                    line.push_str(&fmt.name);
                    line.push_str(": ");
                    t.render(ev.payload, &mut line);
                    line.push('\n');
                } else {
                    let (secs, usecs) = graph_time(ev.ts);
                    let ci = (ev.cpu as usize).min(ncpu as usize);
                    // Task-switch banner.
                    if let Some(slot) = last_pid.get_mut(ci) {
                        if let Some(prev) = *slot
                            && prev != pid
                        {
                            let pcomm = t.header.cmdlines.comm(prev as u32).unwrap_or("<...>");
                            line.push(' ');
                            line.extend(std::iter::repeat_n('-', 42));
                            let _ = write!(line, "\n {:>cpu_w$}) ", ev.cpu);
                            proc_col(pcomm, prev, &mut line);
                            line.push_str(" => ");
                            proc_col(comm, pid, &mut line);
                            line.push_str("\n ");
                            line.extend(std::iter::repeat_n('-', 42));
                            line.push_str("\n\n");
                        }
                        *slot = Some(pid);
                    }
                    let g = t.graph(ev.payload);
                    if let (Some(Graph::Exit { .. }), Some(skip)) =
                        (g, skip_exit.get_mut(ev.stream))
                        && *skip
                    {
                        *skip = false;
                        continue;
                    }
                    push_time(&mut line, secs, usecs);
                    line.push_str(" |   ");
                    let at = line.len();
                    crate::print::push_radix(&mut line, u64::from(ev.cpu), 10);
                    let n = line.len() - at;
                    for _ in n..cpu_w {
                        line.insert(at, ' ');
                    }
                    line.push_str(") ");
                    proc_col(comm, pid, &mut line);
                    line.push_str(" | ");
                    let d = depth.get_mut(ci);
                    match g {
                        Some(Graph::Entry { func, depth: dep }) => {
                            // Leaf: the next record on this CPU is the matching return.
                            let leaf = match m.peek_stream(ev.stream) {
                                Some(Merged::Event(n)) => match t.graph(n.payload) {
                                    Some(Graph::Exit { func: f2, depth: d2, duration })
                                        if f2 == func && d2 == dep && t.pid(n.payload) == pid =>
                                    {
                                        duration
                                    }
                                    _ => None,
                                },
                                _ => None,
                            };
                            match leaf {
                                Some(dur) => {
                                    duration_col(dur, &mut line);
                                    line.extend(std::iter::repeat_n(' ', indent(dep)));
                                    t.write_func(func, &mut line);
                                    line.push_str("();\n");
                                    if let Some(s) = skip_exit.get_mut(ev.stream) {
                                        *s = true;
                                    }
                                    if let Some(d) = d {
                                        *d = dep.saturating_sub(1);
                                    }
                                }
                                None => {
                                    line.push_str("              |  ");
                                    line.extend(std::iter::repeat_n(' ', indent(dep)));
                                    t.write_func(func, &mut line);
                                    line.push_str("() {\n");
                                    if let Some(d) = d {
                                        *d = dep;
                                    }
                                }
                            }
                        }
                        Some(Graph::Exit { func, depth: dep, duration }) => {
                            match duration {
                                Some(dur) => duration_col(dur, &mut line),
                                None => line.push_str("              |  "),
                            }
                            line.extend(std::iter::repeat_n(' ', indent(dep)));
                            line.push_str("} /* ");
                            t.write_func(func, &mut line);
                            line.push_str(" */\n");
                            if let Some(d) = d {
                                *d = dep.saturating_sub(1);
                            }
                        }
                        None => {
                            line.push_str("              |  ");
                            let cur = d.map_or(0, |d| *d);
                            if cur > 0 {
                                line.extend(std::iter::repeat_n(
                                    ' ',
                                    indent(cur.saturating_add(1)),
                                ));
                            }
                            text.clear();
                            t.render(ev.payload, &mut text);
                            let _ = writeln!(
                                line,
                                "/* {}: {} */",
                                fmt.name,
                                text.trim_end_matches('\n')
                            );
                        }
                    }
                }
            }
        }
        stats.lines += line.matches('\n').count() as u64;
        w.write_all(line.as_bytes())?;
    }
    Ok(stats)
}
