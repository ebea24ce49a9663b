//! The contract every `Sealer` backend meets. A new backend adds itself to `backends()`; with the `tpm` feature
//! the TPM backend runs on two independent swtpm simulators.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use tessera_board::{FileSealer, SealError, SealedKey, Sealer};
use tessera_proto::secret::SecretBytes;

#[cfg(feature = "tpm")]
#[path = "support/swtpm.rs"]
mod swtpm;

/// Two independent instances of each backend available here.
fn backends(dir: &std::path::Path) -> Vec<(Box<dyn Sealer>, Box<dyn Sealer>)> {
    #[allow(unused_mut)]
    let mut all: Vec<(Box<dyn Sealer>, Box<dyn Sealer>)> = vec![(
        Box::new(FileSealer::open_or_create(&dir.join("a.key")).unwrap()),
        Box::new(FileSealer::open_or_create(&dir.join("b.key")).unwrap()),
    )];
    #[cfg(feature = "tpm")]
    all.push((Box::new(OnSwtpm::start()), Box::new(OnSwtpm::start())));
    all
}

/// A TPM sealer together with the simulator it runs on (which lives as long as the sealer).
#[cfg(feature = "tpm")]
#[derive(Debug)]
struct OnSwtpm {
    sealer: Box<dyn Sealer>,
    _tpm: swtpm::Swtpm,
}

#[cfg(feature = "tpm")]
impl OnSwtpm {
    fn start() -> Self {
        let tpm = swtpm::Swtpm::start();
        let cfg = tessera_board::TpmConfig {
            tcti: tpm.tcti(),
            ..Default::default()
        };
        Self {
            sealer: tessera_board::tpm_sealer(&cfg).unwrap(),
            _tpm: tpm,
        }
    }
}

#[cfg(feature = "tpm")]
impl Sealer for OnSwtpm {
    fn backend(&self) -> &'static str {
        self.sealer.backend()
    }
    fn seal(&self, key: &SecretBytes) -> Result<SealedKey, SealError> {
        self.sealer.seal(key)
    }
    fn unseal(&self, sealed: &SealedKey) -> Result<SecretBytes, SealError> {
        self.sealer.unseal(sealed)
    }
    fn destroy(&self) -> Result<(), SealError> {
        self.sealer.destroy()
    }
}

fn key() -> SecretBytes {
    SecretBytes::new((0u8..32).collect())
}

#[test]
fn round_trip() {
    let dir = tempfile::tempdir().unwrap();
    for (a, _) in backends(dir.path()) {
        let sealed = a.seal(&key()).unwrap();
        assert!(a.unseal(&sealed).unwrap().ct_eq(&key()), "{}", a.backend());
        // Sealing is randomised: the same key never gives the same blob twice.
        assert_ne!(a.seal(&key()).unwrap(), sealed);
        // The blob does not contain the key.
        assert!(!sealed
            .0
            .windows(32)
            .any(|w| w == (0u8..32).collect::<Vec<_>>()));
    }
}

#[test]
fn every_altered_byte_fails() {
    let dir = tempfile::tempdir().unwrap();
    for (a, _) in backends(dir.path()) {
        let sealed = a.seal(&key()).unwrap();
        for i in 0..sealed.0.len() {
            let mut bad = sealed.0.clone();
            bad[i] ^= 0x01;
            assert!(
                matches!(a.unseal(&SealedKey(bad)), Err(SealError::Unseal(_))),
                "{} byte {i}",
                a.backend()
            );
        }
        assert!(a.unseal(&SealedKey(Vec::new())).is_err());
        assert!(a.unseal(&SealedKey(sealed.0[..10].to_vec())).is_err());
    }
}

#[test]
fn another_instance_cannot_unseal() {
    let dir = tempfile::tempdir().unwrap();
    for (a, b) in backends(dir.path()) {
        let sealed = a.seal(&key()).unwrap();
        assert!(matches!(b.unseal(&sealed), Err(SealError::Unseal(_))));
    }
}

#[test]
fn only_store_sized_keys_are_sealed() {
    let dir = tempfile::tempdir().unwrap();
    for (a, _) in backends(dir.path()) {
        assert!(matches!(
            a.seal(&SecretBytes::new(vec![0; 31])),
            Err(SealError::KeyLength)
        ));
    }
}
