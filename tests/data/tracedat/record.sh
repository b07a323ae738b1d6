#!/bin/sh
# Records the trace.dat fixtures of this directory (see README.md). Needs root, tracefs,
# /dev/kvm and Debian's trace-cmd. Uses a private tracefs instance, removed at the end;
# the top-level tracefs settings are never touched.
#   record.sh OUTDIR [GUEST_LOOPS] [BUFFER_KB]
# EVENTS (space-separated system:event list) replaces the default event list; with
# KERNEL_TEXT=1 the kernel's own text of the same buffer (the instance's `trace` file) is
# saved as OUTDIR/kernel.txt before trace-cmd reads the buffer.
set -eu
out=${1:?usage: record.sh OUTDIR [GUEST_LOOPS] [BUFFER_KB]}
loops=${2:-20}
bufkb=${3:-64}
here=$(cd "$(dirname "$0")" && pwd)
T=/sys/kernel/tracing
[ -e $T/instances ] || mount -t tracefs nodev $T
name=tdfix-$$
I=$T/instances/$name
mkdir "$I"
# trace-cmd extract removes the instance itself once it has read it.
trap '[ -d "$I" ] && rmdir "$I"; rm -rf "$tmp"' EXIT
tmp=$(mktemp -d)
echo 0 > "$I/tracing_on"
echo "$bufkb" > "$I/buffer_size_kb"
events=${EVENTS:-kvm:kvm_cpuid kvm:kvm_pio kvm:kvm_mmio kvm:kvm_emulate_insn kvm:kvm_userspace_exit \
        kvm:kvm_fpu kvm:kvm_exit kvm:kvm_entry sched:sched_switch sched:sched_process_exec}
for e in $events; do
    echo "$e" >> "$I/set_event"
done
# Only this script and its children (other KVM users may share the machine).
echo $$ > "$I/set_event_pid"
echo 1 > "$I/options/event-fork"
echo 1 > "$I/tracing_on"
python3 "$here/kvm_workload.py" "$loops"
ls / > /dev/null
echo 0 > "$I/tracing_on"
mkdir -p "$out"
if [ "${KERNEL_TEXT:-0}" = 1 ]; then
    cat "$I/trace" > "$out/kernel.txt"
fi
# Keep the file small: in a private mount namespace, hide /proc/kallsyms (5 MB) and show
# trace-cmd only the event formats of the systems we use (ftrace, kvm, sched) instead of
# all ~100 systems. The ring-buffer data is untouched.
mkdir -p "$tmp/events"
cp $T/events/header_page $T/events/header_event "$tmp/events/"
for sys in ftrace kvm sched; do
    for f in $T/events/$sys/*/format; do
        d="$tmp/events/$sys/$(basename "$(dirname "$f")")"
        mkdir -p "$d"
        cat "$f" > "$d/format"
    done
done
: > "$tmp/kallsyms"
unshare -m sh -c "mount --bind '$tmp/events' $T/events && mount --bind '$tmp/kallsyms' /proc/kallsyms && trace-cmd extract -B '$name' -o '$out/raw.dat'" > /dev/null
