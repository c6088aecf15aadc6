//! LOGOFF (MS-SMB2 3.3.5.6): close the session's opens and forget it.

use std::sync::Arc;

use crate::open::Open;
use crate::server::ServerState;
use crate::session::Session;

/// Remove the session from the server and return its opens for the caller to close.
pub fn logoff(session: &Session, server: &ServerState) -> Vec<Arc<Open>> {
    server.sessions.remove(session.id);
    session.trees.lock().unwrap().clear();
    session.opens.drain(None)
}
