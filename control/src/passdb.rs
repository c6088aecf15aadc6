//! The user database: a text file with one `user:hexnthash` line per user.
//!
//! ```text
//! # smb3d user database
//! alice:8846f7eaee8fb117ad06bdd830b7586c
//! ```
//!
//! Only NT hashes (MD4 of the UTF-16LE password) are stored, never passwords. They are
//! password-equivalent for NTLM, so the file is written with mode 0600 and replaced
//! atomically (temporary file in the same directory, fsync, rename, fsync of the directory).
//! User names match case-insensitively, as Windows account names do.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use smb3d_protocol::auth::UserLookup;

/// Longest user name accepted, in characters.
pub const MAX_USER_NAME_CHARS: usize = 64;

/// Largest passdb file read; far beyond any realistic number of users.
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Users and their NT hashes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Passdb {
    /// Keyed by the lower-cased name; holds the name as written and the hash.
    entries: BTreeMap<String, (String, [u8; 16])>,
}

/// Checks a user name: 1..=64 characters, no ':' (the field separator), no control characters
/// (newlines would split the record), no leading '#' (a comment) or surrounding spaces.
pub fn validate_user(user: &str) -> Result<(), String> {
    let chars = user.chars().count();
    if chars == 0 || chars > MAX_USER_NAME_CHARS {
        return Err(format!(
            "user name must be 1 to {MAX_USER_NAME_CHARS} characters, got {chars}"
        ));
    }
    if user.contains(':') {
        return Err(format!("user name {user:?} contains ':'"));
    }
    if user.chars().any(char::is_control) {
        return Err(format!("user name {user:?} contains a control character"));
    }
    if user.starts_with('#') {
        return Err(format!("user name {user:?} starts with '#'"));
    }
    if user.trim() != user {
        return Err(format!(
            "user name {user:?} has leading or trailing whitespace"
        ));
    }
    Ok(())
}

fn key_of(user: &str) -> String {
    user.to_lowercase()
}

fn parse_hex_hash(s: &str) -> Option<[u8; 16]> {
    if s.len() != 32 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

fn hex_hash(hash: &[u8; 16]) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

impl Passdb {
    pub fn new() -> Passdb {
        Passdb::default()
    }

    /// Reads `path`. Errors name the file and, for bad content, the line.
    pub fn load(path: &Path) -> Result<Passdb, String> {
        let shown = path.display();
        let meta = fs::metadata(path).map_err(|e| format!("{shown}: {e}"))?;
        if !meta.is_file() {
            return Err(format!("{shown}: not a regular file"));
        }
        if meta.len() > MAX_FILE_BYTES {
            return Err(format!(
                "{shown}: larger than {MAX_FILE_BYTES} bytes, not a user database"
            ));
        }
        let text = fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?;
        Passdb::parse(&text).map_err(|e| format!("{shown}: {e}"))
    }

    /// Like [`Passdb::load`], but a missing file is an empty database (first `useradd`).
    pub fn load_or_empty(path: &Path) -> Result<Passdb, String> {
        match fs::metadata(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Passdb::new()),
            _ => Passdb::load(path),
        }
    }

    fn parse(text: &str) -> Result<Passdb, String> {
        let mut db = Passdb::new();
        for (index, raw) in text.lines().enumerate() {
            let line_no = index + 1;
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let (user, hash) = line
                .split_once(':')
                .ok_or_else(|| format!("line {line_no}: expected user:hexnthash"))?;
            validate_user(user).map_err(|e| format!("line {line_no}: {e}"))?;
            let hash = parse_hex_hash(hash.trim()).ok_or_else(|| {
                format!("line {line_no}: NT hash for {user:?} is not 32 hex digits")
            })?;
            if db.entries.contains_key(&key_of(user)) {
                return Err(format!("line {line_no}: user {user:?} listed twice"));
            }
            db.entries.insert(key_of(user), (user.to_string(), hash));
        }
        Ok(db)
    }

    fn render(&self) -> String {
        let mut out =
            String::from("# smb3d user database: user:NT hash (MD4 of UTF-16LE password)\n");
        for (name, hash) in self.entries.values() {
            out.push_str(name);
            out.push(':');
            out.push_str(&hex_hash(hash));
            out.push('\n');
        }
        out
    }

    /// Writes the database to `path` atomically with mode 0600.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let shown = path.display();
        let tmp = temp_path_for(path).ok_or_else(|| format!("{shown}: not a file path"))?;
        let result = write_synced(&tmp, self.render().as_bytes())
            .and_then(|()| fs::rename(&tmp, path))
            .and_then(|()| sync_parent_dir(path));
        if let Err(e) = result {
            // The temporary file may or may not exist at this point; either way is fine.
            let _ = fs::remove_file(&tmp);
            return Err(format!("{shown}: {e}"));
        }
        Ok(())
    }

    /// Adds `user` or replaces its hash (a different spelling of the name replaces the old one).
    pub fn set(&mut self, user: &str, nt_hash: [u8; 16]) -> Result<(), String> {
        validate_user(user)?;
        self.entries
            .insert(key_of(user), (user.to_string(), nt_hash));
        Ok(())
    }

    /// Removes `user` (case-insensitive); false when there was no such user.
    pub fn remove(&mut self, user: &str) -> bool {
        self.entries.remove(&key_of(user)).is_some()
    }

    /// User names as stored, in sorted order.
    pub fn users(&self) -> impl Iterator<Item = &str> {
        self.entries.values().map(|(name, _)| name.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl UserLookup for Passdb {
    fn nt_hash(&self, user: &str) -> Option<[u8; 16]> {
        self.entries.get(&key_of(user)).map(|(_, hash)| *hash)
    }
}

/// `.<name>.tmp.<pid>.<n>` next to `path`, so the final rename stays within one filesystem.
fn temp_path_for(path: &Path) -> Option<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name()?.to_string_lossy();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp_name = format!(".{name}.tmp.{}.{n}", std::process::id());
    Some(path.with_file_name(tmp_name))
}

fn write_synced(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(data)?;
    file.sync_all()
}

/// Makes the rename durable.
fn sync_parent_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            static N: AtomicU64 = AtomicU64::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let dir =
                std::env::temp_dir().join(format!("smb3d-passdb-{tag}-{}-{n}", std::process::id()));
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn hash(s: &str) -> [u8; 16] {
        smb3d_protocol::auth::nt_hash(s)
    }

    #[test]
    fn save_load_round_trip_with_mode_0600() {
        let dir = TempDir::new("roundtrip");
        let path = dir.0.join("passdb");
        let mut db = Passdb::new();
        db.set("Alice", hash("secret")).unwrap();
        db.set("bob", hash("hunter2")).unwrap();
        db.save(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let loaded = Passdb::load(&path).unwrap();
        assert_eq!(loaded, db);
        assert_eq!(loaded.users().collect::<Vec<_>>(), vec!["Alice", "bob"]);
        // Only the database is left in the directory (no temporaries).
        assert_eq!(fs::read_dir(&dir.0).unwrap().count(), 1);

        // Rewriting replaces the file and keeps the mode.
        let mut db = loaded;
        assert!(db.remove("BOB"));
        assert!(!db.remove("bob"));
        db.save(&path).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("Alice:"));
        assert!(!text.contains("bob"));
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn lookup_is_case_insensitive() {
        let mut db = Passdb::new();
        db.set("Alice", hash("secret")).unwrap();
        assert_eq!(db.nt_hash("alice"), Some(hash("secret")));
        assert_eq!(db.nt_hash("ALICE"), Some(hash("secret")));
        assert_eq!(db.nt_hash("mallory"), None);
        db.set("ALICE", hash("new")).unwrap();
        assert_eq!(db.users().count(), 1);
        assert_eq!(db.nt_hash("alice"), Some(hash("new")));
    }

    #[test]
    fn parses_comments_blank_lines_and_crlf() {
        let dir = TempDir::new("parse");
        let path = dir.0.join("passdb");
        let text = "# users\r\n\nalice:8846F7EAEE8FB117AD06BDD830B7586C\r\n  # indented comment\n";
        fs::write(&path, text).unwrap();
        let db = Passdb::load(&path).unwrap();
        assert_eq!(db.nt_hash("alice"), Some(hash("password")));
    }

    #[test]
    fn bad_files_are_reported_with_name_and_line() {
        let dir = TempDir::new("bad");
        let path = dir.0.join("passdb");
        for (text, needle) in [
            ("alice\n", "line 1"),
            ("# c\nalice:1234\n", "line 2"),
            ("alice:8846f7eaee8fb117ad06bdd830b7586g\n", "hex"),
            (
                "alice:8846f7eaee8fb117ad06bdd830b7586c\nALICE:8846f7eaee8fb117ad06bdd830b7586c\n",
                "twice",
            ),
            (":8846f7eaee8fb117ad06bdd830b7586c\n", "1 to 64"),
        ] {
            fs::write(&path, text).unwrap();
            let err = Passdb::load(&path).unwrap_err();
            assert!(err.contains(&path.display().to_string()), "{err}");
            assert!(err.contains(needle), "{err} should mention {needle}");
        }
        let missing = dir.0.join("missing");
        let err = Passdb::load(&missing).unwrap_err();
        assert!(err.contains("missing"), "{err}");
        assert!(Passdb::load_or_empty(&missing).unwrap().is_empty());
    }

    #[test]
    fn user_names_are_validated() {
        let mut db = Passdb::new();
        for bad in ["", "a:b", "a\nb", "#root", " alice", &"x".repeat(65)] {
            assert!(db.set(bad, [0; 16]).is_err(), "{bad:?} accepted");
        }
        assert!(db.set(&"é".repeat(64), [0; 16]).is_ok());
        assert!(db.set("DOMAIN user.name-1", [0; 16]).is_ok());
    }

    #[test]
    fn save_into_missing_directory_fails_cleanly() {
        let dir = TempDir::new("nodir");
        let path = dir.0.join("no/such/dir/passdb");
        let err = Passdb::new().save(&path).unwrap_err();
        assert!(err.contains("passdb"), "{err}");
    }
}
