//! systemd's service notifications (`Type=notify`, `WatchdogSec=` in cross/package.d/tessera-agent.service)
//! through the `sd-notify` crate: `READY=1` once the local API socket is bound and the session started,
//! `WATCHDOG=1` at half the watchdog interval, `STOPPING=1` at shutdown; each a no-op without `NOTIFY_SOCKET`. And
//! SIGHUP, which would otherwise end the process: the agent reads its configuration (the read policy included) only
//! at start, so it logs that nothing was reloaded and keeps running. docs/operations.md "Running under systemd",
//! "Reloading".

use std::time::Duration;

use sd_notify::NotifyState;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio_util::sync::CancellationToken;

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

/// Pings `WATCHDOG=1` every half `interval` until `cancel`.
pub async fn watchdog(interval: Duration, cancel: CancellationToken) {
    let mut tick = tokio::time::interval((interval / 2).max(Duration::from_millis(10)));
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = tick.tick() => notify(NotifyState::Watchdog),
        }
    }
}

/// Takes over SIGHUP (from here on it no longer ends the process).
pub fn listen_sighup() -> Result<Signal, std::io::Error> {
    signal(SignalKind::hangup())
}

/// Answers each SIGHUP with a log line until `cancel`.
pub async fn on_sighup(mut hup: Signal, cancel: CancellationToken) {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            got = hup.recv() => if got.is_none() { return },
        }
        tracing::warn!(
            "SIGHUP: nothing reloaded: the agent reads its configuration (policy, jobs, broker) at start; restart \
             it to apply a change"
        );
    }
}

#[cfg(test)]
mod tests;
