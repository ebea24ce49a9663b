//! Per-credential read policy for local callers, by the uid and gid from the socket's peer credentials.

use serde::Deserialize;

/// Who may read a credential. Empty lists allow no one; there is no implicit allowance, not even for root.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Caller uids allowed.
    #[serde(default)]
    pub uids: Vec<u32>,
    /// Caller primary gids allowed.
    #[serde(default)]
    pub gids: Vec<u32>,
}

/// A local caller, from `SO_PEERCRED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// Effective uid.
    pub uid: u32,
    /// Effective gid.
    pub gid: u32,
    /// Process id, when reported.
    pub pid: Option<i32>,
}

impl Policy {
    /// Whether `caller` may read.
    pub fn allows(&self, caller: &Caller) -> bool {
        self.uids.contains(&caller.uid) || self.gids.contains(&caller.gid)
    }
}
