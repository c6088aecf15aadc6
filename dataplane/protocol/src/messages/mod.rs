//! SMB2 command bodies: one module per command, request decoders and response encoders.
//! Decoders take the whole message (64-byte header included) because SMB2 offsets count from
//! the start of the header.

pub mod query_directory;
pub mod query_info;
pub mod set_info;
