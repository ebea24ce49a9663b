//! Deleting a credential reaches the appliances: `tessera cred rm` signs a tombstone, the relay forwards it, every
//! agent that held the credential verifies it and purges (the local API answers `NOT_FOUND`, its listing no longer
//! has the id), `cred ls` counts the purges, an agent offline at the deletion purges when it comes back, and a
//! credential created again under the same name (a new id) is held by every agent, once; `tessera revoke` makes the
//! agent it removes purge (an offline one when it returns); every purge carries the agent's receipt, which `audit
//! verify` and `cred show` check. Real processes, a real Mosquitto.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![allow(clippy::too_many_lines)]

use std::time::Duration;

use tessera_system_tests::bins::bin_dir;
use tessera_system_tests::cluster::{wait_for, AgentProc, Cluster};

const WAIT: Duration = Duration::from_secs(30);
const POLICY: &str = "[policy.\"*\"]\nuids = [0]\n";

fn holds(a: &AgentProc, name: &str, value: &str) {
    wait_for(&format!("{} to hold {name}", a.id.as_str()), WAIT, || {
        Ok(a.value(name)?.as_deref() == Some(value))
    })
    .unwrap();
}

/// What the agent's local API lists: (name, id) of every credential, duplicates kept.
fn listed(a: &AgentProc) -> Vec<(String, String)> {
    a.listed()
        .unwrap()
        .into_iter()
        .map(|(name, id, _)| (name, id))
        .collect()
}

fn purged(a: &AgentProc, name: &str, id: &str) {
    wait_for(&format!("{} to purge {name}", a.id.as_str()), WAIT, || {
        let out = a.get(name)?;
        Ok(out.status.code() == Some(12) && !listed(a).iter().any(|(_, i)| i == id))
    })
    .unwrap();
}

/// The relay's listing of the credential `id`.
fn view(c: &Cluster, id: &str) -> serde_json::Value {
    c.op_json(&["cred", "ls"])
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == id)
        .cloned()
        .unwrap()
}

fn live_id(c: &Cluster, name: &str) -> String {
    let ls = c.op_json(&["cred", "ls"]).unwrap();
    let live: Vec<&serde_json::Value> = ls
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["name"] == name && v["deleted"] == false)
        .collect();
    assert_eq!(live.len(), 1, "{ls}");
    live[0]["id"].as_str().unwrap().to_owned()
}

fn purge_chips(c: &Cluster, id: &str) -> Option<(u64, u64, u64)> {
    let p = &view(c, id)["purge"];
    Some((
        p["purged"].as_u64()?,
        p["of"].as_u64()?,
        p["offline"].as_u64()?,
    ))
}

#[test]
fn a_deleted_credential_is_purged_on_every_agent_and_can_be_created_again() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = Cluster::new(tmp.path(), &bin_dir(), "").unwrap();
    c.start_relay().unwrap();
    let mut agents: Vec<AgentProc> = ["edge-1", "edge-2", "edge-3"]
        .iter()
        .map(|id| c.agent(id, POLICY).unwrap())
        .collect();
    for a in &mut agents {
        a.start().unwrap();
    }
    for a in &agents {
        c.wait_state(a.id.as_str(), "online", WAIT).unwrap();
    }

    // Held by three online agents; deleted; all three purge.
    c.put("db", "hunter2\n", &[]).unwrap();
    for a in &agents {
        holds(a, "db", "hunter2");
    }
    let old = live_id(&c, "db");
    c.op(&["cred", "rm", "db"]).unwrap();
    for a in &agents {
        purged(a, "db", &old);
    }
    wait_for("cred ls to count 3 purges", WAIT, || {
        Ok(purge_chips(&c, &old) == Some((3, 3, 0)))
    })
    .unwrap();
    assert_eq!(view(&c, &old)["deleted"], true);
    let human = String::from_utf8_lossy(&c.op(&["cred", "ls"]).unwrap().stdout).into_owned();
    assert!(human.contains("deleted, purged 3/3"), "{human}");
    assert_eq!(c.audit("credential_purged").unwrap().len(), 3);

    // An agent offline at the deletion purges when it comes back.
    c.put("api", "tok-1\n", &[]).unwrap();
    for a in &agents {
        holds(a, "api", "tok-1");
    }
    let api = live_id(&c, "api");
    agents[2].kill();
    c.wait_state("edge-3", "offline", WAIT).unwrap();
    c.op(&["cred", "rm", "api"]).unwrap();
    purged(&agents[0], "api", &api);
    purged(&agents[1], "api", &api);
    wait_for("cred ls to show the offline agent", WAIT, || {
        Ok(purge_chips(&c, &api) == Some((2, 3, 1)))
    })
    .unwrap();
    let human = String::from_utf8_lossy(&c.op(&["cred", "ls"]).unwrap().stdout).into_owned();
    assert!(human.contains("purged 2/3, 1 offline"), "{human}");
    agents[2].start().unwrap();
    purged(&agents[2], "api", &api);
    wait_for("cred ls to count 3 purges of api", WAIT, || {
        Ok(purge_chips(&c, &api) == Some((3, 3, 0)))
    })
    .unwrap();

    // Created again: a new id, held by every agent, and only it.
    c.put("db", "second-life\n", &[]).unwrap();
    let new = live_id(&c, "db");
    assert_ne!(new, old);
    for a in &agents {
        holds(a, "db", "second-life");
        let dbs: Vec<_> = listed(a).into_iter().filter(|(n, _)| n == "db").collect();
        assert_eq!(
            dbs,
            vec![("db".to_owned(), new.clone())],
            "{}",
            a.id.as_str()
        );
    }

    // A scope revoke: edge-2 is sent the narrower signed statement and purges; edge-1 keeps it.
    c.put("scoped", "two-only\n", &["edge-1", "edge-2"])
        .unwrap();
    holds(&agents[0], "scoped", "two-only");
    holds(&agents[1], "scoped", "two-only");
    let scoped = live_id(&c, "scoped");
    c.op(&["revoke", "scoped", "edge-2"]).unwrap();
    wait_for("edge-2 to purge the revoked credential", WAIT, || {
        let out = agents[1].get("scoped")?;
        Ok(out.status.code() == Some(11) && !listed(&agents[1]).iter().any(|(_, i)| *i == scoped))
    })
    .unwrap();
    holds(&agents[0], "scoped", "two-only");
    // The agent revoked is no longer counted as holding it, by the relay or by `cred show`.
    assert_eq!(c.chips("scoped").unwrap(), Some((1, 1)));
    let show = c.op_json(&["cred", "show", "scoped"]).unwrap();
    assert_eq!(show["summary"], "stored v1 1/1", "{show}");
    assert!(c
        .audit("credential_purged")
        .unwrap()
        .iter()
        .any(|e| e["data"]["credential"] == scoped.as_str() && e["data"]["agent"] == "edge-2"));

    // A scope revoke for an agent that is offline: it purges when it comes back.
    c.put(
        "trio",
        "three
",
        &["edge-1", "edge-2", "edge-3"],
    )
    .unwrap();
    for a in &agents {
        holds(a, "trio", "three");
    }
    let trio = live_id(&c, "trio");
    agents[2].kill();
    c.wait_state("edge-3", "offline", WAIT).unwrap();
    c.op(&["revoke", "trio", "edge-3"]).unwrap();
    agents[2].start().unwrap();
    wait_for("edge-3 to purge on its return", WAIT, || {
        let out = agents[2].get("trio")?;
        Ok(out.status.code() == Some(11) && !listed(&agents[2]).iter().any(|(_, i)| *i == trio))
    })
    .unwrap();
    holds(&agents[0], "trio", "three");
    // Every recorded purge and delivery carries the agent's receipt; `cred show` checks each state's.
    let verify = c.op_json(&["audit", "verify"]).unwrap();
    assert_eq!(verify["ok"], true, "{verify}");
    let show = c.op_json(&["cred", "show", "api"]).unwrap();
    assert_eq!(show["without_valid_receipt"], 0, "{show}");
    let purged: Vec<&serde_json::Value> = show["agents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["purge"] == "purged" && a["receipt"] == "ok")
        .collect();
    assert_eq!(purged.len(), 3, "{show}");
    assert_eq!(show["summary"], "purged 3/3", "{show}");
}
