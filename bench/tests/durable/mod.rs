//! What the durable-handle tests (servers.rs, durable_netns.rs) share: signed NTLM login options
//! and the DH2Q/DH2C create and plain write they send on `durable.dat`.

use smb3bench::client::conn::Request;
use smb3bench::client::msgs::{self, CreateArgs, Durable};
use smb3bench::client::ntlm::Credentials;
use smb3bench::client::session::{LoginOptions, Session};
use smb3d_protocol::dialect::SigningAlgorithm;
use smb3d_protocol::header::Command as Smb2Command;
use smb3d_protocol::messages::oplock_break::level::BATCH;

/// Signed (AES-CMAC), unencrypted login as `user`.
pub fn login_options(user: &str, password: &str) -> LoginOptions {
    LoginOptions {
        creds: Credentials {
            user: user.into(),
            domain: String::new(),
            password: password.into(),
        },
        sign: true,
        encrypt: None,
        signing: SigningAlgorithm::AesCmac,
    }
}

/// CREATE of `durable.dat` (OPEN_IF, read/write, no sharing) asking for a batch oplock and `durable`.
pub fn durable_create(s: &Session, durable: Durable) -> Request {
    let args = CreateArgs {
        desired_access: 0x0012_019F, // read, write, attributes
        file_attributes: 0,
        share_access: 0,
        disposition: 3, // OPEN_IF
        options: 0,
    };
    let mut req = Request::new(Smb2Command::Create, s.tree_id);
    msgs::encode_create_with("durable.dat", &args, BATCH, Some(durable), &mut req.msg);
    req
}

/// Writes `data` at `offset`, asserting the server took all of it.
pub fn write_at(s: &mut Session, file_id: &[u8; 16], offset: u64, data: &[u8]) {
    let mut req = Request::with_payload(Smb2Command::Write, s.tree_id, data.len() as u32);
    msgs::encode_write_head(file_id, offset, data.len() as u32, &mut req.msg);
    req.msg.extend_from_slice(data);
    let resp = s.conn.call_ok(req).expect("write");
    assert_eq!(msgs::decode_write(&resp.msg).unwrap() as usize, data.len());
}
