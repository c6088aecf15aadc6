//! Job definitions: fio-style options from the command line or from an fio job file
//! (`[global]` and `[name]` sections of `key=value` lines).

use std::time::Duration;

/// What a job does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Read,
    Write,
    RandRead,
    RandWrite,
    /// Sequential mixed read/write (`rw`, `readwrite`).
    ReadWrite,
    RandRw,
    /// CREATE + CLOSE with delete-on-close: the open/close/delete rate.
    Create,
    /// CREATE + QUERY_INFO + CLOSE of existing files.
    Stat,
    /// CREATE + QUERY_DIRECTORY until done + CLOSE of a populated directory.
    Dirlist,
    Echo,
}

impl Kind {
    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "read" => Kind::Read,
            "write" => Kind::Write,
            "randread" => Kind::RandRead,
            "randwrite" => Kind::RandWrite,
            "rw" | "readwrite" => Kind::ReadWrite,
            "randrw" => Kind::RandRw,
            "create" => Kind::Create,
            "stat" => Kind::Stat,
            "dirlist" => Kind::Dirlist,
            "echo" => Kind::Echo,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Read => "read",
            Kind::Write => "write",
            Kind::RandRead => "randread",
            Kind::RandWrite => "randwrite",
            Kind::ReadWrite => "rw",
            Kind::RandRw => "randrw",
            Kind::Create => "create",
            Kind::Stat => "stat",
            Kind::Dirlist => "dirlist",
            Kind::Echo => "echo",
        }
    }

    pub fn is_data(self) -> bool {
        !matches!(self, Kind::Create | Kind::Stat | Kind::Dirlist | Kind::Echo)
    }

    pub fn is_random(self) -> bool {
        matches!(self, Kind::RandRead | Kind::RandWrite | Kind::RandRw)
    }

    pub fn reads(self) -> bool {
        matches!(
            self,
            Kind::Read | Kind::RandRead | Kind::ReadWrite | Kind::RandRw
        )
    }

    pub fn writes(self) -> bool {
        matches!(
            self,
            Kind::Write | Kind::RandWrite | Kind::ReadWrite | Kind::RandRw
        )
    }
}

/// One job.
#[derive(Clone, Debug, PartialEq)]
pub struct JobSpec {
    pub name: String,
    pub kind: Kind,
    pub bs: u64,
    pub iodepth: u32,
    /// Bytes per file (data jobs).
    pub size: u64,
    pub runtime: Option<Duration>,
    /// Keep going until `runtime` even when `size` is done (fio's `time_based`).
    pub time_based: bool,
    /// Files: data jobs use one per `numjobs`; stat/dirlist populate a directory with this many.
    pub files: u32,
    /// Percentage of reads in mixed jobs.
    pub rwmixread: u32,
    pub verify: bool,
    pub channels: u32,
    /// Data jobs: when a channel's connection is lost, reissue its operations on the other
    /// channels instead of failing (what an SMB3 multichannel client does).
    pub failover: bool,
    /// Stop after this many operations (metadata and echo jobs default to 1000 without runtime).
    pub number_ios: Option<u64>,
}

impl Default for JobSpec {
    fn default() -> Self {
        JobSpec {
            name: "job".into(),
            kind: Kind::Read,
            bs: 4096,
            iodepth: 1,
            size: 64 << 20,
            runtime: None,
            time_based: false,
            files: 1,
            rwmixread: 50,
            verify: false,
            channels: 1,
            failover: false,
            number_ios: None,
        }
    }
}

/// Keys fio job files often carry that do not apply to an SMB client; accepted and ignored.
const IGNORED_KEYS: &[&str] = &[
    "ioengine",
    "direct",
    "buffered",
    "filename",
    "directory",
    "group_reporting",
    "thread",
    "invalidate",
    "randrepeat",
    "norandommap",
    "fsync",
    "end_fsync",
    "gtod_reduce",
    "ramp_time",
    "description",
    "stonewall",
    "new_group",
    "iodepth_batch",
    "iodepth_batch_complete",
    "refill_buffers",
    "fallocate",
    "create_on_open",
    "unlink",
    "lat_percentiles",
    "clat_percentiles",
    "percentile_list",
];

impl JobSpec {
    /// Apply one `key=value` option (same names as fio). Unknown keys are an error unless fio
    /// has them and they make no sense here (`ioengine`, `direct`, ...), which are ignored.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let key = key.trim().replace('-', "_");
        let value = value.trim();
        let bad = |what: &str| format!("{key}={value}: {what}");
        match key.as_str() {
            "name" => self.name = value.to_string(),
            "rw" | "readwrite" => {
                self.kind = Kind::parse(value).ok_or_else(|| bad("unknown rw mode"))?
            }
            "bs" | "blocksize" => self.bs = parse_size(value).ok_or_else(|| bad("bad size"))?,
            "iodepth" => self.iodepth = parse_count(value).ok_or_else(|| bad("bad number"))?,
            "size" => self.size = parse_size(value).ok_or_else(|| bad("bad size"))?,
            "runtime" => self.runtime = Some(parse_time(value).ok_or_else(|| bad("bad time"))?),
            "time_based" => self.time_based = parse_bool(value),
            "numjobs" | "files" | "nrfiles" => {
                self.files = parse_count(value).ok_or_else(|| bad("bad number"))?
            }
            "rwmixread" => {
                self.rwmixread = parse_count(value)
                    .filter(|v| *v <= 100)
                    .ok_or_else(|| bad("0..100"))?
            }
            "rwmixwrite" => {
                self.rwmixread = 100
                    - parse_count(value)
                        .filter(|v| *v <= 100)
                        .ok_or_else(|| bad("0..100"))?
            }
            "verify" => self.verify = parse_bool(value),
            "failover" => self.failover = parse_bool(value),
            "channels" => self.channels = parse_count(value).ok_or_else(|| bad("bad number"))?,
            "number_ios" => {
                self.number_ios = Some(parse_size(value).ok_or_else(|| bad("bad number"))?.max(1))
            }
            k if IGNORED_KEYS.contains(&k) => {}
            _ => return Err(format!("unknown job option '{key}'")),
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.bs == 0 || self.bs > 8 << 20 {
            return Err(format!("{}: bs must be 1..8M", self.name));
        }
        if self.iodepth == 0 || self.iodepth > 1024 {
            return Err(format!("{}: iodepth must be 1..1024", self.name));
        }
        if self.channels == 0 || self.channels > 32 {
            return Err(format!("{}: channels must be 1..32", self.name));
        }
        if self.files == 0 || self.files > 100_000 {
            return Err(format!("{}: numjobs/files must be 1..100000", self.name));
        }
        if self.kind.is_data() && self.size < self.bs {
            return Err(format!("{}: size must be at least bs", self.name));
        }
        Ok(())
    }
}

/// fio sizes: plain bytes or with k/m/g/t suffix (powers of 1024, optional trailing `b`/`ib`).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let s = s.trim_end_matches("ib").trim_end_matches('b');
    let (num, mult) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1u64 << 10),
        'm' => (&s[..s.len() - 1], 1 << 20),
        'g' => (&s[..s.len() - 1], 1 << 30),
        't' => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(mult)
}

fn parse_count(s: &str) -> Option<u32> {
    s.trim().parse().ok()
}

fn parse_bool(s: &str) -> bool {
    !matches!(s.trim(), "0" | "false" | "no" | "off")
}

/// fio times: seconds by default, or with `us`/`ms`/`s`/`m`/`h` suffix.
pub fn parse_time(s: &str) -> Option<Duration> {
    let s = s.trim().to_ascii_lowercase();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    Some(match unit {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "us" => Duration::from_micros(n),
        "m" => Duration::from_secs(n.checked_mul(60)?),
        "h" => Duration::from_secs(n.checked_mul(3600)?),
        _ => return None,
    })
}

/// Parse an fio job file: options in `[global]` apply to every job after them; each other
/// section is one job named after it. `;` and `#` start comments; bare keys mean `key=1`.
pub fn parse_job_file(text: &str, base: &JobSpec) -> Result<Vec<JobSpec>, String> {
    let mut global = base.clone();
    let mut jobs: Vec<JobSpec> = Vec::new();
    let mut current: Option<JobSpec> = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split(['#', ';']).next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            jobs.extend(current.take());
            let section = section.trim();
            if section != "global" {
                let mut j = global.clone();
                j.name = section.to_string();
                current = Some(j);
            }
            continue;
        }
        let (key, value) = line.split_once('=').unwrap_or((line, "1"));
        let target = current.as_mut().unwrap_or(&mut global);
        target
            .set(key, value)
            .map_err(|e| format!("line {}: {e}", n + 1))?;
    }
    jobs.extend(current);
    for j in &jobs {
        j.validate()?;
    }
    if jobs.is_empty() {
        return Err("job file defines no job".into());
    }
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_times() {
        assert_eq!(parse_size("4k"), Some(4096));
        assert_eq!(parse_size("1M"), Some(1 << 20));
        assert_eq!(parse_size("1MiB"), Some(1 << 20));
        assert_eq!(parse_size("2g"), Some(2 << 30));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_size(""), None);
        assert_eq!(parse_time("10"), Some(Duration::from_secs(10)));
        assert_eq!(parse_time("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_time("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_time("1y"), None);
    }

    #[test]
    fn fio_job_file() {
        let text = "\
; a typical fio file
[global]
ioengine=libaio
direct=1
bs=1M
iodepth=16
size=1G
runtime=10
time_based

[seq-read]
rw=read
numjobs=4

[rand-write]   # comment
rw=randwrite
bs=4k
iodepth=32
verify=crc32c
";
        let jobs = parse_job_file(text, &JobSpec::default()).unwrap();
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[0].name, "seq-read");
        assert_eq!(jobs[0].kind, Kind::Read);
        assert_eq!(jobs[0].bs, 1 << 20);
        assert_eq!(jobs[0].iodepth, 16);
        assert_eq!(jobs[0].files, 4);
        assert_eq!(jobs[0].size, 1 << 30);
        assert_eq!(jobs[0].runtime, Some(Duration::from_secs(10)));
        assert!(jobs[0].time_based);
        assert!(!jobs[0].verify);
        assert_eq!(jobs[1].kind, Kind::RandWrite);
        assert_eq!(jobs[1].bs, 4096);
        assert_eq!(jobs[1].iodepth, 32);
        assert_eq!(jobs[1].files, 1);
        assert!(jobs[1].verify);
    }

    #[test]
    fn job_file_errors_name_the_line() {
        let e = parse_job_file("[a]\nrw=sideways\n", &JobSpec::default()).unwrap_err();
        assert!(e.contains("line 2"), "{e}");
        let e = parse_job_file("[a]\nbogus=1\n", &JobSpec::default()).unwrap_err();
        assert!(e.contains("bogus"), "{e}");
        assert!(parse_job_file("[global]\nbs=4k\n", &JobSpec::default()).is_err());
        assert!(parse_job_file("[a]\nbs=0\n", &JobSpec::default()).is_err());
    }
}
