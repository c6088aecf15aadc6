//! CLOSE (MS-SMB2 3.3.5.10): forget the open, release its locks, delete the file when it was
//! the last open of a delete-pending file.

use std::os::fd::AsFd;

use smb3d_protocol::messages::close::{
    encode_response, CloseAttributes, CloseRequest, FLAG_POSTQUERY_ATTRIB,
};
use smb3d_protocol::NtStatus;

use super::{Reply, Request, TreeCtx};
use crate::open::FileId;
use crate::storage::metadata::stat_fd;

pub fn handle(req: &Request, ctx: &mut TreeCtx) -> Result<Reply, NtStatus> {
    let r = CloseRequest::decode(req.msg)?;
    let open = ctx.open(FileId::decode(&r.file_id))?;
    let attrs = if r.flags & FLAG_POSTQUERY_ATTRIB != 0 {
        let m = stat_fd(open.fd.as_fd())?;
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
    ctx.session.opens.remove(open.file_id);
    if let Some(root) = ctx.tree.share.root.as_ref() {
        // The handle is gone either way; a failed delete is only worth a log line.
        if let Err(e) = ctx.server.files.unregister(&open, root.as_fd()) {
            tracing::warn!(status = ?e, "delete on close failed");
        }
    }
    let mut body = Vec::with_capacity(60);
    encode_response(attrs.as_ref(), &mut body);
    Ok(Reply::ok(body))
}
