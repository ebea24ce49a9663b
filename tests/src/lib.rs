//! # tessera-system-tests
//!
//! System tests: a real Mosquitto on a free port with a generated TLS and ACL configuration ([`broker`]), the
//! relay and agents as real processes, faults, and the hostile-relay suite. The scenarios that need the relay
//! arrive with the issue "The whole system on a real broker"; the broker harness is shared with the agent's
//! wire tests.
#![forbid(unsafe_code)]

pub mod bins;
pub mod broker;
pub mod org;
