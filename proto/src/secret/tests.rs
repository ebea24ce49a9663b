use super::*;

#[test]
fn debug_never_shows_the_bytes() {
    let s = SecretBytes::copy_from(b"hunter2");
    let shown = format!("{s:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("REDACTED"));
    let p = SecretPayload::from_plain_text("hunter2").unwrap();
    assert!(!format!("{p:?}").contains("hunter2"));
}

#[test]
fn constant_time_equality_compares_content_and_length() {
    let a = SecretBytes::copy_from(b"abc");
    assert!(a.ct_eq(&SecretBytes::copy_from(b"abc")));
    assert!(!a.ct_eq(&SecretBytes::copy_from(b"abd")));
    assert!(!a.ct_eq(&SecretBytes::copy_from(b"abcd")));
}

#[test]
fn payload_is_canonicalised() {
    let p = SecretPayload::from_json(br#"{ "b": 1, "a": "x" }"#).unwrap();
    p.expose(|b| assert_eq!(b, br#"{"a":"x","b":1}"#));
}

#[test]
fn from_canonical_refuses_non_canonical_bytes() {
    let ok = SecretPayload::from_canonical(SecretBytes::copy_from(br#"{"a":1}"#));
    assert!(ok.is_ok());
    let spaced = SecretPayload::from_canonical(SecretBytes::copy_from(br#"{ "a":1}"#));
    assert_eq!(spaced.unwrap_err(), PayloadError::NotCanonical);
    let garbage = SecretPayload::from_canonical(SecretBytes::copy_from(b"\xff\xfe"));
    assert!(matches!(garbage, Err(PayloadError::NotJson { .. })));
}

#[test]
fn oversized_payload_is_refused() {
    let big = vec![b' '; MAX_SECRET_BYTES + 1];
    assert!(matches!(
        SecretPayload::from_json(&big),
        Err(PayloadError::TooLarge { .. })
    ));
}

#[test]
fn json_error_does_not_quote_input() {
    let err = SecretPayload::from_json(b"{\"password\": hunter2}").unwrap_err();
    assert!(!err.to_string().contains("hunter2"));
}
