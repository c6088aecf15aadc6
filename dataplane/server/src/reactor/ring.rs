//! The io_uring event loop of one reactor. All `unsafe` of the data plane's socket I/O is here.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use io_uring::{cqueue, opcode, squeue, types, IoUring};
use rand::RngCore;
use smb3d_protocol::framing::{parse_frame_header, Frame, FRAME_HEADER_BYTES};
use tracing::{debug, info, warn};

use super::{tcp, ReactorSpec};
use crate::connection::{Connection, Environment, FileIo};
use crate::mailbox::{ConnHandle, MailboxReceiver, ReactorMsg};
use crate::server::{ServerState, Timeouts};

const RING_ENTRIES: u32 = 1024;
/// Most bytes asked for per RECV when no large PDU is pending: many pipelined small requests.
const RECV_CHUNK_BYTES: usize = 64 * 1024;
/// Fewest bytes asked for per RECV, and the receive buffer of a new connection. A RECV that
/// fills its buffer doubles the next one (up to [`RECV_CHUNK_BYTES`], once a session exists);
/// one that gets less than a quarter halves it, and the buffer shrinks when empty. So a peer
/// that connects and sends nothing, or a quiet client, costs a 4 KiB buffer, not 64 KiB.
const MIN_RECV_CHUNK_BYTES: usize = 4 * 1024;
/// Frames queued for sending per connection before the connection stops reading.
const MAX_QUEUED_FRAMES: usize = 512;
/// Bytes queued for sending (not yet taken by the kernel) per connection before it stops
/// reading: 512 frames of 8 MiB READ responses would otherwise hold 4 GiB for a client that
/// sends requests but never reads its socket.
const MAX_UNSENT_BYTES: u64 = 64 * 1024 * 1024;
/// Connections one reactor serves at most; further accepts are closed at once.
const MAX_CONNECTIONS: usize = 16 * 1024;
/// Rounds of a connection's own messages applied right after one of its requests.
const OWN_MESSAGE_ROUNDS: usize = 4;
/// Period of the housekeeping tick (blocked-request retries, shutdown check).
const TICK_NS: u32 = 50_000_000;
/// How often the connection timeouts (login, partial PDU, idle) are checked.
const TIMEOUT_CHECK_PERIOD: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    Accept = 1,
    Recv = 2,
    Send = 3,
    Tick = 4,
    File = 5,
    Wake = 6,
    /// The socket has room again for a spliced READ's data.
    SendReady = 7,
}

/// user_data layout: op (8 bits) | slot or listener index (24 bits) | generation (32 bits).
fn user_data(op: Op, slot: usize, gen: u32) -> u64 {
    ((op as u64) << 56) | ((slot as u64 & 0xFF_FFFF) << 32) | gen as u64
}

fn decode_user_data(v: u64) -> (u8, usize, u32) {
    ((v >> 56) as u8, ((v >> 32) & 0xFF_FFFF) as usize, v as u32)
}

struct Conn {
    fd: OwnedFd,
    gen: u32,
    conn: Connection,
    /// Receive buffer; `rbuf[..rlen]` holds bytes not yet consumed. Never resized while a RECV is
    /// in flight.
    rbuf: Vec<u8>,
    rlen: usize,
    recv_inflight: bool,
    sendq: VecDeque<Outgoing>,
    /// Bytes of the front frame already sent.
    send_off: usize,
    send_inflight: bool,
    closing: bool,
    /// Given to another worker process: close our descriptor, but never shut the socket down.
    handed_off: bool,
    /// Bytes queued for sending, and bytes the kernel took, since the connection began.
    queued_bytes: u64,
    written_bytes: u64,
    /// Oplock and lease breaks sent here whose bytes the peer has not acknowledged yet.
    unacked_breaks: Vec<TrackedBreak>,
    /// Since when the connection has had no session (accepted, or its last session ended).
    sessionless_since: Option<Instant>,
    /// When bytes last arrived.
    last_recv_at: Instant,
    /// When the first bytes of the incomplete PDU at the front of `rbuf` arrived.
    partial_pdu_since: Option<Instant>,
    /// Bytes the next RECV asks for when no large PDU is pending (adapts to the traffic).
    recv_chunk: usize,
    /// Bytes the RECV in flight asked for.
    recv_asked: usize,
    /// How far the peer had acknowledged the stream at the last break check, and since when
    /// (a channel still draining a backlog keeps acknowledging: it is slow, not dead).
    acked_upto: u64,
    acked_progress_at: std::time::Instant,
}

/// An oplock or lease break in flight on a connection, watched until the peer's TCP stack acks
/// it (MS-SMB2 leaves detecting a dead channel to the server; this follows FIELD-NOTES).
struct TrackedBreak {
    frame: Vec<u8>,
    route: crate::oplock::BreakRoute,
    /// Stream position just after the break's last byte.
    end: u64,
    queued_at: std::time::Instant,
    /// How long the peer may acknowledge nothing while this break waits: `DeadPeer::break_silence_rtos`
    /// retransmission timeouts of the connection when the break was queued. (Read later, the
    /// RTO of a dead peer has backed off exponentially to the 1 s clamp.)
    silence_limit: std::time::Duration,
}

/// Forget breaks the peer's TCP stack has acknowledged; declare the channel dead when one has
/// waited too long, and send its breaks again on the next channel (`oplock::redeliver`).
fn check_breaks(c: &mut Conn, server: &ServerState) {
    let fd = c.fd.as_raw_fd();
    // smbtorture's FSCTL_SMBTORTURE_FORCE_UNACKED_TIMEOUT: this connection acknowledges nothing.
    let acked_upto = if c.conn.force_unacked() {
        0
    } else {
        tcp::unacked_bytes(fd).map_or(0, |outq| c.written_bytes.saturating_sub(outq))
    };
    let now = std::time::Instant::now();
    if acked_upto > c.acked_upto {
        c.acked_upto = acked_upto;
        c.acked_progress_at = now;
    }
    let before = c.unacked_breaks.len();
    c.unacked_breaks.retain(|b| b.end > acked_upto);
    let acked = (before - c.unacked_breaks.len()) as u64;
    server
        .break_stats
        .transport_acked
        .fetch_add(acked, std::sync::atomic::Ordering::Relaxed);
    let silent_since = |b: &TrackedBreak| b.queued_at.max(c.acked_progress_at);
    let Some(b) = c
        .unacked_breaks
        .iter()
        .find(|b| now.duration_since(silent_since(b)) >= b.silence_limit)
    else {
        return;
    };
    warn!(peer = %c.conn.peer, silent_ms = now.duration_since(silent_since(b)).as_millis() as u64, "break not acknowledged: channel declared dead");
    server
        .break_stats
        .channels_declared_dead
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    c.closing = true;
    if !tcp::abort(fd) {
        warn!(peer = %c.conn.peer, "cannot abort the dead channel with a RST: it ends with a FIN");
    }
    let _ = nix::sys::socket::shutdown(fd, nix::sys::socket::Shutdown::Both);
    for b in std::mem::take(&mut c.unacked_breaks) {
        crate::oplock::redeliver(server, &b.route, b.frame, c.conn.handle);
    }
}

impl Conn {
    /// Adapt the RECV size to what the last RECV got: `received` of `self.recv_asked` bytes.
    fn adapt_recv_chunk(&mut self, received: usize) {
        let ceiling = if self.conn.has_session() {
            RECV_CHUNK_BYTES
        } else {
            MIN_RECV_CHUNK_BYTES
        };
        if received >= self.recv_asked {
            self.recv_chunk = (self.recv_chunk * 2).min(ceiling);
        } else if received < self.recv_chunk / 4 {
            self.recv_chunk = (self.recv_chunk / 2).max(MIN_RECV_CHUNK_BYTES);
        }
    }

    /// Why this connection must be closed now, if one of its timeouts ran out.
    fn timed_out(&mut self, timeouts: &Timeouts, now: Instant) -> Option<&'static str> {
        if self.conn.has_session() {
            self.sessionless_since = None;
        } else {
            let since = *self.sessionless_since.get_or_insert(now);
            if now.duration_since(since) >= timeouts.login {
                return Some("no session within the login timeout");
            }
        }
        // A PDU stuck because we stopped reading (send backlog) is not the peer's delay.
        if let Some(since) = self.partial_pdu_since.filter(|_| self.recv_inflight) {
            if now.duration_since(since) >= timeouts.partial_pdu {
                return Some("partial PDU not completed within the partial-PDU timeout");
            }
        }
        let idle = self.conn.has_session()
            && !self.conn.has_opens()
            && !self.conn.has_waits()
            && self.partial_pdu_since.is_none()
            && self.sendq.is_empty();
        if let Some(limit) = timeouts.idle.filter(|_| idle) {
            if now.duration_since(self.last_recv_at) >= limit {
                return Some("idle without open files for the idle timeout");
            }
        }
        None
    }

    /// Whether so little waits to be sent that reading more requests is fine.
    fn send_backlog_allows_recv(&self) -> bool {
        backlog_allows_recv(
            self.sendq.len(),
            self.queued_bytes.saturating_sub(self.written_bytes),
        )
    }
}

fn backlog_allows_recv(queued_frames: usize, unsent_bytes: u64) -> bool {
    queued_frames < MAX_QUEUED_FRAMES && unsent_bytes < MAX_UNSENT_BYTES
}

/// A frame queued for sending, and for a spliced READ the file data that follows it.
struct Outgoing {
    frame: Vec<u8>,
    spliced: Option<SplicedData>,
}

/// A spliced READ's file data waiting in pipes (in order) for its frame to be sent, with the
/// bytes each still holds.
struct SplicedData {
    pipes: VecDeque<(Pipe, usize)>,
}

impl Outgoing {
    fn is_sent(&self, send_off: usize) -> bool {
        send_off >= self.frame.len() && self.spliced.as_ref().is_none_or(|s| s.pipes.is_empty())
    }
}

/// Queue frames for sending, keeping count of the bytes.
fn enqueue(c: &mut Conn, frames: impl IntoIterator<Item = Vec<u8>>) {
    for frame in frames {
        c.queued_bytes += frame.len() as u64;
        c.sendq.push_back(Outgoing {
            frame,
            spliced: None,
        });
    }
}

/// Queue a spliced READ's frame, to be followed by the data in `data`'s pipes.
fn enqueue_spliced(c: &mut Conn, frame: Vec<u8>, data: SplicedData) {
    let data_bytes: usize = data.pipes.iter().map(|(_, n)| n).sum();
    c.queued_bytes += (frame.len() + data_bytes) as u64;
    c.sendq.push_back(Outgoing {
        frame,
        spliced: Some(data),
    });
}

/// A pipe a spliced READ's data passes through: the page cache's pages go in by reference
/// and out to the socket the same way, never copied into user space.
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    capacity_bytes: usize,
}

/// Pipes one reactor thread has open at most (two descriptors each, against a soft limit of
/// often 1024 per process), idle or in use; a READ that finds too few is read into its frame.
const PIPES_MAX: usize = 64;

/// Bytes one pipe carries of a spliced READ: the default /proc/sys/fs/pipe-max-size, the most
/// a process without CAP_SYS_RESOURCE may give a pipe. Larger READs use one pipe per chunk.
const PIPE_CHUNK_BYTES: usize = 1024 * 1024;

thread_local! {
    /// Pipes open on this reactor thread.
    static PIPES_OPEN: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl Pipe {
    fn new() -> Option<Pipe> {
        if PIPES_OPEN.get() >= PIPES_MAX {
            return None;
        }
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ok()?;
        PIPES_OPEN.set(PIPES_OPEN.get() + 1);
        Some(Pipe {
            read,
            write,
            capacity_bytes: 0,
        })
    }

    /// Make room for `len_bytes`; false when the kernel refuses (the unprivileged pipe size
    /// limits, /proc/sys/fs/pipe-max-size and pipe-user-pages-*).
    fn grow(&mut self, len_bytes: usize) -> bool {
        let Ok(size) = i32::try_from(len_bytes) else {
            return false;
        };
        match nix::fcntl::fcntl(self.write.as_raw_fd(), nix::fcntl::F_SETPIPE_SZ(size)) {
            Ok(got) if got as usize >= len_bytes => {
                self.capacity_bytes = got as usize;
                true
            }
            _ => false,
        }
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        PIPES_OPEN.set(PIPES_OPEN.get().saturating_sub(1));
    }
}

/// A reactor's empty pipes, kept for the next spliced READ while READs keep coming.
#[derive(Default)]
struct PipePool {
    idle: Vec<Pipe>,
    /// Whether a pipe was taken since the last housekeeping tick.
    used: bool,
}

impl PipePool {
    /// Empty pipes for a READ of `len_bytes`, one per [`PIPE_CHUNK_BYTES`], or `None` (too
    /// many open, or the kernel refuses).
    fn take_for(&mut self, len_bytes: usize) -> Option<Vec<Pipe>> {
        let mut pipes = Vec::with_capacity(len_bytes.div_ceil(PIPE_CHUNK_BYTES));
        for at in (0..len_bytes).step_by(PIPE_CHUNK_BYTES) {
            match self.take(PIPE_CHUNK_BYTES.min(len_bytes - at)) {
                Some(p) => pipes.push(p),
                None => {
                    self.idle.append(&mut pipes);
                    return None;
                }
            }
        }
        Some(pipes)
    }

    fn take(&mut self, len_bytes: usize) -> Option<Pipe> {
        self.used = true;
        let mut pipe = match self.idle.pop() {
            Some(p) => p,
            None => Pipe::new()?,
        };
        if pipe.capacity_bytes < len_bytes && !pipe.grow(len_bytes) {
            self.idle.push(pipe);
            return None;
        }
        Some(pipe)
    }

    /// Close the idle pipes when none was taken for a whole tick: an idle server holds none.
    fn trim(&mut self) {
        if !std::mem::take(&mut self.used) {
            self.idle.clear();
        }
    }

    /// Take back a pipe: kept when empty, closed when data is left in it.
    fn give_back(&mut self, pipe: Pipe, empty: bool) {
        if empty {
            self.idle.push(pipe);
        }
    }
}

/// File I/O in flight on the ring, owned here until its completion: the READ's response frame, or
/// the receive buffer a WRITE's payload sits in.
struct FileIoSlot {
    conn_slot: usize,
    conn_gen: u32,
    io: FileIo,
    /// For a WRITE: the buffer holding the PDU and where the PDU starts in it.
    pdu_buffer: Option<(Vec<u8>, usize)>,
    /// For a spliced READ: the pipes the file data goes into.
    splice: Option<SpliceChunks>,
}

/// A spliced READ in flight: chunk `i` of the range (at `i` × [`PIPE_CHUNK_BYTES`]) goes into
/// pipe `i` with its own SQE.
struct SpliceChunks {
    pipes: Vec<Pipe>,
    /// Each chunk's completion result (bytes, or -errno) once it arrived.
    results: Vec<Option<i32>>,
}

impl SpliceChunks {
    fn new(pipes: Vec<Pipe>) -> SpliceChunks {
        SpliceChunks {
            results: vec![None; pipes.len()],
            pipes,
        }
    }

    fn all_done(&self) -> bool {
        self.results.iter().all(Option::is_some)
    }

    /// The bytes read as one contiguous run from the start: up to and including the first short
    /// chunk, or up to a failed one (as a short read); the errno when the first chunk failed.
    fn bytes_read(&self, len_bytes: usize) -> Result<usize, i32> {
        let mut total = 0;
        for (i, r) in self.results.iter().enumerate() {
            let want = PIPE_CHUNK_BYTES.min(len_bytes - i * PIPE_CHUNK_BYTES);
            match r.unwrap_or(0) {
                e if e < 0 && i == 0 => return Err(-e),
                n if n >= 0 => {
                    total += n as usize;
                    if (n as usize) < want {
                        break;
                    }
                }
                _ => break,
            }
        }
        Ok(total)
    }

    /// Split the pipes into those carrying the first `data_bytes` (in order, with their bytes)
    /// and give the others back to `pool` (closed if anything is left in them).
    fn into_data(self, data_bytes: usize, pool: &mut PipePool) -> SplicedData {
        let mut left = data_bytes;
        let mut pipes = VecDeque::new();
        for (pipe, r) in self.pipes.into_iter().zip(self.results) {
            let in_pipe = r.map_or(0, |n| n.max(0) as usize);
            if left > 0 && in_pipe > 0 {
                debug_assert!(in_pipe <= left);
                left -= in_pipe;
                pipes.push_back((pipe, in_pipe));
            } else {
                pool.give_back(pipe, in_pipe == 0);
            }
        }
        SplicedData { pipes }
    }
}

/// File I/O produced by handling received PDUs, waiting to be submitted.
type NewFileIo = (FileIo, Option<(Vec<u8>, usize)>);

struct ReactorEnv;

impl Environment for ReactorEnv {
    fn now_filetime(&self) -> u64 {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        // FILETIME: 100 ns units since 1601-01-01.
        (d.as_secs() + 11_644_473_600) * 10_000_000 + u64::from(d.subsec_nanos() / 100)
    }

    fn random_bytes(&mut self, out: &mut [u8]) {
        rand::thread_rng().fill_bytes(out);
    }
}

pub fn run(
    server: Arc<ServerState>,
    spec: ReactorSpec,
    mailbox: MailboxReceiver,
    shutdown: Arc<AtomicBool>,
) -> std::io::Result<()> {
    // Declaration order is drop order in reverse: the ring goes first, so the kernel has
    // cancelled every operation before the buffers those operations point at are freed.
    let listeners: Vec<(SocketAddr, OwnedFd)> = spec.listeners;
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut file_ios: Vec<Option<FileIoSlot>> = Vec::new();
    let mut pipes = PipePool::default();
    let tick = types::Timespec::new().nsec(TICK_NS);
    let mut wake_buf = [0u8; 8];
    let mut ring: IoUring = IoUring::builder().build(RING_ENTRIES)?;
    let mut free: Vec<usize> = Vec::new();
    let mut free_ios: Vec<usize> = Vec::new();
    let mut new_ios: Vec<NewFileIo> = Vec::new();
    let mut next_gen: u32 = 1;
    let mut env = ReactorEnv;
    let mut timeouts_checked_at = Instant::now();

    for (i, (addr, fd)) in listeners.iter().enumerate() {
        push(
            &mut ring,
            opcode::AcceptMulti::new(types::Fd(fd.as_raw_fd()))
                .build()
                .user_data(user_data(Op::Accept, i, 0)),
        )?;
        info!(reactor = spec.index, %addr, "listening");
    }
    push(
        &mut ring,
        opcode::Timeout::new(&tick)
            .build()
            .user_data(user_data(Op::Tick, 0, 0)),
    )?;

    arm_wake(&mut ring, &mailbox, &mut wake_buf)?;
    crate::mailbox::run_own_queue(spec.index as u16);

    let mut completions: Vec<(u64, i32, u32)> = Vec::with_capacity(RING_ENTRIES as usize);
    loop {
        // What this thread posted to its own connections goes out before it waits (applying
        // it may post more: then it only looks for completions and comes back).
        let mut own = crate::mailbox::take_own();
        for _ in 0..OWN_MESSAGE_ROUNDS {
            for msg in own {
                deliver_msg(&mut ring, &mut conns, msg, &server, &mut env, &mut pipes)?;
            }
            own = crate::mailbox::take_own();
        }
        if own.is_empty() {
            ring.submit_and_wait(1)?;
        } else {
            for msg in own {
                deliver_msg(&mut ring, &mut conns, msg, &server, &mut env, &mut pipes)?;
            }
            ring.submit()?;
        }
        completions.clear();
        completions.extend(
            ring.completion()
                .map(|c| (c.user_data(), c.result(), c.flags())),
        );
        for &(ud, res, cflags) in &completions {
            let (op, slot, gen) = decode_user_data(ud);
            match op {
                x if x == Op::Accept as u8 => {
                    if res >= 0 {
                        // SAFETY: a successful accept CQE carries a new descriptor owned by nobody else.
                        let fd = unsafe { OwnedFd::from_raw_fd(res) };
                        let Some(idx) = add_connection(
                            &mut conns,
                            &mut free,
                            &mut next_gen,
                            &server,
                            spec.index,
                            fd,
                        ) else {
                            continue;
                        };
                        if let Some(c) = conns[idx].as_mut() {
                            arm_recv(&mut ring, c, idx)?;
                        }
                    } else {
                        warn!(error = %std::io::Error::from_raw_os_error(-res), "accept failed");
                    }
                    if !cqueue::more(cflags) && !shutdown.load(Ordering::Relaxed) {
                        if let Some((_, fd)) = listeners.get(slot) {
                            push(
                                &mut ring,
                                opcode::AcceptMulti::new(types::Fd(fd.as_raw_fd()))
                                    .build()
                                    .user_data(ud),
                            )?;
                        }
                    }
                }
                x if x == Op::Recv as u8 => {
                    let Some(c) = live_conn(&mut conns, slot, gen) else {
                        continue;
                    };
                    c.recv_inflight = false;
                    if res <= 0 || c.closing {
                        if res < 0 && res != -libc::ECONNRESET {
                            // Rare (a reset is the usual way a peer leaves): worth a line
                            // at the default level, as it ends the connection.
                            info!(peer = %c.conn.peer, error = %std::io::Error::from_raw_os_error(-res), "recv failed; closing");
                        }
                        c.closing = true;
                    } else {
                        c.rlen += res as usize;
                        c.last_recv_at = Instant::now();
                        c.adapt_recv_chunk(res as usize);
                        on_received(c, &server, &mut env, &mut new_ios);
                        if !c.closing && c.send_backlog_allows_recv() {
                            arm_recv(&mut ring, c, slot)?;
                        }
                    }
                    arm_send(&mut ring, c, slot, &mut pipes)?;
                    submit_new_ios(
                        &mut ring,
                        &mut file_ios,
                        &mut free_ios,
                        &mut pipes,
                        &mut new_ios,
                        slot,
                        gen,
                    )?;
                }
                x if x == Op::Send as u8 => {
                    let Some(c) = live_conn(&mut conns, slot, gen) else {
                        continue;
                    };
                    c.send_inflight = false;
                    if res < 0 {
                        if !c.closing && res != -libc::ECONNRESET && res != -libc::EPIPE {
                            info!(peer = %c.conn.peer, error = %std::io::Error::from_raw_os_error(-res), "send failed; closing");
                        }
                        c.closing = true;
                    } else {
                        note_sent(c, res as usize, &mut pipes);
                        if !c.recv_inflight && !c.closing && c.send_backlog_allows_recv() {
                            arm_recv(&mut ring, c, slot)?;
                        }
                    }
                    arm_send(&mut ring, c, slot, &mut pipes)?;
                }
                x if x == Op::SendReady as u8 => {
                    let Some(c) = live_conn(&mut conns, slot, gen) else {
                        continue;
                    };
                    c.send_inflight = false;
                    c.closing |= res < 0;
                    arm_send(&mut ring, c, slot, &mut pipes)?;
                    if !c.recv_inflight && !c.closing && c.send_backlog_allows_recv() {
                        arm_recv(&mut ring, c, slot)?;
                    }
                }
                x if x == Op::File as u8 => {
                    let Some(entry) = file_ios.get_mut(slot).and_then(|e| e.as_mut()) else {
                        continue;
                    };
                    if let Some(chunks) = entry.splice.as_mut() {
                        // gen is the chunk's index for a spliced READ.
                        if let Some(r) = chunks.results.get_mut(gen as usize) {
                            *r = Some(res);
                        }
                        if !chunks.all_done() {
                            continue;
                        }
                    }
                    let Some(mut done) = file_ios[slot].take() else {
                        continue;
                    };
                    free_ios.push(slot);
                    let splice_result = match (&done.io, &done.splice) {
                        (FileIo::Read(r), Some(chunks)) => {
                            Some(chunks.bytes_read(r.length() as usize))
                        }
                        _ => None,
                    };
                    if splice_result == Some(Err(libc::EINVAL)) {
                        if let (FileIo::Read(r), Some(chunks)) = (&mut done.io, done.splice.take())
                        {
                            // The file system cannot splice: read this one into the frame.
                            r.copy_instead();
                            chunks.into_data(0, &mut pipes);
                            submit_file_io(
                                &mut ring,
                                &mut file_ios,
                                &mut free_ios,
                                &mut pipes,
                                done,
                            )?;
                            continue;
                        }
                    }
                    let result = match splice_result.unwrap_or(if res >= 0 {
                        Ok(res as usize)
                    } else {
                        Err(-res)
                    }) {
                        Ok(n) => Ok(n),
                        Err(errno) => Err(smb3d_protocol::NtStatus::from_errno(errno)),
                    };
                    let (frame, spliced) = match (done.io, done.splice) {
                        (FileIo::Read(r), Some(chunks)) => {
                            let (frame, data_bytes) = r.complete_spliced(result);
                            let data = chunks.into_data(data_bytes, &mut pipes);
                            (frame, Some(data).filter(|d| !d.pipes.is_empty()))
                        }
                        (FileIo::Read(mut r), None) => {
                            if let Ok(n) = result {
                                // SAFETY: the READ completed with n bytes written into the slot
                                // data_slot() gave it, which stayed untouched until now.
                                unsafe { r.assume_read(n) };
                            }
                            (r.complete(result), None)
                        }
                        (FileIo::Write(w), _) => (w.complete(result), None),
                    };
                    drop(done.pdu_buffer);
                    let Some(c) = live_conn(&mut conns, done.conn_slot, done.conn_gen) else {
                        continue;
                    };
                    if !c.closing {
                        match spliced {
                            Some(data) => enqueue_spliced(c, frame, data),
                            None => enqueue(c, [frame]),
                        }
                        arm_send(&mut ring, c, done.conn_slot, &mut pipes)?;
                    }
                    continue;
                }
                x if x == Op::Wake as u8 => {
                    // Bounded: at most what the mailbox held when woken.
                    for _ in 0..crate::mailbox::MAILBOX_CAPACITY {
                        let Ok(msg) = mailbox.rx.try_recv() else {
                            break;
                        };
                        match msg {
                            ReactorMsg::Adopt { adoption, .. } => {
                                // A connection handed over by another worker: the request that
                                // moved it (a NEGOTIATE, or a bind of a session of ours) is
                                // already in hand and runs now, as if just received.
                                let Some(idx) = add_connection(
                                    &mut conns,
                                    &mut free,
                                    &mut next_gen,
                                    &server,
                                    spec.index,
                                    adoption.fd,
                                ) else {
                                    continue;
                                };
                                let Some(c) = conns[idx].as_mut() else {
                                    continue;
                                };
                                if let Err(why) = c.conn.adopt(adoption.state) {
                                    warn!(peer = %c.conn.peer, reason = %why.0, "handed-over connection refused");
                                    // Nothing is in flight on it yet: closing is dropping it.
                                    conns[idx] = None;
                                    free.push(idx);
                                    continue;
                                }
                                let n = adoption.bytes.len();
                                if c.rbuf.len() < n {
                                    c.rbuf.resize(n, 0);
                                }
                                c.rbuf[..n].copy_from_slice(&adoption.bytes);
                                c.rlen = n;
                                let gen = c.gen;
                                on_received(c, &server, &mut env, &mut new_ios);
                                arm_recv(&mut ring, c, idx)?;
                                arm_send(&mut ring, c, idx, &mut pipes)?;
                                if c.closing && !c.recv_inflight && !c.send_inflight {
                                    // Refused at once with nothing to send: no completion
                                    // will come to reap it, so it goes now.
                                    c.conn.teardown();
                                    conns[idx] = None;
                                    free.push(idx);
                                    continue;
                                }
                                debug!(peer = %c.conn.peer, reactor = spec.index, "handed-over connection adopted");
                                submit_new_ios(
                                    &mut ring,
                                    &mut file_ios,
                                    &mut free_ios,
                                    &mut pipes,
                                    &mut new_ios,
                                    idx,
                                    gen,
                                )?;
                            }
                            other => deliver_msg(
                                &mut ring, &mut conns, other, &server, &mut env, &mut pipes,
                            )?,
                        }
                    }
                    arm_wake(&mut ring, &mailbox, &mut wake_buf)?;
                    continue;
                }
                x if x == Op::Tick as u8 => {
                    if timeouts_checked_at.elapsed() >= TIMEOUT_CHECK_PERIOD {
                        timeouts_checked_at = Instant::now();
                        close_timed_out(&mut conns, &server.config.timeouts);
                    }
                    pipes.trim();
                    for (idx, c) in conns.iter_mut().enumerate() {
                        let Some(c) = c.as_mut() else { continue };
                        if c.conn.has_waits() && !c.closing {
                            poll_waits(c, &mut env);
                            arm_send(&mut ring, c, idx, &mut pipes)?;
                        }
                        if !c.unacked_breaks.is_empty() && !c.closing {
                            check_breaks(c, &server);
                        }
                    }
                    if spec.index == 0 {
                        crate::durable::expire(&server);
                    }
                    if shutdown.load(Ordering::Relaxed) {
                        for c in conns.iter_mut().flatten() {
                            c.conn.teardown();
                        }
                        info!(reactor = spec.index, "stopped");
                        return Ok(());
                    }
                    push(
                        &mut ring,
                        opcode::Timeout::new(&tick)
                            .build()
                            .user_data(user_data(Op::Tick, 0, 0)),
                    )?;
                }
                _ => {}
            }
            // Reap connections that are closing and have nothing in flight.
            let conn_op = [Op::Recv, Op::Send, Op::SendReady].map(|o| o as u8);
            if conn_op.contains(&op) && slot < conns.len() {
                let done = conns[slot].as_ref().is_some_and(|c| {
                    c.gen == gen && c.closing && !c.recv_inflight && !c.send_inflight
                });
                if done {
                    if let Some(mut c) = conns[slot].take() {
                        debug!(peer = %c.conn.peer, "connection closed");
                        // Breaks the peer never acknowledged go to the next channel, as when a
                        // channel is declared dead (`check_breaks`).
                        for b in std::mem::take(&mut c.unacked_breaks) {
                            crate::oplock::redeliver(&server, &b.route, b.frame, c.conn.handle);
                        }
                        c.conn.teardown();
                        free.push(slot);
                    }
                } else if let Some(c) = conns[slot]
                    .as_ref()
                    .filter(|c| c.gen == gen && c.closing && !c.handed_off)
                {
                    // Wake any operation still in flight so the slot can be reaped.
                    let _ = nix::sys::socket::shutdown(
                        c.fd.as_raw_fd(),
                        nix::sys::socket::Shutdown::Both,
                    );
                }
            }
        }
    }
}

/// The connection in `slot` if it is still the one of generation `gen` (a completion or message
/// for a connection that has since closed finds nothing).
fn live_conn(conns: &mut [Option<Conn>], slot: usize, gen: u32) -> Option<&mut Conn> {
    conns
        .get_mut(slot)
        .and_then(|c| c.as_mut())
        .filter(|c| c.gen == gen)
}

/// Register a new connection (accepted here, or handed over) in a free slot; `None` (the
/// descriptor closed) when the reactor already holds `MAX_CONNECTIONS`.
fn add_connection(
    conns: &mut Vec<Option<Conn>>,
    free: &mut Vec<usize>,
    next_gen: &mut u32,
    server: &Arc<ServerState>,
    reactor: usize,
    fd: OwnedFd,
) -> Option<usize> {
    if conns.len() - free.len() >= MAX_CONNECTIONS {
        warn!(reactor, "connection limit reached; refusing a connection");
        return None;
    }
    tcp::configure_connection(&fd, &server.config.dead_peer);
    // Non-blocking for the splices on this thread (io_uring's own operations do not mind).
    let flags = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::F_GETFL)
        .map(nix::fcntl::OFlag::from_bits_truncate)
        .unwrap_or(nix::fcntl::OFlag::O_RDWR);
    let _ = nix::fcntl::fcntl(
        fd.as_raw_fd(),
        nix::fcntl::F_SETFL(flags | nix::fcntl::OFlag::O_NONBLOCK),
    );
    let peer = nix::sys::socket::getpeername::<nix::sys::socket::SockaddrStorage>(fd.as_raw_fd())
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "?".into());
    debug!(%peer, reactor, "connection");
    let idx = free.pop().unwrap_or_else(|| {
        conns.push(None);
        conns.len() - 1
    });
    let gen = *next_gen;
    *next_gen = next_gen.wrapping_add(1).max(1);
    let handle = ConnHandle {
        reactor: reactor as u16,
        slot: idx as u32,
        gen,
    };
    conns[idx] = Some(Conn {
        fd,
        gen,
        conn: Connection::new(server.clone(), peer, handle),
        rbuf: vec![0u8; MIN_RECV_CHUNK_BYTES],
        rlen: 0,
        recv_inflight: false,
        sendq: VecDeque::new(),
        send_off: 0,
        send_inflight: false,
        closing: false,
        handed_off: false,
        queued_bytes: 0,
        written_bytes: 0,
        unacked_breaks: Vec::new(),
        sessionless_since: Some(Instant::now()),
        last_recv_at: Instant::now(),
        partial_pdu_since: None,
        recv_chunk: MIN_RECV_CHUNK_BYTES,
        recv_asked: 0,
        acked_upto: 0,
        acked_progress_at: std::time::Instant::now(),
    });
    Some(idx)
}

/// Close the connections whose login, partial-PDU or idle timeout ran out: shutting the socket
/// down ends their RECV, and the connection is reaped as any closed one.
fn close_timed_out(conns: &mut [Option<Conn>], timeouts: &Timeouts) {
    let now = Instant::now();
    for c in conns.iter_mut().flatten() {
        if c.closing {
            continue;
        }
        if let Some(why) = c.timed_out(timeouts, now) {
            warn!(peer = %c.conn.peer, reason = why, "closing connection: timeout");
            c.closing = true;
            let _ = nix::sys::socket::shutdown(c.fd.as_raw_fd(), nix::sys::socket::Shutdown::Both);
        }
    }
}

/// Apply a message for one of this reactor's connections (not an adoption) and send what it
/// queued.
fn deliver_msg(
    ring: &mut IoUring,
    conns: &mut [Option<Conn>],
    msg: ReactorMsg,
    server: &ServerState,
    env: &mut ReactorEnv,
    pipes: &mut PipePool,
) -> std::io::Result<()> {
    let Some(to) = msg.target() else {
        return Ok(());
    };
    let idx = to.slot as usize;
    let Some(c) = live_conn(conns, idx, to.gen) else {
        // The connection is gone: a break for it goes to the next channel, never nowhere.
        if let ReactorMsg::Break { frame, route, .. } = msg {
            crate::oplock::redeliver(server, &route, frame, to);
        }
        return Ok(());
    };
    apply_msg(c, msg, server, env);
    arm_send(ring, c, idx, pipes)
}

/// Queue what a message for connection `c` asks: a frame, a break to watch, or a retry of the
/// parked requests. A closing connection takes nothing; its breaks go on to the next channel.
fn apply_msg(c: &mut Conn, msg: ReactorMsg, server: &ServerState, env: &mut ReactorEnv) {
    if c.closing {
        // A closing channel is not watched any more (`check_breaks`): a break sent there would
        // be lost, so it goes to the next channel.
        if let ReactorMsg::Break { frame, route, .. } = msg {
            crate::oplock::redeliver(server, &route, frame, c.conn.handle);
        }
        return;
    }
    match msg {
        ReactorMsg::Send { frame, .. } => enqueue(c, [frame]),
        ReactorMsg::Break { frame, route, .. } => {
            let end = c.queued_bytes + frame.len() as u64;
            let silence_limit = tcp::dead_after(
                tcp::rto(c.fd.as_raw_fd()),
                server.config.dead_peer.break_silence_rtos,
            );
            c.unacked_breaks.push(TrackedBreak {
                frame: frame.clone(),
                route,
                end,
                queued_at: std::time::Instant::now(),
                silence_limit,
            });
            enqueue(c, [frame]);
        }
        ReactorMsg::Kick { .. } => poll_waits(c, env),
        ReactorMsg::Adopt { .. } => {}
    }
}

/// Apply what this thread posted to connection `c` while handling its last request (a retry
/// of its parked requests may post more; a few rounds settle it, the rest waits for the loop).
fn take_own_messages(c: &mut Conn, server: &ServerState, env: &mut ReactorEnv) {
    for _ in 0..OWN_MESSAGE_ROUNDS {
        let msgs = crate::mailbox::take_own_for(c.conn.handle);
        if msgs.is_empty() {
            return;
        }
        for msg in msgs {
            apply_msg(c, msg, server, env);
        }
    }
}

/// Re-run a connection's parked requests; queue what they answer.
fn poll_waits(c: &mut Conn, env: &mut ReactorEnv) {
    let mut out = Vec::new();
    let result = c.conn.poll_waits(env, &mut out);
    enqueue(c, out);
    if let Err(why) = result {
        warn!(peer = %c.conn.peer, reason = %why.0, "closing connection");
        c.closing = true;
    }
}

/// Read the mailbox's eventfd; the completion means messages are waiting.
fn arm_wake(
    ring: &mut IoUring,
    mailbox: &MailboxReceiver,
    buf: &mut [u8; 8],
) -> std::io::Result<()> {
    let entry = opcode::Read::new(types::Fd(mailbox.wake_fd()), buf.as_mut_ptr(), 8)
        .build()
        .user_data(user_data(Op::Wake, 0, 0));
    push(ring, entry)
}

/// Submit the file I/O that handling a connection's PDUs produced.
fn submit_new_ios(
    ring: &mut IoUring,
    file_ios: &mut Vec<Option<FileIoSlot>>,
    free_ios: &mut Vec<usize>,
    pipes: &mut PipePool,
    new_ios: &mut Vec<NewFileIo>,
    conn_slot: usize,
    conn_gen: u32,
) -> std::io::Result<()> {
    for (io, pdu_buffer) in new_ios.drain(..) {
        submit_file_io(
            ring,
            file_ios,
            free_ios,
            pipes,
            FileIoSlot {
                conn_slot,
                conn_gen,
                io,
                pdu_buffer,
                splice: None,
            },
        )?;
    }
    Ok(())
}

/// Queue one file I/O on the ring; its slot owns every buffer and pipe the kernel will touch.
/// A READ that wants splicing goes from the file into pipes when the pool has enough.
fn submit_file_io(
    ring: &mut IoUring,
    file_ios: &mut Vec<Option<FileIoSlot>>,
    free_ios: &mut Vec<usize>,
    pipes: &mut PipePool,
    mut entry: FileIoSlot,
) -> std::io::Result<()> {
    if let FileIo::Read(r) = &mut entry.io {
        if r.wants_splice() && entry.splice.is_none() {
            entry.splice = pipes.take_for(r.length() as usize).map(SpliceChunks::new);
            if entry.splice.is_none() {
                r.copy_instead();
            }
        }
    }
    let idx = match free_ios.pop() {
        Some(i) => i,
        None => {
            file_ios.push(None);
            file_ios.len() - 1
        }
    };
    let slot = file_ios[idx].insert(entry);
    let sqe = match (&mut slot.io, &slot.pdu_buffer, &slot.splice) {
        (FileIo::Read(r), _, Some(chunks)) => {
            let (fd, offset, len) = (r.fd(), r.offset(), r.length() as usize);
            for (i, pipe) in chunks.pipes.iter().enumerate() {
                let at = i * PIPE_CHUNK_BYTES;
                let chunk_offset = i64::try_from(offset + at as u64).unwrap_or(i64::MAX);
                let chunk_len = PIPE_CHUNK_BYTES.min(len - at) as u32;
                let sqe = opcode::Splice::new(
                    types::Fd(fd),
                    chunk_offset,
                    types::Fd(pipe.write.as_raw_fd()),
                    -1,
                    chunk_len,
                )
                .build()
                .user_data(user_data(Op::File, idx, i as u32));
                push(ring, sqe)?;
            }
            return Ok(());
        }
        (FileIo::Read(r), _, None) => {
            let (fd, offset) = (r.fd(), r.offset());
            let (data, len) = r.data_slot();
            opcode::Read::new(types::Fd(fd), data, len)
                .offset(offset)
                .build()
        }
        (FileIo::Write(w), Some((buf, pdu_start)), _) => {
            let range = w.data_range();
            let data = &buf[pdu_start + range.start..pdu_start + range.end];
            opcode::Write::new(types::Fd(w.fd()), data.as_ptr(), data.len() as u32)
                .offset(w.offset())
                .build()
        }
        (FileIo::Write(_), None, _) => unreachable!("a WRITE always travels with its PDU buffer"),
    };
    push(ring, sqe.user_data(user_data(Op::File, idx, 0)))
}

/// Consume every complete PDU in the receive buffer.
fn on_received(
    c: &mut Conn,
    server: &ServerState,
    env: &mut ReactorEnv,
    new_ios: &mut Vec<NewFileIo>,
) {
    let mut pos = 0;
    while !c.closing {
        let avail = &c.rbuf[pos..c.rlen];
        match parse_frame_header(avail, c.conn.max_pdu_bytes()) {
            Frame::NeedMore => break,
            Frame::Invalid { len } => {
                warn!(peer = %c.conn.peer, len, "invalid transport header or oversized PDU; closing");
                c.closing = true;
            }
            Frame::Pdu { len } => {
                if avail.len() < FRAME_HEADER_BYTES + len {
                    break;
                }
                let start = pos + FRAME_HEADER_BYTES;
                let mut out = Vec::new();
                let result = c
                    .conn
                    .handle_pdu(&mut c.rbuf[start..start + len], env, &mut out);
                enqueue(c, out);
                if let Err(why) = result {
                    warn!(peer = %c.conn.peer, reason = %why.0, "closing connection");
                    c.closing = true;
                }
                // Breaks this request caused on this very connection go before the responses
                // to the requests after it.
                take_own_messages(c, server, env);
                if let Some(owner) = c.conn.take_hand_off() {
                    // This client or session belongs to another worker: give it the socket and
                    // the bytes read so far (this request and anything after it), then let go.
                    // Everything answered before must have left: the owner writes next.
                    if !c.sendq.is_empty() || c.send_inflight {
                        warn!(peer = %c.conn.peer, owner, "handoff with responses still unsent; closing");
                        c.closing = true;
                        return;
                    }
                    match c.conn.hand_off(owner, c.fd.as_fd(), &c.rbuf[pos..c.rlen]) {
                        Ok(()) => {
                            debug!(peer = %c.conn.peer, owner, "connection handed to its owning worker");
                            c.handed_off = true
                        }
                        Err(e) => {
                            warn!(peer = %c.conn.peer, owner, error = %e, "handoff failed; closing")
                        }
                    }
                    c.closing = true;
                    return;
                }
                pos = start + len;
                for io in c.conn.take_file_io() {
                    match io {
                        FileIo::Read(_) => new_ios.push((io, None)),
                        FileIo::Write(_) => {
                            // The payload is written from this buffer: hand it to the I/O and
                            // carry on with a new one holding whatever follows this PDU.
                            let mut rest = vec![0u8; (c.rlen - pos).max(c.recv_chunk)];
                            rest[..c.rlen - pos].copy_from_slice(&c.rbuf[pos..c.rlen]);
                            let pdu_buffer = std::mem::replace(&mut c.rbuf, rest);
                            c.rlen -= pos;
                            pos = 0;
                            new_ios.push((io, Some((pdu_buffer, start))));
                        }
                    }
                }
            }
        }
    }
    // Keep the partial PDU at the front and size the buffer for the whole of it, so the rest is
    // received in place.
    c.rbuf.copy_within(pos..c.rlen, 0);
    c.rlen -= pos;
    if c.rlen == 0 {
        c.partial_pdu_since = None;
    } else if pos > 0 || c.partial_pdu_since.is_none() {
        // A PDU was completed and the next one begun, or the first bytes of one arrived.
        c.partial_pdu_since = Some(Instant::now());
    }
    let chunk = c.recv_chunk;
    let want = match parse_frame_header(&c.rbuf[..c.rlen], c.conn.max_pdu_bytes()) {
        Frame::Pdu { len } => {
            (FRAME_HEADER_BYTES + len).max(c.rlen + chunk.min(FRAME_HEADER_BYTES + len))
        }
        _ => c.rlen + chunk,
    };
    if c.rbuf.len() < want {
        c.rbuf.resize(want, 0);
    } else if c.rbuf.len() > 2 * want {
        // Give back the memory of a large PDU, or of a burst, once it is handled.
        c.rbuf.truncate(want);
        c.rbuf.shrink_to_fit();
    }
}

fn arm_recv(ring: &mut IoUring, c: &mut Conn, slot: usize) -> std::io::Result<()> {
    if c.recv_inflight || c.closing {
        return Ok(());
    }
    if c.rbuf.len() <= c.rlen {
        c.rbuf.resize(c.rlen + c.recv_chunk, 0);
    }
    let spare = &mut c.rbuf[c.rlen..];
    c.recv_asked = spare.len();
    let entry = opcode::Recv::new(
        types::Fd(c.fd.as_raw_fd()),
        spare.as_mut_ptr(),
        spare.len() as u32,
    )
    .build()
    .user_data(user_data(Op::Recv, slot, c.gen));
    push(ring, entry)?;
    c.recv_inflight = true;
    Ok(())
}

/// Send the front of the queue: a frame with an io_uring SEND; a spliced READ's data from its
/// pipes on this thread (the socket is non-blocking; io_uring would hand a SPLICE to a worker
/// thread), waiting for room with an io_uring POLL when the socket is full.
fn arm_send(
    ring: &mut IoUring,
    c: &mut Conn,
    slot: usize,
    pipes: &mut PipePool,
) -> std::io::Result<()> {
    loop {
        if c.send_inflight || c.closing && c.sendq.is_empty() {
            return Ok(());
        }
        let Some(front) = c.sendq.front() else {
            return Ok(());
        };
        let socket = types::Fd(c.fd.as_raw_fd());
        let data = front.spliced.as_ref();
        if let Some(data) = data.filter(|_| c.send_off >= front.frame.len()) {
            let Some((pipe, left)) = data.pipes.front() else {
                return Ok(());
            };
            let flags = nix::fcntl::SpliceFFlags::SPLICE_F_NONBLOCK;
            match nix::fcntl::splice(&pipe.read, None, &c.fd, None, *left, flags) {
                // A pipe with a writer never reads as empty: 0 is an error.
                Ok(0) => {
                    close_now(c);
                    return Ok(());
                }
                Ok(n) => note_sent(c, n, pipes),
                Err(nix::errno::Errno::EINTR) => {}
                Err(nix::errno::Errno::EAGAIN) => {
                    let entry = opcode::PollAdd::new(socket, libc::POLLOUT as u32)
                        .build()
                        .user_data(user_data(Op::SendReady, slot, c.gen));
                    push(ring, entry)?;
                    c.send_inflight = true;
                    return Ok(());
                }
                Err(e) => {
                    debug!(peer = %c.conn.peer, error = %e, "splice to socket failed");
                    close_now(c);
                    return Ok(());
                }
            }
            continue;
        }
        let bytes = &front.frame[c.send_off..];
        // Hold a spliced READ's headers back until its data joins them in the segment.
        let more = if data.is_some() { libc::MSG_MORE } else { 0 };
        let entry = opcode::Send::new(socket, bytes.as_ptr(), bytes.len() as u32)
            .flags(libc::MSG_NOSIGNAL | more)
            .build()
            .user_data(user_data(Op::Send, slot, c.gen));
        push(ring, entry)?;
        c.send_inflight = true;
        return Ok(());
    }
}

/// Close a connection whose socket failed outside a completion: shutting it down ends the
/// operations in flight, whose completions then free the slot.
fn close_now(c: &mut Conn) {
    c.closing = true;
    let _ = nix::sys::socket::shutdown(c.fd.as_raw_fd(), nix::sys::socket::Shutdown::Both);
}

/// Account for `n` bytes the socket took from the front of the queue; drop what is all sent.
fn note_sent(c: &mut Conn, n: usize, pipes: &mut PipePool) {
    c.written_bytes += n as u64;
    let Some(front) = c.sendq.front_mut() else {
        return;
    };
    if c.send_off < front.frame.len() {
        c.send_off += n;
    } else if let Some(data) = front.spliced.as_mut() {
        if let Some((_, left)) = data.pipes.front_mut() {
            *left = left.saturating_sub(n);
            if *left == 0 {
                if let Some((pipe, _)) = data.pipes.pop_front() {
                    pipes.give_back(pipe, true);
                }
            }
        }
    }
    if front.is_sent(c.send_off) {
        if let Some(sent) = c.sendq.pop_front() {
            crate::connection::recycle_frame(sent.frame);
        }
        c.send_off = 0;
    }
}

/// Queue one SQE, submitting first if the queue is full.
fn push(ring: &mut IoUring, entry: squeue::Entry) -> std::io::Result<()> {
    loop {
        // SAFETY: every buffer and descriptor an entry names stays alive and unmoved until its
        // completion: receive buffers are not resized while `recv_inflight`, queued frames (and
        // the pipe a spliced READ's data waits in) are not dropped while `send_inflight`, a file
        // I/O's slot owns its frame, PDU buffer, pipe and open until the I/O completes,
        // listeners and the tick timespec outlive the ring loop, and a connection slot is only
        // freed when neither operation is in flight.
        if unsafe { ring.submission().push(&entry) }.is_ok() {
            return Ok(());
        }
        ring.submit()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_stops_on_frame_count_or_unsent_bytes() {
        assert!(backlog_allows_recv(0, 0));
        assert!(backlog_allows_recv(
            MAX_QUEUED_FRAMES - 1,
            MAX_UNSENT_BYTES - 1
        ));
        assert!(!backlog_allows_recv(MAX_QUEUED_FRAMES, 0));
        // A handful of 8 MiB READ responses the client does not take is enough to stop reading.
        assert!(!backlog_allows_recv(8, 8 * 8 * 1024 * 1024));
    }

    fn chunks(results: &[i32]) -> SpliceChunks {
        SpliceChunks {
            pipes: Vec::new(),
            results: results.iter().map(|&r| Some(r)).collect(),
        }
    }

    #[test]
    fn a_spliced_read_is_the_contiguous_run_from_its_start() {
        let chunk = PIPE_CHUNK_BYTES;
        let full = chunk as i32;
        // Full chunks, then a short last one: the end of the file.
        assert_eq!(
            chunks(&[full, full, 100]).bytes_read(3 * chunk),
            Ok(2 * chunk + 100)
        );
        // The last chunk of a range that is not a multiple of the chunk size is full when
        // it has its own length.
        assert_eq!(
            chunks(&[full, 4096]).bytes_read(chunk + 4096),
            Ok(chunk + 4096)
        );
        // A short chunk ends the read, whatever a later one found (the file grew meanwhile).
        assert_eq!(chunks(&[100, full]).bytes_read(2 * chunk), Ok(100));
        // A later chunk failing makes a short read; the first failing is the read's error.
        assert_eq!(chunks(&[full, -libc::EIO]).bytes_read(2 * chunk), Ok(chunk));
        assert_eq!(
            chunks(&[-libc::EIO, full]).bytes_read(2 * chunk),
            Err(libc::EIO)
        );
        // At or past the end of the file: nothing.
        assert_eq!(chunks(&[0]).bytes_read(4096), Ok(0));
    }

    #[test]
    fn a_large_read_gets_one_pipe_per_chunk_and_the_pool_reuses_them() {
        let mut pool = PipePool::default();
        let len = 2 * PIPE_CHUNK_BYTES + PIPE_CHUNK_BYTES / 2;
        let pipes = pool.take_for(len).expect("pipes");
        assert_eq!(pipes.len(), 3);
        assert!(pipes[..2]
            .iter()
            .all(|p| p.capacity_bytes >= PIPE_CHUNK_BYTES));
        assert!(pipes[2].capacity_bytes >= PIPE_CHUNK_BYTES / 2);
        let mut fds: Vec<i32> = pipes.iter().map(|p| p.read.as_raw_fd()).collect();
        // Chunk 1 came back short: chunk 2's bytes are not sent and its pipe is closed.
        let data = SpliceChunks {
            pipes,
            results: vec![Some(PIPE_CHUNK_BYTES as i32), Some(10), Some(20)],
        }
        .into_data(PIPE_CHUNK_BYTES + 10, &mut pool);
        let sent: Vec<usize> = data.pipes.iter().map(|(_, n)| *n).collect();
        assert_eq!(sent, [PIPE_CHUNK_BYTES, 10]);
        assert!(pool.idle.is_empty(), "a pipe with data left is not reused");
        for (pipe, _) in data.pipes {
            pool.give_back(pipe, true);
        }
        let again = pool.take_for(2 * PIPE_CHUNK_BYTES).expect("pipes");
        let mut reused: Vec<i32> = again.iter().map(|p| p.read.as_raw_fd()).collect();
        fds.truncate(2);
        fds.sort_unstable();
        reused.sort_unstable();
        assert_eq!(reused, fds, "emptied pipes are used again");
    }
}
