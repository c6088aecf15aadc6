//! smb3bench command line. See `smb3bench --help`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use smb3bench::client::ntlm::Credentials;
use smb3bench::client::parse_target;
use smb3bench::client::session::{login, LoginOptions};
use smb3bench::job::{parse_job_file, JobSpec};
use smb3bench::report;
use smb3bench::run::{run_job, Target};
use smb3bench::soak::{process_tree_usage, run_soak, wait_for_fds, ProcessUsage, SoakOptions};
use smb3d_protocol::dialect::{Cipher, SigningAlgorithm};

const HELP: &str = "\
smb3bench: an fio-like SMB 3.1.1 load generator that speaks the protocol itself.

Usage:
  smb3bench //HOST[:PORT]/SHARE --user NAME --password-file FILE [options] [JOBFILE]

Connection:
  --user NAME             user name (NTLMv2)
  --password-file FILE    file holding the password (first line)
  --domain NAME           domain for NTLMv2 (default: empty)
  --sign                  sign every request (the server may require it anyway)
  --signing ALG           aes-gmac (default), aes-cmac or hmac-sha256: offered first; implies --sign
  --encrypt               encrypt every message (cipher from --cipher, default aes-128-gcm)
  --cipher C              aes-128-gcm, aes-256-gcm, aes-128-ccm or aes-256-ccm; implies --encrypt
  --channels N            channels per job (multichannel session binding, default 1); falls
                          back to 1 with a note if the server lacks SMB2_GLOBAL_CAP_MULTI_CHANNEL
  --connect A[,A...]      addresses (IP:PORT) for the extra channels; default: the server's
                          FSCTL_QUERY_NETWORK_INTERFACE_INFO addresses with the target's port
  --output-format F       normal (default) or json (shaped like fio's)
  --list-interfaces       log in, print the server's FSCTL_QUERY_NETWORK_INTERFACE_INFO list
                          (index, address, RSS capability, link speed) and exit; no job runs
  --job-file FILE         fio job file ([global] and [job] sections); also as last argument.
                          Options given on the command line act as [global] defaults.

Job options (fio names, --key VALUE or --key=VALUE):
  --name NAME             job name (default: job)
  --rw MODE               read, write, randread, randwrite, rw (readwrite), randrw,
                          create (open/close/delete rate), stat, dirlist, echo
  --bs SIZE               block size, e.g. 4k, 1M (default 4k)
  --iodepth N             outstanding requests per channel (default 1)
  --size SIZE             bytes per file (default 64M)
  --runtime TIME          stop after this long (e.g. 10, 500ms, 1m)
  --time_based            loop over the files until runtime is reached
  --numjobs N, --files N  files (data jobs: one per numjobs; stat/dirlist: directory population)
  --rwmixread PCT         reads in mixed jobs (default 50)
  --verify                write a pattern, check it on read (read jobs lay the files out first;
                          write jobs read every written block back after the run, over another
                          channel than the one that wrote it when there are several)
  --failover              data jobs: when a channel's connection is lost, reissue its operations
                          on the remaining channels instead of failing (noted in the results)
  --number_ios N          stop after N operations (metadata/echo jobs default to 1000)

Soak (--soak): --clients N sessions of --channels N channels each do a random mix of creates,
writes (some flushed), reads, renames, truncates and deletes on their own files in a new directory
soak-SECONDS-PID for --runtime (default 30 s) or --number_ios operations, every read checked against a model
of the files; at the end every file is read back. Prints figures, exits 1 on any error or
difference.
  --soak                  run the soak instead of a job
  --clients N             sessions (default 4)
  --seed N                random seed (default 1)
  --server-pid PID        also measure the server's descriptors and memory (the process and its
                          workers, from /proc) before and after; fails if descriptors are not
                          back to the count before within 10 s of the clients leaving

Files are named smb3bench.JOBNAME.N in the share root (kept, like fio's); metadata jobs use the
directory smb3bench.JOBNAME.d, removed afterwards. Server errors are reported by NTSTATUS name.

Example:
  smb3bench //127.0.0.1:4455/share --user u --password-file pw --rw read --bs 1M \\
      --iodepth 16 --channels 4 --size 1G --runtime 10 --output-format json
";

struct Cli {
    target: String,
    user: Option<String>,
    password_file: Option<String>,
    domain: String,
    sign: bool,
    signing: SigningAlgorithm,
    encrypt: bool,
    cipher: Cipher,
    connect: Vec<SocketAddr>,
    json: bool,
    list_interfaces: bool,
    job_file: Option<String>,
    base: JobSpec,
    soak: bool,
    clients: usize,
    seed: u64,
    server_pid: Option<u32>,
}

const BOOL_JOB_KEYS: &[&str] = &["verify", "time_based", "failover"];

fn parse_cli(args: &[String]) -> Result<Cli, String> {
    let mut cli = Cli {
        target: String::new(),
        user: None,
        password_file: None,
        domain: String::new(),
        sign: false,
        signing: SigningAlgorithm::AesGmac,
        encrypt: false,
        cipher: Cipher::Aes128Gcm,
        connect: Vec::new(),
        json: false,
        list_interfaces: false,
        job_file: None,
        base: JobSpec::default(),
        soak: false,
        clients: 4,
        seed: 1,
        server_pid: None,
    };
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        let Some(opt) = arg.strip_prefix("--") else {
            if arg.starts_with("//") && cli.target.is_empty() {
                cli.target = arg.clone();
            } else if cli.job_file.is_none() {
                cli.job_file = Some(arg.clone());
            } else {
                return Err(format!("unexpected argument '{arg}'"));
            }
            continue;
        };
        let (key, inline) = match opt.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (opt.to_string(), None),
        };
        let is_flag = matches!(
            key.as_str(),
            "sign" | "encrypt" | "help" | "list-interfaces" | "soak"
        ) || BOOL_JOB_KEYS.contains(&key.replace('-', "_").as_str());
        let value = match (inline, is_flag) {
            (Some(v), _) => v,
            (None, true) => "1".to_string(),
            (None, false) => {
                let v = args
                    .get(i)
                    .ok_or_else(|| format!("--{key} needs a value"))?;
                i += 1;
                v.clone()
            }
        };
        match key.as_str() {
            "help" => return Err(String::new()),
            "user" => cli.user = Some(value),
            "password-file" => cli.password_file = Some(value),
            "domain" => cli.domain = value,
            "sign" => cli.sign = value != "0",
            "signing" => {
                cli.sign = true;
                cli.signing = match value.as_str() {
                    "aes-gmac" => SigningAlgorithm::AesGmac,
                    "aes-cmac" => SigningAlgorithm::AesCmac,
                    "hmac-sha256" => SigningAlgorithm::HmacSha256,
                    _ => return Err(format!("unknown signing algorithm '{value}'")),
                }
            }
            "encrypt" => cli.encrypt = value != "0",
            "cipher" => {
                cli.encrypt = true;
                cli.cipher = match value.as_str() {
                    "aes-128-gcm" => Cipher::Aes128Gcm,
                    "aes-256-gcm" => Cipher::Aes256Gcm,
                    "aes-128-ccm" => Cipher::Aes128Ccm,
                    "aes-256-ccm" => Cipher::Aes256Ccm,
                    _ => return Err(format!("unknown cipher '{value}'")),
                }
            }
            "connect" => {
                for a in value.split(',') {
                    cli.connect.push(
                        a.parse()
                            .map_err(|_| format!("--connect: '{a}' is not IP:PORT"))?,
                    );
                }
            }
            "output-format" => {
                cli.json = match value.as_str() {
                    "json" => true,
                    "normal" => false,
                    _ => return Err(format!("unknown output format '{value}'")),
                }
            }
            "job-file" => cli.job_file = Some(value),
            "list-interfaces" => cli.list_interfaces = value != "0",
            "soak" => cli.soak = value != "0",
            "clients" => cli.clients = parse_number(&key, &value)?,
            "seed" => cli.seed = parse_number(&key, &value)?,
            "server-pid" => cli.server_pid = Some(parse_number(&key, &value)?),
            _ => cli.base.set(&key, &value)?,
        }
    }
    if cli.target.is_empty() {
        return Err("missing //HOST[:PORT]/SHARE".into());
    }
    Ok(cli)
}

fn parse_number<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("--{key}: '{value}' is not a number"))
}

struct Setup {
    target: Target,
    soak: Option<(SoakOptions, Option<u32>)>,
    jobs: Vec<JobSpec>,
    json: bool,
    list_interfaces: bool,
    target_name: String,
}

fn setup(args: &[String]) -> Result<Setup, String> {
    let cli = parse_cli(args)?;
    let (addr, unc) = parse_target(&cli.target)?;
    let user = cli.user.ok_or("--user is required")?;
    let pw_file = cli.password_file.ok_or("--password-file is required")?;
    let password =
        std::fs::read_to_string(&pw_file).map_err(|e| format!("cannot read {pw_file}: {e}"))?;
    let password = password.lines().next().unwrap_or("").to_string();
    let jobs = match &cli.job_file {
        Some(f) => {
            let text = std::fs::read_to_string(f).map_err(|e| format!("cannot read {f}: {e}"))?;
            parse_job_file(&text, &cli.base).map_err(|e| format!("{f}: {e}"))?
        }
        None if cli.list_interfaces || cli.soak => Vec::new(),
        None => {
            cli.base.validate()?;
            vec![cli.base.clone()]
        }
    };
    use std::io::IsTerminal;
    let target = Target {
        addr,
        unc,
        connect: cli.connect,
        login: LoginOptions {
            creds: Credentials {
                user,
                domain: cli.domain,
                password,
            },
            sign: cli.sign,
            encrypt: cli.encrypt.then_some(cli.cipher),
            signing: cli.signing,
        },
        progress: !cli.json && std::io::stderr().is_terminal(),
    };
    let soak = cli.soak.then(|| {
        let mut o = SoakOptions::new(target.addr, target.unc.clone(), target.login.clone());
        o.clients = cli.clients.max(1);
        o.channels = cli.base.channels.max(1) as usize;
        o.duration = cli.base.runtime.unwrap_or(o.duration);
        o.max_ops = cli.base.number_ios.unwrap_or(o.max_ops);
        o.seed = cli.seed;
        (o, cli.server_pid)
    });
    Ok(Setup {
        target,
        soak,
        jobs,
        json: cli.json,
        list_interfaces: cli.list_interfaces,
        target_name: cli.target,
    })
}

/// `--list-interfaces`: the server's interface list, as a table or JSON.
fn list_interfaces(t: &Target, json: bool) -> ExitCode {
    let listed = login(t.addr, &t.unc, &t.login).and_then(|mut s| s.query_interfaces());
    let ifaces = match listed {
        Ok(i) => i,
        Err(e) => {
            eprintln!("smb3bench: FSCTL_QUERY_NETWORK_INTERFACE_INFO failed: {e}");
            return ExitCode::from(1);
        }
    };
    if json {
        let rows: Vec<String> = ifaces
            .iter()
            .map(|i| {
                format!(
                    "{{\"if_index\": {}, \"address\": \"{}\", \"capability\": {}, \
                     \"rss_capable\": {}, \"link_speed_bps\": {}}}",
                    i.if_index,
                    i.addr,
                    i.capability,
                    i.rss_capable(),
                    i.link_speed_bps
                )
            })
            .collect();
        println!("{{\"interfaces\": [{}]}}", rows.join(", "));
    } else {
        println!(
            "{:>7}  {:<40} {:>5} {:>14}",
            "ifindex", "address", "rss", "speed (bit/s)"
        );
        for i in &ifaces {
            println!(
                "{:>7}  {:<40} {:>5} {:>14}",
                i.if_index,
                i.addr.to_string(),
                if i.rss_capable() { "yes" } else { "no" },
                i.link_speed_bps
            );
        }
    }
    ExitCode::SUCCESS
}

/// `--soak`: run it, with the server's /proc figures around it when its pid is known.
fn soak(opts: &SoakOptions, server_pid: Option<u32>) -> ExitCode {
    let measure = |what: &str, u: std::io::Result<ProcessUsage>| match u {
        Ok(u) => {
            println!(
                "server {what}: {} processes, {} fds, RSS {} KiB",
                u.processes, u.fds, u.rss_kib
            );
            Some(u)
        }
        Err(e) => {
            println!("server {what}: cannot read /proc: {e}");
            None
        }
    };
    let before = server_pid.and_then(|p| measure("before", process_tree_usage(p)));
    let report = run_soak(opts);
    print!("{}", report.text());
    let mut ok = report.errors.is_empty();
    if let (Some(pid), Some(before)) = (server_pid, before) {
        let after = wait_for_fds(pid, before.fds, Duration::from_secs(10));
        if let Some(after) = measure("after", after) {
            if after.fds > before.fds {
                println!(
                    "LEAK: {} descriptors more than before",
                    after.fds - before.fds
                );
                ok = false;
            }
            let growth_kib = after.rss_kib as i64 - before.rss_kib as i64;
            println!("server RSS growth: {growth_kib} KiB");
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() || args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{HELP}");
        return if args.is_empty() {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    let Setup {
        target,
        jobs,
        json,
        list_interfaces: list_only,
        target_name,
        soak: soak_opts,
    } = match setup(&args) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("smb3bench: {e}\n(see smb3bench --help)");
            return ExitCode::from(2);
        }
    };
    if let Some((opts, pid)) = soak_opts {
        return soak(&opts, pid);
    }
    if list_only {
        return list_interfaces(&target, json);
    }
    let mut results = Vec::new();
    for job in &jobs {
        let r = run_job(&target, job);
        if !json {
            print!("{}", report::text(std::slice::from_ref(&r)));
        }
        results.push(r);
    }
    if json {
        print!("{}", report::json(&results, &target_name));
    }
    if results.iter().any(|r| r.error.is_some()) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
