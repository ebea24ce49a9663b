#![allow(clippy::unwrap_used)]

use super::{decode, encode, Encoded};

#[test]
fn a_redo_record_decodes_to_what_was_encoded_and_a_truncated_one_is_refused() {
    let ops = vec![
        Encoded {
            tree: 3,
            key: b"c|x|edge-1".to_vec(),
            value: Some(b"{\"v\":1}".to_vec()),
        },
        Encoded {
            tree: 5,
            key: b"r|id".to_vec(),
            value: None,
        },
        Encoded {
            tree: 0,
            key: Vec::new(),
            value: Some(Vec::new()),
        },
    ];
    let bytes = encode(&ops);
    assert_eq!(decode(&bytes).unwrap(), ops);
    for cut in 1..bytes.len() {
        assert!(
            decode(&bytes[..cut]).is_err(),
            "a record cut at {cut} decoded"
        );
    }
}
