//! The negotiated state of a connection, as it travels to another worker process.
//!
//! A connection whose SESSION_SETUP binds a session of another worker moves there after its
//! NEGOTIATE was answered, so the owner must continue exactly where this worker stopped: same
//! dialect, ClientGuid, capabilities, security modes, cipher and signing algorithm, the 3.1.1
//! preauth hash so far (the bind's channel key is derived from it), the credit window and the
//! sizes. The record crosses a process boundary, so it is parsed like peer data: fixed version,
//! every count bounded, no bytes left over.

use smb3d_protocol::crypto::PreauthHash;
use smb3d_protocol::dialect::{Cipher, Dialect, SigningAlgorithm};
use smb3d_protocol::limits::MAX_DIALECTS;
use smb3d_protocol::wire::{Reader, Writer};

use crate::commands::negotiate::ConnectionInfo;

/// Layout version of [`ConnectionRecord`]; a worker refuses records of another version.
pub const RECORD_VERSION: u8 = 1;
/// Message ids a credit window tracks at most (twice the largest credit ceiling, as
/// `CreditWindow::grant` bounds it).
pub const MAX_TRACKED_CREDITS: usize = 2 * u16::MAX as usize;
/// Largest encoded record: the fixed part, the credit bitmap and the client's dialects.
pub const MAX_RECORD_BYTES: usize = 256 + MAX_TRACKED_CREDITS.div_ceil(8) + 2 * MAX_DIALECTS;

const FLAG_FORCE_UNACKED: u8 = 0x01;

/// What a negotiated connection carries from one worker to another.
#[derive(Debug)]
pub struct ConnectionRecord {
    /// MS-SMB2 3.3.1.7 Connection: what NEGOTIATE established. `dialect` is always set.
    pub info: ConnectionInfo,
    /// The lowest message id not yet consumed; `credits_used[i]` tells whether id
    /// `credit_low + i` was consumed (the granted window is `credit_low..+len`).
    pub credit_low: u64,
    pub credits_used: Vec<bool>,
    pub next_async_id: u64,
    /// smbtorture's FSCTL_SMBTORTURE_FORCE_UNACKED_TIMEOUT was applied to this connection.
    pub force_unacked: bool,
    /// The request that made the connection move: the receiver runs it, never moves it again.
    pub moved_message_id: u64,
}

/// Why a record was refused.
#[derive(Debug, PartialEq, Eq)]
pub struct BadRecord(pub &'static str);

impl std::fmt::Display for BadRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl ConnectionRecord {
    pub fn encode(&self, out: &mut Vec<u8>) {
        let info = &self.info;
        out.put_u8(RECORD_VERSION);
        out.put_u16(info.dialect.map_or(0, |d| d as u16));
        out.put_bytes(&info.client_guid);
        out.put_u32(info.client_capabilities);
        out.put_u16(info.client_security_mode);
        out.put_u32(info.server_capabilities);
        out.put_u16(info.server_security_mode);
        out.put_u16(info.cipher.map_or(0, |c| c as u16));
        out.put_u16(info.signing_algorithm as u16);
        out.put_bytes(&info.preauth.0);
        out.put_u32(info.max_io_bytes);
        out.put_u8(if self.force_unacked {
            FLAG_FORCE_UNACKED
        } else {
            0
        });
        out.put_u64(self.next_async_id);
        out.put_u64(self.moved_message_id);
        out.put_u64(self.credit_low);
        out.put_u32(self.credits_used.len() as u32);
        for chunk in self.credits_used.chunks(8) {
            let byte = chunk
                .iter()
                .enumerate()
                .fold(0u8, |b, (i, used)| b | (u8::from(*used) << i));
            out.put_u8(byte);
        }
        out.put_u16(info.client_dialects.len() as u16);
        for d in &info.client_dialects {
            out.put_u16(*d);
        }
    }

    pub fn decode(buf: &[u8]) -> Result<ConnectionRecord, BadRecord> {
        if buf.len() > MAX_RECORD_BYTES {
            return Err(BadRecord("record too long"));
        }
        let short = |_| BadRecord("record truncated");
        let mut r = Reader::new(buf);
        if r.u8().map_err(short)? != RECORD_VERSION {
            return Err(BadRecord("unknown record version"));
        }
        let dialect =
            Dialect::from_u16(r.u16().map_err(short)?).ok_or(BadRecord("unknown dialect"))?;
        let client_guid = r.guid().map_err(short)?;
        let client_capabilities = r.u32().map_err(short)?;
        let client_security_mode = r.u16().map_err(short)?;
        let server_capabilities = r.u32().map_err(short)?;
        let server_security_mode = r.u16().map_err(short)?;
        let cipher = match r.u16().map_err(short)? {
            0 => None,
            c => Some(Cipher::from_u16(c).ok_or(BadRecord("unknown cipher"))?),
        };
        let signing_algorithm = SigningAlgorithm::from_u16(r.u16().map_err(short)?)
            .ok_or(BadRecord("unknown signing algorithm"))?;
        let preauth = PreauthHash(r.array::<64>().map_err(short)?);
        let max_io_bytes = r.u32().map_err(short)?;
        let flags = r.u8().map_err(short)?;
        if flags & !FLAG_FORCE_UNACKED != 0 {
            return Err(BadRecord("unknown flags"));
        }
        let next_async_id = r.u64().map_err(short)?;
        let moved_message_id = r.u64().map_err(short)?;
        let credit_low = r.u64().map_err(short)?;
        let credit_count = r.u32().map_err(short)? as usize;
        if credit_count == 0 || credit_count > MAX_TRACKED_CREDITS {
            return Err(BadRecord("credit window size out of range"));
        }
        if credit_low.checked_add(credit_count as u64).is_none() {
            return Err(BadRecord("credit window beyond the last message id"));
        }
        let bitmap = r.bytes(credit_count.div_ceil(8)).map_err(short)?;
        let credits_used = (0..credit_count)
            .map(|i| bitmap[i / 8] & (1 << (i % 8)) != 0)
            .collect();
        let dialect_count = r.u16().map_err(short)? as usize;
        if dialect_count > MAX_DIALECTS {
            return Err(BadRecord("too many client dialects"));
        }
        let client_dialects = (0..dialect_count)
            .map(|_| r.u16())
            .collect::<Result<Vec<u16>, _>>()
            .map_err(short)?;
        if r.remaining() != 0 {
            return Err(BadRecord("bytes after the record"));
        }
        Ok(ConnectionRecord {
            info: ConnectionInfo {
                dialect: Some(dialect),
                client_guid,
                client_capabilities,
                client_security_mode,
                client_dialects,
                server_capabilities,
                server_security_mode,
                cipher,
                signing_algorithm,
                preauth,
                max_io_bytes,
            },
            credit_low,
            credits_used,
            next_async_id,
            force_unacked: flags & FLAG_FORCE_UNACKED != 0,
            moved_message_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ConnectionRecord {
        let mut preauth = [0u8; 64];
        for (i, b) in preauth.iter_mut().enumerate() {
            *b = i as u8 ^ 0x5a;
        }
        ConnectionRecord {
            info: ConnectionInfo {
                dialect: Some(Dialect::Smb311),
                client_guid: [0x11; 16],
                client_capabilities: 0x7f,
                client_security_mode: 1,
                client_dialects: vec![0x0202, 0x0210, 0x0300, 0x0302, 0x0311],
                server_capabilities: 0x2f,
                server_security_mode: 3,
                cipher: Some(Cipher::Aes256Gcm),
                signing_algorithm: SigningAlgorithm::AesGmac,
                preauth: PreauthHash(preauth),
                max_io_bytes: 8 * 1024 * 1024,
            },
            credit_low: 3,
            credits_used: vec![
                false, true, false, false, true, true, false, false, false, true,
            ],
            next_async_id: 9,
            force_unacked: true,
            moved_message_id: 3,
        }
    }

    fn encoded(record: &ConnectionRecord) -> Vec<u8> {
        let mut out = Vec::new();
        record.encode(&mut out);
        out
    }

    #[test]
    fn round_trip_keeps_every_field() {
        let record = sample();
        let bytes = encoded(&record);
        assert!(bytes.len() <= MAX_RECORD_BYTES);
        let back = ConnectionRecord::decode(&bytes).unwrap();
        assert_eq!(format!("{back:?}"), format!("{record:?}"));
        assert_eq!(back.info.preauth.0, record.info.preauth.0);
        assert_eq!(back.credits_used, record.credits_used);
        // And the encoding of what came back is the same bytes.
        assert_eq!(encoded(&back), bytes);
    }

    #[test]
    fn largest_window_fits_the_limit() {
        let mut record = sample();
        record.credits_used = vec![true; MAX_TRACKED_CREDITS];
        record.info.client_dialects = vec![0x0311; MAX_DIALECTS];
        let bytes = encoded(&record);
        assert!(bytes.len() <= MAX_RECORD_BYTES);
        assert_eq!(
            ConnectionRecord::decode(&bytes).unwrap().credits_used.len(),
            MAX_TRACKED_CREDITS
        );
    }

    #[test]
    fn every_truncation_is_refused() {
        let bytes = encoded(&sample());
        for len in 0..bytes.len() {
            assert!(
                ConnectionRecord::decode(&bytes[..len]).is_err(),
                "a record cut to {len} bytes was accepted"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            ConnectionRecord::decode(&longer).err(),
            Some(BadRecord("bytes after the record"))
        );
    }

    #[test]
    fn garbage_is_refused_without_panicking() {
        let bytes = encoded(&sample());
        let mut wrong_version = bytes.clone();
        wrong_version[0] = RECORD_VERSION + 1;
        assert!(ConnectionRecord::decode(&wrong_version).is_err());
        let mut wrong_dialect = bytes.clone();
        wrong_dialect[1..3].copy_from_slice(&0x0400u16.to_le_bytes());
        assert_eq!(
            ConnectionRecord::decode(&wrong_dialect).err(),
            Some(BadRecord("unknown dialect"))
        );
        // Credit count at offset 1+2+16+4+2+4+2+2+2+64+4+1+8+8+8 = 128.
        let mut huge_window = bytes.clone();
        huge_window[128..132].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            ConnectionRecord::decode(&huge_window).err(),
            Some(BadRecord("credit window size out of range"))
        );
        let mut empty_window = bytes.clone();
        empty_window[128..132].copy_from_slice(&0u32.to_le_bytes());
        assert!(ConnectionRecord::decode(&empty_window).is_err());
        assert!(ConnectionRecord::decode(&vec![0xff; MAX_RECORD_BYTES + 1]).is_err());
        // Pseudo-random bytes of every length: refused or accepted, never a panic.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..600 {
            let junk: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let _ = ConnectionRecord::decode(&junk);
        }
    }
}
