//! Sans-IO SMB2/SMB3 protocol: everything that turns bytes into messages and back, and the
//! authentication and cryptography that SMB3 layers on top. Nothing here touches a socket,
//! a file or the clock; the data plane feeds bytes in and takes bytes out.
//!
//! Layout:
//! - [`wire`]: bounds-checked little-endian reader/writer.
//! - [`status`]: NTSTATUS codes.
//! - [`framing`]: the 4-byte Direct TCP transport header (MS-SMB2 2.1).
//! - [`header`]: the SMB2 packet header (MS-SMB2 2.2.1) and the SMB1 negotiate probe.
//! - [`transform`]: the SMB2 TRANSFORM header for encrypted messages (MS-SMB2 2.2.41).
//! - [`messages`]: one module per SMB2 command, request decoders and response encoders.
//! - [`info`]: file, filesystem and directory information classes (MS-FSCC 2.4, 2.5).
//! - [`auth`]: SPNEGO (MS-SPNG) and NTLMSSP with NTLMv2 (MS-NLMP).
//! - [`crypto`]: SP800-108 key derivation, signing, encryption, preauth integrity hash.
//! - [`limits`]: every peer-controlled size the protocol layer bounds.

pub mod auth;
pub mod crypto;
pub mod dialect;
pub mod framing;
pub mod header;
pub mod info;
pub mod limits;
pub mod messages;
pub mod status;
pub mod transform;
pub mod wire;

pub use status::NtStatus;
