//! # tessera-system-tests
//!
//! System tests: a real Mosquitto on a free port with a generated TLS and ACL configuration, the relay and agents
//! as real processes, faults, and the hostile-relay suite. The harness and the scenarios arrive with the issue
//! "The whole system on a real broker"; this crate holds their shared helpers.
#![forbid(unsafe_code)]
