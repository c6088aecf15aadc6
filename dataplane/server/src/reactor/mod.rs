//! Per-core io_uring reactors. Each reactor is a thread pinned to one core with its own ring and
//! its own SO_REUSEPORT listening sockets; it accepts, receives, runs the protocol state machine
//! and sends, all on that core. Nothing here is shared between reactors but `ServerState`.
//!
//! Receive path: one RECV per connection into a buffer sized to the PDU being read, so a large
//! WRITE lands in the buffer it is decrypted and written to the file from (no reassembly copy).
//! Send path: one SEND in flight per connection, frames queued behind it (bounded).

mod listener;
mod ring;
pub mod steering;
mod tcp;

pub use listener::{bind_listeners, check_port_free};

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::server::ServerState;

/// Where and how one reactor runs.
pub struct ReactorSpec {
    pub index: usize,
    /// Core to pin to, if any.
    pub core: Option<usize>,
    /// Listening sockets (one per --listen address) owned by this reactor.
    pub listeners: Vec<(SocketAddr, OwnedFd)>,
}

/// Start the reactors; each runs until `shutdown` is set.
pub fn spawn_reactors(
    server: Arc<ServerState>,
    specs: Vec<ReactorSpec>,
    shutdown: Arc<AtomicBool>,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    let mut mailboxes = Vec::with_capacity(specs.len());
    let mut receivers = Vec::with_capacity(specs.len());
    for _ in &specs {
        let (mailbox, receiver) = crate::mailbox::mailbox()?;
        mailboxes.push(mailbox);
        receivers.push(receiver);
    }
    if server.mailboxes.set(mailboxes).is_err() {
        return Err(std::io::Error::other("reactors already started"));
    }
    let mut handles = Vec::new();
    for (spec, mailbox) in specs.into_iter().zip(receivers) {
        let server = server.clone();
        let shutdown = shutdown.clone();
        let handle = std::thread::Builder::new()
            .name(format!("reactor-{}", spec.index))
            .spawn(move || {
                if let Some(core) = spec.core {
                    if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
                        tracing::warn!(core, "could not pin reactor to core");
                    }
                }
                let index = spec.index;
                let run =
                    std::panic::AssertUnwindSafe(|| ring::run(server, spec, mailbox, shutdown));
                match std::panic::catch_unwind(run) {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::error!(error = %e, "reactor stopped"),
                    Err(_) => {
                        // A reactor that died would leave its listener's place in the steering
                        // group and its connections' sessions half alive; the process ends so
                        // that it is restarted whole (by the control process or the service manager).
                        tracing::error!(reactor = index, "reactor panicked; aborting");
                        std::process::abort();
                    }
                }
            })?;
        handles.push(handle);
    }
    Ok(handles)
}
