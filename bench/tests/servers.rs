//! smb3bench against real servers over loopback: `smb3d` (every job kind with --verify, signing,
//! encryption, the single-channel fallback) and Samba's `smbd` via scripts/samba-reference
//! (multichannel binding, encryption), checking the fio-shaped JSON.
//!
//! smb3d is the workspace's built binary: $SMB3D_BINARY, else the newer of target/release/smb3d
//! and target/debug/smb3d (build it first: `cargo build -p smb3d`). The Samba test needs root and
//! smbd; without them it says so and passes.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use smb3bench::json::{self, Value};

mod common;
mod durable;
use common::{add_user, smb3d_binary, workspace_root};

const USER: &str = "smb3benchtest";
const PASSWORD: &str = "Bench-pw-42";

struct TempDir(PathBuf);

impl TempDir {
    fn new(prefix: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "{prefix}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("bind port 0")
        .port()
}

fn wait_listening(port: u16, child: Option<&mut Child>) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut child = child;
    while Instant::now() < deadline {
        if let Some(c) = child.as_deref_mut() {
            if let Ok(Some(_)) = c.try_wait() {
                return false;
            }
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

struct Smb3d {
    child: Child,
    port: u16,
    dir: TempDir,
}

impl Smb3d {
    fn start() -> Smb3d {
        let dir = TempDir::new("smb3bench-it");
        let share = dir.0.join("share");
        fs::create_dir_all(&share).unwrap();
        let passdb = dir.0.join("passdb");
        add_user(&passdb, USER, PASSWORD);
        for attempt in 0..5 {
            let port = free_port();
            let log = fs::File::create(dir.0.join(format!("smb3d-{attempt}.log"))).unwrap();
            let mut child = Command::new(smb3d_binary())
                .arg("serve")
                .arg("--passdb")
                .arg(&passdb)
                .arg("--share")
                .arg(format!("share={}", share.display()))
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("spawn smb3d");
            if wait_listening(port, Some(&mut child)) {
                return Smb3d { child, port, dir };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("smb3d did not start");
    }
}

impl Drop for Smb3d {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        std::thread::sleep(Duration::from_millis(200));
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run smb3bench with JSON output; returns the parsed document and the exit status.
fn bench(port: u16, dir: &Path, args: &[&str]) -> (Value, bool) {
    let pw = dir.join("pw");
    fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_smb3bench"))
        .arg(format!("//127.0.0.1:{port}/share"))
        .args(["--user", USER, "--password-file"])
        .arg(&pw)
        .args(["--output-format", "json"])
        .args(args)
        .output()
        .expect("run smb3bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let doc = json::parse(&stdout).unwrap_or_else(|e| {
        panic!(
            "smb3bench output is not JSON ({e}):\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (doc, out.status.success())
}

/// Checks one job's JSON: no error, the channel count, throughput where the kind has it.
fn check_job(doc: &Value, kind: &str, channels: f64) {
    let job = doc.get("jobs.0").expect("one job");
    assert_eq!(
        job.num("error"),
        Some(0.0),
        "{kind}: error {:?}",
        job.str("error_name")
    );
    assert_eq!(job.num("channels"), Some(channels), "{kind}: channels");
    let reads = matches!(kind, "read" | "randread" | "rw" | "randrw");
    let writes = matches!(kind, "write" | "randwrite" | "rw" | "randrw");
    if reads {
        assert!(job.num("read.bw_bytes").unwrap() > 0.0, "{kind}: read bw");
        assert!(job.num("read.iops").unwrap() > 0.0, "{kind}: read iops");
        assert!(job.num("read.clat_ns.max").unwrap() > 0.0);
    }
    if writes {
        assert!(job.num("write.bw_bytes").unwrap() > 0.0, "{kind}: write bw");
        assert!(job.num("write.iops").unwrap() > 0.0, "{kind}: write iops");
    }
    if !reads && !writes {
        assert!(job.num("ops.iops").unwrap() > 0.0, "{kind}: ops/s");
        assert!(job.num("ops.total_ios").unwrap() >= 10.0, "{kind}: ops");
    }
}

#[test]
fn every_job_kind_with_verify_against_smb3d() {
    let server = Smb3d::start();
    for kind in [
        "read",
        "write",
        "randread",
        "randwrite",
        "rw",
        "randrw",
        "create",
        "stat",
        "dirlist",
        "echo",
    ] {
        let (doc, ok) = bench(
            server.port,
            &server.dir.0,
            &[
                "--name",
                kind,
                "--rw",
                kind,
                "--bs",
                "64k",
                "--size",
                "2M",
                "--iodepth",
                "8",
                "--files",
                "3",
                "--number_ios",
                "200",
                "--verify",
            ],
        );
        assert!(ok, "{kind}: exit status");
        check_job(&doc, kind, 1.0);
    }
    // Metadata jobs clean up after themselves; data files stay, as fio's do.
    let left: Vec<String> = fs::read_dir(server.dir.0.join("share"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.iter().all(|n| !n.ends_with(".d")), "{left:?}");
    assert!(left.contains(&"smb3bench.read.0".to_string()));
}

#[test]
fn signed_encrypted_and_fallback_to_one_channel_against_smb3d() {
    let server = Smb3d::start();
    for extra in [
        &["--signing", "aes-gmac"][..],
        &["--signing", "aes-cmac"],
        &["--cipher", "aes-128-gcm"],
        &["--cipher", "aes-256-ccm"],
    ] {
        // 32 blocks: a 50/50 mix that does no writes at all is then a 1 in 2^32 event.
        let mut args = vec![
            "--rw",
            "rw",
            "--bs",
            "1M",
            // 32 operations: a 50 % mix with none of one kind is a 2^-31 chance, not 1 in 16.
            "--size",
            "32M",
            "--iodepth",
            "4",
            "--verify",
        ];
        args.extend_from_slice(extra);
        let (doc, ok) = bench(server.port, &server.dir.0, &args);
        assert!(ok, "{extra:?}");
        check_job(&doc, "rw", 1.0);
    }
    // smb3d without SMB2_GLOBAL_CAP_MULTI_CHANNEL: one channel, said in a note.
    let (doc, ok) = bench(
        server.port,
        &server.dir.0,
        &[
            "--rw",
            "read",
            "--bs",
            "1M",
            "--size",
            "4M",
            "--channels",
            "4",
        ],
    );
    assert!(ok);
    let channels = doc.num("jobs.0.channels").unwrap();
    if channels == 1.0 {
        let note = doc.str("jobs.0.notes.0").unwrap_or("");
        assert!(note.contains("MULTI_CHANNEL"), "{note}");
    } else {
        assert_eq!(channels, 4.0, "multichannel server: every channel bound");
    }
}

/// The client library's file operations (`client::files`) against smb3d, checked in the share
/// directory on disk after each step.
#[test]
fn file_operations_against_smb3d() {
    use smb3bench::client::files::{self, file_args};
    use smb3bench::client::session::login;
    use smb3d_protocol::messages::create::disposition;

    let server = Smb3d::start();
    let share = server.dir.0.join("share");
    let opts = durable::login_options(USER, PASSWORD);
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, server.port));
    let mut s = login(addr, "\\\\127.0.0.1\\share", &opts).expect("log in");
    let (c, t) = (&mut s.conn, s.tree_id);
    let f = files::open(c, t, "a.bin", &file_args(disposition::CREATE)).unwrap();
    assert_eq!(f.create_action, 2, "FILE_CREATED");
    assert_eq!(
        files::write(c, t, &f.file_id, 0, b"hello world").unwrap(),
        11
    );
    files::flush(c, t, &f.file_id).unwrap();
    assert_eq!(fs::read(share.join("a.bin")).unwrap(), b"hello world");
    assert_eq!(files::read(c, t, &f.file_id, 6, 100).unwrap(), b"world");
    assert!(
        files::read(c, t, &f.file_id, 11, 100).unwrap().is_empty(),
        "at the end"
    );
    files::set_end_of_file(c, t, &f.file_id, 5).unwrap();
    assert_eq!(fs::read(share.join("a.bin")).unwrap(), b"hello");
    files::rename(c, t, &f.file_id, "b.bin", false).unwrap();
    files::close(c, t, &f.file_id).unwrap();
    assert!(!share.join("a.bin").exists());
    assert_eq!(fs::read(share.join("b.bin")).unwrap(), b"hello");
    // A rename onto an existing name without ReplaceIfExists fails.
    fs::write(share.join("c.bin"), b"c").unwrap();
    let g = files::open(c, t, "c.bin", &file_args(disposition::OPEN)).unwrap();
    let err = files::rename(c, t, &g.file_id, "b.bin", false).unwrap_err();
    assert_eq!(
        err.status_code(),
        0xC000_0035,
        "OBJECT_NAME_COLLISION: {err}"
    );
    files::set_delete_pending(c, t, &g.file_id, true).unwrap();
    files::close(c, t, &g.file_id).unwrap();
    assert!(!share.join("c.bin").exists(), "deleted on close");
    files::delete(c, t, "b.bin").unwrap();
    assert!(!share.join("b.bin").exists());
    let err = files::delete(c, t, "b.bin").unwrap_err();
    assert_eq!(
        err.status_code(),
        0xC000_0034,
        "OBJECT_NAME_NOT_FOUND: {err}"
    );
}

#[test]
fn errors_are_reported_by_status_name() {
    let server = Smb3d::start();
    let pw = server.dir.0.join("bad-pw");
    fs::write(&pw, "wrong\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_smb3bench"))
        .arg(format!("//127.0.0.1:{}/share", server.port))
        .args(["--user", USER, "--password-file"])
        .arg(&pw)
        .args(["--rw", "echo", "--output-format", "json"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let doc = json::parse(&String::from_utf8_lossy(&out.stdout)).unwrap();
    assert_eq!(doc.num("jobs.0.error"), Some(0xC000_006D_u32 as f64));
    assert!(doc
        .str("jobs.0.error_name")
        .unwrap()
        .contains("LOGON_FAILURE"));
}

/// Write through a durable handle (DH2Q with a batch oplock), lose the connection, reclaim the
/// open from a new connection and session with DH2C, write on: the file holds exactly what was
/// written, each part once, and the reclaimed open is the same FileId.
#[test]
fn durable_handle_survives_a_lost_connection() {
    use durable::{durable_create, login_options, write_at};
    use smb3bench::client::conn::{Error, Request};
    use smb3bench::client::msgs::{self, Durable};
    use smb3bench::client::session::{login, login_as, Session};
    use smb3d_protocol::header::Command as Smb2Command;
    use smb3d_protocol::messages::oplock_break::level::BATCH;
    use smb3d_protocol::NtStatus;

    const PART_BYTES: usize = 64 * 1024;
    let server = Smb3d::start();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, server.port));
    let unc = "\\\\127.0.0.1\\share";
    let opts = login_options(USER, PASSWORD);
    let create = |s: &mut Session, durable: Durable| {
        let req = durable_create(s, durable);
        s.conn.call(req)
    };
    let first: Vec<u8> = (0..PART_BYTES).map(|i| (i % 251) as u8).collect();
    let second: Vec<u8> = (0..PART_BYTES).map(|i| (i % 241) as u8 ^ 0x5a).collect();
    let create_guid: [u8; 16] = rand::random();

    let mut s1 = login(addr, unc, &opts).expect("login");
    let opened = create(
        &mut s1,
        Durable::Request {
            timeout_ms: 0,
            create_guid,
        },
    )
    .and_then(|r| r.ok_or_status(&[]))
    .expect("durable create");
    let reply = msgs::decode_create(&opened.msg).unwrap();
    assert_eq!(reply.oplock_level, BATCH);
    assert_eq!(
        reply.durable_timeout_ms,
        Some(60_000),
        "the default durable timeout"
    );
    write_at(&mut s1, &reply.file_id, 0, &first);

    // The connection is lost: no CLOSE, no LOGOFF.
    let client_guid = s1.client_guid();
    s1.conn.tx.close();
    drop(s1);

    let mut s2 = login_as(addr, unc, &opts, client_guid).expect("login again");
    let wrong = create(
        &mut s2,
        Durable::Reconnect {
            file_id: reply.file_id,
            create_guid: rand::random(),
        },
    )
    .expect("reconnect with a wrong CreateGuid");
    assert_eq!(wrong.status(), NtStatus::OBJECT_NAME_NOT_FOUND);
    // The open may take a moment to leave the old connection: retry briefly.
    let deadline = Instant::now() + Duration::from_secs(5);
    let reclaimed = loop {
        let r = create(
            &mut s2,
            Durable::Reconnect {
                file_id: reply.file_id,
                create_guid,
            },
        )
        .expect("reconnect");
        match r.ok_or_status(&[]) {
            Ok(r) => break r,
            Err(Error::Status(NtStatus::OBJECT_NAME_NOT_FOUND)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) => panic!("durable reconnect failed: {e:?}"),
        }
    };
    let back = msgs::decode_create(&reclaimed.msg).unwrap();
    assert_eq!(back.file_id, reply.file_id, "the same open");
    assert_eq!(back.end_of_file, PART_BYTES as u64);
    write_at(&mut s2, &back.file_id, PART_BYTES as u64, &second);
    let mut req = Request::new(Smb2Command::Close, s2.tree_id);
    msgs::encode_close(&back.file_id, &mut req.msg);
    s2.conn.call_ok(req).expect("close");

    let on_disk = fs::read(server.dir.0.join("share").join("durable.dat")).unwrap();
    assert_eq!(on_disk.len(), 2 * PART_BYTES);
    assert!(on_disk[..PART_BYTES] == first[..], "first part intact");
    assert!(
        on_disk[PART_BYTES..] == second[..],
        "second part written once, after the first"
    );
}

/// Samba's smbd from scripts/samba-reference, stopped on drop.
struct Samba {
    state: TempDir,
    port: u16,
}

impl Samba {
    fn start() -> Option<Samba> {
        let is_root = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        let has_smbd = Command::new("sh")
            .args(["-c", "command -v smbd"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !is_root || !has_smbd {
            eprintln!("skipping the Samba test: needs root and smbd (apt-get install samba)");
            return None;
        }
        let state = TempDir::new("smb3bench-samba");
        let share = state.0.join("share");
        fs::create_dir_all(&share).unwrap();
        let _ = Command::new("chmod").arg("777").arg(&share).status();
        let port = free_port();
        let script = workspace_root().join("scripts/samba-reference");
        let out = Command::new(&script)
            .arg("start")
            .arg(state.0.join("state"))
            .arg(port.to_string())
            .arg(&share)
            .args([USER, PASSWORD])
            .output()
            .expect("run samba-reference");
        assert!(
            out.status.success(),
            "samba-reference start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(wait_listening(port, None));
        Some(Samba { state, port })
    }
}

impl Drop for Samba {
    fn drop(&mut self) {
        let _ = Command::new(workspace_root().join("scripts/samba-reference"))
            .arg("stop")
            .arg(self.state.0.join("state"))
            .status();
    }
}

#[test]
fn multichannel_and_encryption_against_samba() {
    let Some(samba) = Samba::start() else {
        return;
    };
    let dir = &samba.state.0;
    let (doc, ok) = bench(
        samba.port,
        dir,
        &[
            "--rw",
            "read",
            "--bs",
            "1M",
            "--size",
            "8M",
            "--iodepth",
            "8",
            "--channels",
            "3",
            "--verify",
        ],
    );
    assert!(ok, "{doc:?}");
    check_job(&doc, "read", 3.0);
    let per_channel = match doc.get("jobs.0.channel_stats") {
        Some(Value::Arr(a)) => a.len(),
        _ => 0,
    };
    assert_eq!(per_channel, 3);
    for (kind, extra) in [
        ("write", &["--cipher", "aes-128-gcm"][..]),
        ("randrw", &["--signing", "aes-cmac"]),
        ("create", &[]),
    ] {
        let mut args = vec![
            "--rw",
            kind,
            "--bs",
            "64k",
            "--size",
            "2M",
            "--iodepth",
            "4",
            "--channels",
            "2",
            "--number_ios",
            "100",
            "--verify",
        ];
        args.extend_from_slice(extra);
        let (doc, ok) = bench(samba.port, dir, &args);
        assert!(ok, "{kind}: {doc:?}");
        check_job(&doc, kind, 2.0);
    }
}
