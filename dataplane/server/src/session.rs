//! Sessions (MS-SMB2 3.3.1.8): an authenticated user, its keys, its trees and its opens.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use smb3d_protocol::crypto::Encryptor;
use smb3d_protocol::dialect::{Cipher, Dialect, SigningAlgorithm};

use crate::mailbox::ConnHandle;
use crate::open::OpenTable;
use crate::tree::Tree;

/// Who a session is logged on as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    User { user: String, domain: String },
    Anonymous,
}

/// Keys and protection settings fixed when authentication completes.
pub struct SessionSecurity {
    pub dialect: Dialect,
    pub signing_algorithm: SigningAlgorithm,
    /// Session.SigningKey (MS-SMB2 3.3.1.8); channels derive their own from bind session keys.
    pub signing_key: Vec<u8>,
    pub signing_required: bool,
    /// Session.EncryptData: every request must arrive encrypted and every response is.
    pub encrypt_data: bool,
    pub cipher: Option<Cipher>,
    /// Server-to-client (Session.EncryptionKey) and client-to-server (Session.DecryptionKey).
    pub encryptor: Option<Encryptor>,
    pub decryptor: Option<Encryptor>,
    nonce_salt: u32,
    nonce_counter: AtomicU64,
}

impl SessionSecurity {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        dialect: Dialect,
        signing_algorithm: SigningAlgorithm,
        signing_key: Vec<u8>,
        signing_required: bool,
        encrypt_data: bool,
        cipher: Option<Cipher>,
        encryptor: Option<Encryptor>,
        decryptor: Option<Encryptor>,
        nonce_salt: u32,
    ) -> SessionSecurity {
        SessionSecurity {
            dialect,
            signing_algorithm,
            signing_key,
            signing_required,
            encrypt_data,
            cipher,
            encryptor,
            decryptor,
            nonce_salt,
            nonce_counter: AtomicU64::new(1),
        }
    }

    /// A nonce never used before with this session's encryption key: a random per-session salt
    /// and a counter (MS-SMB2 3.3.4.1.4 requires uniqueness, not randomness).
    pub fn next_nonce(&self) -> [u8; 16] {
        let n = self.nonce_counter.fetch_add(1, Ordering::Relaxed);
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&n.to_le_bytes());
        out[8..11].copy_from_slice(&self.nonce_salt.to_le_bytes()[..3]);
        out
    }
}

impl std::fmt::Debug for SessionSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionSecurity")
            .field("dialect", &self.dialect)
            .field("signing_algorithm", &self.signing_algorithm)
            .field("signing_required", &self.signing_required)
            .field("encrypt_data", &self.encrypt_data)
            .field("cipher", &self.cipher)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
pub struct Session {
    pub id: u64,
    pub identity: Mutex<Identity>,
    /// Set once when the first authentication completes.
    pub security: OnceLock<SessionSecurity>,
    pub trees: Mutex<HashMap<u32, Arc<Tree>>>,
    next_tree_id: AtomicU64,
    pub opens: OpenTable,
    /// Connections bound to this session (MS-SMB2 3.3.1.8 ChannelList, counted).
    channels: AtomicUsize,
    /// Set by LOGOFF: the other channels drop the session when they next look at it.
    logged_off: AtomicBool,
    /// The connections carrying this session, oldest first: where breaks are delivered
    /// (MS-SMB2 3.3.4.6 picks among Session.ChannelList).
    channel_handles: Mutex<Vec<ConnHandle>>,
    /// CreateGuids of CREATEs parked (STATUS_PENDING) on this session: a replay of one is
    /// refused until it completes (MS-SMB2 3.3.5.9.10, smbtorture smb2.replay.dhv2-pending*).
    pending_creates: Mutex<Vec<([u8; 16], ConnHandle)>>,
}

/// Parked CREATEs with a CreateGuid one session remembers at most (each is a parked request,
/// so the connections' own limits come first).
const MAX_PENDING_CREATES: usize = 1024;

impl Session {
    pub fn new(id: u64, identity: Identity) -> Session {
        Session {
            id,
            identity: Mutex::new(identity),
            security: OnceLock::new(),
            trees: Mutex::new(HashMap::new()),
            next_tree_id: AtomicU64::new(1),
            opens: OpenTable::default(),
            channels: AtomicUsize::new(1),
            logged_off: AtomicBool::new(false),
            channel_handles: Mutex::new(Vec::new()),
            pending_creates: Mutex::new(Vec::new()),
        }
    }

    /// A CREATE naming `create_guid` was parked on connection `conn`.
    pub fn create_parked(&self, create_guid: [u8; 16], conn: ConnHandle) {
        let mut v = self.pending_creates.lock().unwrap();
        if !v.iter().any(|(g, _)| *g == create_guid) && v.len() < MAX_PENDING_CREATES {
            v.push((create_guid, conn));
        }
    }

    /// The parked CREATE naming `create_guid` has completed.
    pub fn create_done(&self, create_guid: [u8; 16]) {
        self.pending_creates
            .lock()
            .unwrap()
            .retain(|(g, _)| *g != create_guid);
    }

    /// Connection `conn` is gone, with the CREATEs parked on it: they will not complete, and a
    /// replay of one on another channel is a new CREATE.
    pub fn forget_parked_creates(&self, conn: ConnHandle) {
        self.pending_creates
            .lock()
            .unwrap()
            .retain(|(_, c)| *c != conn);
    }

    pub fn is_create_parked(&self, create_guid: [u8; 16]) -> bool {
        self.pending_creates
            .lock()
            .unwrap()
            .iter()
            .any(|(g, _)| *g == create_guid)
    }

    /// Record a connection that carries this session (after SESSION_SETUP or a bind).
    pub fn attach_connection(&self, conn: ConnHandle) {
        let mut v = self.channel_handles.lock().unwrap();
        if !v.contains(&conn) {
            v.push(conn);
        }
    }

    pub fn detach_connection(&self, conn: ConnHandle) {
        self.channel_handles.lock().unwrap().retain(|c| *c != conn);
    }

    /// The connections of this session, oldest first.
    pub fn connections(&self) -> Vec<ConnHandle> {
        self.channel_handles.lock().unwrap().clone()
    }

    /// Count one more channel, unless the session already has `max` (then `false`).
    pub fn add_channel(&self, max: usize) -> bool {
        self.channels
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    /// Count one channel gone; `true` when it was the last one.
    pub fn remove_channel(&self) -> bool {
        self.channels.fetch_sub(1, Ordering::AcqRel) == 1
    }

    pub fn channel_count(&self) -> usize {
        self.channels.load(Ordering::Acquire)
    }

    pub fn mark_logged_off(&self) {
        self.logged_off.store(true, Ordering::Release);
    }

    pub fn is_logged_off(&self) -> bool {
        self.logged_off.load(Ordering::Acquire)
    }

    pub fn tree(&self, tree_id: u32) -> Option<Arc<Tree>> {
        self.trees.lock().unwrap().get(&tree_id).cloned()
    }

    pub fn allocate_tree_id(&self) -> u32 {
        self.next_tree_id.fetch_add(1, Ordering::Relaxed) as u32
    }

    pub fn is_anonymous(&self) -> bool {
        *self.identity.lock().unwrap() == Identity::Anonymous
    }

    pub fn encrypt_data(&self) -> bool {
        self.security.get().is_some_and(|s| s.encrypt_data)
    }
}
