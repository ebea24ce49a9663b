//! Relay configuration: defaults, then the TOML file (`/etc/tessera/relay.toml` or `--config`), then `TESSERA_*`
//! environment variables, then flags. Unknown keys are errors.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use tessera_proto::wire::MAX_JOB_TTL_SECS;

use crate::engine::EngineConfig;

pub mod reload;

/// Where the file is looked for without `--config`.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/tessera/relay.toml";

/// The relay's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelayConfig {
    /// State directory (the sled store, with `[state] backend = "sled"`).
    pub state_dir: PathBuf,
    /// Where the relay's state lives.
    pub state: StateConfig,
    /// The org CA certificate (PEM or DER).
    pub org_ca: PathBuf,
    /// The broker.
    pub broker: BrokerConfig,
    /// The admin API.
    pub admin: AdminConfig,
    /// The rules' numbers (reloaded on SIGHUP: [`reload`]).
    pub engine: EngineConfig,
    /// The health and metrics listener (plain HTTP, no operator certificate: docs/operations.md "Health and
    /// metrics").
    pub health: HealthConfig,
    /// What replicas share besides the state store (docs/operations.md, "Coordination").
    pub coordination: crate::coordination::CoordinationConfig,
}

/// `[state]`: the state backend (docs/operations.md, "State backends").
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// `sled` (embedded, under `state_dir`; the default) or `postgres`.
    pub backend: StateBackend,
    /// `[state.postgres]`, for `backend = "postgres"`.
    pub postgres: crate::state::PgConfig,
}

/// Which state backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateBackend {
    /// sled, embedded.
    #[default]
    Sled,
    /// PostgreSQL.
    Postgres,
}

impl StateBackend {
    /// Its name in the configuration and the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sled => "sled",
            Self::Postgres => "postgres",
        }
    }
}

/// The health and metrics listener.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Whether it runs.
    pub enabled: bool,
    /// Listen address (localhost by default: it is unauthenticated).
    pub listen: SocketAddr,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
        }
    }
}

/// The relay's MQTT connections (inbound as `client_id`, outbound as `client_id-out`: relay/src/runtime/broker_link.rs).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    /// Host.
    pub host: String,
    /// TLS port.
    pub port: u16,
    /// CA of the broker's certificate; default the org CA.
    pub ca_file: Option<PathBuf>,
    /// The relay's service certificate (PEM) — its CN is its MQTT username.
    pub cert: PathBuf,
    /// Its key (PKCS#8 PEM).
    pub key: PathBuf,
    /// MQTT client id.
    pub client_id: String,
    /// Shared-subscription group of the relay replicas; empty for a plain subscription.
    pub shared_group: String,
    /// Keep-alive, seconds.
    pub keep_alive_secs: u64,
    /// The MQTT version: `auto` (5, or 3.1.1 when the broker refuses 5), `5` or `3.1.1`.
    pub protocol: MqttProtocol,
    /// MQTT 5: how long the broker keeps this relay's session after it disconnects, seconds. Messages for it are
    /// queued that long (a restart within it loses none; 0 ends the session at disconnect); with several replicas,
    /// a replica that died stops taking its share of the agents' messages once it has expired (docs/operations.md,
    /// "Running several relays").
    pub session_expiry_secs: u32,
}

/// The longest `[broker] session_expiry_secs`: a week.
pub const MAX_SESSION_EXPIRY_SECS: u32 = 7 * 24 * 3600;

/// `[broker] protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum MqttProtocol {
    /// MQTT 5, falling back to 3.1.1 when the broker refuses 5 at the first connection.
    #[default]
    #[serde(rename = "auto")]
    Auto,
    /// MQTT 5 only.
    #[serde(rename = "5")]
    V5,
    /// MQTT 3.1.1 only.
    #[serde(rename = "3.1.1")]
    V311,
}

impl MqttProtocol {
    /// As the configuration spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::V5 => "5",
            Self::V311 => "3.1.1",
        }
    }
}

/// The admin API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Listen address (localhost by default).
    pub listen: SocketAddr,
    /// Server certificate (PEM), from the org CA (`ca issue-service`).
    pub cert: PathBuf,
    /// Its key (PKCS#8 PEM).
    pub key: PathBuf,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            state_dir: PathBuf::from("/var/lib/tessera-relay"),
            state: StateConfig::default(),
            org_ca: PathBuf::from("/etc/tessera/org-ca.pem"),
            broker: BrokerConfig::default(),
            admin: AdminConfig::default(),
            engine: EngineConfig::default(),
            health: HealthConfig::default(),
            coordination: crate::coordination::CoordinationConfig::default(),
        }
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8883,
            ca_file: None,
            cert: PathBuf::from("/etc/tessera/relay-1.pem"),
            key: PathBuf::from("/etc/tessera/relay-1.key"),
            client_id: "relay-1".into(),
            shared_group: tessera_proto::topics::DEFAULT_RELAY_GROUP.into(),
            keep_alive_secs: 30,
            protocol: MqttProtocol::Auto,
            session_expiry_secs: 300,
        }
    }
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            cert: PathBuf::from("/etc/tessera/relay-admin.pem"),
            key: PathBuf::from("/etc/tessera/relay-admin.key"),
        }
    }
}

/// A configuration that could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Unreadable file.
    #[error("config file {0}: {1}")]
    Read(PathBuf, std::io::Error),
    /// Invalid TOML or schema (the message names the key).
    #[error("config file {0}: {1}")]
    Parse(PathBuf, String),
    /// A bad environment value.
    #[error("environment variable {0}: {1}")]
    Env(String, String),
    /// A value out of its range (the message names the key).
    #[error("{0}")]
    Invalid(String),
}

impl RelayConfig {
    /// Defaults, then the file, then `TESSERA_*` from `env`.
    pub fn load(
        explicit: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let path = explicit.map(Path::to_path_buf).or_else(|| {
            Path::new(DEFAULT_CONFIG_PATH)
                .exists()
                .then(|| PathBuf::from(DEFAULT_CONFIG_PATH))
        });
        let mut cfg = match path {
            Some(p) => {
                let text =
                    std::fs::read_to_string(&p).map_err(|e| ConfigError::Read(p.clone(), e))?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse(p.clone(), e.to_string()))?
            }
            None => Self::default(),
        };
        for (k, v) in env {
            match k.as_str() {
                "TESSERA_RELAY_STATE_DIR" => cfg.state_dir = PathBuf::from(v),
                "TESSERA_STATE_BACKEND" => {
                    cfg.state.backend = match v.as_str() {
                        "sled" => StateBackend::Sled,
                        "postgres" => StateBackend::Postgres,
                        _ => {
                            return Err(ConfigError::Env(k.clone(), "not sled or postgres".into()))
                        }
                    };
                }
                "TESSERA_STATE_POSTGRES_URL" => cfg.state.postgres.url = v,
                "TESSERA_COORDINATION_BACKEND" => {
                    cfg.coordination.backend = match v.as_str() {
                        "memory" => crate::coordination::CoordinationBackend::Memory,
                        "redis" => crate::coordination::CoordinationBackend::Redis,
                        _ => return Err(ConfigError::Env(k.clone(), "not memory or redis".into())),
                    };
                }
                "TESSERA_COORDINATION_REDIS_URL" => cfg.coordination.redis.url = v,
                "TESSERA_BROKER_HOST" => cfg.broker.host = v,
                "TESSERA_BROKER_PORT" => {
                    cfg.broker.port = v
                        .parse()
                        .map_err(|_| ConfigError::Env(k.clone(), "not a port".into()))?;
                }
                "TESSERA_HEALTH_LISTEN" => {
                    cfg.health.listen = v
                        .parse()
                        .map_err(|_| ConfigError::Env(k.clone(), "not host:port".into()))?;
                }
                "TESSERA_ADMIN_LISTEN" => {
                    cfg.admin.listen = v
                        .parse()
                        .map_err(|_| ConfigError::Env(k.clone(), "not host:port".into()))?;
                }
                _ => {}
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let ttl = self.engine.job_ttl_secs;
        if ttl == 0 || i64::try_from(ttl).map_or(true, |t| t > MAX_JOB_TTL_SECS) {
            return Err(ConfigError::Invalid(format!(
                "engine.job_ttl_secs must be 1..={MAX_JOB_TTL_SECS} (agents refuse a job expiring further ahead)"
            )));
        }
        if self.engine.batch_size > tessera_proto::envelope::batch::MAX_BATCH_ITEMS {
            return Err(ConfigError::Invalid(format!(
                "engine.batch_size must be 0..={} (0 or 1: no batching)",
                tessera_proto::envelope::batch::MAX_BATCH_ITEMS
            )));
        }
        if self.engine.peer_max_in_flight == 0 {
            return Err(ConfigError::Invalid(
                "engine.peer_max_in_flight must be at least 1".into(),
            ));
        }
        if self.engine.batches_in_flight == 0 {
            return Err(ConfigError::Invalid(
                "engine.batches_in_flight must be at least 1".into(),
            ));
        }
        if !(1..=99).contains(&self.engine.cert_expiry_alert_percent) {
            return Err(ConfigError::Invalid(
                "engine.cert_expiry_alert_percent must be 1..=99".into(),
            ));
        }
        if self.state.backend == StateBackend::Postgres {
            self.state.postgres.check().map_err(ConfigError::Invalid)?;
        }
        if !(1..=64).contains(&self.state.postgres.pool_size) {
            return Err(ConfigError::Invalid(
                "state.postgres.pool_size must be 1..=64".into(),
            ));
        }
        self.coordination
            .check()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        if self.broker.session_expiry_secs > MAX_SESSION_EXPIRY_SECS {
            return Err(ConfigError::Invalid(format!(
                "broker.session_expiry_secs must be 0..={MAX_SESSION_EXPIRY_SECS}"
            )));
        }
        if self.engine.purge_alert_ms == 0 {
            return Err(ConfigError::Invalid(
                "engine.purge_alert_ms must be positive".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
