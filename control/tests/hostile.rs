//! Hostile input and limits over real sockets against a real `smb3d serve` (issue 6): malformed
//! and oversized PDUs, compound chains, credits and message ids, other sessions' ids, signing and
//! encryption failures, password guessing, stalled and silent peers, thousands of idle
//! connections, and paths that try to leave the share.
//!
//! Every case checks three things: the documented status or a dropped connection, a line in the
//! server's log, and that a new, well-behaved client is still served afterwards.
//! docs/RELIABILITY.md lists the cases with their outcomes.

mod common;

use std::net::TcpStream;
use std::os::unix::fs::symlink;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::smb::*;
use common::{TestServer, PASSWORD};
use smb3bench::client::conn::{Conn, Request, Response};
use smb3bench::client::msgs;
use smb3bench::client::session::{self, Session};
use smb3d_protocol::crypto::Signer;
use smb3d_protocol::dialect::Cipher;
use smb3d_protocol::header::{flags, Command, Header, HEADER_BYTES};
use smb3d_protocol::transform::TRANSFORM_HEADER_BYTES;
use smb3d_protocol::NtStatus;

/// Send a hand-made request on a logged-in session's connection (signed when the session signs)
/// and return the server's answer, or None if it closed the connection.
fn raw_call(s: &mut Session, hdr: &Header, body: &[u8]) -> Option<Response> {
    let mut msg = message(hdr, body);
    if s.conn.security().sign_requests {
        sign(&mut msg, s.conn.security().signer.as_deref());
    }
    s.conn.tx.send_raw(&frame(&msg)).ok()?;
    s.conn.rx.recv().ok()
}

fn sign(msg: &mut [u8], signer: Option<&Signer>) {
    let f = u32::from_le_bytes(msg[16..20].try_into().unwrap()) | flags::SIGNED;
    msg[16..20].copy_from_slice(&f.to_le_bytes());
    signer.expect("session signer").sign(msg);
}

/// A header for the next message id of a logged-in session.
fn next_header(s: &mut Session, command: Command) -> Header {
    let id = s.conn.tx.reserve_message_ids(1).expect("credits");
    request_header(command as u16, id, s.session_id, s.tree_id)
}

fn echo_body() -> Vec<u8> {
    let mut b = Vec::new();
    msgs::encode_echo(&mut b);
    b
}

fn status_of(resp: Option<Response>, case: &str) -> NtStatus {
    resp.unwrap_or_else(|| panic!("{case}: connection closed instead of an error response"))
        .status()
}

#[test]
fn truncated_and_oversized_pdus_drop_the_connection() {
    let mut server = TestServer::start(&[]);
    let addr = server_addr(&server);
    let cases: [(&str, Vec<u8>); 5] = [
        ("length over the 16 MiB field", vec![0, 0xFF, 0xFF, 0xFF]),
        ("pre-session PDU over 64 KiB", vec![0, 0x01, 0x00, 0x01]),
        ("zero length", vec![0, 0, 0, 0]),
        (
            "NetBIOS session message type",
            vec![0x85, 0, 0, 4, 1, 2, 3, 4],
        ),
        (
            "SMB2 header cut at 20 bytes",
            frame(&[
                0xFE, b'S', b'M', b'B', 64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ]),
        ),
    ];
    for (case, bytes) in &cases {
        let mut conn = Conn::connect(addr).expect("connect");
        conn.tx.send_raw(bytes).expect("send");
        assert_closed(&server, conn.rx.stream(), case);
    }
    assert_logged(
        &server,
        "invalid transport header or oversized PDU",
        "oversized",
    );
    assert_logged(&server, "malformed SMB2 header", "truncated header");

    // After logging on the limit is a WRITE's size; one byte more drops the connection.
    let mut s = login(&server);
    let over = smb3d_protocol::limits::MAX_PDU_BYTES + 1;
    let mut head = vec![0u8; 4];
    smb3d_protocol::framing::write_frame_header(&mut head, over);
    s.conn.tx.send_raw(&head).expect("send");
    assert_closed(
        &server,
        s.conn.rx.stream(),
        "PDU over MAX_PDU_BYTES after login",
    );

    // A NEGOTIATE whose body stops short is refused with a status, not a crash.
    let mut conn = Conn::connect(addr).expect("connect");
    conn.rx.set_read_timeout(Some(REPLY_WAIT)).unwrap();
    let msg = message(
        &request_header(Command::Negotiate as u16, 0, 0, 0),
        &[36, 0, 5, 0],
    );
    conn.tx.send_raw(&frame(&msg)).expect("send");
    let status = conn.rx.recv().map(|r| r.status());
    assert!(
        matches!(status, Ok(NtStatus::INVALID_PARAMETER)),
        "truncated NEGOTIATE body: {status:?}"
    );
    assert_logged(
        &server,
        "request refused: STATUS_INVALID_PARAMETER",
        "truncated NEGOTIATE",
    );
    assert_served(&mut server);
}

#[test]
fn lengths_and_offsets_outside_the_message_are_refused() {
    let mut server = TestServer::start(&[]);
    let mut s = login(&server);
    let file = create(&mut s, "target.txt", FILE_OPEN_IF).expect("create");
    let oob_cases: Vec<(&str, Command, Vec<u8>)> = vec![
        (
            "CREATE NameOffset/NameLength past the end",
            Command::Create,
            {
                let mut b = Vec::new();
                b.extend_from_slice(&57u16.to_le_bytes());
                b.extend_from_slice(&[0; 2]);
                b.extend_from_slice(&2u32.to_le_bytes());
                b.extend_from_slice(&[0; 16]);
                b.extend_from_slice(&0x0012_019Fu32.to_le_bytes());
                b.extend_from_slice(&0x80u32.to_le_bytes());
                b.extend_from_slice(&7u32.to_le_bytes());
                b.extend_from_slice(&1u32.to_le_bytes());
                b.extend_from_slice(&0u32.to_le_bytes());
                b.extend_from_slice(&((HEADER_BYTES + 56) as u16).to_le_bytes());
                b.extend_from_slice(&4000u16.to_le_bytes()); // NameLength: far past the end
                b.extend_from_slice(&[0; 8]);
                b.extend_from_slice(b"a\0");
                b
            },
        ),
        ("CREATE contexts offset past the end", Command::Create, {
            let mut b = Vec::new();
            msgs::encode_create("x.txt", &create_args(), &mut b);
            // CreateContextsOffset/Length (body bytes 48..56) far outside.
            b[48..52].copy_from_slice(&0x0010_0000u32.to_le_bytes());
            b[52..56].copy_from_slice(&64u32.to_le_bytes());
            b
        }),
        ("WRITE DataOffset+Length past the end", Command::Write, {
            let mut b = Vec::new();
            msgs::encode_write_head(&file, 0, 60_000, &mut b);
            b.extend_from_slice(&[0x55; 16]);
            b
        }),
        ("WRITE DataOffset inside the header", Command::Write, {
            let mut b = Vec::new();
            msgs::encode_write_head(&file, 0, 16, &mut b);
            b[2..4].copy_from_slice(&8u16.to_le_bytes());
            b.extend_from_slice(&[0x55; 16]);
            b
        }),
        (
            "QUERY_INFO input buffer past the end",
            Command::QueryInfo,
            {
                let mut b = Vec::new();
                b.extend_from_slice(&41u16.to_le_bytes());
                b.push(1); // SMB2_0_INFO_FILE
                b.push(15); // FileFullEaInformation
                b.extend_from_slice(&4096u32.to_le_bytes());
                b.extend_from_slice(&((HEADER_BYTES + 40) as u16).to_le_bytes());
                b.extend_from_slice(&[0; 2]);
                b.extend_from_slice(&50_000u32.to_le_bytes()); // InputBufferLength
                b.extend_from_slice(&[0; 8]);
                b.extend_from_slice(&file);
                b.push(0);
                b
            },
        ),
        ("IOCTL input offset past the end", Command::Ioctl, {
            let mut b = Vec::new();
            msgs::encode_ioctl(0x0014_0204, &file, 1024, &mut b); // FSCTL_VALIDATE_NEGOTIATE_INFO
            b[24..28].copy_from_slice(&0x00FF_0000u32.to_le_bytes()); // InputOffset
            b[28..32].copy_from_slice(&24u32.to_le_bytes()); // InputCount
            b
        }),
        (
            "SESSION_SETUP security buffer past the end",
            Command::SessionSetup,
            {
                let mut b = Vec::new();
                msgs::encode_session_setup(0, 1, &[0x60; 8], &mut b);
                b[14..16].copy_from_slice(&9000u16.to_le_bytes()); // SecurityBufferLength
                b
            },
        ),
    ];
    for (case, command, body) in &oob_cases {
        let before = log_count(&server, "request refused");
        let mut hdr = next_header(&mut s, *command);
        if *command == Command::SessionSetup {
            hdr.session_id = 0;
        }
        let status = status_of(raw_call(&mut s, &hdr, body), case);
        assert_eq!(status, NtStatus::INVALID_PARAMETER, "{case}");
        assert_log_count_above(&server, "request refused", before, case);
    }
    assert_logged(
        &server,
        "request refused: STATUS_INVALID_PARAMETER",
        "out-of-bounds fields",
    );
    // The file is intact and the connection still serves.
    assert_eq!(read(&mut s, &file, 100), Err(NtStatus::END_OF_FILE));
    assert_served(&mut server);
}

fn create_args() -> msgs::CreateArgs {
    msgs::CreateArgs {
        desired_access: 0x0012_019F,
        file_attributes: 0x80,
        share_access: 7,
        disposition: FILE_OPEN_IF,
        options: 0x40,
    }
}

#[test]
fn unknown_commands() {
    let mut server = TestServer::start(&[]);
    // Before NEGOTIATE anything else drops the connection.
    let mut conn = Conn::connect(server_addr(&server)).expect("connect");
    let msg = message(&request_header(0x0013, 0, 0, 0), &[4, 0, 0, 0]);
    conn.tx.send_raw(&frame(&msg)).expect("send");
    assert_closed(
        &server,
        conn.rx.stream(),
        "unknown command before NEGOTIATE",
    );
    assert_logged(&server, "request before NEGOTIATE", "before NEGOTIATE");

    // After NEGOTIATE and after logging on: STATUS_INVALID_PARAMETER, and the connection lives.
    let mut s = login(&server);
    for command in [0x0013u16, 0x00FF, 0xFFFF] {
        let mut hdr = next_header(&mut s, Command::Echo);
        hdr.command = command;
        let status = status_of(raw_call(&mut s, &hdr, &[4, 0, 0, 0]), "unknown command");
        assert_eq!(status, NtStatus::INVALID_PARAMETER, "command {command:#x}");
    }
    assert_logged(&server, "unknown command", "unknown command");
    echo(&mut s.conn).expect("ECHO after unknown commands");
    assert_served(&mut server);
}

#[test]
fn compound_chains_that_loop_or_never_end() {
    let mut server = TestServer::start(&[]);
    let next_command_cases: [(&str, u32); 4] = [
        ("NextCommand pointing backwards", 0xFFFF_FFC0),
        ("NextCommand pointing into its own header", 8),
        ("NextCommand not 8-byte aligned", 68),
        ("NextCommand past the end", 4096),
    ];
    for (case, next) in next_command_cases {
        let mut s = login(&server);
        let mut hdr = next_header(&mut s, Command::Echo);
        hdr.next_command = next;
        let mut pdu = message(&hdr, &echo_body());
        pdu.resize(72, 0);
        let second = next_header(&mut s, Command::Echo);
        pdu.extend_from_slice(&message(&second, &echo_body()));
        s.conn.tx.send_raw(&frame(&pdu)).expect("send");
        assert_closed(&server, s.conn.rx.stream(), case);
    }
    assert_logged(&server, "bad NextCommand", "looping chain");

    // Five thousand ECHOs in one chain: refused after the 64-request limit.
    let mut s = login(&server);
    let first = s.conn.tx.reserve_message_ids(100).expect("credits");
    let mut pdu = Vec::new();
    for i in 0..5000u64 {
        let mut hdr = request_header(Command::Echo as u16, first + i, s.session_id, s.tree_id);
        hdr.next_command = if i + 1 < 5000 { 72 } else { 0 };
        pdu.extend_from_slice(&message(&hdr, &echo_body()));
        pdu.resize(pdu.len().next_multiple_of(8), 0);
    }
    assert!(pdu.len() < 64 * 1024 * 6);
    s.conn.tx.send_raw(&frame(&pdu)).ok();
    assert_closed(&server, s.conn.rx.stream(), "5000-request chain");
    assert_logged(&server, "compound chain too long", "long chain");
    assert_served(&mut server);
}

#[test]
fn credits_beyond_the_grant_and_message_ids_out_of_the_window() {
    const MAX_CREDITS: u16 = 64;
    let mut server = TestServer::start(&["--max-credits", "64"]);

    // Asking for 65535 credits gets no more than the connection's ceiling in total.
    let mut s = login(&server);
    let mut hdr = next_header(&mut s, Command::Echo);
    hdr.credits = u16::MAX;
    let resp = raw_call(&mut s, &hdr, &echo_body()).expect("ECHO answered");
    assert_eq!(resp.status(), NtStatus::SUCCESS);
    assert!(
        resp.header.credits <= MAX_CREDITS,
        "granted {} credits with a ceiling of {MAX_CREDITS}",
        resp.header.credits
    );

    type Tamper = fn(&mut Header, u64);
    let cases: [(&str, Tamper); 5] = [
        ("message id far beyond the window", |h, next| {
            h.message_id = next + 10_000
        }),
        ("message id u64::MAX", |h, _| h.message_id = u64::MAX),
        ("replayed message id", |h, _| h.message_id = 1),
        ("CreditCharge beyond the granted window", |h, next| {
            h.message_id = next;
            h.credit_charge = 4 * MAX_CREDITS;
        }),
        ("message id + CreditCharge overflowing", |h, _| {
            h.message_id = u64::MAX - 1;
            h.credit_charge = 8;
        }),
    ];
    for (case, tamper) in cases {
        let mut s = login(&server);
        // A few requests first, so that ids 1.. are used.
        echo(&mut s.conn).expect("ECHO");
        let mut hdr = next_header(&mut s, Command::Echo);
        let next = hdr.message_id;
        tamper(&mut hdr, next);
        let msg = message(&hdr, &echo_body());
        s.conn.tx.send_raw(&frame(&msg)).expect("send");
        assert_closed(&server, s.conn.rx.stream(), case);
    }
    assert_logged(&server, "outside the credit window", "credit window");
    assert_served(&mut server);
}

#[test]
fn sessions_trees_and_files_of_others_are_not_reachable() {
    let mut server = TestServer::start(&[]);
    let mut alice = login(&server);
    let secret = create(&mut alice, "secret.txt", FILE_OPEN_IF).expect("create");
    assert_eq!(
        write(&mut alice, &secret, b"alice's data"),
        NtStatus::SUCCESS
    );
    // A second tree in alice's session: tree id 2 exists only there.
    let mut req = Request::new(Command::TreeConnect, 0);
    msgs::encode_tree_connect(&unc(), &mut req.msg);
    let second_tree = alice
        .conn
        .call_ok(req)
        .expect("tree connect")
        .header
        .tree_id;
    assert_ne!(second_tree, alice.tree_id);

    // Another connection uses alice's session id without binding: the session is not there.
    let mut stranger = negotiated(&server);
    let mut req = Request::new(Command::TreeConnect, 0);
    msgs::encode_tree_connect(&unc(), &mut req.msg);
    stranger.set_session_id(alice.session_id);
    let status = stranger.call(req).expect("answered").status();
    assert_eq!(status, NtStatus::USER_SESSION_DELETED);
    let mut req = Request::new(Command::Read, alice.tree_id);
    msgs::encode_read(&secret, 0, 100, &mut req.msg);
    assert_eq!(
        stranger.call(req).expect("answered").status(),
        NtStatus::USER_SESSION_DELETED
    );
    assert_logged(
        &server,
        "request on a session not established on this connection",
        "session id",
    );

    // Bob, logged on as himself, uses alice's session id on his own connection.
    let mut bob = login(&server);
    let mut hdr = next_header(&mut bob, Command::Read);
    hdr.session_id = alice.session_id;
    let mut body = Vec::new();
    msgs::encode_read(&secret, 0, 100, &mut body);
    let status = status_of(
        raw_call(&mut bob, &hdr, &body),
        "alice's session on bob's connection",
    );
    assert_eq!(status, NtStatus::USER_SESSION_DELETED);

    // Bob names alice's second tree: not a tree of his session.
    let mut req = Request::new(Command::Read, second_tree);
    msgs::encode_read(&secret, 0, 100, &mut req.msg);
    assert_eq!(
        bob.conn.call(req).expect("answered").status(),
        NtStatus::NETWORK_NAME_DELETED
    );
    assert_logged(&server, "tree id not connected in this session", "tree id");

    // Bob names alice's file id in his own tree: not an open of his session.
    assert_eq!(read(&mut bob, &secret, 100), Err(NtStatus::FILE_CLOSED));
    assert_eq!(
        write(&mut bob, &secret, b"bob was here"),
        NtStatus::FILE_CLOSED
    );
    assert_eq!(close(&mut bob, &secret), NtStatus::FILE_CLOSED);
    assert_logged(&server, "file id not open in this session", "file id");

    // Alice's open and data are untouched.
    assert_eq!(
        read(&mut alice, &secret, 100).expect("read"),
        b"alice's data"
    );
    assert_eq!(close(&mut alice, &secret), NtStatus::SUCCESS);
    assert_served(&mut server);
}

#[test]
fn unsigned_and_badly_signed_requests_are_refused() {
    let mut server = TestServer::start(&["--signing", "required"]);
    let mut s = login(&server);
    assert!(
        s.conn.security().sign_requests,
        "the client signs on a signing-required server"
    );
    let signer = s.conn.security().signer.clone();

    // Unsigned.
    let hdr = next_header(&mut s, Command::Echo);
    let msg = message(&hdr, &echo_body());
    s.conn.tx.send_raw(&frame(&msg)).expect("send");
    let status = status_of(s.conn.rx.recv().ok(), "unsigned");
    assert_eq!(status, NtStatus::ACCESS_DENIED);
    assert_logged(
        &server,
        "unsigned request on a signing-required session",
        "unsigned",
    );

    // A wrong signature, and a correct one over a body changed afterwards.
    for (case, flip_at) in [
        ("wrong signature", 50usize),
        ("body changed after signing", HEADER_BYTES + 2),
    ] {
        let hdr = next_header(&mut s, Command::Echo);
        let mut msg = message(&hdr, &echo_body());
        sign(&mut msg, signer.as_deref());
        msg[flip_at] ^= 0x01;
        s.conn.tx.send_raw(&frame(&msg)).expect("send");
        let status = status_of(s.conn.rx.recv().ok(), case);
        assert_eq!(status, NtStatus::ACCESS_DENIED, "{case}");
    }
    assert_logged(&server, "bad signature", "bad signature");
    echo(&mut s.conn).expect("a signed ECHO still works");
    assert_served(&mut server);
}

#[test]
fn transform_that_fails_decryption_drops_the_connection() {
    let mut server = TestServer::start(&[]);
    type Tamper = fn(&mut Vec<u8>, u64);
    let cases: [(&str, Tamper); 4] = [
        ("ciphertext changed", |pdu, _| {
            let last = pdu.len() - 1;
            pdu[last] ^= 0x80;
        }),
        ("authentication tag changed", |pdu, _| pdu[4] ^= 0x01),
        ("unknown session id", |pdu, _| {
            pdu[44..52].copy_from_slice(&0x1234_5678u64.to_le_bytes())
        }),
        ("transform header cut short", |pdu, _| pdu.truncate(30)),
    ];
    for (case, tamper) in cases {
        let mut s = login_with(&server, Some(Cipher::Aes128Gcm));
        assert!(s.encrypting());
        let sec = s.conn.security().clone();
        let enc = sec.encryptor.clone().expect("encryption key");
        let hdr = next_header(&mut s, Command::Echo);
        let msg = message(&hdr, &echo_body());
        let mut pdu = vec![0u8; TRANSFORM_HEADER_BYTES];
        pdu.extend_from_slice(&msg);
        let nonce = s.conn.tx.next_nonce(Cipher::Aes128Gcm);
        enc.encrypt_in_place(&nonce, s.session_id, &mut pdu);
        tamper(&mut pdu, s.session_id);
        s.conn.tx.send_raw(&frame(&pdu)).expect("send");
        assert_closed(&server, s.conn.rx.stream(), case);
    }
    assert_logged(&server, "decryption failed", "decryption");
    assert_logged(
        &server,
        "encrypted message for unknown session",
        "unknown session",
    );
    assert_logged(&server, "bad transform header", "short transform header");
    assert_served(&mut server);
}

#[test]
fn many_wrong_passwords() {
    let mut server = TestServer::start(&[]);
    let addr = server_addr(&server);
    // One guess per connection...
    for _ in 0..20 {
        let r = session::login(addr, &unc(), &login_options("wrong-password", None));
        assert!(
            matches!(&r, Err(e) if e.status_code() == NtStatus::LOGON_FAILURE.0),
            "expected LOGON_FAILURE"
        );
    }
    // ...and many on one connection.
    let mut conn = negotiated(&server);
    let opts = login_options("wrong-password", None);
    for attempt in 0..20 {
        conn.set_session_id(0);
        let neg_hash = smb3d_protocol::crypto::PreauthHash::new();
        match session::authenticate(&mut conn, &opts.creds, 0, neg_hash) {
            Err(e) if e.status_code() == NtStatus::LOGON_FAILURE.0 => {}
            Err(e) => panic!("attempt {attempt}: {e}"),
            Ok(_) => panic!("attempt {attempt}: a wrong password was accepted"),
        }
    }
    assert!(log_count(&server, "authentication failed") >= 40);
    // The right password still works on that same connection.
    conn.set_session_id(0);
    let right = login_options(PASSWORD, None);
    session::authenticate(
        &mut conn,
        &right.creds,
        0,
        smb3d_protocol::crypto::PreauthHash::new(),
    )
    .expect("the right password after 20 wrong ones");
    assert_served(&mut server);
}

#[test]
fn stalled_and_silent_connections_time_out() {
    let mut server = TestServer::start(&[
        "--login-timeout-secs",
        "2",
        "--partial-pdu-timeout-secs",
        "2",
        "--idle-timeout-secs",
        "3",
    ]);
    let addr = server_addr(&server);
    let started = Instant::now();
    let silent = TcpStream::connect(addr).expect("connect");
    let unauthenticated = negotiated(&server);
    let mut half = login(&server);
    // Half a PDU: a transport header announcing 1000 bytes, then 100 of them.
    let mut head = vec![0u8; 4];
    smb3d_protocol::framing::write_frame_header(&mut head, 1000);
    head.extend_from_slice(&[0xFE, b'S', b'M', b'B']);
    head.resize(104, 0);
    half.conn.tx.send_raw(&head).expect("send");
    let idle = login(&server);
    let mut busy = login(&server);
    let open = create(&mut busy, "kept-open.txt", FILE_OPEN_IF).expect("create");

    let window = Duration::from_secs(8);
    assert!(closed_by_server(&silent, window), "silent connection kept");
    assert!(
        closed_by_server(unauthenticated.rx.stream(), window),
        "negotiated-only connection kept"
    );
    assert!(
        closed_by_server(half.conn.rx.stream(), window),
        "half-sent PDU kept"
    );
    assert!(
        closed_by_server(idle.conn.rx.stream(), window),
        "idle connection kept"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "closed before the timeouts"
    );
    assert_logged(
        &server,
        "no session within the login timeout",
        "login timeout",
    );
    assert_logged(&server, "partial PDU not completed", "partial PDU");
    assert_logged(&server, "idle without open files", "idle timeout");

    // A connection with an open file is not idle, however quiet.
    while started.elapsed() < Duration::from_secs(5) {
        thread::sleep(Duration::from_millis(100));
    }
    echo(&mut busy.conn).expect("connection with an open file survives the idle timeout");
    assert_eq!(close(&mut busy, &open), NtStatus::SUCCESS);
    assert_served(&mut server);
}

/// Raise the limit on open files to at least `want`: the hard limit too when allowed (root),
/// else the soft one up to the hard one. Returns the soft limit now in force.
fn raise_nofile_limit(want: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local rlimit.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        if lim.rlim_cur >= want {
            return lim.rlim_cur;
        }
        let both = libc::rlimit {
            rlim_cur: want,
            rlim_max: lim.rlim_max.max(want),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &both) == 0 {
            return want;
        }
        lim.rlim_cur = lim.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    lim.rlim_cur
}

/// (VmRSS in KiB, open descriptors) of process `pid`.
fn rss_and_fds(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .count();
    (rss_kib, fds)
}

/// Wait until the server holds at least `want` descriptors (the kernel accepted that many
/// connections) and its RSS has settled (the reactors have set them up).
fn wait_for_fds(pid: u32, want: usize) -> (u64, usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while rss_and_fds(pid).1 < want && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    settled_rss(pid)
}

/// (VmRSS, descriptors) once two readings 300 ms apart agree.
fn settled_rss(pid: u32) -> (u64, usize) {
    let mut last = rss_and_fds(pid);
    for _ in 0..20 {
        thread::sleep(Duration::from_millis(300));
        let now = rss_and_fds(pid);
        if now == last {
            break;
        }
        last = now;
    }
    last
}

#[test]
fn thousands_of_idle_connections() {
    const WANTED: usize = 2000;
    const LOGGED_ON: usize = 500;
    // Both ends of every connection live on this machine, each process holding its own end.
    let limit = raise_nofile_limit((WANTED + LOGGED_ON) as u64 + 256) as usize;
    // Without the right to raise the hard limit, as many as it allows (the figure is per
    // connection either way).
    let connections = WANTED.min(limit.saturating_sub(LOGGED_ON + 256));
    assert!(
        connections >= 500,
        "RLIMIT_NOFILE {limit} leaves room for {connections} connections"
    );
    // Started after raising the limit, so the server inherits it.
    let mut server = TestServer::start(&[]);
    let pid = server.pid();
    assert_served(&mut server);
    thread::sleep(Duration::from_millis(200));
    let (rss_before, fds_before) = rss_and_fds(pid);

    let addr = server_addr(&server);
    let mut idle: Vec<TcpStream> = (0..connections)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();
    let (rss_silent, fds_silent) = wait_for_fds(pid, fds_before + connections);
    assert!(
        fds_silent >= fds_before + connections,
        "server accepted {} of {connections}",
        fds_silent - fds_before
    );
    let silent_bytes = (rss_silent.saturating_sub(rss_before)) * 1024 / connections as u64;

    // The same connections after NEGOTIATE (state and a receive buffer each).
    let neg = negotiate_pdu();
    for s in &mut idle {
        std::io::Write::write_all(s, &neg).expect("send NEGOTIATE");
    }
    for s in &mut idle {
        read_one_frame(s);
    }
    let (rss_negotiated, _) = settled_rss(pid);
    let negotiated_bytes = (rss_negotiated.saturating_sub(rss_before)) * 1024 / connections as u64;

    // Logged-on connections that then sit idle (a session, a tree, a 64 KiB receive buffer).
    let sessions: Vec<Session> = (0..LOGGED_ON).map(|_| login(&server)).collect();
    let (rss_sessions, _) = settled_rss(pid);
    let session_bytes = (rss_sessions.saturating_sub(rss_negotiated)) * 1024 / LOGGED_ON as u64;
    println!(
        "idle connections: {connections}; server RSS {rss_before} KiB before, {rss_silent} KiB silent \
         ({silent_bytes} B/connection), {rss_negotiated} KiB negotiated ({negotiated_bytes} B/connection); \
         {LOGGED_ON} more logged on: {rss_sessions} KiB ({session_bytes} B/connection)"
    );
    assert!(
        silent_bytes < 8 * 1024,
        "{silent_bytes} B per silent connection"
    );
    assert!(
        negotiated_bytes < 16 * 1024,
        "{negotiated_bytes} B per negotiated connection"
    );
    assert!(
        session_bytes < 48 * 1024,
        "{session_bytes} B per logged-on connection"
    );
    assert_served(&mut server);
    drop(sessions);

    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(10);
    while rss_and_fds(pid).1 > fds_before && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        rss_and_fds(pid).1,
        fds_before,
        "descriptors left after the clients went away"
    );
    assert_served(&mut server);
}

/// A framed SMB 3.1.1 NEGOTIATE from smb3bench's encoder.
fn negotiate_pdu() -> Vec<u8> {
    let ciphers = [Cipher::Aes128Gcm];
    let algs = [smb3d_protocol::dialect::SigningAlgorithm::AesGmac];
    let offer = msgs::NegotiateOffer {
        security_mode: 1,
        capabilities: 0,
        client_guid: [7; 16],
        dialects: &[0x0311],
        salt: [1; 32],
        ciphers: &ciphers,
        signing_algorithms: &algs,
    };
    let mut msg = message(&request_header(Command::Negotiate as u16, 0, 0, 0), &[]);
    msgs::encode_negotiate(&offer, &mut msg);
    frame(&msg)
}

fn read_one_frame(s: &mut TcpStream) {
    use std::io::Read;
    s.set_read_timeout(Some(REPLY_WAIT)).expect("timeout");
    let mut head = [0u8; 4];
    s.read_exact(&mut head).expect("NEGOTIATE response");
    let len = u32::from_be_bytes([0, head[1], head[2], head[3]]) as usize;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).expect("NEGOTIATE response body");
}

/// A share with a directory, a file, and symlinks pointing out of it; and a directory outside.
struct EscapeFixture {
    outside: std::path::PathBuf,
}

fn escape_fixture(server: &TestServer) -> EscapeFixture {
    let outside = server.share_dir.parent().expect("parent").join("outside");
    std::fs::create_dir_all(&outside).expect("outside dir");
    std::fs::write(outside.join("secret"), b"outside the share").expect("outside file");
    std::fs::create_dir_all(server.share_dir.join("sub")).expect("sub");
    std::fs::write(server.share_dir.join("sub").join("inside"), b"inside").expect("inside file");
    symlink("../outside", server.share_dir.join("rel_link")).expect("relative symlink");
    symlink(&outside, server.share_dir.join("abs_link")).expect("absolute symlink");
    symlink(outside.join("secret"), server.share_dir.join("file_link")).expect("file symlink");
    symlink("/etc", server.share_dir.join("etc_link")).expect("/etc symlink");
    EscapeFixture { outside }
}

#[test]
fn path_escapes_stay_inside_the_share() {
    let mut server = TestServer::start(&[]);
    let fx = escape_fixture(&server);
    let mut s = login(&server);
    let cases: [(&str, &[NtStatus]); 19] = [
        ("..\\outside\\secret", &[NtStatus::OBJECT_NAME_INVALID]),
        (
            "..\\..\\..\\..\\etc\\passwd",
            &[NtStatus::OBJECT_NAME_INVALID],
        ),
        (
            "sub\\..\\..\\outside\\secret",
            &[NtStatus::OBJECT_NAME_INVALID],
        ),
        ("sub\\..", &[NtStatus::OBJECT_NAME_INVALID]),
        ("\\etc\\passwd", &[NtStatus::INVALID_PARAMETER]),
        ("/etc/passwd", &[NtStatus::OBJECT_NAME_INVALID]),
        ("\\\\?\\C:\\etc\\passwd", &[NtStatus::OBJECT_NAME_INVALID]),
        (
            "\\\\?\\UNC\\127.0.0.1\\share\\..\\..\\etc\\passwd",
            &[NtStatus::OBJECT_NAME_INVALID],
        ),
        (
            "\\\\127.0.0.1\\share\\sub\\inside",
            &[NtStatus::OBJECT_NAME_INVALID],
        ),
        ("C:\\etc\\passwd", &[NtStatus::OBJECT_NAME_INVALID]),
        ("C:..\\outside\\secret", &[NtStatus::OBJECT_NAME_INVALID]),
        ("sub\\inside:evil", &[NtStatus::OBJECT_NAME_INVALID]),
        ("sub\\inside::$DATA", &[NtStatus::OBJECT_NAME_INVALID]),
        ("rel_link\\secret", &[NtStatus::ACCESS_DENIED]),
        ("abs_link\\secret", &[NtStatus::ACCESS_DENIED]),
        ("file_link", &[NtStatus::ACCESS_DENIED]),
        ("etc_link\\passwd", &[NtStatus::ACCESS_DENIED]),
        ("rel_link\\new-file", &[NtStatus::ACCESS_DENIED]),
        ("sub\\.\\inside", &[NtStatus::OBJECT_NAME_INVALID]),
    ];
    for (name, expected) in cases {
        let result = create(&mut s, name, FILE_OPEN_IF);
        match result {
            Err(status) => assert!(
                expected.contains(&status),
                "{name}: {status}, expected {expected:?}"
            ),
            Ok(_) => panic!("{name}: opened"),
        }
    }
    let outside_entries: Vec<_> = std::fs::read_dir(&fx.outside)
        .expect("outside")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(
        outside_entries,
        ["secret"],
        "something was created outside the share"
    );
    assert_logged(&server, "name refused", "names");
    assert_logged(&server, "lookup would leave the share", "symlinks");
    // Inside names still work.
    let id = create(&mut s, "sub\\inside", FILE_OPEN).expect("inside file");
    assert_eq!(read(&mut s, &id, 100).expect("read"), b"inside");
    assert_served(&mut server);
}

/// RENAME_EXCHANGE swaps two names atomically (renameat2(2)).
fn exchange(a: &std::path::Path, b: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let a = std::ffi::CString::new(a.as_os_str().as_bytes()).expect("path");
    let b = std::ffi::CString::new(b.as_os_str().as_bytes()).expect("path");
    // SAFETY: two valid NUL-terminated paths; renameat2 reads them only.
    unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        ) == 0
    }
}

#[test]
fn symlink_swapped_in_during_a_race_never_leads_outside() {
    let mut server = TestServer::start(&[]);
    let fx = escape_fixture(&server);
    // "dir" is a real directory holding "f"; "swap" a symlink to the outside directory, which
    // holds an "f" too. A thread exchanges the two names as fast as it can.
    let dir = server.share_dir.join("dir");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("f"), b"inside").expect("inside f");
    std::fs::write(fx.outside.join("f"), b"outside").expect("outside f");
    let swap = server.share_dir.join("swap");
    symlink(&fx.outside, &swap).expect("swap symlink");

    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicUsize::new(0));
    let swapper = {
        let (stop, swaps, dir, swap) = (stop.clone(), swaps.clone(), dir.clone(), swap.clone());
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if exchange(&dir, &swap) {
                    swaps.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let mut s = login(&server);
    let (mut inside, mut refused) = (0, 0);
    let started = Instant::now();
    let mut i = 0;
    while started.elapsed() < Duration::from_secs(2) {
        i += 1;
        // Reads through the name, and creates through it.
        match create(&mut s, "dir\\f", FILE_OPEN) {
            Ok(id) => {
                let data = read(&mut s, &id, 100).expect("read");
                assert_eq!(
                    data, b"inside",
                    "an open through a swapped symlink read outside data"
                );
                inside += 1;
                close(&mut s, &id);
            }
            Err(_) => refused += 1,
        }
        if let Ok(id) = create(&mut s, &format!("dir\\new-{i}"), FILE_OPEN_IF) {
            close(&mut s, &id);
        }
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().expect("swapper");
    let outside_entries: Vec<String> = std::fs::read_dir(&fx.outside)
        .expect("outside")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        outside_entries.iter().all(|n| n == "secret" || n == "f"),
        "created outside the share: {outside_entries:?}"
    );
    assert_eq!(std::fs::read(fx.outside.join("f")).expect("f"), b"outside");
    println!(
        "symlink race: {} swaps, {inside} opens inside, {refused} refused",
        swaps.load(Ordering::Relaxed)
    );
    assert!(swaps.load(Ordering::Relaxed) > 100, "the race did not run");
    assert!(
        inside > 0 && refused > 0,
        "both outcomes should occur: {inside} inside, {refused} refused"
    );
    assert_logged(&server, "lookup would leave the share", "race");
    assert_served(&mut server);
}
