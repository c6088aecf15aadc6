//! FLUSH (MS-SMB2 3.3.5.11): make the file's data durable.

use smb3d_protocol::messages::flush::{decode_request, encode_response};
use smb3d_protocol::NtStatus;

use super::{Reply, Request, TreeCtx};
use crate::open::FileId;
use crate::storage::{self, file_table::access};

pub fn handle(req: &Request, ctx: &mut TreeCtx) -> Result<Reply, NtStatus> {
    let file_id = decode_request(req.msg)?;
    let open = ctx.open(FileId::decode(&file_id))?;
    // MS-SMB2 3.3.5.11: an open without write access cannot be flushed.
    if open.access_mask & (access::FILE_WRITE_DATA | access::FILE_APPEND_DATA) == 0 {
        return Err(NtStatus::ACCESS_DENIED);
    }
    storage::flush(&open)?;
    let mut body = Vec::with_capacity(4);
    encode_response(&mut body);
    Ok(Reply::ok(body))
}
