# Makes graph-adversarial.txt, graph-adversarial-proc.txt and graph-chaos.txt (seeded, so
# re-running gives the same files):
#   python3 make_graph_fixtures.py graph-adversarial.txt graph-adversarial-proc.txt graph-chaos.txt
import random, sys
def gen(proc, seed, n_roots):
    r = random.Random(seed)
    out = []
    tasks = {0: ("qemu-sy", 4321), 1: ("qemu-sy", 4322), 2: ("kworker", 77)}
    extra_funcs = ["kvm_lapic_find_highest_irr [kvm]", "svm_cache_reg [kvm_amd]", "kvm_pmu_trigger_event [kvm]",
                   "kvm_load_guest_fpu [kvm]", "vcpu_load [kvm]", "x86_emulate_instruction [kvm]", "kvm_io_bus_write [kvm]"]
    def line(cpu, dur, depth, body):
        d = "           " if dur is None else ("%8.3f us  " % dur)
        t = ""
        if proc:
            c, p = tasks[cpu]
            t = " %s-%-6d |" % (c, p) if True else ""
            t = "  %-14s|" % ("%s-%d" % (c, p))
        return " %d) %s %s |  %s%s" % (cpu, t, d, "  " * depth, body)
    # open stacks per cpu (list of (func, start_dur_accum))
    stacks = {0: [], 1: [], 2: []}
    def emit_tree(cpu, depth, budget):
        # returns list of lines and duration
        pass
    lines = []
    seq = []
    for k in range(n_roots):
        cpu = r.choice([0, 1, 1, 2])
        ev = r.random()
        if ev < 0.04:
            lines.append("CPU:%d [LOST %d EVENTS]" % (cpu, r.randint(1, 9)))
            continue
        if ev < 0.10:
            a, b = cpu, r.choice([x for x in (0, 1, 2) if x != cpu])
            ca, pa = tasks[a]; cb, pb = tasks[b]
            # a task switch on cpu a: the task of b moves to a (migration)
            lines.append(" ------------------------------------------")
            lines.append(" %d) %s-%d  =>  %s-%d " % (a, ca, pa, cb, pb))
            lines.append(" ------------------------------------------")
            lines.append("")
            tasks[a], tasks[b] = tasks[b], tasks[a]
            continue
        if ev < 0.14:
            lines.append(line(cpu, r.randint(100, 9000) / 1000, 0, "}"))  # orphan return
            continue
        # a root, possibly interleaved with other cpus' lines
        body = []
        def tree(depth, name):
            kids = []
            total = 0.0
            if depth < 3 and r.random() < 0.6:
                for _ in range(r.randint(1, 3)):
                    if r.random() < 0.12:
                        f = "__sysvec_apic_timer_interrupt"
                    elif r.random() < 0.3:
                        f = r.choice(extra_funcs)
                    else:
                        f = r.choice(["svm_vcpu_run [kvm_amd]", "handle_exit [kvm_amd]", "kvm_cpuid [kvm]", "svm_complete_interrupts [kvm_amd]"])
                    ls, d = tree(depth + 1, f)
                    kids.extend(ls)
                    total += d
            own = r.randint(50, 900) / 1000
            d = total + own
            if kids:
                return ([(depth, None, name + "() {")] + kids + [(depth, d, "}")], d)
            return ([(depth, d, name + "();")], d)
        ls, d = tree(0, "vcpu_enter_guest [kvm]" if r.random() < 0.8 else "kvm_arch_vcpu_ioctl_run [kvm]")
        if r.random() < 0.1 and len(ls) > 3:
            # irq markers inside
            i = r.randint(1, len(ls) - 2)
            dep = ls[i][0]
            ls[i:i] = [("M", "==========>"), (dep, 0.3, "irq_enter_rcu();"), ("M", "<==========")]
        seq.append((cpu, ls))
    # interleave roots of different cpus line by line
    pending = []
    out = []
    li = iter(lines)
    while seq or pending:
        if seq and (len(pending) < 2 or r.random() < 0.3) and (CHAOS or seq[0][0] not in [q[0] for q in pending]):
            pending.append(list(seq.pop(0)))
            if lines and r.random() < 0.5:
                out.append(lines.pop(0))
        p = r.choice(pending)
        cpu, ls = p
        if not ls:
            pending.remove(p); continue
        it = ls.pop(0)
        if it[0] == "M":
            out.append(" %d)   %s |" % (cpu, it[1]) if not proc else " %d)  %-14s|   %s |" % (cpu, "%s-%d" % tasks[cpu], it[1]))
        else:
            out.append(line(cpu, it[1], it[0], it[2]))
    out.extend(lines)
    return "\n".join(out) + "\n"
CHAOS = False
open(sys.argv[1], "w").write(gen(False, 7, 300))
open(sys.argv[2], "w").write(gen(True, 11, 300))
CHAOS = True
open(sys.argv[3], "w").write(gen(False, 5, 150))
