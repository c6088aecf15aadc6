//! SPNEGO and NTLMSSP: one `ServerAuth` fed two arbitrary SESSION_SETUP security buffers.
//! Input: `[len_lo, len_hi, token1, token2]` (see `smb3d_fuzz::split_tokens`). The challenge
//! and clock are fixed so seeds can carry AUTHENTICATE messages that verify.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smb3d_fuzz::{split_tokens, AUTH_CHALLENGE, AUTH_NOW_FILETIME, AUTH_PASSWORD, AUTH_USER};
use smb3d_protocol::auth::{nt_hash, AuthStep, ServerAuth, ServerAuthOptions, UserLookup};

struct OneUser;

impl UserLookup for OneUser {
    fn nt_hash(&self, user: &str) -> Option<[u8; 16]> {
        user.eq_ignore_ascii_case(AUTH_USER)
            .then(|| nt_hash(AUTH_PASSWORD))
    }
}

fuzz_target!(|data: &[u8]| {
    let (first, second) = split_tokens(data);
    let opts = ServerAuthOptions {
        netbios_name: "FILER".into(),
        dns_name: "filer.example".into(),
        allow_anonymous: data.first().is_some_and(|b| b & 1 == 1),
    };
    let mut auth = ServerAuth::new(opts, AUTH_CHALLENGE, AUTH_NOW_FILETIME);
    if let AuthStep::Continue { .. } = auth.step(first, &OneUser) {
        let _ = auth.step(second, &OneUser);
    }
});
