//! Speaking SMB to the test server directly: a well-behaved SMB 3.1.1 client (smb3bench's, with
//! its NTLMv2, signing and encryption) and hand-made, possibly malformed PDUs on its connections.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use smb3bench::client::conn::{Conn, Request, Response};
use smb3bench::client::msgs::{self, CreateArgs};
use smb3bench::client::ntlm::Credentials;
use smb3bench::client::session::{self, LoginOptions, Session};
use smb3d_protocol::dialect::{Cipher, SigningAlgorithm};
use smb3d_protocol::framing::write_frame_header;
use smb3d_protocol::header::{Command, Header, HEADER_BYTES};
use smb3d_protocol::NtStatus;

use super::{TestServer, PASSWORD, SHARE_NAME, USER};

/// How long a test waits for the server to answer or to close a connection.
pub const REPLY_WAIT: Duration = Duration::from_secs(5);

pub fn server_addr(server: &TestServer) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, server.port))
}

pub fn unc() -> String {
    format!("\\\\127.0.0.1\\{SHARE_NAME}")
}

pub fn login_options(password: &str, encrypt: Option<Cipher>) -> LoginOptions {
    LoginOptions {
        creds: Credentials {
            user: USER.to_string(),
            domain: String::new(),
            password: password.to_string(),
        },
        sign: false,
        encrypt,
        signing: SigningAlgorithm::AesGmac,
    }
}

/// Log in as the test user and connect to the share; responses wait at most [`REPLY_WAIT`].
pub fn login(server: &TestServer) -> Session {
    login_with(server, None)
}

pub fn login_with(server: &TestServer, encrypt: Option<Cipher>) -> Session {
    let s = session::login(
        server_addr(server),
        &unc(),
        &login_options(PASSWORD, encrypt),
    )
    .unwrap_or_else(|e| panic!("login failed: {e}\nlog:\n{}", server.log()));
    s.conn
        .rx
        .set_read_timeout(Some(REPLY_WAIT))
        .expect("read timeout");
    s
}

/// A connection that has negotiated SMB 3.1.1 and nothing more.
pub fn negotiated(server: &TestServer) -> Conn {
    let mut conn = Conn::connect(server_addr(server)).expect("connect");
    conn.rx
        .set_read_timeout(Some(REPLY_WAIT))
        .expect("read timeout");
    session::negotiate(&mut conn, &login_options(PASSWORD, None), rand_guid()).expect("negotiate");
    conn
}

fn rand_guid() -> [u8; 16] {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    (nanos ^ u128::from(std::process::id()) << 64).to_le_bytes()
}

/// Open (or create) `name` in the session's tree for reading and writing.
pub fn create(s: &mut Session, name: &str, disposition: u32) -> Result<[u8; 16], NtStatus> {
    let mut req = Request::new(Command::Create, s.tree_id);
    msgs::encode_create(
        name,
        &CreateArgs {
            desired_access: 0x0012_019F, // FILE_GENERIC_READ | FILE_GENERIC_WRITE
            file_attributes: 0x80,
            share_access: 7,
            disposition,
            options: 0x40, // FILE_NON_DIRECTORY_FILE
        },
        &mut req.msg,
    );
    let resp = s.conn.call(req).expect("CREATE answered");
    match resp.status() {
        NtStatus::SUCCESS => Ok(msgs::decode_create(&resp.msg).expect("decode").file_id),
        status => Err(status),
    }
}

/// FILE_OPEN and FILE_OPEN_IF (MS-SMB2 2.2.13 CreateDisposition).
pub const FILE_OPEN: u32 = 1;
pub const FILE_OPEN_IF: u32 = 3;

pub fn write(s: &mut Session, file_id: &[u8; 16], data: &[u8]) -> NtStatus {
    let mut req = Request::with_payload(Command::Write, s.tree_id, data.len() as u32);
    msgs::encode_write_head(file_id, 0, data.len() as u32, &mut req.msg);
    req.msg.extend_from_slice(data);
    s.conn.call(req).expect("WRITE answered").status()
}

pub fn read(s: &mut Session, file_id: &[u8; 16], len: u32) -> Result<Vec<u8>, NtStatus> {
    let mut req = Request::with_payload(Command::Read, s.tree_id, len);
    msgs::encode_read(file_id, 0, len, &mut req.msg);
    let resp = s.conn.call(req).expect("READ answered");
    if resp.status() != NtStatus::SUCCESS {
        return Err(resp.status());
    }
    let range = msgs::decode_read(&resp.msg).expect("decode READ");
    Ok(resp.msg[range].to_vec())
}

pub fn close(s: &mut Session, file_id: &[u8; 16]) -> NtStatus {
    let mut req = Request::new(Command::Close, s.tree_id);
    msgs::encode_close(file_id, &mut req.msg);
    s.conn.call(req).expect("CLOSE answered").status()
}

pub fn echo(conn: &mut Conn) -> Result<Response, smb3bench::client::conn::Error> {
    let mut req = Request::new(Command::Echo, 0);
    msgs::encode_echo(&mut req.msg);
    conn.call(req)
}

/// A new, well-behaved client gets served: it logs in, writes a file, reads it back, closes it.
/// Also checks the server process is still alive.
pub fn assert_served(server: &mut TestServer) {
    server.assert_running();
    let mut s = login(server);
    let name = format!("served-{}.txt", rand_guid()[0]);
    let id = create(&mut s, &name, FILE_OPEN_IF).expect("well-behaved CREATE");
    let data = b"still serving well-behaved clients";
    assert_eq!(write(&mut s, &id, data), NtStatus::SUCCESS);
    assert_eq!(read(&mut s, &id, 4096).expect("READ"), data);
    assert_eq!(close(&mut s, &id), NtStatus::SUCCESS);
    server.assert_running();
}

/// One SMB2 message: `hdr` then `body`.
pub fn message(hdr: &Header, body: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(HEADER_BYTES + body.len());
    hdr.encode(&mut msg);
    msg.extend_from_slice(body);
    msg
}

/// A request header with the usual fields set.
pub fn request_header(command: u16, message_id: u64, session_id: u64, tree_id: u32) -> Header {
    Header {
        credit_charge: 1,
        command,
        credits: 1,
        message_id,
        process_id: 0xFEFF,
        tree_id,
        session_id,
        ..Default::default()
    }
}

/// `pdu` behind its Direct-TCP transport header.
pub fn frame(pdu: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 4];
    write_frame_header(&mut out, pdu.len());
    out.extend_from_slice(pdu);
    out
}

/// Whether the server closes `stream` within `within` (EOF or reset); bytes it sends before
/// closing (error responses) are skipped.
pub fn closed_by_server(stream: &TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut stream = stream.try_clone().expect("clone stream");
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("read timeout");
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return true,
        }
    }
}

/// Panics unless the server closes `stream` within [`REPLY_WAIT`].
pub fn assert_closed(server: &TestServer, stream: &TcpStream, case: &str) {
    assert!(
        closed_by_server(stream, REPLY_WAIT),
        "{case}: the server kept the connection open\nlog:\n{}",
        server.log()
    );
}

/// Panics unless the server's log gets a line containing `needle` within [`REPLY_WAIT`].
pub fn assert_logged(server: &TestServer, needle: &str, case: &str) {
    let deadline = Instant::now() + REPLY_WAIT;
    while Instant::now() < deadline {
        if server.log().contains(needle) {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "{case}: no log line with {needle:?}\nlog:\n{}",
        server.log()
    );
}

/// Panics unless `needle` occurs in the server's log more than `before` times within
/// [`REPLY_WAIT`] (a new line for this case).
pub fn assert_log_count_above(server: &TestServer, needle: &str, before: usize, case: &str) {
    let deadline = Instant::now() + REPLY_WAIT;
    while log_count(server, needle) <= before {
        assert!(
            Instant::now() < deadline,
            "{case}: no new log line with {needle:?}\nlog:\n{}",
            server.log()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// How many times `needle` occurs in the server's log.
pub fn log_count(server: &TestServer, needle: &str) -> usize {
    server.log().matches(needle).count()
}
