//! Median seal and unseal times of the TPM backend on a swtpm simulator it starts itself: template vs persistent
//! primary, with and without a PCR policy. A simulator measures the software path and the command count, not a
//! discrete TPM's speed (a real TPM is 10-100x slower per command, ECC primary creation above all).
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

#[path = "../tests/support/swtpm.rs"]
mod swtpm;
#[path = "../tests/support/tpm_owner.rs"]
mod tpm_owner;

use std::time::{Duration, Instant};

use tessera_board::{tpm_sealer, TpmConfig};
use tessera_proto::secret::SecretBytes;
use tss_esapi::structures::EccPoint;

const RUNS: usize = 20;
const PERSISTENT: u32 = 0x8100_0001;

fn persist_primary(tcti: &str) {
    tpm_owner::make_persistent_primary(tcti, PERSISTENT, EccPoint::default());
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort_unstable();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let tpm = swtpm::Swtpm::start();
    persist_primary(&tpm.tcti());
    let key = SecretBytes::new((0u8..32).collect());
    println!("TPM sealer on swtpm, median of {RUNS} runs (each opens its own TCTI connection)");
    println!("| primary    | PCR policy        | seal (ms) | unseal (ms) |");
    println!("|------------|-------------------|----------:|------------:|");
    for (primary_name, primary) in [("template", None), ("persistent", Some(PERSISTENT))] {
        for (pcr_name, pcrs) in [("none", vec![]), ("sha256 0,2,4,7", vec![0, 2, 4, 7])] {
            let cfg = TpmConfig {
                tcti: tpm.tcti(),
                primary_handle: primary,
                pcrs,
                ..TpmConfig::default()
            };
            let tpm_backend = tpm_sealer(&cfg).unwrap();
            let mut seal = Vec::with_capacity(RUNS);
            let mut unseal = Vec::with_capacity(RUNS);
            for _ in 0..RUNS {
                let t = Instant::now();
                let sealed = tpm_backend.seal(&key).unwrap();
                seal.push(t.elapsed());
                let t = Instant::now();
                let back = tpm_backend.unseal(&sealed).unwrap();
                unseal.push(t.elapsed());
                assert!(back.ct_eq(&key));
            }
            println!(
                "| {primary_name:<10} | {pcr_name:<17} | {:>9.2} | {:>11.2} |",
                ms(median(seal)),
                ms(median(unseal))
            );
        }
    }
}
