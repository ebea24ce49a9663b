//! The lifecycle chapter: an appliance rotates its keys and certificate (blue/green, certified offline by the CA),
//! and a deleted credential is purged from every appliance on an operator-signed tombstone.

use tessera_system_tests::cluster::wait_for;

use super::{unexpected, Result, Story, SNMP, WAIT};

impl Story {
    fn wait_rotation(&self, agent: &str, state: &str) -> Result<()> {
        Ok(self.c.wait_renewal(agent, state, WAIT)?)
    }

    pub(super) fn rotation(&mut self) -> Result<()> {
        self.say
            .chapter("edge-1 rotates its keys; the relay certifies nothing");
        let ca = self.c.ca_dir().to_string_lossy().into_owned();
        self.say.step("`tessera agents rotate edge-1`");
        self.c.op(&["agents", "rotate", "edge-1"])?;
        self.wait_rotation("edge-1", "requested")?;
        self.say.ok(
            "edge-1 generated new identity and wrap keys (green) and queued a renewal request signed by its current \
             key and the new one",
        );
        self.say
            .step("on the CA's machine: `tessera ca renew --dir ca --due`");
        let rows = self.c.op_json(&["ca", "renew", "--dir", &ca, "--due"])?;
        self.say.fact(&format!(
            "edge-1: {}",
            rows[0]["outcome"].as_str().unwrap_or("?")
        ));
        self.wait_rotation("edge-1", "completed")?;
        self.say.ok(
            "edge-1 checked the certificate against its pinned CA and its new keys, reconnected to the broker with \
             it, registered, switched, and sent a receipt signed by the new key",
        );
        if self.value("edge-1", SNMP.0)?.as_deref() != Some(SNMP.1) {
            return Err(unexpected("edge-1 lost a credential in its rotation"));
        }
        self.say.ok(
            "edge-1 still serves snmp-community: a rotation does not touch the credential store",
        );
        self.say.step(
            "after the grace period: `tessera ca renew --dir ca --due` revokes the old certificate",
        );
        let rows = self
            .c
            .op_json(&["ca", "renew", "--dir", &ca, "--due", "--grace-secs", "0"])?;
        self.say.ok(&format!(
            "edge-1: {}",
            rows[0]["outcome"].as_str().unwrap_or("?")
        ));
        Ok(())
    }

    pub(super) fn purge(&mut self) -> Result<()> {
        self.say.chapter("snmp-community is deleted everywhere");
        self.say.step("`tessera cred rm snmp-community`");
        self.c.op(&["cred", "rm", SNMP.0])?;
        for id in ["edge-1", "edge-2", "edge-3"] {
            let a = self.agent(id)?;
            wait_for(&format!("{id} to purge {}", SNMP.0), WAIT, || {
                Ok(a.get(SNMP.0)?.status.code() == Some(12))
            })?;
        }
        self.say.ok(
            "each appliance verified the operator-signed tombstone, forgot the credential and will never accept it \
             again; workloads asking for it get NOT_FOUND",
        );
        wait_for("the purge count", WAIT, || {
            let ls = self.c.op_json(&["cred", "ls"])?;
            Ok(ls.as_array().is_some_and(|l| {
                l.iter().any(|c| {
                    c["name"] == SNMP.0 && c["purge"]["purged"] == 3 && c["purge"]["of"] == 3
                })
            }))
        })?;
        self.say.ok(
            "`tessera cred ls`: snmp-community deleted, purged 3/3 (each acknowledgement carries the appliance's \
             signed receipt; `tessera cred show snmp-community` checks them)",
        );
        let show = self.c.op_json(&["cred", "show", SNMP.0])?;
        if show["without_valid_receipt"] != 0 {
            return Err(unexpected(format!("purge without receipts: {show}")));
        }
        Ok(())
    }
}
