//! CLOSE request and response (MS-SMB2 2.2.15, 2.2.16).

use super::body_reader;
use crate::wire::{Result, Writer};

/// SMB2_CLOSE_FLAG_POSTQUERY_ATTRIB: return the file's attributes in the response.
pub const FLAG_POSTQUERY_ATTRIB: u16 = 0x0001;

#[derive(Debug, PartialEq, Eq)]
pub struct CloseRequest {
    pub flags: u16,
    pub file_id: [u8; 16],
}

impl CloseRequest {
    pub fn decode(msg: &[u8]) -> Result<CloseRequest> {
        let mut r = body_reader(msg, 24)?;
        let flags = r.u16()?;
        r.skip(4)?;
        let file_id = r.guid()?;
        Ok(CloseRequest { flags, file_id })
    }
}

/// The attributes a CLOSE response carries (all zero without POSTQUERY_ATTRIB).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CloseAttributes {
    pub creation_time: u64,
    pub last_access_time: u64,
    pub last_write_time: u64,
    pub change_time: u64,
    pub allocation_size: u64,
    pub end_of_file: u64,
    pub file_attributes: u32,
}

/// Append the 60-byte response body; `attrs` `None` sends the flags and every field as 0.
pub fn encode_response(attrs: Option<&CloseAttributes>, out: &mut Vec<u8>) {
    out.put_u16(60);
    match attrs {
        None => out.put_zeros(58),
        Some(a) => {
            out.put_u16(FLAG_POSTQUERY_ATTRIB);
            out.put_u32(0);
            out.put_u64(a.creation_time);
            out.put_u64(a.last_access_time);
            out.put_u64(a.last_write_time);
            out.put_u64(a.change_time);
            out.put_u64(a.allocation_size);
            out.put_u64(a.end_of_file);
            out.put_u32(a.file_attributes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::test_message;

    #[test]
    fn request_and_response() {
        let mut b = vec![24, 0, 1, 0, 0, 0, 0, 0];
        b.extend_from_slice(&[5; 16]);
        let req = CloseRequest::decode(&test_message(&b)).unwrap();
        assert_eq!(req.flags, FLAG_POSTQUERY_ATTRIB);
        assert_eq!(req.file_id, [5; 16]);
        assert!(CloseRequest::decode(&test_message(&b[..20])).is_err());
        b[0] = 25;
        assert!(CloseRequest::decode(&test_message(&b)).is_err());

        let mut out = Vec::new();
        encode_response(None, &mut out);
        assert_eq!(out.len(), 60);
        assert!(out[2..].iter().all(|&x| x == 0));
        let a = CloseAttributes {
            end_of_file: 10,
            file_attributes: 0x20,
            ..Default::default()
        };
        let mut out = Vec::new();
        encode_response(Some(&a), &mut out);
        assert_eq!(out.len(), 60);
        assert_eq!(&out[2..4], &[1, 0]);
        assert_eq!(&out[48..56], &10u64.to_le_bytes());
        assert_eq!(&out[56..60], &0x20u32.to_le_bytes());
    }
}
