#!/bin/sh
# What `export --parquet` costs, side by side with the analysis alone and with a peer writer.
# Input: a synthetic kvm_exit/kvm_entry trace of N exits (ns timestamps, 4 vCPUs, 4 reasons;
# the format of exitscope_testkit::synthetic). Rows:
#   - `exitscope report --json`: parsing + the analysis, nothing written but the summary;
#   - `exitscope export --parquet`: the same analysis plus exits/calls/runs.parquet;
#   - the peer, DuckDB (python module), re-writing the same exits table from exits.parquet
#     with zstd (`COPY ... TO ... (FORMAT parquet, COMPRESSION zstd)`): read + write.
# Per row: wall and CPU seconds (user+system, /usr/bin/time), rows/s over wall time, output
# bytes, peak RSS. The writer's own cost is export CPU minus report CPU.
#   scripts/bench-parquet.sh [EXITS]        (default 1000000)
# EXITSCOPE_BIN=path uses that binary instead of building the release one.
set -eu
cd "$(dirname "$0")/.."
n=${1:-1000000}
bin=${EXITSCOPE_BIN:-}
if [ -z "$bin" ]; then
    cargo build -q --release -p exitscope-cli
    bin=$PWD/target/release/exitscope
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$n" "$work/trace.txt" <<'PY'
import random, sys
n, path = int(sys.argv[1]), sys.argv[2]
random.seed(18)
reasons = [("CPUID", 1100), ("IO_INSTRUCTION", 4000), ("HLT", 25000), ("EPT_MISCONFIG", 2500)]
t = 10**9
ts = lambda t: f"{t // 10**9}.{t % 10**9:09d}"
with open(path, "w") as f:
    for i in range(n):
        v = i % 4
        name, base = reasons[random.randrange(4)]
        d = int(base * (0.7 + 0.6 * random.random())) + 1
        head = f" qemu-system-x86-{4000 + v}  [{2 * v + 1:03d}]"
        f.write(f"{head} {ts(t)}: kvm_exit: vcpu {v} reason {name} rip 0xffffffff81001234 "
                "info1 0x0 info2 0x0 intr_info 0x00000000 error_code 0x00000000\n")
        f.write(f"{head} {ts(t + d)}: kvm_entry: vcpu {v}, rip 0xffffffff81002002\n")
        t += d + 500 + random.randrange(20000)
PY
echo "input: $n exits, $(stat -c %s "$work/trace.txt") bytes of text"
printf '%-22s %8s %8s %12s %12s %9s\n' what wall_s cpu_s rows/s out_bytes rss_kb
row() { # name output-path command...
    name=$1; out=$2; shift 2
    /usr/bin/time -f '%e %U %S %M' -o "$work/t" "$@" >/dev/null 2>&1
    read -r wall user sys rss < "$work/t"
    size=$(du -cb $out 2>/dev/null | tail -1 | cut -f1)
    printf '%-22s %8s %8.2f %12.0f %12s %9s\n' "$name" "$wall" "$(echo "$user + $sys" | bc)" \
        "$(echo "$n / $wall" | bc -l)" "$size" "$rss"
}
row "report --json" "$work/report.json" "$bin" report --json "$work/trace.txt" -o "$work/report.json"
row "export --parquet" "$work/out/*.parquet" "$bin" export --parquet "$work/out" "$work/trace.txt"
if python3 -c 'import duckdb' 2>/dev/null; then
    cat > "$work/peer.py" <<PY
import duckdb
duckdb.connect().execute("COPY (SELECT * FROM read_parquet('$work/out/exits.parquet')) TO '$work/peer.parquet' (FORMAT parquet, COMPRESSION zstd)")
PY
    row "duckdb re-write (peer)" "$work/peer.parquet" python3 "$work/peer.py"
else
    echo "SKIP: duckdb re-write: python3 module duckdb not installed"
fi
