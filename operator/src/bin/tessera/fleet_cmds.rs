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
    // Every recorded delivery, purge and rotation must carry the agent's receipt, checked against the CA's registry.
    let registry = match tessera_operator::issued::Registry::require(&op.dir) {
        Ok(r) => r,
        Err(e) => return fail(2, &e.to_string()),
    };
    let catalogue = match tessera_operator::catalogue::Catalogue::load(&op.dir) {
        Ok(c) => c,
        Err(e) => return fail(2, &e.to_string()),
    };
    let revoked =
        match tessera_operator::revocations::current(&op.client, &op.ca, &op.dir).await {
            Ok(l) => l,
            Err(e) => return fail(2, &e.to_string()),
        };
    let mut receipted = 0usize;
    let mut bad_receipts = Vec::new();
    let mut revoked_signers = 0usize;
    for e in &entries {
        match tessera_operator::receipts::check_entry(e, &registry, &catalogue, &op.ca, &revoked) {
            Some(Ok(())) => receipted += 1,
            // A certificate revoked since (a compromised or removed agent): what its key signed cannot be vouched
            // for, but it is no sign of a lying relay. Counted and reported, not failed.
            Some(Err(tessera_operator::receipts::ReceiptCheck::Revoked(_))) => revoked_signers += 1,
            Some(Err(reason)) => bad_receipts.push(serde_json::json!({
                "seq": e.seq, "kind": e.kind,
                "agent": e.data.get("target").or_else(|| e.data.get("agent")),
                "reason": reason.to_string(),
            })),
            None => {}
        }
    }
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
        Ok(()) if bad_receipts.is_empty() => {
            let (seq, hash) = head.unwrap_or((0, tessera_proto::audit::GENESIS.to_owned()));
            let out = serde_json::json!({ "ok": true, "entries": entries.len(), "head_seq": seq, "head_hash": hash,
                "receipts": receipted, "receipts_by_revoked_signers": revoked_signers });
            let note = if revoked_signers > 0 {
                format!(
                    "; {revoked_signers} signed by agent certificates revoked since (not vouched for: a revoked key \
                     could have signed them at any time)"
                )
            } else {
                String::new()
            };
            print(
                json,
                &out,
                &format!(
                    "audit chain intact: {} entries, head {seq}:{hash}; {receipted} receipts verified{note}",
                    entries.len()
                ),
            );
            ExitCode::SUCCESS
        }
        Ok(()) => {
            let (seq, hash) = head.unwrap_or((0, tessera_proto::audit::GENESIS.to_owned()));
            let lines: Vec<String> = bad_receipts
                .iter()
                .map(|b| {
                    tessera_operator::client::escape_control(&format!(
                        "  entry {} {} agent {}: {}",
                        b["seq"],
                        b["kind"].as_str().unwrap_or(""),
                        b["agent"].as_str().unwrap_or("?"),
                        b["reason"].as_str().unwrap_or("")
                    ))
                })
                .collect();
            let out = serde_json::json!({ "ok": false, "chain": "intact", "entries": entries.len(),
                "head_seq": seq, "head_hash": hash, "receipts": receipted, "bad_receipts": bad_receipts });
            print(
                json,
                &out,
                &format!(
                    "audit chain intact ({} entries, head {seq}:{hash}), but {} recorded deliveries, purges or \
                     rotations have NO VALID RECEIPT from the agent ({receipted} verified):\n{}",
                    entries.len(),
                    lines.len(),
                    lines.join("\n")
                ),
            );
            ExitCode::from(4)
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
