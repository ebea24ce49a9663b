//! systemd's service notifications (`Type=notify`, `WatchdogSec=`) through the `sd-notify` crate: `READY=1` once
//! the relay serves, `WATCHDOG=1` at half the watchdog interval while the engine worker keeps ticking, `STOPPING=1`
//! at shutdown. Each is a no-op without `NOTIFY_SOCKET` (not under systemd). docs/operations.md "Running under
//! systemd".

use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

use crate::health::Health;

fn notify(state: NotifyState<'_>) {
    if let Err(e) = sd_notify::notify(false, &[state]) {
        tracing::warn!(error = %e, "systemd notification failed");
    }
}

/// `READY=1`.
pub fn ready() {
    notify(NotifyState::Ready);
}

/// `STOPPING=1`.
pub fn stopping() {
    notify(NotifyState::Stopping);
}

/// The watchdog interval systemd asks for: `WATCHDOG_USEC`, when `WATCHDOG_PID` is absent or this process
/// (sd_watchdog_enabled(3)).
pub fn watchdog_interval(env: impl IntoIterator<Item = (String, String)>) -> Option<Duration> {
    let mut usec = None;
    let mut pid = None;
    for (k, v) in env {
        match k.as_str() {
            "WATCHDOG_USEC" => usec = v.parse::<u64>().ok(),
            "WATCHDOG_PID" => pid = Some(v.parse::<u32>().ok()),
            _ => {}
        }
    }
    if pid.is_some_and(|p| p != Some(std::process::id())) {
        return None;
    }
    usec.filter(|u| *u > 0).map(Duration::from_micros)
}

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
                    notify(NotifyState::Watchdog);
                } else {
                    tracing::error!("the engine worker has not ticked within the watchdog interval: not pinging the watchdog");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
