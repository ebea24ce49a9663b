//! Bad input at the command line and the socket gets a clear error and a documented exit code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

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
        cfg: tessera_agent::config::LiveConfig::fixed(tessera_agent::config::AgentConfig::default()),
        store: store.clone(),
        core: tessera_agent::core::CoreHandle::new(tx),
        limiter: UidLimiter::new(4),
        store_key: None,
        status: None,
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

/// Runs the binary with `args` under `umask 022` (a shell, a container, an init script: no systemd `UMask=`).
fn umask_022(args: &[&str]) -> Command {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg("umask 022; exec \"$0\" \"$@\"")
        .arg(BIN)
        .args(args)
        .env_remove("TESSERA_CONFIG");
    cmd
}

fn modes_under(path: &std::path::Path, out: &mut Vec<(std::path::PathBuf, u32)>) {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(path).unwrap();
    out.push((path.to_owned(), meta.permissions().mode() & 0o7777));
    if meta.is_dir() {
        for e in std::fs::read_dir(path).unwrap() {
            modes_under(&e.unwrap().path(), out);
        }
    }
}

#[test]
fn everything_the_agent_creates_is_private_whatever_the_umask() {
    use tessera_proto::cert::{EnrollmentRequest, Validity};
    use tessera_system_tests::broker::{free_port, now, pem_file};
    let root = tempfile::tempdir().unwrap();
    let org = tessera_system_tests::org::TestOrg::new();
    let state = root.path().join("state");
    let socket_dir = root.path().join("run/tessera");
    let socket = socket_dir.join("agent.sock");
    let cfg = root.path().join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = \"{}\"\n[broker]\nhost = \"127.0.0.1\"\nport = {}\n[socket]\npath = \"{}\"\nmode = 0o600\n",
            state.display(),
            free_port().unwrap(),
            socket.display()
        ),
    )
    .unwrap();
    let ca = pem_file(root.path(), "org-ca.pem", "CERTIFICATE", org.ca.cert_der());
    let request = state.join("request.json");
    let cfg_arg = cfg.to_str().unwrap();
    let out = umask_022(&[
        "--config",
        cfg_arg,
        "enroll",
        "--agent-id",
        "edge-1",
        "--ca",
        ca.to_str().unwrap(),
        "--request-out",
        request.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let req: EnrollmentRequest = serde_json::from_slice(&std::fs::read(&request).unwrap()).unwrap();
    let der = org
        .ca
        .issue_agent(&req, Validity::days_from(now() - 60, 30))
        .unwrap();
    let cert = pem_file(root.path(), "agent.pem", "CERTIFICATE", &der);
    let out = umask_022(&["--config", cfg_arg, "install-cert", cert.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // Run (the broker is not there: it keeps retrying) until the socket is bound, then stop it.
    let mut child = umask_022(&["--config", cfg_arg, "run"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !socket.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the socket never appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let mut modes = Vec::new();
    modes_under(&state, &mut modes);
    modes_under(&root.path().join("run"), &mut modes);
    assert!(
        modes.len() > 5,
        "the store, key and sealed key are there: {modes:?}"
    );
    assert!(modes.iter().any(|(p, _)| *p == socket));
    for (path, mode) in &modes {
        assert_eq!(
            mode & 0o077,
            0,
            "{} has mode {mode:04o}: readable by group or others",
            path.display()
        );
    }
}

#[test]
fn a_state_dir_others_can_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = run(dir.path(), &["run"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(
        text.contains(&state.display().to_string()) && text.contains("0777"),
        "{text}"
    );
    // Enrolment refuses it too, and leaves nothing inside.
    let org = tessera_system_tests::org::TestOrg::new();
    let ca = tessera_system_tests::broker::pem_file(
        dir.path(),
        "ca.pem",
        "CERTIFICATE",
        org.ca.cert_der(),
    );
    let out = run(
        dir.path(),
        &[
            "enroll",
            "--agent-id",
            "edge-1",
            "--ca",
            ca.to_str().unwrap(),
            "--request-out",
            dir.path().join("req.json").to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("0777"), "{}", stderr(&out));
    assert_eq!(std::fs::read_dir(&state).unwrap().count(), 0);
}

/// `get` waits for the agent's JIT budget (`socket.jit_timeout_ms`) and a margin, not forever: an agent that
/// accepts the connection and never answers ends the command with an error naming the socket.
#[test]
fn get_gives_up_on_an_agent_that_never_answers() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let _hold = std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming() {
            held.push(s);
        }
    });
    let cfg = dir.path().join("agent.toml");
    std::fs::write(&cfg, "[socket]\njit_timeout_ms = 1000\n").unwrap();
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&cfg)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--socket")
        .arg(&socket)
        .args(["get", "db"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A generous bound (the command's own limit is 1 s + 5 s): this checks that there is a limit, not its speed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let exited = child.try_wait().unwrap().is_some();
    if !exited {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    assert!(exited, "tessera-agent get still waiting after 120 s");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("agent.sock") && err.contains("no answer within 6 s"),
        "{err}"
    );
}

/// `exec` exits like a shell when the program cannot run: 127 not found, 126 not executable; before it asks the
/// agent for anything (no agent runs here).
#[test]
fn exec_of_a_missing_or_unexecutable_program_exits_127_or_126() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.sh");
    std::fs::write(&plain, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
    let exec = |program: &str| run(dir.path(), &["exec", "--env", "X=cred:db", "--", program]);
    let out = exec("/nonexistent/program");
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert!(stderr(&out).contains("/nonexistent/program: command not found"));
    let out = exec("tessera-no-such-program");
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    let out = exec(plain.to_str().unwrap());
    assert_eq!(out.status.code(), Some(126), "{}", stderr(&out));
    assert!(stderr(&out).contains("cannot execute"), "{}", stderr(&out));
    let out = exec(dir.path().to_str().unwrap());
    assert_eq!(out.status.code(), Some(126), "{}", stderr(&out));
    // A program that exists gets as far as the agent's socket (none here: 1, naming it).
    let out = exec("true");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("agent.sock"), "{}", stderr(&out));
}

/// The one JSON error line `--json` writes on standard error (docs/operations.md, "Command-line conventions").
fn json_error(o: &Output) -> serde_json::Value {
    let err = stderr(o);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    let v: serde_json::Value = serde_json::from_str(&err).unwrap();
    assert_eq!(
        v["error"]["exit_code"].as_i64(),
        o.status.code().map(i64::from),
        "{err}"
    );
    assert!(v["error"]["message"].as_str().is_some(), "{err}");
    v
}

/// With the global `--json`, every failure is one JSON line on standard error with the same shape and kinds as the
/// operator's `tessera`, and the exit codes stay the documented ones.
#[test]
fn json_errors_are_one_line_with_kind_message_and_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["--json", "frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    let e = json_error(&out);
    assert_eq!(e["error"]["kind"], "usage");
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("tessera-agent --help"));
    let out = run(dir.path(), &["get", "no/slashes", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(json_error(&out)["error"]["kind"], "invalid");
    let out = run(dir.path(), &["--json", "install-cert", "/dev/null"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert_eq!(json_error(&out)["error"]["kind"], "failed");
    for args in [
        &["--json", "get", "db"][..],
        &["list", "--json"],
        &["status", "--json"],
    ] {
        let out = run(dir.path(), args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        let e = json_error(&out);
        assert_eq!(e["error"]["kind"], "failed");
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap()
                .contains("agent.sock"),
            "{e}"
        );
        assert!(out.stdout.is_empty());
    }
    let cfg = dir.path().join("agent.toml");
    std::fs::write(&cfg, "# the broker\n[broker]\nport = 8883\n").unwrap();
    let set = |key: &str, value: &str| {
        Command::new(BIN)
            .arg("--config")
            .arg(&cfg)
            .args(["--json", "config", "set", key, value])
            .output()
            .unwrap()
    };
    let out = set("broker.prot", "1");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(json_error(&out)["error"]["kind"], "invalid");
    let out = set("broker.port", "8884");
    assert!(out.status.success(), "{}", stderr(&out));
    let done: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(done["set"], "broker.port");
    assert!(std::fs::read_to_string(&cfg).unwrap().contains("8884"));
    // An agent with no grants answers typed errors: the kind is the error's name, the exit code 10 + its number.
    let out = run(
        dir.path(),
        &[
            "--json",
            "enroll",
            "--agent-id",
            "bad id",
            "--ca",
            "/x",
            "--request-out",
            "/y",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(json_error(&out)["error"]["kind"], "invalid");
}

/// `list`, `get` and `status` with `--json` against a real local API server: results on standard output as JSON,
/// typed refusals as the JSON error line with the local API's error name as kind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_results_and_typed_errors_from_the_local_api() {
    use tessera_agent::local_api::{limiter::UidLimiter, server};
    let dir = tempfile::tempdir().unwrap();
    let store = tessera_agent::store::Store::open(
        &dir.path().join("store"),
        &tessera_proto::secret::SecretBytes::new(vec![1; 32]),
        100,
    )
    .unwrap();
    let socket = dir.path().join("agent.sock");
    let listener = server::bind(&socket, 0o600, None).unwrap();
    let (tx, _rx) = tokio::sync::mpsc::channel(1);
    let ctx = server::ApiContext {
        cfg: tessera_agent::config::LiveConfig::fixed(tessera_agent::config::AgentConfig::default()),
        store,
        core: tessera_agent::core::CoreHandle::new(tx),
        limiter: UidLimiter::new(4),
        store_key: None,
        status: None,
    };
    let cancel = tokio_util::sync::CancellationToken::new();
    tokio::spawn(server::serve(listener, ctx, cancel.clone()));
    let path = dir.path().to_owned();
    let ask = move |args: &'static [&'static str]| {
        let path = path.clone();
        tokio::task::spawn_blocking(move || run(&path, args))
    };
    let out = ask(&["--json", "list"]).await.unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "[]\n");
    let out = ask(&["--json", "get", "db"]).await.unwrap();
    assert_eq!(out.status.code(), Some(11), "{}", stderr(&out));
    assert_eq!(json_error(&out)["error"]["kind"], "not_granted");
    assert!(out.stdout.is_empty());
    let out = ask(&["get", "db", "--meta", "--json"]).await.unwrap();
    assert_eq!(out.status.code(), Some(11), "{}", stderr(&out));
    assert_eq!(json_error(&out)["error"]["kind"], "not_granted");
    cancel.cancel();
}
