//! The port-I/O devices a kvm-unit-tests guest touches in userspace, as plain state
//! machines (no KVM here: the exit loop feeds them, tests feed them by hand).
//!
//! | ports | device | what the guest does with it |
//! |---|---|---|
//! | 0x3f8–0x3ff | 16550 UART, polled | spins on LSR (0x3fd) for THRE, writes THR; output is captured line by line |
//! | 0xf4–0xf7 | isa-debug-exit | `outl(code, 0xf4)` at the end; QEMU exits with `(code << 1) \| 1` |
//! | 0x8900 | Bochs/QEMU shutdown | the string `Shutdown`, written if the debug exit did not stop the VM |
//! | 0x510, 0x511 | fw_cfg (traditional interface) | 16-bit key to 0x510, bytes from 0x511 (`NB_CPUS`, `RAM_SIZE`, …) |
//! | 0xcf8, 0xcfc–0xcff | PCI configuration mechanism #1 | every read answers all ones: no device, so PCI tests skip |
//! | 0xb008 | ACPI PM timer | 24-bit counter at 3.579545 MHz (`inl_from_pmtimer`) |
//! | anything else | unassigned | reads all ones, writes ignored (`inl_from_qemu` reads 0x1234) |
//!
//! The PIC (0x20/0x21, 0xa0/0xa1), its ELCR (0x4d0/0x4d1), the LAPIC and the IOAPIC are
//! KVM's in-kernel irqchip and never reach userspace.

use std::collections::BTreeMap;
use std::time::Duration;

/// Port numbers.
pub mod ports {
    /// COM1 base.
    pub const SERIAL: u16 = 0x3f8;
    /// isa-debug-exit (QEMU `-device isa-debug-exit,iobase=0xf4,iosize=0x4`).
    pub const DEBUG_EXIT: u16 = 0xf4;
    /// Number of ports of the debug-exit device.
    pub const DEBUG_EXIT_SIZE: u16 = 4;
    /// Bochs/QEMU shutdown port.
    pub const SHUTDOWN: u16 = 0x8900;
    /// fw_cfg selector.
    pub const FW_CFG_SELECT: u16 = 0x510;
    /// fw_cfg data.
    pub const FW_CFG_DATA: u16 = 0x511;
    /// PCI configuration address register.
    pub const PCI_ADDRESS: u16 = 0xcf8;
    /// PCI configuration data window (4 ports).
    pub const PCI_DATA: u16 = 0xcfc;
    /// ACPI PM timer, as in QEMU's i440FX machine (PM base 0xb000 + 8).
    pub const PM_TIMER: u16 = 0xb008;
}

/// Which device a port belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Device {
    /// The UART.
    Serial,
    /// isa-debug-exit.
    DebugExit,
    /// The shutdown port.
    Shutdown,
    /// fw_cfg.
    FwCfg,
    /// PCI configuration space.
    PciConfig,
    /// The ACPI PM timer.
    PmTimer,
    /// Nothing: reads all ones.
    Unassigned,
    /// MMIO outside RAM and the in-kernel LAPIC/IOAPIC: reads zero, writes ignored (never
    /// returned by [`device_at`]; counted by the exit loop).
    Mmio,
}

impl Device {
    /// Every device, in a fixed order (index = [`Device::index`]).
    pub const ALL: [Device; Device::COUNT] = [
        Device::Serial,
        Device::DebugExit,
        Device::Shutdown,
        Device::FwCfg,
        Device::PciConfig,
        Device::PmTimer,
        Device::Unassigned,
        Device::Mmio,
    ];
    /// Number of devices.
    pub const COUNT: usize = 8;

    /// Position in [`Device::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Short stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Device::Serial => "serial",
            Device::DebugExit => "debug-exit",
            Device::Shutdown => "shutdown",
            Device::FwCfg => "fw_cfg",
            Device::PciConfig => "pci-config",
            Device::PmTimer => "pm-timer",
            Device::Unassigned => "unassigned",
            Device::Mmio => "mmio",
        }
    }

    /// True for the devices the VMM's own plumbing uses (console, firmware, exit, PCI
    /// probing), as opposed to what a benchmark loop exercises (the PM timer, unassigned
    /// ports). Exits to these are taken out of a test's per-iteration figures.
    pub fn is_plumbing(self) -> bool {
        !matches!(self, Device::PmTimer | Device::Unassigned | Device::Mmio)
    }
}

/// The device at `port`.
pub fn device_at(port: u16) -> Device {
    match port {
        ports::SERIAL..=0x3ff => Device::Serial,
        ports::DEBUG_EXIT..=0xf7 => Device::DebugExit,
        ports::SHUTDOWN => Device::Shutdown,
        ports::FW_CFG_SELECT | ports::FW_CFG_DATA => Device::FwCfg,
        ports::PCI_ADDRESS | ports::PCI_DATA..=0xcff => Device::PciConfig,
        ports::PM_TIMER..=0xb00b => Device::PmTimer,
        _ => Device::Unassigned,
    }
}

/// Something a port write made happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The serial port completed a line (without its `\r\n`).
    Line(String),
    /// The guest wrote its exit code to isa-debug-exit.
    DebugExit(u32),
    /// The guest wrote `Shutdown` to the shutdown port.
    PowerOff,
}

/// A line longer than this is cut, so a guest that never sends `\n` cannot grow memory.
pub const MAX_LINE: usize = 64 * 1024;

/// A 16550 UART as a polled guest sees it: always ready to send, nothing to receive.
#[derive(Debug, Clone, Default)]
pub struct Serial {
    ier: u8,
    lcr: u8,
    mcr: u8,
    scr: u8,
    dll: u8,
    dlm: u8,
    fifo: bool,
    line: Vec<u8>,
}

/// LCR bit 7: divisor latch access.
const LCR_DLAB: u8 = 0x80;
/// LSR: transmitter holding register empty | transmitter empty.
const LSR_IDLE: u8 = 0x60;

impl Serial {
    /// Reads register `reg` (0–7).
    pub fn read(&self, reg: u16) -> u8 {
        let dlab = self.lcr & LCR_DLAB != 0;
        match reg {
            0 if dlab => self.dll,
            0 => 0, // RBR: no input
            1 if dlab => self.dlm,
            1 => self.ier,
            2 => {
                // IIR: no interrupt pending; FIFO bits when enabled.
                if self.fifo { 0xc1 } else { 0x01 }
            }
            3 => self.lcr,
            4 => self.mcr,
            5 => LSR_IDLE,
            6 => 0xb0, // MSR: DCD, DSR, CTS
            7 => self.scr,
            _ => 0xff,
        }
    }

    /// Writes `value` to register `reg`; returns a completed line.
    pub fn write(&mut self, reg: u16, value: u8) -> Option<String> {
        let dlab = self.lcr & LCR_DLAB != 0;
        match reg {
            0 if dlab => self.dll = value,
            0 => return self.put(value),
            1 if dlab => self.dlm = value,
            1 => self.ier = value & 0x0f,
            2 => self.fifo = value & 1 != 0,
            3 => self.lcr = value,
            4 => self.mcr = value & 0x1f,
            7 => self.scr = value,
            _ => {}
        }
        None
    }

    fn put(&mut self, byte: u8) -> Option<String> {
        match byte {
            b'\n' => Some(self.take_line()),
            b'\r' => None,
            _ => {
                self.line.push(byte);
                (self.line.len() >= MAX_LINE).then(|| self.take_line())
            }
        }
    }

    fn take_line(&mut self) -> String {
        let line = String::from_utf8_lossy(&self.line).into_owned();
        self.line.clear();
        line
    }

    /// Output after the last `\n`, if any (taken).
    pub fn flush(&mut self) -> Option<String> {
        (!self.line.is_empty()).then(|| self.take_line())
    }
}

/// fw_cfg keys (QEMU's `FW_CFG_*`).
pub mod fw_cfg_key {
    /// "QEMU".
    pub const SIGNATURE: u16 = 0x00;
    /// Interface revision / feature bits (1: traditional interface only).
    pub const ID: u16 = 0x01;
    /// RAM size in bytes (u64).
    pub const RAM_SIZE: u16 = 0x03;
    /// Number of vCPUs at boot (u16).
    pub const NB_CPUS: u16 = 0x05;
    /// Maximum number of vCPUs (u16).
    pub const MAX_CPUS: u16 = 0x0f;
}

/// QEMU's firmware configuration device, traditional (port) interface.
#[derive(Debug, Clone)]
pub struct FwCfg {
    entries: BTreeMap<u16, Vec<u8>>,
    selected: u16,
    offset: usize,
}

impl FwCfg {
    /// The entries a kvm-unit-tests guest can ask for.
    pub fn new(nb_cpus: u16, ram_size: u64) -> Self {
        let entries = BTreeMap::from([
            (fw_cfg_key::SIGNATURE, b"QEMU".to_vec()),
            (fw_cfg_key::ID, 1u32.to_le_bytes().to_vec()),
            (fw_cfg_key::RAM_SIZE, ram_size.to_le_bytes().to_vec()),
            (fw_cfg_key::NB_CPUS, nb_cpus.to_le_bytes().to_vec()),
            (fw_cfg_key::MAX_CPUS, nb_cpus.to_le_bytes().to_vec()),
        ]);
        FwCfg { entries, selected: 0, offset: 0 }
    }

    /// A write to the selector port: picks an entry and rewinds it.
    pub fn select(&mut self, key: u16) {
        self.selected = key;
        self.offset = 0;
    }

    /// The next byte of the selected entry (0 past its end or for unknown keys).
    pub fn read_byte(&mut self) -> u8 {
        let b = self.entries.get(&self.selected).and_then(|e| e.get(self.offset)).copied();
        self.offset = self.offset.saturating_add(1);
        b.unwrap_or(0)
    }
}

/// The shutdown port: recognises the string `Shutdown` written byte by byte.
#[derive(Debug, Clone, Copy, Default)]
pub struct ShutdownPort {
    matched: usize,
}

impl ShutdownPort {
    const MAGIC: &'static [u8] = b"Shutdown";

    /// Feeds one byte; true once the whole string has arrived.
    pub fn write(&mut self, byte: u8) -> bool {
        if Self::MAGIC.get(self.matched) == Some(&byte) {
            self.matched += 1;
        } else {
            self.matched = usize::from(byte == Self::MAGIC[0]);
        }
        if self.matched == Self::MAGIC.len() {
            self.matched = 0;
            return true;
        }
        false
    }
}

/// The ACPI PM timer frequency.
pub const PM_TIMER_HZ: u64 = 3_579_545;

/// The PM timer's value `elapsed` after the machine started: a 24-bit counter (the FADT
/// does not set `TMR_VAL_EXT`).
pub fn pm_timer(elapsed: Duration) -> u32 {
    let ticks = elapsed.as_nanos() * u128::from(PM_TIMER_HZ) / 1_000_000_000;
    u32::try_from(ticks & 0x00ff_ffff).unwrap_or(0)
}

/// The value an isa-debug-exit write carries: the bytes written, little-endian.
pub fn debug_exit_code(data: &[u8]) -> u32 {
    data.iter().take(4).rev().fold(0, |v, b| (v << 8) | u32::from(*b))
}

/// The process status QEMU exits with after isa-debug-exit receives `code`:
/// `(code << 1) | 1`, truncated to 8 bits by the kernel. kvm-unit-tests' runner
/// (`scripts/arch-run.bash`) reads 1 as PASS.
pub fn qemu_exit_status(code: u32) -> u8 {
    u8::try_from(((code << 1) | 1) & 0xff).unwrap_or(0xff)
}

/// The stateful userspace devices of one machine.
#[derive(Debug, Clone)]
pub struct PortBus {
    /// COM1.
    pub serial: Serial,
    /// fw_cfg.
    pub fw_cfg: FwCfg,
    /// Shutdown port.
    pub shutdown: ShutdownPort,
    /// The last value written to 0xcf8.
    pub pci_address: u32,
}

impl PortBus {
    /// Devices for a machine of `nb_cpus` vCPUs and `ram_size` bytes.
    pub fn new(nb_cpus: u16, ram_size: u64) -> Self {
        PortBus {
            serial: Serial::default(),
            fw_cfg: FwCfg::new(nb_cpus, ram_size),
            shutdown: ShutdownPort::default(),
            pci_address: 0,
        }
    }

    /// Serves an `in` of `data.len()` bytes from `port`; `elapsed` is the time since the
    /// machine started (for the PM timer).
    pub fn read(&mut self, port: u16, data: &mut [u8], elapsed: Duration) {
        match device_at(port) {
            Device::Serial => data.fill(self.serial.read(port - ports::SERIAL)),
            Device::FwCfg if port == ports::FW_CFG_DATA => {
                for b in data.iter_mut() {
                    *b = self.fw_cfg.read_byte();
                }
            }
            Device::PciConfig if port == ports::PCI_ADDRESS && data.len() == 4 => {
                data.copy_from_slice(&self.pci_address.to_le_bytes());
            }
            Device::PmTimer => fill_le(data, pm_timer(elapsed)),
            _ => data.fill(0xff),
        }
    }

    /// Serves an `out` of `data` to `port`.
    pub fn write(&mut self, port: u16, data: &[u8]) -> Option<Event> {
        let first = data.first().copied().unwrap_or(0);
        match device_at(port) {
            Device::Serial => self.serial.write(port - ports::SERIAL, first).map(Event::Line),
            Device::DebugExit => Some(Event::DebugExit(debug_exit_code(data))),
            Device::Shutdown => {
                data.iter().any(|b| self.shutdown.write(*b)).then_some(Event::PowerOff)
            }
            Device::FwCfg if port == ports::FW_CFG_SELECT => {
                let lo = u16::from(first);
                let hi = u16::from(data.get(1).copied().unwrap_or(0));
                self.fw_cfg.select(lo | (hi << 8));
                None
            }
            Device::PciConfig if port == ports::PCI_ADDRESS && data.len() == 4 => {
                self.pci_address = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
                None
            }
            _ => None,
        }
    }
}

fn fill_le(data: &mut [u8], value: u32) {
    for (b, v) in data.iter_mut().zip(value.to_le_bytes().into_iter().chain(std::iter::repeat(0))) {
        *b = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bus() -> PortBus {
        PortBus::new(2, 128 << 20)
    }

    fn inb(b: &mut PortBus, port: u16) -> u8 {
        let mut d = [0u8; 1];
        b.read(port, &mut d, Duration::ZERO);
        d[0]
    }

    #[test]
    fn serial_is_always_ready_and_assembles_crlf_lines() {
        let mut b = bus();
        assert_eq!(inb(&mut b, 0x3fd) & 0x20, 0x20, "THRE must be set or the guest spins");
        let mut lines = Vec::new();
        for c in b"cpuid 10244\r\nskip".iter() {
            if let Some(Event::Line(l)) = b.write(0x3f8, &[*c]) {
                lines.push(l);
            }
        }
        assert_eq!(lines, ["cpuid 10244"]);
        assert_eq!(b.serial.flush().as_deref(), Some("skip"));
        assert_eq!(b.serial.flush(), None);
    }

    #[test]
    fn serial_init_sequence_of_kvm_unit_tests_sets_and_clears_dlab() {
        // lib/x86/io.c serial_init: set DLAB, divisor 1, clear DLAB, IER 0, LCR 8N1, FCR 0, MCR 3.
        let mut s = Serial::default();
        s.write(3, s.read(3) | 0x80);
        s.write(0, 0x01);
        s.write(1, 0x00);
        assert_eq!((s.read(0), s.read(1)), (1, 0));
        s.write(3, s.read(3) & !0x80);
        s.write(1, 0x00);
        s.write(3, 0x03);
        s.write(2, 0x00);
        s.write(4, 0x03);
        assert_eq!((s.read(3), s.read(4), s.read(2)), (3, 3, 1));
        // With DLAB clear, register 0 is THR again: no divisor change, output captured.
        assert_eq!(s.write(0, b'\n'), Some(String::new()));
        s.write(2, 1);
        assert_eq!(s.read(2), 0xc1);
        s.write(7, 0x5a);
        assert_eq!(s.read(7), 0x5a);
    }

    #[test]
    fn serial_cuts_endless_lines() {
        let mut s = Serial::default();
        let cut = (0..MAX_LINE).filter_map(|_| s.write(0, b'x')).count();
        assert_eq!(cut, 1);
    }

    #[test]
    fn debug_exit_carries_the_code_and_qemu_status() {
        let mut b = bus();
        assert_eq!(b.write(0xf4, &0u32.to_le_bytes()), Some(Event::DebugExit(0)));
        assert_eq!(b.write(0xf4, &3u32.to_le_bytes()), Some(Event::DebugExit(3)));
        assert_eq!(b.write(0xf4, &[7]), Some(Event::DebugExit(7)));
        assert_eq!(qemu_exit_status(0), 1);
        assert_eq!(qemu_exit_status(1), 3);
        assert_eq!(qemu_exit_status(0x7f), 0xff);
        assert_eq!(qemu_exit_status(0x80), 1);
        assert_eq!(debug_exit_code(&[0x78, 0x56, 0x34, 0x12]), 0x1234_5678);
    }

    #[test]
    fn shutdown_port_needs_the_whole_string() {
        let mut b = bus();
        let fed =
            |b: &mut PortBus, s: &[u8]| s.iter().filter_map(|c| b.write(0x8900, &[*c])).count();
        assert_eq!(fed(&mut b, b"Shutdow"), 0);
        assert_eq!(fed(&mut b, b"xShutdown"), 1);
        assert_eq!(fed(&mut b, b"SShutdown"), 1);
    }

    #[test]
    fn fw_cfg_answers_nb_cpus_and_ram_size_little_endian() {
        let mut b = bus();
        let read = |b: &mut PortBus, key: u16, n: usize| {
            assert_eq!(b.write(0x510, &key.to_le_bytes()), None);
            (0..n).map(|i| u64::from(inb(b, 0x511)) << (8 * i)).sum::<u64>()
        };
        assert_eq!(read(&mut b, fw_cfg_key::NB_CPUS, 2), 2);
        assert_eq!(read(&mut b, fw_cfg_key::RAM_SIZE, 8), 128 << 20);
        assert_eq!(read(&mut b, fw_cfg_key::SIGNATURE, 4), u64::from(u32::from_le_bytes(*b"QEMU")));
        assert_eq!(read(&mut b, 0x1234, 4), 0);
        // Past the end of an entry: zeros; a new selection rewinds.
        b.write(0x510, &fw_cfg_key::NB_CPUS.to_le_bytes());
        let bytes: Vec<u8> = (0..4).map(|_| inb(&mut b, 0x511)).collect();
        assert_eq!(bytes, [2, 0, 0, 0]);
    }

    #[test]
    fn pci_config_reads_all_ones_so_no_device_is_found() {
        let mut b = bus();
        let addr = 0x8000_0000u32 | (3 << 11);
        b.write(0xcf8, &addr.to_le_bytes());
        let mut d = [0u8; 4];
        b.read(0xcf8, &mut d, Duration::ZERO);
        assert_eq!(u32::from_le_bytes(d), addr);
        let mut w = [0u8; 2];
        b.read(0xcfc, &mut w, Duration::ZERO);
        assert_eq!(u16::from_le_bytes(w), 0xffff);
        b.read(0xcfe, &mut w, Duration::ZERO);
        assert_eq!(w, [0xff, 0xff]);
    }

    #[test]
    fn unassigned_ports_read_all_ones() {
        let mut b = bus();
        let mut d = [0u8; 4];
        b.read(0x1234, &mut d, Duration::ZERO);
        assert_eq!(d, [0xff; 4]);
        assert_eq!(b.write(0x1234, &[1, 2, 3, 4]), None);
        assert_eq!(device_at(0x1234), Device::Unassigned);
        assert_eq!(device_at(0x4d0), Device::Unassigned); // ELCR: in-kernel, never seen here
        assert!(!Device::Unassigned.is_plumbing() && Device::Serial.is_plumbing());
        for (i, d) in Device::ALL.iter().enumerate() {
            assert_eq!(d.index(), i);
        }
    }

    #[test]
    fn pm_timer_counts_at_3_58_mhz_and_wraps_at_24_bits() {
        assert_eq!(pm_timer(Duration::ZERO), 0);
        assert_eq!(pm_timer(Duration::from_secs(1)), 3_579_545);
        let wrap = Duration::from_nanos(((1u64 << 24) * 1_000_000_000).div_ceil(PM_TIMER_HZ));
        assert!(pm_timer(wrap) < 2);
        let mut b = bus();
        let mut d = [0u8; 4];
        b.read(ports::PM_TIMER, &mut d, Duration::from_millis(10));
        assert_eq!(u32::from_le_bytes(d), 35_795);
    }
}
