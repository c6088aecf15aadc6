//! Shares: a name mapped to a directory, opened once at start-up. All path resolution inside a
//! share is relative to `root` (see `storage`), so nothing can reach outside it.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

/// Off, desired or required: used for signing and encryption settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Requirement {
    Off,
    #[default]
    Desired,
    Required,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShareKind {
    /// A directory of files.
    Disk,
    /// The IPC$ pipe share (MS-SMB2 2.2.10 SMB2_SHARE_TYPE_PIPE).
    Ipc,
}

#[derive(Debug)]
pub struct Share {
    /// Name as configured; compared case-insensitively.
    pub name: String,
    pub kind: ShareKind,
    /// The configured directory (for logs; resolution uses `root`).
    pub path: PathBuf,
    /// `O_PATH | O_DIRECTORY` descriptor of the share root; `None` for IPC$.
    pub root: Option<OwnedFd>,
    pub read_only: bool,
    /// Per-share encryption (SMB2_SHAREFLAG_ENCRYPT_DATA when Required).
    pub encrypt: Requirement,
}

impl Share {
    pub fn matches(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }
}
