//! Byte scans the parsers share (SWAR, safe code).

/// The first `c` in `b`, eight bytes at a time: `memchr` without its set-up cost,
/// for the short strings of one line (function names, `kvm_exit` words: texts of ~130 bytes
/// of words up to 18 bytes long, where a byte loop was a fifth of reading an event trace).
#[inline]
pub fn find_byte(b: &[u8], c: u8) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut i = 0;
    while let Some(w) = b.get(i..i + 8) {
        let mut x = [0u8; 8];
        x.copy_from_slice(w);
        // Bytes equal to `c` become zero; the lowest flagged byte is the first zero (a
        // borrow only flags bytes above a real zero).
        let y = u64::from_le_bytes(x) ^ (ONES * u64::from(c));
        let t = y.wrapping_sub(ONES) & !y & HIGHS;
        if t != 0 {
            return Some(i + (t.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b[i..].iter().position(|&x| x == c).map(|k| i + k)
}
