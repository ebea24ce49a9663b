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
