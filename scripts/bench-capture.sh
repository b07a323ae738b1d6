#!/bin/sh
# What recording costs at a high exit rate, text capture against trace.dat capture, side by
# side. The workload is exitscope's own `bench inl_from_kernel` (one port-I/O exit per
# iteration, ~50 k exits/s on this project's PVM machine), run
#   - untraced,
#   - traced by `exitscope record --events -- ...` writing the kernel's text (trace_pipe),
#   - traced the same way writing trace.dat (trace_pipe_raw pages), zstd and uncompressed,
#   - traced by the peer, `trace-cmd record -B INSTANCE -e <the same events> -c -F` (where the
#     host lets it run: it needs /proc/sys/kernel/ftrace_enabled, refused under lockdown).
# Per row: exits/s of the workload (from the bench's median ns per iteration and its exits per
# iteration), the recorder's own CPU seconds (user+system of `exitscope record` minus those of
# the traced benchmark, each measured with /usr/bin/time), bytes written, events recorded and
# events the kernel lost (the recorder's end-of-run report).
#   scripts/bench-capture.sh [ROUNDS] [BUFFER_KB]
# Needs root, tracefs and /dev/kvm. BUFFER_KB (default: the instance's default size) is
# passed as --buffer-size. Rows of all rounds are printed; compare within a round.
set -eu
cd "$(dirname "$0")/.."
rounds=${1:-3}
buffer=${2:-}
cargo build -q --release -p exitscope-cli
bin=$PWD/target/release/exitscope
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# --min-cycles 2^30: 5 measured loops of ~0.5 s each after the calibration loops.
bench="$bin bench --json --repeat 5 --min-cycles 2^30 inl_from_kernel"
timed="/usr/bin/time -f %U+%S -o $work/inner"

rate() { # exits/s from a bench JSON file
    jq -r '.results[0] | if .ns_median > 0 then (1e9 / .ns_median * .exits_per_iteration) else 0 end' "$1" |
        xargs printf '%.0f'
}

cpu_of() { # user+system seconds in a /usr/bin/time -f %U+%S output file
    tail -n 1 "$1" | bc -l
}

row() {
    printf '%-20s %10s %9s %12s %10s %8s\n' "$@"
}

run_mode() { # MODE OUTPUT [record args...]
    mode=$1 out=$2
    shift 2
    if [ "$mode" = untraced ]; then
        # shellcheck disable=SC2086
        $timed $bench > "$work/bench.json" 2> /dev/null
        row "$mode" "$(rate "$work/bench.json")" "-" "-" "-" "-"
        return
    fi
    # shellcheck disable=SC2086
    /usr/bin/time -f %U+%S -o "$work/outer" "$bin" record --events -o "$out" \
        ${buffer:+--buffer-size "$buffer"} "$@" -- $timed $bench > "$work/bench.json" 2> "$work/record.err" || {
        cat "$work/record.err" >&2
        exit 1
    }
    own=$(echo "$(cpu_of "$work/outer") - $(cpu_of "$work/inner")" | bc -l | xargs printf '%.2f')
    bytes=$(stat -c %s "$out")
    lost=$(sed -n 's/.*the kernel lost \([0-9]*\) events.*/\1/p' "$work/record.err")
    events=$("$bin" report --json "$out" 2> /dev/null | jq '[.events[]] | add // 0')
    row "$mode" "$(rate "$work/bench.json")" "$own" "$bytes" "$events" "${lost:-0}"
    rm -f "$out"
}

peer() { # trace-cmd record into a private instance, same events, the workload's pids only
    command -v trace-cmd > /dev/null || { row "trace-cmd record" "not installed" - - - -; return; }
    inst=exitscope-peer-$$
    set --
    for e in kvm_exit kvm_entry kvm_cpuid kvm_pio kvm_mmio kvm_msr kvm_hypercall \
        kvm_userspace_exit kvm_emulate_insn kvm_inj_exception kvm_cr kvm_nested_vmexit; do
        set -- "$@" -e "kvm:$e"
    done
    # shellcheck disable=SC2086
    if ! /usr/bin/time -f %U+%S -o "$work/outer" trace-cmd record -q -B "$inst" "$@" \
        ${buffer:+-b "$buffer"} -o "$work/peer.dat" -c -F $timed $bench > "$work/bench.json" 2> "$work/peer.err"; then
        [ -d "/sys/kernel/tracing/instances/$inst" ] && rmdir "/sys/kernel/tracing/instances/$inst"
        row "trace-cmd record" "refused: $(grep -v '^ *$' "$work/peer.err" | tr '\n' ' ' | cut -c1-60)" - - - -
        return
    fi
    own=$(echo "$(cpu_of "$work/outer") - $(cpu_of "$work/inner")" | bc -l | xargs printf '%.2f')
    events=$(trace-cmd report -i "$work/peer.dat" 2> /dev/null | grep -c ' kvm_')
    lost=$(trace-cmd report --stat -i "$work/peer.dat" 2> /dev/null |
        sed -n 's/^overrun: *\([0-9]*\).*/\1/p' | paste -sd+ - | bc)
    row "trace-cmd record" "$(rate "$work/bench.json")" "$own" "$(stat -c %s "$work/peer.dat")" \
        "$events" "${lost:-?}"
    rm -f "$work/peer.dat"
}

echo "host: $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); buffer: ${buffer:-instance default} KB"
row mode exits/s record_cpu bytes events lost
for r in $(seq "$rounds"); do
    echo "# round $r"
    run_mode untraced -
    run_mode "text (trace_pipe)" "$work/t.txt"
    run_mode "trace.dat zstd" "$work/t.dat"
    run_mode "trace.dat none" "$work/n.dat" --compression none
    peer
done
