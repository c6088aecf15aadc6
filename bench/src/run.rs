//! Running a job: log in, bind channels, prepare files, then keep `iodepth` operations in flight
//! on every channel until the job's size, operation count or runtime is reached.
//!
//! Per channel a sender thread starts operations and sends their requests, a receiver thread
//! completes them (latency, verification) and hands multi-step operations (CREATE, then
//! QUERY_INFO, then CLOSE) back to the sender. Work comes from one generator shared by all
//! channels, so channels that answer faster do more of it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use smb3d_protocol::header::Command;
use smb3d_protocol::messages::create::{disposition, options};
use smb3d_protocol::NtStatus;

use crate::client::conn::{is_interim, Conn, Error, Receiver, Request, Response, Sender};
use crate::client::files::access::{
    DELETE, FILE_READ_ATTRIBUTES, FILE_READ_DATA, FILE_WRITE_DATA, SYNCHRONIZE,
};
use crate::client::files::{close, open, ATTR_NORMAL, SHARE_ALL};
use crate::client::msgs::{self, CreateArgs};
use crate::client::session::{login, LoginOptions, Session};
use crate::hist::Histogram;
use crate::job::{JobSpec, Kind};

/// Where and how to connect.
#[derive(Clone, Debug)]
pub struct Target {
    pub addr: SocketAddr,
    /// `\\host\share`
    pub unc: String,
    /// Addresses for further channels (`--connect`); empty: ask the server.
    pub connect: Vec<SocketAddr>,
    pub login: LoginOptions,
    pub progress: bool,
}

/// Throughput and latency of one kind of operation.
#[derive(Clone, Default)]
pub struct IoStats {
    pub hist: Histogram,
    pub bytes: u64,
}

impl IoStats {
    pub fn ios(&self) -> u64 {
        self.hist.count()
    }

    fn merge(&mut self, o: &IoStats) {
        self.hist.merge(&o.hist);
        self.bytes += o.bytes;
    }
}

#[derive(Clone, Default)]
pub struct ChannelStats {
    pub addr: Option<SocketAddr>,
    pub read: IoStats,
    pub write: IoStats,
    /// Metadata and echo operations.
    pub ops: IoStats,
    /// Why the channel's connection was lost mid-phase (failover jobs only).
    pub lost: Option<String>,
    /// Blocks this channel wrote, by (file, offset) with their length; kept only when the
    /// job verifies its writes (the read-back goes over another channel).
    pub written: BTreeMap<(u32, u64), u32>,
}

impl ChannelStats {
    pub fn merge(&mut self, o: &ChannelStats) {
        self.read.merge(&o.read);
        self.write.merge(&o.write);
        self.ops.merge(&o.ops);
    }
}

/// The outcome of one job.
pub struct JobResult {
    pub spec: JobSpec,
    pub channels_used: u32,
    pub notes: Vec<String>,
    pub elapsed: Duration,
    pub channels: Vec<ChannelStats>,
    pub error: Option<Error>,
    /// Write jobs with `--verify`: bytes read back and checked, and how many of them were read
    /// over a different channel than the one that wrote them.
    pub verified_bytes: u64,
    pub verified_cross_channel_bytes: u64,
}

impl JobResult {
    pub fn total(&self) -> ChannelStats {
        let mut t = ChannelStats::default();
        for c in &self.channels {
            t.merge(c);
        }
        t
    }
}

/// One operation in flight.
enum Op {
    Read {
        file: u32,
        offset: u64,
        len: u32,
    },
    Write {
        file: u32,
        offset: u64,
        len: u32,
    },
    Create {
        name: String,
        fid: Option<[u8; 16]>,
    },
    Stat {
        name: String,
        stage: u8,
        fid: [u8; 16],
    },
    Dirlist {
        stage: u8,
        fid: [u8; 16],
        entries: u64,
    },
    Echo,
    /// Sent last on a channel so that its receiver knows the phase is over.
    Sentinel,
}

enum Class {
    Read,
    Write,
    Other,
}

enum Outcome {
    Next,
    Done(Class, u64),
}

/// What operations need to know about the job.
struct Ctx<'a> {
    tree_id: u32,
    files: &'a [[u8; 16]],
    dir: &'a str,
    dir_entries: u64,
    verify: bool,
    write_buf: Vec<u8>,
}

const FILE_STANDARD_INFORMATION: u8 = 5;
const FILE_ID_BOTH_DIRECTORY_INFORMATION: u8 = 37;

/// The verification pattern: one 64-bit word per 8-byte-aligned file offset (splitmix64).
pub fn pattern_word(file: u32, offset: u64) -> u64 {
    let mut z = offset ^ ((file as u64 + 1) << 52) ^ 0x9E37_79B9_7F4A_7C15;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub fn fill_pattern(file: u32, offset: u64, out: &mut [u8]) {
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        let w = pattern_word(file, offset + 8 * i as u64).to_le_bytes();
        chunk.copy_from_slice(&w[..chunk.len()]);
    }
}

/// The first offset where `data` differs from the pattern, if any.
pub fn check_pattern(file: u32, offset: u64, data: &[u8]) -> Option<u64> {
    for (i, chunk) in data.chunks(8).enumerate() {
        let at = offset + 8 * i as u64;
        let w = pattern_word(file, at).to_le_bytes();
        if chunk != &w[..chunk.len()] {
            return Some(at);
        }
    }
    None
}

fn create_req(tree_id: u32, name: &str, a: &CreateArgs) -> Request {
    let mut r = Request::new(Command::Create, tree_id);
    msgs::encode_create(name, a, &mut r.msg);
    r
}

fn close_req(tree_id: u32, fid: &[u8; 16]) -> Request {
    let mut r = Request::new(Command::Close, tree_id);
    msgs::encode_close(fid, &mut r.msg);
    r
}

fn status_err(resp: &Response) -> Result<(), Error> {
    match resp.status() {
        NtStatus::SUCCESS => Ok(()),
        s => Err(Error::Status(s)),
    }
}

fn verify_failed(what: String) -> Error {
    Error::Protocol(format!("verify: {what}"))
}

impl Op {
    fn request(&self, c: &Ctx<'_>) -> Request {
        match self {
            Op::Read { file, offset, len } => {
                let mut r = Request::with_payload(Command::Read, c.tree_id, *len);
                msgs::encode_read(&c.files[*file as usize], *offset, *len, &mut r.msg);
                r
            }
            Op::Write { file, offset, len } => {
                let mut r = Request::with_payload(Command::Write, c.tree_id, *len);
                r.msg.reserve(*len as usize + 64);
                msgs::encode_write_head(&c.files[*file as usize], *offset, *len, &mut r.msg);
                let start = r.msg.len();
                if c.verify {
                    r.msg.resize(start + *len as usize, 0);
                    fill_pattern(*file, *offset, &mut r.msg[start..]);
                } else {
                    r.msg.extend_from_slice(&c.write_buf[..*len as usize]);
                }
                r
            }
            Op::Create { name, fid: None } => create_req(
                c.tree_id,
                name,
                &CreateArgs {
                    desired_access: DELETE | FILE_WRITE_DATA | FILE_READ_ATTRIBUTES | SYNCHRONIZE,
                    file_attributes: ATTR_NORMAL,
                    share_access: SHARE_ALL,
                    disposition: disposition::CREATE,
                    options: options::NON_DIRECTORY_FILE | options::DELETE_ON_CLOSE,
                },
            ),
            Op::Create { fid: Some(fid), .. } => close_req(c.tree_id, fid),
            Op::Stat { name, stage: 0, .. } => create_req(
                c.tree_id,
                name,
                &CreateArgs {
                    desired_access: FILE_READ_ATTRIBUTES | SYNCHRONIZE,
                    file_attributes: 0,
                    share_access: SHARE_ALL,
                    disposition: disposition::OPEN,
                    options: options::NON_DIRECTORY_FILE,
                },
            ),
            Op::Stat { stage: 1, fid, .. } => {
                let mut r = Request::new(Command::QueryInfo, c.tree_id);
                msgs::encode_query_info(fid, 1, FILE_STANDARD_INFORMATION, 4096, &mut r.msg);
                r
            }
            Op::Stat { fid, .. } => close_req(c.tree_id, fid),
            Op::Dirlist { stage: 0, .. } => create_req(
                c.tree_id,
                c.dir,
                &CreateArgs {
                    desired_access: FILE_READ_DATA | FILE_READ_ATTRIBUTES | SYNCHRONIZE,
                    file_attributes: 0,
                    share_access: SHARE_ALL,
                    disposition: disposition::OPEN,
                    options: options::DIRECTORY_FILE,
                },
            ),
            Op::Dirlist {
                stage: 1 | 2, fid, ..
            } => {
                let restart = matches!(self, Op::Dirlist { stage: 1, .. });
                let mut r = Request::with_payload(Command::QueryDirectory, c.tree_id, 65536);
                msgs::encode_query_directory(
                    fid,
                    FILE_ID_BOTH_DIRECTORY_INFORMATION,
                    if restart { 0x01 } else { 0 },
                    "*",
                    65536,
                    &mut r.msg,
                );
                r
            }
            Op::Dirlist { fid, .. } => close_req(c.tree_id, fid),
            Op::Echo | Op::Sentinel => {
                let mut r = Request::new(Command::Echo, 0);
                msgs::encode_echo(&mut r.msg);
                r
            }
        }
    }

    fn on_response(&mut self, resp: &Response, c: &Ctx<'_>) -> Result<Outcome, Error> {
        match self {
            Op::Read { file, offset, len } => {
                status_err(resp)?;
                let range = msgs::decode_read(&resp.msg)?;
                if range.len() != *len as usize {
                    return Err(verify_failed(format!(
                        "short read at {offset}: {} of {len} bytes",
                        range.len()
                    )));
                }
                if c.verify {
                    if let Some(at) = check_pattern(*file, *offset, &resp.msg[range]) {
                        return Err(verify_failed(format!(
                            "file {file}: data at offset {at} is not what was written"
                        )));
                    }
                }
                Ok(Outcome::Done(Class::Read, *len as u64))
            }
            Op::Write { offset, len, .. } => {
                status_err(resp)?;
                let count = msgs::decode_write(&resp.msg)?;
                if count != *len {
                    return Err(verify_failed(format!(
                        "short write at {offset}: {count} of {len} bytes"
                    )));
                }
                Ok(Outcome::Done(Class::Write, *len as u64))
            }
            Op::Create {
                fid: fid @ None, ..
            } => {
                status_err(resp)?;
                let created = msgs::decode_create(&resp.msg)?;
                if c.verify && created.create_action != 2 {
                    return Err(verify_failed(format!(
                        "CREATE action {} instead of FILE_CREATED",
                        created.create_action
                    )));
                }
                *fid = Some(created.file_id);
                Ok(Outcome::Next)
            }
            Op::Create { .. } => {
                status_err(resp)?;
                Ok(Outcome::Done(Class::Other, 0))
            }
            Op::Stat { stage, fid, .. } => {
                status_err(resp)?;
                match *stage {
                    0 => *fid = msgs::decode_create(&resp.msg)?.file_id,
                    1 => {
                        let info = msgs::decode_output_buffer(&resp.msg)?;
                        // FILE_STANDARD_INFORMATION (MS-FSCC 2.4.47): EndOfFile at 8.
                        let eof = info
                            .get(8..16)
                            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
                        if c.verify && eof != Some(0) {
                            return Err(verify_failed(format!("stat: size {eof:?}, expected 0")));
                        }
                    }
                    _ => return Ok(Outcome::Done(Class::Other, 0)),
                }
                *stage += 1;
                Ok(Outcome::Next)
            }
            Op::Dirlist {
                stage,
                fid,
                entries,
            } => {
                match *stage {
                    0 => {
                        status_err(resp)?;
                        *fid = msgs::decode_create(&resp.msg)?.file_id;
                        *stage = 1;
                    }
                    1 | 2 if resp.status() == NtStatus::NO_MORE_FILES => *stage = 3,
                    1 | 2 => {
                        status_err(resp)?;
                        *entries += count_dir_entries(msgs::decode_output_buffer(&resp.msg)?);
                        *stage = 2;
                    }
                    _ => {
                        status_err(resp)?;
                        if c.verify && *entries != c.dir_entries {
                            return Err(verify_failed(format!(
                                "directory listed {} entries, expected {}",
                                entries, c.dir_entries
                            )));
                        }
                        return Ok(Outcome::Done(Class::Other, 0));
                    }
                }
                Ok(Outcome::Next)
            }
            Op::Echo | Op::Sentinel => {
                status_err(resp)?;
                Ok(Outcome::Done(Class::Other, 0))
            }
        }
    }
}

/// Entries in a QUERY_DIRECTORY output buffer, following NextEntryOffset (MS-FSCC 2.4).
fn count_dir_entries(buf: &[u8]) -> u64 {
    let mut n = 0;
    let mut pos = 0usize;
    while let Some(b) = buf.get(pos..pos + 4) {
        n += 1;
        let next = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
        if next == 0 || n > 1_000_000 {
            break;
        }
        pos += next;
    }
    n
}

/// Hands out the job's operations to every channel.
struct WorkGen {
    kind: Kind,
    bs: u64,
    size: u64,
    files: u32,
    time_based: bool,
    rwmixread: u32,
    limit_ios: Option<u64>,
    issued: u64,
    cursors: Vec<u64>,
    next_file: u32,
    dir: String,
    rng: StdRng,
}

impl WorkGen {
    fn new(spec: &JobSpec, dir: &str) -> WorkGen {
        let limit_ios = match (spec.number_ios, spec.kind.is_data(), spec.runtime) {
            (Some(n), _, _) => Some(n),
            (None, false, None) => Some(1000),
            _ => None,
        };
        WorkGen {
            kind: spec.kind,
            bs: spec.bs,
            size: spec.size,
            files: spec.files,
            time_based: spec.time_based && spec.runtime.is_some(),
            rwmixread: spec.rwmixread,
            limit_ios,
            issued: 0,
            cursors: vec![0; spec.files as usize],
            next_file: 0,
            dir: dir.to_string(),
            rng: StdRng::from_entropy(),
        }
    }

    fn next(&mut self) -> Option<Op> {
        if self.limit_ios.is_some_and(|l| self.issued >= l) {
            return None;
        }
        let op = match self.kind {
            k if k.is_data() => self.next_io()?,
            Kind::Create => Op::Create {
                name: format!("{}\\c{}", self.dir, self.issued),
                fid: None,
            },
            Kind::Stat => Op::Stat {
                name: format!("{}\\f{}", self.dir, self.rng.gen_range(0..self.files)),
                stage: 0,
                fid: [0; 16],
            },
            Kind::Dirlist => Op::Dirlist {
                stage: 0,
                fid: [0; 16],
                entries: 0,
            },
            _ => Op::Echo,
        };
        self.issued += 1;
        Some(op)
    }

    fn next_io(&mut self) -> Option<Op> {
        let blocks = self.size / self.bs;
        let (file, offset) = if self.kind.is_random() {
            let total = blocks * self.files as u64;
            if !self.time_based && self.issued >= total {
                return None;
            }
            let file = self.rng.gen_range(0..self.files);
            (file, self.rng.gen_range(0..blocks) * self.bs)
        } else {
            self.next_sequential()?
        };
        let is_read = match self.kind {
            Kind::Read | Kind::RandRead => true,
            Kind::Write | Kind::RandWrite => false,
            _ => self.rng.gen_range(0..100) < self.rwmixread,
        };
        let len = self.bs as u32;
        Some(if is_read {
            Op::Read { file, offset, len }
        } else {
            Op::Write { file, offset, len }
        })
    }

    /// Round-robin over the files, each read front to back (and again when time based).
    fn next_sequential(&mut self) -> Option<(u32, u64)> {
        for _ in 0..self.files {
            let file = self.next_file;
            self.next_file = (self.next_file + 1) % self.files;
            let cursor = &mut self.cursors[file as usize];
            if *cursor + self.bs > self.size {
                if !self.time_based {
                    continue;
                }
                *cursor = 0;
            }
            let offset = *cursor;
            *cursor += self.bs;
            return Some((file, offset));
        }
        None
    }
}

/// Live counters for the progress line.
#[derive(Default)]
struct Progress {
    read_bytes: AtomicU64,
    write_bytes: AtomicU64,
    ops: AtomicU64,
}

struct ChanState {
    pending: HashMap<u64, (Op, Instant)>,
    followups: VecDeque<(Op, Instant)>,
    inflight: u32,
    stopping: bool,
    receiver_gone: bool,
}

struct Chan {
    state: Mutex<ChanState>,
    changed: Condvar,
}

struct Phase<'a> {
    ctx: Ctx<'a>,
    work: Mutex<WorkGen>,
    /// When set, channel `i` does exactly the operations in `assigned[i]` instead of taking
    /// them from `work` (the cross-channel read-back).
    assigned: Option<Vec<Mutex<VecDeque<Op>>>>,
    /// Operations of lost channels, to be reissued on the others (failover).
    retry: Mutex<VecDeque<Op>>,
    /// Operations taken but not completed, over all channels.
    outstanding: AtomicU64,
    /// Channels whose connection still works.
    alive: AtomicU64,
    failover: bool,
    record_writes: bool,
    /// Set by `fail`: the phase is over.
    stop: AtomicBool,
    deadline: Option<Instant>,
    iodepth: u32,
    error: Mutex<Option<Error>>,
    progress: Progress,
}

impl Phase<'_> {
    fn fail(&self, e: Error) {
        let mut slot = self.error.lock().expect("error lock");
        if slot.is_none() {
            *slot = Some(e);
        }
        self.stop.store(true, Ordering::SeqCst);
    }

    fn should_stop(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    fn failed(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// The next new operation for channel `idx` (counted as outstanding).
    fn take_work(&self, idx: usize) -> Option<Op> {
        let op = match &self.assigned {
            Some(a) => a[idx].lock().expect("assigned lock").pop_front(),
            None => self.work.lock().expect("work lock").next(),
        };
        if op.is_some() {
            self.outstanding.fetch_add(1, Ordering::SeqCst);
        }
        op
    }

    fn take_retry(&self) -> Option<Op> {
        if !self.failover {
            return None;
        }
        self.retry.lock().expect("retry lock").pop_front()
    }

    fn op_finished(&self) {
        self.outstanding.fetch_sub(1, Ordering::SeqCst);
    }

    /// Channel `idx` lost its connection with `e`. With failover and another channel alive its
    /// operations (`ops`, plus what was assigned to it) go to the others; else the phase fails.
    fn channel_lost(&self, idx: usize, e: Error, ops: Vec<Op>) -> Option<String> {
        let others_alive = self.alive.fetch_sub(1, Ordering::SeqCst) > 1;
        let retryable = ops
            .iter()
            .all(|op| matches!(op, Op::Read { .. } | Op::Write { .. } | Op::Sentinel));
        if !(self.failover && others_alive && retryable && matches!(e, Error::Io(_))) {
            self.fail(e);
            return None;
        }
        let mut retry = self.retry.lock().expect("retry lock");
        let mut moved = 0u64;
        for op in ops {
            if !matches!(op, Op::Sentinel) {
                retry.push_back(op);
                moved += 1;
            }
        }
        if let Some(a) = &self.assigned {
            let mut mine = a[idx].lock().expect("assigned lock");
            // Assigned but never started: count them as taken, they are outstanding now.
            self.outstanding
                .fetch_add(mine.len() as u64, Ordering::SeqCst);
            moved += mine.len() as u64;
            retry.extend(mine.drain(..));
        }
        Some(format!(
            "{e}; {moved} operation(s) reissued on other channels"
        ))
    }
}

fn sender_loop(tx: &mut Sender, chan: &Chan, p: &Phase<'_>, idx: usize) {
    loop {
        let next = {
            let mut st = chan.state.lock().expect("channel lock");
            loop {
                if st.receiver_gone {
                    return;
                }
                if let Some(f) = st.followups.pop_front() {
                    break Some(f);
                }
                if st.inflight < p.iodepth && !p.failed() {
                    if let Some(op) = p.take_retry() {
                        st.inflight += 1;
                        break Some((op, Instant::now()));
                    }
                }
                if p.should_stop() {
                    st.stopping = true;
                }
                if !st.stopping && st.inflight < p.iodepth {
                    match p.take_work(idx) {
                        Some(op) => {
                            st.inflight += 1;
                            break Some((op, Instant::now()));
                        }
                        None => {
                            st.stopping = true;
                            continue;
                        }
                    }
                }
                // With failover, stay until every channel's operations are done: a lost
                // channel may still hand some over.
                let all_done =
                    !p.failover || p.failed() || p.outstanding.load(Ordering::SeqCst) == 0;
                if st.stopping && st.inflight == 0 && all_done {
                    break None;
                }
                st = chan
                    .changed
                    .wait_timeout(st, Duration::from_millis(20))
                    .expect("channel lock")
                    .0;
            }
        };
        let (op, start, last) = match next {
            Some((op, start)) => (op, start, false),
            None => (Op::Sentinel, Instant::now(), true),
        };
        let req = op.request(&p.ctx);
        let mut unsent = Some((op, start));
        let sent = tx.send_registered(req, |id| {
            let mut st = chan.state.lock().expect("channel lock");
            if let Some((op, start)) = unsent.take() {
                if st.receiver_gone {
                    // The receiver has handed this channel's operations over already.
                    p.retry.lock().expect("retry lock").push_back(op);
                } else {
                    st.pending.insert(id, (op, start));
                }
            }
        });
        if let Err(e) = sent {
            if let Some((op, _)) = unsent {
                // Never registered: hand it to the receiver, or straight over if it is gone.
                let mut st = chan.state.lock().expect("channel lock");
                if st.receiver_gone {
                    p.retry.lock().expect("retry lock").push_back(op);
                } else {
                    st.followups.push_front((op, start));
                }
            }
            if !p.failover {
                p.fail(e);
            }
            // The receiver sees the connection end and hands the operations over (or fails).
            tx.close();
            return;
        }
        if last {
            return;
        }
    }
}

fn receiver_loop(rx: &mut Receiver, chan: &Chan, p: &Phase<'_>, idx: usize) -> ChannelStats {
    let mut stats = ChannelStats::default();
    let finish = |stats: ChannelStats| {
        let mut st = chan.state.lock().expect("channel lock");
        st.receiver_gone = true;
        chan.changed.notify_all();
        stats
    };
    loop {
        let resp = match rx.recv() {
            Ok(r) => r,
            Err(e) => {
                rx.close();
                let ops = {
                    let mut st = chan.state.lock().expect("channel lock");
                    st.receiver_gone = true;
                    st.inflight = 0;
                    let mut ops: Vec<Op> = st.pending.drain().map(|(_, (op, _))| op).collect();
                    ops.extend(st.followups.drain(..).map(|(op, _)| op));
                    chan.changed.notify_all();
                    ops
                };
                stats.lost = p.channel_lost(idx, e, ops);
                return finish(stats);
            }
        };
        if is_interim(&resp) {
            continue;
        }
        let entry = chan
            .state
            .lock()
            .expect("channel lock")
            .pending
            .remove(&resp.header.message_id);
        let Some((mut op, start)) = entry else {
            p.fail(Error::Protocol(format!(
                "response to unknown message id {}",
                resp.header.message_id
            )));
            rx.close();
            return finish(stats);
        };
        if matches!(op, Op::Sentinel) {
            return stats;
        }
        let outcome = op.on_response(&resp, &p.ctx);
        rx.recycle(resp.msg);
        let mut st = chan.state.lock().expect("channel lock");
        match outcome {
            Ok(Outcome::Next) => st.followups.push_back((op, start)),
            Ok(Outcome::Done(class, bytes)) => {
                st.inflight -= 1;
                p.op_finished();
                if let (true, Op::Write { file, offset, len }) = (p.record_writes, &op) {
                    stats.written.insert((*file, *offset), *len);
                }
                let ns = start.elapsed().as_nanos() as u64;
                let (s, counter) = match class {
                    Class::Read => (&mut stats.read, &p.progress.read_bytes),
                    Class::Write => (&mut stats.write, &p.progress.write_bytes),
                    Class::Other => (&mut stats.ops, &p.progress.ops),
                };
                s.hist.record(ns);
                s.bytes += bytes;
                counter.fetch_add(bytes.max(1), Ordering::Relaxed);
            }
            Err(e) => {
                st.inflight -= 1;
                p.op_finished();
                p.fail(e);
            }
        }
        chan.changed.notify_all();
    }
}

/// Run one phase over all channels; returns per-channel stats and the elapsed time.
fn run_phase(
    conns: &mut [Conn],
    phase: &Phase<'_>,
    show_progress: bool,
) -> (Vec<ChannelStats>, Duration) {
    let started = Instant::now();
    let done = AtomicBool::new(false);
    phase.alive.store(conns.len() as u64, Ordering::SeqCst);
    let stats = std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for (idx, conn) in conns.iter_mut().enumerate() {
            let addr = conn.peer;
            let chan = Chan {
                state: Mutex::new(ChanState {
                    pending: HashMap::new(),
                    followups: VecDeque::new(),
                    inflight: 0,
                    stopping: false,
                    receiver_gone: false,
                }),
                changed: Condvar::new(),
            };
            let (tx, rx) = (&mut conn.tx, &mut conn.rx);
            handles.push(scope.spawn(move || {
                std::thread::scope(|inner| {
                    inner.spawn(|| sender_loop(tx, &chan, phase, idx));
                    let mut s = receiver_loop(rx, &chan, phase, idx);
                    s.addr = Some(addr);
                    s
                })
            }));
        }
        if show_progress {
            scope.spawn(|| progress_loop(phase, started, &done));
        }
        let stats: Vec<ChannelStats> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect();
        done.store(true, Ordering::SeqCst);
        stats
    });
    (stats, started.elapsed())
}

fn progress_loop(p: &Phase<'_>, started: Instant, done: &AtomicBool) {
    use std::io::Write;
    let mut last = (0u64, 0u64, 0u64);
    let mut last_t = Instant::now();
    while !done.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
        if last_t.elapsed() < Duration::from_secs(1) {
            continue;
        }
        let now = (
            p.progress.read_bytes.load(Ordering::Relaxed),
            p.progress.write_bytes.load(Ordering::Relaxed),
            p.progress.ops.load(Ordering::Relaxed),
        );
        let dt = last_t.elapsed().as_secs_f64();
        eprint!(
            "\r[{:>5.1}s] read {:>9.1} MiB/s  write {:>9.1} MiB/s  ops {:>9.0}/s   ",
            started.elapsed().as_secs_f64(),
            (now.0 - last.0) as f64 / dt / 1048576.0,
            (now.1 - last.1) as f64 / dt / 1048576.0,
            (now.2 - last.2) as f64 / dt,
        );
        let _ = std::io::stderr().flush();
        last = now;
        last_t = Instant::now();
    }
    eprint!("\r{:80}\r", "");
}

/// Names of the job's files and directory in the share.
fn file_name(spec: &JobSpec, i: u32) -> String {
    format!("smb3bench.{}.{}", sanitize(&spec.name), i)
}

fn dir_name(spec: &JobSpec) -> String {
    format!("smb3bench.{}.d", sanitize(&spec.name))
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn data_args() -> CreateArgs {
    CreateArgs {
        desired_access: FILE_READ_DATA | FILE_WRITE_DATA | FILE_READ_ATTRIBUTES | SYNCHRONIZE,
        file_attributes: ATTR_NORMAL,
        share_access: SHARE_ALL,
        disposition: disposition::OPEN_IF,
        options: options::NON_DIRECTORY_FILE,
    }
}

fn delete_args(dir: bool) -> CreateArgs {
    CreateArgs {
        desired_access: DELETE | FILE_READ_ATTRIBUTES | SYNCHRONIZE,
        file_attributes: 0,
        share_access: SHARE_ALL,
        disposition: disposition::OPEN,
        options: options::DELETE_ON_CLOSE
            | if dir {
                options::DIRECTORY_FILE
            } else {
                options::NON_DIRECTORY_FILE
            },
    }
}

/// Connect the job's channels: the session's own, then bindings.
fn connect_channels(
    session: &mut Session,
    t: &Target,
    want: u32,
    notes: &mut Vec<String>,
) -> Vec<Conn> {
    let mut extra = Vec::new();
    if want <= 1 {
        return extra;
    }
    if !session.supports_multichannel() {
        notes.push(format!(
            "server does not advertise SMB2_GLOBAL_CAP_MULTI_CHANNEL: using 1 channel instead of {want}"
        ));
        return extra;
    }
    let addrs: Vec<SocketAddr> = if !t.connect.is_empty() {
        t.connect.clone()
    } else {
        match session.query_interfaces() {
            Ok(ifaces) => {
                let ips: Vec<IpAddr> = ifaces.iter().map(|i| i.addr).collect();
                channel_addresses(t.addr, &ips)
            }
            Err(e) => {
                notes.push(format!(
                    "FSCTL_QUERY_NETWORK_INTERFACE_INFO failed ({e}); binding to {}",
                    t.addr
                ));
                vec![t.addr]
            }
        }
    };
    for i in 1..want as usize {
        let addr = addrs[(i - 1) % addrs.len()];
        match session.bind(addr, &t.login) {
            Ok(c) => extra.push(c),
            Err(e) => {
                notes.push(format!(
                    "binding channel {i} to {addr} failed ({e}): continuing with {} channel(s)",
                    1 + extra.len()
                ));
                break;
            }
        }
    }
    extra
}

/// Where to bind extra channels, from the server's interface addresses: those of the target's
/// address family, loopback only when the target is loopback, no IPv6 link-local addresses (they
/// would need a scope id the server does not report), the target's own address last so that the
/// first extra channel goes to another interface. Channel `i` (1-based extra) uses entry
/// `(i - 1) % len`. Never empty: falls back to the target.
pub fn channel_addresses(target: SocketAddr, ifaces: &[IpAddr]) -> Vec<SocketAddr> {
    let usable = |ip: &IpAddr| {
        ip.is_ipv4() == target.is_ipv4()
            && !ip.is_unspecified()
            && ip.is_loopback() == target.ip().is_loopback()
            && !matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80)
    };
    let mut out: Vec<SocketAddr> = Vec::new();
    for ip in ifaces.iter().filter(|ip| usable(ip) && **ip != target.ip()) {
        let a = SocketAddr::new(*ip, target.port());
        if !out.contains(&a) {
            out.push(a);
        }
    }
    out.push(target);
    out
}

/// Everything a job holds open while it runs.
struct Prepared {
    files: Vec<[u8; 16]>,
    dir: String,
    dir_entries: u64,
}

fn prepare(
    conns: &mut Vec<Conn>,
    tree_id: u32,
    spec: &JobSpec,
    lost: &mut Vec<LostChannel>,
) -> Result<Prepared, Error> {
    let mut prepared = Prepared {
        files: Vec::new(),
        dir: dir_name(spec),
        dir_entries: 0,
    };
    if spec.kind.is_data() {
        let mut need_layout = spec.verify;
        for i in 0..spec.files {
            let f = open(&mut conns[0], tree_id, &file_name(spec, i), &data_args())?;
            need_layout |= f.end_of_file < spec.size && spec.kind.reads();
            prepared.files.push(f.file_id);
        }
        if need_layout {
            layout(conns, tree_id, spec, &prepared, lost)?;
        }
        return Ok(prepared);
    }
    if matches!(spec.kind, Kind::Create | Kind::Stat | Kind::Dirlist) {
        let dir_args = CreateArgs {
            desired_access: FILE_READ_DATA | FILE_READ_ATTRIBUTES | SYNCHRONIZE,
            file_attributes: 0x10,
            share_access: SHARE_ALL,
            disposition: disposition::OPEN_IF,
            options: options::DIRECTORY_FILE,
        };
        let d = open(&mut conns[0], tree_id, &prepared.dir, &dir_args)?;
        close(&mut conns[0], tree_id, &d.file_id)?;
    }
    if matches!(spec.kind, Kind::Stat | Kind::Dirlist) {
        let mut args = data_args();
        args.disposition = disposition::OVERWRITE_IF;
        for i in 0..spec.files {
            let f = open(
                &mut conns[0],
                tree_id,
                &format!("{}\\f{i}", prepared.dir),
                &args,
            )?;
            close(&mut conns[0], tree_id, &f.file_id)?;
        }
        prepared.dir_entries = spec.files as u64 + 2; // plus "." and ".."
    }
    Ok(prepared)
}

/// Write every file front to back with the verification pattern (fio's layout step).
fn layout(
    conns: &mut Vec<Conn>,
    tree_id: u32,
    spec: &JobSpec,
    prepared: &Prepared,
    lost: &mut Vec<LostChannel>,
) -> Result<(), Error> {
    let mut l = spec.clone();
    l.kind = Kind::Write;
    l.runtime = None;
    l.time_based = false;
    l.number_ios = None;
    l.bs = (1 << 20).min(spec.size - spec.size % spec.bs).max(spec.bs);
    l.iodepth = 8;
    l.verify = true;
    let phase = phase_for(&l, tree_id, prepared);
    let (stats, _) = run_phase(conns, &phase, false);
    drop_lost_channels(conns, &stats, lost);
    match phase.error.into_inner().expect("error lock") {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// A channel whose connection was lost (failover): its number in the job and why.
pub struct LostChannel {
    pub channel: usize,
    pub addr: SocketAddr,
    pub why: String,
}

/// Forget channels whose connection was lost in a phase, remembering them in `lost`.
fn drop_lost_channels(conns: &mut Vec<Conn>, stats: &[ChannelStats], lost: &mut Vec<LostChannel>) {
    let mut i = 0;
    conns.retain(|c| {
        let why = stats.get(i).and_then(|s| s.lost.clone());
        i += 1;
        match why {
            Some(why) => {
                lost.push(LostChannel {
                    channel: c.channel,
                    addr: c.peer,
                    why,
                });
                false
            }
            None => true,
        }
    });
}

/// The read-back of a verified write job: every block read over the next surviving channel
/// after the one that wrote it (the same one only when it is the only one left). Returns the
/// work per surviving channel and the bytes that cross channels.
fn readback_plan(stats: &[ChannelStats]) -> (Vec<VecDeque<Op>>, u64) {
    let alive: Vec<usize> = (0..stats.len())
        .filter(|i| stats[*i].lost.is_none())
        .collect();
    let mut plan: Vec<VecDeque<Op>> = alive.iter().map(|_| VecDeque::new()).collect();
    let mut seen = std::collections::HashSet::new();
    let mut cross_bytes = 0u64;
    if alive.is_empty() {
        return (plan, 0);
    }
    for (writer, s) in stats.iter().enumerate() {
        // The first surviving channel after the writer, cyclically.
        let pos = alive.iter().position(|a| *a > writer).unwrap_or(0);
        for (&(file, offset), &len) in &s.written {
            if !seen.insert((file, offset)) {
                continue;
            }
            if alive[pos] != writer {
                cross_bytes += len as u64;
            }
            plan[pos].push_back(Op::Read { file, offset, len });
        }
    }
    (plan, cross_bytes)
}

fn phase_for<'a>(spec: &JobSpec, tree_id: u32, prepared: &'a Prepared) -> Phase<'a> {
    let mut write_buf = vec![
        0u8;
        if spec.kind.writes() {
            spec.bs as usize
        } else {
            0
        }
    ];
    fill_pattern(u32::MAX, 0, &mut write_buf);
    Phase {
        ctx: Ctx {
            tree_id,
            files: &prepared.files,
            dir: &prepared.dir,
            dir_entries: prepared.dir_entries,
            verify: spec.verify,
            write_buf,
        },
        work: Mutex::new(WorkGen::new(spec, &prepared.dir)),
        assigned: None,
        retry: Mutex::new(VecDeque::new()),
        outstanding: AtomicU64::new(0),
        alive: AtomicU64::new(0),
        failover: spec.failover && spec.kind.is_data(),
        record_writes: spec.verify && spec.kind.writes() && !spec.kind.reads(),
        stop: AtomicBool::new(false),
        deadline: spec.runtime.map(|r| Instant::now() + r),
        iodepth: spec.iodepth,
        error: Mutex::new(None),
        progress: Progress::default(),
    }
}

/// Close handles and remove the metadata directory; errors here are only notes.
fn cleanup(
    conns: &mut [Conn],
    tree_id: u32,
    spec: &JobSpec,
    prepared: &Prepared,
    notes: &mut Vec<String>,
) {
    let conn = &mut conns[0];
    for fid in &prepared.files {
        let _ = close(conn, tree_id, fid);
    }
    if !matches!(spec.kind, Kind::Create | Kind::Stat | Kind::Dirlist) {
        return;
    }
    let mut result = Ok(());
    for i in 0..(prepared.dir_entries.saturating_sub(2)) {
        let name = format!("{}\\f{i}", prepared.dir);
        result = result.and_then(|_| {
            let f = open(conn, tree_id, &name, &delete_args(false))?;
            close(conn, tree_id, &f.file_id)
        });
    }
    let result = result.and_then(|_| {
        let d = open(conn, tree_id, &prepared.dir, &delete_args(true))?;
        close(conn, tree_id, &d.file_id)
    });
    if let Err(e) = result {
        notes.push(format!("cleanup of {} failed: {e}", prepared.dir));
    }
}

/// Run one job from login to cleanup. Never panics on server errors: they end up in `error`.
pub fn run_job(t: &Target, spec: &JobSpec) -> JobResult {
    let mut result = JobResult {
        spec: spec.clone(),
        channels_used: 0,
        notes: Vec::new(),
        elapsed: Duration::ZERO,
        channels: Vec::new(),
        error: None,
        verified_bytes: 0,
        verified_cross_channel_bytes: 0,
    };
    if let Err(e) = run_job_inner(t, spec, &mut result) {
        result.error = Some(e);
    }
    result
}

fn run_job_inner(t: &Target, spec: &JobSpec, result: &mut JobResult) -> Result<(), Error> {
    let mut session = login(t.addr, &t.unc, &t.login)?;
    let max_io = match spec.kind {
        k if k.reads() && k.writes() => session
            .negotiated
            .max_read_size
            .min(session.negotiated.max_write_size),
        k if k.reads() => session.negotiated.max_read_size,
        k if k.writes() => session.negotiated.max_write_size,
        _ => u32::MAX,
    };
    if spec.kind.is_data() && spec.bs > max_io as u64 {
        return Err(Error::Protocol(format!(
            "bs {} exceeds the server's maximum I/O size {max_io}",
            spec.bs
        )));
    }
    let extra = connect_channels(&mut session, t, spec.channels, &mut result.notes);
    let tree_id = session.tree_id;
    let mut conns = vec![session.conn];
    conns.extend(extra);
    for (i, c) in conns.iter_mut().enumerate() {
        c.channel = i;
    }
    result.channels_used = conns.len() as u32;
    result.channels = conns
        .iter()
        .map(|c| ChannelStats {
            addr: Some(c.peer),
            ..Default::default()
        })
        .collect();
    let mut lost = Vec::new();
    let outcome = run_phases(&mut conns, tree_id, t, spec, result, &mut lost);
    // Channels lost in any phase (failover): noted, and marked in the per-channel results.
    for l in lost {
        result.notes.push(format!(
            "channel {} to {} lost: {}",
            l.channel, l.addr, l.why
        ));
        if let Some(c) = result.channels.get_mut(l.channel) {
            c.lost = Some(l.why);
        }
    }
    outcome
}

/// Prepare, run, verify and clean up a job over its connected channels.
fn run_phases(
    conns: &mut Vec<Conn>,
    tree_id: u32,
    t: &Target,
    spec: &JobSpec,
    result: &mut JobResult,
    lost: &mut Vec<LostChannel>,
) -> Result<(), Error> {
    let prepared = prepare(conns, tree_id, spec, lost)?;
    let phase = phase_for(spec, tree_id, &prepared);
    let ids: Vec<usize> = conns.iter().map(|c| c.channel).collect();
    let (stats, elapsed) = run_phase(conns, &phase, t.progress);
    result.elapsed = elapsed;
    drop_lost_channels(conns, &stats, lost);
    let mut error = phase.error.into_inner().expect("error lock");
    if error.is_none() && phase.record_writes {
        // Read back what the job wrote, each block over another channel than its writer's.
        let (plan, cross_bytes) = readback_plan(&stats);
        let mut check = spec.clone();
        check.kind = Kind::Read;
        check.runtime = None;
        check.time_based = false;
        check.number_ios = None;
        let mut phase = phase_for(&check, tree_id, &prepared);
        phase.assigned = Some(plan.into_iter().map(Mutex::new).collect());
        let (check_stats, _) = run_phase(conns, &phase, false);
        drop_lost_channels(conns, &check_stats, lost);
        error = phase.error.into_inner().expect("error lock");
        if error.is_none() {
            result.verified_bytes = check_stats.iter().map(|s| s.read.bytes).sum();
            result.verified_cross_channel_bytes = cross_bytes;
        }
    }
    for (id, mut s) in ids.into_iter().zip(stats) {
        s.written.clear();
        s.lost = None; // set from `lost` by the caller
        if let Some(slot) = result.channels.get_mut(id) {
            *slot = s;
        }
    }
    cleanup(conns, tree_id, spec, &prepared, &mut result.notes);
    match error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_round_trip() {
        let mut b = vec![0u8; 4100];
        fill_pattern(3, 8192, &mut b);
        assert_eq!(check_pattern(3, 8192, &b), None);
        assert_eq!(check_pattern(4, 8192, &b), Some(8192));
        b[4001] ^= 1;
        assert_eq!(check_pattern(3, 8192, &b), Some(8192 + 4000));
    }

    #[test]
    fn sequential_work_covers_each_file_once() {
        let spec = JobSpec {
            kind: Kind::Read,
            bs: 4096,
            size: 16384,
            files: 2,
            ..Default::default()
        };
        let mut g = WorkGen::new(&spec, "d");
        let mut seen = Vec::new();
        while let Some(Op::Read { file, offset, .. }) = g.next() {
            seen.push((file, offset));
        }
        seen.sort();
        let expected: Vec<(u32, u64)> = (0..2)
            .flat_map(|f| (0..4).map(move |b| (f, b * 4096)))
            .collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn metadata_jobs_default_to_a_thousand_ops() {
        let spec = JobSpec {
            kind: Kind::Echo,
            ..Default::default()
        };
        let mut g = WorkGen::new(&spec, "d");
        let mut n = 0;
        while g.next().is_some() {
            n += 1;
        }
        assert_eq!(n, 1000);
    }

    #[test]
    fn channel_addresses_prefer_other_interfaces() {
        let ips: Vec<IpAddr> = [
            "127.0.0.1",
            "10.231.1.1",
            "10.231.2.1",
            "::1",
            "fd00:231:1::1",
            "fe80::1",
            "10.231.2.1",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let v4: SocketAddr = "10.231.1.1:445".parse().unwrap();
        let got: Vec<String> = channel_addresses(v4, &ips)
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(got, ["10.231.2.1:445", "10.231.1.1:445"]);
        let v6: SocketAddr = "[fd00:231:1::1]:445".parse().unwrap();
        assert_eq!(channel_addresses(v6, &ips), [v6]);
        let lo: SocketAddr = "127.0.0.1:4455".parse().unwrap();
        assert_eq!(channel_addresses(lo, &ips), [lo]);
        assert_eq!(channel_addresses(lo, &[]), [lo]);
    }

    #[test]
    fn readback_goes_to_the_next_surviving_channel() {
        let mut stats = vec![ChannelStats::default(); 3];
        stats[0].written.insert((0, 0), 10);
        stats[1].written.insert((0, 10), 10);
        stats[2].written.insert((0, 20), 10);
        stats[2].written.insert((0, 0), 10); // written twice: read back once
        let (plan, cross) = readback_plan(&stats);
        let offsets = |q: &VecDeque<Op>| -> Vec<u64> {
            q.iter()
                .map(|op| match op {
                    Op::Read { offset, .. } => *offset,
                    _ => u64::MAX,
                })
                .collect()
        };
        assert_eq!(plan.len(), 3);
        assert_eq!(offsets(&plan[1]), [0]);
        assert_eq!(offsets(&plan[2]), [10]);
        assert_eq!(offsets(&plan[0]), [20]);
        assert_eq!(cross, 30);
        stats[1].lost = Some("gone".into());
        let (plan, cross) = readback_plan(&stats);
        assert_eq!(plan.len(), 2);
        assert_eq!(offsets(&plan[1]), [0, 10]); // survivors 0 and 2: channel 2 reads 0's and 1's
        assert_eq!(offsets(&plan[0]), [20]);
        assert_eq!(cross, 30);
    }

    #[test]
    fn dir_entries_are_counted() {
        let mut b = vec![0u8; 300];
        b[0..4].copy_from_slice(&100u32.to_le_bytes());
        b[100..104].copy_from_slice(&120u32.to_le_bytes());
        assert_eq!(count_dir_entries(&b), 3);
        assert_eq!(count_dir_entries(&[]), 0);
    }
}
