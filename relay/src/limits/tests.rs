use super::*;

#[test]
fn bucket_allows_the_burst_then_refills() {
    let mut l = RateLimiter::new(3, 60); // one per second sustained
    let a = "edge-1".to_owned();
    assert!(l.allow(&a, 0) && l.allow(&a, 0) && l.allow(&a, 0));
    assert!(!l.allow(&a, 0), "the fourth in the same instant is refused");
    assert!(!l.allow(&a, 500));
    assert!(l.allow(&a, 1_600), "one token back after a second");
    assert!(l.allow(&"edge-2".to_owned(), 0), "buckets are per agent");
}

#[test]
fn window_counts_only_recent_events() {
    let mut c = WindowCounter::new(300_000);
    let a = 1u32;
    for i in 0..100 {
        assert_eq!(c.record(&a, i), usize::try_from(i + 1).unwrap());
    }
    assert_eq!(c.record(&a, 100), 101, "101 within five minutes");
    assert_eq!(
        c.record(&a, 300_050),
        51,
        "the first 50 have left the window"
    );
}

#[test]
fn new_rates_keep_the_buckets_capped_at_the_new_burst() {
    let mut l = RateLimiter::new(5, 60);
    let a = "edge-1".to_owned();
    assert!(l.allow(&a, 0), "4 tokens left");
    l.set_rates(2, 60);
    assert!(l.allow(&a, 0) && l.allow(&a, 0));
    assert!(!l.allow(&a, 0), "capped at the new burst of 2");
}
