//! A plain-HTTP GET for the relay's health listener (`/healthz`, `/readyz`, `/metrics`): one request per
//! connection, the status code and the body.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

/// `GET path` on `addr`: (status code, body).
pub fn get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP response");
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(bad)?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(bad)?;
    Ok((code, body.to_owned()))
}

/// The value of the metric line that starts with `series` (name and labels exactly as exposed), if any.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter_map(|l| l.strip_prefix(series))
        .find_map(|rest| rest.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// The value of `series` on `addr`'s `/metrics` once it has stopped moving: the relay copies its engine counters
/// into `/metrics` on its one-second engine tick, so a reading taken just after the effect was seen can lag by a
/// tick. Two readings more than two ticks apart that agree are the settled value.
///
/// # Errors
/// The listener does not answer, the series is absent (a renamed metric must fail the test, not read as 0), or the
/// value is still moving after `timeout`.
pub fn settled_metric(addr: &str, series: &str, timeout: Duration) -> std::io::Result<f64> {
    let read = || -> std::io::Result<f64> {
        let (_, text) = get(addr, "/metrics")?;
        metric(&text, series).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no series {series} in /metrics"),
            )
        })
    };
    let deadline = std::time::Instant::now() + timeout;
    let mut last = read()?;
    loop {
        std::thread::sleep(Duration::from_millis(2_200));
        let now = read()?;
        if (now - last).abs() < 0.5 {
            return Ok(now);
        }
        if std::time::Instant::now() > deadline {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("{series} still moving after {timeout:?} ({last} then {now})"),
            ));
        }
        last = now;
    }
}
