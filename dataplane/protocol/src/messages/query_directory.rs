//! SMB2 QUERY_DIRECTORY (MS-SMB2 2.2.33, 2.2.34).

use crate::header::HEADER_BYTES;
use crate::limits::MAX_PATH_UNITS;
use crate::status::NtStatus;
use crate::wire::{slice_at, utf16le_to_string, Reader, Result, Writer};

/// Flags (MS-SMB2 2.2.33).
pub mod flags {
    pub const RESTART_SCANS: u8 = 0x01;
    pub const RETURN_SINGLE_ENTRY: u8 = 0x02;
    pub const INDEX_SPECIFIED: u8 = 0x04;
    pub const REOPEN: u8 = 0x10;
}

const REQUEST_STRUCTURE_SIZE: u16 = 33;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryDirectoryRequest {
    pub file_information_class: u8,
    pub flags: u8,
    pub file_index: u32,
    pub file_id: [u8; 16],
    /// The search pattern; empty means "*" (MS-FSA 2.1.5.6).
    pub file_name: String,
    pub output_buffer_length: u32,
}

impl QueryDirectoryRequest {
    /// Decode from `msg` (header + body).
    pub fn decode(msg: &[u8]) -> Result<Self> {
        let mut r = Reader::at(msg, HEADER_BYTES)?;
        if r.u16()? != REQUEST_STRUCTURE_SIZE {
            return Err(NtStatus::INVALID_PARAMETER);
        }
        let file_information_class = r.u8()?;
        let flags = r.u8()?;
        let file_index = r.u32()?;
        let file_id = r.array()?;
        let name_offset = r.u16()? as usize;
        let name_len = r.u16()? as usize;
        let output_buffer_length = r.u32()?;
        if name_len > MAX_PATH_UNITS * 2 {
            return Err(NtStatus::INVALID_PARAMETER);
        }
        let file_name = if name_len == 0 {
            String::new()
        } else {
            utf16le_to_string(slice_at(msg, name_offset, name_len)?)?
        };
        Ok(QueryDirectoryRequest {
            file_information_class,
            flags,
            file_index,
            file_id,
            file_name,
            output_buffer_length,
        })
    }

    /// Encode the body (after a 64-byte header); the name follows the fixed part.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let name = crate::wire::string_to_utf16le(&self.file_name);
        out.put_u16(REQUEST_STRUCTURE_SIZE);
        out.put_u8(self.file_information_class);
        out.put_u8(self.flags);
        out.put_u32(self.file_index);
        out.put_bytes(&self.file_id);
        out.put_u16(if name.is_empty() {
            0
        } else {
            (HEADER_BYTES + 32) as u16
        });
        out.put_u16(name.len() as u16);
        out.put_u32(self.output_buffer_length);
        out.put_bytes(&name);
        if name.is_empty() {
            out.put_u8(0);
        }
    }
}

/// Response bodies of QUERY_DIRECTORY and QUERY_INFO share one layout (MS-SMB2 2.2.34, 2.2.38):
/// StructureSize 9, OutputBufferOffset, OutputBufferLength, Buffer. Handlers append the buffer
/// straight after [`begin_output_response`] and close it with [`finish_output_response`], so
/// the data is written once.
pub const OUTPUT_RESPONSE_FIXED_BYTES: usize = 8;

/// Start a response body in `out` (which must be empty); the buffer starts at
/// `OUTPUT_RESPONSE_FIXED_BYTES`.
pub fn begin_output_response(out: &mut Vec<u8>) {
    out.put_u16(9);
    out.put_u16((HEADER_BYTES + OUTPUT_RESPONSE_FIXED_BYTES) as u16);
    out.put_u32(0);
}

/// Patch the buffer length; an empty buffer still gets the one byte StructureSize 9 implies.
pub fn finish_output_response(out: &mut Vec<u8>) {
    let len = out.len().saturating_sub(OUTPUT_RESPONSE_FIXED_BYTES);
    out.set_u32(4, len as u32);
    if len == 0 {
        out.put_u8(0);
    }
}

/// A complete response body around `buffer`.
pub fn encode_output_response(buffer: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(OUTPUT_RESPONSE_FIXED_BYTES + buffer.len().max(1));
    begin_output_response(&mut out);
    out.put_bytes(buffer);
    finish_output_response(&mut out);
    out
}

/// The buffer of a response body (for tests and clients). `body` starts after the header.
pub fn decode_output_response(body: &[u8]) -> Result<&[u8]> {
    let mut r = Reader::new(body);
    if r.u16()? != 9 {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    let offset = r.u16()? as usize;
    let len = r.u32()? as usize;
    if len == 0 {
        return Ok(&[]);
    }
    let at = offset
        .checked_sub(HEADER_BYTES)
        .ok_or(NtStatus::INVALID_PARAMETER)?;
    slice_at(body, at, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trip() {
        let req = QueryDirectoryRequest {
            file_information_class: 0x25,
            flags: flags::RESTART_SCANS,
            file_index: 0,
            file_id: [3; 16],
            file_name: "*.txt".into(),
            output_buffer_length: 65536,
        };
        let mut msg = vec![0u8; HEADER_BYTES];
        req.encode(&mut msg);
        assert_eq!(QueryDirectoryRequest::decode(&msg).unwrap(), req);

        let empty = QueryDirectoryRequest {
            file_name: String::new(),
            ..req
        };
        let mut msg = vec![0u8; HEADER_BYTES];
        empty.encode(&mut msg);
        assert_eq!(QueryDirectoryRequest::decode(&msg).unwrap(), empty);
    }

    #[test]
    fn request_bounds_checked() {
        let mut msg = vec![0u8; HEADER_BYTES];
        QueryDirectoryRequest {
            file_information_class: 1,
            flags: 0,
            file_index: 0,
            file_id: [0; 16],
            file_name: "abc".into(),
            output_buffer_length: 10,
        }
        .encode(&mut msg);
        assert!(QueryDirectoryRequest::decode(&msg[..msg.len() - 1]).is_err());
        msg[HEADER_BYTES] = 9;
        assert!(QueryDirectoryRequest::decode(&msg).is_err());
    }

    #[test]
    fn output_response_round_trip() {
        let body = encode_output_response(b"hello");
        assert_eq!(decode_output_response(&body).unwrap(), b"hello");
        let empty = encode_output_response(&[]);
        assert_eq!(empty.len(), 9);
        assert_eq!(decode_output_response(&empty).unwrap(), b"");
    }
}
