//! SIGHUP: the configuration file read again ([`crate::config::reload`]); the `[engine]` numbers that changed go to
//! the engine worker and are logged one by one, the sections that need a restart are logged as not applied, and a
//! file that does not load is logged as an error with the configuration in force kept. The relay never exits on
//! SIGHUP. docs/operations.md "Reloading".

use std::path::PathBuf;
use std::sync::Arc;

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::reload::reload;
use crate::config::RelayConfig;
use crate::engine::EngineConfig;
use crate::health::Health;

/// Takes over SIGHUP (from here on it no longer ends the process), before the relay says it is ready.
pub(super) fn listen() -> Result<Signal, std::io::Error> {
    signal(SignalKind::hangup())
}

/// Handles SIGHUP until `cancel`; `current` is the configuration the relay started with.
pub(super) async fn run(
    mut hup: Signal,
    path: Option<PathBuf>,
    mut current: RelayConfig,
    apply: mpsc::Sender<EngineConfig>,
    health: Arc<Health>,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            got = hup.recv() => if got.is_none() { return },
        }
        let shown = path.as_ref().map_or_else(
            || crate::config::DEFAULT_CONFIG_PATH.to_owned(),
            |p| p.display().to_string(),
        );
        match reload(path.as_deref(), std::env::vars(), &current) {
            Ok(r) => {
                for key in &r.needs_restart {
                    tracing::warn!(config = %shown, section = key, "SIGHUP: this section changed and needs a restart: not applied");
                }
                if r.applied.is_empty() {
                    tracing::info!(config = %shown, "SIGHUP: configuration reloaded: no [engine] change");
                } else {
                    for change in &r.applied {
                        tracing::info!(config = %shown, change = %change, "SIGHUP: reloaded");
                    }
                    if apply.send(r.engine.clone()).await.is_err() {
                        return;
                    }
                    current.engine = r.engine;
                }
                health.metrics.count_reload(true);
            }
            Err(e) => {
                tracing::error!(config = %shown, error = %e, "SIGHUP: the configuration does not load; keeping the one in force");
                health.metrics.count_reload(false);
            }
        }
    }
}
