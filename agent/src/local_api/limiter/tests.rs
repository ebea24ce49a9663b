use super::*;

#[test]
fn limits_per_uid_and_releases_on_drop() {
    let l = UidLimiter::new(2);
    let a = l.try_acquire(1).unwrap();
    let _b = l.try_acquire(1).unwrap();
    assert!(l.try_acquire(1).is_none());
    assert!(l.try_acquire(2).is_some(), "other uids are not affected");
    drop(a);
    assert!(l.try_acquire(1).is_some());
}
