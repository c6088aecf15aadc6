//! READ (MS-SMB2 3.3.5.12). The handler validates; the connection does the I/O (pread today,
//! io_uring later) into the response buffer, builds the response with
//! `messages::read::encode_response_head`, and decides END_OF_FILE after reading with
//! `messages::read::status_after_read` (0 bytes read for Length > 0, or fewer than
//! MinimumCount).

use smb3d_protocol::messages::read::ReadRequest;
use smb3d_protocol::NtStatus;

use super::negotiate::max_io_bytes;
use super::{Reply, Request, TreeCtx};
use crate::open::FileId;
use crate::storage::file_table::access;

pub fn handle(req: &Request, ctx: &mut TreeCtx) -> Result<Reply, NtStatus> {
    let r = ReadRequest::decode(req.msg)?;
    // SMB2_CHANNEL_NONE only: no RDMA.
    if r.channel != 0 {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    let open = ctx.open(FileId::decode(&r.file_id))?;
    if open.is_directory {
        return Err(NtStatus::INVALID_DEVICE_REQUEST);
    }
    if open.access_mask & (access::FILE_READ_DATA | access::FILE_EXECUTE) == 0 {
        return Err(NtStatus::ACCESS_DENIED);
    }
    // MS-SMB2 3.3.5.12: Length above Connection.MaxReadSize is INVALID_PARAMETER.
    if r.length > max_io_bytes(ctx.dialect) {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    // The range must fit in a host file offset.
    r.offset
        .checked_add(u64::from(r.length))
        .filter(|&end| end <= i64::MAX as u64)
        .ok_or(NtStatus::INVALID_PARAMETER)?;
    // MS-FSA 2.1.5.3: a read of zero bytes succeeds before any byte-range lock check.
    if r.length > 0 {
        ctx.server
            .files
            .check_io(&open, r.offset, u64::from(r.length), false)?;
    }
    Ok(Reply::ReadFile {
        open,
        offset: r.offset,
        length: r.length,
        min_count: r.minimum_count,
    })
}
