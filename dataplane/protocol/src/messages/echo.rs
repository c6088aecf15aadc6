//! ECHO, LOGOFF, TREE_DISCONNECT and CANCEL share one 4-byte body shape: StructureSize 4 and a
//! reserved field (MS-SMB2 2.2.28, 2.2.7, 2.2.11, 2.2.30).

use super::body_reader;
use crate::wire::{Result, Writer};

/// Check a 4-byte request body.
pub fn decode_request(msg: &[u8]) -> Result<()> {
    body_reader(msg, 4)?.u16()?;
    Ok(())
}

/// The 4-byte response body.
pub fn encode_response(out: &mut Vec<u8>) {
    out.put_u16(4);
    out.put_u16(0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::test_message;

    #[test]
    fn four_byte_bodies() {
        assert!(decode_request(&test_message(&[4, 0, 0, 0])).is_ok());
        assert!(decode_request(&test_message(&[5, 0, 0, 0])).is_err());
        assert!(decode_request(&test_message(&[4, 0])).is_err());
        let mut out = Vec::new();
        encode_response(&mut out);
        assert_eq!(out, [4, 0, 0, 0]);
    }
}
