//! A server, share, session and tree over a temporary directory, for the QUERY_DIRECTORY,
//! QUERY_INFO and SET_INFO handler tests.

use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use smb3d_protocol::dialect::Dialect;
use smb3d_protocol::header::{Header, HEADER_BYTES};
use smb3d_protocol::NtStatus;

use super::{Reply, Request, TreeCtx};
use crate::open::{FileId, Open, OpenState};
use crate::server::{ServerConfig, ServerState};
use crate::session::{Identity, Session};
use crate::share::{Requirement, Share, ShareKind};
use crate::storage::file_table::{access, share, FileKey};
use crate::storage::metadata::stat_fd;
use crate::storage::path::{open_beneath, SharePath};
use crate::storage::test_dir::{temp_root, TempDir};
use crate::tree::Tree;

pub struct Fixture {
    pub dir: TempDir,
    pub server: ServerState,
    pub session: Arc<Session>,
    pub tree: Arc<Tree>,
}

impl Fixture {
    pub fn new() -> Fixture {
        let (dir, root) = temp_root();
        let share = Arc::new(Share {
            name: "test".into(),
            kind: ShareKind::Disk,
            path: PathBuf::from(&*dir),
            root: Some(root),
            read_only: false,
            encrypt: Requirement::Off,
        });
        let server = ServerState::new(
            ServerConfig::default(),
            vec![share.clone()],
            std::sync::Arc::new(crate::server::NoUsers),
            [0; 16],
        );
        let session = Arc::new(Session::new(
            1,
            Identity::User {
                user: "u".into(),
                domain: "d".into(),
            },
        ));
        let tree = Arc::new(Tree {
            id: 7,
            share,
            maximal_access: access::FILE_ALL_ACCESS,
            encrypt: false,
        });
        Fixture {
            dir,
            server,
            session,
            tree,
        }
    }

    pub fn host(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    pub fn write_file(&self, rel: &str, data: &[u8]) {
        std::fs::write(self.host(rel), data).unwrap();
    }

    /// Open `rel` ('\\'-separated, "" for the root) as CREATE would, with `access`.
    pub fn open(&self, rel: &str, access_mask: u32) -> Arc<Open> {
        let path = SharePath::parse(rel).unwrap();
        let root = self.tree.share.root.as_ref().unwrap();
        let probe = open_beneath(root.as_fd(), &path, libc::O_PATH, 0).unwrap();
        let is_directory = stat_fd(probe.as_fd()).unwrap().is_directory;
        let flags = if is_directory {
            libc::O_RDONLY | libc::O_DIRECTORY
        } else if access_mask & (access::FILE_WRITE_DATA | access::FILE_APPEND_DATA) != 0 {
            libc::O_RDWR
        } else {
            libc::O_RDONLY
        };
        let fd = open_beneath(root.as_fd(), &path, flags, 0).unwrap();
        let meta = stat_fd(fd.as_fd()).unwrap();
        let key = FileKey {
            device: meta.device,
            inode: meta.file_index,
        };
        let reg = self
            .server
            .files
            .register(
                key,
                access_mask,
                share::ALL,
                &crate::storage::file_table::OplockRequest::none(),
                &mut Vec::new(),
            )
            .unwrap();
        let open = Arc::new(Open {
            file_id: self.server.file_ids.allocate(),
            tree_id: std::sync::atomic::AtomicU32::new(self.tree.id),
            fd,
            path: Mutex::new(path.as_str().to_string()),
            is_directory,
            access_mask,
            share_access: share::ALL,
            create_options: 0,
            position: std::sync::atomic::AtomicU64::new(0),
            state: Mutex::new(OpenState::default()),
            file: reg.file,
            open_key: reg.open_key,
            durable: None,
            replay: None,
            replay_eligible: std::sync::atomic::AtomicBool::new(false),
        });
        self.session.opens.insert(open.clone());
        open
    }

    /// CLOSE without the protocol: drop the open and run delete-on-close.
    pub fn close(&self, open: &Arc<Open>) {
        self.session.opens.remove(open.file_id);
        let root = self.tree.share.root.as_ref().unwrap();
        self.server.files.unregister(open, root.as_fd()).unwrap();
    }

    /// Run `handler` on a request whose body is `body`.
    pub fn call(
        &self,
        handler: fn(&Request, &mut TreeCtx) -> Result<Reply, NtStatus>,
        body: &[u8],
    ) -> Result<(NtStatus, Vec<u8>), NtStatus> {
        let header = Header::default();
        let mut msg = vec![0u8; HEADER_BYTES];
        msg.extend_from_slice(body);
        let req = Request {
            header: &header,
            msg: &msg,
        };
        let mut related: Option<FileId> = None;
        let mut ctx = TreeCtx {
            server: &self.server,
            session: &self.session,
            tree: &self.tree,
            dialect: Dialect::Smb311,
            compound_file_id: &mut related,
            conn: crate::mailbox::ConnHandle {
                reactor: 0,
                slot: 0,
                gen: 1,
            },
            client_guid: [0; 16],
            resuming: false,
        };
        match handler(&req, &mut ctx)? {
            Reply::Body { status, body } => Ok((status, body)),
            other => panic!("unexpected reply {other:?}"),
        }
    }
}
