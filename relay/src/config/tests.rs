use super::*;

fn parse(text: &str) -> Result<RelayConfig, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.toml");
    std::fs::write(&path, text).unwrap();
    RelayConfig::load(Some(&path), Vec::new())
}

#[test]
fn job_ttl_defaults_to_five_minutes_and_is_bounded_by_what_agents_accept() {
    assert_eq!(parse("").unwrap().engine.job_ttl_secs, 300);
    assert_eq!(
        parse("[engine]\njob_ttl_secs = 86400\n")
            .unwrap()
            .engine
            .job_ttl_secs,
        86_400
    );
    for bad in [
        "[engine]\njob_ttl_secs = 0\n",
        "[engine]\njob_ttl_secs = 86401\n",
    ] {
        let e = parse(bad).unwrap_err().to_string();
        assert!(e.contains("engine.job_ttl_secs"), "{bad}: {e}");
    }
}

/// deploy/relay.toml sets every key to its default: a new key without its line there, or a default changed without
/// the example, fails here.
#[test]
fn the_example_configuration_is_the_defaults_with_every_key() {
    let text = include_str!("../../../deploy/relay.toml");
    let example = parse(text).unwrap();
    assert_eq!(
        format!("{example:?}"),
        format!("{:?}", RelayConfig::default())
    );
    // Every key is written out (uncommented), except the optional broker.ca_file.
    let value: toml::Value = toml::from_str(text).unwrap();
    let keys = |t: &str| -> usize {
        value
            .get(t)
            .and_then(toml::Value::as_table)
            .map_or(0, toml::map::Map::len)
    };
    assert_eq!(keys("broker"), 9, "broker: every key but ca_file");
    assert_eq!(keys("admin"), 3);
    assert_eq!(keys("health"), 2);
    assert_eq!(
        keys("engine"),
        20,
        "engine: 19 numbers and the backoff table"
    );
}

#[test]
fn the_mqtt_protocol_and_session_expiry_are_read_and_checked() {
    let cfg = parse("[broker]\nprotocol = \"3.1.1\"\nsession_expiry_secs = 2\n").unwrap();
    assert_eq!(
        (cfg.broker.protocol, cfg.broker.session_expiry_secs),
        (crate::config::MqttProtocol::V311, 2)
    );
    assert_eq!(
        parse("[broker]\nprotocol = \"5\"\n")
            .unwrap()
            .broker
            .protocol,
        crate::config::MqttProtocol::V5
    );
    let e = parse("[broker]\nprotocol = \"4\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("protocol"), "{e}");
    let e = parse("[broker]\nsession_expiry_secs = 604801\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("broker.session_expiry_secs"), "{e}");
}

#[test]
fn a_reload_applies_engine_changes_and_reports_the_sections_needing_a_restart() {
    let old = parse("[engine]\njit_burst = 20\n").unwrap();
    let same = reload::compare(&old, old.clone());
    assert!(same.applied.is_empty() && same.needs_restart.is_empty());

    let new = parse(
        "[engine]\njit_burst = 3\n[engine.backoff]\ndelays_ms = [1]\nmax_attempts = 2\n[admin]\nlisten = \"127.0.0.1:1\"\n",
    )
    .unwrap();
    let r = reload::compare(&old, new);
    assert_eq!(r.engine.jit_burst, 3);
    assert_eq!(r.applied.len(), 2, "{:?}", r.applied);
    assert!(r.applied.iter().any(|c| c == "engine.jit_burst 20 -> 3"));
    assert!(r.applied.iter().any(|c| c.starts_with("engine.backoff ")));
    assert_eq!(r.needs_restart, vec!["admin"]);
}

#[test]
fn the_postgres_backend_is_checked_when_the_configuration_loads() {
    let ok = parse("[state]\nbackend = \"postgres\"\n[state.postgres]\nurl = \"host=/run/postgresql user=tessera dbname=tessera\"\n")
        .unwrap();
    assert_eq!(ok.state.backend, StateBackend::Postgres);
    for (bad, names) in [
        ("url = \"postgres://t@h:notaport/db\"", "state.postgres.url"),
        (
            "url = \"postgres://t@h/db?sslmode=require\"",
            "sslmode=require",
        ),
        (
            "password_file = \"/nonexistent/relay-db.password\"",
            "state.postgres.password_file",
        ),
        (
            "statement_timeout_ms = 0",
            "state.postgres.statement_timeout_ms",
        ),
        (
            "connect_timeout_ms = 0",
            "state.postgres.connect_timeout_ms",
        ),
        ("pool_size = 0", "state.postgres.pool_size"),
    ] {
        let text = format!("[state]\nbackend = \"postgres\"\n[state.postgres]\n{bad}\n");
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.contains(names), "{bad}: {e}");
    }
    // On sled, the unused [state.postgres] section is not held against the file.
    parse("[state.postgres]\nurl = \"postgres://t@h:notaport/db\"\n").unwrap();
    let e = parse("[state]\nbackend = \"mysql\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("backend"), "{e}");
}

#[test]
fn the_coordination_section_is_checked_when_the_configuration_loads() {
    let cfg = parse("[coordination]\nbackend = \"redis\"\nreplica = \"relay-2\"\n").unwrap();
    assert_eq!(
        cfg.coordination.backend,
        crate::coordination::CoordinationBackend::Redis
    );
    assert_eq!(cfg.coordination.redis.url, "redis://127.0.0.1:6379/0");
    for (bad, says) in [
        (
            "[coordination]\nbackend = \"redis\"\n[coordination.redis]\ntimeout_ms = 0\n",
            "timeout_ms",
        ),
        (
            "[coordination]\nbackend = \"redis\"\n[coordination.redis]\nurl = \"http://x\"\n",
            "url",
        ),
        ("[coordination]\nreplica = \"\"\n", "replica"),
    ] {
        let e = parse(bad).unwrap_err().to_string();
        assert!(e.contains(says), "{bad}: {e}");
    }
    assert!(parse("[coordination]\nbackend = \"etcd\"\n").is_err());
    assert!(
        parse("[coordination.redis]\nhost = \"x\"\n").is_err(),
        "unknown keys are errors"
    );
    let env = RelayConfig::load(
        None,
        vec![(
            "TESSERA_COORDINATION_BACKEND".to_owned(),
            "redis".to_owned(),
        )],
    )
    .unwrap();
    assert_eq!(
        env.coordination.backend,
        crate::coordination::CoordinationBackend::Redis
    );
}
