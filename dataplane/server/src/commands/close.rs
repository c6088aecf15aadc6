//! CLOSE (MS-SMB2 3.3.5.10): forget the open, release its locks, delete the file when it was
//! the last open of a delete-pending file.

use std::os::fd::AsFd;

use smb3d_protocol::messages::close::{
    encode_response, CloseAttributes, CloseRequest, FLAG_POSTQUERY_ATTRIB,
};
use smb3d_protocol::NtStatus;

use super::{Reply, Request, TreeCtx};
use crate::open::{FileId, Open};
use crate::server::ServerState;
use crate::share::Share;
use crate::storage::metadata::stat_fd;

pub fn handle(req: &Request, ctx: &mut TreeCtx) -> Result<Reply, NtStatus> {
    let r = CloseRequest::decode(req.msg)?;
    let open = ctx.open(FileId::decode(&r.file_id))?;
    let attrs = if r.flags & FLAG_POSTQUERY_ATTRIB != 0 {
        let mut m = stat_fd(open.fd.as_fd())?;
        ctx.server.files.apply_change_time(&open, &mut m);
        Some(CloseAttributes {
            creation_time: m.creation_time,
            last_access_time: m.last_access_time,
            last_write_time: m.last_write_time,
            change_time: m.change_time,
            allocation_size: m.allocation_size,
            end_of_file: m.end_of_file,
            file_attributes: m.attributes,
        })
    } else {
        None
    };
    // A LOGOFF or TREE_DISCONNECT on another channel may have taken (and closed) it meanwhile.
    if ctx.session.opens.remove(open.file_id).is_some() {
        close_open(ctx.server, &ctx.tree.share, &open);
    }
    let mut body = Vec::with_capacity(60);
    encode_response(attrs.as_ref(), &mut body);
    Ok(Reply::ok(body))
}

/// Forget an open that has left its session's table: release its share mode and locks, and
/// carry out delete-on-close. Used by CLOSE, TREE_DISCONNECT, LOGOFF and connection teardown.
pub fn close_open(server: &ServerState, share: &Share, open: &Open) {
    if let Some(root) = share.root.as_ref() {
        // The handle is gone either way; a failed delete is only worth a log line.
        if let Err(e) = server.files.unregister(open, root.as_fd()) {
            tracing::warn!(status = ?e, path = %open.path.lock().unwrap(), "delete on close failed");
        }
    }
    // Opens parked behind this open's oplock break (or its share mode) may go on now.
    crate::oplock::kick(server, open.file.take_waiters());
}
