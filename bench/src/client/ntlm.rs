//! Client side of NTLMv2 inside SPNEGO (MS-NLMP 3.1.5, MS-SPNG): the NEGOTIATE token for the first
//! SESSION_SETUP, and the AUTHENTICATE token computed from the server's CHALLENGE. Built on the
//! protocol crate's NTLM primitives (NTOWFv2, NTProofStr, RC4 key exchange) and DER helpers.

use smb3d_protocol::auth::der;
use smb3d_protocol::auth::ntlmssp::{self, flags};
use smb3d_protocol::auth::spnego::{self, ClientToken, OID_NTLMSSP};
use smb3d_protocol::wire::{slice_at, string_to_utf16le, Reader, Writer};
use smb3d_protocol::NtStatus;

/// Flags this client asks for (MS-NLMP 2.2.2.5).
const CLIENT_FLAGS: u32 = flags::UNICODE
    | flags::REQUEST_TARGET
    | flags::SIGN
    | flags::NTLM
    | flags::ALWAYS_SIGN
    | flags::EXTENDED_SESSIONSECURITY
    | flags::VERSION
    | flags::NEGOTIATE_128
    | flags::KEY_EXCH
    | flags::NEGOTIATE_56;

/// VERSION field the client sends (MS-NLMP 2.2.2.10): 6.1, NTLM revision 15.
const CLIENT_VERSION: [u8; 8] = [6, 1, 0, 0, 0, 0, 0, 0x0f];

/// The credentials of one login.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub user: String,
    pub domain: String,
    pub password: String,
}

/// One NTLM exchange from the client's side.
pub struct NtlmClient {
    negotiate_msg: Vec<u8>,
}

impl Default for NtlmClient {
    fn default() -> Self {
        Self::new()
    }
}

impl NtlmClient {
    pub fn new() -> NtlmClient {
        let mut m = Vec::with_capacity(40);
        m.put_bytes(ntlmssp::SIGNATURE);
        m.put_u32(ntlmssp::MESSAGE_NEGOTIATE);
        m.put_u32(CLIENT_FLAGS);
        m.put_zeros(16); // DomainNameFields, WorkstationFields: none
        m.put_bytes(&CLIENT_VERSION);
        NtlmClient { negotiate_msg: m }
    }

    /// SPNEGO NegTokenInit offering NTLMSSP with the NEGOTIATE message as optimistic token.
    pub fn first_token(&self) -> Vec<u8> {
        spnego::encode_neg_token_init(&[OID_NTLMSSP], Some(&self.negotiate_msg))
    }

    /// From the server's SPNEGO reply carrying the CHALLENGE: the SPNEGO token with the
    /// AUTHENTICATE message, and the exported session key.
    pub fn second_token(
        &self,
        server_token: &[u8],
        creds: &Credentials,
        client_challenge: [u8; 8],
        random_session_key: [u8; 16],
        now_filetime: u64,
    ) -> Result<(Vec<u8>, [u8; 16]), NtStatus> {
        let challenge = match spnego::parse_client_token(server_token)? {
            ClientToken::Resp(r) => r.response_token.ok_or(NtStatus::LOGON_FAILURE)?,
            ClientToken::Init(_) => return Err(NtStatus::INVALID_PARAMETER),
        };
        let auth = authenticate(
            challenge,
            creds,
            client_challenge,
            random_session_key,
            now_filetime,
        )?;
        // NegTokenResp [1] { responseToken [2] OCTET STRING }
        let field = der::encode(
            der::context(2),
            &der::encode(der::TAG_OCTET_STRING, &auth.0),
        );
        let token = der::encode(der::context(1), &der::encode(der::TAG_SEQUENCE, &field));
        Ok((token, auth.1))
    }
}

/// The parts of a CHALLENGE message (MS-NLMP 2.2.1.2) the client needs.
struct Challenge<'a> {
    flags: u32,
    server_challenge: [u8; 8],
    target_info: &'a [u8],
}

fn parse_challenge(msg: &[u8]) -> Result<Challenge<'_>, NtStatus> {
    if ntlmssp::message_type(msg)? != ntlmssp::MESSAGE_CHALLENGE {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    let mut r = Reader::at(msg, 20)?;
    let flags = r.u32()?;
    let server_challenge = r.array()?;
    let mut t = Reader::at(msg, 40)?;
    let len = t.u16()? as usize;
    t.skip(2)?;
    let offset = t.u32()? as usize;
    let target_info = if len == 0 {
        &[][..]
    } else {
        slice_at(msg, offset, len)?
    };
    Ok(Challenge {
        flags,
        server_challenge,
        target_info,
    })
}

/// MsvAvTimestamp from the server's target info, if present (MS-NLMP 2.2.2.1).
fn av_timestamp(target_info: &[u8]) -> Option<u64> {
    let mut r = Reader::new(target_info);
    for _ in 0..64 {
        let id = r.u16().ok()?;
        let len = r.u16().ok()? as usize;
        let value = r.bytes(len).ok()?;
        if id == ntlmssp::av::EOL {
            return None;
        }
        if id == ntlmssp::av::TIMESTAMP && len == 8 {
            return Some(u64::from_le_bytes(value.try_into().ok()?));
        }
    }
    None
}

/// AUTHENTICATE message (MS-NLMP 2.2.1.3, 3.1.5.1.2) with an NTLMv2 response, and the exported
/// session key.
fn authenticate(
    challenge_msg: &[u8],
    creds: &Credentials,
    client_challenge: [u8; 8],
    random_session_key: [u8; 16],
    now_filetime: u64,
) -> Result<(Vec<u8>, [u8; 16]), NtStatus> {
    let ch = parse_challenge(challenge_msg)?;
    let negotiated = ch.flags & CLIENT_FLAGS | flags::UNICODE;
    let timestamp = av_timestamp(ch.target_info);
    // MS-NLMP 3.3.2: temp = Responserversion, HiResponserversion, Z(6), Time, ClientChallenge,
    // Z(4), ServerName (the AV pairs), Z(4).
    let mut temp = vec![1u8, 1, 0, 0, 0, 0, 0, 0];
    temp.put_u64(timestamp.unwrap_or(now_filetime));
    temp.put_bytes(&client_challenge);
    temp.put_zeros(4);
    temp.put_bytes(ch.target_info);
    temp.put_zeros(4);
    let nt_hash = ntlmssp::nt_hash(&creds.password);
    let key = ntlmssp::ntowf_v2(&nt_hash, &creds.user, &creds.domain);
    let proof = ntlmssp::nt_proof_str(&key, &ch.server_challenge, &temp);
    let mut nt_response = proof.to_vec();
    nt_response.extend_from_slice(&temp);
    // With MsvAvTimestamp the LM response is Z(24); otherwise LMv2 (MS-NLMP 3.3.2).
    let lm_response = if timestamp.is_some() {
        vec![0u8; 24]
    } else {
        let mut lm = ntlmssp::hmac_md5(&key, &[&ch.server_challenge, &client_challenge]).to_vec();
        lm.extend_from_slice(&client_challenge);
        lm
    };
    let key_exchange_key = ntlmssp::session_base_key(&key, &proof);
    let (exported, encrypted_key) = if negotiated & flags::KEY_EXCH != 0 {
        let enc = ntlmssp::rc4_session_key(&key_exchange_key, &random_session_key);
        (random_session_key, enc.to_vec())
    } else {
        (key_exchange_key, Vec::new())
    };
    let domain = string_to_utf16le(&creds.domain);
    let user = string_to_utf16le(&creds.user);
    let workstation = string_to_utf16le("SMB3BENCH");
    let payloads: [&[u8]; 6] = [
        &lm_response,
        &nt_response,
        &domain,
        &user,
        &workstation,
        &encrypted_key,
    ];
    const HEADER_BYTES: usize = 72;
    let mut m = Vec::new();
    m.put_bytes(ntlmssp::SIGNATURE);
    m.put_u32(ntlmssp::MESSAGE_AUTHENTICATE);
    let mut offset = HEADER_BYTES;
    for p in payloads {
        m.put_u16(p.len() as u16);
        m.put_u16(p.len() as u16);
        m.put_u32(offset as u32);
        offset += p.len();
    }
    m.put_u32(negotiated);
    m.put_bytes(&CLIENT_VERSION);
    for p in payloads {
        m.put_bytes(p);
    }
    Ok((m, exported))
}

#[cfg(test)]
mod tests {
    use super::*;
    use smb3d_protocol::auth::{AuthStep, ServerAuth, ServerAuthOptions, UserLookup};

    struct OneUser;
    impl UserLookup for OneUser {
        fn nt_hash(&self, user: &str) -> Option<[u8; 16]> {
            user.eq_ignore_ascii_case("alice")
                .then(|| ntlmssp::nt_hash("Secret-1"))
        }
    }

    fn login(password: &str) -> (AuthStep, [u8; 16]) {
        let opts = ServerAuthOptions {
            netbios_name: "SRV".into(),
            dns_name: "srv".into(),
            allow_anonymous: false,
        };
        let mut server = ServerAuth::new(opts, [1, 2, 3, 4, 5, 6, 7, 8], 133_000_000_000_000_000);
        let client = NtlmClient::new();
        let AuthStep::Continue { token } = server.step(&client.first_token(), &OneUser) else {
            panic!("no challenge");
        };
        let creds = Credentials {
            user: "alice".into(),
            domain: "".into(),
            password: password.into(),
        };
        let (auth, exported) = client
            .second_token(&token, &creds, [9; 8], [0x42; 16], 133_000_000_000_000_000)
            .unwrap();
        (server.step(&auth, &OneUser), exported)
    }

    #[test]
    fn client_logs_in_to_the_server_side_and_keys_match() {
        let (step, exported) = login("Secret-1");
        match step {
            AuthStep::Complete { session_key, .. } => {
                assert_eq!(session_key, exported);
                assert_eq!(exported, [0x42; 16]);
            }
            _ => panic!("login failed"),
        }
    }

    #[test]
    fn wrong_password_is_refused() {
        let (step, _) = login("wrong");
        assert!(matches!(step, AuthStep::Failed { .. }));
    }

    #[test]
    fn garbage_challenge_is_an_error() {
        let client = NtlmClient::new();
        let creds = Credentials {
            user: "a".into(),
            domain: "".into(),
            password: "b".into(),
        };
        for token in [
            &b""[..],
            &[0xa1, 0x03, 0x30, 0x01, 0x00][..],
            &[0x60; 40][..],
        ] {
            assert!(client
                .second_token(token, &creds, [0; 8], [0; 16], 0)
                .is_err());
        }
    }
}
