//! `--json` for `tessera-agent`: results as JSON on standard output, and a failure as one line on standard error,
//! `{"error": {"kind": KIND, "message": TEXT, "exit_code": N}}` (the operator's `tessera` and `tessera-relay` write
//! the same line: `tessera_proto::cli_error`), instead of `tessera-agent: TEXT`. docs/operations.md,
//! "Command-line conventions".

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use tessera_agent::local_api::client::ClientError;
use tessera_agent::local_api::protocol::ApiError;
use tessera_proto::cli_error;

static JSON: AtomicBool = AtomicBool::new(false);

/// Turns JSON output on for the rest of the process (`--json`).
pub(crate) fn set(on: bool) {
    JSON.store(on, Ordering::Relaxed);
}

/// Whether `--json` is on.
pub(crate) fn on() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// The kind of the agent's exit `code`: the shared kinds (2 `invalid`, 3 `refused`: enrolled differently, 4
/// `verification_failed`: certificate rejected, else `failed`).
fn kind_of(code: u8) -> &'static str {
    cli_error::kind_of(code)
}

/// Reports a failure (as JSON with `--json`, else as text) and returns exit code `code`.
pub(crate) fn fail(code: u8, message: &str) -> ExitCode {
    fail_kind(code, kind_of(code), message)
}

/// Reports a failure of `kind` and returns exit code `code`.
pub(crate) fn fail_kind(code: u8, kind: &str, message: &str) -> ExitCode {
    if on() {
        eprintln!("{}", cli_error::document(kind, message, code));
    } else {
        eprintln!("tessera-agent: {message}");
    }
    ExitCode::from(code)
}

/// The exit code of a typed local API error: 10 + its number (docs/operations.md).
fn api_code(code: ApiError) -> u8 {
    match code {
        ApiError::NotGranted => 11,
        ApiError::NotFound => 12,
        ApiError::Timeout => 13,
        ApiError::RateLimited => 14,
        ApiError::BackendBusy => 15,
        ApiError::CommitmentMismatch => 16,
        ApiError::NoPeer => 17,
        ApiError::Busy => 18,
        ApiError::Invalid => 19,
        ApiError::Quarantined => 21,
        _ => 20,
    }
}

/// The exit code and kind of a local API client error: a typed error the agent answered exits 10 + its number and
/// its kind is the error's name in lower case (`not_granted`, `not_found`, ...); a socket failure exits 1, `failed`.
pub(crate) fn api_exit_kind(e: &ClientError) -> (u8, String) {
    match e {
        ClientError::Api { code, .. } => {
            let name = serde_json::to_value(code)
                .ok()
                .and_then(|v| v.as_str().map(str::to_ascii_lowercase))
                .unwrap_or_else(|| cli_error::FAILED.to_owned());
            (api_code(*code), name)
        }
        _ => (1, cli_error::FAILED.to_owned()),
    }
}

/// Reports a local API client error, `context` before its text.
pub(crate) fn api_fail(context: &str, e: &ClientError) -> ExitCode {
    let (code, kind) = api_exit_kind(e);
    fail_kind(code, &kind, &format!("{context}{e}"))
}

/// Writes `value` as one JSON line on standard output.
pub(crate) fn print(value: &impl serde::Serialize) {
    let mut out = std::io::stdout().lock();
    if serde_json::to_writer(&mut out, value).is_ok() {
        let _ = out.write_all(b"\n");
    }
}

#[cfg(test)]
mod tests;
