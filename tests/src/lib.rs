//! # tessera-system-tests
//!
//! The whole system on a real broker, for the system tests and the demo:
//! - [`broker`]: Mosquitto on a free port with a generated TLS, client-certificate and pattern-ACL configuration;
//! - [`cluster`]: the org, the relay and agents as real processes driven through their command lines;
//! - [`wire_relay`]: a client with the relay's rights on the broker that is not the relay (the agents' wire tests,
//!   the hostile-relay suite, the demo's compromised relay);
//! - [`org`]: an org made in memory (keys, certificates, signed statements, sealed deliveries);
//! - [`bins`]: the workspace's binaries, built on demand.
//!
//! It is not a product crate: nothing here runs on an appliance or in the control plane.
#![forbid(unsafe_code)]

pub mod bins;
pub mod broker;
pub mod cluster;
pub mod mqtt;
pub mod org;
pub mod wire_agent;
pub mod wire_relay;
pub mod wire_world;
