//! The whole-connection harness: a client's Direct-TCP byte stream, cut into PDUs by the
//! framing, fed to the data plane's connection state machine (`smb3d_dataplane::connection`)
//! as the reactor would, without sockets or a ring: file I/O the connection hands out runs
//! here with pread/pwrite, parked requests are polled after each PDU. Each input gets a fresh
//! server whose share `share` is an empty temporary directory, and an `IPC$` share, like
//! `smb3d serve --share share=DIR`.
//!
//! Input: a selector byte, then the stream. An even selector feeds the stream as it is (it
//! starts with NEGOTIATE, SESSION_SETUP...). An odd one logs on for it: the harness feeds the
//! stream's first PDU (the client's NEGOTIATE, with MessageId m), then logs user `AUTH_USER` on
//! with NTLMSSP in SESSION_SETUPs with MessageIds m+1 and m+2 (the session is
//! `FUZZ_SESSION_ID`), then feeds the rest of the stream, which goes straight to TREE_CONNECT
//! and the file commands (a fuzzer cannot answer an NTLM challenge; the harness can). The work
//! per input is bounded: at most `MAX_PDUS` PDUs, files at most `MAX_FILE_BYTES` long
//! (RLIMIT_FSIZE).

use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Once};

use nix::libc;
use smb3d_dataplane::connection::{Connection, Disconnect, Environment};
use smb3d_dataplane::mailbox::ConnHandle;
use smb3d_dataplane::server::{ServerConfig, ServerState};
use smb3d_dataplane::share::{Requirement, Share, ShareKind};
use smb3d_protocol::auth::{nt_hash, ntlmssp, UserLookup};
use smb3d_protocol::framing::{parse_frame_header, Frame, FRAME_HEADER_BYTES};
use smb3d_protocol::header::{Command, Header, HEADER_BYTES, TRANSFORM_PROTOCOL_ID};
use smb3d_protocol::wire::Writer;

use crate::shared::*;

/// PDUs fed per input at most.
pub const MAX_PDUS: usize = 256;
/// Largest file the share may hold (writes, EndOfFile, allocation beyond it fail with EFBIG).
pub const MAX_FILE_BYTES: u64 = 16 << 20;
/// The first 8 bytes of this GUID seed the session id allocator: zeros make it start at 1.
const SERVER_GUID: [u8; 16] = [
    0, 0, 0, 0, 0, 0, 0, 0, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a,
];
/// Credits each logon request asks for: room for the stream's MessageIds.
const LOGON_CREDITS: u16 = 256;

/// What the server answered, for checks on a corpus (which handlers a seed reaches).
#[derive(Debug, Default)]
pub struct Outcome {
    /// (command, status) of every response message, in order; encrypted frames are skipped.
    pub responses: Vec<(u16, u32)>,
    /// Why the connection was dropped, if it was.
    pub disconnect: Option<String>,
}

/// Run one input (see the module documentation).
pub fn run(data: &[u8]) -> Outcome {
    static INIT: Once = Once::new();
    INIT.call_once(limit_file_size);
    let mut outcome = Outcome::default();
    let Some((&selector, stream)) = data.split_first() else {
        return outcome;
    };
    let share_dir = fresh_share_dir();
    let server = Arc::new(ServerState::new(
        ServerConfig::default(),
        shares(&share_dir),
        Arc::new(OneUser),
        SERVER_GUID,
    ));
    let handle = ConnHandle {
        reactor: 0,
        slot: 0,
        gen: 1,
    };
    let mut conn = Connection::new(server, "fuzz".into(), handle);
    let mut env = FixedEnv(0);
    let result = if selector & 1 == 1 {
        log_on_after_negotiate(&mut conn, stream, &mut env, &mut outcome)
    } else {
        feed(&mut conn, stream, &mut env, &mut outcome)
    };
    if let Err(Disconnect(why)) = result {
        outcome.disconnect = Some(why);
    }
    conn.teardown();
    let _ = std::fs::remove_dir_all(&share_dir);
    outcome
}

/// Feed the stream's PDUs; stops at the first incomplete one (the reactor would wait for more).
fn feed(
    conn: &mut Connection,
    mut stream: &[u8],
    env: &mut FixedEnv,
    outcome: &mut Outcome,
) -> Result<(), Disconnect> {
    for _ in 0..MAX_PDUS {
        let Some((mut pdu, rest)) = next_pdu(conn, stream)? else {
            return Ok(());
        };
        stream = rest;
        for frame in exchange(conn, &mut pdu, env)? {
            record(&frame, outcome);
        }
    }
    Ok(())
}

/// A stream's first PDU (a copy: it is decrypted in place) and the bytes after it.
type Split<'a> = (Vec<u8>, &'a [u8]);

/// The stream's first PDU and what follows it; `None` if it is incomplete.
fn next_pdu<'a>(conn: &Connection, stream: &'a [u8]) -> Result<Option<Split<'a>>, Disconnect> {
    let len = match parse_frame_header(stream, conn.max_pdu_bytes()) {
        Frame::Pdu { len } => len,
        Frame::NeedMore => return Ok(None),
        Frame::Invalid { len } => return Err(Disconnect(format!("bad frame length {len}"))),
    };
    let end = FRAME_HEADER_BYTES + len;
    Ok(stream
        .get(FRAME_HEADER_BYTES..end)
        .map(|pdu| (pdu.to_vec(), &stream[end..])))
}

/// One PDU in, the frames the reactor would send out.
fn exchange(
    conn: &mut Connection,
    pdu: &mut [u8],
    env: &mut FixedEnv,
) -> Result<Vec<Vec<u8>>, Disconnect> {
    let mut out = Vec::new();
    conn.handle_pdu(pdu, env, &mut out)?;
    let file_io: Vec<_> = conn.take_file_io().collect();
    for io in file_io {
        out.push(io.run_blocking(pdu));
    }
    if conn.has_waits() {
        conn.poll_waits(env, &mut out)?;
    }
    Ok(out)
}

/// Note the command and status of each message of a response frame.
fn record(frame: &[u8], outcome: &mut Outcome) {
    let mut rest = frame.get(FRAME_HEADER_BYTES..).unwrap_or_default();
    if rest.starts_with(&TRANSFORM_PROTOCOL_ID) {
        return;
    }
    while let Ok(h) = Header::decode(rest) {
        outcome.responses.push((h.command, h.status));
        let next = h.next_command as usize;
        match rest.get(next..) {
            Some(r) if next >= HEADER_BYTES => rest = r,
            _ => break,
        }
    }
}

/// Feed the stream's first PDU (its NEGOTIATE), log `AUTH_USER` on with NTLMSSP (SPNEGO-wrapped,
/// as clients send it), then feed the rest. A logon that fails leaves the stream without a
/// session, as a wrong password would.
fn log_on_after_negotiate(
    conn: &mut Connection,
    stream: &[u8],
    env: &mut FixedEnv,
    outcome: &mut Outcome,
) -> Result<(), Disconnect> {
    let Some((mut negotiate, rest)) = next_pdu(conn, stream)? else {
        return Ok(());
    };
    let message_id = Header::decode(&negotiate).map_or(0, |h| h.message_id);
    for frame in exchange(conn, &mut negotiate, env)? {
        record(&frame, outcome);
    }
    let first = spnego_init(&ntlm_negotiate_message(ntlmssp::DEFAULT_CLIENT_FLAGS));
    let mut pdu = request(
        Command::SessionSetup,
        message_id.wrapping_add(1),
        0,
        &session_setup_body(&first),
    );
    let replies = exchange(conn, &mut pdu, env)?;
    for frame in &replies {
        record(frame, outcome);
    }
    let challenge = replies.first().and_then(|frame| {
        let at = frame.windows(8).position(|w| w == ntlmssp::SIGNATURE)?;
        let session_id = reply_header(frame)?.session_id;
        Some((frame[at..].to_vec(), session_id))
    });
    if let Some((challenge, session_id)) = challenge {
        let second = spnego_resp(&ntlm_authenticate(&challenge, false));
        let body = session_setup_body(&second);
        let mut pdu = request(
            Command::SessionSetup,
            message_id.wrapping_add(2),
            session_id,
            &body,
        );
        for frame in exchange(conn, &mut pdu, env)? {
            record(&frame, outcome);
        }
    }
    feed(conn, rest, env, outcome)
}

fn reply_header(frame: &[u8]) -> Option<Header> {
    Header::decode(frame.get(FRAME_HEADER_BYTES..)?).ok()
}

fn request(command: Command, message_id: u64, session_id: u64, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    Header {
        command: command as u16,
        credit_charge: 1,
        credits: LOGON_CREDITS,
        message_id,
        session_id,
        ..Default::default()
    }
    .encode(&mut m);
    m.put_bytes(body);
    m
}

/// MS-SMB2 2.2.5: a SESSION_SETUP carrying `token`.
fn session_setup_body(token: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.put_u16(25);
    b.put_u8(0);
    b.put_u8(1);
    b.put_u32(0);
    b.put_u32(0);
    b.put_u16((HEADER_BYTES + 24) as u16);
    b.put_u16(token.len() as u16);
    b.put_u64(0);
    b.put_bytes(token);
    b
}

fn shares(dir: &PathBuf) -> Vec<Arc<Share>> {
    let root = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(dir)
        .expect("open share directory");
    vec![
        Arc::new(Share {
            name: "share".into(),
            kind: ShareKind::Disk,
            path: dir.clone(),
            root: Some(OwnedFd::from(root)),
            read_only: false,
            encrypt: Requirement::Off,
        }),
        Arc::new(Share {
            name: "IPC$".into(),
            kind: ShareKind::Ipc,
            path: PathBuf::new(),
            root: None,
            read_only: true,
            encrypt: Requirement::Off,
        }),
    ]
}

/// An empty directory for this input's share (one per process, emptied between inputs).
fn fresh_share_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("smb3d-fuzz-share-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create share directory");
    dir
}

/// Cap file sizes so no input fills the disk (a FileAllocationInformation of terabytes).
fn limit_file_size() {
    use nix::sys::resource::{setrlimit, Resource};
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: ignoring SIGXFSZ installs no handler code; over the limit, write/ftruncate/
    // fallocate then fail with EFBIG instead of the signal killing the process.
    unsafe { signal(Signal::SIGXFSZ, SigHandler::SigIgn) }.expect("ignore SIGXFSZ");
    setrlimit(Resource::RLIMIT_FSIZE, MAX_FILE_BYTES, MAX_FILE_BYTES).expect("RLIMIT_FSIZE");
}

struct OneUser;

impl UserLookup for OneUser {
    fn nt_hash(&self, user: &str) -> Option<[u8; 16]> {
        user.eq_ignore_ascii_case(AUTH_USER)
            .then(|| nt_hash(AUTH_PASSWORD))
    }
}

/// The fixed clock of the `auth` target, and repeatable "random" bytes.
struct FixedEnv(u8);

impl Environment for FixedEnv {
    fn now_filetime(&self) -> u64 {
        AUTH_NOW_FILETIME
    }

    fn random_bytes(&mut self, out: &mut [u8]) {
        for b in out {
            self.0 = self.0.wrapping_mul(73).wrapping_add(41);
            *b = self.0;
        }
    }
}
