//! Handler tests: a server whose one share is a temporary directory, a session with a tree on
//! it, and builders for the request messages of the file commands.

use std::sync::Arc;

use smb3d_protocol::dialect::Dialect;
use smb3d_protocol::header::{Header, HEADER_BYTES, PROTOCOL_ID};
use smb3d_protocol::messages::create::{encode_contexts, CreateResponse};
use smb3d_protocol::wire::{string_to_utf16le, Writer};
use smb3d_protocol::NtStatus;

use super::{Reply, Request, TreeCtx};
use crate::open::FileId;
use crate::server::{ServerConfig, ServerState};
use crate::session::{Identity, Session};
use crate::share::{Requirement, Share, ShareKind};
use crate::storage::file_table::access;
use crate::storage::test_dir::{temp_root, TempDir};
use crate::tree::Tree;

pub struct TestEnv {
    pub dir: TempDir,
    pub server: ServerState,
    pub session: Arc<Session>,
    pub tree: Arc<Tree>,
    pub compound: Option<FileId>,
}

impl TestEnv {
    pub fn new() -> TestEnv {
        TestEnv::with_share(false)
    }

    pub fn with_share(read_only: bool) -> TestEnv {
        let (dir, root) = temp_root();
        let share = Arc::new(Share {
            name: "test".into(),
            kind: ShareKind::Disk,
            path: dir.to_path_buf(),
            root: Some(root),
            read_only,
            encrypt: Requirement::Off,
        });
        let server = ServerState::new(
            ServerConfig::default(),
            vec![share.clone()],
            std::sync::Arc::new(crate::server::NoUsers),
            [7; 16],
        );
        let session = Arc::new(Session::new(
            1,
            Identity::User {
                user: "u".into(),
                domain: "d".into(),
            },
        ));
        let tree = Arc::new(Tree {
            id: 1,
            share,
            maximal_access: access::FILE_ALL_ACCESS,
            encrypt: false,
        });
        session.trees.lock().unwrap().insert(tree.id, tree.clone());
        TestEnv {
            dir,
            server,
            session,
            tree,
            compound: None,
        }
    }

    /// A second session on the same server and share (for share-mode and lock tests).
    pub fn other_session(&self, id: u64) -> (Arc<Session>, Arc<Tree>) {
        let session = Arc::new(Session::new(
            id,
            Identity::User {
                user: "v".into(),
                domain: "d".into(),
            },
        ));
        session
            .trees
            .lock()
            .unwrap()
            .insert(self.tree.id, self.tree.clone());
        (session, self.tree.clone())
    }

    pub fn ctx(&mut self) -> TreeCtx<'_> {
        TreeCtx {
            server: &self.server,
            session: &self.session,
            tree: &self.tree,
            dialect: Dialect::Smb311,
            compound_file_id: &mut self.compound,
            conn: crate::mailbox::ConnHandle {
                reactor: 0,
                slot: 0,
                gen: 1,
            },
            client_guid: CLIENT_GUID,
            resuming: false,
        }
    }

    /// Run `handler` on a message with `command` and `body`, as this env's session.
    pub fn run(
        &mut self,
        handler: fn(&Request, &mut TreeCtx) -> Result<Reply, NtStatus>,
        command: u16,
        body: &[u8],
    ) -> Result<Reply, NtStatus> {
        let msg = message(command, body);
        let header = Header::decode(&msg).expect("header");
        let req = Request {
            header: &header,
            msg: &msg,
        };
        handler(&req, &mut self.ctx())
    }

    /// Run `handler` as another session on the same tree.
    pub fn run_as(
        &self,
        session: &Arc<Session>,
        handler: fn(&Request, &mut TreeCtx) -> Result<Reply, NtStatus>,
        command: u16,
        body: &[u8],
    ) -> Result<Reply, NtStatus> {
        let msg = message(command, body);
        let header = Header::decode(&msg).expect("header");
        let req = Request {
            header: &header,
            msg: &msg,
        };
        let mut compound = None;
        let mut ctx = TreeCtx {
            server: &self.server,
            session,
            tree: &self.tree,
            dialect: Dialect::Smb311,
            compound_file_id: &mut compound,
            conn: crate::mailbox::ConnHandle {
                reactor: 0,
                slot: 0,
                gen: 1,
            },
            client_guid: OTHER_CLIENT_GUID,
            resuming: false,
        };
        handler(&req, &mut ctx)
    }
}

/// The ClientGuid of the env's own session, and of the sessions `run_as` acts as.
pub const CLIENT_GUID: [u8; 16] = [0xC1; 16];
pub const OTHER_CLIENT_GUID: [u8; 16] = [0xC2; 16];

pub fn message(command: u16, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0u8; HEADER_BYTES];
    m[..4].copy_from_slice(&PROTOCOL_ID);
    m[4] = 64;
    m[12..14].copy_from_slice(&command.to_le_bytes());
    m.extend_from_slice(body);
    m
}

/// Fields of a CREATE request.
#[derive(Clone)]
pub struct Create<'a> {
    pub name: &'a str,
    pub access: u32,
    pub share: u32,
    pub disposition: u32,
    pub options: u32,
    pub attributes: u32,
    pub impersonation: u32,
    pub oplock: u8,
    pub contexts: Vec<(&'a [u8], &'a [u8])>,
}

impl<'a> Create<'a> {
    pub fn new(name: &'a str, disposition: u32) -> Create<'a> {
        Create {
            name,
            access: access::GENERIC_READ | access::GENERIC_WRITE,
            share: 7,
            disposition,
            options: 0,
            attributes: 0,
            impersonation: 2,
            oplock: 0,
            contexts: Vec::new(),
        }
    }

    pub fn body(&self) -> Vec<u8> {
        let name = string_to_utf16le(self.name);
        let mut b = Vec::new();
        b.put_u16(57);
        b.put_u8(0);
        b.put_u8(self.oplock);
        b.put_u32(self.impersonation);
        b.put_u64(0);
        b.put_u64(0);
        b.put_u32(self.access);
        b.put_u32(self.attributes);
        b.put_u32(self.share);
        b.put_u32(self.disposition);
        b.put_u32(self.options);
        b.put_u16(120);
        b.put_u16(name.len() as u16);
        let ctx_at = b.len();
        b.put_u32(0);
        b.put_u32(0);
        b.put_bytes(&name);
        if name.is_empty() {
            b.put_u8(0);
        }
        if !self.contexts.is_empty() {
            b.align_to(8);
            let off = HEADER_BYTES + b.len();
            let start = b.len();
            encode_contexts(&self.contexts, &mut b);
            let len = b.len() - start;
            b.set_u32(ctx_at, off as u32);
            b.set_u32(ctx_at + 4, len as u32);
        }
        b
    }
}

/// The body of a successful reply.
pub fn body_of(reply: Reply) -> Vec<u8> {
    match reply {
        Reply::Body { status, body } => {
            assert_eq!(status, NtStatus::SUCCESS);
            body
        }
        other => panic!("unexpected reply {other:?}"),
    }
}

pub fn create_response(reply: Reply) -> (CreateResponse, Vec<u8>) {
    let body = body_of(reply);
    let (resp, ctx) = CreateResponse::decode(&body).expect("create response");
    let ctx = ctx.to_vec();
    (resp, ctx)
}

pub fn close_body(file_id: &[u8; 16], flags: u16) -> Vec<u8> {
    let mut b = Vec::new();
    b.put_u16(24);
    b.put_u16(flags);
    b.put_u32(0);
    b.put_bytes(file_id);
    b
}

pub fn read_body(file_id: &[u8; 16], offset: u64, length: u32) -> Vec<u8> {
    let mut b = Vec::new();
    b.put_u16(49);
    b.put_u8(0x50);
    b.put_u8(0);
    b.put_u32(length);
    b.put_u64(offset);
    b.put_bytes(file_id);
    b.put_u32(0);
    b.put_u32(0);
    b.put_u32(0);
    b.put_u16(0);
    b.put_u16(0);
    b.put_u8(0);
    b
}

pub fn write_body(file_id: &[u8; 16], offset: u64, data: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.put_u16(49);
    b.put_u16(112);
    b.put_u32(data.len() as u32);
    b.put_u64(offset);
    b.put_bytes(file_id);
    b.put_u32(0);
    b.put_u32(0);
    b.put_u32(0);
    b.put_u32(0);
    b.put_bytes(data);
    b
}

pub fn flush_body(file_id: &[u8; 16]) -> Vec<u8> {
    let mut b = Vec::new();
    b.put_u16(24);
    b.put_u16(0);
    b.put_u32(0);
    b.put_bytes(file_id);
    b
}

pub fn lock_body(file_id: &[u8; 16], elements: &[(u64, u64, u32)]) -> Vec<u8> {
    let mut b = Vec::new();
    b.put_u16(48);
    b.put_u16(elements.len() as u16);
    b.put_u32(0);
    b.put_bytes(file_id);
    for (o, l, f) in elements {
        b.put_u64(*o);
        b.put_u64(*l);
        b.put_u32(*f);
        b.put_u32(0);
    }
    b
}
