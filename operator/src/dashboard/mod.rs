//! `tessera dashboard`: a local web UI for the operator, on the operator's workstation (docs/operations.md,
//! "Dashboard").
//!
//! It listens on a loopback address only (unless told otherwise), answers only to a random per-run host name, admits
//! a browser once by a single-use login token and then by a session cookie, and talks to the relay's admin API with
//! the operator's own mutual-TLS identity. Whatever needs a signature (grant, revoke, delete) is signed here by the
//! same library code as the `tessera` commands, and "Rotate keys" is `tessera agents rotate`'s
//! [`crate::agent_rotate`]: the relay never gets a key. It trusts the relay no more than the
//! commands do: sync counts and chips are judged from the agents' signed receipts against the operator's
//! catalogue ([`crate::delivery_proof`]), and every string the relay supplies is HTML-escaped ([`html`]).
//!
//! - [`server`]: binding (loopback check), the host name and login token, serving;
//! - [`routes`]: the pages, the live fragments and the actions; [`auth`]: the secrets, the cookie and request checks;
//! - [`snapshot`]: what the relay says, judged; [`views`]: the HTML; [`assets`]: the CSS and JavaScript served;
//! - [`cache`]: one answer shared by every tab per refresh interval, and the cap on rows shown;
//! - [`cooldown`]: the retry cooldown the dashboard enforces itself.

mod assets;
mod auth;
mod cache;
mod cooldown;
mod html;
mod identity;
mod routes;
mod server;
mod snapshot;
mod views;

pub use identity::Identity;
pub use server::{bind, Bound, DashboardError};

#[cfg(test)]
mod tests;
