//! How a credential's delivery rows are judged, for `cred show` and the dashboard alike: every stored or purged
//! state the relay records must carry the agent's signed receipt of exactly that state, and the counts are taken
//! against what operators signed (the catalogue's version and scope, a tombstone), never against the relay's rows.

use std::fmt;

use tessera_proto::admin::DeliveryView;
use tessera_proto::ids::{CredentialId, CredentialName};
use tessera_proto::receipt::{Receipt, ReceiptBody, ReceiptFact};
use tessera_proto::statement::Scope;
use tessera_proto::wire::AgentState;

use crate::catalogue::{Catalogue, Entry};
use crate::receipts::ReceiptCheck;

/// What operators signed about the credential: a row's claims are checked against it, never against the relay's.
#[derive(Debug, Clone, Copy)]
pub enum Signed<'a> {
    /// Live: the catalogue's newest statement (version, scope, the inclusions it has seen).
    Live(&'a Entry),
    /// Deleted through this version by a tombstone.
    Deleted(u64),
}

/// The id and signed state of `name` in the catalogue (a live entry first, then a deleted one).
pub fn signed_for<'c>(
    catalogue: &'c Catalogue,
    name: &CredentialName,
) -> Option<(CredentialId, Signed<'c>)> {
    if let Some(e) = catalogue.latest(name) {
        return Some((e.id, Signed::Live(e)));
    }
    catalogue
        .deleted
        .iter()
        .find(|(_, d)| d.name == *name)
        .map(|(id, d)| (*id, Signed::Deleted(d.version)))
}

/// The receipt of a row's claimed state, checked; `None` when the row claims nothing that needs one.
pub fn check_row(
    row: &DeliveryView,
    id: &CredentialId,
    signed: Signed<'_>,
    verify: &dyn Fn(&Receipt) -> Result<ReceiptBody, ReceiptCheck>,
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

/// Whether the relay reports the row's agent offline.
pub fn is_offline(r: &DeliveryView) -> bool {
    r.agent_state == Some(AgentState::Offline)
}

/// The counts under a credential's agents: only states receipted by the agents, against what was signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// `stored vN` (N the catalogue's version) or `purged`.
    pub label: String,
    /// Agents whose receipt proves the signed state.
    pub done: usize,
    /// The agents of the signed scope (the rows listed for scope `all`), or those to purge.
    pub of: usize,
    /// Agents not done that the relay reports offline.
    pub offline: usize,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.label, self.done, self.of)?;
        if self.offline > 0 {
            write!(f, ", {} offline", self.offline)?;
        }
        Ok(())
    }
}

/// Whether the row is proven to hold the signed current version (live) or to have purged (deleted).
pub fn row_done(row: &DeliveryView, proven: bool, signed: Signed<'_>) -> bool {
    proven
        && match signed {
            Signed::Deleted(_) => row.purge.as_deref() == Some("purged"),
            Signed::Live(entry) => {
                row.state == "stored" && row.purge.is_none() && row.version == entry.version
            }
        }
}

/// The summary of `rows` (`proven[i]`: row i's receipt checked), `missing` agents of the scope not listed.
pub fn summary(
    rows: &[DeliveryView],
    proven: &[bool],
    signed: Signed<'_>,
    missing: usize,
) -> Summary {
    let offline = rows
        .iter()
        .zip(proven)
        .filter(|(r, ok)| !**ok && is_offline(r))
        .count();
    let done = rows
        .iter()
        .zip(proven)
        .filter(|(r, ok)| row_done(r, **ok, signed))
        .count();
    let (label, of) = match signed {
        Signed::Deleted(_) => (
            "purged".to_owned(),
            rows.iter().filter(|r| r.purge.is_some()).count() + missing,
        ),
        Signed::Live(entry) => {
            let of = match &entry.scope {
                Scope::Explicit { agents } => agents.len(),
                Scope::All => rows.iter().filter(|r| r.purge.is_none()).count(),
            };
            (format!("stored v{}", entry.version), of)
        }
    };
    Summary {
        label,
        done,
        of,
        offline,
    }
}

/// Agents the signed scope names that the relay does not list at all.
pub fn not_listed(rows: &[DeliveryView], signed: Signed<'_>) -> Vec<String> {
    match signed {
        Signed::Live(Entry {
            scope: Scope::Explicit { agents },
            ..
        }) => agents
            .iter()
            .filter(|a| !rows.iter().any(|r| r.agent == **a))
            .map(|a| a.as_str().to_owned())
            .collect(),
        _ => Vec::new(),
    }
}

/// Every row judged.
#[derive(Debug)]
pub struct Judged {
    /// Per row, its receipt check (`None`: nothing claimed that needs one).
    pub checks: Vec<Option<Result<(), ReceiptCheck>>>,
    /// Per row, whether its receipt was verified.
    pub proven: Vec<bool>,
    /// Rows claiming a state without a valid receipt (a receipt by a since-revoked signer is not counted).
    pub unproven: usize,
    /// Agents of the signed scope the relay does not list.
    pub missing: Vec<String>,
    /// The counts.
    pub summary: Summary,
}

/// Judges `rows` of credential `id` against `signed`, receipts checked by `verify`.
pub fn judge(
    rows: &[DeliveryView],
    id: &CredentialId,
    signed: Signed<'_>,
    verify: &dyn Fn(&Receipt) -> Result<ReceiptBody, ReceiptCheck>,
) -> Judged {
    let checks: Vec<_> = rows
        .iter()
        .map(|r| check_row(r, id, signed, verify))
        .collect();
    let unproven = checks
        .iter()
        .filter(|c| matches!(c, Some(Err(e)) if !matches!(e, ReceiptCheck::Revoked(_))))
        .count();
    let proven: Vec<bool> = checks.iter().map(|c| matches!(c, Some(Ok(())))).collect();
    let missing = not_listed(rows, signed);
    let summary = summary(rows, &proven, signed, missing.len());
    Judged {
        checks,
        proven,
        unproven,
        missing,
        summary,
    }
}
