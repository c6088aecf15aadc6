//! State shared by every reactor of one server process.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use smb3d_protocol::auth::UserLookup;

use crate::mailbox::{ConnHandle, Mailbox, ReactorMsg};
use crate::session::Session;
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
    /// Accept anonymous (null) session setups.
    pub allow_anonymous: bool,
    /// Offer SMB3 multichannel (SMB2_GLOBAL_CAP_MULTI_CHANNEL) and accept session binding.
    pub multichannel: bool,
    /// The addresses served: FSCTL_QUERY_NETWORK_INTERFACE_INFO reports only interface
    /// addresses a client can reach us on (an unspecified address stands for all of its family).
    pub listen: Vec<std::net::SocketAddr>,
    /// Which channel an oplock break goes to, and whether it is sent again on another channel
    /// when the first one turns out dead (lease breaks: the oldest first, always sent again).
    pub break_retry: BreakRetry,
    /// Accept smbtorture's FSCTL_SMBTORTURE_FORCE_UNACKED_TIMEOUT (tests only).
    pub enable_test_fsctl: bool,
    /// How long a disconnected durable open waits for its client when the client leaves the
    /// choice to the server (DHnQ, or DH2Q with Timeout 0); a client may ask for up to
    /// `durable::MAX_TIMEOUT_MS`, or this when longer.
    pub durable_timeout_ms: u32,
    /// Connection timeouts (docs/TUNING.md).
    pub timeouts: Timeouts,
    /// How dead channels are found: TCP settings of every connection and the break rule.
    pub dead_peer: DeadPeer,
}

/// How long a connection may hold server resources without doing what a client does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// A connection without an authenticated session (never logged on, or logged off) is closed
    /// this long after it was accepted or lost its last session.
    pub login: std::time::Duration,
    /// A PDU whose first bytes arrived must be complete within this time.
    pub partial_pdu: std::time::Duration,
    /// A connection with sessions but no open files and no pending requests that receives
    /// nothing for this long is closed; `None`: never.
    pub idle: Option<std::time::Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            login: std::time::Duration::from_secs(30),
            partial_pdu: std::time::Duration::from_secs(60),
            idle: Some(std::time::Duration::from_secs(15 * 60)),
        }
    }
}

/// How a peer that stopped answering is found out (docs/TUNING.md, "Dead channels").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeadPeer {
    /// A channel with a break waiting is dead after this many retransmission timeouts in which
    /// the peer acknowledged nothing (RTO taken when the break is queued, clamped to 0.2–1 s).
    /// TCP sends the break again after one RTO and a live peer answers within a round trip, so
    /// three silent RTOs mean the original and the retransmission were both lost (about 0.63 s
    /// at the 0.21 s LAN RTO; Samba waits 6 RTOs of the break being unacknowledged).
    pub break_silence_rtos: u32,
    /// TCP_USER_TIMEOUT: the kernel aborts a connection whose sent data stays unacknowledged
    /// this long; `None` leaves the kernel's retransmission limit (about 15 minutes).
    pub tcp_user_timeout: Option<std::time::Duration>,
    /// TCP keepalive probes on idle connections: first after `idle`, then every `interval`,
    /// `count` unanswered probes end the connection; `None`: no keepalive.
    pub keepalive: Option<Keepalive>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keepalive {
    pub idle: std::time::Duration,
    pub interval: std::time::Duration,
    pub count: u32,
}

impl Default for DeadPeer {
    fn default() -> Self {
        DeadPeer {
            break_silence_rtos: 3,
            tcp_user_timeout: Some(std::time::Duration::from_secs(30)),
            keepalive: Some(Keepalive {
                idle: std::time::Duration::from_secs(60),
                interval: std::time::Duration::from_secs(10),
                count: 3,
            }),
        }
    }
}

/// Oplock break channel policy (MS-SMB2 3.3.4.6 and what Windows does).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BreakRetry {
    /// The oldest live channel first; on a dead channel, the same break again on the next.
    #[default]
    Spec,
    /// As Windows: oplock breaks on the newest channel, never sent again.
    Windows,
}

/// Break delivery counters, for logs and status.
#[derive(Debug, Default)]
pub struct BreakStats {
    pub sent: AtomicU64,
    pub transport_acked: AtomicU64,
    pub retried: AtomicU64,
    pub undeliverable: AtomicU64,
    pub channels_declared_dead: AtomicU64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            signing: Requirement::Desired,
            encrypt: Requirement::Desired,
            max_credits: 8192,
            netbios_name: "SMB3D".to_string(),
            allow_anonymous: false,
            multichannel: true,
            listen: Vec::new(),
            break_retry: BreakRetry::Spec,
            enable_test_fsctl: false,
            durable_timeout_ms: crate::durable::DEFAULT_TIMEOUT_MS,
            timeouts: Timeouts::default(),
            dead_peer: DeadPeer::default(),
        }
    }
}

/// Every live session of this process, by id. Sharded so that session creation on one core
/// does not contend with another; per-request lookups use the connection's own cache instead.
#[derive(Debug)]
pub struct SessionTable {
    shards: Vec<Mutex<HashMap<u64, Arc<Session>>>>,
    /// The owner bits every id of this table carries (its worker, see `handoff::session_owner`).
    owner_bits: u64,
    next_id: AtomicU64,
}

const SESSION_SHARDS: usize = 16;
/// The bits of a session id below its owner bits.
const SESSION_COUNTER_MASK: u64 = (1 << crate::handoff::SESSION_OWNER_SHIFT) - 1;

impl SessionTable {
    /// Sessions of worker `worker` (0 without workers); ids start at a point `id_seed` picks.
    pub fn new(id_seed: u64, worker: usize) -> SessionTable {
        SessionTable {
            shards: (0..SESSION_SHARDS)
                .map(|_| Mutex::new(HashMap::new()))
                .collect(),
            owner_bits: crate::handoff::session_id_base(worker),
            // Keep ids unpredictable across restarts.
            next_id: AtomicU64::new((id_seed & 0x0000_ffff_ffff_0000) | 1),
        }
    }

    fn shard(&self, id: u64) -> &Mutex<HashMap<u64, Arc<Session>>> {
        &self.shards[(id as usize) % SESSION_SHARDS]
    }

    /// A new session id: never 0 nor all-ones, and naming this table's worker in its owner bits
    /// so any worker can tell where the session lives from the id alone.
    pub fn allocate_id(&self) -> u64 {
        loop {
            let counter = self.next_id.fetch_add(1, Ordering::Relaxed) & SESSION_COUNTER_MASK;
            if counter != 0 {
                return self.owner_bits | counter;
            }
        }
    }

    pub fn insert(&self, session: Arc<Session>) {
        self.shard(session.id)
            .lock()
            .unwrap()
            .insert(session.id, session);
    }

    pub fn get(&self, id: u64) -> Option<Arc<Session>> {
        self.shard(id).lock().unwrap().get(&id).cloned()
    }

    pub fn remove(&self, id: u64) -> Option<Arc<Session>> {
        self.shard(id).lock().unwrap().remove(&id)
    }

    /// A session `matches` accepts, if any (a scan of every shard: for rare events only).
    pub fn find(&self, matches: impl Fn(&Session) -> bool) -> Option<Arc<Session>> {
        self.shards
            .iter()
            .find_map(|shard| shard.lock().unwrap().values().find(|s| matches(s)).cloned())
    }
}

/// The connections of each client, by ClientGuid, oldest first: where lease breaks go (MS-SMB2
/// 3.3.4.7: any connection of the client, whatever session opened the file).
#[derive(Debug, Default)]
pub struct ClientTable {
    connections: Mutex<HashMap<[u8; 16], Vec<ConnHandle>>>,
}

impl ClientTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 16], Vec<ConnHandle>>> {
        self.connections.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Record a connection of the client `guid` (after its NEGOTIATE).
    pub fn add(&self, guid: [u8; 16], conn: ConnHandle) {
        let mut map = self.lock();
        let list = map.entry(guid).or_default();
        if !list.contains(&conn) {
            list.push(conn);
        }
    }

    /// Forget a connection (closed, or declared dead).
    pub fn remove(&self, guid: &[u8; 16], conn: ConnHandle) {
        let mut map = self.lock();
        if let Some(list) = map.get_mut(guid) {
            list.retain(|c| *c != conn);
            if list.is_empty() {
                map.remove(guid);
            }
        }
    }

    /// The client's connections, oldest first.
    pub fn connections(&self, guid: &[u8; 16]) -> Vec<ConnHandle> {
        self.lock().get(guid).cloned().unwrap_or_default()
    }
}

pub struct ServerState {
    pub config: ServerConfig,
    pub shares: Vec<Arc<Share>>,
    /// Random per-process GUID (MS-SMB2 2.2.4 ServerGuid).
    pub server_guid: [u8; 16],
    pub sessions: SessionTable,
    pub users: Arc<dyn UserLookup + Send + Sync>,
    /// Every open file of the process: share modes, delete-pending, byte-range locks, oplocks
    /// and leases (with several workers, share modes and caching checked against theirs).
    pub files: FileTable,
    /// One mailbox per reactor, set once the reactors start.
    pub mailboxes: OnceLock<Vec<Mailbox>>,
    /// With several worker processes: this worker's index and every worker's inbox.
    pub handoff: Option<crate::handoff::Handoff>,
    pub break_stats: BreakStats,
    /// Every client's connections, for lease breaks.
    pub clients: ClientTable,
    /// FileIds unique in the server, naming this worker.
    pub file_ids: crate::open::FileIdAllocator,
    /// Durable opens whose connection is gone, waiting for their client to reconnect.
    pub durable: Box<dyn crate::durable::DurableStore>,
}

impl std::fmt::Debug for ServerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerState")
            .field("config", &self.config)
            .field("shares", &self.shares)
            .finish_non_exhaustive()
    }
}

impl ServerState {
    pub fn new(
        config: ServerConfig,
        shares: Vec<Arc<Share>>,
        users: Arc<dyn UserLookup + Send + Sync>,
        server_guid: [u8; 16],
    ) -> ServerState {
        let seed = u64::from_le_bytes(server_guid[..8].try_into().unwrap_or([1; 8]));
        ServerState {
            config,
            shares,
            server_guid,
            sessions: SessionTable::new(seed, 0),
            users,
            files: FileTable::new(),
            mailboxes: OnceLock::new(),
            handoff: None,
            break_stats: BreakStats::default(),
            clients: ClientTable::default(),
            file_ids: crate::open::FileIdAllocator::new(seed.rotate_left(16), 0),
            durable: Box::new(crate::durable::LocalDurableStore::default()),
        }
    }

    /// Make this process worker `handoff.worker` of several: its session ids name it from now on,
    /// and its opens are decided against the other workers' (`registry`). Called before any
    /// session or open exists.
    pub fn join_workers(
        &mut self,
        handoff: crate::handoff::Handoff,
        registry: crate::storage::worker_registry::WorkerRegistry,
    ) {
        // Random, so a restarted worker does not hand out the ids of its previous life again.
        self.sessions = SessionTable::new(rand::random(), handoff.worker);
        self.file_ids = crate::open::FileIdAllocator::new(rand::random(), handoff.worker);
        self.handoff = Some(handoff);
        self.files = FileTable::with_registry(registry);
    }

    /// Deliver a message to the reactor that owns its target connection (on that reactor's own
    /// thread: to its own queue, see `mailbox`). `false` when that reactor cannot take it (no
    /// reactors, or its mailbox is full).
    pub fn post(&self, msg: ReactorMsg) -> bool {
        let Err(msg) = crate::mailbox::post_own(msg) else {
            return true;
        };
        let reactor = msg.reactor();
        self.mailboxes
            .get()
            .and_then(|m| m.get(reactor as usize))
            .is_some_and(|m| m.post(msg))
    }

    pub fn reactor_count(&self) -> usize {
        self.mailboxes.get().map_or(0, |m| m.len())
    }

    pub fn share(&self, name: &str) -> Option<Arc<Share>> {
        self.shares.iter().find(|s| s.matches(name)).cloned()
    }
}

/// A user database with nobody in it, for tests.
#[cfg(test)]
pub(crate) struct NoUsers;

#[cfg(test)]
impl UserLookup for NoUsers {
    fn nt_hash(&self, _user: &str) -> Option<[u8; 16]> {
        None
    }
}
