//! What the relay says, judged the way `tessera cred show` judges it: delivery states count only with the agent's
//! valid receipt, against the catalogue's version and scope (what operators signed), never the relay's counts.
//! Agents' certificate state comes from the CA's registry of issued certificates, not from the relay.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use tessera_proto::admin::{CredentialView, DeliveryView};
use tessera_proto::ids::{AgentId, CredentialId};
use tessera_proto::receipt::Receipt;
use tessera_proto::statement::{RevocationList, Scope};

use super::identity::Identity;
use crate::catalogue::Catalogue;
use crate::delivery_proof::{self, Signed};
use crate::issued::Registry;
use crate::receipts::{self, ReceiptCheck};
use crate::{answers, revocations};

/// A credential's chip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Chip {
    /// Every agent of the signed scope proven to hold the signed version.
    Synced { done: usize, of: usize },
    /// Some proven, none pending (stalled, offline, not listed).
    Partial { done: usize, of: usize },
    /// Deliveries the relay reports pending.
    Pending(usize),
    /// A commitment mismatch was reported, or a state is recorded without a valid receipt.
    Integrity,
    /// Deleted: the purge in progress, or done.
    Purge { done: usize, of: usize },
}

/// One agent's delivery of a credential, as shown.
#[derive(Debug, Clone)]
pub(crate) struct DeliveryRow {
    pub(crate) agent: String,
    pub(crate) presence: String,
    pub(crate) state: String,
    pub(crate) attempts: u32,
    pub(crate) next_attempt_ms: u64,
    pub(crate) last_error: Option<String>,
    pub(crate) receipt: String,
    pub(crate) done: bool,
}

/// A credential of the catalogue, judged.
#[derive(Debug, Clone)]
pub(crate) struct CredRow {
    pub(crate) id: CredentialId,
    pub(crate) name: String,
    pub(crate) version: u64,
    pub(crate) deleted: bool,
    pub(crate) scope: String,
    pub(crate) chip: Chip,
    pub(crate) summary: String,
    pub(crate) unproven: usize,
    /// Agents listed twice, or recorded holding it outside the signed scope (integrity failures).
    pub(crate) anomalies: Vec<String>,
    pub(crate) rows: Vec<DeliveryRow>,
    pub(crate) missing: Vec<String>,
    /// Agents of the signed scope (`None`: every agent), for the fleet's counts.
    pub(crate) scope_agents: Option<Vec<AgentId>>,
}

/// An agent of the fleet.
#[derive(Debug, Clone)]
pub(crate) struct AgentRow {
    pub(crate) id: String,
    pub(crate) state: String,
    pub(crate) last_seen_ms: u64,
    pub(crate) held: usize,
    pub(crate) of: usize,
    pub(crate) cert_expiry: Option<i64>,
    /// The version the agent stated at registration, as the relay relays it: unverified, for operations only.
    pub(crate) version: Option<String>,
    /// Whether the CA's registry holds a live certificate for it (what "Rotate keys" needs).
    pub(crate) certified: bool,
}

/// The operator's files the judgement needs (shared a few seconds: [`super::cache::FILES_TTL`]).
pub(crate) struct Judge {
    pub(crate) catalogue: Catalogue,
    pub(crate) registry: Registry,
    pub(crate) revoked: RevocationList,
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl std::fmt::Debug for Judge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Judge").finish_non_exhaustive()
    }
}

/// The operator files' modification times and sizes (catalogue, registry, revocation list copy).
pub(crate) type FilesStamp = Vec<Option<(std::time::SystemTime, u64)>>;

/// The stamp of the operator's files now: a change means the cached [`Judge`] is stale.
pub(crate) fn files_stamp(dir: &std::path::Path) -> FilesStamp {
    [
        crate::catalogue::FILE,
        crate::issued::FILE,
        revocations::FILE,
    ]
    .iter()
    .map(|f| {
        std::fs::metadata(dir.join(f))
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())))
    })
    .collect()
}

pub(crate) async fn judge_files(id: &Identity) -> Result<Judge, String> {
    let catalogue = Catalogue::load(&id.dir).map_err(|e| e.to_string())?;
    let registry = Registry::require(&id.dir).map_err(|e| e.to_string())?;
    let revoked = revocations::current(&id.client, &id.ca, &id.dir)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Judge {
        catalogue,
        registry,
        revoked,
    })
}

/// The relay's credential list (for its commitment-mismatch flag and names the catalogue lacks).
async fn relay_credentials(id: &Identity) -> Result<Vec<CredentialView>, String> {
    let v = id
        .client
        .get("/v1/credentials")
        .await
        .map_err(|e| e.to_string())?;
    answers::credentials(v).map_err(|e| e.to_string())
}

fn presence(r: &DeliveryView) -> String {
    r.agent_state
        .map_or_else(|| "unknown".to_owned(), |s| format!("{s:?}").to_lowercase())
}

fn receipt_text(checked: Option<&Result<(), ReceiptCheck>>) -> String {
    match checked {
        None => "-".to_owned(),
        Some(Ok(())) => "receipt ok".to_owned(),
        Some(Err(e @ ReceiptCheck::Revoked(_))) => format!("receipt not vouched for: {e}"),
        Some(Err(e)) => format!("NO VALID RECEIPT: {e}"),
    }
}

fn scope_text(scope: &Scope) -> (String, Option<Vec<AgentId>>) {
    match scope {
        Scope::All => ("all agents".to_owned(), None),
        Scope::Explicit { agents } => (
            agents
                .iter()
                .map(AgentId::as_str)
                .collect::<Vec<_>>()
                .join(", "),
            Some(agents.clone()),
        ),
    }
}

/// The chip of a judged credential: `Synced` only when every agent counted is proven, listed, and nothing is an
/// integrity failure (`pending`: rows the relay reports pending and not done).
pub(crate) fn chip(
    judged: &delivery_proof::Judged,
    deleted: bool,
    mismatch_reported: bool,
    pending: usize,
) -> Chip {
    let s = &judged.summary;
    if mismatch_reported || judged.integrity_failure() {
        Chip::Integrity
    } else if deleted {
        Chip::Purge {
            done: s.done,
            of: s.of,
        }
    } else if judged.complete() {
        Chip::Synced {
            done: s.done,
            of: s.of,
        }
    } else if pending > 0 {
        Chip::Pending(pending)
    } else {
        Chip::Partial {
            done: s.done,
            of: s.of,
        }
    }
}

/// One credential's rows judged into a [`CredRow`].
fn judge_one(
    j: &Judge,
    ca: &tessera_proto::cert::PinnedCa,
    cred: (CredentialId, &str, Signed<'_>),
    rows: &[DeliveryView],
    mismatch_reported: bool,
) -> CredRow {
    let (id, name, signed) = cred;
    let verify = |r: &Receipt| receipts::verify(r, &j.registry, ca, &j.revoked);
    let live = j.registry.live_agents(ca, now_s(), &j.revoked);
    let judged = delivery_proof::judge(rows, &id, signed, &live, &verify);
    let shown: Vec<DeliveryRow> = rows
        .iter()
        .zip(&judged.checks)
        .zip(&judged.proven)
        .map(|((r, c), ok)| DeliveryRow {
            agent: r.agent.as_str().to_owned(),
            presence: presence(r),
            state: r
                .purge
                .clone()
                .unwrap_or_else(|| format!("{} v{}", r.state, r.version)),
            attempts: r.attempts,
            next_attempt_ms: r.next_attempt_ms,
            last_error: r.last_error.clone(),
            receipt: receipt_text(c.as_ref()),
            done: delivery_proof::row_done(r, *ok, signed),
        })
        .collect();
    let s = &judged.summary;
    let pending = rows
        .iter()
        .zip(&shown)
        .filter(|(r, d)| !d.done && r.purge.is_none() && r.state == "pending")
        .count();
    let (deleted, version, scope, scope_agents) = match signed {
        Signed::Live(e) => {
            let (text, agents) = scope_text(&e.scope);
            (false, e.version, text, agents)
        }
        Signed::Deleted(d) => (true, d.version, "deleted".to_owned(), Some(Vec::new())),
    };
    let chip = chip(&judged, deleted, mismatch_reported, pending);
    CredRow {
        id,
        name: name.to_owned(),
        version,
        deleted,
        scope,
        chip,
        summary: s.to_string(),
        unproven: judged.unproven,
        anomalies: judged.anomalies.iter().map(ToString::to_string).collect(),
        rows: shown,
        missing: judged.missing,
        scope_agents,
    }
}

/// Every credential of the catalogue (live, then deleted), judged; plus the names the relay lists that the
/// catalogue does not know (shown, never counted).
pub(crate) async fn credentials(
    id: &Identity,
    j: &Judge,
) -> Result<(Vec<CredRow>, Vec<String>), String> {
    let relay = relay_credentials(id).await?;
    let mut targets: Vec<(CredentialId, String, Signed<'_>)> = j
        .catalogue
        .credentials
        .values()
        .map(|e| (e.id, e.name.as_str().to_owned(), Signed::Live(e)))
        .collect();
    targets.extend(
        j.catalogue
            .deleted
            .iter()
            .map(|(cid, d)| (*cid, d.name.as_str().to_owned(), Signed::Deleted(d))),
    );
    let unknown = relay
        .iter()
        .filter(|v| !targets.iter().any(|(cid, _, _)| *cid == v.id))
        .map(|v| v.name.as_str().to_owned())
        .collect();
    let mut out = Vec::new();
    for (cid, name, signed) in targets {
        let v = id
            .client
            .get(&format!("/v1/credentials/{cid}/deliveries"))
            .await
            .map_err(|e| e.to_string())?;
        let rows = answers::deliveries(v).map_err(|e| e.to_string())?;
        // The relay's mismatch flag is an alarm: a lying relay can raise a false one, never hide a receipt check.
        let flagged = relay
            .iter()
            .any(|v| v.id == cid && v.sync.integrity_failure);
        out.push(judge_one(j, &id.ca, (cid, &name, signed), &rows, flagged));
    }
    Ok((out, unknown))
}

/// The fleet: the relay's agents, each with the credentials it is proven to hold out of those the signed scopes
/// give it, and its certificate's state from the CA's registry; then the agents with a live certificate in the
/// registry that the relay does not list (a relay must not hide an agent by leaving it out).
pub(crate) async fn fleet(
    id: &Identity,
    j: &Judge,
    creds: &[CredRow],
) -> Result<Vec<AgentRow>, String> {
    let v = id
        .client
        .get("/v1/agents")
        .await
        .map_err(|e| e.to_string())?;
    let agents = answers::agents(v).map_err(|e| e.to_string())?;
    let now = now_s();
    let mut out = Vec::new();
    let listed: Vec<AgentId> = agents.iter().map(|a| a.id.clone()).collect();
    for a in agents {
        let live = j.registry.live(&a.id, &id.ca, now, &j.revoked);
        let issued = j.registry.certs.iter().any(|c| c.agent == a.id);
        let state = if issued && live.is_empty() {
            "revoked".to_owned()
        } else if !issued {
            "not issued by this CA".to_owned()
        } else {
            format!("{:?}", a.state).to_lowercase()
        };
        let cert_expiry = (!live.is_empty())
            .then(|| {
                j.registry
                    .certs
                    .iter()
                    .filter(|c| {
                        c.agent == a.id && c.replaced_by.is_none() && c.retired_at.is_none()
                    })
                    .map(|c| c.not_after)
                    .max()
            })
            .flatten();
        let mut held = 0;
        let mut of = 0;
        for c in creds.iter().filter(|c| !c.deleted) {
            let in_scope = c
                .scope_agents
                .as_ref()
                .is_none_or(|agents| agents.contains(&a.id));
            if in_scope {
                of += 1;
                if c.rows.iter().any(|r| r.agent == a.id.as_str() && r.done) {
                    held += 1;
                }
            }
        }
        out.push(AgentRow {
            id: a.id.as_str().to_owned(),
            state,
            last_seen_ms: a.last_seen_ms,
            held,
            of,
            cert_expiry,
            version: a.version,
            certified: !live.is_empty(),
        });
    }
    out.extend(unlisted(j, &id.ca, now, &listed, creds));
    Ok(out)
}

/// The agents with a live certificate in the registry that the relay does not list: shown as such, holding
/// nothing proven.
pub(crate) fn unlisted(
    j: &Judge,
    ca: &tessera_proto::cert::PinnedCa,
    now: i64,
    listed: &[AgentId],
    creds: &[CredRow],
) -> Vec<AgentRow> {
    j.registry
        .live_agents(ca, now, &j.revoked)
        .into_iter()
        .filter(|a| !listed.contains(a))
        .map(|a| {
            let of = creds
                .iter()
                .filter(|c| !c.deleted && c.scope_agents.as_ref().is_none_or(|s| s.contains(&a)))
                .count();
            let cert_expiry = j
                .registry
                .certs
                .iter()
                .filter(|c| c.agent == a && c.replaced_by.is_none() && c.retired_at.is_none())
                .map(|c| c.not_after)
                .max();
            AgentRow {
                id: a.as_str().to_owned(),
                state: "not listed by the relay".to_owned(),
                last_seen_ms: 0,
                held: 0,
                of,
                cert_expiry,
                version: None,
                // Live in the registry by construction.
                certified: true,
            }
        })
        .collect()
}

/// An alert as the relay lists it (every field the relay's text).
#[derive(Debug, Clone, Default)]
pub(crate) struct AlertRow {
    pub(crate) id: Option<String>,
    pub(crate) kind: String,
    pub(crate) severity: String,
    pub(crate) subject: String,
    pub(crate) message: String,
    pub(crate) count: u64,
    pub(crate) last_ms: u64,
    pub(crate) acknowledged_ms: Option<u64>,
}

/// The relay's alerts, newest first; an id is kept only when it is one (16 hex digits).
pub(crate) async fn alerts(id: &Identity) -> Result<Vec<AlertRow>, String> {
    let v = id
        .client
        .get("/v1/alerts")
        .await
        .map_err(|e| e.to_string())?;
    Ok(parse_alerts(&v))
}

pub(crate) fn parse_alerts(v: &serde_json::Value) -> Vec<AlertRow> {
    let s = |a: &serde_json::Value, k: &str| a[k].as_str().unwrap_or_default().to_owned();
    let mut out: Vec<AlertRow> = v
        .as_array()
        .map(|list| {
            list.iter()
                .map(|a| AlertRow {
                    id: a["id"]
                        .as_str()
                        .filter(|i| i.len() == 16 && i.bytes().all(|b| b.is_ascii_hexdigit()))
                        .map(str::to_owned),
                    kind: s(a, "kind"),
                    severity: s(a, "severity"),
                    subject: s(a, "subject"),
                    message: s(a, "message"),
                    count: a["count"].as_u64().unwrap_or(0),
                    last_ms: a["last_ms"].as_u64().unwrap_or(0),
                    acknowledged_ms: a["acknowledged_ms"].as_u64(),
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort_by_key(|a| std::cmp::Reverse(a.last_ms));
    out
}

/// The relay's status, flattened to (key, value) text pairs.
pub(crate) async fn status(id: &Identity) -> Result<BTreeMap<String, String>, String> {
    let v = id
        .client
        .get("/v1/status")
        .await
        .map_err(|e| e.to_string())?;
    Ok(flatten_status(&v))
}

pub(crate) fn flatten_status(v: &serde_json::Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    flatten_into("", v, &mut out);
    out
}

fn flatten_into(prefix: &str, v: &serde_json::Value, out: &mut BTreeMap<String, String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten_into(&key, v, out);
            }
        }
        serde_json::Value::String(s) => {
            out.insert(prefix.to_owned(), s.clone());
        }
        other => {
            out.insert(prefix.to_owned(), other.to_string());
        }
    }
}

/// The outcome of an audit verification.
#[derive(Debug, Clone)]
pub(crate) struct Verification {
    pub(crate) ok: bool,
    pub(crate) text: String,
    /// The head verified, `(seq, hash)`, when the chain is intact.
    pub(crate) head: Option<(u64, String)>,
}

/// How the entries shown relate to the head verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Shown {
    /// Nothing verified this session, or the verified head is older than the entries shown.
    Unverified,
    /// The entries shown from `from` up to the verified head (inclusive) are those verified: the head entry is
    /// there with its hash, and each entry back from it hashes to what the next one links.
    Upto { from: u64, head: u64 },
    /// The entry shown at the verified head's seq is another one: the trail changed since it was verified.
    Differs,
}

/// Which of `entries` (any order) are the verified ones, for the verified head `head`.
pub(crate) fn shown_verified(
    entries: &[tessera_proto::audit::AuditEntry],
    head: Option<&(u64, String)>,
) -> Shown {
    let Some((seq, hash)) = head else {
        return Shown::Unverified;
    };
    let mut asc: Vec<&tessera_proto::audit::AuditEntry> = entries.iter().collect();
    asc.sort_by_key(|e| e.seq);
    let Some(i) = asc.iter().position(|e| e.seq == *seq) else {
        return Shown::Unverified;
    };
    let at = |k: usize| asc.get(k).copied();
    let Some(h) = at(i) else {
        return Shown::Unverified;
    };
    if h.hash != *hash || tessera_proto::audit::entry_hash(h) != *hash {
        return Shown::Differs;
    }
    let mut from = h.seq;
    let mut k = i;
    while let (Some(prev_i), Some(next)) = (k.checked_sub(1), at(k)) {
        let Some(prev) = at(prev_i) else { break };
        if prev.seq.checked_add(1) != Some(next.seq)
            || next.prev != prev.hash
            || tessera_proto::audit::entry_hash(prev) != prev.hash
        {
            break;
        }
        from = prev.seq;
        k = prev_i;
    }
    Shown::Upto { from, head: *seq }
}

/// Fetches the audit trail and verifies it as `tessera audit verify --expect-head` does: the hash chain, that it
/// still contains `expect` (the first head verified this session) and every recorded delivery, purge and rotation
/// against the agent's receipt.
pub(crate) async fn verify_audit(id: &Identity, expect: Option<&(u64, String)>) -> Verification {
    match verify_audit_inner(id, expect).await {
        Ok(v) => v,
        Err(e) => Verification {
            ok: false,
            text: e,
            head: None,
        },
    }
}

async fn verify_audit_inner(
    id: &Identity,
    expect: Option<&(u64, String)>,
) -> Result<Verification, String> {
    let v = id
        .client
        .get("/v1/audit")
        .await
        .map_err(|e| e.to_string())?;
    let entries = answers::audit(v).map_err(|e| e.to_string())?;
    let j = judge_files(id).await?;
    if let Err(e) = tessera_proto::audit::verify(&entries) {
        return Ok(Verification {
            ok: false,
            text: format!("audit chain BROKEN: {e}"),
            head: None,
        });
    }
    if let Some(v) = lost_head(&entries, expect) {
        return Ok(v);
    }
    let tally = receipts::tally(&entries, &j.registry, &j.catalogue, &id.ca, &j.revoked);
    let (seq, hash) = entries.last().map_or_else(
        || (0, tessera_proto::audit::GENESIS.to_owned()),
        |e| (e.seq, e.hash.clone()),
    );
    let mut text = format!(
        "audit chain intact: {} entries; {} receipts verified",
        entries.len(),
        tally.verified
    );
    if tally.by_revoked > 0 {
        let _ = write!(
            text,
            "; {} signed by agent certificates revoked since (not vouched for)",
            tally.by_revoked
        );
    }
    if !tally.bad.is_empty() {
        let _ = write!(
            text,
            "; but {} recorded deliveries, purges or rotations have NO VALID RECEIPT from the agent",
            tally.bad.len()
        );
    }
    Ok(Verification {
        ok: tally.bad.is_empty(),
        text,
        head: Some((seq, hash)),
    })
}

/// The failed verification when `entries` no longer contain `expect` (rewritten or truncated since).
pub(crate) fn lost_head(
    entries: &[tessera_proto::audit::AuditEntry],
    expect: Option<&(u64, String)>,
) -> Option<Verification> {
    let (seq, hash) = expect?;
    (!entries.iter().any(|e| e.seq == *seq && e.hash == *hash)).then(|| Verification {
        ok: false,
        text: format!(
            "audit trail REWRITTEN or truncated: it no longer contains the head {seq}:{hash} verified first in \
             this session"
        ),
        head: None,
    })
}

/// The newest `limit` audit entries, newest first.
pub(crate) async fn audit_tail(
    id: &Identity,
    limit: usize,
) -> Result<Vec<tessera_proto::audit::AuditEntry>, String> {
    let v = id
        .client
        .get("/v1/audit")
        .await
        .map_err(|e| e.to_string())?;
    let mut entries = answers::audit(v).map_err(|e| e.to_string())?;
    entries.reverse();
    entries.truncate(limit);
    Ok(entries)
}
