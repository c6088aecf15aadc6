//! SMB2 command handlers, one module per command.
//!
//! Tree-scoped handlers (CREATE … SET_INFO) get a narrow [`TreeCtx`]: the request, the session,
//! tree and server state they act on, and nothing of the connection. They return a [`Reply`]; the
//! connection adds the header, credits, signing or encryption. A handler never panics on peer
//! data: malformed input is `Err(NtStatus)` and the reason goes to the log.

pub mod close;
pub mod create;
pub mod flush;
pub mod ioctl;
pub mod lock;
pub mod logoff;
pub mod negotiate;
pub mod oplock_break;
pub mod query_directory;
pub mod query_info;
pub mod read;
pub mod session_setup;
pub mod set_info;
pub mod tree_connect;
pub mod write;

#[cfg(test)]
mod create_info_tests;
#[cfg(test)]
mod file_command_tests;
#[cfg(test)]
pub(crate) mod info_test_support;
#[cfg(test)]
pub(crate) mod test_support;

use std::ops::Range;
use std::sync::Arc;

use smb3d_protocol::dialect::Dialect;
use smb3d_protocol::header::Header;
use smb3d_protocol::NtStatus;

use crate::open::{FileId, Open};
use crate::server::ServerState;
use crate::session::Session;
use crate::tree::Tree;

/// One request of a (possibly compound) PDU.
pub struct Request<'a> {
    pub header: &'a Header,
    /// This message: the 64-byte header followed by the body, up to the next compound element.
    /// Offsets inside SMB2 bodies are relative to the start of `msg`.
    pub msg: &'a [u8],
}

/// What a tree-scoped handler may touch.
pub struct TreeCtx<'a> {
    pub server: &'a ServerState,
    pub session: &'a Arc<Session>,
    pub tree: &'a Arc<Tree>,
    pub dialect: Dialect,
    /// The FileId of the CREATE earlier in a related compound chain (MS-SMB2 3.3.5.2.7.2).
    pub compound_file_id: &'a mut Option<FileId>,
    /// The connection the request came on: to nudge when a request it parks can go on.
    pub conn: crate::mailbox::ConnHandle,
    /// The ClientGuid the connection negotiated: leases belong to the client.
    pub client_guid: [u8; 16],
    /// The request ran before and was parked (STATUS_PENDING); this is a retry.
    pub resuming: bool,
}

impl TreeCtx<'_> {
    /// Resolve a request's FileId, following the related-compound convention, and check it
    /// belongs to this tree.
    pub fn open(&self, id: FileId) -> Result<Arc<Open>, NtStatus> {
        let id = if id == FileId::RELATED {
            self.compound_file_id.ok_or(NtStatus::FILE_CLOSED)?
        } else {
            id
        };
        let open = self.session.opens.get(id)?;
        if open.tree_id != self.tree.id {
            return Err(NtStatus::FILE_CLOSED);
        }
        Ok(open)
    }
}

/// A handler's answer.
#[derive(Debug)]
pub enum Reply {
    /// A response body (everything after the 64-byte header) with its status. Most replies are
    /// `SUCCESS`; `BUFFER_OVERFLOW` and similar warnings carry a body too.
    Body { status: NtStatus, body: Vec<u8> },
    /// Read `length` bytes at `offset`; the connection reads them straight into the response
    /// buffer and encodes the READ response around them (no extra copy).
    ReadFile {
        open: Arc<Open>,
        offset: u64,
        length: u32,
        min_count: u32,
    },
    /// Write `msg[data]` at `offset`; the connection writes straight from the receive buffer.
    WriteFile {
        open: Arc<Open>,
        offset: u64,
        data: Range<usize>,
    },
    /// The request conflicts with state another open holds (a byte-range lock today). The
    /// connection answers STATUS_PENDING and runs the handler again when that state changes, or
    /// cancels it (MS-SMB2 3.3.4.2).
    WouldBlock,
}

impl Reply {
    pub fn ok(body: Vec<u8>) -> Reply {
        Reply::Body {
            status: NtStatus::SUCCESS,
            body,
        }
    }
}
