//! SMB2 SET_INFO (MS-SMB2 2.2.39, 2.2.40).

use crate::header::HEADER_BYTES;
use crate::status::NtStatus;
use crate::wire::{slice_at, Reader, Result, Writer};

/// Largest SET_INFO buffer accepted (EA lists and security descriptors are the big ones; both
/// are limited to 64 KiB by the formats themselves).
pub const MAX_BUFFER_BYTES: usize = 128 * 1024;

const REQUEST_STRUCTURE_SIZE: u16 = 33;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetInfoRequest<'a> {
    pub info_type: u8,
    pub file_info_class: u8,
    pub additional_information: u32,
    pub file_id: [u8; 16],
    /// Borrowed from the request message.
    pub buffer: &'a [u8],
}

impl<'a> SetInfoRequest<'a> {
    pub fn decode(msg: &'a [u8]) -> Result<Self> {
        let mut r = Reader::at(msg, HEADER_BYTES)?;
        if r.u16()? != REQUEST_STRUCTURE_SIZE {
            return Err(NtStatus::INVALID_PARAMETER);
        }
        let info_type = r.u8()?;
        let file_info_class = r.u8()?;
        let len = r.u32()? as usize;
        let offset = r.u16()? as usize;
        r.skip(2)?;
        let additional_information = r.u32()?;
        let file_id = r.array()?;
        if len > MAX_BUFFER_BYTES {
            return Err(NtStatus::INVALID_PARAMETER);
        }
        let buffer = if len == 0 {
            &[][..]
        } else {
            slice_at(msg, offset, len)?
        };
        Ok(SetInfoRequest {
            info_type,
            file_info_class,
            additional_information,
            file_id,
            buffer,
        })
    }

    /// Encode the body (after a 64-byte header).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u16(REQUEST_STRUCTURE_SIZE);
        out.put_u8(self.info_type);
        out.put_u8(self.file_info_class);
        out.put_u32(self.buffer.len() as u32);
        out.put_u16((HEADER_BYTES + 32) as u16);
        out.put_u16(0);
        out.put_u32(self.additional_information);
        out.put_bytes(&self.file_id);
        out.put_bytes(self.buffer);
        if self.buffer.is_empty() {
            out.put_u8(0);
        }
    }
}

/// The SET_INFO response body (MS-SMB2 2.2.40): StructureSize 2, Reserved.
pub fn encode_response() -> Vec<u8> {
    vec![2, 0, 0, 0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trip_and_bounds() {
        let data = [1u8, 2, 3];
        let req = SetInfoRequest {
            info_type: 1,
            file_info_class: 20,
            additional_information: 0,
            file_id: [5; 16],
            buffer: &data,
        };
        let mut msg = vec![0u8; HEADER_BYTES];
        req.encode(&mut msg);
        assert_eq!(SetInfoRequest::decode(&msg).unwrap(), req);
        assert!(SetInfoRequest::decode(&msg[..msg.len() - 1]).is_err());
        assert_eq!(encode_response(), [2, 0, 0, 0]);
    }
}
