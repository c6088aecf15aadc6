//! SP800-108 counter-mode key derivation with HMAC-SHA256 and the SMB 3.x session keys
//! (MS-SMB2 3.1.4.2, 3.3.5.5.3).

use aws_lc_rs::hmac;

use super::PreauthHash;
use crate::dialect::{Cipher, Dialect};

/// NIST SP800-108 KDF in counter mode, PRF = HMAC-SHA256, r = 32 (MS-SMB2 3.1.4.2):
/// `K(i) = HMAC(key, [i]_32be || label || 0x00 || context || [L]_32be)`, `L = out.len() * 8`.
///
/// SMB passes `label` and `context` with their terminating NUL already included (for example
/// `b"SMB2AESCMAC\0"`); the 0x00 separator between them is added here.
pub fn kdf_sp800_108(key: &[u8], label: &[u8], context: &[u8], out: &mut [u8]) {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let length_bits = (out.len() as u32).wrapping_mul(8).to_be_bytes();
    for (i, chunk) in out.chunks_mut(32).enumerate() {
        let counter = (i as u32 + 1).to_be_bytes();
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(&counter);
        ctx.update(label);
        ctx.update(&[0]);
        ctx.update(context);
        ctx.update(&length_bits);
        let tag = ctx.sign();
        chunk.copy_from_slice(&tag.as_ref()[..chunk.len()]);
    }
}

/// The keys of one authenticated session, from the server's point of view.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKeys {
    /// Session.SigningKey (16 bytes).
    pub signing: Vec<u8>,
    /// Session.EncryptionKey: server -> client ("ServerOut" / "SMBS2CCipherKey"). Empty for 2.x.
    pub encryption: Vec<u8>,
    /// Session.DecryptionKey: client -> server ("ServerIn " / "SMBC2SCipherKey"). Empty for 2.x.
    pub decryption: Vec<u8>,
    /// Session.ApplicationKey (16 bytes), handed to DCE/RPC over named pipes.
    pub application: Vec<u8>,
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Key material stays out of logs.
        f.debug_struct("SessionKeys")
            .field("signing_bytes", &self.signing.len())
            .field("encryption_bytes", &self.encryption.len())
            .field("decryption_bytes", &self.decryption.len())
            .field("application_bytes", &self.application.len())
            .finish()
    }
}

/// Session.SessionKey: the first 16 bytes of the authentication key, zero-padded when shorter
/// (MS-SMB2 3.3.5.5.3).
fn session_key_16(session_key: &[u8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    let n = session_key.len().min(16);
    out[..n].copy_from_slice(&session_key[..n]);
    out
}

fn derive(key: &[u8], label: &[u8], context: &[u8], len_bytes: usize) -> Vec<u8> {
    let mut out = vec![0u8; len_bytes];
    kdf_sp800_108(key, label, context, &mut out);
    out
}

/// Derive a session's keys once authentication has produced `session_key`.
///
/// - 2.0.2/2.1: SigningKey = ApplicationKey = SessionKey, no encryption keys.
/// - 3.0/3.0.2 (MS-SMB2 3.3.5.5.3): labels "SMB2AESCMAC"/"SmbSign", "SMB2AESCCM"/"ServerOut"
///   (encryption, server -> client), "SMB2AESCCM"/"ServerIn " (decryption), "SMB2APP"/"SmbRpc".
///   The cipher is always AES-128-CCM.
/// - 3.1.1: labels "SMBSigningKey", "SMBS2CCipherKey" (encryption, server -> client),
///   "SMBC2SCipherKey" (decryption), "SMBAppKey"; context = the session's preauth hash.
///   With AES-256-CCM/GCM the cipher keys are 32 bytes (L = 256) derived from the full
///   session key (Session.FullSessionKey); signing and application keys always come from the
///   16-byte Session.SessionKey.
///
/// `preauth_hash` is required for 3.1.1; `None` there derives with an all-zero context, which
/// no client will match.
pub fn derive_session_keys(
    dialect: Dialect,
    cipher: Option<Cipher>,
    session_key: &[u8],
    preauth_hash: Option<&PreauthHash>,
) -> SessionKeys {
    let key16 = session_key_16(session_key);
    match dialect {
        Dialect::Smb202 | Dialect::Smb210 => SessionKeys {
            signing: key16.to_vec(),
            encryption: Vec::new(),
            decryption: Vec::new(),
            application: key16.to_vec(),
        },
        Dialect::Smb300 | Dialect::Smb302 => SessionKeys {
            signing: derive(&key16, b"SMB2AESCMAC\0", b"SmbSign\0", 16),
            encryption: derive(&key16, b"SMB2AESCCM\0", b"ServerOut\0", 16),
            decryption: derive(&key16, b"SMB2AESCCM\0", b"ServerIn \0", 16),
            application: derive(&key16, b"SMB2APP\0", b"SmbRpc\0", 16),
        },
        Dialect::Smb311 => {
            let zero = PreauthHash::new();
            let context = &preauth_hash.unwrap_or(&zero).0[..];
            let cipher_bytes = cipher.map_or(16, Cipher::key_bytes);
            // MS-SMB2 3.3.5.5.3: 256-bit ciphers key the KDF with Session.FullSessionKey.
            let cipher_kdf_key: &[u8] = if cipher_bytes == 32 && !session_key.is_empty() {
                session_key
            } else {
                &key16
            };
            SessionKeys {
                signing: derive(&key16, b"SMBSigningKey\0", context, 16),
                encryption: derive(cipher_kdf_key, b"SMBS2CCipherKey\0", context, cipher_bytes),
                decryption: derive(cipher_kdf_key, b"SMBC2SCipherKey\0", context, cipher_bytes),
                application: derive(&key16, b"SMBAppKey\0", context, 16),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::hex;

    /// "SMB 2 and SMB 3 security in Windows 10: the anatomy of signing and cryptographic keys"
    /// (Microsoft Open Specifications blog), appendix "Key derivation example for SMB 3.0
    /// multichannel", first channel. The blog lists keys from the client's side, so its
    /// EncryptionKey ("ServerIn ") is our decryption key and vice versa.
    #[test]
    fn smb300_blog_example() {
        let keys = derive_session_keys(
            Dialect::Smb300,
            None,
            &hex("7CD451825D0450D235424E44BA6E78CC"),
            None,
        );
        assert_eq!(keys.signing, hex("0B7E9C5CAC36C0F6EA9AB275298CEDCE"));
        assert_eq!(keys.decryption, hex("FAD27796665B313EBB578F388632B4F7"));
        assert_eq!(keys.encryption, hex("B0F0427F7CEB416D1D9DCC0CD4F99447"));
        assert_eq!(keys.application, hex("BB23A4575AA26C721AF525AF15A87B4F"));

        // Second channel (session binding): only the signing key is new.
        let bound = derive_session_keys(
            Dialect::Smb302,
            None,
            &hex("4E01A2B313BCF660CC250BEF021AEDE6"),
            None,
        );
        assert_eq!(bound.signing, hex("BA1A17DBBFEC349BCA105563D598952F"));
    }

    /// Same blog post, "Key derivation example for SMB 3.1.1 multichannel", first channel
    /// (CipherId 0x0002); the preauth hash is the end of the chain tested in `preauth.rs`.
    #[test]
    fn smb311_blog_example() {
        let mut preauth = PreauthHash::new();
        for (message, _) in crate::crypto::preauth::tests::BLOG_CHAIN {
            preauth.update(&hex(message));
        }
        let keys = derive_session_keys(
            Dialect::Smb311,
            Some(Cipher::Aes128Gcm),
            &hex("270E1BA896585EEB7AF3472D3B4C75A7"),
            Some(&preauth),
        );
        assert_eq!(keys.signing, hex("73FE7A9A77BEF0BDE49C650D8CCB5F76"));
        assert_eq!(keys.decryption, hex("629BCBC54422A0F572B97F45989B6073"));
        assert_eq!(keys.encryption, hex("E2AF0DCEFAC68DA71A0DFBD0D1350D74"));
        assert_eq!(keys.application, hex("6D7AD7954E9EC61E907B4D473DC178FF"));
    }

    #[test]
    fn smb2_uses_session_key_directly() {
        let keys = derive_session_keys(Dialect::Smb210, None, &[9u8; 16], None);
        assert_eq!(keys.signing, vec![9u8; 16]);
        assert_eq!(keys.application, vec![9u8; 16]);
        assert!(keys.encryption.is_empty() && keys.decryption.is_empty());
        // Shorter keys are zero-padded, longer ones truncated (Session.SessionKey).
        let short = derive_session_keys(Dialect::Smb202, None, &[1, 2], None);
        assert_eq!(short.signing, [&[1u8, 2][..], &[0u8; 14]].concat());
        let long = derive_session_keys(Dialect::Smb202, None, &[3u8; 32], None);
        assert_eq!(long.signing, vec![3u8; 16]);
    }

    #[test]
    fn aes256_keys_use_full_session_key_and_l256() {
        let full: Vec<u8> = (0u8..32).collect();
        let preauth = PreauthHash([0x5A; 64]);
        let keys = derive_session_keys(
            Dialect::Smb311,
            Some(Cipher::Aes256Gcm),
            &full,
            Some(&preauth),
        );
        assert_eq!(keys.encryption.len(), 32);
        assert_eq!(keys.decryption.len(), 32);
        let mut expect = [0u8; 32];
        kdf_sp800_108(&full, b"SMBS2CCipherKey\0", &preauth.0, &mut expect);
        assert_eq!(keys.encryption, expect);
        kdf_sp800_108(&full, b"SMBC2SCipherKey\0", &preauth.0, &mut expect);
        assert_eq!(keys.decryption, expect);
        // Signing still from the first 16 bytes, L = 128.
        let mut sign = [0u8; 16];
        kdf_sp800_108(&full[..16], b"SMBSigningKey\0", &preauth.0, &mut sign);
        assert_eq!(keys.signing, sign);
        // 128-bit ciphers ignore the bytes past 16.
        let keys128 = derive_session_keys(
            Dialect::Smb311,
            Some(Cipher::Aes128Ccm),
            &full,
            Some(&preauth),
        );
        let keys128_short = derive_session_keys(
            Dialect::Smb311,
            Some(Cipher::Aes128Ccm),
            &full[..16],
            Some(&preauth),
        );
        assert_eq!(keys128, keys128_short);
        assert_eq!(keys128.encryption.len(), 16);
    }

    /// L = 256 with a 32-byte key, as for AES-256 ciphers. Expected values computed
    /// independently with Python `cryptography` 48 KBKDFHMAC (SHA-256, counter mode, r = 32,
    /// counter before the fixed input), context = the "SMB 3.1.1 Encryption in Windows 10"
    /// blog's preauth hash, key = bytes 0..32.
    #[test]
    fn aes256_cipher_keys_match_independent_kbkdf() {
        let mut preauth = PreauthHash::new();
        preauth.0.copy_from_slice(&hex(
            "B23F3CBFD69487D9832B79B1594A367CDD950909B774C3A4C412B4FCEA9EDDDBA7DB256BA2EA30E9
             77F11F9B113247578E0E915C6D2A513B8F2FCA5707DC8770",
        ));
        let full: Vec<u8> = (0u8..32).collect();
        for cipher in [Cipher::Aes256Ccm, Cipher::Aes256Gcm] {
            let keys = derive_session_keys(Dialect::Smb311, Some(cipher), &full, Some(&preauth));
            assert_eq!(
                keys.encryption,
                hex("0C9FF1D877BA6F6DC4913A2C42990C1E0DAEB558B9EC7FB988F46FCEE67FBA10")
            );
            assert_eq!(
                keys.decryption,
                hex("9473DC48638034FFCC9E6103272CD8731ECF45FC63FCBCD750B7C9F1E7C03FAA")
            );
        }
    }

    /// L is part of the PRF input, so a 32-byte output is not a 16-byte one extended.
    #[test]
    fn kdf_length_is_bound_into_output() {
        let mut a = [0u8; 16];
        let mut b = [0u8; 32];
        kdf_sp800_108(b"key", b"label\0", b"ctx\0", &mut a);
        kdf_sp800_108(b"key", b"label\0", b"ctx\0", &mut b);
        assert_ne!(a[..], b[..16]);
        // Second 32-byte block uses counter 2.
        let mut c = [0u8; 40];
        kdf_sp800_108(b"key", b"label\0", b"ctx\0", &mut c);
        assert_ne!(c[..32], c[8..40]);
    }
}
