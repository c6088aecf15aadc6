//! Messages between reactors. A connection belongs to one reactor thread; when another thread
//! must reach it — an oplock or lease break for an open whose channel lives elsewhere, or a nudge
//! to retry requests parked on state that just changed — it posts to that reactor's mailbox: a
//! bounded queue plus an eventfd the reactor's ring is reading.
//!
//! A message a reactor thread posts to one of its own connections does not take that detour: it
//! waits in the thread's own queue ([`post_own`]), and the reactor takes it before it handles the
//! next request of that connection. So a break that a request causes on the client's own
//! connection goes out before the responses to the requests that follow (smbtorture
//! smb2.lease.rename_wait takes the break's lease key when the next CREATE is answered).

use std::cell::RefCell;
use std::collections::VecDeque;
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

    /// The connection the message is for (none for a connection to adopt).
    pub fn target(&self) -> Option<ConnHandle> {
        match self {
            ReactorMsg::Send { to, .. }
            | ReactorMsg::Kick { to }
            | ReactorMsg::Break { to, .. } => Some(*to),
            ReactorMsg::Adopt { .. } => None,
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

/// The reactor this thread runs, and the messages it posted to its own connections.
struct OwnQueue {
    reactor: u16,
    messages: VecDeque<ReactorMsg>,
}

thread_local! {
    static OWN: RefCell<Option<OwnQueue>> = const { RefCell::new(None) };
}

/// Mark this thread as the one running reactor `reactor`: its messages to that reactor go to
/// the thread's own queue from now on.
pub fn run_own_queue(reactor: u16) {
    OWN.with(|own| {
        *own.borrow_mut() = Some(OwnQueue {
            reactor,
            messages: VecDeque::new(),
        })
    });
}

/// Keep `msg` in this thread's own queue if it is for the reactor this thread runs; otherwise
/// give it back.
pub fn post_own(msg: ReactorMsg) -> Result<(), ReactorMsg> {
    OWN.with(|own| match own.borrow_mut().as_mut() {
        Some(q) if q.reactor == msg.reactor() && !matches!(msg, ReactorMsg::Adopt { .. }) => {
            q.messages.push_back(msg);
            Ok(())
        }
        _ => Err(msg),
    })
}

/// Take this thread's own messages for connection `to`, in the order they were posted.
pub fn take_own_for(to: ConnHandle) -> Vec<ReactorMsg> {
    OWN.with(|own| {
        let mut own = own.borrow_mut();
        let Some(q) = own.as_mut() else {
            return Vec::new();
        };
        let (mine, rest): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut q.messages)
            .into_iter()
            .partition(|m| m.target() == Some(to));
        q.messages = rest;
        mine.into()
    })
}

/// Take all of this thread's own messages, in the order they were posted.
pub fn take_own() -> Vec<ReactorMsg> {
    OWN.with(|own| {
        own.borrow_mut()
            .as_mut()
            .map(|q| std::mem::take(&mut q.messages).into())
            .unwrap_or_default()
    })
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

    #[test]
    fn a_reactor_thread_keeps_its_own_messages_in_order() {
        let conn = |slot| ConnHandle {
            reactor: 3,
            slot,
            gen: 1,
        };
        let elsewhere = ConnHandle {
            reactor: 4,
            slot: 1,
            gen: 1,
        };
        std::thread::spawn(move || {
            // Not a reactor thread: every message goes back to the mailbox path.
            assert!(post_own(ReactorMsg::Kick { to: conn(1) }).is_err());
            run_own_queue(3);
            assert!(post_own(ReactorMsg::Kick { to: elsewhere }).is_err());
            for (slot, byte) in [(1, 1u8), (2, 2), (1, 3)] {
                let msg = ReactorMsg::Send {
                    to: conn(slot),
                    frame: vec![byte],
                };
                assert!(post_own(msg).is_ok());
            }
            let frames = |msgs: Vec<ReactorMsg>| -> Vec<u8> {
                msgs.into_iter()
                    .map(|m| match m {
                        ReactorMsg::Send { frame, .. } => frame[0],
                        other => panic!("unexpected {other:?}"),
                    })
                    .collect()
            };
            assert_eq!(frames(take_own_for(conn(1))), [1, 3]);
            assert_eq!(frames(take_own()), [2]);
            assert!(take_own().is_empty());
        })
        .join()
        .unwrap();
    }
}
