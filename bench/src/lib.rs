//! smb3bench: an fio-like SMB 3.1.1 load generator that speaks the protocol itself.

pub mod client;
pub mod failover;
pub mod hist;
pub mod job;
pub mod json;
pub mod report;
pub mod run;
pub mod soak;
