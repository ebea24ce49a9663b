//! The health and metrics listener: plain HTTP on `[health] listen` (127.0.0.1:9464 by default), no operator
//! certificate, for Prometheus and service managers. It shows counts and states, never a credential, a name or an
//! agent's certificate.
//!
//! - `GET /healthz`: 200 while the process serves (liveness).
//! - `GET /readyz`: 200 when both broker connections are up and the state store answers; 503 with the reason
//!   otherwise.
//! - `GET /metrics`: [`metrics::RelayMetrics`] in the OpenMetrics text format.
//!
//! [`Health`] is also what the runtime reports into (the broker link, the engine worker's heartbeat) and what the
//! admin API's `/v1/status` and `/v1/agents` read the broker link from. docs/operations.md "Health and metrics".
//!
//! Nothing here needs a credential, so nothing here may cost the relay much: the store is read on blocking threads,
//! `/metrics` renders at most about once a second ([`scrape_cache`]), and the listener ([`listener`]) serves a
//! bounded number of connections, each with a header-read and a whole-connection deadline.

pub mod listener;
pub mod metrics;
pub mod scrape_cache;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;

pub use metrics::RelayMetrics;
/// The relay's broker link, as `/v1/status` shows it.
pub use tessera_proto::admin::BrokerLink;

use crate::state::RelayStore;

/// The content type of the OpenMetrics text format.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Which of the relay's two broker connections reports (relay/src/runtime/broker_link.rs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BrokerConnection {
    /// The subscribing connection: agent messages to the engine.
    Inbound,
    /// The publishing connection: the relay's messages to agents.
    Outbound,
}

/// Which broker connections are up, and when the link (both up) last went up or down.
#[derive(Debug, Default)]
struct Connections {
    inbound: bool,
    outbound: bool,
    /// Unix ms (0: never connected).
    since_ms: u64,
}

impl Connections {
    fn connected(&self) -> bool {
        self.inbound && self.outbound
    }
}

/// What the runtime reports and the listeners read.
#[derive(Debug, Default)]
pub struct Health {
    /// Each connection's state, changed and read under one lock (two tasks report).
    connections: std::sync::Mutex<Connections>,
    /// The engine worker's last tick, Unix ms.
    heartbeat_ms: AtomicU64,
    /// The metrics.
    pub metrics: RelayMetrics,
    /// The last `/metrics` text and when it was rendered.
    pub scrape_cache: scrape_cache::ScrapeCache,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Health {
    /// A fresh state: broker down, no heartbeat.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// An MQTT event loop's report on its connection: connected (CONNACK) or not (a connection error). The broker
    /// link is up while both connections are.
    pub fn set_broker(&self, which: BrokerConnection, up: bool) {
        let mut c = self.connections();
        let before = c.connected();
        match which {
            BrokerConnection::Inbound => c.inbound = up,
            BrokerConnection::Outbound => c.outbound = up,
        }
        if c.connected() != before {
            c.since_ms = now_ms();
        }
        self.metrics.set_broker_connected(c.connected());
    }

    /// The broker link.
    pub fn broker(&self) -> BrokerLink {
        let c = self.connections();
        BrokerLink {
            connected: c.connected(),
            since_ms: (c.since_ms != 0).then_some(c.since_ms),
        }
    }

    fn connections(&self) -> std::sync::MutexGuard<'_, Connections> {
        self.connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The engine worker ticked.
    pub fn beat(&self) {
        self.heartbeat_ms.store(now_ms(), Ordering::SeqCst);
    }

    /// Whether the engine worker ticked within `within_ms`.
    pub fn engine_alive(&self, within_ms: u64) -> bool {
        now_ms().saturating_sub(self.heartbeat_ms.load(Ordering::SeqCst)) <= within_ms
    }
}

/// What the listener's handlers share.
#[derive(Debug, Clone)]
struct HealthState {
    health: Arc<Health>,
    store: Arc<dyn RelayStore>,
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Why the relay is not ready, or `None`. It reads the store: call it off the runtime's workers (as [`readiness`]).
pub fn not_ready(health: &Health, store: &dyn RelayStore) -> Option<String> {
    if !health.broker().connected {
        return Some("broker not connected".to_owned());
    }
    if let Err(e) = store.revocations() {
        tracing::warn!(error = %e, "readiness: the state store does not answer");
        return Some("state store unreachable".to_owned());
    }
    None
}

/// [`not_ready`] on a blocking thread.
pub async fn readiness(health: Arc<Health>, store: Arc<dyn RelayStore>) -> Option<String> {
    tokio::task::spawn_blocking(move || not_ready(&health, store.as_ref()))
        .await
        .unwrap_or_else(|_| Some("readiness check interrupted".to_owned()))
}

async fn readyz(State(st): State<HealthState>) -> Response {
    match readiness(st.health, st.store).await {
        None => (StatusCode::OK, "ready\n").into_response(),
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

/// The metrics text (rendered at most once a [`scrape_cache::WINDOW`], on a blocking thread), or a 500 (logged)
/// when the store cannot be read.
pub async fn metrics_response(health: Arc<Health>, store: Arc<dyn RelayStore>) -> Response {
    let h = health.clone();
    let rendered = health
        .scrape_cache
        .get_or_render(move || h.metrics.render(store.as_ref()))
        .await;
    match rendered {
        Ok(text) => ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "metrics scrape failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "metrics unavailable\n").into_response()
        }
    }
}

async fn metrics(State(st): State<HealthState>) -> Response {
    metrics_response(st.health, st.store).await
}

/// The routes.
pub fn router(health: Arc<Health>, store: Arc<dyn RelayStore>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(HealthState { health, store })
}

/// Serves the routes on `listener` until `cancel`, within the [`listener::Limits`] defaults.
pub async fn serve(
    listener: tokio::net::TcpListener,
    health: Arc<Health>,
    store: Arc<dyn RelayStore>,
    cancel: CancellationToken,
) {
    listener::serve(
        listener,
        router(health, store),
        listener::Limits::default(),
        cancel,
    )
    .await;
}

#[cfg(test)]
mod tests;
