//! The whole system as real processes: an org CA, an operator and service certificates made by the operator CLI, a
//! Mosquitto with TLS client certificates and the pattern ACL, the relay (`tessera-relay serve`) and agents
//! (`tessera-agent run`), each in its own directory under one root. Everything started is killed on drop.
//!
//! Shared by the system tests and the demo; errors are values so the demo can report them.

// `serde_json::Value[&str]` yields `Null` for a missing key: it never panics.
#![allow(clippy::indexing_slicing)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tessera_proto::ids::AgentId;

use crate::broker::{Broker, BrokerError, Identity};

/// What went wrong while running the system.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// A command failed.
    #[error("{what} exited with {code:?}: {stderr}")]
    Command {
        /// The command.
        what: String,
        /// Its exit code.
        code: Option<i32>,
        /// Its standard error.
        stderr: String,
    },
    /// A file or process.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The broker.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// Something did not happen in time.
    #[error("timed out after {secs} s waiting for {what}")]
    Timeout {
        /// What.
        what: String,
        /// How long.
        secs: u64,
    },
    /// A command printed something that is not the JSON it documents.
    #[error("{what} printed unexpected output: {detail}")]
    Output {
        /// The command.
        what: String,
        /// What was wrong.
        detail: String,
    },
}

type Result<T> = std::result::Result<T, ClusterError>;

/// A spawned process, killed (SIGKILL) and reaped on drop.
#[derive(Debug)]
pub struct Proc(Child);

impl Proc {
    /// Spawns `cmd` with standard error appended to `log`.
    pub fn spawn(cmd: &mut Command, log: &Path) -> Result<Self> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        Ok(Self(cmd.stdout(Stdio::null()).stderr(f).spawn()?))
    }

    /// Its pid.
    pub fn id(&self) -> u32 {
        self.0.id()
    }

    /// Whether it has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(Some(_)))
    }

    /// SIGTERM, and waits for it to exit (a clean shutdown).
    pub fn terminate(&mut self) -> Result<()> {
        if let Some(pid) = rustix::process::Pid::from_raw(i32::try_from(self.0.id()).unwrap_or(0)) {
            rustix::process::kill_process(pid, rustix::process::Signal::TERM)
                .map_err(std::io::Error::from)?;
        }
        self.0.wait()?;
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn checked(what: &str, out: Output) -> Result<Output> {
    if out.status.success() {
        Ok(out)
    } else {
        Err(ClusterError::Command {
            what: what.to_owned(),
            code: out.status.code(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args().take(3) {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs `cmd` and fails unless it exits 0.
pub fn run(cmd: &mut Command) -> Result<Output> {
    let what = describe(cmd);
    checked(&what, cmd.output()?)
}

/// Polls `check` every 100 ms until it holds or `timeout` passes.
pub fn wait_for(what: &str, timeout: Duration, check: impl FnMut() -> Result<bool>) -> Result<()> {
    poll_until(what, timeout, Duration::from_millis(100), check)
}

/// Polls `check` every `every` until it holds or `timeout` passes.
pub fn poll_until(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut check: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if check()? {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(ClusterError::Timeout {
                what: what.to_owned(),
                secs: timeout.as_secs(),
            });
        }
        std::thread::sleep(every);
    }
}

/// A test's size knob: the number in environment variable `name`, or `default`.
pub fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The org, broker and relay.
#[derive(Debug)]
pub struct Cluster {
    root: PathBuf,
    bins: PathBuf,
    /// The broker.
    pub broker: Broker,
    relay: Option<Proc>,
    relay_config: PathBuf,
    /// The relay's admin API address.
    pub admin: String,
    /// The relay's health and metrics listener address (plain HTTP).
    pub health: String,
    /// The relay's database, when this run puts its state on PostgreSQL (`TESSERA_TEST_STATE=postgres`), or the
    /// replicas share one ([`Cluster::replicated`]).
    pub db: Option<crate::pg::TestDb>,
    /// The relays beyond the first ([`Cluster::replicated`]).
    replicas: Vec<Replica>,
}

/// What every relay of a cluster gets in its configuration besides its own names and addresses.
struct RelayExtra<'a> {
    /// The `[engine]` table's body.
    engine: &'a str,
    /// More `[broker]` keys.
    broker: &'a str,
    /// More `[coordination]` keys, for replicas (`None`: no `[coordination]` table).
    coordination: Option<&'a str>,
}

/// A relay replica beyond the first, sharing its broker and database.
#[derive(Debug)]
pub struct Replica {
    /// `relay-2`, `relay-3`, …: its broker identity, MQTT client id and coordination name.
    pub name: String,
    config: PathBuf,
    /// Its admin API address.
    pub admin: String,
    /// Its health listener address.
    pub health: String,
    proc: Option<Proc>,
}

impl Replica {
    /// Its process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(Proc::id)
    }

    /// SIGKILLs it.
    pub fn kill(&mut self) {
        self.proc = None;
    }
}

impl Cluster {
    /// Creates the org CA, the operator `alice`, the relay's broker and admin identities and the broker's, starts
    /// the broker and writes the relay's configuration (`engine` is appended as its `[engine]` table). The relay is
    /// not started.
    pub fn new(root: &Path, bins: &Path, engine: &str) -> Result<Self> {
        let db = if crate::pg::state_on_postgres() {
            Some(crate::pg::TestDb::create().map_err(|e| std::io::Error::other(e.to_string()))?)
        } else {
            None
        };
        Self::build(root, bins, engine, db, 1, None)
    }

    /// As [`Cluster::new`], with `replicas` relays (`relay-1` .. `relay-N`, each with its own broker identity,
    /// MQTT client id, admin and health ports) sharing one PostgreSQL database of the test's own. The first is the
    /// one [`Cluster::start_relay`] starts and the operator commands use; the others are [`Cluster::replica`]s.
    pub fn replicated(root: &Path, bins: &Path, engine: &str, replicas: usize) -> Result<Self> {
        Self::replicated_with(root, bins, engine, replicas, "")
    }

    /// As [`Cluster::replicated`], with `coordination` appended to every replica's `[coordination]` table (which
    /// names the replica): `backend = "redis"` and its `[coordination.redis]`, say.
    pub fn replicated_with(
        root: &Path,
        bins: &Path,
        engine: &str,
        replicas: usize,
        coordination: &str,
    ) -> Result<Self> {
        let db = crate::pg::TestDb::create().map_err(|e| std::io::Error::other(e.to_string()))?;
        Self::build(
            root,
            bins,
            engine,
            Some(db),
            replicas.max(1),
            Some(coordination),
        )
    }

    fn build(
        root: &Path,
        bins: &Path,
        engine: &str,
        db: Option<crate::pg::TestDb>,
        replicas: usize,
        coordination: Option<&str>,
    ) -> Result<Self> {
        let relay = || Command::new(bins.join("tessera"));
        let ca = root.join("ca");
        let svc = root.join("svc");
        run(relay()
            .args(["ca", "init", "--org", "Demo Org", "--dir"])
            .arg(&ca))?;
        run(relay()
            .args(["ca", "issue-operator", "--id", "alice", "--dir"])
            .arg(&ca)
            .arg("--out-dir")
            .arg(root.join("operator")))?;
        let relay_names: Vec<String> = (1..=replicas).map(|i| format!("relay-{i}")).collect();
        let mut services: Vec<&str> = relay_names.iter().map(String::as_str).collect();
        services.extend(["relay-admin", "broker"]);
        for name in services {
            run(relay()
                .args(["ca", "issue-service", "--name", name, "--ip", "127.0.0.1"])
                .args(["--dns", "localhost", "--dir"])
                .arg(&ca)
                .arg("--out-dir")
                .arg(&svc))?;
        }
        let broker_dir = root.join("broker");
        std::fs::create_dir_all(&broker_dir)?;
        let broker_identity = Identity {
            cert: svc.join("broker.pem"),
            key: svc.join("broker.key"),
        };
        let relay_users: Vec<&str> = relay_names.iter().map(String::as_str).collect();
        let broker = Broker::start(
            &broker_dir,
            &ca.join("ca.pem"),
            &broker_identity,
            &relay_users,
        )?;
        let mut cluster = Self {
            root: root.to_path_buf(),
            bins: bins.to_path_buf(),
            broker,
            relay: None,
            relay_config: root.join("relay.toml"),
            admin: String::new(),
            health: String::new(),
            db,
            replicas: Vec::new(),
        };
        // Replicas: a dead replica's MQTT session (and its share of the agents' messages) expires within the test.
        let broker_extra = if replicas > 1 {
            "session_expiry_secs = 2\n"
        } else {
            ""
        };
        let extra = RelayExtra {
            engine,
            broker: broker_extra,
            coordination,
        };
        let first = cluster.write_relay_config("relay-1", &cluster.relay_config, &extra)?;
        (cluster.admin, cluster.health) = first;
        for name in relay_names.iter().skip(1) {
            let config = root.join(format!("{name}.toml"));
            let (admin, health) = cluster.write_relay_config(name, &config, &extra)?;
            cluster.replicas.push(Replica {
                name: name.clone(),
                config,
                admin,
                health,
                proc: None,
            });
        }
        Ok(cluster)
    }

    /// Writes relay `name`'s configuration to `path`; returns its admin and health addresses.
    fn write_relay_config(
        &self,
        name: &str,
        path: &Path,
        extra: &RelayExtra<'_>,
    ) -> Result<(String, String)> {
        let admin = format!("127.0.0.1:{}", crate::broker::free_port()?);
        let health = format!("127.0.0.1:{}", crate::broker::free_port()?);
        let state_dir = if name == "relay-1" {
            self.root.join("relay-state")
        } else {
            self.root.join(format!("{name}-state"))
        };
        // A lone relay's test may add its own `[coordination]`; replicas are named in theirs.
        let coordination = extra.coordination.map_or_else(String::new, |more| {
            format!("[coordination]\nreplica = \"{name}\"\n{more}\n")
        });
        let (engine, broker_extra) = (extra.engine, extra.broker);
        std::fs::write(
            path,
            format!(
                "state_dir = \"{state}\"\norg_ca = \"{ca}\"\n[broker]\nhost = \"127.0.0.1\"\nport = {port}\n\
                 cert = \"{svc}/{name}.pem\"\nkey = \"{svc}/{name}.key\"\nclient_id = \"{name}\"\n{broker_extra}\
                 [admin]\nlisten = \"{admin}\"\ncert = \"{svc}/relay-admin.pem\"\nkey = \"{svc}/relay-admin.key\"\n\
                 [health]\nlisten = \"{health}\"\n{state_section}{coordination}[engine]\n{engine}\n",
                state = state_dir.display(),
                state_section = self.db.as_ref().map(crate::pg::TestDb::relay_state_toml).unwrap_or_default(),
                ca = self.ca_dir().join("ca.pem").display(),
                port = self.broker.port,
                svc = self.root.join("svc").display(),
            ),
        )?;
        Ok((admin, health))
    }

    /// Replica `i` (0 is `relay-2`).
    pub fn replica(&mut self, i: usize) -> Option<&mut Replica> {
        self.replicas.get_mut(i)
    }

    /// Starts replica `i` and waits until its admin API answers.
    pub fn start_replica(&mut self, i: usize) -> Result<()> {
        let Some(r) = self.replicas.get(i) else {
            return Err(ClusterError::Io(std::io::Error::other(format!(
                "no replica {i}"
            ))));
        };
        let mut cmd = self.cmd("tessera-relay");
        cmd.args(["serve", "--config"]).arg(&r.config);
        let log = self.root.join(format!("{}.log", r.name));
        let admin = r.admin.clone();
        let proc = Proc::spawn(&mut cmd, &log)?;
        if let Some(r) = self.replicas.get_mut(i) {
            r.proc = Some(proc);
        }
        wait_for("a replica's admin API", Duration::from_secs(20), || {
            Ok(self.op_via(&admin, &["agents", "ls"])?.status.success())
        })
    }

    /// An operator command through the admin API at `admin` (a replica's), unchecked.
    pub fn op_via(&self, admin: &str, args: &[&str]) -> Result<Output> {
        let mut c = self.operator_cmd();
        c.env("TESSERA_RELAY", admin);
        Ok(c.args(args).output()?)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The CA directory (`ca.pem`, the CA key, the revocation list).
    pub fn ca_dir(&self) -> PathBuf {
        self.root.join("ca")
    }

    /// The operator's directory (`ca.pem`, `operator.pem`, `operator.key`).
    pub fn operator_dir(&self) -> PathBuf {
        self.root.join("operator")
    }

    /// The relay's configuration file.
    pub fn relay_config(&self) -> &Path {
        &self.relay_config
    }

    /// The relay's state directory.
    pub fn relay_state(&self) -> PathBuf {
        self.root.join("relay-state")
    }

    /// The relay's log.
    pub fn relay_log(&self) -> String {
        std::fs::read_to_string(self.root.join("relay.log")).unwrap_or_default()
    }

    /// A service identity issued at creation (`relay-1`, `relay-admin`, `broker`).
    pub fn service_identity(&self, name: &str) -> Identity {
        let svc = self.root.join("svc");
        Identity {
            cert: svc.join(format!("{name}.pem")),
            key: svc.join(format!("{name}.key")),
        }
    }

    /// The org CA certificate, DER.
    pub fn ca_der(&self) -> Result<Vec<u8>> {
        let pem = std::fs::read(self.ca_dir().join("ca.pem"))?;
        pem::parse(pem)
            .map(pem::Pem::into_contents)
            .map_err(|e| ClusterError::Output {
                what: "ca.pem".into(),
                detail: e.to_string(),
            })
    }

    /// A command for one of the workspace's binaries.
    pub fn cmd(&self, bin: &str) -> Command {
        Command::new(self.bins.join(bin))
    }

    /// Starts `tessera-relay serve` and waits until its admin API answers.
    pub fn start_relay(&mut self) -> Result<()> {
        self.start_relay_env(&[])
    }

    /// As [`Cluster::start_relay`], with extra environment variables (`TESSERA_LOG`, say).
    pub fn start_relay_env(&mut self, env: &[(&str, &str)]) -> Result<()> {
        let mut cmd = self.cmd("tessera-relay");
        cmd.args(["serve", "--config"]).arg(&self.relay_config);
        cmd.envs(env.iter().copied());
        self.relay = Some(Proc::spawn(&mut cmd, &self.root.join("relay.log"))?);
        wait_for("the relay's admin API", Duration::from_secs(20), || {
            Ok(self.op_unchecked(&["agents", "ls"])?.status.success())
        })
    }

    /// The relay's process id while it runs.
    pub fn relay_pid(&self) -> Option<u32> {
        self.relay.as_ref().map(Proc::id)
    }

    /// SIGKILLs the relay.
    pub fn kill_relay(&mut self) {
        self.relay = None;
    }

    /// An operator command (`--json` first when `json`), unchecked.
    pub fn op_unchecked(&self, args: &[&str]) -> Result<Output> {
        Ok(self.operator_cmd().args(args).output()?)
    }

    /// A `tessera` command on this workstation: the operator directory and the relay's admin API set, so that
    /// `ca issue-agent` copies the registry of issued certificates into the operator directory.
    pub fn operator_cmd(&self) -> Command {
        let mut c = self.cmd("tessera");
        c.env("TESSERA_RELAY", &self.admin)
            .env("TESSERA_OPERATOR_DIR", self.operator_dir());
        c
    }

    /// An operator command that must succeed; returns its output.
    pub fn op(&self, args: &[&str]) -> Result<Output> {
        let what = format!("tessera {}", args.join(" "));
        checked(&what, self.op_unchecked(args)?)
    }

    /// An operator command with `--json`; returns what it printed.
    pub fn op_json(&self, args: &[&str]) -> Result<serde_json::Value> {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.op(&all)?;
        serde_json::from_slice(&out.stdout).map_err(|e| ClusterError::Output {
            what: format!("tessera {}", args.join(" ")),
            detail: e.to_string(),
        })
    }

    /// `cred put NAME` with `secret` on standard input (scope: `agents`, or every agent when empty).
    pub fn put(&self, name: &str, secret: &str, agents: &[&str]) -> Result<serde_json::Value> {
        let mut cmd = self.operator_cmd();
        cmd.args(["--json", "cred", "put", name]);
        for a in agents {
            cmd.args(["--agent", a]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(secret.as_bytes())?;
        }
        let out = checked(&format!("cred put {name}"), child.wait_with_output()?)?;
        serde_json::from_slice(&out.stdout).map_err(|e| ClusterError::Output {
            what: "cred put".into(),
            detail: e.to_string(),
        })
    }

    /// `cred import DIR`: every file in `dir` becomes a credential named after it.
    pub fn import(&self, dir: &Path) -> Result<()> {
        let d = dir.to_string_lossy();
        self.op(&["cred", "import", d.as_ref()])?;
        Ok(())
    }

    /// Imports `credentials` (name, secret) with `cred import` from a directory under the root.
    pub fn import_all(&self, credentials: &[(String, String)]) -> Result<()> {
        let dir = self.root.join(format!("import-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        for (name, secret) in credentials {
            std::fs::write(dir.join(name), secret)?;
        }
        self.import(&dir)?;
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    /// Starts the relay and agent `peer` (with `policy`), imports `credentials` (name → secret) and waits until
    /// the peer holds every one: the fleet a backfill test then adds its target to.
    pub fn with_seeded_peer(
        &mut self,
        peer: &str,
        policy: &str,
        credentials: &std::collections::BTreeMap<String, String>,
        wait: Duration,
    ) -> Result<AgentProc> {
        self.start_relay()?;
        let mut agent = self.agent(peer, policy)?;
        agent.start()?;
        self.wait_state(peer, "online", wait)?;
        self.import_all(
            &credentials
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<Vec<_>>(),
        )?;
        wait_for(&format!("{peer} to hold everything"), wait, || {
            Ok(agent.names()?.len() == credentials.len())
        })?;
        Ok(agent)
    }

    /// Credential name → id, as the relay lists them.
    pub fn credential_ids(&self) -> Result<std::collections::BTreeMap<String, String>> {
        let v = self.op_json(&["cred", "ls"])?;
        Ok(v.as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|c| {
                        Some((c["name"].as_str()?.to_owned(), c["id"].as_str()?.to_owned()))
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The credential ids the relay recorded as delivered to `agent` (its audit trail's successful final entries).
    pub fn acknowledged(&self, agent: &str) -> Result<std::collections::BTreeSet<String>> {
        Ok(self
            .audit("rewrap_final")?
            .iter()
            .filter(|r| r["data"]["target"] == agent && r["data"]["result"] == "success")
            .filter_map(|r| r["data"]["credential"].as_str().map(str::to_owned))
            .collect())
    }

    /// The sync chips of credential `name`: (synced, of).
    pub fn chips(&self, name: &str) -> Result<Option<(u64, u64)>> {
        let v = self.op_json(&["cred", "ls"])?;
        Ok(v.as_array().and_then(|l| {
            l.iter()
                .find(|c| c["name"] == name)
                .and_then(|c| Some((c["sync"]["synced"].as_u64()?, c["sync"]["of"].as_u64()?)))
        }))
    }

    /// Audit entries of `kind`.
    pub fn audit(&self, kind: &str) -> Result<Vec<serde_json::Value>> {
        Ok(self
            .op_json(&["audit", "ls", "--kind", kind])?
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// Runs job `template` (on `agent` when given) and waits for its result.
    pub fn job(
        &self,
        template: &str,
        agent: Option<&str>,
        credentials: &[&str],
        timeout: Duration,
    ) -> Result<serde_json::Value> {
        let mut args = vec!["job", "run", template];
        if let Some(a) = agent {
            args.extend(["--agent", a]);
        }
        for c in credentials {
            args.extend(["--credential", c]);
        }
        let job = self.op_json(&args)?;
        let id = job["job_id"].as_str().unwrap_or_default().to_owned();
        let mut result = serde_json::Value::Null;
        wait_for(&format!("job {template}'s result"), timeout, || {
            let jobs = self.op_json(&["job", "ls"])?;
            if let Some(j) = jobs.as_array().and_then(|l| {
                l.iter()
                    .find(|j| j["id"] == id.as_str() && !j["result"].is_null())
            }) {
                result = j["result"].clone();
                return Ok(true);
            }
            Ok(false)
        })?;
        Ok(result)
    }

    /// The relay's view of `agent`: `online`, `backfilling`, `offline`, or `None` when unknown.
    pub fn agent_state(&self, agent: &str) -> Result<Option<String>> {
        let v = self.op_json(&["agents", "ls"])?;
        Ok(v.as_array().and_then(|list| {
            list.iter()
                .find(|a| a["id"] == agent)
                .and_then(|a| a["state"].as_str().map(str::to_owned))
        }))
    }

    /// Waits until the relay sees `agent` in `state`.
    pub fn wait_state(&self, agent: &str, state: &str, timeout: Duration) -> Result<()> {
        wait_for(&format!("{agent} {state}"), timeout, || {
            Ok(self.agent_state(agent)?.as_deref() == Some(state))
        })
    }

    /// The state of `agent`'s key rotation as `tessera ca renew` lists it (listing only: nothing is certified).
    pub fn renewal_state(&self, agent: &str) -> Result<Option<String>> {
        let ca = self.ca_dir();
        let rows = self.op_json(&["ca", "renew", "--dir", &ca.to_string_lossy()])?;
        Ok(rows.as_array().and_then(|rows| {
            rows.iter()
                .find(|r| r["agent"] == agent)
                .and_then(|r| r["state"].as_str().map(str::to_owned))
        }))
    }

    /// Waits until `agent`'s key rotation is `state` (`requested`, `certified`, `completed`, `failed`).
    pub fn wait_renewal(&self, agent: &str, state: &str, timeout: Duration) -> Result<()> {
        wait_for(
            &format!("{agent}'s rotation to be {state}"),
            timeout,
            || Ok(self.renewal_state(agent)?.as_deref() == Some(state)),
        )
    }

    /// The relay's alerts.
    pub fn alerts(&self) -> Result<Vec<serde_json::Value>> {
        Ok(self
            .op_json(&["alerts", "ls"])?
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// Creates an agent's directory and configuration (`extra` is appended), enrols it through `tessera-agent
    /// enroll`, issues its certificate with `tessera ca issue-agent` and installs it. Not started.
    pub fn agent(&self, id: &str, extra: &str) -> Result<AgentProc> {
        self.agent_with_bin(id, extra, &self.bins.join("tessera-agent"))
    }

    /// As [`Cluster::agent`], with another `tessera-agent` executable (a cross-built one behind an emulator, say).
    pub fn agent_with_bin(&self, id: &str, extra: &str, bin: &Path) -> Result<AgentProc> {
        let dir = self.root.join(id);
        std::fs::create_dir_all(&dir)?;
        let config = dir.join("agent.toml");
        let socket = dir.join("agent.sock");
        std::fs::write(
            &config,
            format!(
                "state_dir = \"{}\"\n[broker]\nhost = \"127.0.0.1\"\nport = {}\nreconnect_min_ms = 100\nreconnect_max_ms = 1000\n\
                 [socket]\npath = \"{}\"\n{extra}",
                dir.join("state").display(),
                self.broker.port,
                socket.display()
            ),
        )?;
        let agent = AgentProc {
            id: AgentId::new(id).map_err(|e| ClusterError::Output {
                what: "agent id".into(),
                detail: e.to_string(),
            })?,
            bin: bin.to_path_buf(),
            log: dir.join("agent.log"),
            cert: dir.join("agent.pem"),
            dir,
            config,
            socket,
            child: None,
        };
        let req = agent.dir.join("request.json");
        run(agent
            .cli()
            .args(["enroll", "--agent-id", id, "--ca"])
            .arg(self.ca_dir().join("ca.pem"))
            .arg("--request-out")
            .arg(&req))?;
        run(self
            .operator_cmd()
            .args(["ca", "issue-agent", "--dir"])
            .arg(self.ca_dir())
            .arg(&req)
            .arg("--out")
            .arg(&agent.cert))?;
        run(agent.cli().arg("install-cert").arg(&agent.cert))?;
        Ok(agent)
    }
}

/// One agent.
#[derive(Debug)]
pub struct AgentProc {
    /// Its id.
    pub id: AgentId,
    /// Its directory.
    pub dir: PathBuf,
    /// Its configuration.
    pub config: PathBuf,
    /// Its local API socket.
    pub socket: PathBuf,
    /// Its log.
    pub log: PathBuf,
    /// Its certificate (PEM).
    pub cert: PathBuf,
    bin: PathBuf,
    child: Option<Proc>,
}

impl AgentProc {
    /// `tessera-agent --config <its config>`.
    pub fn cli(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--config").arg(&self.config);
        c
    }

    /// Starts `tessera-agent run`.
    pub fn start(&mut self) -> Result<()> {
        self.start_env(&[])
    }

    /// Starts `tessera-agent run` with extra environment variables (`MALLOC_ARENA_MAX`, say).
    pub fn start_env(&mut self, env: &[(&str, &str)]) -> Result<()> {
        let mut cmd = self.cli();
        cmd.arg("run").env(
            "TESSERA_LOG",
            std::env::var("TESSERA_TEST_LOG").unwrap_or_else(|_| "info".into()),
        );
        // After the default filter, so that a test's own TESSERA_LOG wins.
        cmd.envs(env.iter().copied());
        self.child = Some(Proc::spawn(&mut cmd, &self.log)?);
        Ok(())
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        self.child = None;
    }

    /// Sets `broker.batch_rewrap = false` in its configuration (before it starts): it announces no capability and
    /// drops batched messages, as an agent of a release before batched rewrap.
    pub fn without_batch_rewrap(&self) -> Result<()> {
        let config = std::fs::read_to_string(&self.config)?;
        std::fs::write(
            &self.config,
            config.replacen("[broker]\n", "[broker]\nbatch_rewrap = false\n", 1),
        )?;
        Ok(())
    }

    /// SIGTERM, as a service manager stops it, and waits until it has exited.
    pub fn stop(&mut self) -> Result<()> {
        match self.child.take() {
            Some(mut c) => c.terminate(),
            None => Ok(()),
        }
    }

    /// Whether its process is running.
    pub fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| !c.exited())
    }

    /// The process id while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Proc::id)
    }

    /// `tessera-agent get NAME` through the local API.
    pub fn get(&self, name: &str) -> Result<Output> {
        Ok(Command::new(&self.bin)
            .arg("--socket")
            .arg(&self.socket)
            .args(["get", name])
            .output()?)
    }

    /// `tessera-agent get NAME` on a thread of its own: a workload that waits (on a JIT repair, say) while the
    /// test acts.
    pub fn get_in_background(
        &self,
        name: &str,
    ) -> std::thread::JoinHandle<std::io::Result<Output>> {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--socket").arg(&self.socket).args(["get", name]);
        std::thread::spawn(move || cmd.output())
    }

    /// The credential's value, or `None` when `get` fails.
    pub fn value(&self, name: &str) -> Result<Option<String>> {
        let out = self.get(name)?;
        Ok(out
            .status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim_end().to_owned()))
    }

    /// What the local API lists: name → (credential id, version).
    pub fn inventory(&self) -> Result<std::collections::BTreeMap<String, (String, u64)>> {
        Ok(self
            .listed()?
            .into_iter()
            .map(|(name, id, version)| (name, (id, version)))
            .collect())
    }

    /// What the local API lists, entry by entry (name, credential id, version): two entries under one name stay two.
    pub fn listed(&self) -> Result<Vec<(String, String, u64)>> {
        let out = run(Command::new(&self.bin)
            .arg("--socket")
            .arg(&self.socket)
            .arg("list"))?;
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).map_err(|e| ClusterError::Output {
                what: "tessera-agent list".into(),
                detail: e.to_string(),
            })?;
        Ok(v.as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|c| {
                        Some((
                            c["name"].as_str()?.to_owned(),
                            c["id"].as_str()?.to_owned(),
                            c["version"].as_u64()?,
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The names the local API lists (metadata only).
    pub fn names(&self) -> Result<Vec<String>> {
        Ok(self.inventory()?.into_keys().collect())
    }

    /// How many credentials the local API lists, asked over the socket directly: no process is spawned, so it is
    /// cheap enough to poll every few milliseconds (the crash loop kills the agent at a chosen point this way).
    pub fn held_count(&self) -> Result<usize> {
        use std::io::BufRead as _;
        let mut stream = std::os::unix::net::UnixStream::connect(&self.socket)?;
        stream.write_all(b"{\"op\":\"list\"}\n")?;
        let mut line = String::new();
        std::io::BufReader::new(stream).read_line(&mut line)?;
        let v: serde_json::Value =
            serde_json::from_str(&line).map_err(|e| ClusterError::Output {
                what: "the local API's list".into(),
                detail: e.to_string(),
            })?;
        v["list"]
            .as_array()
            .map(Vec::len)
            .ok_or_else(|| ClusterError::Output {
                what: "the local API's list".into(),
                detail: format!("no list in {}", line.trim_end()),
            })
    }

    /// Its resident memory (`VmRSS`), in kibibytes, while it runs.
    pub fn rss_kib(&self) -> Option<u64> {
        crate::process_stats::rss_kib(self.pid()?)
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}
