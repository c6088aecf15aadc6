//! The server-wide table of open files: what Windows keeps per file (MS-FSA 2.1.1.4 File,
//! 2.1.1.5 Stream) rather than per open: the share access of every open, the delete-pending
//! flag and the byte-range locks.
//!
//! Entries are keyed by (device, inode) and sharded, so opens of unrelated files never meet on
//! a lock. An [`Open`] holds an `Arc` of its [`FileEntry`], so the hot path (READ/WRITE lock
//! checks, LOCK) goes straight to the file's own mutex without touching the shards. A shard
//! lock is taken only when an open is registered or unregistered, always before the entry's
//! lock.
//!
//! With several worker processes each has its own table; share modes and caching are also
//! checked against what the other workers publish in the worker registry
//! ([`super::worker_registry`]): a worker's registry guard for a file is taken after the
//! entry's lock, and breaks another worker must start are asked of it
//! ([`BreakNotice::Worker`], answered there by [`FileTable::break_for_worker`]).

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock, Weak};
use std::time::{Duration, Instant};

use smb3d_protocol::messages::lease::{self as lease_msg, state as caching, LeaseContext};
use smb3d_protocol::messages::lease::{LeaseBreakNotification, NOTIFY_ACK_REQUIRED};
use smb3d_protocol::NtStatus;

use super::metadata::{attr, stat_fd, FileMetadata};
use super::sys;
use super::worker_registry::{BreakRequest, Holding, SlotGuard, WorkerRegistry};
use smb3d_protocol::messages::oplock_break::level;

use crate::mailbox::ConnHandle;
use crate::open::{FileId, Open};
use crate::session::Session;

/// Access mask bits (MS-SMB2 2.2.13.1.1, MS-DTYP 2.4.3).
pub mod access {
    pub const FILE_READ_DATA: u32 = 0x0000_0001;
    pub const FILE_WRITE_DATA: u32 = 0x0000_0002;
    pub const FILE_APPEND_DATA: u32 = 0x0000_0004;
    pub const FILE_READ_EA: u32 = 0x0000_0008;
    pub const FILE_WRITE_EA: u32 = 0x0000_0010;
    pub const FILE_EXECUTE: u32 = 0x0000_0020;
    pub const FILE_DELETE_CHILD: u32 = 0x0000_0040;
    pub const FILE_READ_ATTRIBUTES: u32 = 0x0000_0080;
    pub const FILE_WRITE_ATTRIBUTES: u32 = 0x0000_0100;
    pub const DELETE: u32 = 0x0001_0000;
    pub const READ_CONTROL: u32 = 0x0002_0000;
    pub const WRITE_DAC: u32 = 0x0004_0000;
    pub const WRITE_OWNER: u32 = 0x0008_0000;
    pub const SYNCHRONIZE: u32 = 0x0010_0000;
    pub const ACCESS_SYSTEM_SECURITY: u32 = 0x0100_0000;
    pub const MAXIMUM_ALLOWED: u32 = 0x0200_0000;
    pub const GENERIC_ALL: u32 = 0x1000_0000;
    pub const GENERIC_EXECUTE: u32 = 0x2000_0000;
    pub const GENERIC_WRITE: u32 = 0x4000_0000;
    pub const GENERIC_READ: u32 = 0x8000_0000;
    /// Every specific right a file or directory has (FILE_ALL_ACCESS, MS-SMB2 2.2.13.1.1).
    pub const FILE_ALL_ACCESS: u32 = 0x001F_01FF;
}

/// ShareAccess bits (MS-SMB2 2.2.13).
pub mod share {
    pub const READ: u32 = 0x1;
    pub const WRITE: u32 = 0x2;
    pub const DELETE: u32 = 0x4;
    pub const ALL: u32 = READ | WRITE | DELETE;
}

const SHARD_COUNT: usize = 64;

/// Which file: (device, inode).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileKey {
    pub device: u64,
    pub inode: u64,
}

/// One byte-range lock (MS-FSA 2.1.1.5 ByteRangeLockList entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRangeLock {
    pub open_key: u64,
    pub offset: u64,
    pub length: u64,
    pub exclusive: bool,
}

/// A lock request element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockRange {
    pub offset: u64,
    pub length: u64,
    pub exclusive: bool,
}

#[derive(Debug)]
struct OpenRecord {
    open_key: u64,
    access: u32,
    share_access: u32,
    /// Granted oplock level (MS-SMB2 2.2.13 levels; NONE for directories).
    oplock: u8,
    /// Where to send a break of that oplock.
    holder: Option<BreakTarget>,
    /// The lease this open shares with the client's other opens under the same key.
    lease: Option<LeaseId>,
}

/// The access of a "stat open", which breaks no oplock: attributes and SYNCHRONIZE only
/// (as Windows and Samba treat it; smbtorture smb2.oplock.statopen1).
pub const STAT_ACCESS: u32 =
    access::FILE_READ_ATTRIBUTES | access::FILE_WRITE_ATTRIBUTES | access::SYNCHRONIZE;

/// An open with no more access than this breaks no lease (Samba's and Windows' "lease stat
/// open": a stat open may also read the security descriptor; smbtorture smb2.lease.statopen).
pub const LEASE_STAT_ACCESS: u32 = STAT_ACCESS | access::READ_CONTROL;

/// A lease's identity: the client and the key it chose (MS-SMB2 3.3.1.4: the LeaseTable of a
/// ClientGuid, indexed by LeaseKey). Not tied to any connection or session, so a lease outlives
/// the connection that asked for it while its opens live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LeaseId {
    pub client_guid: [u8; 16],
    pub key: [u8; 16],
}

/// A lease a CREATE asks for: who, and the request context (state, version, epoch, parent).
#[derive(Clone, Copy, Debug)]
pub struct LeaseAsk {
    pub id: LeaseId,
    pub context: LeaseContext,
}

/// One lease on a file (MS-SMB2 3.3.1.13 Lease), shared by every open of its client with its key.
#[derive(Debug)]
struct Lease {
    id: LeaseId,
    /// Lease.LeaseState: R, H, W bits.
    state: u32,
    /// Lease.Breaking: a break sent and not acknowledged yet.
    breaking: Option<LeaseBreaking>,
    /// Lease.Epoch (v2 leases; 0 for v1).
    epoch: u16,
    /// Lease.Version: 1 or 2, fixed when the lease is created; every response about the
    /// lease uses its layout, whatever version later requests use (smbtorture
    /// smb2.lease.v2_epoch2).
    version: u8,
    /// Lease.ParentLeaseKey (v2), with the flag saying the client set one.
    parent_key: Option<[u8; 16]>,
}

#[derive(Clone, Copy, Debug)]
struct LeaseBreaking {
    /// The state the notification named (Lease.BreakToLeaseState): an acknowledgment may not
    /// keep more.
    to: u32,
    /// What later conflicts need, never more than `to`: if the acknowledgment keeps more, the
    /// next break follows at once.
    required: u32,
    deadline: Instant,
}

impl Lease {
    /// Send a break of this lease to `to` (MS-SMB2 3.3.4.7). Breaks that take away H or W wait for
    /// the client's acknowledgment; an R-only lease is broken at once. A v2 lease moves to the
    /// next epoch with every break a conflict starts (`new_epoch`), not with the next step of
    /// a break already under way (as Windows numbers them; smbtorture smb2.lease.v2_breaking3).
    fn start_break(&mut self, to: u32, new_epoch: bool, notices: &mut Vec<BreakNotice>) {
        let ack_required = self.state & (caching::HANDLE | caching::WRITE) != 0;
        if self.version == 2 && new_epoch {
            self.epoch = self.epoch.wrapping_add(1);
        }
        notices.push(BreakNotice::Lease {
            client_guid: self.id.client_guid,
            notification: LeaseBreakNotification {
                new_epoch: self.epoch,
                flags: if ack_required { NOTIFY_ACK_REQUIRED } else { 0 },
                key: self.id.key,
                current_state: self.state,
                new_state: to,
            },
        });
        if ack_required {
            self.breaking = Some(LeaseBreaking {
                to,
                required: to,
                deadline: Instant::now() + OPLOCK_BREAK_TIMEOUT,
            });
        } else {
            self.state = to;
        }
    }

    /// The lease context a CREATE response reports (MS-SMB2 2.2.14.2.10/2.2.14.2.11).
    fn grant(&self) -> LeaseContext {
        let mut flags = 0;
        if self.breaking.is_some() {
            flags |= lease_msg::flags::BREAK_IN_PROGRESS;
        }
        if self.parent_key.is_some() {
            flags |= lease_msg::flags::PARENT_LEASE_KEY_SET;
        }
        LeaseContext {
            key: self.id.key,
            state: self.state,
            flags,
            version: self.version,
            parent_key: self.parent_key.unwrap_or([0; 16]),
            epoch: self.epoch,
        }
    }
}

/// How long an open waits for an oplock break acknowledgment before the oplock is considered
/// broken anyway (MS-SMB2 3.3.2.1 Oplock Break Acknowledgment Timer; Windows and Samba: 35 s).
pub const OPLOCK_BREAK_TIMEOUT: Duration = Duration::from_secs(35);

/// The open an oplock break is sent to: its session (for the channel to send on) and file id.
#[derive(Clone, Debug)]
pub struct BreakTarget {
    pub session: Weak<Session>,
    pub file_id: FileId,
}

/// A break notification to send: the outcome of a conflict, decided under the file's lock and
/// sent after it is released (`oplock::send_breaks`). A lease break names only the client, so it
/// can go to any of the client's channels (and could be forwarded to another process as is).
#[derive(Clone, Debug)]
pub enum BreakNotice {
    /// An oplock break for one open (MS-SMB2 2.2.23.1), sent to the open's session.
    Oplock { target: BreakTarget, level: u8 },
    /// A lease break (MS-SMB2 2.2.23.2), sent to any channel of the client.
    Lease {
        client_guid: [u8; 16],
        notification: LeaseBreakNotification,
    },
    /// Ask another worker process to break what its opens cache on a file
    /// ([`FileTable::break_for_worker`] there), sent to its inbox.
    Worker {
        worker: usize,
        request: BreakRequest,
    },
}

/// What a new open asks of the file's oplock state (MS-SMB2 3.3.5.9, MS-FSA 2.1.5.17).
#[derive(Clone, Debug)]
pub struct OplockRequest {
    /// Requested level (NONE for directories and for opens that want none).
    pub level: u8,
    /// Where a later break of this open's oplock goes.
    pub holder: Option<BreakTarget>,
    /// SUPERSEDE or OVERWRITE(_IF): breaks every other oplock to NONE.
    pub overwrite: bool,
    /// A "stat open" (only attribute access and SYNCHRONIZE) breaks no oplock.
    pub stat_open: bool,
    /// The connection to nudge when a break this open waits for completes.
    pub waiter: Option<ConnHandle>,
    /// A lease request (with `level` LEASE); `None` for oplock opens and directories.
    pub lease: Option<LeaseAsk>,
    /// The open breaks no lease (only attributes, SYNCHRONIZE and READ_CONTROL asked for).
    pub lease_stat_open: bool,
    /// The open waited before: it now also waits for breaks in flight of leases it needs
    /// broken further (smbtorture smb2.lease.breaking3).
    pub retry: bool,
    /// FILE_DELETE_ON_CLOSE: the file is about to go, so other leases lose handle caching.
    pub delete_on_close: bool,
}

impl OplockRequest {
    /// No oplock, nobody to notify: for callers outside CREATE.
    pub fn none() -> OplockRequest {
        OplockRequest {
            level: level::NONE,
            holder: None,
            overwrite: false,
            stat_open: false,
            waiter: None,
            lease: None,
            lease_stat_open: false,
            retry: false,
            delete_on_close: false,
        }
    }
}

/// A break sent and not yet acknowledged.
#[derive(Clone, Copy, Debug)]
struct PendingBreak {
    open_key: u64,
    to: u8,
    deadline: Instant,
}

/// A change time a client set (MS-FSA 2.1.5.14.2 FileBasicInformation.ChangeTime). Linux
/// cannot set a ctime, so the value is kept here, with the file, and reported instead of the
/// real ctime until the file changes by other means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SetChangeTime {
    /// The FILETIME the client set.
    value: u64,
    /// The real ctime (FILETIME) when the value was set or last carried over; a different
    /// real ctime means the file has changed since.
    stamp: u64,
    /// The open that set it: its own later SET_INFO changes keep the value, as Windows keeps
    /// it for that open (MS-FSA Open.UserSetChangeTime).
    open_key: u64,
}

#[derive(Debug, Default)]
struct FileState {
    opens: Vec<OpenRecord>,
    delete_pending: bool,
    locks: Vec<ByteRangeLock>,
    set_change_time: Option<SetChangeTime>,
    /// At most one exclusive/batch oplock exists per file, so at most one break is pending.
    pending_break: Option<PendingBreak>,
    /// Connections with requests waiting for that break (bounded: one per parked request).
    waiters: Vec<ConnHandle>,
    /// The leases of the file's opens, one per (client, key).
    leases: Vec<Lease>,
    /// What the worker registry shows of this file for this worker (with several workers).
    published: Holding,
}

/// Waiters one file keeps at most; a full list still works, later waiters find out on the tick.
const MAX_WAITERS_PER_FILE: usize = 1024;

/// Byte-range locks one file holds at most: every LOCK, READ and WRITE on the file scans them,
/// and shared locks stack without limit otherwise. Beyond it a LOCK is INSUFFICIENT_RESOURCES,
/// as Windows answers when it cannot allocate lock state.
pub const MAX_LOCKS_PER_FILE: usize = 16 * 1024;

impl FileState {
    /// What this process's opens of the file hold, for the worker registry: the union of
    /// their access, share modes and caching (oplock level or lease state, breaks in flight
    /// still counting what they break).
    fn holding(&self) -> Holding {
        self.opens.iter().fold(Holding::NONE, |acc, o| {
            acc | Holding::of_open(o.access, o.share_access, self.caching_of(o))
        })
    }

    fn caching_of(&self, o: &OpenRecord) -> Holding {
        let state = match o.lease {
            Some(id) => self
                .leases
                .iter()
                .find(|l| l.id == id)
                .map_or(caching::NONE, |l| l.state),
            None => match o.oplock {
                level::BATCH => caching::ALL,
                level::EXCLUSIVE => caching::READ | caching::WRITE,
                level::II => caching::READ,
                _ => caching::NONE,
            },
        };
        [
            (caching::READ, Holding::CACHE_READ),
            (caching::WRITE, Holding::CACHE_WRITE),
            (caching::HANDLE, Holding::CACHE_HANDLE),
        ]
        .iter()
        .filter(|(bit, _)| state & bit != 0)
        .fold(Holding::NONE, |acc, (_, h)| acc | *h)
    }

    /// Start the oplock break a new open needs (see [`break_needed`](Self::break_needed));
    /// an oplock nobody can be told about is broken at once. Returns whether the open must
    /// wait: a break is in flight.
    fn break_oplock(
        &mut self,
        req: &OplockRequest,
        sharing_violation: bool,
        notices: &mut Vec<BreakNotice>,
    ) -> bool {
        loop {
            if self.pending_break.is_some() {
                return true;
            }
            let Some((i, to)) = self.break_needed(req, sharing_violation) else {
                return false;
            };
            let holder = &mut self.opens[i];
            let Some(target) = holder.holder.clone() else {
                // Nobody to tell: the break is immediate.
                holder.oplock = to;
                continue;
            };
            notices.push(BreakNotice::Oplock { target, level: to });
            self.pending_break = Some(PendingBreak {
                open_key: holder.open_key,
                to,
                deadline: Instant::now() + OPLOCK_BREAK_TIMEOUT,
            });
            return true;
        }
    }

    /// MS-FSA 2.1.4.12 (oplock break on open), for a new open that passed or failed the share
    /// check (`sharing_violation`). `Some(to)`: the exclusive/batch holder must be broken to `to`
    /// before the open may proceed.
    fn break_needed(&self, req: &OplockRequest, sharing_violation: bool) -> Option<(usize, u8)> {
        // A stat open breaks nothing, unless it overwrites the file: truncation changes the
        // data however little access was asked for (smbtorture smb2.oplock.batch13/14/16).
        if req.stat_open && !req.overwrite {
            return None;
        }
        let (i, holder) = self
            .opens
            .iter()
            .enumerate()
            .find(|(_, o)| o.oplock >= level::EXCLUSIVE)?;
        let to = if req.overwrite {
            level::NONE
        } else {
            level::II
        };
        match holder.oplock {
            // A batch oplock is broken before a sharing violation is reported: the client may
            // have kept the handle open only as a cache, and close it.
            level::BATCH => Some((i, to)),
            _ if sharing_violation => None,
            _ => Some((i, to)),
        }
    }

    /// MS-FSA 2.1.4.12: an operation that changes the data (write, size change, byte-range
    /// lock) breaks every level II oplock on the file to NONE, the caller's own included (the
    /// client's cache of the data is stale either way; Windows and Samba send this "self
    /// break" too, smbtorture smb2.oplock.batch1/brl1). Level II breaks need no acknowledgment.
    /// Read leases of other clients or keys break to none as well, the writer's own lease is
    /// kept (smbtorture smb2.lease.nobreakself); one that also caches handles is acknowledged,
    /// but nobody waits for it.
    fn break_level2(&mut self, writer_lease: Option<LeaseId>) -> Vec<BreakNotice> {
        let mut notices = Vec::new();
        for o in self.opens.iter_mut().filter(|o| o.oplock == level::II) {
            o.oplock = level::NONE;
            if let Some(target) = o.holder.clone() {
                notices.push(BreakNotice::Oplock {
                    target,
                    level: level::NONE,
                });
            }
        }
        for lease in self.leases.iter_mut() {
            let others = Some(lease.id) != writer_lease;
            let reads = lease.state & caching::READ != 0;
            if others && reads && lease.breaking.is_none() {
                lease.start_break(caching::NONE, true, &mut notices);
            }
        }
        notices
    }

    /// The level a new open gets once no break is needed (MS-SMB2 3.3.5.9.8 with MS-FSA
    /// 2.1.5.17.2): exclusive/batch only alone on the file, level II beside level II/none, and
    /// nothing beside a lease that caches handles.
    fn grantable(&self, requested: u8) -> u8 {
        if self.leases.iter().any(|l| l.state & caching::HANDLE != 0) {
            return level::NONE;
        }
        match requested {
            level::BATCH | level::EXCLUSIVE if self.opens.is_empty() => requested,
            level::BATCH | level::EXCLUSIVE | level::II
                if self.opens.iter().all(|o| o.oplock <= level::II) =>
            {
                level::II
            }
            _ => level::NONE,
        }
    }

    /// The lease state a request may have beside the file's other opens (MS-SMB2 3.3.5.9.8,
    /// as Windows grants: R, RH, RW, RWH; W or H without R is nothing). W only when no other
    /// open could see the data (other opens of this lease and stat opens aside), H not beside
    /// an oplock, and neither R nor H on a file with byte-range locks.
    fn lease_grantable(&self, ask: &LeaseAsk) -> u32 {
        let requested = ask.context.state & caching::ALL;
        if requested & caching::READ == 0 {
            return caching::NONE;
        }
        let mut granted = requested;
        let mut others = self.opens.iter().filter(|o| o.lease != Some(ask.id));
        if others
            .clone()
            .any(|o| o.access & !STAT_ACCESS != 0 || o.oplock != level::NONE || o.lease.is_some())
        {
            granted &= !caching::WRITE;
        }
        if others.any(|o| o.oplock != level::NONE) {
            granted &= !caching::HANDLE;
        }
        if !self.locks.is_empty() {
            granted &= !(caching::READ | caching::HANDLE);
        }
        granted
    }

    /// Give the new open its lease: the existing one of its (client, key) — upgraded when the
    /// request is a strict superset the file allows and no break is in flight (MS-SMB2
    /// 3.3.5.9.8; smbtorture smb2.lease.upgrade) — or a new one. Returns the response context.
    fn take_lease(&mut self, ask: &LeaseAsk, limit: u32) -> LeaseContext {
        let granted = self.lease_grantable(ask) & limit;
        let requested = ask.context.state & caching::ALL;
        if let Some(lease) = self.leases.iter_mut().find(|l| l.id == ask.id) {
            let superset = requested & lease.state == lease.state;
            if superset
                && granted == requested
                && granted != lease.state
                && lease.breaking.is_none()
            {
                lease.state = granted;
                if lease.version == 2 {
                    lease.epoch = lease.epoch.wrapping_add(1);
                }
            }
            return lease.grant();
        }
        // MS-SMB2 3.3.5.9.11: a new v2 lease starts one epoch after the client's.
        let epoch = match (ask.context.version, granted) {
            (2, caching::NONE) => ask.context.epoch,
            (2, _) => ask.context.epoch.wrapping_add(1),
            _ => 0,
        };
        let parent_set = ask.context.flags & lease_msg::flags::PARENT_LEASE_KEY_SET != 0;
        let lease = Lease {
            id: ask.id,
            state: granted,
            breaking: None,
            epoch,
            version: ask.context.version,
            parent_key: (ask.context.version == 2 && parent_set).then_some(ask.context.parent_key),
        };
        let grant = lease.grant();
        self.leases.push(lease);
        grant
    }

    /// Breaks that waited past the timeout end (MS-SMB2 3.3.2.1: the oplock takes the level the
    /// break asked for; 3.3.2.5: the lease loses all its caching, as Windows does — smbtorture
    /// smb2.lease.timeout).
    fn expire_breaks(&mut self, now: Instant) {
        if let Some(pb) = self.pending_break.filter(|pb| now >= pb.deadline) {
            if let Some(o) = self.opens.iter_mut().find(|o| o.open_key == pb.open_key) {
                o.oplock = o.oplock.min(pb.to);
            }
            self.pending_break = None;
        }
        for lease in self.leases.iter_mut() {
            if lease.breaking.is_some_and(|b| now >= b.deadline) {
                lease.state = caching::NONE;
                lease.breaking = None;
            }
        }
    }

    /// MS-SMB2 3.3.4.7 with MS-FSA 2.1.4.12: the lease breaks a new open causes. A sharing
    /// violation takes handle caching away (the holder may close and so let the open in), any
    /// other open write caching, an open to delete both, an overwrite everything. Returns
    /// whether the open must wait: for a break taking away what conflicts, or for a break in
    /// flight of a lease it would otherwise leave alone. An overwrite beside a lease that caches
    /// no writes goes on at once (smbtorture smb2.lease.breaking4), unless it has waited
    /// already: then it waits for the break in flight too (breaking3).
    fn break_leases(
        &mut self,
        req: &OplockRequest,
        sharing_violation: bool,
        notices: &mut Vec<BreakNotice>,
    ) -> bool {
        let own = req.lease.map(|l| l.id);
        // MS-FSA 2.1.5.1.2.1: an open to delete the file also breaks handle caching
        // (smbtorture smb2.lease.unlink).
        let conflicting = if sharing_violation {
            caching::HANDLE
        } else if req.delete_on_close {
            caching::HANDLE | caching::WRITE
        } else {
            caching::WRITE
        };
        let mut wait = false;
        for lease in self.leases.iter_mut().filter(|l| Some(l.id) != own) {
            let to = if req.overwrite && !sharing_violation {
                caching::NONE
            } else {
                lease.state & !conflicting
            };
            if lease.state & !to == 0 {
                wait |= lease.breaking.is_some();
                continue;
            }
            wait |= lease.state & conflicting != 0 || (req.retry && lease.breaking.is_some());
            match lease.breaking.as_mut() {
                // Whatever more this open needs follows once the client acknowledges.
                Some(b) => b.required &= to,
                None => lease.start_break(to, true, notices),
            }
        }
        wait
    }

    /// Forget the leases no open uses any more; returns their ids (for the lease index).
    fn drop_unused_leases(&mut self) -> Vec<LeaseId> {
        let opens = &self.opens;
        let mut gone = Vec::new();
        self.leases.retain(|l| {
            let used = opens.iter().any(|o| o.lease == Some(l.id));
            if !used {
                gone.push(l.id);
            }
            used
        });
        gone
    }
}

impl FileState {
    /// The change time to report for a file whose real ctime is `real_ctime`.
    fn change_time(&mut self, real_ctime: u64) -> u64 {
        match self.set_change_time {
            Some(s) if s.stamp == real_ctime => s.value,
            Some(_) => {
                self.set_change_time = None; // changed since: the real time is right again
                real_ctime
            }
            None => real_ctime,
        }
    }
}

/// Per-file shared state. Held by every [`Open`] of the file.
#[derive(Debug)]
pub struct FileEntry {
    pub key: FileKey,
    state: Mutex<FileState>,
    /// Bumped whenever locks are released, so waiting LOCK requests know to retry.
    lock_generation: AtomicU64,
    /// Whether `state.locks` is non-empty, so READ and WRITE skip the state lock when no
    /// byte-range lock exists (the common case). Written under the state lock.
    has_locks: AtomicBool,
    /// Size in bytes of the volume holding the file, looked up on the first write.
    volume_bytes: OnceLock<u64>,
    /// With several worker processes: where this worker publishes what it holds on the file.
    registry: Option<Arc<WorkerRegistry>>,
}

/// The file's state, locked. With several workers, whoever changed it republishes what this
/// worker holds on the file when it lets go (the one place every change passes through); a
/// holding only shrinks there — new bits are published by [`FileTable::register`] under the
/// file's registry guard.
struct StateGuard<'a> {
    state: MutexGuard<'a, FileState>,
    entry: &'a FileEntry,
    changed: bool,
}

impl std::ops::Deref for StateGuard<'_> {
    type Target = FileState;
    fn deref(&self) -> &FileState {
        &self.state
    }
}

impl std::ops::DerefMut for StateGuard<'_> {
    fn deref_mut(&mut self) -> &mut FileState {
        self.changed = true;
        &mut self.state
    }
}

impl Drop for StateGuard<'_> {
    fn drop(&mut self) {
        let Some(registry) = self.entry.registry.as_deref() else {
            return;
        };
        if !self.changed {
            return;
        }
        let holding = self.state.holding();
        if holding == self.state.published {
            return;
        }
        match registry.release(self.entry.key, holding) {
            Ok(()) => self.state.published = holding,
            Err(e) => {
                tracing::error!(error = %e, key = ?self.entry.key, "worker registry: cannot publish a holding")
            }
        }
    }
}

impl FileEntry {
    fn state(&self) -> StateGuard<'_> {
        StateGuard {
            // A panic while holding the lock leaves consistent data (every update is one step).
            state: self.state.lock().unwrap_or_else(|e| e.into_inner()),
            entry: self,
            changed: false,
        }
    }

    /// Take the record of open `open_key` out of this file if it is still there (its break in
    /// flight too). Whether it was: only an open that ends without `FileTable::unregister`
    /// leaves one (see `Open`'s Drop).
    pub(crate) fn remove_record(&self, open_key: u64) -> bool {
        let mut st = self.state();
        let before = st.opens.len();
        st.opens.retain(|o| o.open_key != open_key);
        if st.pending_break.is_some_and(|pb| pb.open_key == open_key) {
            st.pending_break = None;
        }
        st.opens.len() != before
    }

    /// Connections waiting for an oplock break on this file, to nudge once it changed.
    pub fn take_waiters(&self) -> Vec<ConnHandle> {
        std::mem::take(&mut self.state().waiters)
    }

    /// Publish whether the file has byte-range locks now; called with the state locked after
    /// every change of `locks`.
    fn note_locks(&self, st: &FileState) {
        self.has_locks
            .store(!st.locks.is_empty(), Ordering::Release);
    }

    fn bump_generation(&self) {
        self.lock_generation.fetch_add(1, Ordering::Release);
    }
}

/// What [`FileTable::register`] hands out; both go into the new [`Open`].
#[derive(Debug)]
pub struct Registration {
    pub file: Arc<FileEntry>,
    pub open_key: u64,
    /// The oplock level granted to the new open (LEASE for a lease open).
    pub oplock_level: u8,
    /// The lease context to answer with, for a lease open.
    pub lease: Option<LeaseContext>,
}

type Shard = Mutex<HashMap<FileKey, Arc<FileEntry>>>;

#[derive(Debug)]
pub struct FileTable {
    shards: Box<[Shard]>,
    next_open_key: AtomicU64,
    /// Volume sizes in bytes by device, asked of the host once per device. Consulted once per
    /// file entry (which keeps its own copy), never per write.
    volume_sizes: RwLock<HashMap<u64, u64>>,
    /// Which file each lease is on: a lease key names one file (MS-SMB2 3.3.5.9.8), and a lease
    /// break acknowledgment names only the key. Locked after a file's state, never before.
    lease_files: Mutex<HashMap<LeaseId, FileKey>>,
    /// With several worker processes: what the others hold (`None` with one process).
    registry: Option<Arc<WorkerRegistry>>,
    /// Files on which opens of this worker wait for breaks asked of other workers. Locked
    /// after a file's state, never before.
    worker_waits: Mutex<HashMap<FileKey, WorkerWait>>,
}

/// Opens of a file waiting for other workers' breaks: whom they asked, and until when.
#[derive(Clone, Copy, Debug)]
struct WorkerWait {
    /// Workers asked already (bit `w`), so a retried open does not ask again.
    asked: u64,
    /// After this the others' caching counts as broken (the break timeout, MS-SMB2 3.3.2.1).
    deadline: Instant,
}

/// Waits a file table remembers at most; older ones past their deadline go first.
const MAX_WORKER_WAITS: usize = 4096;

/// What an open may be granted beside other workers' opens of the file.
#[derive(Clone, Copy, Debug)]
struct GrantLimit {
    oplock: u8,
    lease: u32,
}

impl GrantLimit {
    const NONE: GrantLimit = GrantLimit {
        oplock: level::BATCH,
        lease: caching::ALL,
    };
}

impl Default for FileTable {
    fn default() -> Self {
        FileTable::new()
    }
}

/// Publish this worker's holding on the file, new bits included, under its registry guard.
fn publish_under_guard(guard: &mut SlotGuard, st: &mut FileState) {
    let holding = st.holding();
    match guard.publish(holding) {
        Ok(()) => st.published = holding,
        Err(e) => tracing::error!(error = %e, "worker registry: cannot publish a holding"),
    }
}

fn registry_failure(e: std::io::Error) -> NtStatus {
    tracing::error!(error = %e, "worker registry unavailable");
    NtStatus::INSUFFICIENT_RESOURCES
}

/// Access bits that take part in share-mode checks (MS-FSA 2.1.5.1.2.1).
const SHARING_ACCESS: u32 = access::FILE_READ_DATA
    | access::FILE_EXECUTE
    | access::FILE_WRITE_DATA
    | access::FILE_APPEND_DATA
    | access::DELETE;

/// MS-FSA 2.1.5.1.2.1: does a new open with `access`/`share_access` conflict with `existing`?
/// Opens asking for none of read/execute/write/append/delete never conflict, in either role.
fn share_conflict(existing: &OpenRecord, access: u32, share_access: u32) -> bool {
    use access::*;
    if existing.access & SHARING_ACCESS == 0 || access & SHARING_ACCESS == 0 {
        return false;
    }
    let reads = |a: u32| a & (FILE_READ_DATA | FILE_EXECUTE) != 0;
    let writes = |a: u32| a & (FILE_WRITE_DATA | FILE_APPEND_DATA) != 0;
    let deletes = |a: u32| a & DELETE != 0;
    (reads(existing.access) && share_access & share::READ == 0)
        || (writes(existing.access) && share_access & share::WRITE == 0)
        || (deletes(existing.access) && share_access & share::DELETE == 0)
        || (reads(access) && existing.share_access & share::READ == 0)
        || (writes(access) && existing.share_access & share::WRITE == 0)
        || (deletes(access) && existing.share_access & share::DELETE == 0)
}

/// MS-FSA 2.1.4.10: do two ranges overlap? The {0, 0} range overlaps nothing; other zero-length
/// ranges overlap a lock that strictly contains their offset.
fn ranges_overlap(offset1: u64, length1: u64, offset2: u64, length2: u64) -> bool {
    if (offset1 == 0 && length1 == 0) || (offset2 == 0 && length2 == 0) {
        return false;
    }
    let (o1, o2) = (i128::from(offset1), i128::from(offset2));
    let last1 = o1 + i128::from(length1) - 1;
    let last2 = o2 + i128::from(length2) - 1;
    o1 <= last2 && last1 >= o2
}

/// MS-FSA 2.1.4.10: does an access by `open_key` conflict with `lock`? `exclusive` is true for
/// exclusive locks and writes; `lock_intent` is true for lock requests, false for I/O.
fn lock_conflicts(
    lock: &ByteRangeLock,
    open_key: u64,
    offset: u64,
    length: u64,
    exclusive: bool,
    lock_intent: bool,
) -> bool {
    if !ranges_overlap(offset, length, lock.offset, lock.length) {
        return false;
    }
    if lock.exclusive {
        // Another open's exclusive lock excludes everything. Our own admits our I/O and our
        // shared locks (MS-FSA 2.1.5.7: a shared lock conflicts only with an exclusive lock of
        // another open), but not a second exclusive lock.
        lock.open_key != open_key || (lock_intent && exclusive)
    } else {
        // A shared lock admits reads and shared locks from anyone, writes from no one, and
        // exclusive locks from no one.
        exclusive
    }
}

fn check_range(offset: u64, length: u64) -> Result<(), NtStatus> {
    // MS-FSA 2.1.5.8: a range past the largest 64-bit offset is INVALID_LOCK_RANGE.
    if length != 0 && offset.checked_add(length - 1).is_none() {
        return Err(NtStatus::INVALID_LOCK_RANGE);
    }
    Ok(())
}

impl FileTable {
    pub fn new() -> FileTable {
        FileTable {
            shards: (0..SHARD_COUNT)
                .map(|_| Mutex::new(HashMap::new()))
                .collect(),
            next_open_key: AtomicU64::new(1),
            volume_sizes: RwLock::new(HashMap::new()),
            lease_files: Mutex::new(HashMap::new()),
            registry: None,
            worker_waits: Mutex::new(HashMap::new()),
        }
    }

    /// The file table of one worker of several: share modes and caching are decided against
    /// the other workers' opens too, through `registry`.
    pub fn with_registry(registry: WorkerRegistry) -> FileTable {
        FileTable {
            registry: Some(Arc::new(registry)),
            ..FileTable::new()
        }
    }

    fn shard(&self, key: &FileKey) -> MutexGuard<'_, HashMap<FileKey, Arc<FileEntry>>> {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        let i = (h.finish() as usize) % SHARD_COUNT;
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Add an open of `key` after the share-mode check. Fails with DELETE_PENDING when the file
    /// is being deleted, SHARING_VIOLATION when another open's access or share mode conflicts
    /// (with several workers, another worker's open too), INVALID_PARAMETER when the requested
    /// lease key already names another file, and PENDING when the open must wait for break
    /// acknowledgments (`notices` holds the breaks to send, and the break requests to other
    /// workers).
    pub fn register(
        &self,
        key: FileKey,
        access: u32,
        share_access: u32,
        oplock: &OplockRequest,
        notices: &mut Vec<BreakNotice>,
    ) -> Result<Registration, NtStatus> {
        if let Some(ask) = &oplock.lease {
            // MS-SMB2 3.3.5.9.8: a lease key in use on another file is refused.
            if self.lease_files().get(&ask.id).is_some_and(|k| *k != key) {
                return Err(NtStatus::INVALID_PARAMETER);
            }
        }
        let mut shard = self.shard(&key);
        let file = shard
            .entry(key)
            .or_insert_with(|| {
                Arc::new(FileEntry {
                    key,
                    state: Mutex::new(FileState::default()),
                    lock_generation: AtomicU64::new(0),
                    has_locks: AtomicBool::new(false),
                    volume_bytes: OnceLock::new(),
                    registry: self.registry.clone(),
                })
            })
            .clone();
        let mut st = file.state();
        if st.opens.is_empty() {
            // An entry without opens is fresh, or was left by an open that ended without
            // unregister (`FileEntry::remove_record`): nothing of the latter (delete pending,
            // leases) applies to the file opened now, maybe a new one with the same inode.
            self.forget_leases(&mut st);
            *st = FileState::default();
        }
        // The registry guard is taken after the file's state (a state change publishes with
        // the registry's own lock), and let go before it.
        let verdict = self.lock_slot(key).and_then(|mut slot| {
            let verdict = Self::admit(&mut st, access, share_access, oplock, notices)
                .and_then(|()| match slot.as_ref() {
                    Some(guard) => {
                        self.limit_by_others(guard, key, access, share_access, oplock, notices)
                    }
                    None => Ok(GrantLimit::NONE),
                })
                .map(|limit| self.add_open(&mut st, key, access, share_access, oplock, limit));
            if let Some(guard) = slot.as_mut() {
                publish_under_guard(guard, &mut st);
            }
            verdict
        });
        match verdict {
            Ok((open_key, oplock_level, lease)) => Ok(Registration {
                file: file.clone(),
                open_key,
                oplock_level,
                lease,
            }),
            Err(e) => {
                if st.opens.is_empty() {
                    drop(st);
                    shard.remove(&key);
                }
                Err(e)
            }
        }
    }

    /// Add an admitted open to the file, with the oplock or lease it may have; returns its
    /// key, the oplock level granted and the lease context to answer with.
    fn add_open(
        &self,
        st: &mut FileState,
        key: FileKey,
        access: u32,
        share_access: u32,
        oplock: &OplockRequest,
        limit: GrantLimit,
    ) -> (u64, u8, Option<LeaseContext>) {
        let (granted, lease) = match &oplock.lease {
            Some(ask) => {
                let grant = st.take_lease(ask, limit.lease);
                self.lease_files().insert(ask.id, key);
                (level::LEASE, Some(grant))
            }
            None => (st.grantable(oplock.level).min(limit.oplock), None),
        };
        let open_key = self.next_open_key.fetch_add(1, Ordering::Relaxed);
        st.opens.push(OpenRecord {
            open_key,
            access,
            share_access,
            oplock: if lease.is_some() {
                level::NONE
            } else {
                granted
            },
            holder: oplock.holder.clone(),
            lease: oplock.lease.map(|l| l.id),
        });
        (open_key, granted, lease)
    }

    /// The file's registry guard, with several workers.
    fn lock_slot(&self, key: FileKey) -> Result<Option<SlotGuard<'_>>, NtStatus> {
        let Some(registry) = self.registry.as_deref() else {
            return Ok(None);
        };
        registry.lock(key).map(Some).map_err(registry_failure)
    }

    /// Admission against the other workers' opens of the file, once this worker's own allow
    /// the open: the same rules as [`admit`](Self::admit), with each worker standing for a
    /// client whose opens hold the worker's published holding. Breaks are asked of the
    /// holding workers (`BreakNotice::Worker`) and the open waits (PENDING) for their holdings
    /// to shrink, or for the break timeout; the parked CREATE is retried on its reactor's tick.
    /// Returns what the open may be granted beside those opens.
    fn limit_by_others(
        &self,
        guard: &SlotGuard,
        key: FileKey,
        access: u32,
        share_access: u32,
        oplock: &OplockRequest,
        notices: &mut Vec<BreakNotice>,
    ) -> Result<GrantLimit, NtStatus> {
        let others = guard.others().map_err(registry_failure)?;
        if others.is_empty() {
            self.worker_waits().remove(&key);
            return Ok(GrantLimit::NONE);
        }
        let mine = Holding::of_open(access, share_access, Holding::NONE);
        let now = Instant::now();
        // MS-SMB2 3.3.2.1: past the break timeout the others' caching counts as broken.
        let expired = self
            .worker_waits()
            .get(&key)
            .is_some_and(|w| now >= w.deadline);
        let caching_of = |bits: Holding| -> Vec<usize> {
            if expired {
                Vec::new()
            } else {
                others.holding(bits).collect()
            }
        };
        let sharing_violation = others.sharing_violation(mine);
        // Stat opens break nothing unless they overwrite (as in `admit`; an open with
        // READ_CONTROL besides breaks no other worker's oplock either).
        let breaks_caching = oplock.overwrite || !oplock.lease_stat_open;
        let must_break = if sharing_violation {
            Holding::CACHE_HANDLE
        } else if !breaks_caching {
            Holding::NONE
        } else if oplock.delete_on_close {
            Holding::CACHE_WRITE | Holding::CACHE_HANDLE
        } else {
            Holding::CACHE_WRITE
        };
        let request = BreakRequest {
            key,
            holding: mine,
            overwrite: oplock.overwrite,
            stat_open: oplock.stat_open,
            lease_stat_open: oplock.lease_stat_open,
            delete_on_close: oplock.delete_on_close,
        };
        let blocking = caching_of(must_break);
        if !blocking.is_empty() {
            self.ask_workers(request, &blocking, now, notices);
            return Err(NtStatus::PENDING);
        }
        self.worker_waits().remove(&key);
        if sharing_violation {
            return Err(NtStatus::SHARING_VIOLATION);
        }
        if breaks_caching && (oplock.overwrite || mine.contains(Holding::WRITE)) {
            // Read caching elsewhere goes stale: broken to none, nobody waits (MS-FSA 2.1.4.12).
            for worker in caching_of(Holding::CACHE_READ) {
                notices.push(BreakNotice::Worker { worker, request });
            }
        }
        let mut theirs = others.union();
        if expired {
            theirs = theirs.without(Holding::CACHING);
        }
        // Exclusive caching only alone on the file; no oplock beside write or handle caching,
        // no handle caching beside write caching (as `grantable` and `lease_grantable`).
        let mut limit = GrantLimit {
            oplock: level::II,
            lease: caching::READ | caching::HANDLE,
        };
        if theirs.intersects(Holding::CACHE_WRITE | Holding::CACHE_HANDLE) {
            limit.oplock = level::NONE;
        }
        if theirs.intersects(Holding::CACHE_WRITE) {
            limit.lease &= !caching::HANDLE;
        }
        Ok(limit)
    }

    /// Ask each of `workers` once per wait to break what `request` conflicts with.
    fn ask_workers(
        &self,
        request: BreakRequest,
        workers: &[usize],
        now: Instant,
        notices: &mut Vec<BreakNotice>,
    ) {
        let mut waits = self.worker_waits();
        if waits.len() >= MAX_WORKER_WAITS && !waits.contains_key(&request.key) {
            waits.retain(|_, w| now < w.deadline);
        }
        let mut untracked = WorkerWait {
            asked: 0,
            deadline: now + OPLOCK_BREAK_TIMEOUT,
        };
        let wait = if waits.len() < MAX_WORKER_WAITS || waits.contains_key(&request.key) {
            waits.entry(request.key).or_insert(untracked)
        } else {
            // Too many files waiting: ask every time, without a deadline of its own.
            &mut untracked
        };
        for &worker in workers {
            let bit = 1u64 << (worker % 64);
            if wait.asked & bit == 0 {
                wait.asked |= bit;
                notices.push(BreakNotice::Worker { worker, request });
            }
        }
    }

    fn worker_waits(&self) -> MutexGuard<'_, HashMap<FileKey, WorkerWait>> {
        self.worker_waits.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Another worker's open conflicts with what this worker's opens of `request.key` cache
    /// (its [`BreakRequest`] came through the inbox): start the breaks an open by another
    /// client would start here — the oplock break, lease breaks, read caching broken by writes
    /// and overwrites — without anyone here waiting; the holding shrinks, and is published
    /// again, as the holders acknowledge. Returns the notices to send.
    pub fn break_for_worker(&self, request: &BreakRequest) -> Vec<BreakNotice> {
        let Some(file) = self.shard(&request.key).get(&request.key).cloned() else {
            return Vec::new();
        };
        let mut st = file.state();
        st.expire_breaks(Instant::now());
        let sharing_violation = st.opens.iter().any(|o| {
            Holding::of_open(o.access, o.share_access, Holding::NONE)
                .share_conflict(request.holding)
        });
        let req = OplockRequest {
            overwrite: request.overwrite,
            stat_open: request.stat_open,
            lease_stat_open: request.lease_stat_open,
            delete_on_close: request.delete_on_close,
            ..OplockRequest::none()
        };
        let mut notices = Vec::new();
        st.break_oplock(&req, sharing_violation, &mut notices);
        if !req.lease_stat_open || req.overwrite {
            st.break_leases(&req, sharing_violation, &mut notices);
            if !sharing_violation && (req.overwrite || request.holding.contains(Holding::WRITE)) {
                notices.extend(st.break_level2(None));
            }
        }
        notices
    }

    fn lease_files(&self) -> MutexGuard<'_, HashMap<LeaseId, FileKey>> {
        self.lease_files.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admission of a new open: pending breaks, the share-mode check, and the oplock and lease
    /// breaks the open causes. `Err(PENDING)` when it must wait for a break acknowledgment.
    /// This is the one place where a conflict turns into break notices and a wait.
    fn admit(
        st: &mut FileState,
        access: u32,
        share_access: u32,
        oplock: &OplockRequest,
        notices: &mut Vec<BreakNotice>,
    ) -> Result<(), NtStatus> {
        if st.delete_pending {
            return Err(NtStatus::DELETE_PENDING);
        }
        st.expire_breaks(Instant::now());
        let sharing_violation = st
            .opens
            .iter()
            .any(|o| share_conflict(o, access, share_access));
        let mut wait = st.break_oplock(oplock, sharing_violation, notices);
        // A lease stat open breaks no lease, unless it overwrites the data.
        if !oplock.lease_stat_open || oplock.overwrite {
            wait |= st.break_leases(oplock, sharing_violation, notices);
        }
        if wait {
            if let Some(w) = oplock.waiter {
                if !st.waiters.contains(&w) && st.waiters.len() < MAX_WAITERS_PER_FILE {
                    st.waiters.push(w);
                }
            }
            return Err(NtStatus::PENDING);
        }
        if sharing_violation {
            return Err(NtStatus::SHARING_VIOLATION);
        }
        if oplock.overwrite {
            // Level II holders are told, not waited for (MS-FSA 2.1.4.12: no acknowledgment).
            for o in st.opens.iter_mut().filter(|o| o.oplock == level::II) {
                o.oplock = level::NONE;
                if let Some(target) = o.holder.clone() {
                    notices.push(BreakNotice::Oplock {
                        target,
                        level: level::NONE,
                    });
                }
            }
        }
        Ok(())
    }

    /// An oplock break acknowledgment (MS-SMB2 3.3.5.22.1) from `open`, moving to `new_level`.
    /// Returns the level now held and the connections to nudge.
    pub fn acknowledge_break(
        &self,
        open: &Open,
        new_level: u8,
    ) -> Result<(u8, Vec<ConnHandle>), NtStatus> {
        let mut st = open.file.state();
        let pb = match st.pending_break {
            Some(pb) if pb.open_key == open.open_key => pb,
            // No break in flight for this open.
            _ => return Err(NtStatus::INVALID_OPLOCK_PROTOCOL),
        };
        if new_level > pb.to {
            return Err(NtStatus::INVALID_OPLOCK_PROTOCOL);
        }
        if let Some(o) = st.opens.iter_mut().find(|o| o.open_key == open.open_key) {
            o.oplock = new_level;
        }
        st.pending_break = None;
        let waiters = std::mem::take(&mut st.waiters);
        Ok((new_level, waiters))
    }

    /// A lease break acknowledgment (MS-SMB2 3.3.5.22.2) keeping `state`. Errors as Windows
    /// answers them (smbtorture smb2.lease.breaking*): no such lease OBJECT_NAME_NOT_FOUND, no
    /// break in flight UNSUCCESSFUL, a state beyond what the break asked for
    /// REQUEST_NOT_ACCEPTED. When later conflicts need less than the client kept, the next
    /// break goes out at once (in `notices`). Returns the connections to nudge.
    pub fn acknowledge_lease_break(
        &self,
        id: LeaseId,
        state: u32,
        notices: &mut Vec<BreakNotice>,
    ) -> Result<Vec<ConnHandle>, NtStatus> {
        let key = self
            .lease_files()
            .get(&id)
            .copied()
            .ok_or(NtStatus::OBJECT_NAME_NOT_FOUND)?;
        let file = self
            .shard(&key)
            .get(&key)
            .cloned()
            .ok_or(NtStatus::OBJECT_NAME_NOT_FOUND)?;
        let mut st = file.state();
        st.expire_breaks(Instant::now());
        let lease = st
            .leases
            .iter_mut()
            .find(|l| l.id == id)
            .ok_or(NtStatus::OBJECT_NAME_NOT_FOUND)?;
        let breaking = lease.breaking.ok_or(NtStatus::UNSUCCESSFUL)?;
        if state & !breaking.to != 0 {
            return Err(NtStatus::REQUEST_NOT_ACCEPTED);
        }
        lease.state = state;
        lease.breaking = None;
        if state & !breaking.required != 0 {
            // What later conflicts need is taken in steps, as Windows does: a lease that still
            // caches handles or writes keeps R this time (smbtorture smb2.lease.breaking3).
            let mut next = breaking.required;
            if state & (caching::HANDLE | caching::WRITE) != 0 {
                next |= caching::READ;
            }
            lease.start_break(next & state, false, notices);
            if let Some(b) = lease.breaking.as_mut() {
                b.required = breaking.required;
            }
        }
        Ok(std::mem::take(&mut st.waiters))
    }

    /// MS-SMB2 3.3.4.7 with MS-FSA 2.1.5.14.11: renaming a file takes handle caching from every
    /// other lease on it, the renaming open's own lease aside (smbtorture smb2.lease.rename_wait,
    /// v2_rename). `Err(PENDING)` while such a break waits for its acknowledgment; `waiter` is
    /// nudged when it comes.
    pub fn break_handle_caching(
        &self,
        open: &Open,
        waiter: ConnHandle,
        notices: &mut Vec<BreakNotice>,
    ) -> Result<(), NtStatus> {
        let mut st = open.file.state();
        st.expire_breaks(Instant::now());
        let own = st
            .opens
            .iter()
            .find(|o| o.open_key == open.open_key)
            .and_then(|o| o.lease);
        let mut wait = false;
        for lease in st.leases.iter_mut().filter(|l| Some(l.id) != own) {
            if lease.state & caching::HANDLE == 0 {
                continue;
            }
            wait = true;
            match lease.breaking.as_mut() {
                Some(b) => b.required &= !caching::HANDLE,
                None => lease.start_break(lease.state & !caching::HANDLE, true, notices),
            }
        }
        if !wait {
            return Ok(());
        }
        if !st.waiters.contains(&waiter) && st.waiters.len() < MAX_WAITERS_PER_FILE {
            st.waiters.push(waiter);
        }
        Err(NtStatus::PENDING)
    }

    /// `open` is about to change the file's data or size (WRITE, SET_INFO end-of-file or
    /// allocation, byte-range LOCK): every level II oplock on the file breaks to NONE, without
    /// acknowledgment (MS-FSA 2.1.4.12).
    pub fn break_level2(&self, open: &Open) -> Vec<BreakNotice> {
        let mut st = open.file.state();
        let own_lease = st
            .opens
            .iter()
            .find(|o| o.open_key == open.open_key)
            .and_then(|o| o.lease);
        st.break_level2(own_lease)
    }

    /// The oplock level `open` holds now.
    pub fn oplock_level(&self, open: &Open) -> u8 {
        open.file
            .state()
            .opens
            .iter()
            .find(|o| o.open_key == open.open_key)
            .map_or(level::NONE, |o| o.oplock)
    }

    /// Whether `open` shares a lease that caches handles (what keeps a leased durable open).
    pub fn lease_caches_handles(&self, open: &Open) -> bool {
        let st = open.file.state();
        let Some(id) = st
            .opens
            .iter()
            .find(|o| o.open_key == open.open_key)
            .and_then(|o| o.lease)
        else {
            return false;
        };
        st.leases
            .iter()
            .any(|l| l.id == id && l.state & caching::HANDLE != 0)
    }

    /// The lease context of `open`'s lease as a CREATE response reports it, for a lease open.
    pub fn lease_grant(&self, open: &Open) -> Option<LeaseContext> {
        let st = open.file.state();
        let id = st
            .opens
            .iter()
            .find(|o| o.open_key == open.open_key)
            .and_then(|o| o.lease)?;
        st.leases.iter().find(|l| l.id == id).map(Lease::grant)
    }

    /// `open`'s connection is gone: an oplock break for it now finds no session, which closes
    /// the open if it waits as a disconnected durable open (`durable::purge`).
    pub fn disconnect_holder(&self, open: &Open) {
        let mut st = open.file.state();
        if let Some(o) = st.opens.iter_mut().find(|o| o.open_key == open.open_key) {
            if let Some(h) = o.holder.as_mut() {
                h.session = Weak::new();
            }
        }
    }

    /// A reclaimed durable open: its oplock breaks go to its new session from now on.
    pub fn reattach_holder(&self, open: &Open, target: BreakTarget) {
        let mut st = open.file.state();
        if let Some(o) = st.opens.iter_mut().find(|o| o.open_key == open.open_key) {
            o.holder = Some(target);
        }
    }

    /// Undo a [`register`](Self::register) whose open was never built (CREATE failed later).
    pub fn cancel(&self, reg: Registration) {
        let mut shard = self.shard(&reg.file.key);
        let mut st = reg.file.state();
        st.opens.retain(|o| o.open_key != reg.open_key);
        self.forget_leases(&mut st);
        if st.opens.is_empty() {
            drop(st);
            shard.remove(&reg.file.key);
        }
    }

    /// Remove `open` from its file: drop its locks and, when it is the last open of a
    /// delete-pending file (or it was opened delete-on-close), unlink the file through its
    /// parent beneath `root` (the open's share root).
    pub fn unregister(&self, open: &Open, root: BorrowedFd) -> Result<(), NtStatus> {
        if self.remove_open(open) {
            let path = open.path.lock().map(|p| p.clone()).unwrap_or_default();
            unlink_path(root, &path, open.is_directory)?;
        }
        Ok(())
    }

    /// Remove `open` from its file when its share root is not known any more (an open left
    /// behind by a tree that is gone): the record goes, so no later open of a file with the same
    /// inode number meets it; a delete-on-close cannot be carried out and is logged.
    pub fn forget(&self, open: &Open) {
        if self.remove_open(open) {
            tracing::warn!(path = %open.path.lock().map(|p| p.clone()).unwrap_or_default(), "open closed without its share: delete on close skipped");
        }
    }

    /// Take `open` out of its file (its record, locks, pending break, unused leases). Whether
    /// the file must be unlinked now: it was the last open of a delete-pending file.
    fn remove_open(&self, open: &Open) -> bool {
        let delete_on_close = open
            .state
            .lock()
            .map(|s| s.delete_on_close)
            .unwrap_or(false);
        let mut shard = self.shard(&open.file.key);
        let mut st = open.file.state();
        st.opens.retain(|o| o.open_key != open.open_key);
        if st
            .pending_break
            .is_some_and(|pb| pb.open_key == open.open_key)
        {
            st.pending_break = None;
        }
        self.forget_leases(&mut st);
        let had_locks = st.locks.iter().any(|l| l.open_key == open.open_key);
        st.locks.retain(|l| l.open_key != open.open_key);
        open.file.note_locks(&st);
        if delete_on_close {
            st.delete_pending = true;
        }
        let last = st.opens.is_empty();
        let delete = last && st.delete_pending;
        drop(st);
        if had_locks {
            open.file.bump_generation();
        }
        if last {
            shard.remove(&open.file.key);
        }
        delete
    }

    /// Drop the leases of `st` that lost their last open, from the file and from the index.
    fn forget_leases(&self, st: &mut FileState) {
        let gone = st.drop_unused_leases();
        if !gone.is_empty() {
            let mut index = self.lease_files();
            for id in gone {
                index.remove(&id);
            }
        }
    }

    /// FileDispositionInformation (MS-FSA 2.1.5.14.3): mark or unmark the file for deletion
    /// when its last open closes.
    pub fn set_delete_pending(&self, open: &Open, pending: bool) -> Result<(), NtStatus> {
        if pending {
            check_deletable(open)?;
        }
        open.file.state().delete_pending = pending;
        Ok(())
    }

    pub fn is_delete_pending(&self, open: &Open) -> bool {
        open.file.state().delete_pending
    }

    /// Whether some open of the file of `key` was granted any of the `access` bits.
    pub fn has_open_with_access(&self, key: FileKey, access: u32) -> bool {
        self.shard(&key)
            .get(&key)
            .is_some_and(|f| f.state().opens.iter().any(|o| o.access & access != 0))
    }

    /// How many opens the file of `key` has (0 when none).
    pub fn open_count(&self, key: FileKey) -> usize {
        self.shard(&key)
            .get(&key)
            .map(|f| f.state().opens.len())
            .unwrap_or(0)
    }

    /// Changes whenever locks on `open`'s file are released: a blocked LOCK is worth retrying.
    pub fn lock_generation(&self, open: &Open) -> u64 {
        open.file.lock_generation.load(Ordering::Acquire)
    }

    /// Take every range or none (MS-SMB2 3.3.5.14.2: on failure the ranges already locked by
    /// this request are released). A conflict is LOCK_NOT_GRANTED; the caller decides whether
    /// to wait.
    pub fn lock_ranges(&self, open: &Open, ranges: &[LockRange]) -> Result<(), NtStatus> {
        for r in ranges {
            check_range(r.offset, r.length)?;
        }
        let mut st = open.file.state();
        let before = st.locks.len();
        if before.saturating_add(ranges.len()) > MAX_LOCKS_PER_FILE {
            return Err(NtStatus::INSUFFICIENT_RESOURCES);
        }
        for r in ranges {
            let conflict = st
                .locks
                .iter()
                .any(|l| lock_conflicts(l, open.open_key, r.offset, r.length, r.exclusive, true));
            if conflict {
                st.locks.truncate(before);
                open.file.note_locks(&st);
                return Err(NtStatus::LOCK_NOT_GRANTED);
            }
            st.locks.push(ByteRangeLock {
                open_key: open.open_key,
                offset: r.offset,
                length: r.length,
                exclusive: r.exclusive,
            });
            open.file.note_locks(&st);
        }
        Ok(())
    }

    /// MS-FSA 2.1.5.9: release the lock of exactly this range held by `open` (an exclusive one
    /// first); RANGE_NOT_LOCKED when there is none.
    pub fn unlock(&self, open: &Open, offset: u64, length: u64) -> Result<(), NtStatus> {
        check_range(offset, length)?;
        let mut st = open.file.state();
        let matching = |l: &ByteRangeLock| {
            l.open_key == open.open_key && l.offset == offset && l.length == length
        };
        let index = st
            .locks
            .iter()
            .position(|l| matching(l) && l.exclusive)
            .or_else(|| st.locks.iter().position(matching))
            .ok_or(NtStatus::RANGE_NOT_LOCKED)?;
        st.locks.remove(index);
        open.file.note_locks(&st);
        drop(st);
        open.file.bump_generation();
        Ok(())
    }

    /// MS-FSA 2.1.4.10 for READ (`write` false) and WRITE: FILE_LOCK_CONFLICT when another
    /// open's lock (or, for writes, any shared lock) covers part of the range.
    pub fn check_io(
        &self,
        open: &Open,
        offset: u64,
        length: u64,
        write: bool,
    ) -> Result<(), NtStatus> {
        // The hot path of every READ and WRITE: no state lock unless the file has locks.
        if !open.file.has_locks.load(Ordering::Acquire) {
            return Ok(());
        }
        let st = open.file.state();
        let conflict = st
            .locks
            .iter()
            .any(|l| lock_conflicts(l, open.open_key, offset, length, write, false));
        if conflict {
            return Err(NtStatus::FILE_LOCK_CONFLICT);
        }
        Ok(())
    }

    /// The size in bytes of the volume holding `open`'s file (statvfs blocks × fragment size),
    /// asked of the host once per device; `u64::MAX` when the host cannot tell.
    pub fn volume_bytes(&self, open: &Open) -> u64 {
        *open
            .file
            .volume_bytes
            .get_or_init(|| self.volume_bytes_of_device(open))
    }

    fn volume_bytes_of_device(&self, open: &Open) -> u64 {
        let device = open.file.key.device;
        let known = self
            .volume_sizes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&device)
            .copied();
        if let Some(bytes) = known {
            return bytes;
        }
        let bytes = nix::sys::statvfs::fstatvfs(open.fd.as_fd())
            .map(|v| v.blocks().saturating_mul(v.fragment_size()))
            .unwrap_or(u64::MAX);
        self.volume_sizes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(device, bytes);
        bytes
    }

    /// The locks on `open`'s file (for tests and diagnostics).
    pub fn locks(&self, open: &Open) -> Vec<ByteRangeLock> {
        open.file.state().locks.clone()
    }

    /// FileBasicInformation set ChangeTime `value` through `open`; `real_ctime` is the file's
    /// ctime (FILETIME) after every change of that request was made. Kept while the file has
    /// opens.
    pub fn set_change_time(&self, open: &Open, value: u64, real_ctime: u64) {
        open.file.state().set_change_time = Some(SetChangeTime {
            value,
            stamp: real_ctime,
            open_key: open.open_key,
        });
    }

    /// `open` changed the file by SET_INFO, leaving its ctime at `real_ctime`: a change time
    /// set through this same open stays; one set through another open is superseded.
    pub fn note_change(&self, open: &Open, real_ctime: u64) {
        let mut st = open.file.state();
        match &mut st.set_change_time {
            Some(s) if s.open_key == open.open_key => s.stamp = real_ctime,
            Some(_) => st.set_change_time = None,
            None => {}
        }
    }

    /// Report a client-set change time in `meta` (metadata of `open`'s file just read).
    pub fn apply_change_time(&self, open: &Open, meta: &mut FileMetadata) {
        meta.change_time = open.file.state().change_time(meta.change_time);
    }

    /// As [`apply_change_time`](Self::apply_change_time) for metadata read by name (directory
    /// listings): files without opens have nothing to apply.
    pub fn apply_change_time_of(&self, meta: &mut FileMetadata) {
        let key = FileKey {
            device: meta.device,
            inode: meta.file_index,
        };
        let Some(file) = self.shard(&key).get(&key).cloned() else {
            return;
        };
        meta.change_time = file.state().change_time(meta.change_time);
    }
}

/// MS-FSA 2.1.5.14.3: the share root cannot be deleted, nor a READONLY file, nor a directory
/// that still has entries.
fn check_deletable(open: &Open) -> Result<(), NtStatus> {
    if open.path.lock().map(|p| p.is_empty()).unwrap_or(true) {
        return Err(NtStatus::ACCESS_DENIED);
    }
    let meta = stat_fd(open.fd.as_fd())?;
    if meta.attributes & attr::READONLY != 0 {
        return Err(NtStatus::CANNOT_DELETE);
    }
    if meta.is_directory && !directory_is_empty(open.fd.as_fd())? {
        return Err(NtStatus::DIRECTORY_NOT_EMPTY);
    }
    Ok(())
}

/// Whether the directory `dir` has no entries besides "." and "..".
pub fn directory_is_empty(dir: BorrowedFd) -> Result<bool, NtStatus> {
    let listing = sys::openat2_beneath(
        dir,
        ".",
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        0,
    )
    .map_err(NtStatus::from_errno)?;
    let mut d = nix::dir::Dir::from(listing).map_err(|e| NtStatus::from_errno(e as i32))?;
    for entry in d.iter() {
        let entry = entry.map_err(|e| NtStatus::from_errno(e as i32))?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Unlink the share-relative `path` ('/'-separated) through its parent beneath `root`.
fn unlink_path(root: BorrowedFd, path: &str, is_directory: bool) -> Result<(), NtStatus> {
    let (parent, name) = match path.rfind('/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (".", path),
    };
    if name.is_empty() {
        return Err(NtStatus::ACCESS_DENIED);
    }
    let parent_fd = sys::openat2_beneath(
        root,
        if parent.is_empty() { "." } else { parent },
        libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        0,
    )
    .map_err(super::path::map_lookup_errno)?;
    let flag = if is_directory {
        nix::unistd::UnlinkatFlags::RemoveDir
    } else {
        nix::unistd::UnlinkatFlags::NoRemoveDir
    };
    use std::os::fd::AsRawFd;
    nix::unistd::unlinkat(Some(parent_fd.as_raw_fd()), name, flag)
        .map_err(|e| NtStatus::from_errno(e as i32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_modes_follow_windows_rules() {
        let rec = |access, share_access| OpenRecord {
            open_key: 1,
            access,
            share_access,
            oplock: level::NONE,
            holder: None,
            lease: None,
        };
        use access::*;
        // Readers sharing read: fine.
        assert!(!share_conflict(
            &rec(FILE_READ_DATA, share::READ),
            FILE_READ_DATA,
            share::READ
        ));
        // A writer when the existing open does not share write.
        assert!(share_conflict(
            &rec(FILE_READ_DATA, share::READ),
            FILE_WRITE_DATA,
            share::ALL
        ));
        // The new open does not share read with an existing reader.
        assert!(share_conflict(
            &rec(FILE_READ_DATA, share::ALL),
            FILE_WRITE_DATA,
            share::WRITE
        ));
        // Attribute-only opens never conflict.
        assert!(!share_conflict(
            &rec(FILE_READ_ATTRIBUTES, 0),
            FILE_WRITE_DATA,
            0
        ));
        assert!(!share_conflict(
            &rec(FILE_WRITE_DATA, 0),
            FILE_READ_ATTRIBUTES | SYNCHRONIZE,
            0
        ));
        // DELETE needs SHARE_DELETE.
        assert!(share_conflict(
            &rec(FILE_READ_DATA, share::READ),
            DELETE,
            share::ALL
        ));
    }

    #[test]
    fn overlap_rules() {
        assert!(ranges_overlap(0, 10, 9, 1));
        assert!(!ranges_overlap(0, 10, 10, 1));
        assert!(!ranges_overlap(0, 0, 0, 10));
        // A zero-length range strictly inside a lock overlaps it; at its start it does not.
        assert!(ranges_overlap(5, 0, 0, 10));
        assert!(!ranges_overlap(0, 10, 0, 0));
        assert!(ranges_overlap(u64::MAX, 1, u64::MAX - 1, 2));
        assert_eq!(check_range(u64::MAX, 2), Err(NtStatus::INVALID_LOCK_RANGE));
        assert_eq!(check_range(u64::MAX, 1), Ok(()));
        assert_eq!(check_range(u64::MAX, 0), Ok(()));
    }

    fn oplock_request(level: u8, volatile: u64) -> OplockRequest {
        OplockRequest {
            level,
            holder: Some(BreakTarget {
                session: Weak::new(),
                file_id: FileId {
                    persistent: volatile,
                    volatile,
                },
            }),
            ..OplockRequest::none()
        }
    }

    /// The (volatile file id, level) of each oplock break among `notices`.
    fn oplock_breaks(notices: &[BreakNotice]) -> Vec<(u64, u8)> {
        notices
            .iter()
            .filter_map(|n| match n {
                BreakNotice::Oplock { target, level } => Some((target.file_id.volatile, *level)),
                _ => None,
            })
            .collect()
    }

    const KEY: FileKey = FileKey {
        device: 1,
        inode: 42,
    };
    const STAT: u32 = access::FILE_READ_ATTRIBUTES | access::SYNCHRONIZE;

    #[test]
    fn stat_open_breaks_nothing_unless_it_overwrites() {
        let table = FileTable::new();
        let mut notices = Vec::new();
        let batch = oplock_request(level::BATCH, 1);
        let first = table
            .register(
                KEY,
                access::FILE_ALL_ACCESS,
                share::ALL,
                &batch,
                &mut notices,
            )
            .unwrap();
        assert_eq!(first.oplock_level, level::BATCH);

        let stat = OplockRequest {
            stat_open: true,
            ..oplock_request(level::II, 2)
        };
        let second = table
            .register(KEY, STAT, share::ALL, &stat, &mut notices)
            .unwrap();
        assert!(notices.is_empty());
        assert_eq!(second.oplock_level, level::NONE);

        let overwrite = OplockRequest {
            overwrite: true,
            ..stat
        };
        let third = table.register(KEY, STAT, share::ALL, &overwrite, &mut notices);
        assert_eq!(third.unwrap_err(), NtStatus::PENDING);
        assert_eq!(notices.len(), 1);
        assert_eq!(oplock_breaks(&notices), [(1, level::NONE)]);
    }

    #[test]
    fn level2_break_reaches_every_level2_holder() {
        let table = FileTable::new();
        let mut notices = Vec::new();
        let rw = access::FILE_READ_DATA | access::FILE_WRITE_DATA;
        let a = table
            .register(
                KEY,
                rw,
                share::ALL,
                &oplock_request(level::II, 1),
                &mut notices,
            )
            .unwrap();
        let b = table
            .register(
                KEY,
                rw,
                share::ALL,
                &oplock_request(level::II, 2),
                &mut notices,
            )
            .unwrap();
        let c = table
            .register(KEY, rw, share::ALL, &OplockRequest::none(), &mut notices)
            .unwrap();
        assert_eq!((a.oplock_level, b.oplock_level), (level::II, level::II));
        assert_eq!(c.oplock_level, level::NONE);
        assert!(notices.is_empty());

        // Whichever open writes, both level II holders (the writer's own included) are told.
        let mut told = oplock_breaks(&a.file.state().break_level2(None));
        told.sort_unstable();
        assert_eq!(told, [(1, level::NONE), (2, level::NONE)]);
        // Already broken: a second write tells nobody.
        assert!(a.file.state().break_level2(None).is_empty());
    }

    #[test]
    fn open_access_is_visible_by_key() {
        let table = FileTable::new();
        let mut notices = Vec::new();
        assert!(!table.has_open_with_access(KEY, access::DELETE));
        let reg = table
            .register(
                KEY,
                access::DELETE | access::FILE_READ_DATA,
                share::ALL,
                &OplockRequest::none(),
                &mut notices,
            )
            .unwrap();
        assert!(table.has_open_with_access(KEY, access::DELETE));
        assert!(!table.has_open_with_access(KEY, access::FILE_WRITE_DATA));
        table.cancel(reg);
        assert!(!table.has_open_with_access(KEY, access::DELETE));
    }

    const CLIENT_A: [u8; 16] = [0xA; 16];
    const CLIENT_B: [u8; 16] = [0xB; 16];
    const R: u32 = caching::READ;
    const RH: u32 = caching::READ | caching::HANDLE;
    const RW: u32 = caching::READ | caching::WRITE;
    const RWH: u32 = caching::ALL;
    const RW_ACCESS: u32 = access::FILE_READ_DATA | access::FILE_WRITE_DATA;

    fn lease_request(client: [u8; 16], key: u8, state: u32, version: u8) -> OplockRequest {
        OplockRequest {
            level: level::LEASE,
            lease: Some(LeaseAsk {
                id: LeaseId {
                    client_guid: client,
                    key: [key; 16],
                },
                context: LeaseContext {
                    key: [key; 16],
                    state,
                    flags: 0,
                    version,
                    parent_key: [0; 16],
                    epoch: 0,
                },
            }),
            ..OplockRequest::none()
        }
    }

    fn open_with(table: &FileTable, req: &OplockRequest) -> Result<Registration, NtStatus> {
        table.register(KEY, RW_ACCESS, share::ALL, req, &mut Vec::new())
    }

    fn granted_state(reg: &Registration) -> u32 {
        reg.lease.expect("a lease context").state
    }

    /// The (key byte, current, new, ack required) of each lease break among `notices`.
    fn lease_breaks(notices: &[BreakNotice]) -> Vec<(u8, u32, u32, bool)> {
        notices
            .iter()
            .filter_map(|n| match n {
                BreakNotice::Lease { notification, .. } => Some((
                    notification.key[0],
                    notification.current_state,
                    notification.new_state,
                    notification.flags & NOTIFY_ACK_REQUIRED != 0,
                )),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn lease_grants_follow_windows() {
        // Alone on the file: R, RH, RW, RWH as asked; H or W without R is nothing.
        for (asked, granted) in [(R, R), (RH, RH), (RW, RW), (RWH, RWH), (caching::HANDLE, 0)] {
            let table = FileTable::new();
            let reg = open_with(&table, &lease_request(CLIENT_A, 1, asked, 1)).unwrap();
            assert_eq!(reg.oplock_level, level::LEASE);
            assert_eq!(granted_state(&reg), granted, "asked {asked:#x}");
        }
        // Beside another lease: no W.
        let table = FileTable::new();
        open_with(&table, &lease_request(CLIENT_A, 1, R, 1)).unwrap();
        let second = open_with(&table, &lease_request(CLIENT_A, 2, RWH, 1)).unwrap();
        assert_eq!(granted_state(&second), RH);
    }

    #[test]
    fn lease_is_shared_by_key_and_upgraded_only_by_supersets() {
        let table = FileTable::new();
        let first = open_with(&table, &lease_request(CLIENT_A, 1, RH, 2)).unwrap();
        assert_eq!(first.lease.unwrap().epoch, 1);
        // RW is no superset of RH: the lease stays RH.
        let sideways = open_with(&table, &lease_request(CLIENT_A, 1, RW, 2)).unwrap();
        assert_eq!(granted_state(&sideways), RH);
        // RWH is, and only this lease's opens are on the file: upgraded, next epoch.
        let up = open_with(&table, &lease_request(CLIENT_A, 1, RWH, 2)).unwrap();
        assert_eq!((granted_state(&up), up.lease.unwrap().epoch), (RWH, 2));
        // A downgrade request keeps what the lease has.
        let down = open_with(&table, &lease_request(CLIENT_A, 1, R, 2)).unwrap();
        assert_eq!(granted_state(&down), RWH);
        // The same key of another client is another lease.
        let other = open_with(&table, &lease_request(CLIENT_B, 1, R, 2));
        assert_eq!(other.unwrap_err(), NtStatus::PENDING);
    }

    #[test]
    fn lease_key_names_one_file() {
        let table = FileTable::new();
        let reg = open_with(&table, &lease_request(CLIENT_A, 1, R, 1)).unwrap();
        let other_file = FileKey { inode: 43, ..KEY };
        let req = lease_request(CLIENT_A, 1, R, 1);
        let refused = table.register(other_file, RW_ACCESS, share::ALL, &req, &mut Vec::new());
        assert_eq!(refused.unwrap_err(), NtStatus::INVALID_PARAMETER);
        // Once the lease's last open is gone the key is free again.
        table.cancel(reg);
        assert!(table
            .register(other_file, RW_ACCESS, share::ALL, &req, &mut Vec::new())
            .is_ok());
    }

    #[test]
    fn conflicting_open_breaks_write_caching_and_waits_for_the_ack() {
        let table = FileTable::new();
        open_with(&table, &lease_request(CLIENT_A, 1, RWH, 2)).unwrap();
        let mut notices = Vec::new();
        let blocked = table.register(
            KEY,
            RW_ACCESS,
            share::ALL,
            &OplockRequest::none(),
            &mut notices,
        );
        assert_eq!(blocked.unwrap_err(), NtStatus::PENDING);
        assert_eq!(lease_breaks(&notices), [(1, RWH, RH, true)]);
        let BreakNotice::Lease { notification, .. } = notices[0] else {
            unreachable!()
        };
        assert_eq!(notification.new_epoch, 2);
        let id = LeaseId {
            client_guid: CLIENT_A,
            key: [1; 16],
        };
        let mut more = Vec::new();
        // Keeping more than the break allows is refused; the break stays in flight.
        assert_eq!(
            table.acknowledge_lease_break(id, RWH, &mut more),
            Err(NtStatus::REQUEST_NOT_ACCEPTED)
        );
        // An unknown key is not found.
        let unknown = LeaseId { key: [9; 16], ..id };
        assert_eq!(
            table.acknowledge_lease_break(unknown, R, &mut more),
            Err(NtStatus::OBJECT_NAME_NOT_FOUND)
        );
        assert!(table.acknowledge_lease_break(id, RH, &mut more).is_ok());
        assert!(more.is_empty());
        // No break in flight any more.
        assert_eq!(
            table.acknowledge_lease_break(id, RH, &mut more),
            Err(NtStatus::UNSUCCESSFUL)
        );
        let admitted = table.register(
            KEY,
            RW_ACCESS,
            share::ALL,
            &OplockRequest::none(),
            &mut notices,
        );
        assert_eq!(admitted.unwrap().oplock_level, level::NONE);
    }

    #[test]
    fn sharing_violation_breaks_handle_caching_then_fails() {
        let table = FileTable::new();
        let holder = lease_request(CLIENT_A, 1, RH, 1);
        table
            .register(KEY, RW_ACCESS, share::READ, &holder, &mut Vec::new())
            .unwrap();
        let mut notices = Vec::new();
        let first = table.register(
            KEY,
            RW_ACCESS,
            share::ALL,
            &OplockRequest::none(),
            &mut notices,
        );
        assert_eq!(first.unwrap_err(), NtStatus::PENDING);
        assert_eq!(lease_breaks(&notices), [(1, RH, R, true)]);
        let id = LeaseId {
            client_guid: CLIENT_A,
            key: [1; 16],
        };
        table
            .acknowledge_lease_break(id, R, &mut Vec::new())
            .unwrap();
        // The holder kept its handle open: now the violation stands.
        let again = table.register(
            KEY,
            RW_ACCESS,
            share::ALL,
            &OplockRequest::none(),
            &mut notices,
        );
        assert_eq!(again.unwrap_err(), NtStatus::SHARING_VIOLATION);
    }

    #[test]
    fn read_leases_break_without_ack_and_writes_spare_the_writer() {
        let table = FileTable::new();
        let a = open_with(&table, &lease_request(CLIENT_A, 1, R, 1)).unwrap();
        open_with(&table, &lease_request(CLIENT_A, 2, R, 1)).unwrap();
        let own = Some(LeaseId {
            client_guid: CLIENT_A,
            key: [1; 16],
        });
        let notices = a.file.state().break_level2(own);
        assert_eq!(lease_breaks(&notices), [(2, R, 0, false)]);
        // An overwrite breaks the rest to none, with no wait for an R-only lease.
        let mut notices = Vec::new();
        let overwrite = OplockRequest {
            overwrite: true,
            ..OplockRequest::none()
        };
        assert!(table
            .register(KEY, RW_ACCESS, share::ALL, &overwrite, &mut notices)
            .is_ok());
        assert_eq!(lease_breaks(&notices), [(1, R, 0, false)]);
    }

    #[test]
    fn what_later_conflicts_need_follows_the_ack_in_steps() {
        let table = FileTable::new();
        open_with(&table, &lease_request(CLIENT_A, 1, RWH, 2)).unwrap();
        let mut notices = Vec::new();
        let plain = OplockRequest::none();
        let first = table.register(KEY, RW_ACCESS, share::ALL, &plain, &mut notices);
        assert_eq!(first.unwrap_err(), NtStatus::PENDING);
        // An overwrite while the break is in flight sends nothing new but needs none left.
        let overwrite = OplockRequest {
            overwrite: true,
            ..OplockRequest::none()
        };
        let second = table.register(KEY, RW_ACCESS, share::ALL, &overwrite, &mut notices);
        assert_eq!(second.unwrap_err(), NtStatus::PENDING);
        assert_eq!(lease_breaks(&notices), [(1, RWH, RH, true)]);
        let id = LeaseId {
            client_guid: CLIENT_A,
            key: [1; 16],
        };
        // Acknowledging RH brings the next step, RH to R (same epoch), then R to none.
        let mut next = Vec::new();
        table.acknowledge_lease_break(id, RH, &mut next).unwrap();
        assert_eq!(lease_breaks(&next), [(1, RH, R, true)]);
        let epochs: Vec<u16> = notices
            .iter()
            .chain(&next)
            .filter_map(|n| match n {
                BreakNotice::Lease { notification, .. } => Some(notification.new_epoch),
                _ => None,
            })
            .collect();
        assert_eq!(epochs, [2, 2]);
        let mut last = Vec::new();
        table.acknowledge_lease_break(id, R, &mut last).unwrap();
        assert_eq!(lease_breaks(&last), [(1, R, 0, false)]);
    }

    #[test]
    fn rename_takes_handle_caching_from_other_leases_only() {
        let table = FileTable::new();
        let renamer = open_with(&table, &lease_request(CLIENT_A, 1, RH, 1)).unwrap();
        open_with(&table, &lease_request(CLIENT_A, 2, RH, 1)).unwrap();
        let open = test_open(renamer);
        let waiter = ConnHandle {
            reactor: 0,
            slot: 9,
            gen: 1,
        };
        let mut notices = Vec::new();
        let blocked = table.break_handle_caching(&open, waiter, &mut notices);
        assert_eq!(blocked, Err(NtStatus::PENDING));
        assert_eq!(lease_breaks(&notices), [(2, RH, R, true)]);
        let id = LeaseId {
            client_guid: CLIENT_A,
            key: [2; 16],
        };
        let woken = table
            .acknowledge_lease_break(id, R, &mut Vec::new())
            .unwrap();
        assert_eq!(woken, [waiter]);
        assert_eq!(
            table.break_handle_caching(&open, waiter, &mut notices),
            Ok(())
        );
    }

    /// An open around a registration, for calls that take one.
    fn test_open(reg: Registration) -> Open {
        Open {
            file_id: FileId::default(),
            tree_id: 0.into(),
            fd: std::fs::File::open("/dev/null").unwrap().into(),
            path: Mutex::new(String::new()),
            is_directory: false,
            access_mask: RW_ACCESS,
            share_access: share::ALL,
            create_options: 0,
            position: std::sync::atomic::AtomicU64::new(0),
            state: Mutex::new(crate::open::OpenState::default()),
            file: reg.file,
            open_key: reg.open_key,
            durable: None,
            replay: None,
            replay_eligible: std::sync::atomic::AtomicBool::new(false),
        }
    }

    #[test]
    fn leases_and_oplocks_mix() {
        let table = FileTable::new();
        let batch = oplock_request(level::BATCH, 7);
        open_with(&table, &batch).unwrap();
        let mut notices = Vec::new();
        let lease = lease_request(CLIENT_A, 1, RWH, 1);
        let blocked = table.register(KEY, RW_ACCESS, share::ALL, &lease, &mut notices);
        assert_eq!(blocked.unwrap_err(), NtStatus::PENDING);
        assert_eq!(oplock_breaks(&notices), [(7, level::II)]);
        // Beside a level II oplock a lease has no H (nor W).
        let table = FileTable::new();
        open_with(&table, &oplock_request(level::II, 7)).unwrap();
        assert_eq!(granted_state(&open_with(&table, &lease).unwrap()), R);
        // Beside a handle-caching lease an oplock request gets nothing.
        let table = FileTable::new();
        open_with(&table, &lease_request(CLIENT_A, 1, RH, 1)).unwrap();
        let reg = open_with(&table, &oplock_request(level::II, 8)).unwrap();
        assert_eq!(reg.oplock_level, level::NONE);
    }

    fn lock(open_key: u64, offset: u64, length: u64, exclusive: bool) -> ByteRangeLock {
        ByteRangeLock {
            open_key,
            offset,
            length,
            exclusive,
        }
    }

    #[test]
    fn shared_locks_stack_on_own_exclusive_lock() {
        let own_exclusive = lock(1, 0, 10, true);
        // The same open may add a shared lock over its exclusive one, not another exclusive.
        assert!(!lock_conflicts(&own_exclusive, 1, 0, 10, false, true));
        assert!(lock_conflicts(&own_exclusive, 1, 0, 10, true, true));
        // Another open gets neither.
        assert!(lock_conflicts(&own_exclusive, 2, 0, 10, false, true));
        assert!(lock_conflicts(&own_exclusive, 2, 5, 1, true, true));
        // The owner's reads and writes pass; another open's do not.
        assert!(!lock_conflicts(&own_exclusive, 1, 0, 10, true, false));
        assert!(lock_conflicts(&own_exclusive, 2, 0, 10, false, false));
        // A shared lock excludes every exclusive lock and write, the owner's too.
        let own_shared = lock(1, 0, 10, false);
        assert!(lock_conflicts(&own_shared, 1, 0, 10, true, true));
        assert!(lock_conflicts(&own_shared, 1, 0, 10, true, false));
        assert!(!lock_conflicts(&own_shared, 2, 0, 10, false, true));
    }

    /// Two workers' file tables in one process, each with its own registry on one lock file.
    fn two_workers() -> (FileTable, FileTable) {
        use super::super::worker_registry::create_lock_file;
        let lock_file = create_lock_file().unwrap();
        let worker =
            |w| FileTable::with_registry(WorkerRegistry::open(lock_file.as_fd(), w, 2).unwrap());
        (worker(0), worker(1))
    }

    /// The break requests among `notices`: (worker asked, the request).
    fn worker_requests(notices: &[BreakNotice]) -> Vec<(usize, BreakRequest)> {
        notices
            .iter()
            .filter_map(|n| match n {
                BreakNotice::Worker { worker, request } => Some((*worker, *request)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn share_modes_conflict_across_workers() {
        let (w0, w1) = two_workers();
        let mut notices = Vec::new();
        let reader = w0
            .register(
                KEY,
                access::FILE_READ_DATA,
                share::READ,
                &OplockRequest::none(),
                &mut notices,
            )
            .unwrap();
        let writer = |table: &FileTable| {
            table.register(
                KEY,
                access::FILE_WRITE_DATA,
                share::ALL,
                &OplockRequest::none(),
                &mut Vec::new(),
            )
        };
        assert_eq!(writer(&w1).unwrap_err(), NtStatus::SHARING_VIOLATION);
        // Another reader sharing read is fine; a stat open too.
        let reader2 = w1
            .register(
                KEY,
                access::FILE_READ_DATA,
                share::READ,
                &OplockRequest::none(),
                &mut notices,
            )
            .unwrap();
        w1.register(KEY, STAT, 0, &OplockRequest::none(), &mut notices)
            .unwrap();
        assert!(notices.is_empty());
        // The holdings go with the opens.
        w0.cancel(reader);
        assert_eq!(writer(&w0).unwrap_err(), NtStatus::SHARING_VIOLATION);
        w1.cancel(reader2);
        assert!(writer(&w0).is_ok());
    }

    #[test]
    fn batch_oplock_is_broken_across_workers() {
        let (w0, w1) = two_workers();
        let holder = open_with(&w0, &oplock_request(level::BATCH, 1)).unwrap();
        assert_eq!(holder.oplock_level, level::BATCH);
        let holder = test_open(holder);

        let mut notices = Vec::new();
        let ask = oplock_request(level::BATCH, 2);
        let blocked = w1.register(KEY, RW_ACCESS, share::ALL, &ask, &mut notices);
        assert_eq!(blocked.unwrap_err(), NtStatus::PENDING);
        let requests = worker_requests(&notices);
        assert_eq!(requests.len(), 1);
        let (asked, request) = requests[0];
        assert_eq!(asked, 0);
        assert_eq!(request.key, KEY);
        assert!(!request.overwrite && !request.stat_open);
        // A retry before the holder answered waits without asking again.
        let mut again = Vec::new();
        let retry = OplockRequest {
            retry: true,
            ..ask.clone()
        };
        let blocked = w1.register(KEY, RW_ACCESS, share::ALL, &retry, &mut again);
        assert_eq!(blocked.unwrap_err(), NtStatus::PENDING);
        assert!(again.is_empty());

        // Worker 0's inbox runs the request: the batch holder is told to go to level II.
        let breaks = w0.break_for_worker(&request);
        assert_eq!(oplock_breaks(&breaks), [(1, level::II)]);
        // Asked again (the requester retried after a restart, say): nothing more to send.
        assert!(w0.break_for_worker(&request).is_empty());
        let blocked = w1.register(KEY, RW_ACCESS, share::ALL, &retry, &mut again);
        assert_eq!(blocked.unwrap_err(), NtStatus::PENDING);

        // The holder acknowledges: its holding shrinks and the requester proceeds at level II.
        let (now, _) = w0.acknowledge_break(&holder, level::II).unwrap();
        assert_eq!(now, level::II);
        let admitted = w1
            .register(KEY, RW_ACCESS, share::ALL, &retry, &mut again)
            .unwrap();
        assert_eq!(admitted.oplock_level, level::II);
        // It may write: the other worker's level II goes to none, without waiting.
        assert_eq!(worker_requests(&again).len(), 1);
        assert!(w0.break_for_worker(&worker_requests(&again)[0].1).len() == 1);
        assert_eq!(w0.oplock_level(&holder), level::NONE);
    }

    #[test]
    fn sharing_violation_across_workers_breaks_a_batch_oplock_first() {
        let (w0, w1) = two_workers();
        let holder = w0
            .register(
                KEY,
                RW_ACCESS,
                share::READ,
                &oplock_request(level::BATCH, 1),
                &mut Vec::new(),
            )
            .unwrap();
        let holder = test_open(holder);
        let mut notices = Vec::new();
        let writer = OplockRequest {
            retry: true,
            ..OplockRequest::none()
        };
        let blocked = w1.register(KEY, RW_ACCESS, share::ALL, &writer, &mut notices);
        assert_eq!(blocked.unwrap_err(), NtStatus::PENDING);
        let (_, request) = worker_requests(&notices)[0];
        assert_eq!(
            oplock_breaks(&w0.break_for_worker(&request)),
            [(1, level::II)]
        );
        // The holder keeps its handle: the conflict stands once the handle caching is gone.
        w0.acknowledge_break(&holder, level::II).unwrap();
        let refused = w1.register(KEY, RW_ACCESS, share::ALL, &writer, &mut notices);
        assert_eq!(refused.unwrap_err(), NtStatus::SHARING_VIOLATION);
    }

    #[test]
    fn lease_is_broken_to_read_handle_across_workers() {
        let (w0, w1) = two_workers();
        let held = open_with(&w0, &lease_request(CLIENT_A, 1, RWH, 2)).unwrap();
        assert_eq!(granted_state(&held), RWH);
        let mut notices = Vec::new();
        let ask = lease_request(CLIENT_B, 2, RWH, 2);
        let blocked = w1.register(KEY, RW_ACCESS, share::ALL, &ask, &mut notices);
        assert_eq!(blocked.unwrap_err(), NtStatus::PENDING);
        let (asked, request) = worker_requests(&notices)[0];
        assert_eq!(asked, 0);
        let breaks = w0.break_for_worker(&request);
        assert_eq!(lease_breaks(&breaks), [(1, RWH, RH, true)]);
        let id = LeaseId {
            client_guid: CLIENT_A,
            key: [1; 16],
        };
        let mut more = Vec::new();
        w0.acknowledge_lease_break(id, RH, &mut more).unwrap();
        assert!(more.is_empty());
        let retry = OplockRequest { retry: true, ..ask };
        let admitted = w1
            .register(KEY, RW_ACCESS, share::ALL, &retry, &mut notices)
            .unwrap();
        // Beside another worker's open: read and handle caching, never write caching.
        assert_eq!(granted_state(&admitted), RH);
    }

    #[test]
    fn a_dead_workers_opens_let_a_waiting_open_in() {
        let (w0, w1) = two_workers();
        let holder = open_with(&w0, &oplock_request(level::BATCH, 1)).unwrap();
        let mut notices = Vec::new();
        let ask = oplock_request(level::BATCH, 2);
        let blocked = w1.register(KEY, RW_ACCESS, share::ALL, &ask, &mut notices);
        assert_eq!(blocked.unwrap_err(), NtStatus::PENDING);
        // Worker 0 dies without acknowledging: its lock file description closes.
        drop(holder);
        drop(w0);
        let admitted = open_with(&w1, &ask).unwrap();
        assert_eq!(admitted.oplock_level, level::BATCH);
    }

    #[test]
    fn a_break_timeout_lets_the_open_in_beside_another_workers_caching() {
        let (w0, w1) = two_workers();
        let _holder = open_with(&w0, &oplock_request(level::BATCH, 1)).unwrap();
        let ask = oplock_request(level::BATCH, 2);
        assert_eq!(open_with(&w1, &ask).unwrap_err(), NtStatus::PENDING);
        // The holder never answers: past the deadline its caching counts as broken.
        w1.worker_waits()
            .get_mut(&KEY)
            .expect("a wait for worker 0")
            .deadline = Instant::now();
        let admitted = open_with(&w1, &ask).unwrap();
        assert_eq!(admitted.oplock_level, level::II);
    }
}
