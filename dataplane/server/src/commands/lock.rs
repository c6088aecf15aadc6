//! LOCK (MS-SMB2 3.3.5.14): byte-range locks and unlocks, kept in the file table.
//!
//! A blocking lock (one element without FAIL_IMMEDIATELY) that conflicts returns
//! `Reply::WouldBlock`; the connection answers STATUS_PENDING and runs this handler again when
//! `FileTable::lock_generation` of the file changes (or cancels it). The connection re-runs a
//! parked LOCK through [`retry`], not [`handle`].

use smb3d_protocol::messages::lock::{encode_response, flags, LockElement, LockRequest};
use smb3d_protocol::NtStatus;

use std::sync::Arc;

use super::{Reply, Request, TreeCtx};
use crate::open::{FileId, Open};
use crate::storage::file_table::LockRange;

pub fn handle(req: &Request, ctx: &mut TreeCtx) -> Result<Reply, NtStatus> {
    let r = LockRequest::decode(req.msg)?;
    let open = ctx.open(FileId::decode(&r.file_id))?;
    // MS-FSA 2.1.5.8: no byte-range locks on directories.
    if open.is_directory {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    let sequence = lock_sequence(&r, ctx, &open);
    if let Some((index, number)) = sequence {
        let mut state = open.state.lock().unwrap();
        let slot = &mut state.lock_sequences.0[index];
        // MS-SMB2 3.3.5.14: the same sequence number again is a replay of a request already
        // carried out; anything else invalidates the entry until this request succeeds.
        if *slot == Some(number) {
            return Ok(Reply::ok(lock_response()));
        }
        *slot = None;
    }
    let reply = apply(&r, &open, ctx)?;
    if let (Some((index, number)), Reply::Body { .. }) = (sequence, &reply) {
        open.state.lock().unwrap().lock_sequences.0[index] = Some(number);
    }
    Ok(reply)
}

/// MS-SMB2 3.3.5.14: the LockSequenceArray entry (index 0..64) and sequence number a LOCK
/// names, for opens whose lock requests may be replayed: durable opens, and every open on a 3.x
/// connection of a server offering multichannel (a request may come again on another channel,
/// as Windows and Samba treat them; smbtorture smb2.lock.replay_smb3_specification_*).
/// LockSequenceIndex 0 or above 64 means no replay detection.
fn lock_sequence(r: &LockRequest, ctx: &TreeCtx, open: &Open) -> Option<(usize, u8)> {
    let replayable =
        open.durable.is_some() || (ctx.dialect.is_smb3() && ctx.server.config.multichannel);
    let index = (r.lock_sequence >> 4) as usize;
    let number = (r.lock_sequence & 0xf) as u8;
    index
        .checked_sub(1)
        .filter(|i| replayable && *i < 64)
        .map(|i| (i, number))
}

fn lock_response() -> Vec<u8> {
    let mut body = Vec::with_capacity(4);
    encode_response(&mut body);
    body
}

/// Carry out the locks or unlocks of `r` on `open`.
fn apply(r: &LockRequest, open: &Arc<Open>, ctx: &TreeCtx) -> Result<Reply, NtStatus> {
    let files = &ctx.server.files;
    let unlocking = r
        .locks
        .first()
        .is_some_and(|l| l.flags & flags::UNLOCK != 0);
    if unlocking {
        // MS-SMB2 3.3.5.14.1: every element must be a plain UNLOCK; processed in order and
        // not rolled back when one fails.
        for l in &r.locks {
            if l.flags != flags::UNLOCK {
                return Err(NtStatus::INVALID_PARAMETER);
            }
            files.unlock(open, l.offset, l.length)?;
        }
    } else {
        let ranges = lock_ranges(&r.locks)?;
        // MS-FSA 2.1.5.7 (via 2.1.4.12): taking a byte-range lock breaks every level II
        // oplock on the file to NONE, the locker's own too (smbtorture smb2.oplock.brl1/brl3).
        crate::oplock::send_breaks(ctx.server, files.break_level2(open));
        let blocking = r
            .locks
            .iter()
            .any(|l| l.flags & flags::FAIL_IMMEDIATELY == 0);
        match files.lock_ranges(open, &ranges) {
            Ok(()) => {}
            Err(NtStatus::LOCK_NOT_GRANTED) if blocking => return Ok(Reply::WouldBlock),
            Err(e) => return Err(e),
        }
    }
    Ok(Reply::ok(lock_response()))
}

/// The final status of a parked LOCK whose open went away before the lock was granted: closed
/// by CLOSE, or by TREE_DISCONNECT or LOGOFF closing every open of the tree or session. Windows
/// and Samba answer STATUS_RANGE_NOT_LOCKED (smbtorture smb2.lock.cancel, cancel-tdis,
/// cancel-logoff); FILE_CLOSED would tell the client its handle was never valid.
pub const ABANDONED_STATUS: NtStatus = NtStatus::RANGE_NOT_LOCKED;

/// Run a parked (STATUS_PENDING) LOCK again: as [`handle`], except that an open that has gone
/// since the request was parked ends the wait with [`ABANDONED_STATUS`].
pub fn retry(req: &Request, ctx: &mut TreeCtx) -> Result<Reply, NtStatus> {
    match handle(req, ctx) {
        Err(NtStatus::FILE_CLOSED) => Err(ABANDONED_STATUS),
        other => other,
    }
}

/// MS-SMB2 3.3.5.14.2: each element is SHARED or EXCLUSIVE, optionally FAIL_IMMEDIATELY;
/// UNLOCK among locks, or several elements of which one may block, is INVALID_PARAMETER.
fn lock_ranges(locks: &[LockElement]) -> Result<Vec<LockRange>, NtStatus> {
    let many = locks.len() > 1;
    locks
        .iter()
        .map(|l| {
            let exclusive = match l.flags & !flags::FAIL_IMMEDIATELY {
                flags::SHARED_LOCK => false,
                flags::EXCLUSIVE_LOCK => true,
                _ => return Err(NtStatus::INVALID_PARAMETER),
            };
            if many && l.flags & flags::FAIL_IMMEDIATELY == 0 {
                return Err(NtStatus::INVALID_PARAMETER);
            }
            Ok(LockRange {
                offset: l.offset,
                length: l.length,
                exclusive,
            })
        })
        .collect()
}
