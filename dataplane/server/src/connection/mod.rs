//! One client connection: the SMB2 protocol state machine between the reactor's bytes and the
//! command handlers.
//!
//! The reactor hands in whole PDUs (the 4-byte transport header already removed) and sends the
//! frames that come out. In between: SMB1 negotiate probe, decryption (TRANSFORM), compound
//! split (MS-SMB2 3.3.5.2.7), credit and message-id checks (3.3.5.2.3), session and tree lookup
//! (3.3.5.2.9, 3.3.5.2.11), signature verification (3.3.5.2.4), dispatch, and the response path:
//! header, credits granted, compound padding, signing, encryption (3.3.4.1).

mod credits;
mod file_io;
mod frame;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;

use smb3d_protocol::header::{self, flags, Command, Header, HEADER_BYTES, TRANSFORM_PROTOCOL_ID};
use smb3d_protocol::limits::MAX_COMPOUND_REQUESTS;
use smb3d_protocol::messages::ioctl::ctl_code;
use smb3d_protocol::messages::{self, echo, error, session_setup};
use smb3d_protocol::transform::TransformHeader;
use smb3d_protocol::NtStatus;
use tracing::{debug, info, warn};

use crate::commands::negotiate::ConnectionInfo;
use crate::commands::session_setup::{Channel, PendingAuth, SessionSetupCtx};
use crate::commands::{self, ioctl::IoctlOutcome, Reply, Request, TreeCtx};
use crate::handoff::record::ConnectionRecord;
use crate::handoff::AdoptedState;
use crate::mailbox::ConnHandle;
use crate::open::{FileId, Open};
use crate::server::ServerState;
use crate::session::Session;
use crate::tree::Tree;
use credits::CreditWindow;
use file_io::Protection;
pub use file_io::{FileIo, PendingRead, PendingWrite};
pub use frame::recycle as recycle_frame;
use frame::FrameBuilder;

/// Requests one connection may have waiting asynchronously (blocked locks).
const MAX_ASYNC_WAITS: usize = 256;
/// Bytes of request chains one connection may hold parked: a parked request keeps a copy of its
/// chain (up to a whole 8 MiB PDU), so 256 waits alone could pin 2 GiB.
const MAX_PARKED_BYTES: usize = 32 * 1024 * 1024;

/// Why a connection must be closed; logged by the reactor.
#[derive(Debug)]
pub struct Disconnect(pub String);

/// Fresh randomness and time, supplied by the reactor so the state machine stays testable.
pub trait Environment {
    fn now_filetime(&self) -> u64;
    fn random_bytes(&mut self, out: &mut [u8]);
}

/// A request parked until the state blocking it changes (MS-SMB2 3.3.4.2).
///
/// A request that goes async parks the rest of its compound chain with it: when it completes,
/// the requests after it run (MS-SMB2 3.3.4.2 lets any request of a chain go async).
struct AsyncWait {
    async_id: u64,
    message_id: u64,
    session_id: u64,
    /// The session whose key decrypted the request, if it came encrypted.
    encrypted_session: Option<u64>,
    /// The parked request's header.
    header: Header,
    /// The parked request and every request after it in its chain.
    chain: Vec<u8>,
    /// The compound context the parked request saw.
    resume: CompoundState,
}

/// How running a chain of requests ended.
#[derive(Debug, PartialEq, Eq)]
enum ChainEnd {
    Done,
    /// A resumed request still waits; nothing was produced.
    StillBlocked,
}

pub struct Connection {
    server: Arc<ServerState>,
    pub peer: String,
    /// How other reactors reach this connection.
    pub handle: ConnHandle,
    info: ConnectionInfo,
    credits: CreditWindow,
    channels: HashMap<u64, Channel>,
    pending_auth: HashMap<u64, PendingAuth>,
    waits: Vec<AsyncWait>,
    next_async_id: u64,
    /// File I/O of the PDU being handled, for the reactor to run on its ring.
    file_io: Vec<FileIo>,
    /// Address of the PDU being handled, to express WRITE payload positions relative to it.
    pdu_base: usize,
    /// The session whose key encrypts the responses of the PDU being handled.
    encrypt_with: Option<Arc<Session>>,
    /// The worker process this connection must move to (its client or session is owned there).
    hand_off_to: Option<usize>,
    /// The request that moved (or is moving) this connection between workers.
    moved_message_id: Option<u64>,
    /// An SMB1 negotiate was answered: the SMB2 NEGOTIATE that follows has MessageId 1.
    smb1_answered: bool,
    /// Test hook (smbtorture FSCTL_SMBTORTURE_FORCE_UNACKED_TIMEOUT): treat everything sent on
    /// this connection as never acknowledged.
    force_unacked: bool,
}

/// Per-PDU state carried from one compound element to the next (MS-SMB2 3.3.5.2.7.2).
#[derive(Clone, Debug)]
struct CompoundState {
    first: bool,
    session_id: u64,
    tree_id: u32,
    file_id: Option<FileId>,
    /// A related request after a failed one fails the same way.
    failed: Option<NtStatus>,
    /// Set when the next request is a parked one running again: its response is the final
    /// async response with this AsyncId and grants no credits (its credits went with the
    /// interim response).
    resume_async_id: Option<u64>,
    /// The request being processed is a resumed one.
    resuming: bool,
    /// The chain runs from a parked copy, not the receive buffer (so no zero-copy file I/O).
    resumed_chain: bool,
    /// The request just processed went async with this AsyncId.
    parked: Option<u64>,
    /// Bytes from the request being processed to the end of its chain: what parking it copies.
    chain_rest_bytes: usize,
    /// The resumed request is still blocked.
    blocked_again: bool,
}

impl Default for CompoundState {
    fn default() -> Self {
        CompoundState {
            first: true,
            session_id: 0,
            tree_id: 0,
            file_id: None,
            failed: None,
            resume_async_id: None,
            resuming: false,
            resumed_chain: false,
            parked: None,
            chain_rest_bytes: 0,
            blocked_again: false,
        }
    }
}

impl Connection {
    pub fn new(server: Arc<ServerState>, peer: String, handle: ConnHandle) -> Connection {
        let credits = CreditWindow::new(server.config.max_credits);
        Connection {
            server,
            peer,
            handle,
            info: ConnectionInfo::default(),
            credits,
            channels: HashMap::new(),
            pending_auth: HashMap::new(),
            waits: Vec::new(),
            next_async_id: 1,
            file_io: Vec::new(),
            pdu_base: 0,
            encrypt_with: None,
            hand_off_to: None,
            moved_message_id: None,
            smb1_answered: false,
            force_unacked: false,
        }
    }

    /// Process one PDU; responses are appended to `out` as complete frames (transport header
    /// included). `pdu` is mutable so encrypted messages are decrypted in place.
    pub fn handle_pdu(
        &mut self,
        pdu: &mut [u8],
        env: &mut dyn Environment,
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), Disconnect> {
        self.pdu_base = pdu.as_ptr() as usize;
        if header::is_smb1_negotiate(pdu) {
            return self.smb1_negotiate(pdu, env, out);
        }
        if pdu.starts_with(&TRANSFORM_PROTOCOL_ID) {
            let th = TransformHeader::decode(pdu)
                .map_err(|s| Disconnect(format!("bad transform header: {s}")))?;
            let channel = self.channels.get(&th.session_id).ok_or_else(|| {
                Disconnect(format!(
                    "encrypted message for unknown session {:#x}",
                    th.session_id
                ))
            })?;
            let decryptor = channel
                .session
                .security
                .get()
                .and_then(|s| s.decryptor.as_ref())
                .ok_or_else(|| Disconnect("encrypted message on a session without keys".into()))?;
            let range = decryptor
                .decrypt_in_place(pdu)
                .map_err(|s| Disconnect(format!("decryption failed: {s}")))?;
            return self.handle_messages(&mut pdu[range], Some(th.session_id), env, out);
        }
        self.handle_messages(pdu, None, env, out)
    }

    fn smb1_negotiate(
        &mut self,
        pdu: &[u8],
        env: &mut dyn Environment,
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), Disconnect> {
        if self.info.dialect.is_some() {
            return Err(Disconnect("SMB1 negotiate after negotiate".into()));
        }
        let names = header::smb1_negotiate_dialects(pdu);
        let resp = commands::negotiate::smb1_response(
            &names,
            &mut self.info,
            &self.server,
            env.now_filetime(),
        )
        .ok_or_else(|| Disconnect(format!("SMB1 negotiate without an SMB2 dialect: {names:?}")))?;
        // MS-SMB2 3.3.5.3.1: the SMB2 response to an SMB1 negotiate has MessageId 0 and grants 1.
        let hdr = Header {
            command: Command::Negotiate as u16,
            credits: 1,
            flags: flags::SERVER_TO_REDIR,
            ..Default::default()
        };
        let mut fb = FrameBuilder::new(false);
        let start = fb.begin(&hdr);
        resp.encode(fb.buf());
        fb.end(start, None);
        out.push(fb.finish(None));
        // MS-SMB2 3.3.5.3.1: the SMB2 NEGOTIATE that follows uses MessageId 1.
        self.smb1_answered = true;
        self.credits = CreditWindow::starting_at(1, self.server.config.max_credits);
        Ok(())
    }

    /// The largest PDU this connection accepts now: small until a session is established on it.
    pub fn max_pdu_bytes(&self) -> usize {
        if self.channels.is_empty() {
            smb3d_protocol::limits::MAX_PREAUTH_PDU_BYTES
        } else {
            smb3d_protocol::limits::MAX_PDU_BYTES
        }
    }

    /// Whether the test FSCTL made this connection count as never acknowledging anything.
    pub fn force_unacked(&self) -> bool {
        self.force_unacked
    }

    /// The worker this connection must be handed to now (set by NEGOTIATE, or by a binding
    /// SESSION_SETUP for another worker's session).
    pub fn take_hand_off(&mut self) -> Option<usize> {
        self.hand_off_to.take()
    }

    /// Send the connection to worker `owner` with the bytes read so far (starting with the
    /// request that moves it), and its negotiated state if it has one.
    pub fn hand_off(
        &self,
        owner: usize,
        fd: std::os::fd::BorrowedFd,
        bytes: &[u8],
    ) -> std::io::Result<()> {
        let handoff = self
            .server
            .handoff
            .as_ref()
            .ok_or_else(|| std::io::Error::other("no workers"))?;
        let state = match self.info.dialect {
            None => AdoptedState::Fresh {
                next_message_id: u64::from(self.smb1_answered),
            },
            Some(_) => AdoptedState::Negotiated(Box::new(self.export_record())),
        };
        handoff.send(owner, fd, &state, bytes)
    }

    /// The negotiated state of this connection, for the worker it moves to.
    fn export_record(&self) -> ConnectionRecord {
        let (credit_low, credits_used) = self.credits.parts();
        ConnectionRecord {
            info: self.info.clone(),
            credit_low,
            credits_used,
            next_async_id: self.next_async_id,
            force_unacked: self.force_unacked,
            moved_message_id: self.moved_message_id.unwrap_or(0),
        }
    }

    /// Take the state of a connection another worker handed over. `Err` when the state cannot
    /// be this server's (the connection is then closed).
    pub fn adopt(&mut self, state: AdoptedState) -> Result<(), Disconnect> {
        match state {
            AdoptedState::Fresh { next_message_id } => {
                if next_message_id != 0 {
                    self.smb1_answered = true;
                    self.credits =
                        CreditWindow::starting_at(next_message_id, self.server.config.max_credits);
                }
            }
            AdoptedState::Negotiated(record) => {
                let record = *record;
                self.credits = CreditWindow::from_parts(
                    record.credit_low,
                    record.credits_used,
                    self.server.config.max_credits,
                )
                .ok_or_else(|| Disconnect("handed-over credit window out of range".into()))?;
                self.info = record.info;
                self.next_async_id = record.next_async_id.max(1);
                self.force_unacked = record.force_unacked;
                self.moved_message_id = Some(record.moved_message_id);
            }
        }
        Ok(())
    }

    /// The worker to move this connection to for this binding SESSION_SETUP: the one owning
    /// the session it names, when that is another worker and the connection carries nothing
    /// that could not travel (no session, authentication or parked request of its own). A
    /// request that already moved once is never moved again (no ping-pong between workers).
    fn bind_owner_elsewhere(&self, hdr: &Header, msg: &[u8]) -> Option<usize> {
        let handoff = self.server.handoff.as_ref()?;
        let binding = msg
            .get(HEADER_BYTES + 2)
            .is_some_and(|f| f & session_setup::FLAG_BINDING != 0);
        let movable =
            self.channels.is_empty() && self.pending_auth.is_empty() && self.waits.is_empty();
        if !binding || !movable || self.moved_message_id == Some(hdr.message_id) {
            return None;
        }
        handoff.other_session_owner(hdr.session_id)
    }

    fn handle_messages(
        &mut self,
        pdu: &mut [u8],
        encrypted_session: Option<u64>,
        env: &mut dyn Environment,
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), Disconnect> {
        self.run_chain(pdu, encrypted_session, CompoundState::default(), env, out)
            .map(|_| ())
    }

    /// Process a chain of requests (one, or a compound) from `compound`'s context on.
    fn run_chain(
        &mut self,
        pdu: &mut [u8],
        encrypted_session: Option<u64>,
        mut compound: CompoundState,
        env: &mut dyn Environment,
        out: &mut Vec<Vec<u8>>,
    ) -> Result<ChainEnd, Disconnect> {
        let encrypt_with = encrypted_session
            .and_then(|id| self.channels.get(&id))
            .map(|c| c.session.clone())
            .filter(|s| s.security.get().is_some_and(|sec| sec.encryptor.is_some()));
        let mut fb = FrameBuilder::new(encrypt_with.is_some());
        self.encrypt_with = encrypt_with.clone();
        let mut offset = 0;
        for count in 0.. {
            if count >= MAX_COMPOUND_REQUESTS {
                return Err(Disconnect("compound chain too long".into()));
            }
            let rest = &pdu[offset..];
            let hdr =
                Header::decode(rest).map_err(|_| Disconnect("malformed SMB2 header".into()))?;
            if hdr.flags & flags::SERVER_TO_REDIR != 0 {
                return Err(Disconnect("response sent to the server".into()));
            }
            let len = match hdr.next_command as usize {
                0 => rest.len(),
                n if n < HEADER_BYTES || n > rest.len() || n % 8 != 0 => {
                    return Err(Disconnect(format!("bad NextCommand {n}")));
                }
                n => n,
            };
            compound.chain_rest_bytes = rest.len();
            // Mutable so signatures are checked in place (no copy of a large WRITE).
            let msg = &mut pdu[offset..offset + len];
            let single = offset == 0 && hdr.next_command == 0 && !compound.resumed_chain;
            let before = compound.clone();
            self.process(
                &hdr,
                msg,
                encrypted_session.is_some(),
                single,
                &mut compound,
                &mut fb,
                env,
                out,
            )?;
            if compound.blocked_again {
                return Ok(ChainEnd::StillBlocked);
            }
            if let Some(async_id) = compound.parked.take() {
                self.waits.push(AsyncWait {
                    async_id,
                    message_id: hdr.message_id,
                    session_id: compound.session_id,
                    encrypted_session,
                    header: hdr.clone(),
                    chain: pdu[offset..].to_vec(),
                    resume: before,
                });
                break;
            }
            if hdr.next_command == 0 {
                break;
            }
            offset += len;
        }
        if !fb.is_empty() {
            out.push(fb.finish(encrypt_with.as_deref()));
        }
        Ok(ChainEnd::Done)
    }

    #[allow(clippy::too_many_arguments)]
    fn process(
        &mut self,
        hdr: &Header,
        msg: &mut [u8],
        encrypted: bool,
        single: bool,
        compound: &mut CompoundState,
        fb: &mut FrameBuilder,
        env: &mut dyn Environment,
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), Disconnect> {
        let command = Command::from_u16(hdr.command);
        if command == Some(Command::Cancel) {
            // MS-SMB2 3.3.5.16: CANCEL takes no credit and gets no response of its own.
            self.cancel(hdr, out);
            return Ok(());
        }
        // A bind of another worker's session moves the connection there before anything of this
        // request (credits included) is taken; only as the first request of an unencrypted PDU,
        // so the owner replays exactly what the client sent.
        if command == Some(Command::SessionSetup)
            && compound.first
            && !compound.resumed_chain
            && !encrypted
            && self.info.dialect.is_some()
        {
            if let Some(owner) = self.bind_owner_elsewhere(hdr, msg) {
                self.moved_message_id = Some(hdr.message_id);
                self.hand_off_to = Some(owner);
                return Ok(());
            }
        }
        let dialect = self.info.dialect;
        let charge = if dialect.is_some_and(|d| d >= smb3d_protocol::dialect::Dialect::Smb210) {
            hdr.credit_charge
        } else {
            1
        };
        let resume = compound.resume_async_id.take();
        compound.resuming = resume.is_some();
        let granted = if resume.is_some() {
            0
        } else {
            self.credits.consume(hdr.message_id, charge).map_err(|_| {
                Disconnect(format!(
                    "message id {} outside the credit window",
                    hdr.message_id
                ))
            })?;
            self.credits.grant(hdr.credits, charge)
        };

        let mut rsp = Header {
            credit_charge: hdr.credit_charge,
            command: hdr.command,
            credits: granted,
            flags: flags::SERVER_TO_REDIR | (hdr.flags & flags::RELATED_OPERATIONS),
            message_id: hdr.message_id,
            process_id: hdr.process_id,
            tree_id: hdr.tree_id,
            session_id: hdr.session_id,
            ..Default::default()
        };
        if let Some(async_id) = resume {
            rsp.flags |= flags::ASYNC_COMMAND;
            rsp.async_id = async_id;
        }

        // MS-SMB2 3.3.5.2.5: with multi-credit requests, the charge must cover the payload.
        if dialect.is_some_and(|d| d >= smb3d_protocol::dialect::Dialect::Smb210) {
            if let Some(payload) = command.and_then(|c| messages::charged_payload_bytes(c, msg)) {
                if hdr.credit_charge.max(1) < messages::credits_needed(payload) {
                    debug!(
                        payload,
                        charge = hdr.credit_charge,
                        "credit charge too small"
                    );
                    return self.error(fb, rsp, NtStatus::INVALID_PARAMETER, None);
                }
            }
        }

        // MS-SMB2 3.3.5.2: before NEGOTIATE only NEGOTIATE; NEGOTIATE only once.
        match (command, dialect) {
            (Some(Command::Negotiate), Some(_)) => {
                return Err(Disconnect("second NEGOTIATE".into()))
            }
            (Some(Command::Negotiate), None) => return self.negotiate(msg, rsp, env, fb),
            (_, None) => return Err(Disconnect("request before NEGOTIATE".into())),
            _ => {}
        }
        let Some(command) = command else {
            warn!(peer = %self.peer, command = hdr.command, "unknown command");
            return self.error(fb, rsp, NtStatus::INVALID_PARAMETER, None);
        };

        // MS-SMB2 3.3.5.2.7.2: a related request takes the session, tree and file of the one
        // before it; the first request of a chain cannot be related, and a related request
        // after a failed CREATE (or an invalid start) fails the same way.
        if hdr.is_related() {
            if compound.first {
                compound.failed = Some(NtStatus::INVALID_PARAMETER);
            }
            rsp.session_id = compound.session_id;
            rsp.tree_id = compound.tree_id;
            if let Some(status) = compound.failed {
                compound.first = false;
                return self.error(fb, rsp, status, None);
            }
        } else {
            compound.file_id = None;
            compound.failed = None;
        }
        compound.first = false;
        compound.session_id = rsp.session_id;
        compound.tree_id = rsp.tree_id;

        if command == Command::SessionSetup {
            // Re-authenticating a session this connection carries must be signed with the
            // channel's key (MS-SMB2 3.3.5.2.4); a binding request is checked by the handler.
            let binding = msg.get(HEADER_BYTES + 2).is_some_and(|f| f & 0x01 != 0);
            if let Some(channel) = self
                .channels
                .get(&rsp.session_id)
                .filter(|_| !binding && !encrypted)
            {
                let bad = hdr.is_signed()
                    && !channel
                        .signer
                        .as_ref()
                        .is_some_and(|s| s.verify_in_place(msg));
                if bad {
                    warn!(
                        session = rsp.session_id,
                        "re-authentication not signed with the channel key"
                    );
                    return self.error(fb, rsp, NtStatus::ACCESS_DENIED, None);
                }
            }
            return self.session_setup(msg, rsp, env, fb, compound);
        }
        if command == Command::Ioctl
            && ioctl_code(msg) == Some(ctl_code::FSCTL_SMBTORTURE_FORCE_UNACKED_TIMEOUT)
        {
            // Needs no session or tree (smbtorture sends it bare); refused unless the test
            // switch is on, as an unknown FSCTL would be.
            if !self.server.config.enable_test_fsctl {
                return self.error(fb, rsp, NtStatus::INVALID_DEVICE_REQUEST, None);
            }
            self.force_unacked = true;
            warn!(peer = %self.peer, "test FSCTL: sends on this connection count as unacknowledged");
            let mut body = Vec::new();
            smb3d_protocol::messages::ioctl::encode_response(
                ctl_code::FSCTL_SMBTORTURE_FORCE_UNACKED_TIMEOUT,
                &[0xff; 16],
                &[],
                &mut body,
            );
            return self.respond(fb, rsp, NtStatus::SUCCESS, &body, None);
        }
        if command == Command::Echo && rsp.session_id == 0 {
            let mut body = Vec::new();
            echo::encode_response(&mut body);
            return self.respond(fb, rsp, NtStatus::SUCCESS, &body, None);
        }

        // MS-SMB2 3.3.5.2.9: the session must exist on this connection.
        // A session ended through another channel (LOGOFF, a failed re-authentication) is gone
        // here too; the client still trusts this channel's key, so the error is signed with it.
        let mut ended_channel_signer = None;
        if self
            .channels
            .get(&rsp.session_id)
            .is_some_and(|c| c.session.is_logged_off())
        {
            ended_channel_signer = self.channels.remove(&rsp.session_id).and_then(|c| c.signer);
        }
        // A parked LOCK outlived by its session or tree ends with the status for an abandoned
        // lock, not as a request on a session that never existed.
        let abandoned = compound.resuming && command == Command::Lock;
        let Some(channel) = self.channels.get(&rsp.session_id) else {
            info!(peer = %self.peer, session = rsp.session_id, "request on a session not established on this connection");
            compound.failed = Some(NtStatus::INVALID_PARAMETER);
            let status = if abandoned {
                commands::lock::ABANDONED_STATUS
            } else {
                NtStatus::USER_SESSION_DELETED
            };
            // A session that exists but is not bound here: the error is signed with its key so
            // the client can trust it (MS-SMB2 3.3.4.1.1; Samba bug 14512).
            let sign_with = self
                .server
                .sessions
                .get(rsp.session_id)
                .filter(|sess| hdr.is_signed() && !sess.is_anonymous() && !sess.is_logged_off())
                .and_then(|sess| commands::session_setup::session_signer(&sess))
                .or(ended_channel_signer.filter(|_| hdr.is_signed()));
            return self.error(fb, rsp, status, sign_with);
        };
        let session = channel.session.clone();
        let signer = channel.signer.clone();
        let security = session.security.get();
        // MS-SMB2 3.3.5.2.4: verify the signature of signed requests; refuse unsigned ones when
        // signing is required. Encrypted requests are authenticated by the cipher.
        if !encrypted {
            if security.is_some_and(|s| s.encrypt_data) {
                warn!(
                    session = rsp.session_id,
                    "unencrypted request on a session that requires encryption"
                );
                return self.error(fb, rsp, NtStatus::ACCESS_DENIED, None);
            }
            if hdr.is_signed() {
                let ok = signer.as_ref().is_some_and(|s| s.verify_in_place(msg));
                if !ok {
                    warn!(
                        session = rsp.session_id,
                        message_id = hdr.message_id,
                        "bad signature"
                    );
                    return self.error(fb, rsp, NtStatus::ACCESS_DENIED, None);
                }
            } else if security.is_some_and(|s| s.signing_required) {
                warn!(
                    session = rsp.session_id,
                    message_id = hdr.message_id,
                    "unsigned request on a signing-required session"
                );
                return self.error(fb, rsp, NtStatus::ACCESS_DENIED, None);
            }
        }
        let sign_with =
            if !encrypted && (hdr.is_signed() || security.is_some_and(|s| s.signing_required)) {
                signer
            } else {
                None
            };

        match command {
            Command::Logoff => {
                if let Err(s) = echo::decode_request(msg) {
                    return self.error(fb, rsp, s, sign_with);
                }
                // MS-SMB2 3.3.5.6: LOGOFF on any channel ends the session on all of them. Its
                // durable opens wait for a reconnect from another session, as Windows and Samba
                // keep them (smbtorture smb2.durable-open.reopen4).
                session.mark_logged_off();
                session.detach_connection(self.handle);
                for (open, share) in commands::logoff::logoff(&session, &self.server) {
                    if !crate::durable::keep_if_durable(&self.server, &open, &share) {
                        commands::close::close_open(&self.server, &share, &open);
                    }
                }
                self.channels.remove(&session.id);
                let mut body = Vec::new();
                echo::encode_response(&mut body);
                self.respond(fb, rsp, NtStatus::SUCCESS, &body, sign_with)
            }
            Command::Echo => {
                let mut body = Vec::new();
                echo::encode_response(&mut body);
                self.respond(fb, rsp, NtStatus::SUCCESS, &body, sign_with)
            }
            Command::TreeConnect => {
                let dialect = dialect.unwrap_or(smb3d_protocol::dialect::Dialect::Smb202);
                match commands::tree_connect::connect(msg, &session, &self.server, dialect) {
                    Ok((tree_id, body)) => {
                        rsp.tree_id = tree_id;
                        compound.tree_id = tree_id;
                        self.respond(fb, rsp, NtStatus::SUCCESS, &body, sign_with)
                    }
                    Err(s) => {
                        compound.failed = Some(s);
                        self.error(fb, rsp, s, sign_with)
                    }
                }
            }
            Command::Ioctl if is_connection_ioctl(msg) => {
                match commands::ioctl::handle(
                    msg,
                    &self.info,
                    &self.server.server_guid,
                    &self.server.config.listen,
                ) {
                    Ok(IoctlOutcome::Reply(body)) => {
                        self.respond(fb, rsp, NtStatus::SUCCESS, &body, sign_with)
                    }
                    Ok(IoctlOutcome::Disconnect(why)) => Err(Disconnect(why.into())),
                    Err(s) => self.error(fb, rsp, s, sign_with),
                }
            }
            _ => {
                // Tree-scoped commands: MS-SMB2 3.3.5.2.11, the tree must exist in the session.
                let Some(tree) = session.tree(rsp.tree_id) else {
                    info!(
                        session = session.id,
                        tree = rsp.tree_id,
                        "tree id not connected in this session"
                    );
                    compound.failed = Some(NtStatus::NETWORK_NAME_DELETED);
                    let status = if abandoned {
                        commands::lock::ABANDONED_STATUS
                    } else {
                        NtStatus::NETWORK_NAME_DELETED
                    };
                    return self.error(fb, rsp, status, sign_with);
                };
                if tree.encrypt && !encrypted {
                    return self.error(fb, rsp, NtStatus::ACCESS_DENIED, sign_with);
                }
                if command == Command::TreeDisconnect {
                    return match commands::tree_connect::disconnect(&session, tree.id, &self.server)
                    {
                        Ok(()) => {
                            let mut body = Vec::new();
                            echo::encode_response(&mut body);
                            self.respond(fb, rsp, NtStatus::SUCCESS, &body, sign_with)
                        }
                        Err(s) => self.error(fb, rsp, s, sign_with),
                    };
                }
                let result = self.run_tree_command(
                    hdr,
                    msg,
                    &session,
                    &tree,
                    &mut compound.file_id,
                    compound.resuming,
                );
                match result {
                    Ok(reply) => {
                        self.finish_reply(reply, msg, rsp, sign_with, single, fb, compound)
                    }
                    Err(s) => {
                        if command == Command::Create {
                            compound.failed = Some(s);
                        }
                        self.error(fb, rsp, s, sign_with)
                    }
                }
            }
        }
    }

    fn run_tree_command(
        &self,
        hdr: &Header,
        msg: &[u8],
        session: &Arc<Session>,
        tree: &Arc<Tree>,
        file_id: &mut Option<FileId>,
        resuming: bool,
    ) -> Result<Reply, NtStatus> {
        let req = Request { header: hdr, msg };
        let mut ctx = TreeCtx {
            server: &self.server,
            session,
            tree,
            dialect: self
                .info
                .dialect
                .unwrap_or(smb3d_protocol::dialect::Dialect::Smb202),
            compound_file_id: file_id,
            conn: self.handle,
            client_guid: self.info.client_guid,
            resuming,
        };
        let Some(command) = Command::from_u16(hdr.command) else {
            return Err(NtStatus::INVALID_PARAMETER);
        };
        match command {
            Command::Create => commands::create::handle(&req, &mut ctx),
            Command::Close => commands::close::handle(&req, &mut ctx),
            Command::Flush => commands::flush::handle(&req, &mut ctx),
            Command::Read => commands::read::handle(&req, &mut ctx),
            Command::Write => commands::write::handle(&req, &mut ctx),
            // A parked LOCK whose handle has gone ends as MS-SMB2 3.3.5.14 asks.
            Command::Lock if resuming => commands::lock::retry(&req, &mut ctx),
            Command::Lock => commands::lock::handle(&req, &mut ctx),
            Command::QueryDirectory => commands::query_directory::handle(&req, &mut ctx),
            Command::QueryInfo => commands::query_info::handle(&req, &mut ctx),
            Command::SetInfo => commands::set_info::handle(&req, &mut ctx),
            Command::Ioctl => commands::ioctl::handle_file(&req, &mut ctx),
            // Change notification arrives with the Windows file semantics issue.
            Command::OplockBreak => commands::oplock_break::handle(&req, &mut ctx),
            Command::ChangeNotify => Err(NtStatus::NOT_IMPLEMENTED),
            _ => Err(NtStatus::INVALID_PARAMETER),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn finish_reply(
        &mut self,
        reply: Reply,
        msg: &[u8],
        rsp: Header,
        sign_with: Option<Arc<smb3d_protocol::crypto::Signer>>,
        single: bool,
        fb: &mut FrameBuilder,
        compound: &mut CompoundState,
    ) -> Result<(), Disconnect> {
        match reply {
            Reply::Body { status, body } => self.respond(fb, rsp, status, &body, sign_with),
            Reply::ReadFile {
                open,
                offset,
                length,
                min_count,
            } if single => {
                // Laid out now, read by the reactor's ring into the data slot.
                let protection = Protection {
                    sign_with,
                    encrypt_with: self.encrypt_with.clone(),
                };
                let splice = file_io::splices(length, &protection);
                // A spliced READ's data never enters the frame.
                let data_room = if splice { 0 } else { length as usize + 16 };
                let mut frame = FrameBuilder::with_capacity(
                    protection.encrypt_with.is_some(),
                    64 + 16 + data_room,
                );
                let start = frame.begin(&rsp);
                let head_at = frame.buf().len();
                frame.buf().resize(head_at + 16, 0);
                let data_at = head_at + 16;
                self.file_io.push(FileIo::Read(PendingRead {
                    open,
                    offset,
                    length,
                    min_count,
                    frame,
                    start,
                    head_at,
                    data_at,
                    rsp,
                    protection,
                    splice,
                }));
                Ok(())
            }
            Reply::ReadFile {
                open,
                offset,
                length,
                min_count,
            } => self.read_into_frame(fb, rsp, &open, offset, length, min_count, sign_with),
            Reply::WriteFile { open, offset, data }
                if single && msg.get(data.clone()).is_some() =>
            {
                // Written by the reactor's ring straight from the receive buffer.
                let msg_at = msg.as_ptr() as usize - self.pdu_base;
                let data = msg_at + data.start..msg_at + data.end;
                let protection = Protection {
                    sign_with,
                    encrypt_with: self.encrypt_with.clone(),
                };
                self.file_io.push(FileIo::Write(PendingWrite {
                    open,
                    offset,
                    data,
                    rsp,
                    protection,
                }));
                Ok(())
            }
            Reply::WriteFile { open, offset, data } => {
                let Some(bytes) = msg.get(data) else {
                    return self.error(fb, rsp, NtStatus::INVALID_PARAMETER, sign_with);
                };
                match crate::storage::write_at(&open, offset, bytes) {
                    Ok(n) => {
                        let body = smb3d_protocol::messages::write::encode_response(n as u32);
                        self.respond(fb, rsp, NtStatus::SUCCESS, &body, sign_with)
                    }
                    Err(s) => self.error(fb, rsp, s, sign_with),
                }
            }
            Reply::WouldBlock => {
                if compound.resuming {
                    // Still waiting: the interim response went out long ago.
                    compound.blocked_again = true;
                    return Ok(());
                }
                let parked_bytes = self.waits.iter().map(|w| w.chain.len()).sum();
                if !may_park(self.waits.len(), parked_bytes, compound.chain_rest_bytes) {
                    return self.error(fb, rsp, NtStatus::INSUFFICIENT_RESOURCES, sign_with);
                }
                // MS-SMB2 3.3.4.2: answer STATUS_PENDING with an AsyncId now, the result later;
                // the caller parks this request and the rest of its chain.
                let async_id = self.next_async_id;
                self.next_async_id += 1;
                let mut interim = rsp.clone();
                interim.flags |= flags::ASYNC_COMMAND;
                interim.async_id = async_id;
                self.error(fb, interim, NtStatus::PENDING, None)?;
                compound.parked = Some(async_id);
                Ok(())
            }
        }
    }

    /// Build a READ response with the file data read straight into the frame buffer.
    #[allow(clippy::too_many_arguments)]
    fn read_into_frame(
        &mut self,
        fb: &mut FrameBuilder,
        rsp: Header,
        open: &Open,
        offset: u64,
        length: u32,
        min_count: u32,
        sign_with: Option<Arc<smb3d_protocol::crypto::Signer>>,
    ) -> Result<(), Disconnect> {
        let start = fb.begin(&rsp);
        let head_at = fb.buf().len();
        fb.buf().extend_from_slice(&[0u8; 16]);
        let data_at = fb.buf().len();
        fb.buf().resize(data_at + length as usize, 0);
        let result = crate::storage::read_at(open, offset, &mut fb.buf()[data_at..]);
        match result {
            // MS-SMB2 3.3.5.12: fewer bytes than MinimumCount (or none) is STATUS_END_OF_FILE.
            Ok(n)
                if smb3d_protocol::messages::read::status_after_read(length, min_count, n)
                    != NtStatus::SUCCESS =>
            {
                fb.buf().truncate(start);
                self.error(fb, rsp, NtStatus::END_OF_FILE, sign_with)
            }
            Ok(n) => {
                fb.buf().truncate(data_at + n);
                let head = smb3d_protocol::messages::read::encode_response_head(n as u32);
                fb.buf()[head_at..head_at + 16].copy_from_slice(&head);
                fb.end(start, sign_with);
                Ok(())
            }
            Err(s) => {
                fb.buf().truncate(start);
                self.error(fb, rsp, s, sign_with)
            }
        }
    }

    fn negotiate(
        &mut self,
        msg: &[u8],
        rsp: Header,
        env: &mut dyn Environment,
        fb: &mut FrameBuilder,
    ) -> Result<(), Disconnect> {
        // With worker processes, a client lives in the worker its ClientGuid names; a
        // connection that reached another one moves there before anything is answered.
        if let Some(handoff) = self.server.handoff.as_ref().filter(|h| h.workers() > 1) {
            if let Ok(req) = smb3d_protocol::messages::negotiate::NegotiateRequest::decode(msg) {
                let has_guid =
                    req.client_guid != [0; 16] && req.dialects.iter().any(|d| *d >= 0x0210);
                let owner = handoff.owner_of(&req.client_guid);
                if has_guid && owner != handoff.worker {
                    self.hand_off_to = Some(owner);
                    return Ok(());
                }
            }
        }
        let mut salt = [0u8; 32];
        env.random_bytes(&mut salt);
        match commands::negotiate::handle(
            msg,
            &mut self.info,
            &self.server,
            env.now_filetime(),
            salt,
        ) {
            Ok(resp) => {
                let start = fb.begin(&rsp);
                resp.encode(fb.buf());
                fb.end(start, None);
                if self.info.dialect >= Some(smb3d_protocol::dialect::Dialect::Smb210) {
                    // Lease breaks find the client's connections here (MS-SMB2 3.3.4.7).
                    self.server.clients.add(self.info.client_guid, self.handle);
                }
                if self.info.dialect == Some(smb3d_protocol::dialect::Dialect::Smb311) {
                    // MS-SMB2 3.3.5.4: the preauth hash covers the request and the response.
                    self.info.preauth.update(msg);
                    self.info.preauth.update(fb.message(start));
                }
                Ok(())
            }
            Err(s) => {
                warn!(peer = %self.peer, status = %s, "negotiate failed");
                self.error(fb, rsp, s, None)
            }
        }
    }

    fn session_setup(
        &mut self,
        msg: &[u8],
        mut rsp: Header,
        env: &mut dyn Environment,
        fb: &mut FrameBuilder,
        compound: &mut CompoundState,
    ) -> Result<(), Disconnect> {
        let mut challenge = [0u8; 8];
        env.random_bytes(&mut challenge);
        let mut salt = [0u8; 4];
        env.random_bytes(&mut salt);
        let mut ctx = SessionSetupCtx {
            conn: self.handle,
            server: &self.server,
            info: &self.info,
            pending: &mut self.pending_auth,
            channels: &mut self.channels,
            challenge,
            nonce_salt: u32::from_le_bytes(salt),
            now_filetime: env.now_filetime(),
        };
        match commands::session_setup::handle(msg, rsp.session_id, &mut ctx) {
            Ok(outcome) => {
                rsp.session_id = outcome.session_id;
                compound.session_id = outcome.session_id;
                rsp.status = outcome.status.0;
                let start = fb.begin(&rsp);
                fb.buf().extend_from_slice(&outcome.body);
                let signer = outcome.sign_with.clone();
                fb.end(start, outcome.sign_with);
                if outcome.status == NtStatus::MORE_PROCESSING_REQUIRED
                    && self.info.dialect == Some(smb3d_protocol::dialect::Dialect::Smb311)
                {
                    if let Some(p) = self.pending_auth.get_mut(&outcome.session_id) {
                        // MS-SMB2 3.3.5.5.3: the hash covers the response as sent; a binding's
                        // interim response is signed, and the frame signs only when finished.
                        let mut sent = fb.message(start).to_vec();
                        if let Some(signer) = signer {
                            signer.sign(&mut sent);
                        }
                        p.preauth.update(&sent);
                    }
                }
                Ok(())
            }
            Err(s) => {
                compound.failed = Some(s);
                // Errors about an existing session are signed with its key (the channel's
                // when bound here), so a binding client can trust them (Samba bug 14512).
                let sign_with = match self.channels.get(&rsp.session_id) {
                    Some(c) => c.signer.clone(),
                    None => self
                        .server
                        .sessions
                        .get(rsp.session_id)
                        .filter(|sess| !sess.is_anonymous() && !sess.is_logged_off())
                        .and_then(|sess| commands::session_setup::session_signer(&sess)),
                };
                self.error(fb, rsp, s, sign_with)
            }
        }
    }

    fn cancel(&mut self, hdr: &Header, out: &mut Vec<Vec<u8>>) {
        // MS-SMB2 3.3.5.16: match by AsyncId for async requests, else by MessageId.
        let found = self.waits.iter().position(|w| {
            if hdr.is_async() {
                w.async_id == hdr.async_id
            } else {
                w.message_id == hdr.message_id
            }
        });
        if let Some(i) = found {
            let wait = self.waits.remove(i);
            self.send_async_final(&wait, NtStatus::CANCELLED, out);
        }
    }

    /// Re-run parked requests whose blocking state may have changed: on the reactor's tick, and
    /// when another thread nudges this connection. A request that completes sends its final
    /// response, followed by the responses of the rest of its chain.
    pub fn poll_waits(
        &mut self,
        env: &mut dyn Environment,
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), Disconnect> {
        for mut wait in std::mem::take(&mut self.waits) {
            let mut compound = wait.resume.clone();
            compound.resume_async_id = Some(wait.async_id);
            compound.resumed_chain = true;
            let mut frames = Vec::new();
            match self.run_chain(
                &mut wait.chain,
                wait.encrypted_session,
                compound,
                env,
                &mut frames,
            )? {
                ChainEnd::StillBlocked => self.waits.push(wait),
                ChainEnd::Done => out.append(&mut frames),
            }
        }
        Ok(())
    }

    /// File I/O queued by the last `handle_pdu`; WRITE payload ranges are relative to that PDU.
    pub fn take_file_io(&mut self) -> std::vec::Drain<'_, FileIo> {
        self.file_io.drain(..)
    }

    pub fn has_waits(&self) -> bool {
        !self.waits.is_empty()
    }

    /// Whether an authenticated session lives on this connection.
    pub fn has_session(&self) -> bool {
        !self.channels.is_empty()
    }

    /// Whether any session on this connection has a file open.
    pub fn has_opens(&self) -> bool {
        self.channels.values().any(|c| !c.session.opens.is_empty())
    }

    /// The final response of a parked request that ends without running again (cancelled).
    fn send_async_final(&mut self, wait: &AsyncWait, status: NtStatus, out: &mut Vec<Vec<u8>>) {
        let channel = self.channels.get(&wait.session_id);
        let session = channel.map(|c| c.session.clone());
        let security = session.as_ref().and_then(|s| s.security.get());
        let encrypted = wait.encrypted_session.is_some();
        let sign_with = if !encrypted
            && (wait.header.is_signed() || security.is_some_and(|s| s.signing_required))
        {
            channel.and_then(|c| c.signer.clone())
        } else {
            None
        };
        let rsp = Header {
            credit_charge: wait.header.credit_charge,
            status: status.0,
            command: wait.header.command,
            credits: 0,
            flags: flags::SERVER_TO_REDIR | flags::ASYNC_COMMAND,
            message_id: wait.message_id,
            async_id: wait.async_id,
            session_id: wait.session_id,
            ..Default::default()
        };
        let encrypt_with = session
            .filter(|s| encrypted && s.security.get().is_some_and(|sec| sec.encryptor.is_some()));
        let mut fb = FrameBuilder::new(encrypt_with.is_some());
        let start = fb.begin(&rsp);
        error::encode(fb.buf());
        fb.end(start, sign_with);
        out.push(fb.finish(encrypt_with.as_deref()));
    }

    fn respond(
        &mut self,
        fb: &mut FrameBuilder,
        mut rsp: Header,
        status: NtStatus,
        body: &[u8],
        sign_with: Option<Arc<smb3d_protocol::crypto::Signer>>,
    ) -> Result<(), Disconnect> {
        rsp.status = status.0;
        let start = fb.begin(&rsp);
        fb.buf().extend_from_slice(body);
        fb.end(start, sign_with);
        Ok(())
    }

    fn error(
        &mut self,
        fb: &mut FrameBuilder,
        mut rsp: Header,
        status: NtStatus,
        sign_with: Option<Arc<smb3d_protocol::crypto::Signer>>,
    ) -> Result<(), Disconnect> {
        if status == NtStatus::INVALID_PARAMETER {
            // Malformed requests (lengths or offsets outside the message, unknown commands...)
            // end here: worth a line, since well-behaved clients do not send them.
            info!(peer = %self.peer, command = rsp.command, message_id = rsp.message_id, "request refused: STATUS_INVALID_PARAMETER");
        }
        rsp.status = status.0;
        let start = fb.begin(&rsp);
        error::encode(fb.buf());
        fb.end(start, sign_with);
        Ok(())
    }

    /// Close everything this connection holds (the reactor calls this when the socket closes).
    pub fn teardown(&mut self) {
        self.server
            .clients
            .remove(&self.info.client_guid, self.handle);
        // A session ends with its last channel; while others live, it stays.
        for (_, channel) in self.channels.drain() {
            let session = channel.session;
            session.detach_connection(self.handle);
            session.forget_parked_creates(self.handle);
            if session.is_logged_off() || !session.remove_channel() {
                continue;
            }
            session.mark_logged_off();
            // A lost connection (not LOGOFF, CLOSE or TREE_DISCONNECT) keeps durable opens for
            // their client to reclaim (MS-SMB2 3.3.7.1).
            for (open, share) in commands::logoff::logoff(&session, &self.server) {
                if !crate::durable::keep_if_durable(&self.server, &open, &share) {
                    commands::close::close_open(&self.server, &share, &open);
                }
            }
        }
        self.pending_auth.clear();
        self.waits.clear();
    }
}

/// Whether one more request (with `chain_bytes` to copy) may be parked next to `waits` parked
/// requests holding `parked_bytes`.
fn may_park(waits: usize, parked_bytes: usize, chain_bytes: usize) -> bool {
    waits < MAX_ASYNC_WAITS && parked_bytes.saturating_add(chain_bytes) <= MAX_PARKED_BYTES
}

/// IOCTLs answered by the connection itself: the ones on the all-ones FileId that are not about
/// a file (validate negotiate, interface list, test hooks).
/// The CtlCode of an IOCTL request, if the body is long enough to hold one.
fn ioctl_code(msg: &[u8]) -> Option<u32> {
    msg.get(HEADER_BYTES + 4..HEADER_BYTES + 8)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn is_connection_ioctl(msg: &[u8]) -> bool {
    use smb3d_protocol::messages::ioctl::ctl_code;
    let code = msg
        .get(HEADER_BYTES + 4..HEADER_BYTES + 8)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    matches!(
        code,
        Some(ctl_code::FSCTL_VALIDATE_NEGOTIATE_INFO)
            | Some(ctl_code::FSCTL_QUERY_NETWORK_INTERFACE_INFO)
            | Some(ctl_code::FSCTL_SMBTORTURE_FORCE_UNACKED_TIMEOUT)
    )
}
