//! The SMB2 packet header (MS-SMB2 2.2.1) and command numbers (MS-SMB2 2.2.1.2).

use crate::status::NtStatus;
use crate::wire::{Reader, Result, Writer};

/// Size of the SMB2 header.
pub const HEADER_BYTES: usize = 64;
/// `0xFE 'S' 'M' 'B'`.
pub const PROTOCOL_ID: [u8; 4] = [0xFE, b'S', b'M', b'B'];
/// `0xFF 'S' 'M' 'B'`: an SMB1 message (only the multi-protocol NEGOTIATE is accepted).
pub const SMB1_PROTOCOL_ID: [u8; 4] = [0xFF, b'S', b'M', b'B'];
/// `0xFD 'S' 'M' 'B'`: a TRANSFORM header (encrypted message).
pub const TRANSFORM_PROTOCOL_ID: [u8; 4] = [0xFD, b'S', b'M', b'B'];
/// `0xFC 'S' 'M' 'B'`: a compression transform header (not negotiated by this server).
pub const COMPRESSION_PROTOCOL_ID: [u8; 4] = [0xFC, b'S', b'M', b'B'];

/// Byte offset of the 16-byte signature inside the header.
pub const SIGNATURE_OFFSET: usize = 48;

pub mod flags {
    pub const SERVER_TO_REDIR: u32 = 0x0000_0001;
    pub const ASYNC_COMMAND: u32 = 0x0000_0002;
    pub const RELATED_OPERATIONS: u32 = 0x0000_0004;
    pub const SIGNED: u32 = 0x0000_0008;
    pub const PRIORITY_MASK: u32 = 0x0000_0070;
    pub const DFS_OPERATIONS: u32 = 0x1000_0000;
    pub const REPLAY_OPERATION: u32 = 0x2000_0000;
}

/// SMB2 commands (MS-SMB2 2.2.1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Command {
    Negotiate = 0x00,
    SessionSetup = 0x01,
    Logoff = 0x02,
    TreeConnect = 0x03,
    TreeDisconnect = 0x04,
    Create = 0x05,
    Close = 0x06,
    Flush = 0x07,
    Read = 0x08,
    Write = 0x09,
    Lock = 0x0A,
    Ioctl = 0x0B,
    Cancel = 0x0C,
    Echo = 0x0D,
    QueryDirectory = 0x0E,
    ChangeNotify = 0x0F,
    QueryInfo = 0x10,
    SetInfo = 0x11,
    OplockBreak = 0x12,
}

impl Command {
    pub fn from_u16(v: u16) -> Option<Command> {
        use Command::*;
        Some(match v {
            0x00 => Negotiate,
            0x01 => SessionSetup,
            0x02 => Logoff,
            0x03 => TreeConnect,
            0x04 => TreeDisconnect,
            0x05 => Create,
            0x06 => Close,
            0x07 => Flush,
            0x08 => Read,
            0x09 => Write,
            0x0A => Lock,
            0x0B => Ioctl,
            0x0C => Cancel,
            0x0D => Echo,
            0x0E => QueryDirectory,
            0x0F => ChangeNotify,
            0x10 => QueryInfo,
            0x11 => SetInfo,
            0x12 => OplockBreak,
            _ => return None,
        })
    }
}

/// A decoded SMB2 header. `command` is kept raw so unknown commands can still be answered
/// with STATUS_INVALID_PARAMETER (MS-SMB2 3.3.5.2.6... unknown command handling).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub credit_charge: u16,
    /// In requests: ChannelSequence (2 bytes) + Reserved for 3.x; Status in responses.
    pub status: u32,
    pub command: u16,
    /// CreditRequest in requests, CreditResponse in responses.
    pub credits: u16,
    pub flags: u32,
    pub next_command: u32,
    pub message_id: u64,
    /// Present when `flags & ASYNC_COMMAND`.
    pub async_id: u64,
    pub process_id: u32,
    pub tree_id: u32,
    pub session_id: u64,
    pub signature: [u8; 16],
}

impl Header {
    /// Decode the 64-byte header at the start of `buf`.
    pub fn decode(buf: &[u8]) -> Result<Header> {
        let mut r = Reader::new(buf);
        if r.array::<4>()? != PROTOCOL_ID {
            return Err(NtStatus::INVALID_PARAMETER);
        }
        if r.u16()? as usize != HEADER_BYTES {
            return Err(NtStatus::INVALID_PARAMETER);
        }
        let credit_charge = r.u16()?;
        let status = r.u32()?;
        let command = r.u16()?;
        let credits = r.u16()?;
        let flags = r.u32()?;
        let next_command = r.u32()?;
        let message_id = r.u64()?;
        let (async_id, process_id, tree_id) = if flags & flags::ASYNC_COMMAND != 0 {
            (r.u64()?, 0, 0)
        } else {
            let pid = r.u32()?;
            let tid = r.u32()?;
            (0, pid, tid)
        };
        let session_id = r.u64()?;
        let signature = r.array()?;
        Ok(Header {
            credit_charge,
            status,
            command,
            credits,
            flags,
            next_command,
            message_id,
            async_id,
            process_id,
            tree_id,
            session_id,
            signature,
        })
    }

    pub fn command(&self) -> Option<Command> {
        Command::from_u16(self.command)
    }

    pub fn is_async(&self) -> bool {
        self.flags & flags::ASYNC_COMMAND != 0
    }

    pub fn is_related(&self) -> bool {
        self.flags & flags::RELATED_OPERATIONS != 0
    }

    pub fn is_signed(&self) -> bool {
        self.flags & flags::SIGNED != 0
    }

    /// 3.x requests: the ChannelSequence number carried in the low 16 bits of the status field.
    pub fn channel_sequence(&self) -> u16 {
        self.status as u16
    }

    /// Append the 64-byte encoding of this header to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_bytes(&PROTOCOL_ID);
        out.put_u16(HEADER_BYTES as u16);
        out.put_u16(self.credit_charge);
        out.put_u32(self.status);
        out.put_u16(self.command);
        out.put_u16(self.credits);
        out.put_u32(self.flags);
        out.put_u32(self.next_command);
        out.put_u64(self.message_id);
        if self.is_async() {
            out.put_u64(self.async_id);
        } else {
            out.put_u32(self.process_id);
            out.put_u32(self.tree_id);
        }
        out.put_u64(self.session_id);
        out.put_bytes(&self.signature);
    }

    /// Encode into a fixed 64-byte slot (used when the response buffer was laid out first).
    pub fn write_into(&self, slot: &mut [u8]) {
        let mut v = Vec::with_capacity(HEADER_BYTES);
        self.encode(&mut v);
        slot[..HEADER_BYTES].copy_from_slice(&v);
    }
}

/// True when `pdu` is an SMB1 NEGOTIATE (command 0x72), the multi-protocol probe older clients
/// send first (MS-SMB2 3.3.5.3).
pub fn is_smb1_negotiate(pdu: &[u8]) -> bool {
    pdu.len() >= 32 && pdu[..4] == SMB1_PROTOCOL_ID && pdu[4] == 0x72
}

/// The dialect strings of an SMB1 NEGOTIATE request (each `0x02 <name> 0x00`), MS-CIFS 2.2.4.52.1.
pub fn smb1_negotiate_dialects(pdu: &[u8]) -> Vec<String> {
    // SMB1 header is 32 bytes, then WordCount (1) = 0, ByteCount (2), then the dialects.
    let mut out = Vec::new();
    let Some(&word_count) = pdu.get(32) else {
        return out;
    };
    let start = 33 + 2 * word_count as usize;
    let Some(bc) = pdu.get(start..start + 2) else {
        return out;
    };
    let bc = u16::from_le_bytes([bc[0], bc[1]]) as usize;
    let Some(bytes) = pdu.get(start + 2..(start + 2 + bc).min(pdu.len())) else {
        return out;
    };
    for item in bytes.split(|&b| b == 0) {
        if let Some((&0x02, name)) = item.split_first() {
            out.push(String::from_utf8_lossy(name).into_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_sync_and_async() {
        for flags in [0, flags::ASYNC_COMMAND | flags::SERVER_TO_REDIR] {
            let h = Header {
                credit_charge: 1,
                status: 0x103,
                command: Command::Read as u16,
                credits: 32,
                flags,
                next_command: 0,
                message_id: 7,
                async_id: if flags != 0 { 99 } else { 0 },
                process_id: if flags != 0 { 0 } else { 0xfeff },
                tree_id: if flags != 0 { 0 } else { 5 },
                session_id: 0x1234,
                signature: [3; 16],
            };
            let mut b = Vec::new();
            h.encode(&mut b);
            assert_eq!(b.len(), HEADER_BYTES);
            assert_eq!(Header::decode(&b).unwrap(), h);
        }
    }

    #[test]
    fn rejects_garbage() {
        assert!(Header::decode(&[0u8; 10]).is_err());
        let mut b = vec![0u8; 64];
        b[..4].copy_from_slice(&PROTOCOL_ID);
        assert!(Header::decode(&b).is_err()); // StructureSize 0
    }
}
