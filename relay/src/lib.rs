//! # tessera-relay
//!
//! The control plane and the operator commands: registry, commitment-checked peer rewrap, backfill, JIT repair,
//! reconciler, alerts, hash-chained audit and admin API; `ca`, `cred`, `grant`, `job` subcommands that run on an
//! operator's workstation and encrypt there.
//!
//! Status: the wire protocol and crypto it builds on are in `tessera-proto`; the relay itself arrives with the
//! issue "Relay".
//!
//! What it does not do: hold any key that opens a credential. It sees ids, ciphertext, commitments, certificates
//! and signatures, and is trusted only for availability and for enforcing rules.
#![forbid(unsafe_code)]
