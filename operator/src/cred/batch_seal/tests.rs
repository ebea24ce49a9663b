use tessera_proto::cert::{OrgCa, Validity};
use tessera_proto::envelope::open;
use tessera_proto::secret::SecretBytes;

use super::*;
use crate::test_certs::{issue_with_keys, NOW};

fn payload(s: &str) -> SecretPayload {
    SecretPayload::from_canonical(SecretBytes::copy_from(
        format!(r#"{{"kind":"token","value":"{s}"}}"#).as_bytes(),
    ))
    .unwrap()
}

#[test]
fn each_key_gets_one_batch_for_its_credentials_and_a_lone_credential_a_single_envelope() {
    let ca = OrgCa::generate("Org", Validity::days_from(NOW - 10, 365)).unwrap();
    let (a, _, a_wrap) = issue_with_keys(&ca, "edge-a");
    let (b, _, b_wrap) = issue_with_keys(&ca, "edge-b");
    let payloads: Vec<SecretPayload> = (0..3).map(|i| payload(&format!("secret-{i}"))).collect();
    let ids: Vec<CredentialId> = (0..3).map(|_| CredentialId::random()).collect();
    let both = [a.clone(), b.clone()];
    let only_a = [a.clone()];
    // edge-a takes all three, edge-b only the first.
    let items = [
        Sealable {
            id: ids[0],
            version: 1,
            payload: &payloads[0],
            statement_bytes: 1000,
            certs: &both,
        },
        Sealable {
            id: ids[1],
            version: 4,
            payload: &payloads[1],
            statement_bytes: 1000,
            certs: &only_a,
        },
        Sealable {
            id: ids[2],
            version: 1,
            payload: &payloads[2],
            statement_bytes: 1000,
            certs: &only_a,
        },
    ];
    let (singles, batches) = seal_per_key(&items).unwrap();
    assert_eq!(batches.len(), 1);
    let batch = &batches[0];
    assert_eq!(
        (batch.agent.as_str(), batch.key),
        ("edge-a", a.wrap.fingerprint())
    );
    assert_eq!(batch.items, ids);
    let opened = batch::open(&a_wrap, &batch.envelope).unwrap();
    let got: Vec<(CredentialId, u64)> = opened
        .iter()
        .map(|i| (i.credential_id, i.version))
        .collect();
    assert_eq!(got, [(ids[0], 1), (ids[1], 4), (ids[2], 1)]);
    for (item, p) in opened.iter().zip(&payloads) {
        p.bytes()
            .expose(|want| item.payload.expose(|got| assert_eq!(got, want)));
    }
    assert_eq!(singles.len(), 1);
    let single = &singles[0];
    assert_eq!(
        (single.agent.as_str(), single.credential_id),
        ("edge-b", ids[0])
    );
    let plain = open(&b_wrap, &single.envelope).unwrap();
    payloads[0]
        .bytes()
        .expose(|want| plain.expose(|got| assert_eq!(got, want)));
    // A batch envelope is sealed to its agent's key only.
    assert!(batch::open(&b_wrap, &batch.envelope).is_err());
}

#[test]
fn a_batch_is_cut_at_64_items_and_at_512_kib_of_plaintext() {
    let ca = OrgCa::generate("Org", Validity::days_from(NOW - 10, 365)).unwrap();
    let (a, _, _) = issue_with_keys(&ca, "edge-a");
    let certs = [a];
    let small = payload("x");
    let many: Vec<Sealable<'_>> = (0..130)
        .map(|_| Sealable {
            id: CredentialId::random(),
            version: 1,
            payload: &small,
            statement_bytes: 1000,
            certs: &certs,
        })
        .collect();
    let (singles, batches) = seal_per_key(&many).unwrap();
    let sizes: Vec<usize> = batches.iter().map(|b| b.items.len()).collect();
    assert_eq!(sizes, [64, 64, 2], "130 = 64 + 64 + 2 (a pair is a batch)");
    assert!(singles.is_empty());
    // Ten payloads of 60,000 bytes: 8 fit in 512 KiB, then a pair.
    let big = payload(&"y".repeat(60_000));
    let large: Vec<Sealable<'_>> = (0..10)
        .map(|_| Sealable {
            id: CredentialId::random(),
            version: 1,
            payload: &big,
            statement_bytes: 1000,
            certs: &certs,
        })
        .collect();
    let (singles, batches) = seal_per_key(&large).unwrap();
    let sizes: Vec<usize> = batches.iter().map(|b| b.items.len()).collect();
    assert_eq!(sizes, [8, 2]);
    assert!(singles.is_empty());
    // One left over after a cut goes as a single envelope.
    let (singles, batches) = seal_per_key(&large[..9]).unwrap();
    assert_eq!((batches.len(), singles.len()), (1, 1));
    // Statements of 20 KiB (a long explicit scope): 9 fit in the 192 KiB a delivery carries.
    let wide: Vec<Sealable<'_>> = (0..20)
        .map(|_| Sealable {
            id: CredentialId::random(),
            version: 1,
            payload: &small,
            statement_bytes: 20 * 1024,
            certs: &certs,
        })
        .collect();
    let (_, batches) = seal_per_key(&wide).unwrap();
    let sizes: Vec<usize> = batches.iter().map(|b| b.items.len()).collect();
    assert_eq!(sizes, [9, 9, 2]);
}

#[test]
fn two_agents_certified_with_one_key_get_a_batch_each() {
    let ca = OrgCa::generate("Org", Validity::days_from(NOW - 10, 365)).unwrap();
    let (a, _, _) = issue_with_keys(&ca, "edge-a");
    let mut twin = a.clone();
    twin.agent_id = tessera_proto::ids::AgentId::new("edge-twin").unwrap();
    let certs = [a, twin];
    let p = payload("z");
    let items: Vec<Sealable<'_>> = (0..2)
        .map(|_| Sealable {
            id: CredentialId::random(),
            version: 1,
            payload: &p,
            statement_bytes: 1000,
            certs: &certs,
        })
        .collect();
    let (_, batches) = seal_per_key(&items).unwrap();
    let agents: Vec<&str> = batches.iter().map(|b| b.agent.as_str()).collect();
    assert_eq!(agents, ["edge-a", "edge-twin"]);
}
