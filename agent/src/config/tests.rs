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
    let ssh = &cfg.jobs["ssh-check"];
    let p = |host: &str| {
        BTreeMap::from([
            ("host".to_owned(), host.to_owned()),
            ("port".to_owned(), "22".to_owned()),
        ])
    };
    assert_eq!(ssh.render(&p("core-sw1")).unwrap()[6], "core-sw1");
    assert!(ssh.render(&p("-oProxyCommand=x")).is_err());
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
        params: params::Params::words(["host", "port"]),
        credentials: BTreeMap::new(),
        inherit_env: vec![],
        timeout_secs: 5,
    };
    let mut p = BTreeMap::new();
    p.insert("host".to_owned(), "a{port}".to_owned());
    p.insert("port".to_owned(), "22".to_owned());
    // `{` is outside the default word's characters.
    assert!(t.render(&p).is_err());
    let typed: AgentConfig = parse(
        "[jobs.t]\ncommand = [\"/bin/echo\", \"--host={host}\", \"{port}\"]\n\
         [jobs.t.params.host]\npattern = '[a-z{}]+'\n[jobs.t.params.port]\nkind = \"integer\"\n",
    )
    .unwrap();
    assert_eq!(
        typed.jobs["t"].render(&p).unwrap(),
        vec!["/bin/echo", "--host=a{port}", "22"]
    );
    p.insert("extra".to_owned(), "x".to_owned());
    assert!(t.render(&p).is_err());
    p.remove("extra");
    p.remove("port");
    assert!(t.render(&p).is_err());
}

#[test]
fn job_params_are_typed_at_load_with_errors_naming_the_parameter() {
    for (bad, needle) in [
        (
            "[jobs.x]\ncommand = [\"/usr/bin/ssh\", \"{host}\"]\n[jobs.x.params.host]\nkind = \"shell\"\n",
            "jobs.x.params.host: unknown kind",
        ),
        (
            "[jobs.x]\ncommand = [\"/usr/bin/ssh\", \"{host}\"]\n[jobs.x.params.host]\npattern = '(['\n",
            "jobs.x.params.host: pattern does not compile",
        ),
        (
            "[jobs.x]\ncommand = [\"/usr/bin/ssh\", \"{host}\"]\n[jobs.x.params.host]\npattern = '.*'\nallow_leading_dash = true\n",
            "jobs.x.params.host: allow_leading_dash needs a \"--\"",
        ),
        (
            "[jobs.x]\ncommand = [\"/usr/bin/ssh\", \"{host}\", \"--\"]\n[jobs.x.params.host]\npattern = '.*'\nallow_leading_dash = true\n",
            "jobs.x.params.host: allow_leading_dash",
        ),
        (
            "[jobs.x]\ncommand = [\"/usr/bin/ssh\", \"--\", \"{host}\", \"{host}\"]\n[jobs.x.params.host]\nkind = \"path\"\n",
            "jobs.x.params.host: kind = \"path\" needs under",
        ),
        (
            "[jobs.x]\ncommand = [\"/bin/echo\", \"{a}\"]\n[jobs.x.params.b]\n",
            "jobs.x: command uses {a}",
        ),
    ] {
        let e = parse(bad).unwrap_err().to_string();
        assert!(e.contains(needle), "{bad}\n=> {e}");
    }
    // An unknown key in a declaration names its line.
    assert!(parse(
        "[jobs.x]\ncommand = [\"/bin/echo\", \"{a}\"]\n[jobs.x.params.a]\nknd = \"word\"\n"
    )
    .is_err());
    // With the `--` first, a leading dash may be allowed; the list form still parses as words.
    let cfg = parse(
        "[jobs.grep]\ncommand = [\"/bin/grep\", \"-F\", \"--\", \"{needle}\", \"/var/log/syslog\"]\n\
         [jobs.grep.params.needle]\npattern = '[ -~]+'\nallow_leading_dash = true\n\
         [jobs.old]\ncommand = [\"/bin/echo\", \"{who}\"]\nparams = [\"who\"]\n",
    )
    .unwrap();
    let p = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
    assert_eq!(
        cfg.jobs["grep"].render(&p("needle", "-v x")).unwrap(),
        vec!["/bin/grep", "-F", "--", "-v x", "/var/log/syslog"]
    );
    assert_eq!(
        cfg.jobs["old"]
            .render(&p("who", "-n"))
            .unwrap_err()
            .to_string(),
        "who: leading '-'"
    );
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

#[test]
fn the_sealer_and_store_key_settings_parse_validate_and_take_the_environment() {
    let cfg = parse(
        "[sealer]\nbackend = \"tpm\"\n[sealer.tpm]\ntcti = \"swtpm:host=127.0.0.1,port=2321\"\npcrs = [0, 7]\n\
         primary_handle = 0x81000001\n[store]\nrotate_key_days = 90\nreencrypt_batch = 64\n",
    )
    .unwrap();
    assert_eq!(cfg.sealer.backend, SealerBackend::Tpm);
    assert_eq!(cfg.sealer.tpm.pcrs, vec![0, 7]);
    assert_eq!(cfg.sealer.tpm.primary_handle, Some(0x8100_0001));
    assert_eq!(
        (cfg.store.rotate_key_days, cfg.store.reencrypt_batch),
        (90, 64)
    );
    let defaults = parse("").unwrap();
    assert_eq!(defaults.sealer.backend, SealerBackend::File);
    assert_eq!(defaults.sealer.tpm.tcti, "device:/dev/tpmrm0");
    for (bad, says) in [
        ("[sealer]\nbackend = \"hsm\"\n", "unknown variant"),
        ("[sealer.tpm]\npcrs = [24]\n", "sealer.tpm"),
        ("[sealer.tpm]\ntcti = \"tabrmd:\"\n", "sealer.tpm"),
        ("[sealer.tpm]\nsrk = 1\n", "unknown field"),
        ("[store]\nreencrypt_batch = 0\n", "reencrypt_batch"),
        (
            "[store]\nreencrypt_pause_ms = 600000\n",
            "reencrypt_pause_ms",
        ),
    ] {
        let err = parse(bad).unwrap_err().to_string();
        assert!(err.contains(says), "{bad}: {err}");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, "").unwrap();
    let env = vec![
        ("TESSERA_SEALER".to_owned(), "tpm".to_owned()),
        ("TESSERA_TPM_TCTI".to_owned(), "device:/dev/tpm0".to_owned()),
    ];
    let cfg = AgentConfig::load(Some(&path), env).unwrap();
    assert_eq!(cfg.sealer.backend, SealerBackend::Tpm);
    assert_eq!(cfg.sealer.tpm.tcti, "device:/dev/tpm0");
    let err =
        AgentConfig::load(Some(&path), vec![("TESSERA_SEALER".into(), "hsm".into())]).unwrap_err();
    assert!(err.to_string().contains("TESSERA_SEALER"), "{err}");
}

#[test]
fn a_metrics_textfile_inside_the_state_or_socket_directory_is_refused() {
    let with = |textfile: &str| {
        parse(&format!(
            "state_dir = \"/var/lib/tessera\"\n[socket]\npath = \"/run/tessera/agent.sock\"\n\
             [metrics]\ntextfile = \"{textfile}\"\n"
        ))
    };
    for inside in [
        "/var/lib/tessera/store.key",
        "/var/lib/tessera/sub/x.prom",
        "/var/lib/node_exporter/../tessera/x.prom",
        "/run/tessera/x.prom",
    ] {
        let err = with(inside).unwrap_err().to_string();
        assert!(
            err.contains("metrics.textfile") && err.contains("inside"),
            "{inside}: {err}"
        );
    }
    with("/var/lib/node_exporter/textfile/tessera.prom").unwrap();
    with("/var/lib/tessera-metrics/tessera.prom").unwrap();
}
