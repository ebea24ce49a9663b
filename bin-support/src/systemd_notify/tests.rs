use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn the_watchdog_interval_follows_sd_watchdog_enabled() {
    assert_eq!(watchdog_interval(env(&[])), None);
    assert_eq!(
        watchdog_interval(env(&[("WATCHDOG_USEC", "2000000")])),
        Some(Duration::from_secs(2))
    );
    let me = std::process::id().to_string();
    assert_eq!(
        watchdog_interval(env(&[("WATCHDOG_USEC", "2000000"), ("WATCHDOG_PID", &me)])),
        Some(Duration::from_secs(2))
    );
    assert_eq!(
        watchdog_interval(env(&[("WATCHDOG_USEC", "2000000"), ("WATCHDOG_PID", "1")])),
        None,
        "another process's watchdog"
    );
    assert_eq!(watchdog_interval(env(&[("WATCHDOG_USEC", "0")])), None);
    assert_eq!(watchdog_interval(env(&[("WATCHDOG_USEC", "x")])), None);
}
