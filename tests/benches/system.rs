//! The design's system figures, measured on the real system: release binaries as processes on a real Mosquitto.
//!
//! `cargo bench -p tessera-system-tests --bench system` prints a table:
//! - import of N credentials to one agent (`tessera cred import`, sealed on the operator's side: batch envelopes
//!   when the run batches, one envelope per credential when it does not), until the agent holds them;
//! - backfill of N credentials to a fresh agent by peer rewrap, first start to `online` with all of them;
//! - relay CPU per rewrap (the relay process's user + system time over that backfill, divided by N);
//! - the agent's resident memory holding N credentials (with `MALLOC_ARENA_MAX=1`, as the shipped unit runs it);
//! - JIT repair, workload request to credential in hand (`tessera-agent get` of a missing credential), against a
//!   `get` of a held one (the cost of the process and the socket round trip alone).
//!
//! `TESSERA_BENCH_AGENT=target/appliance/tessera-agent` measures the backfilled agent as firmware ships it.
//!
//! Each backfill runs once per `TESSERA_BENCH_BATCH` size (comma-separated relay `engine.batch_size`, default
//! `0,64`: one credential per rewrap, as the first releases, and batches of 64; docs/protocol.md "Batched rewrap").
//! The RSA-2048 envelope open is measured in the same run (in this process, median of 200), and each backfill and
//! relay CPU figure is also given as a ratio to it: absolute times differ about 3× between machines, ratios less.
//!
//! Sizes: `TESSERA_BENCH_BACKFILL` (comma-separated, default `1000`; `1000,10000` for the design's second figure),
//! `TESSERA_BENCH_JIT` (default 200; 0 skips it). `TESSERA_BENCH_REPLICAS` (comma-separated counts, say `1,3`)
//! runs each backfill again with that many relay replicas on a PostgreSQL database of the bench's own (the machine's
//! server on 127.0.0.1:5432), the relays' CPU summed over the replicas. The relay's JIT rate limit is raised for the run (it would answer
//! `RATE_LIMITED` by design) and its reconciler slowed (so JIT repair is what delivers).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::cast_precision_loss,
    clippy::indexing_slicing
)]

use std::time::{Duration, Instant};

use tessera_system_tests::bins::bin_dir;
use tessera_system_tests::cluster::{wait_for, Cluster};

const POLICY: &str = "[policy.\"*\"]\nuids = [0]\n";

fn sizes() -> Vec<usize> {
    std::env::var("TESSERA_BENCH_BACKFILL")
        .unwrap_or_else(|_| "1000".into())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect()
}

/// User plus system CPU time of a process.
fn cpu_time(pid: u32) -> Duration {
    tessera_system_tests::process_stats::cpu_time(pid).unwrap()
}

/// The `pct`-th percentile (nearest rank) of sorted samples.
fn percentile(sorted: &[Duration], pct: usize) -> Duration {
    sorted[(sorted.len() - 1) * pct / 100]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

struct Row(String, String);

/// Relay replica counts on PostgreSQL, from `TESSERA_BENCH_REPLICAS`.
fn replica_counts() -> Vec<usize> {
    std::env::var("TESSERA_BENCH_REPLICAS")
        .unwrap_or_default()
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .filter(|n| *n > 0)
        .collect()
}

/// The relays' processes: the first, and the replicas beyond it.
fn relay_pids(c: &mut Cluster, replicas: usize) -> Vec<u32> {
    let mut pids = vec![c.relay_pid().unwrap()];
    for i in 0..replicas.saturating_sub(1) {
        pids.push(c.replica(i).unwrap().pid().unwrap());
    }
    pids
}

/// Relay batch sizes, from `TESSERA_BENCH_BATCH`.
fn batch_sizes() -> Vec<usize> {
    std::env::var("TESSERA_BENCH_BATCH")
        .unwrap_or_else(|_| "0,64".into())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect()
}

/// One RSA-2048 envelope open (OAEP unwrap and AES-GCM of a short payload), median of 200, in this process.
fn envelope_open() -> Duration {
    use tessera_proto::envelope::{open, seal, WrapPrivateKey};
    let key = WrapPrivateKey::generate().unwrap();
    let payload = tessera_proto::secret::SecretBytes::copy_from(br#"{"secret":"v00042"}"#);
    let envelopes: Vec<_> = (0..200)
        .map(|_| seal(key.public_key(), &payload).unwrap())
        .collect();
    let mut times: Vec<Duration> = envelopes
        .iter()
        .map(|e| {
            let t = Instant::now();
            open(&key, e).unwrap();
            t.elapsed()
        })
        .collect();
    times.sort();
    percentile(&times, 50)
}

/// The relay (or `replicas` of it on PostgreSQL) with `batch_size`, and a peer holding `n` credentials, imported
/// by the operator (`cred import`); with `batch_size` under 2 the peer does not batch either (an agent of the first
/// releases), so the import seals one envelope per credential rather than batch envelopes (docs/protocol.md,
/// "Operator batches"). Also returns how long the import took, until the peer held every credential.
fn seeded(
    root: &std::path::Path,
    n: usize,
    batch: usize,
    replicas: Option<usize>,
) -> (Cluster, tessera_system_tests::cluster::AgentProc, Duration) {
    let engine = format!("batch_size = {batch}");
    let mut c = match replicas {
        None => Cluster::new(root, &bin_dir(), &engine),
        Some(r) => Cluster::replicated(root, &bin_dir(), &engine, r),
    }
    .unwrap();
    c.start_relay().unwrap();
    for i in 0..replicas.unwrap_or(1).saturating_sub(1) {
        c.start_replica(i).unwrap();
    }
    let mut peer = c.agent("edge-1", POLICY).unwrap();
    if batch < 2 {
        peer.without_batch_rewrap().unwrap();
    }
    peer.start().unwrap();
    c.wait_state("edge-1", "online", Duration::from_secs(30))
        .unwrap();
    let creds: Vec<(String, String)> = (0..n)
        .map(|i| (format!("c{i:05}"), format!("v{i:05}")))
        .collect();
    let t = Instant::now();
    c.import_all(&creds).unwrap();
    eprintln!("imported {n} in {:?}", t.elapsed());
    let wait = Duration::from_secs(120 + u64::try_from(n).unwrap() / 20);
    wait_for("the peer to hold everything", wait, || {
        Ok(peer.names()?.len() == n)
    })
    .unwrap();
    let took = t.elapsed();
    (c, peer, took)
}

/// A backfill of `n` credentials with the relay's `batch_size`: on the embedded default (sled) when `replicas` is
/// `None`, else through that many relay replicas on PostgreSQL.
fn backfill(n: usize, batch: usize, replicas: Option<usize>, open: Duration, rows: &mut Vec<Row>) {
    let tmp = tempfile::tempdir().unwrap();
    let (mut c, _peer, imported) = seeded(tmp.path(), n, batch, replicas);
    let wait = Duration::from_secs(120 + u64::try_from(n).unwrap() / 20);
    // The existing lines (one credential per rewrap) keep their names; batched runs say so.
    let how = if batch >= 2 {
        format!(", batches of {batch}")
    } else {
        String::new()
    };
    let per_open =
        |d: Duration, times: usize| d.as_secs_f64() / (open.as_secs_f64() * times as f64);

    let relays = relay_pids(&mut c, replicas.unwrap_or(1));
    let relay_cpu = || relays.iter().map(|p| cpu_time(*p)).sum::<Duration>();
    let cpu0 = relay_cpu();
    // The agent measured: the workspace's release build, or the binary `TESSERA_BENCH_AGENT` names (the appliance
    // profile's, as firmware ships it: `cargo build --profile appliance -p tessera-agent`).
    let mut fresh = match std::env::var_os("TESSERA_BENCH_AGENT") {
        Some(bin) => c.agent_with_bin("edge-2", POLICY, std::path::Path::new(&bin)),
        None => c.agent("edge-2", POLICY),
    }
    .unwrap();
    let t = Instant::now();
    fresh.start_env(&[("MALLOC_ARENA_MAX", "1")]).unwrap();
    wait_for("the fresh agent online", wait, || {
        Ok(c.agent_state("edge-2")?.as_deref() == Some("online"))
    })
    .unwrap();
    let took = t.elapsed();
    let cpu = relay_cpu().saturating_sub(cpu0);
    assert_eq!(fresh.names().unwrap().len(), n, "everything arrived");
    std::thread::sleep(Duration::from_millis(500));
    if let Some(r) = replicas {
        rows.push(Row(
            format!("backfill of {n} through {r} relay replica(s) on PostgreSQL{how}"),
            format!(
                "{:.2} s ({:.2} × {n} envelope opens)",
                took.as_secs_f64(),
                per_open(took, n)
            ),
        ));
        rows.push(Row(
            format!(
                "relays' CPU per rewrap, {r} replica(s), PostgreSQL (its server's CPU not counted){how}"
            ),
            format!(
                "{:.0} µs ({:.2} × an envelope open)",
                cpu.as_secs_f64() * 1e6 / n as f64,
                per_open(cpu, n)
            ),
        ));
        return;
    }
    let rss = fresh.rss_kib().unwrap();
    let (anon, file) = rss_split_kib(fresh.pid().unwrap());
    rows.push(Row(
        format!(
            "import of {n} to one agent (`cred import`: {}), until it holds them",
            if batch >= 2 {
                "operator batch envelopes"
            } else {
                "one envelope per credential"
            }
        ),
        format!(
            "{:.2} s ({:.2} × {n} envelope opens)",
            imported.as_secs_f64(),
            per_open(imported, n)
        ),
    ));
    rows.push(Row(
        format!(
            "backfill of {n} to a fresh agent{how} (goal: 1,000 ≤ 2 s and ≤ 0.5 × 1,000 opens)"
        ),
        format!(
            "{:.2} s ({:.2} × {n} envelope opens)",
            took.as_secs_f64(),
            per_open(took, n)
        ),
    ));
    rows.push(Row(
        format!("relay CPU per rewrap over that backfill{how} (goal ≤ 100 µs and ≤ 0.1 × an open)"),
        format!(
            "{:.0} µs ({:.2} × an envelope open)",
            cpu.as_secs_f64() * 1e6 / n as f64,
            per_open(cpu, n)
        ),
    ));
    rows.push(Row(
        format!("agent RSS holding {n} credentials{how}, MALLOC_ARENA_MAX=1 (goal ≤ 16 MB for 1,000, ≤ 24 MB for 10,000)"),
        format!(
            "{:.1} MiB ({:.1} MB): {:.1} MiB heap and stacks, {:.1} MiB mapped files (the binary's pages)",
            rss as f64 / 1024.0,
            rss as f64 * 1.024 / 1000.0,
            anon as f64 / 1024.0,
            file as f64 / 1024.0
        ),
    ));
}

/// Resident anonymous and file-backed memory of a process, in kibibytes (`/proc/PID/status`).
fn rss_split_kib(pid: u32) -> (u64, u64) {
    use tessera_system_tests::process_stats::status_kib;
    let field = |name: &str| status_kib(pid, name).unwrap_or(0);
    (field("RssAnon:"), field("RssFile:") + field("RssShmem:"))
}

fn jit(count: usize, rows: &mut Vec<Row>) {
    let tmp = tempfile::tempdir().unwrap();
    let engine = format!(
        "reconcile_interval_ms = 3600000\njit_burst = {n}\njit_per_minute = {n}\nmissing_flood_threshold = {n}",
        n = count * 2
    );
    let mut c = Cluster::new(tmp.path(), &bin_dir(), &engine).unwrap();
    c.start_relay().unwrap();
    let wait = Duration::from_secs(120);
    let mut peer = c.agent("edge-1", POLICY).unwrap();
    peer.start().unwrap();
    c.wait_state("edge-1", "online", wait).unwrap();
    let creds: Vec<(String, String)> = (0..count)
        .map(|i| (format!("j{i:04}"), format!("v{i:04}")))
        .collect();
    c.import_all(&creds).unwrap();
    wait_for("the peer to hold everything", wait, || {
        Ok(peer.names()?.len() == count)
    })
    .unwrap();
    // The target joins while the peer is away: it lacks everything, and only JIT repair will deliver.
    peer.kill();
    c.wait_state("edge-1", "offline", wait).unwrap();
    let mut target = c.agent("edge-2", POLICY).unwrap();
    target.start().unwrap();
    c.wait_state("edge-2", "online", wait).unwrap();
    peer.start().unwrap();
    c.wait_state("edge-1", "online", wait).unwrap();

    let mut missing = Vec::with_capacity(count);
    for (name, value) in &creds {
        let t = Instant::now();
        let v = target.value(name).unwrap();
        missing.push(t.elapsed());
        assert_eq!(v.as_deref(), Some(value.as_str()), "JIT repair of {name}");
    }
    let mut held = Vec::with_capacity(count);
    for (name, _) in &creds {
        let t = Instant::now();
        assert!(target.value(name).unwrap().is_some());
        held.push(t.elapsed());
    }
    missing.sort();
    held.sort();
    rows.push(Row(
        format!(
            "JIT repair, `get` of a missing credential, p50 / p99 of {count} (goal p99 ≤ 20 ms)"
        ),
        format!(
            "{} / {}",
            ms(percentile(&missing, 50)),
            ms(percentile(&missing, 99))
        ),
    ));
    rows.push(Row(
        "`get` of a held credential (process start + local API), p50 / p99".into(),
        format!(
            "{} / {}",
            ms(percentile(&held, 50)),
            ms(percentile(&held, 99))
        ),
    ));
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument selects nothing here.
    let mut rows = Vec::new();
    let open = envelope_open();
    rows.push(Row(
        "RSA-2048 envelope open, in this process (median of 200): the ratios' unit".to_owned(),
        format!("{:.0} µs", open.as_secs_f64() * 1e6),
    ));
    for n in sizes() {
        for batch in batch_sizes() {
            backfill(n, batch, None, open, &mut rows);
            for r in replica_counts() {
                backfill(n, batch, Some(r), open, &mut rows);
            }
        }
    }
    let count = std::env::var("TESSERA_BENCH_JIT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    if count > 0 {
        jit(count, &mut rows);
    }
    let width = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
    println!(
        "\n{:<width$}  value",
        "figure (release binaries, real Mosquitto, this machine)"
    );
    for Row(k, v) in rows {
        println!("{k:<width$}  {v}");
    }
}
