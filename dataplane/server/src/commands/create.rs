//! CREATE (MS-SMB2 3.3.5.9): open or create a file or directory beneath the share root.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};

use smb3d_protocol::dialect::Dialect;
use smb3d_protocol::header::flags as header_flags;
use smb3d_protocol::info::ea::{self as ea_info, FullEa};
use smb3d_protocol::messages::create::CreateContext;
use smb3d_protocol::messages::create::{
    action, context_name, disposition, find_context, mxac_response, options, parse_contexts,
    qfid_response, CreateRequest, CreateResponse, MAX_IMPERSONATION_LEVEL,
};
use smb3d_protocol::messages::durable_handle::{self as dh, DurableReconnect, DurableRequest};
use smb3d_protocol::messages::lease::{state as lease_state, LeaseContext};
use smb3d_protocol::messages::oplock_break;
use smb3d_protocol::NtStatus;

use super::{Reply, Request, TreeCtx};
use crate::durable::{self, DurableGrant, ReconnectAsk};
use crate::open::{FileId, Open, OpenState, ReplayKey};
use crate::storage::ea;
use crate::storage::file_table::{
    access, BreakNotice, BreakTarget, FileKey, LeaseAsk, LeaseId, OplockRequest, Registration,
    LEASE_STAT_ACCESS, STAT_ACCESS,
};
use crate::storage::metadata::{self, attr, stat_fd, FileMetadata};
use crate::storage::path::{self, SharePath};

/// Generic rights mapped to file rights (MS-SMB2 3.3.5.9, MS-DTYP 2.4.3 / FILE_GENERIC_*).
const FILE_GENERIC_READ: u32 = 0x0012_0089;
const FILE_GENERIC_WRITE: u32 = 0x0012_0116;
const FILE_GENERIC_EXECUTE: u32 = 0x0012_00A0;

/// Access bits that modify the file or its metadata; removed on read-only shares and files.
const WRITE_ACCESS: u32 = access::FILE_WRITE_DATA
    | access::FILE_APPEND_DATA
    | access::FILE_WRITE_EA
    | access::FILE_WRITE_ATTRIBUTES
    | access::DELETE
    | access::FILE_DELETE_CHILD
    | access::WRITE_DAC
    | access::WRITE_OWNER;

/// DesiredAccess bits no object has (bits 9-15, 21-23, 26-27): ACCESS_DENIED, as Windows
/// answers them (smbtorture smb2.create.gentest).
const RESERVED_ACCESS: u32 = 0x0CE0_FE00;

/// CreateOptions Windows refuses with NOT_SUPPORTED (smbtorture smb2.create.gentest):
/// FILE_OPEN_BY_FILE_ID, FILE_RESERVE_OPFILTER and 0x80 (FILE_OPEN_FOR_RECOVERY).
const UNSUPPORTED_OPTIONS: u32 = options::OPEN_BY_FILE_ID | options::RESERVE_OPFILTER | 0x80;

/// FileAttributes accepted in CREATE (MS-FSCC 2.6; others are INVALID_PARAMETER).
const CREATE_VALID_ATTRIBUTES: u32 = 0x0000_7FB7;

/// Mode of new files and directories (the process umask applies).
const NEW_FILE_MODE: u32 = 0o666;
const NEW_DIR_MODE: u32 = 0o777;

pub fn handle(req: &Request, ctx: &mut TreeCtx) -> Result<Reply, NtStatus> {
    let r = CreateRequest::decode(req.msg)?;
    // A reconnect ignores every other field of the request (MS-SMB2 3.3.5.9.7/3.3.5.9.12).
    if let Ok(contexts) = parse_contexts(r.contexts) {
        if let DurableAsk::Reconnect(rc) = durable_ask(&contexts, ctx.dialect)? {
            return reconnect(&r, &contexts, rc, ctx);
        }
    }
    validate(&r)?;
    let contexts = parse_contexts(r.contexts)?;
    let durable_request = match durable_ask(&contexts, ctx.dialect)? {
        DurableAsk::Request(d) => Some(d),
        _ => None,
    };
    let create_guid = match durable_request {
        Some(DurableRequest::V2 { create_guid, .. }) => Some(create_guid),
        _ => None,
    };
    if let Some(guid) = create_guid {
        if let Some(reply) = replay(req, &r, &contexts, guid, ctx)? {
            return Ok(reply);
        }
    }
    // Previous versions (snapshots) are not offered.
    if find_context(&contexts, context_name::TWRP).is_some() {
        return Err(NtStatus::OBJECT_NAME_NOT_FOUND);
    }
    let share = ctx.tree.share.clone();
    // Named pipes (IPC$) are not served by this handler.
    let root = share.root.as_ref().ok_or(NtStatus::OBJECT_NAME_NOT_FOUND)?;
    let path = SharePath::parse_utf16(r.name)?;
    let max_access = maximal_share_access(ctx.tree.maximal_access, share.read_only);
    let alloc_size = find_context(&contexts, context_name::ALSI)
        .and_then(|c| c.data.get(..8))
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])));

    let eas = requested_eas(&contexts)?;
    let lease = requested_lease(&r, &contexts, ctx)?;

    // The file id comes first: an oplock granted below must name it in a later break.
    let file_id = ctx.server.file_ids.allocate();
    let oplock = OplockRequest {
        level: requested_oplock(&r),
        holder: Some(BreakTarget {
            session: Arc::downgrade(ctx.session),
            file_id,
        }),
        overwrite: matches!(
            r.create_disposition,
            disposition::SUPERSEDE | disposition::OVERWRITE | disposition::OVERWRITE_IF
        ),
        stat_open: false,
        waiter: Some(ctx.conn),
        lease,
        lease_stat_open: false,
        retry: ctx.resuming,
        delete_on_close: r.create_options & options::DELETE_ON_CLOSE != 0,
    };
    let mut adm = Admission {
        share_max: max_access,
        alloc_size,
        oplock,
        notices: Vec::new(),
    };
    let result = open_or_create(root.as_fd(), &path, &r, &mut adm, ctx);
    crate::oplock::send_breaks(ctx.server, adm.notices);
    if let Some(guid) = create_guid {
        match result {
            Err(NtStatus::PENDING) => ctx.session.create_parked(guid, ctx.conn),
            _ => ctx.session.create_done(guid),
        }
    }
    let opened = match result {
        // MS-SMB2 3.3.5.9: wait (STATUS_PENDING) while another open's oplock is broken.
        Err(NtStatus::PENDING) => return Ok(Reply::WouldBlock),
        other => other?,
    };
    let opened = store_requested_eas(root.as_fd(), opened, &eas, ctx)?;
    let mut meta = match stat_fd(opened.fd.as_fd()) {
        Ok(meta) => meta,
        Err(e) => {
            ctx.server.files.cancel(opened.registration);
            return Err(e);
        }
    };
    ctx.server.files.apply_change_time_of(&mut meta);

    let oplock_level = opened.registration.oplock_level;
    let registration_lease = opened.registration.lease;
    let grant = durable_request
        .filter(|_| !meta.is_directory)
        .and_then(|d| grant_durable(d, oplock_level, registration_lease.as_ref(), ctx));
    let open = Arc::new(Open {
        file_id,
        tree_id: AtomicU32::new(ctx.tree.id),
        fd: opened.fd,
        path: Mutex::new(opened.path.as_str().to_string()),
        is_directory: meta.is_directory,
        access_mask: opened.granted,
        share_access: r.share_access,
        create_options: r.create_options,
        position: std::sync::atomic::AtomicU64::new(0),
        state: Mutex::new(OpenState {
            delete_on_close: r.create_options & options::DELETE_ON_CLOSE != 0,
            ..OpenState::default()
        }),
        file: opened.registration.file,
        open_key: opened.registration.open_key,
        durable: grant.clone(),
        replay: create_guid.map(|create_guid| ReplayKey {
            create_guid,
            create_action: opened.action,
        }),
        replay_eligible: std::sync::atomic::AtomicBool::new(create_guid.is_some()),
    });
    ctx.session.opens.insert(open);
    // A LOGOFF or TREE_DISCONNECT on another channel may have drained this tree's opens while
    // this CREATE ran: nobody would close this open then, and its record would stay in the
    // file table (a later file with the same inode number would meet it). Either they see it
    // in the table or it sees their tree gone (both under the tables' locks).
    if !tree_connected(ctx) {
        if let Some(open) = ctx.session.opens.remove(file_id) {
            super::close::close_open(ctx.server, &ctx.tree.share, &open);
        }
        return Err(if ctx.session.is_logged_off() {
            NtStatus::USER_SESSION_DELETED
        } else {
            NtStatus::NETWORK_NAME_DELETED
        });
    }
    *ctx.compound_file_id = Some(file_id);

    let mxac;
    let qfid;
    let mut lease_data = Vec::new();
    let mut out_contexts: Vec<(&[u8], &[u8])> = Vec::new();
    if let Some(grant) = &registration_lease {
        grant.encode(&mut lease_data);
        out_contexts.push((context_name::RQLS, &lease_data));
    }
    if find_context(&contexts, context_name::MXAC).is_some() {
        mxac = mxac_response(NtStatus::SUCCESS, opened.maximal);
        out_contexts.push((context_name::MXAC, &mxac));
    }
    if find_context(&contexts, context_name::QFID).is_some() {
        qfid = qfid_response(meta.file_index, meta.device);
        out_contexts.push((context_name::QFID, &qfid));
    }
    let durable_data;
    if let Some(g) = &grant {
        durable_data = durable_response(g);
        out_contexts.push((durable_data.0, &durable_data.1));
    }
    let mut body = Vec::with_capacity(160);
    let mut response = response_for(&meta, opened.action, file_id.encode());
    response.oplock_level = oplock_level;
    response.encode(&out_contexts, &mut body);
    Ok(Reply::ok(body))
}

/// The durable handle contexts of a CREATE (MS-SMB2 3.3.5.9.6/7/10/12).
enum DurableAsk {
    None,
    Request(DurableRequest),
    Reconnect(DurableReconnect),
}

/// Which durable handle context the CREATE carries. Version 2 contexts count from SMB 3.0 on;
/// mixing a v2 context with any other durable context is INVALID_PARAMETER, and a DHnQ beside
/// a DHnC is ignored.
fn durable_ask(contexts: &[CreateContext], dialect: Dialect) -> Result<DurableAsk, NtStatus> {
    let find = |name| find_context(contexts, name);
    let v2 = dialect.is_smb3();
    let dhnq = find(context_name::DHNQ);
    let dhnc = find(context_name::DHNC);
    let dh2q = find(context_name::DH2Q).filter(|_| v2);
    let dh2c = find(context_name::DH2C).filter(|_| v2);
    let v1_count = usize::from(dhnq.is_some()) + usize::from(dhnc.is_some());
    match (dh2q, dh2c) {
        (Some(_), Some(_)) => Err(NtStatus::INVALID_PARAMETER),
        (Some(_), None) | (None, Some(_)) if v1_count > 0 => Err(NtStatus::INVALID_PARAMETER),
        (Some(q), None) => Ok(DurableAsk::Request(dh::decode_dh2q(q.data)?)),
        (None, Some(c)) => Ok(DurableAsk::Reconnect(dh::decode_dh2c(c.data)?)),
        (None, None) => match (dhnq, dhnc) {
            (_, Some(c)) => Ok(DurableAsk::Reconnect(dh::decode_dhnc(c.data)?)),
            (Some(q), None) => Ok(DurableAsk::Request(dh::decode_dhnq(q.data)?)),
            (None, None) => Ok(DurableAsk::None),
        },
    }
}

/// MS-SMB2 3.3.5.9.6/3.3.5.9.10: a durable handle goes with a batch oplock or a lease that
/// caches handles, on files only (the caller leaves directories out). Persistent handles are
/// not offered (no continuously available shares), so the flag is never granted.
fn grant_durable(
    request: DurableRequest,
    oplock_level: u8,
    lease: Option<&LeaseContext>,
    ctx: &TreeCtx,
) -> Option<DurableGrant> {
    let durable_caching = match lease {
        Some(l) => l.state & lease_state::HANDLE != 0,
        None => oplock_level == oplock_break::level::BATCH,
    };
    if !durable_caching {
        return None;
    }
    let config = &ctx.server.config;
    let (create_guid, timeout_ms) = match request {
        DurableRequest::V1 => (None, config.durable_timeout_ms),
        DurableRequest::V2 {
            timeout_ms,
            create_guid,
            ..
        } => (
            Some(create_guid),
            durable::granted_timeout(
                timeout_ms,
                config.durable_timeout_ms,
                durable::MAX_TIMEOUT_MS,
            ),
        ),
    };
    Some(DurableGrant {
        create_guid,
        timeout_ms,
        client_guid: ctx.client_guid,
        identity: ctx.session.identity.lock().unwrap().clone(),
        lease_key: lease.map(|l| l.key),
    })
}

/// The DHnQ or DH2Q response context for a granted durable handle.
fn durable_response(grant: &DurableGrant) -> (&'static [u8], [u8; 8]) {
    match grant.create_guid {
        None => (context_name::DHNQ, dh::dhnq_response()),
        Some(_) => (context_name::DH2Q, dh::dh2q_response(grant.timeout_ms, 0)),
    }
}

/// MS-SMB2 3.3.5.9.10: a DH2Q naming the CreateGuid of an open this client already has is a
/// replay of that CREATE when flagged SMB2_FLAGS_REPLAY_OPERATION (the open is answered again
/// instead of opening the file a second time), and DUPLICATE_OBJECTID otherwise; a replay of a
/// CREATE still parked is FILE_NOT_AVAILABLE. As Windows
/// answers a replay (smbtorture smb2.replay.replay-dhv2-*): a leased open reports its lease as
/// it is now, to a replay with the same lease key; an oplock open the oplock level the replay
/// asks for, up to the one held, with the durable context only when that level is batch; a
/// replay asking for a lease the open does not have is ACCESS_DENIED.
fn replay(
    req: &Request,
    r: &CreateRequest,
    contexts: &[CreateContext],
    create_guid: [u8; 16],
    ctx: &mut TreeCtx,
) -> Result<Option<Reply>, NtStatus> {
    // The eligible open first: an open made anew by an earlier replay may share the CreateGuid.
    let with_guid = |o: &Open| o.replay.is_some_and(|k| k.create_guid == create_guid);
    let found = ctx
        .session
        .opens
        .find(|o| with_guid(o) && o.is_replay_eligible())
        .or_else(|| ctx.session.opens.find(with_guid));
    let replaying = req.header.flags & header_flags::REPLAY_OPERATION != 0;
    // The original of this replay still waits: Samba's answer (Windows answers ACCESS_DENIED;
    // smbtorture smb2.replay.dhv2-pending*-sane).
    if replaying && !ctx.resuming && ctx.session.is_create_parked(create_guid) {
        return Err(NtStatus::FILE_NOT_AVAILABLE);
    }
    let Some(open) = found else {
        return Ok(None);
    };
    if !replaying || open.tree_id() != ctx.tree.id {
        return Err(NtStatus::DUPLICATE_OBJECTID);
    }
    // An open used since is not the outcome of the CREATE being replayed: open anew.
    if !open.is_replay_eligible() {
        return Ok(None);
    }
    let key = open.replay.ok_or(NtStatus::INTERNAL_ERROR)?;
    let held_lease = ctx.server.files.lease_grant(&open).map(|l| l.key);
    let asked_lease = requested_lease(r, contexts, ctx)?.map(|l| l.id.key);
    let held = ctx.server.files.oplock_level(&open);
    let oplock = match (held_lease, asked_lease) {
        (Some(held_key), Some(asked)) if held_key == asked => None,
        (None, None) => Some(requested_oplock(r).min(held)),
        _ => return Err(NtStatus::ACCESS_DENIED),
    };
    let dh2q = open.durable.as_ref().map(durable_response);
    let durable = match (oplock, &dh2q) {
        (Some(level), _) if level != oplock_break::level::BATCH => None,
        (_, Some((name, data))) => Some((*name, &data[..])),
        (_, None) => None,
    };
    *ctx.compound_file_id = Some(open.file_id);
    existing_open_reply(&open, key.create_action, oplock, durable, ctx).map(Some)
}

/// MS-SMB2 3.3.5.9.7 (DHnC) and 3.3.5.9.12 (DH2C): reclaim a disconnected durable open on this
/// session and tree — the same open, FileId, oplock or lease and locks. Every failed check is
/// OBJECT_NAME_NOT_FOUND, but the right lease on another name is INVALID_PARAMETER.
fn reconnect(
    r: &CreateRequest,
    contexts: &[CreateContext],
    rc: DurableReconnect,
    ctx: &mut TreeCtx,
) -> Result<Reply, NtStatus> {
    let (file_id, create_guid) = match rc {
        DurableReconnect::V1 { file_id } => (file_id, None),
        DurableReconnect::V2 {
            file_id,
            create_guid,
            ..
        } => (file_id, Some(create_guid)),
    };
    let file_id = FileId::decode(&file_id);
    let lease_key = match find_context(contexts, context_name::RQLS) {
        Some(c) => Some(LeaseContext::decode(c.data, ctx.dialect.is_smb3())?.key),
        None => None,
    };
    // The name matters only for leased opens; an unparsable one matches nothing.
    let name = SharePath::parse_utf16(r.name)
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let identity = ctx.session.identity.lock().unwrap().clone();
    let ask = ReconnectAsk {
        create_guid,
        client_guid: ctx.client_guid,
        identity: &identity,
        lease_key,
        name: &name,
    };
    let share = ctx.tree.share.clone();
    if let Some(handoff) = ctx.server.handoff.as_ref() {
        let owner = crate::open::file_id_owner(file_id);
        if owner != handoff.worker {
            // The client's ClientGuid should have brought it to the owner; only persistent
            // handles kept outside the process could be reclaimed here.
            tracing::info!(
                file_id = file_id.persistent,
                owner,
                "durable reconnect names an open of another worker"
            );
            return Err(NtStatus::OBJECT_NAME_NOT_FOUND);
        }
    }
    let check = |d: &durable::Disconnected| {
        if !Arc::ptr_eq(&d.share, &share) || d.open.file_id != file_id {
            return Err(NtStatus::OBJECT_NAME_NOT_FOUND);
        }
        let grant = d
            .open
            .durable
            .as_ref()
            .ok_or(NtStatus::OBJECT_NAME_NOT_FOUND)?;
        let path = d.open.path.lock().unwrap().clone();
        durable::check_reconnect(grant, &path, &ask)
    };
    let d = match ctx.server.durable.reclaim(file_id.persistent, &check) {
        Err(NtStatus::OBJECT_NAME_NOT_FOUND)
            if durable::release_from_live_session(ctx.server, ctx.session, file_id, &ask) =>
        {
            ctx.server.durable.reclaim(file_id.persistent, &check)?
        }
        other => other?,
    };
    let open = d.open;
    open.set_tree_id(ctx.tree.id);
    ctx.server.files.reattach_holder(
        &open,
        BreakTarget {
            session: Arc::downgrade(ctx.session),
            file_id: open.file_id,
        },
    );
    ctx.session.opens.insert(open.clone());
    *ctx.compound_file_id = Some(open.file_id);
    tracing::info!(file_id = open.file_id.persistent, "durable open reclaimed");
    existing_open_reply(&open, action::OPENED, None, None, ctx)
}

/// The CREATE response for an open that exists already (a reconnect or a replay): its current
/// lease, or `oplock` (by default the level it holds), and `durable` as the durable handle
/// response context.
fn existing_open_reply(
    open: &Arc<Open>,
    create_action: u32,
    oplock: Option<u8>,
    durable: Option<(&[u8], &[u8])>,
    ctx: &TreeCtx,
) -> Result<Reply, NtStatus> {
    let mut meta = stat_fd(open.fd.as_fd())?;
    ctx.server.files.apply_change_time(open, &mut meta);
    let lease = ctx.server.files.lease_grant(open);
    let mut lease_data = Vec::new();
    let mut out_contexts: Vec<(&[u8], &[u8])> = Vec::new();
    if let Some(grant) = &lease {
        grant.encode(&mut lease_data);
        out_contexts.push((context_name::RQLS, &lease_data));
    }
    out_contexts.extend(durable);
    let mut response = response_for(&meta, create_action, open.file_id.encode());
    response.oplock_level = match (lease, oplock) {
        (Some(_), _) => oplock_break::level::LEASE,
        (None, Some(level)) => level,
        (None, None) => ctx.server.files.oplock_level(open),
    };
    let mut body = Vec::with_capacity(160);
    response.encode(&out_contexts, &mut body);
    Ok(Reply::ok(body))
}

/// Whether the CREATE's tree is still connected in its session.
fn tree_connected(ctx: &TreeCtx) -> bool {
    ctx.session
        .trees
        .lock()
        .unwrap()
        .get(&ctx.tree.id)
        .is_some_and(|t| Arc::ptr_eq(t, ctx.tree))
}

/// What one CREATE may be given: the access the share allows, the allocation asked for, the
/// oplock requested, and the oplock breaks it causes (sent once the file table is unlocked).
struct Admission {
    share_max: u32,
    alloc_size: Option<u64>,
    oplock: OplockRequest,
    notices: Vec<BreakNotice>,
}

/// The lease the client asks for (MS-SMB2 3.3.5.9.8, 3.3.5.9.11): level LEASE with an RqLs
/// context, on 2.1 or later (v2 contexts from 3.0 on). Without the context the open gets no
/// oplock at all.
fn requested_lease(
    r: &CreateRequest,
    contexts: &[CreateContext],
    ctx: &TreeCtx,
) -> Result<Option<LeaseAsk>, NtStatus> {
    if r.requested_oplock_level != oplock_break::level::LEASE || ctx.dialect < Dialect::Smb210 {
        return Ok(None);
    }
    let Some(c) = find_context(contexts, context_name::RQLS) else {
        return Ok(None);
    };
    let context = LeaseContext::decode(c.data, ctx.dialect.is_smb3())?;
    Ok(Some(LeaseAsk {
        id: LeaseId {
            client_guid: ctx.client_guid,
            key: context.key,
        },
        context,
    }))
}

/// The oplock the client asks for (LEASE is answered through [`requested_lease`]).
fn requested_oplock(r: &CreateRequest) -> u8 {
    use oplock_break::level;
    match r.requested_oplock_level {
        level::II | level::EXCLUSIVE | level::BATCH => r.requested_oplock_level,
        _ => level::NONE,
    }
}

/// ExtA (MS-SMB2 2.2.13.2.1): the FILE_FULL_EA_INFORMATION list to give the file, checked
/// before anything changes on disk.
fn requested_eas(contexts: &[CreateContext]) -> Result<Vec<FullEa>, NtStatus> {
    let Some(c) = find_context(contexts, context_name::EXTA) else {
        return Ok(Vec::new());
    };
    let eas = ea_info::decode_list(c.data)?;
    ea::check_list(&eas)?;
    Ok(eas)
}

/// MS-FSA 2.1.5.1.1/2.1.5.1.2.1: a file this CREATE made, overwrote or superseded gets the
/// requested EAs; an opened existing file keeps its own. When storing fails the CREATE fails:
/// the open is withdrawn and a file it created is removed again.
fn store_requested_eas(
    root: std::os::fd::BorrowedFd,
    opened: Opened,
    eas: &[FullEa],
    ctx: &TreeCtx,
) -> Result<Opened, NtStatus> {
    if eas.is_empty() || opened.action == action::OPENED {
        return Ok(opened);
    }
    let Err(e) = ea::apply(opened.fd.as_fd(), eas) else {
        return Ok(opened);
    };
    if opened.action == action::CREATED {
        let is_directory = stat_fd(opened.fd.as_fd()).is_ok_and(|m| m.is_directory);
        remove_new(root, &opened.path, is_directory);
    }
    ctx.server.files.cancel(opened.registration);
    Err(e)
}

fn response_for(meta: &FileMetadata, create_action: u32, file_id: [u8; 16]) -> CreateResponse {
    CreateResponse {
        oplock_level: oplock_break::level::NONE,
        flags: 0,
        create_action,
        creation_time: meta.creation_time,
        last_access_time: meta.last_access_time,
        last_write_time: meta.last_write_time,
        change_time: meta.change_time,
        allocation_size: meta.allocation_size,
        end_of_file: meta.end_of_file,
        file_attributes: meta.attributes,
        file_id,
    }
}

/// MS-SMB2 3.3.5.9 and Windows behaviour for malformed CREATE fields.
fn validate(r: &CreateRequest) -> Result<(), NtStatus> {
    if r.impersonation_level > MAX_IMPERSONATION_LEVEL {
        return Err(NtStatus::BAD_IMPERSONATION_LEVEL);
    }
    if r.create_options & !options::VALID != 0 {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    if r.create_options & UNSUPPORTED_OPTIONS != 0 {
        return Err(NtStatus::NOT_SUPPORTED);
    }
    let dir_file = r.create_options & options::DIRECTORY_FILE != 0;
    if dir_file && r.create_options & options::NON_DIRECTORY_FILE != 0 {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    if r.create_disposition > disposition::OVERWRITE_IF {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    // MS-FSA 2.1.5.1: a directory can only be created or opened.
    if dir_file
        && !matches!(
            r.create_disposition,
            disposition::CREATE | disposition::OPEN | disposition::OPEN_IF
        )
    {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    // Reserved access bits are refused before the attributes are looked at (Windows answers
    // ACCESS_DENIED for them even with invalid FileAttributes, smbtorture smb2.create.gentest).
    if r.desired_access & RESERVED_ACCESS != 0 {
        return Err(NtStatus::ACCESS_DENIED);
    }
    if r.file_attributes & !CREATE_VALID_ATTRIBUTES != 0 {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    if r.desired_access & access::ACCESS_SYSTEM_SECURITY != 0 {
        return Err(NtStatus::PRIVILEGE_NOT_HELD);
    }
    // An open that asks for nothing is refused by Windows (smbtorture smb2.create.gentest).
    // SYNCHRONIZE alone is a valid request: MS-SMB2 3.3.5.9 reserves only 0x0CE0FE00, and
    // Windows and Samba grant it (smbtorture smb2.getinfo.getinfo_access).
    if r.desired_access == 0 {
        return Err(NtStatus::ACCESS_DENIED);
    }
    Ok(())
}

/// What the tree allows: its maximal access, less every write right on a read-only share.
fn maximal_share_access(tree_access: u32, read_only: bool) -> u32 {
    let mut max = tree_access & access::FILE_ALL_ACCESS;
    if read_only {
        max &= !WRITE_ACCESS;
    }
    max
}

/// Map GENERIC_* and MAXIMUM_ALLOWED to specific rights (MS-SMB2 3.3.5.9), then check them
/// against `max`. Returns the granted access.
fn grant_access(desired: u32, max: u32) -> Result<u32, NtStatus> {
    let mut a = desired
        & !(access::GENERIC_ALL
            | access::GENERIC_READ
            | access::GENERIC_WRITE
            | access::GENERIC_EXECUTE
            | access::MAXIMUM_ALLOWED);
    if desired & access::GENERIC_READ != 0 {
        a |= FILE_GENERIC_READ;
    }
    if desired & access::GENERIC_WRITE != 0 {
        a |= FILE_GENERIC_WRITE;
    }
    if desired & access::GENERIC_EXECUTE != 0 {
        a |= FILE_GENERIC_EXECUTE;
    }
    if desired & access::GENERIC_ALL != 0 {
        a |= access::FILE_ALL_ACCESS;
    }
    if a & !max != 0 {
        return Err(NtStatus::ACCESS_DENIED);
    }
    if desired & access::MAXIMUM_ALLOWED != 0 {
        a |= max;
    }
    Ok(a)
}

/// The result of resolving a CREATE on disk.
struct Opened {
    fd: OwnedFd,
    path: SharePath,
    granted: u32,
    maximal: u32,
    action: u32,
    registration: Registration,
}

fn open_or_create(
    root: std::os::fd::BorrowedFd,
    path: &SharePath,
    r: &CreateRequest,
    adm: &mut Admission,
    ctx: &TreeCtx,
) -> Result<Opened, NtStatus> {
    // Another client may create the name between our lookup and our create. Unless the
    // request insists on creating (FILE_CREATE), the file it made is then opened instead.
    let mut attempts = 0;
    loop {
        let (on_disk, existing) = path::lookup(root, path)?;
        let result = match existing {
            Some(fd) => open_existing(root, on_disk, fd, r, adm, ctx),
            None => create_new(root, on_disk, r, adm, ctx),
        };
        attempts += 1;
        match result {
            Err(NtStatus::OBJECT_NAME_COLLISION)
                if r.create_disposition != disposition::CREATE
                    && attempts < CREATE_RACE_RETRIES =>
            {
                continue
            }
            other => return other,
        }
    }
}

/// How often CREATE looks a name up again after losing a creation race.
const CREATE_RACE_RETRIES: u32 = 3;

fn key_of(meta: &FileMetadata) -> FileKey {
    FileKey {
        device: meta.device,
        inode: meta.file_index,
    }
}

fn open_existing(
    root: std::os::fd::BorrowedFd,
    on_disk: SharePath,
    path_fd: OwnedFd,
    r: &CreateRequest,
    adm: &mut Admission,
    ctx: &TreeCtx,
) -> Result<Opened, NtStatus> {
    let meta = stat_fd(path_fd.as_fd())?;
    let disp = r.create_disposition;
    if disp == disposition::CREATE {
        return Err(NtStatus::OBJECT_NAME_COLLISION);
    }
    if meta.is_directory {
        if r.create_options & options::NON_DIRECTORY_FILE != 0 {
            return Err(NtStatus::FILE_IS_A_DIRECTORY);
        }
        if !matches!(disp, disposition::OPEN | disposition::OPEN_IF) {
            // MS-FSA 2.1.5.1.2: directories cannot be superseded or overwritten.
            return Err(NtStatus::INVALID_PARAMETER);
        }
    } else {
        if r.create_options & options::DIRECTORY_FILE != 0 {
            return Err(NtStatus::NOT_A_DIRECTORY);
        }
        if on_disk.had_trailing_separator() {
            return Err(NtStatus::OBJECT_NAME_INVALID);
        }
    }
    let readonly = meta.attributes & attr::READONLY != 0;
    let mut max = adm.share_max;
    if readonly {
        max &= !(access::FILE_WRITE_DATA | access::FILE_APPEND_DATA | access::FILE_WRITE_EA);
    }
    let delete_on_close = r.create_options & options::DELETE_ON_CLOSE != 0;
    if readonly && delete_on_close {
        return Err(NtStatus::CANNOT_DELETE);
    }
    let granted = grant_access(r.desired_access, max)?;
    check_delete_on_close(r, granted, on_disk.is_root())?;
    let truncate = matches!(
        disp,
        disposition::SUPERSEDE | disposition::OVERWRITE | disposition::OVERWRITE_IF
    );
    if truncate && (readonly || adm.share_max & access::FILE_WRITE_DATA == 0) {
        return Err(NtStatus::ACCESS_DENIED);
    }
    // Share modes and oplock breaks are settled before anything changes on disk.
    let oplock = OplockRequest {
        level: if meta.is_directory {
            oplock_break::level::NONE
        } else {
            adm.oplock.level
        },
        stat_open: granted & !STAT_ACCESS == 0,
        lease_stat_open: granted & !LEASE_STAT_ACCESS == 0,
        // Directory leases are not offered (SMB2_GLOBAL_CAP_DIRECTORY_LEASING is not set).
        lease: adm.oplock.lease.filter(|_| !meta.is_directory),
        ..adm.oplock.clone()
    };
    let registration = ctx.server.files.register(
        key_of(&meta),
        granted,
        r.share_access,
        &oplock,
        &mut adm.notices,
    )?;
    let result = (|| {
        let fd = reopen(
            root,
            &on_disk,
            path_fd,
            meta.is_directory,
            granted,
            truncate,
        )?;
        if truncate {
            // MS-FSA 2.1.5.1.2.1: overwriting replaces the attributes (keeping ARCHIVE).
            metadata::set_attributes(fd.as_fd(), r.file_attributes | attr::ARCHIVE)?;
            // The new contents get the requested allocation, as a new file would.
            if let Some(size) = adm.alloc_size {
                preallocate(&fd, size);
            }
        }
        Ok(fd)
    })();
    let fd = match result {
        Ok(fd) => fd,
        Err(e) => {
            ctx.server.files.cancel(registration);
            return Err(e);
        }
    };
    let action = match disp {
        disposition::SUPERSEDE => action::SUPERSEDED,
        disposition::OVERWRITE | disposition::OVERWRITE_IF => action::OVERWRITTEN,
        _ => action::OPENED,
    };
    Ok(Opened {
        fd,
        path: on_disk,
        granted,
        maximal: max,
        action,
        registration,
    })
}

/// MS-FSA 2.1.5.1: FILE_DELETE_ON_CLOSE needs DELETE access; the share root is never deleted.
fn check_delete_on_close(r: &CreateRequest, granted: u32, is_root: bool) -> Result<(), NtStatus> {
    if r.create_options & options::DELETE_ON_CLOSE == 0 {
        return Ok(());
    }
    if granted & access::DELETE == 0 {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    if is_root {
        return Err(NtStatus::ACCESS_DENIED);
    }
    Ok(())
}

/// Host open flags for a file open with `granted` access: no data access keeps `O_PATH`.
fn data_flags(granted: u32) -> Option<i32> {
    let read = granted & (access::FILE_READ_DATA | access::FILE_EXECUTE) != 0;
    let write = granted & (access::FILE_WRITE_DATA | access::FILE_APPEND_DATA) != 0;
    match (read, write) {
        (_, true) => Some(libc::O_RDWR),
        (true, false) => Some(libc::O_RDONLY),
        (false, false) => None,
    }
}

/// Turn the lookup's `O_PATH` descriptor into the open's descriptor.
fn reopen(
    root: std::os::fd::BorrowedFd,
    on_disk: &SharePath,
    path_fd: OwnedFd,
    is_directory: bool,
    granted: u32,
    truncate: bool,
) -> Result<OwnedFd, NtStatus> {
    if is_directory {
        return path::open_beneath(root, on_disk, libc::O_RDONLY | libc::O_DIRECTORY, 0);
    }
    let flags = match (data_flags(granted), truncate) {
        (_, true) => libc::O_RDWR | libc::O_TRUNC,
        (Some(f), false) => f,
        (None, false) => return Ok(path_fd),
    };
    path::open_beneath(root, on_disk, flags | libc::O_NOCTTY | libc::O_NONBLOCK, 0)
        .and_then(clear_nonblock)
}

/// `O_NONBLOCK` guards against FIFOs at open time only; regular I/O must block.
fn clear_nonblock(fd: OwnedFd) -> Result<OwnedFd, NtStatus> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let raw = fd.as_raw_fd();
    let flags = fcntl(raw, FcntlArg::F_GETFL).map_err(|e| NtStatus::from_errno(e as i32))?;
    let flags = OFlag::from_bits_retain(flags) & !OFlag::O_NONBLOCK;
    fcntl(raw, FcntlArg::F_SETFL(flags)).map_err(|e| NtStatus::from_errno(e as i32))?;
    Ok(fd)
}

fn create_new(
    root: std::os::fd::BorrowedFd,
    on_disk: SharePath,
    r: &CreateRequest,
    adm: &mut Admission,
    ctx: &TreeCtx,
) -> Result<Opened, NtStatus> {
    if matches!(
        r.create_disposition,
        disposition::OPEN | disposition::OVERWRITE
    ) {
        return Err(NtStatus::OBJECT_NAME_NOT_FOUND);
    }
    if on_disk.is_root() {
        return Err(NtStatus::OBJECT_NAME_INVALID);
    }
    let is_directory = r.create_options & options::DIRECTORY_FILE != 0;
    if on_disk.had_trailing_separator() && !is_directory {
        return Err(NtStatus::OBJECT_NAME_INVALID);
    }
    if adm.share_max & access::FILE_WRITE_DATA == 0 {
        return Err(NtStatus::ACCESS_DENIED);
    }
    // A new file is ours: every right the share allows may be granted.
    let granted = grant_access(r.desired_access, adm.share_max)?;
    check_delete_on_close(r, granted, false)?;
    let fd = if is_directory {
        make_directory(root, &on_disk)?
    } else {
        let flags = data_flags(granted).unwrap_or(libc::O_RDONLY);
        path::open_beneath(
            root,
            &on_disk,
            flags | libc::O_CREAT | libc::O_EXCL,
            NEW_FILE_MODE,
        )?
    };
    let setup = (|| {
        metadata::init_new_file(fd.as_fd(), r.file_attributes, is_directory)?;
        if let (Some(size), false) = (adm.alloc_size, is_directory) {
            preallocate(&fd, size);
        }
        stat_fd(fd.as_fd())
    })();
    let meta = match setup {
        Ok(m) => m,
        Err(e) => {
            remove_new(root, &on_disk, is_directory);
            return Err(e);
        }
    };
    let registration = match ctx.server.files.register(
        key_of(&meta),
        granted,
        r.share_access,
        &OplockRequest {
            level: if is_directory {
                oplock_break::level::NONE
            } else {
                adm.oplock.level
            },
            lease: adm.oplock.lease.filter(|_| !is_directory),
            ..adm.oplock.clone()
        },
        &mut adm.notices,
    ) {
        Ok(reg) => reg,
        Err(e) => {
            remove_new(root, &on_disk, is_directory);
            return Err(e);
        }
    };
    Ok(Opened {
        fd,
        path: on_disk,
        granted,
        maximal: adm.share_max,
        action: action::CREATED,
        registration,
    })
}

fn make_directory(root: std::os::fd::BorrowedFd, on_disk: &SharePath) -> Result<OwnedFd, NtStatus> {
    let (parent, name) = path::open_parent(root, on_disk)?;
    nix::sys::stat::mkdirat(
        Some(parent.as_raw_fd()),
        name.as_str(),
        nix::sys::stat::Mode::from_bits_truncate(NEW_DIR_MODE),
    )
    .map_err(|e| NtStatus::from_errno(e as i32))?;
    path::open_beneath(root, on_disk, libc::O_RDONLY | libc::O_DIRECTORY, 0)
}

/// AlSi (MS-SMB2 2.2.13.2.6): reserve blocks without changing the size; best effort.
fn preallocate(fd: &OwnedFd, size: u64) {
    let Ok(len) = i64::try_from(size) else {
        return;
    };
    if len > 0 {
        let _ = nix::fcntl::fallocate(
            fd.as_raw_fd(),
            nix::fcntl::FallocateFlags::FALLOC_FL_KEEP_SIZE,
            0,
            len,
        );
    }
}

/// Undo a creation that could not be completed.
fn remove_new(root: std::os::fd::BorrowedFd, on_disk: &SharePath, is_directory: bool) {
    if let Ok((parent, name)) = path::open_parent(root, on_disk) {
        let flag = if is_directory {
            nix::unistd::UnlinkatFlags::RemoveDir
        } else {
            nix::unistd::UnlinkatFlags::NoRemoveDir
        };
        let _ = nix::unistd::unlinkat(Some(parent.as_raw_fd()), name.as_str(), flag);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_rights_map_to_file_rights() {
        let all = access::FILE_ALL_ACCESS;
        assert_eq!(
            grant_access(access::GENERIC_READ, all),
            Ok(FILE_GENERIC_READ)
        );
        assert_eq!(grant_access(access::GENERIC_ALL, all), Ok(all));
        assert_eq!(grant_access(access::MAXIMUM_ALLOWED, all), Ok(all));
        let ro = maximal_share_access(all, true);
        assert_eq!(
            grant_access(access::GENERIC_WRITE, ro),
            Err(NtStatus::ACCESS_DENIED)
        );
        assert_eq!(grant_access(access::MAXIMUM_ALLOWED, ro), Ok(ro));
        assert_eq!(ro & access::FILE_WRITE_DATA, 0);
    }

    #[test]
    fn reserved_access_is_refused_before_bad_attributes() {
        let request = |desired_access, file_attributes| CreateRequest {
            security_flags: 0,
            requested_oplock_level: 0,
            impersonation_level: 0,
            smb_create_flags: 0,
            desired_access,
            file_attributes,
            share_access: 0,
            create_disposition: disposition::CREATE,
            create_options: 0,
            name: b"",
            contexts: b"",
        };
        const VOLUME: u32 = 0x8;
        assert_eq!(
            validate(&request(0x0800_0000, VOLUME)),
            Err(NtStatus::ACCESS_DENIED)
        );
        assert_eq!(
            validate(&request(access::MAXIMUM_ALLOWED, VOLUME)),
            Err(NtStatus::INVALID_PARAMETER)
        );
        assert_eq!(validate(&request(access::MAXIMUM_ALLOWED, 0)), Ok(()));
    }
}
