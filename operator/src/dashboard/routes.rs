//! The dashboard's routes: the pages (whole, or their live region as JSON with `?fragment=1`), the actions under
//! `/api/`, the assets, and the guard every request passes ([`super::auth`]).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tessera_proto::ids::{AgentId, CredentialId};

use super::cache::{cap, Caches, Shared};
use super::cooldown::Cooldown;
use super::identity::Identity;
use super::snapshot::{self, Verification};
use super::{assets, auth, views};
use crate::catalogue::Catalogue;
use crate::{agent_rotate, cred};

/// What the handlers share.
#[derive(Debug)]
pub(crate) struct AppState {
    pub(crate) id: Identity,
    /// The login token, until `/login` takes it (single use).
    pub(crate) login: Mutex<Option<auth::Secret>>,
    /// The session value the cookie carries.
    pub(crate) session: auth::Secret,
    /// The only `Host` accepted: the run's random name and the port.
    pub(crate) host: String,
    pub(crate) caches: Caches,
    /// The first head verified this session: every later Verify checks the trail still contains it.
    pub(crate) first_head: Mutex<Option<(u64, String)>>,
    pub(crate) cooldown: Cooldown,
    /// One signing action at a time (each reads and writes the catalogue).
    pub(crate) sign: tokio::sync::Mutex<()>,
    pub(crate) verified: Mutex<Option<Verification>>,
}

type St = State<Arc<AppState>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fragment {
    fragment: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    token: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantBody {
    agents: String,
}

/// The router.
pub(crate) fn router(st: Arc<AppState>) -> Router {
    Router::new()
        .route("/login", get(login))
        .route("/", get(fleet_page))
        .route("/credentials", get(credentials_page))
        .route("/credentials/{id}", get(credential_page))
        .route("/alerts", get(alerts_page))
        .route("/audit", get(audit_page))
        .route("/status", get(status_page))
        .route("/api/credentials/{id}/retry", post(retry))
        .route("/api/credentials/{id}/grant", post(grant))
        .route("/api/credentials/{id}/revoke", post(revoke))
        .route("/api/credentials/{id}/delete", post(delete))
        .route("/api/agents/{id}/rotate", post(rotate))
        .route("/api/alerts/{id}/ack", post(ack))
        .route("/api/audit/verify", post(verify))
        .route("/assets/app.css", get(css))
        .route("/assets/app.js", get(js))
        .layer(axum::middleware::from_fn_with_state(st.clone(), guard))
        .with_state(st)
}

/// Refuses what [`auth::refusal`] refuses; sets the security headers on every answer.
async fn guard(State(st): St, req: Request, next: Next) -> Response {
    let refused = auth::refusal(
        req.method(),
        req.uri().path(),
        req.headers(),
        &st.session,
        &st.host,
    );
    let mut resp = match refused {
        Some(why) => (StatusCode::FORBIDDEN, why).into_response(),
        None => next.run(req).await,
    };
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; \
             form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Exchanges the login token, once, for the session cookie (host-only: no `Domain`, so it is sent to this
/// run's host name only).
async fn login(State(st): St, Query(q): Query<Login>) -> Response {
    let taken = auth::take_login(&st.login, &q.token);
    drop(zeroize::Zeroizing::new(q.token));
    if !taken {
        return (
            StatusCode::FORBIDDEN,
            "this login address is wrong or was used already (it works once): start `tessera dashboard` again for \
             a new one",
        )
            .into_response();
    }
    let cookie = format!(
        "{}={}; HttpOnly; SameSite=Strict; Path=/",
        auth::COOKIE,
        st.session.expose()
    );
    let mut resp = Redirect::to("/").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

/// A page, or its live region as `{"html": ...}` when the query asks for the fragment.
fn respond(q: &Fragment, title: &str, active: &str, live: &str, actions: &str) -> Response {
    if q.fragment.is_some() {
        Json(serde_json::json!({ "html": live })).into_response()
    } else {
        Html(views::page(title, active, live, actions)).into_response()
    }
}

/// The operator's files and the revocation list, shared a few seconds (read again at once when a file changed).
async fn files(st: &AppState) -> Shared<snapshot::Judge> {
    let stamp = snapshot::files_stamp(&st.id.dir);
    let (_, j) = st
        .caches
        .files
        .get_unless(
            Instant::now(),
            |(was, _)| *was != stamp,
            || async {
                let j = snapshot::judge_files(&st.id).await.map(Arc::new);
                (stamp.clone(), j)
            },
        )
        .await;
    j
}

/// Every credential judged, shared by every tab for the refresh interval.
async fn credentials(st: &AppState) -> Shared<(Vec<snapshot::CredRow>, Vec<String>)> {
    st.caches
        .credentials
        .get(Instant::now(), || async {
            let j = files(st).await?;
            snapshot::credentials(&st.id, &j).await.map(Arc::new)
        })
        .await
}

async fn fleet_page(State(st): St, Query(q): Query<Fragment>) -> Response {
    let fleet = st
        .caches
        .fleet
        .get(Instant::now(), || async {
            let j = files(&st).await?;
            let c = credentials(&st).await?;
            snapshot::fleet(&st.id, &j, &c.0).await.map(Arc::new)
        })
        .await;
    let live = match fleet {
        Ok(a) => {
            let (a, total) = cap(&a);
            views::fleet(a) + &views::truncated(a.len(), total)
        }
        Err(e) => views::error(&e),
    };
    respond(&q, "Fleet", "/", &live, "")
}

async fn credentials_page(State(st): St, Query(q): Query<Fragment>) -> Response {
    let live = match credentials(&st).await {
        Ok(c) => {
            let (list, total) = cap(&c.0);
            let (unknown, _) = cap(&c.1);
            views::credentials(list, unknown) + &views::truncated(list.len(), total)
        }
        Err(e) => views::error(&e),
    };
    respond(&q, "Credentials", "/credentials", &live, "")
}

async fn credential_page(
    State(st): St,
    Path(id): Path<String>,
    Query(q): Query<Fragment>,
) -> Response {
    let Ok(id) = id.parse::<CredentialId>() else {
        return (StatusCode::NOT_FOUND, "no such credential").into_response();
    };
    let mut title = "Credential".to_owned();
    let (live, actions) = match credentials(&st).await {
        Ok(all) => match all.0.iter().find(|c| c.id == id) {
            Some(c) => {
                let mut c = c.clone();
                let (_, total) = cap(&c.rows);
                c.rows.truncate(super::cache::MAX_ROWS);
                c.missing.truncate(super::cache::MAX_ROWS);
                let left = st
                    .cooldown
                    .remaining(&id, Instant::now())
                    .map_or(0, |d| d.as_secs() + 1);
                // The catalogue's name (escaped by the page like everything else).
                title = format!("Credential {}", c.name);
                (
                    views::credential(&c) + &views::truncated(c.rows.len(), total),
                    views::credential_actions(&c, left),
                )
            }
            None => (
                views::error("not in this operator's catalogue (`tessera cred adopt` learns it)"),
                String::new(),
            ),
        },
        Err(e) => (views::error(&e), String::new()),
    };
    respond(&q, &title, "/credentials", &live, &actions)
}

async fn alerts_page(State(st): St, Query(q): Query<Fragment>) -> Response {
    let alerts = st
        .caches
        .alerts
        .get(Instant::now(), || async {
            snapshot::alerts(&st.id).await.map(Arc::new)
        })
        .await;
    let live = match alerts {
        Ok(a) => {
            let (a, total) = cap(&a);
            views::alerts(a) + &views::truncated(a.len(), total)
        }
        Err(e) => views::error(&e),
    };
    respond(&q, "Alerts", "/alerts", &live, "")
}

async fn audit_page(State(st): St, Query(q): Query<Fragment>) -> Response {
    let verified = st
        .verified
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let tail = st
        .caches
        .audit
        .get(Instant::now(), || async {
            snapshot::audit_tail(&st.id, 200).await.map(Arc::new)
        })
        .await;
    let live = match tail {
        Ok(e) => views::audit(&e, verified.as_ref()),
        Err(e) => views::error(&e),
    };
    respond(&q, "Audit trail", "/audit", &live, &views::audit_actions())
}

async fn status_page(State(st): St, Query(q): Query<Fragment>) -> Response {
    let status = st
        .caches
        .status
        .get(Instant::now(), || async {
            snapshot::status(&st.id).await.map(Arc::new)
        })
        .await;
    let live = match status {
        Ok(m) => {
            let shown = m
                .iter()
                .take(super::cache::MAX_ROWS)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let total = (m.len() > super::cache::MAX_ROWS).then_some(m.len());
            views::status(&shown) + &views::truncated(super::cache::MAX_ROWS.min(m.len()), total)
        }
        Err(e) => views::error(&e),
    };
    respond(&q, "Relay status", "/status", &live, "")
}

/// An action's answer: `{ok, message}` (shown as text by the page), with the cooldown to display if any.
fn answer(status: StatusCode, ok: bool, message: &str, cooldown_s: Option<u64>) -> Response {
    let mut v = serde_json::json!({ "ok": ok, "message": message });
    if let (Some(s), Some(o)) = (cooldown_s, v.as_object_mut()) {
        o.insert("cooldown_s".into(), s.into());
    }
    (status, Json(v)).into_response()
}

async fn retry(State(st): St, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<CredentialId>() else {
        return answer(StatusCode::NOT_FOUND, false, "no such credential", None);
    };
    if let Err(left) = st.cooldown.try_start(id, Instant::now()) {
        let s = left.as_secs() + 1;
        return answer(
            StatusCode::TOO_MANY_REQUESTS,
            false,
            &format!("refused: a retry was requested less than 30 s ago (cooldown, {s} s left)"),
            Some(s),
        );
    }
    let secs = super::cooldown::RETRY_COOLDOWN.as_secs();
    match st
        .id
        .client
        .post(
            &format!("/v1/credentials/{id}/retry"),
            &serde_json::json!({}),
        )
        .await
    {
        Ok(_) => answer(StatusCode::OK, true, "retry requested", Some(secs)),
        Err(e) => answer(StatusCode::BAD_GATEWAY, false, &e.to_string(), Some(secs)),
    }
}

async fn grant(st: St, id: Path<String>, b: Json<GrantBody>) -> Response {
    rescope(st, id, b, cred::Rescope::Grant).await
}

async fn revoke(st: St, id: Path<String>, b: Json<GrantBody>) -> Response {
    rescope(st, id, b, cred::Rescope::Revoke).await
}

/// Grant or revoke: signed here, by the same code as `tessera grant` / `tessera revoke`.
async fn rescope(
    State(st): St,
    Path(id): Path<String>,
    Json(b): Json<GrantBody>,
    how: cred::Rescope,
) -> Response {
    let Ok(id) = id.parse::<CredentialId>() else {
        return answer(StatusCode::NOT_FOUND, false, "no such credential", None);
    };
    let agents = match b
        .agents
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|a| !a.is_empty())
        .map(AgentId::new)
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(a) if !a.is_empty() => a,
        Ok(_) => {
            return answer(
                StatusCode::BAD_REQUEST,
                false,
                "name at least one agent",
                None,
            )
        }
        Err(e) => return answer(StatusCode::BAD_REQUEST, false, &e.to_string(), None),
    };
    let _one = st.sign.lock().await;
    // The name comes from the operator's catalogue, never from the relay; and only when that name's newest entry is
    // this id (what `rescope` acts on by name), so no other entry of the same name is signed for.
    let name = match Catalogue::load(&st.id.dir) {
        Ok(c) => c.live_name_of(&id).cloned(),
        Err(e) => {
            return answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                false,
                &e.to_string(),
                None,
            )
        }
    };
    let Some(name) = name else {
        return answer(
            StatusCode::NOT_FOUND,
            false,
            "not a live credential of this operator's catalogue",
            None,
        );
    };
    let signer = st.id.signer();
    match cred::rescope(&st.id.client, &signer, &name, &agents, how).await {
        Ok((r, notes)) => {
            let mut msg = format!(
                "{} scope revision {}: {}",
                name.as_str(),
                r.scope_revision,
                r.scope_change
            );
            for n in notes {
                msg.push_str("; note: ");
                msg.push_str(&n);
            }
            answer(StatusCode::OK, true, &msg, None)
        }
        Err(e) => answer(StatusCode::BAD_REQUEST, false, &e.to_string(), None),
    }
}

/// Delete: a tombstone signed here, by the same code as `tessera cred rm` (the id and version from the catalogue).
async fn delete(State(st): St, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<CredentialId>() else {
        return answer(StatusCode::NOT_FOUND, false, "no such credential", None);
    };
    let _one = st.sign.lock().await;
    let signer = st.id.signer();
    match cred::remove(&st.id.client, &signer, &cred::Target::Id(id)).await {
        Ok((e, notes)) => {
            let mut msg = format!(
                "{} deleted through version {}: tombstone sent; its agents purge it",
                e.name.as_str(),
                e.version
            );
            for n in notes {
                msg.push_str("; note: ");
                msg.push_str(&n);
            }
            answer(StatusCode::OK, true, &msg, None)
        }
        Err(cred::CredError::Client(e)) => {
            answer(StatusCode::BAD_GATEWAY, false, &e.to_string(), None)
        }
        Err(e) => answer(StatusCode::BAD_REQUEST, false, &e.to_string(), None),
    }
}

/// Rotate keys: as `tessera agents rotate`, only for an agent the CA's registry holds a live certificate for.
async fn rotate(State(st): St, Path(id): Path<String>) -> Response {
    let Ok(agent) = AgentId::new(id) else {
        return answer(StatusCode::NOT_FOUND, false, "no such agent", None);
    };
    match agent_rotate::request(&st.id.client, &st.id.ca, &st.id.dir, &agent).await {
        Ok(_) => answer(
            StatusCode::OK,
            true,
            &format!(
                "rotation requested: {} generates new keys and queues a renewal request; certify it with \
                 `tessera ca renew --dir CA-DIR --due` on the CA's workstation",
                agent.as_str()
            ),
            None,
        ),
        Err(agent_rotate::RotateError::Client(e)) => {
            answer(StatusCode::BAD_GATEWAY, false, &e.to_string(), None)
        }
        Err(e) => answer(StatusCode::BAD_REQUEST, false, &e.to_string(), None),
    }
}

async fn ack(State(st): St, Path(id): Path<String>) -> Response {
    if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return answer(StatusCode::NOT_FOUND, false, "no such alert", None);
    }
    match st
        .id
        .client
        .post(&format!("/v1/alerts/{id}/ack"), &serde_json::json!({}))
        .await
    {
        Ok(_) => answer(StatusCode::OK, true, "acknowledged", None),
        Err(e) => answer(StatusCode::BAD_GATEWAY, false, &e.to_string(), None),
    }
}

/// Verifies the whole trail; from the second time on, also that it still contains the first head verified.
async fn verify(State(st): St) -> Response {
    let first = st
        .first_head
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let v = snapshot::verify_audit(&st.id, first.as_ref()).await;
    if first.is_none() {
        if let Some(h) = &v.head {
            *st.first_head.lock().unwrap_or_else(PoisonError::into_inner) = Some(h.clone());
        }
    }
    let msg = match &v.head {
        Some((seq, hash)) => format!("{}; head {seq}:{hash}", v.text),
        None => v.text.clone(),
    };
    let ok = v.ok;
    *st.verified.lock().unwrap_or_else(PoisonError::into_inner) = Some(v);
    answer(StatusCode::OK, ok, &msg, None)
}

async fn css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        assets::CSS,
    )
        .into_response()
}

async fn js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        assets::JS,
    )
        .into_response()
}
