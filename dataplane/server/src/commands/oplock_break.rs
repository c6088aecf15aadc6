//! OPLOCK_BREAK acknowledgments (MS-SMB2 3.3.5.22): of an oplock break (3.3.5.22.1), where the
//! client gives up its oplock down to the level the break asked for, and of a lease break
//! (3.3.5.22.2), where it names its lease by key and keeps the state it acknowledges. The opens
//! waiting on the break go on.

use smb3d_protocol::messages::lease::{is_lease_ack, LeaseBreakAck};
use smb3d_protocol::messages::oplock_break::{self, OplockBreakAck};
use smb3d_protocol::NtStatus;

use super::{Reply, Request, TreeCtx};
use crate::open::FileId;
use crate::storage::file_table::LeaseId;

pub fn handle(req: &Request, ctx: &mut TreeCtx) -> Result<Reply, NtStatus> {
    if is_lease_ack(req.msg) {
        return lease_ack(req, ctx);
    }
    let ack = OplockBreakAck::decode(req.msg)?;
    let open = ctx.open(FileId::decode(&ack.file_id))?;
    let (level, waiters) = ctx
        .server
        .files
        .acknowledge_break(&open, ack.oplock_level)?;
    crate::oplock::kick(ctx.server, waiters);
    let mut body = Vec::with_capacity(24);
    oplock_break::encode(level, &ack.file_id, &mut body);
    Ok(Reply::ok(body))
}

/// MS-SMB2 3.3.5.22.2: the lease is the client's, whichever channel or session the
/// acknowledgment comes on.
fn lease_ack(req: &Request, ctx: &mut TreeCtx) -> Result<Reply, NtStatus> {
    let ack = LeaseBreakAck::decode(req.msg)?;
    let id = LeaseId {
        client_guid: ctx.client_guid,
        key: ack.key,
    };
    let mut notices = Vec::new();
    let waiters = ctx
        .server
        .files
        .acknowledge_lease_break(id, ack.state, &mut notices)?;
    crate::oplock::send_breaks(ctx.server, notices);
    crate::oplock::kick(ctx.server, waiters);
    let mut body = Vec::with_capacity(36);
    ack.encode(&mut body);
    Ok(Reply::ok(body))
}
