//! `ca renew` and `agents rotate`: agents' blue/green key rotations, certified by the CA on this workstation.

use std::path::Path;
use std::process::ExitCode;

use tessera_operator::renew::{self, Plan};
use tessera_operator::{answers, ca, issued, revocations};
use tessera_proto::ids::AgentId;
use tessera_proto::statement::RevocationList;

use crate::ca_cmds::operator_dir_of_this_ca;
use crate::cli::Conn;
use crate::fail;
use crate::session::{api_fail, load_operator, print};

/// The arguments of `ca renew`.
#[derive(Debug)]
pub(crate) struct Renew<'a> {
    pub(crate) dir: &'a Path,
    pub(crate) agents: &'a [String],
    pub(crate) due: bool,
    pub(crate) lifetime_secs: i64,
    pub(crate) grace_secs: u64,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// One line of the report.
struct Row {
    agent: AgentId,
    state: String,
    /// When the relay says the request was queued, Unix ms.
    requested_ms: u64,
    outcome: String,
}

pub(crate) async fn ca_renew(r: &Renew<'_>, conn: &Conn, json: bool) -> ExitCode {
    let named = match r
        .agents
        .iter()
        .map(|a| AgentId::new(a.clone()).map_err(|e| format!("{a}: {e}")))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(n) => n,
        Err(e) => return fail(2, &e),
    };
    let org = match ca::load(r.dir) {
        Ok(c) => c,
        Err(e) => return fail(2, &e.to_string()),
    };
    let op = match load_operator(conn) {
        Ok(o) => o,
        Err(e) => return fail(2, &e),
    };
    let views = match op.client.get("/v1/renewals").await {
        Ok(v) => match answers::renewals(v) {
            Ok(v) => v,
            Err(e) => return fail(1, &e.to_string()),
        },
        Err(e) => return api_fail(&e),
    };
    for a in &named {
        if !views.iter().any(|v| v.agent == *a) {
            return fail(
                2,
                &format!(
                    "the relay has no key rotation queued for {} (`tessera agents rotate {}` starts one)",
                    a.as_str(),
                    a.as_str()
                ),
            );
        }
    }
    let grace = i64::try_from(r.grace_secs).unwrap_or(i64::MAX);
    let mut rows = Vec::new();
    let mut progress = Progress::default();
    let mut seen = std::collections::BTreeSet::new();
    for v in views
        .iter()
        .filter(|v| named.is_empty() || named.contains(&v.agent))
    {
        // One rotation per agent: a relay that lists an agent twice (an old request beside a new one) gets nothing
        // for the second.
        if !seen.insert(v.agent.clone()) {
            progress.refused = true;
            rows.push(Row {
                agent: v.agent.clone(),
                state: format!("{:?}", v.state).to_lowercase(),
                requested_ms: v.requested_ms,
                outcome: "REFUSED: the relay lists this agent twice".to_owned(),
            });
            continue;
        }
        // The CA's own registry and list, read again after each change this command makes.
        let registry = match issued::Registry::load(r.dir) {
            Ok(reg) => reg.unwrap_or_default(),
            Err(e) => return fail(2, &e.to_string()),
        };
        let revoked = match revocations::read_dir_copy(r.dir, org.pinned()) {
            Ok(l) => l.unwrap_or_else(RevocationList::empty),
            Err(e) => return fail(2, &e.to_string()),
        };
        let act = r.due || named.contains(&v.agent);
        let plan = renew::plan(v, &registry, org.pinned(), &revoked, now(), grace);
        let outcome = carry_out(plan, act, v, r, &op.client, &mut progress).await;
        rows.push(Row {
            agent: v.agent.clone(),
            state: format!("{:?}", v.state).to_lowercase(),
            requested_ms: v.requested_ms,
            outcome,
        });
    }
    let Progress {
        refused,
        mut failed,
        new_list,
    } = progress;
    if let Err(e) = publish(r.dir, &op.client, new_list.as_ref(), &conn.operator_dir).await {
        eprintln!("tessera: {e}");
        failed = true;
    }
    report(&rows, json);
    if refused {
        ExitCode::from(2)
    } else if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Pushes a new revocation list to the relay, and copies the CA's registry (and the list) into the operator directory
/// of this workstation.
async fn publish(
    dir: &Path,
    client: &tessera_operator::client::AdminClient,
    list: Option<&tessera_proto::statement::Signed<RevocationList>>,
    operator_dir: &Path,
) -> Result<(), String> {
    if operator_dir_of_this_ca(dir, operator_dir) {
        issued::Registry::load(dir)
            .and_then(|reg| reg.unwrap_or_default().save(operator_dir))
            .map_err(|e| e.to_string())?;
        if let Some(list) = list {
            revocations::write_dir_copy(operator_dir, list).map_err(|e| e.to_string())?;
        }
    }
    if let Some(list) = list {
        let body = serde_json::to_value(list).unwrap_or_default();
        client.post("/v1/revocations", &body).await.map_err(|e| {
            format!(
                "the new revocation list is in {} but could not be pushed: {e}; push it with `tessera ca revoke \
                 --push --dir CA-DIR`",
                dir.display()
            )
        })?;
    }
    Ok(())
}

/// What `ca renew` has done so far.
#[derive(Default)]
struct Progress {
    refused: bool,
    failed: bool,
    new_list: Option<tessera_proto::statement::Signed<RevocationList>>,
}

/// Carries out `plan` for `v` (only when `act`); the line to report.
async fn carry_out(
    plan: Plan,
    act: bool,
    v: &tessera_proto::admin::RenewalView,
    r: &Renew<'_>,
    client: &tessera_operator::client::AdminClient,
    p: &mut Progress,
) -> String {
    match plan {
        Plan::Sign(current) if act => {
            match ca::renew(r.dir, &v.request, &current, r.lifetime_secs) {
                Ok(ca::Renewed { der, serial }) => {
                    match push(client, &v.agent, &der).await {
                        Ok(()) => format!("certified {serial} (renews {}), pushed", current.serial),
                        Err(e) => {
                            p.failed = true;
                            format!("certified {serial}, but the push failed: {e} (run again to push it)")
                        }
                    }
                }
                Err(e) => {
                    p.refused = true;
                    format!("REFUSED: {e}")
                }
            }
        }
        Plan::Repush(der) if act => match push(client, &v.agent, &der).await {
            Ok(()) => "certificate issued earlier, pushed again".to_owned(),
            Err(e) => {
                p.failed = true;
                format!("push failed: {e}")
            }
        },
        Plan::Retire { blue, green, at } if act => {
            match ca::retire(r.dir, &v.agent, &blue, &green, at) {
                Ok(list) => {
                    p.new_list = Some(list);
                    format!("rotation complete: {blue} retired and revoked ({green} in use)")
                }
                Err(e) => {
                    p.failed = true;
                    format!("could not revoke {blue}: {e}")
                }
            }
        }
        Plan::Sign(_) | Plan::Repush(_) => {
            "requested: verifies; run `tessera ca renew --due` (or name the agent) to certify it"
                .to_owned()
        }
        Plan::Retire { blue, .. } => {
            format!("completed: {blue} is due to be revoked (run with --due)")
        }
        Plan::Refuse(reason) => {
            p.refused = true;
            format!("REFUSED: {reason}")
        }
        Plan::Wait(why) => why,
        _ => "unknown".to_owned(),
    }
}

/// The rows as a table sorted by agent (a relay's second entry for an agent stays after the first), or as JSON.
fn report(rows: &[Row], json: bool) {
    let mut sorted: Vec<&Row> = rows.iter().collect();
    sorted.sort_by(|a, b| a.agent.as_str().cmp(b.agent.as_str()));
    let v: Vec<serde_json::Value> = sorted
        .iter()
        .map(|row| {
            serde_json::json!({ "agent": row.agent.as_str(), "state": row.state,
                "requested_ms": row.requested_ms, "outcome": row.outcome })
        })
        .collect();
    let text = if rows.is_empty() {
        "no key rotation is queued at the relay".to_owned()
    } else {
        let cells: Vec<Vec<String>> = sorted
            .iter()
            .map(|row| {
                vec![
                    row.agent.as_str().to_owned(),
                    row.state.clone(),
                    crate::table::time_ms(&row.requested_ms.into()),
                    row.outcome.clone(),
                ]
            })
            .collect();
        crate::table::render(&["AGENT", "STATE", "REQUESTED", "OUTCOME"], &cells)
    };
    print(json, &serde_json::Value::Array(v), &text);
}

async fn push(
    client: &tessera_operator::client::AdminClient,
    agent: &AgentId,
    der: &[u8],
) -> Result<(), tessera_operator::client::ClientError> {
    let body = serde_json::json!({ "cert": tessera_proto::b64_encode(der) });
    client
        .post(
            &format!("/v1/renewals/{}/certificate", agent.as_str()),
            &body,
        )
        .await
        .map(|_| ())
}

pub(crate) async fn agents_rotate(agent: &str, conn: &Conn, json: bool) -> ExitCode {
    let agent = match AgentId::new(agent.to_owned()) {
        Ok(a) => a,
        Err(e) => return fail(2, &format!("{agent}: {e}")),
    };
    let op = match load_operator(conn) {
        Ok(o) => o,
        Err(e) => return fail(2, &e),
    };
    // Only an agent the CA certified (the registry's live certificate), by the same code as the dashboard.
    match tessera_operator::agent_rotate::request(&op.client, &op.ca, &op.dir, &agent).await {
        Ok(v) => {
            print(
                json,
                &v,
                &format!(
                    "rotation requested: {} generates new keys and queues a renewal request; certify it with \
                     `tessera ca renew --dir CA-DIR --due` on the CA's workstation",
                    agent.as_str()
                ),
            );
            ExitCode::SUCCESS
        }
        Err(tessera_operator::agent_rotate::RotateError::Client(e)) => api_fail(&e),
        Err(e) => fail(2, &e.to_string()),
    }
}
