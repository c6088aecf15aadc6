//! The storage layer under the file commands: paths resolved beneath a share root
//! ([`path`]), SMB metadata over `statx` and extended attributes ([`metadata`]), and the
//! server-wide table of open files with share modes, delete-pending state and byte-range
//! locks ([`file_table`]).
//!
//! Everything here is plain system calls; the reactors move READ/WRITE data onto io_uring.

pub mod ea;
pub mod file_table;
pub mod metadata;
pub mod path;
mod sys;
#[cfg(test)]
pub(crate) mod test_dir;
pub mod worker_registry;

use std::os::fd::AsFd;

use smb3d_protocol::NtStatus;

use crate::open::Open;

fn io_errno(e: nix::errno::Errno) -> NtStatus {
    match e {
        nix::errno::Errno::EISDIR => NtStatus::INVALID_DEVICE_REQUEST,
        // ENOSPC, EDQUOT and EFBIG are DISK_FULL (NtStatus::from_errno).
        e => NtStatus::from_errno(e as i32),
    }
}

fn to_off(offset: u64) -> Result<i64, NtStatus> {
    i64::try_from(offset).map_err(|_| NtStatus::INVALID_PARAMETER)
}

/// Read up to `buf.len()` bytes at `offset` (pread, retried until full or end of file).
/// Returns the count read; 0 means `offset` is at or past the end of the file.
pub fn read_at(open: &Open, offset: u64, buf: &mut [u8]) -> Result<usize, NtStatus> {
    let mut done = 0;
    while done < buf.len() {
        let at = to_off(
            offset
                .checked_add(done as u64)
                .ok_or(NtStatus::INVALID_PARAMETER)?,
        )?;
        match nix::sys::uio::pread(open.fd.as_fd(), &mut buf[done..], at) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(io_errno(e)),
        }
    }
    note_read(open, offset, done);
    Ok(done)
}

/// Record a completed read in the open's FilePositionInformation: the position moves to the
/// end of the bytes read. MS-FSA 2.1.5.3 asks this only of synchronous-I/O opens, but SMB2
/// reads carry their own offsets, and a position that follows every read is what clients of
/// Samba see (smbtorture smb2.read.position expects it of non-Windows servers). Writes leave
/// the position alone, as there. Any read path (pread here, io_uring) calls this on success.
/// Lock-free: concurrent reads of one open leave the position of one of them, as a lock would.
pub fn note_read(open: &Open, offset: u64, bytes_read: usize) {
    let end = offset.saturating_add(bytes_read as u64);
    open.position
        .store(end, std::sync::atomic::Ordering::Relaxed);
}

/// Write all of `data` at `offset` (pwrite, retried on short writes). ENOSPC is DISK_FULL.
pub fn write_at(open: &Open, offset: u64, data: &[u8]) -> Result<usize, NtStatus> {
    let mut done = 0;
    while done < data.len() {
        let at = to_off(
            offset
                .checked_add(done as u64)
                .ok_or(NtStatus::INVALID_PARAMETER)?,
        )?;
        match nix::sys::uio::pwrite(open.fd.as_fd(), &data[done..], at) {
            Ok(0) => return Err(NtStatus::DISK_FULL),
            Ok(n) => done += n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(io_errno(e)),
        }
    }
    Ok(done)
}

/// FLUSH: `fdatasync` (metadata other than size is not needed for durability of data).
pub fn flush(open: &Open) -> Result<(), NtStatus> {
    use std::os::fd::AsRawFd;
    nix::unistd::fdatasync(open.fd.as_raw_fd()).map_err(io_errno)
}
