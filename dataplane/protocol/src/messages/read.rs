//! READ request and response (MS-SMB2 2.2.19, 2.2.20).
//!
//! The data plane reads file data straight into the response buffer, so the response is built
//! around it: [`encode_response_head`] gives the 16-byte fixed part, the data follows at
//! [`DATA_OFFSET`] from the header start.
//!
//! End of file: a READ with `Length > 0` that reads 0 bytes because `Offset` is at or past the
//! end of the file fails with STATUS_END_OF_FILE, and one that reads fewer than `MinimumCount`
//! bytes fails the same way (MS-SMB2 3.3.5.12). Both are decided by whoever does the I/O, after
//! it; see [`status_after_read`].

use super::body_reader;
use crate::header::HEADER_BYTES;
use crate::status::NtStatus;
use crate::wire::Result;

/// Where the data starts in a READ response, counted from the header: 64 + 16.
pub const DATA_OFFSET: u8 = (HEADER_BYTES + 16) as u8;

/// SMB2_READFLAG_READ_UNBUFFERED (3.0.2+).
pub const FLAG_READ_UNBUFFERED: u8 = 0x01;

#[derive(Debug, PartialEq, Eq)]
pub struct ReadRequest {
    pub flags: u8,
    pub length: u32,
    pub offset: u64,
    pub file_id: [u8; 16],
    pub minimum_count: u32,
    pub channel: u32,
}

impl ReadRequest {
    pub fn decode(msg: &[u8]) -> Result<ReadRequest> {
        let mut r = body_reader(msg, 49)?;
        r.skip(1)?; // Padding
        let flags = r.u8()?;
        let length = r.u32()?;
        let offset = r.u64()?;
        let file_id = r.guid()?;
        let minimum_count = r.u32()?;
        let channel = r.u32()?;
        // RemainingBytes, ReadChannelInfoOffset/Length: RDMA channels are not supported, the
        // handler rejects a channel other than NONE.
        r.skip(8)?;
        Ok(ReadRequest {
            flags,
            length,
            offset,
            file_id,
            minimum_count,
            channel,
        })
    }
}

/// The 16-byte fixed part of a READ response carrying `data_len` bytes at [`DATA_OFFSET`].
pub fn encode_response_head(data_len: u32) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[0..2].copy_from_slice(&17u16.to_le_bytes());
    out[2] = DATA_OFFSET;
    out[4..8].copy_from_slice(&data_len.to_le_bytes());
    // DataRemaining and Reserved2/Flags stay 0.
    out
}

/// The status of a READ that asked for `requested` bytes (at least `minimum_count`) and got
/// `read`: END_OF_FILE when nothing or less than the minimum was read.
pub fn status_after_read(requested: u32, minimum_count: u32, read: usize) -> NtStatus {
    if (requested > 0 && read == 0) || (read as u64) < u64::from(minimum_count) {
        NtStatus::END_OF_FILE
    } else {
        NtStatus::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::test_message;
    use crate::wire::Writer;

    fn body(length: u32, offset: u64) -> Vec<u8> {
        let mut b = Vec::new();
        b.put_u16(49);
        b.put_u8(0x50);
        b.put_u8(0);
        b.put_u32(length);
        b.put_u64(offset);
        b.put_bytes(&[3; 16]);
        b.put_u32(1);
        b.put_u32(0);
        b.put_u32(0);
        b.put_u16(0);
        b.put_u16(0);
        b.put_u8(0);
        b
    }

    #[test]
    fn request_and_head() {
        let req = ReadRequest::decode(&test_message(&body(4096, 1 << 40))).unwrap();
        assert_eq!(req.length, 4096);
        assert_eq!(req.offset, 1 << 40);
        assert_eq!(req.file_id, [3; 16]);
        assert_eq!(req.minimum_count, 1);
        assert!(ReadRequest::decode(&test_message(&body(1, 0)[..40])).is_err());
        let mut bad = body(1, 0);
        bad[0] = 48;
        assert!(ReadRequest::decode(&test_message(&bad)).is_err());
        let head = encode_response_head(1234);
        assert_eq!(&head[..4], &[17, 0, 0x50, 0]);
        assert_eq!(&head[4..8], &1234u32.to_le_bytes());
    }

    #[test]
    fn end_of_file_rules() {
        assert_eq!(status_after_read(10, 0, 0), NtStatus::END_OF_FILE);
        assert_eq!(status_after_read(0, 0, 0), NtStatus::SUCCESS);
        assert_eq!(status_after_read(10, 5, 4), NtStatus::END_OF_FILE);
        assert_eq!(status_after_read(10, 5, 5), NtStatus::SUCCESS);
    }
}
