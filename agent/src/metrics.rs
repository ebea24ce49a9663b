//! The metrics textfile: the agent's status ([`crate::status`]) as Prometheus text exposition for node_exporter's
//! textfile collector (`[metrics] textfile`), rewritten every `interval_secs`. Each write goes to a fresh temporary
//! file beside it (a random name the collector ignores: it reads `*.prom` only; created new, never through a
//! symlink), is flushed, and renamed over the old one, so the collector never reads half a file. No listener:
//! nothing on the appliance's network.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::AgentConfig;
use crate::status::{snapshot, AgentStatus, StatusSources};
use crate::store::{CredentialStatus, Store};

/// The registration states, each a label value of `tessera_agent_registration_state`.
const REGISTRATION_STATES: [&str; 4] = ["disconnected", "awaiting_ack", "backfilling", "online"];

/// The status as Prometheus text (metric names in docs/operations.md).
pub fn render(s: &AgentStatus) -> String {
    let mut out = String::new();
    let agent = label(&s.agent);
    let mut gauge = |name: &str, help: &str, samples: &[(String, String)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{{agent=\"{agent}\"{labels}}} {value}");
        }
    };
    let flag = |b: bool| if b { "1" } else { "0" }.to_owned();
    gauge(
        "tessera_agent_info",
        "The agent's version (always 1).",
        &[(
            format!(",version=\"{}\"", label(&s.version)),
            "1".to_owned(),
        )],
    );
    gauge(
        "tessera_agent_broker_connected",
        "1 when the MQTT connection to the broker is up.",
        &[(String::new(), flag(s.broker.connected))],
    );
    let states: Vec<(String, String)> = REGISTRATION_STATES
        .iter()
        .map(|st| {
            (
                format!(",state=\"{st}\""),
                flag(s.registration.state == *st),
            )
        })
        .collect();
    gauge(
        "tessera_agent_registration_state",
        "1 for the registration state the agent is in.",
        &states,
    );
    gauge(
        "tessera_agent_certificate_expiry_timestamp_seconds",
        "End of the agent certificate's validity, unix seconds.",
        &[(String::new(), s.certificate.not_after_unix.to_string())],
    );
    let count = |st: CredentialStatus| {
        s.credentials
            .iter()
            .filter(|c| c.status == st)
            .count()
            .to_string()
    };
    gauge(
        "tessera_agent_credentials_held",
        "Credentials held, by status.",
        &[
            (",status=\"ok\"".to_owned(), count(CredentialStatus::Ok)),
            (
                ",status=\"signer_revoked\"".to_owned(),
                count(CredentialStatus::SignerRevoked),
            ),
            (
                ",status=\"quarantined\"".to_owned(),
                count(CredentialStatus::Quarantined),
            ),
        ],
    );
    gauge(
        "tessera_agent_store_key_generation",
        "The active store key's generation.",
        &[(
            format!(",sealer=\"{}\"", label(&s.store_key.sealer)),
            s.store_key.generation.to_string(),
        )],
    );
    gauge(
        "tessera_agent_store_key_rotating",
        "1 while a store-key rotation is under way.",
        &[(String::new(), flag(s.store_key.state != "steady"))],
    );
    out
}

/// A label value escaped as the exposition format wants (`\`, `"`, newline).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes `text` to `path` atomically: a fresh temporary file in the same directory ([`crate::sibling_temp`]: a
/// random name, never a symlink followed, mode 0644 since the collector runs as another user and the file holds no
/// secret), flushed, then renamed over it.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let (tmp, mut f) = crate::sibling_temp::create(path, 0o644)?;
    let written = f
        .write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Rewrites `path` every `every` until `cancel`, then removes it (a stopped agent exports nothing stale).
pub async fn run(
    path: PathBuf,
    every: Duration,
    cfg: Arc<AgentConfig>,
    store: Store,
    sources: StatusSources,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    let mut failing = false;
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        let written = snapshot(&cfg, &store, &sources)
            .map_err(|e| e.to_string())
            .and_then(|s| write_atomically(&path, &render(&s)).map_err(|e| e.to_string()));
        match written {
            Ok(()) => failing = false,
            // Once per failure streak, not every interval.
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(path = %path.display(), error = %e, "could not write the metrics textfile");
            }
            Err(_) => {}
        }
    }
    let _ = std::fs::remove_file(&path);
}

#[cfg(test)]
mod tests;
