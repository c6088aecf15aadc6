//! SMB2 signature verification on received messages, with a fixed key. Input:
//! `[selector, message...]`; the selector picks HMAC-SHA256, AES-CMAC or AES-GMAC. Checks that
//! `verify` and `verify_in_place` agree, that `verify_in_place` leaves the message unchanged,
//! and that a message signed here verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smb3d_fuzz::{signing_algorithm_for, FUZZ_KEY};
use smb3d_protocol::crypto::Signer;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, msg)) = data.split_first() else {
        return;
    };
    let signer = Signer::new(signing_algorithm_for(selector), &FUZZ_KEY[..16]);
    let mut copy = msg.to_vec();
    let verified = signer.verify(msg);
    assert_eq!(verified, signer.verify_in_place(&mut copy));
    assert_eq!(copy, msg);
    if copy.len() >= 64 {
        signer.sign(&mut copy);
        assert!(signer.verify(&copy));
    }
});
