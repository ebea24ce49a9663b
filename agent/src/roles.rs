//! The two protocol roles, as functions of (keys, store, message, now): no IO beyond the store, so every refusal
//! path is unit-tested.
//!
//! - [`peer`]: re-encrypt a held credential for a target, only to a certified wrap key inside the signed scope.
//! - [`target`]: accept a delivery only after the creator's signature and commitment check out.

pub mod peer;
pub mod target;
