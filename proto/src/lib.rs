//! # tessera-proto
//!
//! The Tessera protocol as data: everything two parties must agree on, and nothing that does IO.
//!
//! What it does:
//! - [`envelope`]: seal a secret to an agent's RSA-2048 wrap key and open it (RSA-OAEP-SHA256 + AES-256-GCM, the
//!   field layout of docs/protocol.md "Envelope", byte-compatible with the reference implementation); a batch of
//!   credentials in one envelope ([`envelope::batch`]).
//! - [`commitment`]: the creator's HMAC-SHA-256 commitment over (domain tag, credential id, version, canonical
//!   plaintext), verified in constant time.
//! - [`cert`]: the org CA (P-256), agent and operator X.509 certificates, enrolment and renewal requests, and
//!   certificate verification against the pinned CA (chain, validity window, revocation, role).
//! - [`statement`]: statements signed over their exact RFC 8785 bytes: credential statements and revocation lists.
//! - [`wire`] and [`topics`]: versioned, size-capped, strictly validated wire messages and the MQTT topic schema.
//! - [`receipt`]: what an agent signs when it acknowledges a delivery, a purge or a rotation, so that the relay
//!   cannot record one that did not happen.
//! - [`secret`]: secret wrapper types (redacted `Debug`, zeroized on drop, exposed only inside a closure).
//! - [`ids`]: validated identifiers that cannot inject MQTT wildcards or separators.
//! - [`admin`]: the admin API's JSON bodies (data only; the operator's tools verify every answer).
//! - [`audit`]: the relay's hash-chained audit entries and the chain check that `tessera audit verify` runs.
//! - [`pem_files`]: the one PEM/DER loader for certificates and keys.
//! - [`broker_config`]: the Mosquitto configuration and ACL for an org's broker (text only).
//! - [`cli_error`]: the JSON error line (`--json`) the three binaries write on standard error.
//! - [`backoff`]: reconnect delays with full jitter (a policy, no timer: callers sleep).
//!
//! What it does not do: no sockets, no files, no logging setup, no clocks of its own (callers pass `now`), no async
//! runtime. Persistence, transport and policy live in `tessera-agent` and `tessera-relay`; the binaries' shared
//! plumbing (log setup, completions, systemd notifications) in `tessera-bin-support`.
//! Persistence, transport and policy live in `tessera-agent` and `tessera-relay`.
#![forbid(unsafe_code)]

pub mod admin;
pub mod audit;
pub mod backoff;
pub mod broker_config;
pub mod canonical;
pub mod cert;
pub mod cli_error;
pub mod commitment;
pub mod envelope;
pub mod ids;
pub mod pem_files;
pub mod receipt;
pub mod secret;
pub mod statement;
pub mod topics;
pub mod wire;

pub mod b64;
mod random;

pub use b64::{decode as b64_decode, encode as b64_encode};
