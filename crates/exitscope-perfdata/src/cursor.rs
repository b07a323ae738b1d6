//! A bounds-checked cursor over part of the file. Every read checks the remaining length
//! first and, on failure, names the absolute file offset and what was being read.

use crate::Error;

#[derive(Clone, Copy, Debug)]
pub(crate) struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
    /// File offset of `data[0]`.
    base: u64,
    big_endian: bool,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(data: &'a [u8], base: u64, big_endian: bool) -> Self {
        Cursor { data, pos: 0, base, big_endian }
    }

    /// File offset of the next byte.
    pub(crate) fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    pub(crate) fn is_big_endian(&self) -> bool {
        self.big_endian
    }

    pub(crate) fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    pub(crate) fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Error> {
        let got = self.pos.checked_add(n).and_then(|end| self.data.get(self.pos..end));
        match got {
            Some(b) => {
                self.pos += n;
                Ok(b)
            }
            None => Err(Error::Truncated {
                offset: self.offset(),
                what,
                needed: n as u64,
                available: self.remaining() as u64,
            }),
        }
    }

    /// `n` bytes where `n` is a u64 read from the file.
    pub(crate) fn bytes_u64(&mut self, n: u64, what: &'static str) -> Result<&'a [u8], Error> {
        match usize::try_from(n) {
            Ok(n) => self.bytes(n, what),
            Err(_) => Err(Error::Truncated {
                offset: self.offset(),
                what,
                needed: n,
                available: self.remaining() as u64,
            }),
        }
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], Error> {
        let at = self.offset();
        let b = self.bytes(N, what)?;
        b.try_into().map_err(|_| Error::Malformed { offset: at, what: what.into() })
    }

    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, Error> {
        let b = self.array(what)?;
        Ok(if self.big_endian { u16::from_be_bytes(b) } else { u16::from_le_bytes(b) })
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, Error> {
        let b = self.array(what)?;
        Ok(if self.big_endian { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) })
    }

    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, Error> {
        let b = self.array(what)?;
        Ok(if self.big_endian { u64::from_be_bytes(b) } else { u64::from_le_bytes(b) })
    }

    /// Skips `n` u64 words (`n` read from the file).
    pub(crate) fn skip_u64s(&mut self, n: u64, what: &'static str) -> Result<(), Error> {
        let len = n.saturating_mul(8);
        self.bytes_u64(len, what).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_name_the_absolute_offset_on_failure() {
        let mut c = Cursor::new(&[1, 0, 0, 0, 2], 0x100, false);
        assert_eq!(c.u32("x").unwrap(), 1);
        let e = c.u32("sample tid").unwrap_err();
        assert_eq!(e.to_string(), "byte 0x104: truncated sample tid: need 4 bytes, 1 available");
        let mut c = Cursor::new(&[0, 0, 0, 1], 0, true);
        assert_eq!(c.u32("x").unwrap(), 1);
        assert!(Cursor::new(&[], 0, false).skip_u64s(u64::MAX, "ips").is_err());
    }
}
