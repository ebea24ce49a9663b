//! A Redis of a test's own: `redis-server` (Debian's package) on a free loopback port, nothing kept on disk,
//! stopped and started again on the same port, killed when dropped.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running (or stopped) Redis of the test's own.
#[derive(Debug)]
pub struct OwnRedis {
    port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    /// Starts one on a free port and waits until it answers.
    pub fn start() -> std::io::Result<Self> {
        Self::start_on(crate::broker::free_port()?)
    }

    /// Starts one on `port` (a stopped one's, to bring it back) and waits until it answers.
    pub fn start_on(port: u16) -> std::io::Result<Self> {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let mut r = Self {
            port,
            child: Some(child),
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(r);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        r.stop();
        Err(std::io::Error::other(format!(
            "redis-server did not answer on port {port}"
        )))
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills it (SIGKILL) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
