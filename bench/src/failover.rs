//! Break failover over a dead channel, measured from the client's side (the `smb3failover`
//! binary; `scripts/bench-break-failover` and `bench/tests/break_failover_netns.rs` drive it).
//!
//! One run: a holder session with two channels opens a file asking for a batch oplock or an RWH
//! lease (v2) and writes data over both channels; then its first channel goes dark (iptables
//! rules dropping both directions of that connection, in the current network namespace); at once
//! a second client (its own session and ClientGuid) opens the same file. The server must break
//! the holder's oplock or lease; it tries the first channel, finds it dead, and must send the
//! break again on the second one (for a lease: any channel of the holder's ClientGuid). The
//! holder acknowledges the break where it arrived; the second client's open completes and it
//! reads the data back.
//!
//! Measured: from the moment the channel went dark (the rules are in place) to the break
//! arriving on the live channel; the second open's latency; the acknowledgment's status.

use std::net::SocketAddr;
use std::process::Command as Process;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use smb3d_protocol::header::Command;
use smb3d_protocol::messages::lease::{self, state, LeaseContext};
use smb3d_protocol::messages::oplock_break::level;
use smb3d_protocol::NtStatus;

use crate::client::conn::{Conn, Error, Receiver, Request, Response, Result, Sender};
use crate::client::msgs::{self, CreateArgs};
use crate::client::session::{login, LoginOptions, Session};

/// What the holder holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakKind {
    /// A batch oplock (MS-SMB2 2.2.13 SMB2_OPLOCK_LEVEL_BATCH).
    Batch,
    /// A read-write-handle lease, v2 create context (MS-SMB2 2.2.13.2.10).
    Lease,
}

/// How the holder's first channel goes dark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Block {
    /// Not at all: the break is delivered on the first channel (the baseline).
    None,
    /// iptables DROP rules for the connection's local port, in INPUT and OUTPUT.
    Iptables,
}

pub struct Options {
    pub target: SocketAddr,
    pub unc: String,
    /// Where the holder's second channel connects.
    pub second: SocketAddr,
    pub login: LoginOptions,
    pub kind: BreakKind,
    pub block: Block,
    pub file_name: String,
    /// Bytes the holder writes before the break (half over each channel).
    pub data_bytes: usize,
    /// How long to wait for the break and for the second open.
    pub timeout: Duration,
}

/// The result of one run.
#[derive(Debug)]
pub struct Outcome {
    /// Index of the holder's channel the break arrived on (0: the first, the one blocked).
    pub break_channel: usize,
    pub break_address: SocketAddr,
    /// What the break asked the holder to go down to: the oplock level, or the lease state
    /// (`lease::state` bits).
    pub break_to: u32,
    /// From the first channel going dark (or, unblocked, from the second open being sent) to
    /// the break arriving on a live channel.
    pub dark_to_break: Duration,
    /// Whether the break asked for an acknowledgment (oplock breaks always do).
    pub acked: bool,
    /// The server's answer to the acknowledgment (SUCCESS when none was asked for).
    pub ack_status: NtStatus,
    /// The second client's CREATE: request to final response.
    pub open_latency: Duration,
    /// Bytes the second client read back that match what the holder wrote.
    pub verified_bytes: usize,
}

const FILE_READ_WRITE: u32 = 0x0012_019f; // FILE_GENERIC_READ | FILE_GENERIC_WRITE
const SHARE_ALL: u32 = 7; // read, write, delete
const OVERWRITE_IF: u32 = 5;
const OPEN: u32 = 1;
const NON_DIRECTORY_FILE: u32 = 0x40;
const IO_CHUNK_BYTES: usize = 64 * 1024;

/// A position-dependent pattern, different for each run.
pub fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[2] ^ seed)
        .collect()
}

fn open_args(disposition: u32) -> CreateArgs {
    CreateArgs {
        desired_access: FILE_READ_WRITE,
        file_attributes: 0x80,
        share_access: SHARE_ALL,
        disposition,
        options: NON_DIRECTORY_FILE,
    }
}

fn protocol(msg: impl Into<String>) -> Error {
    Error::Protocol(msg.into())
}

/// iptables rules dropping one local port's traffic; removed on drop.
pub struct PortBlock {
    port: u16,
}

impl PortBlock {
    /// Refuses outside a named network namespace (`ip netns`): the rules belong in a test
    /// namespace, never in the host's.
    pub fn new(port: u16) -> Result<PortBlock> {
        if !in_named_netns() {
            return Err(protocol(
                "refusing to add iptables rules outside a named network namespace (run inside one \
                 with `ip netns exec`, as scripts/bench-break-failover does)",
            ));
        }
        let block = PortBlock { port };
        block.rules("-I")?;
        Ok(block)
    }

    fn rules(&self, op: &str) -> Result<()> {
        let port = self.port.to_string();
        for (chain, dir) in [("INPUT", "--dport"), ("OUTPUT", "--sport")] {
            let status = Process::new("iptables")
                .args(["-w", op, chain, "-p", "tcp", dir, &port, "-j", "DROP"])
                .status()
                .map_err(|e| protocol(format!("cannot run iptables: {e}")))?;
            if !status.success() {
                return Err(protocol(format!("iptables {op} {chain} failed: {status}")));
            }
        }
        Ok(())
    }
}

/// Whether this process's network namespace is one of those `ip netns` keeps in /run/netns.
fn in_named_netns() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(own) = std::fs::metadata("/proc/self/ns/net") else {
        return false;
    };
    let Ok(named) = std::fs::read_dir("/run/netns") else {
        return false;
    };
    named.flatten().any(|e| {
        std::fs::metadata(e.path()).is_ok_and(|m| m.dev() == own.dev() && m.ino() == own.ino())
    })
}

impl Drop for PortBlock {
    fn drop(&mut self) {
        let _ = self.rules("-D");
    }
}

/// What a channel's receiver thread hands over: its index, when, and the message.
type Received = (usize, Instant, Result<Response>);

fn spawn_receiver<'s>(
    scope: &'s std::thread::Scope<'s, '_>,
    channel: usize,
    mut rx: Receiver,
    to: mpsc::Sender<Received>,
) {
    scope.spawn(move || loop {
        let r = rx.recv();
        let failed = r.is_err();
        if to.send((channel, Instant::now(), r)).is_err() || failed {
            return;
        }
    });
}

fn write_over(
    conn: &mut Conn,
    tree_id: u32,
    file_id: &[u8; 16],
    offset: usize,
    data: &[u8],
) -> Result<()> {
    for (i, chunk) in data.chunks(IO_CHUNK_BYTES).enumerate() {
        let mut req = Request::with_payload(Command::Write, tree_id, chunk.len() as u32);
        let at = (offset + i * IO_CHUNK_BYTES) as u64;
        msgs::encode_write_head(file_id, at, chunk.len() as u32, &mut req.msg);
        req.msg.extend_from_slice(chunk);
        let resp = conn.call_ok(req)?;
        if msgs::decode_write(&resp.msg)? as usize != chunk.len() {
            return Err(protocol("short write"));
        }
    }
    Ok(())
}

/// Read `want.len()` bytes from the start of the file and count the leading bytes that match.
fn read_back(s: &mut Session, file_id: &[u8; 16], want: &[u8]) -> Result<usize> {
    let mut matching = 0;
    for chunk in want.chunks(IO_CHUNK_BYTES) {
        let mut req = Request::with_payload(Command::Read, s.tree_id, chunk.len() as u32);
        msgs::encode_read(file_id, matching as u64, chunk.len() as u32, &mut req.msg);
        let resp = s.conn.call_ok(req)?;
        let range = msgs::decode_read(&resp.msg)?;
        let got = &resp.msg[range];
        let same = got.iter().zip(chunk).take_while(|(a, b)| a == b).count();
        matching += same;
        if same < chunk.len() {
            break;
        }
    }
    Ok(matching)
}

/// The status of the answer to request `id` on `channel`; the other channel may end meanwhile.
fn await_answer(
    from_channels: &mpsc::Receiver<Received>,
    channel: usize,
    id: u64,
    deadline: Instant,
) -> Result<NtStatus> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let (ch, _, msg) = from_channels
            .recv_timeout(left)
            .map_err(|_| protocol("no answer to the break acknowledgment"))?;
        match msg {
            Ok(m) if ch == channel && m.header.message_id == id => return Ok(m.status()),
            Ok(_) => continue,
            Err(_) if ch != channel => continue,
            Err(e) => return Err(e),
        }
    }
}

fn close(s: &mut Session, file_id: &[u8; 16]) -> Result<()> {
    let mut req = Request::new(Command::Close, s.tree_id);
    msgs::encode_close(file_id, &mut req.msg);
    s.conn.call_ok(req).map(|_| ())
}

/// What the holder was granted: the handle, and the lease key when it holds a lease.
struct Held {
    file_id: [u8; 16],
    lease_key: Option<[u8; 16]>,
}

/// A lease key unlikely to be any other client's: the process, the time and the run.
fn new_lease_key(seed: u8) -> [u8; 16] {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut key = [0; 16];
    key[..8].copy_from_slice(&nanos.to_le_bytes());
    key[8..12].copy_from_slice(&std::process::id().to_le_bytes());
    key[12] = seed;
    key
}

/// The holder's CREATE, checked for the oplock level or the full lease it asked for.
fn open_held(holder: &mut Session, o: &Options, seed: u8) -> Result<Held> {
    let mut req = Request::new(Command::Create, holder.tree_id);
    let args = open_args(OVERWRITE_IF);
    let lease = LeaseContext {
        key: new_lease_key(seed),
        state: state::ALL,
        flags: 0,
        version: 2,
        parent_key: [0; 16],
        epoch: 0,
    };
    match o.kind {
        BreakKind::Batch => {
            msgs::encode_create_with_oplock(&o.file_name, &args, level::BATCH, &mut req.msg)
        }
        BreakKind::Lease => {
            msgs::encode_create_with_lease(&o.file_name, &args, &lease, &mut req.msg)
        }
    }
    let created = msgs::decode_create(&holder.conn.call_ok(req)?.msg)?;
    match o.kind {
        BreakKind::Batch if created.oplock_level != level::BATCH => Err(protocol(format!(
            "asked for a batch oplock, got level 0x{:02x}",
            created.oplock_level
        ))),
        BreakKind::Batch => Ok(Held {
            file_id: created.file_id,
            lease_key: None,
        }),
        BreakKind::Lease => match created.lease {
            Some(l)
                if created.oplock_level == level::LEASE
                    && l.key == lease.key
                    && l.state == state::ALL =>
            {
                Ok(Held {
                    file_id: created.file_id,
                    lease_key: Some(lease.key),
                })
            }
            got => Err(protocol(format!(
                "asked for an RWH lease, got oplock level 0x{:02x}, lease {got:?}",
                created.oplock_level
            ))),
        },
    }
}

/// A break the holder received, and the acknowledgment that answers it.
struct Break {
    to: u32,
    ack: Option<Request>,
}

/// Whether `m` is the break of what `held` holds; then the acknowledgment to send (none for a
/// lease break that does not ask for one, MS-SMB2 2.2.23.2).
fn as_break(m: &Response, held: &Held, tree_id: u32) -> Result<Option<Break>> {
    match held.lease_key {
        None if m.is_oplock_break_notification() => {
            let brk = msgs::decode_oplock_break(&m.msg)?;
            if brk.file_id != held.file_id {
                return Err(protocol("oplock break for another file"));
            }
            let new_level = if brk.oplock_level == level::II {
                level::II
            } else {
                level::NONE
            };
            let mut ack = Request::new(Command::OplockBreak, tree_id);
            msgs::encode_oplock_break_ack(new_level, &held.file_id, &mut ack.msg);
            Ok(Some(Break {
                to: u32::from(brk.oplock_level),
                ack: Some(ack),
            }))
        }
        Some(key) if m.is_lease_break_notification() => {
            let brk = msgs::decode_lease_break(&m.msg)?;
            if brk.key != key {
                return Err(protocol("lease break for another lease key"));
            }
            let ack = (brk.flags & lease::NOTIFY_ACK_REQUIRED != 0).then(|| {
                // MS-SMB2 3.2.5.19.2: the ack carries the state the client keeps, at most the new one.
                let mut ack = Request::new(Command::OplockBreak, tree_id);
                msgs::encode_lease_break_ack(&key, brk.new_state, &mut ack.msg);
                ack
            });
            Ok(Some(Break {
                to: brk.new_state,
                ack,
            }))
        }
        _ => Ok(None),
    }
}

/// One run; `seed` varies the data written.
pub fn run_once(o: &Options, seed: u8) -> Result<Outcome> {
    let mut holder = login(o.target, &o.unc, &o.login)?;
    if !holder.supports_multichannel() {
        return Err(protocol("the server does not offer multichannel"));
    }
    let mut bound = holder.bind(o.second, &o.login)?;
    let mut other = login(o.target, &o.unc, &o.login)?;

    let held = open_held(&mut holder, o, seed)?;
    let file_id = held.file_id;
    let data = pattern(seed, o.data_bytes);
    let half = data.len() / 2;
    let tree_id = holder.tree_id;
    write_over(&mut holder.conn, tree_id, &file_id, 0, &data[..half])?;
    write_over(&mut bound, tree_id, &file_id, half, &data[half..])?;

    let addresses = [holder.conn.peer, bound.peer];
    let first_port = holder.conn.local_addr()?.port();
    let Session { conn, .. } = holder;
    let (tx0, rx0) = conn.split();
    let (tx1, rx1) = bound.split();
    let mut senders: [Sender; 2] = [tx0, tx1];

    std::thread::scope(|scope| {
        let (to_main, from_channels) = mpsc::channel::<Received>();
        spawn_receiver(scope, 0, rx0, to_main.clone());
        spawn_receiver(scope, 1, rx1, to_main);
        let result = (|| {
            let block = match o.block {
                Block::Iptables => Some(PortBlock::new(first_port)?),
                Block::None => None,
            };
            let dark_at = Instant::now();
            let opener = scope.spawn(move || {
                let mut req = Request::new(Command::Create, other.tree_id);
                msgs::encode_create(&o.file_name, &open_args(OPEN), &mut req.msg);
                let sent = Instant::now();
                let r = other.conn.call_ok(req);
                (other, r, sent.elapsed())
            });
            let deadline = dark_at + o.timeout;
            let (channel, arrived, brk) = loop {
                let left = deadline.saturating_duration_since(Instant::now());
                let (ch, at, msg) = from_channels
                    .recv_timeout(left)
                    .map_err(|_| protocol("no break arrived in time"))?;
                match msg {
                    Ok(m) => match as_break(&m, &held, tree_id)? {
                        Some(brk) => break (ch, at, brk),
                        None => continue,
                    },
                    // The dark channel may end (the server gives up on it); the other must not.
                    Err(_) if ch == 0 && block.is_some() => continue,
                    Err(e) => return Err(e),
                }
            };
            let acked = brk.ack.is_some();
            let ack_status = match brk.ack {
                Some(ack) => {
                    let ack_id = senders[channel].send(ack)?;
                    await_answer(&from_channels, channel, ack_id, deadline)?
                }
                None => NtStatus::SUCCESS,
            };
            let (mut other, opened, open_latency) =
                opener.join().map_err(|_| protocol("opener panicked"))?;
            let opened = msgs::decode_create(&opened?.msg)?;
            drop(block);
            let verified_bytes = read_back(&mut other, &opened.file_id, &data)?;
            close(&mut other, &opened.file_id)?;
            Ok(Outcome {
                break_channel: channel,
                break_address: addresses[channel],
                break_to: brk.to,
                dark_to_break: arrived - dark_at,
                acked,
                ack_status,
                open_latency,
                verified_bytes,
            })
        })();
        for s in &senders {
            s.close();
        }
        result
    })
}
