//! The relay and agents as real processes on a real Mosquitto: operator commands create the CA, certificates and a
//! credential; the operator's envelopes reach online agents; an agent that was offline gets its stored envelope on
//! reconnect; an agent enrolled later is backfilled by peer rewrap; a job runs with the credential injected; the
//! audit chain verifies. (The issue "The whole system" adds the fault scenarios on this harness.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// One story on one broker, read top to bottom.
#![allow(clippy::too_many_lines)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tessera_system_tests::bins::bin;
use tessera_system_tests::broker::start_broker;

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn relay_cli(dir: &Path, admin: &str) -> Command {
    let mut c = Command::new(bin("tessera-relay"));
    c.env("TESSERA_RELAY", admin)
        .env("TESSERA_OPERATOR_DIR", dir.join("operator"));
    c
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(cmd: &mut Command, log: &Path) -> Proc {
    let f = std::fs::File::create(log).unwrap();
    Proc(cmd.stdout(Stdio::null()).stderr(f).spawn().unwrap())
}

fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

struct Agent {
    id: String,
    config: PathBuf,
    socket: PathBuf,
    log: PathBuf,
}

const JOBS: &str = "[policy.\"*\"]\nuids = [0]\n[jobs.hash-db]\ncommand = [\"/bin/sh\", \"-c\", \"printf %s \\\"$DB\\\" | sha256sum\"]\ncredentials = { DB = \"db\" }\n";

fn agent(root: &Path, id: &str, port: u16) -> Agent {
    let dir = root.join(id);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("agent.toml");
    let socket = dir.join("agent.sock");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{}\"\n[broker]\nhost = \"127.0.0.1\"\nport = {port}\nreconnect_min_ms = 100\nreconnect_max_ms = 1000\n[socket]\npath = \"{}\"\n{JOBS}",
            dir.join("state").display(),
            socket.display()
        ),
    )
    .unwrap();
    Agent {
        id: id.to_owned(),
        config,
        socket,
        log: dir.join("agent.log"),
    }
}

fn enroll(root: &Path, a: &Agent) {
    let req = root.join(format!("{}.req.json", a.id));
    let cert = root.join(format!("{}.pem", a.id));
    run(Command::new(bin("tessera-agent"))
        .arg("--config")
        .arg(&a.config)
        .args(["enroll", "--agent-id", &a.id, "--ca"])
        .arg(root.join("ca/ca.pem"))
        .arg("--request-out")
        .arg(&req));
    run(Command::new(bin("tessera-relay"))
        .args(["ca", "issue-agent", "--dir"])
        .arg(root.join("ca"))
        .arg(&req)
        .arg("--out")
        .arg(&cert));
    run(Command::new(bin("tessera-agent"))
        .arg("--config")
        .arg(&a.config)
        .arg("install-cert")
        .arg(&cert));
}

fn start(a: &Agent) -> Proc {
    spawn(
        Command::new(bin("tessera-agent"))
            .arg("--config")
            .arg(&a.config)
            .arg("run"),
        &a.log,
    )
}

fn get(a: &Agent, name: &str) -> Option<String> {
    let out = Command::new(bin("tessera-agent"))
        .arg("--socket")
        .arg(&a.socket)
        .args(["get", name])
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim_end().to_owned())
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn relay_and_agents_sync_a_credential_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let ca_dir = root.join("ca");
    run(Command::new(bin("tessera-relay"))
        .args(["ca", "init", "--org", "Acme", "--dir"])
        .arg(&ca_dir));
    run(Command::new(bin("tessera-relay"))
        .args(["ca", "issue-operator", "--id", "alice", "--dir"])
        .arg(&ca_dir)
        .arg("--out-dir")
        .arg(root.join("operator")));
    for name in ["relay-1", "relay-admin"] {
        run(Command::new(bin("tessera-relay"))
            .args([
                "ca",
                "issue-service",
                "--name",
                name,
                "--ip",
                "127.0.0.1",
                "--dns",
                "localhost",
                "--dir",
            ])
            .arg(&ca_dir)
            .arg("--out-dir")
            .arg(root.join("svc")));
    }
    let ca = tessera_relay_ca(&ca_dir);
    let broker = start_broker(root, &ca, "relay-1");
    let admin_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let admin = format!("127.0.0.1:{admin_port}");
    let relay_cfg = root.join("relay.toml");
    std::fs::write(
        &relay_cfg,
        format!(
            "state_dir = \"{state}\"\norg_ca = \"{ca}\"\n[broker]\nhost = \"127.0.0.1\"\nport = {port}\ncert = \"{svc}/relay-1.pem\"\nkey = \"{svc}/relay-1.key\"\n[admin]\nlisten = \"{admin}\"\ncert = \"{svc}/relay-admin.pem\"\nkey = \"{svc}/relay-admin.key\"\n",
            state = root.join("relay-state").display(),
            ca = ca_dir.join("ca.pem").display(),
            port = broker.port,
            svc = root.join("svc").display(),
        ),
    )
    .unwrap();
    let _relay = spawn(
        Command::new(bin("tessera-relay"))
            .args(["serve", "--config"])
            .arg(&relay_cfg),
        &root.join("relay.log"),
    );
    let relay_log = || std::fs::read_to_string(root.join("relay.log")).unwrap_or_default();

    let a = agent(root, "edge-1", broker.port);
    let b = agent(root, "edge-2", broker.port);
    enroll(root, &a);
    enroll(root, &b);
    let _pa = start(&a);
    let mut pb = Some(start(&b));
    let agents_online = |n: usize| {
        let out = relay_cli(root, &admin)
            .args(["--json", "agents", "ls"])
            .output()
            .unwrap();
        out.status.success()
            && json(&out)
                .as_array()
                .is_some_and(|v| v.iter().filter(|a| a["state"] == "online").count() >= n)
    };
    wait_for("two agents online", Duration::from_secs(30), || {
        agents_online(2)
    });

    // The operator puts a credential; the plaintext is sealed on this side to both certified agents.
    let mut put = relay_cli(root, &admin)
        .args(["--json", "cred", "put", "db"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        put.stdin.take().unwrap().write_all(b"hunter2\n").unwrap();
    }
    let out = put.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json(&out)["sealed_for"].as_array().unwrap().len(), 2);
    wait_for("edge-1 to hold db", Duration::from_secs(20), || {
        get(&a, "db").as_deref() == Some("hunter2")
    });
    wait_for("edge-2 to hold db", Duration::from_secs(20), || {
        get(&b, "db").as_deref() == Some("hunter2")
    });

    // edge-2 goes offline; a second credential is put; on reconnect it gets its stored envelope.
    drop(pb.take());
    run(relay_cli(root, &admin)
        .args(["cred", "put", "api-token", "--file"])
        .arg(write(root, "token.txt", "tok-123")));
    wait_for("edge-1 to hold api-token", Duration::from_secs(20), || {
        get(&a, "api-token").as_deref() == Some("tok-123")
    });
    let _pb = start(&b);
    wait_for(
        "edge-2 to hold api-token after reconnect",
        Duration::from_secs(30),
        || get(&b, "api-token").as_deref() == Some("tok-123"),
    );

    // A third agent enrolled later is backfilled by peer rewrap.
    let c = agent(root, "edge-3", broker.port);
    enroll(root, &c);
    let _pc = start(&c);
    wait_for("edge-3 backfilled with db", Duration::from_secs(30), || {
        get(&c, "db").as_deref() == Some("hunter2")
    });
    wait_for(
        "edge-3 backfilled with api-token",
        Duration::from_secs(30),
        || get(&c, "api-token").as_deref() == Some("tok-123"),
    );
    assert!(relay_log().contains("relay connected to broker"));

    // Sync chips: db synced 3/3.
    wait_for("db synced on 3 agents", Duration::from_secs(20), || {
        let out = relay_cli(root, &admin)
            .args(["--json", "cred", "ls"])
            .output()
            .unwrap();
        json(&out)
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "db" && c["sync"]["synced"] == 3 && c["sync"]["of"] == 3)
    });

    // A job with the credential injected.
    run(relay_cli(root, &admin).args([
        "--json",
        "job",
        "run",
        "hash-db",
        "--agent",
        "edge-3",
        "--credential",
        "db",
    ]));
    wait_for("job result", Duration::from_secs(20), || {
        let out = relay_cli(root, &admin)
            .args(["--json", "job", "ls"])
            .output()
            .unwrap();
        json(&out)
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["result"]["exit_code"] == 0)
    });

    // Explicit scope, then a grant: edge-2 is refused until the operator re-signs the scope.
    run(relay_cli(root, &admin)
        .args(["cred", "put", "scoped", "--agent", "edge-1", "--file"])
        .arg(write(root, "s.txt", "only-edge-1")));
    wait_for("edge-1 to hold scoped", Duration::from_secs(20), || {
        get(&a, "scoped").as_deref() == Some("only-edge-1")
    });
    let refused = Command::new(bin("tessera-agent"))
        .arg("--socket")
        .arg(&b.socket)
        .args(["get", "scoped"])
        .output()
        .unwrap();
    assert_eq!(
        refused.status.code(),
        Some(11),
        "NOT_GRANTED: {}",
        String::from_utf8_lossy(&refused.stderr)
    );
    run(relay_cli(root, &admin).args(["grant", "scoped", "edge-2"]));
    wait_for(
        "edge-2 to hold scoped after the grant",
        Duration::from_secs(20),
        || get(&b, "scoped").as_deref() == Some("only-edge-1"),
    );

    // Revoking edge-3's certificate: the relay delivers nothing more to it.
    run(relay_cli(root, &admin)
        .args(["ca", "revoke", "--push", "--dir"])
        .arg(&ca_dir)
        .arg("--cert")
        .arg(root.join("edge-3.pem")));
    run(relay_cli(root, &admin)
        .args(["cred", "put", "later", "--file"])
        .arg(write(root, "l.txt", "after-revoke")));
    wait_for("edge-1 to hold later", Duration::from_secs(20), || {
        get(&a, "later").as_deref() == Some("after-revoke")
    });
    std::thread::sleep(Duration::from_secs(2));
    let out = Command::new(bin("tessera-agent"))
        .arg("--socket")
        .arg(&c.socket)
        .args(["get", "later"])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a revoked agent received a new credential"
    );

    // The audit chain verifies; the relay never saw the plaintext.
    let out = relay_cli(root, &admin)
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!relay_log().contains("hunter2"));
    for entry in walk(&root.join("relay-state")) {
        let bytes = std::fs::read(entry).unwrap();
        assert!(
            !bytes.windows(7).any(|w| w == b"hunter2"),
            "plaintext in the relay's state"
        );
    }
    // A certificate from the org CA that is not an operator's (the relay's own service certificate) is refused.
    let svc = root.join("svc");
    let tls = tessera_relay::tls::client_config(
        &[std::fs::read(ca_dir.join("ca.pem"))
            .map(|b| tessera_relay::tls::first_cert(&b).unwrap())
            .unwrap()],
        &std::fs::read(svc.join("relay-1.pem")).unwrap(),
        &std::fs::read(svc.join("relay-1.key")).unwrap(),
    )
    .unwrap();
    let client = tessera_relay::operator::client::AdminClient::new(&admin, tls);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    match rt.block_on(client.get("/v1/agents")) {
        Err(tessera_relay::operator::client::ClientError::Api { status, error, .. }) => {
            assert_eq!((status, error.as_str()), (401, "unauthorized"));
        }
        other => panic!("a service certificate was accepted as an operator: {other:?}"),
    }
    // Without operator files the command refuses locally.
    let out = Command::new(bin("tessera-relay"))
        .env("TESSERA_RELAY", &admin)
        .env("TESSERA_OPERATOR_DIR", root.join("nonexistent"))
        .args(["agents", "ls"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

fn write(root: &Path, name: &str, text: &str) -> PathBuf {
    let p = root.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn tessera_relay_ca(dir: &Path) -> tessera_proto::cert::OrgCa {
    tessera_relay::operator::ca::load(dir).unwrap()
}
