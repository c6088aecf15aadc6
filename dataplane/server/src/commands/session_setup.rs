//! SESSION_SETUP (MS-SMB2 3.3.5.5): authentication through SPNEGO/NTLMSSP, key derivation, and
//! re-authentication of an existing session. LOGOFF lives in [`super::logoff`].

use std::collections::HashMap;
use std::sync::Arc;

use smb3d_protocol::auth::{AuthIdentity, AuthStep, ServerAuth, ServerAuthOptions};
use smb3d_protocol::crypto::{derive_session_keys, Encryptor, PreauthHash, Signer};
use smb3d_protocol::dialect::{Dialect, SigningAlgorithm};
use smb3d_protocol::limits::MAX_CHANNELS_PER_SESSION;
use smb3d_protocol::messages::negotiate::security_mode;
use smb3d_protocol::messages::session_setup::{self, session_flags, SessionSetupRequest};
use smb3d_protocol::NtStatus;
use tracing::{info, warn};

use super::negotiate::ConnectionInfo;
use crate::server::ServerState;
use crate::session::{Identity, Session, SessionSecurity};
use crate::share::Requirement;

/// Authentications in progress on one connection, at most.
const MAX_PENDING_AUTH: usize = 16;
/// Sessions one connection may have established at once (each new one is refused with
/// INSUFFICIENT_RESOURCES beyond this; logging one off makes room).
pub const MAX_SESSIONS_PER_CONNECTION: usize = 1024;

/// A SESSION_SETUP exchange in progress.
pub struct PendingAuth {
    pub auth: ServerAuth,
    /// The session's preauth hash (3.1.1), to be extended with each response sent.
    pub preauth: PreauthHash,
    /// Set for re-authentication of an established session, or for binding a new channel.
    pub existing: Option<Arc<Session>>,
    /// This exchange binds the connection to `existing` as a new channel (MS-SMB2 3.3.5.5.2).
    pub binding: bool,
}

/// A session usable on this connection, with this channel's signing key.
pub struct Channel {
    pub session: Arc<Session>,
    pub signer: Option<Arc<Signer>>,
}

pub struct SessionSetupCtx<'a> {
    /// This connection, as the session's channel list records it.
    pub conn: crate::mailbox::ConnHandle,
    pub server: &'a ServerState,
    pub info: &'a ConnectionInfo,
    pub pending: &'a mut HashMap<u64, PendingAuth>,
    pub channels: &'a mut HashMap<u64, Channel>,
    /// Fresh random values from the caller (sans-IO).
    pub challenge: [u8; 8],
    pub nonce_salt: u32,
    pub now_filetime: u64,
}

pub struct SessionSetupOutcome {
    pub status: NtStatus,
    pub session_id: u64,
    pub body: Vec<u8>,
    /// Sign the response with this key (the final response of 3.x sessions, MS-SMB2 3.3.5.5.3).
    pub sign_with: Option<Arc<Signer>>,
}

pub fn handle(
    msg: &[u8],
    header_session_id: u64,
    ctx: &mut SessionSetupCtx,
) -> Result<SessionSetupOutcome, NtStatus> {
    let req = SessionSetupRequest::decode(msg)?;
    let dialect = ctx.info.dialect.ok_or(NtStatus::INVALID_PARAMETER)?;
    let binding = req.flags & session_setup::FLAG_BINDING != 0;
    let session_id = if binding && !ctx.pending.contains_key(&header_session_id) {
        let session = check_bind(msg, header_session_id, dialect, ctx).inspect_err(|status| {
            warn!(session_id = header_session_id, %status, "session bind refused");
        })?;
        if ctx.pending.len() >= MAX_PENDING_AUTH {
            return Err(NtStatus::INSUFFICIENT_RESOURCES);
        }
        let mut pending = new_pending(ctx, Some(session));
        pending.binding = true;
        ctx.pending.insert(header_session_id, pending);
        header_session_id
    } else if header_session_id == 0 {
        if ctx.pending.len() >= MAX_PENDING_AUTH
            || ctx.channels.len() >= MAX_SESSIONS_PER_CONNECTION
        {
            return Err(NtStatus::INSUFFICIENT_RESOURCES);
        }
        let id = ctx.server.sessions.allocate_id();
        ctx.pending.insert(id, new_pending(ctx, None));
        id
    } else if !ctx.pending.contains_key(&header_session_id) {
        // Re-authentication of an established session (MS-SMB2 3.3.5.5.2).
        let existing = ctx
            .channels
            .get(&header_session_id)
            .map(|c| c.session.clone());
        let Some(existing) = existing else {
            return Err(NtStatus::USER_SESSION_DELETED);
        };
        let pending = new_pending(ctx, Some(existing));
        ctx.pending.insert(header_session_id, pending);
        header_session_id
    } else {
        header_session_id
    };

    let pending = ctx
        .pending
        .get_mut(&session_id)
        .ok_or(NtStatus::USER_SESSION_DELETED)?;
    if dialect == Dialect::Smb311 {
        pending.preauth.update(msg);
    }
    let step = pending
        .auth
        .step(req.security_buffer, ctx.server.users.as_ref());
    match step {
        AuthStep::Continue { token } => {
            // MS-SMB2 3.3.5.5.3: while binding, interim responses are signed with the
            // session's own signing key (the channel has none yet).
            let sign_with = pending
                .existing
                .as_ref()
                .filter(|_| pending.binding)
                .and_then(|s| session_signer(s));
            let mut body = Vec::new();
            session_setup::encode_response(0, &token, &mut body);
            Ok(SessionSetupOutcome {
                status: NtStatus::MORE_PROCESSING_REQUIRED,
                session_id,
                body,
                sign_with,
            })
        }
        AuthStep::Failed { status, reason } => {
            let pending = ctx.pending.remove(&session_id);
            warn!(session_id, %status, %reason, "authentication failed");
            // A failed re-authentication ends the session on every channel, with its opens, as
            // a LOGOFF would (MS-SMB2 3.3.5.5.3); a failed bind leaves the session as it was.
            // The channel stays in this connection's map until its next request, which is then
            // answered USER_SESSION_DELETED signed with the channel's key.
            if let Some(PendingAuth {
                existing: Some(s),
                binding: false,
                ..
            }) = pending
            {
                s.mark_logged_off();
                s.detach_connection(ctx.conn);
                for (open, share) in super::logoff::logoff(&s, ctx.server) {
                    super::close::close_open(ctx.server, &share, &open);
                }
            }
            Err(status)
        }
        AuthStep::Complete {
            token,
            identity,
            session_key,
        } => {
            let pending = ctx
                .pending
                .remove(&session_id)
                .ok_or(NtStatus::INTERNAL_ERROR)?;
            let identity = match identity {
                AuthIdentity::User { user, domain } => Identity::User { user, domain },
                AuthIdentity::Anonymous => Identity::Anonymous,
            };
            complete(
                ctx,
                &req,
                dialect,
                session_id,
                pending,
                identity,
                &session_key,
                token,
            )
        }
    }
}

fn new_pending(ctx: &SessionSetupCtx, existing: Option<Arc<Session>>) -> PendingAuth {
    let opts = ServerAuthOptions {
        netbios_name: ctx.server.config.netbios_name.clone(),
        dns_name: ctx.server.config.netbios_name.to_lowercase(),
        allow_anonymous: ctx.server.config.allow_anonymous,
    };
    PendingAuth {
        auth: ServerAuth::new(opts, ctx.challenge, ctx.now_filetime),
        preauth: PreauthHash(ctx.info.preauth.0),
        existing,
        binding: false,
    }
}

/// A signer over Session.SigningKey with the session's algorithm (MS-SMB2 3.3.1.8): channels of
/// a session sign as the session does, whatever their own connection negotiated.
pub fn session_signer(session: &Session) -> Option<Arc<Signer>> {
    let sec = session.security.get()?;
    Some(Arc::new(Signer::new(
        sec.signing_algorithm,
        &sec.signing_key,
    )))
}

/// The checks MS-SMB2 3.3.5.5.2 makes before a binding SESSION_SETUP is authenticated, with the
/// statuses Windows and Samba return (smbtorture smb2.session.bind_negative_*).
fn check_bind(
    msg: &[u8],
    session_id: u64,
    dialect: Dialect,
    ctx: &SessionSetupCtx,
) -> Result<Arc<Session>, NtStatus> {
    if !ctx.server.config.multichannel {
        return Err(NtStatus::REQUEST_NOT_ACCEPTED);
    }
    let Some(session) = ctx.server.sessions.get(session_id) else {
        return Err(if dialect.is_smb3() {
            NtStatus::USER_SESSION_DELETED
        } else {
            NtStatus::REQUEST_NOT_ACCEPTED
        });
    };
    if session.is_logged_off() {
        return Err(NtStatus::USER_SESSION_DELETED);
    }
    let sec = session
        .security
        .get()
        .ok_or(NtStatus::USER_SESSION_DELETED)?;
    let signed = msg
        .get(16..20)
        .is_some_and(|f| f[0] & smb3d_protocol::header::flags::SIGNED as u8 != 0);
    if let Some(channel) = ctx.channels.get(&session_id) {
        // Already a channel of this connection: the request is checked with the channel's key.
        let ok = signed && channel.signer.as_ref().is_some_and(|s| s.verify(msg));
        return Err(if ok {
            NtStatus::REQUEST_NOT_ACCEPTED
        } else {
            NtStatus::ACCESS_DENIED
        });
    }
    // AES-GMAC on one side only: refused before anything else, with the statuses Windows uses
    // (smbtorture smb2.session.bind_negative_smb3sign*: GtoX out of sequence, XtoG not supported).
    let conn_alg = ctx.info.signing_algorithm;
    if sec.signing_algorithm == SigningAlgorithm::AesGmac && conn_alg != SigningAlgorithm::AesGmac {
        return Err(NtStatus::REQUEST_OUT_OF_SEQUENCE);
    }
    if conn_alg == SigningAlgorithm::AesGmac && sec.signing_algorithm != SigningAlgorithm::AesGmac {
        return Err(NtStatus::NOT_SUPPORTED);
    }
    // MS-SMB2 3.3.5.5.2: multichannel needs 3.x on this connection, in the session's dialect
    // and with its cipher. HMAC-SHA256 and AES-CMAC may differ: the channel signs with the
    // session's algorithm.
    if !dialect.is_smb3() {
        return Err(NtStatus::REQUEST_NOT_ACCEPTED);
    }
    if sec.dialect != dialect || (dialect == Dialect::Smb311 && sec.cipher != ctx.info.cipher) {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    if !signed {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    // MS-SMB2 3.3.5.5.2: verify the binding request with Session.SigningKey.
    if !session_signer(&session).is_some_and(|s| s.verify(msg)) {
        return Err(NtStatus::ACCESS_DENIED);
    }
    if session.is_anonymous() {
        return Err(NtStatus::NOT_SUPPORTED);
    }
    if session.channel_count() >= MAX_CHANNELS_PER_SESSION {
        return Err(NtStatus::INSUFFICIENT_RESOURCES);
    }
    Ok(session)
}

#[allow(clippy::too_many_arguments)]
fn complete(
    ctx: &mut SessionSetupCtx,
    req: &SessionSetupRequest,
    dialect: Dialect,
    session_id: u64,
    pending: PendingAuth,
    identity: Identity,
    session_key: &[u8; 16],
    token: Vec<u8>,
) -> Result<SessionSetupOutcome, NtStatus> {
    let anonymous = identity == Identity::Anonymous;
    let mut flags = if anonymous { session_flags::IS_NULL } else { 0 };

    if pending.binding {
        let session = pending.existing.ok_or(NtStatus::INTERNAL_ERROR)?;
        return complete_bind(
            ctx,
            dialect,
            session,
            &pending.preauth,
            identity,
            session_key,
            token,
        );
    }
    if let Some(existing) = pending.existing {
        // Re-authentication keeps the keys; only the identity is refreshed.
        *existing.identity.lock().unwrap() = identity;
        let signer = ctx.channels.get(&session_id).and_then(|c| c.signer.clone());
        if existing.encrypt_data() {
            flags |= session_flags::ENCRYPT_DATA;
        }
        let mut body = Vec::new();
        session_setup::encode_response(flags, &token, &mut body);
        return Ok(SessionSetupOutcome {
            status: NtStatus::SUCCESS,
            session_id,
            body,
            sign_with: signer,
        });
    }

    let config = &ctx.server.config;
    let cipher = ctx.info.cipher;
    let encrypt_data = config.encrypt == Requirement::Required && !anonymous;
    if encrypt_data && (cipher.is_none() || !dialect.is_smb3()) {
        warn!(
            session_id,
            ?dialect,
            "encryption is required but the client cannot encrypt"
        );
        return Err(NtStatus::ACCESS_DENIED);
    }
    let client_requires_signing = req.security_mode as u16 & security_mode::SIGNING_REQUIRED != 0
        || ctx.info.client_security_mode & security_mode::SIGNING_REQUIRED != 0;
    let signing_required =
        !anonymous && (config.signing == Requirement::Required || client_requires_signing);

    let (signing_key, encryptor, decryptor, signing_algorithm) = if dialect.is_smb3() {
        let preauth = (dialect == Dialect::Smb311).then_some(&pending.preauth);
        let keys = derive_session_keys(dialect, cipher, session_key, preauth);
        let (enc, dec) = match cipher {
            Some(c) => (
                Some(Encryptor::new(c, &keys.encryption)),
                Some(Encryptor::new(c, &keys.decryption)),
            ),
            None => (None, None),
        };
        (keys.signing, enc, dec, ctx.info.signing_algorithm)
    } else {
        (
            session_key.to_vec(),
            None,
            None,
            SigningAlgorithm::HmacSha256,
        )
    };
    let signer = Arc::new(Signer::new(signing_algorithm, &signing_key));
    let session = Arc::new(Session::new(session_id, identity.clone()));
    let security = SessionSecurity::new(
        dialect,
        signing_algorithm,
        signing_key,
        signing_required,
        encrypt_data,
        cipher,
        encryptor,
        decryptor,
        ctx.nonce_salt,
    );
    let _ = session.security.set(security);
    ctx.server.sessions.insert(session.clone());
    session.attach_connection(ctx.conn);
    ctx.channels.insert(
        session_id,
        Channel {
            session,
            signer: (!anonymous).then(|| signer.clone()),
        },
    );
    if encrypt_data {
        flags |= session_flags::ENCRYPT_DATA;
    }
    info!(
        session_id,
        ?identity,
        ?dialect,
        ?cipher,
        ?signing_algorithm,
        signing_required,
        encrypt_data,
        "session established"
    );
    if req.previous_session_id != 0 && req.previous_session_id != session_id {
        end_previous_session_anywhere(ctx.server, req.previous_session_id, &identity);
    }
    let mut body = Vec::new();
    session_setup::encode_response(flags, &token, &mut body);
    // MS-SMB2 3.3.5.5.3: 3.x signs the final response; 2.x signs when signing is in force.
    let sign = !anonymous && (dialect.is_smb3() || signing_required);
    Ok(SessionSetupOutcome {
        status: NtStatus::SUCCESS,
        session_id,
        body,
        sign_with: sign.then_some(signer),
    })
}

/// A new channel of `session` on this connection, with its own signing key (MS-SMB2 3.3.5.5.3).
fn complete_bind(
    ctx: &mut SessionSetupCtx,
    dialect: Dialect,
    session: Arc<Session>,
    preauth: &PreauthHash,
    identity: Identity,
    session_key: &[u8; 16],
    token: Vec<u8>,
) -> Result<SessionSetupOutcome, NtStatus> {
    let session_id = session.id;
    if *session.identity.lock().unwrap() != identity {
        warn!(session_id, ?identity, "bind as a different user refused");
        return Err(NtStatus::ACCESS_DENIED);
    }
    let sec = session
        .security
        .get()
        .ok_or(NtStatus::USER_SESSION_DELETED)?;
    if !session.add_channel(MAX_CHANNELS_PER_SESSION) {
        return Err(NtStatus::INSUFFICIENT_RESOURCES);
    }
    // 3.0/3.0.2: KDF(bind session key, "SMB2AESCMAC", "SmbSign"); 3.1.1: KDF(bind session key,
    // "SMBSigningKey", this connection's preauth hash of NEGOTIATE and this SESSION_SETUP).
    let preauth = (dialect == Dialect::Smb311).then_some(preauth);
    let keys = derive_session_keys(dialect, sec.cipher, session_key, preauth);
    let signer = Arc::new(Signer::new(ctx.info.signing_algorithm, &keys.signing));
    let mut flags = 0;
    if sec.encrypt_data {
        flags |= session_flags::ENCRYPT_DATA;
    }
    session.attach_connection(ctx.conn);
    ctx.channels.insert(
        session_id,
        Channel {
            session: session.clone(),
            signer: Some(signer.clone()),
        },
    );
    info!(
        session_id,
        channels = session.channel_count(),
        "channel bound"
    );
    let mut body = Vec::new();
    session_setup::encode_response(flags, &token, &mut body);
    Ok(SessionSetupOutcome {
        status: NtStatus::SUCCESS,
        session_id,
        body,
        sign_with: Some(signer),
    })
}

/// End the previous session a reconnect names, in whichever worker process owns it. Another
/// worker is told over its inbox and ends it on its own (asynchronously: the reconnect's
/// response does not wait for it). The connection stays: its new session belongs with its
/// client, in this worker.
fn end_previous_session_anywhere(server: &ServerState, previous_id: u64, identity: &Identity) {
    let elsewhere = server
        .handoff
        .as_ref()
        .and_then(|h| h.other_session_owner(previous_id).map(|owner| (h, owner)));
    let Some((handoff, owner)) = elsewhere else {
        end_previous_session(server, previous_id, identity);
        return;
    };
    let Identity::User { user, domain } = identity else {
        return;
    };
    if let Err(e) = handoff.end_session(owner, previous_id, user, domain) {
        warn!(previous_id, owner, error = %e, "cannot ask the owning worker to end the previous session");
    }
}

/// MS-SMB2 3.3.5.5.3: a client reconnecting names its previous session; if the same user owns
/// it, that session ends now (with its opens) instead of lingering until its connection times out.
pub fn end_previous_session(server: &ServerState, previous_id: u64, identity: &Identity) {
    let Some(previous) = server.sessions.get(previous_id) else {
        return;
    };
    if *previous.identity.lock().unwrap() != *identity || *identity == Identity::Anonymous {
        return;
    }
    info!(previous_id, "previous session ended by reconnect");
    previous.mark_logged_off();
    for (open, share) in super::logoff::logoff(&previous, server) {
        super::close::close_open(server, &share, &open);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smb3d_protocol::header::HEADER_BYTES;

    fn request_msg() -> Vec<u8> {
        let mut msg = vec![0u8; HEADER_BYTES];
        msg.extend_from_slice(&25u16.to_le_bytes());
        msg.extend_from_slice(&[0; 22]); // no security buffer
        msg
    }

    #[test]
    fn new_sessions_per_connection_are_bounded() {
        let server = ServerState::new(
            crate::server::ServerConfig::default(),
            Vec::new(),
            Arc::new(crate::server::NoUsers),
            [1; 16],
        );
        let info = ConnectionInfo {
            dialect: Some(Dialect::Smb311),
            ..ConnectionInfo::default()
        };
        let mut pending = HashMap::new();
        let mut channels: HashMap<u64, Channel> = (1..=MAX_SESSIONS_PER_CONNECTION as u64)
            .map(|id| {
                let session = Arc::new(Session::new(id, Identity::Anonymous));
                (
                    id,
                    Channel {
                        session,
                        signer: None,
                    },
                )
            })
            .collect();
        let mut ctx = SessionSetupCtx {
            conn: crate::mailbox::ConnHandle {
                reactor: 0,
                slot: 0,
                gen: 1,
            },
            server: &server,
            info: &info,
            pending: &mut pending,
            channels: &mut channels,
            challenge: [0; 8],
            nonce_salt: 0,
            now_filetime: 0,
        };
        let msg = request_msg();
        assert_eq!(
            handle(&msg, 0, &mut ctx).err(),
            Some(NtStatus::INSUFFICIENT_RESOURCES)
        );
        assert!(ctx.pending.is_empty());
        // With room, the same request gets to authentication (which refuses its empty token).
        ctx.channels.remove(&1);
        let status = match handle(&msg, 0, &mut ctx) {
            Ok(outcome) => outcome.status,
            Err(s) => s,
        };
        assert_ne!(status, NtStatus::INSUFFICIENT_RESOURCES);
    }
}
