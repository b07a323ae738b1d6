#!/bin/bash
# tests/lab/run.sh — boot the lab kernel under QEMU TCG (never /dev/kvm), run guest-job.sh
# inside it with the run directory shared over 9p at /out, and print where the results are.
# Adapted from ../shared/lab/run.sh.
#
# Usage: tests/lab/run.sh [RUN_DIR]          (default $LAB/runs/<stamp>)
# Env:   CPU (max)  SMP (1: with 2 vCPUs, switching the tracer back to nop hangs in
#        text_poke IPIs under TCG)  MEM (2048)  TIMEOUT (seconds, 900)  LAB (/tmp/exitscope-lab)
#        KDIR ($LAB/current)  APPEND_EXTRA (kernel command line)
#        STEPS MIN_CYCLES REPEAT BUF_KB RUN_ARGS GRAPH_FUNC KUT_TESTS KUT_ARGS   (passed to guest-job.sh)
# Exit:  0 when QEMU powered off by itself, 124 on timeout, else QEMU's status. The job's own
#        status is in RUN_DIR/job.rc. The last line printed is the run directory.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
LAB=${LAB:-/tmp/exitscope-lab}
KDIR=${KDIR:-$LAB/current}
CPU=${CPU:-max}
SMP=${SMP:-1}
MEM=${MEM:-2048}
TIMEOUT=${TIMEOUT:-900}
[ -f "$KDIR/vmlinuz" ] && [ -f "$KDIR/initramfs.cpio.gz" ] || { echo "run.sh: run build.sh first ($KDIR)" >&2; exit 1; }

RUN=${1:-$LAB/runs/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$RUN"
rm -f "$RUN/job.rc"
{
	for v in STEPS MIN_CYCLES REPEAT BUF_KB RUN_ARGS GRAPH_FUNC KUT_TESTS KUT_ARGS; do
		[ -n "${!v+set}" ] && printf '%s=%q\n' "$v" "${!v}"
	done
	cat "$HERE/guest-job.sh"
} > "$RUN/job.sh"

APPEND="console=ttyS0 panic=-1 rdinit=/init quiet ${APPEND_EXTRA:-}"
cmd=(qemu-system-x86_64 -accel tcg -cpu "$CPU" -smp "$SMP" -m "$MEM"
	-kernel "$KDIR/vmlinuz" -initrd "$KDIR/initramfs.cpio.gz" -append "$APPEND"
	-display none -monitor none -serial "file:$RUN/console.log" -no-reboot -nodefaults
	-virtfs "local,path=$RUN,mount_tag=out,security_model=none,id=out")
{
	echo "host: $(uname -r), $(qemu-system-x86_64 --version | head -1)"
	echo "kernel: $(readlink -f "$KDIR")"
	printf 'command: timeout %s' "$TIMEOUT"; printf ' %q' "${cmd[@]}"; echo
} > "$RUN/qemu-cmd.txt"

t0=$(date +%s.%N)
rc=0
timeout "$TIMEOUT" "${cmd[@]}" || rc=$?
t1=$(date +%s.%N)
echo "run.sh: qemu exited rc=$rc after $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}')s wall" | tee -a "$RUN/qemu-cmd.txt"
grep -h 'lab-init' "$RUN/console.log" || true
echo "$RUN"
exit $rc
