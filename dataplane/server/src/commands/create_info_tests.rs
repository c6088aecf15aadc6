//! CREATE behaviour the information classes depend on: EAs given in an ExtA context and opens
//! that ask for SYNCHRONIZE alone.

use std::os::fd::AsFd;

use smb3d_protocol::info::ea::{encode_list, FullEa};
use smb3d_protocol::messages::create::{action, context_name, disposition};
use smb3d_protocol::NtStatus;

use super::create;
use super::test_support::*;
use crate::open::FileId;
use crate::storage::ea;
use crate::storage::file_table::access;

const CREATE: u16 = 5;

fn full_ea(name: &str, value: &str) -> FullEa {
    FullEa {
        flags: 0,
        name: name.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
    }
}

fn ext_a(eas: &[FullEa]) -> Vec<u8> {
    let mut b = Vec::new();
    encode_list(eas, &mut b);
    b
}

#[test]
fn ext_a_context_stores_eas_on_new_files_only() {
    let mut env = TestEnv::new();
    let list = ext_a(&[full_ea("EAONE", "VALUE1"), full_ea("SecondEa", "ValueTwo")]);
    let mut c = Create::new("f.txt", disposition::CREATE);
    c.contexts.push((context_name::EXTA, &list));
    let (resp, _) = create_response(env.run(create::handle, CREATE, &c.body()).unwrap());
    assert_eq!(resp.create_action, action::CREATED);
    let open = env
        .session
        .opens
        .get(FileId::decode(&resp.file_id))
        .unwrap();
    let stored = match ea::list(open.fd.as_fd()) {
        Err(ea::EAS_NOT_SUPPORTED) => return, // temp dir without user xattrs
        r => r.unwrap(),
    };
    assert_eq!(
        stored,
        vec![full_ea("EAONE", "VALUE1"), full_ea("SECONDEA", "ValueTwo")]
    );

    // Opening the existing file leaves its EAs alone; overwriting gives it the new ones.
    let other = ext_a(&[full_ea("THIRD", "3")]);
    let mut c = Create::new("f.txt", disposition::OPEN);
    c.contexts.push((context_name::EXTA, &other));
    env.run(create::handle, CREATE, &c.body()).unwrap();
    assert_eq!(ea::list(open.fd.as_fd()).unwrap().len(), 2);
    c.disposition = disposition::OVERWRITE_IF;
    env.run(create::handle, CREATE, &c.body()).unwrap();
    assert!(ea::get(open.fd.as_fd(), b"third").unwrap().is_some());

    // Directories take EAs too.
    let mut c = Create::new("d", disposition::CREATE);
    c.options = smb3d_protocol::messages::create::options::DIRECTORY_FILE;
    c.contexts.push((context_name::EXTA, &list));
    env.run(create::handle, CREATE, &c.body()).unwrap();
    let d = std::fs::File::open(env.dir.join("d")).unwrap();
    assert_eq!(ea::list(d.as_fd()).unwrap().len(), 2);
}

#[test]
fn bad_ext_a_context_creates_nothing() {
    let mut env = TestEnv::new();
    let list = ext_a(&[full_ea("GOOD", "1"), full_ea("BAD:NAME", "2")]);
    let mut c = Create::new("f.txt", disposition::CREATE);
    c.contexts.push((context_name::EXTA, &list));
    let err = env.run(create::handle, CREATE, &c.body()).unwrap_err();
    assert_eq!(err, ea::INVALID_EA_NAME);
    assert!(!env.dir.join("f.txt").exists());

    let garbage = [1u8, 0, 0, 0, 0, 9];
    let mut c = Create::new("f.txt", disposition::CREATE);
    c.contexts.push((context_name::EXTA, &garbage));
    assert!(env.run(create::handle, CREATE, &c.body()).is_err());
    assert!(!env.dir.join("f.txt").exists());
}

#[test]
fn synchronize_alone_opens_but_nothing_does_not() {
    let mut env = TestEnv::new();
    std::fs::write(env.dir.join("f"), b"x").unwrap();
    let mut c = Create::new("f", disposition::OPEN_IF);
    c.access = access::SYNCHRONIZE;
    let (resp, _) = create_response(env.run(create::handle, CREATE, &c.body()).unwrap());
    assert_eq!(resp.create_action, action::OPENED);
    c.access = 0;
    assert_eq!(
        env.run(create::handle, CREATE, &c.body()).unwrap_err(),
        NtStatus::ACCESS_DENIED
    );
}

#[test]
fn create_and_close_report_a_change_time_a_client_set() {
    use smb3d_protocol::info::file::{class, BasicInformation};
    use smb3d_protocol::info::info_type;
    use smb3d_protocol::messages::set_info::SetInfoRequest;
    const SOME_TIME: u64 = 139_067_712_000_000_000;

    let mut env = TestEnv::new();
    let c = Create::new("f", disposition::CREATE);
    let (first, _) = create_response(env.run(create::handle, CREATE, &c.body()).unwrap());
    let mut basic = Vec::new();
    BasicInformation {
        change_time: SOME_TIME as i64,
        ..Default::default()
    }
    .encode(&mut basic);
    let mut body = Vec::new();
    SetInfoRequest {
        info_type: info_type::FILE,
        file_info_class: class::BASIC,
        additional_information: 0,
        file_id: first.file_id,
        buffer: &basic,
    }
    .encode(&mut body);
    env.run(super::set_info::handle, 17, &body).unwrap();

    let c = Create::new("f", disposition::OPEN);
    let (second, _) = create_response(env.run(create::handle, CREATE, &c.body()).unwrap());
    assert_eq!(second.change_time, SOME_TIME);
    let reply = env
        .run(super::close::handle, 6, &close_body(&second.file_id, 1))
        .unwrap();
    let closed = body_of(reply);
    // CLOSE response (MS-SMB2 2.2.16): ChangeTime at byte 32.
    assert_eq!(closed[32..40], SOME_TIME.to_le_bytes());
}
