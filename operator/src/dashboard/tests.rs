#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap, HeaderValue, Method};

use super::cooldown::Cooldown;
use super::html::{esc, time_s};
use super::snapshot::{flatten_status, parse_alerts, AgentRow, Chip, CredRow, DeliveryRow};
use super::{auth, views};

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
fn requests_need_the_token_cookie_the_host_and_for_actions_the_header() {
    let hosts = vec!["127.0.0.1:9".to_owned()];
    let good = "a=b; tessera_dashboard=tok";
    let r = |m: &Method, p: &str, h: &HeaderMap| auth::refusal(m, p, h, "tok", &hosts);
    assert_eq!(
        r(
            &Method::GET,
            "/",
            &headers("127.0.0.1:9", Some(good), false)
        ),
        None
    );
    assert!(r(&Method::GET, "/", &headers("127.0.0.1:9", None, false)).is_some());
    assert!(r(
        &Method::GET,
        "/",
        &headers("127.0.0.1:9", Some("tessera_dashboard=tok2"), false)
    )
    .is_some());
    assert!(r(
        &Method::GET,
        "/",
        &headers("evil.example:9", Some(good), false)
    )
    .is_some());
    assert_eq!(
        r(&Method::GET, "/login", &headers("127.0.0.1:9", None, false)),
        None
    );
    assert!(r(
        &Method::POST,
        "/api/audit/verify",
        &headers("127.0.0.1:9", Some(good), false)
    )
    .is_some());
    assert_eq!(
        r(
            &Method::POST,
            "/api/audit/verify",
            &headers("127.0.0.1:9", Some(good), true)
        ),
        None
    );
}

#[tokio::test]
async fn a_non_loopback_address_is_refused_unless_allowed() {
    let e = super::bind("0.0.0.0:0".parse().unwrap(), false)
        .await
        .unwrap_err();
    assert!(matches!(e, super::DashboardError::NotLoopback(_)));
    let b = super::bind("127.0.0.1:0".parse().unwrap(), false)
        .await
        .unwrap();
    assert!(b
        .login_url()
        .starts_with(&format!("http://{}/login?token=", b.addr())));
    let token = b.login_url().split_once("token=").unwrap().1.to_owned();
    assert!(!format!("{b:?}").contains(&token));
}
