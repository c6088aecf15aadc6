//! The fd-handoff path between worker processes (`smb3d serve --workers 2`) under load: many
//! connections of one client (one ClientGuid) send their NEGOTIATE at the same moment, as
//! smbtorture's smb2.multichannel.bugs.bug_15346 does. The kernel spreads the connections over
//! both workers; those that reach the worker not owning the ClientGuid are handed to the owner.
//! Each connection must get exactly one NEGOTIATE response (Samba bug 15346 was a double
//! handoff: duplicate responses, then stalls) and keep working afterwards.

mod common;

use common::TestServer;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

const CONNECTIONS: usize = 32;
const ROUNDS: usize = 3;
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection is watched for a second, unexpected response.
const QUIET_PERIOD: Duration = Duration::from_millis(300);

const CMD_NEGOTIATE: u16 = 0x0000;
const CMD_ECHO: u16 = 0x000d;
/// SMB2_GLOBAL_CAP_MULTI_CHANNEL (MS-SMB2 2.2.3).
const CAP_MULTI_CHANNEL: u32 = 0x08;
const DIALECT_302: u16 = 0x0302;

/// An SMB2 request header (MS-SMB2 2.2.1.2) for `command` with `message_id`.
fn header(command: u16, message_id: u64) -> Vec<u8> {
    let mut h = Vec::with_capacity(64);
    h.extend_from_slice(b"\xfeSMB");
    h.extend_from_slice(&64u16.to_le_bytes()); // StructureSize
    h.extend_from_slice(&0u16.to_le_bytes()); // CreditCharge
    h.extend_from_slice(&0u32.to_le_bytes()); // Status
    h.extend_from_slice(&command.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes()); // CreditRequest
    h.extend_from_slice(&0u32.to_le_bytes()); // Flags
    h.extend_from_slice(&0u32.to_le_bytes()); // NextCommand
    h.extend_from_slice(&message_id.to_le_bytes());
    h.extend_from_slice(&[0; 4 + 4 + 8 + 16]); // Reserved, TreeId, SessionId, Signature
    h
}

/// A whole frame (transport header included).
fn frame(msg: &[u8]) -> Vec<u8> {
    let mut f = (msg.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(msg);
    f
}

/// NEGOTIATE offering 2.0.2 to 3.0.2 with multichannel, from client `client_guid`.
fn negotiate_request(client_guid: &[u8; 16]) -> Vec<u8> {
    let dialects = [0x0202u16, 0x0210, 0x0300, DIALECT_302];
    let mut msg = header(CMD_NEGOTIATE, 0);
    msg.extend_from_slice(&36u16.to_le_bytes()); // StructureSize
    msg.extend_from_slice(&(dialects.len() as u16).to_le_bytes());
    msg.extend_from_slice(&1u16.to_le_bytes()); // SecurityMode: signing enabled
    msg.extend_from_slice(&0u16.to_le_bytes()); // Reserved
    msg.extend_from_slice(&CAP_MULTI_CHANNEL.to_le_bytes());
    msg.extend_from_slice(client_guid);
    msg.extend_from_slice(&0u64.to_le_bytes()); // ClientStartTime
    for d in dialects {
        msg.extend_from_slice(&d.to_le_bytes());
    }
    frame(&msg)
}

fn echo_request(message_id: u64) -> Vec<u8> {
    let mut msg = header(CMD_ECHO, message_id);
    msg.extend_from_slice(&4u16.to_le_bytes());
    msg.extend_from_slice(&0u16.to_le_bytes());
    frame(&msg)
}

/// One response: (command, status, message id, the whole SMB2 message).
fn read_response(stream: &mut TcpStream) -> std::io::Result<(u16, u32, u64, Vec<u8>)> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len)?;
    let mut msg = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut msg)?;
    assert!(
        msg.len() >= 64 && msg.starts_with(b"\xfeSMB"),
        "not an SMB2 response"
    );
    let command = u16::from_le_bytes([msg[12], msg[13]]);
    let status = u32::from_le_bytes(msg[8..12].try_into().unwrap());
    let message_id = u64::from_le_bytes(msg[24..32].try_into().unwrap());
    Ok((command, status, message_id, msg))
}

/// Connect `CONNECTIONS` clients of `client_guid`, send every NEGOTIATE at once, and check each
/// connection gets one answer, then answers an ECHO, then stays quiet.
fn negotiate_all_at_once(port: u16, client_guid: [u8; 16]) {
    let start = Arc::new(Barrier::new(CONNECTIONS));
    let threads: Vec<_> = (0..CONNECTIONS)
        .map(|i| {
            let start = start.clone();
            thread::spawn(move || {
                let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
                s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                s.set_nodelay(true).unwrap();
                let request = negotiate_request(&client_guid);
                start.wait();
                s.write_all(&request).expect("send NEGOTIATE");
                let (command, status, message_id, msg) =
                    read_response(&mut s).unwrap_or_else(|e| panic!("connection {i}: {e}"));
                assert_eq!(
                    (command, status, message_id),
                    (CMD_NEGOTIATE, 0, 0),
                    "connection {i}: NEGOTIATE answer"
                );
                let dialect = u16::from_le_bytes([msg[64 + 4], msg[64 + 5]]);
                assert_eq!(dialect, DIALECT_302, "connection {i}: dialect");
                let server_guid: [u8; 16] = msg[64 + 8..64 + 24].try_into().unwrap();
                s.write_all(&echo_request(1)).expect("send ECHO");
                let (command, status, message_id, _) = read_response(&mut s)
                    .unwrap_or_else(|e| panic!("connection {i}: ECHO answer: {e}"));
                assert_eq!(
                    (command, status, message_id),
                    (CMD_ECHO, 0, 1),
                    "connection {i}: the answer after NEGOTIATE is not the ECHO's (a duplicate?)"
                );
                s.set_read_timeout(Some(QUIET_PERIOD)).unwrap();
                let mut extra = [0u8; 1];
                match s.read(&mut extra) {
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Ok(0) => panic!("connection {i}: closed by the server"),
                    other => panic!("connection {i}: unexpected bytes or error: {other:?}"),
                }
                server_guid
            })
        })
        .collect();
    let guids: Vec<[u8; 16]> = threads
        .into_iter()
        .map(|t| t.join().expect("client thread"))
        .collect();
    assert!(
        guids.windows(2).all(|w| w[0] == w[1]),
        "one server, one ServerGuid"
    );
}

#[test]
fn concurrent_negotiates_of_one_client_are_each_handed_over_once() {
    let mut server = TestServer::start_with_env(
        &["--workers", "2"],
        &[("SMB3D_LOG", "info,smb3d_dataplane::reactor=debug")],
    );
    for round in 0..ROUNDS {
        let mut client_guid = [0u8; 16];
        client_guid[0] = 0xc1;
        client_guid[15] = round as u8;
        negotiate_all_at_once(server.port, client_guid);
    }
    server.assert_running();
    // With connections spread over two workers by the kernel, some must have been handed over;
    // otherwise this test did not exercise the handoff path at all.
    let handed = server
        .log()
        .matches("connection handed to its owning worker")
        .count();
    assert!(
        handed > 0,
        "no connection was handed over; log:\n{}",
        server.log()
    );
    assert!(
        !server.log().contains("bad handoff message"),
        "log:\n{}",
        server.log()
    );
}
