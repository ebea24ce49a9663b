//! The relay's Prometheus metrics (`prometheus-client`, OpenMetrics text). Counters mirror the engine's cumulative
//! [`crate::engine::Metrics`] (the engine worker copies them every second); the gauges of what is stored
//! (deliveries by state, alerts by kind, agents, rewraps in flight) are read from the state store at each render, on a
//! blocking thread and at most about once a second ([`super::scrape_cache`]).
//! The names and labels are listed in docs/operations.md "Health and metrics".

use std::sync::atomic::Ordering;
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::engine::{EngineConfig, Metrics};
use crate::state::{DeliveryState, RelayStore, StateError};

/// A `state` label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

/// A `kind` and `severity` label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlertLabel {
    kind: &'static str,
    severity: String,
}

/// An `outcome` label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// A `name` label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NameLabel {
    name: &'static str,
}

/// A `result` label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

/// The engine's cumulative counters, by metric name.
#[derive(Debug, Default)]
struct EngineCounters {
    dropped_messages: Counter,
    unsolicited: Counter,
    rewrap_requests: Counter,
    rewrap_batches: Counter,
    operator_batches: Counter,
    deliveries_ok: Counter,
    mismatches: Counter,
    rate_limited: Counter,
    stalled: Counter,
    sweeps: Counter,
}

impl EngineCounters {
    /// Registers them (the names the admin API's hand-written exposition had).
    fn register(registry: &mut Registry) -> Self {
        let engine = Self::default();
        for (name, help, c) in [
            (
                "dropped_messages",
                "Messages from agents dropped as invalid",
                &engine.dropped_messages,
            ),
            (
                "unsolicited",
                "Answers that failed a binding",
                &engine.unsolicited,
            ),
            (
                "rewrap_requests",
                "Rewrap requests sent to peers",
                &engine.rewrap_requests,
            ),
            (
                "rewrap_batches",
                "Batched rewrap requests sent to peers (each carries several rewrap requests)",
                &engine.rewrap_batches,
            ),
            (
                "operator_batches",
                "Batch envelopes operators sealed (imports), accepted by the admin API",
                &engine.operator_batches,
            ),
            (
                "deliveries_ok",
                "Deliveries confirmed by digest",
                &engine.deliveries_ok,
            ),
            (
                "commitment_mismatches",
                "Commitment mismatches",
                &engine.mismatches,
            ),
            (
                "jit_rate_limited",
                "JIT requests answered RATE_LIMITED",
                &engine.rate_limited,
            ),
            (
                "deliveries_stalled",
                "Deliveries retired as stalled",
                &engine.stalled,
            ),
            (
                "reconciler_sweeps",
                "Reconciler sweeps this replica ran (across replicas coordinating through Redis, one per interval)",
                &engine.sweeps,
            ),
        ] {
            registry.register(name, help, c.clone());
        }
        engine
    }
}

/// Every metric, registered once.
#[derive(Debug)]
pub struct RelayMetrics {
    registry: Registry,
    engine: EngineCounters,
    jit: Family<OutcomeLabel, Counter>,
    rewrap_seconds: Histogram,
    deliveries: Family<StateLabel, Gauge>,
    alerts: Family<AlertLabel, Gauge>,
    agents: Gauge,
    in_flight: Gauge,
    backfill_backlog: Gauge,
    broker_connected: Gauge,
    limits: Family<NameLabel, Gauge>,
    reloads: Family<ResultLabel, Counter>,
    /// One scrape at a time refreshes the stored gauges and encodes.
    scrape: Mutex<()>,
}

const DELIVERY_STATES: [(DeliveryState, &str); 4] = [
    (DeliveryState::Pending, "pending"),
    (DeliveryState::Stored, "stored"),
    (DeliveryState::Stalled, "stalled"),
    (DeliveryState::Untrusted, "untrusted"),
];

fn gauge_value(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Default for RelayMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl RelayMetrics {
    /// Registers every metric under the `tessera_relay_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tessera_relay");
        let engine = EngineCounters::register(&mut registry);
        let jit = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "jit_requests",
            "JIT requests by outcome: dispatched, or the refusal's internal reason",
            jit.clone(),
        );
        // 5 ms .. ~82 s.
        let rewrap_seconds = Histogram::new(exponential_buckets(0.005, 2.0, 15));
        registry.register(
            "rewrap_duration_seconds",
            "From a dispatch's first rewrap request to the target's confirmed delivery",
            rewrap_seconds.clone(),
        );
        let deliveries = Family::<StateLabel, Gauge>::default();
        registry.register("deliveries", "Delivery rows by state.", deliveries.clone());
        let alerts = Family::<AlertLabel, Gauge>::default();
        registry.register(
            "alerts",
            "Stored alerts by kind and severity",
            alerts.clone(),
        );
        let agents = Gauge::default();
        registry.register("agents", "Registered agents.", agents.clone());
        let in_flight = Gauge::default();
        registry.register(
            "rewraps_in_flight",
            "Rewraps in flight (the dispatch backlog the JIT backpressure limit counts)",
            in_flight.clone(),
        );
        let backfill_backlog = Gauge::default();
        registry.register(
            "backfill_backlog",
            "Deliveries waiting to start behind backfilling agents' concurrency limit",
            backfill_backlog.clone(),
        );
        let broker_connected = Gauge::default();
        registry.register(
            "broker_connected",
            "1 while the relay's MQTT connection is up, else 0",
            broker_connected.clone(),
        );
        let limits = Family::<NameLabel, Gauge>::default();
        registry.register(
            "engine_limit",
            "The [engine] limits in force (they change on a SIGHUP reload)",
            limits.clone(),
        );
        let reloads = Family::<ResultLabel, Counter>::default();
        registry.register(
            "config_reloads",
            "SIGHUP reloads by result: applied, or refused (the file did not load)",
            reloads.clone(),
        );
        Self {
            registry,
            engine,
            jit,
            rewrap_seconds,
            deliveries,
            alerts,
            agents,
            in_flight,
            backfill_backlog,
            broker_connected,
            limits,
            reloads,
            scrape: Mutex::new(()),
        }
    }

    /// Copies the engine's counters and its backlog, and records the rewrap durations it measured.
    pub fn observe_engine(&self, m: &Metrics, durations_ms: &[u64], backfill_backlog: usize) {
        let e = &self.engine;
        for (c, v) in [
            (&e.dropped_messages, m.dropped_messages),
            (&e.unsolicited, m.unsolicited),
            (&e.rewrap_requests, m.rewrap_requests),
            (&e.rewrap_batches, m.rewrap_batches),
            (&e.operator_batches, m.operator_batches),
            (&e.deliveries_ok, m.deliveries_ok),
            (&e.mismatches, m.mismatches),
            (&e.rate_limited, m.rate_limited),
            (&e.stalled, m.stalled),
            (&e.sweeps, m.reconciler_sweeps),
        ] {
            c.inner().store(v, Ordering::Relaxed);
        }
        for (outcome, v) in &m.jit {
            self.jit
                .get_or_create(&OutcomeLabel { outcome })
                .inner()
                .store(*v, Ordering::Relaxed);
        }
        for ms in durations_ms {
            #[allow(clippy::cast_precision_loss)] // milliseconds: far below 2^52
            self.rewrap_seconds.observe(*ms as f64 / 1000.0);
        }
        self.backfill_backlog.set(gauge_value(backfill_backlog));
    }

    /// The broker connection gauge.
    pub fn set_broker_connected(&self, up: bool) {
        self.broker_connected.set(i64::from(up));
    }

    /// The limits in force.
    pub fn set_limits(&self, cfg: &EngineConfig) {
        for (name, v) in [
            ("jit_burst", u64::from(cfg.jit_burst)),
            ("jit_per_minute", u64::from(cfg.jit_per_minute)),
            ("max_in_flight", cfg.max_in_flight as u64),
            ("peer_max_in_flight", cfg.peer_max_in_flight as u64),
            ("backfill_concurrency", cfg.backfill_concurrency as u64),
            ("batch_size", cfg.batch_size as u64),
            ("batches_in_flight", cfg.batches_in_flight as u64),
            ("max_peers", cfg.max_peers as u64),
            ("reconcile_batch", cfg.reconcile_batch as u64),
            ("peer_timeout_ms", cfg.peer_timeout_ms),
        ] {
            self.limits
                .get_or_create(&NameLabel { name })
                .set(i64::try_from(v).unwrap_or(i64::MAX));
        }
    }

    /// Counts a SIGHUP reload.
    pub fn count_reload(&self, applied: bool) {
        let result = if applied { "applied" } else { "refused" };
        self.reloads.get_or_create(&ResultLabel { result }).inc();
    }

    /// Reads the stored gauges from `store` and encodes every metric (OpenMetrics text).
    pub fn render(&self, store: &dyn RelayStore) -> Result<String, RenderError> {
        let _one = self
            .scrape
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let rows = store.deliveries()?;
        for (state, label) in DELIVERY_STATES {
            let n = rows.iter().filter(|r| r.state == state).count();
            self.deliveries
                .get_or_create(&StateLabel { state: label })
                .set(gauge_value(n));
        }
        self.alerts.clear();
        for a in store.alerts()? {
            let severity = serde_json::to_value(a.severity)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            self.alerts
                .get_or_create(&AlertLabel {
                    kind: a.kind.as_str(),
                    severity,
                })
                .inc();
        }
        self.agents.set(gauge_value(store.agents()?.len()));
        self.in_flight.set(gauge_value(store.pendings()?.len()));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .map_err(|_| RenderError::Encode)?;
        Ok(text)
    }
}

/// A scrape that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    /// The state store could not be read.
    #[error(transparent)]
    State(#[from] StateError),
    /// The text encoder failed.
    #[error("metrics encoding failed")]
    Encode,
    /// The blocking render did not finish (the runtime is shutting down).
    #[error("metrics render interrupted")]
    Interrupted,
}
