//! The crate's only `unsafe` code: the guest memory slot, the stats fd ioctl, the vCPU
//! kick signal, gettid, the huge-page advice for guest RAM and pinning the vCPU thread to a
//! CPU. Each operation is wrapped in a safe function or owner type whose
//! invariants make the `unsafe` sound; everything else uses kvm-ioctls' safe API.

use std::fs::File;
use std::io;
use std::os::fd::FromRawFd;
use std::sync::{Arc, OnceLock};

use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::{Kvm, VcpuFd, VmFd};
use libc::{c_int, c_void, siginfo_t};
use vm_memory::{
    Address, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion,
    MemoryRegionAddress,
};
use vmm_sys_util::ioctl::ioctl;
use vmm_sys_util::ioctl_io_nr;
use vmm_sys_util::signal::{SIGRTMIN, register_signal_handler};

use crate::vm::SetupError;

/// `KVMIO`, the ioctl type of every KVM ioctl.
const KVMIO: u32 = 0xae;
ioctl_io_nr!(KVM_GET_STATS_FD, KVMIO, 0xce);

/// A VM with its guest memory and its single vCPU.
///
/// The field order is the drop order: the vCPU and VM fds are closed before the memory
/// they point at is unmapped, which is what makes registering the memory sound.
#[derive(Debug)]
pub(crate) struct Machine {
    /// The vCPU (id 0).
    pub(crate) vcpu: VcpuFd,
    /// Kept open for the VM's lifetime; dropped after the vCPU and before `mem`.
    _vm: VmFd,
    /// Guest RAM, one region at guest-physical 0.
    pub(crate) mem: GuestMemoryMmap,
}

impl Machine {
    /// Creates a VM with `ram_size` bytes of RAM at guest-physical 0, the in-kernel irqchip
    /// (PIC, IOAPIC, LAPIC: it must exist before any vCPU) and vCPU 0.
    pub(crate) fn new(kvm: &Kvm, ram_size: usize) -> Result<Self, SetupError> {
        let (vm, mem) = vm_with_ram(kvm, ram_size, false)?;
        let vcpu = vm.create_vcpu(0).map_err(SetupError::CreateVcpu)?;
        Ok(Machine { vcpu, _vm: vm, mem })
    }

    /// Opens the vCPU's binary statistics fd (`KVM_GET_STATS_FD`, Linux 5.14+).
    pub(crate) fn vcpu_stats_fd(&self) -> io::Result<File> {
        vcpu_stats_fd(&self.vcpu)
    }
}

/// A VM, its RAM at guest-physical 0 and the in-kernel irqchip; the memory is registered
/// with KVM. The caller must keep `mem` alive until the VM and every vCPU fd are closed.
/// `huge` asks for transparent huge pages (`MADV_HUGEPAGE`), as QEMU does for guest RAM.
fn vm_with_ram(
    kvm: &Kvm,
    ram_size: usize,
    huge: bool,
) -> Result<(VmFd, GuestMemoryMmap), SetupError> {
    let vm = kvm.create_vm().map_err(SetupError::CreateVm)?;
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), ram_size)])
        .map_err(|e| SetupError::Memory(e.to_string()))?;
    for (slot, region) in (0u32..).zip(mem.iter()) {
        let host = region
            .get_host_address(MemoryRegionAddress(0))
            .map_err(|e| SetupError::Memory(e.to_string()))?;
        if huge {
            let len = usize::try_from(region.len()).unwrap_or(0);
            // SAFETY: `host..host+len` is exactly one mapping owned by `mem`; MADV_HUGEPAGE
            // only changes how the kernel backs it, never its contents or validity. A
            // failure (THP disabled) leaves ordinary pages, which is fine.
            let _ = unsafe { libc::madvise(host.cast(), len, libc::MADV_HUGEPAGE) };
        }
        let desc = kvm_userspace_memory_region {
            slot,
            flags: 0,
            guest_phys_addr: region.start_addr().raw_value(),
            memory_size: region.len(),
            userspace_addr: host as u64,
        };
        // SAFETY: `host..host+len` is a live anonymous mapping owned by `mem`; both callers
        // (`Machine`, `SharedVm`) store `mem` next to `vm` and drop it only after `vm` and
        // every vCPU fd are closed, so KVM never sees a dangling mapping. The slot numbers
        // are distinct and the regions do not overlap.
        unsafe { vm.set_user_memory_region(desc) }.map_err(SetupError::MemorySlot)?;
    }
    vm.create_irq_chip().map_err(SetupError::Irqchip)?;
    Ok((vm, mem))
}

/// Opens `vcpu`'s binary statistics fd (`KVM_GET_STATS_FD`, Linux 5.14+).
pub(crate) fn vcpu_stats_fd(vcpu: &VcpuFd) -> io::Result<File> {
    // SAFETY: KVM_GET_STATS_FD takes no argument and only returns a new fd or -1;
    // `vcpu` is a valid open vCPU fd for the duration of the call.
    let fd = unsafe { ioctl(vcpu, KVM_GET_STATS_FD()) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the ioctl just returned this fd to us; nothing else owns it, so the
    // `File` becomes its only owner and closes it exactly once.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// A VM with several vCPUs that run on their own threads: the VM fd and the guest
/// memory, shared by every [`OwnedVcpu`] through an `Arc`.
///
/// Field order is drop order: the VM fd closes before the memory is unmapped, and the
/// memory cannot go before the last vCPU (each holds the `Arc`), which makes the memory
/// registration sound however the threads end.
#[derive(Debug)]
pub(crate) struct SharedVm {
    vm: VmFd,
    /// Guest RAM, one region at guest-physical 0.
    pub(crate) mem: GuestMemoryMmap,
}

impl SharedVm {
    /// Creates the VM, `ram_size` bytes of RAM (transparent huge pages where the host
    /// allows, as QEMU's guest RAM) and the in-kernel irqchip (no vCPU yet).
    pub(crate) fn new(kvm: &Kvm, ram_size: usize) -> Result<Arc<Self>, SetupError> {
        let (vm, mem) = vm_with_ram(kvm, ram_size, true)?;
        Ok(Arc::new(SharedVm { vm, mem }))
    }

    /// Creates vCPU `id`; the returned owner keeps the VM and its memory alive.
    pub(crate) fn create_vcpu(self: &Arc<Self>, id: u64) -> Result<OwnedVcpu, SetupError> {
        let fd = self.vm.create_vcpu(id).map_err(SetupError::CreateVcpu)?;
        Ok(OwnedVcpu { fd, _vm: Arc::clone(self) })
    }
}

/// One vCPU of a [`SharedVm`]. The fd is declared first so it closes before this
/// vCPU's reference to the VM and its memory is released.
#[derive(Debug)]
pub(crate) struct OwnedVcpu {
    /// The vCPU.
    pub(crate) fd: VcpuFd,
    _vm: Arc<SharedVm>,
}

/// The calling thread's kernel thread id (what tracefs `set_event_pid` filters on).
pub(crate) fn current_tid() -> i32 {
    // SAFETY: gettid(2) has no arguments, cannot fail and touches no memory.
    unsafe { libc::gettid() }
}

extern "C" fn kick_handler(_: c_int, _: *mut siginfo_t, _: *mut c_void) {
    // Nothing to do: delivering the signal makes a blocked KVM_RUN return EINTR.
}

/// The real-time signal used to kick a vCPU thread out of `KVM_RUN`; its handler is
/// installed (without SA_RESTART) the first time this is called.
///
/// # Errors
///
/// If the handler cannot be installed.
pub(crate) fn kick_signal() -> Result<c_int, String> {
    static SIGNAL: OnceLock<Result<c_int, String>> = OnceLock::new();
    SIGNAL
        .get_or_init(|| {
            let sig = SIGRTMIN();
            register_signal_handler(sig, kick_handler)
                .map(|()| sig)
                .map_err(|e| format!("installing the vCPU kick signal handler: {e}"))
        })
        .clone()
}

/// Pins the calling thread to `cpu` (`sched_setaffinity(0, {cpu})`).
///
/// # Errors
///
/// The OS error, e.g. EINVAL when `cpu` is offline or outside the process's cpuset.
pub(crate) fn pin_current_thread(cpu: u32) -> Result<(), String> {
    let index = usize::try_from(cpu).map_err(|_| format!("CPU {cpu} is out of range"))?;
    let bits = 8 * std::mem::size_of::<libc::cpu_set_t>();
    if index >= bits {
        return Err(format!("CPU {cpu} is beyond the {bits} CPUs a cpu_set_t holds"));
    }
    // SAFETY: cpu_set_t is a plain bit array for which all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `index` is below the set's bit count (checked above), so the word it sets is
    // inside `set`.
    unsafe { libc::CPU_SET(index, &mut set) };
    // SAFETY: `set` is a valid, initialized cpu_set_t that lives across the call, the size
    // passed is its own, and pid 0 means the calling thread; the call only reads `set`.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(format!("pinning the vCPU thread to CPU {cpu}: {}", io::Error::last_os_error()))
    }
}
