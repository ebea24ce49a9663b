//! `mosquitto_pub` and `mosquitto_sub` with a client certificate: what the broker tests check an ACL with, as a
//! real client of another implementation would see it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

use std::process::{Command, Output, Stdio};
use std::thread::sleep;
use std::time::Duration;

use crate::broker::{Broker, Identity};

fn client_args(broker: &Broker, who: &Identity) -> Vec<String> {
    vec![
        "-h".into(),
        "127.0.0.1".into(),
        "-p".into(),
        broker.port.to_string(),
        "--cafile".into(),
        broker.ca_file.display().to_string(),
        "--cert".into(),
        who.cert.display().to_string(),
        "--key".into(),
        who.key.display().to_string(),
        "-q".into(),
        "1".into(),
    ]
}

/// Publishes `msg` on `topic` as `who`.
pub fn publish(broker: &Broker, who: &Identity, topic: &str, msg: &str) -> Output {
    Command::new("mosquitto_pub")
        .args(client_args(broker, who))
        .args(["-t", topic, "-m", msg])
        .output()
        .expect("mosquitto_pub must be installed (Debian package mosquitto-clients)")
}

/// Subscribes to `topic` as `who`, runs `act` once the subscription is up, and returns what arrived within `wait`
/// (`topic message` lines).
pub fn received_while(
    broker: &Broker,
    who: &Identity,
    topic: &str,
    wait: Duration,
    act: impl FnOnce(),
) -> String {
    let sub = Command::new("mosquitto_sub")
        .args(client_args(broker, who))
        .args(["-t", topic, "-v", "-W", &wait.as_secs().to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mosquitto_sub must be installed (Debian package mosquitto-clients)");
    // Give the subscription time to reach the broker before publishing. Each test pairs a negative check with a
    // positive one published in the same window, so a subscription that was not ready fails the test rather than
    // letting a negative check pass vacuously.
    sleep(Duration::from_millis(800));
    act();
    let out = sub.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}
