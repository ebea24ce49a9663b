use std::collections::BTreeMap;

use super::*;
use crate::wire::{decode, Down};

fn result(error: Option<&str>) -> JobResult {
    JobResult {
        job_id: uuid::Uuid::nil(),
        exit_code: None,
        stdout: String::new(),
        stderr: String::new(),
        error: error.map(str::to_owned),
        meta: BTreeMap::new(),
    }
}

#[test]
fn every_code_round_trips_through_its_wire_form() {
    for code in ALL {
        let r = result(Some(&code.with("detail: with a colon")));
        assert_eq!(r.error_code(), Some(code), "{code}");
    }
}

#[test]
fn errors_without_a_known_code_have_none() {
    assert_eq!(result(None).error_code(), None);
    assert_eq!(result(Some("timed out after 5 s")).error_code(), None);
    assert_eq!(result(Some("NOT_A_CODE: x")).error_code(), None);
    assert_eq!(
        result(Some("PARAM_REFUSED: host: leading '-'")).error_code(),
        Some(JobErrorCode::ParamRefused)
    );
}

#[test]
fn a_dispatch_without_expires_at_decodes_as_expired() {
    let old = br#"{"v":1,"msg":{"type":"job_dispatch","body":{"job_id":"00000000-0000-0000-0000-000000000000","template":"t"}}}"#;
    let Down::JobDispatch(d) = decode::<Down>(old).unwrap() else {
        panic!("expected a job dispatch")
    };
    assert_eq!(d.expires_at, 0);
}
