//! What the integration tests share: where the workspace is and which smb3d binary to run.

use std::fs;
use std::path::{Path, PathBuf};

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
