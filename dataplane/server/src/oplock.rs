//! Oplock break delivery (MS-SMB2 3.3.4.6): a break notification goes to one connection of the
//! session that owns the open — the oldest one still alive — through that connection's reactor.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use smb3d_protocol::framing::{write_frame_header, FRAME_HEADER_BYTES};
use smb3d_protocol::header::{flags, Command, Header};
use smb3d_protocol::messages::oplock_break::{self, NOTIFICATION_MESSAGE_ID};
use smb3d_protocol::transform::TRANSFORM_HEADER_BYTES;
use tracing::{debug, warn};

use crate::mailbox::{ConnHandle, ReactorMsg};
use crate::server::{BreakRetry, ServerState};
use crate::session::Session;
use crate::storage::file_table::BreakNotice;

/// Send each notice; a holder that can no longer be reached is left to the break timeout.
pub fn send_breaks(server: &ServerState, notices: Vec<BreakNotice>) {
    for notice in notices {
        let Some(session) = notice.target.session.upgrade() else {
            continue;
        };
        let frame = break_frame(&session, notice.target.file_id.encode(), notice.level);
        server.break_stats.sent.fetch_add(1, Ordering::Relaxed);
        if !deliver(server, &session, frame, None) {
            server
                .break_stats
                .undeliverable
                .fetch_add(1, Ordering::Relaxed);
            warn!(
                session = session.id,
                "oplock break could not be delivered on any channel"
            );
        }
    }
}

/// A break was sent on `dead`, whose peer never acknowledged it: under the `spec` policy send
/// the same break (same bytes) on the session's next live channel.
pub fn redeliver(server: &ServerState, session: &Arc<Session>, frame: Vec<u8>, dead: ConnHandle) {
    session.detach_connection(dead);
    if server.config.break_retry != BreakRetry::Spec {
        return;
    }
    server.break_stats.retried.fetch_add(1, Ordering::Relaxed);
    let stats = &server.break_stats;
    tracing::info!(
        session = session.id,
        sent = stats.sent.load(Ordering::Relaxed),
        transport_acked = stats.transport_acked.load(Ordering::Relaxed),
        retried = stats.retried.load(Ordering::Relaxed),
        channels_declared_dead = stats.channels_declared_dead.load(Ordering::Relaxed),
        "oplock break sent again on the next channel"
    );
    if !deliver(server, session, frame, Some(dead)) {
        server
            .break_stats
            .undeliverable
            .fetch_add(1, Ordering::Relaxed);
        warn!(
            session = session.id,
            "no live channel left for an oplock break"
        );
    }
}

/// Nudge connections whose parked requests wait for a break that has now completed.
pub fn kick(server: &ServerState, waiters: Vec<ConnHandle>) {
    for to in waiters {
        server.post(ReactorMsg::Kick { to });
    }
}

/// MS-SMB2 3.3.4.6: oplock breaks go to a channel of the open's own session: the oldest live
/// one (`spec`), or the newest as Windows does (`windows`).
fn deliver(
    server: &ServerState,
    session: &Arc<Session>,
    frame: Vec<u8>,
    skip: Option<ConnHandle>,
) -> bool {
    let mut channels = session.connections();
    if server.config.break_retry == BreakRetry::Windows {
        channels.reverse();
    }
    for to in channels.into_iter().filter(|c| Some(*c) != skip) {
        let msg = ReactorMsg::Break {
            to,
            frame: frame.clone(),
            session: Arc::downgrade(session),
        };
        if server.post(msg) {
            debug!(session = session.id, ?to, "oplock break sent");
            return true;
        }
    }
    false
}

/// The notification frame (MS-SMB2 2.2.23.1): MessageId all-ones, no session or tree, not
/// signed; encrypted when the session encrypts its traffic.
fn break_frame(session: &Arc<Session>, file_id: [u8; 16], level: u8) -> Vec<u8> {
    let security = session.security.get();
    let encryptor = security
        .filter(|s| s.encrypt_data)
        .and_then(|s| s.encryptor.as_ref().map(|e| (s, e)));
    let hdr = Header {
        command: Command::OplockBreak as u16,
        flags: flags::SERVER_TO_REDIR,
        message_id: NOTIFICATION_MESSAGE_ID,
        ..Default::default()
    };
    let base = FRAME_HEADER_BYTES
        + if encryptor.is_some() {
            TRANSFORM_HEADER_BYTES
        } else {
            0
        };
    let mut buf = vec![0u8; base];
    hdr.encode(&mut buf);
    oplock_break::encode(level, &file_id, &mut buf);
    if let Some((sec, enc)) = encryptor {
        enc.encrypt_in_place(
            &sec.next_nonce(),
            session.id,
            &mut buf[FRAME_HEADER_BYTES..],
        );
    }
    let len = buf.len() - FRAME_HEADER_BYTES;
    write_frame_header(&mut buf, len);
    buf
}
