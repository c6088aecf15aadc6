//! Leases on the wire: the RqLs create contexts, v1 (MS-SMB2 2.2.13.2.8, 2.2.14.2.10) and v2
//! (2.2.13.2.10, 2.2.14.2.11), the lease break notification (2.2.23.2), the lease break
//! acknowledgment (2.2.24.2) and the response to it (2.2.25.2).

use super::body_reader;
use crate::header::HEADER_BYTES;
use crate::status::NtStatus;
use crate::wire::{Reader, Result, Writer};

/// LeaseState bits (MS-SMB2 2.2.13.2.8).
pub mod state {
    pub const NONE: u32 = 0x00;
    pub const READ: u32 = 0x01;
    pub const HANDLE: u32 = 0x02;
    pub const WRITE: u32 = 0x04;
    /// Every defined bit.
    pub const ALL: u32 = READ | HANDLE | WRITE;
}

/// LeaseFlags of the create contexts (MS-SMB2 2.2.13.2.10, 2.2.14.2.10).
pub mod flags {
    pub const BREAK_IN_PROGRESS: u32 = 0x02;
    pub const PARENT_LEASE_KEY_SET: u32 = 0x04;
}

/// Flags of a lease break notification (MS-SMB2 2.2.23.2).
pub const NOTIFY_ACK_REQUIRED: u32 = 0x01;

/// Data bytes of a v1 lease context (key, state, flags, duration).
pub const LEASE_V1_BYTES: usize = 32;
/// Data bytes of a v2 lease context (v1, parent key, epoch, reserved).
pub const LEASE_V2_BYTES: usize = 52;

/// StructureSize of the lease break notification.
const NOTIFICATION_STRUCTURE_SIZE: u16 = 44;
/// StructureSize of the lease break acknowledgment and of its response.
pub const ACK_STRUCTURE_SIZE: u16 = 36;

/// A lease create context, request or response: v1 has no parent key and no epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseContext {
    pub key: [u8; 16],
    pub state: u32,
    pub flags: u32,
    /// 1 or 2.
    pub version: u8,
    /// v2 only (all zeros otherwise).
    pub parent_key: [u8; 16],
    /// v2 only.
    pub epoch: u16,
}

impl LeaseContext {
    /// The RqLs data of a request. `v2_allowed`: the dialect is 3.x (MS-SMB2 3.3.5.9.11: a
    /// v2 context is ignored on 2.1, where only v1 is read). A context of another size is
    /// INVALID_PARAMETER.
    pub fn decode(data: &[u8], v2_allowed: bool) -> Result<LeaseContext> {
        let version = match data.len() {
            LEASE_V2_BYTES if v2_allowed => 2,
            LEASE_V2_BYTES | LEASE_V1_BYTES => 1,
            _ => return Err(NtStatus::INVALID_PARAMETER),
        };
        let mut r = Reader::new(data);
        let key = r.guid()?;
        let state = r.u32()?;
        let flags = r.u32()?;
        r.skip(8)?; // LeaseDuration, reserved
        let (parent_key, epoch) = if version == 2 {
            (r.guid()?, r.u16()?)
        } else {
            ([0; 16], 0)
        };
        Ok(LeaseContext {
            key,
            state,
            flags,
            version,
            parent_key,
            epoch,
        })
    }

    /// The context data in its version's layout.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_bytes(&self.key);
        out.put_u32(self.state);
        out.put_u32(self.flags);
        out.put_u64(0); // LeaseDuration
        if self.version == 2 {
            out.put_bytes(&self.parent_key);
            out.put_u16(self.epoch);
            out.put_u16(0);
        }
    }
}

/// A lease break notification (MS-SMB2 2.2.23.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseBreakNotification {
    pub new_epoch: u16,
    pub flags: u32,
    pub key: [u8; 16],
    pub current_state: u32,
    pub new_state: u32,
}

impl LeaseBreakNotification {
    /// The body (after the SMB2 header).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u16(NOTIFICATION_STRUCTURE_SIZE);
        out.put_u16(self.new_epoch);
        out.put_u32(self.flags);
        out.put_bytes(&self.key);
        out.put_u32(self.current_state);
        out.put_u32(self.new_state);
        out.put_u32(0); // BreakReason
        out.put_u32(0); // AccessMaskHint
        out.put_u32(0); // ShareMaskHint
    }

    /// Read a notification (header + body), as a client does.
    pub fn decode(msg: &[u8]) -> Result<LeaseBreakNotification> {
        let mut r = body_reader(msg, NOTIFICATION_STRUCTURE_SIZE)?;
        let new_epoch = r.u16()?;
        let flags = r.u32()?;
        let key = r.guid()?;
        let current_state = r.u32()?;
        let new_state = r.u32()?;
        r.skip(12)?;
        Ok(LeaseBreakNotification {
            new_epoch,
            flags,
            key,
            current_state,
            new_state,
        })
    }
}

/// A lease break acknowledgment (MS-SMB2 2.2.24.2); its response (2.2.25.2) has the same shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseBreakAck {
    pub key: [u8; 16],
    pub state: u32,
}

impl LeaseBreakAck {
    pub fn decode(msg: &[u8]) -> Result<LeaseBreakAck> {
        let mut r = body_reader(msg, ACK_STRUCTURE_SIZE)?;
        r.skip(2)?; // Reserved
        r.skip(4)?; // Flags, reserved
        let key = r.guid()?;
        let state = r.u32()?;
        r.skip(8)?; // LeaseDuration, reserved
        Ok(LeaseBreakAck { key, state })
    }

    /// The body of an acknowledgment or of the response to one.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u16(ACK_STRUCTURE_SIZE);
        out.put_u16(0);
        out.put_u32(0);
        out.put_bytes(&self.key);
        out.put_u32(self.state);
        out.put_u64(0);
    }
}

/// Whether an OPLOCK_BREAK request is a lease break acknowledgment (StructureSize 36, MS-SMB2
/// 3.3.5.22) rather than an oplock break acknowledgment (24).
pub fn is_lease_ack(msg: &[u8]) -> bool {
    msg.get(HEADER_BYTES..HEADER_BYTES + 2) == Some(&ACK_STRUCTURE_SIZE.to_le_bytes()[..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::test_message;

    fn context(version: u8) -> LeaseContext {
        LeaseContext {
            key: [3; 16],
            state: state::READ | state::HANDLE,
            flags: if version == 2 {
                flags::PARENT_LEASE_KEY_SET
            } else {
                0
            },
            version,
            parent_key: if version == 2 { [9; 16] } else { [0; 16] },
            epoch: if version == 2 { 7 } else { 0 },
        }
    }

    #[test]
    fn contexts_round_trip_in_both_versions() {
        for version in [1, 2] {
            let c = context(version);
            let mut data = Vec::new();
            c.encode(&mut data);
            let expected_len = if version == 2 {
                LEASE_V2_BYTES
            } else {
                LEASE_V1_BYTES
            };
            assert_eq!(data.len(), expected_len);
            assert_eq!(LeaseContext::decode(&data, true), Ok(c));
        }
    }

    #[test]
    fn v2_context_is_read_as_v1_before_smb3() {
        let mut data = Vec::new();
        context(2).encode(&mut data);
        let c = LeaseContext::decode(&data, false).unwrap();
        assert_eq!((c.version, c.epoch, c.parent_key), (1, 0, [0; 16]));
        assert_eq!(c.key, [3; 16]);
    }

    #[test]
    fn context_of_other_size_is_refused() {
        let mut data = Vec::new();
        context(1).encode(&mut data);
        for n in [0, 16, 31, 33, 51, 53] {
            let mut d = data.clone();
            d.resize(n, 0);
            assert_eq!(
                LeaseContext::decode(&d, true),
                Err(NtStatus::INVALID_PARAMETER)
            );
        }
    }

    #[test]
    fn notification_round_trip() {
        let n = LeaseBreakNotification {
            new_epoch: 2,
            flags: NOTIFY_ACK_REQUIRED,
            key: [5; 16],
            current_state: state::ALL,
            new_state: state::READ | state::HANDLE,
        };
        let mut body = Vec::new();
        n.encode(&mut body);
        assert_eq!(body.len(), 44);
        let msg = test_message(&body);
        assert_eq!(LeaseBreakNotification::decode(&msg), Ok(n));
        for len in HEADER_BYTES..msg.len() {
            assert!(LeaseBreakNotification::decode(&msg[..len]).is_err());
        }
    }

    #[test]
    fn ack_round_trip_and_kind() {
        let ack = LeaseBreakAck {
            key: [8; 16],
            state: state::READ,
        };
        let mut body = Vec::new();
        ack.encode(&mut body);
        assert_eq!(body.len(), 36);
        let msg = test_message(&body);
        assert!(is_lease_ack(&msg));
        assert_eq!(LeaseBreakAck::decode(&msg), Ok(ack));
        for len in 0..msg.len() {
            assert!(LeaseBreakAck::decode(&msg[..len]).is_err());
        }
        let mut oplock_ack = Vec::new();
        crate::messages::oplock_break::encode(0, &[0; 16], &mut oplock_ack);
        assert!(!is_lease_ack(&test_message(&oplock_ack)));
    }
}
