//! QUERY_DIRECTORY (MS-SMB2 3.3.5.18, MS-FSA 2.1.5.6.3): directory enumeration with Windows
//! wildcards, resumable across requests.
//!
//! The first query (or one with RESTART_SCANS / REOPEN) takes a sorted snapshot of the names
//! that match the pattern, "." and ".." first; later queries continue from a cursor. Metadata
//! is read when an entry is returned, so a file deleted after the snapshot is skipped.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use smb3d_protocol::info::dir::{self, DirEntry};
use smb3d_protocol::info::Times;
use smb3d_protocol::messages::query_directory::{
    begin_output_response, finish_output_response, flags, QueryDirectoryRequest,
};
use smb3d_protocol::wire::Writer;
use smb3d_protocol::NtStatus;

use super::negotiate::max_io_bytes;
use super::{Reply, Request, TreeCtx};
use crate::open::{FileId, Open};
use crate::storage::file_table::access;
use crate::storage::metadata::{stat_fd, FileMetadata};
use crate::storage::path::{open_beneath, SharePath, MAX_COMPONENT_UNITS};
use crate::storage::{ea, path};

/// Per-open enumeration state (MS-FSA 2.1.1.10 Open.QueryPattern, Open.QueryLastEntry).
#[derive(Debug, Clone)]
pub struct DirSearch {
    /// The pattern as the client sent it ("*" when empty).
    pattern_text: String,
    /// Matching names at the time of the first/restart query, "." and ".." first.
    names: Vec<String>,
    /// Index into `names` of the next entry to return.
    next: usize,
}

pub fn handle(req: &Request, ctx: &mut TreeCtx) -> Result<Reply, NtStatus> {
    let q = QueryDirectoryRequest::decode(req.msg)?;
    let open = ctx.open(FileId::decode(&q.file_id))?;
    // MS-SMB2 3.3.5.18: only directory opens can be enumerated (REOPEN on a file included).
    if !open.is_directory {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    if open.access_mask & access::FILE_READ_DATA == 0 {
        // FILE_LIST_DIRECTORY is the same bit as FILE_READ_DATA.
        return Err(NtStatus::ACCESS_DENIED);
    }
    let fixed = dir::fixed_bytes(q.file_information_class).ok_or(NtStatus::INVALID_INFO_CLASS)?;
    let out_len = q.output_buffer_length as usize;
    if out_len > max_io_bytes(ctx.dialect) as usize {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    // MS-FSA 2.1.5.6.3: a buffer that cannot hold one entry's fixed part.
    if out_len < fixed {
        return Err(NtStatus::INFO_LENGTH_MISMATCH);
    }
    let previous = open
        .state
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .search
        .take();
    let (mut search, first) = start_or_continue(&open, &q, previous)?;
    let result = fill(ctx, &open, &q, &mut search, out_len, first);
    open.state.lock().unwrap_or_else(|e| e.into_inner()).search = Some(search);
    result
}

/// MS-FSA 2.1.5.6.3: the pattern is set by the first query and replaced only by a restart
/// that carries one; REOPEN (MS-SMB2 3.3.5.18) starts over as if the open were new.
fn start_or_continue(
    open: &Open,
    q: &QueryDirectoryRequest,
    previous: Option<DirSearch>,
) -> Result<(DirSearch, bool), NtStatus> {
    let reopen = q.flags & flags::REOPEN != 0;
    let restart = q.flags & flags::RESTART_SCANS != 0;
    let previous = if reopen { None } else { previous };
    match previous {
        None => Ok((snapshot(open, parse_pattern(&q.file_name)?)?, true)),
        Some(prev) if restart => {
            let pattern = if q.file_name.is_empty() {
                prev.pattern_text
            } else {
                parse_pattern(&q.file_name)?
            };
            Ok((snapshot(open, pattern)?, false))
        }
        Some(prev) => Ok((prev, false)),
    }
}

fn fill(
    ctx: &TreeCtx,
    open: &Open,
    q: &QueryDirectoryRequest,
    search: &mut DirSearch,
    out_len: usize,
    first: bool,
) -> Result<Reply, NtStatus> {
    let class = q.file_information_class;
    let single = q.flags & flags::RETURN_SINGLE_ENTRY != 0;
    let mut body = Vec::with_capacity(8 + out_len.min(64 * 1024));
    begin_output_response(&mut body);
    let base = body.len();
    let mut prev: Option<usize> = None;
    let mut status = NtStatus::SUCCESS;
    while search.next < search.names.len() {
        let name = &search.names[search.next];
        let Some(entry) = build_entry(ctx, open, name, class) else {
            search.next += 1; // gone since the snapshot, or not representable
            continue;
        };
        let start = if prev.is_some() {
            (body.len() - base).next_multiple_of(8)
        } else {
            0
        };
        let need = start + dir::entry_bytes(class, &entry.name).unwrap_or(usize::MAX);
        if need > out_len {
            if prev.is_some() {
                break; // returned next time
            }
            // MS-FSA 2.1.5.6.3: the first entry is returned truncated with BUFFER_OVERFLOW.
            dir::encode_entry(class, &entry, &mut body)?;
            body.truncate(base + out_len);
            search.next += 1;
            status = NtStatus::BUFFER_OVERFLOW;
            prev = Some(base);
            break;
        }
        body.align_to(8); // `base` is 8, so absolute and relative alignment agree
        let at = dir::encode_entry(class, &entry, &mut body)?;
        if let Some(p) = prev {
            dir::link(&mut body, p, at);
        }
        prev = Some(at);
        search.next += 1;
        if single {
            break;
        }
    }
    if prev.is_none() {
        // MS-FSA 2.1.5.6.3: nothing on the first query is NO_SUCH_FILE, later NO_MORE_FILES.
        return Err(if first {
            NtStatus::NO_SUCH_FILE
        } else {
            NtStatus::NO_MORE_FILES
        });
    }
    finish_output_response(&mut body);
    Ok(Reply::Body { status, body })
}

/// MS-FSA 2.1.5.6.3: an empty pattern is "*"; otherwise it must be a valid file name
/// component in which the wildcards `* ? < > "` are allowed.
fn parse_pattern(p: &str) -> Result<String, NtStatus> {
    if p.is_empty() {
        return Ok("*".to_string());
    }
    if p.encode_utf16().count() > MAX_COMPONENT_UNITS {
        return Err(NtStatus::OBJECT_NAME_INVALID);
    }
    if p.chars()
        .any(|c| (c as u32) < 0x20 || matches!(c, '/' | '\\' | ':' | '|'))
    {
        return Err(NtStatus::OBJECT_NAME_INVALID);
    }
    Ok(p.to_string())
}

fn upcase(c: char) -> char {
    let mut u = c.to_uppercase();
    match (u.next(), u.next()) {
        (Some(one), None) => one,
        _ => c,
    }
}

fn has_wildcards(pattern: &[char]) -> bool {
    pattern
        .iter()
        .any(|c| matches!(c, '*' | '?' | '<' | '>' | '"'))
}

/// MS-FSA 2.1.4.4 IsInExpression, case-insensitive: `*` any run, `?` one character, `<`
/// (DOS_STAR) any run that does not consume the name's last '.', `>` (DOS_QM) one character
/// or nothing at a '.' or the end, `"` (DOS_DOT) a '.' or nothing at the end.
pub fn matches(pattern: &[char], name: &str) -> bool {
    if pattern == ['*'] {
        return true;
    }
    let name: Vec<char> = name.chars().map(upcase).collect();
    let last_dot = name.iter().rposition(|&c| c == '.');
    // reach[j]: the pattern prefix processed so far can end at name position j.
    let mut reach = vec![false; name.len() + 1];
    reach[0] = true;
    for &p in pattern {
        let mut next = vec![false; name.len() + 1];
        for (j, _) in reach.iter().enumerate().filter(|(_, &r)| r) {
            step(p, &name, j, &mut next);
        }
        if p == '*' || p == '<' {
            // Runs: propagate forward through consumable characters.
            for j in 0..name.len() {
                if next[j] && (p == '*' || Some(j) != last_dot) {
                    next[j + 1] = true;
                }
            }
        }
        reach = next;
    }
    reach[name.len()]
}

fn step(p: char, name: &[char], j: usize, next: &mut [bool]) {
    let here = name.get(j).copied();
    match p {
        '*' | '<' => next[j] = true,
        '?' => {
            if here.is_some() {
                next[j + 1] = true;
            }
        }
        '>' => match here {
            None | Some('.') => next[j] = true,
            Some(_) => next[j + 1] = true,
        },
        '"' => match here {
            None => next[j] = true,
            Some('.') => next[j + 1] = true,
            Some(_) => {}
        },
        c => {
            if here == Some(c) {
                next[j + 1] = true;
            }
        }
    }
}

fn snapshot(open: &Open, pattern_text: String) -> Result<DirSearch, NtStatus> {
    let pattern: Vec<char> = pattern_text.chars().map(upcase).collect();
    let mut names: Vec<String> = Vec::new();
    for dot in [".", ".."] {
        if matches(&pattern, dot) {
            names.push(dot.to_string());
        }
    }
    if has_wildcards(&pattern) {
        let mut found = list_names(open.fd.as_fd())?;
        found.retain(|n| matches(&pattern, n));
        found.sort_by_cached_key(|n| n.chars().map(upcase).collect::<String>());
        names.extend(found);
    } else if let Some(n) = find_exact(open, &pattern_text)? {
        names.push(n);
    }
    Ok(DirSearch {
        pattern_text,
        names,
        next: 0,
    })
}

/// A pattern without wildcards names one file: look it up instead of listing the directory.
fn find_exact(open: &Open, wanted: &str) -> Result<Option<String>, NtStatus> {
    if wanted == "." || wanted == ".." {
        return Ok(None);
    }
    let exact = nix::sys::stat::fstatat(
        Some(open.fd.as_raw_fd()),
        wanted,
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    );
    if exact.is_ok() {
        return Ok(Some(wanted.to_string()));
    }
    let all = list_names(open.fd.as_fd())?;
    Ok(all
        .into_iter()
        .find(|n| path::names_equal_ignore_case(n, wanted)))
}

/// Every entry name of the directory except "." and "..", skipping names that are not UTF-8
/// (not representable to the client).
fn list_names(dir_fd: BorrowedFd) -> Result<Vec<String>, NtStatus> {
    use nix::fcntl::OFlag;
    let mut d = nix::dir::Dir::openat(
        Some(dir_fd.as_raw_fd()),
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| NtStatus::from_errno(e as i32))?;
    let mut out = Vec::new();
    for entry in d.iter() {
        let entry = entry.map_err(|e| NtStatus::from_errno(e as i32))?;
        let Ok(name) = entry.file_name().to_str() else {
            continue;
        };
        if name != "." && name != ".." {
            out.push(name.to_string());
        }
    }
    Ok(out)
}

/// Metadata and EA size of `name` in the open directory; `None` when it is gone or its name
/// is not a valid SMB name.
fn build_entry(ctx: &TreeCtx, open: &Open, name: &str, class: u8) -> Option<DirEntry> {
    let needs_ea = !matches!(class, dir::class::DIRECTORY | dir::class::NAMES);
    let (mut meta, ea_size) = match name {
        "." => meta_of(open.fd.as_fd(), needs_ea)?,
        ".." => {
            let root = ctx.tree.share.root.as_ref()?;
            let here = open.path.lock().ok()?.clone();
            let parent = SharePath::parse(&here.replace('/', "\\"))
                .ok()?
                .parent()
                .unwrap_or_default();
            let fd =
                open_beneath(root.as_fd(), &parent, libc::O_PATH | libc::O_DIRECTORY, 0).ok()?;
            meta_of(fd.as_fd(), needs_ea)?
        }
        _ => {
            let p = SharePath::parse(name).ok()?;
            let fd = open_beneath(open.fd.as_fd(), &p, libc::O_PATH | libc::O_NOFOLLOW, 0).ok()?;
            meta_of(fd.as_fd(), needs_ea)?
        }
    };
    ctx.server.files.apply_change_time_of(&mut meta);
    Some(entry_from(name, &meta, ea_size))
}

fn meta_of(fd: BorrowedFd, needs_ea: bool) -> Option<(FileMetadata, u32)> {
    let meta = stat_fd(fd).ok()?;
    let ea_size = if needs_ea { ea::size(fd) } else { 0 };
    Some((meta, ea_size))
}

fn entry_from(name: &str, m: &FileMetadata, ea_size: u32) -> DirEntry {
    DirEntry {
        // MS-FSCC 2.4.8: file systems that keep no stable position report 0.
        file_index: 0,
        times: times_of(m),
        end_of_file: m.end_of_file,
        allocation_size: m.allocation_size,
        file_attributes: m.attributes,
        ea_size,
        file_id: m.file_index,
        short_name: if name == "." || name == ".." {
            String::new()
        } else {
            short_name(name)
        },
        name: name.to_string(),
    }
}

pub fn times_of(m: &FileMetadata) -> Times {
    Times {
        creation: m.creation_time,
        last_access: m.last_access_time,
        last_write: m.last_write_time,
        change: m.change_time,
    }
}

/// Characters allowed in an 8.3 name besides letters and digits.
const SHORT_NAME_EXTRA: &str = "$%'-_@~`!(){}^#&";

fn is_short_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || SHORT_NAME_EXTRA.contains(c)
}

/// The 8.3 name reported in FileBothDirectoryInformation and FileAlternateNameInformation:
/// the name itself (upper-cased) when it already is one, else a stable generated one,
/// `PREFIX~HH.EXT` with two hash characters. Short names are reported, never resolved.
pub fn short_name(name: &str) -> String {
    let (base, ext) = match name.rfind('.') {
        Some(0) | None => (name, ""),
        Some(i) => (&name[..i], &name[i + 1..]),
    };
    let valid = !base.is_empty()
        && base.len() <= 8
        && ext.len() <= 3
        && base.chars().all(is_short_char)
        && ext.chars().all(is_short_char)
        && !(ext.is_empty() && name.ends_with('.'));
    if valid {
        return name.to_ascii_uppercase();
    }
    let mut prefix: String = base
        .chars()
        .filter(|c| is_short_char(*c))
        .map(|c| c.to_ascii_uppercase())
        .take(5)
        .collect();
    if prefix.is_empty() {
        prefix.push('_');
    }
    // FNV-1a over the full name, so names sharing a prefix get different short names.
    let mut h: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let hash: String = [(h % 36) as usize, ((h / 36) % 36) as usize]
        .iter()
        .map(|&i| DIGITS[i] as char)
        .collect();
    let ext: String = ext
        .chars()
        .filter(|c| is_short_char(*c))
        .map(|c| c.to_ascii_uppercase())
        .take(3)
        .collect();
    if ext.is_empty() {
        format!("{prefix}~{hash}")
    } else {
        format!("{prefix}~{hash}.{ext}")
    }
}

#[cfg(test)]
mod tests;
