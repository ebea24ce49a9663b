//! Scenario 7, a hostile peer: an enrolled agent that answers a rewrap with a plaintext of its choosing (with every
//! binding right) triggers the full mismatch handling — no delivery mark, its copy untrusted and blocklisted, the
//! alerts, the audit row, a typed failure to the waiting workload — and the next peer delivers the right credential.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::too_many_lines
)]

use std::os::unix::fs::MetadataExt as _;
use std::time::Duration;

use tessera_proto::cert::PinnedCa;
use tessera_proto::envelope::seal;
use tessera_proto::receipt::ReceiptFact;
use tessera_proto::secret::SecretPayload;
use tessera_proto::statement::{RevocationList, CREDENTIAL_KIND};
use tessera_proto::wire::{
    CredentialStored, Down, Held, RegistrationMode, RewrapResponse, StoreOutcome, Up,
};
use tessera_system_tests::bins::bin_dir;
use tessera_system_tests::broker::now;
use tessera_system_tests::cluster::{wait_for, Cluster};
use tessera_system_tests::wire_agent::WireAgent;

const WAIT: Duration = Duration::from_secs(30);
const SECRET: &str = "the-real-db-password";

fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// The hostile peer's next message that is not a status or an acknowledgement it does not care about.
async fn next(bad: &mut WireAgent) -> Down {
    bad.next_down(WAIT).await.expect("a message for the peer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_substitutes_plaintext_is_caught_and_the_next_peer_delivers() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = Cluster::new(
        tmp.path(),
        &bin_dir(),
        "reconcile_interval_ms = 3600000\npeer_timeout_ms = 5000",
    )
    .unwrap();
    blocking(|| c.start_relay()).unwrap();
    let ca_der = c.ca_der().unwrap();
    let ca = PinnedCa::from_der(&ca_der).unwrap();
    let policy = format!(
        "[policy.\"*\"]\nuids = [{}]\n",
        std::fs::metadata(tmp.path()).unwrap().uid()
    );

    // edge-0 (hostile, sorted first among peers) and edge-2 (honest) hold db.
    let mut bad = WireAgent::registered(&c, "edge-0").await;
    let mut a2 = blocking(|| c.agent("edge-2", &policy)).unwrap();
    a2.start().unwrap();
    blocking(|| c.wait_state("edge-2", "online", WAIT)).unwrap();
    blocking(|| c.wait_state("edge-0", "online", WAIT)).unwrap();
    blocking(|| c.put("db", SECRET, &[])).unwrap();
    let Down::CredentialStore(d) = next(&mut bad).await else {
        panic!("the operator's envelope for edge-0")
    };
    let st = d.statement.parse_unverified(CREDENTIAL_KIND).unwrap();
    bad.send(&Up::CredentialStored(CredentialStored {
        delivery_id: d.delivery_id,
        credential_id: st.credential_id,
        version: st.version,
        outcome: StoreOutcome::Stored {
            digest: st.commitment,
        },
        receipt: Some(bad.receipt(ReceiptFact::Stored {
            delivery_id: d.delivery_id,
            credential_id: st.credential_id,
            version: st.version,
            digest: st.commitment,
        })),
    }))
    .await;
    blocking(|| {
        wait_for("edge-2 to hold db", WAIT, || {
            Ok(a2.value("db")?.as_deref() == Some(SECRET))
        })
    })
    .unwrap();
    blocking(|| wait_for("db on both", WAIT, || Ok(c.chips("db")? == Some((2, 2))))).unwrap();

    // edge-3 joins while both holders are down; then they come back.
    bad.disconnect().await;
    a2.kill();
    blocking(|| c.wait_state("edge-0", "offline", WAIT)).unwrap();
    blocking(|| c.wait_state("edge-2", "offline", WAIT)).unwrap();
    let mut a3 = blocking(|| c.agent("edge-3", &policy)).unwrap();
    a3.start().unwrap();
    blocking(|| c.wait_state("edge-3", "online", WAIT)).unwrap();
    bad.connect(c.broker.port, &ca_der).await;
    bad.register_with(
        RegistrationMode::WarmReconnect,
        vec![Held {
            credential_id: st.credential_id,
            version: st.version,
        }],
    )
    .await;
    assert!(matches!(next(&mut bad).await, Down::RegisterAck(_)));
    a2.start().unwrap();
    blocking(|| c.wait_state("edge-2", "online", WAIT)).unwrap();
    blocking(|| c.wait_state("edge-0", "online", WAIT)).unwrap();

    // A workload on edge-3 asks for db: JIT repair goes to edge-0 first, which substitutes the plaintext.
    let get = a3.get_in_background("db");
    let Down::RewrapRequest(req) = next(&mut bad).await else {
        panic!("edge-0 is asked first")
    };
    let target = ca
        .verify_agent(&req.target_cert, now(), &RevocationList::empty())
        .unwrap();
    let forged = SecretPayload::from_plain_text("attacker-substituted").unwrap();
    bad.send(&Up::RewrapResponse(RewrapResponse {
        request_id: req.request_id,
        nonce: req.nonce,
        peer: bad.id.clone(),
        credential_id: req.credential_id,
        version: req.version,
        target_key: target.wrap.fingerprint(),
        envelope: seal(&target.wrap, forged.bytes()).unwrap(),
    }))
    .await;
    let out = blocking(|| get.join().unwrap().unwrap());
    assert_eq!(
        out.status.code(),
        Some(16),
        "a typed COMMITMENT_MISMATCH, not a timeout: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("COMMITMENT_MISMATCH"));

    // The next peer delivers the right credential.
    blocking(|| {
        wait_for("edge-3 to hold the real db", WAIT, || {
            Ok(a3.value("db")?.as_deref() == Some(SECRET))
        })
    })
    .unwrap();
    // The relay records it once edge-3's acknowledgement arrives.
    blocking(|| {
        wait_for("the relay to record edge-2's delivery", WAIT, || {
            Ok(c.audit("rewrap_final")?.iter().any(|r| {
                r["data"]["target"] == "edge-3"
                    && r["data"]["result"] == "success"
                    && r["data"]["peer"] == "edge-2"
            }))
        })
    })
    .unwrap();

    // Alerts, audit, chips: edge-0's copy is untrusted, db is not marked delivered through it.
    let alerts = blocking(|| c.alerts()).unwrap();
    let find = |kind: &str| {
        alerts
            .iter()
            .find(|a| a["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} alert in {alerts:?}"))
            .clone()
    };
    assert_eq!(find("peer_agent_integrity_failure")["severity"], "critical");
    assert!(find("peer_agent_integrity_failure")["subject"]
        .as_str()
        .unwrap()
        .contains("edge-0"));
    assert_eq!(
        find("credential_commitment_mismatch")["severity"],
        "critical"
    );
    let rows = blocking(|| c.audit("commitment_mismatch_detected")).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["data"]["source"], "edge-0");
    assert_eq!(rows[0]["data"]["target"], "edge-3");
    let creds = blocking(|| c.op_json(&["cred", "ls"])).unwrap();
    let db = &creds.as_array().unwrap()[0];
    assert_eq!(
        db["sync"]["synced"], 2,
        "edge-2 and edge-3; edge-0's copy untrusted"
    );
    assert_eq!(db["sync"]["integrity_failure"], true);

    // Blocklisted: a new agent's backfill of db never asks edge-0 again.
    let mut a4 = blocking(|| c.agent("edge-4", &policy)).unwrap();
    a4.start().unwrap();
    blocking(|| {
        wait_for("edge-4 to hold db", WAIT, || {
            Ok(a4.value("db")?.as_deref() == Some(SECRET))
        })
    })
    .unwrap();
    while let Some(m) = bad.next_down(Duration::from_secs(1)).await {
        assert!(
            !matches!(m, Down::RewrapRequest(_)),
            "a blocklisted peer was asked again: {m:?}"
        );
    }
    blocking(|| c.op(&["audit", "verify"])).unwrap();
}
