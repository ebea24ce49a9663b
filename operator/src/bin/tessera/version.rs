//! The version `--version` prints: the crate version and the git commit it was built from (build.rs).

/// `0.1.0 (commit 1a2b3c4)`; `unknown` for a build outside a git checkout.
pub(crate) const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("TESSERA_GIT_COMMIT"),
    ")"
);
