//! File operations on one channel, one request at a time: CREATE, READ, WRITE, FLUSH, CLOSE and
//! the SET_INFO classes a client needs to rename, truncate and delete (MS-SMB2 3.2.4.3 ff.).
//! What the load generator pipelines itself (run.rs) it builds from the same encoders; these are
//! for tests and the soak run, where each step is checked before the next.

use smb3d_protocol::header::Command;
use smb3d_protocol::info::file::{class, DispositionInformation, RenameInformation};
use smb3d_protocol::info::info_type;
use smb3d_protocol::messages::create::{disposition, options};
use smb3d_protocol::messages::set_info::SetInfoRequest;
use smb3d_protocol::wire::{string_to_utf16le, Writer};
use smb3d_protocol::NtStatus;

use super::conn::{Conn, Request, Result};
use super::msgs::{self, CreateArgs, CreateReply};

/// Access mask bits (MS-SMB2 2.2.13.1.1).
pub mod access {
    pub const FILE_READ_DATA: u32 = 0x0000_0001;
    pub const FILE_WRITE_DATA: u32 = 0x0000_0002;
    pub const FILE_READ_ATTRIBUTES: u32 = 0x0000_0080;
    pub const FILE_WRITE_ATTRIBUTES: u32 = 0x0000_0100;
    pub const DELETE: u32 = 0x0001_0000;
    pub const SYNCHRONIZE: u32 = 0x0010_0000;
}

/// FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE.
pub const SHARE_ALL: u32 = 7;
/// FILE_ATTRIBUTE_NORMAL.
pub const ATTR_NORMAL: u32 = 0x80;

/// Open a regular file for reading, writing, renaming and deleting with `disposition`
/// (`disposition::OPEN_IF`, `CREATE`, `OVERWRITE_IF`, ...).
pub fn file_args(disposition: u32) -> CreateArgs {
    CreateArgs {
        desired_access: access::FILE_READ_DATA
            | access::FILE_WRITE_DATA
            | access::FILE_READ_ATTRIBUTES
            | access::FILE_WRITE_ATTRIBUTES
            | access::DELETE
            | access::SYNCHRONIZE,
        file_attributes: ATTR_NORMAL,
        share_access: SHARE_ALL,
        disposition,
        options: options::NON_DIRECTORY_FILE,
    }
}

/// Open (or create) `name`, a path from the share root with `\` separators.
pub fn open(conn: &mut Conn, tree_id: u32, name: &str, args: &CreateArgs) -> Result<CreateReply> {
    let mut req = Request::new(Command::Create, tree_id);
    msgs::encode_create(name, args, &mut req.msg);
    let resp = conn.call_ok(req)?;
    Ok(msgs::decode_create(&resp.msg)?)
}

pub fn close(conn: &mut Conn, tree_id: u32, file_id: &[u8; 16]) -> Result<()> {
    let mut req = Request::new(Command::Close, tree_id);
    msgs::encode_close(file_id, &mut req.msg);
    conn.call_ok(req).map(|_| ())
}

/// One WRITE of `data` at `offset`; returns the count the server acknowledged. `data` must fit
/// the negotiated MaxWriteSize.
pub fn write(
    conn: &mut Conn,
    tree_id: u32,
    file_id: &[u8; 16],
    offset: u64,
    data: &[u8],
) -> Result<u32> {
    let mut req = Request::with_payload(Command::Write, tree_id, data.len() as u32);
    msgs::encode_write_head(file_id, offset, data.len() as u32, &mut req.msg);
    req.msg.extend_from_slice(data);
    let resp = conn.call_ok(req)?;
    Ok(msgs::decode_write(&resp.msg)?)
}

/// One READ of up to `len` bytes at `offset`; empty at or past the end of the file
/// (STATUS_END_OF_FILE, MS-SMB2 3.3.5.12).
pub fn read(
    conn: &mut Conn,
    tree_id: u32,
    file_id: &[u8; 16],
    offset: u64,
    len: u32,
) -> Result<Vec<u8>> {
    let mut req = Request::with_payload(Command::Read, tree_id, len);
    msgs::encode_read(file_id, offset, len, &mut req.msg);
    let resp = conn.call(req)?.ok_or_status(&[NtStatus::END_OF_FILE])?;
    if resp.status() == NtStatus::END_OF_FILE {
        return Ok(Vec::new());
    }
    let range = msgs::decode_read(&resp.msg)?;
    Ok(resp.msg[range].to_vec())
}

/// FLUSH (MS-SMB2 3.3.5.11): the server makes the file's data durable before it answers.
pub fn flush(conn: &mut Conn, tree_id: u32, file_id: &[u8; 16]) -> Result<()> {
    let mut req = Request::new(Command::Flush, tree_id);
    msgs::encode_flush(file_id, &mut req.msg);
    conn.call_ok(req).map(|_| ())
}

/// SET_INFO of a file information class with `buffer`.
pub fn set_file_info(
    conn: &mut Conn,
    tree_id: u32,
    file_id: &[u8; 16],
    file_info_class: u8,
    buffer: &[u8],
) -> Result<()> {
    let mut req = Request::new(Command::SetInfo, tree_id);
    SetInfoRequest {
        info_type: info_type::FILE,
        file_info_class,
        additional_information: 0,
        file_id: *file_id,
        buffer,
    }
    .encode(&mut req.msg);
    conn.call_ok(req).map(|_| ())
}

/// Rename the open file to `new_name` (a path from the share root), FileRenameInformation.
pub fn rename(
    conn: &mut Conn,
    tree_id: u32,
    file_id: &[u8; 16],
    new_name: &str,
    replace_if_exists: bool,
) -> Result<()> {
    let mut buf = Vec::new();
    RenameInformation {
        replace_if_exists,
        root_directory: 0,
        file_name: string_to_utf16le(new_name),
    }
    .encode(&mut buf);
    set_file_info(conn, tree_id, file_id, class::RENAME, &buf)
}

/// Mark the open file for deletion when its last handle closes (FileDispositionInformation).
pub fn set_delete_pending(
    conn: &mut Conn,
    tree_id: u32,
    file_id: &[u8; 16],
    delete_pending: bool,
) -> Result<()> {
    let mut buf = Vec::new();
    DispositionInformation { delete_pending }.encode(&mut buf);
    set_file_info(conn, tree_id, file_id, class::DISPOSITION, &buf)
}

/// Truncate or extend the file (FileEndOfFileInformation).
pub fn set_end_of_file(
    conn: &mut Conn,
    tree_id: u32,
    file_id: &[u8; 16],
    end_of_file: u64,
) -> Result<()> {
    let mut buf = Vec::new();
    buf.put_u64(end_of_file);
    set_file_info(conn, tree_id, file_id, class::END_OF_FILE, &buf)
}

/// Delete `name`: open it with DELETE access and delete-pending set, then close.
pub fn delete(conn: &mut Conn, tree_id: u32, name: &str) -> Result<()> {
    let mut args = file_args(disposition::OPEN);
    args.desired_access = access::DELETE | access::FILE_READ_ATTRIBUTES | access::SYNCHRONIZE;
    let file = open(conn, tree_id, name, &args)?;
    let marked = set_delete_pending(conn, tree_id, &file.file_id, true);
    let closed = close(conn, tree_id, &file.file_id);
    marked.and(closed)
}
