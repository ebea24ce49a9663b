#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::*;

#[test]
fn an_error_document_has_kind_message_and_exit_code() {
    let d = document(REFUSED, "relay: 403 forbidden", 3);
    assert_eq!(d["error"]["kind"], "refused");
    assert_eq!(d["error"]["message"], "relay: 403 forbidden");
    assert_eq!(d["error"]["exit_code"], 3);
    assert_eq!(d.as_object().unwrap().len(), 1);
    assert_eq!(d["error"].as_object().unwrap().len(), 3);
}

#[test]
fn exit_codes_map_to_the_shared_kinds() {
    assert_eq!(kind_of(2), "invalid");
    assert_eq!(kind_of(3), "refused");
    assert_eq!(kind_of(4), "verification_failed");
    assert_eq!(kind_of(1), "failed");
    assert_eq!(kind_of(5), "failed");
}

#[test]
fn json_is_requested_only_before_a_double_dash() {
    let args = |v: &[&str]| v.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
    assert!(requested(&args(&["tessera", "cred", "ls", "--json"])));
    assert!(!requested(&args(&["tessera", "cred", "ls"])));
    assert!(!requested(&args(&[
        "tessera-agent",
        "exec",
        "--",
        "--json"
    ])));
}

#[test]
fn a_usage_message_names_what_is_missing_and_the_subcommands_help() {
    let m = usage_message(
        "error: the following required arguments were not provided:\n  <NAME>\n\nUsage: tessera cred show [OPTIONS] <NAME>\n\nFor more information, try '--help'.\n",
        "tessera",
    );
    assert_eq!(
        m,
        "the following required arguments were not provided: <NAME> (see `tessera cred show --help`)"
    );
}

#[test]
fn a_usage_message_is_the_first_line_without_its_prefix() {
    let m = usage_message(
        "error: unexpected argument '--x' found\n\nUsage: ...",
        "tessera-agent",
    );
    assert_eq!(
        m,
        "unexpected argument '--x' found (see `tessera-agent --help`)"
    );
}
