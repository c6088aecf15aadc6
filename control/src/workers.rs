//! Worker processes (`smb3d serve --workers N`): the control process forks N workers, each
//! with its own reactors and listeners in the shared SO_REUSEPORT group, restarts a worker that
//! dies, and stops them all on SIGINT/SIGTERM. Workers hand each other connections through
//! their inboxes (see `smb3d_dataplane::handoff`) and see each other's opens through the worker
//! registry, a lock file made here before the first fork (`storage::worker_registry`). The only `unsafe` of the control process,
//! fork and prctl, is here.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};

use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use smb3d_dataplane::handoff::Handoff;
use smb3d_dataplane::storage::worker_registry::{self, WorkerRegistry};

use crate::{bind_group_listeners, run_worker, ReactorListeners, ServePlan, WorkerJoin};

/// Most worker processes: as many as the worker registry tells apart.
pub const MAX_WORKERS: usize = worker_registry::MAX_WORKERS;

/// What every worker inherits from the control process: the inboxes and the registry's lock
/// file (kept here, so a restarted worker opens the same one).
struct Shared<'a> {
    listeners: &'a [ReactorListeners],
    inbox_rx: &'a [OwnedFd],
    inbox_tx: &'a [OwnedFd],
    registry: &'a OwnedFd,
    workers: usize,
}

/// Run `count` workers until SIGINT or SIGTERM; restart any that dies.
pub fn supervise(plan: &ServePlan, count: usize) -> Result<(), String> {
    // One inbox per worker: the worker reads the first end, every worker may write the second.
    let mut inbox_rx = Vec::with_capacity(count);
    let mut inbox_tx = Vec::with_capacity(count);
    for _ in 0..count {
        let (rx, tx) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| format!("cannot create worker inbox: {e}"))?;
        inbox_rx.push(rx);
        inbox_tx.push(tx);
    }
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGCHLD);
    signals
        .thread_block()
        .map_err(|e| format!("cannot block signals: {e}"))?;

    // Every worker's listeners, bound here and kept for as long as the control process runs:
    // a restarted worker takes over the same sockets (and the connections waiting in them).
    let listeners = bind_group_listeners(plan, count)?;
    let registry = worker_registry::create_lock_file()
        .map_err(|e| format!("cannot create the worker registry: {e}"))?;
    let shared = Shared {
        listeners: &listeners,
        inbox_rx: &inbox_rx,
        inbox_tx: &inbox_tx,
        registry: &registry,
        workers: count,
    };
    let mut pids: HashMap<Pid, usize> = HashMap::new();
    for worker in 0..count {
        let pid = start_worker(plan, worker, &shared)?;
        pids.insert(pid, worker);
    }
    tracing::info!(workers = count, "smb3d control process supervising");
    loop {
        let sig = signals
            .wait()
            .map_err(|e| format!("waiting for signals: {e}"))?;
        if sig != Signal::SIGCHLD {
            tracing::info!(signal = ?sig, "stopping workers");
            for pid in pids.keys() {
                let _ = kill(*pid, Signal::SIGTERM);
            }
            for pid in pids.keys() {
                let _ = waitpid(*pid, None);
            }
            return Ok(());
        }
        // Reap every worker that ended; start a new one in its place.
        while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            let (pid, how) = match status {
                WaitStatus::Exited(pid, code) => (pid, format!("exit code {code}")),
                WaitStatus::Signaled(pid, sig, _) => (pid, format!("signal {sig:?}")),
                _ => break,
            };
            let Some(worker) = pids.remove(&pid) else {
                continue;
            };
            tracing::warn!(worker, %pid, how, "worker ended; restarting it");
            let pid = start_worker(plan, worker, &shared)?;
            pids.insert(pid, worker);
        }
    }
}

fn start_worker(plan: &ServePlan, worker: usize, shared: &Shared) -> Result<Pid, String> {
    // SAFETY: the control process runs no other thread (no reactors, no runtime; it only waits
    // for signals), so the child starts from a consistent copy of this single thread's state.
    match unsafe { fork() }.map_err(|e| format!("cannot start worker {worker}: {e}"))? {
        ForkResult::Parent { child } => Ok(child),
        ForkResult::Child => {
            // SAFETY: prctl(PR_SET_PDEATHSIG) only sets a flag of this process: a worker whose
            // control process dies is told to stop instead of serving on unsupervised.
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            }
            let code = match run_child(plan, worker, shared) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("smb3d worker {worker}: {e}");
                    1
                }
            };
            std::process::exit(code);
        }
    }
}

fn run_child(plan: &ServePlan, worker: usize, shared: &Shared) -> Result<(), String> {
    let dup = |fd: &OwnedFd| fd.try_clone().map_err(|e| format!("worker {worker}: {e}"));
    let peers = shared
        .inbox_tx
        .iter()
        .map(dup)
        .collect::<Result<Vec<_>, _>>()?;
    let inbox = dup(&shared.inbox_rx[worker])?;
    // Its own open file description of the lock file, whose locks vanish when it dies.
    let registry = WorkerRegistry::open(shared.registry.as_fd(), worker, shared.workers)
        .map_err(|e| format!("worker {worker}: cannot open the worker registry: {e}"))?;
    let listeners = shared.listeners[worker]
        .iter()
        .map(|of_reactor| {
            of_reactor
                .iter()
                .map(|(addr, fd)| Ok((*addr, dup(fd)?)))
                .collect::<Result<Vec<_>, String>>()
        })
        .collect::<Result<ReactorListeners, String>>()?;
    // The control process blocked SIGCHLD too; a worker waits for SIGINT/SIGTERM only.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    tracing::info!(worker, pid = %nix::unistd::getpid(), "worker started");
    let join = WorkerJoin {
        handoff: Handoff::new(worker, peers),
        inbox,
        registry,
    };
    run_worker(plan, listeners, Some(join), &signals)
}
