//! Server settings: a TOML file (`--config`) overlaid by command-line flags.
//!
//! ```toml
//! passdb = "/etc/smb3d/passdb"
//! listen = ["0.0.0.0:445"]
//! reactors = 2
//! cpus = "0-1"
//! signing = "desired"      # off | desired | required
//! encrypt = "desired"      # off | desired | required
//! max_credits = 8192
//! login_timeout_secs = 30        # connection without a session
//! partial_pdu_timeout_secs = 60  # a PDU begun must be complete
//! idle_timeout_secs = 900        # sessions but no open files, nothing received; 0: never
//! dead_channel_rtos = 3          # silent RTOs before a channel with a break waiting is dead
//! tcp_user_timeout_ms = 30000    # 0: the kernel's limit
//! keepalive_secs = 60            # 0: no keepalive
//! keepalive_interval_secs = 10
//! keepalive_count = 3
//!
//! [[share]]
//! name = "data"
//! path = "/srv/data"
//! read_only = false
//! encrypt = "off"
//! ```

use std::path::PathBuf;

use serde::Deserialize;
use smb3d_dataplane::share::Requirement;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub passdb: Option<PathBuf>,
    #[serde(default)]
    pub listen: Vec<String>,
    pub reactors: Option<usize>,
    pub workers: Option<usize>,
    pub break_retry: Option<String>,
    pub enable_test_fsctl: Option<bool>,
    pub cpus: Option<String>,
    pub signing: Option<String>,
    pub encrypt: Option<String>,
    pub max_credits: Option<u16>,
    pub netbios_name: Option<String>,
    pub login_timeout_secs: Option<u64>,
    pub partial_pdu_timeout_secs: Option<u64>,
    pub idle_timeout_secs: Option<u64>,
    pub dead_channel_rtos: Option<u32>,
    pub tcp_user_timeout_ms: Option<u64>,
    pub keepalive_secs: Option<u64>,
    pub keepalive_interval_secs: Option<u64>,
    pub keepalive_count: Option<u32>,
    #[serde(default, rename = "share")]
    pub shares: Vec<ShareConfig>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareConfig {
    pub name: String,
    pub path: PathBuf,
    #[serde(default)]
    pub read_only: bool,
    pub encrypt: Option<String>,
}

impl FileConfig {
    pub fn load(path: &std::path::Path) -> Result<FileConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("config {}: {}", path.display(), e.message()))
    }
}

pub fn parse_requirement(what: &str, value: &str) -> Result<Requirement, String> {
    match value {
        "off" | "disabled" | "no" => Ok(Requirement::Off),
        "desired" | "enabled" | "if_required" => Ok(Requirement::Desired),
        "required" | "mandatory" => Ok(Requirement::Required),
        other => Err(format!(
            "{what}: expected off, desired or required, got '{other}'"
        )),
    }
}

/// `NAME=PATH` from `--share`.
pub fn parse_share_flag(s: &str) -> Result<ShareConfig, String> {
    let (name, path) = s
        .split_once('=')
        .ok_or_else(|| format!("--share {s}: expected NAME=PATH"))?;
    if name.is_empty() || path.is_empty() {
        return Err(format!("--share {s}: expected NAME=PATH"));
    }
    Ok(ShareConfig {
        name: name.to_string(),
        path: PathBuf::from(path),
        read_only: false,
        encrypt: None,
    })
}

/// A CPU list such as `0-3,8,10-11`.
pub fn parse_cpu_list(s: &str) -> Result<Vec<usize>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || format!("--cpus {s}: expected a list like 0-3,8");
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) =
                    (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
                if a > b || b - a > 4096 {
                    return Err(bad());
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().map_err(|_| bad())?),
        }
    }
    if out.is_empty() {
        return Err(format!("--cpus {s}: empty list"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flags_and_file() {
        assert_eq!(parse_cpu_list("0-2,5").unwrap(), vec![0, 1, 2, 5]);
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_share_flag("share").is_err());
        assert_eq!(parse_share_flag("s=/tmp").unwrap().name, "s");
        assert_eq!(
            parse_requirement("--signing", "required").unwrap(),
            Requirement::Required
        );
        assert!(parse_requirement("--signing", "maybe").is_err());
        let c: FileConfig = toml::from_str(
            "listen = [\"127.0.0.1:4455\"]\nsigning = \"required\"\n[[share]]\nname = \"a\"\npath = \"/tmp\"\n",
        )
        .unwrap();
        assert_eq!(c.shares[0].name, "a");
        let t: FileConfig = toml::from_str(
            "login_timeout_secs = 5\npartial_pdu_timeout_secs = 7\nidle_timeout_secs = 0\n",
        )
        .unwrap();
        assert_eq!(
            (
                t.login_timeout_secs,
                t.partial_pdu_timeout_secs,
                t.idle_timeout_secs
            ),
            (Some(5), Some(7), Some(0))
        );
        assert!(toml::from_str::<FileConfig>("bogus = 1").is_err());
    }
}
