//! The smb3d data plane.
//!
//! A READ travels: NIC queue → [`reactor`] (io_uring recv) → [`connection`] (framing, decrypt,
//! verify signature, credits, compound split) → [`commands`] (one module per SMB2 command, over
//! [`storage`]) → back through [`connection`] (encode, sign/encrypt) → [`reactor`] (send).
//!
//! Shared state has one owner each: [`server::ServerState`] holds configuration, shares, the
//! session table and the open-file table; a [`session::Session`] owns its trees and opens.

pub mod commands;
pub mod connection;
pub mod durable;
pub mod handoff;
pub mod mailbox;
pub mod netif;
pub mod open;
pub mod oplock;
pub mod reactor;
pub mod server;
pub mod session;
pub mod share;
pub mod storage;
pub mod tree;
