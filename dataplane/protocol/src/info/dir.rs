//! Directory enumeration classes (MS-FSCC 2.4) returned by QUERY_DIRECTORY.
//!
//! Entries are 8-byte aligned and chained by NextEntryOffset (0 on the last one). The encoder
//! appends one entry at a time so the handler can stop when the client's buffer is full.

use super::{put_utf16, utf16_len, Times};
use crate::status::NtStatus;
use crate::wire::{utf16le_to_string, Reader, Result, Writer};

/// FileInformationClass values accepted by QUERY_DIRECTORY (MS-SMB2 2.2.33).
pub mod class {
    pub const DIRECTORY: u8 = 0x01;
    pub const FULL_DIRECTORY: u8 = 0x02;
    pub const BOTH_DIRECTORY: u8 = 0x03;
    pub const NAMES: u8 = 0x0C;
    pub const ID_BOTH_DIRECTORY: u8 = 0x25;
    pub const ID_FULL_DIRECTORY: u8 = 0x26;
}

/// Longest 8.3 short name in bytes (12 UTF-16 characters).
pub const SHORT_NAME_BYTES: usize = 24;

/// One directory entry, the union of what the classes carry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirEntry {
    pub file_index: u32,
    pub times: Times,
    pub end_of_file: u64,
    pub allocation_size: u64,
    pub file_attributes: u32,
    /// EaSize, or the reparse tag when FILE_ATTRIBUTE_REPARSE_POINT is set.
    pub ea_size: u32,
    pub file_id: u64,
    /// 8.3 name, at most 12 characters (longer is truncated on encode).
    pub short_name: String,
    pub name: String,
}

/// Bytes before FileName for `class`, or `None` for a class QUERY_DIRECTORY does not serve.
/// MS-FSA 2.1.5.6.3: an OutputBufferLength below this is STATUS_INFO_LENGTH_MISMATCH.
pub fn fixed_bytes(class: u8) -> Option<usize> {
    Some(match class {
        class::DIRECTORY => 64,
        class::FULL_DIRECTORY => 68,
        class::BOTH_DIRECTORY => 94,
        class::NAMES => 12,
        class::ID_BOTH_DIRECTORY => 104,
        class::ID_FULL_DIRECTORY => 80,
        _ => return None,
    })
}

/// Size of one entry of `class` with `name` (unpadded).
pub fn entry_bytes(class: u8, name: &str) -> Option<usize> {
    Some(fixed_bytes(class)? + utf16_len(name))
}

/// Append `e` as a `class` entry with NextEntryOffset 0 and return its start offset in `out`.
/// The caller pads to 8 and patches the previous entry's NextEntryOffset (see [`link`]).
pub fn encode_entry(class: u8, e: &DirEntry, out: &mut Vec<u8>) -> Result<usize> {
    let fixed = fixed_bytes(class).ok_or(NtStatus::INVALID_INFO_CLASS)?;
    let start = out.len();
    out.put_u32(0); // NextEntryOffset
    out.put_u32(e.file_index);
    if class == class::NAMES {
        out.put_u32(utf16_len(&e.name) as u32);
        put_utf16(out, &e.name);
        return Ok(start);
    }
    e.times.encode(out);
    out.put_u64(e.end_of_file);
    out.put_u64(e.allocation_size);
    out.put_u32(e.file_attributes);
    out.put_u32(utf16_len(&e.name) as u32);
    if class != class::DIRECTORY {
        out.put_u32(e.ea_size);
    }
    if class == class::BOTH_DIRECTORY || class == class::ID_BOTH_DIRECTORY {
        let mut short = Vec::with_capacity(SHORT_NAME_BYTES);
        for u in e.short_name.encode_utf16().take(SHORT_NAME_BYTES / 2) {
            short.extend_from_slice(&u.to_le_bytes());
        }
        out.put_u8(short.len() as u8);
        out.put_u8(0); // Reserved
        out.put_bytes(&short);
        out.put_zeros(SHORT_NAME_BYTES - short.len());
    }
    if class == class::ID_BOTH_DIRECTORY {
        out.put_u16(0); // Reserved2
        out.put_u64(e.file_id);
    }
    if class == class::ID_FULL_DIRECTORY {
        out.put_u32(0); // Reserved
        out.put_u64(e.file_id);
    }
    debug_assert_eq!(out.len() - start, fixed);
    put_utf16(out, &e.name);
    Ok(start)
}

/// Make the entry at `prev` point at `next` (both offsets into the same buffer).
pub fn link(out: &mut [u8], prev: usize, next: usize) {
    let delta = (next - prev) as u32;
    out[prev..prev + 4].copy_from_slice(&delta.to_le_bytes());
}

/// Decode a buffer of `class` entries (for tests and clients).
pub fn decode_entries(class: u8, b: &[u8]) -> Result<Vec<DirEntry>> {
    fixed_bytes(class).ok_or(NtStatus::INVALID_INFO_CLASS)?;
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < b.len() {
        let mut r = Reader::at(b, at)?;
        let next = r.u32()? as usize;
        out.push(decode_one(class, &mut r)?);
        if next == 0 {
            break;
        }
        at = at.checked_add(next).ok_or(NtStatus::INVALID_PARAMETER)?;
    }
    Ok(out)
}

fn decode_one(class: u8, r: &mut Reader) -> Result<DirEntry> {
    let mut e = DirEntry {
        file_index: r.u32()?,
        ..Default::default()
    };
    if class == class::NAMES {
        let len = r.u32()? as usize;
        e.name = utf16le_to_string(r.bytes(len)?)?;
        return Ok(e);
    }
    e.times = Times::decode(r)?;
    e.end_of_file = r.u64()?;
    e.allocation_size = r.u64()?;
    e.file_attributes = r.u32()?;
    let name_len = r.u32()? as usize;
    if class != class::DIRECTORY {
        e.ea_size = r.u32()?;
    }
    if class == class::BOTH_DIRECTORY || class == class::ID_BOTH_DIRECTORY {
        let short_len = (r.u8()? as usize).min(SHORT_NAME_BYTES);
        r.skip(1)?;
        let short = r.bytes(SHORT_NAME_BYTES)?;
        e.short_name = utf16le_to_string(&short[..short_len])?;
    }
    if class == class::ID_BOTH_DIRECTORY {
        r.skip(2)?;
        e.file_id = r.u64()?;
    }
    if class == class::ID_FULL_DIRECTORY {
        r.skip(4)?;
        e.file_id = r.u64()?;
    }
    e.name = utf16le_to_string(r.bytes(name_len)?)?;
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str) -> DirEntry {
        DirEntry {
            file_index: 0,
            times: Times {
                creation: 10,
                last_access: 20,
                last_write: 30,
                change: 40,
            },
            end_of_file: 5,
            allocation_size: 4096,
            file_attributes: 0x20,
            ea_size: 12,
            file_id: 0x1234,
            short_name: "LONGNA~1.TXT".into(),
            name: name.into(),
        }
    }

    #[test]
    fn every_class_round_trips_a_chain() {
        for class in [1u8, 2, 3, 12, 37, 38] {
            let entries = [sample("."), sample("a long name.txt"), sample("ü")];
            let mut buf = Vec::new();
            let mut prev = None;
            for e in &entries {
                buf.align_to(8);
                let at = encode_entry(class, e, &mut buf).unwrap();
                assert_eq!(at % 8, 0);
                if let Some(p) = prev {
                    link(&mut buf, p, at);
                }
                prev = Some(at);
            }
            let got = decode_entries(class, &buf).unwrap();
            assert_eq!(got.len(), 3);
            for (g, e) in got.iter().zip(&entries) {
                assert_eq!(g.name, e.name);
                if class != class::NAMES {
                    assert_eq!(g.times, e.times);
                    assert_eq!(g.file_attributes, e.file_attributes);
                }
                if class == class::ID_BOTH_DIRECTORY || class == class::ID_FULL_DIRECTORY {
                    assert_eq!(g.file_id, e.file_id);
                }
                if class == class::BOTH_DIRECTORY || class == class::ID_BOTH_DIRECTORY {
                    assert_eq!(g.short_name, e.short_name);
                }
            }
            let single = entry_bytes(class, "ab").unwrap();
            let mut one = Vec::new();
            encode_entry(class, &sample("ab"), &mut one).unwrap();
            assert_eq!(one.len(), single);
        }
        assert!(encode_entry(99, &sample("x"), &mut Vec::new()).is_err());
    }
}
