//! TREE_CONNECT and TREE_DISCONNECT (MS-SMB2 3.3.5.7, 3.3.5.8).

use std::sync::Arc;

use smb3d_protocol::dialect::Dialect;
use smb3d_protocol::messages::tree_connect::{
    share_flags, share_type, TreeConnectRequest, TreeConnectResponse,
};
use smb3d_protocol::NtStatus;
use tracing::{debug, warn};

use crate::server::ServerState;
use crate::session::Session;
use crate::share::{Requirement, ShareKind};
use crate::tree::Tree;

/// Tree connects one session may hold.
const MAX_TREES_PER_SESSION: usize = 1024;

/// FILE_ALL_ACCESS, and read/execute for read-only shares (MS-SMB2 2.2.13.1.1).
pub const ACCESS_ALL: u32 = 0x001F_01FF;
pub const ACCESS_READ_ONLY: u32 = 0x0012_00A9;

pub fn connect(
    msg: &[u8],
    session: &Arc<Session>,
    server: &ServerState,
    dialect: Dialect,
) -> Result<(u32, Vec<u8>), NtStatus> {
    let req = TreeConnectRequest::decode(msg)?;
    let name = req.share_name()?;
    let share = server.share(name).ok_or_else(|| {
        debug!(share = name, "tree connect to unknown share");
        NtStatus::BAD_NETWORK_NAME
    })?;
    let encrypt = share.kind == ShareKind::Disk
        && (share.encrypt == Requirement::Required
            || server.config.encrypt == Requirement::Required);
    let can_encrypt = session
        .security
        .get()
        .is_some_and(|s| s.encryptor.is_some());
    if encrypt && (!dialect.is_smb3() || !can_encrypt) {
        warn!(
            share = name,
            "share requires encryption the client cannot do"
        );
        return Err(NtStatus::ACCESS_DENIED);
    }
    let mut trees = session.trees.lock().unwrap();
    if trees.len() >= MAX_TREES_PER_SESSION {
        return Err(NtStatus::INSUFFICIENT_RESOURCES);
    }
    let maximal_access = if share.read_only {
        ACCESS_READ_ONLY
    } else {
        ACCESS_ALL
    };
    let id = session.allocate_tree_id();
    let resp = TreeConnectResponse {
        share_type: match share.kind {
            ShareKind::Disk => share_type::DISK,
            ShareKind::Ipc => share_type::PIPE,
        },
        share_flags: share_flags::MANUAL_CACHING
            | if encrypt {
                share_flags::ENCRYPT_DATA
            } else {
                0
            },
        capabilities: 0,
        maximal_access,
    };
    trees.insert(
        id,
        Arc::new(Tree {
            id,
            share,
            maximal_access,
            encrypt,
        }),
    );
    let mut body = Vec::new();
    resp.encode(&mut body);
    Ok((id, body))
}

/// Drop the tree and close every open made through it.
pub fn disconnect(session: &Session, tree_id: u32, server: &ServerState) -> Result<(), NtStatus> {
    let tree = session
        .trees
        .lock()
        .unwrap()
        .remove(&tree_id)
        .ok_or(NtStatus::NETWORK_NAME_DELETED)?;
    for open in session.opens.drain(Some(tree_id)) {
        super::close::close_open(server, &tree.share, &open);
    }
    Ok(())
}
