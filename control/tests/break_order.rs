//! A break that a request causes on the client's own connection goes out before the responses
//! to the requests that follow it. smbtorture relies on it: smb2.lease.rename_wait takes the
//! lease key of the rename's break when the next CREATE is answered, and acknowledged a zero key
//! (OBJECT_NAME_NOT_FOUND) when the break came after that CREATE's response.

mod common;

use common::smb::*;
use common::TestServer;
use smb3bench::client::conn::{is_interim, Request, Response};
use smb3bench::client::msgs::{self, CreateArgs};
use smb3d_protocol::header::{flags, Command};
use smb3d_protocol::NtStatus;

/// MS-SMB2 2.2.13 RequestedOplockLevel.
const OPLOCK_BATCH: u8 = 0x09;
const OPLOCK_LEVEL_II: u8 = 0x01;

fn create_args(disposition: u32) -> CreateArgs {
    CreateArgs {
        desired_access: 0x0012_019F, // FILE_GENERIC_READ | FILE_GENERIC_WRITE
        file_attributes: 0x80,
        share_access: 7,
        disposition,
        options: 0x40, // FILE_NON_DIRECTORY_FILE
    }
}

/// The next response that is not an interim one.
fn next_final(s: &mut smb3bench::client::session::Session) -> Response {
    loop {
        let r = s.conn.rx.recv().expect("a response");
        if !is_interim(&r) {
            return r;
        }
    }
}

#[test]
fn own_break_precedes_the_next_response() {
    let server = TestServer::start(&[]);
    let mut s = login(&server);
    let name = "break-order.txt";

    let mut req = Request::new(Command::Create, s.tree_id);
    msgs::encode_create_with_oplock(name, &create_args(FILE_OPEN_IF), OPLOCK_BATCH, &mut req.msg);
    let holder = msgs::decode_create(&s.conn.call(req).expect("CREATE").msg).expect("decode");
    assert_eq!(holder.oplock_level, OPLOCK_BATCH);

    // One write: a second open of the file (it breaks the batch oplock and waits), then an
    // ECHO. The server reads both at once.
    let create_id = s.conn.tx.reserve_message_ids(1).expect("credits");
    let echo_id = s.conn.tx.reserve_message_ids(1).expect("credits");
    let mut body = Vec::new();
    msgs::encode_create(name, &create_args(FILE_OPEN), &mut body);
    let create = request_header(Command::Create as u16, create_id, s.session_id, s.tree_id);
    let mut echo_body = Vec::new();
    msgs::encode_echo(&mut echo_body);
    let echo = request_header(Command::Echo as u16, echo_id, s.session_id, 0);
    assert!(
        !s.conn.security().sign_requests,
        "the test sends unsigned requests"
    );
    let mut both = frame(&message(&create, &body));
    both.extend_from_slice(&frame(&message(&echo, &echo_body)));
    s.conn.tx.send_raw(&both).expect("send");

    let first = next_final(&mut s);
    assert!(
        first.is_oplock_break_notification(),
        "the break must come before the ECHO's response; got command {} message id {}\nlog:\n{}",
        first.header.command,
        first.header.message_id,
        server.log()
    );
    let brk = msgs::decode_oplock_break(&first.msg).expect("decode break");
    assert_eq!(
        (brk.file_id, brk.oplock_level),
        (holder.file_id, OPLOCK_LEVEL_II)
    );
    let second = next_final(&mut s);
    assert_eq!(
        (second.header.command, second.header.message_id),
        (Command::Echo as u16, echo_id)
    );

    // Acknowledge: the waiting CREATE completes.
    let mut ack = Request::new(Command::OplockBreak, s.tree_id);
    msgs::encode_oplock_break_ack(OPLOCK_LEVEL_II, &holder.file_id, &mut ack.msg);
    let ack_id = s.conn.tx.send(ack).expect("send ack");
    let mut answered = Vec::new();
    for _ in 0..2 {
        let r = next_final(&mut s);
        assert_eq!(
            r.status(),
            NtStatus::SUCCESS,
            "command {}",
            r.header.command
        );
        assert_eq!(
            r.header.flags & flags::SERVER_TO_REDIR,
            flags::SERVER_TO_REDIR
        );
        answered.push(r.header.message_id);
    }
    answered.sort_unstable();
    let mut expected = vec![create_id, ack_id];
    expected.sort_unstable();
    assert_eq!(answered, expected);
}
