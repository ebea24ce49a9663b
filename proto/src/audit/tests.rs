use super::*;

fn chain(n: u64) -> Vec<AuditEntry> {
    let mut out: Vec<AuditEntry> = Vec::new();
    for i in 0..n {
        let mut data = BTreeMap::new();
        data.insert("credential".to_owned(), format!("c{i}"));
        let e = next_entry(out.last(), 1_000 + i, "rewrap_pending", None, data);
        out.push(e);
    }
    out
}

#[test]
fn an_intact_chain_verifies() {
    verify(&chain(10)).unwrap();
    verify(&[]).unwrap();
}

#[test]
fn a_removed_entry_is_detected() {
    let mut c = chain(10);
    c.remove(4);
    assert_eq!(verify(&c), Err(AuditError::Broken { seq: 5 }));
    let mut c = chain(10);
    c.remove(0);
    assert!(verify(&c).is_err());
}

#[test]
fn an_altered_entry_is_detected() {
    let mut c = chain(10);
    c[3].data
        .insert("credential".to_owned(), "other".to_owned());
    assert_eq!(verify(&c), Err(AuditError::Altered { seq: 3 }));
    let mut c = chain(10);
    c[7].at_ms += 1;
    assert_eq!(verify(&c), Err(AuditError::Altered { seq: 7 }));
}

#[test]
fn reordered_entries_are_detected() {
    let mut c = chain(10);
    c.swap(2, 3);
    assert!(matches!(verify(&c), Err(AuditError::Broken { .. })));
}

#[test]
fn a_rehashed_forgery_still_breaks_the_link() {
    // Altering an entry and recomputing its own hash breaks the next entry's `prev`.
    let mut c = chain(5);
    c[2].kind = "forged".to_owned();
    c[2].hash = entry_hash(&c[2]);
    assert_eq!(verify(&c), Err(AuditError::Broken { seq: 3 }));
}
