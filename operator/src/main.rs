//! `tessera`: the operator's commands, on the operator's workstation (CA, sealing, statements, the admin client).
//!
//! Exit codes: 0 success; 1 failure; 2 usage or input error, or the relay's answers contradict what was signed
//! (nothing was signed or sealed); 3 the relay refused (invalid, unauthorized, busy); 4 `audit verify` found the
//! chain broken.
#![forbid(unsafe_code)]

use std::io::Read as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tessera_operator::client::{AdminClient, ClientError};
use tessera_operator::{ca, cred, issued, revocations};
use tessera_proto::cert::{IdentityKey, PinnedCa};
use tessera_proto::ids::{AgentId, CredentialId, CredentialName, OperatorId};
use tessera_proto::secret::{SecretBytes, SecretPayload};
use tessera_proto::statement::Scope;

#[derive(Parser, Debug)]
#[command(name = "tessera", version, about = "Tessera operator commands")]
struct Cli {
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Debug, Clone)]
struct Conn {
    /// The relay's admin API, host:port.
    #[arg(long, env = "TESSERA_RELAY", default_value = "127.0.0.1:8443")]
    relay: String,
    /// Directory with operator.pem, operator.key and ca.pem (from `ca issue-operator`), the catalogue and the
    /// registry of issued agent certificates.
    #[arg(long, env = "TESSERA_OPERATOR_DIR", default_value = ".")]
    operator_dir: PathBuf,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The org CA (on the operator's workstation).
    #[command(subcommand)]
    Ca(CaCmd),
    /// Credentials.
    #[command(subcommand)]
    Cred(CredCmd),
    /// Agents.
    #[command(subcommand)]
    Agents(ListCmd),
    /// Alerts.
    #[command(subcommand)]
    Alerts(ListCmd),
    /// The audit trail.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Jobs.
    #[command(subcommand)]
    Job(JobCmd),
    /// Add agents to a credential's explicit scope (re-signs its statement with a higher scope revision).
    Grant {
        name: String,
        #[arg(required = true)]
        agents: Vec<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Remove agents from a credential's scope (agents that already hold it keep what they have).
    Revoke {
        name: String,
        #[arg(required = true)]
        agents: Vec<String>,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(Subcommand, Debug)]
enum CaCmd {
    /// Create the CA in DIR (ca.pem, ca.key).
    Init {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        org: String,
        #[arg(long, default_value_t = 3650)]
        days: u32,
    },
    /// Sign an agent's enrolment request (recorded in the CA's registry of issued certificates, and copied to the
    /// operator directory when it is under this CA).
    IssueAgent {
        #[arg(long)]
        dir: PathBuf,
        request: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// The agent id already holds a live certificate: issue a new one and revoke the old.
        #[arg(long)]
        replace: bool,
        /// The operator directory to copy the registry (and a new revocation list) into.
        #[arg(long, env = "TESSERA_OPERATOR_DIR")]
        operator_dir: Option<PathBuf>,
    },
    /// Create an operator key and certificate in OUT_DIR.
    IssueOperator {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        id: String,
        #[arg(long)]
        out_dir: PathBuf,
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
    /// Revoke certificates (agent or operator) and, with --push, send the signed list to the relay and agents.
    Revoke {
        #[arg(long)]
        dir: PathBuf,
        /// Certificate files to revoke.
        #[arg(long = "cert")]
        certs: Vec<PathBuf>,
        /// Push the new list through the admin API.
        #[arg(long)]
        push: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Create a service certificate (broker, relay) in OUT_DIR.
    IssueService {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long = "dns")]
        dns: Vec<String>,
        #[arg(long = "ip")]
        ip: Vec<IpAddr>,
        #[arg(long)]
        out_dir: PathBuf,
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
}

#[derive(Subcommand, Debug)]
enum CredCmd {
    /// Create NAME, or a new version of it (reads the secret from --file or stdin).
    Put {
        name: String,
        #[arg(long)]
        file: Option<PathBuf>,
        /// Explicit scope: only these agents (default: every agent).
        #[arg(long = "agent")]
        agents: Vec<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Put every regular file in DIR as a credential named after the file (a migration).
    Import {
        dir: PathBuf,
        /// Explicit scope for all of them (default: every agent, or an existing credential's scope).
        #[arg(long = "agent")]
        agents: Vec<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// A new version of NAME (same as put on an existing name); the scope is kept.
    Rotate {
        name: String,
        #[arg(long)]
        file: Option<PathBuf>,
        #[command(flatten)]
        conn: Conn,
    },
    /// List credentials with their sync state.
    Ls {
        #[command(flatten)]
        conn: Conn,
    },
    /// Delete NAME (the id comes from this operator's catalogue, never from the relay), or the credential with
    /// `--id`.
    Rm {
        #[arg(required_unless_present = "id", conflicts_with = "id")]
        name: Option<String>,
        #[arg(long)]
        id: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Learn credentials another operator signed (NAME..., or every one the relay lists with --all): each statement
    /// is verified against the CA; a name not yet in the catalogue is trusted on first use and reported.
    Adopt {
        names: Vec<String>,
        #[arg(long, conflicts_with = "names")]
        all: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Retry pending and stalled deliveries (30 s cooldown).
    Retry {
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(Subcommand, Debug)]
enum ListCmd {
    /// List.
    Ls {
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(Subcommand, Debug)]
enum AuditCmd {
    /// Fetch the audit trail and verify its hash chain.
    Verify {
        #[command(flatten)]
        conn: Conn,
    },
    /// List audit entries, oldest first (only those of KIND with --kind).
    Ls {
        #[arg(long)]
        kind: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(Subcommand, Debug)]
enum JobCmd {
    /// Dispatch TEMPLATE to an eligible agent.
    Run {
        template: String,
        #[arg(long)]
        agent: Option<String>,
        #[arg(long = "param", value_name = "K=V")]
        params: Vec<String>,
        #[arg(long = "credential")]
        credentials: Vec<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// List jobs.
    Ls {
        #[command(flatten)]
        conn: Conn,
    },
}

fn fail(code: u8, msg: &str) -> ExitCode {
    eprintln!("tessera: {msg}");
    ExitCode::from(code)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TESSERA_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(1, &e.to_string()),
    };
    rt.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Ca(CaCmd::Revoke {
            dir,
            certs,
            push,
            conn,
        }) => ca_revoke(&dir, &certs, push, &conn, cli.json).await,
        Command::Ca(c) => ca_cmd(c),
        Command::Grant { name, agents, conn } => {
            rescope(&conn, &name, &agents, cred::Rescope::Grant, cli.json).await
        }
        Command::Revoke { name, agents, conn } => {
            rescope(&conn, &name, &agents, cred::Rescope::Revoke, cli.json).await
        }
        Command::Cred(c) => cred_cmd(c, cli.json).await,
        Command::Agents(ListCmd::Ls { conn }) => {
            list(&conn, "/v1/agents", cli.json, |v| {
                format!(
                    "{:<24} {:<12} {}",
                    v["id"].as_str().unwrap_or(""),
                    v["state"].as_str().unwrap_or(""),
                    v["mode"].as_str().unwrap_or("-")
                )
            })
            .await
        }
        Command::Alerts(ListCmd::Ls { conn }) => {
            list(&conn, "/v1/alerts", cli.json, |v| {
                format!(
                    "{:<10} {:<32} x{:<4} {}  {}",
                    v["severity"].as_str().unwrap_or(""),
                    v["kind"].as_str().unwrap_or(""),
                    v["count"],
                    v["subject"].as_str().unwrap_or(""),
                    v["message"].as_str().unwrap_or("")
                )
            })
            .await
        }
        Command::Audit(AuditCmd::Verify { conn }) => audit_verify(&conn, cli.json).await,
        Command::Audit(AuditCmd::Ls { kind, conn }) => {
            list_where(
                &conn,
                "/v1/audit",
                cli.json,
                |v| kind.as_ref().is_none_or(|k| v["kind"] == k.as_str()),
                |v| {
                    let data = v["data"].as_object().map_or_else(String::new, |d| {
                        d.iter()
                            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                            .collect::<Vec<_>>()
                            .join(" ")
                    });
                    format!(
                        "{:>6}  {:<30} {data}",
                        v["seq"],
                        v["kind"].as_str().unwrap_or("")
                    )
                },
            )
            .await
        }
        Command::Job(j) => job_cmd(j, cli.json).await,
    }
}

fn ca_cmd(c: CaCmd) -> ExitCode {
    let r = match c {
        CaCmd::Init { dir, org, days } => {
            ca::init(&dir, &org, days).map(|()| format!("CA created in {}", dir.display()))
        }
        CaCmd::IssueAgent {
            dir,
            request,
            out,
            days,
            replace,
            operator_dir,
        } => issue_agent(&dir, &request, &out, days, replace, operator_dir.as_deref()),
        CaCmd::IssueOperator {
            dir,
            id,
            out_dir,
            days,
        } => ca::issue_operator(&dir, &id, &out_dir, days)
            .map(|()| format!("operator {id} written to {}", out_dir.display())),
        CaCmd::IssueService {
            dir,
            name,
            dns,
            ip,
            out_dir,
            days,
        } => ca::issue_service(&dir, &name, &dns, &ip, &out_dir, days).map(|()| {
            format!(
                "service certificate {name} written to {}",
                out_dir.display()
            )
        }),
        // Dispatched to `ca_revoke` before this function is called.
        CaCmd::Revoke { .. } => Err(ca::CaError::Invalid(
            "revoke is handled by ca_revoke".into(),
        )),
    };
    match r {
        Ok(msg) => {
            eprintln!("tessera: {msg}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(2, &e.to_string()),
    }
}

struct OperatorFiles {
    ca: PinnedCa,
    key: IdentityKey,
    cert: Vec<u8>,
    id: OperatorId,
    dir: PathBuf,
    client: AdminClient,
}

impl OperatorFiles {
    /// What signs and seals on this workstation.
    fn signer(&self) -> cred::Operator<'_> {
        cred::Operator {
            ca: &self.ca,
            id: self.id.clone(),
            key: &self.key,
            cert: &self.cert,
            dir: &self.dir,
        }
    }
}

fn load_operator(conn: &Conn) -> Result<OperatorFiles, String> {
    let read = |n: &str| {
        std::fs::read(conn.operator_dir.join(n))
            .map_err(|e| format!("{}: {e}", conn.operator_dir.join(n).display()))
    };
    let first = |b: &[u8]| tessera_proto::pem_files::first_cert(b).map_err(|e| e.to_string());
    let ca_der = first(&read("ca.pem")?)?;
    let ca = PinnedCa::from_der(&ca_der).map_err(|e| e.to_string())?;
    let cert_pem = read("operator.pem")?;
    let key_pem = read("operator.key")?;
    let cert = first(&cert_pem)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let verified = ca
        .verify_operator(
            &cert,
            now,
            &tessera_proto::statement::RevocationList::empty(),
        )
        .map_err(|e| format!("operator certificate: {e}"))?;
    let key = tessera_proto::pem_files::pkcs8_key(&key_pem).map_err(|e| e.to_string())?;
    let key = IdentityKey::from_pkcs8_der(&key).map_err(|e| e.to_string())?;
    let tls = tessera_operator::tls::client_config(&ca_der, &cert_pem, &key_pem)?;
    Ok(OperatorFiles {
        ca,
        key,
        cert,
        id: verified.operator_id,
        dir: conn.operator_dir.clone(),
        client: AdminClient::new(&conn.relay, tls),
    })
}

fn api_fail(e: &ClientError) -> ExitCode {
    match e {
        ClientError::Api { .. } => fail(3, &e.to_string()),
        _ => fail(1, &e.to_string()),
    }
}

#[allow(clippy::print_stdout)]
fn print(json: bool, v: &serde_json::Value, text: &str) {
    if json {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    } else {
        println!("{text}");
    }
}

async fn list(
    conn: &Conn,
    path: &str,
    json: bool,
    row: impl Fn(&serde_json::Value) -> String,
) -> ExitCode {
    list_where(conn, path, json, |_| true, row).await
}

/// Lists the entries of `path` that `keep` keeps, as JSON or one `row` per line.
async fn list_where(
    conn: &Conn,
    path: &str,
    json: bool,
    keep: impl Fn(&serde_json::Value) -> bool,
    row: impl Fn(&serde_json::Value) -> String,
) -> ExitCode {
    let op = match load_operator(conn) {
        Ok(o) => o,
        Err(e) => return fail(2, &e),
    };
    match op.client.get(path).await {
        Ok(v) => {
            let kept: Vec<serde_json::Value> = v
                .as_array()
                .map(|a| a.iter().filter(|e| keep(e)).cloned().collect())
                .unwrap_or_default();
            let text = kept.iter().map(&row).collect::<Vec<_>>().join("\n");
            print(json, &serde_json::Value::Array(kept), &text);
            ExitCode::SUCCESS
        }
        Err(e) => api_fail(&e),
    }
}

fn read_secret(file: Option<&Path>) -> Result<SecretBytes, String> {
    let mut buf = Vec::new();
    let r = match file {
        Some(f) => std::fs::File::open(f).and_then(|mut h| h.read_to_end(&mut buf)),
        None => std::io::stdin().read_to_end(&mut buf),
    };
    let secret = SecretBytes::new(buf);
    r.map_err(|e| e.to_string())?;
    Ok(secret)
}

async fn cred_cmd(c: CredCmd, json: bool) -> ExitCode {
    match c {
        CredCmd::Put {
            name,
            file,
            agents,
            conn,
        } => put(&conn, &name, file.as_deref(), &agents, json).await,
        CredCmd::Import { dir, agents, conn } => import(&conn, &dir, &agents, json).await,
        CredCmd::Rotate { name, file, conn } => put(&conn, &name, file.as_deref(), &[], json).await,
        CredCmd::Ls { conn } => {
            list(&conn, "/v1/credentials", json, |v| {
                let s = &v["sync"];
                let chip = if s["integrity_failure"].as_bool() == Some(true) {
                    "integrity failure".to_owned()
                } else if s["stalled"].as_u64().unwrap_or(0) > 0 {
                    format!("stalled {}", s["stalled"])
                } else if s["pending"].as_u64().unwrap_or(0) > 0 {
                    format!("pending {}", s["pending"])
                } else {
                    "synced".to_owned()
                };
                format!(
                    "{:<24} v{:<4} synced {}/{}  {chip}  {}",
                    v["name"].as_str().unwrap_or(""),
                    v["version"],
                    s["synced"],
                    s["of"],
                    v["id"].as_str().unwrap_or("")
                )
            })
            .await
        }
        CredCmd::Rm { name, id, conn } => remove(&conn, name.as_deref(), id.as_deref(), json).await,
        CredCmd::Adopt { names, all, conn } => adopt(&conn, &names, all, json).await,
        CredCmd::Retry { id, conn } => {
            simple(&conn, json, |c| async move {
                c.post(
                    &format!("/v1/credentials/{id}/retry"),
                    &serde_json::json!({}),
                )
                .await
            })
            .await
        }
    }
}

async fn simple<F, Fut>(conn: &Conn, json: bool, f: F) -> ExitCode
where
    F: FnOnce(AdminClient) -> Fut,
    Fut: std::future::Future<Output = Result<serde_json::Value, ClientError>>,
{
    let op = match load_operator(conn) {
        Ok(o) => o,
        Err(e) => return fail(2, &e),
    };
    match f(op.client).await {
        Ok(v) => {
            print(json, &v, "ok");
            ExitCode::SUCCESS
        }
        Err(e) => api_fail(&e),
    }
}

/// `--agent ID ...`: an explicit scope, or `None` (every agent, or an existing credential's scope).
fn scope_arg(agents: &[String]) -> Result<Option<Scope>, ExitCode> {
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
fn notes(notes: &[String]) {
    for n in notes {
        eprintln!("tessera: note: {n}");
    }
}

/// A command's failure: the relay refused (3), or nothing was signed because of bad input or a relay that
/// contradicts what was signed (2).
fn cred_fail(e: &cred::CredError) -> ExitCode {
    match e {
        cred::CredError::Client(c) => api_fail(c),
        other => fail(2, &other.to_string()),
    }
}

fn put_text(r: &cred::PutReport) -> String {
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
        text.push_str(&format!("; {d}"));
    }
    for s in &r.skipped {
        text.push_str(&format!("\n  skipped {}: {}", s.agent, s.reason));
    }
    text
}

async fn put(
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
    let payload = match read_secret(file)
        .map_err(cred::CredError::Invalid)
        .and_then(|s| cred::payload_from_input(&s))
    {
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
async fn import(conn: &Conn, dir: &Path, agents: &[String], json: bool) -> ExitCode {
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
        let payload = match read_secret(Some(p))
            .map_err(cred::CredError::Invalid)
            .and_then(|s| cred::payload_from_input(&s))
        {
            Ok(v) => v,
            Err(e) => return fail(2, &format!("{}: {e}", p.display())),
        };
        items.push((name, scope.clone(), payload));
    }
    let op = match load_operator(conn) {
        Ok(o) => o,
        Err(e) => return fail(2, &e),
    };
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

async fn remove(conn: &Conn, name: Option<&str>, id: Option<&str>, json: bool) -> ExitCode {
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
                &format!("{} ({}) deleted", e.name.as_str(), e.id),
            );
            ExitCode::SUCCESS
        }
        Err(e) => cred_fail(&e),
    }
}

async fn adopt(conn: &Conn, names: &[String], all: bool, json: bool) -> ExitCode {
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

fn issue_agent(
    dir: &Path,
    request: &Path,
    out: &Path,
    days: u32,
    replace: bool,
    operator_dir: Option<&Path>,
) -> Result<String, ca::CaError> {
    let issued = ca::issue_agent(dir, request, out, days, replace)?;
    let mut msg = format!(
        "certificate {} for {} written to {}",
        issued.serial.as_str(),
        issued.agent.as_str(),
        out.display()
    );
    if !issued.replaced.is_empty() {
        let serials: Vec<&str> = issued.replaced.iter().map(|s| s.as_str()).collect();
        msg.push_str(&format!("; replaced and revoked {}", serials.join(", ")));
    }
    if let Some(od) = operator_dir.filter(|od| operator_dir_of_this_ca(dir, od)) {
        issued::Registry::load(dir)
            .and_then(|r| r.unwrap_or_default().save(od))
            .map_err(|e| ca::CaError::Io(e.to_string()))?;
        if let Some(list) = &issued.revocations {
            revocations::write_dir_copy(od, list).map_err(|e| ca::CaError::Io(e.to_string()))?;
        }
        msg.push_str(&format!("; registry copied to {}", od.display()));
    }
    Ok(msg)
}

async fn audit_verify(conn: &Conn, json: bool) -> ExitCode {
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
    let head = entries.last().map(|e| (e.seq, e.hash.clone()));
    match tessera_proto::audit::verify(&entries) {
        Ok(()) => {
            let (seq, hash) = head.unwrap_or((0, tessera_proto::audit::GENESIS.to_owned()));
            let out = serde_json::json!({ "ok": true, "entries": entries.len(), "head_seq": seq, "head_hash": hash });
            print(
                json,
                &out,
                &format!(
                    "audit chain intact: {} entries, head {seq} {hash}",
                    entries.len()
                ),
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            let out = serde_json::json!({ "ok": false, "error": e.to_string() });
            print(json, &out, &format!("audit chain BROKEN: {e}"));
            ExitCode::from(4)
        }
    }
}

async fn job_cmd(j: JobCmd, json: bool) -> ExitCode {
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
            let body = serde_json::json!({ "template": template, "params": map, "credentials": credentials, "agent": agent });
            simple(
                &conn,
                json,
                |c| async move { c.post("/v1/jobs", &body).await },
            )
            .await
        }
        JobCmd::Ls { conn } => {
            list(&conn, "/v1/jobs", json, |v| {
                let result = &v["result"];
                format!(
                    "{}  {:<20} on {:<16} exit {}",
                    v["id"].as_str().unwrap_or(""),
                    v["template"].as_str().unwrap_or(""),
                    v["agent"].as_str().unwrap_or(""),
                    if result.is_null() {
                        "-".to_owned()
                    } else {
                        result["exit_code"].to_string()
                    }
                )
            })
            .await
        }
    }
}

async fn ca_revoke(dir: &Path, certs: &[PathBuf], push: bool, conn: &Conn, json: bool) -> ExitCode {
    let mut serials = Vec::new();
    for c in certs {
        match ca::serial_of(dir, c) {
            Ok(s) => serials.push(s),
            Err(e) => return fail(2, &e.to_string()),
        }
    }
    let signed = match ca::revoke(dir, &serials) {
        Ok(s) => s,
        Err(e) => return fail(2, &e.to_string()),
    };
    let serial = signed
        .parse_unverified(tessera_proto::statement::REVOCATION_KIND)
        .map(|l| l.serial)
        .unwrap_or_default();
    // This workstation's operator directory keeps a copy: `cred put` then seals by it even if the relay withholds it.
    let copied = operator_dir_of_this_ca(dir, &conn.operator_dir);
    if copied {
        if let Err(e) = revocations::write_dir_copy(&conn.operator_dir, &signed) {
            return fail(1, &e.to_string());
        }
    }
    if push {
        let op = match load_operator(conn) {
            Ok(o) => o,
            Err(e) => return fail(2, &e),
        };
        let body = serde_json::to_value(&signed).unwrap_or_default();
        if let Err(e) = op.client.post("/v1/revocations", &body).await {
            return api_fail(&e);
        }
    }
    let v = serde_json::json!({
        "serial": serial, "revoked": serials, "pushed": push, "operator_copy": copied
    });
    print(
        json,
        &v,
        &format!(
            "revocation list {serial} written to {}{}{}",
            dir.join(revocations::FILE).display(),
            if copied {
                format!(
                    " and {}",
                    conn.operator_dir.join(revocations::FILE).display()
                )
            } else {
                String::new()
            },
            if push { ", and pushed" } else { "" }
        ),
    );
    ExitCode::SUCCESS
}

/// Whether `operator_dir` is another directory holding an operator identity under the CA in `ca_dir`.
fn operator_dir_of_this_ca(ca_dir: &Path, operator_dir: &Path) -> bool {
    let same_dir = match (ca_dir.canonicalize(), operator_dir.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => return false,
    };
    let same_ca = match (
        std::fs::read(ca_dir.join("ca.pem")),
        std::fs::read(operator_dir.join("ca.pem")),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    !same_dir && same_ca && operator_dir.join("operator.pem").is_file()
}

async fn rescope(
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
