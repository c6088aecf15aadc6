//! Every SMB2 request body decoder. Input: `[selector, message...]`; the selector picks the
//! command (see `smb3d_fuzz::REQUEST_COMMANDS`), the message is a 64-byte header plus body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smb3d_fuzz::REQUEST_COMMANDS;
use smb3d_protocol::header::Command;
use smb3d_protocol::info::ea;
use smb3d_protocol::messages::{
    charged_payload_bytes, close, create, echo, flush, ioctl, lock, negotiate, oplock_break,
    query_directory, query_info, read, session_setup, set_info, tree_connect, write,
};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, msg)) = data.split_first() else {
        return;
    };
    let command = REQUEST_COMMANDS[usize::from(selector) % REQUEST_COMMANDS.len()];
    if let Some(cmd) = Command::from_u16(command) {
        let _ = charged_payload_bytes(cmd, msg);
    }
    decode(command, msg);
});

fn decode(command: u16, msg: &[u8]) {
    match command {
        0x00 => {
            let _ = negotiate::NegotiateRequest::decode(msg);
        }
        0x01 => {
            let _ = session_setup::SessionSetupRequest::decode(msg);
        }
        0x03 => {
            if let Ok(req) = tree_connect::TreeConnectRequest::decode(msg) {
                let _ = req.share_name();
            }
        }
        0x05 => {
            if let Ok(req) = create::CreateRequest::decode(msg) {
                let _ = create::parse_contexts(req.contexts);
            }
        }
        0x06 => {
            let _ = close::CloseRequest::decode(msg);
        }
        0x07 => {
            let _ = flush::decode_request(msg);
        }
        0x08 => {
            let _ = read::ReadRequest::decode(msg);
        }
        0x09 => {
            let _ = write::WriteRequest::decode(msg);
        }
        0x0A => {
            let _ = lock::LockRequest::decode(msg);
        }
        0x0B => {
            if let Ok(req) = ioctl::IoctlRequest::decode(msg) {
                let _ = negotiate::ValidateNegotiateInfo::decode(req.input);
            }
        }
        0x0D => {
            let _ = echo::decode_request(msg);
        }
        0x0E => {
            let _ = query_directory::QueryDirectoryRequest::decode(msg);
        }
        0x10 => {
            if let Ok(req) = query_info::QueryInfoRequest::decode(msg) {
                let _ = ea::decode_get_list(&req.input_buffer);
            }
        }
        0x11 => {
            let _ = set_info::SetInfoRequest::decode(msg);
        }
        _ => {
            let _ = oplock_break::OplockBreakAck::decode(msg);
        }
    }
}
