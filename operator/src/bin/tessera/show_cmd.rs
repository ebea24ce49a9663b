//! `cred show NAME`: one credential's state on each agent, every stored or purged state checked against the agent's
//! signed receipt (the relay's word alone marks nothing as done).

use std::fmt::Write as _;
use std::process::ExitCode;

use tessera_operator::catalogue::Catalogue;
use tessera_operator::receipts::{self, ReceiptCheck};
use tessera_operator::{answers, issued};
use tessera_proto::admin::DeliveryView;
use tessera_proto::ids::{CredentialId, CredentialName};
use tessera_proto::receipt::{Receipt, ReceiptFact};

use crate::cli::Conn;
use crate::fail;
use crate::session::{api_fail, load_operator, print};

/// The receipt of a row's claimed state, checked; `None` when the row claims nothing that needs one.
fn check_row(
    row: &DeliveryView,
    id: &CredentialId,
    verify: &dyn Fn(&Receipt) -> Result<tessera_proto::receipt::ReceiptBody, ReceiptCheck>,
) -> Option<Result<(), ReceiptCheck>> {
    let (receipt, what) = if row.purge.as_deref() == Some("purged") {
        (row.purge_receipt.as_ref(), "purged")
    } else if row.state == "stored" && row.purge.is_none() {
        (row.receipt.as_ref(), "stored")
    } else {
        return None;
    };
    Some((|| {
        let body = verify(receipt.ok_or(ReceiptCheck::Missing)?)?;
        if body.agent != row.agent {
            return Err(ReceiptCheck::Mismatch(format!(
                "signed by {}",
                body.agent.as_str()
            )));
        }
        match (what, body.fact) {
            (
                "stored",
                ReceiptFact::Stored {
                    credential_id,
                    version,
                    ..
                },
            ) if credential_id == *id && version == row.version => Ok(()),
            ("purged", ReceiptFact::Purged { credential_id, .. }) if credential_id == *id => Ok(()),
            _ => Err(ReceiptCheck::Mismatch(format!(
                "not a receipt of this credential {what}"
            ))),
        }
    })())
}

fn is_offline(r: &DeliveryView) -> bool {
    r.agent_state == Some(tessera_proto::wire::AgentState::Offline)
}

/// The line under the agents: `purged n/m, k offline` for a deletion or revoke, `stored n/m` otherwise.
fn summary(rows: &[DeliveryView]) -> String {
    let purging: Vec<&DeliveryView> = rows.iter().filter(|r| r.purge.is_some()).collect();
    if !purging.is_empty() {
        let done = purging
            .iter()
            .filter(|r| r.purge.as_deref() == Some("purged"))
            .count();
        let away = purging
            .iter()
            .filter(|r| r.purge.as_deref() == Some("purging"))
            .filter(|r| is_offline(r))
            .count();
        let mut line = format!("purged {done}/{}", purging.len());
        if away > 0 {
            let _ = write!(line, ", {away} offline");
        }
        return line;
    }
    let newest = rows.iter().map(|r| r.version).max().unwrap_or(0);
    let current: Vec<&DeliveryView> = rows.iter().filter(|r| r.version == newest).collect();
    let stored = current.iter().filter(|r| r.state == "stored").count();
    let away = current
        .iter()
        .filter(|r| r.state != "stored")
        .filter(|r| is_offline(r))
        .count();
    let mut line = format!("stored v{newest} {stored}/{}", current.len());
    if away > 0 {
        let _ = write!(line, ", {away} offline");
    }
    line
}

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
    let (id, deleted) = if let Some(e) = catalogue.latest(&name) {
        (e.id, false)
    } else if let Some((id, _)) = catalogue.deleted.iter().find(|(_, d)| d.name == name) {
        (*id, true)
    } else {
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
    let mut lines = vec![format!(
        "{}  {id}{}",
        name.as_str(),
        if deleted { "  deleted" } else { "" }
    )];
    let mut out = Vec::new();
    let mut unproven = 0usize;
    for row in &rows {
        let checked = check_row(row, &id, &verify);
        if matches!(&checked, Some(Err(e)) if !matches!(e, ReceiptCheck::Revoked(_))) {
            unproven += 1;
        }
        let (line, v) = render(row, checked.as_ref());
        lines.push(line);
        out.push(v);
    }
    let summary = summary(&rows);
    lines.push(summary.clone());
    if unproven > 0 {
        lines.push(format!(
            "{unproven} state(s) the relay records without a valid receipt from the agent"
        ));
    }
    let v = serde_json::json!({ "name": name.as_str(), "id": id, "deleted": deleted, "agents": out, "summary": summary,
        "without_valid_receipt": unproven });
    // Every line carries the relay's text: escaped, so it cannot forge or hide lines on the terminal.
    let text = lines
        .iter()
        .map(|l| tessera_operator::client::escape_control(l))
        .collect::<Vec<_>>()
        .join("\n");
    print(json, &v, &text);
    if unproven > 0 {
        ExitCode::from(4)
    } else {
        ExitCode::SUCCESS
    }
}
