use super::*;

#[test]
fn the_broker_link_records_when_it_changed() {
    let h = Health::new();
    assert_eq!(
        h.broker(),
        BrokerLink {
            connected: false,
            since_ms: None
        }
    );
    // Up only once both connections are.
    h.set_broker(BrokerConnection::Inbound, true);
    assert!(!h.broker().connected);
    h.set_broker(BrokerConnection::Outbound, true);
    let up = h.broker();
    assert!(up.connected && up.since_ms.is_some());
    h.set_broker(BrokerConnection::Outbound, false);
    assert!(!h.broker().connected);
    h.set_broker(BrokerConnection::Outbound, true);
    h.set_broker(BrokerConnection::Inbound, false);
    assert!(!h.broker().connected);
}

#[test]
fn readiness_needs_the_broker_and_the_metrics_render_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::state::SledStore::open(&dir.path().join("state")).unwrap();
    let h = Health::new();
    assert_eq!(
        not_ready(&h, &store).as_deref(),
        Some("broker not connected")
    );
    h.set_broker(BrokerConnection::Inbound, true);
    h.set_broker(BrokerConnection::Outbound, true);
    assert_eq!(not_ready(&h, &store), None);

    let mut m = crate::engine::Metrics {
        deliveries_ok: 7,
        ..Default::default()
    };
    m.jit.insert("rate_limited", 2);
    h.metrics.observe_engine(&m, &[40, 2_000], 5);
    h.metrics
        .set_limits(&crate::engine::EngineConfig::default());
    let text = h.metrics.render(&store).unwrap();
    for line in [
        "tessera_relay_deliveries_ok_total 7",
        "tessera_relay_jit_requests_total{outcome=\"rate_limited\"} 2",
        "tessera_relay_rewrap_duration_seconds_count 2",
        "tessera_relay_backfill_backlog 5",
        "tessera_relay_broker_connected 1",
        "tessera_relay_deliveries{state=\"pending\"} 0",
        "tessera_relay_engine_limit{name=\"jit_burst\"} 20",
        "tessera_relay_agents 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
    }
}

async fn body(r: Response) -> String {
    let bytes = axum::body::to_bytes(r.into_body(), usize::MAX)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn scrapes_within_the_window_share_one_render_of_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn RelayStore> =
        Arc::new(crate::state::SledStore::open(&dir.path().join("state")).unwrap());
    let h = Health::new();
    let count = |n| crate::engine::Metrics {
        deliveries_ok: n,
        ..Default::default()
    };
    h.metrics.observe_engine(&count(1), &[], 0);
    let first = body(metrics_response(h.clone(), store.clone()).await).await;
    assert!(
        first.contains("tessera_relay_deliveries_ok_total 1\n"),
        "{first}"
    );
    // Within the window the first render's text is served again: nothing was read or rendered anew.
    h.metrics.observe_engine(&count(2), &[], 0);
    let second = body(metrics_response(h.clone(), store.clone()).await).await;
    assert_eq!(first, second);
    assert_eq!(h.scrape_cache.window(), scrape_cache::WINDOW);
    assert_eq!(
        readiness(h.clone(), store).await.as_deref(),
        Some("broker not connected")
    );
}
