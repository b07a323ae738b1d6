#!/bin/sh
# Side-by-side throughput of exitscope's trace.dat reader and `trace-cmd report`.
#   scripts/bench-tracedat.sh [FILE]
# Without FILE, records a ~2 M event KVM trace into target/bench/kvm-rec/raw.dat with
# tests/data/tracedat/record.sh (needs root, tracefs, /dev/kvm, trace-cmd); with FILE,
# uses it. Each tool runs 3 times; the best wall time counts (file in page cache).
set -eu
cd "$(dirname "$0")/.."
file=${1:-}
if [ -z "$file" ]; then
    file=target/bench/kvm-rec/raw.dat
    [ -f "$file" ] || tests/data/tracedat/record.sh target/bench/kvm-rec 130000 200000 >/dev/null 2>&1
fi
cargo build -q --release -p exitscope-cli
cargo build -q --release -p exitscope-tracedat --example bench_read
bin=target/release/exitscope
best() { # best-of-3 wall seconds of "$@"
    b=
    for _ in 1 2 3; do
        s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N)
        t=$(echo "$e - $s" | bc -l)
        if [ -z "$b" ] || [ "$(echo "$t < $b" | bc -l)" = 1 ]; then b=$t; fi
    done
    echo "$b"
}
out=$(target/release/examples/bench_read "$file" 3)
n=${out%% *}
cat "$file" > /dev/null
t_tc=$(best trace-cmd report -i "$file")
t_rd=$(best target/release/examples/bench_read "$file" 1)
t_cv=$(best "$bin" convert "$file" -o /dev/null)
t_rp=$(best "$bin" report --json "$file")
rate() { echo "$n / $1" | bc -l | xargs printf '%.0f'; }
printf 'file: %s (%s bytes, %s records)\n' "$file" "$(stat -c %s "$file")" "$n"
printf '%-44s %8s %14s %8s\n' tool seconds events/s speedup
r_tc=$(rate "$t_tc")
for row in "trace-cmd report > /dev/null|$t_tc" "exitscope report --json > /dev/null|$t_rp" "exitscope tracedat::read (report's reader)|$t_rd" "exitscope convert -o /dev/null (full text)|$t_cv"; do
    name=${row%|*}; t=${row#*|}; r=$(rate "$t")
    printf '%-44s %8.3f %14s %7.1fx\n' "$name" "$t" "$r" "$(echo "$r / $r_tc" | bc -l)"
done
