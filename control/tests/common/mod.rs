//! Harness for integration tests that talk to a real `smb3d serve` process over loopback.
//!
//! `TestServer::start` makes a temporary directory with a share directory and a passdb (filled by
//! `smb3d user add`), starts the server on a free 127.0.0.1 port and waits until it accepts
//! connections. Dropping the server kills the process and removes the directory. `Smbclient` runs
//! Samba's `smbclient` against it with a configuration that ignores the host's smb.conf.

#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod smb;

use std::fs;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

pub const SHARE_NAME: &str = "share";
pub const USER: &str = "smb3dtest";
pub const PASSWORD: &str = "Matrix-pw-42";

const START_ATTEMPTS: u32 = 5;
const START_TIMEOUT: Duration = Duration::from_secs(20);
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Limit of one smbclient invocation; a hung server must fail the test, not stall it.
const SMBCLIENT_TIMEOUT_S: u32 = 60;

/// The smb3d binary built by cargo for this test run.
pub fn smb3d_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_smb3d"))
}

/// A directory under the system temp dir, removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("{prefix}-{}-{unique}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// A running `smb3d serve` with one share, one user, on 127.0.0.1.
pub struct TestServer {
    child: Child,
    pub port: u16,
    pub share_dir: PathBuf,
    pub log_path: PathBuf,
    passdb: PathBuf,
    extra_args: Vec<String>,
    env: Vec<(String, String)>,
    starts: u32,
    _dir: TempDir,
}

impl TestServer {
    /// Starts the server with `extra_args` appended to `smb3d serve ...` (e.g. `["--signing", "required"]`).
    /// Panics, with the server's log, if it does not come up.
    pub fn start(extra_args: &[&str]) -> TestServer {
        TestServer::launch(None, extra_args, &[])
    }

    /// As `start`, with these environment variables set for the server (e.g. `SMB3D_LOG`).
    pub fn start_with_env(extra_args: &[&str], env: &[(&str, &str)]) -> TestServer {
        TestServer::launch(None, extra_args, env)
    }

    /// Like [`TestServer::start`], sharing `share_dir` (which must exist) instead of a new
    /// directory.
    pub fn start_on(share_dir: Option<&Path>, extra_args: &[&str]) -> TestServer {
        TestServer::launch(share_dir, extra_args, &[])
    }

    fn launch(share_dir: Option<&Path>, extra_args: &[&str], env: &[(&str, &str)]) -> TestServer {
        let dir = TempDir::new("smb3d-it");
        let share_dir = match share_dir {
            Some(d) => d.to_path_buf(),
            None => {
                let d = dir.path().join("share");
                fs::create_dir_all(&d).expect("create share dir");
                d
            }
        };
        let passdb = dir.path().join("passdb");
        add_user(&passdb, USER, PASSWORD);
        let extra_args: Vec<String> = extra_args.iter().map(|a| a.to_string()).collect();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut last_log = String::new();
        for attempt in 0..START_ATTEMPTS {
            let port = pick_free_port();
            let log_path = dir.path().join(format!("server-{attempt}.log"));
            let mut child = spawn_server(&passdb, &share_dir, port, &log_path, &extra_args, &env);
            if wait_until_listening(&mut child, port) {
                return TestServer {
                    child,
                    port,
                    share_dir,
                    log_path,
                    passdb,
                    extra_args,
                    env,
                    starts: attempt + 1,
                    _dir: dir,
                };
            }
            last_log = fs::read_to_string(&log_path).unwrap_or_default();
            stop_child(&mut child);
        }
        panic!("smb3d serve did not start after {START_ATTEMPTS} attempts; last log:\n{last_log}");
    }

    /// The server's (control) process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The worker processes' ids (children of the control process), waiting up to 20 s until
    /// there are `count`.
    pub fn worker_pids(&self, count: usize) -> Vec<u32> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let pids = child_pids(self.pid());
            if pids.len() == count || Instant::now() > deadline {
                return pids;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// `kill -9` the server, then start it again on the same port, share and passdb (a crash and
    /// a restart). Panics if it does not come back.
    pub fn kill_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A killed process's listening sockets can outlive it for a moment (io_uring tears its
        // requests down after the exit): wait until nothing accepts on the port.
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            assert!(
                Instant::now() < deadline,
                "port {} still accepts after the kill",
                self.port
            );
            thread::sleep(Duration::from_millis(50));
        }
        loop {
            self.log_path = self
                .log_path
                .with_file_name(format!("server-{}.log", self.starts));
            self.starts += 1;
            self.child = spawn_server(
                &self.passdb,
                &self.share_dir,
                self.port,
                &self.log_path,
                &self.extra_args,
                &self.env,
            );
            if wait_until_listening(&mut self.child, self.port) {
                return;
            }
            stop_child(&mut self.child);
            assert!(
                Instant::now() < deadline,
                "smb3d did not restart on port {}; log:\n{}",
                self.port,
                self.log()
            );
        }
    }

    /// `//127.0.0.1/share` as smbclient wants it.
    pub fn unc(&self) -> String {
        format!("//127.0.0.1/{SHARE_NAME}")
    }

    /// Everything the server wrote to stdout/stderr so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Panics if the server process has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("smb3d exited ({status}); log:\n{}", self.log());
        }
    }
}

/// The children of `pid` (from /proc/PID/task/TID/children).
pub fn child_pids(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        let children = fs::read_to_string(task.path().join("children")).unwrap_or_default();
        out.extend(
            children
                .split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok()),
        );
    }
    out
}

/// Waits (bounded) until `child` accepts TCP connections on 127.0.0.1:`port`; false if it exited or
/// did not come up in time.
fn wait_until_listening(child: &mut Child, port: u16) -> bool {
    let deadline = Instant::now() + START_TIMEOUT;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        thread::sleep(Duration::from_millis(50));
    }
    false
}

/// SIGTERM first, so the server shuts down as it would in production, then SIGKILL.
fn stop_child(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for TestServer {
    fn drop(&mut self) {
        stop_child(&mut self.child);
        if thread::panicking() {
            eprintln!(
                "--- smb3d log ({}) ---\n{}",
                self.log_path.display(),
                self.log()
            );
        }
    }
}

/// `smb3d user add --passdb PASSDB NAME`, password on stdin.
pub fn add_user(passdb: &Path, name: &str, password: &str) {
    let mut child = Command::new(smb3d_binary())
        .args(["user", "add", "--passdb"])
        .arg(passdb)
        .arg(name)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run smb3d user add");
    // A write error (the process exited without reading) shows up as its exit status below, with
    // its stderr, which says more than the broken pipe would.
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(format!("{password}\n").as_bytes());
    }
    let output = child.wait_with_output().expect("wait for smb3d user add");
    assert!(
        output.status.success(),
        "smb3d user add failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn spawn_server(
    passdb: &Path,
    share_dir: &Path,
    port: u16,
    log_path: &Path,
    extra_args: &[String],
    env: &[(String, String)],
) -> Child {
    let log = fs::File::create(log_path).expect("create server log");
    let log_err = log.try_clone().expect("clone log handle");
    Command::new(smb3d_binary())
        .arg("serve")
        .arg("--passdb")
        .arg(passdb)
        .arg("--share")
        .arg(format!("{SHARE_NAME}={}", share_dir.display()))
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .args(extra_args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .expect("spawn smb3d serve")
}

/// A port that was free a moment ago (bind to port 0, read it, release it). Another process may
/// take it before the server binds; `TestServer::start` retries with a new one then.
pub fn pick_free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind port 0");
    listener.local_addr().expect("local addr").port()
}

/// Result of one smbclient run.
pub struct ClientRun {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
    pub description: String,
}

impl ClientRun {
    /// Both output streams, for assertions on messages that smbclient prints to either.
    pub fn all_output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    pub fn assert_ok(&self) -> &ClientRun {
        assert!(
            self.success,
            "{} failed\nstdout:\n{}\nstderr:\n{}",
            self.description, self.stdout, self.stderr
        );
        self
    }
}

/// smbclient settings for one connection: dialect, protection, credentials.
#[derive(Clone)]
pub struct Smbclient {
    pub unc: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    /// `-m` value, e.g. "SMB3_11".
    pub max_protocol: String,
    /// `--client-protection` value: "off", "sign" or "encrypt".
    pub protection: String,
    /// Local working directory (smbclient's `lcd`).
    pub local_dir: PathBuf,
}

impl Smbclient {
    pub fn new(
        server: &TestServer,
        max_protocol: &str,
        protection: &str,
        local_dir: &Path,
    ) -> Smbclient {
        Smbclient {
            unc: server.unc(),
            port: server.port,
            user: USER.to_string(),
            password: PASSWORD.to_string(),
            max_protocol: max_protocol.to_string(),
            protection: protection.to_string(),
            local_dir: local_dir.to_path_buf(),
        }
    }

    /// Runs `smbclient ... -c COMMANDS`. The host's smb.conf is replaced by /dev/null and the client
    /// may not negotiate below the requested dialect, so each run tests exactly that dialect.
    pub fn run(&self, commands: &str) -> ClientRun {
        let mut cmd = Command::new("timeout");
        cmd.arg(SMBCLIENT_TIMEOUT_S.to_string())
            .arg("smbclient")
            .arg(&self.unc)
            .args(["-p", &self.port.to_string()])
            .arg("--configfile=/dev/null")
            .arg(format!("--user={}%{}", self.user, self.password))
            .arg(format!("--max-protocol={}", self.max_protocol))
            .arg(format!(
                "--option=client min protocol={}",
                self.max_protocol
            ))
            .arg(format!("--client-protection={}", self.protection))
            .args(["-c", commands])
            .current_dir(&self.local_dir)
            .stdin(Stdio::null());
        let output: Output = cmd.output().expect("run smbclient (is it installed?)");
        ClientRun {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            description: format!(
                "smbclient -m {} --client-protection={} -c {commands:?}",
                self.max_protocol, self.protection
            ),
        }
    }
}

/// Deterministic pseudo-random bytes (xorshift64*), so a failing run can be reproduced.
pub fn pseudo_random_bytes(len_bytes: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len_bytes + 8);
    while out.len() < len_bytes {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len_bytes);
    out
}

/// Asserts two byte strings are equal without printing megabytes on failure.
pub fn assert_same_bytes(actual: &[u8], expected: &[u8], what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: length differs");
    if let Some(pos) = actual.iter().zip(expected).position(|(a, b)| a != b) {
        panic!("{what}: first difference at byte {pos}");
    }
}

/// Log-in settings for the smb3bench client library: the test user, no forced signing or
/// encryption.
pub fn client_login() -> smb3bench::client::session::LoginOptions {
    smb3bench::client::session::LoginOptions {
        creds: smb3bench::client::ntlm::Credentials {
            user: USER.into(),
            domain: String::new(),
            password: PASSWORD.into(),
        },
        sign: false,
        encrypt: None,
        signing: smb3d_protocol::dialect::SigningAlgorithm::AesCmac,
    }
}

impl TestServer {
    /// The address and `\\127.0.0.1\share` path for the smb3bench client library.
    pub fn client_target(&self) -> (SocketAddr, String) {
        (
            SocketAddr::from((Ipv4Addr::LOCALHOST, self.port)),
            format!("\\\\127.0.0.1\\{SHARE_NAME}"),
        )
    }

    /// Log in and connect to the share with the smb3bench client library.
    pub fn client_session(&self) -> smb3bench::client::session::Session {
        let (addr, unc) = self.client_target();
        smb3bench::client::session::login(addr, &unc, &client_login())
            .unwrap_or_else(|e| panic!("log in to smb3d: {e}"))
    }
}

impl TestServer {
    /// Descriptors and memory of the server and its workers once start-up is over (reactors
    /// finish setting up after the port accepts): measured until the descriptor count has held
    /// still for half a second.
    pub fn settled_usage(&self) -> smb3bench::soak::ProcessUsage {
        let measure =
            || smb3bench::soak::process_tree_usage(self.pid()).expect("read /proc of the server");
        let deadline = Instant::now() + START_TIMEOUT;
        let mut last = measure();
        loop {
            thread::sleep(Duration::from_millis(500));
            let now = measure();
            if now.fds == last.fds || Instant::now() > deadline {
                return now;
            }
            last = now;
        }
    }
}
