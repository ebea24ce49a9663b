//! Every audit kind's entry, pinned: the kind, the link and the data the relay wrote before the events were typed
//! (chains already written must verify, and `tessera audit` reads these fields).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Tables of pinned entries: each test reads as the list of kinds it pins.
#![allow(clippy::too_many_lines)]

use tessera_proto::cert::CertSerial;
use tessera_proto::ids::{AgentId, CredentialId, CredentialName, OperatorId, TemplateName};
use tessera_proto::receipt::{Receipt, ReceiptBody, ReceiptFact, RECEIPT_KIND};
use tessera_proto::wire::RegistrationMode;

use super::AuditEvent;
use crate::lifecycle::Source;

const CRED: &str = "0b7e7c52-6a43-4f1e-9d0a-5c2b8e1f3a47";
const ID: &str = "6f1c1d2e-3b4a-4c5d-8e9f-0a1b2c3d4e5f";

fn check(event: AuditEvent<'_>, kind: &str, link: Option<u64>, data: &[(&str, &str)]) {
    let e = event.entry();
    assert_eq!((e.kind, e.link), (kind, link));
    let expected: std::collections::BTreeMap<String, String> = data
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    assert_eq!(e.data, expected, "{kind}");
}

fn fixtures() -> (CredentialId, uuid::Uuid, AgentId, AgentId, CertSerial) {
    (
        CRED.parse::<CredentialId>().unwrap(),
        uuid::Uuid::parse_str(ID).unwrap(),
        AgentId::new("edge-1").unwrap(),
        AgentId::new("edge-2").unwrap(),
        CertSerial::from_bytes(&[0x01, 0xab]),
    )
}

fn receipt(fact: ReceiptFact) -> (Receipt, ReceiptBody) {
    (
        Receipt {
            payload: b"body".to_vec(),
            signature: vec![1, 2, 3],
        },
        ReceiptBody {
            kind: RECEIPT_KIND.to_owned(),
            agent: AgentId::new("edge-2").unwrap(),
            signer_serial: CertSerial::from_bytes(&[0x0c]),
            at: 1_700_000_000,
            fact,
        },
    )
}

#[test]
fn delivery_entries() {
    let (cred, id, peer, target, _) = fixtures();
    check(
        AuditEvent::RewrapPending {
            credential: cred,
            version: 3,
            target: &target,
        },
        "rewrap_pending",
        None,
        &[("credential", CRED), ("version", "3"), ("target", "edge-2")],
    );
    let (r, body) = receipt(ReceiptFact::Rotated {
        previous_serial: CertSerial::from_bytes(&[1]),
        serial: CertSerial::from_bytes(&[2]),
    });
    for (source, name) in [
        (Source::Peer(peer.clone()), "edge-1"),
        (Source::Operator, "operator"),
    ] {
        check(
            AuditEvent::RewrapDelivered {
                pending: 7,
                credential: cred,
                version: 3,
                target: &target,
                source: &source,
                delivery: id,
                digest: &[0xff; 32],
                receipt: Some((&r, &body)),
            },
            "rewrap_final",
            Some(7),
            &[
                ("result", "success"),
                ("credential", CRED),
                ("version", "3"),
                ("target", "edge-2"),
                ("peer", name),
                ("delivery", ID),
                ("digest", "//////////////////////////////////////////8="),
                ("receipt_at", "1700000000"),
                ("receipt_serial", "0c"),
                ("receipt_sig", "AQID"),
            ],
        );
    }
    check(
        AuditEvent::RewrapFailed {
            pending: 7,
            result: "exhausted",
            credential: cred,
            target: &target,
        },
        "rewrap_final",
        Some(7),
        &[
            ("result", "exhausted"),
            ("credential", CRED),
            ("target", "edge-2"),
        ],
    );
    check(
        AuditEvent::RewrapResealed {
            pending: 7,
            credential: cred,
            target: &target,
        },
        "rewrap_final",
        Some(7),
        &[
            ("result", "resealed"),
            ("credential", CRED),
            ("target", "edge-2"),
        ],
    );
    check(
        AuditEvent::CommitmentMismatch {
            pending: Some(7),
            credential: cred,
            version: 3,
            target: &target,
            source: "edge-1",
            delivery: None,
        },
        "commitment_mismatch_detected",
        Some(7),
        &[
            ("credential", CRED),
            ("version", "3"),
            ("target", "edge-2"),
            ("source", "edge-1"),
        ],
    );
    check(
        AuditEvent::CommitmentMismatch {
            pending: None,
            credential: cred,
            version: 3,
            target: &target,
            source: "not_dispatched_by_this_relay",
            delivery: Some(id),
        },
        "commitment_mismatch_detected",
        None,
        &[
            ("credential", CRED),
            ("version", "3"),
            ("target", "edge-2"),
            ("source", "not_dispatched_by_this_relay"),
            ("delivery", ID),
        ],
    );
    check(
        AuditEvent::UnsolicitedResponse {
            agent: &peer,
            request: id,
            reason: "NONCE_MISMATCH",
        },
        "unsolicited_response",
        None,
        &[
            ("agent", "edge-1"),
            ("request", ID),
            ("reason", "NONCE_MISMATCH"),
        ],
    );
    check(
        AuditEvent::JitRefused {
            agent: &target,
            name: &CredentialName::new("db").unwrap(),
            reason: "RateLimited".to_owned(),
        },
        "jit_refused",
        None,
        &[
            ("agent", "edge-2"),
            ("name", "db"),
            ("reason", "RateLimited"),
        ],
    );
    check(
        AuditEvent::DroppedMessage {
            agent: "?",
            reason: "not an agent topic",
        },
        "dropped_message",
        None,
        &[("agent", "?"), ("reason", "not an agent topic")],
    );
}

#[test]
fn agent_entries() {
    let (cred, _, agent, _, serial) = fixtures();
    check(
        AuditEvent::AgentRegistered {
            agent: &agent,
            mode: RegistrationMode::WarmReconnect,
            backfill: 12,
            serial: &serial,
        },
        "agent_registered",
        None,
        &[
            ("agent", "edge-1"),
            ("mode", "WarmReconnect"),
            ("backfill", "12"),
            ("serial", "01ab"),
        ],
    );
    check(
        AuditEvent::CredentialSignerRevoked {
            agent: &agent,
            reason: "signer_revoked",
            list_serial: 4,
            credentials: vec![CRED.to_owned(), "x".to_owned()],
            known: 2,
            unknown: 1,
        },
        "credential_signer_revoked",
        None,
        &[
            ("agent", "edge-1"),
            ("reason", "signer_revoked"),
            ("list_serial", "4"),
            ("credentials", &format!("{CRED},x")),
            ("known", "2"),
            ("unknown", "1"),
        ],
    );
    let _ = cred;
    let renews = CertSerial::from_bytes(&[0x02]);
    check(
        AuditEvent::RenewalRequested {
            agent: &agent,
            serial: &serial,
            request: "abcd".to_owned(),
        },
        "renewal_requested",
        None,
        &[("agent", "edge-1"), ("serial", "01ab"), ("request", "abcd")],
    );
    check(
        AuditEvent::RenewalCertified {
            agent: &agent,
            serial: &serial,
            renews: &renews,
        },
        "renewal_certified",
        None,
        &[("agent", "edge-1"), ("serial", "01ab"), ("renews", "02")],
    );
    check(
        AuditEvent::RotationRequested { agent: &agent },
        "rotation_requested",
        None,
        &[("agent", "edge-1")],
    );
    let (r, body) = receipt(ReceiptFact::Rotated {
        previous_serial: renews.clone(),
        serial: serial.clone(),
    });
    check(
        AuditEvent::RotationCompleted {
            agent: &agent,
            previous_serial: &renews,
            serial: &serial,
            receipt: (&r, &body),
        },
        "rotation_completed",
        None,
        &[
            ("agent", "edge-1"),
            ("previous_serial", "02"),
            ("serial", "01ab"),
            ("receipt_at", "1700000000"),
            ("receipt_serial", "0c"),
            ("receipt_sig", "AQID"),
        ],
    );
    check(
        AuditEvent::RotationFailed {
            agent: &agent,
            serial: &serial,
            reason: "CertificateMismatch".to_owned(),
            queued: true,
        },
        "rotation_failed",
        None,
        &[
            ("agent", "edge-1"),
            ("serial", "01ab"),
            ("reason", "CertificateMismatch"),
            ("queued", "true"),
        ],
    );
}

#[test]
fn operator_and_purge_entries() {
    let (cred, id, agent, _, _) = fixtures();
    let name = CredentialName::new("db").unwrap();
    let creator = OperatorId::new("alice").unwrap();
    check(
        AuditEvent::CredentialPut {
            credential: cred,
            name: &name,
            version: 3,
            scope_revision: 2,
            creator: &creator,
        },
        "credential_put",
        None,
        &[
            ("credential", CRED),
            ("name", "db"),
            ("version", "3"),
            ("scope_revision", "2"),
            ("creator", "alice"),
        ],
    );
    check(
        AuditEvent::CredentialRemoved { credential: cred },
        "credential_removed",
        None,
        &[("credential", CRED)],
    );
    check(
        AuditEvent::CredentialTombstoned {
            credential: cred,
            name: &name,
            version: 4,
            creator: &creator,
        },
        "credential_tombstoned",
        None,
        &[
            ("credential", CRED),
            ("name", "db"),
            ("version", "4"),
            ("creator", "alice"),
        ],
    );
    check(
        AuditEvent::PurgeSent {
            credential: cred,
            agents: 5,
        },
        "credential_purge_sent",
        None,
        &[("credential", CRED), ("agents", "5")],
    );
    check(
        AuditEvent::PurgeSentAtRegistration {
            credential: cred,
            agent: &agent,
        },
        "credential_purge_sent",
        None,
        &[
            ("credential", CRED),
            ("agent", "edge-1"),
            ("at", "registration"),
        ],
    );
    check(
        AuditEvent::RevokeSent {
            credential: cred,
            agent: &agent,
            scope_revision: 6,
        },
        "credential_revoke_sent",
        None,
        &[
            ("credential", CRED),
            ("agent", "edge-1"),
            ("scope_revision", "6"),
        ],
    );
    let (r, body) = receipt(ReceiptFact::Purged {
        credential_id: cred,
        version: 4,
        scope_revision: Some(6),
    });
    for (scope_revision, extra) in [(None, None), (Some(6), Some(("scope_revision", "6")))] {
        let mut data = vec![
            ("credential", CRED),
            ("agent", "edge-1"),
            ("version", "4"),
            ("receipt_at", "1700000000"),
            ("receipt_serial", "0c"),
            ("receipt_sig", "AQID"),
        ];
        data.extend(extra);
        check(
            AuditEvent::CredentialPurged {
                credential: cred,
                agent: &agent,
                version: 4,
                scope_revision,
                receipt: (&r, &body),
            },
            "credential_purged",
            None,
            &data,
        );
    }
    check(
        AuditEvent::RevocationList {
            serial: 9,
            revoked: 2,
        },
        "revocation_list",
        None,
        &[("serial", "9"), ("revoked", "2")],
    );
    check(
        AuditEvent::AlertAcknowledged {
            alert: "0123456789abcdef",
            kind: "credential_sync_stalled",
            operator: "alice",
        },
        "alert_acknowledged",
        None,
        &[
            ("alert", "0123456789abcdef"),
            ("kind", "credential_sync_stalled"),
            ("operator", "alice"),
        ],
    );
    check(
        AuditEvent::JobDispatched {
            job: id,
            template: &TemplateName::new("backup").unwrap(),
            agent: &agent,
            expires_at: 1_700_000_300,
        },
        "job_dispatched",
        None,
        &[
            ("job", ID),
            ("template", "backup"),
            ("agent", "edge-1"),
            ("expires_at", "1700000300"),
        ],
    );
    check(
        AuditEvent::JobDuplicate {
            job: id,
            agent: &agent,
        },
        "job_duplicate",
        None,
        &[("job", ID), ("agent", "edge-1")],
    );
    for (code, shown) in [(Some(0), "Some(0)"), (None, "None")] {
        check(
            AuditEvent::JobResult {
                job: id,
                agent: &agent,
                exit_code: code,
            },
            "job_result",
            None,
            &[("job", ID), ("agent", "edge-1"), ("exit_code", shown)],
        );
    }
}
