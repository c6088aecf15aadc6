//! NEGOTIATE request and response (MS-SMB2 2.2.3, 2.2.4) with SMB 3.1.1 negotiate contexts
//! (2.2.3.1, 2.2.4.1).

use super::body_reader;
use crate::dialect::{Cipher, SigningAlgorithm};
use crate::header::HEADER_BYTES;
use crate::limits::{MAX_DIALECTS, MAX_NEGOTIATE_CONTEXTS};
use crate::status::NtStatus;
use crate::wire::{Reader, Result, Writer};

pub mod security_mode {
    pub const SIGNING_ENABLED: u16 = 0x0001;
    pub const SIGNING_REQUIRED: u16 = 0x0002;
}

pub mod capabilities {
    pub const DFS: u32 = 0x0000_0001;
    pub const LEASING: u32 = 0x0000_0002;
    pub const LARGE_MTU: u32 = 0x0000_0004;
    pub const MULTI_CHANNEL: u32 = 0x0000_0008;
    pub const PERSISTENT_HANDLES: u32 = 0x0000_0010;
    pub const DIRECTORY_LEASING: u32 = 0x0000_0020;
    pub const ENCRYPTION: u32 = 0x0000_0040;
}

pub mod context_type {
    pub const PREAUTH_INTEGRITY: u16 = 0x0001;
    pub const ENCRYPTION: u16 = 0x0002;
    pub const COMPRESSION: u16 = 0x0003;
    pub const NETNAME: u16 = 0x0005;
    pub const TRANSPORT: u16 = 0x0006;
    pub const RDMA_TRANSFORM: u16 = 0x0007;
    pub const SIGNING: u16 = 0x0008;
}

/// SHA-512, the only preauth integrity hash defined (MS-SMB2 2.2.3.1.1).
pub const HASH_SHA512: u16 = 0x0001;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct NegotiateRequest {
    pub security_mode: u16,
    pub capabilities: u32,
    pub client_guid: [u8; 16],
    pub dialects: Vec<u16>,
    /// Present when 3.1.1 is offered.
    pub contexts: NegotiateContexts,
}

/// The 3.1.1 negotiate contexts the server acts on; others are parsed and ignored.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct NegotiateContexts {
    pub count: usize,
    pub hash_algorithms: Vec<u16>,
    pub salt_len: usize,
    pub ciphers: Vec<u16>,
    pub signing_algorithms: Vec<u16>,
    pub saw_preauth: bool,
    pub saw_encryption: bool,
    pub saw_signing: bool,
}

impl NegotiateRequest {
    pub fn decode(msg: &[u8]) -> Result<NegotiateRequest> {
        let mut r = body_reader(msg, 36)?;
        let dialect_count = r.u16()? as usize;
        let security_mode = r.u16()?;
        r.skip(2)?;
        let capabilities = r.u32()?;
        let client_guid = r.guid()?;
        let context_offset = r.u32()? as usize;
        let context_count = r.u16()? as usize;
        r.skip(2)?;
        // MS-SMB2 3.3.5.4: DialectCount 0 -> STATUS_INVALID_PARAMETER.
        if dialect_count == 0 || dialect_count > MAX_DIALECTS {
            return Err(NtStatus::INVALID_PARAMETER);
        }
        let mut dialects = Vec::with_capacity(dialect_count);
        for _ in 0..dialect_count {
            dialects.push(r.u16()?);
        }
        let mut req = NegotiateRequest {
            security_mode,
            capabilities,
            client_guid,
            dialects,
            contexts: NegotiateContexts::default(),
        };
        if req.dialects.contains(&0x0311) && context_count > 0 {
            req.contexts = decode_contexts(msg, context_offset, context_count)?;
        }
        Ok(req)
    }
}

fn decode_contexts(msg: &[u8], offset: usize, count: usize) -> Result<NegotiateContexts> {
    if count > MAX_NEGOTIATE_CONTEXTS || offset < HEADER_BYTES {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    let mut out = NegotiateContexts {
        count,
        ..Default::default()
    };
    let mut pos = offset;
    for i in 0..count {
        let mut r = Reader::at(msg, pos)?;
        let context_type = r.u16()?;
        let data_len = r.u16()? as usize;
        r.skip(4)?;
        let data = r.bytes(data_len)?;
        let mut d = Reader::new(data);
        match context_type {
            context_type::PREAUTH_INTEGRITY => {
                // MS-SMB2 3.3.5.4: more than one of a kind -> STATUS_INVALID_PARAMETER.
                if out.saw_preauth {
                    return Err(NtStatus::INVALID_PARAMETER);
                }
                out.saw_preauth = true;
                let n = d.u16()? as usize;
                out.salt_len = d.u16()? as usize;
                if n == 0 {
                    return Err(NtStatus::INVALID_PARAMETER);
                }
                for _ in 0..n {
                    out.hash_algorithms.push(d.u16()?);
                }
                d.skip(out.salt_len)?;
            }
            context_type::ENCRYPTION => {
                if out.saw_encryption {
                    return Err(NtStatus::INVALID_PARAMETER);
                }
                out.saw_encryption = true;
                let n = d.u16()? as usize;
                if n == 0 {
                    return Err(NtStatus::INVALID_PARAMETER);
                }
                for _ in 0..n {
                    out.ciphers.push(d.u16()?);
                }
            }
            context_type::SIGNING => {
                if out.saw_signing {
                    return Err(NtStatus::INVALID_PARAMETER);
                }
                out.saw_signing = true;
                let n = d.u16()? as usize;
                if n == 0 {
                    return Err(NtStatus::INVALID_PARAMETER);
                }
                for _ in 0..n {
                    out.signing_algorithms.push(d.u16()?);
                }
            }
            // Compression, netname, transport, RDMA and unknown contexts: parsed, ignored.
            _ => {}
        }
        if i + 1 < count {
            pos = (r.position() + 7) & !7;
        }
    }
    Ok(out)
}

/// Everything the NEGOTIATE response says.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct NegotiateResponse {
    pub security_mode: u16,
    pub dialect: u16,
    pub server_guid: [u8; 16],
    pub capabilities: u32,
    pub max_transact_size: u32,
    pub max_read_size: u32,
    pub max_write_size: u32,
    pub system_time: u64,
    pub security_buffer: Vec<u8>,
    /// 3.1.1 only: the preauth salt, and the cipher / signing algorithm chosen (if any).
    pub preauth_salt: Option<[u8; 32]>,
    pub cipher: Option<Cipher>,
    /// Sent as an empty ENCRYPTION context (cipher 0) when the client offered none we support.
    pub no_common_cipher: bool,
    pub signing_algorithm: Option<SigningAlgorithm>,
}

impl NegotiateResponse {
    pub fn encode(&self, out: &mut Vec<u8>) {
        let body_start = out.len();
        let mut contexts: Vec<(u16, Vec<u8>)> = Vec::new();
        if let Some(salt) = &self.preauth_salt {
            let mut d = Vec::new();
            d.put_u16(1);
            d.put_u16(salt.len() as u16);
            d.put_u16(HASH_SHA512);
            d.put_bytes(salt);
            contexts.push((context_type::PREAUTH_INTEGRITY, d));
            if self.cipher.is_some() || self.no_common_cipher {
                let mut d = Vec::new();
                d.put_u16(1);
                d.put_u16(self.cipher.map_or(0, |c| c as u16));
                contexts.push((context_type::ENCRYPTION, d));
            }
            if let Some(alg) = self.signing_algorithm {
                let mut d = Vec::new();
                d.put_u16(1);
                d.put_u16(alg as u16);
                contexts.push((context_type::SIGNING, d));
            }
        }
        out.put_u16(65);
        out.put_u16(self.security_mode);
        out.put_u16(self.dialect);
        out.put_u16(contexts.len() as u16);
        out.put_bytes(&self.server_guid);
        out.put_u32(self.capabilities);
        out.put_u32(self.max_transact_size);
        out.put_u32(self.max_read_size);
        out.put_u32(self.max_write_size);
        out.put_u64(self.system_time);
        out.put_u64(0); // ServerStartTime
        let sec_offset = HEADER_BYTES + 64;
        out.put_u16(sec_offset as u16);
        out.put_u16(self.security_buffer.len() as u16);
        let ctx_offset_at = out.len();
        out.put_u32(0);
        out.put_bytes(&self.security_buffer);
        if !contexts.is_empty() {
            // Contexts start 8-byte aligned relative to the header (the header itself is 64).
            while !(out.len() - body_start).is_multiple_of(8) {
                out.put_u8(0);
            }
            let ctx_offset = HEADER_BYTES + out.len() - body_start;
            out.set_u32(ctx_offset_at, ctx_offset as u32);
            for (i, (t, d)) in contexts.iter().enumerate() {
                out.put_u16(*t);
                out.put_u16(d.len() as u16);
                out.put_u32(0);
                out.put_bytes(d);
                if i + 1 < contexts.len() {
                    while !(out.len() - body_start).is_multiple_of(8) {
                        out.put_u8(0);
                    }
                }
            }
        }
    }
}

/// FSCTL_VALIDATE_NEGOTIATE_INFO input (MS-SMB2 2.2.31.4).
#[derive(Debug, PartialEq, Eq)]
pub struct ValidateNegotiateInfo {
    pub capabilities: u32,
    pub guid: [u8; 16],
    pub security_mode: u16,
    pub dialects: Vec<u16>,
}

impl ValidateNegotiateInfo {
    pub fn decode(input: &[u8]) -> Result<ValidateNegotiateInfo> {
        let mut r = Reader::new(input);
        let capabilities = r.u32()?;
        let guid = r.guid()?;
        let security_mode = r.u16()?;
        let count = r.u16()? as usize;
        if count > MAX_DIALECTS {
            return Err(NtStatus::INVALID_PARAMETER);
        }
        let mut dialects = Vec::with_capacity(count);
        for _ in 0..count {
            dialects.push(r.u16()?);
        }
        Ok(ValidateNegotiateInfo {
            capabilities,
            guid,
            security_mode,
            dialects,
        })
    }

    /// The response (MS-SMB2 2.2.32.6): Capabilities, Guid, SecurityMode, Dialect.
    pub fn encode_response(
        capabilities: u32,
        guid: &[u8; 16],
        security_mode: u16,
        dialect: u16,
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(24);
        out.put_u32(capabilities);
        out.put_bytes(guid);
        out.put_u16(security_mode);
        out.put_u16(dialect);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::test_message;

    fn request_311() -> Vec<u8> {
        let mut b = Vec::new();
        b.put_u16(36);
        b.put_u16(2); // dialects
        b.put_u16(1);
        b.put_u16(0);
        b.put_u32(capabilities::MULTI_CHANNEL);
        b.put_bytes(&[7; 16]);
        let ctx_off_at = b.len();
        b.put_u32(0);
        b.put_u16(3);
        b.put_u16(0);
        b.put_u16(0x0300);
        b.put_u16(0x0311);
        while (64 + b.len()) % 8 != 0 {
            b.put_u8(0);
        }
        let off = 64 + b.len();
        b.set_u32(ctx_off_at, off as u32);
        // preauth
        b.put_u16(1);
        b.put_u16(38);
        b.put_u32(0);
        b.put_u16(1);
        b.put_u16(32);
        b.put_u16(1);
        b.put_bytes(&[9; 32]);
        b.align_to(8); // 64-byte header keeps alignment identical
                       // encryption
        b.put_u16(2);
        b.put_u16(6);
        b.put_u32(0);
        b.put_u16(2);
        b.put_u16(2);
        b.put_u16(1);
        b.align_to(8);
        // signing
        b.put_u16(8);
        b.put_u16(4);
        b.put_u32(0);
        b.put_u16(1);
        b.put_u16(2);
        test_message(&b)
    }

    #[test]
    fn decodes_311_contexts() {
        let req = NegotiateRequest::decode(&request_311()).unwrap();
        assert_eq!(req.dialects, vec![0x0300, 0x0311]);
        assert_eq!(req.client_guid, [7; 16]);
        assert_eq!(req.contexts.hash_algorithms, vec![1]);
        assert_eq!(req.contexts.ciphers, vec![2, 1]);
        assert_eq!(req.contexts.signing_algorithms, vec![2]);
    }

    #[test]
    fn truncations_never_panic() {
        let m = request_311();
        for n in 0..m.len() {
            let _ = NegotiateRequest::decode(&m[..n]);
        }
    }

    #[test]
    fn response_layout() {
        let resp = NegotiateResponse {
            dialect: 0x0311,
            security_buffer: vec![1, 2, 3],
            preauth_salt: Some([5; 32]),
            cipher: Some(Cipher::Aes128Gcm),
            signing_algorithm: Some(SigningAlgorithm::AesGmac),
            ..Default::default()
        };
        let mut out = Vec::new();
        resp.encode(&mut out);
        let mut msg = vec![0u8; 64];
        msg.extend_from_slice(&out);
        let mut r = Reader::at(&msg, 64).unwrap();
        assert_eq!(r.u16().unwrap(), 65);
        r.skip(2).unwrap();
        assert_eq!(r.u16().unwrap(), 0x0311);
        assert_eq!(r.u16().unwrap(), 3);
        let ctx_off = u32::from_le_bytes(msg[64 + 60..64 + 64].try_into().unwrap()) as usize;
        assert_eq!(ctx_off % 8, 0);
        assert_eq!(&msg[ctx_off..ctx_off + 2], &[1, 0]);
        assert_eq!(&msg[128..131], &[1, 2, 3]);
    }
}
