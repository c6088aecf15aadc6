//! OPLOCK_BREAK acknowledgment (MS-SMB2 3.3.5.22.1): the client gives up its oplock down to
//! the level the break asked for; the opens waiting on the break go on.

use smb3d_protocol::messages::oplock_break::{self, OplockBreakAck};
use smb3d_protocol::NtStatus;

use super::{Reply, Request, TreeCtx};
use crate::open::FileId;

pub fn handle(req: &Request, ctx: &mut TreeCtx) -> Result<Reply, NtStatus> {
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
