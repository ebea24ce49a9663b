//! `audit verify` and `job ...`.

use std::process::ExitCode;

use crate::cli::{Conn, JobCmd};
use crate::fail;
use crate::session::{api_fail, list, load_operator, print, simple};

pub(crate) async fn audit_verify(conn: &Conn, expect_head: Option<&str>, json: bool) -> ExitCode {
    let expected = match expect_head.map(|h| {
        h.split_once(':')
            .filter(|(_, hash)| hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|(s, hash)| Some((s.parse::<u64>().ok()?, hash.to_ascii_lowercase())))
    }) {
        None => None,
        Some(Some(e)) => Some(e),
        Some(None) => {
            return fail(
                2,
                "--expect-head takes SEQ:HASH (a number, a colon, 64 hex digits) as printed by audit verify",
            )
        }
    };
    let op = match load_operator(conn) {
        Ok(o) => o,
        Err(e) => return fail(2, &e),
    };
    let v = match op.client.get("/v1/audit").await {
        Ok(v) => v,
        Err(e) => return api_fail(&e),
    };
    let entries = match tessera_operator::answers::audit(v) {
        Ok(e) => e,
        Err(e) => return fail(1, &e.to_string()),
    };
    let head = entries.last().map(|e| (e.seq, e.hash.clone()));
    let verdict = tessera_proto::audit::verify(&entries).map_err(|e| e.to_string()).and_then(|()| {
        match &expected {
            Some((seq, hash))
                if !entries.iter().any(|e| e.seq == *seq && e.hash == *hash) =>
            {
                Err(format!(
                    "the trail no longer contains the recorded head {seq}:{hash} (rewritten or truncated)"
                ))
            }
            _ => Ok(()),
        }
    });
    match verdict {
        Ok(()) => {
            let (seq, hash) = head.unwrap_or((0, tessera_proto::audit::GENESIS.to_owned()));
            let out = serde_json::json!({ "ok": true, "entries": entries.len(), "head_seq": seq, "head_hash": hash });
            print(
                json,
                &out,
                &format!(
                    "audit chain intact: {} entries, head {seq}:{hash}",
                    entries.len()
                ),
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            let out = serde_json::json!({ "ok": false, "error": e.clone() });
            print(json, &out, &format!("audit chain BROKEN: {e}"));
            ExitCode::from(4)
        }
    }
}

pub(crate) async fn job_cmd(j: JobCmd, json: bool) -> ExitCode {
    match j {
        JobCmd::Run {
            template,
            agent,
            params,
            credentials,
            conn,
        } => {
            let mut map = serde_json::Map::new();
            for p in &params {
                let Some((k, v)) = p.split_once('=') else {
                    return fail(2, &format!("--param {p:?}: expected K=V"));
                };
                map.insert(k.to_owned(), serde_json::Value::String(v.to_owned()));
            }
            let body = serde_json::json!({ "template": template, "params": map, "credentials": credentials, "agent": agent });
            simple(
                &conn,
                json,
                |c| async move { c.post("/v1/jobs", &body).await },
            )
            .await
        }
        JobCmd::Ls { conn } => {
            list(&conn, "/v1/jobs", json, |v| {
                let result = &v["result"];
                format!(
                    "{}  {:<20} on {:<16} exit {}",
                    v["id"].as_str().unwrap_or(""),
                    v["template"].as_str().unwrap_or(""),
                    v["agent"].as_str().unwrap_or(""),
                    if result.is_null() {
                        "-".to_owned()
                    } else {
                        result["exit_code"].to_string()
                    }
                )
            })
            .await
        }
    }
}
