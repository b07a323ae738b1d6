//! A bounds-checked, endian-aware cursor over a byte slice (the `Bytes` pattern of
//! gimli-rs/object). Every read checks the remaining length first and reports the absolute
//! file offset on failure.

use crate::Error;

/// Byte order declared by the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endian {
    /// Least significant byte first.
    Little,
    /// Most significant byte first.
    Big,
}

impl Endian {
    pub(crate) fn u16(self, b: [u8; 2]) -> u16 {
        match self {
            Endian::Little => u16::from_le_bytes(b),
            Endian::Big => u16::from_be_bytes(b),
        }
    }
    pub(crate) fn u32(self, b: [u8; 4]) -> u32 {
        match self {
            Endian::Little => u32::from_le_bytes(b),
            Endian::Big => u32::from_be_bytes(b),
        }
    }
    pub(crate) fn u64(self, b: [u8; 8]) -> u64 {
        match self {
            Endian::Little => u64::from_le_bytes(b),
            Endian::Big => u64::from_be_bytes(b),
        }
    }
}

/// Reads a `size`-byte unsigned integer at `off` in `data`, `None` when out of bounds or
/// `size` is not 1, 2, 4 or 8.
pub(crate) fn read_uint(data: &[u8], off: usize, size: usize, e: Endian) -> Option<u64> {
    let b = data.get(off..off.checked_add(size)?)?;
    Some(match size {
        1 => u64::from(*b.first()?),
        2 => u64::from(e.u16(b.try_into().ok()?)),
        4 => u64::from(e.u32(b.try_into().ok()?)),
        8 => e.u64(b.try_into().ok()?),
        _ => return None,
    })
}

/// A cursor: `data` starts at absolute file offset `base`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bytes<'a> {
    data: &'a [u8],
    pos: usize,
    base: u64,
    endian: Endian,
}

impl<'a> Bytes<'a> {
    pub(crate) fn new(data: &'a [u8], base: u64, endian: Endian) -> Self {
        Bytes { data, pos: 0, base, endian }
    }
    /// Absolute file offset of the next byte.
    pub(crate) fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }
    pub(crate) fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }
    pub(crate) fn set_endian(&mut self, e: Endian) {
        self.endian = e;
    }
    pub(crate) fn read_bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Error> {
        let avail = self.remaining();
        let end = self.pos.checked_add(n);
        match end.and_then(|end| self.data.get(self.pos..end)) {
            Some(b) => {
                self.pos += n;
                Ok(b)
            }
            None => Err(Error::Truncated {
                offset: self.offset(),
                what,
                needed: n as u64,
                available: avail as u64,
            }),
        }
    }
    /// Reads `n` bytes where `n` comes from the file as a u64.
    pub(crate) fn read_bytes_u64(&mut self, n: u64, what: &'static str) -> Result<&'a [u8], Error> {
        let n = usize::try_from(n).map_err(|_| Error::Truncated {
            offset: self.offset(),
            what,
            needed: n,
            available: self.remaining() as u64,
        })?;
        self.read_bytes(n, what)
    }
    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], Error> {
        let b = self.read_bytes(N, what)?;
        b.try_into().map_err(|_| Error::Malformed { offset: self.offset(), what: what.into() })
    }
    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, Error> {
        Ok(self.array::<1>(what)?[0])
    }
    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, Error> {
        Ok(self.endian.u16(self.array(what)?))
    }
    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, Error> {
        Ok(self.endian.u32(self.array(what)?))
    }
    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, Error> {
        Ok(self.endian.u64(self.array(what)?))
    }
    /// A NUL-terminated string (the NUL is consumed, not returned).
    pub(crate) fn cstr(&mut self, what: &'static str) -> Result<&'a [u8], Error> {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        match rest.iter().position(|&b| b == 0) {
            Some(n) => {
                let s = self.read_bytes(n, what)?;
                self.pos += 1;
                Ok(s)
            }
            None => Err(Error::Malformed {
                offset: self.offset(),
                what: format!("{what}: missing NUL terminator"),
            }),
        }
    }
}
