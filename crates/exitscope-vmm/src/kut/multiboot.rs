//! The multiboot v1 loader: an ELF32 kernel loaded by its program headers, and the
//! multiboot information block the kernel finds through `EBX`.
//!
//! kvm-unit-tests' x86 `.flat` files are `objcopy -O elf32-i386` images of 64-bit
//! programs with a multiboot v1 header (magic `0x1BADB002`) in their first 8 KiB; they
//! start in 32-bit protected mode with paging off and build their own GDT and page
//! tables. Everything here is pure: parse bytes, produce what to write where.
//!
//! References: the Multiboot Specification 0.6.96 (header, boot state, information
//! structure) and the System V ABI's ELF32 layout.

use std::fmt;

/// Multiboot v1 header magic.
pub const HEADER_MAGIC: u32 = 0x1bad_b002;
/// What the loader puts in `EAX` for the kernel.
pub const BOOTLOADER_MAGIC: u32 = 0x2bad_b002;
/// The header must lie in the first 8 KiB of the file, 4-byte aligned.
const HEADER_SEARCH: usize = 8192;

/// Header flag bits a loader may meet: 0 = page-align modules, 1 = memory information
/// wanted, 2 = video mode wanted (ignored: there is no display), 16 = a.out kludge.
const FLAG_PAGE_ALIGN: u32 = 1 << 0;
const FLAG_MEMORY_INFO: u32 = 1 << 1;
const FLAG_VIDEO: u32 = 1 << 2;
const FLAG_AOUT_KLUDGE: u32 = 1 << 16;

/// A malformed or unsupported kernel image: what was expected, at which byte offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("byte offset {offset}: {message}")]
pub struct ImageError {
    /// Byte offset in the file where the problem was found.
    pub offset: u64,
    /// What was expected.
    pub message: String,
}

fn bad(offset: usize, message: impl Into<String>) -> ImageError {
    ImageError { offset: offset as u64, message: message.into() }
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off.checked_add(2)?)?.try_into().ok()?))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off.checked_add(4)?)?.try_into().ok()?))
}

fn usize_at(b: &[u8], off: usize) -> Option<usize> {
    usize::try_from(u32_at(b, off)?).ok()
}

/// The multiboot v1 header of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MultibootHeader {
    /// Byte offset of the header in the file.
    pub offset: usize,
    /// Its flags word.
    pub flags: u32,
}

/// Finds and checks the multiboot v1 header (magic, checksum, flags this loader honours).
///
/// # Errors
///
/// No header in the first 8 KiB, a bad checksum, or required flags this loader does not
/// support (the specification says a loader must refuse those).
pub fn find_header(image: &[u8]) -> Result<MultibootHeader, ImageError> {
    let limit = image.len().min(HEADER_SEARCH);
    let offset = (0..limit.saturating_sub(11))
        .step_by(4)
        .find(|&off| u32_at(image, off) == Some(HEADER_MAGIC))
        .ok_or_else(|| {
            bad(
                0,
                "no multiboot v1 header (magic 0x1BADB002) in the first 8 KiB; is this a \
                    kvm-unit-tests x86 .flat file?",
            )
        })?;
    let flags = u32_at(image, offset + 4).unwrap_or(0);
    let checksum = u32_at(image, offset + 8).unwrap_or(0);
    if HEADER_MAGIC.wrapping_add(flags).wrapping_add(checksum) != 0 {
        return Err(bad(
            offset + 8,
            format!("multiboot header checksum {checksum:#x} does not cancel magic + flags"),
        ));
    }
    if flags & FLAG_AOUT_KLUDGE != 0 {
        return Err(bad(
            offset + 4,
            "multiboot header asks for the a.out kludge (flags bit 16); only ELF images are \
             supported",
        ));
    }
    let unknown = flags & 0xffff & !(FLAG_PAGE_ALIGN | FLAG_MEMORY_INFO | FLAG_VIDEO);
    if unknown != 0 {
        return Err(bad(
            offset + 4,
            format!("multiboot header requires features this loader lacks (flags {unknown:#x})"),
        ));
    }
    Ok(MultibootHeader { offset, flags })
}

/// One `PT_LOAD` program header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Guest-physical load address (`p_paddr`).
    pub paddr: u64,
    /// File offset of the bytes.
    pub offset: usize,
    /// Bytes taken from the file.
    pub file_size: usize,
    /// Bytes in memory; the rest after `file_size` is zero (bss).
    pub mem_size: u64,
}

/// A parsed ELF32 kernel.
#[derive(Debug, Clone)]
pub struct Elf32<'a> {
    bytes: &'a [u8],
    /// Entry point (`e_entry`).
    pub entry: u32,
    /// The `PT_LOAD` segments in file order.
    pub segments: Vec<Segment>,
    /// The multiboot header.
    pub multiboot: MultibootHeader,
}

const PT_LOAD: u32 = 1;
const SHT_SYMTAB: u32 = 2;

impl<'a> Elf32<'a> {
    /// Parses an ELF32 little-endian i386 executable with a multiboot v1 header.
    ///
    /// # Errors
    ///
    /// [`ImageError`] naming the byte offset of the first field that is wrong.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ImageError> {
        if bytes.get(0..4) != Some(b"\x7fELF".as_slice()) {
            return Err(bad(0, "not an ELF file (expected \\x7fELF)"));
        }
        if bytes.get(4) != Some(&1) {
            return Err(bad(
                4,
                "not an ELF32 file (EI_CLASS must be 1); kvm-unit-tests' x86 \
                               .flat files are elf32-i386",
            ));
        }
        if bytes.get(5) != Some(&1) {
            return Err(bad(5, "not little-endian (EI_DATA must be 1)"));
        }
        let e_type = u16_at(bytes, 16).ok_or_else(|| bad(16, "truncated ELF header"))?;
        if e_type != 2 {
            return Err(bad(16, format!("ELF type {e_type} is not an executable (ET_EXEC)")));
        }
        let machine = u16_at(bytes, 18).ok_or_else(|| bad(18, "truncated ELF header"))?;
        if machine != 3 {
            return Err(bad(18, format!("ELF machine {machine} is not i386 (EM_386 = 3)")));
        }
        let entry = u32_at(bytes, 24).ok_or_else(|| bad(24, "truncated ELF header"))?;
        let phoff = usize_at(bytes, 28).ok_or_else(|| bad(28, "truncated ELF header"))?;
        let phentsize = u16_at(bytes, 42).ok_or_else(|| bad(42, "truncated ELF header"))?;
        let phnum = u16_at(bytes, 44).ok_or_else(|| bad(44, "truncated ELF header"))?;
        if phentsize < 32 {
            return Err(bad(42, format!("program header size {phentsize} < 32")));
        }
        let mut segments = Vec::new();
        for i in 0..usize::from(phnum) {
            let ph = phoff
                .checked_add(i * usize::from(phentsize))
                .filter(|ph| ph.checked_add(32).is_some_and(|end| end <= bytes.len()))
                .ok_or_else(|| {
                    bad(phoff, format!("program header {i} lies beyond the end of the file"))
                })?;
            if u32_at(bytes, ph) != Some(PT_LOAD) {
                continue;
            }
            let field = |k: usize| u32_at(bytes, ph + k).unwrap_or(0);
            let seg = Segment {
                offset: usize::try_from(field(4)).unwrap_or(usize::MAX),
                paddr: u64::from(field(12)),
                file_size: usize::try_from(field(16)).unwrap_or(usize::MAX),
                mem_size: u64::from(field(20)),
            };
            if seg.offset.checked_add(seg.file_size).is_none_or(|end| end > bytes.len()) {
                return Err(bad(
                    ph + 4,
                    format!(
                        "segment {i}: file bytes {:#x}+{:#x} extend past the end of the file \
                         ({} bytes)",
                        seg.offset,
                        seg.file_size,
                        bytes.len()
                    ),
                ));
            }
            if (seg.file_size as u64) > seg.mem_size {
                return Err(bad(ph + 16, format!("segment {i}: p_filesz > p_memsz")));
            }
            segments.push(seg);
        }
        if segments.is_empty() {
            return Err(bad(phoff, "no PT_LOAD program header"));
        }
        let multiboot = find_header(bytes)?;
        Ok(Elf32 { bytes, entry, segments, multiboot })
    }

    /// The bytes of `seg` in the file.
    pub fn file_bytes(&self, seg: &Segment) -> &'a [u8] {
        &self.bytes[seg.offset..seg.offset + seg.file_size]
    }

    /// Lowest and highest (exclusive) guest-physical address the segments occupy.
    pub fn extent(&self) -> (u64, u64) {
        let lo = self.segments.iter().map(|s| s.paddr).min().unwrap_or(0);
        let hi = self.segments.iter().map(|s| s.paddr + s.mem_size).max().unwrap_or(0);
        (lo, hi)
    }

    /// Address and size of the symbol `name` from `.symtab`, if the image has one. Used
    /// to read the guest's own counters (kvm-unit-tests' `iterations`); stripped images
    /// simply have none.
    pub fn symbol(&self, name: &str) -> Option<(u32, u32)> {
        let b = self.bytes;
        let shoff = usize_at(b, 32)?;
        let shentsize = usize::from(u16_at(b, 46)?);
        let shnum = usize::from(u16_at(b, 48)?);
        if shentsize < 40 {
            return None;
        }
        let section = |i: usize| {
            let sh = shoff.checked_add(i.checked_mul(shentsize)?)?;
            b.get(sh..sh.checked_add(40)?)?;
            Some(sh)
        };
        for i in 0..shnum {
            let sh = section(i)?;
            if u32_at(b, sh + 4)? != SHT_SYMTAB {
                continue;
            }
            let (off, size) = (usize_at(b, sh + 16)?, usize_at(b, sh + 20)?);
            let strtab = section(usize_at(b, sh + 24)?)?;
            let (str_off, str_size) = (usize_at(b, strtab + 16)?, usize_at(b, strtab + 20)?);
            let strings = b.get(str_off..str_off.checked_add(str_size)?)?;
            let syms = b.get(off..off.checked_add(size)?)?;
            for sym in syms.chunks_exact(16) {
                let name_off = usize_at(sym, 0)?;
                let raw = strings.get(name_off..)?;
                let end = raw.iter().position(|c| *c == 0)?;
                if &raw[..end] == name.as_bytes() {
                    return Some((u32_at(sym, 4)?, u32_at(sym, 8)?));
                }
            }
        }
        None
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}..{:#x}", self.paddr, self.paddr + self.mem_size)
    }
}

/// Where the VMM puts the multiboot information and what it points at, all below 1 MiB
/// (the kernel loads at 1 MiB or above; kvm-unit-tests uses page 0 for its AP trampoline
/// and its page allocator starts after its own image).
pub mod layout {
    /// The multiboot information structure (`EBX`).
    pub const INFO: u64 = 0x9000;
    /// The memory map entries.
    pub const MMAP: u64 = 0x9100;
    /// The module list (one entry).
    pub const MODULES: u64 = 0x9200;
    /// The module's own string ("env").
    pub const MODULE_STRING: u64 = 0x9240;
    /// The boot loader name.
    pub const LOADER_NAME: u64 = 0x9260;
    /// The command line, NUL-terminated.
    pub const CMDLINE: u64 = 0x9300;
    /// Room for the command line.
    pub const CMDLINE_MAX: usize = 0xa000 - 0x9300;
    /// The module's bytes (the `KEY=VAL` environment).
    pub const MODULE: u64 = 0xa000;
    /// Room for the module (kvm-unit-tests copies at most 16 KiB of it).
    pub const MODULE_MAX: usize = 0x6000;
    /// Conventional memory ends here (640 KiB minus the EBDA, as PC firmware reports it).
    pub const LOW_END: u64 = 0x9fc00;
    /// Start of the BIOS area, where the ACPI tables live.
    pub const BIOS_AREA: u64 = 0xe0000;
    /// Kernel segments must start at or above this (1 MiB).
    pub const KERNEL_MIN: u64 = 0x10_0000;
}

/// Multiboot information flags this loader sets.
mod info_flags {
    pub const MEMORY: u32 = 1 << 0;
    pub const CMDLINE: u32 = 1 << 2;
    pub const MODULES: u32 = 1 << 3;
    pub const MMAP: u32 = 1 << 6;
    pub const LOADER_NAME: u32 = 1 << 9;
}

/// Memory-map entry types.
const MMAP_RAM: u32 = 1;
const MMAP_RESERVED: u32 = 2;

/// The multiboot information for one boot, as bytes to write at fixed addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootInfo {
    /// (guest-physical address, bytes) pairs.
    pub writes: Vec<(u64, Vec<u8>)>,
    /// Address of the information structure, for `EBX`.
    pub info_addr: u64,
}

/// A boot-information request that cannot be met.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BootInfoError {
    /// The command line does not fit.
    #[error("kernel command line of {0} bytes is too long (at most {max})", max = layout::CMDLINE_MAX - 1)]
    CmdlineTooLong(usize),
    /// The command line contains a NUL byte.
    #[error("kernel command line contains a NUL byte")]
    CmdlineNul,
    /// The module does not fit.
    #[error("environment module of {0} bytes is too large (at most {max})", max = layout::MODULE_MAX)]
    ModuleTooLarge(usize),
    /// RAM below 1 MiB plus nothing above it.
    #[error("{0} bytes of RAM is less than the 2 MiB a multiboot kernel needs")]
    TooLittleRam(u64),
}

/// Builds the multiboot information: `mem_lower`/`mem_upper` and a memory map for
/// `ram_size` bytes of RAM at 0, the command line (`cmdline` as given: kvm-unit-tests takes
/// its first word as argv\[0\], so callers put a program name first), and exactly one
/// module holding `module` (the `KEY=VAL` environment).
///
/// # Errors
///
/// [`BootInfoError`] when something does not fit the fixed layout.
pub fn boot_info(ram_size: u64, cmdline: &str, module: &[u8]) -> Result<BootInfo, BootInfoError> {
    if ram_size < 2 << 20 {
        return Err(BootInfoError::TooLittleRam(ram_size));
    }
    if cmdline.len() >= layout::CMDLINE_MAX {
        return Err(BootInfoError::CmdlineTooLong(cmdline.len()));
    }
    if cmdline.contains('\0') {
        return Err(BootInfoError::CmdlineNul);
    }
    if module.len() > layout::MODULE_MAX {
        return Err(BootInfoError::ModuleTooLarge(module.len()));
    }
    let le32 = |v: u64| u32::try_from(v).unwrap_or(u32::MAX).to_le_bytes();

    let mmap_entries = [
        (0, layout::LOW_END, MMAP_RAM),
        (layout::LOW_END, 0xa0000 - layout::LOW_END, MMAP_RESERVED),
        (layout::BIOS_AREA, layout::KERNEL_MIN - layout::BIOS_AREA, MMAP_RESERVED),
        (layout::KERNEL_MIN, ram_size - layout::KERNEL_MIN, MMAP_RAM),
    ];
    let mut mmap = Vec::new();
    for (base, len, kind) in mmap_entries {
        // `size` counts the bytes after itself: base (8) + length (8) + type (4).
        mmap.extend_from_slice(&20u32.to_le_bytes());
        mmap.extend_from_slice(&base.to_le_bytes());
        mmap.extend_from_slice(&len.to_le_bytes());
        mmap.extend_from_slice(&kind.to_le_bytes());
    }

    let mut info = vec![0u8; 120];
    let mut put = |off: usize, v: [u8; 4]| info[off..off + 4].copy_from_slice(&v);
    let flags = info_flags::MEMORY
        | info_flags::CMDLINE
        | info_flags::MODULES
        | info_flags::MMAP
        | info_flags::LOADER_NAME;
    put(0, flags.to_le_bytes());
    put(4, le32(layout::LOW_END / 1024));
    // mem_upper: KiB of RAM from 1 MiB up to the first hole (the top of RAM here).
    put(8, le32((ram_size - layout::KERNEL_MIN) / 1024));
    put(12, 0xffff_ffffu32.to_le_bytes()); // boot_device: none
    put(16, le32(layout::CMDLINE));
    put(20, 1u32.to_le_bytes());
    put(24, le32(layout::MODULES));
    put(44, le32(mmap.len() as u64));
    put(48, le32(layout::MMAP));
    put(64, le32(layout::LOADER_NAME));

    let mut module_entry = Vec::with_capacity(16);
    module_entry.extend_from_slice(&le32(layout::MODULE));
    module_entry.extend_from_slice(&le32(layout::MODULE + module.len() as u64));
    module_entry.extend_from_slice(&le32(layout::MODULE_STRING));
    module_entry.extend_from_slice(&0u32.to_le_bytes());

    let nul = |s: &[u8]| {
        let mut v = s.to_vec();
        v.push(0);
        v
    };
    Ok(BootInfo {
        writes: vec![
            (layout::INFO, info),
            (layout::MMAP, mmap),
            (layout::MODULES, module_entry),
            (layout::MODULE_STRING, nul(b"env")),
            (layout::LOADER_NAME, nul(b"exitscope")),
            (layout::CMDLINE, nul(cmdline.as_bytes())),
            (layout::MODULE, module.to_vec()),
        ],
        info_addr: layout::INFO,
    })
}

/// The `KEY=VAL` environment text kvm-unit-tests reads from its module, one pair a line.
pub fn env_text<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    pairs.into_iter().map(|(k, v)| format!("{k}={v}\n")).collect()
}

/// Writes a minimal multiboot ELF32 image: the ELF header, one `PT_LOAD` per segment
/// (`(load address, bytes, memory size)`), a multiboot v1 header (flags 0) at file offset
/// 0x100, and a symbol table with `symbols` (`(name, value, size)`) if any. exitscope's tests
/// build their guests with it instead of shipping kvm-unit-tests' binaries.
///
/// # Panics
///
/// With more than 6 segments (their headers must fit before the multiboot header).
#[allow(clippy::cast_possible_truncation)] // test images are tiny
pub fn write_elf32(
    entry: u32,
    segments: &[(u32, &[u8], u32)],
    symbols: &[(&str, u32, u32)],
) -> Vec<u8> {
    let (segs, syms) = (segments, symbols);
    assert!(segs.len() <= 6, "at most 6 segments");
    let phoff = 52usize;
    let mut b = vec![0u8; 0x100];
    b[0..4].copy_from_slice(b"\x7fELF");
    b[4] = 1;
    b[5] = 1;
    b[6] = 1;
    b[16..18].copy_from_slice(&2u16.to_le_bytes());
    b[18..20].copy_from_slice(&3u16.to_le_bytes());
    b[24..28].copy_from_slice(&entry.to_le_bytes());
    b[28..32].copy_from_slice(&(phoff as u32).to_le_bytes());
    b[42..44].copy_from_slice(&32u16.to_le_bytes());
    b[44..46].copy_from_slice(&(segs.len() as u16).to_le_bytes());
    // Multiboot header at 0x100.
    for v in [HEADER_MAGIC, 0, 0u32.wrapping_sub(HEADER_MAGIC)] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    let mut phdrs = Vec::new();
    for (paddr, bytes, memsz) in segs {
        let off = b.len() as u32;
        b.extend_from_slice(bytes);
        let mut ph = [0u8; 32];
        ph[0..4].copy_from_slice(&PT_LOAD.to_le_bytes());
        ph[4..8].copy_from_slice(&off.to_le_bytes());
        ph[8..12].copy_from_slice(&paddr.to_le_bytes());
        ph[12..16].copy_from_slice(&paddr.to_le_bytes());
        ph[16..20].copy_from_slice(&(bytes.len() as u32).to_le_bytes());
        ph[20..24].copy_from_slice(&memsz.to_le_bytes());
        phdrs.push(ph);
    }
    for (i, ph) in phdrs.iter().enumerate() {
        b[phoff + 32 * i..phoff + 32 * (i + 1)].copy_from_slice(ph);
    }
    if !syms.is_empty() {
        let mut strtab = vec![0u8];
        let mut symtab = vec![0u8; 16];
        for (name, value, size) in syms {
            let mut s = [0u8; 16];
            s[0..4].copy_from_slice(&(strtab.len() as u32).to_le_bytes());
            s[4..8].copy_from_slice(&value.to_le_bytes());
            s[8..12].copy_from_slice(&size.to_le_bytes());
            symtab.extend_from_slice(&s);
            strtab.extend_from_slice(name.as_bytes());
            strtab.push(0);
        }
        let sym_off = b.len() as u32;
        b.extend_from_slice(&symtab);
        let str_off = b.len() as u32;
        b.extend_from_slice(&strtab);
        let shoff = b.len() as u32;
        let mut sh = |kind: u32, off: u32, size: u32, link: u32| {
            let mut s = [0u8; 40];
            s[4..8].copy_from_slice(&kind.to_le_bytes());
            s[16..20].copy_from_slice(&off.to_le_bytes());
            s[20..24].copy_from_slice(&size.to_le_bytes());
            s[24..28].copy_from_slice(&link.to_le_bytes());
            b.extend_from_slice(&s);
        };
        sh(0, 0, 0, 0);
        sh(SHT_SYMTAB, sym_off, symtab.len() as u32, 2);
        sh(3, str_off, strtab.len() as u32, 0);
        b[32..36].copy_from_slice(&shoff.to_le_bytes());
        b[46..48].copy_from_slice(&40u16.to_le_bytes());
        b[48..50].copy_from_slice(&3u16.to_le_bytes());
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_segments_entry_header_and_symbols() {
        let img = write_elf32(
            0x40_00bc,
            &[(0x40_00b0, &[0x90; 16], 16), (0x40_8000, &[1, 2, 3], 0x1000)],
            &[("start", 0x40_00bc, 0), ("iterations", 0x41_9000, 4)],
        );
        let e = Elf32::parse(&img).unwrap();
        assert_eq!(e.entry, 0x40_00bc);
        assert_eq!(e.segments.len(), 2);
        assert_eq!(e.file_bytes(&e.segments[1]), &[1, 2, 3]);
        assert_eq!(e.segments[1].mem_size, 0x1000);
        assert_eq!(e.extent(), (0x40_00b0, 0x40_9000));
        assert_eq!(e.multiboot, MultibootHeader { offset: 0x100, flags: 0 });
        assert_eq!(e.symbol("iterations"), Some((0x41_9000, 4)));
        assert_eq!(e.symbol("iter"), None);
        let stripped = write_elf32(0x40_00bc, &[(0x40_00b0, &[0x90], 1)], &[]);
        assert_eq!(Elf32::parse(&stripped).unwrap().symbol("iterations"), None);
    }

    #[test]
    fn errors_name_the_offset_and_the_expectation() {
        let good = write_elf32(0x10_0000, &[(0x10_0000, &[0xf4], 1)], &[]);
        let mut e64 = good.clone();
        e64[4] = 2;
        let err = Elf32::parse(&e64).unwrap_err();
        assert_eq!(err.offset, 4);
        assert!(err.to_string().contains("ELF32"), "{err}");

        assert_eq!(Elf32::parse(b"MZ\0\0").unwrap_err().offset, 0);
        assert_eq!(Elf32::parse(&good[..19]).unwrap_err().offset, 18);
        assert_eq!(Elf32::parse(&good[..20]).unwrap_err().offset, 24);

        let mut machine = good.clone();
        machine[18] = 62;
        assert!(Elf32::parse(&machine).unwrap_err().message.contains("i386"));

        let mut past_end = good.clone();
        past_end[52 + 16..52 + 20].copy_from_slice(&0x10_0000u32.to_le_bytes());
        let err = Elf32::parse(&past_end).unwrap_err();
        assert_eq!(err.offset, 52 + 4);
        assert!(err.message.contains("past the end"), "{err}");

        let mut no_mb = good.clone();
        no_mb[0x100..0x104].copy_from_slice(&[0; 4]);
        assert!(Elf32::parse(&no_mb).unwrap_err().message.contains("0x1BADB002"));

        let mut bad_sum = good.clone();
        bad_sum[0x108] ^= 1;
        assert_eq!(Elf32::parse(&bad_sum).unwrap_err().offset, 0x108);
    }

    #[test]
    fn header_flags_the_loader_cannot_honour_are_refused() {
        let with_flags = |flags: u32| {
            let mut img = vec![0u8; 64];
            img.extend_from_slice(&HEADER_MAGIC.to_le_bytes());
            img.extend_from_slice(&flags.to_le_bytes());
            img.extend_from_slice(
                &0u32.wrapping_sub(HEADER_MAGIC.wrapping_add(flags)).to_le_bytes(),
            );
            find_header(&img)
        };
        assert_eq!(with_flags(3).unwrap().offset, 64);
        assert!(with_flags(FLAG_VIDEO).is_ok());
        assert!(with_flags(FLAG_AOUT_KLUDGE).unwrap_err().message.contains("a.out"));
        assert!(with_flags(1 << 5).unwrap_err().message.contains("0x20"));
        // A magic beyond the first 8 KiB does not count.
        let mut far = vec![0u8; 8192];
        far.extend_from_slice(&HEADER_MAGIC.to_le_bytes());
        far.extend_from_slice(&[0; 4]);
        far.extend_from_slice(&0u32.wrapping_sub(HEADER_MAGIC).to_le_bytes());
        assert!(find_header(&far).is_err());
    }

    fn write_at(info: &BootInfo, addr: u64) -> &[u8] {
        &info.writes.iter().find(|(a, _)| *a == addr).unwrap().1
    }

    #[test]
    fn boot_info_has_memory_cmdline_one_module_and_a_map() {
        let env = env_text([("NR_CPUS", "2"), ("MEMSIZE", "128")]);
        assert_eq!(env, "NR_CPUS=2\nMEMSIZE=128\n");
        let b = boot_info(128 << 20, "exitscope cpuid mov_dr", env.as_bytes()).unwrap();
        assert_eq!(b.info_addr, layout::INFO);
        let info = write_at(&b, layout::INFO);
        let field = |off: usize| u32_at(info, off).unwrap();
        assert_eq!(field(0), 0x24d);
        assert_eq!(field(4), 639);
        assert_eq!(field(8), (127 << 20) / 1024);
        assert_eq!(u64::from(field(16)), layout::CMDLINE);
        assert_eq!((field(20), u64::from(field(24))), (1, layout::MODULES));
        assert_eq!(write_at(&b, layout::CMDLINE), b"exitscope cpuid mov_dr\0");
        let m = write_at(&b, layout::MODULES);
        let (start, end) = (u64::from(u32_at(m, 0).unwrap()), u64::from(u32_at(m, 4).unwrap()));
        assert_eq!((start, end - start), (layout::MODULE, env.len() as u64));
        assert_eq!(write_at(&b, layout::MODULE), env.as_bytes());

        let mmap = write_at(&b, layout::MMAP);
        assert_eq!(field(44) as usize, mmap.len());
        let entries: Vec<(u64, u64, u32)> = mmap
            .chunks_exact(24)
            .map(|e| {
                let q = |o: usize| u64::from_le_bytes(e[o..o + 8].try_into().unwrap());
                (q(4), q(12), u32_at(e, 20).unwrap())
            })
            .collect();
        assert_eq!(entries.last(), Some(&(1 << 20, 127 << 20, 1)));
        assert!(entries.iter().any(|&(base, _, t)| base == layout::BIOS_AREA && t == 2));
        // Nothing written overlaps anything else.
        let mut spans: Vec<(u64, u64)> =
            b.writes.iter().map(|(a, v)| (*a, *a + v.len() as u64)).collect();
        spans.sort_unstable();
        assert!(spans.windows(2).all(|w| w[0].1 <= w[1].0), "{spans:x?}");
        assert!(spans.last().unwrap().1 <= layout::MODULE + layout::MODULE_MAX as u64);
    }

    #[test]
    fn boot_info_limits() {
        let long = "x".repeat(layout::CMDLINE_MAX);
        assert_eq!(
            boot_info(128 << 20, &long, b""),
            Err(BootInfoError::CmdlineTooLong(layout::CMDLINE_MAX))
        );
        assert_eq!(boot_info(128 << 20, "a\0b", b""), Err(BootInfoError::CmdlineNul));
        let big = vec![b'x'; layout::MODULE_MAX + 1];
        assert!(matches!(boot_info(128 << 20, "p", &big), Err(BootInfoError::ModuleTooLarge(_))));
        assert_eq!(boot_info(1 << 20, "p", b""), Err(BootInfoError::TooLittleRam(1 << 20)));
    }
}
