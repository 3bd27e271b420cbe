//! Identifier newtypes.

use serde::{Deserialize, Serialize};

/// A listening socket of the server host. Index into [`crate::ServerStack::listeners`];
/// never reused within a run (a closed listener keeps its id).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ListenerId(pub u32);

impl ListenerId {
    /// The index of this listener in the stack's listener table.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

slotmap::new_key_type! {
    /// A request socket (`struct request_sock`, state `NEW_SYN_RECV`).
    pub struct ReqKey;
    /// A child (full) socket created from a request or by a Fast Open SYN.
    pub struct ChildKey;
}
