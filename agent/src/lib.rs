//! # tessera-agent
//!
//! The agent that runs on every appliance: keys and credentials in an encrypted sled store (store key sealed by
//! `tessera-board`), credentials served just in time to local workloads over a Unix socket, jobs run from locally
//! defined templates with credentials injected, and the peer and target roles of the rewrap protocol over MQTT.
//!
//! What it does not do: trust the relay. Every statement it acts on is verified against the pinned org CA.
#![forbid(unsafe_code)]

pub mod config;
pub mod enroll;
pub mod identity;
pub mod roles;
pub mod store;
pub mod unseal;

#[cfg(test)]
mod fixtures;
