//! One agent on the wire: a real Mosquitto (TLS, client certificates, pattern ACL) trusting an org made in memory,
//! the real `tessera-agent` binary enrolled through its CLI, and the test acting as the relay with the
//! [`WireRelay`](crate::wire_relay::WireRelay) double. The agent's wire tests and the hostile-relay suite use it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::missing_panics_doc,
    clippy::panic
)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use tessera_proto::cert::{AgentCertificate, EnrollmentRequest, OrgCa, Validity};
use tessera_proto::envelope::Envelope;
use tessera_proto::ids::AgentId;
use tessera_proto::statement::RevocationList;
use tessera_proto::wire::{self, AgentState, Down, Up};

use crate::broker::{now, pem_file, service_identity, start_broker, Broker};

pub use crate::org::TestOrg as Org;

/// The test playing the relay on the wire (the shared double), with sends that fail the test on error.
#[derive(Debug)]
pub struct WireRelay(pub crate::wire_relay::WireRelay);

impl std::ops::Deref for WireRelay {
    type Target = crate::wire_relay::WireRelay;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for WireRelay {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl WireRelay {
    pub async fn connect(broker: &Broker, dir: &Path, ca: &OrgCa) -> Self {
        let ident = service_identity(dir, ca, "relay-1");
        Self(
            crate::wire_relay::WireRelay::connect(broker.port, ca.cert_der(), &ident, "relay-1")
                .await
                .unwrap(),
        )
    }

    pub async fn send(&self, agent: &AgentId, down: &Down) {
        self.0.send(agent, down).await.unwrap();
    }

    pub async fn send_raw(&self, agent: &AgentId, bytes: Vec<u8>) {
        self.0.send_raw(agent, bytes).await.unwrap();
    }

    pub async fn send_retained(&self, agent: &AgentId, down: &Down) {
        self.0.send_retained(agent, down).await.unwrap();
    }
}

/// One agent: its directory, configuration and (when running) process.
#[derive(Debug)]
pub struct Agent {
    pub id: AgentId,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub cert: Option<AgentCertificate>,
    bin: PathBuf,
    child: Option<Child>,
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Agent {
    /// Writes a configuration for an agent (the binary `bin`) on `broker`.
    pub fn new(bin: &Path, root: &Path, id: &str, broker: &Broker, extra: &str) -> Self {
        Self::on_port(
            bin,
            root,
            id,
            broker.port,
            "reconnect_min_ms = 100\nreconnect_max_ms = 1000\n",
            extra,
        )
    }

    /// Writes a configuration for an agent on a broker at 127.0.0.1:`port`, with `broker_keys` (TOML lines) in
    /// its `[broker]` table (the reconnect backoff) and `extra` after its `[socket]` table.
    pub fn on_port(
        bin: &Path,
        root: &Path,
        id: &str,
        port: u16,
        broker_keys: &str,
        extra: &str,
    ) -> Self {
        let dir = root.join(id);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("agent.sock");
        let config = dir.join("agent.toml");
        std::fs::write(
            &config,
            format!(
                "state_dir = \"{state}\"\n[broker]\nhost = \"127.0.0.1\"\nport = {port}\n{broker_keys}register_retry_ms = 3000\n\
                 [socket]\npath = \"{socket}\"\ngid = 65534\njit_timeout_ms = 3000\n{extra}",
                state = dir.join("state").display(),
                socket = socket.display(),
            ),
        )
        .unwrap();
        Self {
            id: AgentId::new(id).unwrap(),
            dir,
            config,
            socket,
            cert: None,
            bin: bin.to_path_buf(),
            child: None,
        }
    }

    /// Runs `tessera-agent --config <cfg> args`.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .unwrap()
    }

    /// Enrols through the CLI and installs a certificate signed by `org`.
    pub fn enroll(&mut self, org: &Org) {
        let ca = pem_file(&self.dir, "org-ca.pem", "CERTIFICATE", org.ca.cert_der());
        let req = self.dir.join("request.json");
        let out = self.cli(&[
            "enroll",
            "--agent-id",
            self.id.as_str(),
            "--ca",
            ca.to_str().unwrap(),
            "--request-out",
            req.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "enroll: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let request: EnrollmentRequest =
            serde_json::from_slice(&std::fs::read(&req).unwrap()).unwrap();
        let der = org
            .ca
            .issue_agent(&request, Validity::days_from(now() - 60, 30))
            .unwrap();
        let cert = pem_file(&self.dir, "agent.pem", "CERTIFICATE", &der);
        let out = self.cli(&["install-cert", cert.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "install-cert: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.cert = Some(
            org.ca
                .pinned()
                .verify_agent(&der, now(), &RevocationList::empty())
                .unwrap(),
        );
    }

    pub fn cert(&self) -> &AgentCertificate {
        self.cert.as_ref().unwrap()
    }

    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("agent.log"))
            .unwrap();
        let child = Command::new(&self.bin)
            .arg("--config")
            .arg(&self.config)
            .arg("run")
            .env(
                "TESSERA_LOG",
                std::env::var("TESSERA_TEST_LOG").unwrap_or_else(|_| "debug".into()),
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }

    /// `tessera-agent get` as `uid` (None: as ourselves).
    pub fn get_as(&self, uid: Option<u32>, args: &[&str]) -> Output {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--socket").arg(&self.socket).args(args);
        if let Some(uid) = uid {
            std::os::unix::process::CommandExt::uid(&mut cmd, uid);
            std::os::unix::process::CommandExt::gid(&mut cmd, 65534);
        }
        cmd.output().unwrap()
    }
}

/// Whether this process may switch uid for the two-uid tests.
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Everything a test needs.
#[derive(Debug)]
pub struct World {
    pub bin: PathBuf,
    pub dir: tempfile::TempDir,
    pub org: Org,
    pub broker: Broker,
    pub relay: WireRelay,
}

impl World {
    /// A broker, an org and the relay double, for agents run from `bin`.
    pub async fn new(bin: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        // Readable by the unprivileged uid of the two-uid tests (the socket lives below it).
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let org = Org::new();
        let broker = start_broker(dir.path(), &org.ca, "relay-1");
        let relay = WireRelay::connect(&broker, dir.path(), &org.ca).await;
        Self {
            bin: bin.to_path_buf(),
            dir,
            org,
            broker,
            relay,
        }
    }

    /// An agent's directory and configuration, not enrolled.
    pub fn new_agent(&self, id: &str, extra: &str) -> Agent {
        Agent::new(&self.bin, self.dir.path(), id, &self.broker, extra)
    }

    /// An enrolled, running agent that has registered; the relay acknowledged with nothing to backfill.
    pub async fn online_agent(&mut self, id: &str, extra: &str) -> Agent {
        let mut agent = self.enrolled_agent(id, extra);
        self.start_online(&mut agent).await;
        agent
    }

    /// An enrolled agent, not started.
    pub fn enrolled_agent(&self, id: &str, extra: &str) -> Agent {
        let mut agent = self.new_agent(id, extra);
        std::fs::set_permissions(
            &agent.dir,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        agent.enroll(&self.org);
        agent
    }

    /// Starts `agent` and answers its registration with nothing to backfill; returns once it is online.
    pub async fn start_online(&mut self, agent: &mut Agent) {
        agent.start();
        let Up::Register(r) = self.relay.next_up(&agent.id).await else {
            panic!("expected register")
        };
        self.relay
            .send(
                &agent.id,
                &Down::RegisterAck(wire::RegisterAck {
                    mode: r.mode,
                    state: AgentState::Online,
                    backfill: 0,
                    serial: None,
                }),
            )
            .await;
        self.relay.wait_status(&agent.id, AgentState::Online).await;
    }
}

/// The envelope's plaintext never appears in what the relay received.
pub fn assert_never_seen(relay: &WireRelay, secret: &str) {
    assert!(
        !relay.saw(secret.as_bytes()),
        "the relay saw plaintext {secret:?}"
    );
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim_end().to_owned()
}

pub fn envelope_field<'a>(e: &'a mut Envelope, field: &str) -> &'a mut String {
    match field {
        "encrypted_key" => &mut e.encrypted_key,
        "iv" => &mut e.iv,
        "ciphertext" => &mut e.ciphertext,
        _ => &mut e.tag,
    }
}
