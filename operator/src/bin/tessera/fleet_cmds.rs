//! `audit verify` (the hash chain and the agents' receipts) and `job ...`.

use std::fmt::Write as _;
use std::process::ExitCode;

use tessera_operator::receipts::Tally;
use tessera_proto::audit::AuditEntry;

use crate::cli::{Conn, JobCmd};
use crate::fail;
use crate::session::{api_fail, load_operator, print, simple, OperatorFiles};

fn parse_head(expect_head: Option<&str>) -> Result<Option<(u64, String)>, ExitCode> {
    match expect_head.map(|h| {
        h.split_once(':')
            .filter(|(_, hash)| hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|(s, hash)| Some((s.parse::<u64>().ok()?, hash.to_ascii_lowercase())))
    }) {
        None => Ok(None),
        Some(Some(e)) => Ok(Some(e)),
        Some(None) => Err(fail(
            2,
            "--expect-head takes SEQ:HASH (a number, a colon, 64 hex digits) as printed by audit verify",
        )),
    }
}

/// Every recorded delivery, purge and rotation must carry the agent's receipt, checked against the CA's registry.
async fn receipt_tally(op: &OperatorFiles, entries: &[AuditEntry]) -> Result<Tally, ExitCode> {
    let registry = tessera_operator::issued::Registry::require(&op.dir)
        .map_err(|e| fail(2, &e.to_string()))?;
    let catalogue = tessera_operator::catalogue::Catalogue::load(&op.dir)
        .map_err(|e| fail(2, &e.to_string()))?;
    let revoked = tessera_operator::revocations::current(&op.client, &op.ca, &op.dir)
        .await
        .map_err(|e| fail(2, &e.to_string()))?;
    Ok(tessera_operator::receipts::tally(
        entries, &registry, &catalogue, &op.ca, &revoked,
    ))
}

pub(crate) async fn audit_verify(conn: &Conn, expect_head: Option<&str>, json: bool) -> ExitCode {
    let expected = match parse_head(expect_head) {
        Ok(e) => e,
        Err(code) => return code,
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
    let tally = match receipt_tally(&op, &entries).await {
        Ok(t) => t,
        Err(code) => return code,
    };
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
    let (seq, hash) = entries.last().map_or_else(
        || (0, tessera_proto::audit::GENESIS.to_owned()),
        |e| (e.seq, e.hash.clone()),
    );
    if let Err(e) = verdict {
        let out = serde_json::json!({ "ok": false, "error": e.clone() });
        print(json, &out, &format!("audit chain BROKEN: {e}"));
        return ExitCode::from(4);
    }
    let out = serde_json::json!({ "ok": tally.bad.is_empty(), "chain": "intact", "entries": entries.len(),
        "head_seq": seq, "head_hash": hash, "receipts": tally.verified,
        "receipts_by_revoked_signers": tally.by_revoked, "bad_receipts": tally.bad });
    let mut text = format!(
        "audit chain intact: {} entries, head {seq}:{hash}; {} receipts verified",
        entries.len(),
        tally.verified
    );
    if tally.by_revoked > 0 {
        let _ = write!(
            text,
            "; {} signed by agent certificates revoked since (not vouched for: a revoked key could have signed them \
             at any time)",
            tally.by_revoked
        );
    }
    if tally.bad.is_empty() {
        print(json, &out, &text);
        return ExitCode::SUCCESS;
    }
    let _ = write!(
        text,
        "\nbut {} recorded deliveries, purges or rotations have NO VALID RECEIPT from the agent:",
        tally.bad.len()
    );
    for b in &tally.bad {
        text.push('\n');
        text.push_str(&tessera_operator::client::escape_control(&format!(
            "  entry {} {} agent {}: {}",
            b.seq, b.kind, b.agent, b.reason
        )));
    }
    print(json, &out, &text);
    ExitCode::from(4)
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
            if let Some(a) = &agent {
                let certified = match load_operator(&conn) {
                    Ok(op) => {
                        crate::resolve::certified_agents(&op, std::slice::from_ref(a), "--agent ")
                            .await
                    }
                    Err(e) => Err(e),
                };
                if let Err(e) = certified {
                    return fail(2, &e);
                }
            }
            let body = serde_json::json!({ "template": template, "params": map, "credentials": credentials, "agent": agent });
            simple(
                &conn,
                json,
                |c| async move { c.post("/v1/jobs", &body).await },
            )
            .await
        }
        JobCmd::Ls { conn } => crate::ls_cmds::job_ls(&conn, json).await,
    }
}
