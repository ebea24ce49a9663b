//! `tessera-relay`: the control plane. `serve` runs it; `check-config` loads and checks a configuration without
//! starting anything. The operator's commands (CA, sealing, statements) are in the `tessera` binary of
//! `tessera-operator`, not here: this binary holds no CA or sealing code.
//!
//! Exit codes: 0 success; 1 failure; 2 configuration or usage error.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tessera_relay::config::RelayConfig;
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
#[command(
    name = "tessera-relay",
    version,
    about = "The Tessera relay (control plane)"
)]
struct Cli {
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
    /// Load the configuration and read every certificate and key it names; print the settings and exit.
    CheckConfig {
        /// Configuration file (default /etc/tessera/relay.toml when it exists).
        #[arg(long, env = "TESSERA_CONFIG")]
        config: Option<PathBuf>,
    },
}

fn fail(code: u8, msg: &str) -> ExitCode {
    eprintln!("tessera-relay: {msg}");
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
    if let Err(e) = tessera_relay::runtime::TlsMaterial::load(&cfg) {
        return fail(2, &e.to_string());
    }
    eprintln!(
        "tessera-relay: configuration ok: state_dir {}, broker {}:{}, admin API {}",
        cfg.state_dir.display(),
        cfg.broker.host,
        cfg.broker.port,
        cfg.admin.listen
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
    match tessera_relay::runtime::serve(cfg, cancel).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(1, &e.to_string()),
    }
}
