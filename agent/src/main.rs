//! `tessera-agent`: enrol, install the certificate, run, the local client commands (`get`, `list`, `exec`,
//! `status`), and `config set`.
//!
//! Exit codes: 0 success; 1 other failure; 2 usage or configuration error; 3 already enrolled differently; 4
//! certificate rejected; 5 store or sealing failure; for `get`/`exec`, 10 + the typed local API error
//! (see docs/operations.md); `exec` otherwise exits with the child's code, or like a shell 127 when the program is
//! not found and 126 when it is not executable. With `--json`, results are JSON on standard output and a failure
//! is one JSON line on standard error (`json_output`).
#![forbid(unsafe_code)]

mod json_output;
mod program_lookup;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tessera_agent::clock::unix_now;

use anyhow::Context;
#[cfg(feature = "cli-docs")]
use clap::CommandFactory as _;
use clap::{Parser, Subcommand};
use tessera_agent::config::reload::ConfigSource;
use tessera_agent::config::{AgentConfig, SealerBackend};
use tessera_agent::enroll::{self, EnrollOutcome, InstallOutcome};
use tessera_agent::local_api::client::{Client, ClientError};
use tessera_agent::payload_text::secret_text;
use tessera_agent::store_key::worker::StoreKeyStatus;
use tessera_bin_support::log_setup::LogFormat;
use tessera_proto::ids::{AgentId, CredentialName};
use tokio_util::sync::CancellationToken;

/// The version, with the git commit (build.rs) and the store-key sealers this build has.
#[cfg(feature = "tpm")]
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("TESSERA_GIT_COMMIT"),
    "; sealers: file, tpm)"
);
/// The version, with the git commit (build.rs) and the store-key sealers this build has.
#[cfg(not(feature = "tpm"))]
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("TESSERA_GIT_COMMIT"),
    "; sealers: file)"
);

#[derive(Parser, Debug)]
#[command(
    name = "tessera-agent",
    version = VERSION,
    about = "Tessera agent: credentials for appliance workloads"
)]
struct Cli {
    /// Configuration file (default: /etc/tessera/agent.toml when it exists).
    #[arg(long, global = true, env = "TESSERA_CONFIG")]
    config: Option<PathBuf>,
    /// Override the state directory.
    #[arg(long, global = true)]
    state_dir: Option<PathBuf>,
    /// Override the local API socket path.
    #[arg(long, global = true)]
    socket: Option<PathBuf>,
    /// Log lines as `text` or `json` on stderr (the filter: TESSERA_LOG, else RUST_LOG).
    #[arg(
        long,
        global = true,
        value_name = "text|json",
        default_value = "text",
        env = "TESSERA_LOG_FORMAT"
    )]
    log_format: LogFormat,
    /// Print results as JSON on standard output, and a failure as one JSON line on standard error
    /// (`{"error":{"kind","message","exit_code"}}`).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create keys, seal the store key, pin the org CA and write an enrolment request (idempotent).
    Enroll {
        /// The agent id (certificate CN).
        #[arg(long)]
        agent_id: String,
        /// The org CA certificate (PEM or DER) to pin.
        #[arg(long)]
        ca: PathBuf,
        /// Where to write the enrolment request.
        #[arg(long)]
        request_out: PathBuf,
        /// What seals the store key (overrides `[sealer] backend`): `file` or `tpm` (`[sealer.tpm]`).
        #[arg(long, value_enum)]
        sealer: Option<SealerBackend>,
    },
    /// Install the certificate the operator signed (PEM or DER).
    InstallCert {
        /// The certificate file.
        cert: PathBuf,
    },
    /// Run the agent.
    Run,
    /// Print a credential's secret (or, with --meta, its metadata) from the running agent; with --json, as
    /// `{"name": NAME, "value": SECRET}`.
    Get {
        /// Credential name.
        name: String,
        /// Metadata only, as JSON.
        #[arg(long)]
        meta: bool,
    },
    /// List the credentials this user may read, as JSON.
    List,
    /// Rotate the store key: seal a new one and re-encrypt every record under it, then destroy the old one. Asks
    /// the running agent when its socket answers (re-encryption goes on in the background); otherwise does it here,
    /// resuming a rotation a crash interrupted. Prints where the store key stands, as JSON.
    RotateStoreKey {
        /// What seals the new key (default: the sealer of the current one); `--to tpm` moves a store to the TPM.
        #[arg(long, value_enum)]
        to: Option<SealerBackend>,
    },
    /// The running agent's status: broker connection, registration, certificate expiry, credentials held with
    /// their versions, store key (the agent's own uid or root).
    Status,
    /// Edit the configuration file (--config, default /etc/tessera/agent.toml).
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Run a command with credentials injected: --env VAR=cred:NAME (repeatable) -- command args.
    Exec {
        /// VAR=cred:NAME
        #[arg(long = "env", value_name = "VAR=cred:NAME", required = true)]
        env: Vec<String>,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Print the shell completion script for SHELL to standard output.
    #[cfg(feature = "cli-docs")]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: tessera_bin_support::cli_docs::Shell,
    },
    /// Print the man page (roff) to standard output, or write one page per command into --out-dir.
    #[cfg(feature = "cli-docs")]
    Man {
        /// Write tessera-agent.1 and a page per subcommand into this directory.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum ConfigCmd {
    /// Set KEY (dotted: broker.host) to VALUE, keeping comments; the result must load, or nothing is written.
    Set {
        /// The setting, e.g. broker.port.
        key: String,
        /// Its value: TOML (8883, true, [1000]) or a plain string.
        value: String,
    },
}

fn config_source(cli: &Cli) -> ConfigSource {
    ConfigSource {
        path: cli.config.clone(),
        state_dir: cli.state_dir.clone(),
        socket: cli.socket.clone(),
    }
}

fn load_config(cli: &Cli) -> Result<AgentConfig, ExitCode> {
    config_source(cli)
        .load(std::env::vars())
        .map_err(|e| json_output::fail(2, &e.to_string()))
}

/// The parsed command line; a usage error is reported as JSON when `--json` was given.
fn parse() -> Result<Cli, ExitCode> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    Cli::try_parse_from(&args).map_err(|e| {
        use clap::error::ErrorKind;
        let shown = matches!(
            e.kind(),
            ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        );
        if shown || !tessera_proto::cli_error::requested(&args) {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
        json_output::set(true);
        let text = tessera_proto::cli_error::usage_message(&e.to_string(), "tessera-agent");
        json_output::fail_kind(2, tessera_proto::cli_error::USAGE, &text)
    })
}

fn main() -> ExitCode {
    // Before anything is created: files 0600 and directories 0700, whatever umask the caller left (no systemd).
    tessera_agent::private_dir::restrict_umask();
    let cli = match parse() {
        Ok(c) => c,
        Err(code) => return code,
    };
    json_output::set(cli.json);
    // tss-esapi logs every TPM context it closes, and its own view of refusals this agent reports itself with the
    // next step (a PCR mismatch, say).
    tessera_bin_support::log_setup::init(cli.log_format, "info,tss_esapi=off");
    // Edits the file itself: it does not need the configuration to load first (a setting may be what fixes it).
    if let Command::Config(ConfigCmd::Set { key, value }) = &cli.command {
        let path = cli
            .config
            .clone()
            .unwrap_or_else(|| PathBuf::from(tessera_agent::config::DEFAULT_CONFIG_PATH));
        return match tessera_agent::config_edit::set(&path, key, value) {
            Ok(()) => {
                if json_output::on() {
                    json_output::print(&serde_json::json!({ "set": key, "config": path }));
                }
                ExitCode::SUCCESS
            }
            Err(e) => json_output::fail(2, &format!("config set: {e}")),
        };
    }
    // Generated from the command line alone: no configuration needed.
    #[cfg(feature = "cli-docs")]
    match &cli.command {
        Command::Completions { shell } => {
            return tessera_bin_support::cli_docs::completions(Cli::command(), *shell)
        }
        Command::Man { out_dir } => {
            return tessera_bin_support::cli_docs::man(Cli::command(), out_dir.as_deref())
        }
        _ => {}
    }
    let cfg = match load_config(&cli) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match &cli.command {
        Command::Enroll {
            agent_id,
            ca,
            request_out,
            sealer,
        } => {
            let mut cfg = cfg;
            if let Some(s) = sealer {
                cfg.sealer.backend = *s;
            }
            cmd_enroll(&cfg, agent_id, ca, request_out)
        }
        Command::InstallCert { cert } => cmd_install(&cfg, cert),
        Command::Run => match cmd_run(cfg, config_source(&cli)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => json_output::fail(run_exit_code(&e), &format!("{e:#}")),
        },
        Command::Get { name, meta } => cmd_get(&cfg, name, *meta),
        Command::List => cmd_list(&cfg),
        Command::Exec { env, command } => cmd_exec(&cfg, env, command),
        Command::RotateStoreKey { to } => cmd_rotate_store_key(&cfg, *to),
        Command::Status => cmd_status(&cfg, cli.json),
        Command::Config(_) => ExitCode::from(2),
        #[cfg(feature = "cli-docs")]
        Command::Completions { .. } | Command::Man { .. } => ExitCode::SUCCESS,
    }
}

fn cmd_status(cfg: &AgentConfig, json: bool) -> ExitCode {
    match Client::connect(&cfg.socket.path).and_then(|mut c| c.status()) {
        Ok(status) => {
            let text = if json {
                serde_json::to_string_pretty(&status).unwrap_or_default() + "\n"
            } else {
                tessera_agent::status::text::render(&status)
            };
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => {
            let (code, kind) = json_output::api_exit_kind(&e);
            json_output::fail_kind(code, &kind, &format!("{e} (is the agent running?)"))
        }
    }
}

fn print_store_key(status: &StoreKeyStatus) {
    if let Ok(json) = serde_json::to_string(status) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{json}");
    }
}

fn cmd_rotate_store_key(cfg: &AgentConfig, to: Option<SealerBackend>) -> ExitCode {
    // Sealing a new key can take a TPM some seconds; the re-encryption itself goes on after the answer.
    match Client::connect_with_timeout(&cfg.socket.path, std::time::Duration::from_secs(120)) {
        Ok(mut client) => match client.rotate_store_key(to) {
            Ok(status) => {
                note(&format!(
                    "the running agent sealed store key generation {} ({}); it re-encrypts the \
                     store in the background and destroys the old key when done",
                    status.generation, status.sealer
                ));
                print_store_key(&status);
                ExitCode::SUCCESS
            }
            Err(e) => json_output::api_fail("", &e),
        },
        Err(ClientError::Io { .. }) => rotate_offline(cfg, to),
        Err(e) => json_output::api_fail("", &e),
    }
}

/// No agent answers: the rotation runs in this process, which holds the store meanwhile.
fn rotate_offline(cfg: &AgentConfig, to: Option<SealerBackend>) -> ExitCode {
    use tessera_agent::store_key::{rotate, KeyState};
    let opened = match tessera_agent::unseal::open_store_keys(cfg) {
        Ok(o) => o,
        Err(e) => return json_output::fail(5, &e.to_string()),
    };
    let mut state = opened.keys;
    if !matches!(state, KeyState::Steady { .. }) {
        note(&format!(
            "resuming the interrupted store-key rotation to generation {} ({})",
            state.active().generation,
            state.name()
        ));
        state = match rotate::run_to_end(cfg, &opened.store, state) {
            Ok(s) => s,
            Err(e) => {
                return json_output::fail(5, &format!("{e} (run the command again to resume)"))
            }
        };
        // The rotation asked for is a new one unless the resumed one already went where --to says.
        if to.is_none_or(|t| t == state.active().sealer.kind()) {
            let status = StoreKeyStatus::from(&state);
            note(&format!(
                "store key rotated: generation {} ({}) active, the old key destroyed",
                status.generation, status.sealer
            ));
            print_store_key(&status);
            return ExitCode::SUCCESS;
        }
    }
    let to = to.unwrap_or_else(|| state.active().sealer.kind());
    let state = match rotate::start(cfg, &opened.store, &state, to, unix_now()) {
        Ok(s) => s,
        Err(e) => return json_output::fail(5, &e.to_string()),
    };
    match rotate::run_to_end(cfg, &opened.store, state) {
        Ok(done) => {
            let status = StoreKeyStatus::from(&done);
            note(&format!(
                "store key rotated: generation {} ({}) active, the old key destroyed",
                status.generation, status.sealer
            ));
            print_store_key(&status);
            ExitCode::SUCCESS
        }
        Err(e) => json_output::fail(5, &format!("{e} (run the command again to resume)")),
    }
}

fn cmd_enroll(cfg: &AgentConfig, agent_id: &str, ca: &Path, out: &Path) -> ExitCode {
    let Ok(id) = AgentId::new(agent_id) else {
        return json_output::fail(2, "agent id must match [A-Za-z0-9_-]{1,128}");
    };
    let ca_bytes = match std::fs::read(ca) {
        Ok(b) => b,
        Err(e) => return json_output::fail(2, &format!("org CA {}: {e}", ca.display())),
    };
    match enroll::enroll(cfg, &id, &ca_bytes, out, unix_now()) {
        Ok(outcome) => {
            let (what, outcome) = match outcome {
                EnrollOutcome::Enrolled => ("enrolled", "enrolled"),
                EnrollOutcome::AlreadyEnrolled => ("already enrolled", "already_enrolled"),
            };
            if json_output::on() {
                json_output::print(&serde_json::json!({
                    "outcome": outcome,
                    "agent_id": agent_id,
                    "request": out,
                }));
            } else {
                note(&format!(
                    "{what} as {agent_id}; enrolment request written to {}",
                    out.display()
                ));
            }
            ExitCode::SUCCESS
        }
        Err(e) => json_output::fail(e.exit_code(), &e.to_string()),
    }
}

fn cmd_install(cfg: &AgentConfig, cert: &Path) -> ExitCode {
    let bytes = match std::fs::read(cert) {
        Ok(b) => b,
        Err(e) => return json_output::fail(2, &format!("certificate {}: {e}", cert.display())),
    };
    match enroll::install_certificate(cfg, &bytes, unix_now()) {
        Ok(outcome) => {
            let (what, outcome) = match outcome {
                InstallOutcome::Installed => ("certificate installed", "installed"),
                InstallOutcome::AlreadyInstalled => {
                    ("certificate already installed", "already_installed")
                }
            };
            if json_output::on() {
                json_output::print(&serde_json::json!({ "outcome": outcome }));
            } else {
                note(what);
            }
            ExitCode::SUCCESS
        }
        Err(e) => json_output::fail(e.exit_code(), &e.to_string()),
    }
}

/// `run`'s exit code: 2 when the agent needs provisioning or its configuration is wrong (not enrolled, no
/// certificate, unreadable CA or socket path), 5 when the store or its key refuses to open, 1 otherwise. A service
/// manager restarts on 1 and leaves 2 and 5 to a human (the shipped unit's `RestartPreventExitStatus`).
fn run_exit_code(e: &anyhow::Error) -> u8 {
    use tessera_agent::runtime::RunError;
    use tessera_agent::unseal::OpenError;
    match e.downcast_ref::<RunError>() {
        Some(
            RunError::Identity(_)
            | RunError::BrokerCa { .. }
            | RunError::Tls(_)
            | RunError::Open(OpenError::NotEnrolled(_) | OpenError::UnsafeDir(_)),
        ) => 2,
        Some(RunError::Open(_)) => 5,
        _ => 1,
    }
}

fn cmd_run(cfg: AgentConfig, source: ConfigSource) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async {
        let cancel = CancellationToken::new();
        let signals = cancel.clone();
        tokio::spawn(async move {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                Some(()) = async { match term.as_mut() { Some(t) => t.recv().await, None => std::future::pending().await } } => {}
            }
            signals.cancel();
        });
        tessera_agent::runtime::run(cfg, source, cancel).await
    })?;
    Ok(())
}

fn name_arg(name: &str) -> Result<CredentialName, ExitCode> {
    CredentialName::new(name)
        .map_err(|_| json_output::fail(2, "credential name must match [A-Za-z0-9_-]{1,128}"))
}

#[allow(clippy::print_stdout)]
fn cmd_get(cfg: &AgentConfig, name: &str, meta: bool) -> ExitCode {
    let name = match name_arg(name) {
        Ok(n) => n,
        Err(c) => return c,
    };
    let result = connect(cfg).and_then(|mut c| {
        if meta {
            let m = c.meta(&name)?;
            if json_output::on() {
                json_output::print(&m);
            } else {
                println!("{}", serde_json::to_string_pretty(&m).unwrap_or_default());
            }
        } else {
            let (_, secret) = c.get(&name)?;
            let text = secret_text(&secret);
            if json_output::on() {
                // Written straight to standard output, escaped on the way: no copy of the value is made.
                json_output::print(&SecretOut {
                    name: name.as_str(),
                    value: text.as_str(),
                });
            } else {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(text.as_bytes());
                let _ = out.write_all(b"\n");
            }
        }
        Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => json_output::api_fail("", &e),
    }
}

/// `get --json`: the credential's name and its secret.
#[derive(serde::Serialize)]
struct SecretOut<'a> {
    name: &'a str,
    value: &'a str,
}

/// A line for the person at the terminal, on standard error (results go to standard output); none with `--json`,
/// where standard error carries only the error line.
fn note(text: &str) {
    if !json_output::on() {
        eprintln!("tessera-agent: {text}");
    }
}

#[allow(clippy::print_stdout)]
fn cmd_list(cfg: &AgentConfig) -> ExitCode {
    match connect(cfg).and_then(|mut c| c.list()) {
        Ok(list) => {
            if json_output::on() {
                json_output::print(&list);
            } else {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&list).unwrap_or_default()
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => json_output::api_fail("", &e),
    }
}

fn cmd_exec(cfg: &AgentConfig, env: &[String], command: &[String]) -> ExitCode {
    let mut wanted = Vec::new();
    for spec in env {
        let parsed = spec
            .split_once('=')
            .and_then(|(var, r)| r.strip_prefix("cred:").map(|n| (var, n)))
            .filter(|(var, _)| tessera_agent::config::is_env_name(var));
        if let Some((var, Ok(name))) = parsed.map(|(var, n)| (var, CredentialName::new(n))) {
            wanted.push((var.to_owned(), name));
        } else {
            return json_output::fail(2, &format!("--env {spec:?}: expected VAR=cred:NAME"));
        }
    }
    let Some((program, args)) = command.split_first() else {
        return ExitCode::from(2);
    };
    // Like a shell: 127 when the program is not found, 126 when it cannot be run; checked before any secret is
    // asked for.
    let path = match program_lookup::find(program) {
        Ok(p) => p,
        Err(e) => return json_output::fail(e.exit_code(), &e.to_string()),
    };
    let mut client = match connect(cfg) {
        Ok(c) => c,
        Err(e) => return json_output::api_fail("", &e),
    };
    let mut cmd = std::process::Command::new(&path);
    std::os::unix::process::CommandExt::arg0(&mut cmd, program);
    cmd.args(args);
    for (var, name) in &wanted {
        match client.get(name) {
            Ok((_, secret)) => {
                let text = secret_text(&secret);
                cmd.env(var, text.as_str());
            }
            Err(e) => return json_output::api_fail(&format!("{}: ", name.as_str()), &e),
        }
    }
    drop(client);
    let child = cmd.spawn();
    // The command's copies of the values go now; the child has its own environment.
    drop(cmd);
    match child.and_then(|mut c| c.wait()) {
        Ok(status) => match status.code() {
            Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
            None => ExitCode::from(1),
        },
        Err(e) => {
            let e = program_lookup::LookupError::from_spawn(program, &e);
            json_output::fail(e.exit_code(), &e.to_string())
        }
    }
}

/// A connection to the running agent that gives up when the agent's JIT budget and a margin have passed with no
/// answer (the agent itself answers `timeout` when its budget runs out).
fn connect(cfg: &AgentConfig) -> Result<Client, ClientError> {
    let limit = std::time::Duration::from_millis(cfg.socket.jit_timeout_ms)
        + tessera_agent::local_api::client::ANSWER_MARGIN;
    Client::connect_with_timeout(&cfg.socket.path, limit)
}

#[cfg(test)]
mod tests;
