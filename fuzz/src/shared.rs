//! Shared by the fuzz targets and the seed generator (which includes this file by path, so it
//! uses the protocol crate only): the fixed inputs that make the stateful targets (decryption,
//! authentication) deterministic, the selector tables that say which decoder the first input
//! byte chooses, and the client side of an NTLMSSP exchange.

use smb3d_protocol::auth::der::{self, context};
use smb3d_protocol::auth::{self, ntlmssp, spnego};
use smb3d_protocol::wire::{string_to_utf16le, Writer};

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

pub fn ntlm_negotiate_message(client_flags: u32) -> Vec<u8> {
    let mut m = Vec::new();
    m.put_bytes(ntlmssp::SIGNATURE);
    m.put_u32(ntlmssp::MESSAGE_NEGOTIATE);
    m.put_u32(client_flags);
    for _ in 0..2 {
        m.put_u16(0);
        m.put_u16(0);
        m.put_u32(40);
    }
    m.put_bytes(&[10, 0, 0x61, 0x4a, 0, 0, 0, 15]);
    m
}

fn put_field(header: &mut Vec<u8>, payload: &mut Vec<u8>, base: usize, data: &[u8]) {
    header.put_u16(data.len() as u16);
    header.put_u16(data.len() as u16);
    header.put_u32((base + payload.len()) as u32);
    payload.put_bytes(data);
}

/// MS-NLMP 3.1.5.1.2: an NTLMv2 AUTHENTICATE answering `challenge` (no MIC, no key exchange
/// unless negotiated). `anonymous` sends empty user and responses.
pub fn ntlm_authenticate(challenge: &[u8], anonymous: bool) -> Vec<u8> {
    let read_u16 = |at: usize| u16::from_le_bytes([challenge[at], challenge[at + 1]]) as usize;
    let read_u32 =
        |at: usize| u32::from_le_bytes(challenge[at..at + 4].try_into().expect("4 bytes")) as usize;
    let negotiated = read_u32(20) as u32;
    let server_challenge: [u8; 8] = challenge[24..32].try_into().expect("8 bytes");
    let info = &challenge[read_u32(44)..read_u32(44) + read_u16(40)];
    let key = ntlmssp::ntowf_v2(&auth::nt_hash(AUTH_PASSWORD), AUTH_USER, "WORKGROUP");
    let mut temp = vec![1, 1, 0, 0, 0, 0, 0, 0];
    temp.put_u64(AUTH_NOW_FILETIME + 10);
    temp.put_bytes(&[0xaa; 8]);
    temp.put_u32(0);
    temp.put_bytes(info);
    temp.put_u32(0);
    let proof = ntlmssp::nt_proof_str(&key, &server_challenge, &temp);
    let base_key = ntlmssp::session_base_key(&key, &proof);
    let encrypted = if negotiated & ntlmssp::flags::KEY_EXCH != 0 {
        ntlmssp::rc4_session_key(&base_key, &[0x42; 16]).to_vec()
    } else {
        Vec::new()
    };
    let (lm, nt, user, domain) = if anonymous {
        (vec![0], Vec::new(), "", "")
    } else {
        (
            vec![0; 24],
            [&proof[..], &temp].concat(),
            AUTH_USER,
            "WORKGROUP",
        )
    };
    const BASE: usize = 88;
    let (mut h, mut p) = (Vec::new(), Vec::new());
    h.put_bytes(ntlmssp::SIGNATURE);
    h.put_u32(ntlmssp::MESSAGE_AUTHENTICATE);
    put_field(&mut h, &mut p, BASE, &lm);
    put_field(&mut h, &mut p, BASE, &nt);
    put_field(&mut h, &mut p, BASE, &string_to_utf16le(domain));
    put_field(&mut h, &mut p, BASE, &string_to_utf16le(user));
    put_field(&mut h, &mut p, BASE, &string_to_utf16le("CLIENT1"));
    put_field(&mut h, &mut p, BASE, &encrypted);
    h.put_u32(negotiated);
    h.put_bytes(&[10, 0, 0x61, 0x4a, 0, 0, 0, 15]);
    h.put_zeros(16);
    [h, p].concat()
}

pub fn spnego_init(mech_token: &[u8]) -> Vec<u8> {
    let mech_types = der::encode(
        der::TAG_SEQUENCE,
        &der::encode(der::TAG_OID, spnego::OID_NTLMSSP),
    );
    let init = der::encode_parts(
        der::TAG_SEQUENCE,
        &[
            &der::encode(context(0), &mech_types),
            &der::encode(context(2), &der::encode(der::TAG_OCTET_STRING, mech_token)),
        ],
    );
    der::encode_parts(
        der::TAG_APPLICATION_0,
        &[
            &der::encode(der::TAG_OID, spnego::OID_SPNEGO),
            &der::encode(context(0), &init),
        ],
    )
}

pub fn spnego_resp(response_token: &[u8]) -> Vec<u8> {
    let resp = der::encode(
        der::TAG_SEQUENCE,
        &der::encode(
            context(2),
            &der::encode(der::TAG_OCTET_STRING, response_token),
        ),
    );
    der::encode(context(1), &resp)
}

/// `connection` target: the session the harness logs on (the server's first).
pub const FUZZ_SESSION_ID: u64 = 1;
/// `connection` target: MessageIds the harness's logon takes after the stream's NEGOTIATE.
pub const LOGON_MESSAGES: u64 = 2;
