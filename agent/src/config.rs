//! Agent configuration: defaults, then the TOML file (`/etc/tessera/agent.toml` or `--config`), then `TESSERA_*`
//! environment variables, then command-line flags (applied by `main`). Unknown keys are errors.

mod jobs;
pub mod live;
mod policy;
pub mod reload;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tessera_board::DeviceOverrides;

pub use jobs::{is_env_name, params, JobTemplate};
pub use live::{LiveConfig, LivePublisher};
pub use policy::{Caller, Policy};

/// Where the file is looked for when no `--config` is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/tessera/agent.toml";

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Directory of the store, the sealed store key and the enrolment request.
    pub state_dir: PathBuf,
    /// The key file that seals the store key (file sealer). Default: `<state_dir>/store.key`. A store-key
    /// rotation to the file sealer writes the next generation's key file beside it (`<key_file>.<generation>`).
    pub key_file: Option<PathBuf>,
    /// What seals the store key at enrolment; the TPM's settings.
    pub sealer: SealerConfig,
    /// The MQTT broker.
    pub broker: BrokerConfig,
    /// The local API socket.
    pub socket: SocketConfig,
    /// Device facts that override what the board reports.
    pub device: DeviceOverrides,
    /// Local audit.
    pub audit: AuditConfig,
    /// The credential store.
    pub store: StoreConfig,
    /// Who may read which credential: credential name (or `*`) to policy.
    pub policy: BTreeMap<String, Policy>,
    /// Job templates the relay may ask for by name.
    pub jobs: BTreeMap<String, JobTemplate>,
    /// Blue/green rotation of the agent's keys and certificate.
    pub rotation: RotationConfig,
    /// The metrics textfile for node_exporter.
    pub metrics: MetricsConfig,
}

/// `[metrics]`: a Prometheus textfile for node_exporter's textfile collector, rewritten atomically (docs/operations.md,
/// "Status and metrics"). No listener: nothing on the appliance's network.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// The file to write (`*.prom` in the collector's directory); none by default.
    pub textfile: Option<PathBuf>,
    /// How often it is rewritten, seconds (5..=3600).
    pub interval_secs: u64,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            textfile: None,
            interval_secs: 60,
        }
    }
}

/// Key rotation settings (docs/protocol.md, "Key rotation").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RotationConfig {
    /// Start a rotation automatically at `renew_at_percent` of the certificate's lifetime.
    pub automatic: bool,
    /// Share of the certificate's lifetime after which a rotation starts, percent (1..=99; 50 = half-life).
    pub renew_at_percent: u8,
    /// How long a renewed certificate has to be accepted by the broker and acknowledged by the relay, seconds.
    pub validate_secs: u32,
    /// How often an unanswered renewal request is sent again, seconds.
    pub resend_secs: u32,
    /// Wait after the first failed validation before the next automatic attempt, seconds (doubles per failure).
    pub retry_min_secs: u32,
    /// Longest wait between attempts, seconds.
    pub retry_max_secs: u32,
}

impl Default for RotationConfig {
    fn default() -> Self {
        let p = crate::rotation::Policy::default();
        Self {
            automatic: p.automatic,
            renew_at_percent: p.renew_at_percent,
            validate_secs: 60,
            resend_secs: 3_600,
            retry_min_secs: 3_600,
            retry_max_secs: 86_400,
        }
    }
}

impl RotationConfig {
    /// As the state machine's policy.
    pub fn policy(&self) -> crate::rotation::Policy {
        crate::rotation::Policy {
            automatic: self.automatic,
            renew_at_percent: self.renew_at_percent,
            validate_secs: i64::from(self.validate_secs),
            resend_secs: i64::from(self.resend_secs),
            retry_min_secs: i64::from(self.retry_min_secs),
            retry_max_secs: i64::from(self.retry_max_secs),
        }
    }
}

/// MQTT broker settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    /// Host name or address.
    pub host: String,
    /// TLS port.
    pub port: u16,
    /// CA certificate (PEM) for the broker's server certificate. Default: the pinned org CA.
    pub ca_file: Option<PathBuf>,
    /// Keep-alive, seconds.
    pub keep_alive_secs: u64,
    /// Reconnect backoff bounds, milliseconds (full jitter between them).
    pub reconnect_min_ms: u64,
    /// See `reconnect_min_ms`.
    pub reconnect_max_ms: u64,
    /// How long to wait for a registration acknowledgement before sending it again, milliseconds; doubled for each
    /// time it is sent again, at most 4 ×, and spread 0.75 to 1.25 × by the certificate serial
    /// (`tessera_proto::backoff::resend_after_ms`).
    pub register_retry_ms: u64,
    /// Announce the `batch_rewrap` capability at registration (docs/protocol.md, "Batched rewrap"): the relay may
    /// then ask this agent to seal, and deliver to it, several credentials per envelope. Off: one per message.
    pub batch_rewrap: bool,
}

/// Local API settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SocketConfig {
    /// Socket path.
    pub path: PathBuf,
    /// Socket file mode (octal in TOML: `0o660`).
    pub mode: u32,
    /// Group owning the socket (gid), so that members of it can connect.
    pub gid: Option<u32>,
    /// Concurrent requests allowed per caller uid.
    pub max_concurrent_per_uid: usize,
    /// How long a request for a missing credential waits for JIT repair, milliseconds.
    pub jit_timeout_ms: u64,
}

/// Local audit settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Entries kept; the oldest are dropped beyond it.
    pub max_entries: u64,
}

/// Credential store settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Quarantine held credentials whose statement's signer is revoked by a newer revocation list: not served to
    /// workloads (`QUARANTINED`), not rewrapped for peers. Off: they are flagged `signer_revoked` and still served.
    pub quarantine_revoked_signers: bool,
    /// Rotate the store key when the active one is this many days old (0: only on `tessera-agent
    /// rotate-store-key`).
    pub rotate_key_days: u32,
    /// Records re-encrypted per batch during a store-key rotation (each batch is one atomic, flushed write).
    pub reencrypt_batch: usize,
    /// Pause between two re-encryption batches, milliseconds (leaves the store to the agent's own work).
    pub reencrypt_pause_ms: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            quarantine_revoked_signers: false,
            rotate_key_days: 0,
            reencrypt_batch: 256,
            reencrypt_pause_ms: 10,
        }
    }
}

/// Which backend seals a store key.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum SealerBackend {
    /// A key-encryption key in a file (0600, owned by the agent's user).
    #[default]
    File,
    /// A TPM 2.0 (`[sealer.tpm]`; needs a build with the `tpm` feature).
    Tpm,
}

impl SealerBackend {
    /// `file` or `tpm`.
    pub fn name(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Tpm => "tpm",
        }
    }
}

impl std::fmt::Display for SealerBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `[sealer]`: what seals the store key at enrolment, and the TPM's settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SealerConfig {
    /// What seals the store key at enrolment: `file` (default) or `tpm`. A store-key rotation keeps the sealer of
    /// the key it replaces unless told otherwise (`rotate-store-key --to`).
    pub backend: SealerBackend,
    /// The TPM: device (TCTI), primary key, PCR policy, owner authorization file.
    pub tpm: tessera_board::TpmConfig,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            state_dir: PathBuf::from("/var/lib/tessera"),
            key_file: None,
            sealer: SealerConfig::default(),
            broker: BrokerConfig::default(),
            socket: SocketConfig::default(),
            device: DeviceOverrides::default(),
            audit: AuditConfig::default(),
            store: StoreConfig::default(),
            policy: BTreeMap::new(),
            jobs: BTreeMap::new(),
            rotation: RotationConfig::default(),
            metrics: MetricsConfig::default(),
        }
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: 8883,
            ca_file: None,
            keep_alive_secs: 30,
            reconnect_min_ms: 500,
            reconnect_max_ms: 30_000,
            register_retry_ms: 10_000,
            batch_rewrap: true,
        }
    }
}

impl Default for SocketConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("/run/tessera/agent.sock"),
            mode: 0o660,
            gid: None,
            max_concurrent_per_uid: 4,
            jit_timeout_ms: 15_000,
        }
    }
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            max_entries: 10_000,
        }
    }
}

/// A configuration that could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema (the message names the key and line).
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// An environment variable has a bad value.
    #[error("environment variable {name}: {message}")]
    Env {
        /// The variable.
        name: String,
        /// Why.
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("config: {0}")]
    Invalid(String),
}

impl AgentConfig {
    /// Loads the configuration: defaults, then the file (`explicit`, or [`DEFAULT_CONFIG_PATH`] when it exists),
    /// then `TESSERA_*` variables from `env`.
    pub fn load(
        explicit: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut cfg = match explicit {
            Some(p) => Self::from_file(p)?,
            None if Path::new(DEFAULT_CONFIG_PATH).exists() => {
                Self::from_file(Path::new(DEFAULT_CONFIG_PATH))?
            }
            None => Self::default(),
        };
        cfg.apply_env(env)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses a TOML document (no environment applied).
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    fn apply_env(
        &mut self,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), ConfigError> {
        for (name, value) in env {
            let bad = |message: &str| ConfigError::Env {
                name: name.clone(),
                message: message.to_owned(),
            };
            match name.as_str() {
                "TESSERA_STATE_DIR" => self.state_dir = PathBuf::from(&value),
                "TESSERA_KEY_FILE" => self.key_file = Some(PathBuf::from(&value)),
                "TESSERA_SEALER" => {
                    self.sealer.backend = match value.as_str() {
                        "file" => SealerBackend::File,
                        "tpm" => SealerBackend::Tpm,
                        _ => return Err(bad("must be `file` or `tpm`")),
                    };
                }
                "TESSERA_TPM_TCTI" => self.sealer.tpm.tcti.clone_from(&value),
                "TESSERA_SOCKET" => self.socket.path = PathBuf::from(&value),
                "TESSERA_BROKER_HOST" => self.broker.host.clone_from(&value),
                "TESSERA_BROKER_PORT" => {
                    self.broker.port = value.parse().map_err(|_| bad("not a port number"))?;
                }
                "TESSERA_BROKER_CA" => self.broker.ca_file = Some(PathBuf::from(&value)),
                _ => {}
            }
        }
        Ok(())
    }

    /// Checks ranges and cross-references (job templates, policy names).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let b = &self.broker;
        if b.host.is_empty() {
            return Err(ConfigError::Invalid("broker.host is empty".into()));
        }
        if b.reconnect_min_ms == 0 || b.reconnect_min_ms > b.reconnect_max_ms {
            return Err(ConfigError::Invalid(
                "broker.reconnect_min_ms must be positive and at most reconnect_max_ms".into(),
            ));
        }
        if !(5..=3600).contains(&b.keep_alive_secs) {
            return Err(ConfigError::Invalid(
                "broker.keep_alive_secs must be 5..=3600".into(),
            ));
        }
        let s = &self.socket;
        if s.mode & !0o777 != 0 || s.mode & 0o007 != 0 {
            return Err(ConfigError::Invalid(format!(
                "socket.mode {:o} must not grant access to others (use 0o660 and socket.gid)",
                s.mode
            )));
        }
        if s.max_concurrent_per_uid == 0 || s.jit_timeout_ms == 0 || s.jit_timeout_ms > 15_000 {
            return Err(ConfigError::Invalid(
                "socket.max_concurrent_per_uid must be positive and socket.jit_timeout_ms 1..=15000".into(),
            ));
        }
        let r = &self.rotation;
        if !(1..=99).contains(&r.renew_at_percent) {
            return Err(ConfigError::Invalid(
                "rotation.renew_at_percent must be 1..=99".into(),
            ));
        }
        if r.validate_secs == 0
            || r.resend_secs == 0
            || r.retry_min_secs == 0
            || r.retry_min_secs > r.retry_max_secs
        {
            return Err(ConfigError::Invalid(
                "rotation: validate_secs, resend_secs and retry_min_secs must be positive, retry_min_secs at most \
                 retry_max_secs"
                    .into(),
            ));
        }
        if self.store.reencrypt_batch == 0 || self.store.reencrypt_batch > 10_000 {
            return Err(ConfigError::Invalid(
                "store.reencrypt_batch must be 1..=10000".into(),
            ));
        }
        if self.store.reencrypt_pause_ms > 60_000 {
            return Err(ConfigError::Invalid(
                "store.reencrypt_pause_ms must be at most 60000".into(),
            ));
        }
        if !(5..=3600).contains(&self.metrics.interval_secs) {
            return Err(ConfigError::Invalid(
                "metrics.interval_secs must be 5..=3600".into(),
            ));
        }
        if self.metrics.textfile.as_ref().is_some_and(|p| {
            p.file_name().is_none() || p.parent().is_none_or(|d| d.as_os_str().is_empty())
        }) {
            return Err(ConfigError::Invalid(
                "metrics.textfile must be a file path with a directory (it is written beside, then renamed)".into(),
            ));
        }
        if let Some(textfile) = &self.metrics.textfile {
            let socket_dir = self.socket.path.parent().unwrap_or(Path::new(""));
            for (dir, what) in [
                (self.state_dir.as_path(), "state_dir"),
                (socket_dir, "the socket's directory"),
            ] {
                if !dir.as_os_str().is_empty() && lexically_inside(textfile, dir) {
                    return Err(ConfigError::Invalid(format!(
                        "metrics.textfile {} is inside {what} {}: put it in the collector's own directory",
                        textfile.display(),
                        dir.display()
                    )));
                }
            }
        }
        self.sealer
            .tpm
            .validate()
            .map_err(|e| ConfigError::Invalid(format!("sealer.tpm: {e}")))?;
        for name in self.policy.keys() {
            if name != "*" && !tessera_proto::ids::is_valid_name(name) {
                return Err(ConfigError::Invalid(format!(
                    "policy.{name}: not a credential name"
                )));
            }
        }
        for (name, job) in &self.jobs {
            job.validate(name).map_err(ConfigError::Invalid)?;
        }
        Ok(())
    }

    /// The key file path.
    pub fn key_file(&self) -> PathBuf {
        self.key_file
            .clone()
            .unwrap_or_else(|| self.state_dir.join("store.key"))
    }

    /// Where stores enrolled before the store key manifest kept their sealed store key (generation 0; moved into
    /// the manifest at the next open).
    pub fn sealed_key_file(&self) -> PathBuf {
        self.state_dir.join("store.sealed")
    }

    /// The store key manifest: the sealed store key generations and the state of a store-key rotation.
    pub fn store_keys_file(&self) -> PathBuf {
        self.state_dir.join("store-keys.json")
    }

    /// The sled database directory.
    pub fn store_dir(&self) -> PathBuf {
        self.state_dir.join("store")
    }

    /// The policy for `name` (an exact entry wins over `*`).
    pub fn policy_for(&self, name: &str) -> Option<&Policy> {
        self.policy.get(name).or_else(|| self.policy.get("*"))
    }
}

/// `.` and `..` resolved by name, without the filesystem (the file may not exist yet; symlinks are not followed).
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Whether `path` is `dir` or below it, by name ([`lexical`]).
fn lexically_inside(path: &Path, dir: &Path) -> bool {
    lexical(path).starts_with(lexical(dir))
}

#[cfg(test)]
mod tests;
