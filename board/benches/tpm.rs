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

use std::str::FromStr as _;
use std::time::{Duration, Instant};

use tessera_board::{tpm_sealer, TpmConfig};
use tessera_proto::secret::SecretBytes;
use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::handles::PersistentTpmHandle;
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::dynamic_handles::Persistent;
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::resource_handles::{Hierarchy, Provision};
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{
    EccPoint, PublicBuilder, PublicEccParametersBuilder, SymmetricDefinitionObject,
};
use tss_esapi::{Context, TctiNameConf};

const RUNS: usize = 20;
const PERSISTENT: u32 = 0x8100_0001;

fn persist_primary(tcti: &str) {
    let mut ctx = Context::new(TctiNameConf::from_str(tcti).unwrap()).unwrap();
    ctx.set_sessions((Some(AuthSession::Password), None, None));
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_restricted(true)
        .with_decrypt(true)
        .build()
        .unwrap();
    let public = PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_ecc_parameters(
            PublicEccParametersBuilder::new_restricted_decryption_key(
                SymmetricDefinitionObject::AES_128_CFB,
                EccCurve::NistP256,
            )
            .build()
            .unwrap(),
        )
        .with_ecc_unique_identifier(EccPoint::default())
        .build()
        .unwrap();
    let primary = ctx
        .create_primary(Hierarchy::Owner, public, None, None, None, None)
        .unwrap()
        .key_handle;
    ctx.evict_control(
        Provision::Owner,
        primary.into(),
        Persistent::Persistent(PersistentTpmHandle::new(PERSISTENT).unwrap()),
    )
    .unwrap();
    ctx.flush_context(primary.into()).unwrap();
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
