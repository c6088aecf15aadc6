//! Messages between reactors. A connection belongs to one reactor thread; when another thread
//! must reach it — an oplock or lease break for an open whose channel lives elsewhere, or a nudge
//! to retry requests parked on state that just changed — it posts to that reactor's mailbox: a
//! bounded queue plus an eventfd the reactor's ring is reading.

use std::os::fd::{AsFd, AsRawFd, RawFd};

use crossbeam::channel::{Receiver, Sender, TrySendError};
use nix::sys::eventfd::{EfdFlags, EventFd};

/// Messages one mailbox holds at most; a full mailbox refuses (the sender treats the target as
/// unreachable) rather than grow without bound.
pub const MAILBOX_CAPACITY: usize = 64 * 1024;

/// Names one connection: its reactor, its slot there and the slot's generation (so a message
/// for a connection that has since closed is dropped, not delivered to its successor).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnHandle {
    pub reactor: u16,
    pub slot: u32,
    pub gen: u32,
}

#[derive(Debug)]
pub enum ReactorMsg {
    /// Queue this frame for sending on the connection.
    Send { to: ConnHandle, frame: Vec<u8> },
    /// Re-run the connection's parked requests now.
    Kick { to: ConnHandle },
    /// Send an oplock or lease break and watch that the client's TCP stack acknowledges it; if
    /// it does not in time, the channel is dead and the break goes to the next channel `route`
    /// names.
    Break {
        to: ConnHandle,
        frame: Vec<u8>,
        route: crate::oplock::BreakRoute,
    },
    /// Take over a connection another worker process handed to this one.
    Adopt {
        reactor: u16,
        adoption: crate::handoff::Adoption,
    },
}

impl ReactorMsg {
    /// The reactor the message is for.
    pub fn reactor(&self) -> u16 {
        match self {
            ReactorMsg::Send { to, .. }
            | ReactorMsg::Kick { to }
            | ReactorMsg::Break { to, .. } => to.reactor,
            ReactorMsg::Adopt { reactor, .. } => *reactor,
        }
    }
}

/// The sending side of one reactor's mailbox.
#[derive(Debug)]
pub struct Mailbox {
    tx: Sender<ReactorMsg>,
    wake: EventFd,
}

/// The reactor's side: the queue and the eventfd to read when woken.
pub struct MailboxReceiver {
    pub rx: Receiver<ReactorMsg>,
    wake_fd: RawFd,
}

impl MailboxReceiver {
    pub fn wake_fd(&self) -> RawFd {
        self.wake_fd
    }
}

/// A mailbox and its receiving end.
pub fn mailbox() -> std::io::Result<(Mailbox, MailboxReceiver)> {
    let (tx, rx) = crossbeam::channel::bounded(MAILBOX_CAPACITY);
    let wake = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?;
    let wake_fd = wake.as_fd().as_raw_fd();
    Ok((Mailbox { tx, wake }, MailboxReceiver { rx, wake_fd }))
}

impl Mailbox {
    /// Post a message and wake the reactor. `false` when the mailbox is full or gone.
    pub fn post(&self, msg: ReactorMsg) -> bool {
        match self.tx.try_send(msg) {
            Ok(()) => {
                let _ = self.wake.write(1);
                true
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn post_wakes_and_bounds() {
        let (mb, rx) = mailbox().unwrap();
        let to = ConnHandle {
            reactor: 0,
            slot: 1,
            gen: 2,
        };
        assert!(mb.post(ReactorMsg::Kick { to }));
        let mut buf = [0u8; 8];
        assert_eq!(nix::unistd::read(rx.wake_fd(), &mut buf).unwrap(), 8);
        assert!(matches!(rx.rx.try_recv(), Ok(ReactorMsg::Kick { .. })));
    }
}
