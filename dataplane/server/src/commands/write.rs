//! WRITE (MS-SMB2 3.3.5.13). The handler validates; the connection writes `msg[data]` at
//! `offset` (pwrite today, io_uring later) and answers with
//! `messages::write::encode_response(count)`.

use smb3d_protocol::messages::write::WriteRequest;
use smb3d_protocol::NtStatus;

use super::{Reply, Request, TreeCtx};
use crate::open::{FileId, Open};
use crate::storage::file_table::access;

pub fn handle(req: &Request, ctx: &mut TreeCtx) -> Result<Reply, NtStatus> {
    let r = WriteRequest::decode(req.msg)?;
    if r.channel != 0 {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    let open = ctx.open(FileId::decode(&r.file_id))?;
    super::check_channel_sequence(req, ctx, &open)?;
    if open.is_directory {
        return Err(NtStatus::INVALID_DEVICE_REQUEST);
    }
    if open.access_mask & (access::FILE_WRITE_DATA | access::FILE_APPEND_DATA) == 0 {
        return Err(NtStatus::ACCESS_DENIED);
    }
    let length = r.data.len() as u64;
    let end = r
        .offset
        .checked_add(length)
        .filter(|&e| e <= i64::MAX as u64)
        .ok_or(NtStatus::INVALID_PARAMETER)?;
    if length > 0 {
        check_file_size(ctx, &open, end)?;
    }
    ctx.server.files.check_io(&open, r.offset, length, true)?;
    // MS-FSA 2.1.5.4: a write breaks every level II oplock on the file to none, its own too.
    crate::oplock::send_breaks(ctx.server, ctx.server.files.break_level2(&open));
    Ok(Reply::WriteFile {
        open,
        offset: r.offset,
        data: r.data,
    })
}

/// The largest file size offered: NTFS's limit of 2^44 - 2^16 bytes (16 TiB less 64 KiB), which
/// clients expect of a Windows-like server (smbtorture smb2.rw.invalid probes it).
pub const MAX_FILE_SIZE_BYTES: u64 = (1 << 44) - (1 << 16);

/// A write may not end past [`MAX_FILE_SIZE_BYTES`] (INVALID_PARAMETER). Files are not sparse
/// (the share does not report FILE_SUPPORTS_SPARSE_FILES), so a write ending beyond the size
/// of the volume could never be stored: DISK_FULL, as NTFS answers when it cannot allocate.
fn check_file_size(ctx: &TreeCtx, open: &Open, end: u64) -> Result<(), NtStatus> {
    if end > MAX_FILE_SIZE_BYTES {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    if end > ctx.server.files.volume_bytes(open) {
        return Err(NtStatus::DISK_FULL);
    }
    Ok(())
}
