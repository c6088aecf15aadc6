//! Bad configuration ends `smb3d serve` at once with a one-line error naming the problem and a
//! non-zero exit, never a panic.

mod common;

use std::net::TcpListener;
use std::process::{Command, Output, Stdio};

use common::{add_user, smb3d_binary, TempDir};

fn serve(args: &[&str]) -> Output {
    Command::new(smb3d_binary())
        .arg("serve")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run smb3d")
}

/// The error line: exactly one line on stderr, starting with "smb3d:", no panic.
fn error_line(out: &Output) -> String {
    assert!(!out.status.success(), "smb3d should have failed");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!stderr.contains("panicked"), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("smb3d:")).collect();
    assert_eq!(lines.len(), 1, "one error line expected: {stderr}");
    lines[0].to_string()
}

#[test]
fn missing_share_path_is_named() {
    let dir = TempDir::new("badcfg-share");
    let passdb = dir.path().join("passdb");
    add_user(&passdb, "u", "p");
    let missing = dir.path().join("no-such-dir");
    let share = format!("data={}", missing.display());
    let out = serve(&[
        "--passdb",
        passdb.to_str().unwrap(),
        "--share",
        &share,
        "--listen",
        "127.0.0.1:0",
    ]);
    let line = error_line(&out);
    assert!(
        line.contains("share data") && line.contains("no-such-dir"),
        "{line}"
    );
}

#[test]
fn unreadable_passdb_is_named() {
    let dir = TempDir::new("badcfg-passdb");
    let share = format!("s={}", dir.path().display());
    let out = serve(&[
        "--passdb",
        "/nonexistent/passdb",
        "--share",
        &share,
        "--listen",
        "127.0.0.1:0",
    ]);
    let line = error_line(&out);
    assert!(line.contains("/nonexistent/passdb"), "{line}");
}

#[test]
fn port_in_use_is_named() {
    let dir = TempDir::new("badcfg-port");
    let passdb = dir.path().join("passdb");
    add_user(&passdb, "u", "p");
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let share = format!("s={}", dir.path().display());
    let out = serve(&[
        "--passdb",
        passdb.to_str().unwrap(),
        "--share",
        &share,
        "--listen",
        &addr,
    ]);
    let line = error_line(&out);
    assert!(
        line.contains(&addr) && line.contains("already in use"),
        "{line}"
    );
}

#[test]
fn bad_flag_values_are_named() {
    let dir = TempDir::new("badcfg-flags");
    let passdb = dir.path().join("passdb");
    add_user(&passdb, "u", "p");
    let share = format!("s={}", dir.path().display());
    let base = [
        "--passdb",
        passdb.to_str().unwrap(),
        "--share",
        &share,
        "--listen",
        "127.0.0.1:0",
    ];
    for (flag, value, word) in [
        ("--signing", "sometimes", "--signing"),
        ("--break-retry", "never", "--break-retry"),
        ("--cpus", "3-1", "--cpus"),
    ] {
        let mut args = base.to_vec();
        args.extend([flag, value]);
        let line = error_line(&serve(&args));
        assert!(line.contains(word), "{line}");
    }
}
