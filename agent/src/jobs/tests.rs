use tessera_proto::ids::TemplateName;
use tessera_proto::secret::SecretBytes;

use super::*;
use crate::config::params::{ParamError, Refusal};

const NOW: i64 = 1_790_000_000;

fn dispatch(expires_at: i64) -> JobDispatch {
    JobDispatch {
        job_id: uuid::Uuid::new_v4(),
        template: TemplateName::new("t").unwrap(),
        params: BTreeMap::new(),
        credentials: Vec::new(),
        expires_at,
    }
}

fn seen(dir: &std::path::Path) -> SeenJobs {
    SeenJobs::new(Store::open(dir, &SecretBytes::new(vec![3; 32]), 10).unwrap())
}

fn code(r: Result<(), JobFailure>) -> JobErrorCode {
    r.unwrap_err().code
}

#[test]
fn a_dispatch_is_admitted_once_within_its_lifetime() {
    let dir = tempfile::tempdir().unwrap();
    let mut seen = seen(dir.path());
    let job = dispatch(NOW + 300);
    admit(&mut seen, &job, NOW).unwrap();
    assert_eq!(
        code(admit(&mut seen, &job, NOW)),
        JobErrorCode::JobDuplicate
    );
    assert_eq!(
        code(admit(&mut seen, &job, NOW + 299)),
        JobErrorCode::JobDuplicate
    );
    // Past its expiry the copy is refused as expired (whether or not its id is still remembered).
    assert_eq!(
        code(admit(&mut seen, &job, NOW + 300)),
        JobErrorCode::JobExpired
    );
    admit(&mut seen, &dispatch(NOW + 300), NOW).unwrap();
}

#[test]
fn expiry_bounds_are_checked_before_anything_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let mut seen = seen(dir.path());
    assert_eq!(
        code(admit(&mut seen, &dispatch(NOW), NOW)),
        JobErrorCode::JobExpired
    );
    assert_eq!(
        code(admit(&mut seen, &dispatch(0), NOW)),
        JobErrorCode::JobExpired
    );
    assert_eq!(
        code(admit(&mut seen, &dispatch(i64::MIN), NOW)),
        JobErrorCode::JobExpired
    );
    assert_eq!(
        code(admit(&mut seen, &dispatch(NOW + MAX_JOB_TTL_SECS + 1), NOW)),
        JobErrorCode::JobExpiryTooFar
    );
    assert_eq!(
        code(admit(&mut seen, &dispatch(i64::MAX), NOW)),
        JobErrorCode::JobExpiryTooFar
    );
    admit(&mut seen, &dispatch(NOW + MAX_JOB_TTL_SECS), NOW).unwrap();
    assert_eq!(seen.len(), 1, "refused dispatches were not recorded");
}

#[test]
fn failures_have_their_wire_form_and_name_the_parameter() {
    let f = JobFailure::from(ParamError::Refused {
        param: "host".into(),
        reason: Refusal::LeadingDash,
    });
    assert_eq!(f.code, JobErrorCode::ParamRefused);
    assert_eq!(f.param.as_deref(), Some("host"));
    let r = failed_result(&dispatch(NOW), &f);
    assert_eq!(r.error.as_deref(), Some("PARAM_REFUSED: host: leading '-'"));
    assert_eq!(r.error_code(), Some(JobErrorCode::ParamRefused));
    assert_eq!(r.exit_code, None);
}
