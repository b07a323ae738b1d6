#!/usr/bin/env bash
# kvm-unit-tests' vmexit.flat under QEMU and under exitscope's VMM, side by side.
#   scripts/kut-vs-qemu.sh [FILE]            # 5 boots each, interleaved; medians and ratios
#   ALL=1 scripts/kut-vs-qemu.sh [FILE]      # also: which of the image's tests each VMM runs
# FILE defaults to ../shared/kut/vmexit.flat. BOOTS (5), TESTS (the five below), TIMEOUT
# (120 s per boot) and QEMU_CPU (host; falls back to host,-arch-capabilities and then QEMU's
# default model if QEMU refuses it) can be set in the environment. Needs root or the kvm
# group; installs qemu-system-x86 from Debian with apt when it is missing.
#
# QEMU runs as in ../shared/kut/SOURCES.md (QEMU 7.2, what kvm-unit-tests' x86/run does
# minus the env initrd); exitscope runs `bench --kut FILE TESTS`. Both print the guest's own
# cycles per iteration, so the figures are the same binary's, measured the same way.
# Targets: in-kernel exits within 5 % of QEMU's cycles; inl_from_qemu (an exit to the VMM's
# userspace) at least 1.3x faster in exitscope.
set -euo pipefail
cd "$(dirname "$0")/.."
flat=${1:-../shared/kut/vmexit.flat}
boots=${BOOTS:-5}
tests=${TESTS:-cpuid inl_from_kernel inl_from_qemu mov_dr rd_tsc_adjust_msr}
timeout_s=${TIMEOUT:-120}
qemu_cpu=${QEMU_CPU:-host}
[ -f "$flat" ] || { echo "SKIP: $flat not found" >&2; exit 3; }
[ -w /dev/kvm ] || { echo "SKIP: /dev/kvm is not usable" >&2; exit 3; }
if ! command -v qemu-system-x86_64 >/dev/null; then
    echo "installing qemu-system-x86 (apt)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-system-x86 >/dev/null ||
        { echo "SKIP: qemu-system-x86 could not be installed" >&2; exit 3; }
fi
cargo build -q --release -p exitscope-cli
bin=target/release/exitscope
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
: >"$work/all"

qemu_boot() { # qemu_boot CPU TESTS...: the guest's serial output
    local cpu=$1; shift
    timeout -k 5 "$timeout_s" qemu-system-x86_64 --no-reboot -nodefaults -device pc-testdev \
        -device isa-debug-exit,iobase=0xf4,iosize=0x4 -display none -serial stdio \
        -machine accel=kvm -cpu "$cpu" -kernel "$flat" -smp 1 -append "$*" 2>"$work/qemu.err" |
        tr -d '\r' || true
}
exitscope_boot() { # exitscope_boot TESTS...: the guest's serial output
    "$bin" bench --kut "$flat" --timeout "$timeout_s" --json "$@" 2>&1 >/dev/null |
        grep -v '^#' || true
}
# "name cycles" lines only (the self-IPI tests may print digits before the name).
results() { awk 'NF == 2 && $2 ~ /^-?[0-9]+$/ { sub(/^[0-9-]+/, "", $1); print $1, $2 }'; }

# The CPU model: -cpu host as SOURCES.md, unless this QEMU/KVM refuses it.
for cpu in "$qemu_cpu" host,-arch-capabilities qemu64; do
    if qemu_boot "$cpu" mov_dr | results | grep -q '^mov_dr '; then qemu_cpu=$cpu; break; fi
    echo "QEMU -cpu $cpu failed: $(head -c 200 "$work/qemu.err" | tr '\n' ' ')" >&2
done
echo "QEMU: $(qemu-system-x86_64 --version | head -1), -cpu $qemu_cpu"
echo "exitscope: $($bin --version)"
echo "image: $flat ($(sha256sum "$flat" | cut -c1-16)...), tests: $tests, $boots boots each, interleaved"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

# shellcheck disable=SC2086 # $tests is a word list on purpose
for i in $(seq 1 "$boots"); do
    # Alternate who goes first so a drifting background load hits both alike.
    if [ $((i % 2)) = 1 ]; then order="qemu exitscope"; else order="exitscope qemu"; fi
    for vmm in $order; do
        if [ "$vmm" = qemu ]; then qemu_boot "$qemu_cpu" $tests; else exitscope_boot $tests; fi |
            results | sed "s/^/$vmm /" >>"$work/all"
    done
    echo "boot $i/$boots done (load $(cut -d' ' -f1 /proc/loadavg))" >&2
done
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"
echo

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print ""; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
minimum() { sort -n | head -1; }
printf '%-20s %12s %12s %8s %8s  %-34s %10s %10s %8s\n' test "qemu median" "exitscope" "es/qemu" boots target \
    "qemu min" "es min" "es/qemu"

for t in $tests; do
    q=$(awk -v t="$t" '$1 == "qemu" && $2 == t { print $3 }' "$work/all" | median)
    e=$(awk -v t="$t" '$1 == "exitscope" && $2 == t { print $3 }' "$work/all" | median)
    nq=$(awk -v t="$t" '$1 == "qemu" && $2 == t' "$work/all" | wc -l)
    ne=$(awk -v t="$t" '$1 == "exitscope" && $2 == t' "$work/all" | wc -l)
    # Contention only ever adds cycles: the minimum shows the cost with the least of it.
    qm=$(awk -v t="$t" '$1 == "qemu" && $2 == t { print $3 }' "$work/all" | minimum)
    em=$(awk -v t="$t" '$1 == "exitscope" && $2 == t { print $3 }' "$work/all" | minimum)
    if [ -z "$q" ] || [ -z "$e" ]; then
        printf '%-20s %12s %12s %8s %8s  %s\n' "$t" "${q:--}" "${e:--}" - "$nq/$ne" "no figure"
        continue
    fi
    ratio=$(awk -v e="$e" -v q="$q" 'BEGIN { printf "%.3f", e / q }')
    if [ "$t" = inl_from_qemu ]; then
        verdict=$(awk -v r="$ratio" 'BEGIN { s = 1 / r; printf "%.2fx faster: %s (>= 1.3x)", s, (s >= 1.3 ? "met" : "MISSED") }')
    else
        verdict=$(awk -v r="$ratio" 'BEGIN { d = (r - 1) * 100; printf "%+.1f%%: %s (within 5%%)", d, (d <= 5 && d >= -5) ? "met" : "MISSED" }')
    fi
    mratio=$(awk -v e="$em" -v q="$qm" 'BEGIN { printf "%.3f", e / q }')
    printf '%-20s %12.0f %12.0f %8s %8s  %-34s %10s %10s %8s\n' "$t" "$q" "$e" "$ratio" "$nq/$ne" "$verdict" \
        "$qm" "$em" "$mratio"
done
echo
echo "per boot (cycles):"
for vmm in qemu exitscope; do
    for t in $tests; do
        printf '  %-9s %-20s %s\n' "$vmm" "$t" "$(awk -v v="$vmm" -v t="$t" '$1 == v && $2 == t { printf "%s ", $3 }' "$work/all")"
    done
done

if [ "${ALL:-0}" = 1 ]; then
    # Every test of the image alone in its own boot (smp 2 for those that need an AP), as
    # unittests.cfg runs them: does each VMM print a result for it?
    echo
    echo "every test, one boot each (timeout ${ALL_TIMEOUT:-60}s):"
    # vmexit.c's test table, in its order.
    all_tests="cpuid vmcall wbinvd invd mov_from_cr8 mov_to_cr8 inl_from_pmtimer inl_from_qemu
        inl_from_kernel outl_to_kernel mov_dr tscdeadline_immed tscdeadline self_ipi_sti_nop
        self_ipi_sti_hlt self_ipi_tpr self_ipi_tpr_sti_nop self_ipi_tpr_sti_hlt
        x2apic_self_ipi_sti_nop x2apic_self_ipi_sti_hlt x2apic_self_ipi_tpr
        x2apic_self_ipi_tpr_sti_nop x2apic_self_ipi_tpr_sti_hlt ipi ipi_halt ple_round_robin
        wr_kernel_gs_base wr_tsx_ctrl_msr wr_ibrs_msr wr_ibpb_msr wr_tsc_adjust_msr
        rd_tsc_adjust_msr toggle_cr0_wp toggle_cr4_pge pci-mem pci-io"
    all_timeout=${ALL_TIMEOUT:-60}
    printf '%-28s %-24s %-24s\n' test qemu exitscope
    for t in $all_tests; do
        smp=1
        case $t in ipi|ipi_halt|toggle_cr0_wp|toggle_cr4_pge) smp=2 ;; esac
        pick() { grep -E "^[0-9]*([a-z0-9_]+:)?$t( |$)" | sed -E 's/^[0-9]+([a-z])/\1/' | head -1 || true; }
        q=$(timeout -k 5 "$all_timeout" qemu-system-x86_64 --no-reboot -nodefaults -device pc-testdev \
            -device isa-debug-exit,iobase=0xf4,iosize=0x4 -display none -serial stdio \
            -machine accel=kvm -cpu "$qemu_cpu" -kernel "$flat" -smp "$smp" -append "$t" 2>/dev/null |
            tr -d '\r' | pick || true)
        e=$("$bin" bench --kut "$flat" --smp "$smp" --timeout "$all_timeout" --json "$t" 2>&1 >/dev/null | pick || true)
        printf '%-28s %-24s %-24s\n' "$t (smp $smp)" "${q:-no result (timeout)}" "${e:-no result (timeout)}"
    done
fi
