//! systemd's notification protocol on the real binaries, with the test as the service manager: a Unix datagram
//! socket as `NOTIFY_SOCKET`, `WATCHDOG_USEC` set. The relay and the agent each send `READY=1` once they serve,
//! then `WATCHDOG=1` pings, and `STOPPING=1` on SIGTERM. And SIGHUP on a running relay: a new `[engine]` limit is
//! applied (the metrics show it) and logged; a configuration that does not load is logged as an error, the limit in
//! force is kept, and the relay stays up; the agent reloads (an unchanged file: nothing to apply) and stays up, and
//! its watchdog pings continue (the core worker answers them; agent_reload tests what a reload applies).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal};
use tessera_system_tests::bins::bin_dir;
use tessera_system_tests::cluster::{wait_for, Cluster, Proc};
use tessera_system_tests::plain_http::{get, metric};

const WAIT: Duration = Duration::from_secs(30);

/// The service manager's end.
struct Manager {
    socket: UnixDatagram,
}

impl Manager {
    fn bind(path: &Path) -> Self {
        let socket = UnixDatagram::bind(path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        Self { socket }
    }

    /// Datagrams until one has a line `want`, or `WAIT` passes (then panics with what arrived).
    fn expect(&self, want: &str) {
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.socket.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                if msg.lines().any(|l| l == want) {
                    return;
                }
                seen.push(msg);
            }
        }
        panic!("no {want} within {WAIT:?}; got {seen:?}");
    }
}

fn signal(pid: u32, sig: Signal) {
    let pid = Pid::from_raw(i32::try_from(pid).unwrap()).unwrap();
    kill_process(pid, sig).unwrap();
}

fn notify_env(socket: &Path) -> [(&'static str, &std::ffi::OsStr); 2] {
    [
        ("NOTIFY_SOCKET", socket.as_os_str()),
        // One second: a ping every half second.
        ("WATCHDOG_USEC", std::ffi::OsStr::new("1000000")),
    ]
}

#[test]
fn the_relay_notifies_ready_pings_the_watchdog_and_reloads_on_sighup() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Cluster::new(tmp.path(), &bin_dir(), "jit_burst = 20").unwrap();
    let socket = tmp.path().join("notify.sock");
    let manager = Manager::bind(&socket);
    let log = tmp.path().join("relay-notify.log");
    let mut cmd = c.cmd("tessera-relay");
    cmd.args(["serve", "--config"])
        .arg(c.relay_config())
        .envs(notify_env(&socket));
    let mut relay = Proc::spawn(&mut cmd, &log).unwrap();
    manager.expect("READY=1");
    // Ready means serving: the health listener answers at once.
    assert_eq!(get(&c.health, "/healthz").unwrap().0, 200);
    manager.expect("WATCHDOG=1");
    manager.expect("WATCHDOG=1");

    let limit = |c: &Cluster| {
        get(&c.health, "/metrics")
            .ok()
            .and_then(|(_, m)| metric(&m, "tessera_relay_engine_limit{name=\"jit_burst\"}"))
    };
    assert_eq!(limit(&c), Some(20.0));

    // A new limit: applied and logged.
    let good = std::fs::read_to_string(c.relay_config())
        .unwrap()
        .replace("jit_burst = 20", "jit_burst = 3");
    std::fs::write(c.relay_config(), &good).unwrap();
    signal(relay.id(), Signal::HUP);
    wait_for("the new jit_burst", WAIT, || Ok(limit(&c) == Some(3.0))).unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("SIGHUP: reloaded") && text.contains("engine.jit_burst 20 -> 3"),
        "{text}"
    );

    // A file that does not load: logged, the limit in force kept, the relay up.
    std::fs::write(c.relay_config(), format!("surprise = 1\n{good}")).unwrap();
    signal(relay.id(), Signal::HUP);
    wait_for("the refused reload to be counted", WAIT, || {
        Ok(get(&c.health, "/metrics").ok().and_then(|(_, m)| {
            metric(&m, "tessera_relay_config_reloads_total{result=\"refused\"}")
        }) == Some(1.0))
    })
    .unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("does not load") && text.contains("surprise"),
        "{text}"
    );
    assert!(!relay.exited(), "the relay died on SIGHUP");
    assert_eq!(limit(&c), Some(3.0), "the limit in force is kept");
    manager.expect("WATCHDOG=1");

    signal(relay.id(), Signal::TERM);
    manager.expect("STOPPING=1");
}

#[test]
fn the_agent_notifies_ready_pings_the_watchdog_and_survives_sighup() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Cluster::new(tmp.path(), &bin_dir(), "").unwrap();
    let agent = c.agent("edge-1", "").unwrap();
    let socket = tmp.path().join("notify.sock");
    let manager = Manager::bind(&socket);
    let mut cmd = agent.cli();
    cmd.arg("run").envs(notify_env(&socket));
    let mut proc = Proc::spawn(&mut cmd, &agent.log).unwrap();
    manager.expect("READY=1");
    assert!(agent.socket.exists(), "ready means the local API is bound");
    manager.expect("WATCHDOG=1");

    signal(proc.id(), Signal::HUP);
    wait_for("the agent to log the SIGHUP", WAIT, || {
        Ok(std::fs::read_to_string(&agent.log)?
            .contains("SIGHUP: configuration reloaded: no policy or job template change"))
    })
    .unwrap();
    assert!(!proc.exited(), "the agent died on SIGHUP");
    manager.expect("WATCHDOG=1");

    signal(proc.id(), Signal::TERM);
    manager.expect("STOPPING=1");
}
