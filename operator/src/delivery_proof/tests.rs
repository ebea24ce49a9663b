#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use tessera_proto::admin::DeliveryView;
use tessera_proto::cert::{AgentCertificate, IdentityKey, OrgCa, Validity};
use tessera_proto::commitment::{self, Salt};
use tessera_proto::ids::{AgentId, CredentialId, CredentialName, OperatorId};
use tessera_proto::receipt::{Receipt, ReceiptBody, ReceiptFact};
use tessera_proto::secret::SecretPayload;
use tessera_proto::statement::{CredentialStatement, RevocationList, Scope, Signed as Sig};

use super::*;
use crate::issued::Registry;
use crate::receipts;
use crate::test_certs::{issue_with_key, NOW};

/// An org with an operator who signs statements, and agents a, b and c certified and in the CA's registry.
struct Org {
    ca: OrgCa,
    op_key: IdentityKey,
    op_cert: Vec<u8>,
    agents: Vec<(AgentCertificate, IdentityKey)>,
    registry: Registry,
    revoked: RevocationList,
    id: CredentialId,
}

fn org() -> Org {
    let ca = OrgCa::generate("Test Org", Validity::days_from(NOW - 10, 365)).unwrap();
    let op_key = IdentityKey::generate().unwrap();
    let op_cert = ca
        .issue_operator(
            &OperatorId::new("alice").unwrap(),
            op_key.public_key(),
            Validity::days_from(NOW - 10, 365),
        )
        .unwrap();
    let agents: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|a| issue_with_key(&ca, a))
        .collect();
    let mut registry = Registry::default();
    for (cert, _) in &agents {
        registry.record(cert, NOW);
    }
    Org {
        ca,
        op_key,
        op_cert,
        agents,
        registry,
        revoked: RevocationList::empty(),
        id: CredentialId::random(),
    }
}

fn agent(a: &str) -> AgentId {
    AgentId::new(a).unwrap()
}

fn scope(agents: &[&str]) -> Scope {
    Scope::explicit(agents.iter().map(|a| agent(a)))
}

impl Org {
    /// Accepts the statement (version, revision, scope) into `cat`, as the operator signed it.
    fn sign(&self, cat: &mut Catalogue, version: u64, revision: u64, scope: Scope) {
        let payload = SecretPayload::from_plain_text("s3cret").unwrap();
        let salt = Salt::random();
        let c = commitment::compute(&salt, &self.id, version, &payload);
        let st = CredentialStatement::new(
            self.id,
            version,
            revision,
            CredentialName::new("db").unwrap(),
            scope,
            salt,
            c,
            OperatorId::new("alice").unwrap(),
            NOW,
        );
        let signed = Sig::sign(&st, &self.op_key, &self.op_cert).unwrap();
        let v = signed
            .verify(self.ca.pinned(), &RevocationList::empty())
            .unwrap();
        cat.accept(&v, &signed).unwrap();
    }

    fn receipt(&self, who: &str, fact: ReceiptFact) -> Receipt {
        let (cert, key) = self
            .agents
            .iter()
            .find(|(c, _)| c.agent_id.as_str() == who)
            .unwrap();
        Receipt::sign(
            &ReceiptBody::new(cert.agent_id.clone(), cert.serial.clone(), NOW + 5, fact),
            key,
        )
        .unwrap()
    }

    /// A row claiming `who` stored `version`, with the agent's own valid receipt of it.
    fn stored(&self, who: &str, version: u64) -> DeliveryView {
        let payload = SecretPayload::from_plain_text("s3cret").unwrap();
        let digest = commitment::compute(&Salt::random(), &self.id, version, &payload);
        DeliveryView {
            receipt: Some(self.receipt(
                who,
                ReceiptFact::Stored {
                    delivery_id: uuid::Uuid::new_v4(),
                    credential_id: self.id,
                    version,
                    digest,
                },
            )),
            ..row(who, version, "stored")
        }
    }

    /// A row claiming `who` purged the deleted credential, with its valid receipt of the tombstone.
    fn purged(&self, who: &str, version: u64) -> DeliveryView {
        DeliveryView {
            purge: Some("purged".into()),
            purge_receipt: Some(self.receipt(
                who,
                ReceiptFact::Purged {
                    credential_id: self.id,
                    version,
                    scope_revision: None,
                },
            )),
            ..row(who, version, "stored")
        }
    }

    fn live(&self) -> Vec<AgentId> {
        self.registry
            .live_agents(self.ca.pinned(), NOW + 1, &self.revoked)
    }

    fn judge(&self, cat: &Catalogue, rows: &[DeliveryView]) -> Judged {
        let (id, signed) = signed_for(cat, &CredentialName::new("db").unwrap()).unwrap();
        let verify =
            |r: &Receipt| receipts::verify(r, &self.registry, self.ca.pinned(), &self.revoked);
        judge(rows, &id, signed, &self.live(), &verify)
    }
}

fn row(who: &str, version: u64, state: &str) -> DeliveryView {
    DeliveryView {
        agent: agent(who),
        agent_state: None,
        version,
        state: state.into(),
        attempts: 0,
        next_attempt_ms: 0,
        last_error: None,
        purge: None,
        receipt: None,
        purge_receipt: None,
    }
}

#[test]
fn every_agent_of_the_scope_proven_is_synced() {
    let o = org();
    let mut cat = Catalogue::default();
    o.sign(&mut cat, 1, 0, scope(&["a", "b"]));
    let j = o.judge(&cat, &[o.stored("a", 1), o.stored("b", 1)]);
    assert_eq!(j.summary.to_string(), "stored v1 2/2");
    assert!(j.complete() && !j.integrity_failure(), "{j:?}");
}

#[test]
fn an_agent_listed_twice_counts_once_and_is_an_integrity_failure() {
    // Scope [a, b]; the relay lists a twice with a's valid receipt and leaves b out.
    let o = org();
    let mut cat = Catalogue::default();
    o.sign(&mut cat, 1, 0, scope(&["a", "b"]));
    let j = o.judge(&cat, &[o.stored("a", 1), o.stored("a", 1)]);
    assert_eq!(j.anomalies, vec![Anomaly::Duplicate(agent("a"))]);
    assert!(j.integrity_failure());
    assert_eq!(j.missing, vec!["b".to_owned()]);
    assert_eq!(j.summary.of, 2);
    assert!(j.summary.done < 2, "{j:?}");
    assert!(!j.complete());
}

#[test]
fn an_agent_revoked_from_the_scope_recorded_as_holding_it_is_not_counted() {
    // c held v1, then was revoked at the same version; the relay lists a, and c's old valid receipt as if it still
    // held it, and leaves b out.
    let o = org();
    let mut cat = Catalogue::default();
    o.sign(&mut cat, 1, 0, scope(&["a", "b", "c"]));
    o.sign(&mut cat, 1, 1, scope(&["a", "b"]));
    let j = o.judge(&cat, &[o.stored("a", 1), o.stored("c", 1)]);
    assert_eq!(j.anomalies, vec![Anomaly::OutsideScope(agent("c"))]);
    assert!(j.integrity_failure());
    assert_eq!(j.summary.to_string(), "stored v1 1/2");
    assert_eq!(j.missing, vec!["b".to_owned()]);
    assert_eq!(j.proven, vec![true, false]);
    assert!(!j.complete());
}

#[test]
fn scope_all_counts_the_registrys_live_agents_not_the_rows_listed() {
    let mut o = org();
    let mut cat = Catalogue::default();
    o.sign(&mut cat, 1, 0, Scope::All);
    // c's certificate is revoked: not an agent of scope all any more, and its row is neither counted nor an alarm.
    let c = o.agents[2].0.serial.clone();
    o.revoked = RevocationList::new(1, NOW, [c]);
    let j = o.judge(&cat, &[o.stored("a", 1), o.stored("c", 1)]);
    assert_eq!(j.summary.to_string(), "stored v1 1/2");
    assert_eq!(j.missing, vec!["b".to_owned()]);
    assert!(!j.integrity_failure(), "{j:?}");
    assert!(!j.complete());
    let j = o.judge(&cat, &[o.stored("a", 1), o.stored("b", 1)]);
    assert!(j.complete(), "{j:?}");
}

#[test]
fn a_deleted_credential_counts_its_purge_over_its_last_live_scope() {
    let o = org();
    let mut cat = Catalogue::default();
    o.sign(&mut cat, 1, 0, scope(&["a", "b"]));
    cat.delete(&CredentialName::new("db").unwrap());
    // The relay lists nothing: not "purged 0/0".
    let j = o.judge(&cat, &[]);
    assert_eq!(j.summary.to_string(), "purged 0/2");
    assert_eq!(j.missing, vec!["a".to_owned(), "b".to_owned()]);
    assert!(!j.complete());
    let j = o.judge(&cat, &[o.purged("a", 1), o.purged("b", 1)]);
    assert_eq!(j.summary.to_string(), "purged 2/2");
    assert!(j.complete(), "{j:?}");

    // Deleted at scope all (or in a catalogue that did not keep the scope): the registry's live agents.
    let o = org();
    let mut cat = Catalogue::default();
    o.sign(&mut cat, 1, 0, Scope::All);
    cat.delete(&CredentialName::new("db").unwrap());
    let j = o.judge(&cat, &[o.purged("a", 1)]);
    assert_eq!(j.summary.to_string(), "purged 1/3");
    cat.deleted.values_mut().for_each(|d| d.scope = None);
    let j = o.judge(&cat, &[o.purged("a", 1), o.purged("a", 1)]);
    assert_eq!(j.anomalies, vec![Anomaly::Duplicate(agent("a"))]);
    assert_eq!(j.summary.to_string(), "purged 0/3");
}
