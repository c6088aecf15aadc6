//! File, directory, filesystem and security information classes (MS-FSCC 2.4, 2.5; MS-DTYP
//! 2.4.6), as carried by QUERY_DIRECTORY, QUERY_INFO and SET_INFO.
//!
//! Every structure is a plain Rust struct with `encode(&self, &mut Vec<u8>)` and, where a client
//! sends it, `decode(&[u8]) -> Result<Self>`. Decoders are bounds-checked and never panic.

pub mod dir;
pub mod ea;
pub mod file;
pub mod fs;
pub mod security;

/// InfoType of QUERY_INFO / SET_INFO (MS-SMB2 2.2.37).
pub mod info_type {
    pub const FILE: u8 = 0x01;
    pub const FILESYSTEM: u8 = 0x02;
    pub const SECURITY: u8 = 0x03;
    pub const QUOTA: u8 = 0x04;
}

/// File attributes (MS-FSCC 2.6).
pub mod attributes {
    pub const READONLY: u32 = 0x0000_0001;
    pub const HIDDEN: u32 = 0x0000_0002;
    pub const SYSTEM: u32 = 0x0000_0004;
    pub const DIRECTORY: u32 = 0x0000_0010;
    pub const ARCHIVE: u32 = 0x0000_0020;
    pub const NORMAL: u32 = 0x0000_0080;
    pub const TEMPORARY: u32 = 0x0000_0100;
    pub const SPARSE_FILE: u32 = 0x0000_0200;
    pub const REPARSE_POINT: u32 = 0x0000_0400;
    pub const COMPRESSED: u32 = 0x0000_0800;
    pub const OFFLINE: u32 = 0x0000_1000;
    pub const NOT_CONTENT_INDEXED: u32 = 0x0000_2000;
    pub const ENCRYPTED: u32 = 0x0000_4000;
}

/// The four timestamps most classes carry, as FILETIME (100 ns since 1601-01-01).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Times {
    pub creation: u64,
    pub last_access: u64,
    pub last_write: u64,
    pub change: u64,
}

impl Times {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        use crate::wire::Writer;
        out.put_u64(self.creation);
        out.put_u64(self.last_access);
        out.put_u64(self.last_write);
        out.put_u64(self.change);
    }

    pub(crate) fn decode(r: &mut crate::wire::Reader) -> crate::wire::Result<Times> {
        Ok(Times {
            creation: r.u64()?,
            last_access: r.u64()?,
            last_write: r.u64()?,
            change: r.u64()?,
        })
    }
}

/// Append `name` as UTF-16LE and return its length in bytes.
pub(crate) fn put_utf16(out: &mut Vec<u8>, name: &str) -> usize {
    let start = out.len();
    for u in name.encode_utf16() {
        out.extend_from_slice(&u.to_le_bytes());
    }
    out.len() - start
}

/// Length of `name` in UTF-16LE bytes.
pub fn utf16_len(name: &str) -> usize {
    name.encode_utf16().count() * 2
}
