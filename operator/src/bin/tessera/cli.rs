//! The command line: every subcommand and flag of `tessera`.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "tessera", version, about = "Tessera operator commands")]
pub(crate) struct Cli {
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Log lines as `text` or `json` on stderr (the filter: TESSERA_LOG, else RUST_LOG).
    #[arg(
        long,
        global = true,
        value_name = "text|json",
        default_value = "text",
        env = "TESSERA_LOG_FORMAT"
    )]
    pub(crate) log_format: tessera_proto::logging::LogFormat,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct Conn {
    /// The relay's admin API, host:port.
    #[arg(long, env = "TESSERA_RELAY", default_value = "127.0.0.1:8443")]
    pub(crate) relay: String,
    /// Directory with operator.pem, operator.key and ca.pem (from `ca issue-operator`), the catalogue and the
    /// registry of issued agent certificates.
    #[arg(long, env = "TESSERA_OPERATOR_DIR", default_value = ".")]
    pub(crate) operator_dir: PathBuf,
    /// The service name the relay's admin certificate must carry (another org service cannot pose as the relay).
    #[arg(long, env = "TESSERA_RELAY_NAME", default_value = tessera_operator::tls::DEFAULT_RELAY_NAME)]
    pub(crate) relay_name: String,
    /// Seconds one request to the relay may take, connection included.
    #[arg(long, env = "TESSERA_TIMEOUT", default_value_t = 20)]
    pub(crate) timeout: u64,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// The org CA (on the operator's workstation).
    #[command(subcommand)]
    Ca(CaCmd),
    /// Credentials.
    #[command(subcommand)]
    Cred(CredCmd),
    /// Agents.
    #[command(subcommand)]
    Agents(AgentsCmd),
    /// Alerts.
    #[command(subcommand)]
    Alerts(ListCmd),
    /// The audit trail.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Jobs.
    #[command(subcommand)]
    Job(JobCmd),
    /// The org broker's configuration (Mosquitto: TLS, client certificates, the topic ACL).
    #[command(subcommand)]
    BrokerConfig(crate::broker_cmd::BrokerConfigCmd),
    /// Add agents to a credential's explicit scope (re-signs its statement with a higher scope revision).
    Grant {
        name: String,
        #[arg(required = true)]
        agents: Vec<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Serve the operator's web dashboard on a local address (fleet, credentials and their sync, alerts, audit,
    /// relay status; grant and revoke are signed with this workstation's key). Prints the address to open.
    Dashboard {
        /// Where to listen: a loopback address unless --allow-non-loopback.
        #[arg(long, default_value = "127.0.0.1:8480")]
        listen: std::net::SocketAddr,
        /// Listen on a non-loopback address (plain HTTP; anyone reaching it with the token acts as you).
        #[arg(long)]
        allow_non_loopback: bool,
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
pub(crate) enum CaCmd {
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
        /// Validity, days.
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Validity in hours instead (short-lived certificates, renewed by key rotation at half-life).
        #[arg(long, conflicts_with = "days")]
        hours: Option<u32>,
        /// The agent id already holds a live certificate: issue a new one and revoke the old.
        #[arg(long)]
        replace: bool,
        /// With --replace: send the new revocation list to the relay (and so to every agent) at once.
        #[arg(long, requires = "replace")]
        push: bool,
        /// The operator directory (`--operator-dir`) receives a copy of the registry and of a new revocation list.
        #[command(flatten)]
        conn: Conn,
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
    /// Agents' key rotations: list the renewal requests queued at the relay; with --due (or naming agents) sign each
    /// that verifies against the CA's registry and push the new certificate, and revoke the old certificate of each
    /// completed rotation once the grace period has passed.
    Renew {
        #[arg(long)]
        dir: PathBuf,
        /// Only these agents (they are acted on, as with --due).
        agents: Vec<String>,
        /// Act on every agent whose rotation is due.
        #[arg(long)]
        due: bool,
        /// Validity of the new certificates, days.
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Validity in hours instead.
        #[arg(long, conflicts_with = "days")]
        hours: Option<u32>,
        /// How long after an agent switched its old certificate stays valid (envelopes sealed to it still open).
        #[arg(long, default_value_t = 3600)]
        grace_secs: u64,
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
pub(crate) enum CredCmd {
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
    /// One credential's state on each agent (from the catalogue's id for NAME), each stored or purged state checked
    /// against the agent's signed receipt.
    Show {
        name: String,
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
pub(crate) enum AgentsCmd {
    /// List agents.
    Ls {
        #[command(flatten)]
        conn: Conn,
    },
    /// Ask an agent to rotate its keys now (it generates new keys and queues a renewal request for `ca renew`).
    Rotate {
        agent: String,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum ListCmd {
    /// List.
    Ls {
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum AuditCmd {
    /// Fetch the audit trail and verify its hash chain.
    Verify {
        /// A head printed by an earlier `audit verify` (SEQ:HASH): the trail must still contain it, so a relay that
        /// rewrote the whole trail and recomputed the chain is caught.
        #[arg(long, value_name = "SEQ:HASH")]
        expect_head: Option<String>,
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
pub(crate) enum JobCmd {
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
