//! What the other worker processes hold on a file (`smb3d serve --workers N`).
//!
//! Each worker keeps its own [`FileTable`](super::file_table::FileTable); this registry lets a
//! worker see the opens of the others without asking them. Every worker publishes, per file,
//! the union of what its opens hold — access, share modes denied, caching granted — as OFD
//! byte-range read locks on one memfd that all workers inherit from the control process. A
//! worker reads the others' holdings with `F_OFD_GETLK`, which reports locks of *other* open
//! file descriptions only, so each worker opens the memfd anew (`/proc/self/fd/N`) to get its
//! own. When a worker dies its description closes and the kernel drops its locks: a crashed
//! worker's share modes and oplocks vanish with it, with no clean-up code to get wrong.
//!
//! Layout of the lock file: a file (device, inode) hashes to a 52-bit slot of
//! [`SLOT_BYTES`] bytes; worker `w` owns bytes `w * 16 .. w * 16 + BITS` of the slot, one byte
//! per [`Holding`] bit, and the slot's last byte is a guard. Admission of an open takes the
//! guard exclusively, reads the others' bytes, decides, publishes its own and drops the guard,
//! so two workers cannot both admit conflicting opens. The guard is held for a few system
//! calls; a worker waiting for it blocks its reactor that long. Two files sharing a slot (a
//! hash collision, about 1 in 10^4 with a million files open at once) look to each other like
//! one file: an open may see a sharing violation it should not, or wait out the break timeout
//! for a break the other file's worker has nothing to do for; never the reverse.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::ffi::CString;
use std::hash::{Hash, Hasher};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::sync::{Mutex, MutexGuard};

use nix::fcntl::{fcntl, FcntlArg};
use nix::sys::memfd::{memfd_create, MemFdCreateFlag};

use super::file_table::{access, share, FileKey};

/// Worker processes the registry can tell apart (a byte range of 16 per worker in a slot): as
/// many as `smb3d serve --workers` allows.
pub const MAX_WORKERS: usize = 64;
/// Bytes of one file's slot: 64 workers × 16 bytes and the guard byte (1025), rounded up to a
/// power of two.
const SLOT_BYTES: i64 = 2048;
const WORKER_BYTES: i64 = 16;
const GUARD_OFFSET: i64 = SLOT_BYTES - 1;
/// Slots are numbered below 2^52 so that `slot * SLOT_BYTES` (2^11) stays below `i64::MAX`.
const SLOT_MASK: u64 = (1 << 52) - 1;
const PUBLISH_SHARDS: usize = 64;
const _: () = assert!(MAX_WORKERS as i64 * WORKER_BYTES < SLOT_BYTES);
const _: () = assert!((SLOT_MASK as i128) * (SLOT_BYTES as i128) < i64::MAX as i128);

/// What a worker's opens of one file hold, as a set of bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Holding(u16);

impl Holding {
    /// Some open of the file exists (any access, stat opens included).
    pub const OPEN: Holding = Holding(1 << 0);
    /// An open reads (FILE_READ_DATA or FILE_EXECUTE), writes (WRITE or APPEND), or may delete.
    pub const READ: Holding = Holding(1 << 1);
    pub const WRITE: Holding = Holding(1 << 2);
    pub const DELETE: Holding = Holding(1 << 3);
    /// An open with data access does not share reading, writing or deleting.
    pub const DENY_READ: Holding = Holding(1 << 4);
    pub const DENY_WRITE: Holding = Holding(1 << 5);
    pub const DENY_DELETE: Holding = Holding(1 << 6);
    /// Caching granted by an oplock or lease: read (level II, R), write (exclusive, batch,
    /// W) and handle (batch, H).
    pub const CACHE_READ: Holding = Holding(1 << 7);
    pub const CACHE_WRITE: Holding = Holding(1 << 8);
    pub const CACHE_HANDLE: Holding = Holding(1 << 9);
    const BITS: u32 = 10;

    pub const NONE: Holding = Holding(0);

    /// The holding of one open: its access and share mode (share modes only count for opens
    /// with data or delete access, MS-FSA 2.1.5.1.2) and its caching.
    pub fn of_open(desired_access: u32, share_access: u32, caching: Holding) -> Holding {
        let mut h = Holding::OPEN | caching;
        let reads = desired_access & (access::FILE_READ_DATA | access::FILE_EXECUTE) != 0;
        let writes = desired_access & (access::FILE_WRITE_DATA | access::FILE_APPEND_DATA) != 0;
        let deletes = desired_access & access::DELETE != 0;
        for (on, bit) in [
            (reads, Holding::READ),
            (writes, Holding::WRITE),
            (deletes, Holding::DELETE),
        ] {
            if on {
                h = h | bit;
            }
        }
        if reads || writes || deletes {
            for (shared, deny) in [
                (share::READ, Holding::DENY_READ),
                (share::WRITE, Holding::DENY_WRITE),
                (share::DELETE, Holding::DENY_DELETE),
            ] {
                if share_access & shared == 0 {
                    h = h | deny;
                }
            }
        }
        h
    }

    /// Every caching bit.
    pub const CACHING: Holding =
        Holding(Self::CACHE_READ.0 | Self::CACHE_WRITE.0 | Self::CACHE_HANDLE.0);

    /// The bits as a number (for messages between workers).
    pub fn to_bits(self) -> u16 {
        self.0
    }

    /// A holding from [`to_bits`](Self::to_bits); `None` when a bit is unknown.
    pub fn from_bits(bits: u16) -> Option<Holding> {
        (u32::from(bits) >> Self::BITS == 0).then_some(Holding(bits))
    }

    /// These bits without those of `other`.
    pub fn without(self, other: Holding) -> Holding {
        Holding(self.0 & !other.0)
    }

    /// MS-FSA 2.1.5.1.2: do two holdings' access and share modes conflict?
    pub fn share_conflict(self, other: Holding) -> bool {
        let pairs = [
            (Holding::READ, Holding::DENY_READ),
            (Holding::WRITE, Holding::DENY_WRITE),
            (Holding::DELETE, Holding::DENY_DELETE),
        ];
        pairs.iter().any(|&(acc, deny)| {
            (self.contains(acc) && other.contains(deny))
                || (self.contains(deny) && other.contains(acc))
        })
    }

    pub fn contains(self, other: Holding) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn intersects(self, other: Holding) -> bool {
        self.0 & other.0 != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    fn bits(self) -> impl Iterator<Item = u32> {
        (0..Self::BITS).filter(move |b| self.0 & (1 << b) != 0)
    }
}

impl std::ops::BitOr for Holding {
    type Output = Holding;
    fn bitor(self, rhs: Holding) -> Holding {
        Holding(self.0 | rhs.0)
    }
}

/// What the other workers hold on a file: per worker, the union of its opens' holdings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Others {
    by_worker: Vec<(usize, Holding)>,
}

impl Others {
    /// The workers holding any of `bits`.
    pub fn holding(&self, bits: Holding) -> impl Iterator<Item = usize> + '_ {
        self.by_worker
            .iter()
            .filter(move |(_, h)| h.intersects(bits))
            .map(|(w, _)| *w)
    }

    /// Whether no other worker holds anything on the file.
    pub fn is_empty(&self) -> bool {
        self.by_worker.is_empty()
    }

    /// The union of every other worker's holding.
    pub fn union(&self) -> Holding {
        self.by_worker
            .iter()
            .fold(Holding::NONE, |acc, (_, h)| acc | *h)
    }

    /// MS-FSA 2.1.5.1.2: would an open with `holding` (from [`Holding::of_open`]) conflict with
    /// the share modes or access of the other workers' opens?
    pub fn sharing_violation(&self, holding: Holding) -> bool {
        holding.share_conflict(self.union())
    }
}

/// Per slot: what each file of this worker in the slot holds, and what is published (their
/// union).
#[derive(Default)]
struct SlotState {
    by_file: HashMap<FileKey, Holding>,
    published: Holding,
}

/// What a worker asks of another that holds caching on a file its new open conflicts with:
/// break it as for an open by another client (`FileTable::break_for_worker`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakRequest {
    pub key: FileKey,
    /// The new open's access and share mode ([`Holding::of_open`], no caching).
    pub holding: Holding,
    /// SUPERSEDE or OVERWRITE(_IF).
    pub overwrite: bool,
    /// Attributes and SYNCHRONIZE only: breaks no oplock.
    pub stat_open: bool,
    /// Attributes, SYNCHRONIZE and READ_CONTROL only: breaks no lease.
    pub lease_stat_open: bool,
    /// FILE_DELETE_ON_CLOSE: takes handle caching too.
    pub delete_on_close: bool,
}

/// One worker's view of the registry.
pub struct WorkerRegistry {
    /// This worker's own open file description of the shared lock file.
    lock_file: OwnedFd,
    worker: usize,
    workers: usize,
    published: Vec<Mutex<HashMap<u64, SlotState>>>,
}

/// The lock file every worker opens its registry on; made by the control process before it
/// starts the workers, which inherit it.
pub fn create_lock_file() -> io::Result<OwnedFd> {
    let name = CString::new("smb3d-worker-registry").map_err(io::Error::other)?;
    Ok(memfd_create(&name, MemFdCreateFlag::empty())?)
}

impl std::fmt::Debug for WorkerRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerRegistry")
            .field("worker", &self.worker)
            .field("workers", &self.workers)
            .finish_non_exhaustive()
    }
}

impl WorkerRegistry {
    /// Worker `worker` of `workers` opens its own description of `lock_file`.
    pub fn open(lock_file: BorrowedFd, worker: usize, workers: usize) -> io::Result<Self> {
        if workers > MAX_WORKERS || worker >= workers {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("worker {worker} of {workers}: at most {MAX_WORKERS} workers"),
            ));
        }
        // Opening the memfd through /proc makes a new open file description: locks of this
        // worker then conflict with the other workers' (an inherited descriptor would share
        // one description, and so one lock owner, with them).
        let path = format!("/proc/self/fd/{}", lock_file.as_raw_fd());
        let lock_file = OwnedFd::from(
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)?,
        );
        Ok(WorkerRegistry {
            lock_file,
            worker,
            workers,
            published: (0..PUBLISH_SHARDS).map(|_| Mutex::default()).collect(),
        })
    }

    pub fn worker(&self) -> usize {
        self.worker
    }

    /// Take the file's guard: until the returned guard drops, no other worker (nor another
    /// thread of this one) admits an open of a file in the same slot. Waits while another
    /// worker holds it.
    pub fn lock(&self, key: FileKey) -> io::Result<SlotGuard<'_>> {
        let slot = slot_of(key);
        // The shard mutex keeps this worker's threads apart (they share one description, so
        // the lock below does not); the OFD lock keeps the other workers out.
        let shard = self.shard(slot);
        self.set_lock(libc::F_WRLCK, slot_base(slot) + GUARD_OFFSET, 1, Wait::Yes)?;
        Ok(SlotGuard {
            registry: self,
            shard,
            key,
            slot,
        })
    }

    /// Publish that this worker now holds only `holding` on `key` (NONE when its last open of
    /// the file is gone). Giving bits up needs no guard; taking new ones goes through
    /// [`SlotGuard::publish`], after checking the others.
    pub fn release(&self, key: FileKey, holding: Holding) -> io::Result<()> {
        let slot = slot_of(key);
        let mut shard = self.shard(slot);
        let own = shard
            .get(&slot)
            .and_then(|s| s.by_file.get(&key).copied())
            .unwrap_or(Holding::NONE);
        if Holding(holding.0 & !own.0) != Holding::NONE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "worker registry: release may only give holdings up",
            ));
        }
        self.publish(&mut shard, key, slot, holding)
    }

    fn publish(
        &self,
        shard: &mut HashMap<u64, SlotState>,
        key: FileKey,
        slot: u64,
        holding: Holding,
    ) -> io::Result<()> {
        let state = shard.entry(slot).or_default();
        if holding.is_empty() {
            state.by_file.remove(&key);
        } else {
            state.by_file.insert(key, holding);
        }
        let union = state
            .by_file
            .values()
            .fold(Holding::NONE, |acc, h| acc | *h);
        let before = state.published;
        state.published = union;
        if state.by_file.is_empty() {
            shard.remove(&slot);
        }
        let base = slot_base(slot) + self.worker as i64 * WORKER_BYTES;
        for bit in Holding(before.0 & !union.0).bits() {
            self.set_lock(libc::F_UNLCK, base + i64::from(bit), 1, Wait::No)?;
        }
        for bit in Holding(union.0 & !before.0).bits() {
            self.set_lock(libc::F_RDLCK, base + i64::from(bit), 1, Wait::No)?;
        }
        Ok(())
    }

    fn shard(&self, slot: u64) -> MutexGuard<'_, HashMap<u64, SlotState>> {
        self.published[(slot as usize) % PUBLISH_SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// What the other workers hold in `slot`: per worker one `F_OFD_GETLK` over its bytes,
    /// continued past each lock found (the kernel keeps one owner's locks merged and sorted,
    /// so a worker holding a run of bits answers with one lock for the run).
    fn others_in(&self, slot: u64) -> io::Result<Others> {
        let mut by_worker = Vec::new();
        for w in (0..self.workers).filter(|&w| w != self.worker) {
            let start = slot_base(slot) + w as i64 * WORKER_BYTES;
            let end = start + i64::from(Holding::BITS);
            let mut held = 0u16;
            let mut at = start;
            while at < end {
                let Some((lock_start, lock_len)) = self.test_lock(at, end - at)? else {
                    break;
                };
                let from = lock_start.max(at);
                let to = if lock_len == 0 {
                    end
                } else {
                    (lock_start + lock_len).min(end)
                };
                for byte in from..to {
                    held |= 1 << (byte - start);
                }
                at = to.max(at + 1);
            }
            if held != 0 {
                by_worker.push((w, Holding(held)));
            }
        }
        Ok(Others { by_worker })
    }

    fn set_lock(&self, kind: i32, start: i64, len: i64, wait: Wait) -> io::Result<()> {
        let lock = flock(kind, start, len);
        loop {
            let arg = match wait {
                Wait::Yes => FcntlArg::F_OFD_SETLKW(&lock),
                Wait::No => FcntlArg::F_OFD_SETLK(&lock),
            };
            match fcntl(self.lock_file.as_raw_fd(), arg) {
                Ok(_) => return Ok(()),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The first lock of another description overlapping `start..start + len`, if any.
    fn test_lock(&self, start: i64, len: i64) -> io::Result<Option<(i64, i64)>> {
        let mut lock = flock(libc::F_WRLCK, start, len);
        fcntl(self.lock_file.as_raw_fd(), FcntlArg::F_OFD_GETLK(&mut lock))?;
        if i32::from(lock.l_type) == libc::F_UNLCK {
            return Ok(None);
        }
        Ok(Some((lock.l_start, lock.l_len)))
    }
}

#[derive(Clone, Copy)]
enum Wait {
    Yes,
    No,
}

/// A file's guard, held while an open is admitted (see [`WorkerRegistry::lock`]).
pub struct SlotGuard<'a> {
    registry: &'a WorkerRegistry,
    shard: MutexGuard<'a, HashMap<u64, SlotState>>,
    key: FileKey,
    slot: u64,
}

impl SlotGuard<'_> {
    /// What the other workers hold on the file (and on any file sharing its slot).
    pub fn others(&self) -> io::Result<Others> {
        self.registry.others_in(self.slot)
    }

    /// Publish this worker's holding on the file, new bits included.
    pub fn publish(&mut self, holding: Holding) -> io::Result<()> {
        let (key, slot) = (self.key, self.slot);
        self.registry.publish(&mut self.shard, key, slot, holding)
    }
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        let guard = slot_base(self.slot) + GUARD_OFFSET;
        if let Err(e) = self.registry.set_lock(libc::F_UNLCK, guard, 1, Wait::No) {
            tracing::error!(error = %e, "worker registry: cannot release a file's guard");
        }
    }
}

fn slot_of(key: FileKey) -> u64 {
    // DefaultHasher::new() has fixed keys: every worker (a fork of one binary) agrees.
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    h.finish() & SLOT_MASK
}

fn slot_base(slot: u64) -> i64 {
    // slot < 2^52 and SLOT_BYTES = 2^11: the product is below 2^63.
    slot as i64 * SLOT_BYTES
}

fn flock(kind: i32, start: i64, len: i64) -> libc::flock {
    libc::flock {
        l_type: kind as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: start,
        l_len: len,
        // OFD locks require l_pid to be 0.
        l_pid: 0,
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use super::*;

    const FILE_A: FileKey = FileKey {
        device: 1,
        inode: 100,
    };
    const FILE_B: FileKey = FileKey {
        device: 1,
        inode: 200,
    };

    fn two_workers() -> (WorkerRegistry, WorkerRegistry) {
        let lock_file = create_lock_file().unwrap();
        let w0 = WorkerRegistry::open(lock_file.as_fd(), 0, 2).unwrap();
        let w1 = WorkerRegistry::open(lock_file.as_fd(), 1, 2).unwrap();
        (w0, w1)
    }

    fn reader_denying_write() -> Holding {
        Holding::of_open(
            access::FILE_READ_DATA,
            share::READ | share::DELETE,
            Holding::NONE,
        )
    }

    #[test]
    fn holding_of_an_open_follows_access_and_share_mode() {
        let h = reader_denying_write();
        assert!(h.contains(Holding::OPEN | Holding::READ | Holding::DENY_WRITE));
        assert!(!h.intersects(Holding::WRITE | Holding::DENY_READ | Holding::DENY_DELETE));
        // A stat open (attributes only) takes part in no share-mode check.
        let stat = Holding::of_open(access::FILE_READ_ATTRIBUTES, 0, Holding::NONE);
        assert_eq!(stat, Holding::OPEN);
        let batch = Holding::CACHE_READ | Holding::CACHE_WRITE | Holding::CACHE_HANDLE;
        assert!(Holding::of_open(access::FILE_ALL_ACCESS, share::ALL, batch).contains(batch));
    }

    #[test]
    fn a_worker_sees_what_another_publishes_and_not_its_own() {
        let (w0, w1) = two_workers();
        let mut guard = w0.lock(FILE_A).unwrap();
        assert!(guard.others().unwrap().is_empty());
        guard.publish(reader_denying_write()).unwrap();
        drop(guard);

        assert!(w0.lock(FILE_A).unwrap().others().unwrap().is_empty());
        let others = w1.lock(FILE_A).unwrap().others().unwrap();
        assert_eq!(others.union(), reader_denying_write());
        assert_eq!(others.holding(Holding::DENY_WRITE).collect::<Vec<_>>(), [0]);
        let writer = Holding::of_open(access::FILE_WRITE_DATA, share::ALL, Holding::NONE);
        let reader = Holding::of_open(access::FILE_READ_DATA, share::ALL, Holding::NONE);
        let exclusive = Holding::of_open(access::FILE_READ_DATA, 0, Holding::NONE);
        assert!(others.sharing_violation(writer));
        assert!(!others.sharing_violation(reader));
        assert!(others.sharing_violation(exclusive));
        // Another file is untouched.
        assert!(w1.lock(FILE_B).unwrap().others().unwrap().is_empty());
    }

    #[test]
    fn bits_far_apart_are_all_reported() {
        let (w0, w1) = two_workers();
        let held = Holding::OPEN | Holding::DELETE | Holding::CACHE_HANDLE;
        w0.lock(FILE_A).unwrap().publish(held).unwrap();
        assert_eq!(w1.lock(FILE_A).unwrap().others().unwrap().union(), held);
    }

    #[test]
    fn release_gives_up_holdings_and_refuses_to_take_new_ones() {
        let (w0, w1) = two_workers();
        let batch = Holding::of_open(
            access::FILE_READ_DATA,
            share::ALL,
            Holding::CACHE_READ | Holding::CACHE_WRITE | Holding::CACHE_HANDLE,
        );
        w0.lock(FILE_A).unwrap().publish(batch).unwrap();
        // The oplock is broken to level II: write and handle caching go.
        let level2 = Holding::of_open(access::FILE_READ_DATA, share::ALL, Holding::CACHE_READ);
        w0.release(FILE_A, level2).unwrap();
        let others = w1.lock(FILE_A).unwrap().others().unwrap();
        assert_eq!(others.union(), level2);
        assert_eq!(others.holding(Holding::CACHE_WRITE).count(), 0);
        assert!(w0.release(FILE_A, batch).is_err());
        w0.release(FILE_A, Holding::NONE).unwrap();
        assert!(w1.lock(FILE_A).unwrap().others().unwrap().is_empty());
    }

    #[test]
    fn a_dead_workers_holdings_vanish_with_it() {
        let (w0, w1) = two_workers();
        w0.lock(FILE_A)
            .unwrap()
            .publish(reader_denying_write())
            .unwrap();
        assert!(!w1.lock(FILE_A).unwrap().others().unwrap().is_empty());
        drop(w0); // its description closes, as when the process dies
        assert!(w1.lock(FILE_A).unwrap().others().unwrap().is_empty());
    }

    #[test]
    fn the_guard_keeps_another_worker_waiting() {
        let (w0, w1) = two_workers();
        let w1 = Arc::new(w1);
        let released = Arc::new(AtomicBool::new(false));
        let guard = w0.lock(FILE_A).unwrap();
        let waiter = {
            let (w1, released) = (w1.clone(), released.clone());
            std::thread::spawn(move || {
                let _guard = w1.lock(FILE_A).unwrap();
                released.load(Ordering::SeqCst)
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(50));
        released.store(true, Ordering::SeqCst);
        drop(guard);
        assert!(
            waiter.join().unwrap(),
            "worker 1 got the guard while worker 0 held it"
        );
    }

    #[test]
    fn the_last_of_64_workers_sees_the_first() {
        let lock_file = create_lock_file().unwrap();
        let first = WorkerRegistry::open(lock_file.as_fd(), 0, MAX_WORKERS).unwrap();
        let last = WorkerRegistry::open(lock_file.as_fd(), MAX_WORKERS - 1, MAX_WORKERS).unwrap();
        let held = Holding::OPEN | Holding::CACHE_HANDLE;
        last.lock(FILE_A).unwrap().publish(held).unwrap();
        let others = first.lock(FILE_A).unwrap().others().unwrap();
        assert_eq!(others.holding(held).collect::<Vec<_>>(), [MAX_WORKERS - 1]);
        assert!(last.lock(FILE_A).unwrap().others().unwrap().is_empty());
    }

    #[test]
    fn worker_numbers_are_bounded() {
        let lock_file = create_lock_file().unwrap();
        assert!(WorkerRegistry::open(lock_file.as_fd(), 2, 2).is_err());
        assert!(WorkerRegistry::open(lock_file.as_fd(), 0, MAX_WORKERS + 1).is_err());
    }
}
