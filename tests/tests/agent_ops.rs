//! Operating an agent, with the relay and the agent as real processes on a real Mosquitto: `tessera-agent status`
//! through the running agent's local API (text and `--json`), the metrics textfile for node_exporter (parsed by
//! Prometheus's own Python client), `tessera-agent config set` refusing an unknown key, and the logs of the agent,
//! the relay and the operator's command through a delivery at trace level (the HTTP, TLS and MQTT libraries named
//! to trace too): the secret never appears in them, nor its base64 or hex, `--log-format json` lines are JSON, no
//! colour codes reach a log that is not a terminal, and a bare `trace` keeps those libraries at `info`.
//!
//! Needs `mosquitto` and `python3` with `prometheus_client` (`scripts/test` installs both).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use tessera_system_tests::bins::{bin, bin_dir};
use tessera_system_tests::cluster::{wait_for, AgentProc, Cluster};

const WAIT: Duration = Duration::from_secs(30);
const POLICY: &str = "[policy.\"*\"]\nuids = [0]\n";

fn holds(a: &AgentProc, name: &str, value: &str) {
    wait_for(&format!("{} to hold {name}", a.id.as_str()), WAIT, || {
        Ok(a.value(name)?.as_deref() == Some(value))
    })
    .unwrap();
}

fn status_json(a: &AgentProc) -> serde_json::Value {
    let out = a.cli().args(["status", "--json"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The samples of a Prometheus text file as Prometheus's Python client parses them: `name{labels} value` lines.
fn parse_prometheus(path: &Path) -> String {
    let python = std::env::var("TESSERA_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let out = Command::new(python)
        .args([
            "-c",
            "import sys\nfrom prometheus_client.parser import text_string_to_metric_families as p\n\
             for f in p(open(sys.argv[1]).read()):\n    assert f.type == 'gauge', f\n    for s in f.samples:\n        \
             print(s.name + '{' + ','.join(k + '=' + v for k, v in sorted(s.labels.items())) + '} ' + repr(float(s.value)))",
        ])
        .arg(path)
        .output()
        .expect("python3 with prometheus_client (pip install prometheus-client)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn status_and_metrics_show_a_running_agent() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let mut c = Cluster::new(root, &bin_dir(), "").unwrap();
    c.start_relay().unwrap();
    let prom = root.join("textfile").join("tessera.prom");
    std::fs::create_dir_all(prom.parent().unwrap()).unwrap();
    let extra = format!(
        "{POLICY}[metrics]\ntextfile = \"{}\"\ninterval_secs = 5\n",
        prom.display()
    );
    let mut a = c.agent("edge-1", &extra).unwrap();

    // Not running: status says so, with the local API's exit code.
    let out = a.cli().arg("status").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("is the agent running?"));

    a.start().unwrap();
    c.wait_state("edge-1", "online", WAIT).unwrap();
    c.put("db", "status-check", &[]).unwrap();
    holds(&a, "db", "status-check");
    c.op(&[
        "cred",
        "rotate",
        "db",
        "--file",
        write(root, "v2", "status-check-2").as_str(),
    ])
    .unwrap();
    holds(&a, "db", "status-check-2");

    wait_for("status online", WAIT, || {
        Ok(status_json(&a)["registration"]["state"] == "online")
    })
    .unwrap();
    let s = status_json(&a);
    assert_eq!(s["agent"], "edge-1");
    assert_eq!(s["broker"]["connected"], true);
    assert_eq!(
        s["broker"]["address"],
        format!("127.0.0.1:{}", c.broker.port)
    );
    assert_eq!(
        s["credentials"],
        serde_json::json!([{"name": "db", "version": 2, "status": "ok"}])
    );
    assert_eq!(s["store_key"]["generation"], 1);
    assert_eq!(s["store_key"]["sealer"], "file");
    assert_eq!(s["store_key"]["state"], "steady");
    // The certificate's expiry as RFC 3339, the same instant as its unix time and as in the certificate.
    let not_after = s["certificate"]["not_after"].as_str().unwrap();
    let parsed =
        time::OffsetDateTime::parse(not_after, &time::format_description::well_known::Rfc3339)
            .unwrap();
    assert_eq!(
        parsed.unix_timestamp(),
        s["certificate"]["not_after_unix"].as_i64().unwrap()
    );
    let der = pem::parse(std::fs::read(&a.cert).unwrap())
        .unwrap()
        .into_contents();
    let cert = tessera_proto::cert::PinnedCa::from_der(&c.ca_der().unwrap())
        .unwrap()
        .verify_agent(
            &der,
            tessera_system_tests::broker::now(),
            &tessera_proto::statement::RevocationList::empty(),
        )
        .unwrap();
    assert_eq!(parsed.unix_timestamp(), cert.not_after);
    assert_eq!(s["certificate"]["serial"], cert.serial.as_str());

    let text = a.cli().arg("status").output().unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("registration  online"), "{text}");
    assert!(text.contains("  db v2"), "{text}");
    assert!(text.contains(not_after), "{text}");

    // The textfile appears, parses as Prometheus text, and says the same.
    wait_for("the metrics textfile to show db", WAIT, || {
        Ok(prom.exists() && parse_prometheus(&prom).contains("status=ok} 1.0"))
    })
    .unwrap();
    let samples = parse_prometheus(&prom);
    for line in [
        "tessera_agent_broker_connected{agent=edge-1} 1.0".to_owned(),
        "tessera_agent_registration_state{agent=edge-1,state=online} 1.0".to_owned(),
        "tessera_agent_credentials_held{agent=edge-1,status=ok} 1.0".to_owned(),
        "tessera_agent_store_key_generation{agent=edge-1,sealer=file} 1.0".to_owned(),
        format!(
            "tessera_agent_certificate_expiry_timestamp_seconds{{agent=edge-1}} {}.0",
            cert.not_after
        ),
    ] {
        assert!(
            samples.lines().any(|l| l == line),
            "{line} missing in\n{samples}"
        );
    }
    // Only the file: the temporary one is renamed over it.
    let names: Vec<_> = std::fs::read_dir(prom.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("tessera.prom")]);

    // A stopped agent leaves no stale metrics.
    a.stop().unwrap();
    wait_for("the textfile removed", WAIT, || Ok(!prom.exists())).unwrap();
}

fn write(root: &Path, name: &str, text: &str) -> String {
    let p = root.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn config_set_refuses_an_unknown_key_by_name_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    let original = "# site settings\n[broker]\nhost = \"old.example\"\n";
    std::fs::write(&config, original).unwrap();
    let set = |k: &str, v: &str| {
        Command::new(bin("tessera-agent"))
            .arg("--config")
            .arg(&config)
            .args(["config", "set", k, v])
            .output()
            .unwrap()
    };
    let out = set("broker.hots", "mqtt.example");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown key broker.hots") && err.contains(&config.display().to_string()),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&config).unwrap(), original);
    let out = set("broker.host", "mqtt.example");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        "# site settings\n[broker]\nhost = \"mqtt.example\"\n"
    );
}

/// `secret`'s base64 at each of the three alignments it can have inside a longer base64 text (the characters that
/// depend on neighbouring bytes dropped).
fn base64_forms(secret: &[u8]) -> Vec<String> {
    (0..3)
        .map(|pad| {
            let mut bytes = vec![0u8; pad];
            bytes.extend_from_slice(secret);
            let enc = base64::engine::general_purpose::STANDARD.encode(&bytes);
            let skip = if pad == 0 {
                0
            } else {
                (pad * 4).div_ceil(3) + 1
            };
            let keep = (bytes.len() / 3) * 4;
            enc[skip..keep.max(skip)].to_owned()
        })
        .filter(|s| s.len() >= 8)
        .collect()
}

/// `secret`'s base64 forms ([`base64_forms`]) and its hex, lower and upper case.
fn encoded_forms(secret: &[u8]) -> Vec<String> {
    let mut forms = base64_forms(secret);
    let hex = secret.iter().fold(String::new(), |mut hex, b| {
        use std::fmt::Write as _;
        let _ = write!(hex, "{b:02x}");
        hex
    });
    forms.extend([hex.to_uppercase(), hex]);
    forms
}

/// A text log line at TRACE or DEBUG from one of the libraries a bare `trace` keeps at info, if any.
fn library_line_below_info(log: &str) -> Option<&str> {
    log.lines().find(|l| {
        (l.contains(" TRACE ") || l.contains(" DEBUG "))
            && ["hyper", "h2", "rustls", "rumqttc", "tokio", "mio", "tower"]
                .iter()
                .any(|k| l.contains(&format!(" {k}::")) || l.contains(&format!(" {k}:")))
    })
}

#[test]
fn trace_logs_of_a_delivery_hold_no_secret_and_json_lines_are_json() {
    const SECRET: &str = "pa55-Zq8vXr2LmN7wT4yK9cB3hJ6";
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let mut c = Cluster::new(root, &bin_dir(), "").unwrap();
    // A bare `trace` keeps the libraries at info (docs/operations.md "Logs"): these name them, to look there too.
    let all_trace =
        "trace,hyper=trace,h2=trace,rustls=trace,rumqttc=trace,tokio=trace,mio=trace,tower=trace";
    let trace_json = [("TESSERA_LOG", all_trace), ("TESSERA_LOG_FORMAT", "json")];
    c.start_relay_env(&trace_json).unwrap();
    let mut a = c.agent("edge-1", POLICY).unwrap();
    let mut edge2 = c.agent("edge-2", POLICY).unwrap();
    a.start_env(&trace_json).unwrap();
    // The second agent logs text through RUST_LOG (TESSERA_LOG unset by the harness's default: it sets "info").
    edge2
        .start_env(&[("TESSERA_LOG", ""), ("RUST_LOG", "trace")])
        .unwrap();
    c.wait_state("edge-1", "online", WAIT).unwrap();
    c.wait_state("edge-2", "online", WAIT).unwrap();

    // The operator's command at trace level too, the secret on its standard input.
    let mut put = c
        .operator_cmd()
        .env("TESSERA_LOG", all_trace)
        .args(["cred", "put", "db"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    put.stdin
        .take()
        .unwrap()
        .write_all(SECRET.as_bytes())
        .unwrap();
    let put = put.wait_with_output().unwrap();
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    holds(&a, "db", SECRET);
    holds(&edge2, "db", SECRET);
    // A JIT repair: edge-3 is enrolled later and asks for it through its local API (a peer rewraps it).
    let mut late = c.agent("edge-3", POLICY).unwrap();
    late.start_env(&trace_json).unwrap();
    holds(&late, "db", SECRET);
    a.stop().unwrap();
    edge2.stop().unwrap();
    late.stop().unwrap();
    c.kill_relay();

    let relay = c.relay_log();
    let logs = [
        ("relay", relay.clone()),
        ("edge-1", a.log()),
        ("edge-2", edge2.log()),
        ("edge-3", late.log()),
        (
            "tessera cred put",
            String::from_utf8_lossy(&put.stderr).into_owned(),
        ),
    ];
    // The trace level was on: these are not empty logs that pass vacuously.
    assert!(
        logs[1].1.contains("\"level\":\"TRACE\""),
        "edge-1 logged no trace line"
    );
    // edge-2's bare `trace` (RUST_LOG): nothing below info from the libraries it did not name.
    let internal = library_line_below_info(&logs[2].1);
    assert!(internal.is_none(), "edge-2 (bare trace): {internal:?}");
    assert!(
        relay.contains("\"level\":\"TRACE\""),
        "the relay logged no trace line"
    );
    let forms = encoded_forms(SECRET.as_bytes());
    for (who, log) in &logs {
        assert!(!log.contains(SECRET), "{who}'s log holds the secret");
        for f in &forms {
            assert!(
                !log.contains(f.as_str()),
                "{who}'s log holds the secret's base64 or hex ({f})"
            );
        }
        assert!(!log.contains('\u{1b}'), "{who}'s log has ANSI escape codes");
    }
    for (who, log) in [
        ("relay", &logs[0].1),
        ("edge-1", &logs[1].1),
        ("edge-3", &logs[3].1),
    ] {
        for line in log.lines().filter(|l| !l.is_empty()) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| {
                panic!("{who}: a --log-format json line is not JSON ({e}): {line}")
            });
            assert!(
                v["level"].is_string() && v["timestamp"].is_string(),
                "{who}: {line}"
            );
        }
    }
}
