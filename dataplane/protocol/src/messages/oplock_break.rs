//! OPLOCK_BREAK: the server's notification (MS-SMB2 2.2.23.1), the client's acknowledgment
//! (2.2.24.1) and the server's response to it (2.2.25.1) share one 24-byte body shape.

use super::body_reader;
use crate::status::NtStatus;
use crate::wire::{Result, Writer};

/// Oplock levels (MS-SMB2 2.2.13 RequestedOplockLevel).
pub mod level {
    pub const NONE: u8 = 0x00;
    pub const II: u8 = 0x01;
    pub const EXCLUSIVE: u8 = 0x08;
    pub const BATCH: u8 = 0x09;
    pub const LEASE: u8 = 0xFF;
}

/// The MessageId of an unsolicited notification (MS-SMB2 3.3.4.6).
pub const NOTIFICATION_MESSAGE_ID: u64 = u64::MAX;

/// An oplock break acknowledgment: the level the client moves to, and the file.
#[derive(Debug, PartialEq, Eq)]
pub struct OplockBreakAck {
    pub oplock_level: u8,
    pub file_id: [u8; 16],
}

impl OplockBreakAck {
    pub fn decode(msg: &[u8]) -> Result<OplockBreakAck> {
        let mut r = body_reader(msg, 24)?;
        let oplock_level = r.u8()?;
        r.skip(5)?;
        let file_id = r.guid()?;
        if !matches!(oplock_level, level::NONE | level::II) {
            // MS-SMB2 3.3.5.22.1: only NONE or II can be acknowledged.
            return Err(NtStatus::INVALID_PARAMETER);
        }
        Ok(OplockBreakAck {
            oplock_level,
            file_id,
        })
    }
}

/// The body of a break notification or of the response to an acknowledgment.
pub fn encode(oplock_level: u8, file_id: &[u8; 16], out: &mut Vec<u8>) {
    out.put_u16(24);
    out.put_u8(oplock_level);
    out.put_u8(0);
    out.put_u32(0);
    out.put_bytes(file_id);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::test_message;

    #[test]
    fn round_trip_and_levels() {
        let mut body = Vec::new();
        encode(level::II, &[7; 16], &mut body);
        assert_eq!(body.len(), 24);
        let ack = OplockBreakAck::decode(&test_message(&body)).unwrap();
        assert_eq!(
            ack,
            OplockBreakAck {
                oplock_level: level::II,
                file_id: [7; 16]
            }
        );
        let mut bad = Vec::new();
        encode(level::BATCH, &[7; 16], &mut bad);
        assert_eq!(
            OplockBreakAck::decode(&test_message(&bad)),
            Err(NtStatus::INVALID_PARAMETER)
        );
        for n in 0..body.len() {
            assert!(OplockBreakAck::decode(&test_message(&body[..n])).is_err());
        }
    }
}
