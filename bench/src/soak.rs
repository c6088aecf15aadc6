//! The soak run: many clients, each one session with several channels, doing a random mix of
//! creates, writes (some flushed), reads, renames, truncates and deletes on their own files
//! until a time or operation count is reached. A model holds what every file must contain; each
//! read is checked against it, and at the end every file of the model is read back and compared.
//! Channels of one client share its files, so data written over one channel is read back over
//! the others.
//!
//! [`process_tree_usage`] measures a server's descriptors and memory from /proc (its process and
//! its worker processes), for leak checks around a run.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use smb3d_protocol::messages::create::{disposition, options};
use smb3d_protocol::NtStatus;

use crate::client::conn::{Conn, Error, Result};
use crate::client::files::{self, access, file_args, SHARE_ALL};
use crate::client::msgs::CreateArgs;
use crate::client::session::{login, LoginOptions, Session};

/// FILE_CREATED (MS-SMB2 2.2.14 CreateAction).
const FILE_CREATED: u32 = 2;
/// Largest single READ or WRITE the soak sends (smaller if the server's limit is).
const MAX_IO_BYTES: u32 = 1 << 20;

/// What to run against which server.
#[derive(Clone, Debug)]
pub struct SoakOptions {
    pub addr: SocketAddr,
    /// `\\host\share`
    pub unc: String,
    pub login: LoginOptions,
    pub clients: usize,
    /// Channels per client (the session's connection and bound ones).
    pub channels: usize,
    pub duration: Duration,
    /// Stop after this many operations even before `duration`.
    pub max_ops: u64,
    pub max_file_bytes: usize,
    pub files_per_client: usize,
    pub seed: u64,
    /// Directory in the share root holding every client's files (created; it must not hold
    /// files of the same names).
    pub dir: String,
}

impl SoakOptions {
    pub fn new(addr: SocketAddr, unc: String, login: LoginOptions) -> SoakOptions {
        SoakOptions {
            addr,
            unc,
            login,
            clients: 4,
            channels: 2,
            duration: Duration::from_secs(30),
            max_ops: u64::MAX,
            max_file_bytes: 512 << 10,
            files_per_client: 12,
            seed: 1,
            dir: unique_dir_name(),
        }
    }
}

/// `soak-SECONDS-PID`: a new directory for each run against the same share.
fn unique_dir_name() -> String {
    let since_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("soak-{}-{}", since_unix.as_secs(), std::process::id())
}

/// Kinds of operation, for counting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OpKind {
    Create,
    Write,
    Read,
    Rename,
    Truncate,
    Delete,
}

const OP_KINDS: [OpKind; 6] = [
    OpKind::Create,
    OpKind::Write,
    OpKind::Read,
    OpKind::Rename,
    OpKind::Truncate,
    OpKind::Delete,
];

impl OpKind {
    fn name(self) -> &'static str {
        match self {
            OpKind::Create => "create",
            OpKind::Write => "write",
            OpKind::Read => "read",
            OpKind::Rename => "rename",
            OpKind::Truncate => "truncate",
            OpKind::Delete => "delete",
        }
    }
}

/// What a soak run did and found.
#[derive(Debug, Default)]
pub struct SoakReport {
    pub clients: usize,
    /// Channels connected, over all clients.
    pub channels: usize,
    /// Operations by kind, in the order create, write, read, rename, truncate, delete.
    pub ops_by_kind: [u64; 6],
    pub flushes: u64,
    pub bytes_written: u64,
    /// Bytes read during the run and found equal to the model.
    pub bytes_verified: u64,
    /// Files and bytes read back at the end, all equal to the model.
    pub final_files: u64,
    pub final_bytes_verified: u64,
    pub elapsed: Duration,
    /// Every failure (server error, transport error, data that differs); empty on success.
    pub errors: Vec<String>,
}

impl SoakReport {
    pub fn ops(&self) -> u64 {
        self.ops_by_kind.iter().sum()
    }

    /// A few lines of figures.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let _ = writeln!(
            s,
            "soak: {} clients x {} channels ({} connected), {:.1} s",
            self.clients,
            self.channels / self.clients.max(1),
            self.channels,
            secs
        );
        let by_kind: Vec<String> = OP_KINDS
            .iter()
            .zip(self.ops_by_kind)
            .map(|(k, n)| format!("{} {n}", k.name()))
            .collect();
        let _ = writeln!(
            s,
            "operations: {} ({:.0}/s): {}, flushes {}",
            self.ops(),
            self.ops() as f64 / secs,
            by_kind.join(", "),
            self.flushes
        );
        let _ = writeln!(
            s,
            "bytes written {}, verified during the run {}, at the end {} in {} files",
            self.bytes_written, self.bytes_verified, self.final_bytes_verified, self.final_files
        );
        let _ = writeln!(s, "errors: {}", self.errors.len());
        for e in self.errors.iter().take(20) {
            let _ = writeln!(s, "  {e}");
        }
        s
    }
}

/// What one client's files must hold.
#[derive(Default)]
struct Model {
    files: HashMap<String, Vec<u8>>,
    /// Files an operation is working on right now.
    busy: HashSet<String>,
    next_name: u64,
}

struct Client {
    index: usize,
    model: Mutex<Model>,
}

/// One claimed operation: its kind, the file and what the file holds before it.
struct Claim {
    kind: OpKind,
    name: String,
    content: Vec<u8>,
}

/// What an operation left behind.
enum Outcome {
    Kept(Vec<u8>),
    Renamed(String, Vec<u8>),
    Deleted,
}

struct Shared<'a> {
    opts: &'a SoakOptions,
    deadline: Instant,
    stop: AtomicBool,
    started_ops: AtomicU64,
    ops_by_kind: [AtomicU64; 6],
    flushes: AtomicU64,
    bytes_written: AtomicU64,
    bytes_verified: AtomicU64,
    errors: Mutex<Vec<String>>,
}

impl Shared<'_> {
    fn fail(&self, what: String) {
        self.errors.lock().expect("errors lock").push(what);
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Counts one more operation; false when the run is over.
    fn next_op(&self) -> bool {
        !self.stop.load(Ordering::Relaxed)
            && Instant::now() < self.deadline
            && self.started_ops.fetch_add(1, Ordering::Relaxed) < self.opts.max_ops
    }
}

/// One channel's connection with the limits of its session.
struct Channel<'c> {
    conn: &'c mut Conn,
    tree_id: u32,
    io_bytes: u32,
}

/// Run the soak. Errors setting up (login, binding, the directory) are in the report too.
pub fn run_soak(opts: &SoakOptions) -> SoakReport {
    let mut report = SoakReport {
        clients: opts.clients,
        ..SoakReport::default()
    };
    let started = Instant::now();
    let mut sessions = Vec::new();
    for index in 0..opts.clients {
        match connect_client(opts) {
            Ok(s) => sessions.push(s),
            Err(e) => {
                report
                    .errors
                    .push(format!("client {index}: connecting: {e}"));
                return report;
            }
        }
    }
    report.channels = sessions.iter().map(|(_, extra)| 1 + extra.len()).sum();
    if let Err(e) = make_dir(&mut sessions[0].0, &opts.dir) {
        report.errors.push(format!("creating {}: {e}", opts.dir));
        return report;
    }
    let shared = Shared {
        opts,
        deadline: started + opts.duration,
        stop: AtomicBool::new(false),
        started_ops: AtomicU64::new(0),
        ops_by_kind: Default::default(),
        flushes: AtomicU64::new(0),
        bytes_written: AtomicU64::new(0),
        bytes_verified: AtomicU64::new(0),
        errors: Mutex::new(Vec::new()),
    };
    let clients: Vec<Client> = (0..opts.clients)
        .map(|index| Client {
            index,
            model: Mutex::new(Model::default()),
        })
        .collect();
    std::thread::scope(|scope| {
        for (client, (session, extra)) in clients.iter().zip(sessions.iter_mut()) {
            let tree_id = session.tree_id;
            let io_bytes = io_limit(session);
            let conns = std::iter::once(&mut session.conn).chain(extra.iter_mut());
            for (channel_index, conn) in conns.enumerate() {
                let shared = &shared;
                let seed = opts.seed ^ ((client.index as u64) << 32) ^ channel_index as u64;
                scope.spawn(move || {
                    let mut ch = Channel {
                        conn,
                        tree_id,
                        io_bytes,
                    };
                    channel_loop(&mut ch, client, shared, channel_index, seed)
                });
            }
        }
    });
    for (client, (session, _)) in clients.iter().zip(sessions.iter_mut()) {
        let mut ch = Channel {
            tree_id: session.tree_id,
            io_bytes: io_limit(session),
            conn: &mut session.conn,
        };
        let model = client.model.lock().expect("model lock");
        for (name, content) in &model.files {
            match read_file(&mut ch, name) {
                Ok(got) if &got == content => {
                    report.final_files += 1;
                    report.final_bytes_verified += got.len() as u64;
                }
                Ok(got) => report.errors.push(format!(
                    "client {}: final read of {name}: {}",
                    client.index,
                    describe_difference(&got, content)
                )),
                Err(e) => report.errors.push(format!(
                    "client {}: final read of {name}: {e}",
                    client.index
                )),
            }
        }
    }
    for (i, n) in shared.ops_by_kind.iter().enumerate() {
        report.ops_by_kind[i] = n.load(Ordering::Relaxed);
    }
    report.flushes = shared.flushes.load(Ordering::Relaxed);
    report.bytes_written = shared.bytes_written.load(Ordering::Relaxed);
    report.bytes_verified = shared.bytes_verified.load(Ordering::Relaxed);
    let mut errors = shared.errors.into_inner().expect("errors lock");
    errors.append(&mut report.errors);
    report.errors = errors;
    report.elapsed = started.elapsed();
    report
}

fn connect_client(opts: &SoakOptions) -> Result<(Session, Vec<Conn>)> {
    let session = login(opts.addr, &opts.unc, &opts.login)?;
    let mut extra = Vec::new();
    for _ in 1..opts.channels {
        extra.push(session.bind(opts.addr, &opts.login)?);
    }
    Ok((session, extra))
}

fn io_limit(s: &Session) -> u32 {
    MAX_IO_BYTES
        .min(s.negotiated.max_read_size)
        .min(s.negotiated.max_write_size)
        .max(4096)
}

fn make_dir(s: &mut Session, name: &str) -> Result<()> {
    let args = CreateArgs {
        desired_access: access::FILE_READ_ATTRIBUTES | access::SYNCHRONIZE,
        file_attributes: 0,
        share_access: SHARE_ALL,
        disposition: disposition::OPEN_IF,
        options: options::DIRECTORY_FILE,
    };
    let d = files::open(&mut s.conn, s.tree_id, name, &args)?;
    files::close(&mut s.conn, s.tree_id, &d.file_id)
}

fn channel_loop(
    ch: &mut Channel<'_>,
    client: &Client,
    shared: &Shared<'_>,
    channel_index: usize,
    seed: u64,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    while shared.next_op() {
        let claim = claim(client, shared.opts, &mut rng);
        let kind = claim.kind;
        let name = claim.name.clone();
        let result = run_op(ch, claim, client, shared, &mut rng);
        let mut model = client.model.lock().expect("model lock");
        model.busy.remove(&name);
        match result {
            Ok(Outcome::Kept(content)) => {
                model.files.insert(name, content);
            }
            Ok(Outcome::Renamed(to, content)) => {
                model.files.remove(&name);
                model.files.insert(to, content);
            }
            Ok(Outcome::Deleted) => {
                model.files.remove(&name);
            }
            Err(e) => {
                // What the file holds now is unknown: no longer checked.
                model.files.remove(&name);
                drop(model);
                shared.fail(format!(
                    "client {} channel {channel_index}: {} {name}: {e}",
                    client.index,
                    kind.name()
                ));
                return;
            }
        }
        shared.ops_by_kind[kind as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// Pick the next operation and mark its file busy.
fn claim(client: &Client, opts: &SoakOptions, rng: &mut StdRng) -> Claim {
    let mut model = client.model.lock().expect("model lock");
    let mut free: Vec<&String> = model
        .files
        .keys()
        .filter(|n| !model.busy.contains(*n))
        .collect();
    free.sort(); // HashMap order is random per process; keep runs reproducible from the seed
    let room = model.files.len() + model.busy.len() < opts.files_per_client;
    let create = free.is_empty() || (room && rng.gen_ratio(1, 6));
    let (kind, name, content) = if create {
        let name = new_name(&mut model, client.index, &opts.dir);
        (OpKind::Create, name, Vec::new())
    } else {
        let name = free[rng.gen_range(0..free.len())].clone();
        let kind = match rng.gen_range(0..100) {
            0..=34 => OpKind::Write,
            35..=69 => OpKind::Read,
            70..=81 => OpKind::Rename,
            82..=89 => OpKind::Truncate,
            _ => OpKind::Delete,
        };
        let content = model.files[&name].clone();
        (kind, name, content)
    };
    model.busy.insert(name.clone());
    Claim {
        kind,
        name,
        content,
    }
}

fn new_name(model: &mut Model, client: usize, dir: &str) -> String {
    model.next_name += 1;
    format!("{dir}\\c{client}-f{}", model.next_name)
}

fn run_op(
    ch: &mut Channel<'_>,
    claim: Claim,
    client: &Client,
    shared: &Shared<'_>,
    rng: &mut StdRng,
) -> Result<Outcome> {
    let Claim {
        kind,
        name,
        mut content,
    } = claim;
    let max = shared.opts.max_file_bytes;
    match kind {
        OpKind::Create => {
            let len = rng.gen_range(0..=max);
            content = random_bytes(rng, len);
            let f = files::open(ch.conn, ch.tree_id, &name, &file_args(disposition::CREATE))?;
            if f.create_action != FILE_CREATED {
                return Err(mismatch(format!("create action {}", f.create_action)));
            }
            write_all(ch, &f.file_id, 0, &content, shared)?;
            files::close(ch.conn, ch.tree_id, &f.file_id)?;
            Ok(Outcome::Kept(content))
        }
        OpKind::Write => {
            // Anywhere in the file or a little past its end (a hole that must read as zeros).
            let offset = rng.gen_range(0..=(content.len() + 8192).min(max - 1));
            let len = rng.gen_range(1..=(max - offset).min(2 * ch.io_bytes as usize));
            let data = random_bytes(rng, len);
            let f = files::open(ch.conn, ch.tree_id, &name, &file_args(disposition::OPEN))?;
            write_all(ch, &f.file_id, offset as u64, &data, shared)?;
            if rng.gen_ratio(1, 4) {
                files::flush(ch.conn, ch.tree_id, &f.file_id)?;
                shared.flushes.fetch_add(1, Ordering::Relaxed);
            }
            files::close(ch.conn, ch.tree_id, &f.file_id)?;
            if content.len() < offset + len {
                content.resize(offset + len, 0);
            }
            content[offset..offset + len].copy_from_slice(&data);
            Ok(Outcome::Kept(content))
        }
        OpKind::Read => {
            let got = read_file(ch, &name)?;
            if got != content {
                return Err(mismatch(describe_difference(&got, &content)));
            }
            shared
                .bytes_verified
                .fetch_add(got.len() as u64, Ordering::Relaxed);
            Ok(Outcome::Kept(content))
        }
        OpKind::Rename => {
            let to = new_name(
                &mut client.model.lock().expect("model lock"),
                client.index,
                &shared.opts.dir,
            );
            let f = files::open(ch.conn, ch.tree_id, &name, &file_args(disposition::OPEN))?;
            files::rename(ch.conn, ch.tree_id, &f.file_id, &to, false)?;
            files::close(ch.conn, ch.tree_id, &f.file_id)?;
            expect_gone(ch, &name)?;
            Ok(Outcome::Renamed(to, content))
        }
        OpKind::Truncate => {
            let len = rng.gen_range(0..=content.len());
            let f = files::open(ch.conn, ch.tree_id, &name, &file_args(disposition::OPEN))?;
            files::set_end_of_file(ch.conn, ch.tree_id, &f.file_id, len as u64)?;
            files::close(ch.conn, ch.tree_id, &f.file_id)?;
            content.truncate(len);
            Ok(Outcome::Kept(content))
        }
        OpKind::Delete => {
            files::delete(ch.conn, ch.tree_id, &name)?;
            expect_gone(ch, &name)?;
            Ok(Outcome::Deleted)
        }
    }
}

fn mismatch(what: String) -> Error {
    Error::Protocol(format!("verify: {what}"))
}

/// Opening `name` must fail with STATUS_OBJECT_NAME_NOT_FOUND.
fn expect_gone(ch: &mut Channel<'_>, name: &str) -> Result<()> {
    match files::open(ch.conn, ch.tree_id, name, &file_args(disposition::OPEN)) {
        Err(Error::Status(NtStatus::OBJECT_NAME_NOT_FOUND)) => Ok(()),
        Err(e) => Err(e),
        Ok(f) => {
            files::close(ch.conn, ch.tree_id, &f.file_id)?;
            Err(mismatch(format!("{name} still exists")))
        }
    }
}

fn random_bytes(rng: &mut StdRng, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rng.fill(&mut v[..]);
    v
}

/// Write `data` at `offset` in WRITEs of at most the channel's I/O size, each acknowledged in
/// full.
fn write_all(
    ch: &mut Channel<'_>,
    file_id: &[u8; 16],
    offset: u64,
    data: &[u8],
    shared: &Shared<'_>,
) -> Result<()> {
    for (i, chunk) in data.chunks(ch.io_bytes as usize).enumerate() {
        let at = offset + (i * ch.io_bytes as usize) as u64;
        let n = files::write(ch.conn, ch.tree_id, file_id, at, chunk)?;
        if n as usize != chunk.len() {
            return Err(mismatch(format!(
                "WRITE of {} bytes at {at} acknowledged {n}",
                chunk.len()
            )));
        }
        shared
            .bytes_written
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
    }
    Ok(())
}

/// Open `name`, read it to its end, close it. The size CREATE reported must match.
fn read_file(ch: &mut Channel<'_>, name: &str) -> Result<Vec<u8>> {
    let mut args = file_args(disposition::OPEN);
    args.desired_access = access::FILE_READ_DATA | access::FILE_READ_ATTRIBUTES;
    let f = files::open(ch.conn, ch.tree_id, name, &args)?;
    let mut out = Vec::with_capacity(f.end_of_file as usize);
    loop {
        let got = files::read(
            ch.conn,
            ch.tree_id,
            &f.file_id,
            out.len() as u64,
            ch.io_bytes,
        )?;
        let short = got.len() < ch.io_bytes as usize;
        out.extend_from_slice(&got);
        if short {
            break;
        }
    }
    files::close(ch.conn, ch.tree_id, &f.file_id)?;
    if out.len() as u64 != f.end_of_file {
        return Err(mismatch(format!(
            "{name}: CREATE said {} bytes, read {}",
            f.end_of_file,
            out.len()
        )));
    }
    Ok(out)
}

/// "N bytes, expected M; first difference at byte K".
pub fn describe_difference(got: &[u8], expected: &[u8]) -> String {
    let first = got
        .iter()
        .zip(expected)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(expected.len()));
    format!(
        "read {} bytes, expected {}; first difference at byte {first}",
        got.len(),
        expected.len()
    )
}

/// Descriptors and resident memory of a process and its descendants (a server's workers).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessUsage {
    pub processes: usize,
    pub fds: usize,
    pub rss_kib: u64,
}

/// Read /proc for `pid` and every descendant (via /proc/PID/task/TID/children).
pub fn process_tree_usage(pid: u32) -> std::io::Result<ProcessUsage> {
    let mut usage = ProcessUsage::default();
    let mut pending = vec![pid];
    while let Some(p) = pending.pop() {
        let base = Path::new("/proc").join(p.to_string());
        usage.processes += 1;
        usage.fds += std::fs::read_dir(base.join("fd"))?.count();
        let status = std::fs::read_to_string(base.join("status"))?;
        usage.rss_kib += status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        for task in std::fs::read_dir(base.join("task"))? {
            let children = std::fs::read_to_string(task?.path().join("children"))?;
            pending.extend(
                children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<u32>().ok()),
            );
        }
    }
    Ok(usage)
}

/// Wait (up to `timeout`) until the server's descriptor count is at most `fds`; the last
/// measurement either way.
pub fn wait_for_fds(pid: u32, fds: usize, timeout: Duration) -> std::io::Result<ProcessUsage> {
    let deadline = Instant::now() + timeout;
    loop {
        let u = process_tree_usage(pid)?;
        if u.fds <= fds || Instant::now() >= deadline {
            return Ok(u);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_are_described() {
        assert_eq!(
            describe_difference(b"abcd", b"abxd"),
            "read 4 bytes, expected 4; first difference at byte 2"
        );
        assert_eq!(
            describe_difference(b"ab", b"abc"),
            "read 2 bytes, expected 3; first difference at byte 2"
        );
    }

    #[test]
    fn own_process_usage_is_measured() {
        let u = process_tree_usage(std::process::id()).unwrap();
        assert!(u.processes >= 1);
        assert!(u.fds >= 3, "stdin, stdout, stderr at least: {u:?}");
        assert!(u.rss_kib > 0);
        assert!(process_tree_usage(u32::MAX).is_err());
    }
}
