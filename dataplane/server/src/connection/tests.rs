//! The connection state machine driven in memory: bytes in, frames out.

use std::sync::Arc;

use smb3d_protocol::header::{flags, Command, Header, HEADER_BYTES};
use smb3d_protocol::messages::negotiate::NegotiateRequest;
use smb3d_protocol::wire::Writer;
use smb3d_protocol::NtStatus;

use super::{Connection, Environment};
use crate::server::{NoUsers, ServerConfig, ServerState};

struct FixedEnv(u8);

impl Environment for FixedEnv {
    fn now_filetime(&self) -> u64 {
        133_000_000_000_000_000
    }
    fn random_bytes(&mut self, out: &mut [u8]) {
        for b in out {
            self.0 = self.0.wrapping_mul(31).wrapping_add(7);
            *b = self.0;
        }
    }
}

fn connection() -> Connection {
    let server = ServerState::new(
        ServerConfig::default(),
        Vec::new(),
        Arc::new(NoUsers),
        [1; 16],
    );
    Connection::new(
        Arc::new(server),
        "test".into(),
        crate::mailbox::ConnHandle {
            reactor: 0,
            slot: 0,
            gen: 1,
        },
    )
}

fn request(command: Command, message_id: u64, body: &[u8]) -> Vec<u8> {
    let h = Header {
        command: command as u16,
        credits: 10,
        message_id,
        credit_charge: 1,
        ..Default::default()
    };
    let mut m = Vec::new();
    h.encode(&mut m);
    m.extend_from_slice(body);
    m
}

fn negotiate_body(dialects: &[u16]) -> Vec<u8> {
    let mut b = Vec::new();
    b.put_u16(36);
    b.put_u16(dialects.len() as u16);
    b.put_u16(1);
    b.put_u16(0);
    b.put_u32(0);
    b.put_bytes(&[3; 16]);
    b.put_u64(0);
    for d in dialects {
        b.put_u16(*d);
    }
    b
}

fn response_header(frame: &[u8]) -> Header {
    Header::decode(&frame[4..]).unwrap()
}

#[test]
fn negotiate_then_echo_and_window_checks() {
    let mut c = connection();
    let mut env = FixedEnv(1);
    let mut out = Vec::new();
    let mut pdu = request(
        Command::Negotiate,
        0,
        &negotiate_body(&[0x0202, 0x0210, 0x0300]),
    );
    assert!(NegotiateRequest::decode(&pdu).is_ok());
    c.handle_pdu(&mut pdu, &mut env, &mut out).unwrap();
    assert_eq!(out.len(), 1);
    let h = response_header(&out[0]);
    assert_eq!(h.status, 0);
    assert!(h.flags & flags::SERVER_TO_REDIR != 0);
    assert!(h.credits >= 1);
    // DialectRevision at body offset 4.
    let dialect = u16::from_le_bytes([out[0][4 + HEADER_BYTES + 4], out[0][4 + HEADER_BYTES + 5]]);
    assert_eq!(dialect, 0x0300);

    // ECHO without a session is answered.
    out.clear();
    let mut pdu = request(Command::Echo, 1, &[4, 0, 0, 0]);
    c.handle_pdu(&mut pdu, &mut env, &mut out).unwrap();
    assert_eq!(response_header(&out[0]).status, 0);

    // A tree command without a session: USER_SESSION_DELETED.
    out.clear();
    let mut pdu = request(Command::Create, 2, &[57, 0]);
    c.handle_pdu(&mut pdu, &mut env, &mut out).unwrap();
    assert_eq!(
        response_header(&out[0]).status,
        NtStatus::USER_SESSION_DELETED.0
    );

    // Reusing a message id, or one beyond the window, drops the connection.
    let mut pdu = request(Command::Echo, 1, &[4, 0, 0, 0]);
    assert!(c.handle_pdu(&mut pdu, &mut env, &mut Vec::new()).is_err());
    let mut c = connection();
    let mut pdu = request(Command::Negotiate, 5, &negotiate_body(&[0x0202]));
    assert!(c.handle_pdu(&mut pdu, &mut env, &mut Vec::new()).is_err());
}

#[test]
fn requests_before_negotiate_and_garbage_disconnect() {
    let mut env = FixedEnv(2);
    let mut c = connection();
    let mut pdu = request(Command::Echo, 0, &[4, 0, 0, 0]);
    assert!(c.handle_pdu(&mut pdu, &mut env, &mut Vec::new()).is_err());
    let mut c = connection();
    assert!(c
        .handle_pdu(&mut [0xFE, b'S', b'M'], &mut env, &mut Vec::new())
        .is_err());
    // A bad NextCommand in a compound.
    let mut c = connection();
    let mut pdu = request(Command::Negotiate, 0, &negotiate_body(&[0x0202]));
    pdu[20] = 3;
    assert!(c.handle_pdu(&mut pdu, &mut env, &mut Vec::new()).is_err());
}

#[test]
fn smb1_negotiate_gets_wildcard() {
    let mut env = FixedEnv(3);
    let mut c = connection();
    let mut pdu = vec![0xFF, b'S', b'M', b'B', 0x72];
    pdu.resize(32, 0);
    pdu.push(0); // WordCount
    let dialects = b"\x02NT LM 0.12\x00\x02SMB 2.002\x00\x02SMB 2.???\x00";
    pdu.put_u16(dialects.len() as u16);
    pdu.extend_from_slice(dialects);
    let mut out = Vec::new();
    c.handle_pdu(&mut pdu, &mut env, &mut out).unwrap();
    let dialect = u16::from_le_bytes([out[0][4 + HEADER_BYTES + 4], out[0][4 + HEADER_BYTES + 5]]);
    assert_eq!(dialect, 0x02FF);
}

#[test]
fn parking_is_bounded_by_count_and_bytes() {
    use super::{may_park, MAX_ASYNC_WAITS, MAX_PARKED_BYTES};
    assert!(may_park(0, 0, 200));
    assert!(may_park(MAX_ASYNC_WAITS - 1, 0, 200));
    assert!(!may_park(MAX_ASYNC_WAITS, 0, 200));
    // A few chains padded to a full-size PDU each fill the byte budget long before 256 waits.
    let pdu = smb3d_protocol::limits::MAX_PDU_BYTES;
    assert!(may_park(2, 2 * pdu, pdu));
    assert!(!may_park(3, 3 * pdu, pdu));
    assert!(!may_park(0, MAX_PARKED_BYTES, 1));
}

#[test]
fn unauthenticated_connections_take_only_small_pdus() {
    let c = connection();
    assert_eq!(
        c.max_pdu_bytes(),
        smb3d_protocol::limits::MAX_PREAUTH_PDU_BYTES
    );
    // A 1 MiB WRITE-sized frame announced before login is refused outright.
    let frame = [0u8, 0x10, 0x00, 0x00];
    assert!(matches!(
        smb3d_protocol::framing::parse_frame_header(&frame, c.max_pdu_bytes()),
        smb3d_protocol::framing::Frame::Invalid { .. }
    ));
}
