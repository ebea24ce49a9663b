//! An agent on the wire that is not `tessera-agent`: enrolled with the org CA like any agent (so the relay and the
//! broker accept it), then driven by the test. The hostile-peer scenario makes it answer rewraps with a plaintext
//! of its choosing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

use std::collections::BTreeMap;
use std::time::Duration;

use rumqttc::{AsyncClient, LastWill, MqttOptions, QoS};
use tessera_proto::cert::{
    AgentCertificate, EnrollmentRequest, IdentityKey, PinnedCa, RenewalRequest,
};
use tessera_proto::envelope::WrapPrivateKey;
use tessera_proto::ids::AgentId;
use tessera_proto::receipt::{Receipt, ReceiptBody, ReceiptFact};
use tessera_proto::statement::RevocationList;
use tessera_proto::topics;
use tessera_proto::wire::{self, AgentState, Down, Register, RegistrationMode, Status, Up};

use crate::broker::{now, write_identity, Identity};
use crate::cluster::{run, Cluster};

/// The double.
pub struct WireAgent {
    /// Its id.
    pub id: AgentId,
    /// Its wrap key.
    pub wrap: WrapPrivateKey,
    /// Its certificate, DER.
    pub cert: Vec<u8>,
    /// Its certificate, verified against the org CA.
    pub certificate: AgentCertificate,
    identity: Identity,
    key: IdentityKey,
    client: Option<AsyncClient>,
    rx: Option<crate::mqtt::Inbox>,
}

impl std::fmt::Debug for WireAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WireAgent")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

fn status(state: AgentState) -> Vec<u8> {
    wire::encode(&Status { state, at: now() }).unwrap()
}

impl WireAgent {
    /// Keys, an enrolment request, and a certificate issued by `tessera ca issue-agent`.
    pub fn enroll(c: &Cluster, id: &str) -> Self {
        let dir = c.root().join(id);
        std::fs::create_dir_all(&dir).unwrap();
        let key = IdentityKey::generate().unwrap();
        let wrap = WrapPrivateKey::generate().unwrap();
        let aid = AgentId::new(id).unwrap();
        let req =
            EnrollmentRequest::new(aid.clone(), &key, wrap.public_key(), BTreeMap::new(), now())
                .unwrap();
        let req_path = dir.join("request.json");
        std::fs::write(&req_path, serde_json::to_vec(&req).unwrap()).unwrap();
        let cert_path = dir.join("agent.pem");
        run(c
            .operator_cmd()
            .args(["ca", "issue-agent", "--dir"])
            .arg(c.ca_dir())
            .arg(&req_path)
            .arg("--out")
            .arg(&cert_path))
        .unwrap();
        let cert = pem::parse(std::fs::read(&cert_path).unwrap())
            .unwrap()
            .into_contents();
        let identity = write_identity(&dir, "identity", &cert, &key);
        let certificate = PinnedCa::from_der(&c.ca_der().unwrap())
            .unwrap()
            .verify_agent(&cert, now(), &RevocationList::empty())
            .unwrap();
        Self {
            id: aid,
            wrap,
            cert,
            certificate,
            identity,
            key,
            client: None,
            rx: None,
        }
    }

    /// Its receipt of `fact`, signed now with its identity key (as an honest agent's acknowledgement carries).
    pub fn receipt(&self, fact: ReceiptFact) -> Receipt {
        Receipt::sign(
            &ReceiptBody::new(
                self.id.clone(),
                self.certificate.serial.clone(),
                now(),
                fact,
            ),
            &self.key,
        )
        .unwrap()
    }

    /// A renewal request for new keys, signed by its certified key and the new one (as `tessera-agent` sends it).
    pub fn renewal(&self) -> RenewalRequest {
        let green = IdentityKey::generate().unwrap();
        let wrap = WrapPrivateKey::generate().unwrap();
        RenewalRequest::new(
            &self.certificate,
            &self.key,
            &green,
            wrap.public_key(),
            now(),
        )
        .unwrap()
    }

    /// Connects to the broker on `port` as itself, with the Last Will every agent has, and subscribes to its down
    /// topic.
    pub async fn connect(&mut self, port: u16, ca_der: &[u8]) {
        let cert = pem::parse(std::fs::read(&self.identity.cert).unwrap())
            .unwrap()
            .into_contents();
        let key = pem::parse(std::fs::read(&self.identity.key).unwrap())
            .unwrap()
            .into_contents();
        let tls = crate::mqtt::client_tls(ca_der, cert, key).unwrap();
        let mut opts = MqttOptions::new(self.id.as_str(), "127.0.0.1", port);
        opts.set_last_will(LastWill::new(
            topics::agent_status(&self.id),
            status(AgentState::Offline),
            QoS::AtLeastOnce,
            true,
        ));
        let (client, rx) = crate::mqtt::connect(opts, tls, &[topics::agent_down(&self.id)])
            .await
            .unwrap();
        self.client = Some(client);
        self.rx = Some(rx);
    }

    /// Enrolled as `id`, connected to `c`'s broker and registered (first registration): returns once the relay
    /// acknowledged it (other messages before the acknowledgement are dropped).
    pub async fn registered(c: &Cluster, id: &str) -> Self {
        let mut a = Self::enroll(c, id);
        a.connect(c.broker.port, &c.ca_der().unwrap()).await;
        a.register().await;
        loop {
            let down = a
                .next_down(Duration::from_secs(30))
                .await
                .expect("a registration acknowledgement within 30 s");
            if matches!(down, Down::RegisterAck(_)) {
                return a;
            }
        }
    }

    /// Publishes its online status and registers (first registration).
    pub async fn register(&self) {
        self.register_with(RegistrationMode::FirstRegistration, Vec::new())
            .await;
    }

    /// Publishes its online status and registers in `mode`, listing `held`.
    pub async fn register_with(&self, mode: RegistrationMode, held: Vec<wire::Held>) {
        let client = self.client.as_ref().unwrap();
        client
            .publish(
                topics::agent_status(&self.id),
                QoS::AtLeastOnce,
                true,
                status(AgentState::Online),
            )
            .await
            .unwrap();
        self.send(&Up::Register(Register {
            mode,
            cert: self.cert.clone(),
            held,
            agent_version: "wire-agent".into(),
            capabilities: Vec::new(),
        }))
        .await;
    }

    /// Publishes `up` on its up topic.
    pub async fn send(&self, up: &Up) {
        self.client
            .as_ref()
            .unwrap()
            .publish(
                topics::agent_up(&self.id),
                QoS::AtLeastOnce,
                false,
                wire::encode(up).unwrap(),
            )
            .await
            .unwrap();
    }

    /// The next message on its down topic within `within`.
    pub async fn next_down(&mut self, within: Duration) -> Option<Down> {
        let rx = self.rx.as_mut()?;
        let (_, bytes) = tokio::time::timeout(within, rx.recv()).await.ok()??;
        wire::decode::<Down>(&bytes).ok()
    }

    /// Says it is going offline and disconnects.
    pub async fn disconnect(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = client
                .publish(
                    topics::agent_status(&self.id),
                    QoS::AtLeastOnce,
                    true,
                    status(AgentState::Offline),
                )
                .await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            let _ = client.disconnect().await;
        }
        self.rx = None;
    }
}
