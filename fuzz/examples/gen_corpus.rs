//! Writes the fuzzing fixtures and the seed corpora (docs/fuzzing.md).
//!
//! ```text
//! cargo run --manifest-path fuzz/Cargo.toml --example gen_corpus -- seeds      # fuzz/corpus/<target>/seed-*
//! cargo run --manifest-path fuzz/Cargo.toml --example gen_corpus -- fixtures   # new keys in fuzz/fixtures/
//! ```
//!
//! `fixtures` makes a new CA, operator, agent and wrap key; the committed seeds are signed by the committed
//! fixtures, so after `fixtures` run `seeds` again (a rebuild is needed in between: the fuzz crate includes the
//! fixture files at compile time).
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tessera_fuzz::{fixtures, tbs_of, Fixtures, AGENT_ID, ENVELOPE_PLAINTEXT, NOW, OPERATOR_ID};
use tessera_proto::cert::{EnrollmentRequest, IdentityKey, OrgCa, Validity};
use tessera_proto::commitment::{self, Commitment, Salt};
use tessera_proto::envelope::{self, KeyFingerprint, WrapPrivateKey};
use tessera_proto::ids::{AgentId, CredentialId, CredentialName, OperatorId, TemplateName};
use tessera_proto::secret::{SecretBytes, SecretPayload};
use tessera_proto::statement::{CredentialStatement, RevocationList, Scope, Signed};
use tessera_proto::wire::{
    self, AgentState, CredentialMissing, CredentialStore, CredentialStored, CredentialUnavailable,
    Down, Held, JobDispatch, JobResult, PublicReason, RefusalReason, Register, RegisterAck,
    RegistrationMode, RevocationUpdate, RewrapRefused, RewrapRequest, RewrapResponse, Status,
    StoreOutcome, Up,
};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
    println!("{} ({} bytes)", path.display(), bytes.len());
}

fn gen_fixtures() {
    let dir = root().join("fixtures");
    let ca = OrgCa::generate("Fuzz", Validity::days_from(NOW, 3650)).unwrap();
    let operator = IdentityKey::generate().unwrap();
    let operator_cert = ca
        .issue_operator(
            &OperatorId::new(OPERATOR_ID).unwrap(),
            operator.public_key(),
            Validity::days_from(NOW, 365),
        )
        .unwrap();
    let agent = IdentityKey::generate().unwrap();
    let wrap = WrapPrivateKey::generate().unwrap();
    let request = EnrollmentRequest::new(
        AgentId::new(AGENT_ID).unwrap(),
        &agent,
        wrap.public_key(),
        BTreeMap::new(),
        NOW,
    )
    .unwrap();
    let agent_cert = ca
        .issue_agent(&request, Validity::days_from(NOW, 365))
        .unwrap();
    let service = IdentityKey::generate().unwrap();
    let service_cert = ca
        .issue_service(
            "fuzz-broker",
            &["localhost"],
            &[],
            service.public_key(),
            Validity::days_from(NOW, 365),
        )
        .unwrap();
    let env = envelope::seal(
        wrap.public_key(),
        &SecretBytes::copy_from(ENVELOPE_PLAINTEXT),
    )
    .unwrap();

    write(&dir.join("ca.der"), ca.cert_der());
    ca.key()
        .to_pkcs8_der()
        .unwrap()
        .expose(|k| write(&dir.join("ca.key.der"), k));
    write(&dir.join("operator.der"), &operator_cert);
    operator
        .to_pkcs8_der()
        .unwrap()
        .expose(|k| write(&dir.join("operator.key.der"), k));
    write(&dir.join("agent.der"), &agent_cert);
    wrap.to_pkcs8_der()
        .expose(|k| write(&dir.join("wrap.key.der"), k));
    write(&dir.join("service.der"), &service_cert);
    write(
        &dir.join("envelope.json"),
        &serde_json::to_vec_pretty(&env).unwrap(),
    );
}

fn uuid(n: u8) -> uuid::Uuid {
    uuid::Uuid::from_bytes([n; 16])
}

fn credential_id() -> CredentialId {
    "6a1f0c52-3b7e-4d7a-9c1e-2f4b5a6c7d8e".parse().unwrap()
}

fn statement(scope: Scope, version: u64) -> CredentialStatement {
    let salt = Salt([7; 32]);
    let payload = SecretPayload::from_json(ENVELOPE_PLAINTEXT).unwrap();
    CredentialStatement::new(
        credential_id(),
        version,
        0,
        CredentialName::new("core-ssh").unwrap(),
        scope,
        salt,
        commitment::compute(&salt, &credential_id(), version, &payload),
        OperatorId::new(OPERATOR_ID).unwrap(),
        NOW,
    )
}

fn signed(fx: &Fixtures, s: &CredentialStatement) -> Signed<CredentialStatement> {
    Signed::sign(s, &fx.operator_key, &fx.operator_cert).unwrap()
}

fn revocation_list(fx: &Fixtures) -> (RevocationList, Signed<RevocationList>) {
    let list = fx.revoking.clone();
    let signed = list.sign(&fx.ca).unwrap();
    (list, signed)
}

fn ups(fx: &Fixtures) -> Vec<(&'static str, Up)> {
    vec![
        (
            "register-warm",
            Up::Register(Register {
                mode: RegistrationMode::WarmReconnect,
                cert: fx.agent_cert.clone(),
                held: vec![Held {
                    credential_id: credential_id(),
                    version: 3,
                }],
                agent_version: "0.1.0".into(),
                capabilities: Vec::new(),
            }),
        ),
        (
            "register-first",
            Up::Register(Register {
                mode: RegistrationMode::FirstRegistration,
                cert: fx.agent_cert.clone(),
                held: vec![],
                agent_version: "0.1.0".into(),
                capabilities: Vec::new(),
            }),
        ),
        (
            "rewrap-response",
            Up::RewrapResponse(RewrapResponse {
                request_id: uuid(1),
                nonce: [9; 32],
                peer: AgentId::new("peer-1").unwrap(),
                credential_id: credential_id(),
                version: 1,
                target_key: KeyFingerprint(fx.wrap.public_key().fingerprint().0),
                envelope: fx.envelope.clone(),
            }),
        ),
        (
            "rewrap-refused",
            Up::RewrapRefused(RewrapRefused {
                request_id: uuid(2),
                nonce: [1; 32],
                reason: RefusalReason::NotInScope,
            }),
        ),
        (
            "credential-stored",
            Up::CredentialStored(CredentialStored {
                delivery_id: uuid(3),
                credential_id: credential_id(),
                version: 2,
                outcome: StoreOutcome::Stored {
                    digest: Commitment([5; 32]),
                },
                receipt: None,
            }),
        ),
        (
            "credential-refused",
            Up::CredentialStored(CredentialStored {
                delivery_id: uuid(4),
                credential_id: credential_id(),
                version: 2,
                outcome: StoreOutcome::Refused {
                    reason: RefusalReason::BadEnvelope,
                },
                receipt: None,
            }),
        ),
        (
            "credential-missing",
            Up::CredentialMissing(CredentialMissing {
                request_id: uuid(5),
                name: CredentialName::new("core-ssh").unwrap(),
            }),
        ),
        (
            "job-result",
            Up::JobResult(JobResult {
                job_id: uuid(6),
                exit_code: Some(0),
                stdout: "ok\n".into(),
                stderr: String::new(),
                error: None,
                meta: BTreeMap::from([("duration_ms".to_owned(), "12".to_owned())]),
            }),
        ),
    ]
}

fn downs(fx: &Fixtures) -> Vec<(&'static str, Down)> {
    let st = signed(fx, &statement(Scope::All, 1));
    vec![
        (
            "register-ack",
            Down::RegisterAck(RegisterAck {
                mode: RegistrationMode::WarmReconnect,
                state: AgentState::Backfilling,
                backfill: 7,
                serial: None,
            }),
        ),
        (
            "rewrap-request",
            Down::RewrapRequest(RewrapRequest {
                request_id: uuid(7),
                nonce: [3; 32],
                credential_id: credential_id(),
                version: 1,
                statement: st.clone(),
                target: AgentId::new(AGENT_ID).unwrap(),
                target_cert: fx.agent_cert.clone(),
            }),
        ),
        (
            "credential-store",
            Down::CredentialStore(CredentialStore {
                delivery_id: uuid(8),
                statement: st,
                envelope: fx.envelope.clone(),
                request_id: Some(uuid(9)),
                target_key: None,
            }),
        ),
        (
            "credential-unavailable",
            Down::CredentialUnavailable(CredentialUnavailable {
                request_id: uuid(10),
                name: CredentialName::new("db").unwrap(),
                reason: PublicReason::NoPeer,
            }),
        ),
        (
            "job-dispatch",
            Down::JobDispatch(JobDispatch {
                job_id: uuid(11),
                template: TemplateName::new("backup-config").unwrap(),
                params: BTreeMap::from([("host".to_owned(), "10.0.0.1".to_owned())]),
                credentials: vec![CredentialName::new("core-ssh").unwrap()],
                expires_at: NOW + 300,
            }),
        ),
        (
            "revocation-update",
            Down::RevocationUpdate(RevocationUpdate {
                list: revocation_list(fx).1,
            }),
        ),
    ]
}

fn with_mode(mode: u8, rest: &[u8]) -> Vec<u8> {
    let mut out = vec![mode];
    out.extend_from_slice(rest);
    out
}

fn seed(target: &str, name: &str, bytes: &[u8]) {
    write(
        &root()
            .join("corpus")
            .join(target)
            .join(format!("seed-{name}")),
        bytes,
    );
}

fn gen_seeds() {
    let fx = fixtures();
    seeds_wire(fx);
    seeds_statement(fx);
    seeds_envelope(fx);
    seeds_cert(fx);
    seeds_local_api();
    seeds_config();
    seeds_operator(fx);
}

fn seeds_wire(fx: &Fixtures) {
    // wire_decode: whole frames, as they travel.
    for (name, msg) in ups(fx) {
        seed(
            "wire_decode",
            &format!("up-{name}"),
            &wire::encode(&msg).unwrap(),
        );
    }
    for (name, msg) in downs(fx) {
        seed(
            "wire_decode",
            &format!("down-{name}"),
            &wire::encode(&msg).unwrap(),
        );
    }
    let status = Status {
        state: AgentState::Online,
        at: NOW,
    };
    seed("wire_decode", "status", &wire::encode(&status).unwrap());
}

fn seeds_statement(fx: &Fixtures) {
    // statement: 0 = wire JSON, 1 = credential payload (signed by the harness), 2 = revocation payload.
    let explicit = Scope::explicit([
        AgentId::new("agent-b").unwrap(),
        AgentId::new(AGENT_ID).unwrap(),
    ]);
    for (name, s) in [
        ("all", statement(Scope::All, 1)),
        ("explicit", statement(explicit, 2)),
    ] {
        let st = signed(fx, &s);
        seed(
            "statement",
            &format!("json-credential-{name}"),
            &with_mode(0, &serde_json::to_vec(&st).unwrap()),
        );
        seed(
            "statement",
            &format!("payload-credential-{name}"),
            &with_mode(1, &st.payload),
        );
    }
    let (_, list) = revocation_list(fx);
    seed(
        "statement",
        "json-revocation",
        &with_mode(0, &serde_json::to_vec(&list).unwrap()),
    );
    seed(
        "statement",
        "payload-revocation",
        &with_mode(2, &list.payload),
    );
}

fn seeds_envelope(fx: &Fixtures) {
    // envelope_open: 0 = JSON, 1 = XOR into a field of the fixture envelope, 2 = replace a field, 3 = seal/open.
    seed(
        "envelope_open",
        "json",
        &with_mode(0, &serde_json::to_vec(&fx.envelope).unwrap()),
    );
    for (i, field) in ["encrypted-key", "iv", "ciphertext", "tag"]
        .iter()
        .enumerate()
    {
        let i = u8::try_from(i).unwrap();
        seed("envelope_open", &format!("xor-{field}"), &[1, i, 0, 0, 1]);
        seed(
            "envelope_open",
            &format!("replace-{field}"),
            &[2, i, b'A', b'A', b'=', b'='],
        );
    }
    seed("envelope_open", "seal", &with_mode(3, ENVELOPE_PLAINTEXT));
    // batch_plaintext: a plaintext of two items, and one of a single empty payload.
    let a = SecretBytes::copy_from(ENVELOPE_PLAINTEXT);
    let b = SecretBytes::copy_from(br#"{"kind":"token","value":"x"}"#);
    let id = |n: u128| CredentialId::from_uuid(uuid::Uuid::from_u128(n));
    let two = envelope::batch::encode(&[(id(1), 1, &a), (id(2), 7, &b)]).unwrap();
    two.expose(|p| seed("batch_plaintext", "two", p));
    let empty = SecretBytes::copy_from(b"");
    let one = envelope::batch::encode(&[(id(3), 2, &empty)]).unwrap();
    one.expose(|p| seed("batch_plaintext", "one-empty", p));
}

fn seeds_cert(fx: &Fixtures) {
    // cert_verify: 0 = certificate DER, 1 = TBSCertificate (signed by the harness with the CA key).
    for (name, der) in [
        ("agent", fx.agent_cert.as_slice()),
        ("operator", fx.operator_cert.as_slice()),
        ("service", fx.service_cert.as_slice()),
        ("ca", fx.ca.cert_der()),
    ] {
        seed("cert_verify", &format!("der-{name}"), &with_mode(0, der));
        seed(
            "cert_verify",
            &format!("tbs-{name}"),
            &with_mode(1, tbs_of(der).unwrap()),
        );
    }
}

fn seeds_local_api() {
    // local_api_request: request lines (server side) and answer header lines (client side).
    for (name, line) in [
        ("get", &br#"{"op":"get","name":"db-password"}"#[..]),
        ("meta", br#"{"op":"meta","name":"db-password"}"#),
        ("list", br#"{"op":"list"}"#),
        ("header-error", br#"{"ok":false,"error":"NOT_GRANTED","message":"uid 1000 may not read db"}"#),
        (
            "header-get",
            br#"{"ok":true,"meta":{"id":"6a1f0c52-3b7e-4d7a-9c1e-2f4b5a6c7d8e","name":"db","version":1,"scope_revision":0,"creator":"alice","stored_at":1790000000,"commitment":"BQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQU="},"secret_len":17}"#,
        ),
        ("header-list", br#"{"ok":true,"list":[]}"#),
    ] {
        let mut bytes = line.to_vec();
        bytes.push(b'\n');
        seed("local_api_request", name, &bytes);
    }
}

fn seeds_config() {
    // agent_config: the shipped example configurations.
    let repo = root().join("..");
    for (name, path) in [
        ("testdata", "agent/testdata/agent.toml"),
        ("package", "cross/package.d/agent.toml"),
    ] {
        seed(
            "agent_config",
            name,
            &std::fs::read(repo.join(path)).unwrap(),
        );
    }
    seed("agent_config", "empty", b"");
}

/// The seeds that must pass verification do (a seed that fails early only teaches the fuzzer JSON errors).
fn check_seeds() {
    let fx = fixtures();
    let corpus = root().join("corpus");
    let read = |target: &str, name: &str| std::fs::read(corpus.join(target).join(name)).unwrap();
    for name in ["seed-json-credential-all", "seed-json-credential-explicit"] {
        let bytes = read("statement", name);
        let st: Signed<CredentialStatement> = serde_json::from_slice(&bytes[1..]).unwrap();
        st.verify(fx.ca.pinned(), &RevocationList::empty()).unwrap();
    }
    let bytes = read("statement", "seed-json-revocation");
    let st: Signed<RevocationList> = serde_json::from_slice(&bytes[1..]).unwrap();
    st.verify(fx.ca.pinned(), &RevocationList::empty()).unwrap();
    let bytes = read("envelope_open", "seed-json");
    let env: envelope::Envelope = serde_json::from_slice(&bytes[1..]).unwrap();
    envelope::open(&fx.wrap, &env)
        .unwrap()
        .expose(|p| assert_eq!(p, ENVELOPE_PLAINTEXT));
    for name in ["seed-der-agent", "seed-tbs-agent"] {
        let bytes = read("cert_verify", name);
        let der = if bytes[0] == 0 {
            bytes[1..].to_vec()
        } else {
            tessera_fuzz::certificate_with_tbs(&bytes[1..], fx.ca.key())
        };
        fx.ca
            .pinned()
            .verify_agent(&der, NOW, &RevocationList::empty())
            .unwrap();
    }
    let frames = std::fs::read_dir(corpus.join("wire_decode")).unwrap();
    for entry in frames {
        let path = entry.unwrap().path();
        let is_seed = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("seed-"));
        if !is_seed {
            continue; // libFuzzer's own finds: not all of them decode
        }
        let bytes = std::fs::read(&path).unwrap();
        let ok = wire::decode::<Up>(&bytes).is_ok()
            || wire::decode::<Down>(&bytes).is_ok()
            || wire::decode::<Status>(&bytes).is_ok();
        assert!(ok, "{} decodes", path.display());
    }
    println!("seeds verify");
}

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("fixtures") => gen_fixtures(),
        Some("seeds") => {
            gen_seeds();
            check_seeds();
        }
        _ => {
            eprintln!("usage: gen_corpus fixtures|seeds");
            std::process::exit(2);
        }
    }
}

fn seeds_operator(fx: &Fixtures) {
    // operator_answers: a credential list with a signed statement, an agent list, an empty trail, no list.
    let st = signed(fx, &statement(Scope::All, 1));
    let body = st
        .parse_unverified(tessera_proto::statement::CREDENTIAL_KIND)
        .unwrap();
    let creds = serde_json::json!([{
        "id": body.credential_id, "name": body.name, "version": body.version, "scope": body.scope,
        "deleted": false,
        "sync": {"synced": 1, "of": 1, "pending": 0, "stalled": 0, "integrity_failure": false},
        "statement": st,
    }]);
    seed(
        "operator_answers",
        "credentials",
        &serde_json::to_vec(&creds).unwrap(),
    );
    let agents = serde_json::json!([{
        "id": AGENT_ID, "state": "online", "last_seen_ms": 0, "mode": "first_registration",
        "cert": tessera_proto::b64_encode(&fx.agent_cert),
    }]);
    seed(
        "operator_answers",
        "agents",
        &serde_json::to_vec(&agents).unwrap(),
    );
    seed("operator_answers", "empty", b"[]");
    seed("operator_answers", "null", b"null");
}
