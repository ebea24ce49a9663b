#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::*;

#[test]
fn a_typed_local_api_error_keeps_its_exit_code_and_is_named_in_lower_case() {
    let e = ClientError::Api {
        code: ApiError::NotGranted,
        message: "no".into(),
    };
    assert_eq!(api_exit_kind(&e), (11, "not_granted".to_owned()));
    let e = ClientError::Api {
        code: ApiError::Quarantined,
        message: "no".into(),
    };
    assert_eq!(api_exit_kind(&e), (21, "quarantined".to_owned()));
}

#[test]
fn the_agent_exit_codes_use_the_shared_kinds() {
    assert_eq!(kind_of(2), "invalid");
    assert_eq!(kind_of(3), "refused");
    assert_eq!(kind_of(4), "verification_failed");
    assert_eq!(kind_of(5), "failed");
}
