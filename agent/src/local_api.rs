//! The local API: a Unix socket (mode 0660 by default) where workloads get credentials by name.
//!
//! Protocol, one request per line (at most [`protocol::MAX_REQUEST_BYTES`]): `{"op":"get","name":"db"}`,
//! `{"op":"meta","name":"db"}`, `{"op":"list"}`, and for the agent's own uid or root `{"op":"rotate_store_key"}` and
//! `{"op":"status"}`. Each answer is one JSON header line; a successful `get` is followed
//! by exactly `secret_len` bytes of plaintext (the canonical JSON payload), so the secret never passes through a
//! JSON string on the way out. The caller's uid and gid come from `SO_PEERCRED` and are checked against the
//! per-credential policy; every request is audited; a missing credential waits for JIT repair within the budget.

pub mod client;
pub mod limiter;
pub mod protocol;
pub mod server;
