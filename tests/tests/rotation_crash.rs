//! Crash safety of a key rotation: the agent is SIGKILLed at every state of a blue/green rotation (key generation,
//! green issued, green certified and validating, green active, blue revoked), at least ten times over two
//! rotations, on real processes and a real Mosquitto. After each restart it resumes from the persisted state: every
//! rotation completes, it always has a usable identity (it reconnects and registers), and no credential is lost.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::too_many_lines
)]

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt as _;
use std::time::Duration;

use tessera_system_tests::bins::bin_dir;
use tessera_system_tests::cluster::{wait_for, AgentProc, Cluster};

const WAIT: Duration = Duration::from_secs(60);

/// A random number below `n` (a fresh UUID's bits).
fn random_below(n: u64) -> u64 {
    let bits = uuid::Uuid::new_v4().as_u128();
    u64::try_from(bits % u128::from(n.max(1))).unwrap()
}

/// The rotation state the agent last logged (a transition, or the state it resumed from).
fn logged_state(a: &AgentProc) -> String {
    a.log()
        .lines()
        .rev()
        .filter(|l| l.contains("key rotation"))
        .find_map(|l| {
            let at = l
                .rfind(" to=")
                .map(|i| i + 4)
                .or_else(|| l.rfind("state=").map(|i| i + 6))?;
            Some(
                l[at..]
                    .split_whitespace()
                    .next()?
                    .trim_matches('"')
                    .to_owned(),
            )
        })
        .unwrap_or_else(|| "blue_active".to_owned())
}

struct Run<'a> {
    c: &'a mut Cluster,
    a: AgentProc,
    kills: Vec<String>,
    secrets: Vec<(String, String)>,
}

impl Run<'_> {
    /// SIGKILL after `delay_ms`, noting the state it was in; restart at once.
    fn kill_restart(&mut self, delay_ms: u64) {
        std::thread::sleep(Duration::from_millis(delay_ms));
        let state = logged_state(&self.a);
        self.a.kill();
        self.kills.push(state);
        self.a.start().unwrap();
    }

    /// Every credential is still served, with its value.
    fn check_held(&self) {
        wait_for(
            "every credential to be served after the restart",
            WAIT,
            || {
                for (name, value) in &self.secrets {
                    if self.a.value(name)?.as_deref() != Some(value.as_str()) {
                        return Ok(false);
                    }
                }
                Ok(true)
            },
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", self.a.log()));
    }

    fn wait_renewal(&self, state: &str) -> bool {
        self.c.wait_renewal("edge-1", state, WAIT).is_ok()
    }

    fn renew(&self, extra: &[&str]) {
        let mut args = vec!["ca", "renew", "--due", "--dir"];
        let dir = self.c.ca_dir();
        args.push(dir.to_str().unwrap());
        args.extend_from_slice(extra);
        self.c.op(&args).unwrap();
    }

    fn rotation(&mut self, round: usize) {
        let destroyed_before = self
            .a
            .log()
            .matches("previous wrap key is destroyed")
            .count();
        // Asked, and killed around key generation and the first send of the request.
        self.c.op(&["agents", "rotate", "edge-1"]).unwrap();
        self.kill_restart(random_below(300));
        if !self.wait_renewal("requested") {
            // The kill came before the request was persisted and the rotate message was consumed: ask again.
            self.c.op(&["agents", "rotate", "edge-1"]).unwrap();
            assert!(self.wait_renewal("requested"), "{}", self.a.log());
        }
        // Killed while waiting for the CA (green issued).
        self.kill_restart(random_below(200));
        self.check_held();
        // Certified and pushed. Round 0: killed the moment the agent starts validating green (reconnected with it,
        // not yet switched); later rounds: at a random point while it is stored, validated or just switched to.
        let validating_before = self.a.log().matches("green_validating").count();
        let certified_before = self.a.log().matches("green_certified").count();
        self.renew(&[]);
        if round == 0 {
            // The relay goes down once the certificate has reached the agent: the green registration is not
            // acknowledged, so the agent stays in validation until it is killed there.
            wait_for("the agent to store green", WAIT, || {
                Ok(self.a.log().matches("green_certified").count() > certified_before)
            })
            .unwrap();
            self.c.kill_relay();
            wait_for("the agent to validate green", WAIT, || {
                Ok(self.a.log().matches("green_validating").count() > validating_before)
            })
            .unwrap();
            self.kill_restart(0);
            self.c.start_relay().unwrap();
        } else {
            self.kill_restart(random_below(800));
        }
        assert!(
            self.wait_renewal("completed"),
            "round {round}: {}\nthe relay's log (admin requests left out):\n{}",
            self.a.log(),
            self.c
                .relay_log()
                .lines()
                .filter(
                    |l| !l.contains("admin request") && !l.contains(" INFO tessera_relay::admin")
                )
                .collect::<Vec<_>>()
                .join("\n")
        );
        // Killed with green active and blue kept.
        self.kill_restart(random_below(200));
        self.c.wait_state("edge-1", "online", WAIT).unwrap();
        self.check_held();
        // Blue retired and revoked; killed while the list arrives.
        self.renew(&["--grace-secs", "0"]);
        self.kill_restart(random_below(300));
        wait_for("the old wrap key to be destroyed", WAIT, || {
            Ok(self
                .a
                .log()
                .matches("previous wrap key is destroyed")
                .count()
                > destroyed_before)
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", self.a.log()));
        self.check_held();
    }
}

#[test]
fn killed_at_every_rotation_state_the_agent_resumes_and_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = Cluster::new(tmp.path(), &bin_dir(), "").unwrap();
    c.start_relay().unwrap();
    let uid = std::fs::metadata(tmp.path()).unwrap().uid();
    let extra = format!(
        "[policy.\"*\"]\nuids = [{uid}]\n[rotation]\nautomatic = false\nvalidate_secs = 20\n"
    );
    let mut a = c.agent("edge-1", &extra).unwrap();
    a.start().unwrap();
    c.wait_state("edge-1", "online", WAIT).unwrap();
    let secrets: Vec<(String, String)> = (0..20)
        .map(|i| (format!("cred-{i}"), format!("secret-{i}")))
        .collect();
    c.import_all(&secrets).unwrap();
    let mut run = Run {
        c: &mut c,
        a,
        kills: Vec::new(),
        secrets,
    };
    run.check_held();
    for round in 0..2 {
        run.rotation(round);
    }
    eprintln!("killed in: {:?}", run.kills);
    assert!(run.kills.len() >= 10, "{:?}", run.kills);
    let states: BTreeSet<&str> = run.kills.iter().map(String::as_str).collect();
    for s in [
        "green_issued",
        "green_validating",
        "green_active",
        "blue_active",
    ] {
        assert!(states.contains(s), "no kill in {s}: {:?}", run.kills);
    }
    // Two rotations, each completed with its receipt; a credential put now reaches the twice-rotated agent.
    assert_eq!(run.c.audit("rotation_completed").unwrap().len(), 2);
    run.c.put("after", "both-rotations\n", &[]).unwrap();
    wait_for("the new credential", WAIT, || {
        Ok(run.a.value("after")?.as_deref() == Some("both-rotations"))
    })
    .unwrap();
    let verify = run.c.op_json(&["audit", "verify"]).unwrap();
    assert_eq!(verify["ok"], true, "{verify}");
}
