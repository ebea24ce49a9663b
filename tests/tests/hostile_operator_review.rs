//! The operator's hostile suite, second part: attacks a review found on the workstation (a compromised relay, the
//! scriptable lying admin API, against the real `tessera` commands). Each test asserts the secure behaviour; each
//! failed before its fix (expired signers' backdated statements, re-signing a since-revoked operator's commitment,
//! a scope built from the relay's agent list, replaced keys, lost answers that led to a name lock-out or two
//! statements for one revision, an import that failed half-way, terminal control sequences, another service posing
//! as the relay, a relay that never answers, a new operator directory without the revocation list).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::too_many_lines
)]

use std::path::{Path, PathBuf};

use tessera_proto::cert::{IdentityKey, PinnedCa};
use tessera_proto::commitment::{self, Salt};
use tessera_proto::ids::{CredentialId, CredentialName, OperatorId};
use tessera_proto::secret::SecretPayload;
use tessera_proto::statement::{CredentialStatement, RevocationList, Scope, Signed};
use tessera_system_tests::bins::bin_dir;
use tessera_system_tests::cluster::{AgentProc, Cluster};
use tessera_system_tests::lying_admin::{LyingAdmin, Received};
use tessera_system_tests::operator_calls::{
    agent_view, cred_view, explicit, ok, parse, pem_der, posted, puts, sealed_to, set, tessera,
};

fn now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// A cluster with three certified agents (not started), the lying relay answering honestly about them.
struct World {
    _tmp: tempfile::TempDir,
    c: Cluster,
    agents: Vec<AgentProc>,
    der: Vec<Vec<u8>>,
    relay: LyingAdmin,
    alice: PathBuf,
}

fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let c = Cluster::new(tmp.path(), &bin_dir(), "").unwrap();
    let mut agents = Vec::new();
    for id in ["edge-1", "edge-2", "edge-3"] {
        agents.push(c.agent(id, "").unwrap());
    }
    let der: Vec<Vec<u8>> = agents.iter().map(|a| pem_der(&a.cert)).collect();
    let relay = LyingAdmin::for_cluster(&c);
    relay.answer_fleet(serde_json::json!([
        agent_view("edge-1", &der[0]),
        agent_view("edge-2", &der[1]),
        agent_view("edge-3", &der[2]),
    ]));
    let alice = c.operator_dir();
    World {
        _tmp: tmp,
        c,
        agents,
        der,
        relay,
        alice,
    }
}

impl World {
    fn ca(&self) -> PinnedCa {
        PinnedCa::from_der(&self.c.ca_der().unwrap()).unwrap()
    }

    /// `ca issue-operator --id ID [--days D]` into `root/ID`.
    fn operator(&self, id: &str, days: Option<&str>) -> PathBuf {
        let dir = self.c.root().join(id);
        let mut cmd = self.c.operator_cmd();
        cmd.args(["ca", "issue-operator", "--id", id, "--dir"])
            .arg(self.c.ca_dir())
            .arg("--out-dir")
            .arg(&dir);
        if let Some(d) = days {
            cmd.args(["--days", d]);
        }
        let o = cmd.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        dir
    }
}

/// Signs `st` with the operator key in `dir` (what whoever holds that key can do, with the relay serving it).
fn sign_as(dir: &Path, st: &CredentialStatement) -> serde_json::Value {
    let key =
        tessera_proto::pem_files::pkcs8_key(&std::fs::read(dir.join("operator.key")).unwrap())
            .unwrap();
    let key = IdentityKey::from_pkcs8_der(&key).unwrap();
    let cert = pem_der(&dir.join("operator.pem"));
    serde_json::to_value(Signed::sign(st, &key, &cert).unwrap()).unwrap()
}

/// F1. An operator certificate that has EXPIRED (not revoked: offboarding by letting it lapse) still signs
/// statements the workstation accepts, because a statement's signer is checked at its self-declared `created_at`.
/// The relay serves a backdated statement from that key that widens db's scope to `all`; alice's catalogue learns it
/// as "newer" and her next `cred rotate db` seals the new secret to every agent, printing no scope change.
#[test]
fn expired_operator_backdated_statement_widens_the_next_rotation() {
    let w = world();
    let out = ok(&tessera(
        &w.c,
        &w.alice,
        &["cred", "put", "db", "--agent", "edge-1"],
        Some("db-v1"),
    ));
    assert_eq!(out["version"], 1);
    let (_, db1) = posted(&w.relay.take());

    // An operator whose certificate ended 300 s ago (`--days 0`: valid from now-600 to now-300).
    let old = w.operator("olddev", Some("0"));
    assert!(
        w.ca()
            .verify_operator(
                &pem_der(&old.join("operator.pem")),
                now(),
                &RevocationList::empty()
            )
            .is_err(),
        "olddev's certificate should be expired"
    );
    let mut st = parse(&db1);
    st.scope_revision = 1;
    st.scope = Scope::All;
    st.creator = OperatorId::new("olddev").unwrap();
    st.created_at = now() - 450; // inside olddev's old validity window
    let forged = sign_as(&old, &st);
    w.relay
        .answer("/v1/credentials", serde_json::json!([cred_view(&forged)]));

    let o = tessera(&w.c, &w.alice, &["cred", "rotate", "db"], Some("db-v2"));
    let sent = w.relay.take();
    if o.status.success() {
        let (body, db2) = posted(&sent);
        assert_eq!(
            parse(&db2).scope,
            explicit(&["edge-1"]),
            "an expired operator's backdated statement widened db's scope: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(sealed_to(&body), set(&["edge-1"]));
    } else {
        assert!(puts(&sent).is_empty());
    }
}

/// F2. A statement learnt from an operator who is revoked afterwards stays in the catalogue, and `grant` re-signs
/// its salt and commitment (the revoked operator's chosen plaintext) under alice's key: agents that now refuse the
/// revoked signer accept the same plaintext as alice's.
#[test]
fn grant_re_signs_the_commitment_of_a_since_revoked_operator() {
    let w = world();
    ok(&tessera(
        &w.c,
        &w.alice,
        &["cred", "put", "db", "--agent", "edge-1"],
        Some("db-v1"),
    ));
    let (_, db1) = posted(&w.relay.take());
    let mallory = w.operator("mallory", None);
    // Mallory rotates db to a secret she knows (she can seal it to edge-1 herself: wrap keys are public).
    let mut st = parse(&db1);
    st.version = 2;
    st.creator = OperatorId::new("mallory").unwrap();
    st.created_at = now();
    st.salt = Salt::random();
    let known = SecretPayload::from_plain_text("mallory-knows-this").unwrap();
    st.commitment = commitment::compute(&st.salt, &st.credential_id, 2, &known);
    let evil_commitment = st.commitment;
    let db2 = sign_as(&mallory, &st);
    w.relay
        .answer("/v1/credentials", serde_json::json!([cred_view(&db2)]));
    let out = ok(&tessera(&w.c, &w.alice, &["cred", "adopt", "db"], None));
    assert_eq!(out[0]["outcome"], "newer");
    // Mallory is found out and revoked; the list is in alice's operator directory.
    let o =
        w.c.operator_cmd()
            .args(["ca", "revoke", "--dir"])
            .arg(w.c.ca_dir())
            .arg("--cert")
            .arg(mallory.join("operator.pem"))
            .output()
            .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    w.relay.take();
    // The relay keeps serving mallory's statement; alice grants edge-2.
    let o = tessera(&w.c, &w.alice, &["grant", "db", "edge-2"], None);
    let sent = w.relay.take();
    for (_, s) in puts(&sent) {
        assert_ne!(
            parse(&s).commitment,
            evil_commitment,
            "alice re-signed the revoked operator's commitment: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// F3. `revoke NAME AGENT` on scope `all` builds the new explicit scope from the RELAY's agent list: a relay that
/// hides certified agents gets them silently dropped from the scope too (the operator asked to remove one agent).
#[test]
fn revoke_on_scope_all_silently_drops_agents_the_relay_hides() {
    let w = world();
    ok(&tessera(
        &w.c,
        &w.alice,
        &["cred", "put", "web"],
        Some("web-v1"),
    ));
    let (_, web1) = posted(&w.relay.take());
    w.relay
        .answer("/v1/credentials", serde_json::json!([cred_view(&web1)]));
    // The relay hides edge-3 (certified, live in issued.json).
    w.relay.answer(
        "/v1/agents",
        serde_json::json!([
            agent_view("edge-1", &w.der[0]),
            agent_view("edge-2", &w.der[1]),
        ]),
    );
    let o = tessera(&w.c, &w.alice, &["revoke", "web", "edge-1"], None);
    let sent = w.relay.take();
    if o.status.success() {
        let (_, s) = posted(&sent);
        assert_eq!(
            parse(&s).scope,
            explicit(&["edge-2", "edge-3"]),
            "revoking edge-1 also removed edge-3, which the relay hid; stderr: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    } else {
        assert!(puts(&sent).is_empty());
    }
}

/// F4. `ca issue-agent --replace --push` revokes the old certificate and sends the list to the relay: a second
/// workstation whose `issued.json` and `revocations.json` predate the replacement learns the revocation from the
/// relay's copy and refuses to seal to the replaced key. (A relay that also withholds the pushed list from a stale
/// workstation is the revocation-freshness risk of docs/threat-model.md.)
#[test]
fn stale_registry_seals_to_a_replaced_key() {
    let w = world();
    let bob = w.operator("bob", None); // bob's registry copy: edge-1..3 with their first certificates
    let old_fp = w
        .ca()
        .verify_agent(&w.der[2], now(), &RevocationList::empty())
        .unwrap()
        .wrap
        .fingerprint();
    // edge-3 re-enrolled (its old key is considered compromised), on the CA workstation.
    let req = w.agents[2].dir.join("request.json");
    let o =
        w.c.operator_cmd()
            .args(["ca", "issue-agent", "--replace", "--push", "--dir"])
            .arg(w.c.ca_dir())
            .arg(&req)
            .arg("--out")
            .arg(w.c.root().join("edge-3-new.pem"))
            .output()
            .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let pushed: Vec<Received> = w
        .relay
        .take()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/revocations")
        .collect();
    assert_eq!(pushed.len(), 1, "--push sent the new list");
    w.relay.answer(
        "/v1/revocations",
        serde_json::from_slice(&pushed[0].body).unwrap(),
    );
    // The relay shows edge-3's old certificate; bob puts a credential for edge-3.
    let o = tessera(
        &w.c,
        &bob,
        &["cred", "put", "bobs", "--agent", "edge-3"],
        Some("bobs-secret-0123456789"),
    );
    let sent = w.relay.take();
    assert!(!o.status.success(), "bob sealed to edge-3's replaced key");
    for (body, _) in puts(&sent) {
        assert!(
            body.envelopes.iter().all(|e| e.key != old_fp),
            "sealed to edge-3's replaced (revoked) key; stdout {}",
            String::from_utf8_lossy(&o.stdout)
        );
    }
}

/// F5. The commitment is HMAC(salt, id ‖ version ‖ plaintext) and the salt is in the statement the relay stores:
/// a low-entropy secret (a PIN, a short password) can be recovered offline by the relay. The protocol cannot hide
/// that (docs/threat-model.md); `cred put` warns about such a secret, without naming it, and stays quiet for a long
/// one.
#[test]
fn a_low_entropy_secret_is_warned_about() {
    let w = world();
    let o = tessera(&w.c, &w.alice, &["cred", "put", "pin"], Some("4821"));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("can test guesses offline"), "{stderr}");
    assert!(
        !stderr.contains("4821"),
        "the warning names the secret: {stderr}"
    );
    let (_, s) = posted(&w.relay.take());
    let st = parse(&s);
    // What the warning is about: the relay finds it.
    let found = (0..10_000).map(|n| format!("{n:04}")).find(|guess| {
        let p = SecretPayload::from_plain_text(guess).unwrap();
        commitment::compute(&st.salt, &st.credential_id, st.version, &p) == st.commitment
    });
    assert_eq!(found.as_deref(), Some("4821"));
    let o = tessera(
        &w.c,
        &w.alice,
        &["cred", "put", "token"],
        Some("k7Qz-9vXe-2LmP-wR4t"),
    );
    assert!(!String::from_utf8_lossy(&o.stderr).contains("guesses"));
}

/// F6. The relay stores a put and then answers an error: the operator's retry of the same `cred put` is refused
/// ("the catalogue does not know ... run adopt") for the credential the operator itself just signed.
#[test]
fn a_put_stored_then_failed_locks_the_operator_out_of_its_own_name() {
    let w = world();
    w.relay.answer_write(
        "POST",
        "/v1/credentials",
        500,
        serde_json::json!({"error": "internal", "message": "storage failure"}),
    );
    let o = tessera(
        &w.c,
        &w.alice,
        &["cred", "put", "db", "--agent", "edge-1"],
        Some("db-v1"),
    );
    assert!(!o.status.success());
    let (_, db1) = posted(&w.relay.take());
    // It was stored after all; the relay now lists it (alice's own signature) and accepts writes.
    w.relay.answer_write(
        "POST",
        "/v1/credentials",
        200,
        serde_json::json!({"ok": true}),
    );
    w.relay
        .answer("/v1/credentials", serde_json::json!([cred_view(&db1)]));
    let o = tessera(
        &w.c,
        &w.alice,
        &["cred", "put", "db", "--agent", "edge-1"],
        Some("db-v1"),
    );
    assert!(
        o.status.success(),
        "retrying the operator's own put is refused: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// F7. `cred import` checks names one at a time while it signs: a name the relay lists but the catalogue does not
/// know, sorted after others, fails the import with exit code 2 ("nothing was signed or sealed") after the earlier
/// files WERE signed, sealed and sent, and without reporting which.
#[test]
fn import_refusal_after_earlier_items_were_signed_and_sent() {
    let w = world();
    let bob = w.operator("bob", None);
    let st = CredentialStatement::new(
        CredentialId::random(),
        1,
        0,
        CredentialName::new("zz").unwrap(),
        Scope::All,
        Salt::random(),
        commitment::compute(
            &Salt::random(),
            &CredentialId::random(),
            1,
            &SecretPayload::from_plain_text("x").unwrap(),
        ),
        OperatorId::new("bob").unwrap(),
        now(),
    );
    let zz = sign_as(&bob, &st);
    w.relay
        .answer("/v1/credentials", serde_json::json!([cred_view(&zz)]));
    let dir = w.c.root().join("import");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("aa"), "aa-secret").unwrap();
    std::fs::write(dir.join("zz"), "zz-secret").unwrap();
    let o = tessera(
        &w.c,
        &w.alice,
        &["cred", "import", dir.to_str().unwrap()],
        None,
    );
    let sent = w.relay.take();
    if o.status.code() == Some(2) {
        assert!(
            puts(&sent).is_empty(),
            "exit 2 (nothing signed) but {} put(s) were sent: {}",
            puts(&sent).len(),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// An import of 100 credentials that the relay fails from its 70th write on (in the second chunk of 64 the tool
/// signs and records between two saves of its catalogue): the error names what was sent; the import run again
/// builds on what the first signed, sent or not (each name keeps its id, the next version), so no (id, version)
/// is ever signed twice.
#[test]
fn an_import_failing_half_way_is_run_again_without_signing_any_version_twice() {
    let w = world();
    let dir = w.c.root().join("import-100");
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..100 {
        std::fs::write(
            dir.join(format!("n{i:03}")),
            format!("secret-{i:03}-of-the-import"),
        )
        .unwrap();
    }
    let import = || {
        tessera(
            &w.c,
            &w.alice,
            &["cred", "import", dir.to_str().unwrap()],
            None,
        )
    };
    w.relay.fail_writes_after(Some(69));
    let o = import();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with("n069") || err.contains("n069:"),
        "names the failed item: {err}"
    );
    // What was sent, then what was signed (recorded pending) and not sent: the rest of the second chunk.
    let (sent, unsent) = err
        .split_once("signed but not sent")
        .expect("names the unsent items");
    assert!(sent.contains("n000") && sent.contains("n068"), "{err}");
    assert!(!sent.contains("n070"), "{err}");
    assert!(unsent.contains("n070") && unsent.contains("n099"), "{err}");
    let first = puts(&w.relay.take());
    assert_eq!(first.len(), 70, "69 accepted and the one refused");

    w.relay.fail_writes_after(None);
    ok(&import());
    let second = puts(&w.relay.take());
    assert_eq!(second.len(), 100);
    let mut signed = std::collections::BTreeSet::new();
    let mut ids = std::collections::BTreeMap::new();
    for (_, statement) in first.iter().chain(&second) {
        let st = parse(statement);
        assert!(
            signed.insert((st.credential_id, st.version)),
            "{} version {} signed twice",
            st.name.as_str(),
            st.version
        );
        let id = ids
            .entry(st.name.as_str().to_owned())
            .or_insert(st.credential_id);
        assert_eq!(*id, st.credential_id, "{} changed id", st.name.as_str());
        if first.iter().all(|(_, f)| parse(f).name != st.name) {
            // Signed in the first run's chunk but never sent: the second run sends its next version.
            assert_eq!(st.version, 2, "{}", st.name.as_str());
        }
    }
    assert_eq!(ids.len(), 100);
}

/// F8. Relay-chosen strings reach the operator's terminal unescaped (`cred ls` names, API error messages): a relay
/// can inject terminal control sequences and forge lines (e.g. make a credential look synced, hide a row).
#[test]
fn relay_strings_reach_the_terminal_unescaped() {
    let w = world();
    w.relay.answer(
        "/v1/credentials",
        serde_json::json!([{
            "id": "x", "name": "db\u{1b}[2K\rdb                       v9    synced 3/3  synced",
            "version": 1, "scope": {"type": "all"}, "deleted": false,
            "sync": {"synced": 0, "of": 3, "pending": 0, "stalled": 3, "integrity_failure": true},
            "statement": null
        }]),
    );
    let o =
        w.c.operator_cmd()
            .env("TESSERA_OPERATOR_DIR", &w.alice)
            .args(["cred", "ls"])
            .output()
            .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    w.relay.answer_write(
        "POST",
        "/v1/credentials/6f1c2a4e-0b7d-4c1e-9a55-3d2f8e7b1c90/retry",
        409,
        serde_json::json!({"error": "invalid", "message": "\u{1b}]0;owned\u{7}\u{1b}[2Kok"}),
    );
    let o =
        w.c.operator_cmd()
            .env("TESSERA_OPERATOR_DIR", &w.alice)
            .args([
                "cred",
                "retry",
                "--id",
                "6f1c2a4e-0b7d-4c1e-9a55-3d2f8e7b1c90",
            ])
            .output()
            .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    let bad = |s: &str| s.chars().any(|ch| ch.is_control() && ch != '\n');
    assert!(
        !bad(&out) && !bad(&err),
        "control characters from the relay printed: ls {out:?} / retry {err:?}"
    );
}

/// F6b. A `grant` the relay stores and then answers with an error leaves the catalogue at the old revision, so the
/// operator's next re-scope signs a SECOND, different statement for the same (version, revision): the relay now
/// holds two alice-signed revision-1 scopes (one still containing edge-2, which the operator just revoked) and
/// chooses which one agents and other workstations see first.
#[test]
fn a_failed_grant_lets_the_relay_hold_two_statements_for_one_revision() {
    let w = world();
    ok(&tessera(
        &w.c,
        &w.alice,
        &[
            "cred", "put", "db", "--agent", "edge-1", "--agent", "edge-2",
        ],
        Some("db-v1"),
    ));
    let (_, db1) = posted(&w.relay.take());
    w.relay
        .answer("/v1/credentials", serde_json::json!([cred_view(&db1)]));
    w.relay.answer_write(
        "POST",
        "/v1/credentials",
        503,
        serde_json::json!({"error": "busy", "message": "try again"}),
    );
    let o = tessera(&w.c, &w.alice, &["grant", "db", "edge-3"], None);
    assert_eq!(o.status.code(), Some(3));
    let (_, grant) = posted(&w.relay.take());
    // The relay keeps listing revision 0; the operator moves on and revokes edge-2.
    w.relay.answer_write(
        "POST",
        "/v1/credentials",
        200,
        serde_json::json!({"ok": true}),
    );
    ok(&tessera(&w.c, &w.alice, &["revoke", "db", "edge-2"], None));
    let (_, revoke) = posted(&w.relay.take());
    let (g, r) = (parse(&grant), parse(&revoke));
    assert!(
        (r.version, r.scope_revision) > (g.version, g.scope_revision),
        "two different statements signed for version {} revision {}: {:?} and {:?}",
        g.version,
        g.scope_revision,
        g.scope,
        r.scope
    );
}

/// F9. The admin client accepts ANY server certificate the org CA issued for the relay's address (here the
/// broker's), so whoever holds the broker's (or the MQTT relay identity's) key can be "the relay" for operators.
#[test]
fn the_brokers_certificate_is_accepted_as_the_relays_admin_api() {
    let w = world();
    let broker = w.c.service_identity("broker");
    let addr = format!(
        "127.0.0.1:{}",
        tessera_system_tests::broker::free_port().unwrap()
    );
    let fake = LyingAdmin::start(
        &addr,
        &w.c.ca_der().unwrap(),
        &std::fs::read(&broker.cert).unwrap(),
        &std::fs::read(&broker.key).unwrap(),
    );
    fake.answer("/v1/credentials", serde_json::json!([]));
    let o =
        w.c.operator_cmd()
            .env("TESSERA_OPERATOR_DIR", &w.alice)
            .env("TESSERA_RELAY", &addr)
            .args(["cred", "ls"])
            .output()
            .unwrap();
    assert!(
        !o.status.success(),
        "the operator talked to the broker's certificate as if it were the relay's admin API"
    );
}

/// F10. No timeouts: a relay that accepts the connection and never answers hangs every command forever.
#[test]
fn a_silent_relay_hangs_the_command_forever() {
    let w = world();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let _hold = std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming() {
            held.push(s);
        }
    });
    let mut child =
        w.c.operator_cmd()
            .env("TESSERA_OPERATOR_DIR", &w.alice)
            .env("TESSERA_RELAY", &addr)
            .args(["cred", "ls", "--timeout", "2"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
    // A generous bound (the command's own limit is 2 s): this checks that there is a limit, not how fast it is.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut exited = false;
    while std::time::Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            exited = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    if !exited {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    assert!(exited, "tessera cred ls still waiting after 60 s");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no answer within 2 s"));
}

/// F11. `ca issue-operator` starts a new operator directory with a copy of `issued.json` but NOT of
/// `revocations.json`: the new operator seals by the relay's list alone, so a relay that withholds it gets a
/// credential sealed to an agent the CA revoked (a revocation does not touch `issued.json`).
#[test]
fn a_new_operator_directory_lacks_the_revocation_list_and_seals_to_a_revoked_agent() {
    let w = world();
    // edge-2 is lost: revoked (the list is written to the CA and alice's directories; not pushed yet).
    let o =
        w.c.operator_cmd()
            .args(["ca", "revoke", "--dir"])
            .arg(w.c.ca_dir())
            .arg("--cert")
            .arg(&w.agents[1].cert)
            .output()
            .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Later, a new operator joins; the relay withholds the list and keeps listing edge-2.
    let bob = w.operator("bob", None);
    let o = tessera(&w.c, &bob, &["cred", "put", "fresh"], Some("fresh-secret"));
    let sent = w.relay.take();
    for (body, _) in puts(&sent) {
        assert!(
            !sealed_to(&body).contains("edge-2"),
            "sealed to the revoked edge-2: {}",
            String::from_utf8_lossy(&o.stdout)
        );
    }
}

/// Operator batches (docs/protocol.md, "Operator batches"): the relay's `batch_rewrap` claim decides the format of
/// what an import seals, never to whom. The lying relay claims batch support for edge-1 (honestly certified), for
/// a rogue CA's "mallory", and for "edge-9" listed with edge-1's certificate; edge-2 is listed without it. The
/// import seals one batch envelope to edge-1's certified key for all three credentials, single envelopes to
/// edge-2, and nothing to the others.
#[test]
fn a_relay_claiming_batch_support_changes_the_format_not_the_recipients() {
    let w = world();
    let mallory = tessera_system_tests::org::TestOrg::new()
        .agent("mallory")
        .cert;
    let claims = |id: &str, der: &[u8], batch: bool| {
        let mut v = agent_view(id, der);
        v["batch_rewrap"] = serde_json::json!(batch);
        v
    };
    w.relay.answer_fleet(serde_json::json!([
        claims("edge-1", &w.der[0], true),
        claims("edge-2", &w.der[1], false),
        claims("mallory", &mallory, true),
        claims("edge-9", &w.der[0], true),
    ]));
    let dir = w.c.root().join("import-batch");
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..3 {
        std::fs::write(
            dir.join(format!("b{i}")),
            format!("batched-secret-{i}-0123456789"),
        )
        .unwrap();
    }
    ok(&tessera(
        &w.c,
        &w.alice,
        &["cred", "import", dir.to_str().unwrap()],
        None,
    ));
    let sent = w.relay.take();
    assert!(
        puts(&sent).is_empty(),
        "the chunk went as one batch request"
    );
    let bodies: Vec<tessera_proto::admin::PutBatchBody> = sent
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/credentials/batch")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(bodies.len(), 1);
    let body = &bodies[0];
    let ids: Vec<CredentialId> = body
        .statements
        .iter()
        .map(|s| {
            s.parse_unverified(tessera_proto::statement::CREDENTIAL_KIND)
                .unwrap()
                .credential_id
        })
        .collect();
    assert_eq!(ids.len(), 3);
    let key = |i: usize| {
        w.ca()
            .verify_agent(&w.der[i], now(), &RevocationList::empty())
            .unwrap()
            .wrap
            .fingerprint()
    };
    assert_eq!(body.batches.len(), 1, "one batch envelope, for edge-1 only");
    let batch = &body.batches[0];
    assert_eq!(batch.agent.as_str(), "edge-1");
    assert!(batch.key == key(0), "sealed to edge-1's certified key");
    let mut items = batch.items.clone();
    let mut want = ids.clone();
    items.sort();
    want.sort();
    assert_eq!(items, want);
    let singles: Vec<(&str, CredentialId)> = body
        .envelopes
        .iter()
        .map(|e| (e.agent.as_str(), e.credential_id))
        .collect();
    assert_eq!(singles.len(), 3, "{singles:?}");
    assert!(singles.iter().all(|(a, _)| *a == "edge-2"), "{singles:?}");
    assert!(body.envelopes.iter().all(|e| e.key == key(1)));
}
