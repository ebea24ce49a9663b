//! A test organisation: an org CA, an operator who signs credential statements, agents with certificates, and
//! deliveries sealed to an agent. Shared by the agent's unit, wire and bench code and by the system tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

use std::collections::BTreeMap;

use tessera_proto::cert::{EnrollmentRequest, IdentityKey, OrgCa, Validity};
use tessera_proto::commitment::{self, Commitment, Salt};
use tessera_proto::envelope::{seal, WrapPrivateKey, WrapPublicKey};
use tessera_proto::ids::{AgentId, CredentialId, CredentialName, OperatorId};
use tessera_proto::receipt::{Receipt, ReceiptBody, ReceiptFact};
use tessera_proto::secret::SecretPayload;
use tessera_proto::statement::{
    CredentialStatement, CredentialTombstone, RevocationList, Scope, Signed,
};
use tessera_proto::wire::CredentialStore;

/// The org, with its notion of "now" (unix seconds) for validity windows and signing times.
pub struct TestOrg {
    /// The org CA.
    pub ca: OrgCa,
    /// The operator `alice`'s key.
    pub operator_key: IdentityKey,
    /// Her operator certificate, DER.
    pub operator_cert: Vec<u8>,
    /// The org's "now".
    pub at: i64,
}

/// An agent's keys and certificate, for an agent that is not a running process.
pub struct TestAgent {
    /// Its id.
    pub id: AgentId,
    /// Identity key.
    pub identity: IdentityKey,
    /// Wrap key.
    pub wrap: WrapPrivateKey,
    /// Certificate, DER.
    pub cert: Vec<u8>,
}

impl std::fmt::Debug for TestOrg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestOrg")
            .field("at", &self.at)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for TestAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestAgent")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl TestOrg {
    /// An org whose "now" is the system clock.
    pub fn new() -> Self {
        Self::at(crate::broker::now())
    }

    /// An org whose "now" is `at`: CA valid from a day before for ten years, the operator for a year.
    pub fn at(at: i64) -> Self {
        let ca = OrgCa::generate("Test Org", Validity::days_from(at - 86_400, 3650)).unwrap();
        let operator_key = IdentityKey::generate().unwrap();
        let operator_cert = ca
            .issue_operator(
                &OperatorId::new("alice").unwrap(),
                operator_key.public_key(),
                Validity::days_from(at - 86_400, 365),
            )
            .unwrap();
        Self {
            ca,
            operator_key,
            operator_cert,
            at,
        }
    }

    /// An agent certified from a day before "now" for a year.
    pub fn agent(&self, id: &str) -> TestAgent {
        self.agent_from(id, self.at - 86_400, 365)
    }

    /// An agent certified from `not_before` for `days`.
    pub fn agent_from(&self, id: &str, not_before: i64, days: u32) -> TestAgent {
        let identity = IdentityKey::generate().unwrap();
        let wrap = WrapPrivateKey::generate().unwrap();
        let id = AgentId::new(id).unwrap();
        let req = EnrollmentRequest::new(
            id.clone(),
            &identity,
            wrap.public_key(),
            BTreeMap::new(),
            self.at,
        )
        .unwrap();
        let cert = self
            .ca
            .issue_agent(&req, Validity::days_from(not_before, days))
            .unwrap();
        TestAgent {
            id,
            identity,
            wrap,
            cert,
        }
    }

    /// A statement signed by `alice` for `secret`, with its body and payload.
    pub fn credential(
        &self,
        id: CredentialId,
        version: u64,
        name: &str,
        scope: Scope,
        secret: &str,
    ) -> (
        Signed<CredentialStatement>,
        CredentialStatement,
        SecretPayload,
    ) {
        let payload = SecretPayload::from_plain_text(secret).unwrap();
        let salt = Salt::random();
        let c = commitment::compute(&salt, &id, version, &payload);
        let st = CredentialStatement::new(
            id,
            version,
            0,
            CredentialName::new(name).unwrap(),
            scope,
            salt,
            c,
            OperatorId::new("alice").unwrap(),
            self.at,
        );
        let signed = Signed::sign(&st, &self.operator_key, &self.operator_cert).unwrap();
        (signed, st, payload)
    }

    /// `st` re-signed by `alice` with `scope` at `scope_revision` (a grant or revoke of the same version).
    pub fn rescope(
        &self,
        st: &CredentialStatement,
        scope: Scope,
        scope_revision: u64,
    ) -> Signed<CredentialStatement> {
        let mut st = st.clone();
        st.scope = scope;
        st.scope_revision = scope_revision;
        Signed::sign(&st, &self.operator_key, &self.operator_cert).unwrap()
    }

    /// `agent`'s receipt of `fact`, signed "now" with its identity key.
    pub fn receipt(&self, agent: &TestAgent, fact: ReceiptFact) -> Receipt {
        let cert = self
            .ca
            .pinned()
            .verify_agent(&agent.cert, self.at, &RevocationList::empty())
            .unwrap();
        Receipt::sign(
            &ReceiptBody::new(agent.id.clone(), cert.serial, self.at, fact),
            &agent.identity,
        )
        .unwrap()
    }

    /// `agent`'s receipt of a stored delivery.
    pub fn stored_receipt(
        &self,
        agent: &TestAgent,
        delivery_id: uuid::Uuid,
        credential_id: CredentialId,
        version: u64,
        digest: Commitment,
    ) -> Receipt {
        self.receipt(
            agent,
            ReceiptFact::Stored {
                delivery_id,
                credential_id,
                version,
                digest,
            },
        )
    }

    /// A tombstone signed by `alice` deleting `id` (named `name`) through `version`.
    pub fn tombstone(
        &self,
        id: CredentialId,
        name: &str,
        version: u64,
    ) -> Signed<CredentialTombstone> {
        let t = CredentialTombstone::new(
            id,
            CredentialName::new(name).unwrap(),
            version,
            OperatorId::new("alice").unwrap(),
            self.at,
        );
        Signed::sign(&t, &self.operator_key, &self.operator_cert).unwrap()
    }

    /// A delivery of `secret` sealed to `to`.
    pub fn delivery(
        &self,
        to: &WrapPublicKey,
        id: CredentialId,
        version: u64,
        name: &str,
        scope: Scope,
        secret: &str,
    ) -> CredentialStore {
        let (statement, _, payload) = self.credential(id, version, name, scope, secret);
        CredentialStore {
            delivery_id: uuid::Uuid::new_v4(),
            statement,
            envelope: seal(to, payload.bytes()).unwrap(),
            request_id: None,
            target_key: None,
        }
    }
}

impl Default for TestOrg {
    fn default() -> Self {
        Self::new()
    }
}
