//! Agent side of a backfill over a real Mosquitto (TLS): 1,000 deliveries pre-sealed by a test relay, time until the
//! last acknowledgement, and the agent's resident memory afterwards.
//! `cargo bench -p tessera-agent --bench backfill` (needs `mosquitto`; `TESSERA_BACKFILL_N` sets the count).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::panic,
    missing_docs
)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use tessera_proto::ids::CredentialId;
use tessera_proto::statement::Scope;
use tessera_proto::wire::{Down, StoreOutcome, Up};

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let n: usize = std::env::var("TESSERA_BACKFILL_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut w = common::world().await;
        let agent = w.online_agent("bench-1", "").await;
        let idle = rss_kib(agent.pid().unwrap());
        let cert = agent.cert().clone();
        let deliveries: Vec<Down> = (0..n)
            .map(|i| {
                Down::CredentialStore(w.org.delivery(&cert.wrap, CredentialId::random(), 1, &format!("c{i}"), Scope::All, &format!("secret-{i}")))
            })
            .collect();
        let start = Instant::now();
        for d in &deliveries {
            w.relay.send(&agent.id, d).await;
        }
        let sent = start.elapsed();
        let mut stored = 0;
        while stored < n {
            match w.relay.next_up(&agent.id).await {
                Up::CredentialStored(s) if matches!(s.outcome, StoreOutcome::Stored { .. }) => stored += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        let total = start.elapsed();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let held = rss_kib(agent.pid().unwrap());
        println!("| figure | value |");
        println!("|---|---|");
        println!("| deliveries | {n} |");
        println!("| relay publish of all deliveries | {sent:.2?} |");
        println!("| first send to last acknowledgement (agent: verify, open, commitment, store, flush, ack) | {total:.2?} |");
        println!("| per delivery | {:.0?} |", total / u32::try_from(n).unwrap());
        println!("| agent RSS idle, enrolled | {} KiB |", idle.unwrap_or(0));
        println!("| agent RSS holding {n} credentials | {} KiB |", held.unwrap_or(0));
    });
}
