//! A TPM 2.0 simulator for tests: one `swtpm socket --tpm2` process on a free TCP port pair, its state in a
//! temporary directory. Self-contained (std and tempfile only) so other test crates can `#[path]`-include it.
#![allow(dead_code, clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const START_ATTEMPTS: usize = 10;
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running swtpm. Killed on drop; its state directory is removed with it.
#[derive(Debug)]
pub(crate) struct Swtpm {
    child: Child,
    port: u16,
    state: tempfile::TempDir,
}

impl Swtpm {
    /// Starts a fresh simulator (manufactured, started up: `--flags not-need-init,startup-clear`).
    pub(crate) fn start() -> Self {
        let state = tempfile::tempdir().expect("swtpm state directory");
        for _ in 0..START_ATTEMPTS {
            let port = free_port_pair();
            if let Some(child) = spawn(state.path(), port) {
                return Self { child, port, state };
            }
        }
        panic!(
            "swtpm did not start in {START_ATTEMPTS} attempts; log:\n{}",
            std::fs::read_to_string(state.path().join("swtpm.log")).unwrap_or_default()
        );
    }

    /// The TCTI string for tss-esapi / tpm2-tools.
    pub(crate) fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// The TPM command port (the control channel is the next one).
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The state directory.
    pub(crate) fn state_dir(&self) -> &Path {
        self.state.path()
    }

    /// Kills the simulator and starts it again on the same state (a power cycle: persistent objects and
    /// hierarchy auth survive, PCRs and loaded objects do not). On the same port when it is still free (so a
    /// configured TCTI stays right), otherwise on another one.
    pub(crate) fn restart(&mut self) {
        self.stop();
        if let Some(child) = spawn(self.state.path(), self.port) {
            self.child = child;
            return;
        }
        for _ in 0..START_ATTEMPTS {
            let port = free_port_pair();
            if let Some(child) = spawn(self.state.path(), port) {
                self.child = child;
                self.port = port;
                return;
            }
        }
        panic!("swtpm did not restart");
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Spawns swtpm on `port` (command) and `port + 1` (control); `None` if it exited (port taken) or never listened.
fn spawn(state: &Path, port: u16) -> Option<Child> {
    let mut cmd = Command::new("swtpm");
    cmd.arg("socket")
        .arg("--tpm2")
        .arg("--tpmstate")
        .arg(format!("dir={}", state.display()))
        .arg("--server")
        .arg(format!("type=tcp,port={port}"))
        .arg("--ctrl")
        .arg(format!("type=tcp,port={}", port + 1))
        .arg("--flags")
        .arg("not-need-init,startup-clear")
        .arg("--log")
        .arg(format!(
            "file={},level=1",
            state.join("swtpm.log").display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "the `swtpm` binary is not installed; scripts/test installs it (apt-get install swtpm swtpm-tools)"
        ),
        Err(e) => panic!("cannot run swtpm: {e}"),
    };
    let deadline = Instant::now() + START_TIMEOUT;
    let addr = |p| SocketAddr::from((Ipv4Addr::LOCALHOST, p));
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return None;
        }
        // The control port first: probing it does not disturb the TPM command channel.
        if TcpStream::connect_timeout(&addr(port + 1), Duration::from_millis(100)).is_ok()
            && TcpStream::connect_timeout(&addr(port), Duration::from_millis(100)).is_ok()
        {
            return Some(child);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// A port P such that P and P + 1 are both free right now (a later race is handled by retrying the start).
pub(crate) fn free_port_pair() -> u16 {
    loop {
        let first = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind an ephemeral port");
        let port = first.local_addr().expect("local address").port();
        if port < u16::MAX && TcpListener::bind((Ipv4Addr::LOCALHOST, port + 1)).is_ok() {
            return port;
        }
    }
}

/// A TCTI on which nothing listens (a port that was free a moment ago).
pub(crate) fn closed_tcti() -> String {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind an ephemeral port");
    let port = listener.local_addr().expect("local address").port();
    drop(listener);
    format!("swtpm:host=127.0.0.1,port={port}")
}
