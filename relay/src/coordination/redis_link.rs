//! The connection to Redis: opened on first use with a bounded wait, every command bounded by `timeout_ms`, and
//! after a failure left alone for a pause (so an outage costs one timeout per pause, not one per message).

use std::time::{Duration, Instant};

use super::{CoordinationError, RedisConfig};

/// How long a failed link is left alone before it is tried again.
const PAUSE_AFTER_FAILURE: Duration = Duration::from_secs(2);

/// Adds an event to a sorted-set window and counts it: drops what fell out of the window, adds this event
/// (unique member), keeps the key no longer than the window, and returns the count. One round trip, atomic.
const WINDOW_SCRIPT: &str = r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[2]))
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('ZCARD', KEYS[1])
";

/// Why a Redis operation did not answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(super) enum LinkError {
    /// Redis failed (connection refused, timed out, an error reply).
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The link is pausing after a failure.
    #[error("redis: not asked again yet after a failure")]
    Pausing,
    /// An answer this code cannot read.
    #[error("redis: unexpected answer")]
    Unexpected,
}

pub(super) struct RedisLink {
    client: redis::Client,
    password: Option<String>,
    prefix: String,
    timeout: Duration,
    con: Option<redis::Connection>,
    paused_until: Option<Instant>,
    script: redis::Script,
}

impl std::fmt::Debug for RedisLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLink")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("connected", &self.con.is_some())
            .finish_non_exhaustive()
    }
}

impl RedisLink {
    pub(super) fn new(
        cfg: &RedisConfig,
        password: Option<String>,
    ) -> Result<Self, CoordinationError> {
        let client = redis::Client::open(cfg.url.as_str())
            .map_err(|e| CoordinationError::Invalid(format!("url: {e}")))?;
        Ok(Self {
            client,
            password,
            prefix: cfg.key_prefix.clone(),
            timeout: Duration::from_millis(cfg.timeout_ms),
            con: None,
            paused_until: None,
            script: redis::Script::new(WINDOW_SCRIPT),
        })
    }

    fn connection(&mut self) -> Result<&mut redis::Connection, LinkError> {
        if self.paused_until.is_some_and(|t| Instant::now() < t) {
            return Err(LinkError::Pausing);
        }
        if self.con.is_none() {
            let mut con = self.client.get_connection_with_timeout(self.timeout)?;
            con.set_read_timeout(Some(self.timeout))?;
            con.set_write_timeout(Some(self.timeout))?;
            if let Some(p) = &self.password {
                redis::cmd("AUTH").arg(p).query::<()>(&mut con)?;
            }
            self.con = Some(con);
        }
        self.con.as_mut().ok_or(LinkError::Unexpected)
    }

    /// Runs `op`; on a failure drops the connection and pauses.
    fn run<T>(
        &mut self,
        op: impl FnOnce(&mut redis::Connection, &str, &redis::Script) -> redis::RedisResult<T>,
    ) -> Result<T, LinkError> {
        let prefix = self.prefix.clone();
        let script = self.script.clone();
        let call = || {
            self.connection()
                .and_then(|con| op(con, &prefix, &script).map_err(LinkError::from))
        };
        // The engine calls from a task of the relay's runtime: on a multi-threaded runtime the wait (at most
        // `timeout_ms`) says so, and the MQTT loop and the admin API go on on another worker meanwhile.
        let result = match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(call)
            }
            _ => call(),
        };
        match result {
            Ok(v) => {
                self.paused_until = None;
                Ok(v)
            }
            Err(LinkError::Pausing) => Err(LinkError::Pausing),
            Err(e) => {
                self.con = None;
                self.paused_until = Some(Instant::now() + PAUSE_AFTER_FAILURE);
                Err(e)
            }
        }
    }

    /// [`super::Coordinator::record`] in Redis: a sorted set per (window, agent).
    pub(super) fn record(
        &mut self,
        window: &str,
        agent: &str,
        now_ms: u64,
        width_ms: u64,
    ) -> Result<usize, LinkError> {
        let member = uuid::Uuid::new_v4().to_string();
        let n: i64 = self.run(|con, prefix, script| {
            script
                .key(format!("{prefix}:window:{window}:{agent}"))
                .arg(now_ms)
                .arg(width_ms.max(1))
                .arg(&member)
                .invoke(con)
        })?;
        usize::try_from(n).map_err(|_| LinkError::Unexpected)
    }

    /// Whether Redis answers (`PING`).
    pub(super) fn ping(&mut self) -> Result<(), LinkError> {
        self.run(|con, _, _| redis::cmd("PING").query::<String>(con))
            .map(drop)
    }

    /// [`super::Coordinator::reconciler_turn`] in Redis: `SET NX` of the slot's key, kept two slots long.
    pub(super) fn take_turn(
        &mut self,
        slot: u64,
        replica: &str,
        interval_ms: u64,
    ) -> Result<bool, LinkError> {
        let set: Option<String> = self.run(|con, prefix, _| {
            redis::cmd("SET")
                .arg(format!("{prefix}:reconciler:{slot}"))
                .arg(replica)
                .arg("NX")
                .arg("PX")
                .arg(interval_ms.max(1).saturating_mul(2))
                .query(con)
        })?;
        Ok(set.is_some())
    }
}
