//! Opens: the file handles a session holds (MS-SMB2 3.3.1.10 Open).

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use smb3d_protocol::NtStatus;

use crate::storage::file_table::FileEntry;

/// SMB2_FILEID (MS-SMB2 2.2.14.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct FileId {
    pub persistent: u64,
    pub volatile: u64,
}

impl FileId {
    /// All-ones: "the file opened by the previous request of this related compound chain", and
    /// the handle used by IOCTLs that are not about a file.
    pub const RELATED: FileId = FileId {
        persistent: u64::MAX,
        volatile: u64::MAX,
    };

    pub fn decode(b: &[u8; 16]) -> FileId {
        let mut p = [0u8; 8];
        let mut v = [0u8; 8];
        p.copy_from_slice(&b[..8]);
        v.copy_from_slice(&b[8..]);
        FileId {
            persistent: u64::from_le_bytes(p),
            volatile: u64::from_le_bytes(v),
        }
    }

    pub fn encode(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.persistent.to_le_bytes());
        out[8..].copy_from_slice(&self.volatile.to_le_bytes());
        out
    }
}

/// Hands out FileIds unique in the whole server: persistent and volatile halves are the same
/// value, and its bits 48-55 name the worker that owns the open (as session ids do,
/// `handoff::session_owner`), so a reconnect naming it can tell where the open lives.
#[derive(Debug)]
pub struct FileIdAllocator {
    owner_bits: u64,
    next: AtomicU64,
}

/// The bits of a FileId below its owner bits.
const FILE_ID_COUNTER_MASK: u64 = (1 << crate::handoff::SESSION_OWNER_SHIFT) - 1;

impl FileIdAllocator {
    /// FileIds of worker `worker` (0 without workers), counting from a point `seed` picks so
    /// a restarted worker does not hand out the ids of its previous life again.
    pub fn new(seed: u64, worker: usize) -> FileIdAllocator {
        FileIdAllocator {
            owner_bits: crate::handoff::session_id_base(worker),
            next: AtomicU64::new((seed & 0x0000_ffff_0000_0000) | 1),
        }
    }

    /// A new FileId: never 0 nor all-ones (the related-compound FileId).
    pub fn allocate(&self) -> FileId {
        loop {
            let counter = self.next.fetch_add(1, Ordering::Relaxed) & FILE_ID_COUNTER_MASK;
            if counter != 0 {
                let id = self.owner_bits | counter;
                return FileId {
                    persistent: id,
                    volatile: id,
                };
            }
        }
    }
}

/// The worker owning the open a FileId names (see [`FileIdAllocator`]).
pub fn file_id_owner(id: FileId) -> usize {
    crate::handoff::session_owner(id.persistent)
}

/// One open file or directory.
#[derive(Debug)]
pub struct Open {
    pub file_id: FileId,
    /// The tree the open belongs to; a durable open reclaimed on a new session moves to that
    /// session's tree.
    pub tree_id: AtomicU32,
    /// The host descriptor: read/write as granted for files, `O_RDONLY|O_DIRECTORY` for directories.
    pub fd: OwnedFd,
    /// Path relative to the share root, '/'-separated, "" for the root itself.
    pub path: Mutex<String>,
    pub is_directory: bool,
    /// Granted access (MS-SMB2 2.2.13.1).
    pub access_mask: u32,
    pub share_access: u32,
    pub create_options: u32,
    /// FilePositionInformation: where the last read ended, or what SET_INFO set. Atomic, so a
    /// READ updates it without taking `state`.
    pub position: AtomicU64,
    /// Mutable per-open state.
    pub state: Mutex<OpenState>,
    /// The file's server-wide shared state (share modes, delete-pending, byte-range locks).
    pub file: Arc<FileEntry>,
    /// This open's server-wide unique key in `file` (from `FileTable::register`).
    pub open_key: u64,
    /// Set when the open was granted a durable handle (MS-SMB2 3.3.5.9.6/3.3.5.9.10).
    pub durable: Option<crate::durable::DurableGrant>,
    /// Open.CreateGuid: set for a CREATE with a DH2Q context, durable or not, so a replay of that
    /// CREATE finds the open (MS-SMB2 3.3.5.9.10).
    pub replay: Option<ReplayKey>,
    /// Open.IsReplayEligible: cleared by the first request that uses the open (MS-SMB2 3.3.5.12
    /// and others; Windows clears it on QUERY_INFO too, smbtorture smb2.replay.replay6).
    pub replay_eligible: AtomicBool,
}

/// What a replayed CREATE is matched with and answered from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplayKey {
    pub create_guid: [u8; 16],
    /// The CreateAction of the original CREATE.
    pub create_action: u32,
}

impl Open {
    pub fn tree_id(&self) -> u32 {
        self.tree_id.load(Ordering::Acquire)
    }

    pub fn set_tree_id(&self, tree_id: u32) {
        self.tree_id.store(tree_id, Ordering::Release)
    }

    /// A request other than a replayed CREATE used the open.
    pub fn used(&self) {
        if self.replay_eligible.load(Ordering::Relaxed) {
            self.replay_eligible.store(false, Ordering::Relaxed);
        }
    }

    pub fn is_replay_eligible(&self) -> bool {
        self.replay_eligible.load(Ordering::Relaxed)
    }
}

impl Drop for Open {
    /// Every way an open ends goes through `FileTable::unregister` (or `forget`); one that did
    /// not would leave its record in the file table for good: a phantom open that a later file
    /// with the same inode number meets (SHARING_VIOLATION). It is taken out here, and logged.
    fn drop(&mut self) {
        if self.file.remove_record(self.open_key) {
            let path = self.path.lock().map(|p| p.clone()).unwrap_or_default();
            tracing::warn!(%path, "open ended without being closed; its share mode record removed");
        }
    }
}

#[derive(Debug, Default)]
pub struct OpenState {
    pub delete_on_close: bool,
    /// FileModeInformation.
    pub mode: u32,
    /// QUERY_DIRECTORY enumeration state (pattern, name snapshot, cursor); `None` until the
    /// first QUERY_DIRECTORY on this open.
    pub search: Option<crate::commands::query_directory::DirSearch>,
    /// Index of the next EA a FileFullEaInformation enumeration returns (MS-FSA 2.1.5.12.12).
    pub ea_index: usize,
    /// Open.ChannelSequence (MS-SMB2 3.3.5.2.10): the newest channel sequence number seen on
    /// a modifying request; older ones come from a channel the client gave up on.
    pub channel_sequence: u16,
    /// Open.LockSequenceArray (MS-SMB2 3.3.5.14): the last lock sequence number applied per
    /// index, for opens whose lock requests may be replayed.
    pub lock_sequences: LockSequences,
}

/// Lock sequence numbers by LockSequenceIndex 1..=64 (`None`: not valid).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockSequences(pub [Option<u8>; 64]);

impl Default for LockSequences {
    fn default() -> Self {
        LockSequences([None; 64])
    }
}

/// The opens of one session, by volatile file id. Guarded per session, never globally.
#[derive(Debug, Default)]
pub struct OpenTable {
    inner: Mutex<OpenTableInner>,
}

#[derive(Debug, Default)]
struct OpenTableInner {
    opens: HashMap<u64, Arc<Open>>,
}

impl OpenTable {
    /// The first open `matches` accepts.
    pub fn find(&self, matches: impl Fn(&Open) -> bool) -> Option<Arc<Open>> {
        let t = self.inner.lock().unwrap();
        t.opens.values().find(|o| matches(o)).cloned()
    }

    pub fn insert(&self, open: Arc<Open>) {
        self.inner
            .lock()
            .unwrap()
            .opens
            .insert(open.file_id.volatile, open);
    }

    pub fn get(&self, id: FileId) -> Result<Arc<Open>, NtStatus> {
        let t = self.inner.lock().unwrap();
        match t.opens.get(&id.volatile) {
            Some(o) if o.file_id.persistent == id.persistent => Ok(o.clone()),
            _ => {
                tracing::info!(
                    persistent = id.persistent,
                    volatile = id.volatile,
                    "file id not open in this session"
                );
                Err(NtStatus::FILE_CLOSED)
            }
        }
    }

    pub fn remove(&self, id: FileId) -> Option<Arc<Open>> {
        let mut t = self.inner.lock().unwrap();
        match t.opens.get(&id.volatile) {
            Some(o) if o.file_id.persistent == id.persistent => t.opens.remove(&id.volatile),
            _ => None,
        }
    }

    /// Remove and return every open (logoff, session teardown) or those of one tree.
    pub fn drain(&self, tree_id: Option<u32>) -> Vec<Arc<Open>> {
        let mut t = self.inner.lock().unwrap();
        let ids: Vec<u64> = t
            .opens
            .iter()
            .filter(|(_, o)| tree_id.is_none_or(|tid| o.tree_id() == tid))
            .map(|(k, _)| *k)
            .collect();
        ids.iter().filter_map(|k| t.opens.remove(k)).collect()
    }

    pub fn len(&self) -> usize {
        self.inner.lock().unwrap().opens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_ids_are_unique_and_name_their_worker() {
        let ids = FileIdAllocator::new(0x1234_5678_9abc_def0, 3);
        let a = ids.allocate();
        let b = ids.allocate();
        assert_ne!(a, b);
        assert_eq!(a.persistent, a.volatile);
        assert_eq!((file_id_owner(a), file_id_owner(b)), (3, 3));
        assert_ne!(a, FileId::RELATED);
        // The counter wraps below the owner bits and skips 0.
        let wrapping = FileIdAllocator::new(0, 5);
        wrapping.next.store(FILE_ID_COUNTER_MASK, Ordering::Relaxed);
        let last = wrapping.allocate();
        let first = wrapping.allocate();
        assert_eq!(last.persistent & FILE_ID_COUNTER_MASK, FILE_ID_COUNTER_MASK);
        assert_eq!(first.persistent & FILE_ID_COUNTER_MASK, 1);
        assert_eq!(file_id_owner(first), 5);
    }
}
