//! Extended attributes: FILE_FULL_EA_INFORMATION (MS-FSCC 2.4.15) and FILE_GET_EA_INFORMATION
//! (MS-FSCC 2.4.15.1) lists.

use crate::status::NtStatus;
use crate::wire::{Reader, Result, Writer};

/// Most entries accepted in one peer-supplied EA list.
pub const MAX_EA_ENTRIES: usize = 1024;

/// One extended attribute. Names are 8-bit ASCII, at most 255 bytes, without the NUL.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FullEa {
    /// FILE_NEED_EA (0x80) is the only defined flag.
    pub flags: u8,
    pub name: Vec<u8>,
    pub value: Vec<u8>,
}

impl FullEa {
    /// Bytes of this entry without trailing alignment padding.
    pub fn packed_bytes(&self) -> usize {
        8 + self.name.len() + 1 + self.value.len()
    }
}

/// Size of `eas` as an encoded FILE_FULL_EA_INFORMATION list (4-byte aligned entries); this is
/// the EaSize reported by FileEaInformation and the directory classes.
pub fn list_bytes(eas: &[FullEa]) -> usize {
    let mut total = 0usize;
    for (i, e) in eas.iter().enumerate() {
        total += e.packed_bytes();
        if i + 1 < eas.len() {
            total = total.next_multiple_of(4);
        }
    }
    total
}

/// Encode one entry at the end of `out` (NextEntryOffset 0); returns its start.
pub fn encode_one(e: &FullEa, out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.put_u32(0);
    out.put_u8(e.flags);
    out.put_u8(e.name.len().min(255) as u8);
    out.put_u16(e.value.len().min(u16::MAX as usize) as u16);
    out.put_bytes(&e.name[..e.name.len().min(255)]);
    out.put_u8(0);
    out.put_bytes(&e.value[..e.value.len().min(u16::MAX as usize)]);
    start
}

/// Encode a whole list, 4-byte aligned and chained.
pub fn encode_list(eas: &[FullEa], out: &mut Vec<u8>) {
    let mut prev: Option<usize> = None;
    for e in eas {
        if let Some(p) = prev {
            out.align_to(4);
            let next = (out.len() - p) as u32;
            out.set_u32(p, next);
        }
        prev = Some(encode_one(e, out));
    }
}

/// Decode a FILE_FULL_EA_INFORMATION list. Malformed chains are STATUS_EA_LIST_INCONSISTENT's
/// sibling INVALID_PARAMETER (the caller may map it).
pub fn decode_list(b: &[u8]) -> Result<Vec<FullEa>> {
    let mut out = Vec::new();
    let mut at = 0usize;
    loop {
        if out.len() >= MAX_EA_ENTRIES {
            return Err(NtStatus::EA_TOO_LARGE);
        }
        let mut r = Reader::at(b, at)?;
        let next = r.u32()? as usize;
        let flags = r.u8()?;
        let name_len = r.u8()? as usize;
        let value_len = r.u16()? as usize;
        let name = r.bytes(name_len)?.to_vec();
        if r.u8()? != 0 {
            return Err(NtStatus::INVALID_PARAMETER);
        }
        let value = r.bytes(value_len)?.to_vec();
        out.push(FullEa { flags, name, value });
        if next == 0 {
            return Ok(out);
        }
        if next < 8 + name_len + 1 + value_len || !next.is_multiple_of(4) {
            return Err(NtStatus::INVALID_PARAMETER);
        }
        at = at.checked_add(next).ok_or(NtStatus::INVALID_PARAMETER)?;
    }
}

/// Decode a FILE_GET_EA_INFORMATION list: the EA names a query asks for.
pub fn decode_get_list(b: &[u8]) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut at = 0usize;
    loop {
        if out.len() >= MAX_EA_ENTRIES {
            return Err(NtStatus::INVALID_PARAMETER);
        }
        let mut r = Reader::at(b, at)?;
        let next = r.u32()? as usize;
        let len = r.u8()? as usize;
        out.push(r.bytes(len)?.to_vec());
        if next == 0 {
            return Ok(out);
        }
        if next < 5 + len {
            return Err(NtStatus::INVALID_PARAMETER);
        }
        at = at.checked_add(next).ok_or(NtStatus::INVALID_PARAMETER)?;
    }
}

/// Encode a FILE_GET_EA_INFORMATION list (for tests and clients).
pub fn encode_get_list(names: &[&[u8]], out: &mut Vec<u8>) {
    let mut prev: Option<usize> = None;
    for n in names {
        if let Some(p) = prev {
            out.align_to(4);
            let next = (out.len() - p) as u32;
            out.set_u32(p, next);
        }
        prev = Some(out.len());
        out.put_u32(0);
        out.put_u8(n.len() as u8);
        out.put_bytes(n);
        out.put_u8(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_ea_list_round_trip() {
        let eas = vec![
            FullEa {
                flags: 0,
                name: b"EAONE".to_vec(),
                value: b"VALUE1".to_vec(),
            },
            FullEa {
                flags: 0x80,
                name: b"SECONDEA".to_vec(),
                value: b"ValueTwo".to_vec(),
            },
        ];
        let mut b = Vec::new();
        encode_list(&eas, &mut b);
        assert_eq!(b.len(), list_bytes(&eas));
        // 8 + 5 + 1 + 6 = 20, already aligned; second 8 + 8 + 1 + 8 = 25.
        assert_eq!(b.len(), 45);
        assert_eq!(decode_list(&b).unwrap(), eas);
        assert!(decode_list(&b[..b.len() - 1]).is_err());
    }

    #[test]
    fn get_ea_list_round_trip() {
        let mut b = Vec::new();
        encode_get_list(&[b"A", b"LONGER"], &mut b);
        assert_eq!(
            decode_get_list(&b).unwrap(),
            vec![b"A".to_vec(), b"LONGER".to_vec()]
        );
        assert!(decode_get_list(&[]).is_err());
    }
}
