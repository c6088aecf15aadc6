//! NEGOTIATE (MS-SMB2 3.3.5.3, 3.3.5.4): pick the dialect, the cipher and the signing algorithm,
//! and start the connection's preauth integrity hash.

use smb3d_protocol::auth;
use smb3d_protocol::crypto::PreauthHash;
use smb3d_protocol::dialect::{Cipher, Dialect, SigningAlgorithm, DIALECT_WILDCARD};
use smb3d_protocol::limits::MAX_IO_SIZE_BYTES;
use smb3d_protocol::messages::negotiate::{
    capabilities, security_mode, NegotiateRequest, NegotiateResponse, HASH_SHA512,
};
use smb3d_protocol::NtStatus;

use crate::server::ServerState;
use crate::share::Requirement;

/// What the connection learned in NEGOTIATE (MS-SMB2 3.3.1.7 Connection).
#[derive(Clone, Debug)]
pub struct ConnectionInfo {
    pub dialect: Option<Dialect>,
    pub client_guid: [u8; 16],
    pub client_capabilities: u32,
    pub client_security_mode: u16,
    pub client_dialects: Vec<u16>,
    pub server_capabilities: u32,
    pub server_security_mode: u16,
    pub cipher: Option<Cipher>,
    pub signing_algorithm: SigningAlgorithm,
    /// Connection.PreauthIntegrityHashValue (3.1.1): NEGOTIATE request and response.
    pub preauth: PreauthHash,
    pub max_io_bytes: u32,
}

impl Default for ConnectionInfo {
    fn default() -> Self {
        ConnectionInfo {
            dialect: None,
            client_guid: [0; 16],
            client_capabilities: 0,
            client_security_mode: 0,
            client_dialects: Vec::new(),
            server_capabilities: 0,
            server_security_mode: 0,
            cipher: None,
            signing_algorithm: SigningAlgorithm::HmacSha256,
            preauth: PreauthHash::new(),
            max_io_bytes: 65536,
        }
    }
}

/// Ciphers in the server's order of preference: GCM is several times faster than CCM.
const CIPHER_PREFERENCE: [Cipher; 4] = [
    Cipher::Aes128Gcm,
    Cipher::Aes256Gcm,
    Cipher::Aes128Ccm,
    Cipher::Aes256Ccm,
];
/// Signing algorithms in the server's order of preference (AES-GMAC is the fastest).
const SIGNING_PREFERENCE: [SigningAlgorithm; 3] = [
    SigningAlgorithm::AesGmac,
    SigningAlgorithm::AesCmac,
    SigningAlgorithm::HmacSha256,
];

fn security_mode_for(server: &ServerState) -> u16 {
    match server.config.signing {
        Requirement::Required => security_mode::SIGNING_ENABLED | security_mode::SIGNING_REQUIRED,
        _ => security_mode::SIGNING_ENABLED,
    }
}

/// Handle an SMB2 NEGOTIATE. `salt` is 32 random bytes from the caller (sans-IO).
pub fn handle(
    msg: &[u8],
    info: &mut ConnectionInfo,
    server: &ServerState,
    now_filetime: u64,
    salt: [u8; 32],
) -> Result<NegotiateResponse, NtStatus> {
    let req = NegotiateRequest::decode(msg)?;
    // Highest common dialect.
    let dialect = req
        .dialects
        .iter()
        .filter_map(|d| Dialect::from_u16(*d))
        .max()
        .ok_or(NtStatus::NOT_SUPPORTED)?;

    let mut resp = NegotiateResponse {
        security_mode: security_mode_for(server),
        dialect: dialect as u16,
        server_guid: server.server_guid,
        system_time: now_filetime,
        security_buffer: auth::negotiate_token(),
        ..Default::default()
    };

    let mut caps = 0;
    if dialect >= Dialect::Smb210 {
        // MS-SMB2 3.3.5.4: leases from 2.1 on (directory leases are not offered).
        caps |= capabilities::LARGE_MTU | capabilities::LEASING;
    }
    if dialect.is_smb3() && server.config.multichannel {
        caps |= capabilities::MULTI_CHANNEL;
    }
    let encryption_on = server.config.encrypt != Requirement::Off;
    let mut cipher = None;
    let mut signing_algorithm = SigningAlgorithm::default_for(dialect);
    if dialect == Dialect::Smb311 {
        let ctx = &req.contexts;
        // MS-SMB2 3.3.5.4: a 3.1.1 negotiate must carry exactly one preauth context naming SHA-512.
        if !ctx.saw_preauth {
            return Err(NtStatus::INVALID_PARAMETER);
        }
        if !ctx.hash_algorithms.contains(&HASH_SHA512) {
            return Err(NtStatus::SMB_NO_PREAUTH_INTEGRITY_HASH_OVERLAP);
        }
        resp.preauth_salt = Some(salt);
        if ctx.saw_encryption && encryption_on {
            cipher = CIPHER_PREFERENCE
                .into_iter()
                .find(|c| ctx.ciphers.contains(&(*c as u16)));
            resp.no_common_cipher = cipher.is_none();
        }
        if ctx.saw_signing {
            signing_algorithm = SIGNING_PREFERENCE
                .into_iter()
                .find(|a| ctx.signing_algorithms.contains(&(*a as u16)))
                .unwrap_or(SigningAlgorithm::AesCmac);
            resp.signing_algorithm = Some(signing_algorithm);
        }
        resp.cipher = cipher;
    } else if dialect.is_smb3() && encryption_on && req.capabilities & capabilities::ENCRYPTION != 0
    {
        // MS-SMB2 3.3.5.4: 3.0 and 3.0.2 use AES-128-CCM, announced by the capability bit.
        cipher = Some(Cipher::Aes128Ccm);
        caps |= capabilities::ENCRYPTION;
    }
    resp.capabilities = caps;
    let io = max_io_bytes(dialect);
    resp.max_transact_size = io;
    resp.max_read_size = io;
    resp.max_write_size = io;

    *info = ConnectionInfo {
        dialect: Some(dialect),
        client_guid: req.client_guid,
        client_capabilities: req.capabilities,
        client_security_mode: req.security_mode,
        client_dialects: req.dialects,
        server_capabilities: caps,
        server_security_mode: resp.security_mode,
        cipher,
        signing_algorithm,
        preauth: PreauthHash::new(),
        max_io_bytes: io,
    };
    Ok(resp)
}

/// MaxReadSize/MaxWriteSize/MaxTransactSize for `dialect`: 2.0.2 has no multi-credit requests,
/// so one credit covers at most 64 KiB (MS-SMB2 3.3.5.4, 3.3.5.2.5).
pub fn max_io_bytes(dialect: Dialect) -> u32 {
    if dialect >= Dialect::Smb210 {
        MAX_IO_SIZE_BYTES
    } else {
        65536
    }
}

/// The answer to an SMB1 multi-protocol NEGOTIATE (MS-SMB2 3.3.5.3.1): the SMB2 wildcard dialect
/// 0x02FF when the client offers "SMB 2.???", or 2.0.2 when it offers only "SMB 2.002".
/// Returns `None` when the client offers no SMB2 dialect at all.
pub fn smb1_response(
    dialect_names: &[String],
    info: &mut ConnectionInfo,
    server: &ServerState,
    now_filetime: u64,
) -> Option<NegotiateResponse> {
    let revision = if dialect_names.iter().any(|d| d == "SMB 2.???") {
        DIALECT_WILDCARD
    } else if dialect_names.iter().any(|d| d == "SMB 2.002") {
        Dialect::Smb202 as u16
    } else {
        return None;
    };
    let resp = NegotiateResponse {
        security_mode: security_mode_for(server),
        dialect: revision,
        server_guid: server.server_guid,
        capabilities: 0,
        max_transact_size: 65536,
        max_read_size: 65536,
        max_write_size: 65536,
        system_time: now_filetime,
        security_buffer: auth::negotiate_token(),
        ..Default::default()
    };
    if revision == Dialect::Smb202 as u16 {
        info.dialect = Some(Dialect::Smb202);
        info.server_security_mode = resp.security_mode;
    }
    Some(resp)
}
