//! SIGHUP: the configuration file read again and compared with the one in force. The `[engine]` numbers (rate
//! limits, flood thresholds, timeouts, batch sizes, the backoff table) apply at once; a change anywhere else (state
//! directory, `[state]` backend, CA, broker, admin API, health listener, `[coordination]`) needs a restart and is reported, not applied. A file that
//! does not load or validate changes nothing. docs/operations.md "Reloading".

use std::path::Path;

use super::{ConfigError, RelayConfig};
use crate::engine::EngineConfig;

/// What a reload found.
#[derive(Debug, Clone)]
pub struct Reload {
    /// The new `[engine]` numbers (equal to the old ones when nothing there changed).
    pub engine: EngineConfig,
    /// The engine keys that changed, `engine.KEY OLD -> NEW`.
    pub applied: Vec<String>,
    /// The other sections that changed and need a restart.
    pub needs_restart: Vec<&'static str>,
}

/// Loads `path` (or the default file) with `env` on top, as at start, and compares it with `current`.
pub fn reload(
    path: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    current: &RelayConfig,
) -> Result<Reload, ConfigError> {
    let new = RelayConfig::load(path, env)?;
    Ok(compare(current, new))
}

fn differs<T: std::fmt::Debug>(a: &T, b: &T) -> bool {
    format!("{a:?}") != format!("{b:?}")
}

/// Compares two configurations.
pub fn compare(current: &RelayConfig, new: RelayConfig) -> Reload {
    let mut applied = Vec::new();
    let (a, b) = (&current.engine, &new.engine);
    macro_rules! engine_keys {
        ($($key:ident),* $(,)?) => {
            $(
                if differs(&a.$key, &b.$key) {
                    applied.push(format!("engine.{} {:?} -> {:?}", stringify!($key), a.$key, b.$key));
                }
            )*
        };
    }
    engine_keys!(
        peer_timeout_ms,
        max_peers,
        blocklist_ms,
        jit_burst,
        jit_per_minute,
        missing_flood_threshold,
        mismatch_flood_threshold,
        flood_window_ms,
        reconcile_interval_ms,
        reconcile_batch,
        backfill_concurrency,
        batch_size,
        batches_in_flight,
        max_in_flight,
        peer_max_in_flight,
        retry_cooldown_ms,
        job_ttl_secs,
        backoff,
        purge_alert_ms,
        cert_expiry_alert_percent,
    );
    if applied.is_empty() && differs(a, b) {
        applied.push("engine (a key not listed above)".to_owned());
    }
    let mut needs_restart = Vec::new();
    for (name, changed) in [
        ("state_dir", current.state_dir != new.state_dir),
        ("state", current.state != new.state),
        ("org_ca", current.org_ca != new.org_ca),
        ("broker", differs(&current.broker, &new.broker)),
        ("admin", differs(&current.admin, &new.admin)),
        ("health", current.health != new.health),
        ("coordination", current.coordination != new.coordination),
    ] {
        if changed {
            needs_restart.push(name);
        }
    }
    Reload {
        engine: new.engine,
        applied,
        needs_restart,
    }
}
