//! The JSON error line of the three binaries' `--json`: a failing command writes one line to standard error,
//! `{"error": {"kind": KIND, "message": TEXT, "exit_code": N}}`, instead of `PROGRAM: TEXT` (results stay on
//! standard output; docs/operations.md, "Command-line conventions"). Data only: each binary maps its own exit codes
//! to a kind and writes the line itself.

/// A usage error clap found (exit code 2).
pub const USAGE: &str = "usage";
/// Input, configuration or a contradiction of what was signed (exit code 2).
pub const INVALID: &str = "invalid";
/// The other side refused (exit code 3).
pub const REFUSED: &str = "refused";
/// A signature, chain or certificate check failed (exit code 4).
pub const VERIFICATION_FAILED: &str = "verification_failed";
/// Any other failure.
pub const FAILED: &str = "failed";

/// The kind shared by every binary for exit `code`: 2 [`INVALID`], 3 [`REFUSED`], 4 [`VERIFICATION_FAILED`],
/// anything else [`FAILED`].
#[must_use]
pub fn kind_of(code: u8) -> &'static str {
    match code {
        2 => INVALID,
        3 => REFUSED,
        4 => VERIFICATION_FAILED,
        _ => FAILED,
    }
}

/// The JSON error document for `kind`, `message` and `code`.
#[must_use]
pub fn document(kind: &str, message: &str, code: u8) -> serde_json::Value {
    serde_json::json!({ "error": { "kind": kind, "message": message, "exit_code": code } })
}

/// Whether the raw command line asks for JSON (for errors found before it could be parsed): a `--json` before any
/// `--` (what follows `--` belongs to a child command).
#[must_use]
pub fn requested(args: &[std::ffi::OsString]) -> bool {
    args.iter()
        .take_while(|a| *a != "--")
        .any(|a| a == "--json")
}

/// The one-line message of a clap usage error: its first paragraph (without `error: `, the lines naming what is
/// missing joined in), pointing at the `--help` of the (sub)command its `Usage:` line names, else `PROGRAM --help`.
#[must_use]
pub fn usage_message(rendered: &str, program: &str) -> String {
    let text = rendered
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ");
    let text = text.strip_prefix("error: ").unwrap_or(&text);
    // `Usage: tessera cred show [OPTIONS] <NAME>`: the command words before the first option or argument.
    let command = rendered
        .lines()
        .find_map(|l| l.trim().strip_prefix("Usage: "))
        .map(|u| {
            u.split_whitespace()
                .take_while(|w| !w.starts_with(['<', '[', '-']))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|c| c.split_whitespace().next() == Some(program))
        .unwrap_or_else(|| program.to_owned());
    format!("{text} (see `{command} --help`)")
}

#[cfg(test)]
mod tests;
