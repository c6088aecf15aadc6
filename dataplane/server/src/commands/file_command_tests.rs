//! CREATE, CLOSE, READ, WRITE, FLUSH and LOCK against a temporary share.

use smb3d_protocol::messages::create::{action, disposition, options, parse_contexts};
use smb3d_protocol::messages::lock::flags;
use smb3d_protocol::NtStatus;

use super::test_support::*;
use smb3d_protocol::dialect::Dialect;
use smb3d_protocol::header::Header;

use super::{close, create, flush, lock, read, write, Reply, Request};
use crate::storage::file_table::{access, share};
use crate::storage::metadata::attr;

const CREATE: u16 = 5;
const CLOSE: u16 = 6;
const FLUSH: u16 = 7;
const READ: u16 = 8;
const WRITE: u16 = 9;
const LOCK: u16 = 10;

fn open(env: &mut TestEnv, c: &Create) -> Result<[u8; 16], NtStatus> {
    let reply = env.run(create::handle, CREATE, &c.body())?;
    Ok(create_response(reply).0.file_id)
}

fn close_id(env: &mut TestEnv, id: &[u8; 16]) {
    body_of(env.run(close::handle, CLOSE, &close_body(id, 0)).unwrap());
}

#[test]
fn dispositions_and_actions() {
    let mut env = TestEnv::new();
    let (resp, _) = create_response(
        env.run(
            create::handle,
            CREATE,
            &Create::new("a.txt", disposition::CREATE).body(),
        )
        .unwrap(),
    );
    assert_eq!(resp.create_action, action::CREATED);
    assert_eq!(resp.file_attributes, attr::ARCHIVE);
    assert_eq!(env.compound.map(|f| f.encode()), Some(resp.file_id));
    close_id(&mut env, &resp.file_id);
    std::fs::write(env.dir.join("a.txt"), b"0123456789").unwrap();

    let err = open(&mut env, &Create::new("a.txt", disposition::CREATE)).unwrap_err();
    assert_eq!(err, NtStatus::OBJECT_NAME_COLLISION);
    for (disp, act) in [
        (disposition::OPEN, action::OPENED),
        (disposition::OPEN_IF, action::OPENED),
        (disposition::OVERWRITE_IF, action::OVERWRITTEN),
        (disposition::OVERWRITE, action::OVERWRITTEN),
        (disposition::SUPERSEDE, action::SUPERSEDED),
    ] {
        let (resp, _) = create_response(
            env.run(create::handle, CREATE, &Create::new("A.TXT", disp).body())
                .unwrap(),
        );
        assert_eq!(resp.create_action, act, "disposition {disp}");
        close_id(&mut env, &resp.file_id);
    }
    assert_eq!(std::fs::metadata(env.dir.join("a.txt")).unwrap().len(), 0);
    for disp in [disposition::OPEN, disposition::OVERWRITE] {
        assert_eq!(
            open(&mut env, &Create::new("none", disp)).unwrap_err(),
            NtStatus::OBJECT_NAME_NOT_FOUND
        );
    }
    let (resp, _) = create_response(
        env.run(
            create::handle,
            CREATE,
            &Create::new("b", disposition::OPEN_IF).body(),
        )
        .unwrap(),
    );
    assert_eq!(resp.create_action, action::CREATED);
    assert_eq!(
        open(&mut env, &Create::new("nodir\\x", disposition::OPEN_IF)).unwrap_err(),
        NtStatus::OBJECT_PATH_NOT_FOUND
    );
}

#[test]
fn directories() {
    let mut env = TestEnv::new();
    let mut c = Create::new("d", disposition::CREATE);
    c.options = options::DIRECTORY_FILE;
    let (resp, _) = create_response(env.run(create::handle, CREATE, &c.body()).unwrap());
    assert_eq!(resp.file_attributes, attr::DIRECTORY);
    assert!(env.dir.join("d").is_dir());
    close_id(&mut env, &resp.file_id);

    let mut c = Create::new("d", disposition::OPEN);
    c.options = options::NON_DIRECTORY_FILE;
    assert_eq!(
        open(&mut env, &c).unwrap_err(),
        NtStatus::FILE_IS_A_DIRECTORY
    );
    std::fs::write(env.dir.join("f"), b"x").unwrap();
    let mut c = Create::new("f", disposition::OPEN);
    c.options = options::DIRECTORY_FILE;
    assert_eq!(open(&mut env, &c).unwrap_err(), NtStatus::NOT_A_DIRECTORY);
    let mut c = Create::new("d2", disposition::OVERWRITE_IF);
    c.options = options::DIRECTORY_FILE;
    assert_eq!(open(&mut env, &c).unwrap_err(), NtStatus::INVALID_PARAMETER);
    // The share root opens as a directory.
    let mut c = Create::new("", disposition::OPEN);
    c.access = access::FILE_READ_ATTRIBUTES;
    let id = open(&mut env, &c).unwrap();
    assert_eq!(
        env.run(read::handle, READ, &read_body(&id, 0, 1))
            .unwrap_err(),
        NtStatus::INVALID_DEVICE_REQUEST
    );
}

#[test]
fn invalid_requests_like_windows() {
    let mut env = TestEnv::new();
    let base = Create::new("x", disposition::OPEN_IF);
    let cases: Vec<(Create, NtStatus)> = vec![
        (
            Create {
                impersonation: 4,
                ..base.clone()
            },
            NtStatus::BAD_IMPERSONATION_LEVEL,
        ),
        (
            Create {
                options: 0xF000_0000,
                ..base.clone()
            },
            NtStatus::INVALID_PARAMETER,
        ),
        (
            Create {
                options: 0x0010_0000,
                ..base.clone()
            },
            NtStatus::NOT_SUPPORTED,
        ),
        (
            Create {
                options: 0x0000_2000,
                ..base.clone()
            },
            NtStatus::NOT_SUPPORTED,
        ),
        (
            Create {
                options: options::DIRECTORY_FILE | options::NON_DIRECTORY_FILE,
                ..base.clone()
            },
            NtStatus::INVALID_PARAMETER,
        ),
        (
            Create {
                disposition: 6,
                ..base.clone()
            },
            NtStatus::INVALID_PARAMETER,
        ),
        (
            Create {
                attributes: 0x8040,
                ..base.clone()
            },
            NtStatus::INVALID_PARAMETER,
        ),
        (
            Create {
                access: 0x0800_0000,
                ..base.clone()
            },
            NtStatus::ACCESS_DENIED,
        ),
        (
            Create {
                access: 0,
                ..base.clone()
            },
            NtStatus::ACCESS_DENIED,
        ),
        (
            Create {
                access: access::ACCESS_SYSTEM_SECURITY,
                ..base.clone()
            },
            NtStatus::PRIVILEGE_NOT_HELD,
        ),
        (
            Create {
                name: "\\x",
                ..base.clone()
            },
            NtStatus::INVALID_PARAMETER,
        ),
        (
            Create {
                name: "a:b",
                ..base.clone()
            },
            NtStatus::OBJECT_NAME_INVALID,
        ),
        (
            Create {
                contexts: vec![(b"xyz", b"")],
                ..base.clone()
            },
            NtStatus::INVALID_PARAMETER,
        ),
        (
            Create {
                contexts: vec![(b"TWrp", &[0; 8])],
                ..base.clone()
            },
            NtStatus::OBJECT_NAME_NOT_FOUND,
        ),
    ];
    for (c, want) in cases {
        assert_eq!(open(&mut env, &c).unwrap_err(), want, "{:?}", c.name);
    }
    assert!(!env.dir.join("x").exists());
    // Unknown contexts are ignored.
    let c = Create {
        contexts: vec![(b"FooO", b""), (b"DHnQ", &[0; 16])],
        ..base
    };
    assert!(open(&mut env, &c).is_ok());
}

#[test]
fn maximal_access_on_disk_id_and_allocation() {
    let mut env = TestEnv::new();
    let alloc = (1u64 << 20).to_le_bytes();
    let mut c = Create::new("m", disposition::CREATE);
    c.access = access::MAXIMUM_ALLOWED;
    c.contexts = vec![(b"MxAc", b""), (b"QFid", b""), (b"AlSi", &alloc)];
    let (resp, ctx) = create_response(env.run(create::handle, CREATE, &c.body()).unwrap());
    let ctx = parse_contexts(&ctx).unwrap();
    let mx = ctx.iter().find(|c| c.name == b"MxAc").unwrap().data;
    assert_eq!(mx, [0, 0, 0, 0, 0xFF, 0x01, 0x1F, 0x00]);
    let qf = ctx.iter().find(|c| c.name == b"QFid").unwrap().data;
    let ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(env.dir.join("m")).unwrap());
    assert_eq!(&qf[..8], &ino.to_le_bytes());
    assert!(resp.allocation_size >= 1 << 20);
    assert_eq!(resp.end_of_file, 0);
    close_id(&mut env, &resp.file_id);

    // Overwriting an existing file applies the requested allocation to the new contents.
    std::fs::write(env.dir.join("m"), b"old").unwrap();
    let mut o = Create::new("m", disposition::OVERWRITE_IF);
    o.contexts = vec![(b"AlSi", &alloc)];
    let (resp, _) = create_response(env.run(create::handle, CREATE, &o.body()).unwrap());
    assert_eq!(resp.create_action, action::OVERWRITTEN);
    assert!(resp.allocation_size >= 1 << 20);
    assert_eq!(resp.end_of_file, 0);
}

#[test]
fn share_modes_conflict_across_sessions() {
    let mut env = TestEnv::new();
    let (other, _) = env.other_session(2);
    let mut c = Create::new("s", disposition::CREATE);
    c.access = access::GENERIC_READ;
    c.share = share::READ;
    open(&mut env, &c).unwrap();
    let mut w = Create::new("s", disposition::OPEN);
    w.access = access::GENERIC_WRITE;
    let err = env
        .run_as(&other, create::handle, CREATE, &w.body())
        .unwrap_err();
    assert_eq!(err, NtStatus::SHARING_VIOLATION);
    let mut r = Create::new("s", disposition::OPEN);
    r.access = access::GENERIC_READ;
    r.share = share::ALL;
    assert!(env
        .run_as(&other, create::handle, CREATE, &r.body())
        .is_ok());
    // Attribute-only opens never conflict.
    let mut a = Create::new("s", disposition::OPEN);
    a.access = access::FILE_READ_ATTRIBUTES;
    a.share = 0;
    assert!(env
        .run_as(&other, create::handle, CREATE, &a.body())
        .is_ok());
}

#[test]
fn delete_on_close() {
    let mut env = TestEnv::new();
    let mut c = Create::new("doc", disposition::CREATE);
    c.options = options::DELETE_ON_CLOSE;
    assert_eq!(open(&mut env, &c).unwrap_err(), NtStatus::INVALID_PARAMETER);
    c.access = access::GENERIC_ALL;
    let id = open(&mut env, &c).unwrap();
    assert!(env.dir.join("doc").exists());
    close_id(&mut env, &id);
    assert!(!env.dir.join("doc").exists());

    // A read-only file cannot be deleted.
    let mut c = Create::new("ro", disposition::CREATE);
    c.attributes = attr::READONLY;
    let id = open(&mut env, &c).unwrap();
    close_id(&mut env, &id);
    let mut d = Create::new("ro", disposition::OPEN);
    d.access = access::DELETE;
    d.options = options::DELETE_ON_CLOSE;
    assert_eq!(open(&mut env, &d).unwrap_err(), NtStatus::CANNOT_DELETE);
}

#[test]
fn delete_pending_blocks_opens_and_deletes_on_last_close() {
    let mut env = TestEnv::new();
    let mut c = Create::new("p", disposition::CREATE);
    c.access = access::GENERIC_ALL;
    let id1 = open(&mut env, &c).unwrap();
    let mut o = Create::new("p", disposition::OPEN);
    o.access = access::GENERIC_READ;
    let id2 = open(&mut env, &o).unwrap();
    let h1 = env.ctx().open(crate::open::FileId::decode(&id1)).unwrap();
    env.server.files.set_delete_pending(&h1, true).unwrap();
    assert!(env.server.files.is_delete_pending(&h1));
    assert_eq!(open(&mut env, &o).unwrap_err(), NtStatus::DELETE_PENDING);
    close_id(&mut env, &id1);
    assert!(env.dir.join("p").exists());
    close_id(&mut env, &id2);
    assert!(!env.dir.join("p").exists());

    // A directory with entries is not deletable.
    std::fs::create_dir(env.dir.join("full")).unwrap();
    std::fs::write(env.dir.join("full/x"), b"").unwrap();
    let mut d = Create::new("full", disposition::OPEN);
    d.access = access::DELETE | access::FILE_READ_ATTRIBUTES;
    let id = open(&mut env, &d).unwrap();
    let h = env.ctx().open(crate::open::FileId::decode(&id)).unwrap();
    assert_eq!(
        env.server.files.set_delete_pending(&h, true),
        Err(NtStatus::DIRECTORY_NOT_EMPTY)
    );
}

#[test]
fn read_only_share() {
    let mut env = TestEnv::with_share(true);
    std::fs::write(env.dir.join("r"), b"data").unwrap();
    assert_eq!(
        open(&mut env, &Create::new("new", disposition::CREATE)).unwrap_err(),
        NtStatus::ACCESS_DENIED
    );
    assert_eq!(
        open(&mut env, &Create::new("r", disposition::OPEN)).unwrap_err(),
        NtStatus::ACCESS_DENIED
    );
    let mut c = Create::new("r", disposition::OPEN);
    c.access = access::MAXIMUM_ALLOWED;
    let id = open(&mut env, &c).unwrap();
    assert_eq!(
        env.run(write::handle, WRITE, &write_body(&id, 0, b"x"))
            .unwrap_err(),
        NtStatus::ACCESS_DENIED
    );
    assert!(matches!(
        env.run(read::handle, READ, &read_body(&id, 0, 4)).unwrap(),
        Reply::ReadFile { length: 4, .. }
    ));
}

#[test]
fn write_read_flush_close() {
    let mut env = TestEnv::new();
    let id = open(&mut env, &Create::new("io", disposition::CREATE)).unwrap();
    let body = write_body(&id, 3, b"hello");
    let msg = message(WRITE, &body);
    match env.run(write::handle, WRITE, &body).unwrap() {
        Reply::WriteFile { open, offset, data } => {
            assert_eq!(offset, 3);
            assert_eq!(&msg[data.clone()], b"hello");
            assert_eq!(
                crate::storage::write_at(&open, offset, &msg[data]).unwrap(),
                5
            );
        }
        other => panic!("{other:?}"),
    }
    match env
        .run(read::handle, READ, &read_body(&id, 0, 100))
        .unwrap()
    {
        Reply::ReadFile {
            open,
            offset,
            length,
            ..
        } => {
            let mut buf = vec![0u8; length as usize];
            let n = crate::storage::read_at(&open, offset, &mut buf).unwrap();
            assert_eq!(&buf[..n], b"\0\0\0hello");
            // The position follows reads (not writes): the end of the bytes read.
            assert_eq!(open.position.load(std::sync::atomic::Ordering::Relaxed), 8);
            assert_eq!(crate::storage::read_at(&open, 2, &mut buf[..4]).unwrap(), 4);
            assert_eq!(open.position.load(std::sync::atomic::Ordering::Relaxed), 6);
            assert_eq!(crate::storage::read_at(&open, 100, &mut buf).unwrap(), 0);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        env.run(read::handle, READ, &read_body(&id, u64::MAX - 1, 10))
            .unwrap_err(),
        NtStatus::INVALID_PARAMETER
    );
    body_of(env.run(flush::handle, FLUSH, &flush_body(&id)).unwrap());
    let reply = env.run(close::handle, CLOSE, &close_body(&id, 1)).unwrap();
    let body = body_of(reply);
    assert_eq!(&body[48..56], &8u64.to_le_bytes());
    assert_eq!(
        env.run(read::handle, READ, &read_body(&id, 0, 1))
            .unwrap_err(),
        NtStatus::FILE_CLOSED
    );

    // Read-only opens can neither write nor flush.
    let mut c = Create::new("io", disposition::OPEN);
    c.access = access::GENERIC_READ;
    let ro = open(&mut env, &c).unwrap();
    assert_eq!(
        env.run(flush::handle, FLUSH, &flush_body(&ro)).unwrap_err(),
        NtStatus::ACCESS_DENIED
    );
    assert_eq!(
        env.run(write::handle, WRITE, &write_body(&ro, 0, b"x"))
            .unwrap_err(),
        NtStatus::ACCESS_DENIED
    );
    // Related compound: the all-ones FileId is the previous CREATE's.
    let related = crate::open::FileId::RELATED.encode();
    assert!(env
        .run(read::handle, READ, &read_body(&related, 0, 1))
        .is_ok());
}

#[test]
fn byte_range_locks() {
    let mut env = TestEnv::new();
    let (other, _) = env.other_session(2);
    let a = open(&mut env, &Create::new("l", disposition::CREATE)).unwrap();
    let reply = env
        .run_as(
            &other,
            create::handle,
            CREATE,
            &Create::new("l", disposition::OPEN).body(),
        )
        .unwrap();
    let b = create_response(reply).0.file_id;
    let ex = flags::EXCLUSIVE_LOCK | flags::FAIL_IMMEDIATELY;
    let sh = flags::SHARED_LOCK | flags::FAIL_IMMEDIATELY;

    body_of(
        env.run(lock::handle, LOCK, &lock_body(&a, &[(10, 10, ex)]))
            .unwrap(),
    );
    let lock_b = |env: &TestEnv, el: &[(u64, u64, u32)]| {
        env.run_as(&other, lock::handle, LOCK, &lock_body(&b, el))
    };
    assert_eq!(
        lock_b(&env, &[(15, 1, ex)]).unwrap_err(),
        NtStatus::LOCK_NOT_GRANTED
    );
    assert_eq!(
        lock_b(&env, &[(0, 11, sh)]).unwrap_err(),
        NtStatus::LOCK_NOT_GRANTED
    );
    assert!(matches!(
        lock_b(&env, &[(15, 1, flags::EXCLUSIVE_LOCK)]).unwrap(),
        Reply::WouldBlock
    ));
    // I/O: the owner may read and write its exclusive range, others may not.
    assert_eq!(
        env.run_as(&other, read::handle, READ, &read_body(&b, 12, 1))
            .unwrap_err(),
        NtStatus::FILE_LOCK_CONFLICT
    );
    assert!(env.run(read::handle, READ, &read_body(&a, 12, 1)).is_ok());
    // MS-FSA 2.1.5.3: zero-byte reads skip the lock check.
    assert!(env
        .run_as(&other, read::handle, READ, &read_body(&b, 12, 0))
        .is_ok());
    assert!(env
        .run(write::handle, WRITE, &write_body(&a, 12, b"x"))
        .is_ok());
    // Adjacent and zero-length-at-start ranges do not conflict.
    body_of(lock_b(&env, &[(20, 5, ex), (0, 0, ex)]).unwrap());

    let h = env.ctx().open(crate::open::FileId::decode(&a)).unwrap();
    let generation = env.server.files.lock_generation(&h);
    body_of(
        env.run(
            lock::handle,
            LOCK,
            &lock_body(&a, &[(10, 10, flags::UNLOCK)]),
        )
        .unwrap(),
    );
    assert_ne!(env.server.files.lock_generation(&h), generation);
    assert_eq!(
        env.run(
            lock::handle,
            LOCK,
            &lock_body(&a, &[(10, 10, flags::UNLOCK)])
        )
        .unwrap_err(),
        NtStatus::RANGE_NOT_LOCKED
    );
    body_of(lock_b(&env, &[(15, 1, ex)]).unwrap());

    // Shared locks: others may share, nobody writes, and a failed element rolls back the rest.
    body_of(
        env.run(lock::handle, LOCK, &lock_body(&a, &[(100, 10, sh)]))
            .unwrap(),
    );
    body_of(lock_b(&env, &[(105, 10, sh)]).unwrap());
    assert_eq!(
        env.run(write::handle, WRITE, &write_body(&a, 101, b"x"))
            .unwrap_err(),
        NtStatus::FILE_LOCK_CONFLICT
    );
    assert_eq!(
        lock_b(&env, &[(200, 1, ex), (100, 1, ex)]).unwrap_err(),
        NtStatus::LOCK_NOT_GRANTED
    );
    body_of(
        env.run(lock::handle, LOCK, &lock_body(&a, &[(200, 1, ex)]))
            .unwrap(),
    );

    // Malformed requests.
    assert_eq!(
        env.run(lock::handle, LOCK, &lock_body(&a, &[(u64::MAX, 2, ex)]))
            .unwrap_err(),
        NtStatus::INVALID_LOCK_RANGE
    );
    assert_eq!(
        env.run(
            lock::handle,
            LOCK,
            &lock_body(&a, &[(300, 1, ex), (301, 1, flags::EXCLUSIVE_LOCK)])
        )
        .unwrap_err(),
        NtStatus::INVALID_PARAMETER
    );
    assert_eq!(
        env.run(
            lock::handle,
            LOCK,
            &lock_body(&a, &[(200, 1, flags::UNLOCK), (300, 1, ex)])
        )
        .unwrap_err(),
        NtStatus::INVALID_PARAMETER
    );
    assert_eq!(
        env.run(
            lock::handle,
            LOCK,
            &lock_body(&a, &[(300, 1, ex | flags::SHARED_LOCK)])
        )
        .unwrap_err(),
        NtStatus::INVALID_PARAMETER
    );

    // Closing drops the open's locks.
    close_id(&mut env, &a);
    body_of(lock_b(&env, &[(200, 1, ex)]).unwrap());
}

#[test]
fn lock_stacking_on_one_handle() {
    let mut env = TestEnv::new();
    let a = open(&mut env, &Create::new("s", disposition::CREATE)).unwrap();
    let ex = flags::EXCLUSIVE_LOCK | flags::FAIL_IMMEDIATELY;
    let mut lock = |el: &[(u64, u64, u32)]| env.run(lock::handle, LOCK, &lock_body(&a, el));
    // Exclusive, then a blocking and an immediate shared lock on top: all granted at once.
    body_of(lock(&[(0, 10, ex)]).unwrap());
    body_of(lock(&[(0, 10, flags::SHARED_LOCK)]).unwrap());
    body_of(lock(&[(0, 10, flags::SHARED_LOCK | flags::FAIL_IMMEDIATELY)]).unwrap());
    // A second exclusive lock does not stack.
    assert_eq!(
        lock(&[(0, 10, ex)]).unwrap_err(),
        NtStatus::LOCK_NOT_GRANTED
    );
    // Three unlocks release the three locks, the exclusive one first; the fourth fails.
    for _ in 0..3 {
        body_of(lock(&[(0, 10, flags::UNLOCK)]).unwrap());
    }
    assert_eq!(
        lock(&[(0, 10, flags::UNLOCK)]).unwrap_err(),
        NtStatus::RANGE_NOT_LOCKED
    );
}

#[test]
fn write_size_limits() {
    let mut env = TestEnv::new();
    let id = open(&mut env, &Create::new("big", disposition::CREATE)).unwrap();
    let max = write::MAX_FILE_SIZE_BYTES;
    let mut write_at =
        |offset: u64, data: &[u8]| env.run(write::handle, WRITE, &write_body(&id, offset, data));
    // Past the largest file size: INVALID_PARAMETER; empty writes up to i64::MAX are fine.
    assert_eq!(
        write_at(max, b"x").unwrap_err(),
        NtStatus::INVALID_PARAMETER
    );
    assert!(write_at(max, b"").is_ok());
    assert!(write_at(i64::MAX as u64, b"").is_ok());
    assert_eq!(
        write_at(i64::MAX as u64 + 1, b"").unwrap_err(),
        NtStatus::INVALID_PARAMETER
    );
    // Ending beyond the volume (the test directory's is far below 16 TiB): DISK_FULL.
    assert_eq!(write_at(max - 1, b"x").unwrap_err(), NtStatus::DISK_FULL);
    assert!(write_at(4096, b"x").is_ok());
}

#[test]
fn parked_lock_ends_when_its_handle_closes() {
    let mut env = TestEnv::new();
    let a = open(&mut env, &Create::new("c", disposition::CREATE)).unwrap();
    let b = open(&mut env, &Create::new("c", disposition::OPEN)).unwrap();
    body_of(
        env.run(
            lock::handle,
            LOCK,
            &lock_body(&a, &[(100, 10, flags::EXCLUSIVE_LOCK)]),
        )
        .unwrap(),
    );
    let blocked = lock_body(&b, &[(100, 10, flags::EXCLUSIVE_LOCK)]);
    assert!(matches!(
        env.run(lock::handle, LOCK, &blocked).unwrap(),
        Reply::WouldBlock
    ));
    // Still blocked on retry; an unlock attempt by the waiting handle finds nothing to unlock.
    assert!(matches!(
        env.run(lock::retry, LOCK, &blocked).unwrap(),
        Reply::WouldBlock
    ));
    assert_eq!(
        env.run(
            lock::handle,
            LOCK,
            &lock_body(&b, &[(100, 10, flags::UNLOCK)])
        )
        .unwrap_err(),
        NtStatus::RANGE_NOT_LOCKED
    );
    close_id(&mut env, &b);
    assert_eq!(
        env.run(lock::retry, LOCK, &blocked).unwrap_err(),
        lock::ABANDONED_STATUS
    );
    // A fresh request on the closed handle is still FILE_CLOSED.
    assert_eq!(
        env.run(lock::handle, LOCK, &blocked).unwrap_err(),
        NtStatus::FILE_CLOSED
    );
}

#[test]
fn racing_open_if_creates_open_the_winner() {
    let env = TestEnv::new();
    let sessions = [env.other_session(2).0, env.other_session(3).0];
    for round in 0..50 {
        let name = format!("race{round}");
        let mut c = Create::new(&name, disposition::OPEN_IF);
        c.options = options::DIRECTORY_FILE;
        c.share = share::ALL;
        let body = c.body();
        let actions: Vec<u32> = std::thread::scope(|s| {
            let runs: Vec<_> = sessions
                .iter()
                .map(|session| {
                    let (env, body) = (&env, &body);
                    s.spawn(move || env.run_as(session, create::handle, CREATE, body))
                })
                .collect();
            runs.into_iter()
                .map(|t| create_response(t.join().unwrap().unwrap()).0.create_action)
                .collect()
        });
        let mut sorted = actions.clone();
        sorted.sort();
        assert_eq!(sorted, [action::OPENED, action::CREATED], "{actions:?}");
    }
}

#[test]
fn read_length_limited_by_dialect() {
    let mut env = TestEnv::new();
    let id = open(&mut env, &Create::new("small", disposition::CREATE)).unwrap();
    let run_202 = |env: &mut TestEnv, length: u32| {
        let msg = message(READ, &read_body(&id, 0, length));
        let header = Header::decode(&msg).unwrap();
        let req = Request {
            header: &header,
            msg: &msg,
        };
        let mut ctx = env.ctx();
        ctx.dialect = Dialect::Smb202;
        read::handle(&req, &mut ctx).map(|_| ())
    };
    // 2.0.2 advertises MaxReadSize 64 KiB and has no multi-credit charge: one credit must not
    // buy an 8 MiB response buffer (MS-SMB2 3.3.5.12).
    assert!(run_202(&mut env, 65536).is_ok());
    assert_eq!(
        run_202(&mut env, 65537).unwrap_err(),
        NtStatus::INVALID_PARAMETER
    );
    assert!(env
        .run(read::handle, READ, &read_body(&id, 0, 8 << 20))
        .is_ok());
    assert_eq!(
        env.run(read::handle, READ, &read_body(&id, 0, (8 << 20) + 1))
            .unwrap_err(),
        NtStatus::INVALID_PARAMETER
    );
}

#[test]
fn locks_per_file_are_bounded() {
    use crate::storage::file_table::MAX_LOCKS_PER_FILE;
    let mut env = TestEnv::new();
    let id = open(&mut env, &Create::new("many-locks", disposition::CREATE)).unwrap();
    let sh = flags::SHARED_LOCK | flags::FAIL_IMMEDIATELY;
    // Shared locks on one range stack; 1024 per request, the most a LOCK may carry.
    let elements = vec![(0u64, 1u64, sh); 1024];
    for _ in 0..MAX_LOCKS_PER_FILE / 1024 {
        body_of(
            env.run(lock::handle, LOCK, &lock_body(&id, &elements))
                .unwrap(),
        );
    }
    assert_eq!(
        env.run(lock::handle, LOCK, &lock_body(&id, &[(0, 1, sh)]))
            .unwrap_err(),
        NtStatus::INSUFFICIENT_RESOURCES
    );
    // Releasing one makes room for one.
    body_of(
        env.run(
            lock::handle,
            LOCK,
            &lock_body(&id, &[(0, 1, flags::UNLOCK)]),
        )
        .unwrap(),
    );
    body_of(
        env.run(lock::handle, LOCK, &lock_body(&id, &[(0, 1, sh)]))
            .unwrap(),
    );
}

/// Run `handler` on `msg` as the env's session (a message whose header the test shaped).
fn run_msg(
    env: &mut TestEnv,
    handler: fn(&Request, &mut super::TreeCtx) -> Result<Reply, NtStatus>,
    msg: &[u8],
) -> Result<Reply, NtStatus> {
    let header = Header::decode(msg).unwrap();
    let req = Request {
        header: &header,
        msg,
    };
    handler(&req, &mut env.ctx())
}

#[test]
fn stale_channel_sequence_is_refused_on_writes() {
    let mut env = TestEnv::new();
    let id = open(&mut env, &Create::new("csn", disposition::CREATE)).unwrap();
    let write_with = |env: &mut TestEnv, sequence: u16| {
        let mut msg = message(WRITE, &write_body(&id, 0, b"x"));
        msg[8..10].copy_from_slice(&sequence.to_le_bytes());
        run_msg(env, write::handle, &msg).map(|_| ())
    };
    assert_eq!(write_with(&mut env, 5), Ok(()));
    // An older channel sequence number: the client has given that channel up.
    assert_eq!(write_with(&mut env, 4), Err(NtStatus::FILE_NOT_AVAILABLE));
    assert_eq!(write_with(&mut env, 5), Ok(()));
    // Newer ones are taken, across the 16-bit wrap.
    assert_eq!(write_with(&mut env, 0x8004), Ok(()));
    assert_eq!(write_with(&mut env, 5), Err(NtStatus::FILE_NOT_AVAILABLE));
    assert_eq!(
        write_with(&mut env, 3),
        Ok(()),
        "3 is after 0x8004 in 16-bit order"
    );
}

#[test]
fn replayed_lock_with_its_sequence_number_is_applied_once() {
    let mut env = TestEnv::new();
    let (other, _) = env.other_session(2);
    let a = open(&mut env, &Create::new("lsn", disposition::CREATE)).unwrap();
    let reply = env
        .run_as(
            &other,
            create::handle,
            CREATE,
            &Create::new("lsn", disposition::OPEN).body(),
        )
        .unwrap();
    let b = create_response(reply).0.file_id;
    let ex = flags::EXCLUSIVE_LOCK | flags::FAIL_IMMEDIATELY;
    let lock_with = |env: &mut TestEnv, sequence: u32, elements: &[(u64, u64, u32)]| {
        let mut body = lock_body(&a, elements);
        body[4..8].copy_from_slice(&sequence.to_le_bytes());
        run_msg(env, lock::handle, &message(LOCK, &body)).map(|_| ())
    };
    // LockSequenceIndex 1, number 3 (MS-SMB2 2.2.26).
    let index1_seq3 = (1 << 4) | 3;
    assert_eq!(lock_with(&mut env, index1_seq3, &[(0, 10, ex)]), Ok(()));
    // The replay succeeds without locking the range a second time ...
    assert_eq!(lock_with(&mut env, index1_seq3, &[(0, 10, ex)]), Ok(()));
    // ... which a lock without replay detection (index 0) would have conflicted with.
    assert_eq!(
        lock_with(&mut env, 0, &[(0, 10, ex)]),
        Err(NtStatus::LOCK_NOT_GRANTED)
    );
    // One unlock releases it: the range was locked once.
    assert_eq!(lock_with(&mut env, 0, &[(0, 10, flags::UNLOCK)]), Ok(()));
    let other_lock = env.run_as(&other, lock::handle, LOCK, &lock_body(&b, &[(0, 10, ex)]));
    assert!(other_lock.is_ok(), "the range is free after one unlock");
}

/// A CREATE asking for lease `state` under `key` (RqLs v2).
fn lease_create<'a>(name: &'a str, data: &'a [u8]) -> Create<'a> {
    let mut c = Create::new(name, disposition::OPEN_IF);
    c.oplock = smb3d_protocol::messages::oplock_break::level::LEASE;
    c.contexts = vec![(b"RqLs", data)];
    c
}

fn lease_data(key: u8, state: u32) -> Vec<u8> {
    let mut data = Vec::new();
    smb3d_protocol::messages::lease::LeaseContext {
        key: [key; 16],
        state,
        flags: 0,
        version: 2,
        parent_key: [0; 16],
        epoch: 4,
    }
    .encode(&mut data);
    data
}

#[test]
fn create_answers_lease_requests() {
    use smb3d_protocol::messages::lease::{state, LeaseBreakAck, LeaseContext};
    use smb3d_protocol::messages::oplock_break::level;
    let mut env = TestEnv::new();
    let rwh = lease_data(1, state::ALL);
    let (resp, ctx) = create_response(
        env.run(create::handle, CREATE, &lease_create("l.txt", &rwh).body())
            .unwrap(),
    );
    assert_eq!(resp.oplock_level, level::LEASE);
    let contexts = parse_contexts(&ctx).unwrap();
    let rqls = contexts.iter().find(|c| c.name == b"RqLs").unwrap();
    let grant = LeaseContext::decode(rqls.data, true).unwrap();
    assert_eq!(
        (grant.key, grant.state, grant.epoch),
        ([1; 16], state::ALL, 5)
    );

    // The same key on another file is refused.
    let err = open(&mut env, &lease_create("other.txt", &rwh)).unwrap_err();
    assert_eq!(err, NtStatus::INVALID_PARAMETER);

    // Directories get no lease (directory leasing is not offered).
    std::fs::create_dir(env.dir.join("d")).unwrap();
    let dir_lease = lease_data(2, state::READ | state::HANDLE);
    let (resp, ctx) = create_response(
        env.run(
            create::handle,
            CREATE,
            &lease_create("d", &dir_lease).body(),
        )
        .unwrap(),
    );
    assert_eq!(resp.oplock_level, level::NONE);
    assert!(parse_contexts(&ctx).unwrap().is_empty());

    // An acknowledgment with no break in flight.
    let mut ack = Vec::new();
    LeaseBreakAck {
        key: [1; 16],
        state: state::READ,
    }
    .encode(&mut ack);
    let err = env.run(super::oplock_break::handle, 18, &ack).unwrap_err();
    assert_eq!(err, NtStatus::UNSUCCESSFUL);
}

/// How many opens the file table holds for `name` in the env's share.
fn table_opens(env: &TestEnv, name: &str) -> usize {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(env.dir.join(name)).unwrap();
    env.server
        .files
        .open_count(crate::storage::file_table::FileKey {
            device: meta.dev(),
            inode: meta.ino(),
        })
}

#[test]
fn create_racing_a_logoff_leaves_no_open_behind() {
    let mut env = TestEnv::new();
    // A LOGOFF on another channel drained the session's opens while this CREATE ran.
    env.session.mark_logged_off();
    assert!(super::logoff::logoff(&env.session, &env.server).is_empty());
    let mut c = Create::new("raced", disposition::CREATE);
    c.share = 0;
    let err = env.run(create::handle, CREATE, &c.body()).unwrap_err();
    assert_eq!(err, NtStatus::USER_SESSION_DELETED);
    assert_eq!(env.session.opens.len(), 0);
    // Nothing of it stays in the file table: another session opens the file freely.
    assert_eq!(table_opens(&env, "raced"), 0);
    let (other, _) = env.other_session(2);
    let mut o = Create::new("raced", disposition::OPEN);
    o.share = 0;
    env.run_as(&other, create::handle, CREATE, &o.body())
        .expect("no stale open of the file");
}

#[test]
fn create_racing_a_tree_disconnect_leaves_no_open_behind() {
    let mut env = TestEnv::new();
    super::tree_connect::disconnect(&env.session, env.tree.id, &env.server).unwrap();
    let err = open(&mut env, &Create::new("gone-tree", disposition::CREATE)).unwrap_err();
    assert_eq!(err, NtStatus::NETWORK_NAME_DELETED);
    assert_eq!(env.session.opens.len(), 0);
    assert_eq!(table_opens(&env, "gone-tree"), 0);
}

#[test]
fn logoff_takes_an_open_of_a_vanished_tree_out_of_the_file_table() {
    let mut env = TestEnv::new();
    open(&mut env, &Create::new("orphan", disposition::CREATE)).unwrap();
    assert_eq!(table_opens(&env, "orphan"), 1);
    // Its tree went without closing it (as a CREATE racing a TREE_DISCONNECT once could).
    env.session.trees.lock().unwrap().clear();
    env.session.mark_logged_off();
    assert!(super::logoff::logoff(&env.session, &env.server).is_empty());
    assert_eq!(table_opens(&env, "orphan"), 0);
}

#[test]
fn an_open_dropped_without_close_leaves_no_share_mode_behind() {
    let mut env = TestEnv::new();
    let mut c = Create::new("dropped", disposition::CREATE);
    c.share = 0;
    let id = open(&mut env, &c).unwrap();
    let open = env
        .session
        .opens
        .remove(crate::open::FileId::decode(&id))
        .unwrap();
    drop(open);
    assert_eq!(table_opens(&env, "dropped"), 0);
    let (other, _) = env.other_session(2);
    let mut o = Create::new("dropped", disposition::OPEN);
    o.share = 0;
    env.run_as(&other, create::handle, CREATE, &o.body())
        .expect("no phantom open of the file");
}
