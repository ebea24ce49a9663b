//! `--json` for failures: with `--json`, a failing command writes one line to standard error,
//! `{"error": {"kind": KIND, "message": TEXT, "exit_code": N}}`, instead of `tessera: TEXT` (results stay on
//! standard output, so a script reads a result from stdout or an error from stderr, and the exit code says which;
//! docs/operations.md, "Command-line conventions").

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use tessera_proto::cli_error;

static JSON: AtomicBool = AtomicBool::new(false);

/// Turns JSON errors on for the rest of the process (`--json`).
pub(crate) fn set(on: bool) {
    JSON.store(on, Ordering::Relaxed);
}

/// The error kind of an exit code: `invalid` (2: usage, input, or a relay contradicting what was signed),
/// `refused` (3: the relay refused), `verification_failed` (4), `failed` (1 and anything else); the kinds and the
/// document are `tessera_proto::cli_error`'s, shared with `tessera-agent` and `tessera-relay`.
pub(crate) fn kind_of(code: u8) -> &'static str {
    cli_error::kind_of(code)
}

/// The JSON error document for `kind`, `message` and `code`.
pub(crate) fn document(kind: &str, message: &str, code: u8) -> serde_json::Value {
    cli_error::document(kind, message, code)
}

/// Reports a failure of `kind` (as JSON with `--json`, else as text) and returns exit code `code`.
pub(crate) fn fail_kind(code: u8, kind: &str, message: &str) -> ExitCode {
    if JSON.load(Ordering::Relaxed) {
        eprintln!("{}", document(kind, message, code));
    } else {
        eprintln!("tessera: {message}");
    }
    ExitCode::from(code)
}

/// Whether the raw command line asks for JSON (for errors found before it could be parsed).
pub(crate) fn requested(args: &[std::ffi::OsString]) -> bool {
    cli_error::requested(args)
}

#[cfg(test)]
mod tests;
