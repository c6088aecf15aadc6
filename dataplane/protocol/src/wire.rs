//! Bounds-checked little-endian reading and writing, the base of every decoder and encoder.
//!
//! Every read is checked: peer data that is too short yields `NtStatus::INVALID_PARAMETER`, never a
//! panic. Offsets inside SMB2 messages are relative to the start of the SMB2 header, so decoders
//! take the whole message (header included) and use [`slice_at`] for offset/length pairs.

use crate::status::NtStatus;

pub type Result<T> = std::result::Result<T, NtStatus>;

/// A cursor over peer-supplied bytes.
#[derive(Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// A reader positioned at `pos` (checked).
    pub fn at(buf: &'a [u8], pos: usize) -> Result<Self> {
        if pos > buf.len() {
            return Err(NtStatus::INVALID_PARAMETER);
        }
        Ok(Reader { buf, pos })
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or(NtStatus::INVALID_PARAMETER)?;
        let out = self
            .buf
            .get(self.pos..end)
            .ok_or(NtStatus::INVALID_PARAMETER)?;
        self.pos = end;
        Ok(out)
    }

    pub fn skip(&mut self, n: usize) -> Result<()> {
        self.bytes(n).map(|_| ())
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let b = self.bytes(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    pub fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub fn guid(&mut self) -> Result<[u8; 16]> {
        self.array()
    }
}

/// `buf[offset..offset+len]`, or `INVALID_PARAMETER` when it does not fit.
pub fn slice_at(buf: &[u8], offset: usize, len: usize) -> Result<&[u8]> {
    let end = offset.checked_add(len).ok_or(NtStatus::INVALID_PARAMETER)?;
    buf.get(offset..end).ok_or(NtStatus::INVALID_PARAMETER)
}

/// Little-endian appends to a `Vec<u8>`.
pub trait Writer {
    fn put_u8(&mut self, v: u8);
    fn put_u16(&mut self, v: u16);
    fn put_u32(&mut self, v: u32);
    fn put_u64(&mut self, v: u64);
    fn put_bytes(&mut self, v: &[u8]);
    fn put_zeros(&mut self, n: usize);
    /// Pad with zeros until the length is a multiple of `align`.
    fn align_to(&mut self, align: usize);
    /// Overwrite a u16/u32 already written at `at` (for lengths and offsets known later).
    fn set_u16(&mut self, at: usize, v: u16);
    fn set_u32(&mut self, at: usize, v: u32);
}

impl Writer for Vec<u8> {
    fn put_u8(&mut self, v: u8) {
        self.push(v)
    }
    fn put_u16(&mut self, v: u16) {
        self.extend_from_slice(&v.to_le_bytes())
    }
    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_le_bytes())
    }
    fn put_u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_le_bytes())
    }
    fn put_bytes(&mut self, v: &[u8]) {
        self.extend_from_slice(v)
    }
    fn put_zeros(&mut self, n: usize) {
        self.resize(self.len() + n, 0)
    }
    fn align_to(&mut self, align: usize) {
        let pad = (align - self.len() % align) % align;
        self.put_zeros(pad)
    }
    fn set_u16(&mut self, at: usize, v: u16) {
        self[at..at + 2].copy_from_slice(&v.to_le_bytes())
    }
    fn set_u32(&mut self, at: usize, v: u32) {
        self[at..at + 4].copy_from_slice(&v.to_le_bytes())
    }
}

/// UTF-16LE bytes to a Rust string; unpaired surrogates or odd lengths are `OBJECT_NAME_INVALID`.
pub fn utf16le_to_string(b: &[u8]) -> Result<String> {
    if !b.len().is_multiple_of(2) {
        return Err(NtStatus::OBJECT_NAME_INVALID);
    }
    let units = b.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]));
    char::decode_utf16(units)
        .collect::<std::result::Result<String, _>>()
        .map_err(|_| NtStatus::OBJECT_NAME_INVALID)
}

/// A Rust string as UTF-16LE bytes.
pub fn string_to_utf16le(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() * 2);
    for u in s.encode_utf16() {
        out.extend_from_slice(&u.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_is_bounds_checked() {
        let mut r = Reader::new(&[1, 0, 2, 0, 0, 0]);
        assert_eq!(r.u16().unwrap(), 1);
        assert_eq!(r.u32().unwrap(), 2);
        assert_eq!(r.u8(), Err(NtStatus::INVALID_PARAMETER));
        assert!(slice_at(&[0; 4], 2, 3).is_err());
        assert!(slice_at(&[0; 4], usize::MAX, 3).is_err());
    }

    #[test]
    fn utf16_round_trip() {
        let s = "dir\\file ä.txt";
        assert_eq!(utf16le_to_string(&string_to_utf16le(s)).unwrap(), s);
        assert!(utf16le_to_string(&[0x00, 0xD8]).is_err());
    }
}
