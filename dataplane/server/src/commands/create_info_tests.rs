//! CREATE behaviour the information classes depend on.

use smb3d_protocol::messages::create::{action, disposition};
use smb3d_protocol::NtStatus;

use super::create;
use super::test_support::*;
use crate::storage::file_table::access;

const CREATE: u16 = 5;

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
