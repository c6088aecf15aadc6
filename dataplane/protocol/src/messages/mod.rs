//! SMB2 message bodies, one module per command (MS-SMB2 2.2). Request decoders take the whole
//! message (64-byte header + body) because offsets in SMB2 bodies count from the header start;
//! response encoders append the body (everything after the header) to a `Vec<u8>`.

pub mod close;
pub mod create;
pub mod echo;
pub mod error;
pub mod flush;
pub mod ioctl;
pub mod lock;
pub mod negotiate;
pub mod query_directory;
pub mod query_info;
pub mod read;
pub mod session_setup;
pub mod set_info;
pub mod tree_connect;
pub mod write;

use crate::header::HEADER_BYTES;
use crate::status::NtStatus;
use crate::wire::{Reader, Result};

/// A reader positioned at the body of `msg`, after checking the body's StructureSize.
///
/// MS-SMB2 3.3.5.2.6: a request whose StructureSize does not match is answered with
/// STATUS_INVALID_PARAMETER.
pub fn body_reader(msg: &[u8], structure_size: u16) -> Result<Reader<'_>> {
    let mut r = Reader::at(msg, HEADER_BYTES)?;
    if r.u16()? != structure_size {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    Ok(r)
}

/// The bytes at `offset`/`len` of a message, where a zero length may come with any offset.
pub fn buffer_at(msg: &[u8], offset: usize, len: usize) -> Result<&[u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if offset < HEADER_BYTES {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    crate::wire::slice_at(msg, offset, len)
}

/// Build a message for tests: a zeroed 64-byte header followed by `body`.
#[cfg(test)]
pub(crate) fn test_message(body: &[u8]) -> Vec<u8> {
    let mut m = vec![0u8; HEADER_BYTES];
    m[..4].copy_from_slice(&crate::header::PROTOCOL_ID);
    m[4] = 64;
    m.extend_from_slice(body);
    m
}
