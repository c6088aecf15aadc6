//! Extended attributes (MS-FSCC 2.4.15) stored as Linux `user.` xattrs: EA `NAME` is the
//! xattr `user.NAME`. NTFS keeps EA names upper-case and compares them case-insensitively;
//! names are stored upper-cased here for the same effect. Xattrs this server uses itself
//! (`user.DOSATTRIB`) are neither listed nor writable as EAs.

use std::os::fd::BorrowedFd;

use smb3d_protocol::info::ea::FullEa;
use smb3d_protocol::NtStatus;

use super::metadata::DOSATTRIB_XATTR;
use super::sys;

const PREFIX: &str = "user.";
/// Largest value Linux stores in one xattr (XATTR_SIZE_MAX).
pub const MAX_VALUE_BYTES: usize = 65_536;
/// Largest xattr name list read.
const MAX_LIST_BYTES: usize = 65_536;
/// STATUS_EAS_NOT_SUPPORTED (MS-ERREF 2.3.1).
pub const EAS_NOT_SUPPORTED: NtStatus = NtStatus(0xC000_004F);
/// STATUS_INVALID_EA_NAME (MS-ERREF 2.3.1).
pub const INVALID_EA_NAME: NtStatus = NtStatus(0x8000_0013);

fn is_reserved(xattr: &str) -> bool {
    xattr.eq_ignore_ascii_case(DOSATTRIB_XATTR)
}

/// MS-FSCC 2.4.15: an EA name is 1..=255 bytes of 8-bit ASCII without control characters or
/// the characters `"*+,/:;<=>?[\]|`.
pub fn validate_name(name: &[u8]) -> Result<(), NtStatus> {
    const BAD: &[u8] = b"\"*+,/:;<=>?[\\]|";
    if name.is_empty() || name.len() > 255 {
        return Err(INVALID_EA_NAME);
    }
    if name
        .iter()
        .any(|&c| !(0x20..0x7f).contains(&c) || BAD.contains(&c))
    {
        return Err(INVALID_EA_NAME);
    }
    Ok(())
}

fn xattr_name(ea_name: &[u8]) -> Result<String, NtStatus> {
    validate_name(ea_name)?;
    let upper = String::from_utf8(ea_name.to_ascii_uppercase()).map_err(|_| INVALID_EA_NAME)?;
    let name = format!("{PREFIX}{upper}");
    if is_reserved(&name) {
        return Err(NtStatus::ACCESS_DENIED);
    }
    Ok(name)
}

fn map_errno(e: i32) -> NtStatus {
    match e {
        libc::E2BIG | libc::ERANGE | libc::ENOSPC => NtStatus::EA_TOO_LARGE,
        libc::ENOTSUP => EAS_NOT_SUPPORTED,
        e => NtStatus::from_errno(e),
    }
}

/// The EA names of the file (without the `user.` prefix), in the order the file system lists
/// them.
fn names(fd: BorrowedFd) -> Result<Vec<String>, NtStatus> {
    let size = match sys::list_xattr(fd, &mut []) {
        Ok(n) => n,
        Err(libc::ENOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(map_errno(e)),
    };
    if size == 0 {
        return Ok(Vec::new());
    }
    let mut buf = vec![0u8; size.min(MAX_LIST_BYTES)];
    let n = sys::list_xattr(fd, &mut buf).map_err(map_errno)?;
    buf.truncate(n);
    Ok(buf
        .split(|&b| b == 0)
        .filter_map(|n| std::str::from_utf8(n).ok())
        .filter(|n| n.starts_with(PREFIX) && !is_reserved(n))
        .map(|n| n[PREFIX.len()..].to_string())
        .filter(|n| validate_name(n.as_bytes()).is_ok())
        .collect())
}

fn value(fd: BorrowedFd, ea_name: &str) -> Result<Option<Vec<u8>>, NtStatus> {
    let mut buf = vec![0u8; MAX_VALUE_BYTES];
    match sys::get_xattr(fd, &format!("{PREFIX}{ea_name}"), &mut buf) {
        Ok(n) => {
            buf.truncate(n);
            Ok(Some(buf))
        }
        Err(libc::ENODATA) => Ok(None),
        Err(e) => Err(map_errno(e)),
    }
}

/// Every EA of the file, sorted by name (so enumeration and EaSize are stable).
pub fn list(fd: BorrowedFd) -> Result<Vec<FullEa>, NtStatus> {
    let mut out = Vec::new();
    let mut names = names(fd)?;
    names.sort();
    for name in names {
        if let Some(v) = value(fd, &name)? {
            out.push(FullEa {
                flags: 0,
                name: name.into_bytes(),
                value: v,
            });
        }
    }
    Ok(out)
}

/// The EA called `ea_name` (case-insensitively); `None` when absent.
pub fn get(fd: BorrowedFd, ea_name: &[u8]) -> Result<Option<FullEa>, NtStatus> {
    let x = xattr_name(ea_name)?;
    Ok(value(fd, &x[PREFIX.len()..])?.map(|v| FullEa {
        flags: 0,
        name: x.as_bytes()[PREFIX.len()..].to_vec(),
        value: v,
    }))
}

/// EaSize as FileEaInformation and the directory classes report it: the size of the list in
/// FILE_FULL_EA_INFORMATION form, 0 without EAs. Errors count as no EAs.
pub fn size(fd: BorrowedFd) -> u32 {
    list(fd)
        .map(|eas| smb3d_protocol::info::ea::list_bytes(&eas) as u32)
        .unwrap_or(0)
}

/// Apply a FILE_FULL_EA_INFORMATION list (MS-FSA 2.1.5.14.4): a value sets the EA, an empty
/// value deletes it (deleting a missing EA is not an error).
pub fn apply(fd: BorrowedFd, eas: &[FullEa]) -> Result<(), NtStatus> {
    for e in eas {
        xattr_name(&e.name)?;
        if e.value.len() > MAX_VALUE_BYTES {
            return Err(NtStatus::EA_TOO_LARGE);
        }
    }
    for e in eas {
        let x = xattr_name(&e.name)?;
        if e.value.is_empty() {
            match sys::remove_xattr(fd, &x) {
                Ok(()) | Err(libc::ENODATA) => {}
                Err(e) => return Err(map_errno(e)),
            }
        } else {
            sys::set_xattr(fd, &x, &e.value).map_err(map_errno)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::test_dir::TempDir;
    use std::os::fd::AsFd;

    #[test]
    fn set_list_get_delete() {
        let dir = TempDir::new();
        let f = std::fs::File::create(dir.join("f")).unwrap();
        let fd = f.as_fd();
        let ea = |n: &str, v: &str| FullEa {
            flags: 0,
            name: n.as_bytes().to_vec(),
            value: v.as_bytes().to_vec(),
        };
        if apply(fd, &[ea("EAONE", "VALUE1")]) == Err(EAS_NOT_SUPPORTED) {
            return; // temp dir on a file system without user xattrs
        }
        apply(fd, &[ea("SecondEa", "ValueTwo")]).unwrap();
        crate::storage::metadata::set_attributes(fd, 0x2).unwrap();
        let all = list(fd).unwrap();
        assert_eq!(all, vec![ea("EAONE", "VALUE1"), ea("SECONDEA", "ValueTwo")]);
        assert_eq!(get(fd, b"secondea").unwrap().unwrap().value, b"ValueTwo");
        assert_eq!(size(fd) as usize, 20 + 25);
        apply(fd, &[ea("eaone", ""), ea("missing", "")]).unwrap();
        assert_eq!(list(fd).unwrap().len(), 1);
        assert_eq!(get(fd, b"DOSATTRIB"), Err(NtStatus::ACCESS_DENIED));
        assert_eq!(apply(fd, &[ea("a:b", "x")]), Err(INVALID_EA_NAME));
    }
}
