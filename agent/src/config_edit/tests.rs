use super::*;

const FILE: &str = "# the appliance's agent\nstate_dir = \"/var/lib/tessera\"\n\n[broker]\n# where the broker is\nhost = \"old.example\"   # set by provisioning\nport = 8883\n";

fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

#[test]
fn a_value_changes_and_every_comment_stays() {
    let (_d, path) = file(FILE);
    set(&path, "broker.host", "mqtt.example.net").unwrap();
    set(&path, "broker.port", "9883").unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        text,
        FILE.replace("\"old.example\"", "\"mqtt.example.net\"")
            .replace("8883", "9883")
    );
    let cfg = AgentConfig::from_toml(&text, &path).unwrap();
    assert_eq!(
        (cfg.broker.host.as_str(), cfg.broker.port),
        ("mqtt.example.net", 9883)
    );
}

#[test]
fn a_new_table_and_key_are_added_and_a_number_can_be_a_string_setting() {
    let (_d, path) = file(FILE);
    set(
        &path,
        "metrics.textfile",
        "/var/lib/node_exporter/textfile/tessera.prom",
    )
    .unwrap();
    set(&path, "broker.host", "10").unwrap();
    let cfg = AgentConfig::from_toml(&std::fs::read_to_string(&path).unwrap(), &path).unwrap();
    assert_eq!(cfg.broker.host, "10");
    assert_eq!(
        cfg.metrics.textfile.as_deref(),
        Some(Path::new("/var/lib/node_exporter/textfile/tessera.prom"))
    );
}

#[test]
fn an_unknown_key_is_refused_by_name_and_file_and_nothing_is_written() {
    let (_d, path) = file(FILE);
    let e = set(&path, "broker.hots", "x").unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, ConfigEditError::UnknownKey { .. }), "{msg}");
    assert!(
        msg.contains("broker.hots") && msg.contains(&path.display().to_string()),
        "{msg}"
    );
    assert!(set(&path, "nonsense", "1").is_err());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), FILE);
}

#[test]
fn a_value_the_loader_refuses_is_not_written() {
    let (_d, path) = file(FILE);
    let e = set(&path, "broker.keep_alive_secs", "1").unwrap_err();
    assert!(matches!(e, ConfigEditError::Invalid { .. }), "{e}");
    assert!(e.to_string().contains("keep_alive_secs"), "{e}");
    assert!(set(&path, "broker.port", "99999").is_err());
    assert!(set(&path, "broker.host.x", "1").is_err());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), FILE);
    let names: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
    assert_eq!(names.len(), 1, "a temporary file was left");
}

#[test]
fn a_key_inside_an_inline_table_stays_inline() {
    let (_d, path) = file("device = { serial = \"a1\" }\n");
    set(&path, "device.model", "m2").unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.starts_with("device = { serial = \"a1\"") && text.contains("model = \"m2\" }"),
        "{text}"
    );
    AgentConfig::from_toml(&text, &path).unwrap();
}

#[test]
fn nested_new_tables_show_only_the_one_holding_the_value() {
    let (_d, path) = file("state_dir = \"/s\"\n");
    set(&path, "policy.db.uids", "[1000]").unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "state_dir = \"/s\"\n\n[policy.db]\nuids = [1000]\n"
    );
}

#[test]
fn the_owner_group_and_mode_are_kept() {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let (_d, path) = file(FILE);
    // Another uid and gid than the editor's (nobody:nogroup; the tests run as root).
    std::os::unix::fs::chown(&path, Some(65_534), Some(65_534)).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    set(&path, "broker.port", "9883").unwrap();
    let m = std::fs::metadata(&path).unwrap();
    assert_eq!(
        (m.uid(), m.gid(), m.mode() & 0o7777),
        (65_534, 65_534, 0o640)
    );
    assert!(std::fs::read_to_string(&path).unwrap().contains("9883"));
}

#[test]
fn a_new_file_is_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    set(&path, "broker.host", "mqtt.example").unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o600);
}

#[test]
fn through_a_symlink_the_target_is_edited_and_the_link_stays() {
    let (d, target) = file(FILE);
    let link = d.path().join("link.toml");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    set(&link, "broker.host", "mqtt.example.net").unwrap();
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read_link(&link).unwrap(), target);
    assert!(std::fs::read_to_string(&target)
        .unwrap()
        .contains("mqtt.example.net"));
    let dangling = d.path().join("dangling.toml");
    std::os::unix::fs::symlink(d.path().join("missing.toml"), &dangling).unwrap();
    let e = set(&dangling, "broker.host", "x").unwrap_err();
    assert!(e.to_string().contains("symlink"), "{e}");
}

#[test]
fn a_key_that_is_a_table_is_refused_with_a_key_to_set_instead() {
    let (_d, path) = file(FILE);
    let e = set(&path, "broker", "{host=\"x\"}").unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, ConfigEditError::IsATable { .. }), "{msg}");
    assert!(
        msg.contains("is a table") && msg.contains("such as broker.host"),
        "{msg}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), FILE);
    let (_d, path) = file("[broker]\nhost = \"a\"\n[socket]\nmode = 0o660\n");
    assert!(matches!(
        set(&path, "socket", "1"),
        Err(ConfigEditError::IsATable { .. })
    ));
}
