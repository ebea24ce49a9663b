//! A real Mosquitto for tests: a free loopback port, a generated configuration with TLS client certificates
//! (`require_certificate`, `use_identity_as_username`) and the pattern ACL from `topics::mosquitto_acl`, and
//! certificate files for agents and services. The broker is killed when the handle drops.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tessera_proto::cert::{EnrollmentRequest, IdentityKey, OrgCa, Validity};
use tessera_proto::envelope::WrapPrivateKey;
use tessera_proto::ids::AgentId;
use tessera_proto::topics;

/// Unix seconds now.
pub fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// Writes `der` as a PEM file.
pub fn pem_file(dir: &Path, name: &str, tag: &str, der: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, pem::encode(&pem::Pem::new(tag, der))).unwrap();
    path
}

/// A client identity on disk: certificate and key PEM files.
#[derive(Debug)]
pub struct Identity {
    /// Certificate PEM file.
    pub cert: PathBuf,
    /// Key PEM file.
    pub key: PathBuf,
}

/// Writes a certificate and its key as PEM files.
pub fn write_identity(dir: &Path, name: &str, cert_der: &[u8], key: &IdentityKey) -> Identity {
    let cert = pem_file(dir, &format!("{name}.crt"), "CERTIFICATE", cert_der);
    let key_path = dir.join(format!("{name}.key"));
    key.to_pkcs8_pem()
        .unwrap()
        .expose(|k| std::fs::write(&key_path, k))
        .unwrap();
    Identity {
        cert,
        key: key_path,
    }
}

/// A fresh agent certificate (and key) from `ca`, valid for a day.
pub fn agent_identity(dir: &Path, ca: &OrgCa, id: &str) -> Identity {
    let key = IdentityKey::generate().unwrap();
    let wrap = WrapPrivateKey::generate().unwrap();
    let req = EnrollmentRequest::new(
        AgentId::new(id).unwrap(),
        &key,
        wrap.public_key(),
        BTreeMap::new(),
        now(),
    )
    .unwrap();
    let der = ca.issue_agent(&req, Validity::days_from(now(), 1)).unwrap();
    write_identity(dir, id, &der, &key)
}

/// A fresh service certificate for 127.0.0.1 and localhost.
pub fn service_identity(dir: &Path, ca: &OrgCa, name: &str) -> Identity {
    let key = IdentityKey::generate().unwrap();
    let der = ca
        .issue_service(
            name,
            &["localhost"],
            &[IpAddr::V4(Ipv4Addr::LOCALHOST)],
            key.public_key(),
            Validity::days_from(now(), 1),
        )
        .unwrap();
    write_identity(dir, name, &der, &key)
}

/// A Mosquitto broker on a free loopback port, stopped on drop.
#[derive(Debug)]
pub struct Broker {
    child: Child,
    /// The TLS port on 127.0.0.1.
    pub port: u16,
    /// The CA file the broker trusts (the org CA).
    pub ca_file: PathBuf,
    /// The broker's log (stderr).
    pub log: PathBuf,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a broker trusting `ca`, with `relay_user` as the relay.
pub fn start_broker(dir: &Path, ca: &OrgCa, relay_user: &str) -> Broker {
    start_broker_with(dir, ca, &[relay_user])
}

/// Starts a broker whose ACL gives `relay_users` the relay's rights.
pub fn start_broker_with(dir: &Path, ca: &OrgCa, relay_users: &[&str]) -> Broker {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ca_file = pem_file(dir, "ca.crt", "CERTIFICATE", ca.cert_der());
    let server = service_identity(dir, ca, "broker");
    let acl = dir.join("acl");
    std::fs::write(&acl, topics::mosquitto_acl(relay_users)).unwrap();
    let whoami = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "user {user}\nmax_packet_size 2097152\nper_listener_settings false\npersistence false\nlog_dest stderr\nlog_type all\n\
             listener {port} 127.0.0.1\ncafile {ca}\ncertfile {cert}\nkeyfile {key}\n\
             require_certificate true\nuse_identity_as_username true\nacl_file {acl}\n",
            user = whoami.trim(),
            ca = ca_file.display(),
            cert = server.cert.display(),
            key = server.key.display(),
            acl = acl.display(),
        ),
    )
    .unwrap();
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("mosquitto.log")).unwrap())
        .spawn()
        .expect("mosquitto must be installed (Debian package mosquitto)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "mosquitto did not start listening on {port}"
        );
        sleep(Duration::from_millis(50));
    }
    Broker {
        child,
        port,
        ca_file,
        log: dir.join("mosquitto.log"),
    }
}
