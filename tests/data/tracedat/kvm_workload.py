#!/usr/bin/env python3
"""Tiny KVM workload used to make the trace.dat fixtures (see README.md).

Opens /dev/kvm, creates a VM with 32 KiB of RAM and one vCPU in real mode, and runs a
guest loop that does `out 0x10, al` (port I/O exit -> kvm_pio, kvm_userspace_exit),
`cpuid` (kvm_cpuid) and a write to unmapped memory at 0x9000 (MMIO exit ->
kvm_emulate_insn, kvm_mmio), N times, then `hlt`. Usage: kvm_workload.py [N]
"""
import ctypes
import fcntl
import mmap
import os
import struct
import sys

KVM_CREATE_VM = 0xAE01
KVM_GET_VCPU_MMAP_SIZE = 0xAE04
KVM_CREATE_VCPU = 0xAE41
KVM_SET_USER_MEMORY_REGION = 0x4020AE46
KVM_RUN = 0xAE80
KVM_GET_REGS = 0x8090AE81
KVM_SET_REGS = 0x4090AE82
KVM_GET_SREGS = 0x8138AE83
KVM_SET_SREGS = 0x4138AE84
EXIT_IO, EXIT_HLT, EXIT_MMIO = 2, 5, 6

n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
if n <= 0xFFFF:
    # 16-bit counter: the code the small fixtures were recorded with.
    head, dec, back = bytes([0xBE]) + struct.pack("<H", n), bytes([0x4E]), 0xF1  # mov si, n / dec si
else:
    # 32-bit counter for long runs (the benchmark file).
    head, dec, back = bytes([0x66, 0xBE]) + struct.pack("<I", n), bytes([0x66, 0x4E]), 0xF0
code = head + bytes([
    0xB0, 0x41,                               # loop: mov al, 0x41
    0xE6, 0x10,                               # out 0x10, al
    0x66, 0x31, 0xC0,                         # xor eax, eax
    0x0F, 0xA2,                               # cpuid (clobbers ecx, so the counter is esi)
    0xA2, 0x00, 0x90,                         # mov [0x9000], al  (MMIO)
]) + dec + bytes([
    0x75, back,                               # jnz loop
    0xF4,                                     # hlt
])

kvm = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
vm = fcntl.ioctl(kvm, KVM_CREATE_VM, 0)
mem = mmap.mmap(-1, 0x8000)
mem[0x1000:0x1000 + len(code)] = code
addr = ctypes.addressof(ctypes.c_char.from_buffer(mem))
fcntl.ioctl(vm, KVM_SET_USER_MEMORY_REGION, struct.pack("<IIQQQ", 0, 0, 0, 0x8000, addr))
vcpu = fcntl.ioctl(vm, KVM_CREATE_VCPU, 0)
run_size = fcntl.ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0)
run = mmap.mmap(vcpu, run_size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)

sregs = bytearray(312)
fcntl.ioctl(vcpu, KVM_GET_SREGS, sregs)
struct.pack_into("<QIH", sregs, 0, 0, 0xFFFF, 0)  # cs.base = 0, cs.selector = 0
fcntl.ioctl(vcpu, KVM_SET_SREGS, bytes(sregs))
regs = bytearray(144)
fcntl.ioctl(vcpu, KVM_GET_REGS, regs)
struct.pack_into("<QQ", regs, 128, 0x1000, 2)  # rip, rflags
fcntl.ioctl(vcpu, KVM_SET_REGS, bytes(regs))

counts = {}
while True:
    fcntl.ioctl(vcpu, KVM_RUN, 0)
    reason = struct.unpack_from("<I", run, 8)[0]
    counts[reason] = counts.get(reason, 0) + 1
    if reason in (EXIT_IO, EXIT_MMIO):
        continue
    break
print("exits:", counts, file=sys.stderr)
