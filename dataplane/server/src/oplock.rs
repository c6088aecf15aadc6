//! Oplock break delivery (MS-SMB2 3.3.4.6): a break notification goes to one connection of the
//! session that owns the open — the oldest one still alive — through that connection's reactor.

use std::sync::Arc;

use smb3d_protocol::framing::{write_frame_header, FRAME_HEADER_BYTES};
use smb3d_protocol::header::{flags, Command, Header};
use smb3d_protocol::messages::oplock_break::{self, NOTIFICATION_MESSAGE_ID};
use smb3d_protocol::transform::TRANSFORM_HEADER_BYTES;
use tracing::{debug, warn};

use crate::mailbox::{ConnHandle, ReactorMsg};
use crate::server::ServerState;
use crate::session::Session;
use crate::storage::file_table::BreakNotice;

/// Send each notice; a holder that can no longer be reached is left to the break timeout.
pub fn send_breaks(server: &ServerState, notices: Vec<BreakNotice>) {
    for notice in notices {
        let Some(session) = notice.target.session.upgrade() else {
            continue;
        };
        let frame = break_frame(&session, notice.target.file_id.encode(), notice.level);
        if !deliver(server, &session, frame) {
            warn!(
                session = session.id,
                "oplock break could not be delivered on any channel"
            );
        }
    }
}

/// Nudge connections whose parked requests wait for a break that has now completed.
pub fn kick(server: &ServerState, waiters: Vec<ConnHandle>) {
    for to in waiters {
        server.post(ReactorMsg::Kick { to });
    }
}

/// MS-SMB2 3.3.4.6: oplock breaks go to a channel of the open's own session; the oldest first.
fn deliver(server: &ServerState, session: &Session, frame: Vec<u8>) -> bool {
    for to in session.connections() {
        if server.post(ReactorMsg::Send {
            to,
            frame: frame.clone(),
        }) {
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
