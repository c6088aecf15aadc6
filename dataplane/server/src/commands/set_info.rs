//! SET_INFO (MS-SMB2 3.3.5.21, MS-FSA 2.1.5.14): times and attributes, size, allocation,
//! delete-pending, rename, position, mode and EAs. Security descriptors are not stored (see
//! [`set_security`]); quotas and filesystem settings are NOT_SUPPORTED.

use std::os::fd::{AsFd, AsRawFd};

use smb3d_protocol::info::ea as ea_info;
use smb3d_protocol::info::file::{self as fi, class, disposition_ex, mode};
use smb3d_protocol::info::info_type;
use smb3d_protocol::info::security::{encode_acl, secinfo, RawDescriptor};
use smb3d_protocol::messages::set_info::{encode_response, SetInfoRequest};
use smb3d_protocol::wire::utf16le_to_string;
use smb3d_protocol::NtStatus;

use super::query_info::{check_security_access, descriptor_of};
use super::{Reply, Request, TreeCtx};
use crate::open::{FileId, Open};
use crate::storage::ea;
use crate::storage::file_table::{access, FileKey};
use crate::storage::metadata::{self, attr, stat_at, stat_fd};
use crate::storage::path::{open_parent, resolve_case, SharePath};

pub fn handle(req: &Request, ctx: &mut TreeCtx) -> Result<Reply, NtStatus> {
    let s = SetInfoRequest::decode(req.msg)?;
    let open = ctx.open(FileId::decode(&s.file_id))?;
    super::check_channel_sequence(req, ctx, &open)?;
    match s.info_type {
        // Wait (STATUS_PENDING) while a lease break this causes is acknowledged.
        info_type::FILE => match set_file(ctx, &open, &s) {
            Err(NtStatus::PENDING) => return Ok(Reply::WouldBlock),
            other => other?,
        },
        info_type::SECURITY => set_security(&open, &s)?,
        // Volume labels, quota and filesystem control settings are not supported.
        info_type::FILESYSTEM | info_type::QUOTA => return Err(NtStatus::NOT_SUPPORTED),
        _ => return Err(NtStatus::INVALID_PARAMETER),
    }
    Ok(Reply::ok(encode_response()))
}

fn require(open: &Open, bits: u32) -> Result<(), NtStatus> {
    if open.access_mask & bits == 0 {
        return Err(NtStatus::ACCESS_DENIED);
    }
    Ok(())
}

/// The classes that change the file: refused on read-only shares, and each needs its right
/// (MS-FSA 2.1.5.14).
fn check_access(ctx: &TreeCtx, open: &Open, c: u8) -> Result<(), NtStatus> {
    let needed = match c {
        class::BASIC => access::FILE_WRITE_ATTRIBUTES,
        class::END_OF_FILE | class::ALLOCATION => access::FILE_WRITE_DATA,
        class::DISPOSITION | class::DISPOSITION_EX | class::RENAME => access::DELETE,
        class::FULL_EA => access::FILE_WRITE_EA,
        _ => return Ok(()),
    };
    if ctx.tree.share.read_only {
        return Err(NtStatus::ACCESS_DENIED);
    }
    require(open, needed)
}

fn set_file(ctx: &TreeCtx, open: &Open, s: &SetInfoRequest) -> Result<(), NtStatus> {
    let c = s.file_info_class;
    check_access(ctx, open, c)?;
    let b = s.buffer;
    match c {
        class::BASIC => set_basic(ctx, open, &fi::BasicInformation::decode(b)?),
        class::END_OF_FILE => {
            let e = fi::EndOfFileInformation::decode(b)?;
            break_level2(ctx, open);
            note_change(ctx, open, set_end_of_file(open, e))
        }
        class::ALLOCATION => {
            let a = fi::AllocationInformation::decode(b)?;
            break_level2(ctx, open);
            note_change(ctx, open, set_allocation(open, a))
        }
        class::DISPOSITION => {
            let d = fi::DispositionInformation::decode(b)?;
            ctx.server.files.set_delete_pending(open, d.delete_pending)
        }
        class::DISPOSITION_EX => {
            set_disposition_ex(ctx, open, fi::DispositionInformationEx::decode(b)?.flags)
        }
        class::RENAME => {
            let info = fi::RenameInformation::decode(b)?;
            let mut notices = Vec::new();
            let settled = ctx
                .server
                .files
                .break_handle_caching(open, ctx.conn, &mut notices);
            crate::oplock::send_breaks(ctx.server, notices);
            settled?;
            let r = rename(ctx, open, &info);
            note_change(ctx, open, r)
        }
        class::POSITION => set_position(open, fi::PositionInformation::decode(b)?),
        class::MODE => set_mode(open, fi::ModeInformation::decode(b)?.mode),
        class::FULL_EA => {
            let eas = ea_info::decode_list(b)?;
            note_change(ctx, open, ea::apply(open.fd.as_fd(), &eas))
        }
        class::LINK => Err(NtStatus::NOT_SUPPORTED),
        _ => Err(NtStatus::INVALID_INFO_CLASS),
    }
}

/// MS-FSA 2.1.5.14.1/2.1.5.14.4 (via 2.1.4.12): a size change breaks every level II oplock
/// on the file to NONE (smbtorture smb2.oplock.batch11/batch12).
fn break_level2(ctx: &TreeCtx, open: &Open) {
    crate::oplock::send_breaks(ctx.server, ctx.server.files.break_level2(open));
}

/// MS-FSCC 2.4.7: 0 leaves a time unchanged; -1 and -2 turn automatic updates off and back
/// on, which this server does not track, so they leave it unchanged too. Other negative
/// values are invalid.
fn time_arg(t: i64) -> Result<Option<u64>, NtStatus> {
    match t {
        -2..=0 => Ok(None),
        t if t < 0 => Err(NtStatus::INVALID_PARAMETER),
        t => Ok(Some(t as u64)),
    }
}

/// After `result`, a successful change of the file through `open`: a change time a client set
/// stays when it was set through this open and is superseded otherwise (the file's real ctime
/// moved with this change).
fn note_change(ctx: &TreeCtx, open: &Open, result: Result<(), NtStatus>) -> Result<(), NtStatus> {
    result?;
    let m = stat_fd(open.fd.as_fd())?;
    ctx.server.files.note_change(open, m.change_time);
    Ok(())
}

/// MS-FSA 2.1.5.14.2 FileBasicInformation. A ChangeTime cannot be set on Linux; it is kept in
/// the file table and reported until the file changes (`FileTable::set_change_time`).
fn set_basic(ctx: &TreeCtx, open: &Open, b: &fi::BasicInformation) -> Result<(), NtStatus> {
    let creation = time_arg(b.creation_time)?;
    let access_time = time_arg(b.last_access_time)?;
    let write = time_arg(b.last_write_time)?;
    let change = time_arg(b.change_time)?;
    let attrs = b.file_attributes;
    if attrs != 0 {
        if attrs & !attr::VALID_FLAGS != 0 {
            return Err(NtStatus::INVALID_PARAMETER);
        }
        // A file cannot be turned into a directory (nor the reverse; the bit is ignored there).
        if attrs & attr::DIRECTORY != 0 && !open.is_directory {
            return Err(NtStatus::INVALID_PARAMETER);
        }
    }
    let fd = open.fd.as_fd();
    let times = creation.is_some() || access_time.is_some() || write.is_some();
    if attrs == 0 && !times && change.is_none() {
        return Ok(());
    }
    if attrs != 0 {
        metadata::set_attributes(fd, attrs & !(attr::DIRECTORY | attr::NORMAL))?;
    }
    if times {
        metadata::set_times(fd, creation, access_time, write)?;
    }
    let real_ctime = stat_fd(fd)?.change_time;
    match change {
        Some(t) => ctx.server.files.set_change_time(open, t, real_ctime),
        None => ctx.server.files.note_change(open, real_ctime),
    }
    Ok(())
}

fn errno_status(e: nix::errno::Errno) -> NtStatus {
    match e {
        // A descriptor opened without write access.
        nix::errno::Errno::EBADF | nix::errno::Errno::EINVAL => NtStatus::ACCESS_DENIED,
        e => NtStatus::from_errno(e as i32),
    }
}

fn size_arg(v: u64) -> Result<i64, NtStatus> {
    i64::try_from(v).map_err(|_| NtStatus::INVALID_PARAMETER)
}

/// MS-FSA 2.1.5.14.6 FileEndOfFileInformation: truncate or extend.
fn set_end_of_file(open: &Open, e: fi::EndOfFileInformation) -> Result<(), NtStatus> {
    if open.is_directory {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    let len = size_arg(e.end_of_file)?;
    nix::unistd::ftruncate(open.fd.as_fd(), len).map_err(errno_status)
}

/// MS-FSA 2.1.5.14.1 FileAllocationInformation: below the end of file truncates the file;
/// above it reserves space without changing the size (fallocate KEEP_SIZE, skipped where the
/// file system cannot).
fn set_allocation(open: &Open, a: fi::AllocationInformation) -> Result<(), NtStatus> {
    if open.is_directory {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    let want = size_arg(a.allocation_size)?;
    let m = stat_fd(open.fd.as_fd())?;
    if a.allocation_size < m.end_of_file {
        return nix::unistd::ftruncate(open.fd.as_fd(), want).map_err(errno_status);
    }
    if a.allocation_size > m.allocation_size {
        use nix::fcntl::{fallocate, FallocateFlags};
        match fallocate(
            open.fd.as_raw_fd(),
            FallocateFlags::FALLOC_FL_KEEP_SIZE,
            0,
            want,
        ) {
            Ok(()) | Err(nix::errno::Errno::EOPNOTSUPP) => {}
            Err(e) => return Err(errno_status(e)),
        }
    } else if a.allocation_size < m.allocation_size {
        // Truncating to the current size releases blocks reserved past the end.
        let eof = size_arg(m.end_of_file)?;
        nix::unistd::ftruncate(open.fd.as_fd(), eof).map_err(errno_status)?;
    }
    Ok(())
}

/// MS-FSCC 2.4.12 FileDispositionInformationEx. POSIX semantics (unlink now, keep the open)
/// are treated like the classic delete-on-last-close.
fn set_disposition_ex(ctx: &TreeCtx, open: &Open, flags: u32) -> Result<(), NtStatus> {
    let delete = flags & disposition_ex::DELETE != 0;
    if flags & disposition_ex::ON_CLOSE != 0 {
        let mut st = open.state.lock().unwrap_or_else(|e| e.into_inner());
        st.delete_on_close = delete;
        return Ok(());
    }
    if delete && flags & disposition_ex::IGNORE_READONLY_ATTRIBUTE != 0 {
        let m = stat_fd(open.fd.as_fd())?;
        if m.attributes & attr::READONLY != 0 {
            let keep = m.attributes & !(attr::READONLY | attr::DIRECTORY | attr::NORMAL);
            metadata::set_attributes(open.fd.as_fd(), keep)?;
        }
    }
    ctx.server.files.set_delete_pending(open, delete)
}

/// MS-FSA 2.1.5.14.9 FilePositionInformation.
fn set_position(open: &Open, p: fi::PositionInformation) -> Result<(), NtStatus> {
    size_arg(p.current_byte_offset)?;
    let st = open.state.lock().unwrap_or_else(|e| e.into_inner());
    if st.mode & mode::NO_INTERMEDIATE_BUFFERING != 0 && !p.current_byte_offset.is_multiple_of(512)
    {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    open.position
        .store(p.current_byte_offset, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

/// MS-FSA 2.1.5.14.8 FileModeInformation: only the buffering hints may change; the
/// synchronous-I/O bits must match the open (SMB2 opens are never synchronous).
fn set_mode(open: &Open, m: u32) -> Result<(), NtStatus> {
    let settable = mode::WRITE_THROUGH | mode::SEQUENTIAL_ONLY | mode::NO_INTERMEDIATE_BUFFERING;
    if m & !settable != 0 {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    open.state.lock().unwrap_or_else(|e| e.into_inner()).mode = m;
    Ok(())
}

/// Target of a rename: a path from the share root (a leading '\' is tolerated).
fn rename_target(info: &fi::RenameInformation) -> Result<SharePath, NtStatus> {
    // MS-SMB2 2.2.39: RootDirectory MUST be zero.
    if info.root_directory != 0 {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    let name = utf16le_to_string(&info.file_name)?;
    if name.starts_with(':') {
        return Err(NtStatus::NOT_SUPPORTED); // named streams are not supported
    }
    let name = name.strip_prefix('\\').unwrap_or(&name);
    let target = SharePath::parse(name)?;
    if target.is_root() {
        return Err(NtStatus::OBJECT_NAME_INVALID);
    }
    Ok(target)
}

/// A rename opens the target's directory to add an entry, sharing read and write but not
/// delete: while any open of that directory holds DELETE access, the rename is a sharing
/// violation (Windows and Samba behaviour; smbtorture smb2.oplock.exclusive6/batch19). It is
/// checked before anything else, so no oplock is broken for a rename that cannot happen.
fn check_target_directory_opens(
    ctx: &TreeCtx,
    dst_dir: &std::os::fd::OwnedFd,
) -> Result<(), NtStatus> {
    let m = stat_fd(dst_dir.as_fd())?;
    let key = FileKey {
        device: m.device,
        inode: m.file_index,
    };
    if ctx.server.files.has_open_with_access(key, access::DELETE) {
        return Err(NtStatus::SHARING_VIOLATION);
    }
    Ok(())
}

/// MS-FSA 2.1.5.14.11 FileRenameInformation.
fn rename(ctx: &TreeCtx, open: &Open, info: &fi::RenameInformation) -> Result<(), NtStatus> {
    let target = rename_target(info)?;
    let root = ctx
        .tree
        .share
        .root
        .as_ref()
        .ok_or(NtStatus::INVALID_DEVICE_REQUEST)?
        .as_fd();
    let current = open.path.lock().map(|p| p.clone()).unwrap_or_default();
    if current.is_empty() {
        return Err(NtStatus::ACCESS_DENIED); // the share root
    }
    let source = SharePath::parse(&current.replace('/', "\\"))?;
    let (src_dir, src_name) = open_parent(root, &source)?;
    let (dst_dir, existing) = open_parent(root, &target)?;
    check_target_directory_opens(ctx, &dst_dir)?;
    let wanted = target.file_name().ok_or(NtStatus::OBJECT_NAME_INVALID)?;
    let me = stat_fd(open.fd.as_fd())?;
    let mut replace = false;
    match stat_at(dst_dir.as_fd(), &existing) {
        // The target is this file (a case-only rename, or no change at all).
        Ok(m) if m.device == me.device && m.file_index == me.file_index => {
            if existing == wanted {
                return Ok(());
            }
        }
        Ok(m) => {
            if !info.replace_if_exists {
                return Err(NtStatus::OBJECT_NAME_COLLISION);
            }
            // MS-FSA 2.1.5.14.11: a directory is never replaced; nor can a directory
            // replace a file.
            if m.is_directory || open.is_directory {
                return Err(NtStatus::ACCESS_DENIED);
            }
            let key = FileKey {
                device: m.device,
                inode: m.file_index,
            };
            if ctx.server.files.open_count(key) > 0 {
                return Err(NtStatus::SHARING_VIOLATION);
            }
            replace = true;
        }
        Err(NtStatus::OBJECT_NAME_NOT_FOUND) => {}
        Err(e) => return Err(e),
    }
    let flags = if replace {
        nix::fcntl::RenameFlags::empty()
    } else {
        nix::fcntl::RenameFlags::RENAME_NOREPLACE
    };
    // A replaced target goes away under the name it has on disk.
    let new_name = if replace { existing.as_str() } else { wanted };
    nix::fcntl::renameat2(
        Some(src_dir.as_raw_fd()),
        src_name.as_str(),
        Some(dst_dir.as_raw_fd()),
        new_name,
        flags,
    )
    .map_err(|e| match e {
        nix::errno::Errno::EEXIST => NtStatus::OBJECT_NAME_COLLISION,
        nix::errno::Errno::ENOTEMPTY | nix::errno::Errno::EISDIR => NtStatus::ACCESS_DENIED,
        e => NtStatus::from_errno(e as i32),
    })?;
    let parent = resolve_case(root, &target.parent().unwrap_or_default())?;
    let new_path = parent.join(new_name);
    if let Ok(mut p) = open.path.lock() {
        *p = new_path.as_str().to_string();
    }
    Ok(())
}

/// Security descriptors are not stored: ACLs would not be enforced, so accepting a change
/// would mislead the client. A set that asks for exactly what QUERY_INFO reports is a no-op
/// and succeeds (tools rewrite descriptors they read); any other change is NOT_SUPPORTED.
fn set_security(open: &Open, s: &SetInfoRequest) -> Result<(), NtStatus> {
    let bits = s.additional_information;
    check_security_access(open, bits, access::WRITE_DAC, access::WRITE_OWNER)?;
    let given = RawDescriptor::decode(s.buffer)?;
    let ours = descriptor_of(open)?;
    let same_owner = bits & secinfo::OWNER == 0 || given.owner == ours.owner;
    let same_group = bits & secinfo::GROUP == 0 || given.group == ours.group;
    let same_dacl = bits & secinfo::DACL == 0 || {
        let mut acl = Vec::new();
        if let Some(d) = &ours.dacl {
            encode_acl(d, &mut acl);
        }
        given.dacl == Some(acl)
    };
    let no_sacl = bits & secinfo::SACL == 0 || given.sacl.is_none();
    if same_owner && same_group && same_dacl && no_sacl {
        Ok(())
    } else {
        Err(NtStatus::NOT_SUPPORTED)
    }
}

#[cfg(test)]
mod tests;
