use std::collections::BTreeMap;

use super::*;

fn parse(text: &str) -> Result<AgentConfig, ConfigError> {
    let cfg = AgentConfig::from_toml(text, Path::new("test.toml"))?;
    cfg.validate()?;
    Ok(cfg)
}

#[test]
fn example_config_parses() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/agent.toml"))
        .unwrap();
    let cfg = parse(&text).unwrap();
    assert_eq!(cfg.broker.port, 8883);
    assert_eq!(cfg.socket.mode, 0o660);
    assert!(cfg.jobs.contains_key("backup-config"));
    assert!(cfg.policy_for("db-password").unwrap().allows(&Caller {
        uid: 1001,
        gid: 5,
        pid: None
    }));
}

#[test]
fn defaults_are_valid() {
    AgentConfig::default().validate().unwrap();
    assert_eq!(
        AgentConfig::default().key_file(),
        PathBuf::from("/var/lib/tessera/store.key")
    );
}

#[test]
fn unknown_keys_are_refused_with_the_key_name() {
    let err = parse("state_dir = \"/x\"\nsatte = 1\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("satte"), "{err}");
    let err = parse("[broker]\nhots = \"x\"\n").unwrap_err().to_string();
    assert!(err.contains("hots"), "{err}");
}

#[test]
fn env_overrides_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, "[broker]\nhost = \"file-host\"\nport = 1\n").unwrap();
    let env = vec![
        ("TESSERA_BROKER_PORT".to_owned(), "9999".to_owned()),
        ("TESSERA_SOCKET".to_owned(), "/tmp/s.sock".to_owned()),
        ("HOME".to_owned(), "/root".to_owned()),
    ];
    let cfg = AgentConfig::load(Some(&path), env).unwrap();
    assert_eq!(cfg.broker.host, "file-host");
    assert_eq!(cfg.broker.port, 9999);
    assert_eq!(cfg.socket.path, PathBuf::from("/tmp/s.sock"));
    let err = AgentConfig::load(
        Some(&path),
        vec![("TESSERA_BROKER_PORT".into(), "http".into())],
    )
    .unwrap_err();
    assert!(err.to_string().contains("TESSERA_BROKER_PORT"));
}

#[test]
fn missing_explicit_file_is_an_error() {
    let err = AgentConfig::load(Some(Path::new("/nonexistent/agent.toml")), vec![]).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
}

#[test]
fn world_accessible_socket_is_refused() {
    assert!(parse("[socket]\nmode = 0o666\n").is_err());
    assert!(parse("[socket]\njit_timeout_ms = 60000\n").is_err());
}

#[test]
fn job_templates_are_validated() {
    for bad in [
        "[jobs.x]\ncommand = []\n",
        "[jobs.x]\ncommand = [\"relative/bin\"]\n",
        "[jobs.x]\ncommand = [\"/bin/echo\", \"{host}\"]\n",
        "[jobs.x]\ncommand = [\"/bin/echo\"]\ncredentials = { \"bad-env\" = \"db\" }\n",
        "[jobs.x]\ncommand = [\"/bin/echo\"]\ncredentials = { DB = \"no spaces\" }\n",
        "[jobs.\"a b\"]\ncommand = [\"/bin/echo\"]\n",
    ] {
        assert!(parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn render_substitutes_declared_params_once() {
    let t = JobTemplate {
        command: vec!["/bin/echo".into(), "--host={host}".into(), "{port}".into()],
        params: vec!["host".into(), "port".into()],
        credentials: BTreeMap::new(),
        inherit_env: vec![],
        timeout_secs: 5,
    };
    let mut p = BTreeMap::new();
    p.insert("host".to_owned(), "{port}".to_owned());
    p.insert("port".to_owned(), "22".to_owned());
    assert_eq!(
        t.render(&p).unwrap(),
        vec!["/bin/echo", "--host={port}", "22"]
    );
    p.insert("extra".to_owned(), "x".to_owned());
    assert!(t.render(&p).is_err());
    p.remove("extra");
    p.remove("port");
    assert!(t.render(&p).is_err());
}

#[test]
fn quarantine_of_revoked_signers_is_off_unless_configured() {
    assert!(!AgentConfig::default().store.quarantine_revoked_signers);
    let cfg = parse("[store]\nquarantine_revoked_signers = true\n").unwrap();
    assert!(cfg.store.quarantine_revoked_signers);
    let err = parse("[store]\nquarantine = true\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("quarantine"), "{err}");
}
