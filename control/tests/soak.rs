//! Soak over loopback with the smb3bench client library: clients x channels doing a verified mix
//! of creates, writes, flushes, reads, renames, truncates and deletes (`smb3bench::soak`), every
//! file read back at the end and compared with the share directory on disk, and the server's
//! descriptors and memory (/proc) checked around it. One server process and two workers.
//! The long version with figures is `scripts/soak`.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::time::Duration;

use common::{client_login, TestServer};
use smb3bench::soak::{run_soak, wait_for_fds, SoakOptions};

const CLIENTS: usize = 6;
const CHANNELS: usize = 3;
const WARMUP: Duration = Duration::from_secs(5);
const RUN: Duration = Duration::from_secs(20);
/// Most the server's resident memory may grow during the measured run, per server process
/// (buffers and allocator caches settle during the warm-up; a per-operation leak of even a few
/// hundred bytes over tens of thousands of operations exceeds this only when large, so the
/// descriptor count is the sharp check and this one catches buffers kept per operation).
const MAX_RSS_GROWTH_KIB_PER_PROCESS: u64 = 64 << 10;

fn soak(extra_args: &[&str], processes: usize) {
    let server = TestServer::start(extra_args);
    if processes > 1 {
        assert_eq!(server.worker_pids(processes - 1).len(), processes - 1);
    }
    let pid = server.pid();
    let idle = server.settled_usage();
    assert_eq!(idle.processes, processes);
    let (addr, unc) = server.client_target();
    let mut opts = SoakOptions::new(addr, unc, client_login());
    opts.clients = CLIENTS;
    opts.channels = CHANNELS;

    opts.duration = WARMUP;
    opts.dir = "warmup".into();
    let warm = run_soak(&opts);
    assert!(warm.errors.is_empty(), "warm-up: {}", warm.text());
    let warm_usage = wait_for_fds(pid, idle.fds, Duration::from_secs(10)).unwrap();

    opts.duration = RUN;
    opts.dir = "soak".into();
    opts.seed = 7;
    let report = run_soak(&opts);
    let after = wait_for_fds(pid, idle.fds, Duration::from_secs(10)).unwrap();
    println!(
        "{}server idle {idle:?}\nafter warm-up {warm_usage:?}\nafter the run {after:?}",
        report.text()
    );
    assert!(report.errors.is_empty(), "{}", report.text());
    assert_eq!(report.channels, CLIENTS * CHANNELS, "every channel bound");
    assert!(
        report.ops() >= 1000,
        "too few operations: {}",
        report.text()
    );
    assert!(
        report.ops_by_kind.iter().all(|&n| n > 0),
        "{}",
        report.text()
    );
    assert!(report.final_files > 0 && report.final_bytes_verified > 0);

    // The share on disk holds exactly the model's files with their sizes.
    let on_disk: BTreeMap<String, u64> = fs::read_dir(server.share_dir.join("soak"))
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            (
                e.file_name().into_string().unwrap(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(on_disk.len() as u64, report.final_files, "{on_disk:?}");
    assert_eq!(on_disk.values().sum::<u64>(), report.final_bytes_verified);

    assert_eq!(after.processes, processes, "a server process ended");
    assert!(
        after.fds <= idle.fds,
        "descriptors leaked: {} idle, {} after the clients left",
        idle.fds,
        after.fds
    );
    let growth_kib = after.rss_kib.saturating_sub(warm_usage.rss_kib);
    assert!(
        growth_kib <= MAX_RSS_GROWTH_KIB_PER_PROCESS * processes as u64,
        "RSS grew {growth_kib} KiB during the run"
    );
}

#[test]
fn soak_one_process() {
    soak(&[], 1);
}

#[test]
fn soak_two_workers() {
    soak(&["--workers", "2"], 3);
}
