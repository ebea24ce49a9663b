#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::*;

#[test]
fn a_table_has_a_header_and_padded_columns_and_escapes_cells() {
    let t = render(
        &["NAME", "STATE", "ID"],
        &[
            vec!["db".into(), "synced".into(), "1".into()],
            vec!["api-token".into(), "x\u{1b}[2K".into(), "2".into()],
        ],
    );
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0], "NAME       STATE       ID");
    assert_eq!(lines[1], "db         synced      1");
    assert!(!t.contains('\u{1b}'), "{t:?}");
}

#[test]
fn times_are_rfc3339_utc() {
    assert_eq!(
        time_ms(&serde_json::json!(1_796_586_258_000_u64)),
        "2026-12-06T19:44:18Z"
    );
    assert_eq!(time_ms(&serde_json::Value::Null), "-");
    assert_eq!(time_ms(&serde_json::json!(0)), "-");
}
