//! systemd's service notifications (`Type=notify`, `WatchdogSec=` in cross/package.d/tessera-agent.service)
//! through `tessera_bin_support::systemd_notify`: `READY=1` once the local API socket is bound and the session
//! started, `WATCHDOG=1` at half the watchdog interval while the core worker answers, `STOPPING=1` at shutdown; each
//! a no-op without `NOTIFY_SOCKET`. And SIGHUP, which would otherwise end the process: the configuration file is read again
//! (crate::config::reload); the read policy and the job templates are put in force for new requests, the sections
//! that need a restart are logged as not applied, a file that does not load is logged as an error and changes
//! nothing. The agent never exits on SIGHUP. docs/operations.md "Running under systemd", "Reloading".

use std::time::Duration;

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio_util::sync::CancellationToken;

use crate::config::reload::{compare, ConfigSource};
use crate::config::LivePublisher;
use crate::core::CoreHandle;

pub use tessera_bin_support::systemd_notify::{ready, stopping, watchdog_interval};

/// Pings `WATCHDOG=1` every half `interval` until `cancel`, but only when the core worker answered a no-op command
/// within that half interval: a wedged core stops the pings and systemd restarts the agent.
pub async fn watchdog(interval: Duration, core: CoreHandle, cancel: CancellationToken) {
    let half = (interval / 2).max(Duration::from_millis(10));
    let mut tick = tokio::time::interval(half);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = tick.tick() => {
                if core.ping(half).await {
                    tessera_bin_support::systemd_notify::watchdog_ping();
                } else if !cancel.is_cancelled() {
                    tracing::error!("the core worker did not answer within half the watchdog interval: not pinging the watchdog");
                }
            }
        }
    }
}

/// Takes over SIGHUP (from here on it no longer ends the process).
pub fn listen_sighup() -> Result<Signal, std::io::Error> {
    signal(SignalKind::hangup())
}

/// Answers each SIGHUP until `cancel` by reading the configuration again from `source` and putting its read policy
/// and job templates in force through `live`.
pub async fn on_sighup(
    mut hup: Signal,
    source: ConfigSource,
    live: LivePublisher,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            got = hup.recv() => if got.is_none() { return },
        }
        reload(&source, &live);
    }
}

/// One reload.
fn reload(source: &ConfigSource, live: &LivePublisher) {
    let config = source.shown();
    let new = match source.load(std::env::vars()) {
        Ok(new) => new,
        Err(e) => {
            tracing::error!(%config, error = %e, "SIGHUP: the configuration does not load; keeping the one in force");
            return;
        }
    };
    let r = compare(&live.current(), new);
    for section in &r.needs_restart {
        tracing::warn!(%config, section, "SIGHUP: this section changed and needs a restart: not applied");
    }
    if r.applied.is_empty() {
        tracing::info!(%config, "SIGHUP: configuration reloaded: no policy or job template change");
        return;
    }
    live.publish(r.next);
    for change in &r.applied {
        tracing::info!(%config, change = %change, "SIGHUP: reloaded");
    }
}
