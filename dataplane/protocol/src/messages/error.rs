//! The SMB2 ERROR response body (MS-SMB2 2.2.2).

use crate::wire::Writer;

/// StructureSize 9, no error contexts, ByteCount 0 and the one mandatory byte of ErrorData.
pub fn encode(out: &mut Vec<u8>) {
    out.put_u16(9);
    out.put_u8(0); // ErrorContextCount
    out.put_u8(0); // Reserved
    out.put_u32(0); // ByteCount
    out.put_u8(0); // ErrorData
}

/// The error body carrying data, e.g. STATUS_STOPPED_ON_SYMLINK's symlink error response.
pub fn encode_with_data(out: &mut Vec<u8>, data: &[u8]) {
    out.put_u16(9);
    out.put_u8(0);
    out.put_u8(0);
    out.put_u32(data.len() as u32);
    if data.is_empty() {
        out.put_u8(0);
    } else {
        out.put_bytes(data);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn error_body_is_nine_bytes() {
        let mut out = Vec::new();
        super::encode(&mut out);
        assert_eq!(out.len(), 9);
        assert_eq!(out[0], 9);
    }
}
