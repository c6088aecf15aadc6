//! File I/O the reactor carries out on its io_uring for a single (non-compound) READ or WRITE,
//! and the response each one turns into when it completes.
//!
//! A READ's frame is laid out before the I/O — transport header, TRANSFORM header space, SMB2
//! header, READ response head — and the file data is read straight into the slot after it. A
//! large READ on a connection that neither signs nor encrypts it is spliced instead: the file
//! data goes from the page cache into a pipe and from there to the socket, never through user
//! space; the frame then holds the headers only. A WRITE's payload is written from the receive
//! buffer it arrived (and was decrypted) in.

use std::ops::Range;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use smb3d_protocol::crypto::Signer;
use smb3d_protocol::header::Header;
use smb3d_protocol::messages::{error, read, write};
use smb3d_protocol::NtStatus;

use super::frame::FrameBuilder;
use crate::open::Open;
use crate::session::Session;

/// Signing and encryption to apply to the response.
pub(super) struct Protection {
    pub sign_with: Option<Arc<Signer>>,
    pub encrypt_with: Option<Arc<Session>>,
}

/// READs of at least this many bytes are spliced when the response is neither signed nor
/// encrypted (docs/PERFORMANCE.md has the measurements behind the figure).
pub const SPLICE_MIN_BYTES: u32 = 32 * 1024;

/// Whether a READ of `length` bytes answered with `protection` is spliced.
pub(super) fn splices(length: u32, protection: &Protection) -> bool {
    length >= SPLICE_MIN_BYTES
        && protection.sign_with.is_none()
        && protection.encrypt_with.is_none()
}

pub struct PendingRead {
    pub(super) open: Arc<Open>,
    pub(super) offset: u64,
    pub(super) length: u32,
    pub(super) min_count: u32,
    pub(super) frame: FrameBuilder,
    pub(super) start: usize,
    pub(super) head_at: usize,
    pub(super) data_at: usize,
    pub(super) rsp: Header,
    pub(super) protection: Protection,
    /// Splice the data instead of reading it into the frame (see [`splices`]).
    pub(super) splice: bool,
}

impl PendingRead {
    pub fn fd(&self) -> RawFd {
        self.open.fd.as_raw_fd()
    }

    pub fn offset(&self) -> u64 {
        self.offset
    }

    pub fn length(&self) -> u32 {
        self.length
    }

    /// Whether the reactor should splice the data (file → pipe → socket) rather than read it
    /// into [`data_slot`](Self::data_slot).
    pub fn wants_splice(&self) -> bool {
        self.splice
    }

    /// Read into the frame after all (the reactor could not splice).
    pub fn copy_instead(&mut self) {
        self.splice = false;
    }

    /// Where the file data goes: the frame's spare capacity after the READ response head, not
    /// zero-filled first (the kernel writes it). Pointer and length for the io_uring READ.
    pub fn data_slot(&mut self) -> (*mut u8, u32) {
        self.frame.reserve(self.length as usize);
        let buf = self.frame.buf();
        debug_assert_eq!(buf.len(), self.data_at);
        (
            buf.spare_capacity_mut().as_mut_ptr().cast::<u8>(),
            self.length,
        )
    }

    /// Take the `n` bytes the io_uring READ wrote into [`data_slot`](Self::data_slot) into the
    /// frame.
    ///
    /// # Safety
    /// The kernel must have written `n` bytes (at most the slot's length) at the slot's start.
    pub unsafe fn assume_read(&mut self, n: usize) {
        let n = n.min(self.length as usize);
        // SAFETY: the caller guarantees the n bytes after data_at were initialized by the read,
        // and reserve() in data_slot made them part of the allocation.
        unsafe { self.frame.buf().set_len(self.data_at + n) };
    }

    /// The finished response frame for `result` (bytes read, or the error).
    pub fn complete(mut self, result: Result<usize, NtStatus>) -> Vec<u8> {
        let n = match self.bytes_to_send(result) {
            Ok(n) => n,
            Err(status) => return error_frame(self.rsp, status, self.protection),
        };
        // The reactor has taken the read bytes in with assume_read; nothing else is there.
        self.frame.buf().truncate(self.data_at + n);
        self.write_head(n);
        self.frame.end(self.start, self.protection.sign_with);
        self.frame.finish(self.protection.encrypt_with.as_deref())
    }

    /// For a spliced READ whose file → pipe splice ended with `result`: the frame to send, and
    /// how many of the bytes in the pipe follow it (0: none; the pipe's content is not sent).
    pub fn complete_spliced(mut self, result: Result<usize, NtStatus>) -> (Vec<u8>, usize) {
        let n = match self.bytes_to_send(result) {
            Ok(n) => n,
            Err(status) => return (error_frame(self.rsp, status, self.protection), 0),
        };
        debug_assert!(
            self.protection.sign_with.is_none() && self.protection.encrypt_with.is_none()
        );
        self.frame.buf().truncate(self.data_at);
        self.write_head(n);
        self.frame.end(self.start, None);
        (self.frame.finish_before_data(n), n)
    }

    /// The bytes read that the response carries, or the status it fails with: END_OF_FILE for
    /// nothing read or fewer than MinimumCount. Records the read in the open's position.
    fn bytes_to_send(&self, result: Result<usize, NtStatus>) -> Result<usize, NtStatus> {
        let n = result?.min(self.length as usize);
        let status = read::status_after_read(self.length, self.min_count, n);
        if status != NtStatus::SUCCESS {
            return Err(status);
        }
        crate::storage::note_read(&self.open, self.offset, n);
        Ok(n)
    }

    fn write_head(&mut self, n: usize) {
        let head = read::encode_response_head(n as u32);
        self.frame.buf()[self.head_at..self.head_at + 16].copy_from_slice(&head);
    }
}

pub struct PendingWrite {
    pub(super) open: Arc<Open>,
    pub(super) offset: u64,
    /// The payload's place in the PDU handed to `Connection::handle_pdu`.
    pub(super) data: Range<usize>,
    pub(super) rsp: Header,
    pub(super) protection: Protection,
}

impl PendingWrite {
    pub fn fd(&self) -> RawFd {
        self.open.fd.as_raw_fd()
    }

    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Where the payload is, relative to the start of the PDU.
    pub fn data_range(&self) -> Range<usize> {
        self.data.clone()
    }

    pub fn complete(self, result: Result<usize, NtStatus>) -> Vec<u8> {
        match result {
            Ok(n) => {
                let mut rsp = self.rsp;
                rsp.status = 0;
                let mut fb = FrameBuilder::new(self.protection.encrypt_with.is_some());
                let start = fb.begin(&rsp);
                fb.buf()
                    .extend_from_slice(&write::encode_response(n as u32));
                fb.end(start, self.protection.sign_with);
                fb.finish(self.protection.encrypt_with.as_deref())
            }
            Err(s) => error_frame(self.rsp, s, self.protection),
        }
    }
}

/// File I/O for the reactor to submit.
pub enum FileIo {
    Read(PendingRead),
    Write(PendingWrite),
}

impl FileIo {
    /// Carry the I/O out here with pread/pwrite instead of on a ring, and return the response
    /// frame: for driving a connection without a reactor (tests, the whole-connection fuzz
    /// target). `pdu` is the PDU last handed to `Connection::handle_pdu`, which a WRITE's
    /// payload range points into.
    pub fn run_blocking(self, pdu: &[u8]) -> Vec<u8> {
        match self {
            FileIo::Read(mut read) => {
                let data_at = read.data_at;
                let buf = read.frame.buf();
                buf.resize(data_at + read.length as usize, 0);
                let result = crate::storage::read_at(&read.open, read.offset, &mut buf[data_at..]);
                read.complete(result)
            }
            FileIo::Write(write) => {
                let result = match pdu.get(write.data.clone()) {
                    Some(data) => crate::storage::write_at(&write.open, write.offset, data),
                    None => Err(NtStatus::INVALID_PARAMETER),
                };
                write.complete(result)
            }
        }
    }
}

fn error_frame(mut rsp: Header, status: NtStatus, protection: Protection) -> Vec<u8> {
    rsp.status = status.0;
    let mut fb = FrameBuilder::new(protection.encrypt_with.is_some());
    let start = fb.begin(&rsp);
    error::encode(fb.buf());
    fb.end(start, protection.sign_with);
    fb.finish(protection.encrypt_with.as_deref())
}
