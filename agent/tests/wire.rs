//! The real agent binary against a real Mosquitto (TLS, client certificates, pattern ACL), with the test acting
//! as the relay on the wire: registration and backfill, the local API with two uids, exec, JIT repair, jobs and a
//! restart. The attacks of a relay taken over are the hostile-relay suite in `tests/tests/hostile_relay.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Each scenario reads top to bottom as one story on one broker; splitting it would hide the sequence.
#![allow(clippy::too_many_lines)]

mod common;

use common::{assert_never_seen, is_root, stdout, World};
use tessera_proto::ids::{AgentId, CredentialId, CredentialName, TemplateName};
use tessera_proto::secret::SecretPayload;
use tessera_proto::statement::Scope;
use tessera_proto::wire::{
    self, AgentState, Down, JobDispatch, PublicReason, RegisterAck, RegistrationMode, StoreOutcome,
    Up,
};

const POLICY: &str =
    "[policy.db]\nuids = [0]\n[policy.shared]\nuids = [0, 65534]\n[policy.\"*\"]\nuids = [0]\n";

fn stored_outcome(up: Up) -> StoreOutcome {
    match up {
        Up::CredentialStored(s) => s.outcome,
        other => panic!("expected credential_stored, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_backfill_local_api_and_restart() {
    let mut w = common::world().await;
    let mut agent = w.new_agent("edge-1", POLICY);
    std::fs::set_permissions(
        &agent.dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    agent.enroll(&w.org);
    // Enrolment is idempotent, and refuses another identity with exit code 3.
    let ca = agent.dir.join("org-ca.pem");
    let req = agent.dir.join("request.json");
    let again = agent.cli(&[
        "enroll",
        "--agent-id",
        "edge-1",
        "--ca",
        ca.to_str().unwrap(),
        "--request-out",
        req.to_str().unwrap(),
    ]);
    assert!(again.status.success());
    let other = agent.cli(&[
        "enroll",
        "--agent-id",
        "edge-9",
        "--ca",
        ca.to_str().unwrap(),
        "--request-out",
        req.to_str().unwrap(),
    ]);
    assert_eq!(other.status.code(), Some(3));
    agent.start();

    // First registration, then a backfill of two.
    let Up::Register(r) = w.relay.next_up(&agent.id).await else {
        panic!("expected register")
    };
    assert_eq!(r.mode, RegistrationMode::FirstRegistration);
    assert!(r.held.is_empty());
    assert_eq!(r.cert, agent.cert().der);
    w.relay
        .send(
            &agent.id,
            &Down::RegisterAck(RegisterAck {
                mode: r.mode,
                state: AgentState::Backfilling,
                backfill: 2,
                serial: None,
            }),
        )
        .await;
    w.relay
        .wait_status(&agent.id, AgentState::Backfilling)
        .await;

    let db = CredentialId::random();
    let shared = CredentialId::random();
    for (id, name, secret) in [(db, "db", "hunter2"), (shared, "shared", "for-everyone")] {
        let d = w
            .org
            .delivery(&agent.cert().wrap, id, 1, name, Scope::All, secret);
        let (_, payload) = (
            d.statement.clone(),
            SecretPayload::from_plain_text(secret).unwrap(),
        );
        w.relay
            .send(&agent.id, &Down::CredentialStore(d.clone()))
            .await;
        let Up::CredentialStored(s) = w.relay.next_up(&agent.id).await else {
            panic!("expected an ack")
        };
        assert_eq!(
            (s.delivery_id, s.credential_id, s.version),
            (d.delivery_id, id, 1)
        );
        let st = d
            .statement
            .parse_unverified(tessera_proto::statement::CREDENTIAL_KIND)
            .unwrap();
        assert_eq!(
            s.outcome,
            StoreOutcome::Stored {
                digest: st.commitment
            }
        );
        drop(payload);
    }
    w.relay.wait_status(&agent.id, AgentState::Online).await;

    // Local API: root may read db; get prints the secret.
    let out = agent.get_as(None, &["get", "db"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout(&out), "hunter2");
    let meta = agent.get_as(None, &["get", "db", "--meta"]);
    assert!(stdout(&meta).contains("\"version\": 1") && !stdout(&meta).contains("hunter2"));
    // exec injects it into the child only.
    let out = agent.get_as(
        None,
        &[
            "exec",
            "--env",
            "PW=cred:db",
            "--",
            "/bin/sh",
            "-c",
            "test \"$PW\" = hunter2",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = agent.get_as(None, &["exec", "--env", "PW=db", "--", "/bin/true"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a malformed --env is a usage error"
    );

    if is_root() {
        // A second uid (nobody, in the socket's group): refused db by policy, allowed shared.
        let out = agent.get_as(Some(65534), &["get", "db"]);
        assert_eq!(
            out.status.code(),
            Some(11),
            "NOT_GRANTED: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("NOT_GRANTED"));
        let out = agent.get_as(Some(65534), &["get", "shared"]);
        assert_eq!(
            stdout(&out),
            "for-everyone",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let list = agent.get_as(Some(65534), &["list"]);
        assert!(
            stdout(&list).contains("shared") && !stdout(&list).contains("\"db\""),
            "{}",
            stdout(&list)
        );
    }

    // Restart: a warm reconnect lists what is held.
    agent.kill();
    agent.start();
    let Up::Register(r) = w.relay.next_up(&agent.id).await else {
        panic!("expected register")
    };
    assert_eq!(r.mode, RegistrationMode::WarmReconnect);
    let mut held: Vec<(CredentialId, u64)> = r
        .held
        .iter()
        .map(|h| (h.credential_id, h.version))
        .collect();
    held.sort();
    let mut expected = vec![(db, 1), (shared, 1)];
    expected.sort();
    assert_eq!(held, expected);
    agent.kill();

    // The local audit recorded who read what.
    let cfg = tessera_agent::config::AgentConfig::load(Some(&agent.config), Vec::new()).unwrap();
    let store = tessera_agent::unseal::open_store(&cfg).unwrap();
    let log = store.audit_log().unwrap();
    assert!(log
        .iter()
        .any(|e| e.uid == 0 && e.op == "get" && e.name.as_deref() == Some("db")));
    if is_root() {
        assert!(log.iter().any(|e| e.uid == 65534
            && e.name.as_deref() == Some("db")
            && e.outcome == tessera_agent::store::AuditOutcome::NotGranted));
    }
}

const JOBS: &str = r#"
[jobs.hash-db]
command = ["/bin/sh", "-c", "printf %s \"$DB\" | sha256sum"]
credentials = { DB = "db" }
inherit_env = ["PATH"]
[jobs.greet]
command = ["/bin/echo", "hello {who}"]
[jobs.greet.params.who]
pattern = '[ -~]+'
[jobs.hash-new]
command = ["/bin/sh", "-c", "printf %s \"$N\" | sha256sum"]
credentials = { N = "newcred" }
inherit_env = ["PATH"]
"#;

fn sha256_hex(s: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .fold(String::new(), |mut acc, b| {
            use std::fmt::Write as _;
            let _ = write!(acc, "{b:02x}");
            acc
        })
}

fn unix_now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

fn job(template: &str, params: &[(&str, &str)]) -> (uuid::Uuid, Down) {
    job_expiring(template, params, unix_now() + 300)
}

fn job_expiring(template: &str, params: &[(&str, &str)], expires_at: i64) -> (uuid::Uuid, Down) {
    let id = uuid::Uuid::new_v4();
    (
        id,
        Down::JobDispatch(JobDispatch {
            job_id: id,
            template: TemplateName::new(template).unwrap(),
            params: params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            credentials: Vec::new(),
            expires_at,
        }),
    )
}

async fn job_result(w: &mut World, agent: &AgentId) -> wire::JobResult {
    match w.relay.next_up(agent).await {
        Up::JobResult(r) => r,
        other => panic!("expected a job result, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jit_repair_typed_errors_and_jobs() {
    let mut w = common::world().await;
    let agent = w.online_agent("edge-1", &format!("{POLICY}{JOBS}")).await;
    let cert = agent.cert().clone();

    // A workload asks for a credential the agent lacks: credential_missing, delivery, the workload gets it.
    let socket = agent.socket.clone();
    let get = std::thread::spawn(move || {
        std::process::Command::new(common::BIN)
            .arg("--socket")
            .arg(socket)
            .args(["get", "db"])
            .output()
            .unwrap()
    });
    let Up::CredentialMissing(m) = w.relay.next_up(&agent.id).await else {
        panic!("expected credential_missing")
    };
    assert_eq!(m.name, CredentialName::new("db").unwrap());
    let mut d = w.org.delivery(
        &cert.wrap,
        CredentialId::random(),
        1,
        "db",
        Scope::All,
        "jit-secret",
    );
    d.request_id = Some(m.request_id);
    w.relay.send(&agent.id, &Down::CredentialStore(d)).await;
    assert!(matches!(
        stored_outcome(w.relay.next_up(&agent.id).await),
        StoreOutcome::Stored { .. }
    ));
    let out = get.join().unwrap();
    assert_eq!(
        stdout(&out),
        "jit-secret",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The relay cannot serve it: a typed error, not a timeout.
    for (reason, code) in [
        (PublicReason::NotFound, 12),
        (PublicReason::CommitmentMismatch, 16),
        (PublicReason::RateLimited, 14),
    ] {
        let socket = agent.socket.clone();
        let get = std::thread::spawn(move || {
            std::process::Command::new(common::BIN)
                .arg("--socket")
                .arg(socket)
                .args(["get", "nothere"])
                .output()
                .unwrap()
        });
        let Up::CredentialMissing(m) = w.relay.next_up(&agent.id).await else {
            panic!("expected credential_missing")
        };
        w.relay
            .send(
                &agent.id,
                &Down::CredentialUnavailable(wire::CredentialUnavailable {
                    request_id: m.request_id,
                    name: m.name,
                    reason,
                }),
            )
            .await;
        let out = get.join().unwrap();
        assert_eq!(
            out.status.code(),
            Some(code),
            "{reason:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // No answer at all: TIMEOUT within the configured budget.
    let out = agent.get_as(None, &["get", "silent"]);
    assert_eq!(
        out.status.code(),
        Some(13),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let Up::CredentialMissing(_) = w.relay.next_up(&agent.id).await else {
        panic!("expected credential_missing")
    };

    // Concurrency per uid: four requests wait for repair, the fifth is refused BUSY at once.
    let waiting: Vec<_> = (0..4)
        .map(|i| {
            let socket = agent.socket.clone();
            std::thread::spawn(move || {
                std::process::Command::new(common::BIN)
                    .arg("--socket")
                    .arg(socket)
                    .args(["get", &format!("wait-{i}")])
                    .output()
                    .unwrap()
            })
        })
        .collect();
    for _ in 0..4 {
        let Up::CredentialMissing(_) = w.relay.next_up(&agent.id).await else {
            panic!("expected credential_missing")
        };
    }
    let out = agent.get_as(None, &["get", "db"]);
    assert_eq!(
        out.status.code(),
        Some(18),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for t in waiting {
        assert_eq!(t.join().unwrap().status.code(), Some(13));
    }

    // Jobs: a template runs with the credential injected; only its digest leaves the agent here.
    let (id, d) = job("hash-db", &[]);
    w.relay.send(&agent.id, &d).await;
    let r = job_result(&mut w, &agent.id).await;
    assert_eq!(r.job_id, id);
    assert_eq!(r.exit_code, Some(0), "{r:?}");
    assert!(r.stdout.starts_with(&sha256_hex("jit-secret")), "{r:?}");
    // Parameters are single arguments, never shell (this one's pattern allows any printable ASCII).
    let (_, d) = job("greet", &[("who", "x; rm -rf / $(id)")]);
    w.relay.send(&agent.id, &d).await;
    assert_eq!(
        job_result(&mut w, &agent.id).await.stdout,
        "hello x; rm -rf / $(id)\n"
    );
    // Unknown templates and undeclared parameters are refused.
    let (_, d) = job("rm-everything", &[]);
    w.relay.send(&agent.id, &d).await;
    let r = job_result(&mut w, &agent.id).await;
    assert!(r.exit_code.is_none() && r.error.unwrap().contains("unknown job template"));
    let (_, d) = job("greet", &[("who", "a"), ("cmd", "b")]);
    w.relay.send(&agent.id, &d).await;
    assert!(job_result(&mut w, &agent.id)
        .await
        .error
        .unwrap()
        .contains("not declared"));
    // A job needing a credential the agent lacks waits for JIT repair, then runs.
    let (_, d) = job("hash-new", &[]);
    w.relay.send(&agent.id, &d).await;
    let Up::CredentialMissing(m) = w.relay.next_up(&agent.id).await else {
        panic!("expected credential_missing")
    };
    assert_eq!(m.name.as_str(), "newcred");
    let mut d = w.org.delivery(
        &cert.wrap,
        CredentialId::random(),
        1,
        "newcred",
        Scope::All,
        "fresh",
    );
    d.request_id = Some(m.request_id);
    w.relay.send(&agent.id, &Down::CredentialStore(d)).await;
    assert!(matches!(
        stored_outcome(w.relay.next_up(&agent.id).await),
        StoreOutcome::Stored { .. }
    ));
    let r = job_result(&mut w, &agent.id).await;
    assert!(r.stdout.starts_with(&sha256_hex("fresh")), "{r:?}");
    for secret in ["jit-secret", "fresh"] {
        assert_never_seen(&w.relay, secret);
    }
}

/// A port on 127.0.0.1 nothing listens on (bound, then released).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn refusal(r: &wire::JobResult) -> (Option<wire::JobErrorCode>, String) {
    assert!(r.exit_code.is_none(), "the job ran: {r:?}");
    (r.error_code(), r.error.clone().unwrap_or_default())
}

/// Real `ssh` and `curl` behind templates: the option-injection values that would run a command or write a file
/// are refused (and audited) and never take effect; benign values reach the real program.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn option_injection_into_real_programs_is_refused() {
    let mut w = common::world().await;
    let scratch = w.dir.path().join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let ssh_marker = scratch.join("ssh-marker");
    let curl_marker = scratch.join("curl-marker");
    let payload = scratch.join("payload.txt");
    std::fs::write(&payload, "local file").unwrap();
    // A curl config file already on the appliance (any file an attacker could name).
    let evil_conf = scratch.join("evil.conf");
    std::fs::write(
        &evil_conf,
        format!(
            "url = \"file://{}\"\noutput = \"{}\"\n",
            payload.display(),
            curl_marker.display()
        ),
    )
    .unwrap();
    let ssh = r#"["/usr/bin/ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=10", "-p", "{port}""#;
    let jobs = format!(
        r#"
[jobs.ssh-word]
command = {ssh}, "{{host}}", "true"]
params = ["host", "port"]
[jobs.ssh-typed]
command = {ssh}, "--", "{{host}}", "true"]
[jobs.ssh-typed.params.host]
kind = "hostname"
[jobs.ssh-typed.params.port]
kind = "integer"
min = 1
max = 65535
[jobs.fetch-word]
command = ["/usr/bin/curl", "-sS", "--max-time", "10", "{{url}}"]
params = ["url"]
[jobs.fetch-typed]
command = ["/usr/bin/curl", "-sS", "--max-time", "10", "{{url}}"]
[jobs.fetch-typed.params.url]
pattern = 'http://127\.0\.0\.1:[0-9]{{1,5}}/[A-Za-z0-9._~/-]*'
"#
    );
    let mut agent = w.online_agent("edge-1", &format!("{POLICY}{jobs}")).await;
    let port = closed_port().to_string();
    let ssh_injection = format!("-oProxyCommand=touch {}", ssh_marker.display());
    let curl_injection = format!("-K{}", evil_conf.display());

    // The values are live: given straight to the programs (as one argv element each, which is what the agent did
    // before parameters were typed) they run the command and write the file.
    let direct = std::process::Command::new("/usr/bin/ssh")
        .args([
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-p",
            &port,
            &ssh_injection,
            "true",
        ])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    assert!(
        ssh_marker.exists(),
        "ssh did not run the ProxyCommand: {}",
        String::from_utf8_lossy(&direct.stderr)
    );
    std::fs::remove_file(&ssh_marker).unwrap();
    let direct = std::process::Command::new("/usr/bin/curl")
        .args(["-sS", "--max-time", "10", &curl_injection])
        .env_clear()
        .output()
        .unwrap();
    assert!(
        curl_marker.exists(),
        "curl did not read the config file: {}",
        String::from_utf8_lossy(&direct.stderr)
    );
    std::fs::remove_file(&curl_marker).unwrap();

    // Through the agent they are refused, typed, for untyped (word) and typed parameters alike.
    let mut refused_ids = Vec::new();
    for (template, params, param) in [
        (
            "ssh-word",
            vec![("host", ssh_injection.as_str()), ("port", port.as_str())],
            "host",
        ),
        (
            "ssh-typed",
            vec![("host", ssh_injection.as_str()), ("port", port.as_str())],
            "host",
        ),
        (
            "ssh-word",
            vec![("host", "127.0.0.1"), ("port", "-oProxyCommand=x")],
            "port",
        ),
        ("fetch-word", vec![("url", curl_injection.as_str())], "url"),
        ("fetch-word", vec![("url", "--config")], "url"),
        ("fetch-word", vec![("url", "-o/tmp/x")], "url"),
        ("fetch-typed", vec![("url", curl_injection.as_str())], "url"),
    ] {
        let (id, d) = job(template, &params);
        w.relay.send(&agent.id, &d).await;
        let r = job_result(&mut w, &agent.id).await;
        assert_eq!(r.job_id, id);
        let (code, error) = refusal(&r);
        assert_eq!(
            code,
            Some(wire::JobErrorCode::ParamRefused),
            "{template}: {error}"
        );
        assert_eq!(error, format!("PARAM_REFUSED: {param}: leading '-'"));
        refused_ids.push((id, template, param));
    }
    // Typed parameters refuse more than a leading dash: a URL scheme that reads local files, a bad host name.
    for (template, params, needle) in [
        (
            "fetch-typed",
            vec![("url", format!("file://{}", payload.display()))],
            "url: does not match the declared pattern",
        ),
        (
            "ssh-typed",
            vec![("host", "a b".to_owned()), ("port", port.clone())],
            "host: not a hostname",
        ),
        (
            "ssh-typed",
            vec![
                ("host", "127.0.0.1".to_owned()),
                ("port", "70000".to_owned()),
            ],
            "port: not an integer in 1..=65535",
        ),
    ] {
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (_, d) = job(template, &params);
        w.relay.send(&agent.id, &d).await;
        let (code, error) = refusal(&job_result(&mut w, &agent.id).await);
        assert_eq!(code, Some(wire::JobErrorCode::ParamRefused), "{error}");
        assert!(error.contains(needle), "{error}");
    }

    // Benign values reach the real programs: ssh to a closed port exits 255, curl exits 7.
    for (template, params, exit) in [
        (
            "ssh-word",
            vec![("host", "127.0.0.1"), ("port", port.as_str())],
            255,
        ),
        (
            "ssh-typed",
            vec![("host", "127.0.0.1"), ("port", port.as_str())],
            255,
        ),
        (
            "fetch-word",
            vec![("url", &*format!("http://127.0.0.1:{port}/"))],
            7,
        ),
        (
            "fetch-typed",
            vec![("url", &*format!("http://127.0.0.1:{port}/x"))],
            7,
        ),
    ] {
        let (_, d) = job(template, &params);
        w.relay.send(&agent.id, &d).await;
        let r = job_result(&mut w, &agent.id).await;
        assert_eq!(r.exit_code, Some(exit), "{template}: {r:?}");
        assert_eq!(r.error, None, "{r:?}");
    }
    assert!(
        !ssh_marker.exists(),
        "the ssh injection ran through the agent"
    );
    assert!(
        !curl_marker.exists(),
        "the curl injection ran through the agent"
    );

    // Each refusal is in the local audit: job id, template, parameter, code; never the value.
    agent.kill();
    let cfg = tessera_agent::config::AgentConfig::load(Some(&agent.config), Vec::new()).unwrap();
    let store = tessera_agent::unseal::open_store(&cfg).unwrap();
    let log = store.audit_log().unwrap();
    for (id, template, param) in refused_ids {
        let e = log
            .iter()
            .find(|e| e.job_id == Some(id))
            .unwrap_or_else(|| panic!("no audit entry for job {id}"));
        assert_eq!(e.op, format!("job:{template}"));
        assert_eq!(e.outcome, tessera_agent::store::AuditOutcome::Refused);
        assert_eq!(e.param.as_deref(), Some(param));
        assert_eq!(
            e.detail.as_deref(),
            Some(&*format!("PARAM_REFUSED: {param}: leading '-'"))
        );
    }
    assert!(log
        .iter()
        .any(|e| e.op == "job:ssh-typed" && e.outcome == tessera_agent::store::AuditOutcome::Ran));
    let text = format!("{log:?}");
    assert!(!text.contains("ProxyCommand") && !text.contains("evil.conf"));
}

/// A dispatch delivered twice runs once, also across a restart; expired dispatches and ones too far ahead are
/// refused, typed, without running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_runs_at_most_once_and_never_after_its_expiry() {
    let mut w = common::world().await;
    let counter = w.dir.path().join("runs");
    let jobs = format!(
        "[jobs.count]\ncommand = [\"/bin/sh\", \"-c\", \"echo run >> '{}'\"]\n",
        counter.display()
    );
    let mut agent = w.online_agent("edge-1", &format!("{POLICY}{jobs}")).await;
    let runs = || {
        std::fs::read_to_string(&counter)
            .unwrap_or_default()
            .lines()
            .count()
    };

    // The same dispatch twice (a QoS 1 redelivery, a relay replaying it): one run, one JOB_DUPLICATE.
    let (id, d) = job("count", &[]);
    w.relay.send(&agent.id, &d).await;
    w.relay.send(&agent.id, &d).await;
    let mut results = vec![
        job_result(&mut w, &agent.id).await,
        job_result(&mut w, &agent.id).await,
    ];
    results.sort_by_key(|r| r.exit_code.is_none());
    assert!(results.iter().all(|r| r.job_id == id));
    assert_eq!(results[0].exit_code, Some(0), "{results:?}");
    assert_eq!(
        results[1].error_code(),
        Some(wire::JobErrorCode::JobDuplicate),
        "{results:?}"
    );
    assert_eq!(runs(), 1);

    // After a restart the id is still remembered (it was flushed before the job started).
    agent.kill();
    agent.start();
    let Up::Register(r) = w.relay.next_up(&agent.id).await else {
        panic!("expected register")
    };
    w.relay
        .send(
            &agent.id,
            &Down::RegisterAck(RegisterAck {
                mode: r.mode,
                state: AgentState::Online,
                backfill: 0,
                serial: None,
            }),
        )
        .await;
    w.relay.wait_status(&agent.id, AgentState::Online).await;
    // The broker may also redeliver `d` itself if the kill came before the agent's ack (manual acks, a
    // persistent session): every answer for it is then a refusal, never a second run.
    w.relay.send(&agent.id, &d).await;
    let r = job_result(&mut w, &agent.id).await;
    assert_eq!(r.job_id, id);
    assert_eq!(refusal(&r).0, Some(wire::JobErrorCode::JobDuplicate));

    // Expired, absent (0) and too far ahead: refused without running.
    let dup_id = id;
    let now = unix_now();
    for (expires_at, code) in [
        (now - 1, wire::JobErrorCode::JobExpired),
        (0, wire::JobErrorCode::JobExpired),
        (
            now + wire::MAX_JOB_TTL_SECS + 3_600,
            wire::JobErrorCode::JobExpiryTooFar,
        ),
    ] {
        let (id, d) = job_expiring("count", &[], expires_at);
        w.relay.send(&agent.id, &d).await;
        let r = job_result_after_duplicates(&mut w, &agent.id, dup_id).await;
        assert_eq!(r.job_id, id);
        assert_eq!(refusal(&r).0, Some(code), "{r:?}");
    }
    assert_eq!(runs(), 1);

    // A fresh dispatch still runs: the refusals above were not the template failing.
    let (_, d) = job("count", &[]);
    w.relay.send(&agent.id, &d).await;
    let r = job_result_after_duplicates(&mut w, &agent.id, dup_id).await;
    assert_eq!(r.exit_code, Some(0), "{r:?}");
    assert_eq!(runs(), 2);

    agent.kill();
    let cfg = tessera_agent::config::AgentConfig::load(Some(&agent.config), Vec::new()).unwrap();
    let store = tessera_agent::unseal::open_store(&cfg).unwrap();
    let dup = store
        .audit_log()
        .unwrap()
        .into_iter()
        .filter(|e| e.job_id == Some(id))
        .map(|e| (e.outcome, e.detail.unwrap_or_default()))
        .collect::<Vec<_>>();
    assert!(dup.len() >= 3, "ran once, refused at least twice: {dup:?}");
    let ran = dup
        .iter()
        .filter(|(o, _)| *o == tessera_agent::store::AuditOutcome::Ran)
        .count();
    let duplicate = dup
        .iter()
        .filter(|(o, d)| {
            *o == tessera_agent::store::AuditOutcome::Refused && d.starts_with("JOB_DUPLICATE: ")
        })
        .count();
    assert_eq!(ran, 1, "{dup:?}");
    assert_eq!(
        ran + duplicate,
        dup.len(),
        "every other answer is a duplicate refusal: {dup:?}"
    );
}

/// The next job result, past any further `JOB_DUPLICATE` refusals of `dup_id` (a broker redelivering a dispatch
/// the agent had not yet acked when it was killed).
async fn job_result_after_duplicates(
    w: &mut World,
    agent: &AgentId,
    dup_id: uuid::Uuid,
) -> wire::JobResult {
    loop {
        let r = job_result(w, agent).await;
        if r.job_id != dup_id {
            return r;
        }
        assert_eq!(
            refusal(&r).0,
            Some(wire::JobErrorCode::JobDuplicate),
            "{r:?}"
        );
    }
}

fn stored_reply(up: Up) -> wire::CredentialStored {
    match up {
        Up::CredentialStored(s) => s,
        other => panic!("expected credential_stored, got {other:?}"),
    }
}

/// The operator deleted `db` (id A) and created a new `db` (id B). The relay re-sends A's delivery, still validly
/// signed, to an agent that holds B: refused with `NAME_BOUND_TO_OTHER_ID`, nothing stored, B still served, the
/// refusal in the local audit. The same for a rewrap request for A.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_credentials_delivery_replayed_under_its_old_name_is_refused() {
    let mut w = common::world().await;
    let agent = w.online_agent("edge-1", POLICY).await;
    let cert = agent.cert().clone();
    let (deleted, current) = (CredentialId::random(), CredentialId::random());
    // Captured before the deletion: A's delivery, validly signed.
    let old = w
        .org
        .delivery(&cert.wrap, deleted, 1, "db", Scope::All, "deleted-secret");
    let new = w
        .org
        .delivery(&cert.wrap, current, 1, "db", Scope::All, "current-secret");
    w.relay.send(&agent.id, &Down::CredentialStore(new)).await;
    assert!(matches!(
        stored_reply(w.relay.next_up(&agent.id).await).outcome,
        StoreOutcome::Stored { .. }
    ));

    w.relay
        .send(&agent.id, &Down::CredentialStore(old.clone()))
        .await;
    let reply = stored_reply(w.relay.next_up(&agent.id).await);
    assert_eq!(
        (reply.delivery_id, reply.credential_id),
        (old.delivery_id, deleted)
    );
    assert_eq!(
        reply.outcome,
        StoreOutcome::Refused {
            reason: wire::RefusalReason::NameBoundToOtherId
        }
    );
    // A rewrap request for A (as a peer) is refused the same way.
    let target = w.org.agent("edge-2");
    let nonce = [3u8; 32];
    w.relay
        .send(
            &agent.id,
            &Down::RewrapRequest(wire::RewrapRequest {
                request_id: uuid::Uuid::new_v4(),
                nonce,
                credential_id: deleted,
                version: 1,
                statement: old.statement.clone(),
                target: target.id.clone(),
                target_cert: target.cert.clone(),
            }),
        )
        .await;
    match w.relay.next_up(&agent.id).await {
        Up::RewrapRefused(r) => {
            assert_eq!(r.nonce, nonce);
            assert_eq!(r.reason, wire::RefusalReason::NameBoundToOtherId);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // The workload still gets B.
    let out = agent.get_as(None, &["get", "db"]);
    assert_eq!(
        stdout(&out),
        "current-secret",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_never_seen(&w.relay, "deleted-secret");

    // After a restart nothing of A is held, and both refusals are in the local audit.
    let mut agent = agent;
    agent.kill();
    let cfg = tessera_agent::config::AgentConfig::load(Some(&agent.config), Vec::new()).unwrap();
    let store = tessera_agent::unseal::open_store(&cfg).unwrap();
    assert!(store.credential(&deleted).unwrap().is_none());
    assert_eq!(store.newest_version(&deleted).unwrap(), None);
    let refusals: Vec<_> = store
        .audit_log()
        .unwrap()
        .into_iter()
        .filter(|e| e.outcome == tessera_agent::store::AuditOutcome::Refused)
        .collect();
    let ops: Vec<&str> = refusals.iter().map(|e| e.op.as_str()).collect();
    assert_eq!(ops, vec!["delivery", "rewrap"]);
    assert!(refusals.iter().all(|e| e.name.as_deref() == Some("db")
        && e.detail.as_deref().is_some_and(
            |d| d.starts_with("NAME_BOUND_TO_OTHER_ID") && d.contains(&deleted.to_string())
        )));
}

/// A message left retained on the down topic (a relay taken over could leave a delivery or a job there, to be
/// handed out again at every subscription) is dropped, never acted on; the same message sent live is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_messages_on_the_down_topic_are_dropped() {
    let mut w = common::world().await;
    let marker = w.dir.path().join("marker");
    let jobs = format!(
        "[jobs.mark]\ncommand = [\"/bin/sh\", \"-c\", \"echo \\\"$1\\\" >> {}\", \"sh\", \"{{tag}}\"]\nparams = [\"tag\"]\n",
        marker.display()
    );
    let id = AgentId::new("edge-1").unwrap();
    // Retained before the agent ever connects (sealed to its wrap key, made at enrolment).
    let mut agent = w.enrolled_agent("edge-1", &format!("{POLICY}{jobs}"));
    let cred = CredentialId::random();
    let retained = w
        .org
        .delivery(&agent.cert().wrap, cred, 1, "db", Scope::All, "retained");
    w.relay
        .send_retained(&id, &Down::CredentialStore(retained.clone()))
        .await;
    w.start_online(&mut agent).await;

    // Live: the same credential under another delivery id is stored, and answered first.
    let mut live = retained.clone();
    live.delivery_id = uuid::Uuid::new_v4();
    w.relay
        .send(&agent.id, &Down::CredentialStore(live.clone()))
        .await;
    let s = stored_reply(w.relay.next_up(&agent.id).await);
    assert_eq!(
        s.delivery_id, live.delivery_id,
        "the retained delivery was answered"
    );
    assert!(matches!(s.outcome, StoreOutcome::Stored { .. }));
    assert!(agent.log().contains("dropped a retained message"));

    // A retained job for an agent that has never connected does not run; the same template sent live does.
    let id2 = AgentId::new("edge-2").unwrap();
    let (_, retained_job) = job("mark", &[("tag", "retained")]);
    w.relay.send_retained(&id2, &retained_job).await;
    let mut agent2 = w.enrolled_agent("edge-2", &format!("{POLICY}{jobs}"));
    w.start_online(&mut agent2).await;
    let (live_id, live_job) = job("mark", &[("tag", "live")]);
    w.relay.send(&agent2.id, &live_job).await;
    let r = job_result(&mut w, &agent2.id).await;
    assert_eq!(r.job_id, live_id, "a retained job ran: {r:?}");
    assert_eq!(r.exit_code, Some(0), "{r:?}");
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "live\n");
    assert!(agent2.log().contains("dropped a retained message"));
}

/// A newer revocation list revokes the operator who signed a held credential: the agent reports it
/// (`credentials_flagged`), shows it (`quarantined` in `list` and `get --meta`), and with
/// `quarantine_revoked_signers` no longer serves it (`QUARANTINED`, exit code 21).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_whose_signer_is_revoked_later_is_flagged_and_quarantined() {
    let mut w = common::world().await;
    let extra = format!("{POLICY}[store]\nquarantine_revoked_signers = true\n");
    let agent = w.online_agent("edge-1", &extra).await;
    let id = CredentialId::random();
    let d = w.org.delivery(
        &agent.cert().wrap,
        id,
        1,
        "db",
        Scope::All,
        "signed-by-alice",
    );
    w.relay.send(&agent.id, &Down::CredentialStore(d)).await;
    assert!(matches!(
        stored_reply(w.relay.next_up(&agent.id).await).outcome,
        StoreOutcome::Stored { .. }
    ));
    assert_eq!(
        stdout(&agent.get_as(None, &["get", "db"])),
        "signed-by-alice"
    );

    let alice = w
        .org
        .ca
        .pinned()
        .verify_operator(
            &w.org.operator_cert,
            w.org.at,
            &tessera_proto::statement::RevocationList::empty(),
        )
        .unwrap()
        .serial;
    let list = tessera_proto::statement::RevocationList::new(1, w.org.at, [alice])
        .sign(&w.org.ca)
        .unwrap();
    w.relay
        .send(
            &agent.id,
            &Down::RevocationUpdate(wire::RevocationUpdate { list }),
        )
        .await;
    match w.relay.next_up(&agent.id).await {
        Up::CredentialsFlagged(f) => {
            assert_eq!(f.reason, wire::FlagReason::SignerRevoked);
            assert_eq!(f.list_serial, 1);
            assert_eq!(f.credential_ids, vec![id]);
        }
        other => panic!("expected credentials_flagged, got {other:?}"),
    }
    let out = agent.get_as(None, &["get", "db"]);
    assert_eq!(
        out.status.code(),
        Some(21),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("QUARANTINED"));
    assert!(!stdout(&out).contains("signed-by-alice"));
    let meta = stdout(&agent.get_as(None, &["get", "db", "--meta"]));
    assert!(meta.contains("\"status\": \"quarantined\""), "{meta}");
    let list = stdout(&agent.get_as(None, &["list"]));
    assert!(list.contains("\"status\": \"quarantined\""), "{list}");
}

/// `get NAME` with the test answering the agent's JIT request `NOT_FOUND`, as a relay does for a deleted name.
async fn get_not_found(w: &mut World, agent: &common::Agent, name: &str) -> std::process::Output {
    let socket = agent.socket.clone();
    let name_owned = name.to_owned();
    let get = std::thread::spawn(move || {
        std::process::Command::new(common::BIN)
            .arg("--socket")
            .arg(socket)
            .args(["get", &name_owned])
            .output()
            .unwrap()
    });
    let Up::CredentialMissing(m) = w.relay.next_up(&agent.id).await else {
        panic!("expected credential_missing")
    };
    assert_eq!(m.name.as_str(), name);
    w.relay
        .send(
            &agent.id,
            &Down::CredentialUnavailable(wire::CredentialUnavailable {
                request_id: m.request_id,
                name: m.name,
                reason: PublicReason::NotFound,
            }),
        )
        .await;
    get.join().unwrap()
}

/// Only an operator-signed tombstone makes the agent forget: unsigned, agent-signed and other-CA purges are refused
/// and audited and the credential is still served; a valid one purges it (acknowledged, `NOT_FOUND` for the name,
/// nothing left in the store), a replay of its delivery is refused `CREDENTIAL_DELETED`, and a new credential of
/// the same name binds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_operator_signed_tombstone_purges_a_credential() {
    use tessera_agent::store::AuditOutcome;
    use tessera_proto::cert::{IdentityKey, OrgCa, Validity};
    use tessera_proto::ids::OperatorId;
    use tessera_proto::statement::{CredentialTombstone, Signed};

    let mut w = common::world().await;
    let agent = w.online_agent("edge-1", POLICY).await;
    let cert = agent.cert().clone();
    let deleted = CredentialId::random();
    let old = w
        .org
        .delivery(&cert.wrap, deleted, 1, "db", Scope::All, "deleted-secret");
    w.relay
        .send(&agent.id, &Down::CredentialStore(old.clone()))
        .await;
    assert!(matches!(
        stored_reply(w.relay.next_up(&agent.id).await).outcome,
        StoreOutcome::Stored { .. }
    ));

    // Forged purges, as a relay taken over would send them.
    let body = CredentialTombstone::new(
        deleted,
        CredentialName::new("db").unwrap(),
        1,
        OperatorId::new("alice").unwrap(),
        w.org.at,
    );
    // 1. Unsigned: a valid tombstone's payload with another tombstone's signature.
    let mut unsigned = w.org.tombstone(deleted, "db", 1);
    unsigned.signature = w.org.tombstone(CredentialId::random(), "db", 1).signature;
    // 2. Signed by a certified agent (not an operator).
    let peer = w.org.agent("edge-2");
    let by_agent = Signed::sign(&body, &peer.identity, &peer.cert).unwrap();
    // 3. Signed by an "alice" of another CA.
    let rogue_ca = OrgCa::generate("Test Org", Validity::days_from(w.org.at - 86_400, 10)).unwrap();
    let rogue_key = IdentityKey::generate().unwrap();
    let rogue_cert = rogue_ca
        .issue_operator(
            &OperatorId::new("alice").unwrap(),
            rogue_key.public_key(),
            Validity::days_from(w.org.at - 86_400, 10),
        )
        .unwrap();
    let other_ca = Signed::sign(&body, &rogue_key, &rogue_cert).unwrap();
    for tombstone in [unsigned, by_agent, other_ca] {
        w.relay
            .send(
                &agent.id,
                &Down::CredentialPurge(wire::CredentialPurge { tombstone }),
            )
            .await;
    }
    // Messages are handled in order: the probe's answer comes first, so no forged purge was acknowledged.
    let probe = w.org.delivery(
        &cert.wrap,
        CredentialId::random(),
        1,
        "probe",
        Scope::All,
        "p",
    );
    w.relay
        .send(&agent.id, &Down::CredentialStore(probe.clone()))
        .await;
    let reply = stored_reply(w.relay.next_up(&agent.id).await);
    assert_eq!(reply.delivery_id, probe.delivery_id);
    let out = agent.get_as(None, &["get", "db"]);
    assert_eq!(
        stdout(&out),
        "deleted-secret",
        "a forged purge made the agent forget: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The operator's tombstone: purged and acknowledged.
    w.relay
        .send(
            &agent.id,
            &Down::CredentialPurge(wire::CredentialPurge {
                tombstone: w.org.tombstone(deleted, "db", 1),
            }),
        )
        .await;
    match w.relay.next_up(&agent.id).await {
        Up::CredentialPurged(p) => assert_eq!((p.credential_id, p.version), (deleted, 1)),
        other => panic!("expected credential_purged, got {other:?}"),
    }
    let out = get_not_found(&mut w, &agent, "db").await;
    assert_eq!(
        out.status.code(),
        Some(12),
        "NOT_FOUND after the purge: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A replay of the deleted credential's delivery is refused.
    w.relay
        .send(&agent.id, &Down::CredentialStore(old.clone()))
        .await;
    let reply = stored_reply(w.relay.next_up(&agent.id).await);
    assert_eq!(
        (reply.credential_id, reply.outcome),
        (
            deleted,
            StoreOutcome::Refused {
                reason: wire::RefusalReason::CredentialDeleted
            }
        )
    );
    // The name was released: a new `db` (a new id) binds and is served.
    let current = CredentialId::random();
    let new = w
        .org
        .delivery(&cert.wrap, current, 1, "db", Scope::All, "current-secret");
    w.relay.send(&agent.id, &Down::CredentialStore(new)).await;
    assert!(matches!(
        stored_reply(w.relay.next_up(&agent.id).await).outcome,
        StoreOutcome::Stored { .. }
    ));
    let out = agent.get_as(None, &["get", "db"]);
    assert_eq!(
        stdout(&out),
        "current-secret",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // In the store: nothing of the deleted id but its marker; the refusals and the purge in the local audit.
    let mut agent = agent;
    agent.kill();
    let cfg = tessera_agent::config::AgentConfig::load(Some(&agent.config), Vec::new()).unwrap();
    let store = tessera_agent::unseal::open_store(&cfg).unwrap();
    assert!(store.credential(&deleted).unwrap().is_none());
    assert_eq!(store.newest_version(&deleted).unwrap(), None);
    assert_eq!(store.deleted_through(&deleted).unwrap(), Some(1));
    assert!(store
        .held()
        .unwrap()
        .iter()
        .all(|h| h.credential_id != deleted));
    assert_eq!(
        store
            .name_binding(&CredentialName::new("db").unwrap())
            .unwrap(),
        Some(current)
    );
    let log = store.audit_log().unwrap();
    let purges: Vec<_> = log.iter().filter(|e| e.op == "purge").collect();
    let outcomes: Vec<_> = purges.iter().map(|e| e.outcome).collect();
    assert_eq!(
        outcomes,
        vec![
            AuditOutcome::Refused,
            AuditOutcome::Refused,
            AuditOutcome::Refused,
            AuditOutcome::Purged
        ]
    );
    assert!(purges[..3].iter().all(|e| e
        .detail
        .as_deref()
        .is_some_and(|d| d.starts_with("BAD_STATEMENT"))));
    assert!(log.iter().any(|e| e.op == "delivery"
        && e.outcome == AuditOutcome::Refused
        && e.detail
            .as_deref()
            .is_some_and(|d| d.starts_with("CREDENTIAL_DELETED"))));
}

/// A `credential_revoke` purges only on a verified statement newer than the one held whose scope leaves the agent
/// out; afterwards the wider statement replayed is refused `NOT_IN_SCOPE`, and a grant (a higher revision) is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scope_revoke_purges_on_a_newer_signed_scope_only() {
    let mut w = common::world().await;
    let agent = w.online_agent("edge-1", POLICY).await;
    let cert = agent.cert().clone();
    let (me, other) = (agent.id.clone(), AgentId::new("edge-2").unwrap());
    let id = CredentialId::random();
    let both = Scope::explicit([me.clone(), other.clone()]);
    let (signed, st, payload) = w.org.credential(id, 1, "scoped", both.clone(), "s3");
    let delivery = wire::CredentialStore {
        delivery_id: uuid::Uuid::new_v4(),
        statement: signed,
        envelope: tessera_proto::envelope::seal(&cert.wrap, payload.bytes()).unwrap(),
        request_id: None,
        target_key: None,
    };
    w.relay
        .send(&agent.id, &Down::CredentialStore(delivery.clone()))
        .await;
    assert!(matches!(
        stored_reply(w.relay.next_up(&agent.id).await).outcome,
        StoreOutcome::Stored { .. }
    ));
    let revoke = |statement| Down::CredentialRevoke(wire::CredentialRevoke { statement });
    // Refused: a statement that still includes the agent, and a narrower one that is not newer (revision 0).
    w.relay
        .send(&agent.id, &revoke(w.org.rescope(&st, both.clone(), 1)))
        .await;
    w.relay
        .send(
            &agent.id,
            &revoke(w.org.rescope(&st, Scope::explicit([other.clone()]), 0)),
        )
        .await;
    let probe = w.org.delivery(
        &cert.wrap,
        CredentialId::random(),
        1,
        "probe",
        Scope::All,
        "p",
    );
    w.relay
        .send(&agent.id, &Down::CredentialStore(probe.clone()))
        .await;
    assert_eq!(
        stored_reply(w.relay.next_up(&agent.id).await).delivery_id,
        probe.delivery_id,
        "a refused revoke was acknowledged"
    );
    assert_eq!(stdout(&agent.get_as(None, &["get", "scoped"])), "s3");

    // The operator's revoke: purged and acknowledged.
    w.relay
        .send(
            &agent.id,
            &revoke(w.org.rescope(&st, Scope::explicit([other.clone()]), 2)),
        )
        .await;
    match w.relay.next_up(&agent.id).await {
        Up::CredentialPurged(p) => assert_eq!((p.credential_id, p.version), (id, 1)),
        other => panic!("expected credential_purged, got {other:?}"),
    }
    // The wider statement replayed: refused.
    w.relay
        .send(&agent.id, &Down::CredentialStore(delivery.clone()))
        .await;
    assert_eq!(
        stored_reply(w.relay.next_up(&agent.id).await).outcome,
        StoreOutcome::Refused {
            reason: wire::RefusalReason::NotInScope
        }
    );
    // A grant (revision 3) is stored again.
    let mut granted = delivery.clone();
    granted.delivery_id = uuid::Uuid::new_v4();
    granted.statement = w.org.rescope(&st, both, 3);
    w.relay
        .send(&agent.id, &Down::CredentialStore(granted))
        .await;
    assert!(matches!(
        stored_reply(w.relay.next_up(&agent.id).await).outcome,
        StoreOutcome::Stored { .. }
    ));
    assert_eq!(stdout(&agent.get_as(None, &["get", "scoped"])), "s3");
}
