//! Blue/green rotation of an agent's keys and certificate, on real processes and a real Mosquitto: an operator asks
//! for it (`tessera agents rotate`), the agent queues a renewal request, the offline CA certifies it (`tessera ca
//! renew --due`), the agent validates the green certificate with the broker and the relay and switches, and after the
//! grace period the CA revokes blue. A workload reads a credential throughout and never fails; credentials are
//! delivered to the new key afterwards; the audit trail carries the agent's receipts. An agent whose certificate is
//! short-lived rotates on its own at the configured share of its lifetime.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::too_many_lines
)]

use std::os::unix::fs::MetadataExt as _;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tessera_proto::cert::PinnedCa;
use tessera_proto::statement::RevocationList;
use tessera_system_tests::bins::bin_dir;
use tessera_system_tests::cluster::{wait_for, AgentProc, Cluster};

const WAIT: Duration = Duration::from_secs(60);

fn policy(root: &std::path::Path) -> String {
    format!(
        "[policy.\"*\"]\nuids = [{}]\n",
        std::fs::metadata(root).unwrap().uid()
    )
}

fn wait_renewal(c: &Cluster, agent: &str, state: &str) {
    c.wait_renewal(agent, state, WAIT).unwrap();
}

/// The relay and `edge-1` online, rotating only on request, with `validate_secs`.
fn fleet(tmp: &std::path::Path, validate_secs: u32) -> (Cluster, AgentProc) {
    let mut c = Cluster::new(tmp, &bin_dir(), "").unwrap();
    c.start_relay().unwrap();
    let extra = format!(
        "{}[rotation]\nautomatic = false\nvalidate_secs = {validate_secs}\n",
        policy(tmp)
    );
    let mut a = c.agent("edge-1", &extra).unwrap();
    a.start().unwrap();
    c.wait_state("edge-1", "online", WAIT).unwrap();
    (c, a)
}

/// The serial of an agent certificate (DER), checked against the org CA.
fn serial_of(c: &Cluster, der: &[u8]) -> String {
    PinnedCa::from_der(&c.ca_der().unwrap())
        .unwrap()
        .verify_agent(
            der,
            tessera_system_tests::broker::now(),
            &RevocationList::empty(),
        )
        .unwrap()
        .serial
        .to_string()
}

/// The serial of the certificate `agent` registered with, as the relay lists it.
fn registered_serial(c: &Cluster, agent: &str) -> String {
    let agents = c.op_json(&["agents", "ls"]).unwrap();
    let v = agents
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == agent)
        .unwrap()
        .clone();
    serial_of(
        c,
        &tessera_proto::b64_decode(v["cert"].as_str().unwrap()).unwrap(),
    )
}

/// The serial of the certificate `a` was enrolled with.
fn cert_serial(c: &Cluster, a: &AgentProc) -> String {
    serial_of(
        c,
        &tessera_proto::pem_files::first_cert(&std::fs::read(&a.cert).unwrap()).unwrap(),
    )
}

fn holds(a: &AgentProc, name: &str, value: &str) {
    wait_for(&format!("{} to hold {name}", a.id.as_str()), WAIT, || {
        Ok(a.value(name)?.as_deref() == Some(value))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", a.log()));
}

/// Reads `name` from `a`'s local API in a loop until stopped: (reads, failures).
struct Reader {
    stop: Arc<AtomicBool>,
    reads: Arc<AtomicUsize>,
    failures: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Reader {
    fn start(a: &AgentProc, name: &str, value: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let reads = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(AtomicUsize::new(0));
        let (s, r, f) = (stop.clone(), reads.clone(), failures.clone());
        let (bin_cfg, socket) = (a.config.clone(), a.socket.clone());
        let (name, value) = (name.to_owned(), value.to_owned());
        let bin = bin_dir().join("tessera-agent");
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let out = std::process::Command::new(&bin)
                    .arg("--config")
                    .arg(&bin_cfg)
                    .arg("--socket")
                    .arg(&socket)
                    .args(["get", &name])
                    .output()
                    .unwrap();
                r.fetch_add(1, Ordering::Relaxed);
                if !out.status.success() || String::from_utf8_lossy(&out.stdout).trim_end() != value
                {
                    f.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Self {
            stop,
            reads,
            failures,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        (
            self.reads.load(Ordering::Relaxed),
            self.failures.load(Ordering::Relaxed),
        )
    }
}

#[test]
fn an_agent_rotates_its_keys_on_request_while_a_workload_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let (c, mut a1) = fleet(tmp.path(), 20);
    let mut a2 = c.agent("edge-2", &policy(tmp.path())).unwrap();
    a2.start().unwrap();
    c.wait_state("edge-2", "online", WAIT).unwrap();
    c.put("db", "hunter2\n", &[]).unwrap();
    holds(&a1, "db", "hunter2");
    holds(&a2, "db", "hunter2");
    let blue = cert_serial(&c, &a1);
    assert_eq!(registered_serial(&c, "edge-1"), blue);

    let reader = Reader::start(&a1, "db", "hunter2");

    // The operator asks; the agent queues a renewal request; listing it does not certify it.
    c.op(&["agents", "rotate", "edge-1"]).unwrap();
    wait_renewal(&c, "edge-1", "requested");
    let listed = c
        .op_json(&["ca", "renew", "--dir", c.ca_dir().to_str().unwrap()])
        .unwrap();
    assert!(
        listed[0]["outcome"].as_str().unwrap().contains("--due"),
        "{listed}"
    );
    // The CA certifies it and pushes the certificate; the agent validates it and switches.
    let renewed = c
        .op_json(&[
            "ca",
            "renew",
            "--dir",
            c.ca_dir().to_str().unwrap(),
            "--due",
        ])
        .unwrap();
    assert!(
        renewed[0]["outcome"].as_str().unwrap().contains("pushed"),
        "{renewed}"
    );
    wait_renewal(&c, "edge-1", "completed");
    let green = registered_serial(&c, "edge-1");
    assert_ne!(green, blue, "the relay sees the green certificate");
    assert!(
        a1.log().contains("switched to the renewed certificate"),
        "{}",
        a1.log()
    );
    // No full fan-out: the agent came back warm (a rotation is not key_regenerated).
    let registered = c.audit("agent_registered").unwrap();
    assert!(
        registered
            .iter()
            .filter(|e| e["data"]["agent"] == "edge-1")
            .all(|e| e["data"]["mode"] != "KeyRegenerated"),
        "{registered:?}"
    );

    // Both certificates are live during the grace period: a credential put now reaches the agent.
    c.put("api", "tok-1\n", &["edge-1", "edge-2"]).unwrap();
    holds(&a1, "api", "tok-1");

    // Grace over: the CA revokes blue, the relay forwards the list, the agent destroys its old wrap key.
    let retired = c
        .op_json(&[
            "ca",
            "renew",
            "--dir",
            c.ca_dir().to_str().unwrap(),
            "--due",
            "--grace-secs",
            "0",
        ])
        .unwrap();
    assert!(
        retired[0]["outcome"].as_str().unwrap().contains("revoked"),
        "{retired}"
    );
    wait_for("edge-1 to destroy its old wrap key", WAIT, || {
        Ok(a1.log().contains("previous wrap key is destroyed"))
    })
    .unwrap();
    let list: serde_json::Value =
        serde_json::from_slice(&std::fs::read(c.operator_dir().join("revocations.json")).unwrap())
            .unwrap();
    let body: RevocationList = serde_json::from_slice(
        &tessera_proto::b64_decode(list["payload"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    assert!(body.revoked.iter().any(|s| s.as_str() == blue));

    // Sealed to green only now, and delivered.
    c.put("late", "after-rotation\n", &[]).unwrap();
    holds(&a1, "late", "after-rotation");

    let (reads, failures) = reader.finish();
    assert!(reads > 20, "the workload read {reads} times");
    assert_eq!(
        failures, 0,
        "{failures} of {reads} reads failed during the rotation"
    );

    // A restart comes back with green, warm, and serves what it held.
    a1.kill();
    a1.start().unwrap();
    c.wait_state("edge-1", "online", WAIT).unwrap();
    holds(&a1, "db", "hunter2");
    assert_eq!(registered_serial(&c, "edge-1"), green);

    // Every step audited; every recorded delivery, purge and rotation carries a receipt that verifies.
    for kind in [
        "rotation_requested",
        "renewal_requested",
        "renewal_certified",
        "rotation_completed",
    ] {
        assert!(!c.audit(kind).unwrap().is_empty(), "no {kind} in the audit");
    }
    let verify = c.op_json(&["audit", "verify"]).unwrap();
    assert_eq!(verify["ok"], true, "{verify}");
    assert!(verify["receipts"].as_u64().unwrap() >= 6, "{verify}");
    let show = c.op_json(&["cred", "show", "db"]).unwrap();
    assert_eq!(show["without_valid_receipt"], 0, "{show}");
}

#[test]
fn a_short_lived_certificate_is_rotated_automatically_at_its_share_of_lifetime() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = Cluster::new(tmp.path(), &bin_dir(), "").unwrap();
    c.start_relay().unwrap();
    // A one-hour certificate renewed at 1% of its lifetime: due as soon as the agent runs.
    let extra = format!(
        "{}[rotation]\nrenew_at_percent = 1\nvalidate_secs = 20\n",
        policy(tmp.path())
    );
    let mut a = short_lived_agent(&c, "edge-1", &extra);
    a.start().unwrap();
    wait_renewal(&c, "edge-1", "requested");
    c.op(&[
        "ca",
        "renew",
        "--dir",
        c.ca_dir().to_str().unwrap(),
        "--due",
        "--hours",
        "1",
    ])
    .unwrap();
    wait_renewal(&c, "edge-1", "completed");
    assert!(a.log().contains("switched to the renewed certificate"));
    c.op(&["audit", "verify"]).unwrap();
}

/// An agent enrolled with a one-hour certificate (`ca issue-agent --hours 1`).
fn short_lived_agent(c: &Cluster, id: &str, extra: &str) -> AgentProc {
    let a = c.agent(id, extra).unwrap();
    let req = a.dir.join("request.json");
    tessera_system_tests::cluster::run(
        c.operator_cmd()
            .args(["ca", "issue-agent", "--replace", "--hours", "1", "--dir"])
            .arg(c.ca_dir())
            .arg(&req)
            .arg("--out")
            .arg(&a.cert),
    )
    .unwrap();
    tessera_system_tests::cluster::run(a.cli().arg("install-cert").arg(&a.cert)).unwrap();
    a
}

/// A CRL signed by the org CA in `ca_dir` revoking `serial` (hex), written as PEM to `path`.
fn write_crl(ca_dir: &std::path::Path, serial: &str, path: &std::path::Path) {
    let org = tessera_operator::ca::load(ca_dir).unwrap();
    let key = org.key().to_pkcs8_der().unwrap();
    let key = key
        .expose(|k| {
            rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
                &rustls::pki_types::PrivatePkcs8KeyDer::from(k),
                &rcgen::PKCS_ECDSA_P256_SHA256,
            )
        })
        .unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_der(
        &rustls::pki_types::CertificateDer::from(org.cert_der()),
        key,
    )
    .unwrap();
    let bytes: Vec<u8> = (0..serial.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&serial[i..i + 2], 16).unwrap())
        .collect();
    let now = time::OffsetDateTime::now_utc();
    let crl = rcgen::CertificateRevocationListParams {
        this_update: now - time::Duration::minutes(5),
        next_update: now + time::Duration::days(1),
        crl_number: rcgen::SerialNumber::from_slice(&[1]),
        issuing_distribution_point: None,
        revoked_certs: vec![rcgen::RevokedCertParams {
            serial_number: rcgen::SerialNumber::from_slice(&bytes),
            revocation_time: now - time::Duration::minutes(1),
            reason_code: None,
            invalidity_date: None,
        }],
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    }
    .signed_by(&issuer)
    .unwrap();
    std::fs::write(path, crl.pem().unwrap()).unwrap();
}

#[test]
fn a_green_certificate_the_broker_refuses_is_discarded_blue_kept_and_the_operator_alerted() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut c, mut a) = fleet(tmp.path(), 5);
    c.put("db", "hunter2\n", &[]).unwrap();
    holds(&a, "db", "hunter2");
    let blue = cert_serial(&c, &a);

    // The agent asks; while it is down the CA certifies the request; the broker is then given a CRL that revokes
    // exactly the new certificate (a broker whose trust store does not accept it).
    c.op(&["agents", "rotate", "edge-1"]).unwrap();
    wait_renewal(&c, "edge-1", "requested");
    a.kill();
    c.op(&[
        "ca",
        "renew",
        "--dir",
        c.ca_dir().to_str().unwrap(),
        "--due",
    ])
    .unwrap();
    let registry: serde_json::Value =
        serde_json::from_slice(&std::fs::read(c.ca_dir().join("issued.json")).unwrap()).unwrap();
    let green = registry["certs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["renews"] == blue.as_str())
        .unwrap()["serial"]
        .as_str()
        .unwrap()
        .to_owned();
    let crl = tmp.path().join("broker.crl");
    write_crl(&c.ca_dir(), &green, &crl);
    c.broker.set_crl(&crl).unwrap();

    // Back up: the relay sends the certificate again at registration; the agent validates it, the broker refuses
    // it, and after validate_secs the agent goes back to blue and reports the failure.
    a.start().unwrap();
    wait_renewal(&c, "edge-1", "failed");
    assert!(
        a.log().contains("failed validation: kept the current one"),
        "{}",
        a.log()
    );
    c.wait_state("edge-1", "online", WAIT).unwrap();
    assert_eq!(registered_serial(&c, "edge-1"), blue);
    holds(&a, "db", "hunter2");
    let alerts = c.alerts().unwrap();
    assert!(
        alerts
            .iter()
            .any(|al| al["kind"] == "agent_rotation_failed" && al["subject"] == "agent=edge-1"),
        "{alerts:?}"
    );
    assert!(!c.audit("rotation_failed").unwrap().is_empty());
    // Still fully served on blue: a new credential arrives.
    c.put("api", "tok\n", &[]).unwrap();
    holds(&a, "api", "tok");

    // The broker fixed, a new rotation (new keys) goes through.
    c.broker.clear_crl().unwrap();
    c.wait_state("edge-1", "online", WAIT).unwrap();
    c.op(&["agents", "rotate", "edge-1"]).unwrap();
    wait_renewal(&c, "edge-1", "requested");
    c.op(&[
        "ca",
        "renew",
        "--dir",
        c.ca_dir().to_str().unwrap(),
        "--due",
    ])
    .unwrap();
    wait_renewal(&c, "edge-1", "completed");
    let now_green = registered_serial(&c, "edge-1");
    assert!(now_green != blue && now_green != green);
    c.op(&["audit", "verify"]).unwrap();
}
