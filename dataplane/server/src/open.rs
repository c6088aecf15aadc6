//! Opens: the file handles a session holds (MS-SMB2 3.3.1.10 Open).

use std::collections::HashMap;
use std::os::fd::OwnedFd;
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

/// One open file or directory.
#[derive(Debug)]
pub struct Open {
    pub file_id: FileId,
    pub tree_id: u32,
    /// The host descriptor: read/write as granted for files, `O_RDONLY|O_DIRECTORY` for directories.
    pub fd: OwnedFd,
    /// Path relative to the share root, '/'-separated, "" for the root itself.
    pub path: Mutex<String>,
    pub is_directory: bool,
    /// Granted access (MS-SMB2 2.2.13.1).
    pub access_mask: u32,
    pub share_access: u32,
    pub create_options: u32,
    /// Mutable per-open state.
    pub state: Mutex<OpenState>,
    /// The file's server-wide shared state (share modes, delete-pending, byte-range locks).
    pub file: Arc<FileEntry>,
    /// This open's server-wide unique key in `file` (from `FileTable::register`).
    pub open_key: u64,
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
    /// FilePositionInformation (kept for clients that query/set it).
    pub position: u64,
    /// FileModeInformation.
    pub mode: u32,
    /// QUERY_DIRECTORY enumeration state (pattern, name snapshot, cursor); `None` until the
    /// first QUERY_DIRECTORY on this open.
    pub search: Option<crate::commands::query_directory::DirSearch>,
    /// Index of the next EA a FileFullEaInformation enumeration returns (MS-FSA 2.1.5.12.12).
    pub ea_index: usize,
}

/// The opens of one session, by volatile file id. Guarded per session, never globally.
#[derive(Debug, Default)]
pub struct OpenTable {
    inner: Mutex<OpenTableInner>,
}

#[derive(Debug, Default)]
struct OpenTableInner {
    next_volatile: u64,
    opens: HashMap<u64, Arc<Open>>,
}

impl OpenTable {
    /// Allocate the next file id (persistent = volatile, unique within the session).
    pub fn allocate_id(&self) -> FileId {
        let mut t = self.inner.lock().unwrap();
        t.next_volatile += 1;
        FileId {
            persistent: t.next_volatile,
            volatile: t.next_volatile,
        }
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
            .filter(|(_, o)| tree_id.is_none_or(|tid| o.tree_id == tid))
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
