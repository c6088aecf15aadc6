//! Break delivery with real packet loss (issue 5): smb3d in the server namespace of
//! `scripts/netns-topology`, `smb3failover` in the client namespace. A holder session with two
//! channels (one per server NIC) opens a file with a batch oplock, or with an RWH lease (v2
//! context, its own lease key), and writes data over both;
//! iptables inside the client namespace then drops everything of its first channel; a second
//! client opens the file. Checks: the break arrives on the surviving channel, well before the
//! 35 s break timeout; the acknowledgment there is accepted; the second open completes; the data
//! written before reads back intact over SMB and is in the file on the server; the rules are
//! gone afterwards (they are removed by the tool, and with the namespaces in any case).
//!
//! For the lease, the break must go down from RWH to RH (the second open shares the file, so only
//! write caching conflicts), ask for an acknowledgment, and the acknowledgment of RH must be
//! accepted. The lease test's namespaces carry the tag `l2` (smb3d-cli-l2...).
//!
//! Needs root, `ip netns` and iptables (skips with a note otherwise, fails with
//! SMB3D_REQUIRE_NETNS=1).

use std::fs;
use std::process::Stdio;

use smb3bench::failover::pattern;
use smb3bench::json::{self, Value};

mod common;
mod netns;
use netns::{run, Server, Topology, PORT, SRV_V4, USER};

const DATA_BYTES: usize = 3 << 20;
/// Far below the 35 s break timeout; one failover step is 6 RTOs (~1.3 s at loopback RTO).
const FAILOVER_LIMIT_MS: f64 = 5000.0;

/// One smb3failover run of `kind` over a dead first channel; returns the run's JSON object.
fn break_fails_over(kind: &str, netns_tag: &str) -> Value {
    let Some(topo) = Topology::up_tagged(netns_tag) else {
        return Value::Null;
    };
    let server = Server::start(&topo);
    let survivor = format!("{}:{PORT}", SRV_V4[1]);
    let out = run(topo
        .in_client("timeout")
        .args(["-k", "5", "120"])
        .arg(env!("CARGO_BIN_EXE_smb3failover"))
        .arg(format!("//{}:{PORT}/share", SRV_V4[0]))
        .args(["--user", USER, "--password-file"])
        .arg(server.dir.join("pw"))
        .args(["--second", &survivor, "--kind", kind, "--block", "iptables"])
        .args([
            "--size",
            &DATA_BYTES.to_string(),
            "--timeout",
            "60",
            "--json",
        ])
        .stdout(Stdio::piped()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let doc = json::parse(&stdout).unwrap_or_else(|e| {
        panic!(
            "smb3failover output is not JSON ({e}, exit {}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let r = doc.get("runs.0").expect("one run").clone();
    assert_eq!(r.get("ok"), Some(&Value::Bool(true)), "run failed: {r:?}");
    assert_eq!(
        r.num("break_channel"),
        Some(1.0),
        "break not on the survivor"
    );
    assert_eq!(r.str("break_address"), Some(survivor.as_str()));
    assert_eq!(
        r.num("ack_status"),
        Some(0.0),
        "ack refused: {:?}",
        r.str("ack_status_name")
    );
    let dark_ms = r.num("dark_to_break_ms").expect("dark_to_break_ms");
    let open_ms = r.num("open_ms").expect("open_ms");
    eprintln!(
        "break on the surviving channel {dark_ms:.0} ms after the drop; open {open_ms:.0} ms"
    );
    assert!(
        dark_ms < FAILOVER_LIMIT_MS,
        "break took {dark_ms} ms to fail over"
    );
    assert!(open_ms < FAILOVER_LIMIT_MS, "second open took {open_ms} ms");
    assert_eq!(
        r.num("verified_bytes"),
        Some(DATA_BYTES as f64),
        "read back"
    );
    let on_disk = fs::read(server.dir.join("share").join("smb3failover.dat")).expect("file");
    assert!(
        on_disk == pattern(1, DATA_BYTES),
        "the file on the server is not what the holder wrote ({} bytes)",
        on_disk.len()
    );
    assert!(out.status.success(), "exit status {}", out.status);
    let rules = run(topo.in_client("iptables").args(["-S"]));
    let rules = String::from_utf8_lossy(&rules.stdout);
    assert!(!rules.contains("DROP"), "rules left behind:\n{rules}");
    r
}

#[test]
fn batch_oplock_break_fails_over_to_the_surviving_channel() {
    let r = break_fails_over("batch", "");
    if r != Value::Null {
        // MS-SMB2 3.3.4.6: a batch oplock is broken to level II when the opener shares reading.
        assert_eq!(
            r.num("break_to"),
            Some(1.0),
            "broken to {:?}",
            r.num("break_to")
        );
    }
}

#[test]
fn rwh_lease_break_fails_over_to_the_surviving_channel() {
    let r = break_fails_over("lease", "l2");
    if r != Value::Null {
        // RWH -> RH: only write caching conflicts with a second open that shares everything.
        assert_eq!(
            r.num("break_to"),
            Some(3.0),
            "broken to {:?}",
            r.num("break_to")
        );
        assert_eq!(r.get("acked"), Some(&Value::Bool(true)), "no ack asked for");
    }
}
