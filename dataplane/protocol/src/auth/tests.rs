//! Round trips with the test playing the client: it builds NEGOTIATE and AUTHENTICATE from a
//! known password (MS-NLMP 3.1.5), wraps them in SPNEGO and checks the server's answers.

use super::ntlmssp::{self, av, flags, Direction, SigningKeys};
use super::spnego::{self, ClientToken, NegState, OID_NTLMSSP};
use super::*;
use crate::wire::{string_to_utf16le, Reader, Writer};

const KRB5_OID: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02];
const CHALLENGE: [u8; 8] = [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88];
const NOW_FILETIME: u64 = 133_500_000_000_000_000;
const RANDOM_SESSION_KEY: [u8; 16] = [0x42; 16];

struct Users(Vec<(&'static str, [u8; 16])>);

impl UserLookup for Users {
    fn nt_hash(&self, user: &str) -> Option<[u8; 16]> {
        self.0
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(user))
            .map(|(_, h)| *h)
    }
}

fn users() -> Users {
    Users(vec![
        ("alice", nt_hash("correct horse")),
        ("bob", nt_hash("x")),
    ])
}

fn server(allow_anonymous: bool) -> ServerAuth {
    let opts = ServerAuthOptions {
        netbios_name: "FILER".into(),
        dns_name: "filer.example".into(),
        allow_anonymous,
    };
    ServerAuth::new(opts, CHALLENGE, NOW_FILETIME)
}

/// What the test client does; defaults are a modern Windows/Samba client.
#[derive(Clone)]
struct Client {
    user: &'static str,
    domain: &'static str,
    password: &'static str,
    flags: u32,
    /// Send MsvAvFlags 0x2 and a MIC in AUTHENTICATE.
    ntlm_mic: bool,
    /// Send an NTLMv1-sized (24-byte) NT response instead of NTLMv2.
    ntlmv1: bool,
    anonymous: bool,
    /// Put an AV pair claiming more bytes than the blob holds into the NTLMv2 response.
    overlong_av_pair: bool,
}

impl Default for Client {
    fn default() -> Self {
        Client {
            user: "Alice",
            domain: "WORKGROUP",
            password: "correct horse",
            flags: ntlmssp::DEFAULT_CLIENT_FLAGS,
            ntlm_mic: true,
            ntlmv1: false,
            anonymous: false,
            overlong_av_pair: false,
        }
    }
}

struct ClientResult {
    authenticate: Vec<u8>,
    exported_session_key: [u8; 16],
    negotiated: u32,
}

fn negotiate_message(client_flags: u32) -> Vec<u8> {
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

impl Client {
    /// MS-NLMP 3.1.5.1.2: the AUTHENTICATE answer to `challenge`.
    fn authenticate(&self, negotiate: &[u8], challenge: &[u8]) -> ClientResult {
        let mut r = Reader::at(challenge, 20).unwrap();
        let negotiated = r.u32().unwrap();
        let server_challenge: [u8; 8] = r.array().unwrap();
        let mut r = Reader::at(challenge, 40).unwrap();
        let info_len = usize::from(r.u16().unwrap());
        r.u16().unwrap();
        let info_off = r.u32().unwrap() as usize;
        let server_info = &challenge[info_off..info_off + info_len];
        assert!(server_info.ends_with(&[0, 0, 0, 0]));

        let hash = nt_hash(self.password);
        let key = ntlmssp::ntowf_v2(&hash, self.user, self.domain);
        let mut temp = vec![1, 1, 0, 0, 0, 0, 0, 0];
        temp.put_u64(NOW_FILETIME + 10);
        temp.put_bytes(&[0xaa; 8]);
        temp.put_u32(0);
        temp.put_bytes(&server_info[..server_info.len() - 4]);
        if self.overlong_av_pair {
            temp.put_u16(0xa211);
            temp.put_u16(0x8108);
        }
        if self.ntlm_mic {
            temp.put_u16(av::FLAGS);
            temp.put_u16(4);
            temp.put_u32(av::FLAG_MIC_PRESENT);
        }
        temp.put_bytes(&[0, 0, 0, 0]); // EOL
        temp.put_u32(0);
        let proof = ntlmssp::nt_proof_str(&key, &server_challenge, &temp);
        let base = ntlmssp::session_base_key(&key, &proof);
        let (mut nt_response, lm_response) = if self.ntlmv1 {
            (vec![0x5a; 24], vec![0x5a; 24])
        } else {
            ([&proof[..], &temp].concat(), vec![0; 24])
        };
        let (user, domain) = if self.anonymous {
            nt_response.clear();
            ("", "")
        } else {
            (self.user, self.domain)
        };
        let key_exch = negotiated & flags::KEY_EXCH != 0;
        let (exported, encrypted) = if key_exch {
            let enc = ntlmssp::rc4_session_key(&base, &RANDOM_SESSION_KEY);
            (RANDOM_SESSION_KEY, enc.to_vec())
        } else {
            (base, Vec::new())
        };
        let lm_response = if self.anonymous { vec![0] } else { lm_response };

        const BASE: usize = 88;
        let mut h = Vec::new();
        let mut p = Vec::new();
        h.put_bytes(ntlmssp::SIGNATURE);
        h.put_u32(ntlmssp::MESSAGE_AUTHENTICATE);
        put_field(&mut h, &mut p, BASE, &lm_response);
        put_field(&mut h, &mut p, BASE, &nt_response);
        put_field(&mut h, &mut p, BASE, &string_to_utf16le(domain));
        put_field(&mut h, &mut p, BASE, &string_to_utf16le(user));
        put_field(&mut h, &mut p, BASE, &string_to_utf16le("CLIENT1"));
        put_field(&mut h, &mut p, BASE, &encrypted);
        h.put_u32(negotiated);
        h.put_bytes(&[10, 0, 0x61, 0x4a, 0, 0, 0, 15]);
        h.put_zeros(16);
        assert_eq!(h.len(), BASE);
        let mut msg = [h, p].concat();
        if self.ntlm_mic {
            let mic = ntlmssp::compute_mic(&exported, negotiate, challenge, &msg);
            msg[72..88].copy_from_slice(&mic);
        }
        ClientResult {
            authenticate: msg,
            exported_session_key: exported,
            negotiated,
        }
    }
}

fn client_mech_list_mic(result: &ClientResult, mech_types: &[&[u8]]) -> [u8; 16] {
    let keys = SigningKeys::derive(
        &result.exported_session_key,
        result.negotiated,
        Direction::ClientToServer,
    );
    let key_exch = result.negotiated & flags::KEY_EXCH != 0;
    keys.sign(0, &spnego::encode_mech_type_list(mech_types), key_exch)
}

fn expect_continue(step: AuthStep) -> Vec<u8> {
    match step {
        AuthStep::Continue { token } => token,
        other => panic!("expected Continue, got {other:?}"),
    }
}

fn expect_failed(step: AuthStep, status: NtStatus) {
    match step {
        AuthStep::Failed { status: s, reason } => assert_eq!(s, status, "{reason}"),
        other => panic!("expected Failed({status:?}), got {other:?}"),
    }
}

fn parse_resp(token: &[u8]) -> spnego::NegTokenResp<'_> {
    match spnego::parse_client_token(token).unwrap() {
        ClientToken::Resp(r) => r,
        ClientToken::Init(_) => panic!("server sent a NegTokenInit"),
    }
}

/// Runs SPNEGO NegTokenInit(NEGOTIATE) and returns (server, NEGOTIATE, CHALLENGE).
fn spnego_first_leg(client: &Client, allow_anonymous: bool) -> (ServerAuth, Vec<u8>, Vec<u8>) {
    let mut s = server(allow_anonymous);
    let negotiate = negotiate_message(client.flags);
    let init = spnego::encode_neg_token_init(&[OID_NTLMSSP], Some(&negotiate));
    let token = expect_continue(s.step(&init, &users()));
    let resp = parse_resp(&token);
    assert_eq!(resp.neg_state, Some(NegState::AcceptIncomplete as u8));
    assert_eq!(resp.supported_mech, Some(OID_NTLMSSP));
    let challenge = resp.response_token.unwrap().to_vec();
    (s, negotiate, challenge)
}

fn final_token(result: &ClientResult, mic: Option<&[u8]>) -> Vec<u8> {
    spnego::encode_neg_token_resp(
        NegState::AcceptIncomplete,
        None,
        Some(&result.authenticate),
        mic,
    )
}

#[test]
fn spnego_round_trip_with_mics() {
    let client = Client::default();
    let (mut s, negotiate, challenge) = spnego_first_leg(&client, false);
    assert_eq!(&challenge[24..32], &CHALLENGE);
    let result = client.authenticate(&negotiate, &challenge);
    let mic = client_mech_list_mic(&result, &[OID_NTLMSSP]);
    match s.step(&final_token(&result, Some(&mic)), &users()) {
        AuthStep::Complete {
            token,
            identity,
            session_key,
        } => {
            assert_eq!(
                identity,
                AuthIdentity::User {
                    user: "Alice".into(),
                    domain: "WORKGROUP".into()
                }
            );
            assert_eq!(session_key, RANDOM_SESSION_KEY);
            let resp = parse_resp(&token);
            assert_eq!(resp.neg_state, Some(NegState::AcceptCompleted as u8));
            let server_keys =
                SigningKeys::derive(&session_key, result.negotiated, Direction::ServerToClient);
            let expected =
                server_keys.sign(0, &spnego::encode_mech_type_list(&[OID_NTLMSSP]), true);
            assert_eq!(resp.mech_list_mic, Some(&expected[..]));
        }
        other => panic!("expected Complete, got {other:?}"),
    }
    // The exchange is over; anything more is refused.
    expect_failed(
        s.step(&final_token(&result, Some(&mic)), &users()),
        NtStatus::INVALID_PARAMETER,
    );
}

#[test]
fn challenge_carries_target_info() {
    let (_, _, challenge) = spnego_first_leg(&Client::default(), false);
    let f = u32::from_le_bytes(challenge[20..24].try_into().unwrap());
    for want in [
        flags::UNICODE,
        flags::REQUEST_TARGET,
        flags::NTLM,
        flags::ALWAYS_SIGN,
        flags::EXTENDED_SESSIONSECURITY,
        flags::TARGET_INFO,
        flags::VERSION,
        flags::NEGOTIATE_128,
        flags::NEGOTIATE_56,
        flags::KEY_EXCH,
        flags::SIGN,
        flags::SEAL,
        flags::TARGET_TYPE_SERVER,
    ] {
        assert_ne!(f & want, 0, "flag {want:#x} missing");
    }
    let name = string_to_utf16le("FILER");
    let dns = string_to_utf16le("filer.example");
    assert!(challenge.windows(name.len()).any(|w| w == name));
    assert!(challenge.windows(dns.len()).any(|w| w == dns));
    let mut ts = vec![7, 0, 8, 0];
    ts.extend_from_slice(&NOW_FILETIME.to_le_bytes());
    assert!(challenge.windows(ts.len()).any(|w| w == ts));
}

#[test]
fn raw_ntlmssp_round_trip_without_key_exchange() {
    let client = Client {
        flags: ntlmssp::DEFAULT_CLIENT_FLAGS & !flags::KEY_EXCH,
        ntlm_mic: false,
        ..Client::default()
    };
    let mut s = server(false);
    let negotiate = negotiate_message(client.flags);
    let challenge = expect_continue(s.step(&negotiate, &users()));
    assert_eq!(ntlmssp::message_type(&challenge).unwrap(), 2);
    let result = client.authenticate(&negotiate, &challenge);
    match s.step(&result.authenticate, &users()) {
        AuthStep::Complete {
            token,
            identity,
            session_key,
        } => {
            assert!(token.is_empty());
            assert!(matches!(identity, AuthIdentity::User { .. }));
            // Without KEY_EXCH the exported key is the session base key.
            assert_eq!(session_key, result.exported_session_key);
            assert_ne!(session_key, RANDOM_SESSION_KEY);
        }
        other => panic!("expected Complete, got {other:?}"),
    }
}

#[test]
fn wrong_password_and_unknown_user_fail() {
    for client in [
        Client {
            password: "wrong",
            ..Client::default()
        },
        Client {
            user: "mallory",
            ..Client::default()
        },
        // The proof is keyed with the domain sent; a different one must not match.
        Client {
            domain: "",
            ntlm_mic: false,
            ..Client::default()
        },
    ] {
        let (mut s, negotiate, challenge) = spnego_first_leg(&client, true);
        let mut result = client.authenticate(&negotiate, &challenge);
        if client.domain.is_empty() {
            // Claim a domain other than the one the response was computed with.
            let good = Client::default().authenticate(&negotiate, &challenge);
            result.authenticate = swap_domain(&good.authenticate, &result.authenticate);
        }
        let mic = client_mech_list_mic(&result, &[OID_NTLMSSP]);
        expect_failed(
            s.step(&final_token(&result, Some(&mic)), &users()),
            NtStatus::LOGON_FAILURE,
        );
    }
}

/// `with_domain`'s domain field placed into `msg` (both built by the test client, so the
/// domain is the third field and the payload layout is known).
fn swap_domain(with_domain: &[u8], msg: &[u8]) -> Vec<u8> {
    // Rebuild: take msg and append the other message's domain bytes at its end.
    let len = u16::from_le_bytes([with_domain[28], with_domain[29]]);
    let off = u32::from_le_bytes(with_domain[32..36].try_into().unwrap()) as usize;
    let domain = &with_domain[off..off + usize::from(len)];
    let mut out = msg.to_vec();
    let new_off = out.len() as u32;
    out.extend_from_slice(domain);
    out[28..30].copy_from_slice(&len.to_le_bytes());
    out[30..32].copy_from_slice(&len.to_le_bytes());
    out[32..36].copy_from_slice(&new_off.to_le_bytes());
    out
}

#[test]
fn malformed_ntlmv2_client_challenge_is_invalid_parameter() {
    // smbtorture smb2.session.ntlmssp_bug14932: a broken AV pair list is INVALID_PARAMETER,
    // checked before (and whatever the result of) the password check.
    for password in ["correct horse", "wrong"] {
        let client = Client {
            password,
            overlong_av_pair: true,
            ntlm_mic: false,
            ..Client::default()
        };
        let (mut s, negotiate, challenge) = spnego_first_leg(&client, true);
        let result = client.authenticate(&negotiate, &challenge);
        expect_failed(
            s.step(&final_token(&result, None), &users()),
            NtStatus::INVALID_PARAMETER,
        );
    }
}

#[test]
fn ntlmv1_is_refused() {
    let client = Client {
        ntlmv1: true,
        ntlm_mic: false,
        ..Client::default()
    };
    let (mut s, negotiate, challenge) = spnego_first_leg(&client, true);
    let result = client.authenticate(&negotiate, &challenge);
    expect_failed(
        s.step(&final_token(&result, None), &users()),
        NtStatus::LOGON_FAILURE,
    );
}

#[test]
fn anonymous_follows_the_option() {
    let client = Client {
        anonymous: true,
        ntlm_mic: false,
        ..Client::default()
    };
    for allow in [true, false] {
        let (mut s, negotiate, challenge) = spnego_first_leg(&client, allow);
        let result = client.authenticate(&negotiate, &challenge);
        let step = s.step(&final_token(&result, None), &users());
        if allow {
            match step {
                AuthStep::Complete { identity, .. } => {
                    assert_eq!(identity, AuthIdentity::Anonymous)
                }
                other => panic!("expected Complete, got {other:?}"),
            }
        } else {
            expect_failed(step, NtStatus::LOGON_FAILURE);
        }
    }
}

#[test]
fn ntlm_mic_is_verified() {
    let client = Client::default();
    let (mut s, negotiate, challenge) = spnego_first_leg(&client, false);
    let mut result = client.authenticate(&negotiate, &challenge);
    result.authenticate[80] ^= 1;
    let mic = client_mech_list_mic(&result, &[OID_NTLMSSP]);
    expect_failed(
        s.step(&final_token(&result, Some(&mic)), &users()),
        NtStatus::LOGON_FAILURE,
    );
}

#[test]
fn mech_list_mic_is_verified_and_required_after_ntlm_mic() {
    let client = Client::default();
    // Wrong mechListMIC.
    let (mut s, negotiate, challenge) = spnego_first_leg(&client, false);
    let result = client.authenticate(&negotiate, &challenge);
    let mut mic = client_mech_list_mic(&result, &[OID_NTLMSSP]);
    mic[5] ^= 0x80;
    expect_failed(
        s.step(&final_token(&result, Some(&mic)), &users()),
        NtStatus::LOGON_FAILURE,
    );
    // Missing although the NTLMSSP exchange carried a MIC.
    let (mut s, negotiate, challenge) = spnego_first_leg(&client, false);
    let result = client.authenticate(&negotiate, &challenge);
    expect_failed(
        s.step(&final_token(&result, None), &users()),
        NtStatus::LOGON_FAILURE,
    );
}

#[test]
fn mech_list_mic_optional_for_simple_clients() {
    // Like a client that neither signs SPNEGO nor sets MsvAvFlags (e.g. a kernel client).
    let client = Client {
        flags: ntlmssp::DEFAULT_CLIENT_FLAGS & !(flags::SIGN | flags::SEAL),
        ntlm_mic: false,
        ..Client::default()
    };
    let (mut s, negotiate, challenge) = spnego_first_leg(&client, false);
    let result = client.authenticate(&negotiate, &challenge);
    match s.step(&final_token(&result, None), &users()) {
        AuthStep::Complete {
            token, session_key, ..
        } => {
            assert_eq!(session_key, RANDOM_SESSION_KEY);
            assert!(parse_resp(&token).mech_list_mic.is_none());
        }
        other => panic!("expected Complete, got {other:?}"),
    }
}

#[test]
fn ntlmssp_chosen_without_optimistic_token() {
    // Kerberos preferred (token for it, or none at all): the server picks NTLMSSP, answers
    // with a CHALLENGE straight away and requires the mechListMIC.
    let mechs: &[&[u8]] = &[KRB5_OID, OID_NTLMSSP];
    for optimistic in [None, Some(&b"kerberos AP-REQ"[..])] {
        let mut s = server(false);
        let init = spnego::encode_neg_token_init(mechs, optimistic);
        let token = expect_continue(s.step(&init, &users()));
        let resp = parse_resp(&token);
        assert_eq!(resp.neg_state, Some(NegState::RequestMic as u8));
        assert_eq!(resp.supported_mech, Some(OID_NTLMSSP));
        let challenge = resp.response_token.unwrap().to_vec();
        let client = Client::default();
        // No NEGOTIATE was sent, so the NTLMSSP MIC covers CHALLENGE || AUTHENTICATE.
        let result = client.authenticate(&[], &challenge);
        expect_failed(
            server_after_challenge(mechs, optimistic).step(&final_token(&result, None), &users()),
            NtStatus::LOGON_FAILURE,
        );
        let mic = client_mech_list_mic(&result, mechs);
        match s.step(&final_token(&result, Some(&mic)), &users()) {
            AuthStep::Complete { session_key, .. } => assert_eq!(session_key, RANDOM_SESSION_KEY),
            other => panic!("expected Complete, got {other:?}"),
        }
    }
}

fn server_after_challenge(mechs: &[&[u8]], optimistic: Option<&[u8]>) -> ServerAuth {
    let mut s = server(false);
    expect_continue(s.step(&spnego::encode_neg_token_init(mechs, optimistic), &users()));
    s
}

#[test]
fn no_ntlmssp_offered_is_not_supported() {
    let mut s = server(false);
    let init = spnego::encode_neg_token_init(&[KRB5_OID], Some(b"ticket"));
    expect_failed(s.step(&init, &users()), NtStatus::NOT_SUPPORTED);
}

#[test]
fn wrapping_and_stage_mismatches_fail() {
    // AUTHENTICATE before any NEGOTIATE.
    let mut s = server(false);
    let resp = spnego::encode_neg_token_resp(NegState::AcceptIncomplete, None, Some(b"x"), None);
    expect_failed(s.step(&resp, &users()), NtStatus::INVALID_PARAMETER);
    // Raw NEGOTIATE, then a SPNEGO answer.
    let mut s = server(false);
    expect_continue(s.step(&negotiate_message(ntlmssp::DEFAULT_CLIENT_FLAGS), &users()));
    expect_failed(s.step(&resp, &users()), NtStatus::INVALID_PARAMETER);
    // Too large.
    let mut s = server(false);
    let huge = vec![0u8; crate::limits::MAX_SECURITY_BUFFER_BYTES + 1];
    expect_failed(s.step(&huge, &users()), NtStatus::INVALID_PARAMETER);
}

#[test]
fn truncated_and_corrupted_tokens_never_pass() {
    let client = Client::default();
    let negotiate = negotiate_message(client.flags);
    let init = spnego::encode_neg_token_init(&[OID_NTLMSSP], Some(&negotiate));
    for n in 0..init.len() {
        let mut s = server(true);
        assert!(matches!(
            s.step(&init[..n], &users()),
            AuthStep::Failed { .. }
        ));
    }
    for n in 0..negotiate.len() {
        let mut s = server(true);
        // A NEGOTIATE needs at least signature, type and flags.
        if n < 16 {
            assert!(matches!(
                s.step(&negotiate[..n], &users()),
                AuthStep::Failed { .. }
            ));
        } else {
            let _ = s.step(&negotiate[..n], &users());
        }
    }

    // The server's challenge depends only on its inputs, so a fresh server per attempt
    // sees the same exchange.
    let (_, negotiate, challenge) = spnego_first_leg(&client, true);
    let result = client.authenticate(&negotiate, &challenge);
    let mic = client_mech_list_mic(&result, &[OID_NTLMSSP]);
    let good = final_token(&result, Some(&mic));
    for n in 0..good.len() {
        let (mut s, _, _) = spnego_first_leg(&client, true);
        assert!(matches!(
            s.step(&good[..n], &users()),
            AuthStep::Failed { .. }
        ));
    }
    for n in 0..result.authenticate.len() {
        let cut = final_token(
            &ClientResult {
                authenticate: result.authenticate[..n].to_vec(),
                ..result
            },
            Some(&mic),
        );
        let (mut s, _, _) = spnego_first_leg(&client, true);
        assert!(matches!(s.step(&cut, &users()), AuthStep::Failed { .. }));
    }
    // Every byte of the AUTHENTICATE is covered by the NTLMv2 proof or the MIC.
    for i in 0..result.authenticate.len() {
        let mut bad = result.authenticate.clone();
        bad[i] ^= 0x01;
        let tok = final_token(
            &ClientResult {
                authenticate: bad,
                ..result
            },
            Some(&mic),
        );
        let (mut s, _, _) = spnego_first_leg(&client, true);
        assert!(
            matches!(s.step(&tok, &users()), AuthStep::Failed { .. }),
            "flipping byte {i} still authenticated"
        );
    }
    // Pseudo-random garbage, raw and SPNEGO-framed.
    let mut x: u32 = 0x1234_5678;
    for len in 0..300 {
        let garbage: Vec<u8> = (0..len)
            .map(|_| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (x >> 24) as u8
            })
            .collect();
        let mut s = server(true);
        let _ = s.step(&garbage, &users());
        let (mut s, _, _) = spnego_first_leg(&client, true);
        let _ = s.step(&garbage, &users());
        let mut raw = ntlmssp::SIGNATURE.to_vec();
        raw.extend_from_slice(&3u32.to_le_bytes());
        raw.extend_from_slice(&garbage);
        let mut s = server(false);
        let _ = s.step(&negotiate, &users());
        assert!(matches!(s.step(&raw, &users()), AuthStep::Failed { .. }));
    }
}
