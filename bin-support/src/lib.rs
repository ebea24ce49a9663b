//! # tessera-bin-support
//!
//! The plumbing the three binaries (`tessera-agent`, `tessera-relay`, `tessera`) share, written once:
//! - [`log_setup`]: the log setup (filter from `TESSERA_LOG`/`RUST_LOG`, `--log-format text|json`, no colours off a
//!   terminal), installing a `tracing` subscriber on stderr.
//! - [`cli_docs`] (feature `cli-docs`): `completions SHELL` and `man`, generated from a binary's clap command tree.
//! - [`help_check`]: the unit-test check that a clap command tree is consistent and documents every argument and
//!   subcommand.
//! - [`systemd_notify`]: systemd's service notifications (`READY=1`, `STOPPING=1`, `WATCHDOG=1`) and the watchdog
//!   interval systemd asks for.
//! - `build/git_commit.rs` (not a module): the build script each binary's build.rs `include!`s, for `--version`.
//!
//! What it does not do: no protocol, no policy, no configuration, no runtime of its own. Each binary keeps its own
//! watchdog loop (what "alive" means differs) and its own signal handling; the protocol is in `tessera-proto`.
#![forbid(unsafe_code)]

#[cfg(feature = "cli-docs")]
pub mod cli_docs;
pub mod help_check;
pub mod log_setup;
pub mod systemd_notify;
