//! The pages' HTML. Every value from the relay, the agents or the files goes through [`esc`]; the markup around it
//! is this file's. Each page is a shell ([`page`]) around a live region the browser refreshes by polling the same
//! path with `?fragment=1` (the region's HTML in JSON), and a static region for forms.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::html::{esc, time_ms, time_s};
use super::snapshot::{shown_verified, AgentRow, AlertRow, Chip, CredRow, Shown, Verification};

/// The navigation entries: (path, label).
const NAV: [(&str, &str); 5] = [
    ("/", "Fleet"),
    ("/credentials", "Credentials"),
    ("/alerts", "Alerts"),
    ("/audit", "Audit"),
    ("/status", "Relay status"),
];

/// A whole page: navigation, the live region `live` and the static region `actions`.
pub(crate) fn page(title: &str, active: &str, live: &str, actions: &str) -> String {
    let mut nav = String::new();
    for (path, label) in NAV {
        let class = if path == active {
            " class=\"active\""
        } else {
            ""
        };
        let _ = write!(nav, "<a href=\"{path}\"{class}>{label}</a>");
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · Tessera</title><link rel=\"stylesheet\" href=\"/assets/app.css\"></head>\
         <body><header><span class=\"brand\">Tessera</span><nav>{nav}</nav>\
         <span class=\"updated\">updated <span id=\"updated\">now</span></span></header>\
         <h1>{title}</h1><main id=\"live\">{live}</main><section id=\"actions\">{actions}</section>\
         <script src=\"/assets/app.js\"></script></body></html>\n",
        title = esc(title),
    )
}

/// An error from the relay or the operator's files, in place of a page's content.
pub(crate) fn error(msg: &str) -> String {
    format!(
        "<p class=\"error\" role=\"alert\">Cannot show this page: {}</p>",
        esc(msg)
    )
}

/// The chip of a credential: its text and CSS class.
pub(crate) fn chip(c: &Chip) -> (String, &'static str) {
    match c {
        Chip::Synced { done, of } => (format!("✓ {done}/{of} synced"), "chip synced"),
        Chip::Partial { done, of } => (format!("⚠ {done}/{of} synced"), "chip partial"),
        Chip::Pending(n) => (format!("⏳ Pending ({n})"), "chip pending"),
        Chip::Integrity => ("Integrity failure".to_owned(), "chip integrity"),
        Chip::Purge { done, of } if done >= of => (format!("Purged {done}/{of}"), "chip purged"),
        Chip::Purge { done, of } => (format!("Purging {done}/{of}"), "chip purging"),
    }
}

fn chip_html(c: &Chip, id: &str) -> String {
    let (text, class) = chip(c);
    format!(
        "<span class=\"{class}\" data-chip=\"{}\">{}</span>",
        esc(id),
        esc(&text)
    )
}

/// The fleet page's live region.
pub(crate) fn fleet(agents: &[AgentRow]) -> String {
    if agents.is_empty() {
        return "<p class=\"empty\">The relay lists no agents.</p>".to_owned();
    }
    let mut t = String::from(
        "<table class=\"fleet\"><thead><tr><th>Agent</th><th>State</th><th>Last seen</th>\
         <th>Credentials held</th><th>Certificate expires</th>\
         <th title=\"as the agent states it, relayed: not verified\">Version (stated)</th><th></th></tr></thead><tbody>",
    );
    for a in agents {
        let state_class = match a.state.as_str() {
            "online" => "online",
            "backfilling" => "backfilling",
            "offline" => "offline",
            _ => "revoked",
        };
        let _ = write!(
            t,
            "<tr data-agent=\"{id}\"><td>{id}</td><td><span class=\"state {state_class}\">{state}</span></td>\
             <td>{seen}</td><td class=\"held\">{held}/{of}</td><td>{expiry}</td><td class=\"version\">{version}</td>\
             <td>{rotate}</td></tr>",
            id = esc(&a.id),
            state = esc(&a.state),
            seen = esc(&time_ms(a.last_seen_ms)),
            held = a.held,
            of = a.of,
            expiry = a.cert_expiry.map_or_else(|| "-".to_owned(), time_s),
            version = esc(a.version.as_deref().unwrap_or("not reported")),
            rotate = if a.certified { rotate_button(&a.id) } else { String::new() },
        );
    }
    t.push_str(
        "</tbody></table><p class=\"note\">Version is what each agent states when it registers, relayed by the \
         relay: not verified. Rotate keys asks the agent to generate new keys and queue a renewal request (as \
         <code>tessera agents rotate</code>), which <code>tessera ca renew</code> certifies on the CA's \
         workstation.</p>",
    );
    t
}

/// An agent's "Rotate keys" button; it asks to confirm first (the page's script).
fn rotate_button(agent: &str) -> String {
    let id = esc(agent);
    format!(
        "<button data-post=\"/api/agents/{id}/rotate\" data-label=\"Rotate keys\" \
         data-confirm=\"Rotate the keys of {id}? It generates new keys and queues a renewal request for the CA.\">\
         Rotate keys</button>"
    )
}

/// The credentials page's live region.
pub(crate) fn credentials(creds: &[CredRow], unknown: &[String]) -> String {
    let mut t = String::new();
    if creds.is_empty() {
        t.push_str("<p class=\"empty\">The catalogue holds no credentials.</p>");
    } else {
        t.push_str(
            "<table class=\"creds\"><thead><tr><th>Name</th><th>Version</th><th>Sync</th><th>Scope</th>\
             <th>Receipts</th></tr></thead><tbody>",
        );
        for c in creds {
            let id = c.id.to_string();
            let _ = write!(
                t,
                "<tr data-cred=\"{name}\"><td><a href=\"/credentials/{id}\">{name}</a></td><td>v{v}</td>\
                 <td>{chip}</td><td>{scope}</td><td>{summary}</td></tr>",
                name = esc(&c.name),
                id = esc(&id),
                v = c.version,
                chip = chip_html(&c.chip, &c.name),
                scope = esc(&c.scope),
                summary = esc(&c.summary),
            );
        }
        t.push_str("</tbody></table>");
    }
    if !unknown.is_empty() {
        let _ = write!(
            t,
            "<p class=\"note\">The relay also lists credentials this operator's catalogue does not know (not \
             counted; <code>tessera cred adopt</code> learns them): {}</p>",
            esc(&unknown.join(", "))
        );
    }
    t
}

/// One credential's live region: its chip and each agent's delivery.
pub(crate) fn credential(c: &CredRow) -> String {
    let mut t = format!(
        "<p><strong>{name}</strong> v{v} {chip} <span class=\"summary\">{summary}</span></p>\
         <p>Scope: {scope}</p>",
        name = esc(&c.name),
        v = c.version,
        chip = chip_html(&c.chip, &c.name),
        summary = esc(&c.summary),
        scope = esc(&c.scope),
    );
    if c.unproven > 0 {
        let _ = write!(
            t,
            "<p class=\"error\">{} state(s) the relay records without a valid receipt from the agent.</p>",
            c.unproven
        );
    }
    for a in &c.anomalies {
        let _ = write!(t, "<p class=\"error\">Integrity failure: {}.</p>", esc(a));
    }
    t.push_str(
        "<table class=\"deliveries\"><thead><tr><th>Agent</th><th>Presence</th><th>State</th><th>Attempts</th>\
         <th>Next retry</th><th>Last error</th><th>Receipt</th></tr></thead><tbody>",
    );
    for r in &c.rows {
        let next = if r.done || r.next_attempt_ms == 0 {
            "-".to_owned()
        } else {
            time_ms(r.next_attempt_ms)
        };
        let _ = write!(
            t,
            "<tr data-agent=\"{agent}\"><td>{agent}</td><td>{presence}</td><td>{state}</td><td>{attempts}</td>\
             <td>{next}</td><td>{error}</td><td>{receipt}</td></tr>",
            agent = esc(&r.agent),
            presence = esc(&r.presence),
            state = esc(&r.state),
            attempts = r.attempts,
            next = esc(&next),
            error = esc(r.last_error.as_deref().unwrap_or("-")),
            receipt = esc(&r.receipt),
        );
    }
    for a in &c.missing {
        let _ = write!(
            t,
            "<tr><td>{}</td><td colspan=\"6\">not listed by the relay</td></tr>",
            esc(a)
        );
    }
    t.push_str("</tbody></table>");
    t
}

/// One credential's static region: Retry (with its cooldown), Grant/Revoke, and Delete (confirmed first).
pub(crate) fn credential_actions(c: &CredRow, cooldown_s: u64) -> String {
    let id = esc(&c.id.to_string());
    let mut t = format!(
        "<div class=\"action\"><button id=\"retry\" data-post=\"/api/credentials/{id}/retry\" data-label=\"Retry\" \
         data-result=\"retry-result\" data-cooldown=\"{cooldown_s}\">Retry</button> \
         <span id=\"retry-result\" class=\"result\"></span>\
         <p class=\"hint\">Asks the relay to retry pending and stalled deliveries now (at most once per 30 s).</p></div>"
    );
    if !c.deleted {
        let _ = write!(
            t,
            "<div class=\"action\"><label for=\"grant-agents\">Agents</label> \
             <input id=\"grant-agents\" name=\"agents\" placeholder=\"edge-4 edge-5\" autocomplete=\"off\"> \
             <button id=\"grant\" data-post=\"/api/credentials/{id}/grant\" data-field=\"grant-agents\" \
             data-label=\"Grant\" data-result=\"grant-result\">Grant</button> \
             <button id=\"revoke\" data-post=\"/api/credentials/{id}/revoke\" data-field=\"grant-agents\" \
             data-label=\"Revoke\" data-result=\"grant-result\">Revoke</button> \
             <span id=\"grant-result\" class=\"result\"></span>\
             <p class=\"hint\">Signs a new statement with these agents added to (Grant) or removed from (Revoke) \
             the scope, here, with your key (as <code>tessera grant</code> / <code>tessera revoke</code>; revoked \
             agents purge it).</p></div>"
        );
        let name = esc(&c.name);
        let _ = write!(
            t,
            "<div class=\"action\"><button id=\"delete\" data-post=\"/api/credentials/{id}/delete\" \
             data-label=\"Delete\" data-confirm=\"Delete {name} on every agent? A signed tombstone is sent; \
             agents purge it and its id is never used again.\">Delete</button>\
             <p class=\"hint\">Signs a tombstone for every version, here, with your key (as <code>tessera cred rm</code>): \
             the relay deletes it and its agents purge it.</p></div>"
        );
    }
    t
}

/// The alerts page's live region.
pub(crate) fn alerts(list: &[AlertRow]) -> String {
    if list.is_empty() {
        return "<p class=\"empty\">No alerts.</p>".to_owned();
    }
    let mut t = String::from(
        "<table class=\"alerts\"><thead><tr><th>Severity</th><th>Kind</th><th>Subject</th><th>Message</th>\
         <th>Count</th><th>Last</th><th></th></tr></thead><tbody>",
    );
    for a in list {
        let ack = match (&a.id, a.acknowledged_ms) {
            (_, Some(at)) => format!("acknowledged {}", esc(&time_ms(at))),
            (Some(id), None) => format!(
                "<button data-post=\"/api/alerts/{id}/ack\" data-label=\"Acknowledge\" \
                 data-result=\"ack-{id}\">Acknowledge</button><span id=\"ack-{id}\" class=\"result\"></span>",
                id = esc(id)
            ),
            (None, None) => "-".to_owned(),
        };
        let sev = match a.severity.as_str() {
            "critical" => "critical",
            "high" => "high",
            _ => "medium",
        };
        let _ = write!(
            t,
            "<tr class=\"{ackd}\"><td><span class=\"sev {sev}\">{severity}</span></td><td>{kind}</td>\
             <td>{subject}</td><td>{message}</td><td>{count}</td><td>{last}</td><td>{ack}</td></tr>",
            ackd = if a.acknowledged_ms.is_some() { "acked" } else { "open" },
            severity = esc(&a.severity),
            kind = esc(&a.kind),
            subject = esc(&a.subject),
            message = esc(&a.message),
            count = a.count,
            last = esc(&time_ms(a.last_ms)),
        );
    }
    t.push_str("</tbody></table>");
    t
}

/// The note under a table cut at [`super::cache::MAX_ROWS`] rows (`total`: how many there were), or nothing.
pub(crate) fn truncated(shown: usize, total: Option<usize>) -> String {
    total.map_or_else(String::new, |total| {
        format!(
            "<p class=\"note truncated\">Truncated: showing the first {shown} of {total} rows (the \
             <code>tessera</code> commands list them all).</p>"
        )
    })
}

/// The audit page's live region: the last verification and the newest entries, each marked verified only when it
/// is part of the trail verified (up to its head, linked to it by hash: [`shown_verified`]).
pub(crate) fn audit(
    entries: &[tessera_proto::audit::AuditEntry],
    verified: Option<&Verification>,
) -> String {
    let mut t = String::new();
    let shown = shown_verified(entries, verified.and_then(|v| v.head.as_ref()));
    match verified {
        None => t.push_str("<p id=\"verify-state\">Not verified yet in this session.</p>"),
        Some(_) if shown == Shown::Differs => t.push_str(
            "<p id=\"verify-state\" class=\"error\">The trail shown is NOT the one verified: the entry at the \
             verified head differs (rewritten since). Verify again.</p>",
        ),
        Some(v) => {
            let _ = write!(
                t,
                "<p id=\"verify-state\" class=\"{class}\">{text}</p>",
                class = if v.ok { "ok" } else { "error" },
                text = esc(&v.text)
            );
            if let Some((seq, hash)) = &v.head {
                let _ = write!(
                    t,
                    "<p>Chain head: <code id=\"chain-head\">{seq}:{}</code> (keep it: <code>tessera audit verify \
                     --expect-head</code> checks a later trail still contains it; entries after it are not \
                     verified until Verify runs again)</p>",
                    esc(hash)
                );
            }
        }
    }
    t.push_str(
        "<table class=\"audit\"><thead><tr><th>Seq</th><th>When</th><th>Kind</th><th>Data</th><th>Verified</th>\
         </tr></thead><tbody>",
    );
    for e in entries {
        let data = e
            .data
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        let ok = matches!(shown, Shown::Upto { from, head } if (from..=head).contains(&e.seq));
        let _ = write!(
            t,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
            e.seq,
            esc(&time_ms(e.at_ms)),
            esc(&e.kind),
            esc(&data),
            if ok { "ok" } else { "unverified" },
            if ok { "✓" } else { "not verified" },
        );
    }
    t.push_str("</tbody></table>");
    t
}

/// The audit page's static region.
pub(crate) fn audit_actions() -> String {
    "<div class=\"action\"><button id=\"verify\" data-post=\"/api/audit/verify\" data-label=\"Verify\" \
     data-result=\"verify-result\">Verify</button> <span id=\"verify-result\" class=\"result\"></span>\
     <p class=\"hint\">Fetches the whole trail and checks its hash chain and every recorded delivery, purge and \
     rotation against the agent's signed receipt (as <code>tessera audit verify</code>).</p></div>"
        .to_owned()
}

/// The relay status page's live region.
pub(crate) fn status(map: &BTreeMap<String, String>) -> String {
    let mut t = String::from(
        "<p class=\"note\">As the relay reports it (not signed; for operations, not for trust).</p>\
         <table class=\"status\"><tbody>",
    );
    for (k, v) in map {
        let _ = write!(t, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
    }
    t.push_str("</tbody></table>");
    t
}
