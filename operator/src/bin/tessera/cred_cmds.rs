//! `cred ...`, `grant` and `revoke`: the commands that sign and seal (their rules are `tessera_operator::cred`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tessera_operator::cred;
use tessera_proto::ids::{AgentId, CredentialId, CredentialName};
use tessera_proto::secret::SecretPayload;
use tessera_proto::statement::Scope;

use crate::cli::{Conn, CredCmd};
use crate::fail;
use crate::secret_input::read_secret;
use crate::session::{api_fail, load_operator, print};

pub(crate) async fn cred_cmd(c: CredCmd, json: bool) -> ExitCode {
    match c {
        CredCmd::Put {
            name,
            file,
            agents,
            conn,
        } => put(&conn, &name, file.as_deref(), &agents, json).await,
        CredCmd::Import { dir, agents, conn } => import(&conn, &dir, &agents, json).await,
        CredCmd::Rotate { name, file, conn } => put(&conn, &name, file.as_deref(), &[], json).await,
        CredCmd::Ls { conn } => crate::ls_cmds::cred_ls(&conn, json).await,
        CredCmd::Rm { name, id, conn } => remove(&conn, name.as_deref(), id.as_deref(), json).await,
        CredCmd::Adopt { names, all, conn } => adopt(&conn, &names, all, json).await,
        CredCmd::Show { name, conn } => crate::show_cmd::cred_show(&conn, &name, json).await,
        CredCmd::Retry { name, id, conn } => {
            crate::retry_cmd::retry(&conn, name.as_deref(), id.as_deref(), json).await
        }
    }
}

fn warn_weak(name: &CredentialName, secret: &tessera_proto::secret::SecretBytes) {
    if let Some(w) = cred::weak_secret_warning(name, secret) {
        eprintln!("tessera: warning: {w}");
    }
}

/// `--agent ID ...`: an explicit scope, or `None` (every agent, or an existing credential's scope).
pub(crate) fn scope_arg(agents: &[String]) -> Result<Option<Scope>, ExitCode> {
    if agents.is_empty() {
        return Ok(None);
    }
    agents
        .iter()
        .map(AgentId::new)
        .collect::<Result<Vec<_>, _>>()
        .map(|ids| Some(Scope::explicit(ids)))
        .map_err(|e| fail(2, &e.to_string()))
}

/// Prints warnings the command collected (the relay's answers it ignored or learnt from).
pub(crate) fn notes(notes: &[String]) {
    for n in notes {
        eprintln!("tessera: note: {n}");
    }
}

/// A command's failure: the relay refused (3), or nothing was signed because of bad input or a relay that
/// contradicts what was signed (2).
pub(crate) fn cred_fail(e: &cred::CredError) -> ExitCode {
    match e {
        cred::CredError::Client(c) => api_fail(c),
        other => fail(2, &other.to_string()),
    }
}

pub(crate) fn put_text(r: &cred::PutReport) -> String {
    let mut text = format!(
        "{} version {} ({}) sealed for {} agent(s): {}",
        r.name.as_str(),
        r.version,
        r.id,
        r.sealed_for.len(),
        r.sealed_for
            .iter()
            .map(AgentId::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(d) = &r.scope_change {
        let _ = write!(text, "; {d}");
    }
    for s in &r.skipped {
        let _ = write!(text, "\n  skipped {}: {}", s.agent, s.reason);
    }
    text
}

pub(crate) async fn put(
    conn: &Conn,
    name: &str,
    file: Option<&Path>,
    agents: &[String],
    json: bool,
) -> ExitCode {
    let Ok(name) = CredentialName::new(name) else {
        return fail(2, "credential name must match [A-Za-z0-9_-]{1,128}");
    };
    let scope = match scope_arg(agents) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let op = match load_operator(conn) {
        Ok(o) => o,
        Err(e) => return fail(2, &e),
    };
    if let Err(e) = crate::resolve::certified_agents(&op, agents, "--agent ").await {
        return fail(2, &e);
    }
    let payload = match read_secret(name.as_str(), file)
        .map_err(cred::CredError::Invalid)
        .and_then(|s| {
            warn_weak(&name, &s);
            cred::payload_from_input(&s)
        }) {
        Ok(p) => p,
        Err(e) => return fail(2, &e.to_string()),
    };
    let operator = op.signer();
    match cred::put_many(&op.client, &operator, &[(name, scope, &payload)]).await {
        Ok((reports, n)) => {
            notes(&n);
            let Some(r) = reports.first() else {
                return fail(1, "nothing was put");
            };
            let v = serde_json::to_value(r).unwrap_or_default();
            print(json, &v, &put_text(r));
            ExitCode::SUCCESS
        }
        Err(e) => cred_fail(&e),
    }
}

/// `cred import DIR`: every regular file is a credential named after the file, its content the secret.
pub(crate) async fn import(conn: &Conn, dir: &Path, agents: &[String], json: bool) -> ExitCode {
    let scope = match scope_arg(agents) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) => return fail(2, &format!("{}: {e}", dir.display())),
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    let mut items = Vec::with_capacity(paths.len());
    for p in &paths {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let Ok(name) = CredentialName::new(name) else {
            return fail(
                2,
                &format!(
                    "{}: a credential name must match [A-Za-z0-9_-]{{1,128}}",
                    p.display()
                ),
            );
        };
        let payload = match read_secret(name.as_str(), Some(p))
            .map_err(cred::CredError::Invalid)
            .and_then(|s| {
                warn_weak(&name, &s);
                cred::payload_from_input(&s)
            }) {
            Ok(v) => v,
            Err(e) => return fail(2, &format!("{}: {e}", p.display())),
        };
        items.push((name, scope.clone(), payload));
    }
    let op = match load_operator(conn) {
        Ok(o) => o,
        Err(e) => return fail(2, &e),
    };
    if let Err(e) = crate::resolve::certified_agents(&op, agents, "--agent ").await {
        return fail(2, &e);
    }
    let operator = op.signer();
    let refs: Vec<(CredentialName, Option<Scope>, &SecretPayload)> = items
        .iter()
        .map(|(n, s, p)| (n.clone(), s.clone(), p))
        .collect();
    match cred::put_many(&op.client, &operator, &refs).await {
        Ok((r, n)) => {
            notes(&n);
            let v = serde_json::to_value(&r).unwrap_or_default();
            print(
                json,
                &v,
                &format!("imported {} credential(s) from {}", r.len(), dir.display()),
            );
            ExitCode::SUCCESS
        }
        Err(e) => cred_fail(&e),
    }
}

pub(crate) async fn remove(
    conn: &Conn,
    name: Option<&str>,
    id: Option<&str>,
    json: bool,
) -> ExitCode {
    let target = match (name, id) {
        (_, Some(id)) => match id.parse::<CredentialId>() {
            Ok(u) => cred::Target::Id(u),
            Err(e) => return fail(2, &format!("--id {id}: {e}")),
        },
        (Some(n), None) => match CredentialName::new(n) {
            Ok(n) => cred::Target::Name(n),
            Err(_) => return fail(2, "credential name must match [A-Za-z0-9_-]{1,128}"),
        },
        (None, None) => return fail(2, "give NAME or --id ID"),
    };
    let op = match load_operator(conn) {
        Ok(o) => o,
        Err(e) => return fail(2, &e),
    };
    let operator = op.signer();
    match cred::remove(&op.client, &operator, &target).await {
        Ok((e, n)) => {
            notes(&n);
            print(
                json,
                &serde_json::json!({ "deleted": e.id, "name": e.name, "version": e.version }),
                &format!(
                    "{} ({}) deleted through version {}: tombstone sent; `tessera cred ls` shows the purge on agents",
                    e.name.as_str(),
                    e.id,
                    e.version
                ),
            );
            ExitCode::SUCCESS
        }
        Err(e) => cred_fail(&e),
    }
}

pub(crate) async fn adopt(conn: &Conn, names: &[String], all: bool, json: bool) -> ExitCode {
    if names.is_empty() && !all {
        return fail(2, "name the credentials to adopt, or give --all");
    }
    let names = match names
        .iter()
        .map(CredentialName::new)
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(n) => n,
        Err(e) => return fail(2, &e.to_string()),
    };
    let op = match load_operator(conn) {
        Ok(o) => o,
        Err(e) => return fail(2, &e),
    };
    let operator = op.signer();
    match cred::adopt(&op.client, &operator, &names).await {
        Ok(out) => {
            let text = out
                .iter()
                .map(|a| {
                    let warn = if a.outcome == "new" {
                        "  (trusted on first use: check with its signer)"
                    } else {
                        ""
                    };
                    format!("{:<8} {} {}: {}{warn}", a.outcome, a.name, a.id, a.detail)
                })
                .collect::<Vec<_>>()
                .join("\n");
            print(json, &serde_json::to_value(&out).unwrap_or_default(), &text);
            if out.iter().any(|a| a.outcome == "refused") {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => cred_fail(&e),
    }
}

pub(crate) async fn rescope(
    conn: &Conn,
    name: &str,
    agents: &[String],
    how: cred::Rescope,
    json: bool,
) -> ExitCode {
    let Ok(name) = CredentialName::new(name) else {
        return fail(2, "credential name must match [A-Za-z0-9_-]{1,128}");
    };
    let agents = match agents
        .iter()
        .map(AgentId::new)
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(a) => a,
        Err(e) => return fail(2, &e.to_string()),
    };
    let op = match load_operator(conn) {
        Ok(o) => o,
        Err(e) => return fail(2, &e),
    };
    // Only a grant must name certified agents: a revoke may remove one whose certificate is gone.
    if matches!(how, cred::Rescope::Grant) {
        let named: Vec<String> = agents.iter().map(|a| a.as_str().to_owned()).collect();
        if let Err(e) = crate::resolve::certified_agents(&op, &named, "").await {
            return fail(2, &e);
        }
    }
    let operator = op.signer();
    match cred::rescope(&op.client, &operator, &name, &agents, how).await {
        Ok((r, n)) => {
            notes(&n);
            print(
                json,
                &serde_json::to_value(&r).unwrap_or_default(),
                &format!(
                    "{} scope revision {}: {}",
                    name.as_str(),
                    r.scope_revision,
                    r.scope_change
                ),
            );
            ExitCode::SUCCESS
        }
        Err(e) => cred_fail(&e),
    }
}
