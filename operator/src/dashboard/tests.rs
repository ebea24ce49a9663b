#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap, HeaderValue, Method};

use std::collections::BTreeMap;

use tessera_proto::audit::{next_entry, AuditEntry};
use tessera_proto::cert::{OrgCa, Validity};
use tessera_proto::ids::AgentId;
use tessera_proto::statement::RevocationList;

use super::cache::{cap, Ttl, MAX_ROWS};
use super::cooldown::Cooldown;
use super::html::{esc, time_s};
use super::snapshot::{
    chip, flatten_status, lost_head, parse_alerts, shown_verified, unlisted, AgentRow, Chip,
    CredRow, DeliveryRow, Judge, Shown, Verification,
};
use super::{auth, views};
use crate::catalogue::Catalogue;
use crate::delivery_proof::{Anomaly, Judged, Summary};
use crate::issued::Registry;
use crate::test_certs::{issue, NOW};

const HOSTILE: &str = "<script>alert('x')</script>\"><img src=x onerror=alert(1)>";

fn assert_inert(html: &str) {
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(!html.contains("<img"), "{html}");
    assert!(html.contains("&lt;script&gt;"), "{html}");
}

#[test]
fn escaping_covers_markup_and_quotes() {
    assert_eq!(
        esc("<a href=\"x\">'&'</a>"),
        "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
    );
    assert_eq!(esc("a\u{1b}[2Jb"), "a\u{fffd}[2Jb");
    assert_eq!(time_s(0), "1970-01-01 00:00:00 UTC");
    assert_eq!(time_s(1_700_000_000), "2023-11-14 22:13:20 UTC");
}

#[test]
fn relay_strings_are_inert_in_every_view() {
    let fleet = views::fleet(&[AgentRow {
        id: HOSTILE.into(),
        state: HOSTILE.into(),
        last_seen_ms: 1,
        held: 1,
        of: 2,
        cert_expiry: None,
        version: Some(HOSTILE.into()),
        certified: true,
    }]);
    assert_inert(&fleet);
    assert!(
        fleet.contains("data-confirm="),
        "a rotation asks first: {fleet}"
    );
    let alerts = parse_alerts(&serde_json::json!([{
        "id": HOSTILE, "kind": HOSTILE, "severity": HOSTILE, "subject": HOSTILE, "message": HOSTILE,
        "count": 1, "last_ms": 5
    }]));
    assert_eq!(
        alerts[0].id, None,
        "an id that is not 16 hex digits gets no button"
    );
    assert_inert(&views::alerts(&alerts));
    let status =
        flatten_status(&serde_json::json!({ "broker": { HOSTILE: HOSTILE }, "replicas": 1 }));
    assert_inert(&views::status(&status));
    assert_inert(&views::error(HOSTILE));
    let cred = CredRow {
        id: tessera_proto::ids::CredentialId::random(),
        name: "db".into(),
        version: 1,
        deleted: false,
        scope: "edge-1".into(),
        chip: Chip::Integrity,
        summary: "stored v1 0/1".into(),
        unproven: 1,
        anomalies: vec![HOSTILE.into()],
        rows: vec![DeliveryRow {
            agent: HOSTILE.into(),
            presence: HOSTILE.into(),
            state: HOSTILE.into(),
            attempts: 2,
            next_attempt_ms: 3,
            last_error: Some(HOSTILE.into()),
            receipt: HOSTILE.into(),
            done: false,
        }],
        missing: vec![HOSTILE.into()],
        scope_agents: None,
    };
    assert_inert(&views::credential(&cred));
    assert_inert(&views::credentials(&[cred], &[HOSTILE.into()]));
}

fn judged(done: usize, of: usize, missing: &[&str], anomalies: usize) -> Judged {
    Judged {
        checks: Vec::new(),
        proven: Vec::new(),
        unproven: 0,
        anomalies: (0..anomalies)
            .map(|_| Anomaly::Duplicate(tessera_proto::ids::AgentId::new("a").unwrap()))
            .collect(),
        missing: missing.iter().map(|m| (*m).to_owned()).collect(),
        summary: Summary {
            label: "stored v1".into(),
            done,
            of,
            offline: 0,
        },
    }
}

#[test]
fn synced_only_when_every_counted_agent_is_proven_and_listed_and_nothing_is_an_integrity_failure() {
    assert_eq!(
        chip(&judged(2, 2, &[], 0), false, false, 0),
        Chip::Synced { done: 2, of: 2 }
    );
    // An agent of the scope the relay does not list is never synced, whatever the counts say.
    assert_eq!(
        chip(&judged(2, 2, &["b"], 0), false, false, 0),
        Chip::Partial { done: 2, of: 2 }
    );
    // More done than counted (rows, not agents) is not synced either.
    assert_eq!(
        chip(&judged(3, 2, &[], 0), false, false, 0),
        Chip::Partial { done: 3, of: 2 }
    );
    // An agent listed twice, or outside the scope: red.
    assert_eq!(
        chip(&judged(2, 2, &[], 1), false, false, 0),
        Chip::Integrity
    );
    assert_eq!(
        chip(&judged(0, 2, &["a", "b"], 0), true, false, 0),
        Chip::Purge { done: 0, of: 2 }
    );
}

#[test]
fn rotate_and_delete_are_offered_only_where_they_apply_and_ask_first() {
    let agent = |certified| AgentRow {
        id: "edge-1".into(),
        state: "online".into(),
        last_seen_ms: 1,
        held: 0,
        of: 0,
        cert_expiry: None,
        version: None,
        certified,
    };
    let fleet = views::fleet(&[agent(true)]);
    assert!(
        fleet.contains("data-post=\"/api/agents/edge-1/rotate\""),
        "{fleet}"
    );
    assert!(fleet.contains("not reported"), "{fleet}");
    assert!(fleet.contains("not verified"), "{fleet}");
    let fleet = views::fleet(&[agent(false)]);
    assert!(
        !fleet.contains("/rotate"),
        "an agent the CA's registry does not hold: {fleet}"
    );
    let mut cred = CredRow {
        id: tessera_proto::ids::CredentialId::random(),
        name: "db".into(),
        version: 1,
        deleted: false,
        scope: "edge-1".into(),
        chip: Chip::Synced { done: 1, of: 1 },
        summary: String::new(),
        unproven: 0,
        rows: Vec::new(),
        missing: Vec::new(),
        anomalies: Vec::new(),
        scope_agents: None,
    };
    let live = views::credential_actions(&cred, 0);
    assert!(
        live.contains(&format!(
            "data-post=\"/api/credentials/{}/delete\"",
            cred.id
        )),
        "{live}"
    );
    assert!(
        live.contains("id=\"delete\"") && live.contains("data-confirm=\"Delete db"),
        "{live}"
    );
    cred.deleted = true;
    assert!(!views::credential_actions(&cred, 0).contains("/delete"));
}

#[test]
fn chips_read_as_documented() {
    assert_eq!(
        views::chip(&Chip::Synced { done: 3, of: 3 }),
        ("✓ 3/3 synced".into(), "chip synced")
    );
    assert_eq!(
        views::chip(&Chip::Partial { done: 2, of: 3 }),
        ("⚠ 2/3 synced".into(), "chip partial")
    );
    assert_eq!(
        views::chip(&Chip::Pending(1)),
        ("⏳ Pending (1)".into(), "chip pending")
    );
    assert_eq!(views::chip(&Chip::Integrity).1, "chip integrity");
    assert_eq!(
        views::chip(&Chip::Purge { done: 1, of: 2 }).0,
        "Purging 1/2"
    );
}

#[test]
fn a_retry_is_refused_within_the_cooldown_per_credential() {
    let c = Cooldown::new(Duration::from_secs(30));
    let (a, b) = (
        tessera_proto::ids::CredentialId::random(),
        tessera_proto::ids::CredentialId::random(),
    );
    let t0 = Instant::now();
    c.try_start(a, t0).unwrap();
    let left = c.try_start(a, t0 + Duration::from_secs(10)).unwrap_err();
    assert_eq!(left, Duration::from_secs(20));
    c.try_start(b, t0 + Duration::from_secs(10)).unwrap();
    assert_eq!(
        c.remaining(&a, t0 + Duration::from_secs(29)),
        Some(Duration::from_secs(1))
    );
    c.try_start(a, t0 + Duration::from_secs(30)).unwrap();
}

fn headers(host: &str, cookie: Option<&str>, action: bool) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::HOST, HeaderValue::from_str(host).unwrap());
    if let Some(c) = cookie {
        h.insert(header::COOKIE, HeaderValue::from_str(c).unwrap());
    }
    if action {
        h.insert(auth::ACTION_HEADER, HeaderValue::from_static("1"));
    }
    h
}

#[test]
fn requests_need_the_session_cookie_the_random_host_and_for_actions_the_header() {
    let session = auth::Secret::random();
    let host = "t0123456789abcdef0123456789abcdef.localhost:9";
    let good = format!("a=b; tessera_dashboard={}", session.expose());
    let r = |m: &Method, p: &str, h: &HeaderMap| auth::refusal(m, p, h, &session, host);
    assert_eq!(
        r(&Method::GET, "/", &headers(host, Some(&good), false)),
        None
    );
    assert!(r(&Method::GET, "/", &headers(host, None, false)).is_some());
    assert!(r(
        &Method::GET,
        "/",
        &headers(host, Some("tessera_dashboard=tok2"), false)
    )
    .is_some());
    // The loopback address itself, or plain localhost, with the right cookie: refused (the cookie is bound to
    // the random name; another local service's page must not reach the dashboard).
    for other in ["127.0.0.1:9", "localhost:9", "evil.example:9", "0.0.0.0:9"] {
        assert!(r(&Method::GET, "/", &headers(other, Some(&good), false)).is_some());
        assert!(r(&Method::GET, "/login", &headers(other, None, false)).is_some());
    }
    assert_eq!(r(&Method::GET, "/login", &headers(host, None, false)), None);
    assert!(r(
        &Method::POST,
        "/api/audit/verify",
        &headers(host, Some(&good), false)
    )
    .is_some());
    assert_eq!(
        r(
            &Method::POST,
            "/api/audit/verify",
            &headers(host, Some(&good), true)
        ),
        None
    );
}

#[test]
fn the_login_token_works_once_and_is_not_the_session() {
    let login = auth::Secret::random();
    let text = login.expose().to_owned();
    let session = auth::Secret::random();
    assert!(!session.matches(&text));
    assert!(!format!("{login:?}{session:?}").contains(&text));
    let slot = std::sync::Mutex::new(Some(login));
    assert!(!auth::take_login(&slot, "wrong"));
    assert!(auth::take_login(&slot, &text));
    assert!(!auth::take_login(&slot, &text), "single use");
}

#[tokio::test]
async fn the_dashboard_answers_to_a_random_localhost_name_on_any_listen_address() {
    let e = super::bind("0.0.0.0:0".parse().unwrap(), false)
        .await
        .unwrap_err();
    assert!(matches!(e, super::DashboardError::NotLoopback(_)));
    let b = super::bind("127.0.0.1:0".parse().unwrap(), false)
        .await
        .unwrap();
    let host = b.host();
    let (name, port) = host.rsplit_once(':').unwrap();
    assert_eq!(port, b.addr().port().to_string());
    let label = name.strip_suffix(".localhost").unwrap();
    assert_eq!(label.len(), 33);
    assert!(label.starts_with('t') && label[1..].bytes().all(|c| c.is_ascii_hexdigit()));
    assert!(b
        .login_url()
        .starts_with(&format!("http://{host}/login?token=")));
    let token = b.login_url().split_once("token=").unwrap().1.to_owned();
    assert!(!format!("{b:?}").contains(&token));
    let other = super::bind("127.0.0.1:0".parse().unwrap(), false)
        .await
        .unwrap();
    assert_ne!(other.host().split(':').next(), Some(name));
    // Listening on every address: still the random name (not 0.0.0.0:PORT, which no request carries).
    let any = super::bind("0.0.0.0:0".parse().unwrap(), true)
        .await
        .unwrap();
    assert!(any.host().contains(".localhost:"));
    assert!(any
        .login_url()
        .starts_with(&format!("http://{}/", any.host())));
}

#[tokio::test]
async fn one_answer_is_shared_for_its_time_to_live() {
    let ttl = Ttl::new(Duration::from_secs(2));
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let make = || async { calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 };
    let t0 = Instant::now();
    assert_eq!(ttl.get(t0, make).await, 1);
    assert_eq!(ttl.get(t0 + Duration::from_millis(1999), make).await, 1);
    assert_eq!(ttl.get(t0 + Duration::from_secs(2), make).await, 2);
    // Callers that started before the answer was made (a tab waiting on the lock) get it too.
    assert_eq!(ttl.get(t0, make).await, 2);
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    // A value known stale (the operator's files changed) is made again however young.
    let t1 = t0 + Duration::from_secs(2);
    assert_eq!(ttl.get_unless(t1, |_| false, make).await, 2);
    assert_eq!(ttl.get_unless(t1, |v| *v == 2, make).await, 3);
}

#[test]
fn the_files_stamp_changes_when_a_file_does() {
    let dir = tempfile::tempdir().unwrap();
    let before = super::snapshot::files_stamp(dir.path());
    assert_eq!(before, vec![None, None, None]);
    std::fs::write(dir.path().join(crate::catalogue::FILE), "{}").unwrap();
    let after = super::snapshot::files_stamp(dir.path());
    assert_ne!(before, after);
    assert_eq!(after, super::snapshot::files_stamp(dir.path()));
}

#[test]
fn tables_are_cut_at_the_row_cap_with_a_note() {
    let rows: Vec<u32> = (0..1500).collect();
    let (shown, total) = cap(&rows);
    assert_eq!(shown.len(), MAX_ROWS);
    assert_eq!(total, Some(1500));
    let note = views::truncated(shown.len(), total);
    assert!(note.contains("first 1000 of 1500"), "{note}");
    let few: Vec<u32> = (0..3).collect();
    assert_eq!(cap(&few), (&few[..], None));
    assert_eq!(views::truncated(3, None), "");
}

fn trail(n: u64) -> Vec<AuditEntry> {
    let mut out: Vec<AuditEntry> = Vec::new();
    for i in 0..n {
        let e = next_entry(
            out.last(),
            1000 + i,
            "agent_registered",
            None,
            BTreeMap::new(),
        );
        out.push(e);
    }
    out
}

#[test]
fn audit_entries_are_verified_only_up_to_the_verified_head() {
    let t = trail(5);
    let head = (2, t[2].hash.clone());
    assert_eq!(shown_verified(&t, None), Shown::Unverified);
    assert_eq!(
        shown_verified(&t, Some(&head)),
        Shown::Upto { from: 0, head: 2 }
    );
    // Newest first and only a tail shown: the entries back from the head that link to it.
    let mut tail = t[1..].to_vec();
    tail.reverse();
    assert_eq!(
        shown_verified(&tail, Some(&head)),
        Shown::Upto { from: 1, head: 2 }
    );
    let html = views::audit(
        &tail,
        Some(&Verification {
            ok: true,
            text: "audit chain intact".into(),
            head: Some(head.clone()),
        }),
    );
    assert_eq!(html.matches("<td class=\"ok\">").count(), 2, "{html}");
    assert_eq!(
        html.matches("<td class=\"unverified\">").count(),
        2,
        "{html}"
    );
    // An entry before the head altered: verified only from after it.
    let mut altered = t.clone();
    altered[0].kind = "forged".into();
    assert_eq!(
        shown_verified(&altered, Some(&head)),
        Shown::Upto { from: 1, head: 2 }
    );
    // The entry at the head rewritten (a newer trail than the one verified): red, nothing verified.
    let mut rewritten = t.clone();
    rewritten[2].kind = "forged".into();
    rewritten[2].hash = tessera_proto::audit::entry_hash(&rewritten[2]);
    assert_eq!(shown_verified(&rewritten, Some(&head)), Shown::Differs);
    let html = views::audit(
        &rewritten,
        Some(&Verification {
            ok: true,
            text: "audit chain intact".into(),
            head: Some(head.clone()),
        }),
    );
    assert!(html.contains("NOT the one verified"), "{html}");
    assert!(!html.contains("<td class=\"ok\">"), "{html}");
}

#[test]
fn a_later_verify_fails_when_the_trail_lost_the_first_head() {
    let t = trail(5);
    let head = (2, t[2].hash.clone());
    assert!(lost_head(&t, None).is_none());
    assert!(lost_head(&t, Some(&head)).is_none());
    // Rewritten from seq 1 on (a valid chain again, but another one).
    let mut other = t[..1].to_vec();
    for i in 1..6 {
        let e = next_entry(
            other.last(),
            5000 + i,
            "agent_registered",
            None,
            BTreeMap::new(),
        );
        other.push(e);
    }
    tessera_proto::audit::verify(&other).unwrap();
    let v = lost_head(&other, Some(&head)).unwrap();
    assert!(!v.ok);
    assert!(v.text.contains("REWRITTEN"), "{}", v.text);
    // Truncated before the head.
    assert!(lost_head(&t[..2], Some(&head)).is_some());
}

#[test]
fn agents_with_a_live_certificate_the_relay_omits_are_listed() {
    let ca = OrgCa::generate("Test Org", Validity::days_from(NOW - 10, 365)).unwrap();
    let mut registry = Registry::default();
    for a in ["edge-1", "edge-2", "edge-3"] {
        registry.record(&issue(&ca, a), NOW);
    }
    let revoked_cert = issue(&ca, "edge-4");
    registry.record(&revoked_cert, NOW);
    let j = Judge {
        catalogue: Catalogue::default(),
        registry,
        revoked: RevocationList::new(1, NOW, [revoked_cert.serial.clone()]),
    };
    let listed = vec![AgentId::new("edge-1").unwrap()];
    let rows = unlisted(&j, ca.pinned(), NOW + 1, &listed, &[]);
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        ["edge-2", "edge-3"],
        "edge-1 is listed, edge-4 revoked"
    );
    assert!(rows.iter().all(|r| r.state == "not listed by the relay"));
    assert!(rows.iter().all(|r| r.cert_expiry.is_some()));
    assert!(views::fleet(&rows).contains("not listed by the relay"));
}
