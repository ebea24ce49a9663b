//! Harness for the agent's wire tests: a real Mosquitto (TLS, client certificates, pattern ACL), the real
//! `tessera-agent` binary enrolled through its CLI, and the test acting as the relay on the wire.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code, unreachable_pub)]

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
use tessera_proto::cert::{AgentCertificate, EnrollmentRequest, OrgCa, Validity};
use tessera_proto::envelope::Envelope;
use tessera_proto::ids::AgentId;
use tessera_proto::statement::RevocationList;
use tessera_proto::topics;
use tessera_proto::wire::{self, AgentState, Down, Status, Up};
use tessera_system_tests::broker::{now, pem_file, service_identity, start_broker, Broker};
use tokio::sync::mpsc;

pub const BIN: &str = env!("CARGO_BIN_EXE_tessera-agent");
pub const WAIT: Duration = Duration::from_secs(15);

pub use tessera_system_tests::org::TestOrg as Org;

/// The test playing the relay on the wire, with a service certificate the ACL gives the relay's rights.
pub struct WireRelay {
    client: AsyncClient,
    rx: mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    statuses: VecDeque<(String, Vec<u8>)>,
    ups: VecDeque<(String, Vec<u8>)>,
    /// Every byte the relay received, to assert no plaintext ever reached it.
    pub received: Vec<u8>,
}

fn tls(ca_der: &[u8], cert_der: Vec<u8>, key_pkcs8: Vec<u8>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(ca_der.to_vec()))
        .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(
                vec![rustls::pki_types::CertificateDer::from(cert_der)],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key_pkcs8.into()),
            )
            .unwrap(),
    )
}

impl WireRelay {
    pub async fn connect(broker: &Broker, dir: &Path, ca: &OrgCa) -> Self {
        let ident = service_identity(dir, ca, "relay-1");
        let cert = pem::parse(std::fs::read(&ident.cert).unwrap())
            .unwrap()
            .into_contents();
        let key = pem::parse(std::fs::read(&ident.key).unwrap())
            .unwrap()
            .into_contents();
        let mut opts = MqttOptions::new("relay-1", "127.0.0.1", broker.port);
        opts.set_keep_alive(Duration::from_secs(10))
            .set_max_packet_size(4 << 20, 4 << 20)
            .set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls(
                ca.cert_der(),
                cert,
                key,
            ))));
        let (client, mut eventloop) = AsyncClient::new(opts, 64);
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let _ = tx.send((p.topic.clone(), p.payload.to_vec()));
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = ready_tx.send(());
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        client
            .subscribe("tessera/v1/agents/+/up", QoS::AtLeastOnce)
            .await
            .unwrap();
        client
            .subscribe("tessera/v1/agents/+/status", QoS::AtLeastOnce)
            .await
            .unwrap();
        for _ in 0..2 {
            tokio::time::timeout(WAIT, ready_rx.recv())
                .await
                .expect("relay subscription")
                .unwrap();
        }
        Self {
            client,
            rx,
            statuses: VecDeque::new(),
            ups: VecDeque::new(),
            received: Vec::new(),
        }
    }

    async fn pull(&mut self, within: Duration) -> bool {
        match tokio::time::timeout(within, self.rx.recv()).await {
            Ok(Some((topic, payload))) => {
                self.received.extend_from_slice(&payload);
                if topic.ends_with("/status") {
                    self.statuses.push_back((topic, payload));
                } else {
                    self.ups.push_back((topic, payload));
                }
                true
            }
            _ => false,
        }
    }

    /// The next message `agent` sent on its up topic.
    pub async fn next_up(&mut self, agent: &AgentId) -> Up {
        let topic = topics::agent_up(agent);
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(i) = self.ups.iter().position(|(t, _)| *t == topic) {
                let (_, payload) = self.ups.remove(i).unwrap();
                return wire::decode::<Up>(&payload).unwrap();
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(
                self.pull(left).await,
                "no message from {} within {WAIT:?}",
                agent.as_str()
            );
        }
    }

    /// Waits until `agent`'s status is `state`.
    pub async fn wait_status(&mut self, agent: &AgentId, state: AgentState) {
        let topic = topics::agent_status(agent);
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            while let Some((t, payload)) = self.statuses.pop_front() {
                if t == topic && wire::decode::<Status>(&payload).unwrap().state == state {
                    return;
                }
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(
                self.pull(left).await,
                "{} never reported {state:?}",
                agent.as_str()
            );
        }
    }

    pub async fn send(&self, agent: &AgentId, down: &Down) {
        self.send_raw(agent, wire::encode(down).unwrap()).await;
    }

    pub async fn send_raw(&self, agent: &AgentId, bytes: Vec<u8>) {
        self.client
            .publish(topics::agent_down(agent), QoS::AtLeastOnce, false, bytes)
            .await
            .unwrap();
    }
}

/// One agent: its directory, configuration and (when running) process.
pub struct Agent {
    pub id: AgentId,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub cert: Option<AgentCertificate>,
    child: Option<Child>,
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Agent {
    /// Writes a configuration for an agent on `broker`.
    pub fn new(root: &Path, id: &str, broker: &Broker, extra: &str) -> Self {
        let dir = root.join(id);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("agent.sock");
        let config = dir.join("agent.toml");
        std::fs::write(
            &config,
            format!(
                "state_dir = \"{state}\"\n[broker]\nhost = \"127.0.0.1\"\nport = {port}\nreconnect_min_ms = 100\nreconnect_max_ms = 1000\nregister_retry_ms = 3000\n\
                 [socket]\npath = \"{socket}\"\ngid = 65534\njit_timeout_ms = 3000\n{extra}",
                state = dir.join("state").display(),
                port = broker.port,
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
            child: None,
        }
    }

    /// Runs `tessera-agent --config <cfg> args`.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
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
        let child = Command::new(BIN)
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
        let mut cmd = Command::new(BIN);
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
pub struct World {
    pub dir: tempfile::TempDir,
    pub org: Org,
    pub broker: Broker,
    pub relay: WireRelay,
}

impl World {
    pub async fn new() -> Self {
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
            dir,
            org,
            broker,
            relay,
        }
    }

    /// An enrolled, running agent that has registered; the relay acknowledged with nothing to backfill.
    pub async fn online_agent(&mut self, id: &str, extra: &str) -> Agent {
        let mut agent = Agent::new(self.dir.path(), id, &self.broker, extra);
        std::fs::set_permissions(
            &agent.dir,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        agent.enroll(&self.org);
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
                }),
            )
            .await;
        self.relay.wait_status(&agent.id, AgentState::Online).await;
        agent
    }
}

/// The envelope's plaintext never appears in what the relay received.
pub fn assert_never_seen(relay: &WireRelay, secret: &str) {
    assert!(
        !relay
            .received
            .windows(secret.len())
            .any(|w| w == secret.as_bytes()),
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
