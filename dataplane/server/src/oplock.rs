//! Break delivery. An oplock break (MS-SMB2 3.3.4.6) goes to one connection of the session that
//! owns the open; a lease break (3.3.4.7) to one connection of the client, whatever session
//! opened the file — the oldest one still alive, through that connection's reactor. The
//! reactor watches delivery (`reactor/ring.rs`) and hands a break back here when its channel
//! turns out dead.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use smb3d_protocol::framing::{write_frame_header, FRAME_HEADER_BYTES};
use smb3d_protocol::header::{flags, Command, Header};
use smb3d_protocol::messages::lease::LeaseBreakNotification;
use smb3d_protocol::messages::oplock_break::{self, NOTIFICATION_MESSAGE_ID};
use smb3d_protocol::transform::TRANSFORM_HEADER_BYTES;
use tracing::{debug, warn};

use crate::mailbox::{ConnHandle, ReactorMsg};
use crate::server::{BreakRetry, ServerState};
use crate::session::Session;
use crate::storage::file_table::BreakNotice;
use crate::storage::worker_registry::BreakRequest;

/// Which channels may carry a break: the next one is tried when a channel dies.
#[derive(Clone, Debug)]
pub enum BreakRoute {
    /// An oplock break: the channels of the open's session.
    Session(Weak<Session>),
    /// A lease break: every connection of the client with this ClientGuid.
    Client([u8; 16]),
}

/// Send each notice; a holder that can no longer be reached is left to the break timeout.
pub fn send_breaks(server: &ServerState, notices: Vec<BreakNotice>) {
    for notice in notices {
        let (route, frame) = match notice {
            BreakNotice::Oplock { target, level } => {
                let Some(session) = target.session.upgrade() else {
                    crate::durable::purge(server, target.file_id);
                    continue;
                };
                let frame = oplock_break_frame(&session, target.file_id.encode(), level);
                (BreakRoute::Session(target.session), frame)
            }
            BreakNotice::Lease {
                client_guid,
                notification,
            } => {
                // MS-SMB2 3.3.4.7: a client without a connection left has only disconnected
                // durable opens under the lease; they are closed instead of broken.
                if server.clients.connections(&client_guid).is_empty()
                    && crate::durable::purge_lease(server, client_guid, notification.key)
                {
                    continue;
                }
                (
                    BreakRoute::Client(client_guid),
                    lease_break_frame(&notification),
                )
            }
            BreakNotice::Worker { worker, request } => {
                ask_worker(server, worker, &request);
                continue;
            }
        };
        server.break_stats.sent.fetch_add(1, Ordering::Relaxed);
        if !deliver(server, &route, frame, None) {
            server
                .break_stats
                .undeliverable
                .fetch_add(1, Ordering::Relaxed);
            warn!(?route, "break could not be delivered on any channel");
        }
    }
}

/// Ask another worker process to break what its opens cache on a file. A worker that cannot be
/// told is left to the break timeout (or to its death, which drops its holdings).
fn ask_worker(server: &ServerState, worker: usize, request: &BreakRequest) {
    let Some(handoff) = &server.handoff else {
        return;
    };
    match handoff.request_break(worker, request) {
        Ok(()) => debug!(worker, ?request, "break asked of another worker"),
        Err(e) => warn!(worker, error = %e, "cannot ask another worker for a break"),
    }
}

/// A break was sent on `dead`, whose peer never acknowledged it: send the same break (same
/// bytes, same lease epoch) on the next live channel. Oplock breaks are sent again only under
/// the `spec` policy; lease breaks always (Windows retries lease breaks too).
pub fn redeliver(server: &ServerState, route: &BreakRoute, frame: Vec<u8>, dead: ConnHandle) {
    match route {
        BreakRoute::Session(session) => {
            let Some(session) = session.upgrade() else {
                return;
            };
            session.detach_connection(dead);
            if server.config.break_retry != BreakRetry::Spec {
                return;
            }
        }
        BreakRoute::Client(guid) => server.clients.remove(guid, dead),
    }
    server.break_stats.retried.fetch_add(1, Ordering::Relaxed);
    let stats = &server.break_stats;
    tracing::info!(
        ?route,
        sent = stats.sent.load(Ordering::Relaxed),
        transport_acked = stats.transport_acked.load(Ordering::Relaxed),
        retried = stats.retried.load(Ordering::Relaxed),
        channels_declared_dead = stats.channels_declared_dead.load(Ordering::Relaxed),
        "break sent again on the next channel"
    );
    if !deliver(server, route, frame, Some(dead)) {
        server
            .break_stats
            .undeliverable
            .fetch_add(1, Ordering::Relaxed);
        warn!(?route, "no live channel left for a break");
    }
}

/// Nudge connections whose parked requests wait for a break that has now completed.
pub fn kick(server: &ServerState, waiters: Vec<ConnHandle>) {
    for to in waiters {
        server.post(ReactorMsg::Kick { to });
    }
}

/// The channels `route` allows, in the order they are tried. MS-SMB2 3.3.4.6: oplock breaks go
/// to the oldest live channel of the open's session (`spec`), or the newest as Windows does
/// (`windows`). MS-SMB2 3.3.4.7: lease breaks to the client's oldest live connection, even when
/// the lease's opens were made over another one (smbtorture smb2.lease.v2_complex1 expects the
/// break of a lease opened over a second connection on the first, as Windows and Samba send it).
fn channels(server: &ServerState, route: &BreakRoute) -> Vec<ConnHandle> {
    match route {
        BreakRoute::Session(session) => {
            let Some(session) = session.upgrade() else {
                return Vec::new();
            };
            let mut channels = session.connections();
            if server.config.break_retry == BreakRetry::Windows {
                channels.reverse();
            }
            channels
        }
        BreakRoute::Client(guid) => server.clients.connections(guid),
    }
}

fn deliver(
    server: &ServerState,
    route: &BreakRoute,
    frame: Vec<u8>,
    skip: Option<ConnHandle>,
) -> bool {
    for to in channels(server, route)
        .into_iter()
        .filter(|c| Some(*c) != skip)
    {
        let msg = ReactorMsg::Break {
            to,
            frame: frame.clone(),
            route: route.clone(),
        };
        if server.post(msg) {
            debug!(?route, ?to, "break sent");
            return true;
        }
    }
    false
}

/// A lease break notification frame (MS-SMB2 3.3.4.7): MessageId all-ones, SessionId and TreeId
/// 0, neither signed nor encrypted (it belongs to no session).
fn lease_break_frame(notification: &LeaseBreakNotification) -> Vec<u8> {
    let hdr = Header {
        command: Command::OplockBreak as u16,
        flags: flags::SERVER_TO_REDIR,
        message_id: NOTIFICATION_MESSAGE_ID,
        ..Default::default()
    };
    let mut buf = vec![0u8; FRAME_HEADER_BYTES];
    hdr.encode(&mut buf);
    notification.encode(&mut buf);
    let len = buf.len() - FRAME_HEADER_BYTES;
    write_frame_header(&mut buf, len);
    buf
}

/// The notification frame (MS-SMB2 2.2.23.1): MessageId all-ones, no session or tree, not
/// signed; encrypted when the session encrypts its traffic.
fn oplock_break_frame(session: &Arc<Session>, file_id: [u8; 16], level: u8) -> Vec<u8> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::{NoUsers, ServerConfig};

    const GUID: [u8; 16] = [0x5A; 16];

    fn conn(slot: u32) -> ConnHandle {
        ConnHandle {
            reactor: 0,
            slot,
            gen: 1,
        }
    }

    #[test]
    fn lease_breaks_go_to_the_oldest_live_connection_and_are_retried_in_both_policies() {
        for break_retry in [BreakRetry::Spec, BreakRetry::Windows] {
            let config = ServerConfig {
                break_retry,
                ..ServerConfig::default()
            };
            let server = ServerState::new(config, Vec::new(), Arc::new(NoUsers), [1; 16]);
            for slot in [1, 2, 3] {
                server.clients.add(GUID, conn(slot));
            }
            let route = BreakRoute::Client(GUID);
            assert_eq!(channels(&server, &route), [conn(1), conn(2), conn(3)]);
            // The oldest channel died with the break unacknowledged: it is forgotten and the
            // break is sent again (here no reactor takes it, so it counts as undeliverable).
            redeliver(&server, &route, vec![0; 8], conn(1));
            assert_eq!(channels(&server, &route), [conn(2), conn(3)]);
            assert_eq!(server.break_stats.retried.load(Ordering::Relaxed), 1);
            assert_eq!(server.break_stats.undeliverable.load(Ordering::Relaxed), 1);
        }
    }

    #[test]
    fn lease_break_frame_is_a_notification_outside_any_session() {
        let notification = LeaseBreakNotification {
            new_epoch: 3,
            flags: smb3d_protocol::messages::lease::NOTIFY_ACK_REQUIRED,
            key: [7; 16],
            current_state: 7,
            new_state: 3,
        };
        let frame = lease_break_frame(&notification);
        let msg = &frame[FRAME_HEADER_BYTES..];
        let hdr = Header::decode(msg).unwrap();
        assert_eq!(hdr.command, Command::OplockBreak as u16);
        assert_eq!(
            (hdr.message_id, hdr.session_id),
            (NOTIFICATION_MESSAGE_ID, 0)
        );
        assert_eq!(LeaseBreakNotification::decode(msg), Ok(notification));
    }
}
