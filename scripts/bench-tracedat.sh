#!/bin/sh
# Side-by-side throughput of `exitscope report --json` on trace.dat at -j 1 and -j 2 and
# `trace-cmd report`, on the same files, in one run:
#   scripts/bench-tracedat.sh [FILE...]
# Without FILE: a ~2 M event KVM trace recorded on this machine into target/bench/kvm-rec/raw.dat
# with tests/data/tracedat/record.sh (needs root, tracefs, /dev/kvm, trace-cmd; on a PVM host
# the events that fire are kvm_pio, kvm_emulate_insn, kvm_userspace_exit, ...), plus two
# synthetic traces of kvm_exit/kvm_entry pairs on 4 CPUs (SYNTH_EVENTS events, default
# 20 M) written by the tracedat crate's gen_kvm example: v7 zstd (as `exitscope record`
# writes) and v6 uncompressed (as older trace-cmd writes). The synthetic files are deleted
# at the end (KEEP=1 keeps them).
# exitscope runs RUNS times (default 3) and the best wall time counts; trace-cmd runs once
# (it is 20-40x slower). Columns: wall seconds, CPU seconds (user+sys), peak RSS, events/s
# of wall time, events per CPU-second, and the wall-time speedup over trace-cmd.
set -eu
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
synth_events=${SYNTH_EVENTS:-20000000}
cargo build -q --release -p exitscope-cli
cargo build -q --release -p exitscope-tracedat --features write --example gen_kvm
bin=target/release/exitscope
command -v trace-cmd >/dev/null || { echo "trace-cmd is not installed (apt-get install trace-cmd)" >&2; exit 3; }
tmp=$(mktemp -d)
synth=target/bench/synth
cleanup() { rm -rf "$tmp"; [ "${KEEP:-0}" = 1 ] || rm -f "$synth"/kvm-*.dat; }
trap cleanup EXIT
if [ $# -eq 0 ]; then
    rec=target/bench/kvm-rec/raw.dat
    [ -f "$rec" ] || tests/data/tracedat/record.sh target/bench/kvm-rec 130000 200000 >/dev/null 2>&1 || true
    mkdir -p "$synth"
    target/release/examples/gen_kvm "$synth/kvm-v7-zstd.dat" 7 zstd "$synth_events" 4
    target/release/examples/gen_kvm "$synth/kvm-v6.dat" 6 none "$synth_events" 4
    set -- "$synth/kvm-v7-zstd.dat" "$synth/kvm-v6.dat"
    [ -f "$rec" ] && set -- "$rec" "$@"
fi
# Prints "wall cpu maxrss_kb" of the best (by wall) of N runs of "$@".
measure() {
    n=$1; shift
    best=
    for _ in $(seq "$n"); do
        /usr/bin/time -f '%e %U %S %M' -o "$tmp/t" "$@" >/dev/null 2>"$tmp/err" || {
            cat "$tmp/err" >&2
            exit 1
        }
        line=$(tail -1 "$tmp/t")
        w=${line%% *}
        if [ -z "$best" ] || [ "$(echo "$w < ${best%% *}" | bc -l)" = 1 ]; then best=$line; fi
    done
    echo "$best" | awk '{printf "%s %.2f %s\n", $1, $2 + $3, $4}'
}
row() { # name wall cpu rss events tc_wall
    awk -v n="$1" -v w="$2" -v c="$3" -v r="$4" -v e="$5" -v t="$6" 'BEGIN {
        if (w < 0.005) w = 0.005; if (c < 0.005) c = 0.005;
        printf "  %-34s %8.2f %8.2f %8.0f %12.0f %12.0f %8.1fx\n", n, w, c, r / 1024, e / w, e / c, t / w }'
}
echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
for f in "$@"; do
    cat "$f" >/dev/null
    # Records: what exitscope reads (the same count trace-cmd prints, one line each).
    n=$("$bin" report --json -j 1 "$f" | awk -F': ' '/"records"/ { gsub(/,/, "", $2); print $2; exit }')
    printf '\n%s: %s bytes, %s records\n' "$f" "$(stat -c %s "$f")" "$n"
    printf '  %-34s %8s %8s %8s %12s %12s %9s\n' tool wall_s cpu_s rss_MB events/s ev/cpu-s vs_tc
    set -- $(measure 1 trace-cmd report -i "$f")
    tc=$1
    row "trace-cmd report > /dev/null" "$1" "$2" "$3" "$n" "$tc"
    for j in 1 2; do
        set -- $(measure "$runs" "$bin" report --json -j "$j" "$f")
        row "exitscope report --json -j $j" "$1" "$2" "$3" "$n" "$tc"
    done
done
