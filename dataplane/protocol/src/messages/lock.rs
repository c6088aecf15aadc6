//! LOCK request and response (MS-SMB2 2.2.26, 2.2.27).

use super::body_reader;
use crate::limits::MAX_LOCK_ELEMENTS;
use crate::status::NtStatus;
use crate::wire::{Reader, Result, Writer};

/// SMB2_LOCK_ELEMENT Flags (MS-SMB2 2.2.26.1).
pub mod flags {
    pub const SHARED_LOCK: u32 = 0x0000_0001;
    pub const EXCLUSIVE_LOCK: u32 = 0x0000_0002;
    pub const UNLOCK: u32 = 0x0000_0004;
    pub const FAIL_IMMEDIATELY: u32 = 0x0000_0010;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockElement {
    pub offset: u64,
    pub length: u64,
    pub flags: u32,
}

#[derive(Debug, PartialEq, Eq)]
pub struct LockRequest {
    /// LockSequenceNumber (4 bits) and LockSequenceIndex (28 bits), for resilient handles.
    pub lock_sequence: u32,
    pub file_id: [u8; 16],
    pub locks: Vec<LockElement>,
}

const ELEMENT_BYTES: usize = 24;

impl LockRequest {
    /// Decode; LockCount 0 or above [`MAX_LOCK_ELEMENTS`], or elements past the message end,
    /// are INVALID_PARAMETER.
    pub fn decode(msg: &[u8]) -> Result<LockRequest> {
        let mut r = body_reader(msg, 48)?;
        let count = r.u16()? as usize;
        let lock_sequence = r.u32()?;
        let file_id = r.guid()?;
        if count == 0 || count > MAX_LOCK_ELEMENTS {
            return Err(NtStatus::INVALID_PARAMETER);
        }
        let area = r.bytes(count * ELEMENT_BYTES)?;
        let mut er = Reader::new(area);
        let mut locks = Vec::with_capacity(count);
        for _ in 0..count {
            let offset = er.u64()?;
            let length = er.u64()?;
            let flags = er.u32()?;
            er.skip(4)?;
            locks.push(LockElement {
                offset,
                length,
                flags,
            });
        }
        Ok(LockRequest {
            lock_sequence,
            file_id,
            locks,
        })
    }
}

pub fn encode_response(out: &mut Vec<u8>) {
    out.put_u16(4);
    out.put_u16(0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::test_message;

    fn body(elements: &[(u64, u64, u32)], count: u16) -> Vec<u8> {
        let mut b = Vec::new();
        b.put_u16(48);
        b.put_u16(count);
        b.put_u32(0);
        b.put_bytes(&[6; 16]);
        for (o, l, f) in elements {
            b.put_u64(*o);
            b.put_u64(*l);
            b.put_u32(*f);
            b.put_u32(0);
        }
        b
    }

    #[test]
    fn decodes_elements() {
        let e = [(0, 10, flags::EXCLUSIVE_LOCK), (20, 5, flags::UNLOCK)];
        let req = LockRequest::decode(&test_message(&body(&e, 2))).unwrap();
        assert_eq!(req.file_id, [6; 16]);
        assert_eq!(req.locks.len(), 2);
        assert_eq!(
            req.locks[1],
            LockElement {
                offset: 20,
                length: 5,
                flags: flags::UNLOCK
            }
        );
    }

    #[test]
    fn rejects_bad_counts() {
        let e = [(0, 10, flags::SHARED_LOCK)];
        assert!(LockRequest::decode(&test_message(&body(&e, 0))).is_err());
        assert!(LockRequest::decode(&test_message(&body(&e, 2))).is_err());
        assert!(LockRequest::decode(&test_message(&body(&e, u16::MAX))).is_err());
        let mut out = Vec::new();
        encode_response(&mut out);
        assert_eq!(out, [4, 0, 0, 0]);
    }
}
