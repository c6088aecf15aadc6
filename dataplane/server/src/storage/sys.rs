//! Thin wrappers over the Linux system calls that `nix` does not cover (statx, extended
//! attributes). This is the storage layer's only FFI module: every `unsafe` block of the
//! storage layer lives here.

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// The fields of `struct statx` the storage layer uses.
#[derive(Clone, Copy, Debug, Default)]
pub struct Statx {
    pub mask: u32,
    pub mode: u16,
    pub nlink: u32,
    pub ino: u64,
    pub size: u64,
    pub blocks: u64,
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
