#!/usr/bin/env python3
"""Writes the hand-made big-root fixtures (see tests/data/README-exits.md).

Run from this directory: `python3 make_fixture.py`. Shapes follow a Debian 6.1 kvm_amd host
under QEMU TCG (the lab): vcpu_enter_guest/vcpu_run are inlined into kvm_arch_vcpu_ioctl_run,
there is no NRIPS so instructions are skipped through the emulator, durations are emulator
times (50-100x hardware). Self times are written by hand per function and varied by a fixed
pseudo-random sequence; every parent's duration is its self time plus its children's, so the
numbers are consistent the way ftrace's are.
"""

import os

SEED = [7]


def jitter(ns):
    # Deterministic LCG: +-12 %.
    SEED[0] = (SEED[0] * 1103515245 + 12345) % (1 << 31)
    return max(1, ns + (ns * ((SEED[0] % 25) - 12)) // 100)


def F(name, mod, self_ns, *kids):
    return ("call", name, mod, self_ns, list(kids))


def EV(text):
    return ("event", text)


def emulate_skip():
    # No NRIPS: kvm_skip_emulated_instruction decodes the instruction to skip it.
    return F("svm_skip_emulated_instruction", "kvm_amd", 1900,
             F("kvm_emulate_instruction", "kvm", 900,
               F("x86_emulate_instruction", "kvm", 2600,
                 F("init_emulate_ctxt", "kvm", 1100,
                   F("svm_get_cs_db_l_bits", "kvm_amd", 700)),
                 F("x86_decode_insn", "kvm", 4200,
                   F("__do_insn_fetch_bytes", "kvm", 1500,
                     F("kvm_fetch_guest_virt", "kvm", 1800,
                       F("paging64_gva_to_gpa", "kvm", 2100),
                       F("kvm_vcpu_read_guest_page", "kvm", 1300)))),
                 F("svm_set_interrupt_shadow", "kvm_amd", 650))))


def cpuid_handler():
    return F("kvm_emulate_cpuid", "kvm", 2300,
             F("kvm_cpuid", "kvm", 2900),
             F("kvm_skip_emulated_instruction", "kvm", 1500,
               F("svm_get_rflags", "kvm_amd", 650),
               emulate_skip()))


def io_handler():
    return F("io_interception", "kvm_amd", 1700,
             F("kvm_fast_pio", "kvm", 1400,
               F("emulator_pio_in_out", "kvm", 1600,
                 F("kernel_pio", "kvm", 1200,
                   F("kvm_io_bus_write", "kvm", 1300,
                     F("__kvm_io_bus_write", "kvm", 900))))))


def mmio_handler():
    return F("npf_interception", "kvm_amd", 2100,
             F("kvm_mmu_page_fault", "kvm", 2400,
               F("handle_mmio_page_fault", "kvm", 1800,
                 F("get_mmio_spte", "kvm", 1500)),
               F("x86_emulate_instruction", "kvm", 3100,
                 F("x86_decode_insn", "kvm", 3900),
                 F("x86_emulate_insn", "kvm", 2800,
                   F("emulator_write_emulated", "kvm", 900,
                     F("emulator_read_write", "kvm", 1200,
                       F("vcpu_mmio_write", "kvm", 1100,
                         F("kvm_io_bus_write", "kvm", 1000))))))))


def wrmsr_handler():
    return F("msr_interception", "kvm_amd", 1500,
             F("kvm_emulate_wrmsr", "kvm", 1800,
               F("kvm_set_msr_with_filter", "kvm", 1100,
                 F("__kvm_set_msr", "kvm", 900,
                   F("svm_set_msr", "kvm_amd", 1400,
                     F("kvm_set_msr_common", "kvm", 1700)))),
               F("kvm_skip_emulated_instruction", "kvm", 1400,
                 F("svm_get_rflags", "kvm_amd", 600),
                 emulate_skip())))


def unknown_handler():
    return F("svm_handle_invalid_exit", "kvm_amd", 2500,
             F("dump_vmcb", "kvm_amd", 9000))


def irq():
    # A host timer interrupt taken after local_irq_enable() in the inlined vcpu_enter_guest:
    # on modern x86 it shows nested, with no ==========> marker.
    return F("__sysvec_apic_timer_interrupt", None, 1800,
             F("hrtimer_interrupt", None, 2400,
               F("_raw_spin_lock_irqsave", None, 600),
               F("__hrtimer_run_queues", None, 1900,
                 F("tick_sched_timer", None, 3100)),
               F("hrtimer_update_next_event", None, 900)),
             F("irq_exit_rcu", None, 800))


def exit_(handler, events=None, irq_after_run=False, rip="0xffffffff8106fd1e"):
    """The inlined vcpu_enter_guest of one exit: what precedes the run call, the run call,
    the exit handling."""
    run_kids = [F("kvm_load_guest_xsave_state", "kvm", 800)]
    if events is not None:
        run_kids.append(EV(f"kvm_entry: vcpu 0, rip {rip}"))
        run_kids.append(EV(events))
    run_kids.append(F("kvm_load_host_xsave_state", "kvm", 750))
    run_kids.append(F("svm_complete_interrupts", "kvm_amd", 600))
    calls = [
        F("kvm_check_async_pf_completion", "kvm", 500),
        F("svm_prepare_switch_to_guest", "kvm_amd", 1200),
        F("kvm_vcpu_exit_request", "kvm", 550),
        F("svm_vcpu_run", "kvm_amd", 38000, *run_kids),
        F("svm_handle_exit_irqoff", "kvm_amd", 600),
    ]
    if irq_after_run:
        calls.append(irq())
    calls.append(F("svm_handle_exit", "kvm_amd", 1300,
                   F("svm_invoke_exit_handler", "kvm_amd", 900, handler)))
    return calls


def ioctl(exits):
    kids = [F("vcpu_load", "kvm", 700,
              F("kvm_arch_vcpu_load", "kvm", 1200,
                F("svm_vcpu_load", "kvm_amd", 1600))),
            F("kvm_load_guest_fpu", "kvm", 900,
              F("fpu_swap_kvm_fpstate", None, 1400))]
    for e in exits:
        kids.extend(e)
    kids.append(F("kvm_put_guest_fpu", "kvm", 800, F("fpu_swap_kvm_fpstate", None, 1300)))
    kids.append(F("vcpu_put", "kvm", 600,
                  F("kvm_arch_vcpu_put", "kvm", 1000,
                    F("svm_vcpu_put", "kvm_amd", 1500))))
    return F("kvm_arch_vcpu_ioctl_run", "kvm", 9000, *kids)


def dur_of(node):
    if node[0] != "call":
        return 0
    _, name, mod, self_ns, kids = node
    return self_ns + sum(dur_of(k) for k in kids)


def fix_durations(node):
    """Jitter self times once, return a tree with ('call', name, mod, self, kids)."""
    if node[0] != "call":
        return node
    _, name, mod, self_ns, kids = node
    return ("call", name, mod, jitter(self_ns), [fix_durations(k) for k in kids])


def fmt_dur(ns):
    num = f"{ns // 1000}.{ns % 1000:03d}"
    us = ns / 1000
    mark = " "
    for limit, m in ((1_000_000, "$"), (100_000, "@"), (10_000, "*"), (1000, "#"), (100, "!"), (10, "+")):
        if us > limit:
            mark = m
            break
    return f"{mark} {num} us {' ' * max(0, 8 - len(num))}|"


def emit(node, depth, cpu, out):
    pre = f"{cpu:>2}) "
    fill = " " * 14 + "|"
    if node[0] == "event":
        # Comments are indented (d+1)*2 at depth d > 0, not at all at depth 0 (§6.3).
        ind = "  " * depth if depth > 0 else ""
        out.append(f"{pre}{fill}  {ind}/* {node[1]} */")
        return
    _, name, mod, self_ns, kids = node
    label = f"{name} [{mod}]" if mod else name
    ind = "  " * depth
    if not kids:
        out.append(f"{pre}{fmt_dur(dur_of(node))}  {ind}{label}();")
        return
    out.append(f"{pre}{fill}  {ind}{label}() {{")
    for k in kids:
        emit(k, depth + 1, cpu, out)
    out.append(f"{pre}{fmt_dur(dur_of(node))}  {ind}}}")


def write(path, roots, cpu=0):
    out = []
    for r in roots:
        emit(fix_durations(r), 0, cpu, out)
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


here = os.path.dirname(os.path.abspath(__file__))
cpuid = lambda **kw: exit_(cpuid_handler(), **kw)

# Two KVM_RUN ioctls of `kvmloop cpuid`: in-kernel cpuid exits, one timer interrupt that
# forces an exit, and the `out` that returns to userspace.
intr = F("intr_interception", "kvm_amd", 1100)
write(os.path.join(here, "input.fgraph.txt"), [
    ioctl([cpuid(), cpuid(), cpuid(), exit_(intr, irq_after_run=True), cpuid(),
           exit_(io_handler())]),
    ioctl([cpuid(), cpuid(), exit_(io_handler())]),
])

# The same with kvm:kvm_entry/kvm_exit enabled (6.1 format): the events name the reason.
ev = lambda r, i1="0x0000000000000000": (
    f"kvm_exit: vcpu 0 reason {r} rip 0xffffffff8106fd1e info1 {i1} "
    "info2 0x0000000000000000 intr_info 0x00000000 error_code 0x00000000")
write(os.path.join(here, "..", "ioctl-run-events", "input.fgraph.txt"), [
    ioctl([exit_(cpuid_handler(), events=ev("cpuid")),
           exit_(mmio_handler(), events=ev("npf", "0x0000000100000006")),
           exit_(wrmsr_handler(), events=ev("msr", "0x0000000000000001")),
           exit_(F("intr_interception", "kvm_amd", 1100), events=ev("interrupt"),
                 irq_after_run=True),
           exit_(unknown_handler(), events=ev("0x403")),
           exit_(io_handler(), events=ev("io", "0x0000000000f40210"))]),
])
