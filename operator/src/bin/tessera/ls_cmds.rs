//! The `ls` commands (`cred ls`, `agents ls`, `alerts ls`, `audit ls`, `job ls`): the relay's lists as tables with
//! a header, sorted, times in RFC 3339 UTC (`table`); `--json` prints the entries, sorted the same way.

use std::fmt::Write as _;
use std::process::ExitCode;

use crate::cli::Conn;
use crate::table::{list, text, time_ms, Spec};

fn keep_all(_: &serde_json::Value) -> bool {
    true
}

/// `cred ls`: sorted by name.
pub(crate) async fn cred_ls(conn: &Conn, json: bool) -> ExitCode {
    let spec = Spec {
        headers: &["NAME", "VERSION", "SYNC", "STATE", "SCOPE", "ID"],
        cells: &|v| {
            vec![
                text(&v["name"]),
                format!("v{}", v["version"]),
                cred_sync(v),
                cred_state(v),
                cred_scope(v),
                text(&v["id"]),
            ]
        },
        key: &|v| {
            format!(
                "{}\u{0}{:020}",
                text(&v["name"]),
                v["version"].as_u64().unwrap_or(0)
            )
        },
        keep: &keep_all,
    };
    list(conn, "/v1/credentials", json, &spec).await
}

fn cred_sync(v: &serde_json::Value) -> String {
    let p = &v["purge"];
    if p.is_object() {
        let mut line = format!("deleted, purged {}/{}", p["purged"], p["of"]);
        let offline = p["offline"].as_u64().unwrap_or(0);
        if offline > 0 {
            let _ = write!(line, ", {offline} offline");
        }
        return line;
    }
    let s = &v["sync"];
    format!("synced {}/{}", s["synced"], s["of"])
}

fn cred_state(v: &serde_json::Value) -> String {
    let s = &v["sync"];
    if v["deleted"].as_bool() == Some(true) {
        "deleted".to_owned()
    } else if s["integrity_failure"].as_bool() == Some(true) {
        "integrity failure".to_owned()
    } else if s["stalled"].as_u64().unwrap_or(0) > 0 {
        format!("stalled {}", s["stalled"])
    } else if s["pending"].as_u64().unwrap_or(0) > 0 {
        format!("pending {}", s["pending"])
    } else {
        "synced".to_owned()
    }
}

fn cred_scope(v: &serde_json::Value) -> String {
    match v.pointer("/scope/type").and_then(|t| t.as_str()) {
        Some("explicit") => format!(
            "[{}]",
            v.pointer("/scope/agents")
                .and_then(|a| a.as_array())
                .map(|a| a
                    .iter()
                    .filter_map(|x| x.as_str())
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default()
        ),
        Some(other) => other.to_owned(),
        None => "?".to_owned(),
    }
}

/// `agents ls`: sorted by id.
///
/// A presence the relay marks `stale` (its broker link is down: it cannot see agents go) shows as `stale`, never
/// `online` or `backfilling`. VERSION is what the agent stated when it registered, relayed and unverified (`-`
/// when not reported).
pub(crate) async fn agents_ls(conn: &Conn, json: bool) -> ExitCode {
    let spec = Spec {
        headers: &["AGENT", "STATE", "MODE", "LAST SEEN", "VERSION"],
        cells: &|v| {
            let state = if v["stale"] == true {
                "stale".to_owned()
            } else {
                text(&v["state"])
            };
            vec![
                text(&v["id"]),
                state,
                text(&v["mode"]),
                time_ms(&v["last_seen_ms"]),
                text(&v["version"]),
            ]
        },
        key: &|v| text(&v["id"]),
        keep: &keep_all,
    };
    list(conn, "/v1/agents", json, &spec).await
}

/// `alerts ls`: the most severe first, then by kind and subject.
pub(crate) async fn alerts_ls(conn: &Conn, json: bool) -> ExitCode {
    let spec = Spec {
        headers: &[
            "SEVERITY", "KIND", "COUNT", "SUBJECT", "RAISED", "LAST", "MESSAGE",
        ],
        cells: &|v| {
            vec![
                text(&v["severity"]),
                text(&v["kind"]),
                v["count"].to_string(),
                text(&v["subject"]),
                time_ms(&v["raised_ms"]),
                time_ms(&v["last_ms"]),
                text(&v["message"]),
            ]
        },
        key: &|v| {
            let rank = match v["severity"].as_str() {
                Some("critical") => 0,
                Some("high") => 1,
                Some("medium") => 2,
                _ => 3,
            };
            format!(
                "{rank}\u{0}{}\u{0}{}",
                text(&v["kind"]),
                text(&v["subject"])
            )
        },
        keep: &keep_all,
    };
    list(conn, "/v1/alerts", json, &spec).await
}

/// `audit ls [--kind KIND]`: oldest first (by sequence number).
pub(crate) async fn audit_ls(conn: &Conn, kind: Option<&str>, json: bool) -> ExitCode {
    let keep = |v: &serde_json::Value| kind.is_none_or(|k| v["kind"] == k);
    let spec = Spec {
        headers: &["SEQ", "AT", "KIND", "DATA"],
        cells: &|v| {
            let data = v["data"].as_object().map_or_else(String::new, |d| {
                d.iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                    .collect::<Vec<_>>()
                    .join(" ")
            });
            vec![
                v["seq"].to_string(),
                time_ms(&v["at_ms"]),
                text(&v["kind"]),
                data,
            ]
        },
        key: &|v| format!("{:020}", v["seq"].as_u64().unwrap_or(0)),
        keep: &keep,
    };
    list(conn, "/v1/audit", json, &spec).await
}

/// `job ls`: oldest dispatch first.
pub(crate) async fn job_ls(conn: &Conn, json: bool) -> ExitCode {
    let spec = Spec {
        headers: &["JOB", "TEMPLATE", "AGENT", "DISPATCHED", "EXIT"],
        cells: &|v| {
            let result = &v["result"];
            vec![
                text(&v["id"]),
                text(&v["template"]),
                text(&v["agent"]),
                time_ms(&v["dispatched_ms"]),
                if result.is_null() {
                    "-".to_owned()
                } else {
                    result["exit_code"].to_string()
                },
            ]
        },
        key: &|v| {
            format!(
                "{:020}\u{0}{}",
                v["dispatched_ms"].as_u64().unwrap_or(0),
                text(&v["id"])
            )
        },
        keep: &keep_all,
    };
    list(conn, "/v1/jobs", json, &spec).await
}
