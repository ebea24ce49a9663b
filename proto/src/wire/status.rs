//! Presence: the retained message on an agent's status topic (also its Last Will).

use serde::{Deserialize, Serialize};

use super::{WireError, WireMessage};

/// An agent's state as the relay and operators see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AgentState {
    /// Connected and serving; eligible for jobs.
    Online,
    /// Connected, still receiving its backfill; not eligible for jobs.
    Backfilling,
    /// Disconnected (the Last Will, or a clean shutdown).
    Offline,
}

/// The retained status message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Status {
    /// The state.
    pub state: AgentState,
    /// When the agent published it, unix seconds (0 in a Last Will, whose time the broker decides).
    pub at: i64,
}

impl WireMessage for Status {
    fn validate(&self) -> Result<(), WireError> {
        Ok(())
    }
}
