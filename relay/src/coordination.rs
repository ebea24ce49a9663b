//! What relay replicas share besides the state store: the sliding windows behind the flood alerts
//! (`agent_credential_flood`, `agent_commitment_flood`) and the reconciler's turn (one sweep per tick across
//! replicas). `[coordination] backend = "memory"` (the default) keeps them in this process; `"redis"` keeps them in
//! Redis under `key_prefix`, so replicas pointed at the same Redis count one window and take turns.
//!
//! When Redis does not answer (within `timeout_ms`), each operation falls back to this process's own memory and
//! the relay goes on: counts are then this replica's only, and every replica may sweep. Redis is not asked again
//! for a short while (so an outage does not cost a timeout per message), then again; after `degraded_after_ms`
//! of failures [`Coordinator::degraded_alert_due`] says so once (`redis_coordination_degraded`), and the first
//! answer ends the episode. docs/operations.md, "Coordination", says what an operator sees.
//!
//! What this module does not do: hold any record of the relay's state (that is the state store's, shared by
//! replicas through PostgreSQL), or lock deliveries (the store's in-flight records do, for one relay).

mod redis_link;

use std::collections::BTreeMap;

use serde::Deserialize;
use tessera_proto::ids::AgentId;

use crate::limits::WindowCounter;
use redis_link::RedisLink;

/// `[coordination]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CoordinationConfig {
    /// `memory` (this process only; the default) or `redis`.
    pub backend: CoordinationBackend,
    /// This replica's name in the admin API and the degraded alert (default: the host name).
    pub replica: String,
    /// `[coordination.redis]`, for `backend = "redis"`.
    pub redis: RedisConfig,
}

impl Default for CoordinationConfig {
    fn default() -> Self {
        Self {
            backend: CoordinationBackend::Memory,
            replica: default_replica(),
            redis: RedisConfig::default(),
        }
    }
}

/// This host's name (`/proc/sys/kernel/hostname`), or `relay-` and the process id where there is none.
fn default_replica() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty() && h.len() <= 64)
        .unwrap_or_else(|| format!("relay-{}", std::process::id()))
}

/// Which coordination backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CoordinationBackend {
    /// In this process.
    #[default]
    Memory,
    /// In Redis.
    Redis,
}

impl CoordinationBackend {
    /// Its name in the configuration and the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Redis => "redis",
        }
    }
}

/// `[coordination.redis]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://host:port/db` (no password in it: `password_file`).
    pub url: String,
    /// A file holding the password (Redis `AUTH`; its first line), read at start.
    pub password_file: Option<std::path::PathBuf>,
    /// Prefix of every key the relay writes, so relays of several orgs can share one Redis.
    pub key_prefix: String,
    /// How long each step of a Redis operation (connecting, each command) may take before the operation falls
    /// back to memory, ms (10..=10000). The engine waits that long at most per step, so keep it small.
    pub timeout_ms: u64,
    /// How long Redis may fail before `redis_coordination_degraded` is raised, ms.
    pub degraded_after_ms: u64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379/0".to_owned(),
            password_file: None,
            key_prefix: "tessera".to_owned(),
            timeout_ms: 50,
            degraded_after_ms: 30_000,
        }
    }
}

/// Why the coordination configuration is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoordinationError {
    /// A value out of range or malformed.
    #[error("[coordination.redis] {0}")]
    Invalid(String),
    /// The password file could not be read.
    #[error("[coordination.redis] password_file {path}: {source}")]
    PasswordFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl CoordinationConfig {
    /// Checks what can be checked without Redis (`check-config` runs it too).
    pub fn check(&self) -> Result<(), CoordinationError> {
        if self.replica.is_empty()
            || self.replica.len() > 64
            || self
                .replica
                .chars()
                .any(|c| c.is_control() || c.is_whitespace() || c == '=')
        {
            return Err(CoordinationError::Invalid(
                "replica: 1 to 64 characters, no spaces, control characters or '='".into(),
            ));
        }
        if self.backend == CoordinationBackend::Memory {
            return Ok(());
        }
        let r = &self.redis;
        let client = redis::Client::open(r.url.as_str())
            .map_err(|e| CoordinationError::Invalid(format!("url: {e}")))?;
        if client
            .get_connection_info()
            .redis_settings()
            .password()
            .is_some()
        {
            return Err(CoordinationError::Invalid(
                "url: no password in the URL; use password_file".into(),
            ));
        }
        if !(10..=10_000).contains(&r.timeout_ms) {
            return Err(CoordinationError::Invalid("timeout_ms: 10 to 10000".into()));
        }
        if r.key_prefix.is_empty()
            || r.key_prefix
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(CoordinationError::Invalid(
                "key_prefix: not empty, no spaces or control characters".into(),
            ));
        }
        if let Some(path) = &r.password_file {
            read_password(path)?;
        }
        Ok(())
    }
}

/// The first line of a password file; an empty one is refused (it would fail every connection).
fn read_password(path: &std::path::Path) -> Result<String, CoordinationError> {
    let text = std::fs::read_to_string(path).map_err(|source| CoordinationError::PasswordFile {
        path: path.to_path_buf(),
        source,
    })?;
    let line = text.lines().next().unwrap_or_default().to_owned();
    if line.is_empty() {
        return Err(CoordinationError::Invalid(format!(
            "password_file {}: empty",
            path.display()
        )));
    }
    Ok(line)
}

/// A sliding window the replicas share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Window {
    /// Missing-credential requests per agent (`agent_credential_flood`).
    MissingFlood,
    /// Commitment mismatches per peer (`agent_commitment_flood`).
    MismatchFlood,
}

impl Window {
    fn key(self) -> &'static str {
        match self {
            Self::MissingFlood => "missing",
            Self::MismatchFlood => "mismatch",
        }
    }
}

/// This replica's coordination, as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CoordinationStatus {
    /// This replica's name.
    pub replica: String,
    /// `memory` or `redis`.
    pub backend: &'static str,
    /// Whether Redis is failing and memory stands in.
    pub degraded: bool,
    /// Since when, Unix ms.
    pub degraded_since_ms: Option<u64>,
}

/// The coordination a relay's engine uses.
#[derive(Debug)]
pub struct Coordinator {
    replica: String,
    windows: BTreeMap<Window, WindowCounter<AgentId>>,
    redis: Option<RedisLink>,
    degraded_after_ms: u64,
    degraded_since_ms: Option<u64>,
    alerted: bool,
}

impl Coordinator {
    /// In this process only.
    pub fn memory(replica: &str) -> Self {
        Self {
            replica: replica.to_owned(),
            windows: BTreeMap::new(),
            redis: None,
            degraded_after_ms: 0,
            degraded_since_ms: None,
            alerted: false,
        }
    }

    /// As configured. Redis is not contacted here: the first operation connects (so a relay starts while Redis is
    /// down, degraded).
    pub fn open(cfg: &CoordinationConfig) -> Result<Self, CoordinationError> {
        cfg.check()?;
        let mut c = Self::memory(&cfg.replica);
        if cfg.backend == CoordinationBackend::Redis {
            let password = match &cfg.redis.password_file {
                Some(path) => Some(read_password(path)?),
                None => None,
            };
            c.redis = Some(RedisLink::new(&cfg.redis, password)?);
            c.degraded_after_ms = cfg.redis.degraded_after_ms;
        }
        Ok(c)
    }

    /// Records an event of `agent` in `window` (`width_ms` wide) at `now_ms`; returns how many it holds now,
    /// across replicas when Redis answers.
    pub fn record(&mut self, window: Window, agent: &AgentId, now_ms: u64, width_ms: u64) -> usize {
        let shared = self
            .redis
            .as_mut()
            .map(|r| r.record(window.key(), agent.as_str(), now_ms, width_ms));
        match shared {
            Some(Ok(n)) => {
                self.answered();
                n
            }
            other => {
                if let Some(Err(e)) = other {
                    self.failed(now_ms, &e);
                }
                let w = self
                    .windows
                    .entry(window)
                    .or_insert_with(|| WindowCounter::new(width_ms));
                w.set_window(width_ms);
                w.record(agent, now_ms)
            }
        }
    }

    /// Whether this replica sweeps in the reconciler slot that `now_ms` falls in (slots `interval_ms` long): the
    /// first replica to ask for a slot gets it. Always, in memory, or while Redis fails.
    pub fn reconciler_turn(&mut self, now_ms: u64, interval_ms: u64) -> bool {
        let slot = now_ms / interval_ms.max(1);
        let replica = self.replica.clone();
        match self
            .redis
            .as_mut()
            .map(|r| r.take_turn(slot, &replica, interval_ms))
        {
            Some(Ok(mine)) => {
                self.answered();
                mine
            }
            Some(Err(e)) => {
                self.failed(now_ms, &e);
                true
            }
            None => true,
        }
    }

    /// While degraded, asks Redis whether it answers again (at most once per pause), so that a quiet relay, with no
    /// flood or sweep to ask it, neither stays degraded after Redis is back nor alerts on one lost answer. Call on
    /// every tick.
    pub fn probe(&mut self, now_ms: u64) {
        if self.degraded_since_ms.is_none() {
            return;
        }
        match self.redis.as_mut().map(RedisLink::ping) {
            Some(Ok(())) => self.answered(),
            Some(Err(e)) => self.failed(now_ms, &e),
            None => {}
        }
    }

    /// Whether the degraded alert should be raised now: once per episode, after `degraded_after_ms` of failures.
    pub fn degraded_alert_due(&mut self, now_ms: u64) -> bool {
        match self.degraded_since_ms {
            Some(since)
                if !self.alerted && now_ms.saturating_sub(since) >= self.degraded_after_ms =>
            {
                self.alerted = true;
                true
            }
            _ => false,
        }
    }

    /// The event that raised the degraded alert was not committed: raise it again at the next chance (a copy
    /// that was committed after all only counts, inside the alert's window).
    pub fn rearm_alert(&mut self) {
        self.alerted = false;
    }

    /// This replica's name.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// What the admin API shows.
    pub fn status(&self) -> CoordinationStatus {
        CoordinationStatus {
            replica: self.replica.clone(),
            backend: if self.redis.is_some() {
                CoordinationBackend::Redis.as_str()
            } else {
                CoordinationBackend::Memory.as_str()
            },
            degraded: self.degraded_since_ms.is_some(),
            degraded_since_ms: self.degraded_since_ms,
        }
    }

    fn answered(&mut self) {
        if let Some(since) = self.degraded_since_ms.take() {
            tracing::info!(replica = %self.replica, degraded_since_ms = since, "redis coordination resumed");
            self.alerted = false;
        }
    }

    fn failed(&mut self, now_ms: u64, e: &redis_link::LinkError) {
        if self.degraded_since_ms.is_none() {
            tracing::warn!(replica = %self.replica, error = %e, "redis coordination failed; this replica coordinates in memory until it answers");
            self.degraded_since_ms = Some(now_ms);
        }
    }
}

#[cfg(test)]
mod tests;
