//! smb3failover command line: oplock break failover latency over a dead channel. See --help.

use std::net::ToSocketAddrs;
use std::process::ExitCode;
use std::time::Duration;

use smb3bench::client::ntlm::Credentials;
use smb3bench::client::parse_target;
use smb3bench::client::session::LoginOptions;
use smb3bench::failover::{run_once, Block, BreakKind, Options, Outcome};
use smb3bench::job::parse_size;
use smb3bench::report::json_str;
use smb3d_protocol::dialect::SigningAlgorithm;

const HELP: &str = "\
smb3failover: how fast an oplock or lease break reaches a holder whose first channel went dark.

Usage:
  smb3failover //HOST[:PORT]/SHARE --user NAME --password-file FILE --second IP:PORT [options]

Each run: a holder session (first channel to the target, second bound over --second) opens FILE
with a batch oplock or an RWH lease and writes --size bytes, half over each channel; the first channel goes dark
(--block iptables: DROP rules for its local port in INPUT and OUTPUT of the current network
namespace, removed afterwards; refused in the host's namespace); a second client opens the file.
The break must arrive on the second channel; the holder acknowledges it there; the second client's
open completes and it reads the data back.

Options:
  --domain NAME         NTLMv2 domain (default empty)
  --kind KIND           what the holder holds: batch (a batch oplock, default) or lease (an RWH
                        lease, v2 context; the break goes to any channel of its ClientGuid)
  --block MODE          iptables (default) or none (baseline: nothing goes dark)
  --runs N              runs (default 1)
  --size SIZE           bytes written before the break (default 1M)
  --file NAME           file in the share (default smb3failover.dat)
  --timeout SECONDS     wait at most this long for the break and the open (default 60)
  --json                one JSON document: runs[] and a summary (milliseconds)

Printed per run: the channel the break arrived on, the time from going dark to the break on a
live channel, the acknowledgment's status, the second open's latency, the bytes read back intact.
The exit status is 1 if a run failed.
";

struct Cli {
    opts: Options,
    runs: u32,
    json: bool,
}

fn parse(args: &[String]) -> Result<Cli, String> {
    let mut target = None;
    let (mut user, mut pw_file, mut second) = (None, None, None);
    let mut domain = String::new();
    let (mut kind, mut block) = (BreakKind::Batch, Block::Iptables);
    let (mut runs, mut size, mut timeout_s) = (1u32, 1usize << 20, 60u64);
    let mut file = "smb3failover.dat".to_string();
    let mut json = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().cloned().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "-h" | "--help" => return Err(HELP.to_string()),
            "--user" => user = Some(value(a)?),
            "--password-file" => pw_file = Some(value(a)?),
            "--domain" => domain = value(a)?,
            "--second" => {
                let v = value(a)?;
                let addr = v
                    .to_socket_addrs()
                    .map_err(|e| format!("--second {v}: {e}"))?
                    .next()
                    .ok_or(format!("--second {v}: no address"))?;
                second = Some(addr);
            }
            "--kind" => {
                kind = match value(a)?.as_str() {
                    "batch" => BreakKind::Batch,
                    "lease" => BreakKind::Lease,
                    other => return Err(format!("--kind {other}: batch or lease")),
                }
            }
            "--block" => {
                block = match value(a)?.as_str() {
                    "iptables" => Block::Iptables,
                    "none" => Block::None,
                    other => return Err(format!("--block {other}: iptables or none")),
                }
            }
            "--runs" => runs = value(a)?.parse().map_err(|_| "bad --runs")?,
            "--size" => {
                let v = value(a)?;
                size = parse_size(&v).ok_or(format!("bad --size {v}"))? as usize;
            }
            "--file" => file = value(a)?,
            "--timeout" => timeout_s = value(a)?.parse().map_err(|_| "bad --timeout")?,
            "--json" => json = true,
            t if t.starts_with("//") && target.is_none() => target = Some(t.to_string()),
            other => return Err(format!("unknown argument {other} (see --help)")),
        }
    }
    let (addr, unc) = parse_target(&target.ok_or("no //HOST/SHARE target (see --help)")?)?;
    let pw_file: String = pw_file.ok_or("--password-file is required")?;
    let password =
        std::fs::read_to_string(&pw_file).map_err(|e| format!("cannot read {pw_file}: {e}"))?;
    Ok(Cli {
        opts: Options {
            target: addr,
            unc,
            second: second.ok_or("--second is required")?,
            login: LoginOptions {
                creds: Credentials {
                    user: user.ok_or("--user is required")?,
                    domain,
                    password: password.lines().next().unwrap_or("").to_string(),
                },
                sign: false,
                encrypt: None,
                signing: SigningAlgorithm::AesGmac,
            },
            kind,
            block,
            file_name: file,
            data_bytes: size,
            timeout: Duration::from_secs(timeout_s),
        },
        runs,
        json,
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn run_json(o: &Outcome) -> String {
    format!(
        "{{\"ok\": true, \"break_channel\": {}, \"break_address\": {}, \"break_to\": {}, \
         \"dark_to_break_ms\": {:.3}, \"acked\": {}, \"ack_status\": {}, \"ack_status_name\": {}, \
         \"open_ms\": {:.3}, \"verified_bytes\": {}}}",
        o.break_channel,
        json_str(&o.break_address.to_string()),
        o.break_to,
        ms(o.dark_to_break),
        o.acked,
        o.ack_status.0,
        json_str(o.ack_status.name()),
        ms(o.open_latency),
        o.verified_bytes
    )
}

fn run_text(i: u32, o: &Outcome) -> String {
    format!(
        "run {i}: break on channel {} ({}) {:.1} ms after going dark; ack STATUS_{}; second open \
         {:.1} ms; {} bytes read back intact",
        o.break_channel + 1,
        o.break_address,
        ms(o.dark_to_break),
        o.ack_status.name(),
        ms(o.open_latency),
        o.verified_bytes
    )
}

/// (min, median, max) in milliseconds.
fn spread(mut v: Vec<f64>) -> Option<(f64, f64, f64)> {
    v.sort_by(f64::total_cmp);
    Some((*v.first()?, v[v.len() / 2], *v.last()?))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cli = match parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let mut ok: Vec<Outcome> = Vec::new();
    let mut docs = Vec::new();
    let mut failed = 0;
    for i in 1..=cli.runs {
        match run_once(&cli.opts, i as u8) {
            Ok(o) => {
                if !cli.json {
                    println!("{}", run_text(i, &o));
                }
                docs.push(run_json(&o));
                ok.push(o);
            }
            Err(e) => {
                failed += 1;
                if !cli.json {
                    println!("run {i}: failed: {e}");
                }
                docs.push(format!(
                    "{{\"ok\": false, \"error\": {}}}",
                    json_str(&e.to_string())
                ));
            }
        }
    }
    let dark = spread(ok.iter().map(|o| ms(o.dark_to_break)).collect());
    let open = spread(ok.iter().map(|o| ms(o.open_latency)).collect());
    if cli.json {
        let triple = |t: Option<(f64, f64, f64)>| match t {
            Some((a, b, c)) => format!("[{a:.3}, {b:.3}, {c:.3}]"),
            None => "null".into(),
        };
        println!(
            "{{\"runs\": [{}], \"failed\": {failed}, \"dark_to_break_ms_min_median_max\": {}, \
             \"open_ms_min_median_max\": {}}}",
            docs.join(", "),
            triple(dark),
            triple(open)
        );
    } else if let (Some(d), Some(op)) = (dark, open) {
        println!(
            "dark -> break on a live channel: min {:.1} / median {:.1} / max {:.1} ms; second \
             open: {:.1} / {:.1} / {:.1} ms; {failed} of {} runs failed",
            d.0, d.1, d.2, op.0, op.1, op.2, cli.runs
        );
    }
    if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
