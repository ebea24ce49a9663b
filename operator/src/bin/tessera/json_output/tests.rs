#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::*;

#[test]
fn an_error_document_has_kind_message_and_exit_code() {
    let d = document("refused", "relay: 403 forbidden", 3);
    assert_eq!(d["error"]["kind"], "refused");
    assert_eq!(d["error"]["message"], "relay: 403 forbidden");
    assert_eq!(d["error"]["exit_code"], 3);
    assert_eq!(kind_of(2), "invalid");
    assert_eq!(kind_of(4), "verification_failed");
    assert_eq!(kind_of(1), "failed");
}

#[test]
fn json_is_requested_only_before_a_double_dash() {
    let args = |v: &[&str]| v.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
    assert!(requested(&args(&["tessera", "cred", "ls", "--json"])));
    assert!(!requested(&args(&["tessera", "cred", "ls"])));
    assert!(!requested(&args(&[
        "tessera", "job", "run", "--", "--json"
    ])));
}
