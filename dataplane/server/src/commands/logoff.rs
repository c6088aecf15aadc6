//! LOGOFF (MS-SMB2 3.3.5.6): close the session's opens and forget it.

use std::sync::Arc;

use crate::open::Open;
use crate::server::ServerState;
use crate::session::Session;
use crate::share::Share;

/// Remove the session from the server and return its opens, each with the share it was made
/// on, for the caller to close.
pub fn logoff(session: &Session, server: &ServerState) -> Vec<(Arc<Open>, Arc<Share>)> {
    server.sessions.remove(session.id);
    let trees = std::mem::take(&mut *session.trees.lock().unwrap());
    session
        .opens
        .drain(None)
        .into_iter()
        .filter_map(|open| trees.get(&open.tree_id()).map(|t| (open, t.share.clone())))
        .collect()
}
