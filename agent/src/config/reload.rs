//! SIGHUP: the configuration file read again, as at start ([`ConfigSource::load`]: the same file, `TESSERA_*`
//! variables and command-line overrides, the same validation), and compared with the one in force. The read policy
//! (`[policy.*]`) and the job templates (`[jobs.*]`) apply to new requests; a change anywhere else needs a restart
//! and is reported, not applied. docs/operations.md "Reloading".

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::{Path, PathBuf};

use super::{AgentConfig, ConfigError, Policy};

/// Where the configuration comes from: the file (`--config`; `None`: the default file when it exists) and the
/// command-line overrides applied after it.
#[derive(Debug, Clone, Default)]
pub struct ConfigSource {
    /// `--config`.
    pub path: Option<PathBuf>,
    /// `--state-dir`.
    pub state_dir: Option<PathBuf>,
    /// `--socket`.
    pub socket: Option<PathBuf>,
}

impl ConfigSource {
    /// Loads and validates the configuration, `env` on top of the file, then the overrides.
    pub fn load(
        &self,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<AgentConfig, ConfigError> {
        let mut cfg = AgentConfig::load(self.path.as_deref(), env)?;
        if let Some(d) = &self.state_dir {
            cfg.state_dir.clone_from(d);
        }
        if let Some(s) = &self.socket {
            cfg.socket.path.clone_from(s);
        }
        Ok(cfg)
    }

    /// The file, for messages.
    pub fn shown(&self) -> String {
        self.path
            .as_deref()
            .unwrap_or_else(|| Path::new(super::DEFAULT_CONFIG_PATH))
            .display()
            .to_string()
    }
}

/// What a reload found.
#[derive(Debug, Clone)]
pub struct Reload {
    /// The configuration to put in force: the one in force with the new policy and job templates.
    pub next: AgentConfig,
    /// What changed and applies, one line each (`policy.db uids [1000] -> [1000, 1001]`, `jobs.backup added`).
    pub applied: Vec<String>,
    /// The other sections that changed and need a restart.
    pub needs_restart: Vec<&'static str>,
}

fn differs<T: Debug>(a: &T, b: &T) -> bool {
    format!("{a:?}") != format!("{b:?}")
}

fn shown(p: Option<&Policy>) -> String {
    p.map_or_else(
        || "(none)".to_owned(),
        |p| format!("uids {:?} gids {:?}", p.uids, p.gids),
    )
}

/// The keys of two maps that differ: added, removed or changed.
fn changed_keys<'a, V: Debug>(
    a: &'a BTreeMap<String, V>,
    b: &'a BTreeMap<String, V>,
) -> impl Iterator<Item = &'a String> {
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(move |k| differs(&a.get(k.as_str()), &b.get(k.as_str())))
}

/// Compares the configuration in force with a newly loaded one.
pub fn compare(current: &AgentConfig, new: AgentConfig) -> Reload {
    let mut applied = Vec::new();
    for name in changed_keys(&current.policy, &new.policy) {
        applied.push(format!(
            "policy.{name} {} -> {}",
            shown(current.policy.get(name)),
            shown(new.policy.get(name))
        ));
    }
    for name in changed_keys(&current.jobs, &new.jobs) {
        let what = match (current.jobs.contains_key(name), new.jobs.contains_key(name)) {
            (false, _) => "added",
            (_, false) => "removed",
            _ => "changed",
        };
        applied.push(format!("jobs.{name} {what}"));
    }
    let mut needs_restart = Vec::new();
    for (name, changed) in [
        ("state_dir", current.state_dir != new.state_dir),
        ("key_file", current.key_file != new.key_file),
        ("sealer", differs(&current.sealer, &new.sealer)),
        ("broker", differs(&current.broker, &new.broker)),
        ("socket", differs(&current.socket, &new.socket)),
        ("device", differs(&current.device, &new.device)),
        ("audit", differs(&current.audit, &new.audit)),
        ("store", differs(&current.store, &new.store)),
        ("rotation", differs(&current.rotation, &new.rotation)),
        ("metrics", differs(&current.metrics, &new.metrics)),
    ] {
        if changed {
            needs_restart.push(name);
        }
    }
    let mut next = current.clone();
    next.policy = new.policy;
    next.jobs = new.jobs;
    Reload {
        next,
        applied,
        needs_restart,
    }
}

#[cfg(test)]
mod tests;
