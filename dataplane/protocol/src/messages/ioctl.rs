//! IOCTL request and response (MS-SMB2 2.2.31, 2.2.32).

use super::{body_reader, buffer_at};
use crate::limits::MAX_IO_SIZE_BYTES;
use crate::status::NtStatus;
use crate::wire::{Result, Writer};

pub mod ctl_code {
    pub const FSCTL_DFS_GET_REFERRALS: u32 = 0x0006_0194;
    pub const FSCTL_PIPE_TRANSCEIVE: u32 = 0x0011_C017;
    pub const FSCTL_VALIDATE_NEGOTIATE_INFO: u32 = 0x0014_0204;
    pub const FSCTL_QUERY_NETWORK_INTERFACE_INFO: u32 = 0x0014_01FC;
    pub const FSCTL_SMBTORTURE_FORCE_UNACKED_TIMEOUT: u32 = 0x8384_8003;
}

/// SMB2_0_IOCTL_IS_FSCTL.
pub const FLAG_IS_FSCTL: u32 = 0x0000_0001;

#[derive(Debug, PartialEq, Eq)]
pub struct IoctlRequest<'a> {
    pub ctl_code: u32,
    pub file_id: [u8; 16],
    pub input: &'a [u8],
    pub max_input_response: u32,
    pub max_output_response: u32,
    pub flags: u32,
}

impl<'a> IoctlRequest<'a> {
    pub fn decode(msg: &'a [u8]) -> Result<IoctlRequest<'a>> {
        let mut r = body_reader(msg, 57)?;
        r.skip(2)?;
        let ctl_code = r.u32()?;
        let file_id = r.guid()?;
        let input_offset = r.u32()? as usize;
        let input_count = r.u32()? as usize;
        let max_input_response = r.u32()?;
        r.skip(8)?; // OutputOffset, OutputCount: requests carry no output
        let max_output_response = r.u32()?;
        let flags = r.u32()?;
        if input_count > MAX_IO_SIZE_BYTES as usize {
            return Err(NtStatus::INVALID_PARAMETER);
        }
        let input = buffer_at(msg, input_offset, input_count)?;
        Ok(IoctlRequest {
            ctl_code,
            file_id,
            input,
            max_input_response,
            max_output_response,
            flags,
        })
    }
}

/// The response body with `output` placed right after the fixed part.
pub fn encode_response(ctl_code: u32, file_id: &[u8; 16], output: &[u8], out: &mut Vec<u8>) {
    let buffer_offset = 64 + 48;
    out.put_u16(49);
    out.put_u16(0);
    out.put_u32(ctl_code);
    out.put_bytes(file_id);
    out.put_u32(buffer_offset); // InputOffset
    out.put_u32(0); // InputCount
    out.put_u32(buffer_offset); // OutputOffset
    out.put_u32(output.len() as u32);
    out.put_u32(0); // Flags
    out.put_u32(0);
    out.put_bytes(output);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::test_message;

    #[test]
    fn round_trip_shape() {
        let mut b = Vec::new();
        b.put_u16(57);
        b.put_u16(0);
        b.put_u32(ctl_code::FSCTL_VALIDATE_NEGOTIATE_INFO);
        b.put_bytes(&[0xff; 16]);
        b.put_u32(64 + 56);
        b.put_u32(2);
        b.put_u32(0);
        b.put_u32(0);
        b.put_u32(0);
        b.put_u32(24);
        b.put_u32(FLAG_IS_FSCTL);
        b.put_u32(0);
        b.put_bytes(&[1, 2]);
        let m = test_message(&b);
        let req = IoctlRequest::decode(&m).unwrap();
        assert_eq!(req.input, &[1, 2]);
        assert_eq!(req.max_output_response, 24);
        for n in 0..m.len() {
            assert!(IoctlRequest::decode(&m[..n]).is_err());
        }
        let mut out = Vec::new();
        encode_response(1, &[0; 16], &[9; 4], &mut out);
        assert_eq!(out.len(), 48 + 4);
    }
}
