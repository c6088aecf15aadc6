//! Limits on peer-controlled sizes. Every length a client sends is checked against one of these
//! before memory is allocated for it. The data plane may lower them from configuration.

/// Largest READ/WRITE/TRANSACT payload advertised in NEGOTIATE (MaxReadSize, MaxWriteSize,
/// MaxTransactSize). 8 MiB, as Windows Server 2016+ and Samba advertise.
pub const MAX_IO_SIZE_BYTES: u32 = 8 * 1024 * 1024;

/// Largest Direct-TCP PDU accepted: one max-size WRITE plus headers and a compound's worth of
/// small requests. Anything larger drops the connection (MS-SMB2 3.3.5.2.1 lets the server
/// disconnect on an oversized message).
pub const MAX_PDU_BYTES: usize = MAX_IO_SIZE_BYTES as usize + 64 * 1024;

/// Largest PDU accepted before a session is established on the connection: NEGOTIATE and
/// SESSION_SETUP are small (the security buffer is at most 16 KiB), so an unauthenticated
/// peer cannot make the server reserve a WRITE-sized buffer.
pub const MAX_PREAUTH_PDU_BYTES: usize = 64 * 1024;

/// Most requests accepted in one compound chain.
pub const MAX_COMPOUND_REQUESTS: usize = 64;

/// Largest security buffer accepted in SESSION_SETUP.
pub const MAX_SECURITY_BUFFER_BYTES: usize = 16 * 1024;

/// Longest path (in UTF-16 code units) in CREATE; MS-FSCC limits a path to 32767 characters.
pub const MAX_PATH_UNITS: usize = 32_767;

/// Most negotiate contexts accepted in one NEGOTIATE request.
pub const MAX_NEGOTIATE_CONTEXTS: usize = 32;

/// Most dialects accepted in one NEGOTIATE request.
pub const MAX_DIALECTS: usize = 64;

/// Most create contexts accepted in one CREATE request.
pub const MAX_CREATE_CONTEXTS: usize = 32;

/// Most lock elements in one LOCK request.
pub const MAX_LOCK_ELEMENTS: usize = 1024;

/// Channels a session may have (MS-SMB2 3.3.5.5.2 leaves this to the server; Windows uses 32).
pub const MAX_CHANNELS_PER_SESSION: usize = 32;
