//! The command line: every subcommand and flag of `tessera`.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "tessera", version = crate::version::VERSION, about = "Tessera operator commands")]
pub(crate) struct Cli {
    /// Print JSON instead of text; errors too, as {"error": {"kind", "message", "exit_code"}} on standard error.
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
    pub(crate) log_format: tessera_bin_support::log_setup::LogFormat,
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
        /// The credential name.
        name: String,
        /// The agent ids to add (each must hold a certificate of the CA).
        #[arg(required = true)]
        agents: Vec<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Serve the operator's web dashboard on a local address (fleet, credentials and their sync, alerts, audit,
    /// relay status; grant and revoke are signed with this workstation's key). Prints the address to open, once:
    /// its login token works a single time, and it answers only to its random `*.localhost` host name.
    Dashboard {
        /// Where to listen: a loopback address unless --allow-non-loopback.
        #[arg(long, default_value = "127.0.0.1:8480")]
        listen: std::net::SocketAddr,
        /// Listen on a non-loopback address (plain HTTP; anyone reaching it with the session cookie acts as you). It
        /// still answers only to its random `*.localhost` name: reach it through a tunnel (ssh -L PORT:127.0.0.1:PORT).
        #[arg(long)]
        allow_non_loopback: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Remove agents from a credential's scope (agents that already hold it keep what they have).
    Revoke {
        /// The credential name.
        name: String,
        /// The agent ids to remove.
        #[arg(required = true)]
        agents: Vec<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Print the shell completion script for SHELL to standard output.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: tessera_bin_support::cli_docs::Shell,
    },
    /// Print the man page (roff) to standard output, or write one page per command into --out-dir.
    Man {
        /// Write tessera.1 and a page per subcommand (tessera-cred-put.1, ...) into this directory.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum CaCmd {
    /// Create the CA in DIR (ca.pem, ca.key).
    Init {
        /// The CA directory to create (ca.pem, ca.key).
        #[arg(long)]
        dir: PathBuf,
        /// The organisation name in the CA certificate.
        #[arg(long)]
        org: String,
        /// Validity of the CA certificate, days.
        #[arg(long, default_value_t = 3650)]
        days: u32,
    },
    /// Sign an agent's enrolment request (recorded in the CA's registry of issued certificates, and copied to the
    /// operator directory when it is under this CA).
    IssueAgent {
        /// The CA directory.
        #[arg(long)]
        dir: PathBuf,
        /// The agent's enrolment request (from `tessera-agent enroll --request-out`).
        request: PathBuf,
        /// Where to write the signed agent certificate (PEM).
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
        /// The CA directory.
        #[arg(long)]
        dir: PathBuf,
        /// The operator id (certificate CN).
        #[arg(long)]
        id: String,
        /// The operator directory to write (operator.pem, operator.key, ca.pem, issued.json).
        #[arg(long)]
        out_dir: PathBuf,
        /// Validity, days.
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
    /// Revoke certificates (agent or operator) and, with --push, send the signed list to the relay and agents.
    Revoke {
        /// The CA directory.
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
        /// The CA directory.
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
        /// The CA directory.
        #[arg(long)]
        dir: PathBuf,
        /// The service name (certificate CN), e.g. broker, relay-1, relay-admin.
        #[arg(long)]
        name: String,
        /// A DNS name the service is reached by (repeatable).
        #[arg(long = "dns")]
        dns: Vec<String>,
        /// An IP address the service is reached by (repeatable).
        #[arg(long = "ip")]
        ip: Vec<IpAddr>,
        /// Where to write NAME.pem and NAME.key.
        #[arg(long)]
        out_dir: PathBuf,
        /// Validity, days.
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum CredCmd {
    /// Create NAME, or a new version of it (reads the secret from --file or stdin).
    Put {
        /// The credential name ([A-Za-z0-9_-], at most 128).
        name: String,
        /// Read the secret from this file (default: standard input; typed without echo at a terminal).
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
        /// The directory whose regular files become credentials.
        dir: PathBuf,
        /// Explicit scope for all of them (default: every agent, or an existing credential's scope).
        #[arg(long = "agent")]
        agents: Vec<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// A new version of NAME (same as put on an existing name); the scope is kept.
    Rotate {
        /// The credential name.
        name: String,
        /// Read the secret from this file (default: standard input; typed without echo at a terminal).
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
        /// The credential name (its id comes from the catalogue).
        #[arg(required_unless_present = "id", conflicts_with = "id")]
        name: Option<String>,
        /// The credential's id instead of its name.
        #[arg(long)]
        id: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Learn credentials another operator signed (NAME..., or every one the relay lists with --all): each statement
    /// is verified against the CA; a name not yet in the catalogue is trusted on first use and reported.
    Adopt {
        /// The credential names to adopt.
        names: Vec<String>,
        /// Adopt every credential the relay lists.
        #[arg(long, conflicts_with = "names")]
        all: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// One credential's state on each agent (from the catalogue's id for NAME), each stored or purged state checked
    /// against the agent's signed receipt.
    Show {
        /// The credential name.
        name: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Retry pending and stalled deliveries of NAME (its id from this operator's catalogue, never from the relay),
    /// or of the credential with `--id` (30 s cooldown).
    Retry {
        /// The credential's name (an id is also accepted here when no credential has that name).
        #[arg(required_unless_present = "id", conflicts_with = "id")]
        name: Option<String>,
        /// The credential's id instead of its name.
        #[arg(long)]
        id: Option<String>,
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
        /// The agent id.
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
        /// Only entries of this kind (e.g. credential_purged).
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
        /// The job template's name (defined in the agents' configuration).
        template: String,
        /// Run it on this agent (which must hold a certificate of the CA); default: any eligible agent.
        #[arg(long)]
        agent: Option<String>,
        /// A parameter value (repeatable).
        #[arg(long = "param", value_name = "K=V")]
        params: Vec<String>,
        /// A credential the job needs (repeatable); agents holding it are preferred.
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
