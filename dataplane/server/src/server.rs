//! State shared by every reactor of one server process.

use std::sync::Arc;

use crate::share::{Requirement, Share};
use crate::storage::file_table::FileTable;

/// Settings every connection consults.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub signing: Requirement,
    pub encrypt: Requirement,
    /// Most credits one connection may hold (MS-SMB2 3.3.1.2).
    pub max_credits: u16,
    /// Host name reported in NTLMSSP target info.
    pub netbios_name: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            signing: Requirement::Desired,
            encrypt: Requirement::Off,
            max_credits: 8192,
            netbios_name: "SMB3D".to_string(),
        }
    }
}

#[derive(Debug)]
pub struct ServerState {
    pub config: ServerConfig,
    pub shares: Vec<Arc<Share>>,
    /// Random per-process GUID (MS-SMB2 2.2.4 ServerGuid).
    pub server_guid: [u8; 16],
    /// Every open file of the process: share modes, delete-pending, byte-range locks.
    pub files: FileTable,
}

impl ServerState {
    pub fn new(config: ServerConfig, shares: Vec<Arc<Share>>, server_guid: [u8; 16]) -> Self {
        ServerState {
            config,
            shares,
            server_guid,
            files: FileTable::new(),
        }
    }

    pub fn share(&self, name: &str) -> Option<Arc<Share>> {
        self.shares.iter().find(|s| s.matches(name)).cloned()
    }
}
