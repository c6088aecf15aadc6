//! Durable opens (MS-SMB2 3.3.1.10 Open.IsDurable, 3.3.5.9.6/7/10/12, 3.3.7.1): an open granted
//! a durable handle outlives its connection. When the connection drops, the open — its file
//! table registration (share modes), oplock or lease and byte-range locks — moves to a
//! [`DurableStore`] until its client reclaims it from a new session (DHnC/DH2C) or its timeout
//! passes; a conflicting open from someone else in the meantime closes it instead of breaking
//! it (MS-SMB2 3.3.4.6/3.3.4.7).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use smb3d_protocol::messages::oplock_break::level;
use smb3d_protocol::NtStatus;
use tracing::info;

use crate::open::{FileId, Open};
use crate::server::ServerState;
use crate::session::Identity;
use crate::share::Share;

/// The timeout a client leaving the choice to the server gets (Windows' 60 s).
pub const DEFAULT_TIMEOUT_MS: u32 = 60_000;
/// The longest timeout a client may ask for by default (5 minutes).
pub const MAX_TIMEOUT_MS: u32 = 300_000;

/// What a durable handle was granted with: the facts a reconnect is checked against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DurableGrant {
    /// Version 2 (DH2Q): the CreateGuid that names the CREATE; `None` for version 1.
    pub create_guid: Option<[u8; 16]>,
    /// Milliseconds the open is kept after a disconnect.
    pub timeout_ms: u32,
    /// Open.ClientGuid.
    pub client_guid: [u8; 16],
    /// The user the open was made for.
    pub identity: Identity,
    /// The lease key, for a leased open.
    pub lease_key: Option<[u8; 16]>,
}

/// The timeout a DH2Q is granted (MS-SMB2 3.3.5.9.10): the server's default when the client
/// asks 0, else the client's request up to `max_ms`.
pub fn granted_timeout(requested_ms: u32, default_ms: u32, max_ms: u32) -> u32 {
    if requested_ms == 0 {
        default_ms
    } else {
        requested_ms.min(max_ms.max(default_ms))
    }
}

/// A reconnect request (DHnC or DH2C) as the checks see it.
#[derive(Clone, Debug)]
pub struct ReconnectAsk<'a> {
    /// The DH2C CreateGuid; `None` for DHnC.
    pub create_guid: Option<[u8; 16]>,
    pub client_guid: [u8; 16],
    pub identity: &'a Identity,
    /// The lease key of an RqLs context in the CREATE.
    pub lease_key: Option<[u8; 16]>,
    /// The CREATE's file name, share-relative, '/'-separated.
    pub name: &'a str,
}

/// MS-SMB2 3.3.5.9.7 (DHnC) and 3.3.5.9.12 (DH2C): may `ask` reclaim a disconnected open
/// granted `grant` on `path`? OBJECT_NAME_NOT_FOUND for a reconnect of the wrong
/// CreateGuid, client (leased opens), lease key or user; INVALID_PARAMETER for the right lease
/// on another name. Oplock opens may be reclaimed from another client (smbtorture
/// smb2.durable-open.reopen1a), whatever the request's other fields say.
pub fn check_reconnect(
    grant: &DurableGrant,
    path: &str,
    ask: &ReconnectAsk,
) -> Result<(), NtStatus> {
    // A v2 reconnect names the CreateGuid of a v2 open, or a zero one for a v1 open; a v1
    // reconnect may reclaim either (smbtorture smb2.durable-v2-open.reopen2b/reopen2c,
    // smb2.durable-open.reopen2-lease).
    if let Some(asked) = ask.create_guid {
        if asked != grant.create_guid.unwrap_or([0; 16]) {
            return Err(NtStatus::OBJECT_NAME_NOT_FOUND);
        }
    }
    // Oplock opens: the name and every other field of the request are ignored.
    if let Some(key) = grant.lease_key {
        if grant.client_guid != ask.client_guid || ask.lease_key != Some(key) {
            return Err(NtStatus::OBJECT_NAME_NOT_FOUND);
        }
        if !ask.name.eq_ignore_ascii_case(path) {
            return Err(NtStatus::INVALID_PARAMETER);
        }
    }
    if grant.identity != *ask.identity || *ask.identity == Identity::Anonymous {
        return Err(NtStatus::OBJECT_NAME_NOT_FOUND);
    }
    Ok(())
}

/// A durable open whose connection is gone.
#[derive(Debug)]
pub struct Disconnected {
    pub open: Arc<Open>,
    /// The share it was opened on: a reconnect must come through a tree of the same share.
    pub share: Arc<Share>,
    /// When it is closed unless reclaimed (MS-SMB2 3.3.2.? durable open scavenger timer).
    pub deadline: Instant,
}

/// Where disconnected durable opens wait, keyed by FileId.Persistent (MS-SMB2 GlobalOpenTable,
/// restricted to disconnected opens).
///
/// Kept behind this trait so it can later live outside the process: persistent handles on a
/// cluster would keep a description of each open (share, path, access, share mode, CreateGuid,
/// lease, locks) in a CTDB database or on shared storage, and a reconnect on another node would
/// reopen the file from it. The in-process store keeps the open itself, descriptor included.
pub trait DurableStore: Send + Sync + std::fmt::Debug {
    /// Keep a disconnected open until its deadline.
    fn keep(&self, entry: Disconnected);
    /// Take out the open `persistent_id` names if `check` accepts it; it stays otherwise.
    /// OBJECT_NAME_NOT_FOUND when there is no such disconnected open.
    fn reclaim(
        &self,
        persistent_id: u64,
        check: &dyn Fn(&Disconnected) -> Result<(), NtStatus>,
    ) -> Result<Disconnected, NtStatus>;
    /// Take out the open `persistent_id` names, if it is here.
    fn remove(&self, persistent_id: u64) -> Option<Disconnected>;
    /// Take out every open of the lease (`client_guid`, `key`).
    fn remove_lease(&self, client_guid: [u8; 16], key: [u8; 16]) -> Vec<Disconnected>;
    /// Take out the opens whose deadline has passed.
    fn expire(&self, now: Instant) -> Vec<Disconnected>;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The store of one process.
#[derive(Debug, Default)]
pub struct LocalDurableStore {
    opens: Mutex<HashMap<u64, Disconnected>>,
}

impl DurableStore for LocalDurableStore {
    fn keep(&self, entry: Disconnected) {
        let id = entry.open.file_id.persistent;
        self.opens.lock().unwrap().insert(id, entry);
    }

    fn reclaim(
        &self,
        persistent_id: u64,
        check: &dyn Fn(&Disconnected) -> Result<(), NtStatus>,
    ) -> Result<Disconnected, NtStatus> {
        let mut opens = self.opens.lock().unwrap();
        let entry = opens
            .get(&persistent_id)
            .ok_or(NtStatus::OBJECT_NAME_NOT_FOUND)?;
        check(entry)?;
        opens
            .remove(&persistent_id)
            .ok_or(NtStatus::OBJECT_NAME_NOT_FOUND)
    }

    fn remove(&self, persistent_id: u64) -> Option<Disconnected> {
        self.opens.lock().unwrap().remove(&persistent_id)
    }

    fn remove_lease(&self, client_guid: [u8; 16], key: [u8; 16]) -> Vec<Disconnected> {
        let mut opens = self.opens.lock().unwrap();
        let ids: Vec<u64> = opens
            .iter()
            .filter(|(_, d)| {
                d.open
                    .durable
                    .as_ref()
                    .is_some_and(|g| g.client_guid == client_guid && g.lease_key == Some(key))
            })
            .map(|(id, _)| *id)
            .collect();
        ids.iter().filter_map(|id| opens.remove(id)).collect()
    }

    fn expire(&self, now: Instant) -> Vec<Disconnected> {
        let mut opens = self.opens.lock().unwrap();
        let ids: Vec<u64> = opens
            .iter()
            .filter(|(_, d)| d.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        ids.iter().filter_map(|id| opens.remove(id)).collect()
    }

    fn len(&self) -> usize {
        self.opens.lock().unwrap().len()
    }
}

/// An open left behind by a connection that dropped: a durable open that still holds what made
/// it durable (a batch oplock, or a lease caching handles; MS-SMB2 3.3.5.9.6) waits in the store
/// with its registration, locks and lease; `false` means the caller closes it.
pub fn keep_if_durable(server: &ServerState, open: &Arc<Open>, share: &Arc<Share>) -> bool {
    let Some(grant) = open.durable.as_ref() else {
        return false;
    };
    let still_durable = match grant.lease_key {
        Some(_) => server.files.lease_caches_handles(open),
        None => server.files.oplock_level(open) == level::BATCH,
    };
    if !still_durable {
        return false;
    }
    server.files.disconnect_holder(open);
    info!(
        file_id = open.file_id.persistent,
        timeout_ms = grant.timeout_ms,
        "durable open kept after disconnect"
    );
    server.durable.keep(Disconnected {
        open: open.clone(),
        share: share.clone(),
        deadline: Instant::now() + Duration::from_millis(u64::from(grant.timeout_ms)),
    });
    true
}

/// MS-SMB2 3.3.5.9.7/3.3.5.9.12 for an open whose connection still looks alive: a client that
/// gave up on a connection the server has not yet seen die (TCP keepalive or user timeout, tens
/// of seconds) reconnects its durable open from a new session. When another live session of
/// this process holds `file_id` durably for the same client and user, and the reconnect would
/// pass its checks once disconnected, that session ends as if named PreviousSessionId
/// (MS-SMB2 3.3.5.5.3): its durable opens move to the store, the others close. `true` when it
/// did; the caller then reclaims from the store.
pub fn release_from_live_session(
    server: &ServerState,
    asking: &Arc<crate::session::Session>,
    file_id: FileId,
    ask: &ReconnectAsk,
) -> bool {
    let holder = server.sessions.find(|s| {
        s.id != asking.id
            && !s.is_logged_off()
            && s.opens
                .find(|open| {
                    open.file_id.persistent == file_id.persistent
                        && open.durable.as_ref().is_some_and(|grant| {
                            let path = open.path.lock().unwrap().clone();
                            grant.client_guid == ask.client_guid
                                && check_reconnect(grant, &path, ask).is_ok()
                        })
                })
                .is_some()
    });
    let Some(holder) = holder else {
        return false;
    };
    info!(
        file_id = file_id.persistent,
        previous_id = holder.id,
        "durable reconnect of an open whose connection still looks alive: its session ends"
    );
    crate::commands::session_setup::end_previous_session(server, holder.id, ask.identity);
    true
}

/// Close the durable opens whose timeout passed (MS-SMB2 3.3.2.? / 3.3.7.1), delete-on-close
/// included.
pub fn expire(server: &ServerState) {
    if server.durable.is_empty() {
        return;
    }
    for d in server.durable.expire(Instant::now()) {
        info!(
            file_id = d.open.file_id.persistent,
            "durable open timed out"
        );
        crate::commands::close::close_open(server, &d.share, &d.open);
    }
}

/// MS-SMB2 3.3.4.6: an oplock break for an open without a connection closes the open instead.
/// `true` when `file_id` named a disconnected durable open (now closed).
pub fn purge(server: &ServerState, file_id: FileId) -> bool {
    let Some(d) = server.durable.remove(file_id.persistent) else {
        return false;
    };
    info!(
        file_id = file_id.persistent,
        "disconnected durable open closed by a conflicting open"
    );
    crate::commands::close::close_open(server, &d.share, &d.open);
    true
}

/// MS-SMB2 3.3.4.7: a lease break for a client with no connection closes the lease's
/// disconnected durable opens instead. `true` when there were any.
pub fn purge_lease(server: &ServerState, client_guid: [u8; 16], key: [u8; 16]) -> bool {
    let gone = server.durable.remove_lease(client_guid, key);
    for d in &gone {
        info!(
            file_id = d.open.file_id.persistent,
            "disconnected durable open closed by a lease break"
        );
        crate::commands::close::close_open(server, &d.share, &d.open);
    }
    !gone.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::open::OpenState;
    use crate::storage::file_table::{share as share_mode, FileKey, FileTable, OplockRequest};
    use std::sync::atomic::AtomicU32;

    const CLIENT: [u8; 16] = [1; 16];
    const CREATE_GUID: [u8; 16] = [2; 16];
    const LEASE_KEY: [u8; 16] = [3; 16];

    fn alice() -> Identity {
        Identity::User {
            user: "alice".into(),
            domain: "D".into(),
        }
    }

    fn grant(create_guid: Option<[u8; 16]>, lease_key: Option<[u8; 16]>) -> DurableGrant {
        DurableGrant {
            create_guid,
            timeout_ms: 60_000,
            client_guid: CLIENT,
            identity: alice(),
            lease_key,
        }
    }

    fn ask<'a>(identity: &'a Identity, name: &'a str) -> ReconnectAsk<'a> {
        ReconnectAsk {
            create_guid: Some(CREATE_GUID),
            client_guid: CLIENT,
            identity,
            lease_key: None,
            name,
        }
    }

    #[test]
    fn timeout_is_the_default_for_zero_and_clamped_otherwise() {
        assert_eq!(granted_timeout(0, 60_000, 300_000), 60_000);
        assert_eq!(granted_timeout(1_000, 60_000, 300_000), 1_000);
        assert_eq!(granted_timeout(u32::MAX, 60_000, 300_000), 300_000);
        // A default above the maximum raises the maximum.
        assert_eq!(granted_timeout(u32::MAX, 600_000, 300_000), 600_000);
    }

    #[test]
    fn v2_reconnect_needs_the_create_guid_and_the_user() {
        let me = alice();
        let g = grant(Some(CREATE_GUID), None);
        assert_eq!(check_reconnect(&g, "f", &ask(&me, "other")), Ok(()));
        let wrong_guid = ReconnectAsk {
            create_guid: Some([9; 16]),
            ..ask(&me, "f")
        };
        assert_eq!(
            check_reconnect(&g, "f", &wrong_guid),
            Err(NtStatus::OBJECT_NAME_NOT_FOUND)
        );
        // A v1 reconnect may reclaim a v2 open; a v2 reconnect reclaims a v1 open only with a
        // zero CreateGuid.
        let v1 = ReconnectAsk {
            create_guid: None,
            ..ask(&me, "f")
        };
        assert_eq!(check_reconnect(&g, "f", &v1), Ok(()));
        assert_eq!(
            check_reconnect(&grant(None, None), "f", &ask(&me, "f")),
            Err(NtStatus::OBJECT_NAME_NOT_FOUND)
        );
        let zero_guid = ReconnectAsk {
            create_guid: Some([0; 16]),
            ..ask(&me, "f")
        };
        assert_eq!(check_reconnect(&grant(None, None), "f", &zero_guid), Ok(()));
        assert_eq!(
            check_reconnect(&g, "f", &zero_guid),
            Err(NtStatus::OBJECT_NAME_NOT_FOUND)
        );
        let bob = Identity::User {
            user: "bob".into(),
            domain: "D".into(),
        };
        assert_eq!(
            check_reconnect(&g, "f", &ask(&bob, "f")),
            Err(NtStatus::OBJECT_NAME_NOT_FOUND)
        );
        // Oplock opens may come back from another client.
        let other_client = ReconnectAsk {
            client_guid: [7; 16],
            ..ask(&me, "f")
        };
        assert_eq!(check_reconnect(&g, "f", &other_client), Ok(()));
    }

    #[test]
    fn leased_reconnect_needs_the_client_the_key_and_the_name() {
        let me = alice();
        let g = grant(Some(CREATE_GUID), Some(LEASE_KEY));
        let good = ReconnectAsk {
            lease_key: Some(LEASE_KEY),
            ..ask(&me, "Dir/F.txt")
        };
        assert_eq!(check_reconnect(&g, "dir/f.txt", &good), Ok(()));
        let no_lease = ask(&me, "dir/f.txt");
        assert_eq!(
            check_reconnect(&g, "dir/f.txt", &no_lease),
            Err(NtStatus::OBJECT_NAME_NOT_FOUND)
        );
        let wrong_key = ReconnectAsk {
            lease_key: Some([4; 16]),
            ..good.clone()
        };
        assert_eq!(
            check_reconnect(&g, "dir/f.txt", &wrong_key),
            Err(NtStatus::OBJECT_NAME_NOT_FOUND)
        );
        let other_client = ReconnectAsk {
            client_guid: [7; 16],
            ..good.clone()
        };
        assert_eq!(
            check_reconnect(&g, "dir/f.txt", &other_client),
            Err(NtStatus::OBJECT_NAME_NOT_FOUND)
        );
        let other_name = ReconnectAsk {
            name: "g.txt",
            ..good
        };
        assert_eq!(
            check_reconnect(&g, "dir/f.txt", &other_name),
            Err(NtStatus::INVALID_PARAMETER)
        );
    }

    fn disconnected(
        files: &FileTable,
        id: u64,
        lease_key: Option<[u8; 16]>,
        deadline: Instant,
    ) -> Disconnected {
        let reg = files
            .register(
                FileKey {
                    device: 1,
                    inode: id,
                },
                0x1,
                share_mode::ALL,
                &OplockRequest::none(),
                &mut Vec::new(),
            )
            .unwrap();
        let open = Open {
            file_id: FileId {
                persistent: id,
                volatile: id,
            },
            tree_id: AtomicU32::new(1),
            fd: std::fs::File::open("/dev/null").unwrap().into(),
            path: Mutex::new(format!("f{id}")),
            is_directory: false,
            access_mask: 0x1,
            share_access: share_mode::ALL,
            create_options: 0,
            position: std::sync::atomic::AtomicU64::new(0),
            state: Mutex::new(OpenState::default()),
            file: reg.file,
            open_key: reg.open_key,
            durable: Some(grant(Some(CREATE_GUID), lease_key)),
            replay: None,
            replay_eligible: std::sync::atomic::AtomicBool::new(false),
        };
        Disconnected {
            open: Arc::new(open),
            share: Arc::new(Share {
                name: "s".into(),
                kind: crate::share::ShareKind::Disk,
                path: "/nonexistent".into(),
                root: None,
                read_only: false,
                encrypt: crate::share::Requirement::Desired,
            }),
            deadline,
        }
    }

    #[test]
    fn store_keeps_until_reclaimed_removed_or_expired() {
        let files = FileTable::new();
        let store = LocalDurableStore::default();
        let now = Instant::now();
        let later = now + Duration::from_secs(60);
        store.keep(disconnected(&files, 10, None, later));
        store.keep(disconnected(&files, 11, Some(LEASE_KEY), later));
        store.keep(disconnected(&files, 12, None, now));
        assert_eq!(store.len(), 3);

        // A refused reconnect leaves the open where it was.
        let refused = store.reclaim(10, &|_| Err(NtStatus::INVALID_PARAMETER));
        assert_eq!(refused.err(), Some(NtStatus::INVALID_PARAMETER));
        assert_eq!(store.len(), 3);
        assert_eq!(
            store.reclaim(99, &|_| Ok(())).err(),
            Some(NtStatus::OBJECT_NAME_NOT_FOUND)
        );
        let back = store.reclaim(10, &|_| Ok(())).unwrap();
        assert_eq!(back.open.file_id.persistent, 10);
        assert!(
            store.reclaim(10, &|_| Ok(())).is_err(),
            "reclaimed once only"
        );

        let expired = store.expire(now);
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].open.file_id.persistent, 12);

        assert!(store.remove_lease(CLIENT, [4; 16]).is_empty());
        let leased = store.remove_lease(CLIENT, LEASE_KEY);
        assert_eq!(leased.len(), 1);
        assert!(store.is_empty());
    }
}
