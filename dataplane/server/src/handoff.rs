//! Moving a connection to the worker process that owns its client (`smb3d serve --workers N`).
//!
//! Every connection of one client — all the channels of its sessions — must live in one
//! process, because sessions, opens and oplock state are per process. The owner of a client is
//! a pure function of its ClientGuid, so every worker agrees without asking anyone, and a
//! connection is handed over at most once, when its NEGOTIATE is read: the receiving worker
//! replays that NEGOTIATE itself and the client sees nothing (Samba bug 15346 was a double
//! handoff of such a connection).
//!
//! A handoff is one SOCK_SEQPACKET message to the owner's inbox: a small header, the bytes
//! already read from the connection, and its descriptor in SCM_RIGHTS.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

/// Bytes of a connection carried along at most: one NEGOTIATE and whatever followed it.
pub const MAX_HANDOFF_BYTES: usize = 64 * 1024;

const MAGIC: u32 = 0x534d_4248; // "SMBH"
const HEADER_BYTES: usize = 12;

/// This process's place among the workers, and the inboxes of all of them.
#[derive(Debug)]
pub struct Handoff {
    pub worker: usize,
    /// Sending ends of every worker's inbox, by worker index.
    inboxes: Vec<OwnedFd>,
}

/// A connection received from another worker.
#[derive(Debug)]
pub struct Adoption {
    pub fd: OwnedFd,
    /// The MessageId the client will use next (1 after an SMB1 negotiate, else 0).
    pub next_message_id: u64,
    /// Bytes already read from the connection, to be processed before anything else.
    pub bytes: Vec<u8>,
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

    /// Send `fd` and its already-read `bytes` to worker `owner`.
    pub fn send(
        &self,
        owner: usize,
        fd: BorrowedFd,
        next_message_id: u64,
        bytes: &[u8],
    ) -> std::io::Result<()> {
        if bytes.len() > MAX_HANDOFF_BYTES {
            return Err(std::io::Error::other("too many bytes to hand over"));
        }
        let inbox = self
            .inboxes
            .get(owner)
            .ok_or_else(|| std::io::Error::other("no such worker"))?;
        let mut header = [0u8; HEADER_BYTES];
        header[..4].copy_from_slice(&MAGIC.to_le_bytes());
        header[4..].copy_from_slice(&next_message_id.to_le_bytes());
        let iov = [IoSlice::new(&header), IoSlice::new(bytes)];
        let fds = [fd.as_raw_fd()];
        let cmsg = [ControlMessage::ScmRights(&fds)];
        sendmsg::<()>(inbox.as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None)?;
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

/// Take in connections handed to this worker and give them to the reactors in turn. Runs on
/// its own thread until the inbox closes.
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
                    Ok(adoption) => {
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
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return,
                    Err(e) => tracing::warn!(error = %e, "bad handoff message"),
                }
            }
        })
}

/// Receive one handed-over connection from `inbox` (blocking).
pub fn receive(inbox: BorrowedFd) -> std::io::Result<Adoption> {
    let mut buf = vec![0u8; HEADER_BYTES + MAX_HANDOFF_BYTES];
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
    if truncated || fds.len() != 1 || len < HEADER_BYTES || buf[..4] != MAGIC.to_le_bytes() {
        return Err(std::io::Error::other("malformed handoff message"));
    }
    let next_message_id = u64::from_le_bytes(buf[4..12].try_into().unwrap_or([0; 8]));
    buf.truncate(len);
    let bytes = buf.split_off(HEADER_BYTES);
    let fd = fds
        .into_iter()
        .next()
        .ok_or_else(|| std::io::Error::other("no descriptor"))?;
    Ok(Adoption {
        fd,
        next_message_id,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    use std::io::{Read, Write};
    use std::os::fd::AsFd;

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
    fn descriptor_and_bytes_travel() {
        let (inbox_rx, inbox_tx) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let handoff = Handoff::new(0, vec![inbox_tx]);
        let (mut ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        handoff
            .send(0, theirs.as_fd(), 1, b"negotiate bytes")
            .unwrap();
        drop(theirs);
        let adoption = receive(inbox_rx.as_fd()).unwrap();
        assert_eq!(adoption.bytes, b"negotiate bytes");
        assert_eq!(adoption.next_message_id, 1);
        // The received descriptor is the same connection.
        let mut adopted = std::os::unix::net::UnixStream::from(adoption.fd);
        ours.write_all(b"ping").unwrap();
        let mut got = [0u8; 4];
        adopted.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ping");
        assert!(handoff
            .send(0, ours.as_fd(), 0, &vec![0u8; MAX_HANDOFF_BYTES + 1])
            .is_err());
    }
}
