//! Paths inside a share: parsing SMB names and resolving them beneath the share root.
//!
//! Every lookup goes through `openat2(2)` with `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`
//! relative to the share root descriptor, so neither `..` nor a symlink can leave the share.
//! Windows clients expect case-insensitive names: when the exact spelling is not found the
//! components are matched case-insensitively against the directory entries and the lookup is
//! retried with the spelling found on disk.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use smb3d_protocol::limits::MAX_PATH_UNITS;
use smb3d_protocol::wire::utf16le_to_string;
use smb3d_protocol::NtStatus;

use tracing::{info, warn};

use super::sys;

/// Longest single component, in UTF-16 code units (MS-FSCC 2.1.5.2: 255 for NTFS).
pub const MAX_COMPONENT_UNITS: usize = 255;

/// A validated path relative to the share root: components joined by '/', "" for the root.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct SharePath {
    path: String,
    trailing_separator: bool,
}

impl SharePath {
    /// The share root.
    pub fn root() -> SharePath {
        SharePath::default()
    }

    /// Parse a CREATE (or rename/link target) name: UTF-16LE, backslash-separated.
    pub fn parse_utf16(name: &[u8]) -> Result<SharePath, NtStatus> {
        if name.len() / 2 > MAX_PATH_UNITS {
            return Err(NtStatus::OBJECT_NAME_INVALID);
        }
        let s = utf16le_to_string(name)?;
        SharePath::parse(&s)
    }

    /// Parse an already decoded SMB name.
    pub fn parse(s: &str) -> Result<SharePath, NtStatus> {
        if s.is_empty() {
            return Ok(SharePath::root());
        }
        // "\\?\", "\\server\..." and similar NT/UNC prefixes are never share-relative.
        if s.starts_with("\\\\") {
            info!(name = s, "name refused: NT or UNC prefix");
            return Err(NtStatus::OBJECT_NAME_INVALID);
        }
        // MS-SMB2 3.3.5.9: a name beginning with '\' fails with STATUS_INVALID_PARAMETER.
        if s.starts_with('\\') {
            info!(name = s, "name refused: absolute path");
            return Err(NtStatus::INVALID_PARAMETER);
        }
        let (body, trailing_separator) = match s.strip_suffix('\\') {
            Some(b) => (b, true),
            None => (s, false),
        };
        let mut path = String::with_capacity(body.len());
        for component in body.split('\\') {
            validate_component(component).inspect_err(|_| {
                info!(name = s, component, "name refused: invalid component");
            })?;
            if !path.is_empty() {
                path.push('/');
            }
            path.push_str(component);
        }
        Ok(SharePath {
            path,
            trailing_separator,
        })
    }

    pub fn is_root(&self) -> bool {
        self.path.is_empty()
    }

    /// "a/b/c", or "" for the root.
    pub fn as_str(&self) -> &str {
        &self.path
    }

    /// The name ended with a backslash (allowed for directories only).
    pub fn had_trailing_separator(&self) -> bool {
        self.trailing_separator
    }

    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.path.split('/').filter(|c| !c.is_empty())
    }

    pub fn parent(&self) -> Option<SharePath> {
        if self.is_root() {
            return None;
        }
        let parent = match self.path.rfind('/') {
            Some(i) => &self.path[..i],
            None => "",
        };
        Some(SharePath {
            path: parent.to_string(),
            trailing_separator: false,
        })
    }

    pub fn file_name(&self) -> Option<&str> {
        if self.is_root() {
            return None;
        }
        Some(match self.path.rfind('/') {
            Some(i) => &self.path[i + 1..],
            None => &self.path,
        })
    }

    /// This path with one more component (`name` must be a single valid component).
    pub fn join(&self, name: &str) -> SharePath {
        let mut path = self.path.clone();
        if !path.is_empty() {
            path.push('/');
        }
        path.push_str(name);
        SharePath {
            path,
            trailing_separator: false,
        }
    }

    /// The path as the kernel sees it relative to the share root ("." for the root).
    fn kernel_path(&self) -> &str {
        if self.is_root() {
            "."
        } else {
            &self.path
        }
    }
}

/// MS-FSCC 2.1.5.2 (file name rules): no control characters, none of `" * / : < > ? \ |`,
/// not "." or "..", at most 255 code units. Stream names (`file:stream`) are not supported.
fn validate_component(c: &str) -> Result<(), NtStatus> {
    if c.is_empty() || c == "." || c == ".." {
        return Err(NtStatus::OBJECT_NAME_INVALID);
    }
    if c.encode_utf16().count() > MAX_COMPONENT_UNITS {
        return Err(NtStatus::OBJECT_NAME_INVALID);
    }
    let bad = |ch: char| {
        (ch as u32) < 0x20 || matches!(ch, '"' | '*' | '/' | ':' | '<' | '>' | '?' | '\\' | '|')
    };
    if c.chars().any(bad) {
        return Err(NtStatus::OBJECT_NAME_INVALID);
    }
    Ok(())
}

/// Case-insensitive name comparison (simple Unicode lowercase folding; ASCII fast path).
pub fn names_equal_ignore_case(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(b);
    }
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

fn errno_of(e: nix::errno::Errno) -> i32 {
    e as i32
}

/// Map an errno from a beneath-the-root lookup. An escape attempt (`EXDEV` from
/// `RESOLVE_BENEATH`, `ELOOP` from a magic link or a symlink loop) is ACCESS_DENIED.
pub fn map_lookup_errno(errno: i32) -> NtStatus {
    match errno {
        libc::EXDEV | libc::ELOOP => {
            warn!(
                errno,
                "lookup would leave the share (.. or a symlink): refused"
            );
            NtStatus::ACCESS_DENIED
        }
        e => NtStatus::from_errno(e),
    }
}

fn openat2_raw(dir: BorrowedFd, path: &str, flags: i32, mode: u32) -> Result<OwnedFd, i32> {
    sys::openat2_beneath(dir, path, flags | libc::O_CLOEXEC, mode)
}

/// Open `path` beneath `root` with `O_*` `flags` (and `mode` when creating).
///
/// When the exact spelling does not exist, the path is resolved case-insensitively and the
/// open retried with the names found on disk (with `O_CREAT`, a missing final component keeps
/// the spelling given). A missing intermediate directory is OBJECT_PATH_NOT_FOUND.
pub fn open_beneath(
    root: BorrowedFd,
    path: &SharePath,
    flags: i32,
    mode: u32,
) -> Result<OwnedFd, NtStatus> {
    match openat2_raw(root, path.kernel_path(), flags, mode) {
        Ok(fd) => Ok(fd),
        Err(libc::ENOENT) if !path.is_root() => {
            let on_disk = resolve_case(root, path)?;
            if on_disk == *path && flags & libc::O_CREAT == 0 {
                return Err(NtStatus::OBJECT_NAME_NOT_FOUND);
            }
            openat2_raw(root, on_disk.kernel_path(), flags, mode).map_err(|e| match e {
                libc::ENOENT => NtStatus::OBJECT_NAME_NOT_FOUND,
                e => map_lookup_errno(e),
            })
        }
        Err(libc::ENOTDIR) => Err(NtStatus::OBJECT_PATH_NOT_FOUND),
        Err(e) => Err(map_lookup_errno(e)),
    }
}

/// Look `path` up: its on-disk spelling (a missing final component keeps the spelling
/// given) and, when it exists, an `O_PATH` descriptor of it. A missing or non-directory
/// intermediate component is OBJECT_PATH_NOT_FOUND.
pub fn lookup(
    root: BorrowedFd,
    path: &SharePath,
) -> Result<(SharePath, Option<OwnedFd>), NtStatus> {
    let flags = libc::O_PATH | libc::O_CLOEXEC;
    match openat2_raw(root, path.kernel_path(), flags, 0) {
        Ok(fd) => return Ok((path.clone(), Some(fd))),
        Err(libc::ENOENT) if !path.is_root() => {}
        Err(libc::ENOTDIR) => return Err(NtStatus::OBJECT_PATH_NOT_FOUND),
        Err(e) => return Err(map_lookup_errno(e)),
    }
    let on_disk = resolve_case(root, path)?;
    if on_disk == *path {
        return Ok((on_disk, None));
    }
    match openat2_raw(root, on_disk.kernel_path(), flags, 0) {
        Ok(fd) => Ok((on_disk, Some(fd))),
        Err(libc::ENOENT) => Ok((on_disk, None)),
        Err(libc::ENOTDIR) => Err(NtStatus::OBJECT_PATH_NOT_FOUND),
        Err(e) => Err(map_lookup_errno(e)),
    }
}

/// Open the parent directory of `path` (`O_PATH | O_DIRECTORY`) and return it with the final
/// component as spelled on disk when it exists (matched case-insensitively), else as given.
pub fn open_parent(root: BorrowedFd, path: &SharePath) -> Result<(OwnedFd, String), NtStatus> {
    let parent = path.parent().ok_or(NtStatus::OBJECT_NAME_INVALID)?;
    let name = path.file_name().ok_or(NtStatus::OBJECT_NAME_INVALID)?;
    let parent_fd =
        open_beneath(root, &parent, libc::O_PATH | libc::O_DIRECTORY, 0).map_err(|e| match e {
            NtStatus::OBJECT_NAME_NOT_FOUND => NtStatus::OBJECT_PATH_NOT_FOUND,
            e => e,
        })?;
    let on_disk = find_entry(parent_fd.as_fd(), name)?.unwrap_or_else(|| name.to_string());
    Ok((parent_fd, on_disk))
}

/// `path` with every existing component spelled as on disk. A missing final component keeps
/// its spelling; a missing intermediate one is OBJECT_PATH_NOT_FOUND.
pub fn resolve_case(root: BorrowedFd, path: &SharePath) -> Result<SharePath, NtStatus> {
    let components: Vec<&str> = path.components().collect();
    let mut resolved = SharePath::root();
    for (i, component) in components.iter().enumerate() {
        let is_last = i + 1 == components.len();
        let dir = openat2_raw(
            root,
            resolved.kernel_path(),
            libc::O_PATH | libc::O_DIRECTORY,
            0,
        )
        .map_err(|e| match e {
            libc::ENOENT | libc::ENOTDIR => NtStatus::OBJECT_PATH_NOT_FOUND,
            e => map_lookup_errno(e),
        })?;
        match find_entry(dir.as_fd(), component)? {
            Some(name) => resolved = resolved.join(&name),
            None if is_last => resolved = resolved.join(component),
            None => return Err(NtStatus::OBJECT_PATH_NOT_FOUND),
        }
    }
    resolved.trailing_separator = path.trailing_separator;
    Ok(resolved)
}

/// The on-disk spelling of `name` in `dir`: itself when it exists exactly, else the first
/// case-insensitive match, else `None`.
fn find_entry(dir: BorrowedFd, name: &str) -> Result<Option<String>, NtStatus> {
    match nix::sys::stat::fstatat(
        Some(dir.as_raw_fd()),
        name,
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    ) {
        Ok(_) => return Ok(Some(name.to_string())),
        Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(map_lookup_errno(errno_of(e))),
    }
    // O_PATH descriptors cannot be read; open the directory itself for readdir.
    let listing =
        openat2_raw(dir, ".", libc::O_RDONLY | libc::O_DIRECTORY, 0).map_err(map_lookup_errno)?;
    let mut d = nix::dir::Dir::from(listing).map_err(|e| map_lookup_errno(errno_of(e)))?;
    for entry in d.iter() {
        let entry = entry.map_err(|e| map_lookup_errno(errno_of(e)))?;
        let Ok(entry_name) = entry.file_name().to_str() else {
            continue;
        };
        if entry_name != "." && entry_name != ".." && names_equal_ignore_case(entry_name, name) {
            return Ok(Some(entry_name.to_string()));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use smb3d_protocol::wire::string_to_utf16le;

    fn p(s: &str) -> Result<SharePath, NtStatus> {
        SharePath::parse_utf16(&string_to_utf16le(s))
    }

    #[test]
    fn parses_valid_names() {
        assert!(p("").unwrap().is_root());
        let a = p("dir\\sub\\file.txt").unwrap();
        assert_eq!(a.as_str(), "dir/sub/file.txt");
        assert_eq!(a.file_name(), Some("file.txt"));
        assert_eq!(a.parent().unwrap().as_str(), "dir/sub");
        assert_eq!(a.parent().unwrap().parent().unwrap().as_str(), "dir");
        assert!(a
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .is_root());
        assert_eq!(p("dir\\").unwrap().as_str(), "dir");
        assert!(p("dir\\").unwrap().had_trailing_separator());
        assert_eq!(SharePath::root().join("x").join("y").as_str(), "x/y");
        assert_eq!(p("ä ö.txt").unwrap().as_str(), "ä ö.txt");
    }

    #[test]
    fn rejects_invalid_names() {
        assert_eq!(p("\\a"), Err(NtStatus::INVALID_PARAMETER));
        assert_eq!(p("\\\\?\\C:\\x"), Err(NtStatus::OBJECT_NAME_INVALID));
        for bad in [
            "a\\..\\b", "..", ".", "a\\\\b", "a:stream", "a*", "a?b", "a|b", "a/b", "a\u{1}",
        ] {
            assert_eq!(p(bad), Err(NtStatus::OBJECT_NAME_INVALID), "{bad:?}");
        }
        assert_eq!(p(&"x".repeat(256)), Err(NtStatus::OBJECT_NAME_INVALID));
        assert!(p(&"x".repeat(255)).is_ok());
        assert_eq!(
            SharePath::parse_utf16(&[0x00, 0xD8]),
            Err(NtStatus::OBJECT_NAME_INVALID)
        );
    }

    use crate::storage::test_dir::temp_root;

    #[test]
    fn opens_beneath_and_case_insensitively() {
        let (dir, root) = temp_root();
        std::fs::create_dir(dir.join("Docs")).unwrap();
        std::fs::write(dir.join("Docs/Report.TXT"), b"hi").unwrap();
        let fd = open_beneath(
            root.as_fd(),
            &p("docs\\report.txt").unwrap(),
            libc::O_RDONLY,
            0,
        )
        .unwrap();
        let mut buf = [0u8; 2];
        nix::sys::uio::pread(&fd, &mut buf, 0).unwrap();
        assert_eq!(&buf, b"hi");
        assert_eq!(
            resolve_case(root.as_fd(), &p("DOCS\\new.txt").unwrap())
                .unwrap()
                .as_str(),
            "Docs/new.txt"
        );
        assert_eq!(
            open_beneath(
                root.as_fd(),
                &p("docs\\missing").unwrap(),
                libc::O_RDONLY,
                0
            )
            .unwrap_err(),
            NtStatus::OBJECT_NAME_NOT_FOUND
        );
        assert_eq!(
            open_beneath(root.as_fd(), &p("nodir\\x").unwrap(), libc::O_RDONLY, 0).unwrap_err(),
            NtStatus::OBJECT_PATH_NOT_FOUND
        );
        let (parent, name) = open_parent(root.as_fd(), &p("DOCS\\REPORT.txt").unwrap()).unwrap();
        assert_eq!(name, "Report.TXT");
        drop(parent);
        let (_, name) = open_parent(root.as_fd(), &p("Docs\\Fresh.txt").unwrap()).unwrap();
        assert_eq!(name, "Fresh.txt");
        assert_eq!(
            open_parent(root.as_fd(), &p("gone\\x").unwrap()).unwrap_err(),
            NtStatus::OBJECT_PATH_NOT_FOUND
        );
        // Creating through a case-mismatched directory lands in the existing directory.
        let created = open_beneath(
            root.as_fd(),
            &p("DOCS\\made.txt").unwrap(),
            libc::O_RDWR | libc::O_CREAT | libc::O_EXCL,
            0o644,
        );
        assert!(created.is_ok());
        assert!(dir.join("Docs/made.txt").exists());
    }

    #[test]
    fn symlinks_out_of_the_share_are_refused() {
        let (dir, root) = temp_root();
        let (outside, _o) = temp_root();
        std::fs::write(outside.join("secret"), b"x").unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), dir.join("abs")).unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("absdir")).unwrap();
        std::fs::write(dir.join("inside"), b"y").unwrap();
        std::os::unix::fs::symlink("inside", dir.join("rel")).unwrap();
        for name in ["abs", "absdir\\secret"] {
            assert_eq!(
                open_beneath(root.as_fd(), &p(name).unwrap(), libc::O_RDONLY, 0).unwrap_err(),
                NtStatus::ACCESS_DENIED,
                "{name}"
            );
        }
        assert!(open_beneath(root.as_fd(), &p("rel").unwrap(), libc::O_RDONLY, 0).is_ok());
        assert!(open_beneath(root.as_fd(), &SharePath::root(), libc::O_RDONLY, 0).is_ok());
    }
}
