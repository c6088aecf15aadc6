//! CREATE and its create-context chain. Input: a whole CREATE message (header + body); the
//! context parser also gets the raw input so chains are reachable without a valid request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smb3d_protocol::messages::create::{find_context, parse_contexts, CreateRequest};

fuzz_target!(|msg: &[u8]| {
    if let Ok(req) = CreateRequest::decode(msg) {
        if let Ok(contexts) = parse_contexts(req.contexts) {
            let _ = find_context(&contexts, b"DH2Q");
        }
    }
    let _ = parse_contexts(msg);
});
