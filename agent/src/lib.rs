//! # tessera-agent
//!
//! The agent that runs on every appliance:
//! - [`store`]: keys and credentials in an encrypted sled store, the store key sealed by `tessera-board`
//!   ([`unseal`]); [`enroll`] and [`identity`] create and load the agent's keys and certificate.
//! - [`session`]: MQTT over TLS with the agent certificate, one task owning the event loop, reconnect with jittered
//!   backoff, the registration state machine.
//! - [`core`]: the worker that owns the agent's state and runs the [`roles`]: peer (rewrap for a certified target in
//!   scope) and target (verify, open, check the commitment, store, flush, acknowledge), one credential at a time or
//!   several in one envelope (batched rewrap, docs/protocol.md).
//! - [`local_api`]: credentials served just in time to local workloads over a Unix socket, by uid/gid policy, with
//!   an audit of every read and JIT repair for missing ones; [`exec`] and [`jobs`] inject credentials into child
//!   processes (jobs only from templates in the local configuration).
//! - [`service`]: systemd's readiness and watchdog notifications, and SIGHUP.
//! - [`rotation`]: blue/green rotation of the agent's own keys and certificate, a persisted state machine; the CA
//!   that certifies the new keys stays offline with the operators.
//!
//! - [`status`] and [`metrics`]: `tessera-agent status` through the local API, and the node_exporter textfile.
//!
//! What it does not do: trust the relay or the broker. Every statement it acts on is verified against the pinned
//! org CA; it never encrypts to a key that is not in a certificate from that CA; it never runs a command line the
//! relay supplies.
#![forbid(unsafe_code)]

pub mod clock;
pub mod config;
pub mod config_edit;
pub mod core;
pub mod enroll;
pub mod exec;
pub mod identity;
pub mod jobs;
pub mod local_api;
pub mod metrics;
pub mod payload_text;
pub mod private_dir;
pub mod roles;
pub mod rotation;
pub mod runtime;
pub mod service;
pub mod session;
pub mod sibling_temp;
pub mod status;
pub mod store;
pub mod store_key;
pub mod unseal;

#[cfg(test)]
mod fixtures;
