//! SMB2 message signing (MS-SMB2 3.1.4.1): HMAC-SHA256 (2.x), AES-128-CMAC (3.x) and
//! AES-128-GMAC (3.1.1 with SMB2_SIGNING_CAPABILITIES).
//!
//! The signature covers one SMB2 message (header + body, one element of a compound, padding
//! included) with the header's 16-byte Signature field taken as zero.

use aws_lc_rs::{aead, cmac, hmac};

use super::constant_time_eq;
use crate::dialect::SigningAlgorithm;
use crate::header::{flags, Command, HEADER_BYTES, SIGNATURE_OFFSET};

const SIGNATURE_BYTES: usize = 16;
const SIGNATURE_END: usize = SIGNATURE_OFFSET + SIGNATURE_BYTES;
const ZERO_SIGNATURE: [u8; SIGNATURE_BYTES] = [0; SIGNATURE_BYTES];

// One per session or channel, built once: keeping the key schedule inline saves a pointer
// chase per message and the size difference does not matter.
#[allow(clippy::large_enum_variant)]
enum SignerKey {
    HmacSha256(hmac::Key),
    /// AES key schedule and CMAC subkeys, built once.
    AesCmac(cmac::Key),
    AesGmac(aead::LessSafeKey),
}

/// Signs and verifies SMB2 messages with one session's (or channel's) signing key.
pub struct Signer {
    key: SignerKey,
}

impl Signer {
    /// Build the key schedule once. `key` is Session.SigningKey (or Channel.SigningKey); CMAC and
    /// GMAC use its first 16 bytes, HMAC-SHA256 all of it.
    ///
    /// # Panics
    /// If `key` is shorter than 16 bytes for CMAC/GMAC (keys come from `derive_session_keys`).
    pub fn new(alg: SigningAlgorithm, key: &[u8]) -> Signer {
        let key = match alg {
            SigningAlgorithm::HmacSha256 => {
                SignerKey::HmacSha256(hmac::Key::new(hmac::HMAC_SHA256, key))
            }
            SigningAlgorithm::AesCmac => SignerKey::AesCmac(
                cmac::Key::new(cmac::AES_128, &key[..16]).expect("16-byte CMAC key"),
            ),
            SigningAlgorithm::AesGmac => {
                let unbound = aead::UnboundKey::new(&aead::AES_128_GCM, &key[..16])
                    .expect("16-byte GMAC key");
                SignerKey::AesGmac(aead::LessSafeKey::new(unbound))
            }
        };
        Signer { key }
    }

    /// Sign `msg` in place: compute the signature with the Signature field as zero and store it
    /// in `msg[48..64]`. The caller sets SMB2_FLAGS_SIGNED first. Messages shorter than the
    /// header are left alone (they cannot be sent anyway).
    pub fn sign(&self, msg: &mut [u8]) {
        if msg.len() < HEADER_BYTES {
            debug_assert!(false, "signing a message shorter than the SMB2 header");
            return;
        }
        msg[SIGNATURE_OFFSET..SIGNATURE_END].fill(0);
        let signature = self.compute_zeroed(msg);
        msg[SIGNATURE_OFFSET..SIGNATURE_END].copy_from_slice(&signature);
    }

    /// Check the signature of a received message without changing it. Constant-time compare.
    /// For AES-GMAC this copies the message (the AEAD API takes the AAD as one slice); on the data path
    /// prefer [`Signer::verify_in_place`].
    pub fn verify(&self, msg: &[u8]) -> bool {
        if msg.len() < HEADER_BYTES {
            return false;
        }
        let expected = match &self.key {
            SignerKey::AesGmac(_) => {
                let mut copy = msg.to_vec();
                copy[SIGNATURE_OFFSET..SIGNATURE_END].fill(0);
                self.compute_zeroed(&copy)
            }
            _ => self.compute_streaming(msg),
        };
        constant_time_eq(&expected, &msg[SIGNATURE_OFFSET..SIGNATURE_END])
    }

    /// Like [`Signer::verify`], but without a copy for any algorithm: the Signature field is
    /// zeroed while computing and restored before returning, so `msg` ends unchanged.
    pub fn verify_in_place(&self, msg: &mut [u8]) -> bool {
        if msg.len() < HEADER_BYTES {
            return false;
        }
        let mut received = [0u8; SIGNATURE_BYTES];
        received.copy_from_slice(&msg[SIGNATURE_OFFSET..SIGNATURE_END]);
        msg[SIGNATURE_OFFSET..SIGNATURE_END].fill(0);
        let expected = self.compute_zeroed(msg);
        msg[SIGNATURE_OFFSET..SIGNATURE_END].copy_from_slice(&received);
        constant_time_eq(&expected, &received)
    }

    /// The signature of `msg`, whose Signature field is already zero.
    fn compute_zeroed(&self, msg: &[u8]) -> [u8; SIGNATURE_BYTES] {
        match &self.key {
            SignerKey::AesGmac(key) => gmac(key, msg),
            _ => self.compute_streaming(msg),
        }
    }

    /// HMAC/CMAC over `msg` with the Signature field replaced by zeros, without copying.
    fn compute_streaming(&self, msg: &[u8]) -> [u8; SIGNATURE_BYTES] {
        let head = &msg[..SIGNATURE_OFFSET];
        let body = &msg[SIGNATURE_END..];
        let mut out = [0u8; SIGNATURE_BYTES];
        match &self.key {
            SignerKey::HmacSha256(key) => {
                let mut ctx = hmac::Context::with_key(key);
                ctx.update(head);
                ctx.update(&ZERO_SIGNATURE);
                ctx.update(body);
                // MS-SMB2 3.1.4.1: the first 16 bytes of the HMAC-SHA256.
                out.copy_from_slice(&ctx.sign().as_ref()[..SIGNATURE_BYTES]);
            }
            SignerKey::AesCmac(keyed) => {
                let mut ctx = cmac::Context::with_key(keyed);
                // CMAC updates fail only on an internal library error; a wrong signature
                // (all zero) then simply fails verification.
                let ok = ctx.update(head).is_ok()
                    && ctx.update(&ZERO_SIGNATURE).is_ok()
                    && ctx.update(body).is_ok();
                if let (true, Ok(tag)) = (ok, ctx.sign()) {
                    out.copy_from_slice(tag.as_ref());
                }
            }
            SignerKey::AesGmac(key) => {
                // Only reached via `compute_zeroed` callers that already zeroed the field.
                out = gmac(key, msg);
            }
        }
        out
    }
}

/// The 12-byte AES-GMAC nonce (MS-SMB2 3.1.4.1): MessageId, then a 32-bit little-endian field
/// with bit 0 set when the message is a response (SMB2_FLAGS_SERVER_TO_REDIR) and bit 1 set
/// when it is a CANCEL request.
fn gmac_nonce(msg: &[u8]) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[..8].copy_from_slice(&msg[24..32]);
    let hdr_flags = u32::from_le_bytes([msg[16], msg[17], msg[18], msg[19]]);
    let command = u16::from_le_bytes([msg[12], msg[13]]);
    let mut role = 0u32;
    if hdr_flags & flags::SERVER_TO_REDIR != 0 {
        role |= 1;
    }
    if command == Command::Cancel as u16 {
        role |= 2;
    }
    nonce[8..].copy_from_slice(&role.to_le_bytes());
    nonce
}

/// AES-GMAC = AES-GCM over an empty plaintext with the message as additional data.
fn gmac(key: &aead::LessSafeKey, msg: &[u8]) -> [u8; SIGNATURE_BYTES] {
    let nonce = aead::Nonce::assume_unique_for_key(gmac_nonce(msg));
    let tag = key
        .seal_in_place_separate_tag(nonce, aead::Aad::from(msg), &mut [])
        .expect("AES-GCM accepts any AAD length");
    let mut out = [0u8; SIGNATURE_BYTES];
    out.copy_from_slice(tag.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::hex;
    use crate::header::Header;

    const ALL: [SigningAlgorithm; 3] = [
        SigningAlgorithm::HmacSha256,
        SigningAlgorithm::AesCmac,
        SigningAlgorithm::AesGmac,
    ];

    fn message(command: Command, hdr_flags: u32, message_id: u64, body_bytes: usize) -> Vec<u8> {
        let h = Header {
            credit_charge: 1,
            command: command as u16,
            credits: 1,
            flags: hdr_flags | flags::SIGNED,
            message_id,
            process_id: 0xFEFF,
            tree_id: 1,
            session_id: 0x1000_0000_0025,
            ..Header::default()
        };
        let mut m = Vec::new();
        h.encode(&mut m);
        m.extend((0..body_bytes).map(|i| (i * 7 + 3) as u8));
        m
    }

    #[test]
    fn round_trip_and_tamper_all_algorithms() {
        let key = hex("73FE7A9A77BEF0BDE49C650D8CCB5F76");
        for alg in ALL {
            let signer = Signer::new(alg, &key);
            for body_bytes in [0, 1, 15, 16, 17, 100, 4096, 8 << 20] {
                let mut m = message(Command::Read, flags::SERVER_TO_REDIR, 42, body_bytes);
                signer.sign(&mut m);
                assert_ne!(m[48..64], [0u8; 16], "{alg:?}");
                assert!(signer.verify(&m), "{alg:?} {body_bytes}");
                let before = m.clone();
                assert!(signer.verify_in_place(&mut m));
                assert_eq!(m, before, "verify_in_place restores the message");
                // Flip one bit anywhere: header, signature or body.
                for pos in [0, 13, 24, 47, 48, 63, m.len() - 1] {
                    let mut bad = m.clone();
                    bad[pos] ^= 0x10;
                    assert!(!signer.verify(&bad), "{alg:?} tamper at {pos}");
                    assert!(!signer.verify_in_place(&mut bad), "{alg:?} tamper at {pos}");
                }
                // Another key rejects it.
                let other = Signer::new(alg, &[0x11; 16]);
                assert!(!other.verify(&m));
            }
        }
    }

    #[test]
    fn short_messages_never_verify_or_panic() {
        for alg in ALL {
            let signer = Signer::new(alg, &[1; 16]);
            for n in 0..HEADER_BYTES {
                let mut m = vec![0u8; n];
                assert!(!signer.verify(&m));
                assert!(!signer.verify_in_place(&mut m));
            }
        }
    }

    /// The GMAC nonce binds direction and CANCEL: the same bytes signed as request and as
    /// response differ.
    #[test]
    fn gmac_nonce_role_bits() {
        let req = message(Command::Cancel, 0, 7, 4);
        assert_eq!(gmac_nonce(&req), [7, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0]);
        let resp = message(Command::Echo, flags::SERVER_TO_REDIR, 0x0102, 4);
        assert_eq!(gmac_nonce(&resp), [2, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
        let async_cancel = message(
            Command::Cancel,
            flags::SERVER_TO_REDIR | flags::ASYNC_COMMAND,
            9,
            0,
        );
        assert_eq!(gmac_nonce(&async_cancel)[8], 3);
    }

    // Known answers. The message is the SMB 3.1.1 WRITE request of the Microsoft Open
    // Specifications blog post "SMB 3.1.1 Encryption in Windows 10" (flags SIGNED, MessageId 5,
    // SessionId 0x100000000025, Signature zero); the key is the SMB 3.1.1 SigningKey of the
    // "anatomy of signing and cryptographic keys" blog post. No published SMB signature exists
    // for it, so the expected values were computed independently with Python 3.11 `hmac` and
    // `cryptography` 48 (OpenSSL: CMAC(AES-128); AESGCM with empty plaintext, message as AAD
    // and the MS-SMB2 3.1.4.1 nonce).
    const KAT_MESSAGE: &str = "
        FE534D4240000100000000000900010008000000000000000500000000000000FFFE000001000000
        25000000001000000000000000000000000000000000000031007000170000000000000000000000
        0600000004000000010000000400000000000000000000007000000000000000536D623320656E63
        72797074696F6E2074657374696E67";
    const KAT_KEY: &str = "73FE7A9A77BEF0BDE49C650D8CCB5F76";

    fn kat(alg: SigningAlgorithm, mut m: Vec<u8>) -> Vec<u8> {
        Signer::new(alg, &hex(KAT_KEY)).sign(&mut m);
        m[48..64].to_vec()
    }

    #[test]
    fn known_answers() {
        let m = hex(KAT_MESSAGE);
        assert_eq!(
            kat(SigningAlgorithm::HmacSha256, m.clone()),
            hex(KAT_HMAC_SHA256)
        );
        assert_eq!(kat(SigningAlgorithm::AesCmac, m.clone()), hex(KAT_AES_CMAC));
        assert_eq!(kat(SigningAlgorithm::AesGmac, m.clone()), hex(KAT_AES_GMAC));
        // As a response (SERVER_TO_REDIR) the GMAC nonce changes and so does the signature.
        let mut resp = m.clone();
        resp[16] |= flags::SERVER_TO_REDIR as u8;
        assert_eq!(
            kat(SigningAlgorithm::AesGmac, resp),
            hex(KAT_AES_GMAC_RESPONSE)
        );
    }

    const KAT_HMAC_SHA256: &str = "e30c917706b4eeb646f5eae85486e06a";
    const KAT_AES_CMAC: &str = "6c8cab5f147c12ae052aa88b802d5983";
    const KAT_AES_GMAC: &str = "758f6d4c97cf4f165f0d9c04873e9a98";
    const KAT_AES_GMAC_RESPONSE: &str = "ea8129ab6960fe76e5414fd3fc78c295";

    /// RFC 4493 section 4, example 3 (40-byte message): checks the CMAC primitive itself.
    #[test]
    fn rfc4493_cmac_primitive() {
        let key = cmac::Key::new(cmac::AES_128, &hex("2b7e151628aed2a6abf7158809cf4f3c")).unwrap();
        let tag = cmac::sign(
            &key,
            &hex(
                "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411",
            ),
        )
        .unwrap();
        assert_eq!(tag.as_ref(), hex("dfa66747de9ae63030ca32611497c827"));
    }
}
