//! Server-side authentication for SESSION_SETUP: SPNEGO (RFC 4178, MS-SPNG) carrying NTLMSSP
//! with NTLMv2 (MS-NLMP). Sans-IO: the caller supplies the server challenge, the clock and the
//! user database; this module only turns security buffers into answers.
//!
//! One [`ServerAuth`] lives for one SESSION_SETUP exchange. Typical flow:
//!
//! 1. NEGOTIATE response carries [`negotiate_token`].
//! 2. First SESSION_SETUP: `step()` returns [`AuthStep::Continue`] with the CHALLENGE.
//! 3. Second SESSION_SETUP: `step()` returns [`AuthStep::Complete`] (or `Failed`).

pub mod der;
pub mod ntlmssp;
pub mod spnego;

use crate::limits::MAX_SECURITY_BUFFER_BYTES;
use crate::status::NtStatus;
use ntlmssp::{flags, Direction, SigningKeys};
use spnego::{ClientToken, NegState, OID_NTLMSSP};

/// SPNEGO NegTokenInit2 for the NEGOTIATE response security buffer: NTLMSSP as the only
/// mechanism, with the conventional negHints principal (MS-SPNG 3.2.5.2).
pub fn negotiate_token() -> Vec<u8> {
    spnego::server_init_token()
}

/// The user database as authentication sees it.
pub trait UserLookup {
    /// The NT hash of `user`, matched case-insensitively, or `None` for an unknown user.
    fn nt_hash(&self, user: &str) -> Option<[u8; 16]>;
}

/// MD4(UTF-16LE(password)), the NT one-way function (MS-NLMP 3.3.1).
pub fn nt_hash(password: &str) -> [u8; 16] {
    ntlmssp::nt_hash(password)
}

/// Server identity reported in the CHALLENGE target info.
#[derive(Clone, Debug)]
pub struct ServerAuthOptions {
    pub netbios_name: String,
    pub dns_name: String,
    pub allow_anonymous: bool,
}

/// Who authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthIdentity {
    User { user: String, domain: String },
    Anonymous,
}

/// The outcome of one SESSION_SETUP round.
#[derive(Debug)]
pub enum AuthStep {
    /// Send `token` with STATUS_MORE_PROCESSING_REQUIRED.
    Continue { token: Vec<u8> },
    /// Send `token` with STATUS_SUCCESS; `session_key` is the NTLMSSP ExportedSessionKey.
    Complete {
        token: Vec<u8>,
        identity: AuthIdentity,
        session_key: [u8; 16],
    },
    /// Fail the SESSION_SETUP with `status`; `reason` is for the log only.
    Failed { status: NtStatus, reason: String },
}

/// How the client wrapped its tokens; replies use the same wrapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wrapping {
    Spnego,
    RawNtlmssp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Initial,
    ChallengeSent,
    Finished,
}

/// One SESSION_SETUP authentication exchange, server side.
pub struct ServerAuth {
    opts: ServerAuthOptions,
    server_challenge: [u8; 8],
    now_filetime: u64,
    phase: Phase,
    wrapping: Wrapping,
    /// The NEGOTIATE message as received (empty when SPNEGO chose NTLMSSP without one).
    negotiate_msg: Vec<u8>,
    challenge_msg: Vec<u8>,
    /// The client's DER MechTypeList, input of the SPNEGO mechListMIC.
    mech_types_der: Vec<u8>,
    /// RFC 4178 5: NTLMSSP was not the client's first choice, so the MIC exchange is required.
    mech_list_mic_required: bool,
}

/// A failure with a reason for the log.
struct Failure {
    status: NtStatus,
    reason: String,
}

impl Failure {
    fn new(status: NtStatus, reason: impl Into<String>) -> Self {
        Failure {
            status,
            reason: reason.into(),
        }
    }
    fn logon(reason: impl Into<String>) -> Self {
        Failure::new(NtStatus::LOGON_FAILURE, reason)
    }
    fn malformed(what: &str, status: NtStatus) -> Self {
        Failure::new(status, format!("malformed {what}"))
    }
}

/// A successful NTLMSSP AUTHENTICATE.
struct Verified {
    identity: AuthIdentity,
    session_key: [u8; 16],
    /// Flags from the AUTHENTICATE message: what the client finally negotiated.
    negotiated: u32,
    /// The client sent a MIC over the three NTLMSSP messages (MsvAvFlags 0x2).
    had_mic: bool,
}

impl ServerAuth {
    /// `challenge`: 8 random bytes from the caller; `now_filetime`: current time as a Windows
    /// FILETIME (100 ns units since 1601), placed in the CHALLENGE target info.
    pub fn new(opts: ServerAuthOptions, challenge: [u8; 8], now_filetime: u64) -> ServerAuth {
        ServerAuth {
            opts,
            server_challenge: challenge,
            now_filetime,
            phase: Phase::Initial,
            wrapping: Wrapping::Spnego,
            negotiate_msg: Vec::new(),
            challenge_msg: Vec::new(),
            mech_types_der: Vec::new(),
            mech_list_mic_required: false,
        }
    }

    /// Feeds one SESSION_SETUP security buffer. Accepts SPNEGO NegTokenInit (with an NTLMSSP
    /// NEGOTIATE, or without a usable mechToken), SPNEGO NegTokenResp carrying AUTHENTICATE,
    /// and bare NTLMSSP messages; answers in the wrapping the client used.
    pub fn step(&mut self, security_buffer: &[u8], users: &dyn UserLookup) -> AuthStep {
        let result = self.step_inner(security_buffer, users);
        match result {
            Ok(step) => step,
            Err(f) => {
                self.phase = Phase::Finished;
                AuthStep::Failed {
                    status: f.status,
                    reason: f.reason,
                }
            }
        }
    }

    fn step_inner(&mut self, buf: &[u8], users: &dyn UserLookup) -> Result<AuthStep, Failure> {
        if buf.len() > MAX_SECURITY_BUFFER_BYTES {
            return Err(Failure::new(
                NtStatus::INVALID_PARAMETER,
                "security buffer too large",
            ));
        }
        if buf.starts_with(ntlmssp::SIGNATURE) {
            return self.step_raw(buf, users);
        }
        let token =
            spnego::parse_client_token(buf).map_err(|s| Failure::malformed("SPNEGO token", s))?;
        match (self.phase, token) {
            (Phase::Initial, ClientToken::Init(init)) => self.on_neg_token_init(init),
            (Phase::ChallengeSent, ClientToken::Resp(resp))
                if self.wrapping == Wrapping::Spnego =>
            {
                self.on_neg_token_resp(resp, users)
            }
            (Phase::Finished, _) => Err(Failure::new(
                NtStatus::INVALID_PARAMETER,
                "authentication exchange already finished",
            )),
            _ => Err(Failure::new(
                NtStatus::INVALID_PARAMETER,
                "unexpected SPNEGO token for this stage",
            )),
        }
    }

    /// NTLMSSP without SPNEGO (some clients and tools send it bare).
    fn step_raw(&mut self, msg: &[u8], users: &dyn UserLookup) -> Result<AuthStep, Failure> {
        match self.phase {
            Phase::Initial => {
                self.wrapping = Wrapping::RawNtlmssp;
                let challenge = self.on_negotiate(Some(msg))?;
                Ok(AuthStep::Continue { token: challenge })
            }
            Phase::ChallengeSent if self.wrapping == Wrapping::RawNtlmssp => {
                let v = self.on_authenticate(msg, users)?;
                self.phase = Phase::Finished;
                Ok(AuthStep::Complete {
                    token: Vec::new(),
                    identity: v.identity,
                    session_key: v.session_key,
                })
            }
            _ => Err(Failure::new(
                NtStatus::INVALID_PARAMETER,
                "unexpected NTLMSSP message for this stage",
            )),
        }
    }

    fn on_neg_token_init(&mut self, init: spnego::NegTokenInit<'_>) -> Result<AuthStep, Failure> {
        let Some(position) = init.mech_types.iter().position(|m| *m == OID_NTLMSSP) else {
            return Err(Failure::new(
                NtStatus::NOT_SUPPORTED,
                "client offers no mechanism the server supports (NTLMSSP)",
            ));
        };
        self.wrapping = Wrapping::Spnego;
        self.mech_types_der = init.mech_types_der.to_vec();
        // RFC 4178 3.2: the optimistic mechToken belongs to the client's first mechanism.
        let negotiate = match init.mech_token {
            Some(t) if position == 0 && !t.is_empty() => Some(t),
            _ => None,
        };
        self.mech_list_mic_required = position != 0;
        let challenge = self.on_negotiate(negotiate)?;
        // RFC 4178 5: when the chosen mechanism is not the client's first, ask for the MIC.
        let state = if self.mech_list_mic_required {
            NegState::RequestMic
        } else {
            NegState::AcceptIncomplete
        };
        let token = spnego::encode_neg_token_resp(state, Some(OID_NTLMSSP), Some(&challenge), None);
        Ok(AuthStep::Continue { token })
    }

    /// NEGOTIATE -> CHALLENGE. Without a NEGOTIATE (SPNEGO picked NTLMSSP on its own) the
    /// server answers as if the client had asked for the usual modern flags.
    fn on_negotiate(&mut self, negotiate: Option<&[u8]>) -> Result<Vec<u8>, Failure> {
        let client_flags = match negotiate {
            Some(msg) => {
                ntlmssp::parse_negotiate(msg)
                    .map_err(|s| Failure::malformed("NTLMSSP NEGOTIATE", s))?
                    .flags
            }
            None => ntlmssp::DEFAULT_CLIENT_FLAGS,
        };
        self.negotiate_msg = negotiate.map(<[u8]>::to_vec).unwrap_or_default();
        let params = ntlmssp::ChallengeParams {
            flags: ntlmssp::challenge_flags(client_flags),
            server_challenge: self.server_challenge,
            netbios_name: &self.opts.netbios_name,
            dns_name: &self.opts.dns_name,
            now_filetime: self.now_filetime,
        };
        self.challenge_msg = ntlmssp::build_challenge(&params);
        self.phase = Phase::ChallengeSent;
        Ok(self.challenge_msg.clone())
    }

    fn on_neg_token_resp(
        &mut self,
        resp: spnego::NegTokenResp<'_>,
        users: &dyn UserLookup,
    ) -> Result<AuthStep, Failure> {
        if resp.neg_state == Some(NegState::Reject as u8) {
            return Err(Failure::logon("client rejected the negotiation"));
        }
        let auth = resp.response_token.ok_or_else(|| {
            Failure::new(
                NtStatus::INVALID_PARAMETER,
                "NegTokenResp without responseToken",
            )
        })?;
        let v = self.on_authenticate(auth, users)?;
        let server_mic = self.check_mech_list_mic(&v, resp.mech_list_mic)?;
        self.phase = Phase::Finished;
        let token = spnego::encode_neg_token_resp(
            NegState::AcceptCompleted,
            None,
            None,
            server_mic.as_ref().map(|m| &m[..]),
        );
        Ok(AuthStep::Complete {
            token,
            identity: v.identity,
            session_key: v.session_key,
        })
    }

    /// RFC 4178 5 / MS-SPNG 3.3.5.1: verify the client's mechListMIC over its MechTypeList and
    /// produce the server's. Required when NTLMSSP was not the client's first mechanism or the
    /// NTLMSSP exchange itself was MIC-protected; otherwise optional.
    fn check_mech_list_mic(
        &self,
        v: &Verified,
        client_mic: Option<&[u8]>,
    ) -> Result<Option<[u8; 16]>, Failure> {
        let Some(client_mic) = client_mic else {
            if self.mech_list_mic_required || v.had_mic {
                return Err(Failure::logon(
                    "client omitted the required SPNEGO mechListMIC",
                ));
            }
            return Ok(None);
        };
        if v.negotiated & flags::EXTENDED_SESSIONSECURITY == 0 {
            return Err(Failure::logon(
                "mechListMIC without NTLMSSP extended session security is not supported",
            ));
        }
        let key_exch = v.negotiated & flags::KEY_EXCH != 0;
        let client_keys =
            SigningKeys::derive(&v.session_key, v.negotiated, Direction::ClientToServer);
        let expected = client_keys.sign(0, &self.mech_types_der, key_exch);
        if !ntlmssp::constant_time_eq(&expected, client_mic) {
            return Err(Failure::logon("SPNEGO mechListMIC mismatch"));
        }
        let server_keys =
            SigningKeys::derive(&v.session_key, v.negotiated, Direction::ServerToClient);
        Ok(Some(server_keys.sign(0, &self.mech_types_der, key_exch)))
    }

    /// AUTHENTICATE: MS-NLMP 3.2.5.1.2 with NTLMv2 only.
    fn on_authenticate(&self, msg: &[u8], users: &dyn UserLookup) -> Result<Verified, Failure> {
        let auth = ntlmssp::parse_authenticate(msg)
            .map_err(|s| Failure::malformed("NTLMSSP AUTHENTICATE", s))?;
        if is_anonymous(&auth) {
            return self.anonymous(&auth);
        }
        let nt = auth.nt_response;
        if nt.is_empty() {
            return Err(Failure::logon(format!(
                "LM-only response from {:?} refused",
                auth.user
            )));
        }
        if nt.len() == ntlmssp::NTLMV1_RESPONSE_LEN {
            return Err(Failure::logon(format!(
                "NTLMv1 response from {:?} refused",
                auth.user
            )));
        }
        if nt.len() < ntlmssp::NTLMV2_RESPONSE_MIN {
            return Err(Failure::malformed(
                "NTLMv2 response",
                NtStatus::INVALID_PARAMETER,
            ));
        }
        // The NTLMv2 client challenge is parsed before any password check: a malformed one is
        // INVALID_PARAMETER whoever sends it, as Windows and Samba answer (Samba bug 14932,
        // smbtorture smb2.session.ntlmssp_bug14932).
        let av_flags =
            ntlmssp::client_av_flags(nt).map_err(|s| Failure::malformed("NTLMv2 AV pairs", s))?;
        let Some(hash) = users.nt_hash(&auth.user) else {
            return Err(Failure::logon(format!("unknown user {:?}", auth.user)));
        };
        let (proof, blob) = nt.split_at(16);
        // MS-NLMP 3.3.2: the client keys the response with the user and domain it sends.
        let key = ntlmssp::ntowf_v2(&hash, &auth.user, &auth.domain);
        let expected = ntlmssp::nt_proof_str(&key, &self.server_challenge, blob);
        if !ntlmssp::constant_time_eq(&expected, proof) {
            return Err(Failure::logon(format!(
                "wrong password for {:?} (domain {:?})",
                auth.user, auth.domain
            )));
        }
        let base = ntlmssp::session_base_key(&key, &expected);
        let session_key = exported_session_key(&auth, &base)?;
        let had_mic = av_flags & ntlmssp::av::FLAG_MIC_PRESENT != 0;
        if had_mic {
            self.verify_mic(&auth, msg, &session_key)?;
        }
        Ok(Verified {
            identity: AuthIdentity::User {
                user: auth.user,
                domain: auth.domain,
            },
            session_key,
            negotiated: auth.flags,
            had_mic,
        })
    }

    fn anonymous(&self, auth: &ntlmssp::Authenticate<'_>) -> Result<Verified, Failure> {
        if !self.opts.allow_anonymous {
            return Err(Failure::logon("anonymous logon refused"));
        }
        // MS-NLMP 3.2.5.1.2: anonymous has a zero SessionBaseKey. Anonymous sessions are not
        // signed, so a missing or odd-sized EncryptedRandomSessionKey is not an error here.
        let session_key = exported_session_key(auth, &[0; 16]).unwrap_or([0; 16]);
        Ok(Verified {
            identity: AuthIdentity::Anonymous,
            session_key,
            negotiated: auth.flags,
            had_mic: false,
        })
    }

    /// MS-NLMP 3.2.5.1.2: the MIC covers all three messages with the MIC field zeroed.
    fn verify_mic(
        &self,
        auth: &ntlmssp::Authenticate<'_>,
        msg: &[u8],
        session_key: &[u8; 16],
    ) -> Result<(), Failure> {
        if !ntlmssp::has_mic_slot(auth, msg) {
            return Err(Failure::malformed(
                "AUTHENTICATE (MIC flagged but absent)",
                NtStatus::INVALID_PARAMETER,
            ));
        }
        let mic = &msg[ntlmssp::AUTHENTICATE_MIC_OFFSET..ntlmssp::AUTHENTICATE_MIC_OFFSET + 16];
        let zeroed = ntlmssp::zero_mic(msg).map_err(|s| Failure::malformed("AUTHENTICATE", s))?;
        let expected = ntlmssp::compute_mic(
            session_key,
            &self.negotiate_msg,
            &self.challenge_msg,
            &zeroed,
        );
        if !ntlmssp::constant_time_eq(&expected, mic) {
            return Err(Failure::logon(format!(
                "NTLMSSP MIC mismatch for {:?}",
                auth.user
            )));
        }
        Ok(())
    }
}

/// MS-NLMP 3.2.5.1.2: anonymous is an empty user with an empty NT response and an empty or
/// one-zero-byte LM response.
fn is_anonymous(auth: &ntlmssp::Authenticate<'_>) -> bool {
    auth.user.is_empty()
        && auth.nt_response.is_empty()
        && (auth.lm_response.is_empty() || auth.lm_response == [0])
}

/// KeyExchangeKey = SessionBaseKey for NTLMv2; with KEY_EXCH the client's random key,
/// decrypted with it, becomes the ExportedSessionKey (MS-NLMP 3.2.5.1.2).
fn exported_session_key(
    auth: &ntlmssp::Authenticate<'_>,
    key_exchange_key: &[u8; 16],
) -> Result<[u8; 16], Failure> {
    if auth.flags & flags::KEY_EXCH == 0 {
        return Ok(*key_exchange_key);
    }
    let encrypted: &[u8; 16] = auth.encrypted_session_key.try_into().map_err(|_| {
        Failure::malformed(
            "EncryptedRandomSessionKey (must be 16 bytes)",
            NtStatus::INVALID_PARAMETER,
        )
    })?;
    Ok(ntlmssp::rc4_session_key(key_exchange_key, encrypted))
}

#[cfg(test)]
mod tests;
