# tests/lab/guest-job.sh — runs INSIDE the TCG guest, sourced (in a subshell) by /init from
# the 9p share; tests/lab/run.sh copies it to $RUN/job.sh behind a few variable lines.
# Every result lands in /out (the host's run directory):
#   guest-env.txt kvm-load.txt             kernel, CPU flags, kvm_amd load and parameters
#   <step>.rc <step>.cmd <step>.stderr      exit status, command line, stderr of each step
#   <step>.mode                             "real" (exitscope's own command) or "fallback"
#   tracefs-before-<step>.txt / -after-     tracefs state around each step (checked on the host)
#   bench.json                              untraced `exitscope bench --json cpuid inl_from_vmm`
#   graph.txt graph-bench.json graph.meta   step graph  (function_graph of the exit path)
#   events.txt events-bench.json            step events (kvm tracepoints)
#   run-cpuid/                              step run    (`exitscope run cpuid -o`)
#   run-kut/ kut.stdout                     step kut    (`exitscope run --kut /kut/vmexit.flat cpuid -o`)
#
# Variables (run.sh sets them from the environment):
#   STEPS        steps to run (default: "bench graph events run kut")
#   MIN_CYCLES   --min-cycles for every bench   (default 2^21: under TCG one round of 64
#                iterations already exceeds it, so a traced bench is a few hundred exits)
#   REPEAT       --repeat for every bench       (default 1)
#   BUF_KB       per-CPU ring buffer for the fallbacks / record --buffer-size (default 65536)
#   RUN_ARGS     extra arguments for `exitscope run` (default none)
#   KUT_TESTS    the kvm-unit-tests tests of step kut (default cpuid; vmexit.flat has no knob for
#                its iterations: each test doubles them until a round takes 2^30 TSC cycles)
#   KUT_ARGS     extra arguments for `exitscope run --kut` (default "--timeout 300")
#   GRAPH_FUNC   the graph root asked for (default vcpu_enter_guest, as in the issue; set it
#                empty to call `exitscope record` without --graph, i.e. its default graph mode)
#
# The parts marked FALLBACK do by hand, with tracefs echo commands, what an exitscope command
# does once it is merged; each is chosen only when that command is missing
# (`exitscope record --help` / `exitscope run --help` fails), and <step>.mode says which ran.
T=/sys/kernel/tracing
O=/out
: "${STEPS:=bench graph events run kut}" "${MIN_CYCLES:=2^21}" "${REPEAT:=1}" "${BUF_KB:=65536}"
: "${RUN_ARGS:=}" "${GRAPH_FUNC=vcpu_enter_guest}" "${KUT_TESTS:=cpuid}" "${KUT_ARGS:=--timeout 300}"
BENCH_OPTS="--cpl 0 --json --min-cycles $MIN_CYCLES --repeat $REPEAT --timeout 300"

stamp() { echo "[$(cut -d' ' -f1 /proc/uptime)] $*"; }
want() { case " $STEPS " in *" $1 "*) return 0 ;; esac; return 1; }
uptime_s() { cut -d' ' -f1 /proc/uptime; }

# snap FILE: the tracefs state exitscope must leave as it found it. Comment lines ("####
# all functions enabled ####") are dropped so an empty filter reads as empty.
snap() {
	{
		for f in current_tracer tracing_on set_graph_function set_graph_notrace \
			set_ftrace_filter set_ftrace_notrace set_ftrace_pid set_event set_event_pid \
			buffer_size_kb trace_clock tracing_thresh max_graph_depth trace_options; do
			[ -e "$T/$f" ] || continue
			printf '%s: %s\n' "$f" "$(grep -v '^#' "$T/$f" 2>/dev/null | tr '\n' ' ')"
		done
		for o in "$T"/options/*; do printf 'options/%s: %s\n' "${o##*/}" "$(cat "$o")"; done
		printf 'instances: %s\n' "$(ls "$T/instances" 2>/dev/null | tr '\n' ' ')"
		printf 'enabled events: %s\n' "$(grep -l '^1' "$T"/events/*/*/enable 2>/dev/null | tr '\n' ' ')"
	} > "$1"
}

# step NAME CMD...: run CMD with tracefs snapshots around it; rc, time and command recorded.
step() {
	name=$1; shift
	snap "$O/tracefs-before-$name.txt"
	echo "$*" > "$O/$name.cmd"
	t0=$(uptime_s)
	"$@"
	rc=$?
	echo $rc > "$O/$name.rc"
	snap "$O/tracefs-after-$name.txt"
	stamp "step $name: rc=$rc, $(awk -v a="$t0" -v b="$(uptime_s)" 'BEGIN{printf "%.1f", b-a}')s guest time ($(cat "$O/$name.mode" 2>/dev/null || echo real))"
}

# buffer_size_kb as a writable number: "7 (expanded: 1408)" (not yet allocated) gives 1408
buf_kb() { sed -E 's/^.*expanded: ([0-9]+)\).*$/\1/' $T/buffer_size_kb; }

has_record() { exitscope record --help >/dev/null 2>&1; }
has_run() { exitscope run --help >/dev/null 2>&1; }

# ---- FALLBACK for `exitscope record --graph FUNC -o OUT -- CMD...` ---------------------------
# (switches to the real command when `record` is merged). Mirrors record's contract: check
# available_filter_functions, fall back to vcpu_run then kvm_arch_vcpu_ioctl_run when FUNC is
# inlined (the write would fail with EINVAL and leave the filter empty = trace everything),
# set options through options/funcgraph-*, restore every file it touched afterwards.
fallback_graph() {
	func=$1 out=$2; shift 2
	root=
	for f in "$func" vcpu_run kvm_arch_vcpu_ioctl_run; do
		if grep -qE "^$f( |\$)" $T/available_filter_functions; then root=$f; break; fi
	done
	{
		echo "requested: $func"
		echo "root: ${root:-none}"
		grep -E '^(vcpu_enter_guest|vcpu_run|kvm_arch_vcpu_ioctl_run|svm_vcpu_run|svm_handle_exit|cpuid_interception|kvm_emulate_cpuid)[ .]' $T/available_filter_functions | sed 's/^/available: /'
	} > "$O/graph.meta"
	[ -n "$root" ] || { echo "fallback_graph: no traceable root" >&2; return 3; }
	s_tracer=$(cat $T/current_tracer) s_on=$(cat $T/tracing_on) s_buf=$(buf_kb)
	s_abs=$(cat $T/options/funcgraph-abstime) s_proc=$(cat $T/options/funcgraph-proc)
	echo 0 > $T/tracing_on
	echo nop > $T/current_tracer
	echo "$BUF_KB" > $T/buffer_size_kb
	echo > $T/trace
	echo "$root" > $T/set_graph_function || { echo "fallback_graph: set_graph_function $root refused" >&2; return 3; }
	echo 1 > $T/options/funcgraph-abstime
	echo 1 > $T/options/funcgraph-proc
	echo function_graph > $T/current_tracer
	echo 1 > $T/tracing_on
	"$@"
	crc=$?
	echo 0 > $T/tracing_on
	cat $T/trace > "$out"
	# restore
	echo nop > $T/current_tracer
	echo > $T/set_graph_function
	echo "$s_abs" > $T/options/funcgraph-abstime
	echo "$s_proc" > $T/options/funcgraph-proc
	echo > $T/trace
	echo "$s_buf" > $T/buffer_size_kb
	echo "$s_tracer" > $T/current_tracer
	echo "$s_on" > $T/tracing_on
	return $crc
}

# ---- FALLBACK for `exitscope record --events -o OUT -- CMD...` -------------------------------
# (switches to the real command when `record` is merged): record's default event set, missing
# ones skipped; everything restored afterwards.
EVENTS="kvm_exit kvm_entry kvm_cpuid kvm_pio kvm_mmio kvm_msr kvm_hypercall kvm_userspace_exit
	kvm_emulate_insn kvm_inj_exception kvm_cr kvm_nested_vmexit"
fallback_events() {
	out=$1; shift
	s_on=$(cat $T/tracing_on) s_buf=$(buf_kb) s_events=$(cat $T/set_event)
	echo 0 > $T/tracing_on
	echo "$BUF_KB" > $T/buffer_size_kb
	echo > $T/trace
	for e in $EVENTS; do
		[ -e $T/events/kvm/$e/enable ] && echo "kvm:$e" >> $T/set_event
	done
	echo 1 > $T/tracing_on
	"$@"
	crc=$?
	echo 0 > $T/tracing_on
	cat $T/trace > "$out"
	echo > $T/set_event
	for e in $s_events; do echo "$e" >> $T/set_event; done
	echo > $T/trace
	echo "$s_buf" > $T/buffer_size_kb
	echo "$s_on" > $T/tracing_on
	return $crc
}

# ---- the steps ---------------------------------------------------------------------------
graph_step() {
	if has_record; then
		echo real > $O/graph.mode
		# REAL (issue 8 part 1): record's own fallback picks kvm_arch_vcpu_ioctl_run here
		exitscope record ${GRAPH_FUNC:+--graph "$GRAPH_FUNC"} --buffer-size "$BUF_KB" -o $O/graph.txt -- \
			exitscope bench $BENCH_OPTS cpuid > $O/graph-bench.json 2> $O/graph.stderr
	else
		echo fallback > $O/graph.mode
		fallback_graph "${GRAPH_FUNC:-vcpu_enter_guest}" $O/graph.txt \
			exitscope bench $BENCH_OPTS cpuid > $O/graph-bench.json 2> $O/graph.stderr
	fi
}

events_step() {
	if has_record; then
		echo real > $O/events.mode
		exitscope record --events --buffer-size "$BUF_KB" -o $O/events.txt -- \
			exitscope bench $BENCH_OPTS cpuid inl_from_vmm > $O/events-bench.json 2> $O/events.stderr
	else
		echo fallback > $O/events.mode
		fallback_events $O/events.txt \
			exitscope bench $BENCH_OPTS cpuid inl_from_vmm > $O/events-bench.json 2> $O/events.stderr
	fi
}

run_step() {
	mkdir -p $O/run-cpuid
	if has_run; then
		echo real > $O/run.mode
		# REAL (issue 8 part 3)
		# shellcheck disable=SC2086
		exitscope run cpuid -o $O/run-cpuid $RUN_ARGS > $O/run.stdout 2> $O/run.stderr
	else
		# FALLBACK: bench + record + report by hand, in the guest, into the same directory
		echo fallback > $O/run.mode
		exitscope bench $BENCH_OPTS cpuid > $O/run-cpuid/bench.json 2> $O/run.stderr &&
			fallback_graph vcpu_enter_guest $O/run-cpuid/trace.txt \
				exitscope bench $BENCH_OPTS cpuid > $O/run-cpuid/traced-bench.json 2>> $O/run.stderr &&
			exitscope report --json $O/run-cpuid/trace.txt > $O/run-cpuid/report.json 2>> $O/run.stderr &&
			exitscope report $O/run-cpuid/trace.txt > $O/run.stdout 2>> $O/run.stderr
	fi
}

# kvm-unit-tests' own vmexit.flat in exitscope's VMM on real kvm_amd, traced (issue 14 item 4):
# an untraced boot for the figures, then the traced one; report.json has the CPUID exits
kut_step() {
	echo real > $O/kut.mode
	mkdir -p $O/run-kut
	# shellcheck disable=SC2086
	exitscope run --kut /kut/vmexit.flat $KUT_TESTS -o $O/run-kut --color never $KUT_ARGS \
		> $O/kut.stdout 2> $O/kut.stderr
}

stamp "job start"
{
	echo "uname: $(uname -a)"
	echo "nproc: $(nproc)"
	grep -m1 'model name' /proc/cpuinfo
	grep -m1 'vendor_id' /proc/cpuinfo
	grep -m1 '^flags' /proc/cpuinfo
	echo "trace_clock: $(cat $T/trace_clock)"
	echo "clocksource: $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)"
	echo "exitscope: $(exitscope --version 2>&1)"
	echo "record: $(has_record && echo yes || echo no, fallback)"
	echo "run: $(has_run && echo yes || echo no, fallback)"
	echo "STEPS=$STEPS MIN_CYCLES=$MIN_CYCLES REPEAT=$REPEAT BUF_KB=$BUF_KB RUN_ARGS=$RUN_ARGS GRAPH_FUNC=$GRAPH_FUNC KUT_TESTS=$KUT_TESTS KUT_ARGS=$KUT_ARGS"
	echo "kut image: $(ls -l /kut/vmexit.flat 2>&1)"
} > $O/guest-env.txt

load_mod kvm_amd > $O/kvm-load.txt 2>&1
echo "load_mod kvm_amd rc=$?" >> $O/kvm-load.txt
dmesg | grep -iE 'kvm|svm' >> $O/kvm-load.txt
ls -l /dev/kvm >> $O/kvm-load.txt 2>&1
grep -E '^kvm' /proc/modules >> $O/kvm-load.txt
for p in /sys/module/kvm_amd/parameters/*; do echo "kvm_amd.${p##*/}=$(cat "$p" 2>/dev/null)"; done >> $O/kvm-load.txt
stamp "$(grep 'rc=' $O/kvm-load.txt); /dev/kvm $([ -c /dev/kvm ] && echo present || echo MISSING)"
[ -c /dev/kvm ] || { stamp "no /dev/kvm: stopping"; exit 3; }

if want bench; then
	echo real > $O/bench.mode
	step bench sh -c "exitscope bench $BENCH_OPTS cpuid inl_from_vmm > $O/bench.json 2> $O/bench.stderr"
fi
want graph && step graph graph_step
want events && step events events_step
want run && step run run_step
if want kut; then
	if [ -f /kut/vmexit.flat ]; then step kut kut_step
	else echo "no /kut/vmexit.flat in the initramfs (build.sh had no KUT_FLAT)" > $O/kut.skipped; stamp "step kut skipped"; fi
fi
ls -la $O > $O/listing.txt
dmesg > $O/dmesg-end.txt
stamp "job end"
