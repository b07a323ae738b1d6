//! What `record` and `run` share around exitscope-tracefs's `Recorder`: choosing tracefs,
//! the bench target on a thread of this process, exit codes and advice for tracefs errors,
//! and the end-of-recording messages.

use std::path::Path;

use anyhow::anyhow;
use exitscope_tracefs::{Error as TfError, Mode, Recording, Target, Tracefs, errno_name};
use exitscope_vmm::{BENCHMARKS, Benchmark, Flavour, HostInfo, Report};

use crate::args::TracefsArgs;
use crate::exit::Failure;
use crate::text::plural;

/// The built-in benchmark called `name` (exit 2 naming the known ones otherwise).
pub fn find_test(name: &str) -> Result<&'static Benchmark, Failure> {
    exitscope_vmm::find(name).ok_or_else(|| {
        let known: Vec<&str> = BENCHMARKS.iter().filter(|b| !b.hidden).map(|b| b.name).collect();
        Failure::input(anyhow!("unknown test {name:?}; known tests: {}", known.join(", ")))
    })
}

/// Open KVM once, before anything is traced: no `/dev/kvm` is exit 3 with nothing touched.
pub fn check_kvm(opts: &exitscope_vmm::Options) -> Result<HostInfo, Failure> {
    exitscope_vmm::probe(opts).map_err(|e| Failure::environment(anyhow!(e)))
}

/// The recording host's tag for the trace (`SessionConfig::host_tag`): this machine's
/// fingerprint as it is when the recording starts, with KVM's TSC rate when `kvm` has it.
pub fn host_tag(kvm: Option<&HostInfo>) -> String {
    match kvm {
        Some(h) => h.fingerprint.to_tag(),
        None => exitscope_host::Fingerprint::collect().to_tag(),
    }
}

/// The tracefs to record in: `--fake-tracefs`, `--tracefs DIR` (checked), or the mounted one
/// (mounted if needed). Real tracefs needs root.
pub fn tracefs(a: &TracefsArgs, mode: &Mode) -> Result<Tracefs, Failure> {
    if let Some(d) = &a.fake_tracefs {
        return Ok(Tracefs::fake(d));
    }
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err(Failure::environment(anyhow!(
            "recording needs root (tracefs is writable only by root); run exitscope as root"
        )));
    }
    match &a.tracefs {
        Some(d) if !d.is_dir() => {
            Err(Failure::input(anyhow!("--tracefs {}: no such directory", d.display())))
        }
        Some(d) if !d.join("tracing_on").exists() => Err(Failure::input(anyhow!(
            "--tracefs {}: not a tracefs mount (it has no tracing_on file; tracefs is usually \
             at /sys/kernel/tracing)",
            d.display()
        ))),
        Some(d) => Ok(Tracefs::real(d)),
        None => Tracefs::discover(true).map_err(|e| failure(e, mode)),
    }
}

/// Why function_graph cannot be used, when that is what `e` says.
pub fn graph_unavailable(e: &TfError) -> Option<String> {
    match e {
        TfError::TracerUnavailable { path, available, .. } => Some(format!(
            "this kernel offers no function_graph tracer: {} lists only \"{available}\"",
            path.display()
        )),
        TfError::TracerRefused { source, .. } => Some(format!(
            "the kernel refused the function_graph tracer with {} (lockdown?)",
            errno_name(source)
        )),
        _ => None,
    }
}

/// Map a tracefs error to an exit code, with advice where there is some.
pub fn failure(e: TfError, mode: &Mode) -> Failure {
    let graph = matches!(mode, Mode::Graph { .. });
    let advice = match &e {
        TfError::TracerRefused { .. } | TfError::TracerUnavailable { .. } if graph => Some(
            "function_graph cannot be used on this kernel (lockdown or not built in); \
             record kvm tracepoints instead: exitscope record --events ...",
        ),
        TfError::GraphFilterEmpty { .. } | TfError::NoTraceableFunction { .. } => {
            Some("name a traceable root with --graph FUNC, or record kvm tracepoints with --events")
        }
        TfError::Busy { .. } => Some("stop the other session, or drop --top-level"),
        _ => None,
    };
    let code = match &e {
        e if e.is_environment() => crate::exit::ENVIRONMENT,
        _ => crate::exit::BAD_INPUT,
    };
    let err = match advice {
        Some(a) => anyhow::Error::new(e).context(a),
        None => anyhow::Error::new(e),
    };
    Failure { code, error: err }
}

/// What the bench thread returns: the typed report, or why KVM could not be used.
pub type BenchOutcome = Result<Report, String>;

/// Run `bench` with `opts` on a thread of this process (traced by its tid).
pub fn bench_target(
    bench: &'static Benchmark,
    opts: exitscope_vmm::Options,
) -> Target<BenchOutcome> {
    Target::Thread(Box::new(move || {
        exitscope_vmm::run_suite(&[bench], &opts, |_, _| {}).map_err(|e| e.to_string())
    }))
}

/// Whether every result of the bench completed (ok or skipped).
pub fn bench_completed(report: &Report) -> bool {
    report.results.iter().all(|r| {
        !matches!(r.status, exitscope_vmm::Status::Failed | exitscope_vmm::Status::Timeout)
    })
}

/// The messages at the end of a recording: what was written, lost events, requested events
/// that never fired (and why they may not have).
pub fn report_recording<T>(rec: &Recording<T>, out_name: &Path) {
    let c = &rec.capture;
    for n in &c.notes {
        say!("{n}");
    }
    say!("wrote {} to {} in {:.2} s", c.written(), out_name.display(), rec.elapsed.as_secs_f64());
    let lost = c.lost_total();
    if lost > 0 {
        let per_cpu: Vec<String> = c
            .lost_in_stream
            .iter()
            .chain(c.lost_from_stats.iter())
            .map(|(cpu, n)| format!("cpu{cpu}: {n}"))
            .collect();
        say!(
            "warning: the kernel lost {} ({}); use --buffer-size to enlarge the ring buffer",
            plural(lost, "event", "events"),
            per_cpu.join(", ")
        );
    }
    let pvm = HostInfo::detect().kvm_flavour == Flavour::Pvm;
    for e in &rec.silent_events {
        let name = e.rsplit(':').next().unwrap_or(e);
        let why = match name {
            "kvm_exit" | "kvm_entry" if pvm => {
                "this host runs PVM (kvm_pvm), whose exits never pass the generic kvm_exit/kvm_entry \
                 tracepoints; record the reason-specific ones (kvm:kvm_pio, kvm:kvm_cpuid, \
                 kvm:kvm_mmio, kvm:kvm_msr) or --events"
            }
            _ if pvm => {
                "the traced tasks made no such exit; on this PVM host many exits are handled by \
                 the L0 hypervisor and never reach this KVM"
            }
            _ => "the traced tasks made no such exit (did they run a vCPU?)",
        };
        say!("warning: {e} never fired: {why}");
    }
}
