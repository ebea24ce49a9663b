//! The admin API: HTTPS (rustls) on localhost by default, every request authenticated by an operator certificate
//! from the org CA (chain checked in the handshake; role, validity and revocation checked per request).
//!
//! Errors map to a small public set — `invalid` (400/409), `unauthorized` (401), `busy` (429), `internal` (500) —
//! with the full chain logged once here.

mod views;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use serde::Deserialize;
use tessera_proto::cert::{OperatorCertificate, PinnedCa};
use tessera_proto::ids::{AgentId, CredentialId, CredentialName, TemplateName};
use tessera_proto::statement::{RevocationList, Signed};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

pub use tessera_proto::admin::{
    AgentView, CredentialView, DeliveryView, EnvelopeFor, PurgeChips, PutBatchBody, PutBody,
    RenewalCertBody, RenewalView, SyncChips, TombstoneBody,
};
use views::{agent_view, credential_view, delivery_view, renewal_view};

use crate::engine::operator::OperatorError;
use crate::runtime::AdminRequest;
use crate::state::RelayStore;

/// What handlers share.
#[derive(Debug, Clone)]
pub struct AdminState {
    /// State, for reads.
    pub store: Arc<dyn RelayStore>,
    /// The org CA, for the operator check.
    pub ca: PinnedCa,
    /// Mutations go to the engine worker.
    pub requests: mpsc::Sender<AdminRequest>,
    /// The broker link and the metrics (crate::health).
    pub health: Arc<crate::health::Health>,
    /// The state backend's name (`sled`, `postgres`).
    pub state_backend: &'static str,
    /// This replica's coordination, as the engine worker last reported it (every tick).
    pub coordination: tokio::sync::watch::Receiver<crate::coordination::CoordinationStatus>,
}

/// A public error.
#[derive(Debug)]
pub struct ApiError(StatusCode, &'static str, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.0,
            Json(serde_json::json!({ "error": self.1, "message": self.2 })),
        )
            .into_response()
    }
}

fn internal(e: &dyn std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "admin API request failed");
    ApiError(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error".into(),
    )
}

impl From<OperatorError> for ApiError {
    fn from(e: OperatorError) -> Self {
        match e {
            OperatorError::Statement(m) | OperatorError::Invalid(m) => {
                ApiError(StatusCode::BAD_REQUEST, "invalid", m)
            }
            OperatorError::Conflict(m) => ApiError(StatusCode::CONFLICT, "invalid", m),
            OperatorError::NotFound(m) => ApiError(StatusCode::NOT_FOUND, "invalid", m),
            OperatorError::Busy(m) => ApiError(StatusCode::TOO_MANY_REQUESTS, "busy", m),
            other => internal(&other),
        }
    }
}

impl From<crate::state::StateError> for ApiError {
    fn from(e: crate::state::StateError) -> Self {
        internal(&e)
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

/// The authenticated operator, from the TLS client certificate.
#[derive(Debug, Clone)]
pub struct Operator(pub Option<OperatorCertificate>);

/// Every route requires an operator certificate; the operator is logged with each request.
async fn require_operator(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Result<Response, ApiError> {
    let operator = req
        .extensions()
        .get::<Operator>()
        .and_then(|o| o.0.as_ref())
        .map(|o| o.operator_id.as_str().to_owned());
    let Some(operator) = operator else {
        return Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "an operator certificate is required".into(),
        ));
    };
    tracing::info!(operator, method = %req.method(), path = %req.uri().path(), "admin request");
    Ok(next.run(req).await)
}

async fn ask<T>(
    st: &AdminState,
    make: impl FnOnce(oneshot::Sender<Result<T, OperatorError>>) -> AdminRequest,
) -> Result<T, ApiError> {
    let (tx, rx) = oneshot::channel();
    st.requests.send(make(tx)).await.map_err(|_| {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "the relay is shutting down".into(),
        )
    })?;
    rx.await
        .map_err(|_| {
            ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "the relay is shutting down".into(),
            )
        })?
        .map_err(ApiError::from)
}

async fn agents(State(st): State<AdminState>) -> ApiResult<Vec<AgentView>> {
    let connected = st.health.broker().connected;
    Ok(Json(
        st.store
            .agents()?
            .iter()
            .map(|a| agent_view(a, connected))
            .collect(),
    ))
}

async fn credentials(State(st): State<AdminState>) -> ApiResult<Vec<CredentialView>> {
    let offline: std::collections::HashSet<AgentId> = st
        .store
        .agents()?
        .into_iter()
        .filter(|a| a.state == tessera_proto::wire::AgentState::Offline)
        .map(|a| a.id)
        .collect();
    let mut out = Vec::new();
    for c in st.store.credentials()? {
        let rows = st.store.deliveries_of_credential(&c.id)?;
        let failures = st
            .store
            .alerts()?
            .into_iter()
            .filter(|a| a.subject.contains(&c.id.to_string()))
            .collect::<Vec<_>>();
        out.push(credential_view(&c, &rows, &failures, &offline));
    }
    Ok(Json(out))
}

async fn deliveries(
    State(st): State<AdminState>,
    Path(id): Path<String>,
) -> ApiResult<Vec<DeliveryView>> {
    let id = parse_id(&id)?;
    let agents: std::collections::HashMap<AgentId, tessera_proto::wire::AgentState> = st
        .store
        .agents()?
        .into_iter()
        .map(|a| (a.id, a.state))
        .collect();
    let mut out = Vec::new();
    for r in st.store.deliveries_of_credential(&id)? {
        let stored = st
            .store
            .receipt(&id, &r.agent, crate::state::ReceiptKind::Stored)?;
        let purged = st
            .store
            .receipt(&id, &r.agent, crate::state::ReceiptKind::Purged)?;
        out.push(delivery_view(
            &r,
            agents.get(&r.agent).copied(),
            stored,
            purged,
        ));
    }
    Ok(Json(out))
}

async fn renewals(State(st): State<AdminState>) -> ApiResult<Vec<RenewalView>> {
    Ok(Json(
        st.store.renewals()?.iter().map(renewal_view).collect(),
    ))
}

fn parse_agent(id: &str) -> Result<AgentId, ApiError> {
    AgentId::new(id)
        .map_err(|_| ApiError(StatusCode::BAD_REQUEST, "invalid", "not an agent id".into()))
}

async fn renewal_certificate(
    State(st): State<AdminState>,
    Path(agent): Path<String>,
    Json(body): Json<RenewalCertBody>,
) -> ApiResult<serde_json::Value> {
    let agent = parse_agent(&agent)?;
    let cert = tessera_proto::b64_decode(&body.cert).ok_or_else(|| {
        ApiError(
            StatusCode::BAD_REQUEST,
            "invalid",
            "cert is not base64".into(),
        )
    })?;
    ask(&st, |reply| AdminRequest::RenewalCertificate {
        agent,
        cert,
        reply,
    })
    .await?;
    Ok(Json(serde_json::json!({ "ok": true })))
}

async fn rotate(
    State(st): State<AdminState>,
    Path(agent): Path<String>,
) -> ApiResult<serde_json::Value> {
    let agent = parse_agent(&agent)?;
    ask(&st, |reply| AdminRequest::Rotate { agent, reply }).await?;
    Ok(Json(serde_json::json!({ "ok": true })))
}

async fn put(
    State(st): State<AdminState>,
    Json(body): Json<PutBody>,
) -> ApiResult<serde_json::Value> {
    let envelopes = body
        .envelopes
        .into_iter()
        .map(|e| (e.agent, e.key, e.envelope))
        .collect();
    ask(&st, |reply| AdminRequest::Put {
        statement: body.statement,
        envelopes,
        reply,
    })
    .await?;
    Ok(Json(serde_json::json!({ "ok": true })))
}

async fn put_batch(
    State(st): State<AdminState>,
    Json(body): Json<PutBatchBody>,
) -> ApiResult<serde_json::Value> {
    let body = Box::new(body);
    ask(&st, |reply| AdminRequest::PutBatch { body, reply }).await?;
    Ok(Json(serde_json::json!({ "ok": true })))
}

fn parse_id(id: &str) -> Result<CredentialId, ApiError> {
    id.parse().map_err(|_| {
        ApiError(
            StatusCode::BAD_REQUEST,
            "invalid",
            "not a credential id".into(),
        )
    })
}

async fn remove(
    State(st): State<AdminState>,
    Path(id): Path<String>,
) -> ApiResult<serde_json::Value> {
    let id = parse_id(&id)?;
    ask(&st, |reply| AdminRequest::Remove { id, reply }).await?;
    Ok(Json(serde_json::json!({ "ok": true })))
}

async fn tombstone(
    State(st): State<AdminState>,
    Path(id): Path<String>,
    Json(body): Json<TombstoneBody>,
) -> ApiResult<serde_json::Value> {
    let id = parse_id(&id)?;
    ask(&st, |reply| AdminRequest::Tombstone {
        id,
        tombstone: body.tombstone,
        reply,
    })
    .await?;
    Ok(Json(serde_json::json!({ "ok": true })))
}

async fn retry(
    State(st): State<AdminState>,
    Path(id): Path<String>,
) -> ApiResult<serde_json::Value> {
    let id = parse_id(&id)?;
    ask(&st, |reply| AdminRequest::Retry { id, reply }).await?;
    Ok(Json(serde_json::json!({ "ok": true })))
}

/// A job request.
#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct JobBody {
    /// Template.
    pub template: TemplateName,
    /// Parameters.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Credentials it needs.
    #[serde(default)]
    pub credentials: Vec<CredentialName>,
    /// A specific agent.
    #[serde(default)]
    pub agent: Option<AgentId>,
}

async fn job(State(st): State<AdminState>, Json(b): Json<JobBody>) -> ApiResult<serde_json::Value> {
    let (id, agent) = ask(&st, |reply| AdminRequest::Job {
        template: b.template,
        params: b.params,
        credentials: b.credentials,
        agent: b.agent,
        reply,
    })
    .await?;
    Ok(Json(serde_json::json!({ "job_id": id, "agent": agent })))
}

async fn revocations(
    State(st): State<AdminState>,
    Json(list): Json<Signed<RevocationList>>,
) -> ApiResult<serde_json::Value> {
    ask(&st, |reply| AdminRequest::Revocations { list, reply }).await?;
    Ok(Json(serde_json::json!({ "ok": true })))
}

/// The newest revocation list the relay accepted, as the CA signed it (`null` before the first): operators seal
/// only to agents it does not revoke, after checking its signature themselves.
async fn revocation_list(
    State(st): State<AdminState>,
) -> ApiResult<Option<Signed<RevocationList>>> {
    Ok(Json(st.store.revocations()?))
}

async fn jobs(State(st): State<AdminState>) -> ApiResult<Vec<crate::state::JobRecord>> {
    Ok(Json(st.store.jobs()?))
}

/// Every alert, each with its `id` (for `POST /v1/alerts/{id}/ack`).
async fn alerts(State(st): State<AdminState>) -> ApiResult<Vec<serde_json::Value>> {
    Ok(Json(
        st.store
            .alerts()?
            .iter()
            .map(|a| {
                let mut v = serde_json::to_value(a).unwrap_or_default();
                if let Some(o) = v.as_object_mut() {
                    o.insert("id".into(), a.id().into());
                }
                v
            })
            .collect(),
    ))
}

async fn ack_alert(
    State(st): State<AdminState>,
    Extension(operator): Extension<Operator>,
    Path(id): Path<String>,
) -> ApiResult<serde_json::Value> {
    if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "invalid",
            "an alert id is 16 hex digits".into(),
        ));
    }
    let by = operator
        .0
        .map(|o| o.operator_id.as_str().to_owned())
        .unwrap_or_default();
    ask(&st, |reply| AdminRequest::AckAlert { id, by, reply }).await?;
    Ok(Json(serde_json::json!({ "ok": true })))
}

async fn audit(State(st): State<AdminState>) -> ApiResult<Vec<tessera_proto::audit::AuditEntry>> {
    Ok(Json(st.store.audit()?))
}

async fn status(State(st): State<AdminState>) -> ApiResult<serde_json::Value> {
    let me = st.coordination.borrow().replica.clone();
    let replicas = st.store.replicas()?.map_or(1, |r| r.len().max(1));
    Ok(Json(serde_json::json!({
        "replica": me,
        "replicas": replicas,
        "state_backend": st.state_backend,
        "coordination": st.coordination.borrow().backend,
        "in_flight": st.store.pendings()?.len(),
        "broker": st.health.broker(),
    })))
}

/// The coordination of every replica connected to the state database:
/// `{"replicas": [{replica, backend, degraded, degraded_since_ms}]}`, by name. This replica's entry is its live
/// one; the others' are what each recorded at its last change. On sled, this replica's alone.
async fn coordination(State(st): State<AdminState>) -> ApiResult<serde_json::Value> {
    fn name(status: &serde_json::Value) -> Option<&str> {
        status.get("replica").and_then(serde_json::Value::as_str)
    }
    let me = st.coordination.borrow().clone();
    // The others' as recorded; when the database does not answer, this replica's own still is.
    let recorded = st.store.replica_statuses().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "could not read the other replicas' coordination status");
        None
    });
    let recorded = recorded.unwrap_or_default();
    let mut replicas: Vec<serde_json::Value> = recorded
        .into_iter()
        .filter(|r| name(r) != Some(me.replica.as_str()))
        .collect();
    replicas.push(serde_json::to_value(&me).map_err(|e| internal(&e))?);
    replicas.sort_by(|a, b| name(a).cmp(&name(b)));
    Ok(Json(serde_json::json!({ "replicas": replicas })))
}

/// The same metrics as the health listener's `/metrics` (kept here for scrapers that hold an operator certificate;
/// docs/operations.md "Health and metrics").
async fn metrics(State(st): State<AdminState>) -> Response {
    crate::health::metrics_response(st.health, st.store).await
}

/// The routes.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/v1/agents", get(agents))
        .route("/v1/agents/{id}/rotate", post(rotate))
        .route("/v1/renewals", get(renewals))
        .route(
            "/v1/renewals/{agent}/certificate",
            post(renewal_certificate),
        )
        .route("/v1/credentials/{id}/deliveries", get(deliveries))
        .route("/v1/credentials", get(credentials).post(put))
        .route("/v1/credentials/batch", post(put_batch))
        .route("/v1/credentials/{id}", axum::routing::delete(remove))
        .route("/v1/credentials/{id}/retry", post(retry))
        .route("/v1/credentials/{id}/tombstone", post(tombstone))
        .route("/v1/jobs", get(jobs).post(job))
        .route("/v1/alerts", get(alerts))
        .route("/v1/alerts/{id}/ack", post(ack_alert))
        .route("/v1/revocations", get(revocation_list).post(revocations))
        .route("/v1/audit", get(audit))
        .route("/v1/status", get(status))
        .route("/v1/coordination", get(coordination))
        .route("/metrics", get(metrics))
        .route_layer(axum::middleware::from_fn(require_operator))
        .with_state(state)
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Accepts TLS connections until `cancel`; each request carries the verified operator (or none).
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: AdminState,
    cancel: CancellationToken,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let ca = state.ca.clone();
    let store = state.store.clone();
    let app = router(state);
    loop {
        let accepted = tokio::select! {
            () = cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((tcp, peer)) = accepted else { continue };
        let acceptor = acceptor.clone();
        let app = app.clone();
        let ca = ca.clone();
        let revoked = store
            .revocations()
            .ok()
            .flatten()
            .and_then(|l| l.verify(&ca, &RevocationList::empty()).ok())
            .unwrap_or_else(RevocationList::empty);
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "admin TLS handshake failed");
                    return;
                }
            };
            let operator = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|der| ca.verify_operator(der.as_ref(), now_s(), &revoked).ok());
            let svc = TowerToHyperService::new(app.layer(Extension(Operator(operator))));
            if let Err(e) = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), svc)
                .await
            {
                tracing::debug!(error = %e, "admin connection ended");
            }
        });
    }
}
