#!/bin/sh
# Throughput and memory of `exitscope report --json` on large text traces, side by side with
# `wc -l` (the memory-scan bound) and an awk aggregation of the same file (the peer: what one
# would write without exitscope), and trace.dat against `trace-cmd report`, in one run.
#
#   scripts/bench-throughput.sh [--mb N] [--big GB] [--no-tracedat]
#
# --mb N     size of the two generated text traces (default 1000 MB): seed-shaped
#            function_graph text and kvm_exit/kvm_entry event text (crates/exitscope-testkit
#            synth); each tool runs on the same file, page cache warm.
# --big GB   also generate a GB-sized trace of each kind, report peak RSS at -j 1 and at the
#            default -j (every CPU), and delete it (10 GB takes ~10 GB of disk and minutes).
# --no-tracedat  skip the trace.dat comparison (scripts/bench-tracedat.sh).
#
# "per CPU-s" divides the bytes by user+sys CPU time (what the run cost, whatever else the
# machine was doing); "wall" by elapsed time. On a machine busy with other work the wall
# figures (and the -j 2 speedup) are lower than on an idle one; the CPU-s figures are not.
set -eu
cd "$(dirname "$0")/.."
mb=1000 big= tracedat=1
while [ $# -gt 0 ]; do
    case $1 in
        --mb) mb=$2; shift 2 ;;
        --big) big=$2; shift 2 ;;
        --no-tracedat) tracedat=; shift ;;
        *) echo "usage: $0 [--mb N] [--big GB] [--no-tracedat]" >&2; exit 2 ;;
    esac
done
cargo build -q --release -p exitscope-cli
cargo build -q --release -p exitscope-testkit --example synth_trace
bin=target/release/exitscope
synth=target/release/examples/synth_trace
dir=${TMPDIR:-/tmp}/exitscope-bench-throughput.$$
mkdir -p "$dir"
trap 'rm -rf "$dir"' EXIT INT TERM
awk=$(command -v mawk || command -v awk)

# Aggregations a user would write: total and count per function (leaf calls and returns
# with a `/* f */` tail are not needed for the seed shape: leaves carry the duration), and
# per exit reason from kvm_exit -> kvm_entry pairs per vCPU thread.
fgraph_awk='{ if (match($0, /[0-9.]+ us +\|/)) { d = substr($0, RSTART, RLENGTH); sub(/ +us.*/, "", d);
  n = $0; sub(/.*\| +/, "", n); sub(/\(.*/, "", n); t[n] += d; c[n]++ } }
  END { for (f in t) printf "%s %d %.3f\n", f, c[f], t[f] }'
events_awk='/ kvm_exit: / { for (i = 1; i <= NF; i++) { if ($i == "reason") r = $(i + 1); if ($i ~ /:$/ && ts == "") ts = $i }
  k = $1 $2; sub(/:$/, "", ts); open[k] = ts; why[k] = r; ts = "" ; next }
  / kvm_entry: / { k = $1 $2; for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+\.[0-9]+:$/) { ts = $i; sub(/:$/, "", ts) }
  if (k in open) { d = ts - open[k]; n[why[k]]++; s[why[k]] += d; delete open[k] } ts = "" }
  END { for (r in n) printf "%s %d %.6f\n", r, n[r], s[r] }'

# run NAME CMD...: one timed run; prints a row and remembers the wall seconds in $wall.
row() { printf '%-36s %8s %8s %10s %12s %9s\n' "$@"; }
run() {
    name=$1; shift
    /usr/bin/time -f '%e %U %S %M' -o "$dir/time" "$@" > /dev/null 2> "$dir/err" || {
        echo "failed: $*" >&2; cat "$dir/err" >&2; exit 1; }
    read -r wall user sys rss < "$dir/time"
    cpu=$(echo "$user + $sys" | bc -l)
    [ "$(echo "$cpu < 0.01" | bc -l)" = 1 ] && cpu=0.01
    # (/usr/bin/time has 10 ms resolution: wc -l on a small file takes "0.00 s".)
    [ "$(echo "$wall < 0.01" | bc -l)" = 1 ] && wall=0.01
    row "$name" "$wall" "$cpu" "$(echo "$bytes / 1000000 / $wall" | bc -l | xargs printf '%.0f')" \
        "$(echo "$bytes / 1000000 / $cpu" | bc -l | xargs printf '%.0f')" "$((rss / 1024))"
}

echo "exitscope report throughput; $(nproc) CPUs; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for kind in fgraph events; do
    f=$dir/$kind.txt
    $synth $kind "$mb" "$f" > "$dir/gen"
    read -r bytes lines < "$dir/gen"
    cat "$f" > /dev/null
    echo
    case $kind in
        fgraph) echo "seed-shaped function_graph text: $((bytes / 1000000)) MB, $lines lines" ;;
        events) echo "kvm_exit/kvm_entry event text: $((bytes / 1000000)) MB, $lines lines" ;;
    esac
    row tool "wall s" "CPU s" "wall MB/s" "MB/s per CPU-s" "RSS MB"
    run "wc -l" wc -l "$f"
    case $kind in
        fgraph) run "$(basename "$awk") aggregation" "$awk" "$fgraph_awk" "$f" ;;
        events) run "$(basename "$awk") aggregation" "$awk" "$events_awk" "$f" ;;
    esac
    run "exitscope report --json -j 1" "$bin" report --json -j 1 "$f"
    w1=$wall
    run "exitscope report --json -j 2" "$bin" report --json -j 2 "$f"
    printf '%-36s %8s\n' "-j 2 wall speedup" "$(echo "$w1 / $wall" | bc -l | xargs printf '%.2fx')"
    rm -f "$f"
done

if [ -n "$big" ]; then
    echo
    echo "peak RSS at ${big} GB (generated, then deleted):"
    row tool "wall s" "CPU s" "wall MB/s" "MB/s per CPU-s" "RSS MB"
    for kind in fgraph events; do
        f=$dir/big-$kind.txt
        $synth $kind "$((big * 1000))" "$f" > "$dir/gen"
        read -r bytes lines < "$dir/gen"
        run "$kind ${big} GB: report --json -j 1" "$bin" report --json -j 1 "$f"
        run "$kind ${big} GB: report --json" "$bin" report --json "$f"
        rm -f "$f"
    done
fi

if [ -n "$tracedat" ]; then
    echo
    if command -v trace-cmd > /dev/null; then
        scripts/bench-tracedat.sh || echo "trace.dat comparison failed (needs root, tracefs, /dev/kvm to record)"
    else
        echo "SKIP: trace.dat comparison: trace-cmd is not installed (apt-get install trace-cmd)"
    fi
fi
