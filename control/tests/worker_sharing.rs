//! Share modes and oplocks across worker processes (`smb3d serve --workers 2`): two clients
//! whose ClientGuids belong to different workers open the same file. Each worker keeps its own
//! opens; the worker registry makes the other's share modes and oplocks count, and a break the
//! other worker's holder must take travels to it as a break request.

mod common;

use std::time::{Duration, Instant};

use common::{client_login, TestServer};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use smb3bench::client::conn::{Error, Request};
use smb3bench::client::files::{self, file_args};
use smb3bench::client::msgs;
use smb3bench::client::session::{login_as, Session};
use smb3d_dataplane::handoff::owner_of;
use smb3d_protocol::header::Command;
use smb3d_protocol::messages::create::disposition;
use smb3d_protocol::messages::oplock_break::level;
use smb3d_protocol::NtStatus;

const WORKERS: usize = 2;
/// Well below the 35 s break timeout: an open that took this long was not let in by a break.
const BREAK_WAIT: Duration = Duration::from_secs(10);

/// A session of a client owned by worker `worker`.
fn session_on(server: &TestServer, worker: usize) -> Session {
    // Not all zeros: a client without a ClientGuid stays where it connected.
    let client_guid = (1u8..=255)
        .map(|i| [i; 16])
        .find(|guid| owner_of(guid, WORKERS) == worker)
        .expect("a ClientGuid for every worker");
    let (addr, unc) = server.client_target();
    login_as(addr, &unc, &client_login(), client_guid)
        .unwrap_or_else(|e| panic!("log in as a client of worker {worker}: {e}"))
}

/// CREATE `name` (opened or created) asking for `oplock_level`, sharing `share_access`.
fn create(
    s: &mut Session,
    name: &str,
    share_access: u32,
    oplock_level: u8,
) -> Result<msgs::CreateReply, Error> {
    let mut args = file_args(disposition::OPEN_IF);
    args.share_access = share_access;
    let mut req = Request::new(Command::Create, s.tree_id);
    msgs::encode_create_with_oplock(name, &args, oplock_level, &mut req.msg);
    let resp = s.conn.call_ok(req)?;
    Ok(msgs::decode_create(&resp.msg)?)
}

#[test]
fn share_modes_conflict_across_workers() {
    let server = TestServer::start(&["--workers", "2"]);
    let mut first = session_on(&server, 0);
    let mut second = session_on(&server, 1);
    let held = create(&mut first, "exclusive.txt", 0, level::NONE).expect("first open");
    match create(&mut second, "exclusive.txt", files::SHARE_ALL, level::NONE) {
        Err(Error::Status(s)) => assert_eq!(s, NtStatus::SHARING_VIOLATION),
        other => panic!(
            "open beside another worker's unshared open: {:?}",
            other.map(|r| r.file_id)
        ),
    }
    files::close(&mut first.conn, first.tree_id, &held.file_id).unwrap();
    let opened = create(&mut second, "exclusive.txt", files::SHARE_ALL, level::NONE)
        .expect("open once the other worker's open is closed");
    files::close(&mut second.conn, second.tree_id, &opened.file_id).unwrap();
}

#[test]
fn batch_oplock_is_broken_for_another_workers_open() {
    let server = TestServer::start(&["--workers", "2"]);
    let mut holder = session_on(&server, 0);
    let mut other = session_on(&server, 1);
    let held = create(&mut holder, "batch.txt", files::SHARE_ALL, level::BATCH).unwrap();
    assert_eq!(held.oplock_level, level::BATCH);
    files::write(
        &mut holder.conn,
        holder.tree_id,
        &held.file_id,
        0,
        b"cached",
    )
    .unwrap();

    let opener = std::thread::spawn(move || {
        let started = Instant::now();
        let opened = create(&mut other, "batch.txt", files::SHARE_ALL, level::BATCH);
        (other, opened, started.elapsed())
    });
    holder
        .conn
        .socket()
        .set_read_timeout(Some(BREAK_WAIT))
        .unwrap();
    let notification = holder
        .conn
        .rx
        .recv()
        .expect("a break notification from the holder's worker");
    assert!(notification.is_oplock_break_notification());
    let brk = msgs::decode_oplock_break(&notification.msg).unwrap();
    assert_eq!(brk.file_id, held.file_id);
    assert_eq!(brk.oplock_level, level::II);
    let mut ack = Request::new(Command::OplockBreak, holder.tree_id);
    msgs::encode_oplock_break_ack(level::II, &held.file_id, &mut ack.msg);
    holder.conn.call_ok(ack).expect("acknowledgment accepted");

    let (mut other, opened, waited) = opener.join().unwrap();
    let opened = opened.expect("the second open proceeds after the acknowledgment");
    assert!(waited < BREAK_WAIT, "the open waited {waited:?}");
    // Beside another worker's open: level II, never exclusive caching.
    assert_eq!(opened.oplock_level, level::II);
    let data = files::read(&mut other.conn, other.tree_id, &opened.file_id, 0, 64).unwrap();
    assert_eq!(data, b"cached");
    // It may write: the holder's level II goes to none (no acknowledgment asked).
    let notification = holder
        .conn
        .rx
        .recv()
        .expect("a break of the level II oplock");
    assert!(notification.is_oplock_break_notification());
    let brk = msgs::decode_oplock_break(&notification.msg).unwrap();
    assert_eq!((brk.file_id, brk.oplock_level), (held.file_id, level::NONE));
    files::close(&mut other.conn, other.tree_id, &opened.file_id).unwrap();
    files::close(&mut holder.conn, holder.tree_id, &held.file_id).unwrap();
}

/// The process id of worker `worker`, from the "worker started" line of the server log.
fn worker_pid(server: &TestServer, worker: usize) -> u32 {
    let deadline = Instant::now() + BREAK_WAIT;
    loop {
        let log = strip_colours(&server.log());
        let found = log
            .lines()
            .rev()
            .filter(|l| l.contains("worker started") && l.contains(&format!("worker={worker} ")))
            .filter_map(|l| l.split("pid=").nth(1))
            .find_map(|rest| rest.split_whitespace().next()?.parse().ok());
        if let Some(pid) = found {
            return pid;
        }
        assert!(Instant::now() < deadline, "worker {worker} never started");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The log without its ANSI colour sequences.
fn strip_colours(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut in_escape = false;
    for c in log.chars() {
        match (in_escape, c) {
            (false, '\u{1b}') => in_escape = true,
            (false, _) => out.push(c),
            (true, 'm') => in_escape = false,
            (true, _) => {}
        }
    }
    out
}

#[test]
fn an_open_waiting_for_a_dead_worker_proceeds() {
    let server = TestServer::start(&["--workers", "2"]);
    let mut holder = session_on(&server, 0);
    let mut other = session_on(&server, 1);
    let held = create(&mut holder, "dying.txt", files::SHARE_ALL, level::BATCH).unwrap();
    assert_eq!(held.oplock_level, level::BATCH);
    let opener = std::thread::spawn(move || {
        let opened = create(&mut other, "dying.txt", files::SHARE_ALL, level::BATCH);
        (other, opened)
    });
    holder
        .conn
        .socket()
        .set_read_timeout(Some(BREAK_WAIT))
        .unwrap();
    let notification = holder.conn.rx.recv().expect("a break notification");
    assert!(notification.is_oplock_break_notification());
    // The holder's worker dies instead of acknowledging: its holdings vanish with it.
    let killed = Instant::now();
    kill(
        Pid::from_raw(worker_pid(&server, 0) as i32),
        Signal::SIGKILL,
    )
    .unwrap();
    let (mut other, opened) = opener.join().unwrap();
    let opened = opened.expect("the waiting open proceeds once the holder's worker is gone");
    assert!(killed.elapsed() < BREAK_WAIT, "took {:?}", killed.elapsed());
    // Nobody else has the file open now: the whole batch oplock.
    assert_eq!(opened.oplock_level, level::BATCH);
    files::close(&mut other.conn, other.tree_id, &opened.file_id).unwrap();
}

/// CREATE `durable.dat` with a batch oplock and a DH2Q or DH2C context.
fn create_durable(s: &mut Session, durable: msgs::Durable) -> Result<msgs::CreateReply, Error> {
    let args = file_args(disposition::OPEN_IF);
    let mut req = Request::new(Command::Create, s.tree_id);
    msgs::encode_create_with(
        "durable.dat",
        &args,
        level::BATCH,
        Some(durable),
        &mut req.msg,
    );
    let resp = s.conn.call_ok(req)?;
    Ok(msgs::decode_create(&resp.msg)?)
}

/// A durable open of a client of each worker is reclaimed from a new connection with the same
/// ClientGuid (which the NEGOTIATE brings to the owning worker, wherever it was accepted): once
/// after the old connection closed, once while it is still connected. The same FileId comes back
/// with what was written, writing goes on, and the file holds each part once.
#[test]
fn durable_open_is_reclaimed_in_its_worker() {
    let server = TestServer::start(&["--workers", "2"]);
    let (addr, unc) = server.client_target();
    for (worker, close_first) in [(0, true), (1, false), (1, true), (0, false)] {
        let name_case = format!("worker {worker}, old connection closed: {close_first}");
        let mut s1 = session_on(&server, worker);
        let client_guid = s1.client_guid();
        let create_guid: [u8; 16] = rand::random();
        let opened = create_durable(
            &mut s1,
            msgs::Durable::Request {
                timeout_ms: 0,
                create_guid,
            },
        )
        .unwrap_or_else(|e| panic!("{name_case}: durable create: {e}"));
        assert_eq!(opened.oplock_level, level::BATCH, "{name_case}");
        assert!(opened.durable_timeout_ms.is_some(), "{name_case}: durable");
        let first = common::pseudo_random_bytes(64 * 1024, worker as u64);
        let second = common::pseudo_random_bytes(64 * 1024, 100 + worker as u64);
        files::write(&mut s1.conn, s1.tree_id, &opened.file_id, 0, &first).unwrap();
        if close_first {
            s1.conn.tx.close();
            drop(s1);
            // The old connection's end reaches its worker asynchronously.
            std::thread::sleep(Duration::from_millis(200));
        }

        let mut s2 = login_as(addr, &unc, &common::client_login(), client_guid)
            .unwrap_or_else(|e| panic!("{name_case}: log in again: {e}"));
        let back = create_durable(
            &mut s2,
            msgs::Durable::Reconnect {
                file_id: opened.file_id,
                create_guid,
            },
        )
        .unwrap_or_else(|e| panic!("{name_case}: durable reconnect: {e}\n{}", server.log()));
        assert_eq!(back.file_id, opened.file_id, "{name_case}: the same open");
        assert_eq!(back.end_of_file, first.len() as u64, "{name_case}");
        files::write(
            &mut s2.conn,
            s2.tree_id,
            &back.file_id,
            first.len() as u64,
            &second,
        )
        .unwrap();
        files::close(&mut s2.conn, s2.tree_id, &back.file_id).unwrap();
        let on_disk = std::fs::read(server.share_dir.join("durable.dat")).unwrap();
        common::assert_same_bytes(&on_disk, &[first, second].concat(), &name_case);
        std::fs::remove_file(server.share_dir.join("durable.dat")).unwrap();
    }
}
