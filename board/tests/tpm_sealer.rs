//! The TPM backend on a real TPM 2.0 simulator (swtpm): restarts, PCR policy, persistent primary, owner auth,
//! and the typed errors an operator sees.
#![cfg(feature = "tpm")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/swtpm.rs"]
mod swtpm;
#[path = "support/tpm_owner.rs"]
mod tpm_owner;

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::str::FromStr as _;
use std::sync::{Arc, Mutex};

use swtpm::Swtpm;
use tessera_board::{tpm_sealer, PcrBank, SealError, SealedKey, Sealer, TpmConfig, TPM_BUILT};
use tessera_proto::secret::SecretBytes;
use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::constants::CapabilityType;
use tss_esapi::handles::{AuthHandle, PcrHandle};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{
    Auth, CapabilityData, Digest, DigestValues, EccPoint, KeyedHashScheme, PublicBuilder,
    PublicKeyedHashParameters, SensitiveData,
};
use tss_esapi::{Context, TctiNameConf};

const PERSISTENT: u32 = 0x8100_0001;

fn key() -> SecretBytes {
    SecretBytes::new((100u8..132).collect())
}

fn cfg(tpm: &Swtpm) -> TpmConfig {
    TpmConfig {
        tcti: tpm.tcti(),
        ..TpmConfig::default()
    }
}

fn sealer(cfg: &TpmConfig) -> Box<dyn Sealer> {
    tpm_sealer(cfg).unwrap()
}

/// A tss-esapi context on the simulator, authorising with password sessions (the test plays the TPM owner).
fn ctx(tpm: &Swtpm) -> Context {
    tpm_owner::owner_context(&tpm.tcti())
}

fn extend(tpm: &Swtpm, pcr: PcrHandle, bank: HashingAlgorithm, len: usize) {
    let mut values = DigestValues::new();
    values.set(bank, Digest::try_from(vec![0x5a; len]).unwrap());
    ctx(tpm).pcr_extend(pcr, values).unwrap();
}

fn extend_sha256(tpm: &Swtpm, pcr: PcrHandle) {
    extend(tpm, pcr, HashingAlgorithm::Sha256, 32);
}

/// Transient objects and loaded sessions in the TPM (a simulator has no resource manager: leaks would show).
fn loaded(tpm: &Swtpm) -> usize {
    let mut ctx = ctx(tpm);
    [
        tss_esapi::constants::tss::TPM2_TRANSIENT_FIRST,
        tss_esapi::constants::tss::TPM2_LOADED_SESSION_FIRST,
    ]
    .into_iter()
    .map(|first| {
        match ctx
            .execute_without_session(|c| c.get_capability(CapabilityType::Handles, first, 64))
            .unwrap()
            .0
        {
            CapabilityData::Handles(list) => list.into_inner().len(),
            other => panic!("{other:?}"),
        }
    })
    .sum()
}

fn make_persistent_primary(tpm: &Swtpm, handle: u32) {
    // A unique value unlike the sealer's template: a different key from the template primary.
    tpm_owner::make_persistent_primary(
        &tpm.tcti(),
        handle,
        EccPoint::new(
            vec![7; 32].try_into().unwrap(),
            vec![7; 32].try_into().unwrap(),
        ),
    );
}

#[test]
fn built_with_tpm() {
    const { assert!(TPM_BUILT) };
}

#[test]
fn sealed_key_survives_a_restart() {
    let mut tpm = Swtpm::start();
    let sealed = sealer(&cfg(&tpm)).seal(&key()).unwrap();
    tpm.restart();
    let after = sealer(&cfg(&tpm));
    assert_eq!(after.backend(), "tpm");
    assert!(after.unseal(&sealed).unwrap().ct_eq(&key()));
    after.destroy().unwrap();
    after.destroy().unwrap();
    assert_eq!(loaded(&tpm), 0, "seal and unseal leave nothing loaded");
}

#[test]
fn pcr_policy_names_the_changed_pcr() {
    let mut tpm = Swtpm::start();
    let mut c = cfg(&tpm);
    c.pcrs = vec![16];
    let sealed = sealer(&c).seal(&key()).unwrap();
    assert!(sealer(&c).unseal(&sealed).unwrap().ct_eq(&key()));
    // An unrelated PCR changes: still unseals.
    extend_sha256(&tpm, PcrHandle::Pcr23);
    assert!(sealer(&c).unseal(&sealed).unwrap().ct_eq(&key()));
    // The bound PCR changes: refused, naming it.
    extend_sha256(&tpm, PcrHandle::Pcr16);
    match sealer(&c).unseal(&sealed) {
        Err(SealError::PcrMismatch { bank, pcrs }) => {
            assert_eq!(bank, "sha256");
            assert_eq!(pcrs, vec![16]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(loaded(&tpm), 0, "a failed unseal leaves nothing loaded");
    // A power cycle resets PCR 16 to its sealed value.
    tpm.restart();
    c.tcti = tpm.tcti();
    assert!(sealer(&c).unseal(&sealed).unwrap().ct_eq(&key()));
}

#[test]
fn only_the_changed_pcrs_are_named() {
    let tpm = Swtpm::start();
    let mut c = cfg(&tpm);
    c.pcrs = vec![23, 0, 16, 7];
    let sealed = sealer(&c).seal(&key()).unwrap();
    extend_sha256(&tpm, PcrHandle::Pcr23);
    extend_sha256(&tpm, PcrHandle::Pcr16);
    match sealer(&c).unseal(&sealed) {
        Err(SealError::PcrMismatch { pcrs, .. }) => assert_eq!(pcrs, vec![16, 23]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn other_banks() {
    let tpm = Swtpm::start();
    for (bank, alg, len) in [
        (PcrBank::Sha1, HashingAlgorithm::Sha1, 20),
        (PcrBank::Sha384, HashingAlgorithm::Sha384, 48),
    ] {
        let mut c = cfg(&tpm);
        c.pcrs = vec![16];
        c.pcr_bank = bank;
        let sealed = sealer(&c).seal(&key()).unwrap();
        assert!(sealer(&c).unseal(&sealed).unwrap().ct_eq(&key()));
        extend(&tpm, PcrHandle::Pcr16, alg, len);
        match sealer(&c).unseal(&sealed) {
            Err(SealError::PcrMismatch { bank: b, pcrs }) => {
                assert_eq!((b.as_str(), pcrs), (bank.name(), vec![16]));
            }
            other => panic!("{bank}: {other:?}"),
        }
        ctx(&tpm).pcr_reset(PcrHandle::Pcr16).unwrap();
    }
}

#[test]
fn every_altered_byte_of_a_pcr_bound_blob_fails() {
    let tpm = Swtpm::start();
    let mut c = cfg(&tpm);
    c.pcrs = vec![0, 16];
    let bound = sealer(&c);
    let sealed = bound.seal(&key()).unwrap();
    for i in 0..sealed.0.len() {
        let mut bad = sealed.0.clone();
        bad[i] ^= 0x01;
        assert!(
            matches!(bound.unseal(&SealedKey(bad)), Err(SealError::Unseal("tpm"))),
            "byte {i}"
        );
    }
    // And it is not the PCR-free blob format.
    let other = Swtpm::start();
    let mut c2 = cfg(&other);
    c2.pcrs = vec![0, 16];
    assert!(matches!(
        tpm_sealer(&c2).unwrap().unseal(&sealed),
        Err(SealError::Unseal("tpm"))
    ));
    assert!(bound.unseal(&sealed).unwrap().ct_eq(&key()));
    assert_eq!(loaded(&tpm), 0);
}

#[test]
fn persistent_primary() {
    let tpm = Swtpm::start();
    make_persistent_primary(&tpm, PERSISTENT);
    let mut c = cfg(&tpm);
    c.primary_handle = Some(PERSISTENT);
    c.pcrs = vec![16];
    let on_persistent = sealer(&c);
    let sealed = on_persistent.seal(&key()).unwrap();
    assert!(on_persistent.unseal(&sealed).unwrap().ct_eq(&key()));
    for i in 0..sealed.0.len() {
        let mut bad = sealed.0.clone();
        bad[i] ^= 0x01;
        assert!(
            matches!(
                on_persistent.unseal(&SealedKey(bad)),
                Err(SealError::Unseal("tpm"))
            ),
            "byte {i}"
        );
    }
    // Blobs do not cross primaries (the blob names its primary; the object is bound to it anyway).
    let on_template = sealer(&cfg(&tpm));
    assert!(matches!(
        on_template.unseal(&sealed),
        Err(SealError::Unseal("tpm"))
    ));
    let template_blob = on_template.seal(&key()).unwrap();
    assert!(matches!(
        on_persistent.unseal(&template_blob),
        Err(SealError::Unseal("tpm"))
    ));
    assert_eq!(
        loaded(&tpm),
        0,
        "the persistent primary is not flushed, nothing else is left"
    );
}

#[test]
fn missing_persistent_primary() {
    let tpm = Swtpm::start();
    let mut c = cfg(&tpm);
    c.primary_handle = Some(0x8100_0002);
    match tpm_sealer(&c) {
        Err(
            e @ SealError::TpmObjectMissing {
                handle: 0x8100_0002,
            },
        ) => {
            assert!(e.to_string().contains("tpm2_evictcontrol"), "{e}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn owner_auth() {
    let tpm = Swtpm::start();
    let dir = tempfile::tempdir().unwrap();
    let right = dir.path().join("owner.auth");
    let wrong = dir.path().join("wrong.auth");
    std::fs::write(&right, b"s3cret owner\n").unwrap();
    std::fs::write(&wrong, b"not it\n").unwrap();
    let mode = |p: &std::path::Path, m: u32| {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(m)).unwrap();
    };
    mode(&wrong, 0o600);
    // An auth file others can read is refused before the TPM is asked anything.
    mode(&right, 0o644);
    let mut c = cfg(&tpm);
    c.owner_auth_file = Some(right.clone());
    match tpm_sealer(&c) {
        Err(e @ SealError::TpmConfig(_)) => assert!(e.to_string().contains("0644"), "{e}"),
        other => panic!("{other:?}"),
    }
    mode(&right, 0o640);
    ctx(&tpm)
        .hierarchy_change_auth(
            AuthHandle::Owner,
            Auth::try_from(b"s3cret owner".to_vec()).unwrap(),
        )
        .unwrap();

    c.owner_auth_file = Some(right);
    let good = sealer(&c);
    let sealed = good.seal(&key()).unwrap();
    assert!(good.unseal(&sealed).unwrap().ct_eq(&key()));
    assert!(!format!("{good:?}").contains("s3cret"));

    for file in [Some(wrong), None] {
        c.owner_auth_file = file;
        let bad = sealer(&c);
        match bad.seal(&key()) {
            Err(e @ SealError::TpmAuth) => assert!(e.to_string().contains("owner_auth_file")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(bad.unseal(&sealed), Err(SealError::TpmAuth)));
    }
    c.owner_auth_file = Some(dir.path().join("absent"));
    match tpm_sealer(&c) {
        Err(e @ SealError::TpmConfig(_)) => {
            assert!(e.to_string().contains("owner_auth_file"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(loaded(&tpm), 0);
}

#[test]
fn unreachable_tpm() {
    let c = TpmConfig {
        tcti: swtpm::closed_tcti(),
        ..TpmConfig::default()
    };
    match tpm_sealer(&c) {
        Err(e @ SealError::NoTpm { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("group tss") && msg.contains(&c.tcti), "{msg}");
        }
        other => panic!("{other:?}"),
    }
    let c = TpmConfig {
        tcti: "device:/nonexistent/tpmrm9".to_owned(),
        ..TpmConfig::default()
    };
    assert!(matches!(tpm_sealer(&c), Err(SealError::NoTpm { .. })));
}

#[test]
fn bad_config() {
    for c in [
        TpmConfig {
            pcrs: vec![24],
            ..TpmConfig::default()
        },
        TpmConfig {
            pcrs: vec![3, 3],
            ..TpmConfig::default()
        },
        TpmConfig {
            tcti: "carrier-pigeon".to_owned(),
            ..TpmConfig::default()
        },
        TpmConfig {
            tcti: "swtpm:port=notanumber".to_owned(),
            ..TpmConfig::default()
        },
        TpmConfig {
            primary_handle: Some(1),
            ..TpmConfig::default()
        },
    ] {
        assert!(
            matches!(tpm_sealer(&c), Err(SealError::TpmConfig(_))),
            "{c:?}"
        );
    }
}

/// Everything that crosses the "bus" between a client and the simulator, one log per direction.
#[derive(Debug, Default)]
struct Wire {
    to_tpm: Mutex<Vec<u8>>,
    from_tpm: Mutex<Vec<u8>>,
}

impl Wire {
    fn carries(&self, secret: &[u8]) -> bool {
        [&self.to_tpm, &self.from_tpm].iter().any(|log| {
            log.lock()
                .unwrap()
                .windows(secret.len())
                .any(|w| w == secret)
        })
    }
}

/// A recording TCP proxy in front of the simulator's command and control ports; returns its TCTI.
fn tap(tpm: &Swtpm, wire: &Arc<Wire>) -> String {
    let port = swtpm::free_port_pair();
    for offset in [0, 1] {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port + offset)).unwrap();
        let target = tpm.port() + offset;
        let wire = Arc::clone(wire);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let server = TcpStream::connect((Ipv4Addr::LOCALHOST, target)).unwrap();
                pump(
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    &wire,
                    true,
                );
                pump(server, client, &wire, false);
            }
        });
    }
    format!("swtpm:host=127.0.0.1,port={port}")
}

fn pump(mut from: TcpStream, mut to: TcpStream, wire: &Arc<Wire>, to_tpm: bool) {
    let wire = Arc::clone(wire);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || to.write_all(&buf[..n]).is_err() {
                break;
            }
            let log = if to_tpm { &wire.to_tpm } else { &wire.from_tpm };
            log.lock().unwrap().extend_from_slice(&buf[..n]);
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

#[test]
fn the_key_never_crosses_the_bus_in_the_clear() {
    let tpm = Swtpm::start();
    let plain = key().expose(<[u8]>::to_vec);

    // Control: the tap sees a key sealed the naive way (password session, no parameter encryption).
    let naive = Arc::new(Wire::default());
    {
        let mut ctx = Context::new(TctiNameConf::from_str(&tap(&tpm, &naive)).unwrap()).unwrap();
        ctx.set_sessions((Some(AuthSession::Password), None, None));
        let primary = ctx
            .create_primary(
                Hierarchy::Owner,
                tpm_owner::primary_public(EccPoint::default()),
                None,
                None,
                None,
                None,
            )
            .unwrap()
            .key_handle;
        let public = PublicBuilder::new()
            .with_public_algorithm(PublicAlgorithm::KeyedHash)
            .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
            .with_object_attributes(
                ObjectAttributesBuilder::new()
                    .with_fixed_tpm(true)
                    .with_fixed_parent(true)
                    .with_user_with_auth(true)
                    .build()
                    .unwrap(),
            )
            .with_keyed_hash_parameters(PublicKeyedHashParameters::new(KeyedHashScheme::Null))
            .with_keyed_hash_unique_identifier(Digest::default())
            .build()
            .unwrap();
        let sensitive = SensitiveData::try_from(plain.clone()).unwrap();
        ctx.create(primary, public, None, Some(sensitive), None, None)
            .unwrap();
        ctx.flush_context(primary.into()).unwrap();
    }
    assert!(naive.carries(&plain), "the tap works");

    // The sealer: seal and unseal, with and without a PCR policy, over the tap.
    let wire = Arc::new(Wire::default());
    for pcrs in [vec![], vec![16]] {
        let c = TpmConfig {
            tcti: tap(&tpm, &wire),
            pcrs,
            ..TpmConfig::default()
        };
        let s = sealer(&c);
        let sealed = s.seal(&key()).unwrap();
        assert!(s.unseal(&sealed).unwrap().ct_eq(&key()));
    }
    assert!(!wire.to_tpm.lock().unwrap().is_empty() && !wire.from_tpm.lock().unwrap().is_empty());
    assert!(
        !wire.carries(&plain),
        "the store key crossed the bus in the clear"
    );
}
