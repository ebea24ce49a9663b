//! `tessera-relay`: the control plane. `serve` runs it; `check-config` loads and checks a configuration without
//! starting anything. The operator's commands (CA, sealing, statements) are in the `tessera` binary of
//! `tessera-operator`, not here: this binary holds no CA or sealing code.
//!
//! Exit codes: 0 success; 1 failure; 2 configuration or usage error.
#![forbid(unsafe_code)]

mod completions_cmd;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory as _, Parser, Subcommand};
use tessera_relay::config::RelayConfig;
use tokio_util::sync::CancellationToken;

/// The version, with the git commit it was built from (build.rs).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("TESSERA_GIT_COMMIT"),
    ")"
);

#[derive(Parser, Debug)]
#[command(
    name = "tessera-relay",
    version = VERSION,
    about = "The Tessera relay (control plane)"
)]
struct Cli {
    /// Log lines as `text` or `json` on stderr (the filter: TESSERA_LOG, else RUST_LOG).
    #[arg(
        long,
        global = true,
        value_name = "text|json",
        default_value = "text",
        env = "TESSERA_LOG_FORMAT"
    )]
    log_format: tessera_proto::logging::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the relay.
    Serve {
        /// Configuration file (default /etc/tessera/relay.toml when it exists).
        #[arg(long, env = "TESSERA_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Load the configuration, read every certificate and key it names and check them against the org CA; print
    /// what it found and exit.
    CheckConfig {
        /// Configuration file (default /etc/tessera/relay.toml when it exists).
        #[arg(long, env = "TESSERA_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Print the shell completion script for SHELL to standard output.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to standard output, or write one page per command into --out-dir.
    Man {
        /// Write tessera-relay.1 and a page per subcommand into this directory.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
}

fn fail(code: u8, msg: &str) -> ExitCode {
    eprintln!("tessera-relay: {msg}");
    ExitCode::from(code)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tessera_proto::logging::init(cli.log_format, "info");
    match cli.command {
        Command::Serve { config } => {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => return fail(1, &e.to_string()),
            };
            rt.block_on(serve(config))
        }
        Command::CheckConfig { config } => check_config(config.as_deref()),
        Command::Completions { shell } => completions_cmd::completions(Cli::command(), shell),
        Command::Man { out_dir } => completions_cmd::man(Cli::command(), out_dir.as_deref()),
    }
}

fn load(config: Option<&Path>) -> Result<RelayConfig, ExitCode> {
    RelayConfig::load(config, std::env::vars()).map_err(|e| fail(2, &e.to_string()))
}

fn check_config(config: Option<&Path>) -> ExitCode {
    let cfg = match load(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if config.is_none() && !Path::new(tessera_relay::config::DEFAULT_CONFIG_PATH).exists() {
        eprintln!(
            "tessera-relay: note: no --config and no {}: checking the built-in defaults",
            tessera_relay::config::DEFAULT_CONFIG_PATH
        );
    }
    let material = match tessera_relay::runtime::TlsMaterial::load(&cfg) {
        Ok(m) => m,
        Err(e) => return fail(2, &e.to_string()),
    };
    // Both certificates must be the org's service certificates (the CA the agents pinned), named as expected.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let mut names = Vec::new();
    for (what, path) in [("broker", &cfg.broker.cert), ("admin", &cfg.admin.cert)] {
        let name = std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|b| tessera_proto::pem_files::first_cert(&b).map_err(|e| e.to_string()))
            .and_then(|der| {
                material
                    .ca
                    .verify_service(
                        &der,
                        now,
                        &tessera_proto::statement::RevocationList::empty(),
                    )
                    .map_err(|e| {
                        format!(
                            "not a valid service certificate of the org CA {}: {e}",
                            cfg.org_ca.display()
                        )
                    })
            });
        match name {
            Ok(n) => names.push((what, n)),
            Err(e) => return fail(2, &format!("{what}.cert {}: {e}", path.display())),
        }
    }
    if let Some((_, admin)) = names
        .iter()
        .find(|(w, n)| *w == "admin" && n != "relay-admin")
    {
        eprintln!(
            "tessera-relay: note: the admin certificate is the service {admin:?}; operators must then pass \
             --relay-name {admin} (the default is relay-admin)"
        );
    }
    if names
        .iter()
        .filter(|(_, n)| n.as_str() == "relay-admin")
        .count()
        > 1
    {
        return fail(2, "broker.cert is the relay-admin certificate: the MQTT identity must be its own service certificate");
    }
    eprintln!(
        "tessera-relay: configuration ok: state_dir {}, org CA {} ({}), broker {}:{} as {:?}, admin API {} as {:?}",
        cfg.state_dir.display(),
        cfg.org_ca.display(),
        material.ca.org_name(),
        cfg.broker.host,
        cfg.broker.port,
        names.first().map_or("", |(_, n)| n.as_str()),
        cfg.admin.listen,
        names.get(1).map_or("", |(_, n)| n.as_str()),
    );
    ExitCode::SUCCESS
}

async fn serve(config: Option<PathBuf>) -> ExitCode {
    let cfg = match load(config.as_deref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let cancel = CancellationToken::new();
    let signals = cancel.clone();
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            Some(()) = async { match term.as_mut() { Some(t) => t.recv().await, None => std::future::pending().await } } => {}
        }
        signals.cancel();
    });
    match tessera_relay::runtime::serve_reloading(cfg, config, cancel).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(1, &e.to_string()),
    }
}

#[cfg(test)]
mod tests;
