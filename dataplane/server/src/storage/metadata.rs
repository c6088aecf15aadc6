//! File metadata as SMB sees it: Windows FILETIMEs, sizes, DOS attributes, the file id.
//!
//! Times and sizes come from `statx(2)`. What POSIX has no place for — the DOS attributes and a
//! client-set creation time — lives in the extended attribute `user.DOSATTRIB`:
//!
//! ```text
//! offset 0  4 bytes  magic "S3D1"
//! offset 4  u32 LE   FILE_ATTRIBUTE_* bits that are stored (see STORED_ATTRIBUTES)
//! offset 8  u64 LE   creation time as a FILETIME, 0 = not stored
//! ```
//!
//! A value that does not start with the magic (for example one written by another server) is
//! ignored as if absent. Without a stored creation time the file system's birth time is used
//! where it has one, else the earlier of ctime and mtime.

use std::os::fd::{AsFd, BorrowedFd};

use nix::sys::stat::{utimensat, Mode, UtimensatFlags};
use nix::sys::time::TimeSpec;
use smb3d_protocol::NtStatus;

use super::sys;

/// FILE_ATTRIBUTE_* (MS-FSCC 2.6): the protocol crate's, and the ones only storage uses.
pub mod attr {
    pub use smb3d_protocol::info::attributes::*;
    pub const INTEGRITY_STREAM: u32 = 0x0000_8000;
    pub const NO_SCRUB_DATA: u32 = 0x0002_0000;
    pub const VALID_FLAGS: u32 = 0x0000_7FB7 | INTEGRITY_STREAM | NO_SCRUB_DATA;
}

/// The attributes kept in `user.DOSATTRIB`; the rest are derived (DIRECTORY, NORMAL) or not
/// supported (SPARSE, COMPRESSED, ENCRYPTED, REPARSE_POINT...).
pub const STORED_ATTRIBUTES: u32 = attr::READONLY
    | attr::HIDDEN
    | attr::SYSTEM
    | attr::ARCHIVE
    | attr::TEMPORARY
    | attr::OFFLINE
    | attr::NOT_CONTENT_INDEXED;

/// Name of the extended attribute holding DOS attributes and the creation time.
pub const DOSATTRIB_XATTR: &str = "user.DOSATTRIB";
const DOSATTRIB_MAGIC: &[u8; 4] = b"S3D1";
const DOSATTRIB_BYTES: usize = 16;

/// Seconds from 1601-01-01 (FILETIME epoch) to 1970-01-01 (Unix epoch).
const EPOCH_DIFF_SECS: i64 = 11_644_473_600;
const TICKS_PER_SEC: u64 = 10_000_000;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileMetadata {
    /// Windows FILETIMEs (100 ns since 1601).
    pub creation_time: u64,
    pub last_access_time: u64,
    pub last_write_time: u64,
    pub change_time: u64,
    pub end_of_file: u64,
    pub allocation_size: u64,
    /// FILE_ATTRIBUTE_* (MS-FSCC 2.6).
    pub attributes: u32,
    /// The inode number.
    pub file_index: u64,
    pub device: u64,
    pub links: u32,
    pub is_directory: bool,
}

/// What `user.DOSATTRIB` holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct DosAttrib {
    attributes: u32,
    creation_time: u64,
}

impl DosAttrib {
    fn decode(b: &[u8]) -> Option<DosAttrib> {
        if b.len() < DOSATTRIB_BYTES || &b[..4] != DOSATTRIB_MAGIC {
            return None;
        }
        let mut a = [0u8; 4];
        a.copy_from_slice(&b[4..8]);
        let mut c = [0u8; 8];
        c.copy_from_slice(&b[8..16]);
        Some(DosAttrib {
            attributes: u32::from_le_bytes(a) & STORED_ATTRIBUTES,
            creation_time: u64::from_le_bytes(c),
        })
    }

    fn encode(&self) -> [u8; DOSATTRIB_BYTES] {
        let mut out = [0u8; DOSATTRIB_BYTES];
        out[..4].copy_from_slice(DOSATTRIB_MAGIC);
        out[4..8].copy_from_slice(&(self.attributes & STORED_ATTRIBUTES).to_le_bytes());
        out[8..].copy_from_slice(&self.creation_time.to_le_bytes());
        out
    }
}

fn read_dosattrib(fd: BorrowedFd) -> Option<DosAttrib> {
    let mut buf = [0u8; 64];
    let n = sys::get_xattr(fd, DOSATTRIB_XATTR, &mut buf).ok()?;
    DosAttrib::decode(buf.get(..n)?)
}

fn write_dosattrib(fd: BorrowedFd, d: &DosAttrib) -> Result<(), NtStatus> {
    sys::set_xattr(fd, DOSATTRIB_XATTR, &d.encode()).map_err(NtStatus::from_errno)
}

/// Unix time to FILETIME; times before 1601 become 0.
pub fn unix_to_filetime(sec: i64, nsec: u32) -> u64 {
    let Some(since_1601) = sec.checked_add(EPOCH_DIFF_SECS) else {
        return u64::MAX;
    };
    if since_1601 < 0 {
        return 0;
    }
    (since_1601 as u64)
        .saturating_mul(TICKS_PER_SEC)
        .saturating_add(u64::from(nsec.min(999_999_999)) / 100)
}

/// FILETIME to Unix (seconds, nanoseconds).
pub fn filetime_to_unix(ft: u64) -> (i64, u32) {
    let secs = (ft / TICKS_PER_SEC) as i64 - EPOCH_DIFF_SECS;
    let nsec = ((ft % TICKS_PER_SEC) * 100) as u32;
    (secs, nsec)
}

fn ts_to_filetime(t: (i64, u32)) -> u64 {
    unix_to_filetime(t.0, t.1)
}

/// Metadata of the file `fd` refers to (any descriptor, `O_PATH` included).
pub fn stat_fd(fd: BorrowedFd) -> Result<FileMetadata, NtStatus> {
    let st = sys::statx(fd, "", libc::AT_EMPTY_PATH).map_err(NtStatus::from_errno)?;
    let stored = if st.is_reg() || st.is_dir() {
        read_dosattrib(fd)
    } else {
        None
    };
    let mut meta = build_metadata(&st, stored);
    if st.is_reg() {
        meta.allocation_size = data_allocation(fd, &st);
    }
    Ok(meta)
}

/// AllocationSize of a regular file. `st_blocks` also counts a block of extended attributes
/// (ext4 moves EAs that do not fit in the inode there), which a client would read as data
/// allocation; when it says more than the data can occupy, the data extents are counted
/// instead (preallocation past the end of file is data too).
fn data_allocation(fd: BorrowedFd, st: &sys::Statx) -> u64 {
    let counted = st.blocks.saturating_mul(512);
    let block = u64::from(st.blksize.max(512));
    let data_at_most = st.size.div_ceil(block).saturating_mul(block);
    if counted <= data_at_most {
        return counted;
    }
    sys::data_extent_bytes(fd).unwrap_or(counted)
}

/// Metadata of `name` in directory `dir`, without following a final symlink.
pub fn stat_at(dir: BorrowedFd, name: &str) -> Result<FileMetadata, NtStatus> {
    let fd = sys::openat2_beneath(
        dir,
        name,
        libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        0,
    )
    .map_err(super::path::map_lookup_errno)?;
    stat_fd(fd.as_fd())
}

fn build_metadata(st: &sys::Statx, stored: Option<DosAttrib>) -> FileMetadata {
    let is_directory = st.is_dir();
    let stored = stored.unwrap_or_default();
    let creation_time = if stored.creation_time != 0 {
        stored.creation_time
    } else if st.has_btime() {
        ts_to_filetime(st.btime)
    } else {
        ts_to_filetime(st.ctime).min(ts_to_filetime(st.mtime))
    };
    FileMetadata {
        creation_time,
        last_access_time: ts_to_filetime(st.atime),
        last_write_time: ts_to_filetime(st.mtime),
        change_time: ts_to_filetime(st.ctime),
        end_of_file: if is_directory { 0 } else { st.size },
        allocation_size: if is_directory {
            0
        } else {
            st.blocks.saturating_mul(512)
        },
        attributes: derive_attributes(stored.attributes, st.mode, is_directory),
        file_index: st.ino,
        device: libc::makedev(st.dev_major, st.dev_minor),
        links: st.nlink,
        is_directory,
    }
}

/// MS-FSCC 2.6: DIRECTORY for directories; NORMAL only when no other bit is set; a file no one
/// may write (mode without any w bit) is READONLY.
fn derive_attributes(stored: u32, mode: u16, is_directory: bool) -> u32 {
    let mut a = stored & STORED_ATTRIBUTES;
    if is_directory {
        a &= !attr::TEMPORARY;
        a |= attr::DIRECTORY;
    } else if u32::from(mode) & 0o222 == 0 {
        a |= attr::READONLY;
    }
    if a == 0 {
        a = attr::NORMAL;
    }
    a
}

/// Store `attrs` (MS-FSCC 2.6 bits; DIRECTORY and NORMAL are ignored, unsupported bits are
/// dropped) as the file's DOS attributes. Callers implement "0 means unchanged" themselves.
pub fn set_attributes(fd: BorrowedFd, attrs: u32) -> Result<(), NtStatus> {
    let st = sys::statx(fd, "", libc::AT_EMPTY_PATH).map_err(NtStatus::from_errno)?;
    // MS-FSA 2.1.5.14.2: TEMPORARY on a directory is INVALID_PARAMETER.
    if st.is_dir() && attrs & attr::TEMPORARY != 0 {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    let mut d = read_dosattrib(fd).unwrap_or_default();
    d.attributes = attrs & STORED_ATTRIBUTES;
    write_dosattrib(fd, &d)?;
    // Clearing READONLY on a file whose mode forbids writing: give the owner write access back,
    // or the mode rule would keep reporting it read-only.
    if attrs & attr::READONLY == 0 && !st.is_dir() && u32::from(st.mode) & 0o222 == 0 {
        let mode = Mode::from_bits_truncate((u32::from(st.mode) & 0o7777) | 0o200);
        chmod_fd(fd, mode)?;
    }
    Ok(())
}

fn proc_path(fd: BorrowedFd) -> String {
    use std::os::fd::AsRawFd;
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

fn chmod_fd(fd: BorrowedFd, mode: Mode) -> Result<(), NtStatus> {
    use std::os::fd::AsRawFd;
    match nix::sys::stat::fchmod(fd.as_raw_fd(), mode) {
        Ok(()) => Ok(()),
        // O_PATH descriptors refuse fchmod; go through the /proc magic link.
        Err(nix::errno::Errno::EBADF) => nix::sys::stat::fchmodat(
            None,
            proc_path(fd).as_str(),
            mode,
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
        .map_err(|e| NtStatus::from_errno(e as i32)),
        Err(e) => Err(NtStatus::from_errno(e as i32)),
    }
}

fn timespec_of(ft: Option<u64>) -> TimeSpec {
    match ft {
        Some(ft) => {
            let (s, ns) = filetime_to_unix(ft);
            TimeSpec::new(s, i64::from(ns))
        }
        None => TimeSpec::UTIME_OMIT,
    }
}

/// Set times (FILETIMEs; `None` leaves one unchanged). Access and write times go to the inode;
/// the creation time is stored in `user.DOSATTRIB`. The change time cannot be set on Linux:
/// the file table keeps one a client sets (`FileTable::set_change_time`).
pub fn set_times(
    fd: BorrowedFd,
    creation: Option<u64>,
    access: Option<u64>,
    write: Option<u64>,
) -> Result<(), NtStatus> {
    if let Some(ct) = creation {
        let mut d = read_dosattrib(fd).unwrap_or_default();
        d.creation_time = ct;
        write_dosattrib(fd, &d)?;
    }
    if access.is_none() && write.is_none() {
        return Ok(());
    }
    let (at, mt) = (timespec_of(access), timespec_of(write));
    use std::os::fd::AsRawFd;
    match nix::sys::stat::futimens(fd.as_raw_fd(), &at, &mt) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EBADF) => utimensat(
            None,
            proc_path(fd).as_str(),
            &at,
            &mt,
            UtimensatFlags::FollowSymlink,
        )
        .map_err(|e| NtStatus::from_errno(e as i32)),
        Err(e) => Err(NtStatus::from_errno(e as i32)),
    }
}

/// Attributes and creation time for a file just created (CREATE with FileAttributes). Windows
/// marks new files ARCHIVE.
pub fn init_new_file(fd: BorrowedFd, attrs: u32, is_directory: bool) -> Result<(), NtStatus> {
    let mut stored = attrs & STORED_ATTRIBUTES;
    if !is_directory {
        stored |= attr::ARCHIVE;
    }
    let st = sys::statx(fd, "", libc::AT_EMPTY_PATH).map_err(NtStatus::from_errno)?;
    let creation_time = if st.has_btime() {
        ts_to_filetime(st.btime)
    } else {
        ts_to_filetime(st.mtime)
    };
    let d = DosAttrib {
        attributes: stored,
        creation_time,
    };
    match write_dosattrib(fd, &d) {
        // A file system without user xattrs still works, with derived attributes only.
        Err(NtStatus::NOT_SUPPORTED) => Ok(()),
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::test_dir::temp_root;

    #[test]
    fn filetime_conversions() {
        // 1970-01-01 is FILETIME 116444736000000000 (MS-DTYP 2.3.3).
        assert_eq!(unix_to_filetime(0, 0), 116_444_736_000_000_000);
        assert_eq!(unix_to_filetime(1, 500), 116_444_736_010_000_005);
        assert_eq!(filetime_to_unix(116_444_736_010_000_005), (1, 500));
        assert_eq!(unix_to_filetime(-EPOCH_DIFF_SECS - 1, 0), 0);
        let (s, ns) = filetime_to_unix(133_000_000_000_000_000);
        assert_eq!(unix_to_filetime(s, ns), 133_000_000_000_000_000);
    }

    #[test]
    fn dosattrib_round_trip_and_foreign_values() {
        let d = DosAttrib {
            attributes: attr::HIDDEN | attr::ARCHIVE,
            creation_time: 42,
        };
        assert_eq!(DosAttrib::decode(&d.encode()), Some(d));
        assert_eq!(DosAttrib::decode(b"0x20\0\0\0\0\0\0\0\0\0\0\0\0"), None);
        assert_eq!(DosAttrib::decode(b"S3D1"), None);
    }

    #[test]
    fn stats_files_and_directories() {
        let (dir, root) = temp_root();
        std::fs::write(dir.join("f"), b"hello").unwrap();
        std::fs::create_dir(dir.join("d")).unwrap();
        let f = stat_at(root.as_fd(), "f").unwrap();
        assert_eq!(f.end_of_file, 5);
        assert!(!f.is_directory);
        assert_eq!(f.attributes, attr::NORMAL);
        assert_eq!(f.links, 1);
        assert!(f.creation_time > 116_444_736_000_000_000);
        let d = stat_at(root.as_fd(), "d").unwrap();
        assert!(d.is_directory);
        assert_eq!(d.attributes, attr::DIRECTORY);
        assert_ne!(d.file_index, f.file_index);
        assert_eq!(
            stat_at(root.as_fd(), "none").unwrap_err(),
            NtStatus::OBJECT_NAME_NOT_FOUND
        );
    }

    #[test]
    fn attributes_and_times_persist() {
        let (dir, root) = temp_root();
        std::fs::write(dir.join("f"), b"x").unwrap();
        let file = std::fs::File::open(dir.join("f")).unwrap();
        let fd = file.as_fd();
        set_attributes(fd, attr::HIDDEN | attr::READONLY | attr::DIRECTORY).unwrap();
        assert_eq!(
            stat_fd(fd).unwrap().attributes,
            attr::HIDDEN | attr::READONLY
        );
        set_times(
            fd,
            Some(130_000_000_000_000_000),
            None,
            Some(131_000_000_000_000_000),
        )
        .unwrap();
        let m = stat_at(root.as_fd(), "f").unwrap();
        assert_eq!(m.creation_time, 130_000_000_000_000_000);
        assert_eq!(m.last_write_time, 131_000_000_000_000_000);
        set_attributes(fd, 0).unwrap();
        assert_eq!(stat_fd(fd).unwrap().attributes, attr::NORMAL);
        assert_eq!(stat_fd(fd).unwrap().creation_time, 130_000_000_000_000_000);
        // A mode without write bits reads as READONLY; clearing it restores owner write.
        std::fs::set_permissions(
            dir.join("f"),
            std::os::unix::fs::PermissionsExt::from_mode(0o444),
        )
        .unwrap();
        assert_eq!(stat_fd(fd).unwrap().attributes, attr::READONLY);
        set_attributes(fd, attr::ARCHIVE).unwrap();
        assert_eq!(stat_fd(fd).unwrap().attributes, attr::ARCHIVE);
    }

    #[test]
    fn allocation_leaves_out_extended_attribute_blocks() {
        let (dir, root) = temp_root();
        std::fs::write(dir.join("f"), b"abc").unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(dir.join("f"))
            .unwrap();
        let fd = file.as_fd();
        // EAs too large for the inode: ext4 puts them in a block of their own.
        for name in ["user.ONE", "user.TWO", "user.THREE"] {
            if sys::set_xattr(fd, name, &[b'v'; 200]).is_err() {
                return; // no user xattrs here
            }
        }
        nix::unistd::ftruncate(fd, 0).unwrap();
        assert_eq!(stat_fd(fd).unwrap().allocation_size, 0);
        let path_fd = sys::openat2_beneath(root.as_fd(), "f", libc::O_PATH, 0).unwrap();
        assert_eq!(stat_fd(path_fd.as_fd()).unwrap().allocation_size, 0);
        // Preallocation past the end of file counts; the size stays.
        use std::os::fd::AsRawFd;
        let keep = nix::fcntl::FallocateFlags::FALLOC_FL_KEEP_SIZE;
        if nix::fcntl::fallocate(fd.as_raw_fd(), keep, 0, 4096).is_ok() {
            let m = stat_fd(fd).unwrap();
            assert_eq!((m.allocation_size, m.end_of_file), (4096, 0));
        }
    }

    #[test]
    fn o_path_descriptors_work() {
        let (dir, root) = temp_root();
        std::fs::write(dir.join("f"), b"x").unwrap();
        let fd = sys::openat2_beneath(root.as_fd(), "f", libc::O_PATH, 0).unwrap();
        set_attributes(fd.as_fd(), attr::SYSTEM).unwrap();
        set_times(fd.as_fd(), None, Some(120_000_000_000_000_000), None).unwrap();
        let m = stat_fd(fd.as_fd()).unwrap();
        assert_eq!(m.attributes, attr::SYSTEM);
        assert_eq!(m.last_access_time, 120_000_000_000_000_000);
    }
}
