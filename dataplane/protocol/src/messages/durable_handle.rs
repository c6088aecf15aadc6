//! Durable handle create contexts (MS-SMB2 2.2.13.2.3/4, 2.2.13.2.11/12, 2.2.14.2.3/12): a
//! client asks that an open outlive its connection (DHnQ, DH2Q) and later reclaims it (DHnC,
//! DH2C).

use crate::status::NtStatus;
use crate::wire::{Reader, Result};

/// DH2Q/DH2C Flags (MS-SMB2 2.2.13.2.11).
pub const FLAG_PERSISTENT: u32 = 0x0000_0002;

/// A durable handle request: version 1 (DHnQ) carries nothing; version 2 (DH2Q) a timeout,
/// flags and the CreateGuid that identifies the CREATE when the client replays it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DurableRequest {
    V1,
    V2 {
        /// Milliseconds the client asks the open to be kept after a disconnect (0: the
        /// server's choice).
        timeout_ms: u32,
        flags: u32,
        create_guid: [u8; 16],
    },
}

/// A reconnect of a durable open: the FileId it had (persistent and volatile halves, as
/// sent) and, for version 2, the CreateGuid and flags of the original request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DurableReconnect {
    V1 {
        file_id: [u8; 16],
    },
    V2 {
        file_id: [u8; 16],
        create_guid: [u8; 16],
        flags: u32,
    },
}

/// DHnQ data (MS-SMB2 2.2.13.2.3): 16 reserved bytes.
pub fn decode_dhnq(data: &[u8]) -> Result<DurableRequest> {
    if data.len() < 16 {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    Ok(DurableRequest::V1)
}

/// DH2Q data (MS-SMB2 2.2.13.2.11): Timeout, Flags, 8 reserved bytes, CreateGuid.
pub fn decode_dh2q(data: &[u8]) -> Result<DurableRequest> {
    if data.len() < 32 {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    let mut r = Reader::new(data);
    let timeout_ms = r.u32()?;
    let flags = r.u32()?;
    r.skip(8)?;
    let create_guid = r.guid()?;
    Ok(DurableRequest::V2 {
        timeout_ms,
        flags,
        create_guid,
    })
}

/// DHnC data (MS-SMB2 2.2.13.2.4): the FileId to reclaim.
pub fn decode_dhnc(data: &[u8]) -> Result<DurableReconnect> {
    if data.len() < 16 {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    let file_id = Reader::new(data).array()?;
    Ok(DurableReconnect::V1 { file_id })
}

/// DH2C data (MS-SMB2 2.2.13.2.12): FileId, CreateGuid, Flags.
pub fn decode_dh2c(data: &[u8]) -> Result<DurableReconnect> {
    if data.len() < 36 {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    let mut r = Reader::new(data);
    let file_id = r.array()?;
    let create_guid = r.guid()?;
    let flags = r.u32()?;
    Ok(DurableReconnect::V2 {
        file_id,
        create_guid,
        flags,
    })
}

/// DHnQ response data (MS-SMB2 2.2.14.2.3): 8 reserved bytes.
pub fn dhnq_response() -> [u8; 8] {
    [0; 8]
}

/// DH2Q response data (MS-SMB2 2.2.14.2.12): the timeout granted and the flags (persistent
/// only where the share is continuously available).
pub fn dh2q_response(timeout_ms: u32, flags: u32) -> [u8; 8] {
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&timeout_ms.to_le_bytes());
    out[4..].copy_from_slice(&flags.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUID: [u8; 16] = [0xa5; 16];
    const FILE_ID: [u8; 16] = [1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0];

    #[test]
    fn dh2q_fields_are_read_in_order() {
        let mut data = Vec::new();
        data.extend_from_slice(&60_000u32.to_le_bytes());
        data.extend_from_slice(&FLAG_PERSISTENT.to_le_bytes());
        data.extend_from_slice(&[0; 8]);
        data.extend_from_slice(&GUID);
        assert_eq!(
            decode_dh2q(&data),
            Ok(DurableRequest::V2 {
                timeout_ms: 60_000,
                flags: FLAG_PERSISTENT,
                create_guid: GUID,
            })
        );
        assert_eq!(decode_dh2q(&data[..31]), Err(NtStatus::INVALID_PARAMETER));
    }

    #[test]
    fn reconnect_contexts_carry_the_file_id() {
        assert_eq!(
            decode_dhnc(&FILE_ID),
            Ok(DurableReconnect::V1 { file_id: FILE_ID })
        );
        let mut data = FILE_ID.to_vec();
        data.extend_from_slice(&GUID);
        data.extend_from_slice(&0u32.to_le_bytes());
        assert_eq!(
            decode_dh2c(&data),
            Ok(DurableReconnect::V2 {
                file_id: FILE_ID,
                create_guid: GUID,
                flags: 0,
            })
        );
        assert!(decode_dh2c(&data[..35]).is_err());
        assert!(decode_dhnc(&FILE_ID[..15]).is_err());
        assert!(decode_dhnq(&[0; 15]).is_err());
        assert_eq!(decode_dhnq(&[0; 16]), Ok(DurableRequest::V1));
    }

    #[test]
    fn dh2q_response_layout() {
        let r = dh2q_response(120_000, 0);
        assert_eq!(&r[..4], &120_000u32.to_le_bytes());
        assert_eq!(&r[4..], &[0; 4]);
    }
}
