//! systemd's service notifications (`Type=notify`, `WatchdogSec=`) through `tessera_bin_support::systemd_notify`:
//! `READY=1` once the relay serves, `WATCHDOG=1` at half the watchdog interval while the engine worker keeps
//! ticking, `STOPPING=1` at shutdown. Each is a no-op without `NOTIFY_SOCKET` (not under systemd). docs/operations.md "Running under
//! systemd".

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::health::Health;

pub use tessera_bin_support::systemd_notify::{ready, stopping, watchdog_interval};

/// Pings `WATCHDOG=1` every half `interval` until `cancel`, but only while the engine worker ticked within
/// `interval`: a wedged engine stops the pings and systemd restarts the relay.
pub async fn watchdog(interval: Duration, health: Arc<Health>, cancel: CancellationToken) {
    let half = interval / 2;
    let within_ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
    let mut tick = tokio::time::interval(half.max(Duration::from_millis(10)));
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = tick.tick() => {
                if health.engine_alive(within_ms) {
                    tessera_bin_support::systemd_notify::watchdog_ping();
                } else {
                    tracing::error!("the engine worker has not ticked within the watchdog interval: not pinging the watchdog");
                }
            }
        }
    }
}
