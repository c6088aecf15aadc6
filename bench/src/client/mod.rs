//! A small synchronous SMB 3.1.1 client: just what the load generator needs.

pub mod conn;
pub mod files;
pub mod msgs;
pub mod ntlm;
pub mod session;
