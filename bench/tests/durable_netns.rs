//! Durable handles with real packet loss (issue 7): smb3d in the server namespace of
//! `scripts/netns-topology`, a client in the client namespace. The client writes through a
//! durable (DH2Q, batch oplock) handle; iptables in the client namespace then drops everything of
//! its connection, so the server still sees that connection alive (TCP keepalive would take a
//! minute to tell); the client gives up on it, connects again (new TCP connection, new session,
//! same ClientGuid), reclaims the open with DH2C at the first attempt and writes on. Checks: the
//! reclaimed open is the same FileId and has the first part; the file on the server holds
//! exactly what was written, each part once.
//!
//! The client part runs as this test binary re-executed inside the client namespace
//! (`ip netns exec`), the ignored test `client_in_namespace`. Needs root, `ip netns` and iptables
//! (skips with a note otherwise, fails with SMB3D_REQUIRE_NETNS=1). Namespaces are tagged `d2`.

use std::fs;
use std::net::SocketAddr;
use std::process::Stdio;

mod common;
mod durable;
mod netns;
use netns::{run, Server, Topology, PASSWORD, PORT, SRV_V4, USER};

const PART_BYTES: usize = 256 * 1024;
const ENV_SHARE: &str = "SMB3D_DURABLE_NETNS_ADDR";

fn first_part() -> Vec<u8> {
    (0..PART_BYTES).map(|i| (i % 251) as u8).collect()
}

fn second_part() -> Vec<u8> {
    (0..PART_BYTES).map(|i| (i % 241) as u8 ^ 0x5a).collect()
}

#[test]
fn durable_open_survives_a_dropped_connection() {
    let Some(topo) = Topology::up_tagged("d2") else {
        return;
    };
    let server = Server::start(&topo);
    let out = run(topo
        .in_client("timeout")
        .args(["-k", "5", "120"])
        .arg(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "client_in_namespace",
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(ENV_SHARE, format!("{}:{PORT}", SRV_V4[0]))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped()));
    assert!(
        out.status.success(),
        "client part failed ({}):\n{}\n{}\n--- smb3d log ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        server.log_text()
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "the client part did not run:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let on_disk = fs::read(server.dir.join("share").join("durable.dat")).unwrap();
    assert_eq!(on_disk.len(), 2 * PART_BYTES);
    assert!(
        on_disk[..PART_BYTES] == first_part()[..],
        "first part intact"
    );
    assert!(
        on_disk[PART_BYTES..] == second_part()[..],
        "second part written once, after the first"
    );
    assert!(
        server
            .log_text()
            .contains("durable reconnect of an open whose connection still looks alive"),
        "the old connection was still alive to the server when the open was reclaimed"
    );
}

/// The client side, run inside the client namespace by the test above.
#[test]
#[ignore = "run by durable_open_survives_a_dropped_connection inside the client namespace"]
fn client_in_namespace() {
    use durable::{durable_create, login_options, write_at};
    use smb3bench::client::conn::Request;
    use smb3bench::client::msgs::{self, Durable};
    use smb3bench::client::session::{login, login_as, Session};
    use smb3bench::failover::PortBlock;
    use smb3d_protocol::header::Command as Smb2Command;
    use smb3d_protocol::messages::oplock_break::level::BATCH;

    let addr: SocketAddr = std::env::var(ENV_SHARE)
        .expect("run by durable_open_survives_a_dropped_connection")
        .parse()
        .expect("server address");
    let unc = format!("\\\\{}\\share", addr.ip());
    let opts = login_options(USER, PASSWORD);
    let create = |s: &mut Session, durable: Durable| {
        let req = durable_create(s, durable);
        s.conn.call_ok(req)
    };
    let create_guid: [u8; 16] = rand::random();

    let mut s1 = login(addr, &unc, &opts).expect("login");
    let opened = create(
        &mut s1,
        Durable::Request {
            timeout_ms: 0,
            create_guid,
        },
    )
    .expect("durable create");
    let reply = msgs::decode_create(&opened.msg).unwrap();
    assert_eq!(reply.oplock_level, BATCH);
    assert!(reply.durable_timeout_ms.is_some(), "a durable handle");
    write_at(&mut s1, &reply.file_id, 0, &first_part());

    // The path goes dark: nothing of this connection passes either way from now on, so the
    // server sees no FIN or RST. The client gives up on it.
    let port = s1.conn.local_addr().expect("local address").port();
    let _block = PortBlock::new(port).expect("iptables rules");
    let client_guid = s1.client_guid();
    drop(s1);

    let mut s2 = login_as(addr, &unc, &opts, client_guid).expect("login again");
    let reclaimed = create(
        &mut s2,
        Durable::Reconnect {
            file_id: reply.file_id,
            create_guid,
        },
    )
    .expect("durable reconnect while the old connection still looks alive to the server");
    let back = msgs::decode_create(&reclaimed.msg).unwrap();
    assert_eq!(back.file_id, reply.file_id, "the same open");
    assert_eq!(back.end_of_file, PART_BYTES as u64);
    write_at(&mut s2, &back.file_id, PART_BYTES as u64, &second_part());
    let mut req = Request::new(Smb2Command::Close, s2.tree_id);
    msgs::encode_close(&back.file_id, &mut req.msg);
    s2.conn.call_ok(req).expect("close");
}
