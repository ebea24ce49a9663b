//! `cred show NAME`: one credential's state on each agent, every stored or purged state checked against the agent's
//! signed receipt (the relay's word alone marks nothing as done). Text: the name and id, a table (headers, one row
//! per agent sorted by agent, times in RFC 3339), the summary.

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

/// The table's columns.
const HEADERS: [&str; 7] = [
    "AGENT",
    "PRESENCE",
    "STATE",
    "RECEIPT",
    "ATTEMPTS",
    "NEXT ATTEMPT",
    "LAST ERROR",
];

/// One agent's row (cells under [`HEADERS`]) and JSON.
fn render(
    row: &DeliveryView,
    checked: Option<&Result<(), ReceiptCheck>>,
) -> (Vec<String>, serde_json::Value) {
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
    // Attempts and the next one matter while a delivery is still under way.
    let under_way = row.state != "stored" && row.purge.is_none();
    let attempts = if under_way && row.attempts > 0 {
        row.attempts.to_string()
    } else {
        "-".to_owned()
    };
    let next = if under_way {
        crate::table::time_ms(&row.next_attempt_ms.into())
    } else {
        "-".to_owned()
    };
    let presence = row
        .agent_state
        .map_or_else(|| "unknown".to_owned(), |s| format!("{s:?}").to_lowercase());
    let cells = vec![
        row.agent.as_str().to_owned(),
        presence.clone(),
        state,
        receipt,
        attempts,
        next,
        row.last_error.clone().unwrap_or_else(|| "-".to_owned()),
    ];
    let v = serde_json::json!({
        "agent": row.agent.as_str(), "agent_state": presence, "state": row.state, "version": row.version,
        "purge": row.purge, "attempts": row.attempts, "next_attempt_ms": row.next_attempt_ms,
        "last_error": row.last_error,
        "receipt": match checked { None => serde_json::Value::Null, Some(Ok(())) => "ok".into(),
            Some(Err(e)) => e.to_string().into() },
    });
    (cells, v)
}

/// A table row for each agent of the signed scope the relay does not list.
fn not_listed_rows(missing: &[String]) -> impl Iterator<Item = Vec<String>> + '_ {
    missing.iter().map(|a| {
        let mut row = vec![
            a.clone(),
            "-".to_owned(),
            "not listed by the relay".to_owned(),
        ];
        row.resize(HEADERS.len(), "-".to_owned());
        row
    })
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
    let mut shown: Vec<(Vec<String>, serde_json::Value)> = rows
        .iter()
        .zip(&judged.checks)
        .map(|(row, checked)| render(row, checked.as_ref()))
        .collect();
    // Sorted by agent (stable: a relay's second row for an agent stays after the first).
    shown.sort_by(|a, b| a.0.first().cmp(&b.0.first()));
    let (mut cells, out): (Vec<Vec<String>>, Vec<serde_json::Value>) = shown.into_iter().unzip();
    let unproven = judged.unproven;
    let failed = judged.integrity_failure();
    let missing = judged.missing;
    cells.extend(not_listed_rows(&missing));
    cells.sort_by(|a, b| a.first().cmp(&b.first()));
    // The table escapes every cell (each carries the relay's text).
    let table = crate::table::render(&HEADERS, &cells);
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
    let mut escaped: Vec<String> = lines
        .iter()
        .map(|l| tessera_operator::client::escape_control(l))
        .collect();
    escaped.insert(1, table);
    let text = escaped.join("\n");
    print(json, &v, &text);
    if failed {
        ExitCode::from(4)
    } else {
        ExitCode::SUCCESS
    }
}
