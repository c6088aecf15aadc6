//! TREE_CONNECT request and response (MS-SMB2 2.2.9, 2.2.10). TREE_DISCONNECT uses the shared
//! 4-byte body in [`super::echo`].

use super::{body_reader, buffer_at};
use crate::status::NtStatus;
use crate::wire::{utf16le_to_string, Result, Writer};

pub mod share_type {
    pub const DISK: u8 = 0x01;
    pub const PIPE: u8 = 0x02;
}

pub mod share_flags {
    pub const MANUAL_CACHING: u32 = 0x0000_0000;
    pub const NO_CACHING: u32 = 0x0000_0030;
    pub const ENCRYPT_DATA: u32 = 0x0000_8000;
}

pub mod share_capabilities {
    pub const DFS: u32 = 0x0000_0008;
    pub const CONTINUOUS_AVAILABILITY: u32 = 0x0000_0010;
    pub const SCALEOUT: u32 = 0x0000_0020;
    pub const CLUSTER: u32 = 0x0000_0040;
}

/// The longest UNC path accepted (bytes of UTF-16).
const MAX_TREE_PATH_BYTES: usize = 1024;

#[derive(Debug, PartialEq, Eq)]
pub struct TreeConnectRequest {
    pub flags: u16,
    /// `\\server\share` as sent.
    pub path: String,
}

impl TreeConnectRequest {
    pub fn decode(msg: &[u8]) -> Result<TreeConnectRequest> {
        let mut r = body_reader(msg, 9)?;
        let flags = r.u16()?;
        let offset = r.u16()? as usize;
        let len = r.u16()? as usize;
        if len > MAX_TREE_PATH_BYTES {
            return Err(NtStatus::BAD_NETWORK_NAME);
        }
        let path = utf16le_to_string(buffer_at(msg, offset, len)?)
            .map_err(|_| NtStatus::BAD_NETWORK_NAME)?;
        Ok(TreeConnectRequest { flags, path })
    }

    /// The share component of `\\server\share`.
    pub fn share_name(&self) -> Result<&str> {
        let rest = self
            .path
            .strip_prefix("\\\\")
            .ok_or(NtStatus::BAD_NETWORK_NAME)?;
        let (_, share) = rest.split_once('\\').ok_or(NtStatus::BAD_NETWORK_NAME)?;
        if share.is_empty() || share.contains('\\') {
            return Err(NtStatus::BAD_NETWORK_NAME);
        }
        Ok(share)
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct TreeConnectResponse {
    pub share_type: u8,
    pub share_flags: u32,
    pub capabilities: u32,
    pub maximal_access: u32,
}

impl TreeConnectResponse {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u16(16);
        out.put_u8(self.share_type);
        out.put_u8(0);
        out.put_u32(self.share_flags);
        out.put_u32(self.capabilities);
        out.put_u32(self.maximal_access);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::test_message;
    use crate::wire::string_to_utf16le;

    #[test]
    fn decode_path() {
        let name = string_to_utf16le("\\\\127.0.0.1\\Share");
        let mut b = Vec::new();
        b.put_u16(9);
        b.put_u16(0);
        b.put_u16(72);
        b.put_u16(name.len() as u16);
        b.put_bytes(&name);
        let m = test_message(&b);
        let req = TreeConnectRequest::decode(&m).unwrap();
        assert_eq!(req.share_name().unwrap(), "Share");
        for n in 0..m.len() {
            assert!(TreeConnectRequest::decode(&m[..n]).is_err());
        }
        let bad = TreeConnectRequest {
            flags: 0,
            path: "share".into(),
        };
        assert!(bad.share_name().is_err());
        let mut out = Vec::new();
        TreeConnectResponse::default().encode(&mut out);
        assert_eq!(out.len(), 16);
    }
}
