//! The namespace pair of `scripts/netns-topology` and an smb3d serving inside it, for the tests
//! that need real network paths (multichannel_netns.rs, break_failover_netns.rs). Each test gets
//! its own pair (suffix from the process id and a counter), torn down on drop, also when the test
//! fails; deleting the namespaces also removes any iptables rules made inside them.

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::common::{add_user, smb3d_binary, workspace_root};

pub const USER: &str = "mcnetns";
pub const PASSWORD: &str = "Netns-pw-7";
pub const PORT: u16 = 445;
pub const SRV_V4: [&str; 2] = ["10.231.1.1", "10.231.2.1"];
pub const SRV_V6: [&str; 2] = ["fd00:231:1::1", "fd00:231:2::1"];

fn script() -> PathBuf {
    workspace_root().join("scripts").join("netns-topology")
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// A namespace pair from scripts/netns-topology; removed on drop.
pub struct Topology {
    pub suffix: String,
    pub server_ns: String,
    pub client_ns: String,
}

impl Topology {
    /// None (after saying why) when the machine cannot do namespaces.
    #[allow(dead_code)] // each test binary compiles this module; durable_netns tags its own
    pub fn up() -> Option<Topology> {
        Topology::up_tagged("")
    }

    /// [`up`](Self::up) with `tag` (at most 2 characters) leading the namespaces' suffix, so a
    /// test's namespaces are told apart from other tests' at a glance.
    pub fn up_tagged(tag: &str) -> Option<Topology> {
        static N: AtomicU32 = AtomicU32::new(0);
        assert!(tag.len() <= 2, "a tag of at most 2 characters");
        // At most 8 characters: the tag, hex digits of the pid and a counter.
        let suffix = format!(
            "{tag}{:x}{}",
            std::process::id() & (0xff_ffff >> (4 * tag.len())),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let out = run(Command::new(script()).args(["up", &suffix]));
        match out.status.code() {
            Some(0) => {}
            Some(77) => {
                let why = String::from_utf8_lossy(&out.stderr);
                assert!(
                    std::env::var_os("SMB3D_REQUIRE_NETNS").is_none(),
                    "SMB3D_REQUIRE_NETNS is set but the topology cannot be built: {why}"
                );
                eprintln!("skipping multichannel namespace test: {}", why.trim());
                return None;
            }
            _ => panic!(
                "netns-topology up {suffix} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
        }
        Some(Topology {
            server_ns: format!("smb3d-srv-{suffix}"),
            client_ns: format!("smb3d-cli-{suffix}"),
            suffix,
        })
    }

    pub fn in_server(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.server_ns]).arg(program);
        c
    }

    pub fn in_client(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.client_ns]).arg(program);
        c
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        let _ = run(Command::new(script()).args(["down", &self.suffix]));
    }
}

/// smb3d inside the server namespace on both NICs' IPv4 and IPv6 addresses.
pub struct Server {
    child: Child,
    pub dir: PathBuf,
    log: PathBuf,
}

impl Server {
    pub fn start(topo: &Topology) -> Server {
        let dir = std::env::temp_dir().join(format!("smb3d-netns-{}", topo.suffix));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("share")).expect("create share directory");
        let passdb = dir.join("passdb");
        add_user(&passdb, USER, PASSWORD);
        fs::write(dir.join("pw"), format!("{PASSWORD}\n")).expect("password file");
        let log = dir.join("smb3d.log");
        let log_file = fs::File::create(&log).expect("log file");
        let mut cmd = topo.in_server(smb3d_binary());
        cmd.arg("serve")
            .arg("--passdb")
            .arg(&passdb)
            .arg("--share")
            .arg(format!("share={}", dir.join("share").display()));
        for a in SRV_V4 {
            cmd.args(["--listen", &format!("{a}:{PORT}")]);
        }
        for a in SRV_V6 {
            cmd.args(["--listen", &format!("[{a}]:{PORT}")]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log"))
            .stderr(log_file)
            .spawn()
            .expect("spawn smb3d in the server namespace");
        let mut server = Server { child, dir, log };
        server.wait_listening(topo);
        server
    }

    /// Until `ss` inside the namespace shows a listener on every address (20 s at most).
    fn wait_listening(&mut self, topo: &Topology) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("smb3d exited ({status}):\n{}", self.log_text());
            }
            let out = run(topo.in_server("ss").args(["-Hltn"]));
            let listeners = String::from_utf8_lossy(&out.stdout).to_string();
            let all = SRV_V4
                .iter()
                .map(|a| format!("{a}:{PORT}"))
                .chain(SRV_V6.iter().map(|a| format!("[{a}]:{PORT}")))
                .all(|a| listeners.contains(&a));
            if all {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "smb3d is not listening on all addresses after 20 s:\n{listeners}\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // `ip netns exec` execs the program: the child is smb3d itself.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- smb3d log ---\n{}", self.log_text());
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}
