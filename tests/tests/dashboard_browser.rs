//! The operator dashboard (`tessera dashboard`) in a real browser: headless Chromium driven through chromedriver,
//! against a real relay, real agents and Mosquitto. The chips follow a backfill (pending, then synced) without a
//! reload; Retry is refused within its cooldown by the dashboard itself; a commitment mismatch (a swapped delivery
//! published with the relay's broker identity) turns the chip red; a grant made in the page reaches the agent, a
//! revoke purges it; an alert is acknowledged; the audit trail verifies, twice. The fleet page shows the version each
//! agent states (as does `agents ls`); "Rotate keys" (after a confirmation) queues the agent's renewal at the relay,
//! and "Delete" (after a confirmation) sends a signed tombstone the agent purges by. The dashboard answers only to
//! its random `.localhost` name (a request with Host 127.0.0.1 and the session cookie is refused) and its login
//! address works once. Last, a lying admin API takes the relay's place and its `<script>` strings stay text.
//!
//! Needs /usr/bin/chromium and /usr/bin/chromedriver (scripts/test installs them): under CI=true their absence is
//! a failure; elsewhere the test is skipped with a message. With TESSERA_SCREENSHOTS=DIR (relative to the
//! workspace) it saves the pages as PNG (docs/screenshots/).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::too_many_lines
)]

use std::io::BufRead as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use tessera_proto::cert::PinnedCa;
use tessera_proto::envelope::seal;
use tessera_proto::secret::SecretPayload;
use tessera_proto::statement::{CredentialStatement, RevocationList, Signed};
use tessera_proto::wire::{CredentialStore, Down};
use tessera_system_tests::bins::bin_dir;
use tessera_system_tests::cluster::{wait_for, Cluster};
use tessera_system_tests::lying_admin::LyingAdmin;
use tessera_system_tests::webdriver::{self, Browser};
use tessera_system_tests::wire_relay::WireRelay;

const WAIT: Duration = Duration::from_secs(60);

/// A plain HTTP/1.1 GET to the dashboard at 127.0.0.1:`port` with the `Host` and `Cookie` given: the answer's text.
fn raw_get(port: u16, host: &str, path: &str, cookie: &str) -> String {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// The dashboard process; killed on drop.
struct Dashboard(Child);

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn screenshots_dir() -> Option<PathBuf> {
    std::env::var_os("TESSERA_SCREENSHOTS").map(|d| {
        let d = PathBuf::from(d);
        if d.is_absolute() {
            d
        } else {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join(d)
        }
    })
}

/// A screenshot of the page from its top, when screenshots are asked for.
fn shot(b: &Browser, dir: Option<&PathBuf>, name: &str) {
    if dir.is_some() {
        b.exec("window.scrollTo(0, 0); return 1;", &[]).unwrap();
        b.save_screenshot(dir, name).unwrap();
    }
}

/// Waits until `script` (a function body) returns true in the page.
fn wait_js(b: &Browser, what: &str, script: &str) {
    // A script run while the page navigates fails; that is "not yet".
    wait_for(what, WAIT, || {
        Ok(b.exec(script, &[]).is_ok_and(|v| v == true))
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}; page: {}",
            b.exec("return document.body.innerText", &[]).unwrap()
        )
    });
}

fn chip(b: &Browser, name: &str) -> (String, String) {
    let v = b
        .exec(
            "var c = document.querySelector('[data-chip=\"' + arguments[0] + '\"]'); \
             return c ? [c.textContent, c.className] : ['', ''];",
            &[name.into()],
        )
        .unwrap();
    (
        v[0].as_str().unwrap().to_owned(),
        v[1].as_str().unwrap().to_owned(),
    )
}

/// A POST from the page itself (with its cookie and the action header): the status and the answer.
fn post_from_page(b: &Browser, path: &str) -> serde_json::Value {
    b.exec_async(&format!(
        "var done = arguments[arguments.length - 1]; \
         fetch('{path}', {{method: 'POST', credentials: 'same-origin', \
           headers: {{'Content-Type': 'application/json', 'X-Tessera-Dashboard': '1'}}, body: '{{}}'}}) \
         .then(function (r) {{ return r.json().then(function (j) {{ done([r.status, j]); }}); }});"
    ))
    .unwrap()
}

/// The swapped delivery a relay taken over can make: the genuine statement of `name`, another plaintext sealed to
/// `agent`'s certified key.
fn swapped_delivery(c: &Cluster, name: &str, agent: &str) -> (tessera_proto::ids::AgentId, Down) {
    let creds = c.op_json(&["cred", "ls"]).unwrap();
    let statement: Signed<CredentialStatement> = serde_json::from_value(
        creds
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap()["statement"]
            .clone(),
    )
    .unwrap();
    let agents = c.op_json(&["agents", "ls"]).unwrap();
    let cert = agents
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == agent)
        .and_then(|a| a["cert"].as_str())
        .and_then(tessera_proto::b64_decode)
        .unwrap();
    let ca = PinnedCa::from_der(&c.ca_der().unwrap()).unwrap();
    let target = ca
        .verify_agent(
            &cert,
            tessera_system_tests::broker::now(),
            &RevocationList::empty(),
        )
        .unwrap();
    let forged = SecretPayload::from_plain_text("attacker-chosen").unwrap();
    let envelope = seal(&target.wrap, forged.bytes()).unwrap();
    (
        target.agent_id,
        Down::CredentialStore(CredentialStore {
            delivery_id: uuid::Uuid::new_v4(),
            statement,
            envelope,
            request_id: None,
            target_key: None,
        }),
    )
}

#[test]
fn the_dashboard_judges_sync_enforces_the_retry_cooldown_flags_a_mismatch_and_rescopes() {
    if !webdriver::available() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{} and {} are required in CI (scripts/test installs chromium and chromium-driver)",
            webdriver::CHROMIUM,
            webdriver::CHROMEDRIVER
        );
        eprintln!(
            "SKIPPED dashboard_browser: no {} or {} (apt-get install chromium chromium-driver)",
            webdriver::CHROMIUM,
            webdriver::CHROMEDRIVER
        );
        return;
    }
    let shots = screenshots_dir();
    let tmp = tempfile::tempdir().unwrap();
    let mut c = Cluster::new(tmp.path(), &bin_dir(), "").unwrap();
    c.start_relay().unwrap();
    let policy = format!(
        "[policy.\"*\"]\nuids = [{}]\n",
        std::fs::metadata(tmp.path()).unwrap().uid()
    );
    let mut e1 = c.agent("edge-1", &policy).unwrap();
    e1.start().unwrap();
    let mut e2 = c.agent("edge-2", &policy).unwrap();
    e2.start().unwrap();
    c.wait_state("edge-1", "online", WAIT).unwrap();
    c.wait_state("edge-2", "online", WAIT).unwrap();
    // edge-2 goes away: what is put for it now waits for its return.
    e2.kill();
    c.wait_state("edge-2", "offline", WAIT).unwrap();
    c.put("db", "db-secret", &["edge-1", "edge-2"]).unwrap();
    c.put("api", "api-secret", &["edge-1"]).unwrap();
    wait_for("edge-1 to hold both", WAIT, || {
        Ok(e1.value("db")?.is_some() && e1.value("api")?.is_some())
    })
    .unwrap();
    let ids = c.credential_ids().unwrap();

    // The dashboard, with the operator's identity; it prints the address to open.
    let mut child = c
        .operator_cmd()
        .args(["dashboard", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _dash = Dashboard(child);
    let login = line.trim().strip_prefix("dashboard: ").unwrap().to_owned();
    let base = login.split_once("/login").unwrap().0.to_owned();

    // The address names the run's random host under .localhost (the browser resolves it to loopback itself).
    let host = base.strip_prefix("http://").unwrap().to_owned();
    let (name, port) = host.rsplit_once(':').unwrap();
    assert!(
        name.starts_with('t') && name.ends_with(".localhost"),
        "{login}"
    );
    let port: u16 = port.parse().unwrap();
    let token = login.split_once("token=").unwrap().1.to_owned();

    let b = Browser::start(&tmp.path().join("chromedriver.log")).unwrap();
    // Without the login nothing is shown.
    b.goto(&format!("{base}/credentials")).unwrap();
    let refused = b.exec("return document.body.innerText", &[]).unwrap();
    assert!(
        refused.as_str().unwrap().contains("login token"),
        "{refused}"
    );
    b.goto(&login).unwrap();
    wait_js(
        &b,
        "the fleet page",
        "var s = document.querySelector('tr[data-agent=\"edge-2\"] .state'); return !!s && s.textContent === 'offline';",
    );
    wait_js(
        &b,
        "edge-1 proven to hold both",
        "var h = document.querySelector('tr[data-agent=\"edge-1\"] .held'); return !!h && h.textContent === '2/2';",
    );
    assert_eq!(b.text("tr[data-agent='edge-2'] .held").unwrap(), "0/1");
    shot(&b, shots.as_ref(), "fleet");

    // The session cookie: its own random value (not the login token), host-only (no Domain: not sent to other
    // names), and worth nothing with another Host (127.0.0.1, as a page of another local service would send it).
    let cookies = b.cookies().unwrap();
    let (_, session, domain) = cookies
        .iter()
        .find(|(n, _, _)| n == "tessera_dashboard")
        .unwrap();
    assert_ne!(session, &token);
    assert!(
        domain.as_deref().is_none_or(|d| d == name),
        "host-only: {domain:?}"
    );
    let cookie = format!("tessera_dashboard={session}");
    assert!(raw_get(port, &host, "/", &cookie).starts_with("HTTP/1.1 200"));
    let other = raw_get(port, &format!("127.0.0.1:{port}"), "/", &cookie);
    assert!(other.starts_with("HTTP/1.1 403"), "{other}");
    let other = raw_get(port, &format!("localhost:{port}"), "/", &cookie);
    assert!(other.starts_with("HTTP/1.1 403"), "{other}");
    // The login address works once.
    b.goto(&login).unwrap();
    let again = b.exec("return document.body.innerText", &[]).unwrap();
    assert!(again.as_str().unwrap().contains("used already"), "{again}");
    let again = raw_get(port, &host, &format!("/login?token={token}"), "");
    assert!(again.starts_with("HTTP/1.1 403"), "{again}");

    // Pending while edge-2 is away.
    b.goto(&format!("{base}/credentials")).unwrap();
    wait_js(
        &b,
        "db's and api's chips",
        "var c = document.querySelector('[data-chip=\"api\"]'); return !!c && c.textContent === '✓ 1/1 synced';",
    );
    let (text, class) = chip(&b, "db");
    assert_eq!(text, "⏳ Pending (1)");
    assert!(class.contains("pending"), "{class}");
    let (text, class) = chip(&b, "api");
    assert_eq!(text, "✓ 1/1 synced");
    assert!(class.contains("synced"), "{class}");
    shot(&b, shots.as_ref(), "credentials-pending");

    // Retry: done once, then refused within 30 s, by the dashboard, shown in the page.
    b.goto(&format!("{base}/credentials/{}", ids["db"]))
        .unwrap();
    b.click("#retry").unwrap();
    wait_js(
        &b,
        "the retry's answer",
        "return document.getElementById('retry-result').textContent !== '';",
    );
    assert_eq!(b.text("#retry-result").unwrap(), "retry requested");
    assert_eq!(
        b.exec("return document.getElementById('retry').disabled", &[])
            .unwrap(),
        true
    );
    assert!(
        b.text("#retry").unwrap().starts_with("Retry ("),
        "a countdown is shown"
    );
    let again = post_from_page(&b, &format!("/api/credentials/{}/retry", ids["db"]));
    assert_eq!(again[0], 429, "{again}");
    assert!(
        again[1]["message"].as_str().unwrap().contains("refused"),
        "{again}"
    );
    // A reload still shows the cooldown (the dashboard keeps it, not the page).
    b.goto(&format!("{base}/credentials/{}", ids["db"]))
        .unwrap();
    assert_eq!(
        b.exec("return document.getElementById('retry').disabled", &[])
            .unwrap(),
        true
    );
    shot(&b, shots.as_ref(), "credential-retry-cooldown");

    // edge-2 returns and is backfilled: the chip turns green on the open page, without a reload.
    b.goto(&format!("{base}/credentials")).unwrap();
    b.exec("window.tesseraMarker = 42; return 1;", &[]).unwrap();
    e2.start().unwrap();
    wait_js(
        &b,
        "db synced",
        "var c = document.querySelector('[data-chip=\"db\"]'); return !!c && c.textContent === '✓ 2/2 synced';",
    );
    assert_eq!(
        b.exec("return window.tesseraMarker", &[]).unwrap(),
        42,
        "the page was not reloaded"
    );
    assert!(chip(&b, "db").1.contains("synced"));
    assert_eq!(e2.value("db").unwrap().as_deref(), Some("db-secret"));
    shot(&b, shots.as_ref(), "credentials-synced");

    // A grant made in the page, signed on this workstation, reaches the agent.
    b.goto(&format!("{base}/credentials/{}", ids["api"]))
        .unwrap();
    b.type_into("#grant-agents", "edge-2").unwrap();
    b.click("#grant").unwrap();
    wait_js(
        &b,
        "the grant's answer",
        "return document.getElementById('grant-result').textContent !== '';",
    );
    let granted = b.text("#grant-result").unwrap();
    assert!(granted.contains("scope revision"), "{granted}");
    wait_for("edge-2 to receive api", WAIT, || {
        Ok(e2.value("api")?.as_deref() == Some("api-secret"))
    })
    .unwrap();
    wait_js(
        &b,
        "api synced on both",
        "var c = document.querySelector('[data-chip=\"api\"]'); return !!c && c.textContent === '✓ 2/2 synced';",
    );
    shot(&b, shots.as_ref(), "credential-granted");
    // And revoked again from the page: edge-2 purges it.
    b.exec(
        "document.getElementById('grant-result').textContent = ''; return 1;",
        &[],
    )
    .unwrap();
    b.click("#revoke").unwrap();
    wait_js(
        &b,
        "the revoke's answer",
        "return document.getElementById('grant-result').textContent !== '';",
    );
    let revoked = b.text("#grant-result").unwrap();
    assert!(revoked.contains("scope revision 2"), "{revoked}");
    wait_for("edge-2 to purge api", WAIT, || {
        Ok(!e2.names()?.iter().any(|n| n == "api"))
    })
    .unwrap();
    wait_js(
        &b,
        "api back to edge-1 only",
        "var c = document.querySelector('[data-chip=\"api\"]'); return !!c && c.textContent === '✓ 1/1 synced';",
    );

    // A delivery swapped by someone publishing with the relay's identity: edge-2 refuses it, the chip turns red.
    b.goto(&format!("{base}/credentials")).unwrap();
    let (target, swapped) = swapped_delivery(&c, "db", "edge-2");
    // A worker thread keeps the rogue client's MQTT event loop running after `block_on` returns.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let rogue = rt.block_on(async {
        let rogue = WireRelay::connect(
            c.broker.port,
            &c.ca_der().unwrap(),
            &c.service_identity("relay-1"),
            "relay-1-rogue",
        )
        .await
        .unwrap();
        rogue.send(&target, &swapped).await.unwrap();
        rogue
    });
    wait_js(
        &b,
        "db's chip red",
        "var c = document.querySelector('[data-chip=\"db\"]'); return !!c && c.className.indexOf('integrity') >= 0;",
    );
    assert_eq!(chip(&b, "db").0, "Integrity failure");
    assert_eq!(
        e2.value("db").unwrap().as_deref(),
        Some("db-secret"),
        "edge-2 kept the genuine copy"
    );
    shot(&b, shots.as_ref(), "credentials-integrity");
    drop(rogue);

    // The alert, acknowledged from the page.
    b.goto(&format!("{base}/alerts")).unwrap();
    wait_js(
        &b,
        "the mismatch alert",
        "return document.body.innerText.indexOf('credential_commitment_mismatch') >= 0;",
    );
    let before = b
        .exec(
            "return document.querySelectorAll('tr.open button[data-post]').length",
            &[],
        )
        .unwrap();
    b.click("tr.open button[data-post]").unwrap();
    wait_js(
        &b,
        "one alert fewer to acknowledge",
        &format!("return document.querySelectorAll('tr.open button[data-post]').length === {before} - 1;"),
    );
    assert_eq!(c.audit("alert_acknowledged").unwrap().len(), 1);
    assert!(
        c.alerts()
            .unwrap()
            .iter()
            .any(|a| a["kind"] == "credential_commitment_mismatch" && a["acknowledged_ms"].is_u64()),
        "the relay records the acknowledgement"
    );
    shot(&b, shots.as_ref(), "alerts");

    // The audit trail, verified in the page with the operator library.
    b.goto(&format!("{base}/audit")).unwrap();
    b.click("#verify").unwrap();
    wait_js(
        &b,
        "the verification",
        "return document.getElementById('verify-result').textContent !== '';",
    );
    let verdict = b.text("#verify-result").unwrap();
    assert!(verdict.starts_with("audit chain intact"), "{verdict}");
    wait_js(
        &b,
        "the chain head",
        "return !!document.getElementById('chain-head');",
    );
    wait_js(
        &b,
        "the entries up to the head marked verified",
        "return document.querySelectorAll('#live td.ok').length > 0;",
    );
    // A second Verify also checks that the trail still contains the head verified first.
    b.exec(
        "document.getElementById('verify-result').textContent = ''; return 1;",
        &[],
    )
    .unwrap();
    b.click("#verify").unwrap();
    wait_js(
        &b,
        "the second verification",
        "return document.getElementById('verify-result').textContent !== '';",
    );
    let verdict = b.text("#verify-result").unwrap();
    assert!(verdict.starts_with("audit chain intact"), "{verdict}");
    shot(&b, shots.as_ref(), "audit");

    b.goto(&format!("{base}/status")).unwrap();
    wait_js(
        &b,
        "the relay status",
        "return document.body.innerText.indexOf('replicas') >= 0;",
    );
    shot(&b, shots.as_ref(), "status");

    // The version each agent states at registration (crate version + git commit), relayed, shown on the fleet page
    // and by `agents ls`.
    let stated = format!("{}+", env!("CARGO_PKG_VERSION"));
    b.goto(&format!("{base}/")).unwrap();
    wait_js(
        &b,
        "edge-1's stated version",
        &format!(
            "var v = document.querySelector('tr[data-agent=\"edge-1\"] td.version'); \
             return !!v && v.textContent.indexOf('{stated}') === 0;"
        ),
    );
    let listed = c.op_json(&["agents", "ls"]).unwrap();
    for a in listed.as_array().unwrap() {
        assert!(a["version"].as_str().unwrap().starts_with(&stated), "{a}");
    }
    let table = String::from_utf8(c.op(&["agents", "ls"]).unwrap().stdout).unwrap();
    assert!(table.lines().next().unwrap().contains("VERSION"), "{table}");
    assert!(table.contains(&stated), "{table}");

    // Rotate keys from the fleet page: a confirmation first (Cancel sends nothing), then the relay queues edge-1's
    // renewal. An agent the CA's registry does not hold is refused by the dashboard.
    b.click("tr[data-agent='edge-1'] button[data-post]")
        .unwrap();
    wait_js(
        &b,
        "the confirmation",
        "var d = document.getElementById('confirm'); return !!d && !d.hidden;",
    );
    assert!(b.text("#confirm-text").unwrap().contains("edge-1"));
    b.click("#confirm-no").unwrap();
    wait_js(
        &b,
        "the confirmation closed",
        "return document.getElementById('confirm').hidden;",
    );
    assert_eq!(
        c.renewal_state("edge-1").unwrap(),
        None,
        "Cancel sent nothing"
    );
    b.click("tr[data-agent='edge-1'] button[data-post]")
        .unwrap();
    b.click("#confirm-yes").unwrap();
    wait_js(
        &b,
        "the rotation's answer",
        "return document.getElementById('confirm-result').textContent !== '';",
    );
    let rotated = b.text("#confirm-result").unwrap();
    assert!(rotated.starts_with("rotation requested"), "{rotated}");
    c.wait_renewal("edge-1", "requested", WAIT).unwrap();
    shot(&b, shots.as_ref(), "fleet-rotate");
    let ghost = post_from_page(&b, "/api/agents/ghost-9/rotate");
    assert_eq!(ghost[0], 400, "{ghost}");
    assert!(
        ghost[1]["message"]
            .as_str()
            .unwrap()
            .contains("no live certificate"),
        "{ghost}"
    );
    // Without the page's action header the dashboard refuses (a cross-site form cannot send it).
    let no_header = b
        .exec_async(&format!(
            "var done = arguments[arguments.length - 1]; \
             fetch('/api/credentials/{}/delete', {{method: 'POST', credentials: 'same-origin'}}) \
             .then(function (r) {{ done(r.status); }});",
            ids["api"]
        ))
        .unwrap();
    assert_eq!(no_header, 403);
    assert!(e1.names().unwrap().iter().any(|n| n == "api"));

    // Delete api from its page, after confirming: a tombstone signed here; edge-1 purges it.
    b.goto(&format!("{base}/credentials/{}", ids["api"]))
        .unwrap();
    b.click("#delete").unwrap();
    wait_js(
        &b,
        "the confirmation",
        "var d = document.getElementById('confirm'); return !!d && !d.hidden;",
    );
    b.click("#confirm-yes").unwrap();
    wait_js(
        &b,
        "the delete's answer",
        "return document.getElementById('confirm-result').textContent !== '';",
    );
    let deleted = b.text("#confirm-result").unwrap();
    assert!(deleted.contains("tombstone sent"), "{deleted}");
    wait_for("edge-1 to purge api", WAIT, || {
        Ok(!e1.names()?.iter().any(|n| n == "api"))
    })
    .unwrap();
    assert_eq!(c.audit("credential_tombstoned").unwrap().len(), 1);
    b.goto(&format!("{base}/credentials")).unwrap();
    wait_js(
        &b,
        "api listed as deleted",
        "var r = document.querySelector('tr[data-cred=\"api\"]'); return !!r && r.innerText.indexOf('deleted') >= 0;",
    );
    shot(&b, shots.as_ref(), "credentials-deleted");

    // A lying admin API in the relay's place: its strings are text, never markup or script.
    c.kill_relay();
    let liar = LyingAdmin::for_cluster(&c);
    let hostile =
        "<script>window.tesseraPwned=1</script><img src=x onerror=\"window.tesseraPwned=1\">";
    liar.answer(
        "/v1/alerts",
        serde_json::json!([{ "id": "0123456789abcdef", "kind": hostile, "severity": "critical", "subject": hostile,
            "message": hostile, "count": 1, "raised_ms": 1, "last_ms": 1 }]),
    );
    liar.answer(
        "/v1/status",
        serde_json::json!({ "broker": hostile, "replicas": hostile }),
    );
    for page in ["/alerts", "/status"] {
        b.goto(&format!("{base}{page}")).unwrap();
        wait_js(
            &b,
            "the hostile strings shown as text",
            "return document.getElementById('live').textContent.indexOf('<script>window.tesseraPwned') >= 0;",
        );
        assert_eq!(
            b.exec("return window.tesseraPwned === undefined", &[])
                .unwrap(),
            true
        );
        assert_eq!(
            b.exec(
                "return document.querySelectorAll('#live script, #live img').length",
                &[]
            )
            .unwrap(),
            0
        );
    }
}
