use super::*;

#[test]
fn lockout_is_lockout_everywhere() {
    for stage in [Stage::Primary, Stage::Seal, Stage::Load, Stage::Unseal] {
        assert_eq!(classify(Some(Kind::Lockout), stage), Class::Lockout);
    }
}

#[test]
fn auth_failures_on_the_hierarchy_are_auth() {
    for kind in [Kind::AuthFail, Kind::BadAuth] {
        assert_eq!(classify(Some(kind), Stage::Primary), Class::Auth);
        assert_eq!(classify(Some(kind), Stage::Seal), Class::Auth);
        // At unseal the authorization is the sealed object's: a failure there is about the blob.
        assert_eq!(classify(Some(kind), Stage::Unseal), Class::NotOurs);
        assert_eq!(classify(Some(kind), Stage::Load), Class::NotOurs);
    }
}

#[test]
fn missing_handle_only_when_opening_the_primary() {
    assert_eq!(
        classify(Some(Kind::Handle), Stage::Primary),
        Class::ObjectMissing
    );
    assert_eq!(classify(Some(Kind::Handle), Stage::Seal), Class::Other);
    assert_eq!(classify(Some(Kind::Handle), Stage::Load), Class::NotOurs);
}

#[test]
fn load_failures_mean_not_ours_unless_transient() {
    for kind in [
        Kind::Integrity,
        Kind::Binding,
        Kind::Size,
        Kind::Type,
        Kind::Attributes,
        Kind::Sensitive,
        Kind::Key,
        Kind::Hash,
    ] {
        assert_eq!(
            classify(Some(kind), Stage::Load),
            Class::NotOurs,
            "{kind:?}"
        );
    }
    assert_eq!(classify(None, Stage::Load), Class::NotOurs);
    for kind in [
        Kind::ObjectMemory,
        Kind::Retry,
        Kind::Testing,
        Kind::Failure,
    ] {
        assert_eq!(classify(Some(kind), Stage::Load), Class::Other, "{kind:?}");
    }
}

#[test]
fn policy_failures_at_unseal() {
    for kind in [Kind::PolicyFail, Kind::Value, Kind::Pcr, Kind::PcrChanged] {
        assert_eq!(
            classify(Some(kind), Stage::Unseal),
            Class::Policy,
            "{kind:?}"
        );
    }
    assert_eq!(classify(Some(Kind::PolicyFail), Stage::Seal), Class::Other);
    assert_eq!(classify(None, Stage::Seal), Class::Other);
}

#[test]
fn classes_become_typed_errors() {
    let e = "rc";
    assert!(matches!(
        from_class(Class::Lockout, Stage::Unseal, None, &e),
        SealError::TpmLockout
    ));
    assert!(matches!(
        from_class(Class::Auth, Stage::Primary, None, &e),
        SealError::TpmAuth
    ));
    assert!(matches!(
        from_class(Class::ObjectMissing, Stage::Primary, Some(0x8100_0001), &e),
        SealError::TpmObjectMissing {
            handle: 0x8100_0001
        }
    ));
    assert!(matches!(
        from_class(Class::NotOurs, Stage::Load, None, &e),
        SealError::Unseal("tpm")
    ));
    assert!(matches!(
        from_class(Class::Policy, Stage::Unseal, None, &e),
        SealError::Unseal("tpm")
    ));
    match from_class(Class::Other, Stage::Seal, None, &e) {
        SealError::Tpm { detail } => assert_eq!(detail, "sealing: rc"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn wrapper_errors() {
    use tss_esapi::WrapperErrorKind;
    let err = Error::WrapperError(WrapperErrorKind::WrongParamSize);
    assert_eq!(class_of(err, Stage::Load), Class::NotOurs);
    assert_eq!(class_of(err, Stage::Seal), Class::Other);
    assert!(matches!(
        no_tpm("device:/dev/tpmrm0", err),
        SealError::NoTpm { tcti, .. } if tcti == "device:/dev/tpmrm0"
    ));
}
