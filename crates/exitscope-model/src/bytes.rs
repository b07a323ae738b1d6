//! Byte scans the parsers share (SWAR, safe code).

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `x` equal to `c`. Only the lowest flagged byte is sure to be
/// one (a borrow flags bytes above a real match), which is all a forward search needs.
#[inline(always)]
fn matches(x: u64, c: u8) -> u64 {
    let y = x ^ (ONES * u64::from(c));
    y.wrapping_sub(ONES) & !y & HIGHS
}

/// The first byte of `b` that `hit` flags ([`matches`] of one or more bytes), eight bytes at
/// a time, then `tail` for the last few.
#[inline(always)]
fn find_with(b: &[u8], hit: impl Fn(u64) -> u64, tail: impl Fn(u8) -> bool) -> Option<usize> {
    let mut i = 0;
    while let Some(w) = b.get(i..i + 8) {
        let mut x = [0u8; 8];
        x.copy_from_slice(w);
        let t = hit(u64::from_le_bytes(x));
        if t != 0 {
            return Some(i + (t.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b[i..].iter().position(|&x| tail(x)).map(|k| i + k)
}

/// The first `c` in `b`, eight bytes at a time: `memchr` without its set-up cost,
/// for the short strings of one line (function names, `kvm_exit` words: texts of ~130 bytes
/// of words up to 18 bytes long, where a byte loop was a fifth of reading an event trace).
#[inline]
pub fn find_byte(b: &[u8], c: u8) -> Option<usize> {
    find_with(b, |x| matches(x, c), |x| x == c)
}

/// The first `c` or `d` in `b`, like [`find_byte`] (the lowest byte flagged for either is
/// exact).
#[inline(always)]
pub fn find_either(b: &[u8], c: u8, d: u8) -> Option<usize> {
    find_with(b, |x| matches(x, c) | matches(x, d), |x| x == c || x == d)
}
