//! SMB2 message bodies, one module per command (MS-SMB2 2.2). Request decoders take the whole
//! message (64-byte header + body) because offsets in SMB2 bodies count from the header start;
//! response encoders append the body (everything after the header) to a `Vec<u8>`.

pub mod close;
pub mod create;
pub mod durable_handle;
pub mod echo;
pub mod error;
pub mod flush;
pub mod ioctl;
pub mod lease;
pub mod lock;
pub mod negotiate;
pub mod oplock_break;
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

/// The payload size a request's CreditCharge must cover (MS-SMB2 3.3.5.2.5): the larger of what
/// it sends and what it may receive, for the commands that carry bulk data. `None` for others or
/// when the body is too short to say (the command's decoder reports that).
pub fn charged_payload_bytes(command: crate::header::Command, msg: &[u8]) -> Option<u32> {
    use crate::header::Command;
    let u32_at = |off: usize| -> Option<u32> {
        let b = msg.get(HEADER_BYTES + off..HEADER_BYTES + off + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    match command {
        Command::Read | Command::Write | Command::SetInfo | Command::ChangeNotify => u32_at(4),
        Command::QueryInfo => Some(u32_at(4)?.max(u32_at(12)?)),
        Command::QueryDirectory => u32_at(28),
        Command::Ioctl => Some(u32_at(28)?.max(u32_at(44)?)),
        _ => None,
    }
}

/// Credits a request with `payload_bytes` of payload must be charged: one per started 64 KiB.
pub fn credits_needed(payload_bytes: u32) -> u16 {
    (payload_bytes.saturating_sub(1) / 65536 + 1).min(u16::MAX as u32) as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::Command;

    #[test]
    fn credit_charge_rules() {
        assert_eq!(credits_needed(0), 1);
        assert_eq!(credits_needed(65536), 1);
        assert_eq!(credits_needed(65537), 2);
        assert_eq!(credits_needed(8 * 1024 * 1024), 128);
        // READ of 1 MiB: Length at body offset 4.
        let mut body = vec![49, 0, 0, 0];
        body.extend_from_slice(&(1u32 << 20).to_le_bytes());
        let m = test_message(&body);
        assert_eq!(charged_payload_bytes(Command::Read, &m), Some(1 << 20));
        assert_eq!(charged_payload_bytes(Command::Read, &m[..66]), None);
        assert_eq!(charged_payload_bytes(Command::Echo, &m), None);
    }
}
