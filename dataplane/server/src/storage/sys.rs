//! Thin wrappers over the Linux system calls that `nix` does not cover (statx, extended
//! attributes, FIEMAP). This is the storage layer's only FFI module: every `unsafe` block of the
//! storage layer lives here.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// The fields of `struct statx` the storage layer uses.
#[derive(Clone, Copy, Debug, Default)]
pub struct Statx {
    pub mask: u32,
    pub mode: u16,
    pub nlink: u32,
    pub ino: u64,
    pub size: u64,
    pub blocks: u64,
    /// Preferred I/O block size (the file system's block size on local file systems).
    pub blksize: u32,
    pub atime: (i64, u32),
    pub btime: (i64, u32),
    pub ctime: (i64, u32),
    pub mtime: (i64, u32),
    pub dev_major: u32,
    pub dev_minor: u32,
}

impl Statx {
    pub fn has_btime(&self) -> bool {
        self.mask & libc::STATX_BTIME != 0
    }

    pub fn is_dir(&self) -> bool {
        u32::from(self.mode) & libc::S_IFMT == libc::S_IFDIR
    }

    pub fn is_reg(&self) -> bool {
        u32::from(self.mode) & libc::S_IFMT == libc::S_IFREG
    }
}

fn last_errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// `statx(dir, name, flags)`; an empty `name` with `AT_EMPTY_PATH` stats `dir` itself.
pub fn statx(dir: BorrowedFd, name: &str, flags: i32) -> Result<Statx, i32> {
    let cname = CString::new(name).map_err(|_| libc::EINVAL)?;
    let mut raw = std::mem::MaybeUninit::<libc::statx>::zeroed();
    let mask = libc::STATX_BASIC_STATS | libc::STATX_BTIME;
    // SAFETY: `cname` is a valid NUL-terminated string and `raw` points to writable memory the
    // size of `struct statx`; the kernel writes at most that much.
    let rc = unsafe {
        libc::statx(
            dir.as_raw_fd(),
            cname.as_ptr(),
            flags,
            mask,
            raw.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(last_errno());
    }
    // SAFETY: statx succeeded, so the struct is initialised (and it was zeroed before).
    let s = unsafe { raw.assume_init() };
    let ts = |t: libc::statx_timestamp| (t.tv_sec, t.tv_nsec);
    Ok(Statx {
        mask: s.stx_mask,
        mode: s.stx_mode,
        nlink: s.stx_nlink,
        ino: s.stx_ino,
        size: s.stx_size,
        blocks: s.stx_blocks,
        blksize: s.stx_blksize,
        atime: ts(s.stx_atime),
        btime: ts(s.stx_btime),
        ctime: ts(s.stx_ctime),
        mtime: ts(s.stx_mtime),
        dev_major: s.stx_dev_major,
        dev_minor: s.stx_dev_minor,
    })
}

/// `/proc/self/fd/N`: lets the path-based xattr calls reach a file held by an `O_PATH`
/// descriptor (the fd-based calls refuse those with EBADF).
fn proc_fd_path(fd: BorrowedFd) -> CString {
    // A formatted integer never contains NUL.
    CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap_or_default()
}

/// Read extended attribute `name` into `buf`; returns its length. `ENODATA` when absent.
pub fn get_xattr(fd: BorrowedFd, name: &str, buf: &mut [u8]) -> Result<usize, i32> {
    let cname = CString::new(name).map_err(|_| libc::EINVAL)?;
    // SAFETY: `cname` is NUL-terminated; `buf` is valid for `buf.len()` writable bytes.
    let mut rc = unsafe {
        libc::fgetxattr(
            fd.as_raw_fd(),
            cname.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if rc < 0 && last_errno() == libc::EBADF {
        let path = proc_fd_path(fd);
        // SAFETY: as above; `path` is NUL-terminated.
        rc = unsafe {
            libc::getxattr(
                path.as_ptr(),
                cname.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
    }
    if rc < 0 {
        return Err(last_errno());
    }
    Ok(rc as usize)
}

/// Set extended attribute `name` to `value`.
pub fn set_xattr(fd: BorrowedFd, name: &str, value: &[u8]) -> Result<(), i32> {
    let cname = CString::new(name).map_err(|_| libc::EINVAL)?;
    // SAFETY: `cname` is NUL-terminated; `value` is valid for `value.len()` readable bytes.
    let mut rc = unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            cname.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc < 0 && last_errno() == libc::EBADF {
        let path = proc_fd_path(fd);
        // SAFETY: as above; `path` is NUL-terminated.
        rc = unsafe {
            libc::setxattr(
                path.as_ptr(),
                cname.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
    }
    if rc < 0 {
        return Err(last_errno());
    }
    Ok(())
}

/// `openat2(dir, path, {flags, mode, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS})`, retried on
/// EAGAIN/EINTR. Returns the errno on failure.
pub fn openat2_beneath(dir: BorrowedFd, path: &str, flags: i32, mode: u32) -> Result<OwnedFd, i32> {
    use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
    use nix::sys::stat::Mode;
    let how = OpenHow::new()
        .flags(OFlag::from_bits_retain(flags))
        .mode(Mode::from_bits_truncate(mode))
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    loop {
        match nix::fcntl::openat2(dir.as_raw_fd(), path, how) {
            // SAFETY: openat2 returned a fresh descriptor that nothing else owns.
            Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd) }),
            Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e as i32),
        }
    }
}

/// The NUL-separated list of extended attribute names of `fd` (any descriptor, `O_PATH`
/// included, through /proc like [`get_xattr`]). `buf` empty asks for the size only.
pub fn list_xattr(fd: BorrowedFd, buf: &mut [u8]) -> Result<usize, i32> {
    let path = proc_fd_path(fd);
    // SAFETY: `path` is NUL-terminated; `buf` is valid for `buf.len()` writable bytes (a zero
    // length with a dangling pointer is allowed: the kernel then only reports the size).
    let rc = unsafe { libc::listxattr(path.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if rc < 0 {
        return Err(last_errno());
    }
    Ok(rc as usize)
}

/// Remove extended attribute `name` of `fd`.
pub fn remove_xattr(fd: BorrowedFd, name: &str) -> Result<(), i32> {
    let cname = CString::new(name).map_err(|_| libc::EINVAL)?;
    let path = proc_fd_path(fd);
    // SAFETY: both strings are NUL-terminated.
    let rc = unsafe { libc::removexattr(path.as_ptr(), cname.as_ptr()) };
    if rc < 0 {
        return Err(last_errno());
    }
    Ok(())
}

/// FS_IOC_FIEMAP = _IOWR('f', 11, struct fiemap) (linux/fs.h, linux/fiemap.h).
const FS_IOC_FIEMAP: u32 = 0xC020_660B;
/// FIEMAP_EXTENT_LAST: the last extent of the file.
const FIEMAP_EXTENT_LAST: u32 = 0x0000_0001;
const EXTENTS_PER_CALL: usize = 32;
/// Most FIEMAP calls one count makes (a very fragmented file is answered "unknown").
const MAX_FIEMAP_CALLS: usize = 64;

/// `struct fiemap_extent` (linux/fiemap.h).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct FiemapExtent {
    logical: u64,
    physical: u64,
    length: u64,
    reserved64: [u64; 2],
    flags: u32,
    reserved: [u32; 3],
}

/// `struct fiemap` with room for [`EXTENTS_PER_CALL`] extents after it.
#[repr(C)]
struct Fiemap {
    start: u64,
    length: u64,
    flags: u32,
    mapped_extents: u32,
    extent_count: u32,
    reserved: u32,
    extents: [FiemapExtent; EXTENTS_PER_CALL],
}

fn fiemap_once(fd: BorrowedFd, start: u64) -> Result<Fiemap, i32> {
    let mut m = Fiemap {
        start,
        length: u64::MAX - start,
        flags: 0,
        mapped_extents: 0,
        extent_count: EXTENTS_PER_CALL as u32,
        reserved: 0,
        extents: [FiemapExtent::default(); EXTENTS_PER_CALL],
    };
    // SAFETY: `m` is a `struct fiemap` followed by room for `extent_count` extents, the layout
    // FS_IOC_FIEMAP reads and writes; the kernel writes at most `extent_count` extents.
    let rc = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            FS_IOC_FIEMAP as libc::Ioctl,
            &mut m as *mut Fiemap,
        )
    };
    if rc < 0 {
        return Err(last_errno());
    }
    Ok(m)
}

/// Bytes in the data extents of the regular file `fd` (written, preallocated and delayed
/// ones), from FS_IOC_FIEMAP. Unlike `st_blocks` this leaves out blocks holding extended
/// attributes. An `O_PATH` descriptor is reopened read-only through /proc.
pub fn data_extent_bytes(fd: BorrowedFd) -> Result<u64, i32> {
    let reopened;
    let fd = match fiemap_once(fd, 0) {
        Err(libc::EBADF) => {
            let path = proc_fd_path(fd);
            let flags = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;
            // SAFETY: `path` is NUL-terminated; a descriptor the call returns is ours to own.
            let raw = unsafe { libc::open(path.as_ptr(), flags) };
            if raw < 0 {
                return Err(last_errno());
            }
            // SAFETY: `raw` is a freshly opened descriptor nothing else owns.
            reopened = unsafe { OwnedFd::from_raw_fd(raw) };
            reopened.as_fd()
        }
        Err(e) => return Err(e),
        Ok(_) => fd,
    };
    let mut start = 0u64;
    let mut total = 0u64;
    for _ in 0..MAX_FIEMAP_CALLS {
        let m = fiemap_once(fd, start)?;
        let n = (m.mapped_extents as usize).min(EXTENTS_PER_CALL);
        let Some(last) = m.extents[..n].last() else {
            return Ok(total);
        };
        total = m.extents[..n]
            .iter()
            .fold(total, |t, e| t.saturating_add(e.length));
        if last.flags & FIEMAP_EXTENT_LAST != 0 {
            return Ok(total);
        }
        start = last.logical.saturating_add(last.length);
    }
    Err(libc::E2BIG)
}
