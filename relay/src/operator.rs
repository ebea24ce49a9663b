//! Operator commands that run on the operator's workstation: the org CA (`ca ...`) and the admin API client
//! (`cred ...`, `agents ls`, `alerts ls`, `audit verify`, `job ...`). Plaintext is read and sealed here; only the
//! signed statement and envelopes to CA-verified agent keys are sent to the relay.

pub mod ca;
pub mod client;
pub mod cred;
pub mod revocations;
