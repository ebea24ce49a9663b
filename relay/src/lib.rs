//! # tessera-relay
//!
//! The control plane and the operator commands: registry, commitment-checked peer rewrap, backfill, JIT repair,
//! reconciler, alerts, hash-chained audit and admin API; `ca`, `cred`, `grant`, `job` subcommands that run on an
//! operator's workstation and encrypt there.
//!
//! - [`engine`]: the rules, sans-IO: messages and ticks in, messages out, state in a [`state::RelayStore`].
//! - [`audit`], [`alerts`], [`schedule`], [`limits`]: the chain, the alert catalogue with deduplication, the
//!   reconciler's backoff table, rate limits and flood counters. [`clock`] makes time injectable.
//! - [`state`]: the storage trait and its sled backend; [`runtime`]: `serve` (MQTT event loop, engine worker,
//!   outbox); [`admin`]: the HTTPS admin API under mutual TLS; [`operator`]: the workstation commands (CA, credential
//!   put with local sealing, re-scoping) and the admin API client; [`config`], [`tls`].
//!
//! What it does not do: hold any key that opens a credential. It sees ids, ciphertext, commitments, certificates
//! and signatures, and is trusted only for availability and for enforcing rules.
#![forbid(unsafe_code)]

pub mod admin;
pub mod alerts;
pub mod audit;
pub mod clock;
pub mod config;
pub mod engine;
pub mod limits;
pub mod operator;
pub mod runtime;
pub mod schedule;
pub mod state;
pub mod tls;
