//! WRITE (MS-SMB2 3.3.5.13). The handler validates; the connection writes `msg[data]` at
//! `offset` (pwrite today, io_uring later) and answers with
//! `messages::write::encode_response(count)`.

use smb3d_protocol::messages::write::WriteRequest;
use smb3d_protocol::NtStatus;

use super::{Reply, Request, TreeCtx};
use crate::open::FileId;
use crate::storage::file_table::access;

pub fn handle(req: &Request, ctx: &mut TreeCtx) -> Result<Reply, NtStatus> {
    let r = WriteRequest::decode(req.msg)?;
    if r.channel != 0 {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    let open = ctx.open(FileId::decode(&r.file_id))?;
    if open.is_directory {
        return Err(NtStatus::INVALID_DEVICE_REQUEST);
    }
    if open.access_mask & (access::FILE_WRITE_DATA | access::FILE_APPEND_DATA) == 0 {
        return Err(NtStatus::ACCESS_DENIED);
    }
    let length = r.data.len() as u64;
    r.offset
        .checked_add(length)
        .filter(|&e| e <= i64::MAX as u64)
        .ok_or(NtStatus::INVALID_PARAMETER)?;
    ctx.server.files.check_io(&open, r.offset, length, true)?;
    Ok(Reply::WriteFile {
        open,
        offset: r.offset,
        data: r.data,
    })
}
