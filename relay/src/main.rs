//! `tessera-relay`: the control plane. `serve` runs it; `check-config` loads and checks a configuration without
//! starting anything. The operator's commands (CA, sealing, statements) are in the `tessera` binary of
//! `tessera-operator`, not here: this binary holds no CA or sealing code.
//!
//! Exit codes: 0 success; 1 failure; 2 configuration or usage error.
#![forbid(unsafe_code)]

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
    log_format: tessera_bin_support::log_setup::LogFormat,
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
        /// Print what it found as JSON on standard output, and a failure as one JSON line on standard error
        /// (`{"error":{"kind","message","exit_code"}}`).
        #[arg(long)]
        json: bool,
    },
    /// Print the shell completion script for SHELL to standard output.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: tessera_bin_support::cli_docs::Shell,
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

/// A failure of `check-config`: the JSON error line (`tessera_proto::cli_error`) with `--json`, else text.
fn fail_as(json: bool, code: u8, msg: &str) -> ExitCode {
    if json {
        let kind = tessera_proto::cli_error::kind_of(code);
        eprintln!("{}", tessera_proto::cli_error::document(kind, msg, code));
        ExitCode::from(code)
    } else {
        fail(code, msg)
    }
}

fn main() -> ExitCode {
    // Before anything is created: the state directory and its database private to the relay's user (0700/0600),
    // whether or not systemd's `UMask=0077` applies.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let cli = Cli::parse();
    tessera_bin_support::log_setup::init(cli.log_format, "info");
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
        Command::CheckConfig { config, json } => check_config(config.as_deref(), json),
        Command::Completions { shell } => {
            tessera_bin_support::cli_docs::completions(Cli::command(), shell)
        }
        Command::Man { out_dir } => {
            tessera_bin_support::cli_docs::man(Cli::command(), out_dir.as_deref())
        }
    }
}

fn load(config: Option<&Path>) -> Result<RelayConfig, ExitCode> {
    RelayConfig::load(config, std::env::vars()).map_err(|e| fail(2, &e.to_string()))
}

fn check_config(config: Option<&Path>, json: bool) -> ExitCode {
    let cfg = match RelayConfig::load(config, std::env::vars()) {
        Ok(c) => c,
        Err(e) => return fail_as(json, 2, &e.to_string()),
    };
    // Notes: on standard error as they come, or (--json) in the result.
    let mut notes = Vec::new();
    let mut note = |text: String| {
        if json {
            notes.push(text);
        } else {
            eprintln!("tessera-relay: note: {text}");
        }
    };
    if config.is_none() && !Path::new(tessera_relay::config::DEFAULT_CONFIG_PATH).exists() {
        note(format!(
            "no --config and no {}: checking the built-in defaults",
            tessera_relay::config::DEFAULT_CONFIG_PATH
        ));
    }
    let material = match tessera_relay::runtime::TlsMaterial::load(&cfg) {
        Ok(m) => m,
        Err(e) => return fail_as(json, 2, &e.to_string()),
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
            Err(e) => return fail_as(json, 2, &format!("{what}.cert {}: {e}", path.display())),
        }
    }
    if let Some((_, admin)) = names
        .iter()
        .find(|(w, n)| *w == "admin" && n != "relay-admin")
    {
        note(format!(
            "the admin certificate is the service {admin:?}; operators must then pass --relay-name {admin} (the \
             default is relay-admin)"
        ));
    }
    if names
        .iter()
        .filter(|(_, n)| n.as_str() == "relay-admin")
        .count()
        > 1
    {
        return fail_as(json, 2, "broker.cert is the relay-admin certificate: the MQTT identity must be its own service certificate");
    }
    let broker_name = names.first().map_or("", |(_, n)| n.as_str());
    let admin_name = names.get(1).map_or("", |(_, n)| n.as_str());
    if json {
        let found = serde_json::json!({
            "state_dir": cfg.state_dir, "org_ca": cfg.org_ca, "org": material.ca.org_name(),
            "broker": { "host": cfg.broker.host, "port": cfg.broker.port, "name": broker_name },
            "admin": { "listen": cfg.admin.listen.to_string(), "name": admin_name },
            "notes": notes,
        });
        #[allow(clippy::print_stdout)]
        {
            println!("{found}");
        }
        return ExitCode::SUCCESS;
    }
    eprintln!(
        "tessera-relay: configuration ok: state_dir {}, org CA {} ({}), broker {}:{} as {:?}, admin API {} as {:?}",
        cfg.state_dir.display(),
        cfg.org_ca.display(),
        material.ca.org_name(),
        cfg.broker.host,
        cfg.broker.port,
        broker_name,
        cfg.admin.listen,
        admin_name,
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
