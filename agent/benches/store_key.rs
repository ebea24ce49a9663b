//! Store-key rotation: how fast a store is re-encrypted under a new key, and how long the agent's unseal at start
//! takes with each sealer it was built with. Prints a table (docs/benchmarks.md).
//! `cargo bench -p tessera-agent --bench store_key` (add `--features tpm` for the TPM rows: needs `swtpm`).
//! `TESSERA_STORE_KEY_N` sets the credential counts (default `1000,10000`; 100 when `cargo test` runs it).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::panic,
    clippy::cast_precision_loss,
    missing_docs
)]

#[cfg(feature = "tpm")]
#[path = "../../board/tests/support/swtpm.rs"]
mod swtpm;

#[path = "../tests/fill/mod.rs"]
mod fill;

use std::time::{Duration, Instant};

use tessera_agent::config::{AgentConfig, SealerBackend};
use tessera_agent::store_key::rotate;
use tessera_agent::unseal::open_store_keys;
use tessera_system_tests::org::TestOrg;

const NOW: i64 = 1_800_000_000;

fn cfg(dir: &std::path::Path, batch: usize) -> AgentConfig {
    let mut cfg = AgentConfig {
        state_dir: dir.join("state"),
        ..AgentConfig::default()
    };
    cfg.store.reencrypt_batch = batch;
    cfg.store.reencrypt_pause_ms = 0;
    cfg
}

fn fill(cfg: &AgentConfig, org: &TestOrg, n: usize) {
    fill::store_with_credentials(cfg, org, NOW, n, |_| {
        "0123456789abcdef0123456789abcdef".to_owned()
    });
}

/// One rotation of an `n`-credential store (file sealer to file sealer, no pause): (records, time).
fn rotation(org: &TestOrg, n: usize, batch: usize) -> (usize, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg(dir.path(), batch);
    fill(&cfg, org, n);
    let opened = open_store_keys(&cfg).unwrap();
    let start = Instant::now();
    let started =
        rotate::start(&cfg, &opened.store, &opened.keys, SealerBackend::File, NOW).unwrap();
    let sealing = start.elapsed();
    let records = opened.store.stale_records().unwrap();
    let start = Instant::now();
    rotate::run_to_end(&cfg, &opened.store, started).unwrap();
    (records, sealing + start.elapsed())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// Median time of `tessera-agent`'s store open (manifest, unseal, sled open) with the configured sealer.
fn open_time(cfg: &AgentConfig, runs: usize) -> Duration {
    median(
        (0..runs)
            .map(|_| {
                let start = Instant::now();
                drop(open_store_keys(cfg).unwrap());
                start.elapsed()
            })
            .collect(),
    )
}

fn main() {
    // `cargo test --all-targets` runs this too (without `--bench`): a small smoke run then.
    let full = std::env::args().any(|a| a == "--bench");
    let counts: Vec<usize> = std::env::var("TESSERA_STORE_KEY_N")
        .unwrap_or_else(|_| if full { "1000,10000" } else { "100" }.into())
        .split(',')
        .map(|n| n.trim().parse().unwrap())
        .collect();
    let org = TestOrg::at(NOW);
    println!("| measurement | value |");
    println!("|---|---|");
    for n in counts {
        for batch in [256, 32] {
            let (records, took) = rotation(&org, n, batch);
            println!(
                "| rotate a {n}-credential store ({records} records, batch {batch}, no pause) | {:.0} ms, {:.0} records/s |",
                took.as_secs_f64() * 1e3,
                records as f64 / took.as_secs_f64()
            );
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let file_cfg = cfg(dir.path(), 256);
    fill(&file_cfg, &org, 10);
    println!(
        "| open the store at start, file sealer (median of 20) | {:.2} ms |",
        open_time(&file_cfg, 20).as_secs_f64() * 1e3
    );
    #[cfg(feature = "tpm")]
    {
        let tpm = swtpm::Swtpm::start();
        for pcrs in [vec![], vec![0u8, 2, 4, 7]] {
            let dir = tempfile::tempdir().unwrap();
            let mut cfg = cfg(dir.path(), 256);
            cfg.sealer.backend = SealerBackend::Tpm;
            cfg.sealer.tpm.tcti = tpm.tcti();
            cfg.sealer.tpm.pcrs.clone_from(&pcrs);
            fill(&cfg, &org, 10);
            println!(
                "| open the store at start, TPM sealer on swtpm, PCRs {pcrs:?} (median of 20) | {:.2} ms |",
                open_time(&cfg, 20).as_secs_f64() * 1e3
            );
        }
    }
}
