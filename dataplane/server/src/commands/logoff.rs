//! LOGOFF (MS-SMB2 3.3.5.6): close the session's opens and forget it.

use std::sync::Arc;

use crate::open::Open;
use crate::server::ServerState;
use crate::session::Session;
use crate::share::Share;

/// Remove the session from the server and return its opens, each with the share it was made
/// on, for the caller to close. An open whose tree is gone (none should be: CREATE closes its
/// open itself when its tree went meanwhile) is taken out of the file table here.
pub fn logoff(session: &Session, server: &ServerState) -> Vec<(Arc<Open>, Arc<Share>)> {
    server.sessions.remove(session.id);
    let trees = std::mem::take(&mut *session.trees.lock().unwrap());
    let mut out = Vec::new();
    for open in session.opens.drain(None) {
        match trees.get(&open.tree_id()) {
            Some(tree) => out.push((open, tree.share.clone())),
            None => {
                tracing::warn!(
                    session = session.id,
                    tree = open.tree_id(),
                    "open of a tree that is gone"
                );
                server.files.forget(&open);
                crate::oplock::kick(server, open.file.take_waiters());
            }
        }
    }
    out
}
