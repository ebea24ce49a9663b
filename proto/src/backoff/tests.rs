use super::*;

#[test]
fn grows_to_the_cap_and_stays_within_bounds() {
    let mut b = Backoff::new(100, 1_000);
    let ceilings: Vec<u64> = (0..6)
        .map(|_| {
            let c = b.ceiling_ms();
            let d = u64::try_from(b.next_delay().as_millis()).unwrap();
            assert!((100..=c).contains(&d), "{d} outside 100..={c}");
            c
        })
        .collect();
    assert_eq!(ceilings, vec![100, 200, 400, 800, 1_000, 1_000]);
    b.reset();
    assert_eq!(b.ceiling_ms(), 100);
}

#[test]
fn jitter_spreads_delays() {
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..50 {
        let mut b = Backoff::new(100, 10_000);
        for _ in 0..5 {
            b.next_delay();
        }
        seen.insert(b.next_delay().as_millis());
    }
    assert!(seen.len() > 10, "delays are not jittered: {seen:?}");
}

#[test]
fn survives_many_attempts() {
    let mut b = Backoff::new(1, u64::MAX);
    for _ in 0..200 {
        b.next_delay();
    }
    assert!(b.ceiling_ms() > 0);
}
