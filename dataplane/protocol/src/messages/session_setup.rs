//! SESSION_SETUP request and response (MS-SMB2 2.2.5, 2.2.6), and LOGOFF (2.2.7, 2.2.8: see
//! [`super::echo`] for the shared 4-byte body).

use super::{body_reader, buffer_at};
use crate::header::HEADER_BYTES;
use crate::limits::MAX_SECURITY_BUFFER_BYTES;
use crate::status::NtStatus;
use crate::wire::{Result, Writer};

/// SMB2_SESSION_FLAG_BINDING: bind this connection to an existing session (multichannel).
pub const FLAG_BINDING: u8 = 0x01;

pub mod session_flags {
    pub const IS_GUEST: u16 = 0x0001;
    pub const IS_NULL: u16 = 0x0002;
    pub const ENCRYPT_DATA: u16 = 0x0004;
}

#[derive(Debug, PartialEq, Eq)]
pub struct SessionSetupRequest<'a> {
    pub flags: u8,
    pub security_mode: u8,
    pub capabilities: u32,
    pub previous_session_id: u64,
    pub security_buffer: &'a [u8],
}

impl<'a> SessionSetupRequest<'a> {
    pub fn decode(msg: &'a [u8]) -> Result<SessionSetupRequest<'a>> {
        let mut r = body_reader(msg, 25)?;
        let flags = r.u8()?;
        let security_mode = r.u8()?;
        let capabilities = r.u32()?;
        r.skip(4)?; // Channel
        let offset = r.u16()? as usize;
        let len = r.u16()? as usize;
        let previous_session_id = r.u64()?;
        if len > MAX_SECURITY_BUFFER_BYTES {
            return Err(NtStatus::INVALID_PARAMETER);
        }
        let security_buffer = buffer_at(msg, offset, len)?;
        Ok(SessionSetupRequest {
            flags,
            security_mode,
            capabilities,
            previous_session_id,
            security_buffer,
        })
    }
}

pub fn encode_response(session_flags: u16, security_buffer: &[u8], out: &mut Vec<u8>) {
    out.put_u16(9);
    out.put_u16(session_flags);
    out.put_u16((HEADER_BYTES + 8) as u16);
    out.put_u16(security_buffer.len() as u16);
    if security_buffer.is_empty() {
        // The fixed part is 8 bytes; StructureSize 9 counts one byte of buffer.
        out.put_u8(0);
    } else {
        out.put_bytes(security_buffer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::test_message;

    #[test]
    fn decode_and_bounds() {
        let mut b = Vec::new();
        b.put_u16(25);
        b.put_u8(FLAG_BINDING);
        b.put_u8(1);
        b.put_u32(0);
        b.put_u32(0);
        b.put_u16(64 + 24);
        b.put_u16(3);
        b.put_u64(0);
        b.put_bytes(&[1, 2, 3]);
        let m = test_message(&b);
        let req = SessionSetupRequest::decode(&m).unwrap();
        assert_eq!(req.flags, FLAG_BINDING);
        assert_eq!(req.security_buffer, &[1, 2, 3]);
        for n in 0..m.len() {
            assert!(SessionSetupRequest::decode(&m[..n]).is_err());
        }
        let mut out = Vec::new();
        encode_response(0, &[], &mut out);
        assert_eq!(out.len(), 9);
    }
}
