//! Moving a connection to the worker process that owns its client or its session
//! (`smb3d serve --workers N`).
//!
//! Sessions, opens and oplock state are per process, so every connection must live where its
//! state is. Two pure functions say where, so every worker agrees without asking anyone: the
//! owner of a client is a hash of its ClientGuid ([`owner_of`]), and the owner of a session is
//! written in its id ([`session_owner`]). A connection moves at most once per request:
//! - at its NEGOTIATE, to its client's owner, which replays that NEGOTIATE itself (Samba bug
//!   15346 was a double handoff of such a connection);
//! - at a binding SESSION_SETUP naming another worker's session, after NEGOTIATE was answered:
//!   then its negotiated state travels along ([`record::ConnectionRecord`]) and the owner runs
//!   the SESSION_SETUP as if it had read it itself.
//!
//! The client sees nothing either way. A reconnect's PreviousSessionId naming another worker's
//! session does not move the connection (its new session belongs with its client); the owner
//! is told to end the previous session instead ([`Handoff::end_session`]).
//!
//! A message is one SOCK_SEQPACKET datagram to the owner's inbox: a header (magic, version,
//! kind, record length), a record, the bytes already read from the connection, and its
//! descriptor in SCM_RIGHTS (none for an end-session or break-request message).
//!
//! Opens are per process too, but every worker sees what the others hold on a file through
//! the worker registry (`storage/worker_registry.rs`); a worker whose new open conflicts with
//! another's caching asks it for the break with a break-request message
//! ([`Handoff::request_break`]).

pub mod record;

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use smb3d_protocol::wire::{Reader, Writer};

use record::{ConnectionRecord, MAX_RECORD_BYTES};

use crate::storage::file_table::FileKey;
use crate::storage::worker_registry::{BreakRequest, Holding};

/// Bytes of a connection carried along at most: the request that moves it and what followed.
pub const MAX_HANDOFF_BYTES: usize = 64 * 1024;

const MAGIC: u32 = 0x534d_4248; // "SMBH"
/// Layout version of the message header and of the fresh, end-session and break-request
/// records.
const MESSAGE_VERSION: u8 = 1;
const HEADER_BYTES: usize = 8;
/// User and domain names of an end-session message, at most (bytes of UTF-8 each).
const MAX_NAME_BYTES: usize = 1024;

/// Session ids carry their owning worker in these bits (see [`session_owner`]).
pub const SESSION_OWNER_SHIFT: u32 = 48;
const SESSION_OWNER_MASK: u64 = 0xff;

/// What a message to an inbox is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Kind {
    /// A connection before its NEGOTIATE was answered.
    Fresh = 1,
    /// A negotiated connection, with its state.
    Negotiated = 2,
    /// End a session of the receiver (a reconnect named it as PreviousSessionId).
    EndSession = 3,
    /// Break what the receiver's opens of a file cache (a conflicting open elsewhere).
    BreakRequest = 4,
}

/// Bytes of a break-request record: device, inode, holding bits, flags.
const BREAK_REQUEST_BYTES: usize = 8 + 8 + 2 + 1;
/// Flags of a break-request record.
mod break_flags {
    pub const OVERWRITE: u8 = 0x1;
    pub const STAT_OPEN: u8 = 0x2;
    pub const LEASE_STAT_OPEN: u8 = 0x4;
    pub const DELETE_ON_CLOSE: u8 = 0x8;
    pub const ALL: u8 = OVERWRITE | STAT_OPEN | LEASE_STAT_OPEN | DELETE_ON_CLOSE;
}

/// This process's place among the workers, and the inboxes of all of them.
#[derive(Debug)]
pub struct Handoff {
    pub worker: usize,
    /// Sending ends of every worker's inbox, by worker index.
    inboxes: Vec<OwnedFd>,
}

/// The state a handed-over connection arrives in.
#[derive(Debug)]
pub enum AdoptedState {
    /// Not negotiated yet: the client's next MessageId (1 after an SMB1 negotiate, else 0).
    Fresh {
        next_message_id: u64,
    },
    Negotiated(Box<ConnectionRecord>),
}

/// A connection received from another worker.
#[derive(Debug)]
pub struct Adoption {
    pub fd: OwnedFd,
    pub state: AdoptedState,
    /// Bytes already read from the connection, to be processed before anything else.
    pub bytes: Vec<u8>,
}

/// A message taken from an inbox.
#[derive(Debug)]
pub enum InboxMessage {
    Adopt(Adoption),
    /// End this session if `user`/`domain` owns it (MS-SMB2 3.3.5.5.3 PreviousSessionId).
    EndSession {
        session_id: u64,
        user: String,
        domain: String,
    },
    /// Break what this worker's opens cache on a file.
    BreakRequest(BreakRequest),
}

/// The worker owning session `session_id`, when ids are allocated by [`session_id_base`].
pub fn session_owner(session_id: u64) -> usize {
    ((session_id >> SESSION_OWNER_SHIFT) & SESSION_OWNER_MASK) as usize
}

/// The owner bits of the session ids worker `worker` allocates.
pub fn session_id_base(worker: usize) -> u64 {
    (worker as u64 & SESSION_OWNER_MASK) << SESSION_OWNER_SHIFT
}

impl Handoff {
    pub fn new(worker: usize, inboxes: Vec<OwnedFd>) -> Handoff {
        Handoff { worker, inboxes }
    }

    pub fn workers(&self) -> usize {
        self.inboxes.len()
    }

    /// The worker owning the client with this ClientGuid.
    pub fn owner_of(&self, client_guid: &[u8; 16]) -> usize {
        owner_of(client_guid, self.workers())
    }

    /// Another worker that owns session `session_id`, if it is not this one.
    pub fn other_session_owner(&self, session_id: u64) -> Option<usize> {
        let owner = session_owner(session_id);
        (owner != self.worker && owner < self.workers()).then_some(owner)
    }

    /// Send `fd`, in `state`, and its already-read `bytes` to worker `owner`.
    pub fn send(
        &self,
        owner: usize,
        fd: BorrowedFd,
        state: &AdoptedState,
        bytes: &[u8],
    ) -> std::io::Result<()> {
        if bytes.len() > MAX_HANDOFF_BYTES {
            return Err(std::io::Error::other("too many bytes to hand over"));
        }
        let (kind, record) = match state {
            AdoptedState::Fresh { next_message_id } => {
                (Kind::Fresh, next_message_id.to_le_bytes().to_vec())
            }
            AdoptedState::Negotiated(r) => {
                let mut out = Vec::new();
                r.encode(&mut out);
                (Kind::Negotiated, out)
            }
        };
        let fds = [fd.as_raw_fd()];
        self.send_message(owner, kind, &record, bytes, &fds)
    }

    /// Ask worker `owner` to end its session `session_id` if `user`/`domain` owns it.
    pub fn end_session(
        &self,
        owner: usize,
        session_id: u64,
        user: &str,
        domain: &str,
    ) -> std::io::Result<()> {
        if user.len() > MAX_NAME_BYTES || domain.len() > MAX_NAME_BYTES {
            return Err(std::io::Error::other("user or domain name too long"));
        }
        let mut record = Vec::new();
        record.put_u64(session_id);
        for name in [user, domain] {
            record.put_u16(name.len() as u16);
            record.put_bytes(name.as_bytes());
        }
        self.send_message(owner, Kind::EndSession, &record, &[], &[])
    }

    /// Ask worker `owner` to break what its opens of a file cache (see [`BreakRequest`]).
    pub fn request_break(&self, owner: usize, request: &BreakRequest) -> std::io::Result<()> {
        let mut record = Vec::with_capacity(BREAK_REQUEST_BYTES);
        record.put_u64(request.key.device);
        record.put_u64(request.key.inode);
        record.put_u16(request.holding.to_bits());
        let mut flags = 0;
        for (on, flag) in [
            (request.overwrite, break_flags::OVERWRITE),
            (request.stat_open, break_flags::STAT_OPEN),
            (request.lease_stat_open, break_flags::LEASE_STAT_OPEN),
            (request.delete_on_close, break_flags::DELETE_ON_CLOSE),
        ] {
            if on {
                flags |= flag;
            }
        }
        record.put_u8(flags);
        self.send_message(owner, Kind::BreakRequest, &record, &[], &[])
    }

    fn send_message(
        &self,
        owner: usize,
        kind: Kind,
        record: &[u8],
        bytes: &[u8],
        fds: &[RawFd],
    ) -> std::io::Result<()> {
        if record.len() > MAX_RECORD_BYTES {
            return Err(std::io::Error::other("handoff record too long"));
        }
        let inbox = self
            .inboxes
            .get(owner)
            .ok_or_else(|| std::io::Error::other("no such worker"))?;
        let mut header = Vec::with_capacity(HEADER_BYTES);
        header.put_u32(MAGIC);
        header.put_u8(MESSAGE_VERSION);
        header.put_u8(kind as u8);
        header.put_u16(record.len() as u16);
        let iov = [
            IoSlice::new(&header),
            IoSlice::new(record),
            IoSlice::new(bytes),
        ];
        let rights = [ControlMessage::ScmRights(fds)];
        let cmsg: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
        sendmsg::<()>(inbox.as_raw_fd(), &iov, cmsg, MsgFlags::MSG_NOSIGNAL, None)?;
        Ok(())
    }
}

/// The owner of a ClientGuid among `workers` (stable across processes and restarts).
pub fn owner_of(client_guid: &[u8; 16], workers: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325; // FNV-1a
    for b in client_guid {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // Final avalanche so the low bits depend on every byte.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    (h % workers.max(1) as u64) as usize
}

/// Take in connections handed to this worker and give them to the reactors in turn, and end
/// sessions other workers ask to end. Runs on its own thread until the inbox closes.
pub fn spawn_inbox(
    server: std::sync::Arc<crate::server::ServerState>,
    inbox: OwnedFd,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    use std::os::fd::AsFd;
    std::thread::Builder::new()
        .name("handoff-inbox".into())
        .spawn(move || {
            let mut next = 0usize;
            loop {
                match receive(inbox.as_fd()) {
                    Ok(InboxMessage::Adopt(adoption)) => {
                        let reactors = server.reactor_count().max(1);
                        let reactor = (next % reactors) as u16;
                        next = next.wrapping_add(1);
                        if !server.post(crate::mailbox::ReactorMsg::Adopt { reactor, adoption }) {
                            tracing::warn!(
                                reactor,
                                "reactor mailbox full; handed-over connection dropped"
                            );
                        }
                    }
                    Ok(InboxMessage::EndSession {
                        session_id,
                        user,
                        domain,
                    }) => {
                        let identity = crate::session::Identity::User { user, domain };
                        crate::commands::session_setup::end_previous_session(
                            &server, session_id, &identity,
                        );
                    }
                    Ok(InboxMessage::BreakRequest(request)) => {
                        let notices = server.files.break_for_worker(&request);
                        crate::oplock::send_breaks(&server, notices);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return,
                    Err(e) => tracing::warn!(error = %e, "bad handoff message"),
                }
            }
        })
}

/// Receive one message from `inbox` (blocking). Whatever another process wrote is checked
/// like peer data.
pub fn receive(inbox: BorrowedFd) -> std::io::Result<InboxMessage> {
    let mut buf = vec![0u8; HEADER_BYTES + MAX_RECORD_BYTES + MAX_HANDOFF_BYTES];
    let mut cmsg_space = nix::cmsg_space!([RawFd; 1]);
    let (len, fds, truncated) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<()>(
            inbox.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg_space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )?;
        let mut fds: Vec<OwnedFd> = Vec::new();
        for c in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(received) = c {
                for raw in received {
                    // SAFETY: SCM_RIGHTS gave this process a new descriptor nobody else owns;
                    // wrapping it at once makes sure it is closed on every path.
                    fds.push(unsafe { OwnedFd::from_raw_fd(raw) });
                }
            }
        }
        let truncated = msg
            .flags
            .intersects(MsgFlags::MSG_CTRUNC | MsgFlags::MSG_TRUNC);
        (msg.bytes, fds, truncated)
    };
    if len == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "inbox closed",
        ));
    }
    if truncated {
        return Err(std::io::Error::other("truncated handoff message"));
    }
    decode_message(&buf[..len], fds)
        .map_err(|why| std::io::Error::other(format!("malformed handoff message: {why}")))
}

/// Parse one inbox message; `fds` are the descriptors that came with it.
fn decode_message(msg: &[u8], fds: Vec<OwnedFd>) -> Result<InboxMessage, &'static str> {
    let short = |_| "message truncated";
    let mut r = Reader::new(msg);
    if r.u32().map_err(short)? != MAGIC {
        return Err("bad magic");
    }
    if r.u8().map_err(short)? != MESSAGE_VERSION {
        return Err("unknown version");
    }
    let kind = r.u8().map_err(short)?;
    let record_len = r.u16().map_err(short)? as usize;
    if record_len > MAX_RECORD_BYTES {
        return Err("record too long");
    }
    let record = r.bytes(record_len).map_err(short)?;
    let bytes = r.rest();
    if kind == Kind::EndSession as u8 {
        if !fds.is_empty() || !bytes.is_empty() {
            return Err("end-session message with a connection");
        }
        return decode_end_session(record);
    }
    if kind == Kind::BreakRequest as u8 {
        if !fds.is_empty() || !bytes.is_empty() {
            return Err("break-request message with a connection");
        }
        return decode_break_request(record).map(InboxMessage::BreakRequest);
    }
    let mut fds = fds.into_iter();
    let (Some(fd), None) = (fds.next(), fds.next()) else {
        return Err("a connection message needs exactly one descriptor");
    };
    if bytes.len() > MAX_HANDOFF_BYTES {
        return Err("too many connection bytes");
    }
    let state = if kind == Kind::Fresh as u8 {
        let next_message_id = record
            .try_into()
            .map(u64::from_le_bytes)
            .map_err(|_| "bad fresh record")?;
        AdoptedState::Fresh { next_message_id }
    } else if kind == Kind::Negotiated as u8 {
        let record = ConnectionRecord::decode(record).map_err(|e| e.0)?;
        AdoptedState::Negotiated(Box::new(record))
    } else {
        return Err("unknown message kind");
    };
    Ok(InboxMessage::Adopt(Adoption {
        fd,
        state,
        bytes: bytes.to_vec(),
    }))
}

fn decode_break_request(record: &[u8]) -> Result<BreakRequest, &'static str> {
    let short = |_| "break-request record truncated";
    let mut r = Reader::new(record);
    let key = FileKey {
        device: r.u64().map_err(short)?,
        inode: r.u64().map_err(short)?,
    };
    let holding = Holding::from_bits(r.u16().map_err(short)?).ok_or("unknown holding bits")?;
    let flags = r.u8().map_err(short)?;
    if flags & !break_flags::ALL != 0 {
        return Err("unknown break-request flags");
    }
    if r.remaining() != 0 {
        return Err("bytes after the break-request record");
    }
    Ok(BreakRequest {
        key,
        holding,
        overwrite: flags & break_flags::OVERWRITE != 0,
        stat_open: flags & break_flags::STAT_OPEN != 0,
        lease_stat_open: flags & break_flags::LEASE_STAT_OPEN != 0,
        delete_on_close: flags & break_flags::DELETE_ON_CLOSE != 0,
    })
}

fn decode_end_session(record: &[u8]) -> Result<InboxMessage, &'static str> {
    let short = |_| "end-session record truncated";
    let mut r = Reader::new(record);
    let session_id = r.u64().map_err(short)?;
    let mut names = [String::new(), String::new()];
    for name in names.iter_mut() {
        let len = r.u16().map_err(short)? as usize;
        if len > MAX_NAME_BYTES {
            return Err("name too long");
        }
        let bytes = r.bytes(len).map_err(short)?;
        *name = std::str::from_utf8(bytes)
            .map_err(|_| "name not UTF-8")?
            .to_string();
    }
    if r.remaining() != 0 {
        return Err("bytes after the end-session record");
    }
    let [user, domain] = names;
    Ok(InboxMessage::EndSession {
        session_id,
        user,
        domain,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    use std::io::{Read, Write};
    use std::os::fd::AsFd;

    fn inbox_pair() -> (OwnedFd, OwnedFd) {
        socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap()
    }

    fn adopted(msg: InboxMessage) -> Adoption {
        match msg {
            InboxMessage::Adopt(a) => a,
            other => panic!("expected a connection, got {other:?}"),
        }
    }

    #[test]
    fn owner_is_stable_and_spread() {
        let guid = [7u8; 16];
        assert_eq!(owner_of(&guid, 4), owner_of(&guid, 4));
        assert_eq!(owner_of(&guid, 1), 0);
        let owners: std::collections::HashSet<usize> =
            (0u8..64).map(|i| owner_of(&[i; 16], 4)).collect();
        assert_eq!(owners.len(), 4);
    }

    #[test]
    fn session_ids_name_their_owner() {
        for worker in [0, 1, 5, 63] {
            let id = session_id_base(worker) | 0x0000_1234_5678_0001;
            assert_eq!(session_owner(id), worker);
        }
        let (_rx, tx0) = inbox_pair();
        let (_rx1, tx1) = inbox_pair();
        let handoff = Handoff::new(0, vec![tx0, tx1]);
        assert_eq!(handoff.other_session_owner(session_id_base(1) | 7), Some(1));
        assert_eq!(handoff.other_session_owner(session_id_base(0) | 7), None);
        // An id naming a worker that does not exist stays here (and is not found).
        assert_eq!(handoff.other_session_owner(session_id_base(9) | 7), None);
    }

    #[test]
    fn descriptor_and_bytes_travel() {
        let (inbox_rx, inbox_tx) = inbox_pair();
        let handoff = Handoff::new(0, vec![inbox_tx]);
        let (mut ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let fresh = AdoptedState::Fresh { next_message_id: 1 };
        handoff
            .send(0, theirs.as_fd(), &fresh, b"negotiate bytes")
            .unwrap();
        drop(theirs);
        let adoption = adopted(receive(inbox_rx.as_fd()).unwrap());
        assert_eq!(adoption.bytes, b"negotiate bytes");
        assert!(matches!(
            adoption.state,
            AdoptedState::Fresh { next_message_id: 1 }
        ));
        // The received descriptor is the same connection.
        let mut adopted = std::os::unix::net::UnixStream::from(adoption.fd);
        ours.write_all(b"ping").unwrap();
        let mut got = [0u8; 4];
        adopted.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ping");
        assert!(handoff
            .send(0, ours.as_fd(), &fresh, &vec![0u8; MAX_HANDOFF_BYTES + 1])
            .is_err());
    }

    #[test]
    fn negotiated_state_travels() {
        let (inbox_rx, inbox_tx) = inbox_pair();
        let handoff = Handoff::new(0, vec![inbox_tx]);
        let (_ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let info = crate::commands::negotiate::ConnectionInfo {
            dialect: Some(smb3d_protocol::dialect::Dialect::Smb302),
            client_guid: [3; 16],
            ..Default::default()
        };
        let record = ConnectionRecord {
            info,
            credit_low: 5,
            credits_used: vec![false; 31],
            next_async_id: 1,
            force_unacked: false,
            moved_message_id: 5,
        };
        let state = AdoptedState::Negotiated(Box::new(record));
        handoff.send(0, theirs.as_fd(), &state, b"bind").unwrap();
        let adoption = adopted(receive(inbox_rx.as_fd()).unwrap());
        let AdoptedState::Negotiated(back) = adoption.state else {
            panic!("state lost its kind");
        };
        assert_eq!(back.info.client_guid, [3; 16]);
        assert_eq!(back.credits_used.len(), 31);
        assert_eq!(back.moved_message_id, 5);
        assert_eq!(adoption.bytes, b"bind");
    }

    #[test]
    fn end_session_travels_without_a_descriptor() {
        let (inbox_rx, inbox_tx) = inbox_pair();
        let handoff = Handoff::new(0, vec![inbox_tx]);
        handoff.end_session(0, 0x42, "alice", "DOM").unwrap();
        match receive(inbox_rx.as_fd()).unwrap() {
            InboxMessage::EndSession {
                session_id,
                user,
                domain,
            } => assert_eq!(
                (session_id, user.as_str(), domain.as_str()),
                (0x42, "alice", "DOM")
            ),
            other => panic!("expected end-session, got {other:?}"),
        }
    }

    #[test]
    fn break_request_travels_without_a_descriptor() {
        let (inbox_rx, inbox_tx) = inbox_pair();
        let handoff = Handoff::new(0, vec![inbox_tx]);
        let request = BreakRequest {
            key: FileKey {
                device: 3,
                inode: 0x1234_5678_9abc,
            },
            holding: Holding::OPEN | Holding::WRITE | Holding::DENY_READ,
            overwrite: true,
            stat_open: false,
            lease_stat_open: false,
            delete_on_close: true,
        };
        handoff.request_break(0, &request).unwrap();
        match receive(inbox_rx.as_fd()).unwrap() {
            InboxMessage::BreakRequest(got) => assert_eq!(got, request),
            other => panic!("expected a break request, got {other:?}"),
        }
        let mut record = Vec::new();
        record.put_u64(1);
        record.put_u64(2);
        record.put_u16(0x8000); // not a holding bit
        record.put_u8(0);
        assert!(decode_break_request(&record).is_err());
        record[16] = 0;
        record[17] = 0;
        assert!(decode_break_request(&record).is_ok());
        record[18] = 0x80; // not a flag
        assert!(decode_break_request(&record).is_err());
        assert!(decode_break_request(&record[..18]).is_err());
    }

    #[test]
    fn malformed_messages_are_refused() {
        let (_ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let fd = || vec![OwnedFd::from(theirs.try_clone().unwrap())];
        let mut good = Vec::new();
        good.put_u32(MAGIC);
        good.put_u8(MESSAGE_VERSION);
        good.put_u8(Kind::Fresh as u8);
        good.put_u16(8);
        good.put_u64(0);
        assert!(decode_message(&good, fd()).is_ok());
        for len in 0..good.len() {
            assert!(decode_message(&good[..len], fd()).is_err(), "cut to {len}");
        }
        assert!(decode_message(&good, Vec::new()).is_err(), "no descriptor");
        let mut two = fd();
        two.extend(fd());
        assert!(decode_message(&good, two).is_err(), "two descriptors");
        let mut bad_kind = good.clone();
        bad_kind[5] = 9;
        assert!(decode_message(&bad_kind, fd()).is_err());
        let mut bad_version = good.clone();
        bad_version[4] = MESSAGE_VERSION + 1;
        assert!(decode_message(&bad_version, fd()).is_err());
        let mut end = Vec::new();
        end.put_u32(MAGIC);
        end.put_u8(MESSAGE_VERSION);
        end.put_u8(Kind::EndSession as u8);
        end.put_u16(12);
        end.put_u64(1);
        end.put_u16(0xffff); // a name longer than the record
        end.put_u16(0);
        assert!(decode_message(&end, Vec::new()).is_err());
    }
}
