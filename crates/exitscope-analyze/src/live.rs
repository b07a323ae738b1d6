//! Live exits for `exitscope top`: a stream of records cut into intervals, each analysed on
//! its own by a fresh [`Analysis`], so every interval's figures are the one per-reason
//! statistic of `report --json` ([`ExitsReport`]) over that interval alone.
//!
//! JSON Lines (one [`LiveInterval`] per line):
//!
//! ```text
//! {"interval": int,        // 1, 2, ...
//!  "start_s": float,       // when it began, seconds since the capture started
//!  "seconds": float,       // the wall time it covers (the last one may be shorter)
//!  "records": int,         // records parsed in it
//!  "lost_events": int,     // events the kernel reported lost in it
//!  "events": {name: int},  // event counts, as the report's "events"
//!  "exits": Exits}         // as the report's "exits" (see crate::report), with
//!                          // "rate_per_s" over "seconds"; "vcpus" with --per-vcpu
//! ```
//!
//! An exit whose `kvm_exit` and `kvm_entry` fall into two intervals is unpaired in both (it
//! counts in the first, without a handling time), and the first exit of a reason on a vCPU in
//! an interval has no inter-arrival gap: the price of intervals that stand alone.
//!
//! ```
//! use std::time::Duration;
//! use exitscope_analyze::AnalysisOptions;
//! use exitscope_analyze::live::LiveExits;
//! let mut live = LiveExits::new(AnalysisOptions::default(), "trace_pipe");
//! let first = live.cut(Duration::from_secs(1));
//! assert_eq!((first.interval, first.seconds), (1, 1.0));
//! assert_eq!(first.exits.exits, 0);
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use exitscope_model::{Diagnostic, Flow, InputFormat, InputSink, InputSummary, Record, RecordSink};

use crate::exits::{ExitsReport, ReasonStats};
use crate::report::{LostEvents, Report, SCHEMA_VERSION};
use crate::{Analysis, AnalysisOptions};

/// One interval of a live capture (one line of `exitscope top --json`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct LiveInterval {
    /// Its number, from 1.
    pub interval: u64,
    /// When it began, in seconds since the capture started.
    pub start_s: f64,
    /// The wall time it covers, in seconds.
    pub seconds: f64,
    /// Records parsed in it.
    pub records: u64,
    /// Events the kernel reported lost in it (`LOST` markers' counts).
    pub lost_events: u64,
    /// Count of every event by name.
    pub events: BTreeMap<String, u64>,
    /// Its exits: the report's exit view of this interval alone, rates over `seconds`.
    pub exits: ExitsReport,
}

/// Cuts a record stream into [`LiveInterval`]s: a [`RecordSink`] that hands records to the
/// current interval's analysis.
pub struct LiveExits {
    opts: AnalysisOptions,
    name: String,
    current: Analysis<'static>,
    records: u64,
    seq: u64,
    start: Duration,
}

impl LiveExits {
    /// Intervals analysed with `opts`; `name` names the stream in diagnostics.
    pub fn new(opts: AnalysisOptions, name: &str) -> Self {
        let current = Self::fresh(&opts, name);
        LiveExits {
            opts,
            name: name.to_owned(),
            current,
            records: 0,
            seq: 0,
            start: Duration::ZERO,
        }
    }

    fn fresh(opts: &AnalysisOptions, name: &str) -> Analysis<'static> {
        let mut a = Analysis::new(opts.clone());
        a.begin_input(name, InputFormat::FtraceText);
        a
    }

    /// End the current interval at `now` (time since the capture started) and start the next.
    pub fn cut(&mut self, now: Duration) -> LiveInterval {
        let next = Self::fresh(&self.opts, &self.name);
        let mut done = std::mem::replace(&mut self.current, next);
        let records = std::mem::take(&mut self.records);
        done.end_input(&InputSummary { records, ..Default::default() });
        let report = done.finish();
        self.seq += 1;
        let seconds = now.saturating_sub(self.start).as_secs_f64();
        let start_s = self.start.as_secs_f64();
        self.start = now;
        let mut exits = report
            .exits
            .unwrap_or_else(|| ExitsReport { source: "none".into(), ..Default::default() });
        let rate = |rows: &mut [ReasonStats]| {
            for r in rows {
                r.rate_per_s = (seconds > 0.0).then(|| r.count as f64 / seconds);
            }
        };
        rate(&mut exits.reasons);
        for v in &mut exits.vcpus {
            rate(&mut v.reasons);
        }
        LiveInterval {
            interval: self.seq,
            start_s,
            seconds,
            records,
            lost_events: report.lost_events.events,
            events: report.events,
            exits,
        }
    }
}

impl LiveInterval {
    /// The interval as a report of one input named `NAME#INTERVAL` (its exits, events and lost
    /// events; no call tree), for `exitscope merge`: intervals merge as reports do, so the
    /// intervals of a capture merge into the report of the whole capture, but for the pairs
    /// and inter-arrival gaps cut by the boundaries (see the module docs).
    pub fn into_report(self, name: &str) -> Report {
        let input = exitscope_model::InputSummary {
            name: format!("{name}#{}", self.interval),
            format: "top-interval".into(),
            records: self.records,
            ..Default::default()
        };
        let exits = (self.exits.source != "none" || self.exits.exits > 0).then_some(self.exits);
        Report {
            schema_version: SCHEMA_VERSION,
            inputs: vec![input],
            lost_events: LostEvents { events: self.lost_events, ..Default::default() },
            percentiles_exact: true,
            events: self.events,
            exits,
            ..Default::default()
        }
    }
}

impl RecordSink for LiveExits {
    fn record(&mut self, rec: &Record<'_>) -> Flow {
        self.records += 1;
        self.current.record(rec)
    }

    fn diagnostic(&mut self, d: Diagnostic) -> Flow {
        self.current.diagnostic(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRST: &str = "\
 vmm-7 [000] ..... 10.000100: kvm_pio: pio_read at 0x4d0 size 1 count 1 val 0x0
 vmm-7 [000] ..... 10.000200: kvm_pio: pio_read at 0x4d0 size 1 count 1 val 0x0
 vmm-8 [001] ..... 10.000250: kvm_cpuid: func 0 idx 0 rax 1 rbx 2 rcx 3 rdx 4, cpuid entry found
CPU:0 [LOST 5 EVENTS]
 vmm-7 [000] ..... 10.000400: kvm_pio: pio_read at 0x4d0 size 1 count 1 val 0x0
";
    const SECOND: &str = "\
 vmm-7 [000] ..... 11.000100: kvm_pio: pio_read at 0x4d0 size 1 count 1 val 0x0
";

    fn feed(live: &mut LiveExits, text: &str) {
        let mut parser = exitscope_ftrace::TextParser::new("trace_pipe");
        for (i, l) in text.lines().enumerate() {
            parser.line(l.as_bytes(), i as u64 + 1, live);
        }
    }

    #[test]
    fn each_interval_stands_alone_with_rates_over_its_wall_time() {
        let opts = AnalysisOptions { per_vcpu: true, ..Default::default() };
        let mut live = LiveExits::new(opts, "trace_pipe");
        feed(&mut live, FIRST);
        let a = live.cut(Duration::from_millis(500));
        assert_eq!((a.interval, a.start_s, a.seconds), (1, 0.0, 0.5));
        assert_eq!(a.lost_events, 5);
        assert_eq!(a.records, 5);
        assert_eq!(a.exits.exits, 4);
        let io = &a.exits.reasons[0];
        assert_eq!((io.reason.as_str(), io.count), ("IO", 3));
        assert_eq!(io.rate_per_s, Some(6.0));
        // The gap after the LOST marker is left out: 100 µs only.
        let gaps = io.inter_arrival.as_ref().unwrap();
        assert_eq!((gaps.count, gaps.p50_ns), (1, 100_000));
        let vcpus: Vec<(&str, u64)> =
            a.exits.vcpus.iter().map(|v| (v.vcpu.as_str(), v.exits)).collect();
        assert_eq!(vcpus, [("tid 7", 3), ("tid 8", 1)]);

        feed(&mut live, SECOND);
        let b = live.cut(Duration::from_millis(1500));
        assert_eq!((b.interval, b.start_s, b.seconds), (2, 0.5, 1.0));
        assert_eq!((b.exits.exits, b.lost_events), (1, 0));
        assert_eq!(b.exits.reasons[0].rate_per_s, Some(1.0));
        assert!(b.exits.reasons[0].inter_arrival.is_none(), "no gap across intervals");
        let c = live.cut(Duration::from_millis(1500));
        assert_eq!((c.exits.exits, c.exits.source.as_str()), (0, "none"));
        assert_eq!(c.exits.reasons[..], []);
    }

    /// The intervals of one capture, each through its JSON line as `top --json` writes it,
    /// merged: the report of the whole capture (counts exactly, percentiles within the stated
    /// error), when no exit straddles a boundary.
    #[test]
    fn intervals_merged_are_the_report_of_the_whole_capture() {
        use exitscope_testkit::synth::{HostSpec, kvm_event_trace};
        // Past the exact limit (4096 values) for CPUID: bucketed percentiles too.
        let spec = HostSpec { seed: 99, exits: 12_000, vcpus: 3, slowdown: 1.0 };
        let text = kvm_event_trace(&spec);
        let whole = crate::testutil::analyse_text(&text, AnalysisOptions::default());
        let mut live = LiveExits::new(AnalysisOptions::default(), "trace_pipe");
        let mut lines = Vec::new();
        let mut chunk = String::new();
        let mut t = Duration::ZERO;
        for (i, l) in text.lines().enumerate() {
            chunk.push_str(l);
            chunk.push('\n');
            // Cut after every 700th line that ends an exit.
            if l.contains("kvm_entry:") && i % 700 < 3 {
                feed(&mut live, &chunk);
                chunk.clear();
                t += Duration::from_secs(1);
                lines.push(serde_json::to_string(&live.cut(t)).unwrap());
            }
        }
        feed(&mut live, &chunk);
        lines.push(serde_json::to_string(&live.cut(t + Duration::from_secs(1))).unwrap());
        assert!(lines.len() > 10, "{} intervals", lines.len());
        let parts: Vec<Report> = lines
            .iter()
            .map(|l| serde_json::from_str::<LiveInterval>(l).unwrap().into_report("top.jsonl"))
            .collect();
        let merged = crate::combine::merge(&parts);
        assert_eq!(merged.events, whole.events);
        let (m, w) = (merged.exits.unwrap(), whole.exits.unwrap());
        assert_eq!((m.exits, m.unpaired_exits, &m.source), (w.exits, w.unpaired_exits, &w.source));
        assert_eq!(m.reasons.len(), w.reasons.len());
        assert!(m.reasons.iter().any(|r| !r.handling.as_ref().unwrap().histogram.exact));
        for (x, y) in m.reasons.iter().zip(&w.reasons) {
            assert_eq!((&x.reason, x.count, x.by_event), (&y.reason, y.count, y.by_event));
            let (a, b) = (x.handling.as_ref().unwrap(), y.handling.as_ref().unwrap());
            assert_eq!(
                (a.count, a.total_ns, a.min_ns, a.max_ns, a.mean_ns),
                (b.count, b.total_ns, b.min_ns, b.max_ns, b.mean_ns),
                "{}",
                x.reason
            );
            for (g, v) in [(a.p50_ns, b.p50_ns), (a.p90_ns, b.p90_ns), (a.p99_ns, b.p99_ns)] {
                if a.histogram.exact {
                    assert_eq!(g, v, "{}", x.reason);
                } else {
                    let err = v as f64 / f64::from(a.histogram.sub_buckets);
                    assert!((g as f64 - v as f64).abs() <= err + 1.0, "{}: {g} vs {v}", x.reason);
                }
            }
        }
    }

    fn exit(ts: &str, reason: &str) -> String {
        format!(
            " qemu-4242 [003] d..1. {ts}: kvm_exit: vcpu 0 reason {reason} rip 0x1 info1 0x0 \
             info2 0x0 intr_info 0x00000000 error_code 0x00000000\n"
        )
    }

    fn entry(ts: &str) -> String {
        format!(" qemu-4242 [003] d..1. {ts}: kvm_entry: vcpu 0, rip 0x1\n")
    }

    /// Where kvm_exit/kvm_entry fire, an interval has handling times; a pair cut by the
    /// boundary is an unpaired exit in the first and a lone entry in the second.
    #[test]
    fn handling_time_per_interval_and_a_pair_cut_by_the_boundary() {
        let opts = AnalysisOptions { per_vcpu: true, ..Default::default() };
        let mut live = LiveExits::new(opts, "trace_pipe");
        let first = [
            exit("140.314000", "npf"),
            entry("140.314001"),
            exit("140.314010", "npf"),
            entry("140.314013"),
            exit("140.314020", "vmgexit"),
        ]
        .concat();
        feed(&mut live, &first);
        let a = live.cut(Duration::from_secs(1));
        assert!(a.exits.handling_time_available);
        assert_eq!((a.exits.exits, a.exits.unpaired_exits), (3, 1));
        let npf = &a.exits.reasons[0];
        assert_eq!((npf.reason.as_str(), npf.count), ("EPT_NPF", 2));
        let h = npf.handling.as_ref().unwrap();
        assert_eq!((h.count, h.min_ns, h.max_ns), (2, 1000, 3000));
        assert_eq!(a.exits.vcpus[0].vcpu, "vcpu 0");

        feed(
            &mut live,
            &[entry("140.314030"), exit("140.314040", "npf"), entry("140.314042")].concat(),
        );
        let b = live.cut(Duration::from_secs(2));
        assert_eq!((b.exits.exits, b.exits.unmatched_entries), (1, 1));
        assert_eq!(b.exits.reasons[0].handling.as_ref().unwrap().p50_ns, 2000);
    }
}
