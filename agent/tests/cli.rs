//! Bad input at the command line and the socket gets a clear error and a documented exit code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_tessera-agent");

fn run(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--socket")
        .arg(dir.join("agent.sock"))
        .args(args)
        .env_remove("TESSERA_CONFIG")
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn usage_and_input_errors_exit_2_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(
        &ca,
        "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let out = run(
        dir.path(),
        &[
            "enroll",
            "--agent-id",
            "bad id",
            "--ca",
            ca.to_str().unwrap(),
            "--request-out",
            "/tmp/x",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("agent id"), "{}", stderr(&out));
    let out = run(
        dir.path(),
        &[
            "enroll",
            "--agent-id",
            "edge-1",
            "--ca",
            "/nonexistent.pem",
            "--request-out",
            "/tmp/x",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("/nonexistent.pem"));
    let out = run(
        dir.path(),
        &[
            "enroll",
            "--agent-id",
            "edge-1",
            "--ca",
            ca.to_str().unwrap(),
            "--request-out",
            "/tmp/x",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = run(dir.path(), &["get", "no/slashes"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(dir.path(), &["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[broker]\nprot = 1\n").unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&cfg)
        .arg("run")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("prot"), "{}", stderr(&out));
}

#[test]
fn running_unenrolled_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["install-cert", "/dev/null"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    let out = run(dir.path(), &["get", "db"]);
    assert_eq!(out.status.code(), Some(1), "no socket: {}", stderr(&out));
    assert!(stderr(&out).contains("agent.sock"));
}

/// The socket answers malformed requests with INVALID and closes; it never crashes the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_rejects_malformed_requests() {
    use tessera_agent::local_api::{limiter::UidLimiter, server};
    let dir = tempfile::tempdir().unwrap();
    let store = tessera_agent::store::Store::open(
        &dir.path().join("store"),
        &tessera_proto::secret::SecretBytes::new(vec![1; 32]),
        100,
    )
    .unwrap();
    let socket = dir.path().join("s.sock");
    let listener = server::bind(&socket, 0o660, None).unwrap();
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&socket).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o660);
    let (tx, _rx) = tokio::sync::mpsc::channel(1);
    let ctx = server::ApiContext {
        cfg: std::sync::Arc::new(tessera_agent::config::AgentConfig::default()),
        store: store.clone(),
        core: tessera_agent::core::CoreHandle::new(tx),
        limiter: UidLimiter::new(4),
    };
    let cancel = tokio_util::sync::CancellationToken::new();
    tokio::spawn(server::serve(listener, ctx, cancel.clone()));
    let ask = |line: Vec<u8>| {
        let socket = socket.clone();
        tokio::task::spawn_blocking(move || {
            let mut s = std::os::unix::net::UnixStream::connect(&socket).unwrap();
            s.write_all(&line).unwrap();
            let mut answer = String::new();
            BufReader::new(s).read_line(&mut answer).unwrap();
            answer
        })
    };
    for bad in [
        b"not json\n".to_vec(),
        b"{\"op\":\"get\",\"name\":\"a/b\"}\n".to_vec(),
        b"{\"op\":\"get\",\"name\":\"db\",\"extra\":1}\n".to_vec(),
        b"{\"op\":\"delete\"}\n".to_vec(),
        [vec![b'x'; 10_000], b"\n".to_vec()].concat(),
    ] {
        let answer = ask(bad).await.unwrap();
        assert!(answer.contains("\"INVALID\""), "{answer}");
    }
    // No policy: NOT_GRANTED, before any lookup or JIT request.
    let answer = ask(b"{\"op\":\"get\",\"name\":\"db\"}\n".to_vec())
        .await
        .unwrap();
    assert!(answer.contains("\"NOT_GRANTED\""), "{answer}");
    // Every request was audited.
    let log = store.audit_log().unwrap();
    assert_eq!(log.len(), 6);
    cancel.cancel();
}

#[test]
fn running_unenrolled_exits_2_so_a_service_manager_does_not_loop() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["run"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("not enrolled"), "{}", stderr(&out));
}
