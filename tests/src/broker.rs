//! A real Mosquitto for tests: a free loopback port, a generated configuration with TLS client certificates
//! (`require_certificate`, `use_identity_as_username`) and the pattern ACL, both from `broker_config::MosquittoSite`
//! (what `tessera broker-config mosquitto` prints), and
//! certificate files for agents and services. The broker is killed when the handle drops.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tessera_proto::broker_config::MosquittoSite;
use tessera_proto::cert::{EnrollmentRequest, IdentityKey, OrgCa, Validity};
use tessera_proto::envelope::WrapPrivateKey;
use tessera_proto::ids::AgentId;

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
    child: Option<Child>,
    conf: PathBuf,
    /// The TLS port on 127.0.0.1.
    pub port: u16,
    /// The CA file the broker trusts (the org CA).
    pub ca_file: PathBuf,
    /// The broker's log (stderr).
    pub log: PathBuf,
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Why a broker did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// `mosquitto` is not installed.
    #[error(
        "mosquitto is not installed (Debian: apt-get install mosquitto mosquitto-clients): {0}"
    )]
    NotInstalled(std::io::Error),
    /// A file could not be written.
    #[error("broker files: {0}")]
    Io(#[from] std::io::Error),
    /// It started but never listened.
    #[error("mosquitto did not start listening on 127.0.0.1:{port}; see {log}")]
    NotListening {
        /// The port.
        port: u16,
        /// Its log.
        log: String,
    },
}

/// A free loopback TCP port.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts a broker trusting `ca`, with `relay_user` as the relay.
pub fn start_broker(dir: &Path, ca: &OrgCa, relay_user: &str) -> Broker {
    start_broker_with(dir, ca, &[relay_user])
}

/// Starts a broker whose ACL gives `relay_users` the relay's rights.
pub fn start_broker_with(dir: &Path, ca: &OrgCa, relay_users: &[&str]) -> Broker {
    let ca_file = pem_file(dir, "ca.crt", "CERTIFICATE", ca.cert_der());
    let server = service_identity(dir, ca, "broker");
    Broker::start(dir, &ca_file, &server, relay_users).unwrap()
}

impl Broker {
    /// Starts Mosquitto in `dir`: TLS on a free port with `server` as its identity, clients must present a
    /// certificate from `ca_file` and are named by it, and the pattern ACL confines each agent to its own topics.
    pub fn start(
        dir: &Path,
        ca_file: &Path,
        server: &Identity,
        relay_users: &[&str],
    ) -> Result<Self, BrokerError> {
        let port = free_port()?;
        let acl = dir.join("acl");
        let whoami = Command::new("id").arg("-un").output()?.stdout;
        let site = MosquittoSite {
            port,
            bind: Some("127.0.0.1".to_owned()),
            ca_file: ca_file.display().to_string(),
            cert_file: server.cert.display().to_string(),
            key_file: server.key.display().to_string(),
            acl_file: acl.display().to_string(),
            user: String::from_utf8_lossy(&whoami).trim().to_owned(),
            relay_users: relay_users.iter().map(|u| (*u).to_owned()).collect(),
        };
        std::fs::write(&acl, site.acl())?;
        let conf = dir.join("mosquitto.conf");
        // The configuration `tessera broker-config mosquitto` prints, and the test's own: no persistence, a log.
        std::fs::write(
            &conf,
            format!(
                "{}persistence false\nlog_dest stderr\nlog_type all\n",
                site.conf()
            ),
        )?;
        let mut broker = Self {
            child: None,
            conf,
            port,
            ca_file: ca_file.to_path_buf(),
            log: dir.join("mosquitto.log"),
        };
        broker.run()?;
        Ok(broker)
    }

    /// Runs Mosquitto with a configuration file written elsewhere (`deploy/mosquitto/`, say) that listens on
    /// 127.0.0.1:`port` and trusts `ca_file`.
    pub fn start_conf(
        dir: &Path,
        conf: &Path,
        port: u16,
        ca_file: &Path,
    ) -> Result<Self, BrokerError> {
        let mut broker = Self {
            child: None,
            conf: conf.to_path_buf(),
            port,
            ca_file: ca_file.to_path_buf(),
            log: dir.join("mosquitto.log"),
        };
        broker.run()?;
        Ok(broker)
    }

    fn run(&mut self) -> Result<(), BrokerError> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(BrokerError::NotInstalled)?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() > deadline {
                return Err(BrokerError::NotListening {
                    port: self.port,
                    log: self.log.display().to_string(),
                });
            }
            sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Kills the broker (SIGKILL: sessions and queued messages are lost, as in a crash without persistence).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn conf_without_crl(&self) -> Result<String, BrokerError> {
        let conf = std::fs::read_to_string(&self.conf)?;
        let mut kept = String::new();
        for l in conf.lines().filter(|l| !l.starts_with("crlfile ")) {
            kept.push_str(l);
            kept.push('\n');
        }
        Ok(kept)
    }

    /// Makes the broker check client certificates against the CRL in `crl_pem` (Mosquitto's `crlfile`), and restarts
    /// it so that it reads it.
    pub fn set_crl(&mut self, crl_pem: &Path) -> Result<(), BrokerError> {
        let kept = self.conf_without_crl()?;
        std::fs::write(&self.conf, format!("{kept}crlfile {}\n", crl_pem.display()))?;
        self.restart()
    }

    /// Drops the CRL again (and restarts).
    pub fn clear_crl(&mut self) -> Result<(), BrokerError> {
        let kept = self.conf_without_crl()?;
        std::fs::write(&self.conf, kept)?;
        self.restart()
    }

    /// Kills the broker and starts it again on the same port with the same configuration.
    pub fn restart(&mut self) -> Result<(), BrokerError> {
        self.stop();
        self.run()
    }
}
