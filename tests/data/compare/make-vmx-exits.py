#!/usr/bin/env python3
"""Writes vmx-exits.txt: a kvm_exit/kvm_entry text trace in the kernel's VMX print format
(5.10+), as `exitscope record -o X.txt` writes it on a VMX host: the `# exitscope host:` line
first (the fingerprint of vmx-spr.bench.json, a Sapphire Rapids host), then the kernel's
header and 3 reasons x 60 exits on two vCPU threads. Handling times are drawn from a fixed
seed (EPT_VIOLATION ~30 us, MSR_WRITE ~20 us, IO_INSTRUCTION ~40 us; microsecond timestamps,
as the kernel's text prints them). Run from this directory: python3 make-vmx-exits.py
"""
import json
import random

rng = random.Random(17)
host = json.load(open("vmx-spr.bench.json"))["host"]
lines = ["# exitscope host: " + json.dumps(host, separators=(",", ":"))]
lines += [
    "# tracer: nop",
    "# exitscope record: kvm:kvm_exit kvm:kvm_entry",
]
reasons = [
    ("EPT_VIOLATION", 30, "0x0000000000000181"),
    ("MSR_WRITE", 20, "0x0000000000000000"),
    ("IO_INSTRUCTION", 40, "0x0000000003f80008"),
]
t = {0: 95922_000_000, 1: 95922_000_500}  # microseconds, per vCPU
events = []
for i in range(180):
    vcpu = i % 2
    reason, base, info1 = reasons[(i // 2) % 3]
    handling = base + rng.randint(-4, 6)
    exit_at = t[vcpu]
    entry_at = exit_at + handling
    t[vcpu] = entry_at + 50 + rng.randint(0, 30)
    rip = 0xFFFFFFFF81001000 + 0x10 * i
    tid = 18971 + vcpu
    events.append((exit_at, vcpu, tid, f"kvm_exit: vcpu {vcpu} reason {reason} rip {rip:#x} "
                   f"info1 {info1} info2 0x0000000000000000 intr_info 0x00000000 "
                   f"error_code 0x00000000"))
    events.append((entry_at, vcpu, tid, f"kvm_entry: vcpu {vcpu}, rip {rip + 2:#x}"))
for at, vcpu, tid, text in sorted(events):
    cpu = 15 + vcpu
    lines.append(f" qemu-system-x86-{tid}   [{cpu:03d}] d.... {at // 1_000_000}."
                 f"{at % 1_000_000:06d}: {text}")
open("vmx-exits.txt", "w").write("\n".join(lines) + "\n")
