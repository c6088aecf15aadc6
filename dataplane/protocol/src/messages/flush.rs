//! FLUSH request and response (MS-SMB2 2.2.17, 2.2.18).

use super::body_reader;
use crate::wire::{Result, Writer};

pub fn decode_request(msg: &[u8]) -> Result<[u8; 16]> {
    let mut r = body_reader(msg, 24)?;
    r.skip(6)?; // Reserved1, Reserved2
    r.guid()
}

pub fn encode_response(out: &mut Vec<u8>) {
    out.put_u16(4);
    out.put_u16(0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::test_message;

    #[test]
    fn request_and_response() {
        let mut b = vec![24, 0, 0, 0, 0, 0, 0, 0];
        b.extend_from_slice(&[8; 16]);
        assert_eq!(decode_request(&test_message(&b)).unwrap(), [8; 16]);
        assert!(decode_request(&test_message(&b[..23])).is_err());
        let mut out = Vec::new();
        encode_response(&mut out);
        assert_eq!(out, [4, 0, 0, 0]);
    }
}
