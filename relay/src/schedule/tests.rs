use super::*;

#[test]
fn the_design_table() {
    let b = Backoff::default();
    let min = 60_000;
    let delays: Vec<u64> = (1..10)
        .map(|n| match b.after(n, 0) {
            Next::RetryAt(t) => t,
            Next::Retire => panic!("retired at {n}"),
        })
        .collect();
    assert_eq!(
        delays,
        vec![
            30_000,
            2 * min,
            8 * min,
            30 * min,
            120 * min,
            120 * min,
            120 * min,
            120 * min,
            120 * min
        ]
    );
    assert_eq!(b.after(10, 0), Next::Retire);
    assert_eq!(b.after(11, 0), Next::Retire);
}

#[test]
fn retry_time_is_relative_to_now() {
    assert_eq!(Backoff::default().after(1, 1_000), Next::RetryAt(31_000));
}
