#!/usr/bin/env python3
"""Smallest KVM program that makes kvm_cpuid events: a real-mode guest running
`xor eax,eax; cpuid` N times, then `hlt`. Test helper for `exitscope record`.

Usage: kvm_cpuid_loop.py [N]   (default 1000). Prints "cpuid-loop N=<n> exit=<reason>".
On the PVM host real mode is emulated, so every cpuid goes through the emulator
and fires kvm_cpuid; on VMX/SVM each cpuid is a real CPUID exit.
"""
import ctypes
import fcntl
import mmap
import os
import struct
import sys

KVMIO = 0xAE


def _io(nr):
    return (KVMIO << 8) | nr


def _iow(nr, size):
    return (1 << 30) | (size << 16) | (KVMIO << 8) | nr


def _ior(nr, size):
    return (2 << 30) | (size << 16) | (KVMIO << 8) | nr


KVM_CREATE_VM = _io(0x01)
KVM_GET_VCPU_MMAP_SIZE = _io(0x04)
KVM_CREATE_VCPU = _io(0x41)
KVM_SET_USER_MEMORY_REGION = _iow(0x46, 32)
KVM_RUN = _io(0x80)
KVM_GET_REGS = _ior(0x81, 144)
KVM_SET_REGS = _iow(0x82, 144)
KVM_GET_SREGS = _ior(0x83, 312)
KVM_SET_SREGS = _iow(0x84, 312)
KVM_EXIT_HLT = 5

MEM = 0x10000
CODE = 0x1000


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    if not 0 < n < 0x10000:
        sys.exit("N must be in 1..65535")
    kvm = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    vm = fcntl.ioctl(kvm, KVM_CREATE_VM, 0)
    mem = mmap.mmap(-1, MEM, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    # mov si, n; l: xor eax,eax (66 31 c0); cpuid; dec si; jnz l; hlt
    # (si, not cx: cpuid clobbers ecx)
    code = bytes([0xBE, n & 0xFF, n >> 8, 0x66, 0x31, 0xC0, 0x0F, 0xA2, 0x4E, 0x75, 0xF8, 0xF4])
    mem[CODE:CODE + len(code)] = code
    addr = ctypes.addressof(ctypes.c_char.from_buffer(mem))
    region = struct.pack("IIQQQ", 0, 0, 0, MEM, addr)
    fcntl.ioctl(vm, KVM_SET_USER_MEMORY_REGION, region)
    vcpu = fcntl.ioctl(vm, KVM_CREATE_VCPU, 0)
    size = fcntl.ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0)
    run = mmap.mmap(vcpu, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    sregs = bytearray(312)
    fcntl.ioctl(vcpu, KVM_GET_SREGS, sregs, True)
    # cs: base u64, limit u32, selector u16 -> set base 0, selector 0
    struct.pack_into("QIH", sregs, 0, 0, 0xFFFF, 0)
    fcntl.ioctl(vcpu, KVM_SET_SREGS, bytes(sregs))
    regs = bytearray(144)
    struct.pack_into("QQ", regs, 16 * 8, CODE, 2)  # rip, rflags
    fcntl.ioctl(vcpu, KVM_SET_REGS, bytes(regs))
    while True:
        fcntl.ioctl(vcpu, KVM_RUN, 0)
        reason = struct.unpack_from("I", run, 8)[0]
        if reason == KVM_EXIT_HLT:
            break
        sys.exit(f"unexpected exit reason {reason}")
    print(f"cpuid-loop N={n} exit=hlt")


if __name__ == "__main__":
    main()
