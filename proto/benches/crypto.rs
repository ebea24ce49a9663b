//! `cargo bench -p tessera-proto`: the per-envelope crypto costs that bound every sync figure.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;

use criterion::{criterion_group, criterion_main, Criterion};
use tessera_proto::cert::{EnrollmentRequest, IdentityKey, OrgCa, Validity};
use tessera_proto::commitment::{self, Salt};
use tessera_proto::envelope::{self, WrapPrivateKey};
use tessera_proto::ids::{AgentId, CredentialId};
use tessera_proto::receipt::{Receipt, ReceiptBody, ReceiptFact};
use tessera_proto::secret::SecretPayload;
use tessera_proto::statement::RevocationList;

const NOW: i64 = 1_790_000_000;

fn crypto(c: &mut Criterion) {
    let key = WrapPrivateKey::generate().unwrap();
    let payload =
        SecretPayload::from_json(br#"{"password":"correct horse battery staple","user":"netops"}"#)
            .unwrap();
    let env = envelope::seal(key.public_key(), payload.bytes()).unwrap();

    c.bench_function("envelope seal (RSA-2048 OAEP public + AES-GCM)", |b| {
        b.iter(|| envelope::seal(key.public_key(), payload.bytes()).unwrap());
    });
    c.bench_function("envelope open (RSA-2048 OAEP private + AES-GCM)", |b| {
        b.iter(|| envelope::open(&key, &env).unwrap());
    });

    let id = CredentialId::random();
    let salt = Salt::random();
    let commit = commitment::compute(&salt, &id, 1, &payload);
    c.bench_function("commitment compute", |b| {
        b.iter(|| commitment::compute(&salt, &id, 1, &payload));
    });
    c.bench_function("commitment verify (constant time)", |b| {
        b.iter(|| commitment::verify(&salt, &id, 1, &payload, &commit).unwrap());
    });

    let ca = OrgCa::generate("Bench", Validity::days_from(NOW, 3650)).unwrap();
    let identity = IdentityKey::generate().unwrap();
    let request = EnrollmentRequest::new(
        AgentId::new("bench").unwrap(),
        &identity,
        key.public_key(),
        BTreeMap::new(),
        NOW,
    )
    .unwrap();
    let cert = ca
        .issue_agent(&request, Validity::days_from(NOW, 365))
        .unwrap();
    let crl = RevocationList::empty();
    c.bench_function(
        "agent certificate verify (parse + ECDSA P-256 + wrap key)",
        |b| {
            b.iter(|| ca.pinned().verify_agent(&cert, NOW, &crl).unwrap());
        },
    );
    // What the relay does with every delivery's receipt (docs/protocol.md, "Receipts"): canonical check and parse.
    let receipt = Receipt::sign(
        &ReceiptBody::new(
            AgentId::new("bench").unwrap(),
            ca.pinned().verify_agent(&cert, NOW, &crl).unwrap().serial,
            NOW,
            ReceiptFact::Stored {
                delivery_id: uuid::Uuid::from_u128(1),
                credential_id: id,
                version: 1,
                digest: commit,
            },
        ),
        &identity,
    )
    .unwrap();
    c.bench_function("receipt claimed (canonical check + parse)", |b| {
        b.iter(|| receipt.claimed().unwrap());
    });
    c.bench_function("payload canonicalise", |b| {
        b.iter(|| {
            SecretPayload::from_json(
                br#"{"user":"netops","password":"correct horse battery staple"}"#,
            )
            .unwrap()
        });
    });
    c.bench_function("RSA-2048 key generation", |b| {
        b.iter(|| WrapPrivateKey::generate().unwrap());
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = crypto
}
criterion_main!(benches);
