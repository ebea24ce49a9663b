//! The story: an org and a fleet, credentials sealed on the operator's machine, backfill by peer rewrap, the 02:00
//! reboot repaired just in time, a compromised relay's swap refused with its alert and audit row, and the lifecycle:
//! an appliance's key rotation and a deletion purged everywhere ([`lifecycle`]).

// `serde_json::Value[&str]` yields `Null` for a missing key: it never panics.
#![allow(clippy::indexing_slicing)]

mod lifecycle;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use tessera_proto::cert::PinnedCa;
use tessera_proto::envelope::seal;
use tessera_proto::secret::SecretPayload;
use tessera_proto::statement::{CredentialStatement, RevocationList, Signed};
use tessera_proto::wire::{CredentialStore, Down};
use tessera_system_tests::cluster::{wait_for, AgentProc, Cluster, ClusterError};
use tessera_system_tests::wire_relay::{WireRelay, WireRelayError};

use crate::say::Say;

/// Why the story stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DemoError {
    /// Running the system.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The compromised relay's client.
    #[error(transparent)]
    Rogue(#[from] WireRelayError),
    /// A file or the runtime.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The system did not behave as the story says it must.
    #[error("unexpected: {0}")]
    Unexpected(String),
}

type Result<T> = std::result::Result<T, DemoError>;

const WAIT: Duration = Duration::from_secs(30);
const SSH: (&str, &str) = ("core-switch-ssh", "Sw1tch-demo-0001");
const SNMP: (&str, &str) = ("snmp-community", "snmp-demo-rw-42");
const BACKUP: (&str, &str) = ("backup-server-key", "bk-demo-7f3a9c");

fn unexpected(what: impl Into<String>) -> DemoError {
    DemoError::Unexpected(what.into())
}

struct Story {
    c: Cluster,
    say: Say,
    agents: BTreeMap<&'static str, AgentProc>,
}

/// Runs the story in `root` with the binaries in `bins`.
pub(crate) fn run(root: &Path, bins: &Path, say: Say) -> Result<()> {
    let mut s = Story {
        // The reconciler would retry a delivery within minutes; the demo slows it so JIT repair is what you see.
        c: Cluster::new(
            root,
            bins,
            "reconcile_interval_ms = 600000\npeer_timeout_ms = 5000",
        )?,
        say,
        agents: BTreeMap::new(),
    };
    s.fleet()?;
    s.credentials()?;
    s.backfill()?;
    s.reboot_at_two()?;
    s.compromised_relay()?;
    s.rotation()?;
    s.purge()?;
    s.audit()?;
    Ok(())
}

impl Story {
    fn agent(&mut self, id: &'static str) -> Result<&mut AgentProc> {
        self.agents
            .get_mut(id)
            .ok_or_else(|| unexpected(format!("no agent {id}")))
    }

    fn enroll_and_start(&mut self, id: &'static str) -> Result<()> {
        let uid = std::fs::metadata(self.c.root())?.uid();
        let jobs = format!(
            "[policy.\"*\"]\nuids = [{uid}]\n\
             [jobs.nightly-backup]\n\
             command = [\"/bin/sh\", \"-c\", 'printf \"backup of 47 core switches: authenticated with key sha256:%s...\\n\" \"$(printf %s \"$KEY\" | sha256sum | cut -c1-12)\"']\n\
             credentials = {{ KEY = \"backup-server-key\" }}\n"
        );
        let mut a = self.c.agent(id, &jobs)?;
        self.say.fact(&format!(
            "{id}: `tessera-agent enroll` made its keys (the store key sealed by a key file); the CA signed its \
             request; `install-cert` pinned the org CA"
        ));
        a.start()?;
        self.agents.insert(id, a);
        self.c.wait_state(id, "online", WAIT)?;
        self.say.ok(&format!(
            "{id} connected over mutual TLS and registered: online"
        ));
        Ok(())
    }

    fn value(&mut self, agent: &'static str, name: &str) -> Result<Option<String>> {
        Ok(self.agent(agent)?.value(name)?)
    }

    fn wait_value(&mut self, agent: &'static str, (name, want): (&str, &str)) -> Result<()> {
        let a = self.agent(agent)?;
        wait_for(&format!("{agent} to hold {name}"), WAIT, || {
            Ok(a.value(name)?.as_deref() == Some(want))
        })?;
        Ok(())
    }

    fn chips(&self, name: &str) -> Result<String> {
        let (synced, of) = self
            .c
            .chips(name)?
            .ok_or_else(|| unexpected(format!("{name} is not listed")))?;
        Ok(format!("{synced}/{of}"))
    }

    fn audit_rows(&self, kind: &str) -> Result<Vec<serde_json::Value>> {
        Ok(self.c.audit(kind)?)
    }

    fn fleet(&mut self) -> Result<()> {
        self.say
            .chapter("An org, a broker, a relay and two appliances");
        self.say
            .fact(&format!("working directory: {}", self.c.root().display()));
        self.say.fact(
            "org CA created with `tessera ca init` (its key never leaves the operator's machine); operator \
             alice and the relay's service certificates issued",
        );
        self.say.fact(&format!(
            "Mosquitto on 127.0.0.1:{}: TLS, client certificates required, a pattern ACL confining each agent to \
             its own topics",
            self.c.broker.port
        ));
        self.c.start_relay()?;
        self.say.fact(&format!(
            "tessera-relay serving; admin API (mutual TLS, operators only) on {}",
            self.c.admin
        ));
        self.enroll_and_start("edge-1")?;
        self.enroll_and_start("edge-2")?;
        Ok(())
    }

    fn credentials(&mut self) -> Result<()> {
        self.say
            .chapter("Credentials sealed on the operator's machine");
        for (name, secret, scope) in [
            (SSH.0, SSH.1, &[][..]),
            (SNMP.0, SNMP.1, &[][..]),
            (BACKUP.0, BACKUP.1, &["edge-2"][..]),
        ] {
            let r = self.c.put(name, secret, scope)?;
            let sealed: Vec<&str> = r["sealed_for"]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
                .unwrap_or_default();
            let scope_text = if scope.is_empty() {
                "every agent".to_owned()
            } else {
                scope.join(", ")
            };
            self.say.step(&format!(
                "cred put {name} (scope: {scope_text}): signed by alice, sealed to the certified keys of {}",
                sealed.join(", ")
            ));
        }
        self.wait_value("edge-1", SSH)?;
        self.wait_value("edge-2", SSH)?;
        self.wait_value("edge-2", BACKUP)?;
        self.say.ok(&format!(
            "delivered: {} {}, {} {}, {} {} (explicit scope: only edge-2; an appliance not yet enrolled cannot be named)",
            SSH.0,
            self.chips(SSH.0)?,
            SNMP.0,
            self.chips(SNMP.0)?,
            BACKUP.0,
            self.chips(BACKUP.0)?
        ));
        self.say.fact(
            "the relay stored only ciphertext, commitments and signatures: it cannot read, forge or swap them",
        );
        Ok(())
    }

    fn backfill(&mut self) -> Result<()> {
        self.say.chapter(
            "A new appliance joins while edge-2 is down for maintenance: backfill by peer rewrap",
        );
        self.agent("edge-2")?.kill();
        self.c.wait_state("edge-2", "offline", WAIT)?;
        self.say
            .step("edge-2 stops (its Last Will tells the relay it is offline)");
        self.say.step("edge-3 is enrolled and started");
        self.enroll_and_start("edge-3")?;
        let granted = self.c.op_json(&["grant", BACKUP.0, "edge-3"])?;
        self.say.step(&format!(
            "tessera grant {} edge-3: alice re-signs its statement with scope revision {} ({} -> {}); no plaintext \
             needed, edge-3 will get it by peer rewrap",
            BACKUP.0,
            granted["scope_revision"],
            granted["scope_change"]["from"].as_str().unwrap_or("?"),
            granted["scope_change"]["to"].as_str().unwrap_or("?"),
        ));
        let reg = self.audit_rows("agent_registered")?;
        if let Some(r) = reg.iter().rev().find(|r| r["data"]["agent"] == "edge-3") {
            self.say.fact(&format!(
                "relay: edge-3 registered ({}), {} credential(s) to backfill; backfilling, so no job lands on it",
                r["data"]["mode"].as_str().unwrap_or("?"),
                r["data"]["backfill"].as_str().unwrap_or("?")
            ));
        }
        self.wait_value("edge-3", SSH)?;
        self.wait_value("edge-3", SNMP)?;
        for r in self.audit_rows("rewrap_final")? {
            if r["data"]["target"] == "edge-3" && r["data"]["result"] == "success" {
                self.say.fact(&format!(
                    "relay: peer {} opened its copy of a credential and sealed it to edge-3's CA-certified key; edge-3 checked the \
                     signed commitment and stored it",
                    r["data"]["peer"].as_str().unwrap_or("?")
                ));
            }
        }
        self.say.ok(&format!(
            "edge-3 holds {} and {} ({} {} now)",
            SSH.0,
            SNMP.0,
            SSH.0,
            self.chips(SSH.0)?
        ));
        if self.value("edge-3", BACKUP.0)?.is_some() {
            return Err(unexpected(
                "edge-3 got backup-server-key with no peer online",
            ));
        }
        self.say.fact(&format!(
            "{} is held only by edge-2, which is down: no peer can rewrap it, the relay schedules a retry and \
             edge-3 goes online without it ({} {})",
            BACKUP.0,
            BACKUP.0,
            self.chips(BACKUP.0)?
        ));
        self.agent("edge-2")?.start()?;
        self.c.wait_state("edge-2", "online", WAIT)?;
        self.say
            .step("maintenance over: edge-2 reconnects (warm reconnect, nothing to backfill)");
        Ok(())
    }

    fn reboot_at_two(&mut self) -> Result<()> {
        self.say.chapter(
            "02:00: edge-1 reboots and the nightly backup lands on edge-3, which lacks its key",
        );
        self.agent("edge-1")?.kill();
        self.say
            .step("edge-1 is killed (SIGKILL: a kernel patch, an OOM kill)");
        let started = Instant::now();
        self.say.step(&format!(
            "job nightly-backup dispatched to edge-3; it needs {}",
            BACKUP.0
        ));
        let result = self
            .c
            .job("nightly-backup", Some("edge-3"), &[BACKUP.0], WAIT)?;
        if result["exit_code"] != 0 {
            return Err(unexpected(format!("the job failed: {result}")));
        }
        self.say.fact(
            "edge-3: credential missing -> credential_missing to the relay -> rewrap by peer edge-2 -> delivered, \
             commitment checked, stored -> the job runs",
        );
        self.say.ok(&format!(
            "job succeeded in {} ms end to end: {}",
            started.elapsed().as_millis(),
            result["stdout"].as_str().unwrap_or("").trim()
        ));
        self.wait_value("edge-3", BACKUP)?;
        self.say.ok(&format!(
            "edge-3 now holds {} ({})",
            BACKUP.0,
            self.chips(BACKUP.0)?
        ));
        self.agent("edge-1")?.start()?;
        self.c.wait_state("edge-1", "online", WAIT)?;
        self.say.step("edge-1 is back: warm reconnect, online");
        Ok(())
    }

    /// What a relay taken over can make: the genuine signed statement of core-switch-ssh with a plaintext of the
    /// attacker's choosing sealed to edge-3's certified key (public keys are public).
    fn swapped_delivery(&self) -> Result<(tessera_proto::ids::AgentId, Down)> {
        let creds = self.c.op_json(&["cred", "ls"])?;
        let statement: Signed<CredentialStatement> = creds
            .as_array()
            .and_then(|l| l.iter().find(|c| c["name"] == SSH.0))
            .map(|c| serde_json::from_value(c["statement"].clone()))
            .transpose()
            .map_err(|e| unexpected(e.to_string()))?
            .ok_or_else(|| unexpected("no statement"))?;
        let agents = self.c.op_json(&["agents", "ls"])?;
        let cert = agents
            .as_array()
            .and_then(|l| l.iter().find(|a| a["id"] == "edge-3"))
            .and_then(|a| a["cert"].as_str())
            .and_then(tessera_proto::b64_decode)
            .ok_or_else(|| unexpected("edge-3's certificate"))?;
        let ca = PinnedCa::from_der(&self.c.ca_der()?).map_err(|e| unexpected(e.to_string()))?;
        let edge3 = ca
            .verify_agent(
                &cert,
                tessera_system_tests::broker::now(),
                &RevocationList::empty(),
            )
            .map_err(|e| unexpected(e.to_string()))?;
        let forged = SecretPayload::from_plain_text("attacker-chosen-password")
            .map_err(|e| unexpected(e.to_string()))?;
        let envelope = seal(&edge3.wrap, forged.bytes()).map_err(|e| unexpected(e.to_string()))?;
        Ok((
            edge3.agent_id,
            Down::CredentialStore(CredentialStore {
                delivery_id: uuid::Uuid::new_v4(),
                statement,
                envelope,
                request_id: None,
                target_key: None,
            }),
        ))
    }

    fn compromised_relay(&mut self) -> Result<()> {
        self.say.chapter("A compromised relay swaps a credential");
        let (edge3, swapped) = self.swapped_delivery()?;
        self.say.step(
            "an attacker holding the relay's broker identity has every statement and every agent's public key; \
             it seals a password of its choosing to edge-3's certified key under the genuine signed statement of \
             core-switch-ssh",
        );
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let ca_der = self.c.ca_der()?;
        let port = self.c.broker.port;
        let identity = self.c.service_identity("relay-1");
        let rogue = rt.block_on(async {
            let rogue = WireRelay::connect(port, &ca_der, &identity, "relay-1-rogue").await?;
            rogue.send(&edge3, &swapped).await?;
            Ok::<_, DemoError>(rogue)
        })?;
        self.say
            .step("it publishes the swapped delivery on edge-3's down topic");
        let mut alert = serde_json::Value::Null;
        wait_for("the relay's alert", WAIT, || {
            if let Some(a) = self.c.alerts()?.into_iter().find(|a| {
                a["kind"] == "credential_commitment_mismatch"
                    && a["subject"].as_str().is_some_and(|s| s.contains("edge-3"))
            }) {
                alert = a;
                return Ok(true);
            }
            Ok(false)
        })?;
        self.say.ok(
            "edge-3 recomputed the HMAC commitment over (id, version, plaintext), found it differs from the \
             signed one, stored nothing and reported the refusal",
        );
        self.say.ok(&format!(
            "alert [{}] {}: {}",
            alert["severity"].as_str().unwrap_or("?"),
            alert["kind"].as_str().unwrap_or("?"),
            alert["message"].as_str().unwrap_or("?")
        ));
        if let Some(row) = self.audit_rows("commitment_mismatch_detected")?.last() {
            self.say.ok(&format!(
                "audit #{} commitment_mismatch_detected target={} source={}",
                row["seq"],
                row["data"]["target"].as_str().unwrap_or("?"),
                row["data"]["source"].as_str().unwrap_or("?")
            ));
        } else {
            return Err(unexpected("no audit row for the swap"));
        }
        if self.value("edge-3", SSH.0)?.as_deref() != Some(SSH.1) {
            return Err(unexpected("edge-3 lost its genuine copy"));
        }
        self.say
            .ok("edge-3 still serves the genuine core-switch-ssh to its workloads");
        let mut rogue = rogue;
        rt.block_on(rogue.drain(Duration::from_millis(500)));
        let leaked = [SSH.1, SNMP.1, BACKUP.1]
            .iter()
            .any(|s| rogue.saw(s.as_bytes()));
        if leaked {
            return Err(unexpected("the compromised relay saw a plaintext"));
        }
        self.say.ok(&format!(
            "the compromised relay received {} bytes from the agents since it connected: none of them a credential",
            rogue.received.len()
        ));
        Ok(())
    }

    fn audit(&mut self) -> Result<()> {
        self.say.chapter("The audit trail");
        let v = self.c.op_json(&["audit", "verify"])?;
        if v["ok"] != true {
            return Err(unexpected(format!("audit chain: {v}")));
        }
        self.say.ok(&format!(
            "`tessera audit verify`: hash chain intact over {} entries (a deleted or altered row would be \
             detected), and the {} receipts of deliveries, purges and rotations signed by the appliances themselves",
            v["entries"], v["receipts"]
        ));
        for a in self.c.alerts()? {
            self.say.fact(&format!(
                "alert {:<9} {:<34} {}",
                a["severity"].as_str().unwrap_or(""),
                a["kind"].as_str().unwrap_or(""),
                a["subject"].as_str().unwrap_or("")
            ));
        }
        Ok(())
    }
}
