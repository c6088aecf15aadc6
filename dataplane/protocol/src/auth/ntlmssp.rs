//! NTLMSSP messages and the NTLMv2 computations of MS-NLMP, server side.
//!
//! Parsing is bounds-checked throughout: every (length, offset) field is resolved with
//! [`slice_at`], so a peer can never make the server read outside its own message.

use hmac::{Hmac, Mac};
use md4::Md4;
use md5::{Digest, Md5};
use rc4::{consts::U16, KeyInit, Rc4, StreamCipher};

use crate::status::NtStatus;
use crate::wire::{slice_at, string_to_utf16le, utf16le_to_string, Reader, Writer};

pub type Result<T> = std::result::Result<T, NtStatus>;

/// "NTLMSSP\0" (MS-NLMP 2.2.1).
pub const SIGNATURE: &[u8; 8] = b"NTLMSSP\0";
pub const MESSAGE_NEGOTIATE: u32 = 1;
pub const MESSAGE_CHALLENGE: u32 = 2;
pub const MESSAGE_AUTHENTICATE: u32 = 3;

/// NegotiateFlags (MS-NLMP 2.2.2.5).
pub mod flags {
    pub const UNICODE: u32 = 0x0000_0001;
    pub const OEM: u32 = 0x0000_0002;
    pub const REQUEST_TARGET: u32 = 0x0000_0004;
    pub const SIGN: u32 = 0x0000_0010;
    pub const SEAL: u32 = 0x0000_0020;
    pub const LM_KEY: u32 = 0x0000_0080;
    pub const NTLM: u32 = 0x0000_0200;
    pub const ANONYMOUS: u32 = 0x0000_0800;
    pub const ALWAYS_SIGN: u32 = 0x0000_8000;
    pub const TARGET_TYPE_SERVER: u32 = 0x0002_0000;
    pub const EXTENDED_SESSIONSECURITY: u32 = 0x0008_0000;
    pub const TARGET_INFO: u32 = 0x0080_0000;
    pub const VERSION: u32 = 0x0200_0000;
    pub const NEGOTIATE_128: u32 = 0x2000_0000;
    pub const KEY_EXCH: u32 = 0x4000_0000;
    pub const NEGOTIATE_56: u32 = 0x8000_0000;
}

/// AV_PAIR ids (MS-NLMP 2.2.2.1).
pub mod av {
    pub const EOL: u16 = 0;
    pub const NB_COMPUTER_NAME: u16 = 1;
    pub const NB_DOMAIN_NAME: u16 = 2;
    pub const DNS_COMPUTER_NAME: u16 = 3;
    pub const DNS_DOMAIN_NAME: u16 = 4;
    pub const FLAGS: u16 = 6;
    pub const TIMESTAMP: u16 = 7;
    /// MsvAvFlags bit: the AUTHENTICATE message carries a MIC.
    pub const FLAG_MIC_PRESENT: u32 = 0x0000_0002;
}

/// Flags the server offers; the client's NEGOTIATE selects among the optional ones.
const OPTIONAL_FLAGS: u32 = flags::EXTENDED_SESSIONSECURITY
    | flags::VERSION
    | flags::NEGOTIATE_128
    | flags::NEGOTIATE_56
    | flags::KEY_EXCH
    | flags::SIGN
    | flags::SEAL
    | flags::REQUEST_TARGET;

/// What a modern client asks for; used when SPNEGO chose NTLMSSP without a NEGOTIATE message.
pub const DEFAULT_CLIENT_FLAGS: u32 =
    flags::UNICODE | flags::REQUEST_TARGET | flags::NTLM | flags::ALWAYS_SIGN | OPTIONAL_FLAGS;

/// The VERSION structure the server sends (MS-NLMP 2.2.2.10): 10.0 build 20348, NTLM revision 15.
const SERVER_VERSION: [u8; 8] = [10, 0, 0x7c, 0x4f, 0, 0, 0, 0x0f];

/// Offset of the MIC in an AUTHENTICATE message that carries one (MS-NLMP 2.2.1.3).
pub const AUTHENTICATE_MIC_OFFSET: usize = 72;
const AUTHENTICATE_HEADER_WITH_MIC: usize = 88;
/// Fixed part of an NTLMv2_RESPONSE before its AV pairs: NTProofStr (16) plus the
/// NTLMv2_CLIENT_CHALLENGE header (28) (MS-NLMP 2.2.2.7, 2.2.2.8).
pub const NTLMV2_RESPONSE_MIN: usize = 16 + 28;
/// Length of an NTLMv1 / NTLM2-session response (MS-NLMP 2.2.2.6).
pub const NTLMV1_RESPONSE_LEN: usize = 24;
/// Most AV pairs accepted in a client's NTLMv2 blob.
const MAX_AV_PAIRS: usize = 64;

type HmacMd5 = Hmac<Md5>;

pub fn hmac_md5(key: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <HmacMd5 as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

pub fn md5(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// RC4 with a 16-byte key over `data`, in place (one fresh cipher state).
pub fn rc4_16(key: &[u8; 16], data: &mut [u8]) {
    let mut cipher = Rc4::<U16>::new(key.into());
    cipher.apply_keystream(data);
}

/// Equality that takes the same time wherever the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// NT hash: MD4(UTF-16LE(password)) (MS-NLMP 3.3.1 NTOWFv1).
pub fn nt_hash(password: &str) -> [u8; 16] {
    Md4::digest(string_to_utf16le(password)).into()
}

/// MS-NLMP 3.3.2: NTOWFv2 = HMAC_MD5(NT hash, UNICODE(Uppercase(User) + UserDom)).
pub fn ntowf_v2(nt_hash: &[u8; 16], user: &str, domain: &str) -> [u8; 16] {
    let mut identity = user.to_uppercase();
    identity.push_str(domain);
    hmac_md5(nt_hash, &[&string_to_utf16le(&identity)])
}

/// MS-NLMP 3.3.2: NTProofStr = HMAC_MD5(ResponseKeyNT, ServerChallenge || temp).
pub fn nt_proof_str(
    response_key_nt: &[u8; 16],
    server_challenge: &[u8; 8],
    temp: &[u8],
) -> [u8; 16] {
    hmac_md5(response_key_nt, &[server_challenge, temp])
}

/// MS-NLMP 3.3.2: SessionBaseKey = HMAC_MD5(ResponseKeyNT, NTProofStr).
pub fn session_base_key(response_key_nt: &[u8; 16], nt_proof: &[u8; 16]) -> [u8; 16] {
    hmac_md5(response_key_nt, &[nt_proof])
}

/// MS-NLMP 3.1.5.1.2 / 3.2.5.1.2: with KEY_EXCH the client sends the session key RC4-encrypted
/// under KeyExchangeKey; RC4 is its own inverse.
pub fn rc4_session_key(key_exchange_key: &[u8; 16], session_key: &[u8; 16]) -> [u8; 16] {
    let mut out = *session_key;
    rc4_16(key_exchange_key, &mut out);
    out
}

/// A parsed NEGOTIATE_MESSAGE (MS-NLMP 2.2.1.1); only the flags matter to the server.
#[derive(Debug)]
pub struct Negotiate {
    pub flags: u32,
}

/// The message type of an NTLMSSP message, after checking the signature.
pub fn message_type(msg: &[u8]) -> Result<u32> {
    let mut r = Reader::new(msg);
    if r.bytes(8)? != SIGNATURE {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    r.u32()
}

pub fn parse_negotiate(msg: &[u8]) -> Result<Negotiate> {
    if message_type(msg)? != MESSAGE_NEGOTIATE {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    let mut r = Reader::at(msg, 12)?;
    let flags = r.u32()?;
    Ok(Negotiate { flags })
}

/// The flags the server answers with (MS-NLMP 3.2.5.1.1): always NTLM, Unicode, target info
/// and always-sign; the optional capabilities only where the client asked for them.
pub fn challenge_flags(client_flags: u32) -> u32 {
    let mut f = flags::UNICODE | flags::NTLM | flags::ALWAYS_SIGN | flags::TARGET_INFO;
    f |= client_flags & OPTIONAL_FLAGS;
    if f & flags::REQUEST_TARGET != 0 {
        f |= flags::TARGET_TYPE_SERVER;
    }
    f
}

/// Names and time for the CHALLENGE message.
pub struct ChallengeParams<'a> {
    pub flags: u32,
    pub server_challenge: [u8; 8],
    pub netbios_name: &'a str,
    pub dns_name: &'a str,
    pub now_filetime: u64,
}

fn put_av(out: &mut Vec<u8>, id: u16, value: &[u8]) {
    out.put_u16(id);
    out.put_u16(value.len() as u16);
    out.put_bytes(value);
}

/// Names are bounded so AV pairs and fields fit their u16 lengths.
fn bounded_utf16(name: &str) -> Vec<u8> {
    let mut b = string_to_utf16le(name);
    b.truncate(512);
    b
}

/// TargetInfo of the CHALLENGE message (MS-NLMP 2.2.1.2, 3.2.5.1.1). A stand-alone server is
/// its own NetBIOS/DNS "domain", as a Windows workgroup server reports itself.
pub fn target_info(p: &ChallengeParams<'_>) -> Vec<u8> {
    let nb = bounded_utf16(&p.netbios_name.to_uppercase());
    let dns = bounded_utf16(p.dns_name);
    let mut out = Vec::new();
    put_av(&mut out, av::NB_DOMAIN_NAME, &nb);
    put_av(&mut out, av::NB_COMPUTER_NAME, &nb);
    put_av(&mut out, av::DNS_DOMAIN_NAME, &dns);
    put_av(&mut out, av::DNS_COMPUTER_NAME, &dns);
    put_av(&mut out, av::TIMESTAMP, &p.now_filetime.to_le_bytes());
    put_av(&mut out, av::EOL, &[]);
    out
}

/// Builds a CHALLENGE_MESSAGE (MS-NLMP 2.2.1.2).
pub fn build_challenge(p: &ChallengeParams<'_>) -> Vec<u8> {
    const PAYLOAD_OFFSET: usize = 56;
    let target_name = if p.flags & flags::REQUEST_TARGET != 0 {
        bounded_utf16(&p.netbios_name.to_uppercase())
    } else {
        Vec::new()
    };
    let info = target_info(p);
    let mut out = Vec::with_capacity(PAYLOAD_OFFSET + target_name.len() + info.len());
    out.put_bytes(SIGNATURE);
    out.put_u32(MESSAGE_CHALLENGE);
    let name_offset = PAYLOAD_OFFSET;
    out.put_u16(target_name.len() as u16);
    out.put_u16(target_name.len() as u16);
    out.put_u32(name_offset as u32);
    out.put_u32(p.flags);
    out.put_bytes(&p.server_challenge);
    out.put_zeros(8);
    let info_offset = name_offset + target_name.len();
    out.put_u16(info.len() as u16);
    out.put_u16(info.len() as u16);
    out.put_u32(info_offset as u32);
    if p.flags & flags::VERSION != 0 {
        out.put_bytes(&SERVER_VERSION);
    } else {
        out.put_zeros(8);
    }
    out.put_bytes(&target_name);
    out.put_bytes(&info);
    out
}

/// A parsed AUTHENTICATE_MESSAGE (MS-NLMP 2.2.1.3), borrowing from the message.
#[derive(Debug)]
pub struct Authenticate<'a> {
    pub lm_response: &'a [u8],
    pub nt_response: &'a [u8],
    pub domain: String,
    pub user: String,
    pub workstation: String,
    pub encrypted_session_key: &'a [u8],
    pub flags: u32,
    /// Smallest payload offset of any non-empty field: tells whether the MIC slot exists.
    pub payload_start: usize,
}

/// Reads a (Len, MaxLen, Offset) field descriptor and resolves it inside `msg`.
fn field<'a>(msg: &'a [u8], r: &mut Reader<'_>, payload_start: &mut usize) -> Result<&'a [u8]> {
    let len = usize::from(r.u16()?);
    let _max_len = r.u16()?;
    let offset = r.u32()? as usize;
    let data = slice_at(msg, offset, len)?;
    if len > 0 {
        *payload_start = (*payload_start).min(offset);
    }
    Ok(data)
}

fn decode_text(b: &[u8], unicode: bool) -> Result<String> {
    if unicode {
        utf16le_to_string(b).map_err(|_| NtStatus::INVALID_PARAMETER)
    } else {
        // OEM code page: treat as Latin-1, which keeps ASCII names intact.
        Ok(b.iter().map(|&c| char::from(c)).collect())
    }
}

pub fn parse_authenticate(msg: &[u8]) -> Result<Authenticate<'_>> {
    if message_type(msg)? != MESSAGE_AUTHENTICATE {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    let mut r = Reader::at(msg, 12)?;
    let mut payload_start = msg.len();
    let lm_response = field(msg, &mut r, &mut payload_start)?;
    let nt_response = field(msg, &mut r, &mut payload_start)?;
    let domain = field(msg, &mut r, &mut payload_start)?;
    let user = field(msg, &mut r, &mut payload_start)?;
    let workstation = field(msg, &mut r, &mut payload_start)?;
    let encrypted_session_key = field(msg, &mut r, &mut payload_start)?;
    let flags = r.u32()?;
    let unicode = flags & flags::UNICODE != 0;
    Ok(Authenticate {
        lm_response,
        nt_response,
        domain: decode_text(domain, unicode)?,
        user: decode_text(user, unicode)?,
        workstation: decode_text(workstation, unicode)?,
        encrypted_session_key,
        flags,
        payload_start,
    })
}

/// MsvAvFlags from the AV pairs of an NTLMv2 response blob (0 when absent).
pub fn client_av_flags(nt_response: &[u8]) -> Result<u32> {
    let pairs = nt_response
        .get(NTLMV2_RESPONSE_MIN..)
        .ok_or(NtStatus::INVALID_PARAMETER)?;
    let mut r = Reader::new(pairs);
    for _ in 0..MAX_AV_PAIRS {
        if r.remaining() == 0 {
            // Some clients omit the EOL pair; the list simply ends.
            return Ok(0);
        }
        let id = r.u16()?;
        let len = usize::from(r.u16()?);
        let value = r.bytes(len)?;
        match id {
            av::EOL => return Ok(0),
            av::FLAGS => {
                let bytes: [u8; 4] = value.try_into().map_err(|_| NtStatus::INVALID_PARAMETER)?;
                return Ok(u32::from_le_bytes(bytes));
            }
            _ => {}
        }
    }
    Err(NtStatus::INVALID_PARAMETER)
}

/// The AUTHENTICATE message with its MIC field zeroed, the MIC's input (MS-NLMP 3.1.5.1.2).
pub fn zero_mic(msg: &[u8]) -> Result<Vec<u8>> {
    if msg.len() < AUTHENTICATE_HEADER_WITH_MIC {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    let mut copy = msg.to_vec();
    copy[AUTHENTICATE_MIC_OFFSET..AUTHENTICATE_HEADER_WITH_MIC].fill(0);
    Ok(copy)
}

/// Whether the AUTHENTICATE message has room for a MIC before its payload.
pub fn has_mic_slot(auth: &Authenticate<'_>, msg: &[u8]) -> bool {
    msg.len() >= AUTHENTICATE_HEADER_WITH_MIC && auth.payload_start >= AUTHENTICATE_HEADER_WITH_MIC
}

/// MS-NLMP 3.1.5.1.2: MIC = HMAC_MD5(ExportedSessionKey, NEGOTIATE || CHALLENGE || AUTHENTICATE).
pub fn compute_mic(
    exported_session_key: &[u8; 16],
    negotiate: &[u8],
    challenge: &[u8],
    authenticate_zeroed: &[u8],
) -> [u8; 16] {
    hmac_md5(
        exported_session_key,
        &[negotiate, challenge, authenticate_zeroed],
    )
}

/// One direction's signing state with extended session security (MS-NLMP 3.4.4.2).
pub struct SigningKeys {
    pub sign_key: [u8; 16],
    pub seal_key: [u8; 16],
}

/// Which side's keys to derive.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Direction {
    ClientToServer,
    ServerToClient,
}

const CLIENT_SIGN_MAGIC: &[u8] = b"session key to client-to-server signing key magic constant\0";
const SERVER_SIGN_MAGIC: &[u8] = b"session key to server-to-client signing key magic constant\0";
const CLIENT_SEAL_MAGIC: &[u8] = b"session key to client-to-server sealing key magic constant\0";
const SERVER_SEAL_MAGIC: &[u8] = b"session key to server-to-client sealing key magic constant\0";

impl SigningKeys {
    /// MS-NLMP 3.4.5.2 SIGNKEY and 3.4.5.3 SEALKEY, extended session security.
    pub fn derive(exported_session_key: &[u8; 16], negotiated: u32, dir: Direction) -> Self {
        let (sign_magic, seal_magic) = match dir {
            Direction::ClientToServer => (CLIENT_SIGN_MAGIC, CLIENT_SEAL_MAGIC),
            Direction::ServerToClient => (SERVER_SIGN_MAGIC, SERVER_SEAL_MAGIC),
        };
        let seal_base: &[u8] = if negotiated & flags::NEGOTIATE_128 != 0 {
            exported_session_key
        } else if negotiated & flags::NEGOTIATE_56 != 0 {
            &exported_session_key[..7]
        } else {
            &exported_session_key[..5]
        };
        SigningKeys {
            sign_key: md5(&[exported_session_key, sign_magic]),
            seal_key: md5(&[seal_base, seal_magic]),
        }
    }

    /// MS-NLMP 3.4.4.2 MAC with extended session security, for the first message of a fresh
    /// RC4 handle (the SPNEGO mechListMIC is the only message NTLMSSP signs in SMB).
    pub fn sign(&self, seq_num: u32, message: &[u8], key_exch: bool) -> [u8; 16] {
        let digest = hmac_md5(&self.sign_key, &[&seq_num.to_le_bytes(), message]);
        let mut checksum = [0u8; 8];
        checksum.copy_from_slice(&digest[..8]);
        if key_exch {
            let mut cipher = Rc4::<U16>::new((&self.seal_key).into());
            cipher.apply_keystream(&mut checksum);
        }
        let mut sig = [0u8; 16];
        sig[..4].copy_from_slice(&1u32.to_le_bytes());
        sig[4..12].copy_from_slice(&checksum);
        sig[12..].copy_from_slice(&seq_num.to_le_bytes());
        sig
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    // MS-NLMP 4.2.1 common values and 4.2.4 NTLMv2 authentication examples.
    const SERVER_CHALLENGE: [u8; 8] = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];
    const CLIENT_CHALLENGE: [u8; 8] = [0xaa; 8];
    const RANDOM_SESSION_KEY: [u8; 16] = [0x55; 16];

    /// The `temp` of MS-NLMP 3.3.2 for the 4.2.4 example: header, time 0, client challenge,
    /// AV pairs NbDomainName "Domain", NbComputerName "Server", EOL, and four zero bytes.
    fn spec_temp() -> Vec<u8> {
        let mut t = vec![1, 1, 0, 0, 0, 0, 0, 0];
        t.put_u64(0);
        t.put_bytes(&CLIENT_CHALLENGE);
        t.put_u32(0);
        put_av(&mut t, av::NB_DOMAIN_NAME, &string_to_utf16le("Domain"));
        put_av(&mut t, av::NB_COMPUTER_NAME, &string_to_utf16le("Server"));
        put_av(&mut t, av::EOL, &[]);
        t.put_u32(0);
        t
    }

    #[test]
    fn ms_nlmp_4_2_4_ntlmv2_vectors() {
        let nt = nt_hash("Password");
        // MS-NLMP 4.2.2.1.2 NTOWFv1.
        assert_eq!(nt.to_vec(), hex("a4f49c406510bdcab6824ee7c30fd852"));
        let key = ntowf_v2(&nt, "User", "Domain");
        // 4.2.4.1.1 NTOWFv2.
        assert_eq!(key.to_vec(), hex("0c868a403bfd7a93a3001ef22ef02e3f"));
        let proof = nt_proof_str(&key, &SERVER_CHALLENGE, &spec_temp());
        // 4.2.4.2.2 NTLMv2 Response (NTProofStr).
        assert_eq!(proof.to_vec(), hex("68cd0ab851e51c96aabc927bebef6a1c"));
        let base = session_base_key(&key, &proof);
        // 4.2.4.1.2 Session Base Key.
        assert_eq!(base.to_vec(), hex("8de40ccadbc14a82f15cb0ad0de95ca3"));
        // 4.2.4.2.3 Encrypted Session Key; KeyExchangeKey = SessionBaseKey for NTLMv2.
        let enc = rc4_session_key(&base, &RANDOM_SESSION_KEY);
        assert_eq!(enc.to_vec(), hex("c5dad2544fc9799094ce1ce90bc9d03e"));
        assert_eq!(rc4_session_key(&base, &enc), RANDOM_SESSION_KEY);
    }

    #[test]
    fn ms_nlmp_4_2_4_4_sign_and_seal_keys() {
        // Flags 0xe28a8233 (4.2.4): 128-bit, KEY_EXCH, extended session security.
        let keys = SigningKeys::derive(&RANDOM_SESSION_KEY, 0xe28a_8233, Direction::ClientToServer);
        assert_eq!(
            keys.seal_key.to_vec(),
            hex("59f600973cc4960a25480a7c196e4c58")
        );
        assert_eq!(
            keys.sign_key.to_vec(),
            hex("4788dc861b4782f35d43fd98fe1a2d39")
        );
        // GSS_WrapEx: seal "Plaintext", then the RC4 handle continues over the checksum.
        let plaintext = string_to_utf16le("Plaintext");
        let mut cipher = Rc4::<U16>::new((&keys.seal_key).into());
        let mut sealed = plaintext.clone();
        cipher.apply_keystream(&mut sealed);
        assert_eq!(sealed, hex("54e50165bf1936dc996020c1811b0f06fb5f"));
        let digest = hmac_md5(&keys.sign_key, &[&0u32.to_le_bytes(), &plaintext]);
        assert_eq!(digest[..8].to_vec(), hex("70352851f2564309"));
        let mut checksum = [0u8; 8];
        checksum.copy_from_slice(&digest[..8]);
        cipher.apply_keystream(&mut checksum);
        assert_eq!(checksum.to_vec(), hex("7fb38ec5c55d4976"));
        // A signature alone (fresh handle) uses the same layout.
        let sig = keys.sign(0, &plaintext, false);
        assert_eq!(sig[..4], [1, 0, 0, 0]);
        assert_eq!(sig[4..12].to_vec(), hex("70352851f2564309"));
        assert_eq!(sig[12..], [0, 0, 0, 0]);
    }

    #[test]
    fn challenge_mirrors_client_flags() {
        let f = challenge_flags(flags::UNICODE | flags::SIGN | flags::NTLM);
        assert_ne!(f & flags::SIGN, 0);
        assert_eq!(
            f & (flags::SEAL | flags::KEY_EXCH | flags::REQUEST_TARGET),
            0
        );
        assert_ne!(f & flags::TARGET_INFO, 0);
        let f = challenge_flags(DEFAULT_CLIENT_FLAGS);
        assert_ne!(f & flags::TARGET_TYPE_SERVER, 0);
        assert_ne!(f & flags::KEY_EXCH, 0);
    }

    #[test]
    fn authenticate_fields_are_bounds_checked() {
        let mut msg = Vec::new();
        msg.put_bytes(SIGNATURE);
        msg.put_u32(MESSAGE_AUTHENTICATE);
        for _ in 0..6 {
            msg.put_u16(4);
            msg.put_u16(4);
            msg.put_u32(0xffff_fff0);
        }
        msg.put_u32(flags::UNICODE);
        assert_eq!(
            parse_authenticate(&msg).unwrap_err(),
            NtStatus::INVALID_PARAMETER
        );
    }
}
