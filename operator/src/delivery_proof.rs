//! How a credential's delivery rows are judged, for `cred show` and the dashboard alike: every stored or purged
//! state the relay records must carry the agent's signed receipt of exactly that state, and the counts are taken
//! against what operators signed (the catalogue's version and scope, a tombstone), never against the relay's rows.
//!
//! The counts are of distinct agents of the signed scope (for scope `all`: the CA registry's live certified agents;
//! for a deleted credential: its last live scope), so a relay can neither inflate `done` by listing an agent twice
//! or listing an agent the scope leaves out, nor shrink `of` by leaving agents out. An agent listed twice, or
//! recorded as holding a credential whose explicit signed scope leaves it out, is an [`Anomaly`]: an integrity
//! failure like a state without a valid receipt.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use tessera_proto::admin::DeliveryView;
use tessera_proto::ids::{AgentId, CredentialId, CredentialName};
use tessera_proto::receipt::{Receipt, ReceiptBody, ReceiptFact};
use tessera_proto::statement::Scope;
use tessera_proto::wire::AgentState;

use crate::catalogue::{Catalogue, Deleted, Entry};
use crate::receipts::ReceiptCheck;

/// What operators signed about the credential: a row's claims are checked against it, never against the relay's.
#[derive(Debug, Clone, Copy)]
pub enum Signed<'a> {
    /// Live: the catalogue's newest statement (version, scope, the inclusions it has seen).
    Live(&'a Entry),
    /// Deleted by a tombstone through its version, with its last live scope.
    Deleted(&'a Deleted),
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
        .map(|(id, d)| (*id, Signed::Deleted(d)))
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
                Signed::Deleted(deleted),
            ) if credential_id == *id => {
                if scope_revision.is_none() && version == deleted.version {
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
    /// Distinct agents of [`targets`] whose receipt proves the signed state.
    pub done: usize,
    /// The agents of [`targets`]: the signed scope's (for scope `all`, the CA registry's live certified agents), or
    /// for a deleted credential those of its last live scope.
    pub of: usize,
    /// Agents of [`targets`] not done that the relay reports offline.
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

/// The scope the counts follow: the live statement's, or a deleted credential's last one (`all` when unknown).
fn counted_scope(signed: Signed<'_>) -> Option<&[AgentId]> {
    match signed {
        Signed::Live(Entry {
            scope: Scope::Explicit { agents },
            ..
        })
        | Signed::Deleted(Deleted {
            scope: Some(Scope::Explicit { agents }),
            ..
        }) => Some(agents),
        _ => None,
    }
}

/// The agents the counts are taken over: those of the signed scope ([`counted_scope`]), or for scope `all` `live`,
/// the CA registry's live certified agents (issued, unexpired, unrevoked), never the relay's rows.
pub fn targets(signed: Signed<'_>, live: &[AgentId]) -> BTreeSet<AgentId> {
    counted_scope(signed)
        .unwrap_or(live)
        .iter()
        .cloned()
        .collect()
}

/// What the relay's listing gets wrong beyond a receipt: an integrity failure whatever the receipts say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anomaly {
    /// The relay lists the agent more than once.
    Duplicate(AgentId),
    /// The relay records the agent holding a credential whose explicit signed scope leaves it out (a revoked agent's
    /// row is purging or purged, never stored).
    OutsideScope(AgentId),
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Duplicate(a) => write!(f, "{}: listed more than once by the relay", a.as_str()),
            Self::OutsideScope(a) => write!(
                f,
                "{}: recorded as holding it, but the signed scope leaves it out",
                a.as_str()
            ),
        }
    }
}

/// The anomalies of `rows` against `signed`, and per row whether it is one (never counted).
fn anomalies(rows: &[DeliveryView], signed: Signed<'_>) -> (Vec<Anomaly>, Vec<bool>) {
    let mut seen: BTreeMap<&AgentId, usize> = BTreeMap::new();
    for r in rows {
        *seen.entry(&r.agent).or_default() += 1;
    }
    let explicit = match signed {
        Signed::Live(_) => counted_scope(signed),
        Signed::Deleted(_) => None,
    };
    let mut found = Vec::new();
    let mut flagged = Vec::with_capacity(rows.len());
    for r in rows {
        let twice = seen.get(&r.agent).is_some_and(|n| *n > 1);
        let outside = explicit.is_some_and(|agents| {
            !agents.contains(&r.agent) && r.state == "stored" && r.purge.is_none()
        });
        if twice && !found.contains(&Anomaly::Duplicate(r.agent.clone())) {
            found.push(Anomaly::Duplicate(r.agent.clone()));
        }
        if outside {
            found.push(Anomaly::OutsideScope(r.agent.clone()));
        }
        flagged.push(twice || outside);
    }
    (found, flagged)
}

/// The summary of `rows` (`proven[i]`: row i's receipt checked and not an anomaly) over `targets`.
pub fn summary(
    rows: &[DeliveryView],
    proven: &[bool],
    signed: Signed<'_>,
    targets: &BTreeSet<AgentId>,
) -> Summary {
    let mut done: BTreeSet<&AgentId> = BTreeSet::new();
    for (r, ok) in rows.iter().zip(proven) {
        if targets.contains(&r.agent) && row_done(r, *ok, signed) {
            done.insert(&r.agent);
        }
    }
    let offline: BTreeSet<&AgentId> = rows
        .iter()
        .filter(|r| targets.contains(&r.agent) && !done.contains(&r.agent) && is_offline(r))
        .map(|r| &r.agent)
        .collect();
    let label = match signed {
        Signed::Deleted(_) => "purged".to_owned(),
        Signed::Live(entry) => format!("stored v{}", entry.version),
    };
    Summary {
        label,
        done: done.len(),
        of: targets.len(),
        offline: offline.len(),
    }
}

/// Agents of `targets` that the relay does not list at all.
pub fn not_listed(rows: &[DeliveryView], targets: &BTreeSet<AgentId>) -> Vec<String> {
    targets
        .iter()
        .filter(|a| !rows.iter().any(|r| r.agent == **a))
        .map(|a| a.as_str().to_owned())
        .collect()
}

/// Every row judged.
#[derive(Debug)]
pub struct Judged {
    /// Per row, its receipt check (`None`: nothing claimed that needs one).
    pub checks: Vec<Option<Result<(), ReceiptCheck>>>,
    /// Per row, whether its receipt was verified and the row is no [`Anomaly`].
    pub proven: Vec<bool>,
    /// Rows claiming a state without a valid receipt (a receipt by a since-revoked signer is not counted).
    pub unproven: usize,
    /// Agents listed twice, or recorded holding it outside the signed scope.
    pub anomalies: Vec<Anomaly>,
    /// Agents the counts are taken over that the relay does not list.
    pub missing: Vec<String>,
    /// The counts.
    pub summary: Summary,
}

impl Judged {
    /// Whether anything is an integrity failure: a state without a valid receipt, or an [`Anomaly`].
    pub fn integrity_failure(&self) -> bool {
        self.unproven > 0 || !self.anomalies.is_empty()
    }

    /// Whether every agent counted is proven done and listed, with no integrity failure.
    pub fn complete(&self) -> bool {
        !self.integrity_failure() && self.missing.is_empty() && self.summary.done == self.summary.of
    }
}

/// Judges `rows` of credential `id` against `signed`, receipts checked by `verify`; `live` are the CA registry's
/// live certified agents (the agents of scope `all`).
pub fn judge(
    rows: &[DeliveryView],
    id: &CredentialId,
    signed: Signed<'_>,
    live: &[AgentId],
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
    let (anomalies, flagged) = anomalies(rows, signed);
    let proven: Vec<bool> = checks
        .iter()
        .zip(&flagged)
        .map(|(c, bad)| !bad && matches!(c, Some(Ok(()))))
        .collect();
    let targets = targets(signed, live);
    let missing = not_listed(rows, &targets);
    let summary = summary(rows, &proven, signed, &targets);
    Judged {
        checks,
        proven,
        unproven,
        anomalies,
        missing,
        summary,
    }
}

#[cfg(test)]
mod tests;
