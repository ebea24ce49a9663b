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

#[test]
fn a_registration_is_sent_again_later_each_time_within_a_spread() {
    // The middle of the spread: 10 s, 20 s, then 40 s for good.
    let waits: Vec<u64> = (0..5).map(|n| resend_after_ms(10_000, n, 0x8000)).collect();
    assert_eq!(waits, vec![10_000, 20_000, 40_000, 40_000, 40_000]);
    // Its ends: 0.75 × and almost 1.25 ×.
    assert_eq!(resend_after_ms(10_000, 0, 0), 7_500);
    assert_eq!(resend_after_ms(10_000, 0, u16::MAX), 12_499);
    assert_eq!(resend_after_ms(u64::MAX, 9, u16::MAX), u64::MAX);
}

#[test]
fn the_spread_comes_from_the_serials_last_digits() {
    assert_eq!(spread_of_serial("3f1a2b3c4d"), 0x3c4d);
    assert_eq!(spread_of_serial("ab"), 0xab);
    assert_eq!(spread_of_serial(""), 0x8000);
    assert_eq!(spread_of_serial("zz"), 0x8000);
}
