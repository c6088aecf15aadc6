//! Building one response frame: the transport header, an optional TRANSFORM header, and one or
//! more SMB2 messages (a compound), each padded to 8 bytes, signed, then encrypted as a whole.

use std::sync::Arc;

use smb3d_protocol::crypto::Signer;
use smb3d_protocol::framing::{write_frame_header, FRAME_HEADER_BYTES};
use smb3d_protocol::header::{flags, Header, HEADER_BYTES};
use smb3d_protocol::transform::TRANSFORM_HEADER_BYTES;

use crate::session::Session;

pub struct FrameBuilder {
    buf: Vec<u8>,
    /// (start, signer) of each message.
    messages: Vec<(usize, Option<Arc<Signer>>)>,
}

impl FrameBuilder {
    /// `encrypt`: leave room for the TRANSFORM header; [`finish`](Self::finish) must then be
    /// given a session with an encryption key.
    pub fn new(encrypt: bool) -> FrameBuilder {
        FrameBuilder::with_capacity(encrypt, 512)
    }

    /// A frame with room for `body_bytes` after the headers, in a recycled buffer when the
    /// reactor has one (see [`recycle`]).
    pub fn with_capacity(encrypt: bool, body_bytes: usize) -> FrameBuilder {
        let base = FRAME_HEADER_BYTES + if encrypt { TRANSFORM_HEADER_BYTES } else { 0 };
        FrameBuilder {
            buf: take_buffer(base + body_bytes),
            messages: Vec::new(),
        }
        .with_len(base)
    }

    fn with_len(mut self, base: usize) -> FrameBuilder {
        self.buf.resize(base, 0);
        self
    }

    /// Make room for `bytes` more, from the reactor's recycled buffers when the frame's own
    /// buffer is too small (a READ laid out for splicing that is read into the frame after all).
    pub fn reserve(&mut self, bytes: usize) {
        let needed = self.buf.len() + bytes;
        if self.buf.capacity() < needed {
            let mut bigger = take_buffer(needed);
            bigger.extend_from_slice(&self.buf);
            recycle(std::mem::replace(&mut self.buf, bigger));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    pub fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Start a message: pad the previous one to 8 bytes and chain it, then write `hdr`.
    pub fn begin(&mut self, hdr: &Header) -> usize {
        if let Some(&(prev, _)) = self.messages.last() {
            while !(self.buf.len() - prev).is_multiple_of(8) {
                self.buf.push(0);
            }
            let next = (self.buf.len() - prev) as u32;
            self.buf[prev + 20..prev + 24].copy_from_slice(&next.to_le_bytes());
        }
        let start = self.buf.len();
        hdr.encode(&mut self.buf);
        start
    }

    /// Finish the message begun at `start`; it is signed when the frame is finished.
    pub fn end(&mut self, start: usize, signer: Option<Arc<Signer>>) {
        if signer.is_some() {
            let f = u32::from_le_bytes(
                self.buf[start + 16..start + 20]
                    .try_into()
                    .unwrap_or([0; 4]),
            ) | flags::SIGNED;
            self.buf[start + 16..start + 20].copy_from_slice(&f.to_le_bytes());
        }
        self.messages.push((start, signer));
    }

    /// The bytes of the message begun at `start` as they stand (for the preauth hash).
    pub fn message(&self, start: usize) -> &[u8] {
        debug_assert!(self.buf.len() >= start + HEADER_BYTES);
        &self.buf[start..]
    }

    /// Sign each message, encrypt the whole if asked, and write the transport header.
    pub fn finish(mut self, encrypt_with: Option<&Session>) -> Vec<u8> {
        let n = self.messages.len();
        for i in 0..n {
            let start = self.messages[i].0;
            let end = if i + 1 < n {
                self.messages[i + 1].0
            } else {
                self.buf.len()
            };
            if let Some(signer) = &self.messages[i].1 {
                signer.sign(&mut self.buf[start..end]);
            }
        }
        if let Some(security) = encrypt_with.and_then(|s| s.security.get().map(|sec| (s.id, sec))) {
            let (session_id, sec) = security;
            if let Some(enc) = &sec.encryptor {
                let nonce = sec.next_nonce();
                enc.encrypt_in_place(&nonce, session_id, &mut self.buf[FRAME_HEADER_BYTES..]);
            }
        }
        let len = self.buf.len() - FRAME_HEADER_BYTES;
        write_frame_header(&mut self.buf, len);
        self.buf
    }

    /// Finish an unsigned, unencrypted frame whose last `data_bytes` are not in the buffer but
    /// sent right after it (a READ's file data spliced from the page cache): the transport
    /// header counts them.
    pub fn finish_before_data(mut self, data_bytes: usize) -> Vec<u8> {
        debug_assert!(self.messages.iter().all(|(_, signer)| signer.is_none()));
        let len = self.buf.len() - FRAME_HEADER_BYTES + data_bytes;
        write_frame_header(&mut self.buf, len);
        self.buf
    }
}

/// Buffers a reactor keeps for reuse at most, and the sizes worth keeping: large response
/// frames (READ data) recycled here skip the allocator and the kernel's zeroing of fresh pages.
const POOL_BUFFERS_MAX: usize = 64;
const POOL_BUFFER_MIN_BYTES: usize = 64 * 1024;
const POOL_BUFFER_MAX_BYTES: usize = 16 * 1024 * 1024;

thread_local! {
    /// Per reactor thread: no lock, no sharing.
    static POOL: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn take_buffer(capacity: usize) -> Vec<u8> {
    if capacity >= POOL_BUFFER_MIN_BYTES {
        let found = POOL.with(|p| {
            let mut p = p.borrow_mut();
            let i = p.iter().position(|b| b.capacity() >= capacity)?;
            Some(p.swap_remove(i))
        });
        if let Some(mut buf) = found {
            buf.clear();
            return buf;
        }
    }
    Vec::with_capacity(capacity)
}

/// Give a sent frame's buffer back for reuse by this thread.
pub fn recycle(buf: Vec<u8>) {
    if !(POOL_BUFFER_MIN_BYTES..=POOL_BUFFER_MAX_BYTES).contains(&buf.capacity()) {
        return;
    }
    POOL.with(|p| {
        let mut p = p.borrow_mut();
        if p.len() < POOL_BUFFERS_MAX {
            p.push(buf);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_buffers_are_reused_small_ones_not() {
        let big = Vec::<u8>::with_capacity(1 << 20);
        let addr = big.as_ptr();
        recycle(big);
        let again = FrameBuilder::with_capacity(false, 1 << 19);
        assert_eq!(again.buf.as_ptr(), addr, "the recycled buffer comes back");
        assert_eq!(again.buf.len(), FRAME_HEADER_BYTES);
        recycle(Vec::with_capacity(100));
        assert!(POOL.with(|p| p
            .borrow()
            .iter()
            .all(|b| b.capacity() >= POOL_BUFFER_MIN_BYTES)));
    }
}
