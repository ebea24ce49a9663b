//! `cred show NAME`: one credential's state on each agent, every stored or purged state checked against the agent's
//! signed receipt (the relay's word alone marks nothing as done).

use std::fmt::Write as _;
use std::process::ExitCode;

use tessera_operator::catalogue::Catalogue;
use tessera_operator::delivery_proof::{self, Signed};
use tessera_operator::receipts::{self, ReceiptCheck};
use tessera_operator::{answers, issued};
use tessera_proto::admin::DeliveryView;
use tessera_proto::ids::CredentialName;
use tessera_proto::receipt::Receipt;

use crate::cli::Conn;
use crate::fail;
use crate::session::{api_fail, load_operator, print};

/// One agent's line and JSON.
fn render(
    row: &DeliveryView,
    checked: Option<&Result<(), ReceiptCheck>>,
) -> (String, serde_json::Value) {
    let receipt = match checked {
        None => "-".to_owned(),
        Some(Ok(())) => "receipt ok".to_owned(),
        Some(Err(e @ ReceiptCheck::Revoked(_))) => format!("receipt not vouched for: {e}"),
        Some(Err(e)) => format!("NO VALID RECEIPT: {e}"),
    };
    let state = match row.purge.as_deref() {
        Some(p) => p.to_owned(),
        None => format!("{} v{}", row.state, row.version),
    };
    let mut detail = String::new();
    if row.state != "stored" && row.purge.is_none() && row.attempts > 0 {
        let _ = write!(detail, "  attempts {}", row.attempts);
    }
    if let Some(e) = &row.last_error {
        let _ = write!(detail, "  last error {e}");
    }
    let presence = row
        .agent_state
        .map_or_else(|| "unknown".to_owned(), |s| format!("{s:?}").to_lowercase());
    let line = format!(
        "  {:<24} {:<12} {:<14} {receipt}{detail}",
        row.agent.as_str(),
        presence,
        state
    );
    let v = serde_json::json!({
        "agent": row.agent.as_str(), "agent_state": presence, "state": row.state, "version": row.version,
        "purge": row.purge, "attempts": row.attempts, "last_error": row.last_error,
        "receipt": match checked { None => serde_json::Value::Null, Some(Ok(())) => "ok".into(),
            Some(Err(e)) => e.to_string().into() },
    });
    (line, v)
}

pub(crate) async fn cred_show(conn: &Conn, name: &str, json: bool) -> ExitCode {
    let name = match CredentialName::new(name.to_owned()) {
        Ok(n) => n,
        Err(e) => return fail(2, &format!("{name}: {e}")),
    };
    let op = match load_operator(conn) {
        Ok(o) => o,
        Err(e) => return fail(2, &e),
    };
    let catalogue = match Catalogue::load(&op.dir) {
        Ok(c) => c,
        Err(e) => return fail(2, &e.to_string()),
    };
    // The id comes from what operators signed, never from the relay's listing.
    let Some((id, signed)) = delivery_proof::signed_for(&catalogue, &name) else {
        return fail(
            2,
            &format!(
                "{} is not in this operator's catalogue (`tessera cred adopt {}` learns it)",
                name.as_str(),
                name.as_str()
            ),
        );
    };
    let registry = match issued::Registry::require(&op.dir) {
        Ok(r) => r,
        Err(e) => return fail(2, &e.to_string()),
    };
    let revoked = match tessera_operator::revocations::current(&op.client, &op.ca, &op.dir).await {
        Ok(l) => l,
        Err(e) => return fail(2, &e.to_string()),
    };
    let rows = match op
        .client
        .get(&format!("/v1/credentials/{id}/deliveries"))
        .await
    {
        Ok(v) => match answers::deliveries(v) {
            Ok(r) => r,
            Err(e) => return fail(1, &e.to_string()),
        },
        Err(e) => return api_fail(&e),
    };
    let verify = |r: &Receipt| receipts::verify(r, &registry, &op.ca, &revoked);
    let deleted = matches!(signed, Signed::Deleted(_));
    let mut lines = vec![format!(
        "{}  {id}{}",
        name.as_str(),
        if deleted { "  deleted" } else { "" }
    )];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    // Scope `all` (and a deleted credential whose last scope was) counts the CA registry's live certified agents.
    let certified = registry.live_agents(&op.ca, now, &revoked);
    let judged = delivery_proof::judge(&rows, &id, signed, &certified, &verify);
    let mut out = Vec::new();
    for (row, checked) in rows.iter().zip(&judged.checks) {
        let (line, v) = render(row, checked.as_ref());
        lines.push(line);
        out.push(v);
    }
    let unproven = judged.unproven;
    let failed = judged.integrity_failure();
    let missing = judged.missing;
    for a in &missing {
        lines.push(format!("  {a:<24} not listed by the relay"));
    }
    let anomalies: Vec<String> = judged.anomalies.iter().map(ToString::to_string).collect();
    for a in &anomalies {
        lines.push(format!("INTEGRITY FAILURE: {a}"));
    }
    let summary = judged.summary.to_string();
    lines.push(summary.clone());
    if unproven > 0 {
        lines.push(format!(
            "{unproven} state(s) the relay records without a valid receipt from the agent"
        ));
    }
    let v = serde_json::json!({ "name": name.as_str(), "id": id, "deleted": deleted, "agents": out, "summary": summary,
        "without_valid_receipt": unproven, "not_listed": missing, "integrity_failures": anomalies });
    // Every line carries the relay's text: escaped, so it cannot forge or hide lines on the terminal.
    let text = lines
        .iter()
        .map(|l| tessera_operator::client::escape_control(l))
        .collect::<Vec<_>>()
        .join("\n");
    print(json, &v, &text);
    if failed {
        ExitCode::from(4)
    } else {
        ExitCode::SUCCESS
    }
}
