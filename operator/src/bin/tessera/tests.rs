use clap::CommandFactory as _;

use super::cli::Cli;

#[test]
fn the_command_line_is_consistent_and_every_option_and_subcommand_has_help() {
    tessera_bin_support::help_check::assert_documented(Cli::command());
}

#[test]
fn the_version_names_the_git_commit() {
    let v = Cli::command().render_version();
    assert!(v.contains(env!("CARGO_PKG_VERSION")), "{v}");
    assert!(v.contains("(commit "), "{v}");
}

#[test]
fn an_agent_whose_certificate_is_revoked_is_not_certified_for_a_scope() {
    use std::collections::BTreeMap;

    use tessera_operator::issued::Registry;
    use tessera_proto::cert::{EnrollmentRequest, IdentityKey, OrgCa, Validity};
    use tessera_proto::envelope::WrapPrivateKey;
    use tessera_proto::ids::AgentId;
    use tessera_proto::statement::RevocationList;

    const NOW: i64 = 1_700_000_000;
    let ca = OrgCa::generate("Test Org", Validity::days_from(NOW - 10, 365)).unwrap();
    let mut registry = Registry::default();
    let mut serials = Vec::new();
    for id in ["edge-1", "edge-2"] {
        let key = IdentityKey::generate().unwrap();
        let wrap = WrapPrivateKey::generate().unwrap();
        let req = EnrollmentRequest::new(
            AgentId::new(id).unwrap(),
            &key,
            wrap.public_key(),
            BTreeMap::new(),
            NOW,
        )
        .unwrap();
        let der = ca.issue_agent(&req, Validity::days_from(NOW, 30)).unwrap();
        let cert = ca
            .pinned()
            .verify_agent(&der, NOW + 1, &RevocationList::empty())
            .unwrap();
        serials.push(cert.serial.clone());
        registry.record(&cert, NOW);
    }
    let file = std::path::Path::new("issued.json");
    let both = ["edge-1".to_owned(), "edge-2".to_owned()];
    let empty = RevocationList::empty();
    assert!(super::resolve::live_agents(
        &registry,
        (ca.pinned(), NOW + 1, &empty),
        &both,
        "--agent ",
        file
    )
    .is_ok());
    // edge-2 revoked (`ca revoke`), its certificate unexpired: refused, by name.
    let revoked = RevocationList::new(1, NOW, [serials[1].clone()]);
    let err = super::resolve::live_agents(
        &registry,
        (ca.pinned(), NOW + 1, &revoked),
        &both,
        "--agent ",
        file,
    )
    .unwrap_err();
    assert!(err.starts_with("--agent edge-2:"), "{err}");
    assert!(super::resolve::live_agents(
        &registry,
        (ca.pinned(), NOW + 1, &revoked),
        &both[..1],
        "--agent ",
        file
    )
    .is_ok());
}
