//! NEGOTIATE with 3.1.1 negotiate contexts, and VALIDATE_NEGOTIATE_INFO (the IOCTL that
//! repeats the negotiation). Input: a whole NEGOTIATE message (header + body).
#![no_main]

use libfuzzer_sys::fuzz_target;
use smb3d_protocol::messages::negotiate::{NegotiateRequest, ValidateNegotiateInfo};

fuzz_target!(|msg: &[u8]| {
    let _ = NegotiateRequest::decode(msg);
    let _ = ValidateNegotiateInfo::decode(msg.get(64..).unwrap_or_default());
});
