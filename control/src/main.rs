//! `smb3d`: the control process. It parses the command line and configuration, manages the user
//! database, opens the shares, binds the listeners and starts the per-core reactors.

mod config;
mod cpus;
mod passdb;
mod workers;

use std::io::BufRead;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use mimalloc::MiMalloc;
use nix::sys::signal::{SigSet, Signal};
use smb3d_dataplane::handoff::Handoff;
use smb3d_dataplane::reactor::{bind_listeners, check_port_free, spawn_reactors, ReactorSpec};
use smb3d_dataplane::server::{BreakRetry, DeadPeer, ServerConfig, ServerState, Timeouts};
use smb3d_dataplane::share::{Requirement, Share, ShareKind};
use smb3d_dataplane::storage::worker_registry::WorkerRegistry;

use config::{parse_cpu_list, parse_requirement, parse_share_flag, FileConfig};
use passdb::Passdb;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

/// The longest `--durable-timeout` accepted: one day (the timeout is kept in milliseconds in
/// a u32, and a disconnected open should not hold a file much longer).
const MAX_DURABLE_TIMEOUT_SECS: u32 = 86_400;

#[derive(Parser)]
#[command(
    name = "smb3d",
    version,
    about = "High-throughput SMB2/SMB3 file server on per-core io_uring reactors"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve shares in the foreground until SIGINT or SIGTERM.
    Serve(Box<ServeArgs>),
    /// Serve ./smb3d-demo/share on 127.0.0.1:4455 as user "demo", password "demo".
    Demo {
        /// Folder for the demo share and user database.
        #[arg(long, default_value = "smb3d-demo")]
        dir: PathBuf,
        #[arg(long, default_value = "127.0.0.1:4455")]
        listen: String,
    },
    /// Manage the user database.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
}

#[derive(Subcommand)]
enum UserAction {
    /// Add a user or change its password; the password is read from stdin (one line).
    Add {
        #[arg(long)]
        passdb: PathBuf,
        name: String,
    },
    /// Remove a user.
    Del {
        #[arg(long)]
        passdb: PathBuf,
        name: String,
    },
    /// List users.
    List {
        #[arg(long)]
        passdb: PathBuf,
    },
}

#[derive(Args, Default)]
struct ServeArgs {
    /// TOML configuration file; flags override its settings.
    #[arg(long)]
    config: Option<PathBuf>,
    /// User database (see `smb3d user add`).
    #[arg(long)]
    passdb: Option<PathBuf>,
    /// A share, NAME=PATH; repeatable.
    #[arg(long = "share", value_name = "NAME=PATH")]
    shares: Vec<String>,
    /// Address to listen on, ADDR:PORT (port defaults to 445); repeatable [default: 0.0.0.0:445].
    #[arg(long = "listen", value_name = "ADDR:PORT")]
    listen: Vec<String>,
    /// Number of reactor threads [default: one per core of --cpus].
    ///
    /// Each reactor is an io_uring event loop pinned to one core; it accepts, reads, runs the
    /// protocol and the file I/O, and sends, all on that core. More reactors than cores share
    /// cores (new connections are split between them by flow hash). See docs/TUNING.md.
    #[arg(long, value_name = "N")]
    reactors: Option<usize>,
    /// Cores to pin reactors to, e.g. 0-3,8 [default: the cores local to the NICs of --listen, else all online cores].
    ///
    /// Reactor i runs on the i-th core of the list (wrapping around). A new connection is
    /// steered to the reactor on the core that received its SYN (a reuseport BPF program, plus
    /// SO_INCOMING_CPU), so point the NIC's receive-queue interrupts at these cores. The default
    /// reads /sys/class/net/IF/device/local_cpulist for each interface serving --listen
    /// (0.0.0.0 and :: mean all); virtual NICs and lo have none, and then all online cores in
    /// the process's affinity mask are used.
    #[arg(long, value_name = "LIST")]
    cpus: Option<String>,
    /// Signing: off, desired (sign when the client asks) or required [default: desired].
    ///
    /// Signing costs CPU on every message; AES-GMAC (3.1.1 clients) is the cheapest, AES-CMAC
    /// and HMAC-SHA256 cost more. See docs/PERFORMANCE.md.
    #[arg(long, value_name = "MODE")]
    signing: Option<String>,
    /// Encryption: off, desired (encrypt when the client asks) or required (all sessions) [default: desired].
    ///
    /// Encryption (AES-GCM/CCM) costs the most CPU per byte; share settings can require it per share.
    #[arg(long, value_name = "MODE")]
    encrypt: Option<String>,
    /// Most credits one connection may hold, i.e. how many requests a client may have in flight [default: 8192].
    ///
    /// Larger windows let one connection keep more I/O outstanding (large reads and writes
    /// charge one credit per 64 KiB); smaller ones bound the work one client can queue.
    #[arg(long, value_name = "N")]
    max_credits: Option<u16>,
    /// Oplock break channel policy: spec (oldest live channel first, sent again on the next
    /// channel when one is found dead) or windows (newest channel, never sent again) [default: spec].
    #[arg(long, value_name = "POLICY")]
    break_retry: Option<String>,
    /// Accept smbtorture's test FSCTL_SMBTORTURE_FORCE_UNACKED_TIMEOUT, which makes a connection
    /// count as never acknowledging what it is sent (tests of break retry only; off by default).
    #[arg(long)]
    enable_test_fsctl: bool,
    /// Seconds a durable open outlives its lost connection when the client leaves the choice
    /// to the server [default: 60]; clients may ask for up to 300 s, or this when longer.
    #[arg(long, value_name = "SECS")]
    durable_timeout: Option<u32>,
    /// Worker processes [default: 1, at most 64]. Each client (by ClientGuid) lives in one worker; a
    /// connection that reaches another worker is handed over with SCM_RIGHTS. A worker that
    /// dies is restarted and takes only its own clients with it.
    #[arg(long)]
    workers: Option<usize>,
    /// Seconds a connection may stay without an authenticated session (from accept, or from
    /// the end of its last session) before it is closed [default: 30]. See docs/TUNING.md.
    #[arg(long, value_name = "SECS")]
    login_timeout_secs: Option<u64>,
    /// Seconds within which a PDU whose first bytes arrived must be complete [default: 60].
    #[arg(long, value_name = "SECS")]
    partial_pdu_timeout_secs: Option<u64>,
    /// Seconds an authenticated connection with no open files may receive nothing before it is
    /// closed; 0: never [default: 900, as Windows' autodisconnect].
    #[arg(long, value_name = "SECS")]
    idle_timeout_secs: Option<u64>,
    /// A channel with an oplock or lease break waiting is declared dead, and the break sent on
    /// the next channel, after this many retransmission timeouts without any acknowledgment
    /// from the peer [default: 3].
    #[arg(long, value_name = "N")]
    dead_channel_rtos: Option<u32>,
    /// TCP_USER_TIMEOUT of every connection: sent data unacknowledged this long ends the
    /// connection; 0 keeps the kernel's retransmission limit (~15 min) [default: 30000].
    #[arg(long, value_name = "MS")]
    tcp_user_timeout_ms: Option<u64>,
    /// TCP keepalive: first probe after this many idle seconds; 0 turns keepalive off [default: 60].
    #[arg(long, value_name = "SECS")]
    keepalive_secs: Option<u64>,
    /// Seconds between keepalive probes [default: 10].
    #[arg(long, value_name = "SECS")]
    keepalive_interval_secs: Option<u64>,
    /// Unanswered keepalive probes that end a connection [default: 3].
    #[arg(long, value_name = "N")]
    keepalive_count: Option<u32>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(*args),
        Command::Demo { dir, listen } => demo(&dir, &listen),
        Command::User { action } => user(action),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("smb3d: {e}");
            ExitCode::FAILURE
        }
    }
}

fn user(action: UserAction) -> Result<(), String> {
    match action {
        UserAction::Add { passdb, name } => {
            let mut db = Passdb::load_or_empty(&passdb)?;
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| format!("reading password from stdin: {e}"))?;
            let password = line.trim_end_matches(['\n', '\r']);
            db.set(&name, smb3d_protocol::auth::nt_hash(password))?;
            db.save(&passdb)
        }
        UserAction::Del { passdb, name } => {
            let mut db = Passdb::load(&passdb)?;
            if !db.remove(&name) {
                return Err(format!("no user '{name}' in {}", passdb.display()));
            }
            db.save(&passdb)
        }
        UserAction::List { passdb } => {
            for u in Passdb::load(&passdb)?.users() {
                println!("{u}");
            }
            Ok(())
        }
    }
}

fn demo(dir: &Path, listen: &str) -> Result<(), String> {
    let share = dir.join("share");
    std::fs::create_dir_all(&share)
        .map_err(|e| format!("cannot create {}: {e}", share.display()))?;
    let passdb_path = dir.join("passdb");
    let mut db = Passdb::load_or_empty(&passdb_path)?;
    db.set("demo", smb3d_protocol::auth::nt_hash("demo"))?;
    db.save(&passdb_path)?;
    let port = listen.rsplit(':').next().unwrap_or("4455");
    eprintln!("smb3d demo: share 'share' at {}", share.display());
    eprintln!("  try: smbclient //127.0.0.1/share -p {port} -U demo%demo -c ls");
    serve(ServeArgs {
        passdb: Some(passdb_path),
        shares: vec![format!("share={}", share.display())],
        listen: vec![listen.to_string()],
        ..Default::default()
    })
}

/// The connection timeouts from flags, then the file, then the defaults.
fn timeouts(args: &ServeArgs, file: &FileConfig) -> Result<Timeouts, String> {
    let mut t = Timeouts::default();
    let secs = Duration::from_secs;
    if let Some(v) = args.login_timeout_secs.or(file.login_timeout_secs) {
        if v == 0 {
            return Err("--login-timeout-secs must be at least 1".into());
        }
        t.login = secs(v);
    }
    if let Some(v) = args
        .partial_pdu_timeout_secs
        .or(file.partial_pdu_timeout_secs)
    {
        if v == 0 {
            return Err("--partial-pdu-timeout-secs must be at least 1".into());
        }
        t.partial_pdu = secs(v);
    }
    if let Some(v) = args.idle_timeout_secs.or(file.idle_timeout_secs) {
        t.idle = (v > 0).then(|| secs(v));
    }
    Ok(t)
}

/// How dead peers are found: flags, then the file, then the defaults.
fn dead_peer(args: &ServeArgs, file: &FileConfig) -> Result<DeadPeer, String> {
    let mut d = DeadPeer::default();
    if let Some(n) = args.dead_channel_rtos.or(file.dead_channel_rtos) {
        if !(1..=60).contains(&n) {
            return Err("--dead-channel-rtos must be 1 to 60".into());
        }
        d.break_silence_rtos = n;
    }
    if let Some(ms) = args.tcp_user_timeout_ms.or(file.tcp_user_timeout_ms) {
        if ms > u64::from(u32::MAX) {
            return Err("--tcp-user-timeout-ms is too large".into());
        }
        d.tcp_user_timeout = (ms > 0).then(|| Duration::from_millis(ms));
    }
    let idle = args.keepalive_secs.or(file.keepalive_secs);
    let interval = args
        .keepalive_interval_secs
        .or(file.keepalive_interval_secs);
    let count = args.keepalive_count.or(file.keepalive_count);
    if idle == Some(0) {
        d.keepalive = None;
    } else if let Some(k) = d.keepalive.as_mut() {
        // TCP_KEEPIDLE/TCP_KEEPINTVL take 1..=32767 s, TCP_KEEPCNT 1..=127 (tcp(7)).
        for (name, v) in [
            ("--keepalive-secs", idle),
            ("--keepalive-interval-secs", interval),
        ] {
            if v.is_some_and(|v| !(1..=32767).contains(&v)) {
                return Err(format!("{name} must be 1 to 32767"));
            }
        }
        if count.is_some_and(|c| !(1..=127).contains(&c)) {
            return Err("--keepalive-count must be 1 to 127".into());
        }
        k.idle = idle.map_or(k.idle, Duration::from_secs);
        k.interval = interval.map_or(k.interval, Duration::from_secs);
        k.count = count.unwrap_or(k.count);
    }
    Ok(d)
}

fn serve(args: ServeArgs) -> Result<(), String> {
    let file = match &args.config {
        Some(p) => FileConfig::load(p)?,
        None => FileConfig::default(),
    };
    let conn_timeouts = timeouts(&args, &file)?;
    let dead_peer_settings = dead_peer(&args, &file)?;
    init_logging();

    let passdb_path = args
        .passdb
        .or(file.passdb)
        .ok_or("no user database: give --passdb FILE")?;
    let users = Passdb::load(&passdb_path)?;
    if users.is_empty() {
        tracing::warn!(passdb = %passdb_path.display(), "user database is empty: nobody can log on");
    }

    let mut share_configs = file.shares;
    for s in &args.shares {
        let sc = parse_share_flag(s)?;
        share_configs.retain(|c| !c.name.eq_ignore_ascii_case(&sc.name));
        share_configs.push(sc);
    }
    if share_configs.is_empty() {
        return Err("no shares: give --share NAME=PATH".into());
    }
    let mut shares = Vec::new();
    for sc in &share_configs {
        if sc.name.eq_ignore_ascii_case("IPC$") || sc.name.contains(['\\', '/']) {
            return Err(format!("share name '{}' is reserved or invalid", sc.name));
        }
        let root = open_share_root(&sc.path).map_err(|e| format!("share {}: {e}", sc.name))?;
        let encrypt = match &sc.encrypt {
            Some(v) => parse_requirement(&format!("share {} encrypt", sc.name), v)?,
            None => Requirement::Off,
        };
        shares.push(Arc::new(Share {
            name: sc.name.clone(),
            kind: ShareKind::Disk,
            path: sc.path.clone(),
            root: Some(root),
            read_only: sc.read_only,
            encrypt,
        }));
    }
    shares.push(Arc::new(Share {
        name: "IPC$".into(),
        kind: ShareKind::Ipc,
        path: PathBuf::new(),
        root: None,
        read_only: true,
        encrypt: Requirement::Off,
    }));

    let mut config = ServerConfig::default();
    if let Some(v) = args.signing.as_deref().or(file.signing.as_deref()) {
        config.signing = parse_requirement("--signing", v)?;
    }
    if let Some(v) = args.encrypt.as_deref().or(file.encrypt.as_deref()) {
        config.encrypt = parse_requirement("--encrypt", v)?;
    }
    if let Some(v) = args.max_credits.or(file.max_credits) {
        if v == 0 {
            return Err("--max-credits must be at least 1".into());
        }
        config.max_credits = v;
    }
    if let Some(n) = file.netbios_name {
        config.netbios_name = n;
    }
    if let Some(p) = args.break_retry.as_deref().or(file.break_retry.as_deref()) {
        config.break_retry = match p {
            "spec" => BreakRetry::Spec,
            "windows" => BreakRetry::Windows,
            other => {
                return Err(format!(
                    "--break-retry: expected spec or windows, got '{other}'"
                ))
            }
        };
    }
    config.enable_test_fsctl = args.enable_test_fsctl || file.enable_test_fsctl.unwrap_or(false);
    if let Some(secs) = args.durable_timeout.or(file.durable_timeout) {
        if secs == 0 || secs > MAX_DURABLE_TIMEOUT_SECS {
            return Err(format!(
                "--durable-timeout: expected 1 to {MAX_DURABLE_TIMEOUT_SECS} seconds, got {secs}"
            ));
        }
        config.durable_timeout_ms = secs * 1000;
    }
    config.timeouts = conn_timeouts;
    config.dead_peer = dead_peer_settings;

    let mut listen = if args.listen.is_empty() {
        file.listen
    } else {
        args.listen
    };
    if listen.is_empty() {
        listen.push("0.0.0.0:445".into());
    }
    let addrs = listen
        .iter()
        .map(|l| parse_listen(l))
        .collect::<Result<Vec<_>, _>>()?;
    for addr in &addrs {
        check_port_free(*addr)?;
    }
    let cpus = match args.cpus.as_deref().or(file.cpus.as_deref()) {
        Some(list) => parse_cpu_list(list)?,
        None => cpus::default_cpus(&addrs),
    };
    let reactors = args
        .reactors
        .or(file.reactors)
        .unwrap_or(cpus.len())
        .clamp(1, 1024);
    let reactor_cpus: Vec<usize> = (0..reactors).map(|i| cpus[i % cpus.len()]).collect();
    config.listen = addrs.clone();
    let mut guid = [0u8; 16];
    rand::Rng::fill(&mut rand::thread_rng(), &mut guid);
    let plan = ServePlan {
        config,
        shares,
        users,
        guid,
        addrs,
        reactor_cpus,
    };
    let workers_count = args
        .workers
        .or(file.workers)
        .unwrap_or(1)
        .clamp(1, workers::MAX_WORKERS);
    if workers_count > 1 {
        return workers::supervise(&plan, workers_count);
    }
    let signals = stop_signals()?;
    let listeners = bind_group_listeners(&plan, 1)?
        .pop()
        .ok_or("no listeners")?;
    run_worker(&plan, listeners, None, &signals)
}

/// Everything a worker needs to serve, decided once in the control process.
pub struct ServePlan {
    pub config: ServerConfig,
    pub shares: Vec<Arc<Share>>,
    pub users: Passdb,
    /// One ServerGuid for every worker: a client's channels must all see the same server.
    pub guid: [u8; 16],
    pub addrs: Vec<SocketAddr>,
    /// The core of each reactor (one entry per reactor).
    pub reactor_cpus: Vec<usize>,
}

/// SIGINT and SIGTERM, blocked in every thread so that only `wait` sees them.
fn stop_signals() -> Result<SigSet, String> {
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals
        .thread_block()
        .map_err(|e| format!("cannot block signals: {e}"))?;
    Ok(signals)
}

/// Listening sockets by reactor: `[reactor][address]`.
pub type ReactorListeners = Vec<Vec<(SocketAddr, OwnedFd)>>;

/// Bind the listening sockets of `groups` processes of `plan.reactor_cpus.len()` reactors each,
/// all in one SO_REUSEPORT group per address, steered by receiving core: the socket of reactor
/// `r` of process `g` is at index `g * reactors + r` of its group. A CPU with a reactor in each
/// process picks among them by flow hash (see `steering`). Returns the listeners of each
/// process. With workers the control process binds them all before forking and keeps them, so
/// the group's order never changes, even while a worker restarts (a steering program indexes
/// sockets by their place in the group; closing one would reorder the rest).
pub fn bind_group_listeners(
    plan: &ServePlan,
    groups: usize,
) -> Result<Vec<ReactorListeners>, String> {
    let reactors = plan.reactor_cpus.len();
    let steer_cpus: Vec<usize> = (0..groups)
        .flat_map(|_| plan.reactor_cpus.iter().copied())
        .collect();
    let mut out: Vec<ReactorListeners> = (0..groups)
        .map(|_| (0..reactors).map(|_| Vec::new()).collect())
        .collect();
    for addr in &plan.addrs {
        let fds = bind_listeners(*addr, groups * reactors, &steer_cpus)?;
        for (i, fd) in fds.into_iter().enumerate() {
            out[i / reactors][i % reactors].push((*addr, fd));
        }
    }
    Ok(out)
}

/// What makes a process one worker of several.
pub struct WorkerJoin {
    /// Its index and every worker's inbox.
    pub handoff: Handoff,
    /// Its own inbox, to read.
    pub inbox: OwnedFd,
    /// Its view of what the other workers hold on files.
    pub registry: WorkerRegistry,
}

/// Serve with this process's reactors on `listeners` until a stop signal: the whole server, or
/// one worker (`join`).
pub fn run_worker(
    plan: &ServePlan,
    per_reactor: ReactorListeners,
    join: Option<WorkerJoin>,
    signals: &SigSet,
) -> Result<(), String> {
    let reactors = plan.reactor_cpus.len();
    let mut state = ServerState::new(
        plan.config.clone(),
        plan.shares.clone(),
        Arc::new(plan.users.clone()),
        plan.guid,
    );
    let inbox = join.map(|j| {
        state.join_workers(j.handoff, j.registry);
        j.inbox
    });
    let server = Arc::new(state);

    let shutdown = Arc::new(AtomicBool::new(false));
    let specs = per_reactor
        .into_iter()
        .enumerate()
        .map(|(index, listeners)| ReactorSpec {
            index,
            core: Some(plan.reactor_cpus[index]),
            listeners,
        })
        .collect();
    let handles = spawn_reactors(server.clone(), specs, shutdown.clone())
        .map_err(|e| format!("cannot start reactors: {e}"))?;
    if let Some(inbox) = inbox {
        smb3d_dataplane::handoff::spawn_inbox(server, inbox)
            .map_err(|e| format!("cannot start inbox: {e}"))?;
    }
    tracing::info!(reactors, reactor_cpus = ?plan.reactor_cpus, listen = ?plan.addrs, "smb3d serving");

    let sig = signals
        .wait()
        .map_err(|e| format!("waiting for signals: {e}"))?;
    tracing::info!(signal = ?sig, "stopping");
    shutdown.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
    Ok(())
}

fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    // An address without a port: the SMB default, 445.
    if let Ok(ip) = s
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
    {
        return Ok(SocketAddr::new(ip, 445));
    }
    Err(format!("--listen {s}: expected ADDR:PORT"))
}

fn open_share_root(path: &Path) -> Result<OwnedFd, String> {
    use nix::fcntl::{open, OFlag};
    use nix::sys::stat::Mode;
    use std::os::fd::FromRawFd;
    let meta = std::fs::metadata(path).map_err(|e| format!("path {}: {e}", path.display()))?;
    if !meta.is_dir() {
        return Err(format!("path {} is not a directory", path.display()));
    }
    let fd = open(
        path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    // SAFETY: `open` returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn init_logging() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("SMB3D_LOG").unwrap_or_else(|_| "info".into());
    // A log line that cannot be written (disk full) is dropped. Without log_internal_errors(false)
    // the subscriber reports the failure with eprintln!, which panics when stderr is full, and
    // the panic would take down the reactor thread that logged.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false)
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_peer_settings_come_from_flags_then_file_then_defaults() {
        let none = FileConfig::default();
        assert_eq!(
            dead_peer(&ServeArgs::default(), &none),
            Ok(DeadPeer::default())
        );
        let file: FileConfig = toml::from_str(
            "dead_channel_rtos = 6\ntcp_user_timeout_ms = 0\nkeepalive_secs = 120\nkeepalive_count = 5\n",
        )
        .unwrap();
        let args = ServeArgs {
            dead_channel_rtos: Some(4),
            ..Default::default()
        };
        let d = dead_peer(&args, &file).unwrap();
        assert_eq!(d.break_silence_rtos, 4);
        assert_eq!(d.tcp_user_timeout, None);
        let k = d.keepalive.unwrap();
        assert_eq!(
            (k.idle.as_secs(), k.interval.as_secs(), k.count),
            (120, 10, 5)
        );

        let off = ServeArgs {
            keepalive_secs: Some(0),
            ..Default::default()
        };
        assert_eq!(dead_peer(&off, &none).unwrap().keepalive, None);
        for bad in [
            ServeArgs {
                dead_channel_rtos: Some(0),
                ..Default::default()
            },
            ServeArgs {
                keepalive_count: Some(500),
                ..Default::default()
            },
            ServeArgs {
                keepalive_interval_secs: Some(40_000),
                ..Default::default()
            },
        ] {
            assert!(dead_peer(&bad, &none).is_err());
        }
    }
}
