//! systemd's service notifications (`Type=notify`, `WatchdogSec=`) through the `sd-notify` crate: `READY=1`,
//! `STOPPING=1`, `WATCHDOG=1`, each a no-op without `NOTIFY_SOCKET` (not under systemd) and a logged warning when it
//! fails; and the watchdog interval systemd asks for. When to send them (and what "alive" means for the watchdog)
//! is each binary's own `service` module. docs/operations.md "Running under systemd".

use std::time::Duration;

use sd_notify::NotifyState;

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

/// `WATCHDOG=1`.
pub fn watchdog_ping() {
    notify(NotifyState::Watchdog);
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

#[cfg(test)]
mod tests;
