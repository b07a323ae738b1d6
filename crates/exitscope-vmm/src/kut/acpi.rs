//! The ACPI tables a kvm-unit-tests guest looks for: an RSDP in the BIOS area
//! (0xE0000–0xFFFFF, 16-byte aligned, found by scanning for `"RSD PTR "`), an RSDT with one
//! entry, and a FADT (`FACP`) whose `PM_TMR_BLK` names the PM timer port that
//! `inl_from_pmtimer` reads. Layouts from the ACPI specification (1.0 RSDP, revision-1
//! FADT of 116 bytes); checksums are correct although kvm-unit-tests does not check them.

use super::devices::ports;
use super::multiboot::layout::BIOS_AREA;

/// Where the RSDP goes (the first address the guest scans).
pub const RSDP_ADDR: u64 = BIOS_AREA;
/// The RSDT.
pub const RSDT_ADDR: u64 = BIOS_AREA + 0x40;
/// The FADT.
pub const FADT_ADDR: u64 = BIOS_AREA + 0x80;

const OEM_ID: &[u8; 6] = b"EXITSC";
const OEM_TABLE_ID: &[u8; 8] = b"EXITSCOP";
/// Length of a revision-1 FADT.
const FADT_LEN: usize = 116;
/// Offset of `PM_TMR_BLK` in the FADT.
pub const FADT_PM_TMR_BLK: usize = 76;
/// Offset of `PM_TMR_LEN` in the FADT.
const FADT_PM_TMR_LEN: usize = 91;
/// Offset of `SCI_INT`.
const FADT_SCI_INT: usize = 46;

/// Makes `table`'s bytes sum to zero by setting the byte at `at`.
fn fix_checksum(table: &mut [u8], at: usize) {
    table[at] = 0;
    let sum = table.iter().fold(0u8, |s, b| s.wrapping_add(*b));
    table[at] = 0u8.wrapping_sub(sum);
}

/// A 36-byte system description table header followed by `body`, checksummed.
fn table(signature: &[u8; 4], revision: u8, body: &[u8]) -> Vec<u8> {
    let mut t = Vec::with_capacity(36 + body.len());
    t.extend_from_slice(signature);
    t.extend_from_slice(&u32::try_from(36 + body.len()).unwrap_or(u32::MAX).to_le_bytes());
    t.push(revision);
    t.push(0); // checksum
    t.extend_from_slice(OEM_ID);
    t.extend_from_slice(OEM_TABLE_ID);
    t.extend_from_slice(&1u32.to_le_bytes()); // OEM revision
    t.extend_from_slice(b"XSCP"); // creator ID
    t.extend_from_slice(&1u32.to_le_bytes()); // creator revision
    t.extend_from_slice(body);
    fix_checksum(&mut t, 9);
    t
}

fn addr32(a: u64) -> [u8; 4] {
    u32::try_from(a).unwrap_or(u32::MAX).to_le_bytes()
}

/// The tables as (guest-physical address, bytes) pairs.
pub fn tables() -> Vec<(u64, Vec<u8>)> {
    let mut rsdp = Vec::with_capacity(20);
    rsdp.extend_from_slice(b"RSD PTR ");
    rsdp.push(0); // checksum
    rsdp.extend_from_slice(OEM_ID);
    rsdp.push(0); // revision 0: ACPI 1.0, RSDT only
    rsdp.extend_from_slice(&addr32(RSDT_ADDR));
    fix_checksum(&mut rsdp, 8);

    let rsdt = table(b"RSDT", 1, &addr32(FADT_ADDR));

    let mut body = vec![0u8; FADT_LEN - 36];
    body[FADT_SCI_INT - 36..FADT_SCI_INT - 36 + 2].copy_from_slice(&9u16.to_le_bytes());
    body[FADT_PM_TMR_BLK - 36..FADT_PM_TMR_BLK - 36 + 4]
        .copy_from_slice(&u32::from(ports::PM_TIMER).to_le_bytes());
    body[FADT_PM_TMR_LEN - 36] = 4;
    let fadt = table(b"FACP", 1, &body);

    vec![(RSDP_ADDR, rsdp), (RSDT_ADDR, rsdt), (FADT_ADDR, fadt)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u32_at(b: &[u8], off: usize) -> u64 {
        u64::from(u32::from_le_bytes(b[off..off + 4].try_into().unwrap()))
    }

    /// Follows the tables the way the guest does: scan for the RSDP, RSDT, FACP.
    #[test]
    fn a_scan_of_the_bios_area_finds_the_pm_timer_port() {
        let mut area = vec![0u8; 0x20000];
        for (addr, bytes) in tables() {
            let off = usize::try_from(addr - BIOS_AREA).unwrap();
            area[off..off + bytes.len()].copy_from_slice(&bytes);
        }
        let rsdp = (0..area.len()).step_by(16).find(|&o| &area[o..o + 8] == b"RSD PTR ").unwrap();
        let rsdt = usize::try_from(u32_at(&area, rsdp + 16) - BIOS_AREA).unwrap();
        assert_eq!(&area[rsdt..rsdt + 4], b"RSDT");
        let len = usize::try_from(u32_at(&area, rsdt + 4)).unwrap();
        let entries: Vec<u64> =
            (rsdt + 36..rsdt + len).step_by(4).map(|o| u32_at(&area, o)).collect();
        let fadt = entries
            .iter()
            .map(|a| usize::try_from(a - BIOS_AREA).unwrap())
            .find(|&o| &area[o..o + 4] == b"FACP")
            .unwrap();
        assert_eq!(u32_at(&area, fadt + FADT_PM_TMR_BLK), u64::from(ports::PM_TIMER));
        assert_eq!(u32_at(&area, fadt + 4), FADT_LEN as u64);
    }

    #[test]
    fn checksums_sum_to_zero_and_tables_fit_the_bios_area() {
        let t = tables();
        let sum = |b: &[u8]| b.iter().fold(0u8, |s, x| s.wrapping_add(*x));
        assert_eq!(sum(&t[0].1[..20]), 0);
        assert_eq!(sum(&t[1].1), 0);
        assert_eq!(sum(&t[2].1), 0);
        let mut spans: Vec<(u64, u64)> = t.iter().map(|(a, b)| (*a, a + b.len() as u64)).collect();
        spans.sort_unstable();
        assert!(spans.windows(2).all(|w| w[0].1 <= w[1].0));
        assert!(spans.iter().all(|(a, e)| *a >= 0xe0000 && *e <= 0x10_0000 && a % 16 == 0));
    }
}
