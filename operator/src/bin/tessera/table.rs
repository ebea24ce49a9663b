//! The text tables of the `ls` commands: a header line, then one row per entry sorted by the command's key, columns
//! padded to their widest cell, times in RFC 3339 (UTC). Every cell is the relay's text with control characters
//! escaped, so it cannot forge or hide lines on the terminal. With `--json` the entries are printed instead (sorted
//! the same way).

use std::process::ExitCode;

use crate::cli::Conn;
use crate::fail;
use crate::session::{api_fail, load_operator, print};

/// How one `ls` shows the relay's list.
pub(crate) struct Spec<'a> {
    /// The column titles.
    pub(crate) headers: &'a [&'a str],
    /// The cells of one entry, one per header.
    pub(crate) cells: &'a dyn Fn(&serde_json::Value) -> Vec<String>,
    /// The sort key of an entry.
    pub(crate) key: &'a dyn Fn(&serde_json::Value) -> String,
    /// Which entries to show.
    pub(crate) keep: &'a dyn Fn(&serde_json::Value) -> bool,
}

/// Fetches `path`, and prints the entries `spec` keeps, sorted, as a table (or JSON).
pub(crate) async fn list(conn: &Conn, path: &str, json: bool, spec: &Spec<'_>) -> ExitCode {
    let op = match load_operator(conn) {
        Ok(o) => o,
        Err(e) => return fail(2, &e),
    };
    let v = match op.client.get(path).await {
        Ok(v) => v,
        Err(e) => return api_fail(&e),
    };
    let mut kept: Vec<serde_json::Value> = v
        .as_array()
        .map(|a| a.iter().filter(|e| (spec.keep)(e)).cloned().collect())
        .unwrap_or_default();
    kept.sort_by_cached_key(|e| (spec.key)(e));
    let rows: Vec<Vec<String>> = kept.iter().map(|e| (spec.cells)(e)).collect();
    print(
        json,
        &serde_json::Value::Array(kept),
        &render(spec.headers, &rows),
    );
    ExitCode::SUCCESS
}

/// The table: headers and rows, each cell escaped, columns padded (the last one is not).
pub(crate) fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let escaped: Vec<Vec<String>> =
        std::iter::once(headers.iter().map(|h| (*h).to_owned()).collect())
            .chain(rows.iter().map(|r| {
                r.iter()
                    .map(|c| tessera_operator::client::escape_control(c))
                    .collect()
            }))
            .collect();
    let mut widths = vec![0usize; headers.len()];
    for row in &escaped {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    escaped
        .iter()
        .map(|row| {
            let last = row.len().saturating_sub(1);
            row.iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, (cell, w))| {
                    if i == last {
                        cell.clone()
                    } else {
                        format!("{cell:<w$}")
                    }
                })
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A time in milliseconds since the Unix epoch as RFC 3339 UTC (`2026-12-06T19:44:18Z`); `-` when absent or 0.
pub(crate) fn time_ms(v: &serde_json::Value) -> String {
    v.as_u64()
        .filter(|ms| *ms > 0)
        .and_then(|ms| time_secs(i64::try_from(ms / 1000).ok()?))
        .unwrap_or_else(|| "-".to_owned())
}

/// A time in seconds since the Unix epoch as RFC 3339 UTC.
pub(crate) fn time_secs(secs: i64) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()?
        .format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// A JSON string field, or `-`.
pub(crate) fn text(v: &serde_json::Value) -> String {
    v.as_str().map_or_else(|| "-".to_owned(), str::to_owned)
}

#[cfg(test)]
mod tests;
