//! Shared by the fuzz targets and the seed generator: the fixed inputs that make the stateful
//! targets (decryption, authentication) deterministic, and the selector tables that say which
//! decoder the first input byte chooses.

/// Encryption key of the `transform` target (any fixed bytes; 32 covers AES-256).
pub const FUZZ_KEY: [u8; 32] = [0x5a; 32];

/// Server challenge and clock of the `auth` target, so seeds can hold valid AUTHENTICATEs.
pub const AUTH_CHALLENGE: [u8; 8] = [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88];
pub const AUTH_NOW_FILETIME: u64 = 133_500_000_000_000_000;
pub const AUTH_USER: &str = "alice";
pub const AUTH_PASSWORD: &str = "correct horse";

/// `requests` target: first byte (mod the length) picks the decoder.
pub const REQUEST_COMMANDS: [u16; 15] = [
    0x00, // NEGOTIATE
    0x01, // SESSION_SETUP
    0x03, // TREE_CONNECT
    0x05, // CREATE
    0x06, // CLOSE
    0x07, // FLUSH
    0x08, // READ
    0x09, // WRITE
    0x0A, // LOCK
    0x0B, // IOCTL
    0x0D, // ECHO
    0x0E, // QUERY_DIRECTORY
    0x10, // QUERY_INFO
    0x11, // SET_INFO
    0x12, // OPLOCK_BREAK
];

/// `info` target: first byte (mod the length) picks the decoder of peer-supplied info data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InfoDecoder {
    Rename,
    Basic,
    Disposition,
    DispositionEx,
    EndOfFile,
    Allocation,
    Position,
    Mode,
    FullEaList,
    GetEaList,
    SecurityDescriptor,
    FsControl,
    Name,
}

pub const INFO_DECODERS: [InfoDecoder; 13] = [
    InfoDecoder::Rename,
    InfoDecoder::Basic,
    InfoDecoder::Disposition,
    InfoDecoder::DispositionEx,
    InfoDecoder::EndOfFile,
    InfoDecoder::Allocation,
    InfoDecoder::Position,
    InfoDecoder::Mode,
    InfoDecoder::FullEaList,
    InfoDecoder::GetEaList,
    InfoDecoder::SecurityDescriptor,
    InfoDecoder::FsControl,
    InfoDecoder::Name,
];

/// The cipher the `transform` target's first byte selects.
pub fn cipher_for(selector: u8) -> smb3d_protocol::dialect::Cipher {
    use smb3d_protocol::dialect::Cipher;
    match selector % 4 {
        0 => Cipher::Aes128Ccm,
        1 => Cipher::Aes128Gcm,
        2 => Cipher::Aes256Ccm,
        _ => Cipher::Aes256Gcm,
    }
}

/// `auth` target input: `[len_lo, len_hi, token1 (len bytes), token2 (rest)]`.
pub fn split_tokens(data: &[u8]) -> (&[u8], &[u8]) {
    if data.len() < 2 {
        return (data, &[]);
    }
    let len = usize::from(u16::from_le_bytes([data[0], data[1]]));
    let rest = &data[2..];
    rest.split_at(len.min(rest.len()))
}

/// `auth` target input from two tokens.
pub fn join_tokens(first: &[u8], second: &[u8]) -> Vec<u8> {
    let mut v = (first.len() as u16).to_le_bytes().to_vec();
    v.extend_from_slice(first);
    v.extend_from_slice(second);
    v
}

/// The signing algorithm the `signing` target's first byte selects.
pub fn signing_algorithm_for(selector: u8) -> smb3d_protocol::dialect::SigningAlgorithm {
    use smb3d_protocol::dialect::SigningAlgorithm;
    match selector % 3 {
        0 => SigningAlgorithm::HmacSha256,
        1 => SigningAlgorithm::AesCmac,
        _ => SigningAlgorithm::AesGmac,
    }
}
