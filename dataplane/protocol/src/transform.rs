//! The SMB2 TRANSFORM header that precedes every encrypted message (MS-SMB2 2.2.41).
//!
//! Layout (52 bytes, little-endian):
//! ```text
//!  0  ProtocolId          0xFD 'S' 'M' 'B'
//!  4  Signature           16-byte AEAD tag
//! 20  Nonce               16 bytes: AES-CCM uses 11, AES-GCM 12, the rest is zero
//! 36  OriginalMessageSize size of the plaintext SMB2 message
//! 40  Reserved            2 bytes, zero
//! 42  Flags               0x0001 = Encrypted (3.0/3.0.2 call it EncryptionAlgorithm = AES-128-CCM)
//! 44  SessionId           8 bytes
//! ```
//! The AEAD's additional data is bytes 20..52 (everything after ProtocolId and Signature;
//! MS-SMB2 3.1.4.3).

use crate::header::TRANSFORM_PROTOCOL_ID;
use crate::status::NtStatus;
use crate::wire::{Reader, Result};

/// Size of the TRANSFORM header.
pub const TRANSFORM_HEADER_BYTES: usize = 52;
/// Byte range of the Signature (AEAD tag) inside the header.
pub const SIGNATURE_RANGE: std::ops::Range<usize> = 4..20;
/// Byte range of the Nonce inside the header.
pub const NONCE_RANGE: std::ops::Range<usize> = 20..36;
/// Byte range authenticated as additional data (MS-SMB2 3.1.4.3).
pub const AAD_RANGE: std::ops::Range<usize> = 20..52;
/// The only Flags value defined: the message is encrypted (MS-SMB2 2.2.41).
pub const FLAG_ENCRYPTED: u16 = 0x0001;

/// A decoded TRANSFORM header.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransformHeader {
    pub signature: [u8; 16],
    pub nonce: [u8; 16],
    pub original_message_size: u32,
    pub flags: u16,
    pub session_id: u64,
}

impl TransformHeader {
    /// Decode the 52-byte header at the start of `buf`. Only the protocol id and length are
    /// checked here; flags and sizes are the decryptor's business.
    pub fn decode(buf: &[u8]) -> Result<TransformHeader> {
        let mut r = Reader::new(buf);
        if r.array::<4>()? != TRANSFORM_PROTOCOL_ID {
            return Err(NtStatus::INVALID_PARAMETER);
        }
        let signature = r.array()?;
        let nonce = r.array()?;
        let original_message_size = r.u32()?;
        r.skip(2)?; // Reserved
        let flags = r.u16()?;
        let session_id = r.u64()?;
        Ok(TransformHeader {
            signature,
            nonce,
            original_message_size,
            flags,
            session_id,
        })
    }

    /// Write the 52-byte encoding into `out[..52]`.
    ///
    /// # Panics
    /// If `out` is shorter than [`TRANSFORM_HEADER_BYTES`] (a local layout error, never peer data).
    pub fn encode(&self, out: &mut [u8]) {
        let out = &mut out[..TRANSFORM_HEADER_BYTES];
        out[0..4].copy_from_slice(&TRANSFORM_PROTOCOL_ID);
        out[SIGNATURE_RANGE].copy_from_slice(&self.signature);
        out[NONCE_RANGE].copy_from_slice(&self.nonce);
        out[36..40].copy_from_slice(&self.original_message_size.to_le_bytes());
        out[40..42].copy_from_slice(&[0, 0]);
        out[42..44].copy_from_slice(&self.flags.to_le_bytes());
        out[44..52].copy_from_slice(&self.session_id.to_le_bytes());
    }

    /// True when `buf` starts with the TRANSFORM protocol id.
    pub fn is_transform(buf: &[u8]) -> bool {
        buf.get(..4) == Some(&TRANSFORM_PROTOCOL_ID[..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let h = TransformHeader {
            signature: [7; 16],
            nonce: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0, 0, 0, 0, 0],
            original_message_size: 0x1234,
            flags: FLAG_ENCRYPTED,
            session_id: 0x0008_e400_1400_0011,
        };
        let mut b = [0xAAu8; TRANSFORM_HEADER_BYTES];
        h.encode(&mut b);
        assert_eq!(b[40..42], [0, 0]);
        assert_eq!(TransformHeader::decode(&b).unwrap(), h);
        assert!(TransformHeader::is_transform(&b));
    }

    #[test]
    fn rejects_short_and_foreign() {
        let mut b = [0u8; TRANSFORM_HEADER_BYTES];
        TransformHeader::default().encode(&mut b);
        for n in 0..TRANSFORM_HEADER_BYTES {
            assert_eq!(
                TransformHeader::decode(&b[..n]),
                Err(NtStatus::INVALID_PARAMETER)
            );
        }
        b[0] = 0xFE;
        assert_eq!(
            TransformHeader::decode(&b),
            Err(NtStatus::INVALID_PARAMETER)
        );
        assert!(!TransformHeader::is_transform(&b));
        assert!(!TransformHeader::is_transform(&b[..3]));
    }
}
