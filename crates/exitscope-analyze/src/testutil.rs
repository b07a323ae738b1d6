//! Test helpers: function_graph text from a compact outline, and analysis of it.
//!
//! An outline has one call per line, nested by two spaces: `name [module] SELF_NS`, with `{`
//! at the end when children follow (closed by a line `}`); `# text` is an event comment
//! (`# kvm_exit: vcpu 0 reason CPUID rip 0x1`). Durations are computed as self + children,
//! the way ftrace's add up.

use exitscope_ftrace::parse_reader;

use crate::report::Report;
use crate::{Analysis, AnalysisOptions};
use exitscope_model::{InputSink, InputSummary};

enum Item {
    Call { label: String, self_ns: u64, kids: Vec<Item> },
    Event(String),
}

fn parse_items(lines: &mut std::iter::Peekable<std::slice::Iter<'_, &str>>) -> Vec<Item> {
    let mut out = Vec::new();
    while let Some(line) = lines.next() {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        if t == "}" {
            return out;
        }
        if let Some(ev) = t.strip_prefix("# ") {
            out.push(Item::Event(ev.to_string()));
            continue;
        }
        let open = t.ends_with('{');
        let body = t.trim_end_matches('{').trim();
        let (label, ns) = body.rsplit_once(' ').expect("outline line: name SELF_NS");
        let self_ns: u64 = ns.parse().expect("self time in ns");
        let kids = if open { parse_items(lines) } else { Vec::new() };
        out.push(Item::Call { label: label.to_string(), self_ns, kids });
    }
    out
}

fn dur(i: &Item) -> u64 {
    match i {
        Item::Call { self_ns, kids, .. } => self_ns + kids.iter().map(dur).sum::<u64>(),
        Item::Event(_) => 0,
    }
}

fn fmt_dur(ns: u64) -> String {
    let num = format!("{}.{:03}", ns / 1000, ns % 1000);
    let pad = 8usize.saturating_sub(num.len());
    let mark = if ns > 100_000 {
        "!"
    } else if ns > 10_000 {
        "+"
    } else {
        " "
    };
    format!("{mark} {num} us {}|", " ".repeat(pad))
}

fn emit(i: &Item, depth: usize, out: &mut String) {
    let ind = "  ".repeat(depth);
    let fill = format!("{}|", " ".repeat(14));
    match i {
        Item::Event(t) => out.push_str(&format!(" 0) {fill}  {ind}/* {t} */\n")),
        Item::Call { label, kids, .. } if kids.is_empty() => {
            out.push_str(&format!(" 0) {}  {ind}{label}();\n", fmt_dur(dur(i))));
        }
        Item::Call { label, kids, .. } => {
            out.push_str(&format!(" 0) {fill}  {ind}{label}() {{\n"));
            for k in kids {
                emit(k, depth + 1, out);
            }
            out.push_str(&format!(" 0) {}  {ind}}}\n", fmt_dur(dur(i))));
        }
    }
}

/// function_graph text for an outline.
pub fn graph(outline: &str) -> String {
    let lines: Vec<&str> = outline.lines().collect();
    let items = parse_items(&mut lines.iter().peekable());
    let mut out = String::new();
    for i in &items {
        emit(i, 0, &mut out);
    }
    out
}

/// Analyse ftrace text with the given options.
pub fn analyse_text(text: &str, opts: AnalysisOptions) -> Report {
    let mut a = Analysis::new(opts);
    a.begin_input("t", exitscope_model::InputFormat::FtraceText);
    let s = parse_reader("t", text.as_bytes(), &mut a).unwrap();
    a.end_input(&InputSummary { lines: s.lines, records: s.records, ..Default::default() });
    a.finish()
}

/// Options with the exit view on.
pub fn exits_opts() -> AnalysisOptions {
    AnalysisOptions::default()
}

/// A seed trace's text.
pub fn seed(name: &str) -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/seed/");
    std::fs::read_to_string(format!("{dir}{name}")).unwrap()
}
