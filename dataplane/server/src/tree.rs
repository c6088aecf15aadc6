//! A tree connect: one session's connection to one share (MS-SMB2 3.3.1.10).

use crate::share::Share;
use std::sync::Arc;

#[derive(Debug)]
pub struct Tree {
    pub id: u32,
    pub share: Arc<Share>,
    /// Access granted on the share (MS-SMB2 2.2.10 MaximalAccess).
    pub maximal_access: u32,
    /// Requests on this tree must be encrypted.
    pub encrypt: bool,
}
