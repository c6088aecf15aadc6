//! The TRANSFORM header and the decryption path with a fixed key. Input: `[selector, pdu...]`;
//! the selector picks the cipher, the pdu is a whole TRANSFORM message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smb3d_fuzz::{cipher_for, FUZZ_KEY};
use smb3d_protocol::crypto::Encryptor;
use smb3d_protocol::header::Header;
use smb3d_protocol::transform::TransformHeader;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, pdu)) = data.split_first() else {
        return;
    };
    let _ = TransformHeader::is_transform(pdu);
    let _ = TransformHeader::decode(pdu);
    let encryptor = Encryptor::new(cipher_for(selector), &FUZZ_KEY);
    let mut buf = pdu.to_vec();
    if let Ok(range) = encryptor.decrypt_in_place(&mut buf) {
        if let Some(plain) = buf.get(range) {
            let _ = Header::decode(plain);
        }
    }
});
