//! # tessera-relay
//!
//! The control plane: registry, commitment-checked peer rewrap, backfill, JIT repair, reconciler, alerts,
//! hash-chained audit and admin API. The operator's workstation commands (CA, sealing, statements) are in
//! `tessera-operator`; this crate holds no CA key and no sealing code.
//!
//! - [`engine`]: the rules, sans-IO: messages and ticks in, messages out, state in a [`state::RelayStore`]; rewraps
//!   of one (peer, target) batched on the wire, backfills paced per peer.
//!   [`lifecycle`]: one in-flight delivery as a typed state machine with pure transitions, which the engine drives.
//! - [`coordination`]: what replicas share besides the store (flood windows, the reconciler's turn), in memory or
//!   in Redis with a fallback to memory.
//! - [`alerts`], [`schedule`], [`limits`]: the alert catalogue with deduplication, the
//!   reconciler's backoff table, rate limits and flood counters. [`clock`] makes time injectable.
//! - [`state`]: the storage trait and its sled and PostgreSQL backends; [`runtime`]: `serve` (MQTT event loop, engine worker,
//!   outbox); [`admin`]: the HTTPS admin API under mutual TLS; [`health`]: the plain-HTTP health and metrics
//!   listener; [`service`]: systemd's readiness and watchdog notifications; [`config`], [`tls`].
//!   The audit chain's entries and check are `tessera_proto::audit`.
//!
//! What it does not do: hold any key that opens a credential. It sees ids, ciphertext, commitments, certificates
//! and signatures, and is trusted only for availability and for enforcing rules.
#![forbid(unsafe_code)]

pub mod admin;
pub mod alerts;
pub mod clock;
pub mod config;
pub mod coordination;
pub mod engine;
pub mod health;
pub mod lifecycle;
pub mod limits;
pub mod runtime;
pub mod schedule;
pub mod service;
pub mod state;
pub mod tls;
