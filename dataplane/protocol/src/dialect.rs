//! Dialects, ciphers and signing algorithms (MS-SMB2 2.2.3, 2.2.3.1.2, 2.2.3.1.7).

/// An SMB2 dialect revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u16)]
pub enum Dialect {
    Smb202 = 0x0202,
    Smb210 = 0x0210,
    Smb300 = 0x0300,
    Smb302 = 0x0302,
    Smb311 = 0x0311,
}

/// The "SMB 2.???" wildcard revision answered to an SMB1 multi-protocol negotiate.
pub const DIALECT_WILDCARD: u16 = 0x02FF;

impl Dialect {
    pub const ALL: [Dialect; 5] = [
        Dialect::Smb202,
        Dialect::Smb210,
        Dialect::Smb300,
        Dialect::Smb302,
        Dialect::Smb311,
    ];

    pub fn from_u16(v: u16) -> Option<Dialect> {
        Dialect::ALL.into_iter().find(|d| *d as u16 == v)
    }

    /// SMB 3.x family: AES-CMAC/GMAC signing, encryption, multichannel.
    pub fn is_smb3(self) -> bool {
        self >= Dialect::Smb300
    }
}

/// Encryption ciphers (MS-SMB2 2.2.3.1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Cipher {
    Aes128Ccm = 0x0001,
    Aes128Gcm = 0x0002,
    Aes256Ccm = 0x0003,
    Aes256Gcm = 0x0004,
}

impl Cipher {
    pub fn from_u16(v: u16) -> Option<Cipher> {
        Some(match v {
            1 => Cipher::Aes128Ccm,
            2 => Cipher::Aes128Gcm,
            3 => Cipher::Aes256Ccm,
            4 => Cipher::Aes256Gcm,
            _ => return None,
        })
    }

    /// Key length in bytes.
    pub fn key_bytes(self) -> usize {
        match self {
            Cipher::Aes128Ccm | Cipher::Aes128Gcm => 16,
            Cipher::Aes256Ccm | Cipher::Aes256Gcm => 32,
        }
    }

    /// Nonce length in bytes used on the wire (CCM 11, GCM 12; MS-SMB2 2.2.41).
    pub fn nonce_bytes(self) -> usize {
        match self {
            Cipher::Aes128Ccm | Cipher::Aes256Ccm => 11,
            Cipher::Aes128Gcm | Cipher::Aes256Gcm => 12,
        }
    }
}

/// Signing algorithms (MS-SMB2 2.2.3.1.7). Dialects before 3.1.1 imply theirs: 2.x HMAC-SHA256,
/// 3.0/3.0.2 AES-CMAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum SigningAlgorithm {
    HmacSha256 = 0x0000,
    AesCmac = 0x0001,
    AesGmac = 0x0002,
}

impl SigningAlgorithm {
    pub fn from_u16(v: u16) -> Option<SigningAlgorithm> {
        Some(match v {
            0 => SigningAlgorithm::HmacSha256,
            1 => SigningAlgorithm::AesCmac,
            2 => SigningAlgorithm::AesGmac,
            _ => return None,
        })
    }

    /// The algorithm a dialect uses when none was negotiated by context.
    pub fn default_for(dialect: Dialect) -> SigningAlgorithm {
        if dialect.is_smb3() {
            SigningAlgorithm::AesCmac
        } else {
            SigningAlgorithm::HmacSha256
        }
    }
}
