//! The command-line conventions of the three binaries (docs/operations.md, "Command-line conventions"), against the
//! real `tessera`, `tessera-agent` and `tessera-relay`: `--version` with the git commit, shell completions and man
//! pages; and for `tessera`, a time limit on every admin call, JSON errors, empty secrets refused, credential names
//! resolved through the operator's catalogue and agent ids checked against the CA's registry, sorted tables.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use tessera_system_tests::bins::{bin, bin_dir};
use tessera_system_tests::cluster::Cluster;
use tessera_system_tests::lying_admin::LyingAdmin;
use tessera_system_tests::operator_calls::{agent_view, ok, pem_der, tessera};

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The JSON error document a `--json` command wrote on standard error (its last line).
fn json_error(o: &Output) -> serde_json::Value {
    let err = stderr(o);
    let line = err.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON error ({e}): {err}"))
}

#[test]
fn every_binary_prints_its_version_with_the_git_commit_completions_and_a_man_page() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, sub) in [
        ("tessera", "cred"),
        ("tessera-agent", "exec"),
        ("tessera-relay", "check-config"),
    ] {
        let o = run(Command::new(bin(name)).arg("--version"));
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let v = stdout(&o);
        assert!(
            v.starts_with(&format!("{name} {} (commit ", env!("CARGO_PKG_VERSION"))),
            "{v}"
        );
        let o = run(Command::new(bin(name)).args(["completions", "bash"]));
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let script = stdout(&o);
        assert!(
            script.contains(&format!("_{}", name.replace('-', "__"))),
            "{script}"
        );
        assert!(
            script.contains(sub),
            "{name}: no {sub} in the bash completion"
        );
        for shell in ["zsh", "fish"] {
            let o = run(Command::new(bin(name)).args(["completions", shell]));
            assert!(o.status.success() && !o.stdout.is_empty(), "{name} {shell}");
        }
        let o = run(Command::new(bin(name)).arg("man"));
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let page = stdout(&o);
        assert!(
            page.lines()
                .any(|l| l.starts_with(&format!(".TH {name} 1"))),
            "{page}"
        );
        // roff escapes a hyphen as `\-`.
        assert!(
            page.contains(&sub.replace('-', "\\-")),
            "{name}: no {sub} in the man page"
        );
        let dir = tmp.path().join(name);
        let o = run(Command::new(bin(name))
            .arg("man")
            .arg("--out-dir")
            .arg(&dir));
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        assert!(dir.join(format!("{name}.1")).is_file());
        assert!(
            dir.join(format!("{name}-{sub}.1")).is_file(),
            "{name}-{sub}.1"
        );
    }
}

/// A cluster (its broker started, the relay not) with three certified agents, the lying admin API in the relay's
/// place answering honestly about them.
struct World {
    _tmp: tempfile::TempDir,
    c: Cluster,
    relay: LyingAdmin,
    alice: PathBuf,
}

fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let c = Cluster::new(tmp.path(), &bin_dir(), "").unwrap();
    let mut views = Vec::new();
    for id in ["edge-1", "edge-2"] {
        let a = c.agent(id, "").unwrap();
        views.push(agent_view(id, &pem_der(&a.cert)));
    }
    let relay = LyingAdmin::for_cluster(&c);
    relay.answer_fleet(serde_json::Value::Array(views));
    let alice = c.operator_dir();
    World {
        _tmp: tmp,
        c,
        relay,
        alice,
    }
}

fn writes(w: &World) -> Vec<String> {
    w.relay
        .take()
        .into_iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

#[test]
fn a_relay_that_never_answers_ends_the_command_with_an_error_naming_it() {
    let w = world();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let _hold = std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming() {
            held.push(s);
        }
    });
    for json in [false, true] {
        let mut cmd = w.c.operator_cmd();
        cmd.env("TESSERA_OPERATOR_DIR", &w.alice).args([
            "agents",
            "ls",
            "--relay",
            &addr,
            "--timeout",
            "1",
        ]);
        if json {
            cmd.arg("--json");
        }
        let o = run(&mut cmd);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        let message = if json {
            let e = json_error(&o);
            assert_eq!(e["error"]["kind"], "timeout");
            assert_eq!(e["error"]["exit_code"], 1);
            e["error"]["message"].as_str().unwrap().to_owned()
        } else {
            stderr(&o)
        };
        assert!(message.contains(&addr), "{message}");
        assert!(message.contains("no answer within 1 s"), "{message}");
        assert!(message.contains("--timeout"), "{message}");
    }
}

#[test]
fn errors_are_json_with_json_and_results_of_every_ca_command_too() {
    let w = world();
    // A usage error, found by the parser.
    let o = run(w.c.operator_cmd().args(["--json", "cred", "frobnicate"]));
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(json_error(&o)["error"]["kind"], "usage");
    // Bad input.
    let o = tessera(
        &w.c,
        &w.alice,
        &["cred", "put", "bad name"],
        Some("x-secret-long-enough"),
    );
    assert_eq!(o.status.code(), Some(2));
    let e = json_error(&o);
    assert_eq!(e["error"]["kind"], "invalid");
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("credential name"));
    // The relay refused.
    w.relay.answer_write(
        "POST",
        "/v1/jobs",
        403,
        serde_json::json!({"error": "forbidden", "message": "no such template"}),
    );
    let o = tessera(&w.c, &w.alice, &["job", "run", "noop"], None);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(json_error(&o)["error"]["kind"], "refused");
    // Without --json: the text form.
    let o = run(w.c.operator_cmd().args(["cred", "put", "bad name"]));
    assert!(stderr(&o).starts_with("tessera: "), "{}", stderr(&o));
    // `ca` commands print their result as JSON.
    let dir = w.c.root().join("ca2");
    let o = run(w
        .c
        .operator_cmd()
        .args(["--json", "ca", "init", "--org", "Other"])
        .arg("--dir")
        .arg(&dir));
    let v = ok(&o);
    assert_eq!(v["created"], "ca");
}

#[test]
fn an_empty_secret_is_refused_and_nothing_is_sent() {
    let w = world();
    w.relay.take();
    let mut child =
        w.c.operator_cmd()
            .env("TESSERA_OPERATOR_DIR", &w.alice)
            .args(["cred", "put", "db"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
    child.stdin.take().unwrap().write_all(b"\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("secret for db from standard input is empty"),
        "{err}"
    );
    let o = tessera(&w.c, &w.alice, &["cred", "put", "db"], Some(""));
    assert_eq!(o.status.code(), Some(2));
    assert!(json_error(&o)["error"]["message"]
        .as_str()
        .unwrap()
        .contains("is empty"));
    assert!(writes(&w).is_empty());
}

#[test]
fn retry_takes_a_name_resolved_by_the_catalogue_and_agents_must_be_certified() {
    let w = world();
    let put = ok(&tessera(
        &w.c,
        &w.alice,
        &["cred", "put", "db"],
        Some("a-long-enough-secret"),
    ));
    let id = put["id"].as_str().unwrap().to_owned();
    // The relay lists db under another id: the retry goes to the catalogue's.
    w.relay.answer(
        "/v1/credentials",
        serde_json::json!([{ "id": "0b7c1f2a-9d3e-4f5a-8b6c-7d8e9f0a1b2c", "name": "db", "version": 1,
            "scope": {"type": "all"}, "deleted": false,
            "sync": {"synced": 0, "of": 2, "pending": 2, "stalled": 0, "integrity_failure": false} }]),
    );
    w.relay.take();
    ok(&tessera(&w.c, &w.alice, &["cred", "retry", "db"], None));
    assert_eq!(writes(&w), [format!("POST /v1/credentials/{id}/retry")]);
    ok(&tessera(
        &w.c,
        &w.alice,
        &["cred", "retry", "--id", &id],
        None,
    ));
    assert_eq!(writes(&w), [format!("POST /v1/credentials/{id}/retry")]);
    let o = tessera(&w.c, &w.alice, &["cred", "retry", "nosuch"], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("nosuch"), "{}", stderr(&o));
    // Agent ids the CA never certified.
    for args in [
        &["job", "run", "noop", "--agent", "edge-9"][..],
        &["grant", "db", "edge-1", "edge-9"][..],
        &["cred", "put", "web", "--agent", "edge-9"][..],
        &["agents", "rotate", "edge-9"][..],
    ] {
        let o = tessera(
            &w.c,
            &w.alice,
            args,
            args.contains(&"put").then_some("another-long-secret"),
        );
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        let msg = json_error(&o)["error"]["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            msg.contains("edge-9") && msg.contains("no live certificate"),
            "{msg}"
        );
    }
    assert!(writes(&w).is_empty());
}

#[test]
fn tables_have_headers_sorted_rows_and_rfc3339_times() {
    let w = world();
    let t1 = 1_796_586_258_000_u64; // 2026-12-06T19:44:18Z
    w.relay.answer(
        "/v1/agents",
        serde_json::json!([
            { "id": "edge-2", "state": "online", "last_seen_ms": t1, "mode": "peer", "cert": "",
              "version": "0.1.0+abc1234\u{1b}[2J" },
            { "id": "edge-1", "state": "offline", "last_seen_ms": 0, "cert": "" },
        ]),
    );
    let o = run(w
        .c
        .operator_cmd()
        .env("TESSERA_OPERATOR_DIR", &w.alice)
        .args(["agents", "ls"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("AGENT") && lines[0].contains("LAST SEEN"),
        "{text}"
    );
    assert!(
        lines[1].starts_with("edge-1") && lines[2].starts_with("edge-2"),
        "{text}"
    );
    assert!(lines[2].contains("2026-12-06T19:44:18Z"), "{text}");
    // VERSION: what the agent stated, relayed (control characters escaped); `-` when not reported.
    assert!(lines[0].trim_end().ends_with("VERSION"), "{text}");
    assert!(lines[1].trim_end().ends_with(" -"), "{text}");
    assert!(lines[2].contains("0.1.0+abc1234"), "{text}");
    assert!(!text.contains('\u{1b}'), "{text}");
    let o = run(w
        .c
        .operator_cmd()
        .env("TESSERA_OPERATOR_DIR", &w.alice)
        .args(["--json", "agents", "ls"]));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["id"], "edge-1");
}

/// `cred put` at a terminal asks for the secret without echoing it: run under a real pseudo-terminal
/// (testdata/type_at_terminal.py waits for the prompt and for echo to be off, then types), the terminal shows the
/// prompt and never the typed secret, and the credential is put.
#[test]
fn a_secret_typed_at_a_terminal_is_not_echoed_and_is_put() {
    const SECRET: &str = "typed-at-the-terminal-7f3c9a";
    let w = world();
    let tessera = w.c.operator_cmd();
    let typist =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/type_at_terminal.py");
    let mut cmd = Command::new("python3");
    cmd.arg(typist)
        .arg("(not echoed)")
        .arg("--")
        .arg(tessera.get_program())
        .args(tessera.get_args())
        .args(["--json", "cred", "put", "db"])
        .env("TESSERA_OPERATOR_DIR", &w.alice)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in tessera.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let mut child = cmd.spawn().unwrap();
    writeln!(child.stdin.take().unwrap(), "{SECRET}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let run: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let shown = run["transcript"].as_str().unwrap();
    assert!(shown.contains("secret for db (not echoed): "), "{shown}");
    assert!(!shown.contains(SECRET), "the secret was echoed: {shown}");
    assert_eq!(run["code"], 0, "{shown}");
    assert!(shown.contains("\"id\""), "the put's result: {shown}");
    let sent = w.relay.take();
    let (body, statement) = tessera_system_tests::operator_calls::posted(&sent);
    assert_eq!(
        tessera_system_tests::operator_calls::cred_view(&statement)["name"],
        "db"
    );
    assert_eq!(
        tessera_system_tests::operator_calls::sealed_to(&body),
        tessera_system_tests::operator_calls::set(&["edge-1", "edge-2"])
    );
    assert!(sent
        .iter()
        .all(|r| !String::from_utf8_lossy(&r.body).contains(SECRET)));
}
