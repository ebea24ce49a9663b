use super::*;

fn parse(text: &str) -> AgentConfig {
    let cfg = AgentConfig::from_toml(text, Path::new("agent.toml")).unwrap();
    cfg.validate().unwrap();
    cfg
}

#[test]
fn policy_and_jobs_apply_and_other_sections_need_a_restart() {
    let old = parse(
        "[policy.db]\nuids = [1000]\n[policy.api]\ngids = [5]\n[jobs.gone]\ncommand = [\"/bin/true\"]\n",
    );
    let new = parse(
        "[broker]\nhost = \"mqtt.example.net\"\n[audit]\nmax_entries = 5\n[policy.db]\nuids = [1000, 1001]\n\
         [policy.\"*\"]\nuids = [0]\n[jobs.new]\ncommand = [\"/bin/true\"]\n",
    );
    let r = compare(&old, new);
    assert_eq!(
        r.applied,
        vec![
            "policy.* (none) -> uids [0] gids []",
            "policy.api uids [] gids [5] -> (none)",
            "policy.db uids [1000] gids [] -> uids [1000, 1001] gids []",
            "jobs.gone removed",
            "jobs.new added",
        ]
    );
    assert_eq!(r.needs_restart, vec!["broker", "audit"]);
    // Only the policy and the templates change in the configuration put in force.
    assert_eq!(r.next.broker.host, "127.0.0.1");
    assert_eq!(r.next.audit.max_entries, old.audit.max_entries);
    assert_eq!(
        r.next.policy_for("db").map(|p| p.uids.clone()),
        Some(vec![1000, 1001])
    );
    assert_eq!(
        r.next.policy_for("api").map(|p| p.uids.clone()),
        Some(vec![0])
    );
    assert!(r.next.jobs.contains_key("new") && !r.next.jobs.contains_key("gone"));
}

#[test]
fn the_same_file_changes_nothing() {
    let text = "[policy.db]\nuids = [1000]\n[jobs.j]\ncommand = [\"/bin/true\"]\n";
    let r = compare(&parse(text), parse(text));
    assert!(r.applied.is_empty() && r.needs_restart.is_empty());
}

#[test]
fn the_command_line_overrides_are_applied_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, "state_dir = \"/var/lib/x\"\n").unwrap();
    let source = ConfigSource {
        path: Some(path),
        state_dir: Some(PathBuf::from("/tmp/state")),
        socket: Some(PathBuf::from("/tmp/s.sock")),
    };
    let cfg = source.load(Vec::new()).unwrap();
    assert_eq!(cfg.state_dir, Path::new("/tmp/state"));
    assert_eq!(cfg.socket.path, Path::new("/tmp/s.sock"));
}
