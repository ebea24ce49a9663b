//! SIGHUP on a running agent (the real binary, a real relay and Mosquitto): the read policy and the job templates of
//! the edited `agent.toml` apply to new requests without a restart. A credential the policy did not allow is served
//! once the policy is widened; one it no longer allows is refused (`NOT_GRANTED`); a job template added is run; a
//! changed section that needs a restart is logged and not applied; a file that does not load is logged, changes
//! nothing, and the agent keeps serving. docs/operations.md "Reloading".
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt::Write as _;
use std::time::Duration;

use rustix::process::{kill_process, Pid, Signal};
use tessera_system_tests::bins::bin_dir;
use tessera_system_tests::cluster::{wait_for, AgentProc, Cluster};

const WAIT: Duration = Duration::from_secs(30);

fn hup(a: &AgentProc) {
    let pid = Pid::from_raw(i32::try_from(a.pid().unwrap()).unwrap()).unwrap();
    kill_process(pid, Signal::HUP).unwrap();
}

/// SIGHUP, then waits until the log has one more line containing `marker` than before.
fn reload(a: &AgentProc, marker: &str) {
    let count = |a: &AgentProc| a.log().matches(marker).count();
    let before = count(a);
    hup(a);
    wait_for(&format!("the agent to log {marker:?}"), WAIT, || {
        Ok(count(a) > before)
    })
    .unwrap();
}

/// `tessera-agent get NAME`'s exit code (11: `NOT_GRANTED`).
fn code(a: &AgentProc, name: &str) -> Option<i32> {
    a.get(name).unwrap().status.code()
}

fn policy(me: u32, names: &[&str]) -> String {
    let mut out = String::new();
    for n in names {
        writeln!(out, "[policy.{n}]\nuids = [{me}]").unwrap();
    }
    out
}

#[test]
fn sighup_applies_the_read_policy_and_job_templates_and_survives_a_broken_file() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = Cluster::new(tmp.path(), &bin_dir(), "").unwrap();
    c.start_relay().unwrap();
    let me = rustix::process::getuid().as_raw();
    let mut a = c.agent("edge-1", &policy(me, &["db"])).unwrap();
    let start = std::fs::read_to_string(&a.config).unwrap();
    let base = start.replace(&policy(me, &["db"]), "");
    a.start().unwrap();
    c.wait_state("edge-1", "online", WAIT).unwrap();
    c.put("db", "hunter2", &[]).unwrap();
    c.put("api", "tok-123", &[]).unwrap();
    wait_for("edge-1 to serve db", WAIT, || {
        Ok(a.value("db")?.as_deref() == Some("hunter2"))
    })
    .unwrap();
    assert_eq!(code(&a, "api"), Some(11), "api is not in the policy yet");
    let job = c.job("hello", Some("edge-1"), &[], WAIT).unwrap();
    assert!(job.to_string().contains("UNKNOWN_TEMPLATE"), "{job}");

    // Widened: api allowed, a job template added; served and run without a restart.
    std::fs::write(
        &a.config,
        format!(
            "{base}{}[jobs.hello]\ncommand = [\"/bin/echo\", \"hello\"]\n",
            policy(me, &["db", "api"])
        ),
    )
    .unwrap();
    reload(&a, "SIGHUP: reloaded");
    assert_eq!(a.value("api").unwrap().as_deref(), Some("tok-123"));
    assert_eq!(a.value("db").unwrap().as_deref(), Some("hunter2"));
    let job = c.job("hello", Some("edge-1"), &[], WAIT).unwrap();
    assert_eq!(job["exit_code"], 0, "{job}");
    let log = a.log();
    assert!(
        log.contains(&format!("policy.api (none) -> uids [{me}] gids []"))
            && log.contains("jobs.hello added"),
        "{log}"
    );

    // Narrowed: db no longer allowed, refused at once; a change that needs a restart is logged, not applied.
    let narrowed = format!(
        "{}{}[jobs.hello]\ncommand = [\"/bin/echo\", \"hello\"]\n",
        base.replace("[socket]\n", "[socket]\njit_timeout_ms = 500\n"),
        policy(me, &["api"])
    );
    std::fs::write(&a.config, &narrowed).unwrap();
    reload(&a, "SIGHUP: reloaded");
    assert_eq!(code(&a, "db"), Some(11), "db was taken out of the policy");
    assert_eq!(a.value("api").unwrap().as_deref(), Some("tok-123"));
    assert!(
        a.log().contains("needs a restart") && a.log().contains("section=\"socket\""),
        "{}",
        a.log()
    );

    // A file that does not load: logged with the problem, the policy in force kept, the agent up.
    std::fs::write(
        &a.config,
        format!(
            "surprise = 1\n{}",
            narrowed.replace(&policy(me, &["api"]), &policy(me, &["db", "api"]))
        ),
    )
    .unwrap();
    reload(&a, "does not load");
    assert!(a.log().contains("surprise"), "{}", a.log());
    assert!(a.running(), "the agent died on SIGHUP");
    assert_eq!(code(&a, "db"), Some(11), "the policy in force is kept");
    assert_eq!(a.value("api").unwrap().as_deref(), Some("tok-123"));
    // The secrets never reach the log.
    assert!(!a.log().contains("hunter2") && !a.log().contains("tok-123"));
    a.stop().unwrap();
}
