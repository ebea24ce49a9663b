//! # tessera-operator
//!
//! The operator's workstation: the org CA, sealing credentials, signing statements, and the admin API client
//! behind the `tessera` binary. Plaintext is read and encrypted here; only signed statements and envelopes sealed
//! to CA-certified agent keys go to the relay.
//!
//! It trusts nothing the relay says. Which id a name has, the current statement, scope and version come from
//! the operator's own [`catalogue`] of what operators signed, and the relay's answers are checked against it; the
//! agents sealed to come from the CA's registry of issued certificates ([`issued`], [`certified`]) and the newest
//! CA-signed revocation list ([`revocations`]). A contradiction is an error; nothing is signed or sealed on it.
//!
//! - [`ca`]: the org CA directory (`ca init`, `issue-agent`, `issue-operator`, `issue-service`, `revoke`, `renew`);
//!   [`renew`]: which queued key rotations to certify and which old certificates to retire; [`agent_rotate`]: asks
//!   the relay to rotate a certified agent's keys (`agents rotate`, the dashboard).
//! - [`receipts`]: agents' signed receipts of deliveries, purges and rotations, checked against the CA's registry.
//! - [`cred`]: put, rotate, import, grant, revoke, rm, adopt; [`scope_diff`]: the scope change printed and checked.
//! - [`client`], [`tls`], [`answers`]: the admin API over mutual TLS and the parsing of its answers.
//! - [`delivery_proof`]: a credential's delivery rows judged against receipts and what was signed (`cred show`, the
//!   dashboard).
//! - [`dashboard`]: `tessera dashboard`, the operator's local web UI.
//! - [`files`]: atomic JSON files of the operator and CA directories.
//!
//! What it does not do: run the relay, talk MQTT, or keep any secret after a command ends (the CA key and the
//! operator key stay in their 0600 files).
#![forbid(unsafe_code)]

pub mod agent_rotate;
pub mod answers;
pub mod ca;
pub mod catalogue;
pub mod certified;
pub mod client;
pub mod cred;
pub mod dashboard;
pub mod delivery_proof;
pub mod files;
pub mod issued;
pub mod receipts;
pub mod renew;
pub mod revocations;
pub mod scope_diff;
pub mod tls;

#[cfg(test)]
mod test_certs;
