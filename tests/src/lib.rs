//! # tessera-system-tests
//!
//! The whole system on a real broker, for the system tests and the demo:
//! - [`broker`]: Mosquitto on a free port with a generated TLS, client-certificate and pattern-ACL configuration;
//! - [`mosquitto_clients`]: `mosquitto_pub`/`mosquitto_sub` with client certificates, to check an ACL;
//! - [`acl_steps`]: the ACL checks the broker tests share (no agent speaks as the relay or as another agent);
//! - [`cluster`]: the org, the relay and agents as real processes driven through their command lines;
//! - [`wire_relay`]: a client with the relay's rights on the broker that is not the relay (the agents' wire tests,
//!   the hostile-relay suite, the demo's compromised relay);
//! - [`lying_admin`]: a compromised relay's admin API that answers what a test scripts (the operator's hostile
//!   suite);
//! - [`operator_calls`]: the `tessera` command against it, and what it sent;
//! - [`org`]: an org made in memory (keys, certificates, signed statements, sealed deliveries);
//! - [`pg`]: a PostgreSQL database of its own per test, for the relay's PostgreSQL backend;
//! - [`plain_http`]: a plain-HTTP GET for the relay's health listener;
//! - [`bins`]: the workspace's binaries, built on demand.
//!
//! It is not a product crate: nothing here runs on an appliance or in the control plane.
#![forbid(unsafe_code)]

pub mod acl_steps;
pub mod bins;
pub mod broker;
pub mod cluster;
pub mod lying_admin;
pub mod mosquitto_clients;
pub mod mqtt;
pub mod operator_calls;
pub mod org;
pub mod pg;
pub mod plain_http;
pub mod process_stats;
pub mod redis;
pub mod webdriver;
pub mod wire_agent;
pub mod wire_relay;
pub mod wire_world;
