//! Break failover over a dead channel, measured from the client's side (the `smb3failover`
//! binary; `scripts/bench-break-failover` and `bench/tests/break_failover_netns.rs` drive it).
//!
//! One run: a holder session with two channels opens a file asking for a batch oplock and writes
//! data over both channels; then its first channel goes dark (iptables rules dropping both
//! directions of that connection, in the current network namespace); at once a second client
//! (its own session and ClientGuid) opens the same file. The server must break the holder's
//! oplock; it tries the first channel, finds it dead, and must send the break again on the
//! second one. The holder acknowledges the break where it arrived; the second client's open
//! completes and it reads the data back.
//!
//! Measured: from the moment the channel went dark (the rules are in place) to the break
//! arriving on the live channel; the second open's latency; the acknowledgment's status.

use std::net::SocketAddr;
use std::process::Command as Process;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use smb3d_protocol::header::Command;
use smb3d_protocol::messages::oplock_break::level;
use smb3d_protocol::NtStatus;

use crate::client::conn::{Conn, Error, Receiver, Request, Response, Result, Sender};
use crate::client::msgs::{self, CreateArgs};
use crate::client::session::{login, LoginOptions, Session};

/// What the holder holds. Leases join here once the server grants them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakKind {
    /// A batch oplock (MS-SMB2 2.2.13 SMB2_OPLOCK_LEVEL_BATCH).
    Batch,
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
    /// The level the break asked the holder to go down to.
    pub break_level: u8,
    /// From the first channel going dark (or, unblocked, from the second open being sent) to
    /// the break arriving on a live channel.
    pub dark_to_break: Duration,
    /// The server's answer to the acknowledgment.
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

fn close(s: &mut Session, file_id: &[u8; 16]) -> Result<()> {
    let mut req = Request::new(Command::Close, s.tree_id);
    msgs::encode_close(file_id, &mut req.msg);
    s.conn.call_ok(req).map(|_| ())
}

/// One run; `seed` varies the data written.
pub fn run_once(o: &Options, seed: u8) -> Result<Outcome> {
    let requested = match o.kind {
        BreakKind::Batch => level::BATCH,
    };
    let mut holder = login(o.target, &o.unc, &o.login)?;
    if !holder.supports_multichannel() {
        return Err(protocol("the server does not offer multichannel"));
    }
    let mut bound = holder.bind(o.second, &o.login)?;
    let mut other = login(o.target, &o.unc, &o.login)?;

    let mut req = Request::new(Command::Create, holder.tree_id);
    msgs::encode_create_with_oplock(
        &o.file_name,
        &open_args(OVERWRITE_IF),
        requested,
        &mut req.msg,
    );
    let created = msgs::decode_create(&holder.conn.call_ok(req)?.msg)?;
    if created.oplock_level != requested {
        return Err(protocol(format!(
            "asked for oplock level 0x{requested:02x}, got 0x{:02x}",
            created.oplock_level
        )));
    }
    let file_id = created.file_id;
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
                    .map_err(|_| protocol("no oplock break arrived in time"))?;
                match msg {
                    Ok(m) if m.is_oplock_break_notification() => {
                        break (ch, at, msgs::decode_oplock_break(&m.msg)?)
                    }
                    Ok(_) => continue,
                    // The dark channel may end (the server gives up on it); the other must not.
                    Err(_) if ch == 0 && block.is_some() => continue,
                    Err(e) => return Err(e),
                }
            };
            if brk.file_id != file_id {
                return Err(protocol("oplock break for another file"));
            }
            let new_level = if brk.oplock_level == level::II {
                level::II
            } else {
                level::NONE
            };
            let mut ack = Request::new(Command::OplockBreak, tree_id);
            msgs::encode_oplock_break_ack(new_level, &file_id, &mut ack.msg);
            let ack_id = senders[channel].send(ack)?;
            let ack_status = loop {
                let left = deadline.saturating_duration_since(Instant::now());
                let (ch, _, msg) = from_channels
                    .recv_timeout(left)
                    .map_err(|_| protocol("no answer to the break acknowledgment"))?;
                match msg {
                    Ok(m) if ch == channel && m.header.message_id == ack_id => break m.status(),
                    Ok(_) => continue,
                    Err(_) if ch != channel => continue,
                    Err(e) => return Err(e),
                }
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
                break_level: brk.oplock_level,
                dark_to_break: arrived - dark_at,
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
