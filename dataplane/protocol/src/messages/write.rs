//! WRITE request and response (MS-SMB2 2.2.21, 2.2.22).

use std::ops::Range;

use super::body_reader;
use crate::header::HEADER_BYTES;
use crate::limits::MAX_IO_SIZE_BYTES;
use crate::status::NtStatus;
use crate::wire::{Result, Writer};

/// SMB2_WRITEFLAG_WRITE_THROUGH.
pub const FLAG_WRITE_THROUGH: u32 = 0x0000_0001;
/// Fixed part of the request body (StructureSize 49 counts one buffer byte).
const REQUEST_FIXED_BYTES: usize = 48;

#[derive(Debug, PartialEq, Eq)]
pub struct WriteRequest {
    /// The data's position in the message (so the connection can write from its buffer).
    pub data: Range<usize>,
    pub offset: u64,
    pub file_id: [u8; 16],
    pub channel: u32,
    pub flags: u32,
}

impl WriteRequest {
    /// Decode, checking that DataOffset/Length lie inside `msg` after the fixed part and that
    /// Length is at most [`MAX_IO_SIZE_BYTES`].
    pub fn decode(msg: &[u8]) -> Result<WriteRequest> {
        let mut r = body_reader(msg, 49)?;
        let data_offset = r.u16()? as usize;
        let length = r.u32()?;
        let offset = r.u64()?;
        let file_id = r.guid()?;
        let channel = r.u32()?;
        r.skip(4)?; // RemainingBytes
        r.skip(4)?; // WriteChannelInfoOffset/Length
        let flags = r.u32()?;
        if length > MAX_IO_SIZE_BYTES {
            return Err(NtStatus::INVALID_PARAMETER);
        }
        let start = if length == 0 {
            msg.len().min(HEADER_BYTES + REQUEST_FIXED_BYTES)
        } else {
            if data_offset < HEADER_BYTES + REQUEST_FIXED_BYTES {
                return Err(NtStatus::INVALID_PARAMETER);
            }
            data_offset
        };
        let end = start
            .checked_add(length as usize)
            .filter(|&e| e <= msg.len())
            .ok_or(NtStatus::INVALID_PARAMETER)?;
        Ok(WriteRequest {
            data: start..end,
            offset,
            file_id,
            channel,
            flags,
        })
    }
}

/// The 16-byte response body for `count` bytes written.
pub fn encode_response(count: u32) -> [u8; 16] {
    let mut out = Vec::with_capacity(16);
    out.put_u16(17);
    out.put_u16(0);
    out.put_u32(count);
    out.put_u32(0); // Remaining
    out.put_u16(0); // WriteChannelInfoOffset
    out.put_u16(0); // WriteChannelInfoLength
    let mut fixed = [0u8; 16];
    fixed.copy_from_slice(&out);
    fixed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::test_message;

    fn body(data: &[u8], data_offset: u16, offset: u64) -> Vec<u8> {
        let mut b = Vec::new();
        b.put_u16(49);
        b.put_u16(data_offset);
        b.put_u32(data.len() as u32);
        b.put_u64(offset);
        b.put_bytes(&[4; 16]);
        b.put_u32(0);
        b.put_u32(0);
        b.put_u32(0);
        b.put_u32(FLAG_WRITE_THROUGH);
        b.put_bytes(data);
        b
    }

    #[test]
    fn request_bounds() {
        let msg = test_message(&body(b"hello", 112, 7));
        let req = WriteRequest::decode(&msg).unwrap();
        assert_eq!(&msg[req.data.clone()], b"hello");
        assert_eq!(req.offset, 7);
        assert_eq!(req.flags, FLAG_WRITE_THROUGH);
        // Data running past the message.
        let mut bad = body(b"hello", 112, 7);
        bad[4] = 6;
        assert!(WriteRequest::decode(&test_message(&bad)).is_err());
        // Data offset inside the fixed part.
        assert!(WriteRequest::decode(&test_message(&body(b"hello", 100, 0))).is_err());
        // Zero-length writes need no data.
        let zero = test_message(&body(b"", 0, 0));
        assert_eq!(WriteRequest::decode(&zero).unwrap().data.len(), 0);
    }

    #[test]
    fn response() {
        let r = encode_response(65536);
        assert_eq!(&r[..2], &[17, 0]);
        assert_eq!(&r[4..8], &65536u32.to_le_bytes());
    }
}
