//! `cred show NAME`: one credential's state on each agent, every stored or purged state checked against the agent's
//! signed receipt (the relay's word alone marks nothing as done).

use std::fmt::Write as _;
use std::process::ExitCode;

use tessera_operator::catalogue::{Catalogue, Entry};
use tessera_operator::receipts::{self, ReceiptCheck};
use tessera_operator::{answers, issued};
use tessera_proto::admin::DeliveryView;
use tessera_proto::ids::{CredentialId, CredentialName};
use tessera_proto::receipt::{Receipt, ReceiptFact};

use crate::cli::Conn;
use crate::fail;
use crate::session::{api_fail, load_operator, print};

/// What operators signed about the credential: a row's claims are checked against it, never against the relay's.
#[derive(Clone, Copy)]
enum Signed<'a> {
    /// Live: the catalogue's newest statement (version, scope, the inclusions it has seen).
    Live(&'a Entry),
    /// Deleted through this version by a tombstone.
    Deleted(u64),
}

/// The receipt of a row's claimed state, checked; `None` when the row claims nothing that needs one.
fn check_row(
    row: &DeliveryView,
    id: &CredentialId,
    signed: Signed<'_>,
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
        let mismatch = |why: &str| Err(ReceiptCheck::Mismatch(why.to_owned()));
        match (what, body.fact, signed) {
            (
                "stored",
                ReceiptFact::Stored {
                    credential_id,
                    version,
                    ..
                },
                _,
            ) if credential_id == *id && version == row.version => Ok(()),
            (
                "purged",
                ReceiptFact::Purged {
                    credential_id,
                    version,
                    scope_revision,
                },
                Signed::Deleted(through),
            ) if credential_id == *id => {
                if scope_revision.is_none() && version == through {
                    Ok(())
                } else {
                    mismatch("a receipt of another purge than the tombstone's")
                }
            }
            (
                "purged",
                ReceiptFact::Purged {
                    credential_id,
                    version,
                    scope_revision,
                },
                Signed::Live(entry),
            ) if credential_id == *id => {
                // A revoke: the signed scope leaves the agent out, and the receipt is of a statement newer than the
                // last one that included it (not a receipt of an earlier revoke, before a grant) and not newer than
                // anything signed.
                let Some(revision) = scope_revision else {
                    return mismatch("a tombstone's receipt for a credential that is not deleted");
                };
                if entry.scope.includes(&row.agent) {
                    return mismatch("the signed scope includes this agent");
                }
                let at = (version, revision);
                if entry
                    .last_included(&row.agent)
                    .is_some_and(|included| at <= included)
                    || at > (entry.version, entry.scope_revision)
                {
                    return mismatch("a receipt of another revoke than the one in force");
                }
                Ok(())
            }
            _ => mismatch(&format!("not a receipt of this credential {what}")),
        }
    })())
}

fn is_offline(r: &DeliveryView) -> bool {
    r.agent_state == Some(tessera_proto::wire::AgentState::Offline)
}

/// The line under the agents, counting only states receipted by the agents (`proven`) against what was signed: `stored
/// vN n/m` (N the catalogue's version, m the agents of the signed scope, or the rows listed for scope `all`) or
/// `purged n/m`, with those offline.
fn summary(rows: &[DeliveryView], proven: &[bool], signed: Signed<'_>, missing: usize) -> String {
    let offline = rows
        .iter()
        .zip(proven)
        .filter(|(r, ok)| !**ok && is_offline(r))
        .count();
    let (label, done, of) = match signed {
        Signed::Deleted(_) => {
            let purging = rows.iter().filter(|r| r.purge.is_some()).count();
            let done = rows
                .iter()
                .zip(proven)
                .filter(|(r, ok)| **ok && r.purge.as_deref() == Some("purged"))
                .count();
            ("purged".to_owned(), done, purging + missing)
        }
        Signed::Live(entry) => {
            let done = rows
                .iter()
                .zip(proven)
                .filter(|(r, ok)| {
                    **ok && r.state == "stored" && r.purge.is_none() && r.version == entry.version
                })
                .count();
            let of = match &entry.scope {
                tessera_proto::statement::Scope::Explicit { agents } => agents.len(),
                tessera_proto::statement::Scope::All => {
                    rows.iter().filter(|r| r.purge.is_none()).count()
                }
            };
            (format!("stored v{}", entry.version), done, of)
        }
    };
    let mut line = format!("{label} {done}/{of}");
    if offline > 0 {
        let _ = write!(line, ", {offline} offline");
    }
    line
}

/// Agents the signed scope names that the relay does not list at all.
fn not_listed(rows: &[DeliveryView], signed: Signed<'_>) -> Vec<String> {
    match signed {
        Signed::Live(Entry {
            scope: tessera_proto::statement::Scope::Explicit { agents },
            ..
        }) => agents
            .iter()
            .filter(|a| !rows.iter().any(|r| r.agent == **a))
            .map(|a| a.as_str().to_owned())
            .collect(),
        _ => Vec::new(),
    }
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
    let (id, signed) = if let Some(e) = catalogue.latest(&name) {
        (e.id, Signed::Live(e))
    } else if let Some((id, d)) = catalogue.deleted.iter().find(|(_, d)| d.name == name) {
        (*id, Signed::Deleted(d.version))
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
    let deleted = matches!(signed, Signed::Deleted(_));
    let mut lines = vec![format!(
        "{}  {id}{}",
        name.as_str(),
        if deleted { "  deleted" } else { "" }
    )];
    let mut out = Vec::new();
    let mut unproven = 0usize;
    let mut proven = Vec::new();
    for row in &rows {
        let checked = check_row(row, &id, signed, &verify);
        if matches!(&checked, Some(Err(e)) if !matches!(e, ReceiptCheck::Revoked(_))) {
            unproven += 1;
        }
        proven.push(matches!(checked, Some(Ok(()))));
        let (line, v) = render(row, checked.as_ref());
        lines.push(line);
        out.push(v);
    }
    let missing = not_listed(&rows, signed);
    for a in &missing {
        lines.push(format!("  {a:<24} not listed by the relay"));
    }
    let summary = summary(&rows, &proven, signed, missing.len());
    lines.push(summary.clone());
    if unproven > 0 {
        lines.push(format!(
            "{unproven} state(s) the relay records without a valid receipt from the agent"
        ));
    }
    let v = serde_json::json!({ "name": name.as_str(), "id": id, "deleted": deleted, "agents": out, "summary": summary,
        "without_valid_receipt": unproven, "not_listed": missing });
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
