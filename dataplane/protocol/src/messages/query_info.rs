//! SMB2 QUERY_INFO (MS-SMB2 2.2.37, 2.2.38). The response shares QUERY_DIRECTORY's layout; see
//! [`super::query_directory::begin_output_response`].

use crate::header::HEADER_BYTES;
use crate::status::NtStatus;
use crate::wire::{slice_at, Reader, Result, Writer};

pub use super::query_directory::{
    begin_output_response, decode_output_response, encode_output_response, finish_output_response,
    OUTPUT_RESPONSE_FIXED_BYTES,
};

/// Largest QUERY_INFO input buffer accepted (an EA name list or a quota SID list).
pub const MAX_INPUT_BUFFER_BYTES: usize = 64 * 1024;

/// Flags for FileFullEaInformation queries (MS-SMB2 2.2.37).
pub mod flags {
    pub const RESTART_SCAN: u32 = 0x0000_0001;
    pub const RETURN_SINGLE_ENTRY: u32 = 0x0000_0002;
    pub const INDEX_SPECIFIED: u32 = 0x0000_0004;
}

const REQUEST_STRUCTURE_SIZE: u16 = 41;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryInfoRequest {
    pub info_type: u8,
    pub file_info_class: u8,
    pub output_buffer_length: u32,
    pub input_buffer: Vec<u8>,
    pub additional_information: u32,
    pub flags: u32,
    pub file_id: [u8; 16],
}

impl QueryInfoRequest {
    pub fn decode(msg: &[u8]) -> Result<Self> {
        let mut r = Reader::at(msg, HEADER_BYTES)?;
        if r.u16()? != REQUEST_STRUCTURE_SIZE {
            return Err(NtStatus::INVALID_PARAMETER);
        }
        let info_type = r.u8()?;
        let file_info_class = r.u8()?;
        let output_buffer_length = r.u32()?;
        let input_offset = r.u16()? as usize;
        r.skip(2)?;
        let input_len = r.u32()? as usize;
        let additional_information = r.u32()?;
        let flags = r.u32()?;
        let file_id = r.array()?;
        if input_len > MAX_INPUT_BUFFER_BYTES {
            return Err(NtStatus::INVALID_PARAMETER);
        }
        let input_buffer = if input_len == 0 {
            Vec::new()
        } else {
            slice_at(msg, input_offset, input_len)?.to_vec()
        };
        Ok(QueryInfoRequest {
            info_type,
            file_info_class,
            output_buffer_length,
            input_buffer,
            additional_information,
            flags,
            file_id,
        })
    }

    /// Encode the body (after a 64-byte header).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u16(REQUEST_STRUCTURE_SIZE);
        out.put_u8(self.info_type);
        out.put_u8(self.file_info_class);
        out.put_u32(self.output_buffer_length);
        out.put_u16(if self.input_buffer.is_empty() {
            0
        } else {
            (HEADER_BYTES + 40) as u16
        });
        out.put_u16(0);
        out.put_u32(self.input_buffer.len() as u32);
        out.put_u32(self.additional_information);
        out.put_u32(self.flags);
        out.put_bytes(&self.file_id);
        out.put_bytes(&self.input_buffer);
        if self.input_buffer.is_empty() {
            out.put_u8(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trip() {
        for input in [Vec::new(), vec![1, 2, 3, 4, 5]] {
            let req = QueryInfoRequest {
                info_type: 1,
                file_info_class: 18,
                output_buffer_length: 4096,
                input_buffer: input,
                additional_information: 7,
                flags: flags::RESTART_SCAN,
                file_id: [9; 16],
            };
            let mut msg = vec![0u8; HEADER_BYTES];
            req.encode(&mut msg);
            assert_eq!(QueryInfoRequest::decode(&msg).unwrap(), req);
        }
    }

    #[test]
    fn input_buffer_is_bounded() {
        let req = QueryInfoRequest {
            info_type: 1,
            file_info_class: 15,
            output_buffer_length: 10,
            input_buffer: vec![0; 8],
            additional_information: 0,
            flags: 0,
            file_id: [0; 16],
        };
        let mut msg = vec![0u8; HEADER_BYTES];
        req.encode(&mut msg);
        assert!(QueryInfoRequest::decode(&msg[..msg.len() - 1]).is_err());
        // InputBufferLength beyond the limit.
        msg[HEADER_BYTES + 12..HEADER_BYTES + 16].copy_from_slice(&(1u32 << 20).to_le_bytes());
        assert!(QueryInfoRequest::decode(&msg).is_err());
    }
}
