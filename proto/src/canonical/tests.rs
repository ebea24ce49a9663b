use super::*;

#[test]
fn sorts_keys_and_strips_whitespace() {
    let v: serde_json::Value =
        serde_json::from_str(r#"{"z": [1, 2], "a": {"y": true, "b": null}}"#).unwrap();
    assert_eq!(
        to_vec(&v).unwrap(),
        br#"{"a":{"b":null,"y":true},"z":[1,2]}"#
    );
}

#[test]
fn rfc8785_number_and_string_forms() {
    // From RFC 8785 §3.2.2/§3.2.3: numbers in ECMAScript form, minimal string escapes.
    let v: serde_json::Value =
        serde_json::from_str(r#"{"n": 1.0E2, "s": "\u00e9\n", "e": 1e-7}"#).unwrap();
    assert_eq!(
        String::from_utf8(to_vec(&v).unwrap()).unwrap(),
        "{\"e\":1e-7,\"n\":100,\"s\":\"é\\n\"}"
    );
}

#[test]
fn detects_non_canonical_bytes() {
    assert!(is_canonical(br#"{"a":1,"b":2}"#));
    assert!(!is_canonical(br#"{"b":2,"a":1}"#));
    assert!(!is_canonical(br#"{"a": 1}"#));
    assert!(!is_canonical(b"not json"));
}
