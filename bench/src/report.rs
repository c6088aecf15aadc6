//! Results as fio prints them: a human summary, or JSON shaped like `fio --output-format=json`
//! (`jobs[].read.bw_bytes`, `jobs[].read.iops`, `jobs[].read.clat_ns.percentile`, ...) plus
//! `jobs[].channels` and `jobs[].channel_stats`.

use std::fmt::Write;
use std::time::Duration;

use crate::hist::FIO_PERCENTILES;
use crate::run::{ChannelStats, IoStats, JobResult};

fn per_sec(n: u64, elapsed: Duration) -> f64 {
    let s = elapsed.as_secs_f64();
    if s <= 0.0 {
        0.0
    } else {
        n as f64 / s
    }
}

/// `s` as a JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_f(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.6}")
    } else {
        "0".into()
    }
}

fn io_json(s: &IoStats, elapsed: Duration) -> String {
    let bw = per_sec(s.bytes, elapsed);
    let h = &s.hist;
    let percentiles: Vec<String> = FIO_PERCENTILES
        .iter()
        .map(|p| format!("\"{p:.6}\": {}", h.percentile(*p)))
        .collect();
    format!(
        "{{\"io_bytes\": {}, \"io_kbytes\": {}, \"bw_bytes\": {}, \"bw\": {}, \"iops\": {}, \
         \"runtime\": {}, \"total_ios\": {}, \"clat_ns\": {{\"min\": {}, \"max\": {}, \
         \"mean\": {}, \"N\": {}, \"percentile\": {{{}}}}}}}",
        s.bytes,
        s.bytes / 1024,
        bw as u64,
        (bw / 1024.0) as u64,
        json_f(per_sec(s.ios(), elapsed)),
        elapsed.as_millis(),
        s.ios(),
        h.min(),
        h.max(),
        json_f(h.mean()),
        h.count(),
        percentiles.join(", ")
    )
}

fn channel_json(i: usize, c: &ChannelStats, elapsed: Duration) -> String {
    format!(
        "{{\"channel\": {i}, \"address\": {}, \"lost\": {}, \"read\": {}, \"write\": {}, \
         \"ops\": {}}}",
        json_str(&c.addr.map(|a| a.to_string()).unwrap_or_default()),
        c.lost.as_deref().map_or("null".to_string(), json_str),
        io_json(&c.read, elapsed),
        io_json(&c.write, elapsed),
        io_json(&c.ops, elapsed)
    )
}

fn job_json(r: &JobResult) -> String {
    let t = r.total();
    let s = &r.spec;
    let (error, error_name) = match &r.error {
        Some(e) => (e.status_code(), e.to_string()),
        None => (0, String::new()),
    };
    let notes: Vec<String> = r.notes.iter().map(|n| json_str(n)).collect();
    let channels: Vec<String> = r
        .channels
        .iter()
        .enumerate()
        .map(|(i, c)| channel_json(i, c, r.elapsed))
        .collect();
    format!(
        "{{\"jobname\": {}, \"groupid\": 0, \"error\": {error}, \"error_name\": {}, \
         \"job options\": {{\"rw\": {}, \"bs\": \"{}\", \"iodepth\": \"{}\", \"size\": \"{}\", \
         \"numjobs\": \"{}\", \"verify\": \"{}\", \"channels\": \"{}\"}}, \
         \"channels\": {}, \"job_runtime\": {}, \"elapsed\": {}, \"read\": {}, \"write\": {}, \
         \"ops\": {}, \"channels_lost\": {}, \"verified_bytes\": {}, \
         \"verified_cross_channel_bytes\": {}, \"channel_stats\": [{}], \"notes\": [{}]}}",
        json_str(&s.name),
        json_str(&error_name),
        json_str(s.kind.name()),
        s.bs,
        s.iodepth,
        s.size,
        s.files,
        s.verify as u8,
        s.channels,
        r.channels_used,
        r.elapsed.as_millis(),
        r.elapsed.as_secs(),
        io_json(&t.read, r.elapsed),
        io_json(&t.write, r.elapsed),
        io_json(&t.ops, r.elapsed),
        r.channels.iter().filter(|c| c.lost.is_some()).count(),
        r.verified_bytes,
        r.verified_cross_channel_bytes,
        channels.join(", "),
        notes.join(", ")
    )
}

/// The whole run as fio-shaped JSON.
pub fn json(results: &[JobResult], target: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let jobs: Vec<String> = results.iter().map(job_json).collect();
    format!(
        "{{\n\"fio version\": \"smb3bench-{}\",\n\"timestamp\": {now},\n\"global options\": {{\"target\": {}}},\n\"jobs\": [\n{}\n]\n}}\n",
        env!("CARGO_PKG_VERSION"),
        json_str(target),
        jobs.join(",\n")
    )
}

fn human_bytes_per_sec(bw: f64) -> String {
    if bw >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2}GiB/s", bw / (1024.0 * 1024.0 * 1024.0))
    } else if bw >= 1024.0 * 1024.0 {
        format!("{:.1}MiB/s", bw / (1024.0 * 1024.0))
    } else {
        format!("{:.1}KiB/s", bw / 1024.0)
    }
}

fn us(ns: u64) -> String {
    format!("{:.1}", ns as f64 / 1000.0)
}

fn io_text(out: &mut String, label: &str, s: &IoStats, elapsed: Duration, with_bw: bool) {
    if s.ios() == 0 {
        return;
    }
    let bw = per_sec(s.bytes, elapsed);
    let _ = write!(out, "  {label}: IOPS={:.0}", per_sec(s.ios(), elapsed));
    if with_bw {
        let _ = write!(
            out,
            ", BW={} ({:.1}MB/s)({:.1}MiB/{}msec)",
            human_bytes_per_sec(bw),
            bw / 1e6,
            s.bytes as f64 / 1048576.0,
            elapsed.as_millis()
        );
    }
    let h = &s.hist;
    let _ = writeln!(
        out,
        "\n    lat (usec): min={}, max={}, avg={}, p50={}, p99={}, p99.9={}",
        us(h.min()),
        us(h.max()),
        us(h.mean() as u64),
        us(h.percentile(50.0)),
        us(h.percentile(99.0)),
        us(h.percentile(99.9))
    );
}

fn channel_line(out: &mut String, i: usize, c: &ChannelStats, elapsed: Duration) {
    let _ = write!(
        out,
        "    channel {i} ({}):",
        c.addr.map(|a| a.to_string()).unwrap_or_default()
    );
    for (label, s) in [("read", &c.read), ("write", &c.write), ("ops", &c.ops)] {
        if s.ios() > 0 {
            let _ = write!(
                out,
                " {label} IOPS={:.0} BW={} p50={}us p99={}us;",
                per_sec(s.ios(), elapsed),
                human_bytes_per_sec(per_sec(s.bytes, elapsed)),
                us(s.hist.percentile(50.0)),
                us(s.hist.percentile(99.0))
            );
        }
    }
    out.push('\n');
}

/// fio-like human summary.
pub fn text(results: &[JobResult]) -> String {
    let mut out = String::new();
    for r in results {
        let s = &r.spec;
        let _ = writeln!(
            out,
            "{}: (rw={}, bs={}, iodepth={}, files={}, channels={}/{}{})",
            s.name,
            s.kind.name(),
            s.bs,
            s.iodepth,
            s.files,
            r.channels_used,
            s.channels,
            if s.verify { ", verify" } else { "" }
        );
        let t = r.total();
        io_text(&mut out, "read", &t.read, r.elapsed, true);
        io_text(&mut out, "write", &t.write, r.elapsed, true);
        io_text(&mut out, s.kind.name(), &t.ops, r.elapsed, false);
        if r.channels.len() > 1 {
            for (i, c) in r.channels.iter().enumerate() {
                channel_line(&mut out, i, c, r.elapsed);
            }
        }
        if r.verified_bytes > 0 {
            let _ = writeln!(
                out,
                "  verified: {} bytes read back, {} of them over another channel than their writer's",
                r.verified_bytes, r.verified_cross_channel_bytes
            );
        }
        for n in &r.notes {
            let _ = writeln!(out, "  note: {n}");
        }
        if let Some(e) = &r.error {
            let _ = writeln!(out, "  error: {e}");
        }
    }
    out
}
