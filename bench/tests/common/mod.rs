//! What the integration tests share: where the workspace is, which smb3d binary to run and how
//! to give it a user.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// `$SMB3D_BINARY`, else the newer of target/release/smb3d and target/debug/smb3d.
pub fn smb3d_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("SMB3D_BINARY") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    ["release", "debug"]
        .iter()
        .map(|p| target.join(p).join("smb3d"))
        .filter_map(|p| Some((fs::metadata(&p).ok()?.modified().ok()?, p)))
        .max()
        .map(|(_, p)| p)
        .expect("no smb3d binary: run `cargo build --release -p smb3d` (or set SMB3D_BINARY)")
}

/// Adds `user` with `password` to the passdb file `passdb` (`smb3d user add`, password on stdin).
pub fn add_user(passdb: &Path, user: &str, password: &str) {
    let mut add = Command::new(smb3d_binary())
        .args(["user", "add", "--passdb"])
        .arg(passdb)
        .arg(user)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("smb3d user add");
    let _ = add
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n").as_bytes());
    assert!(add.wait().expect("wait").success(), "smb3d user add failed");
}
