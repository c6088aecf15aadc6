//! Sessions (MS-SMB2 3.3.1.8): an authenticated user, its trees and its opens.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::open::OpenTable;
use crate::tree::Tree;

/// Who a session is logged on as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub domain: String,
}

#[derive(Debug)]
pub struct Session {
    pub id: u64,
    pub identity: Identity,
    pub trees: Mutex<HashMap<u32, Arc<Tree>>>,
    pub opens: OpenTable,
}

impl Session {
    pub fn new(id: u64, identity: Identity) -> Session {
        Session {
            id,
            identity,
            trees: Mutex::new(HashMap::new()),
            opens: OpenTable::default(),
        }
    }

    pub fn tree(&self, tree_id: u32) -> Option<Arc<Tree>> {
        self.trees.lock().unwrap().get(&tree_id).cloned()
    }
}
