//! The workspace's binaries for system tests that run them as real processes: built once per test process with
//! `cargo build` (a no-op when they are fresh) and found in the target directory.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

static BUILT: OnceLock<PathBuf> = OnceLock::new();

/// The directory holding `tessera-agent`, `tessera-relay` and `tessera`, built for this test run's profile.
pub fn bin_dir() -> PathBuf {
    BUILT
        .get_or_init(|| {
            // tests/<crate>/target/<profile>/deps/<test-binary>: the profile directory is two levels up.
            let exe = std::env::current_exe().unwrap();
            let profile_dir = exe.parent().and_then(|d| d.parent()).unwrap().to_path_buf();
            let release = profile_dir.file_name().is_some_and(|n| n == "release");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut cmd = Command::new(cargo);
            cmd.args([
                "build",
                "-p",
                "tessera-agent",
                "-p",
                "tessera-relay",
                "-p",
                "tessera-operator",
                "--bins",
            ])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
            // The same features as this test run's agent, so the binary the tests run is the one cargo built for
            // them (and is not rebuilt back and forth).
            if cfg!(feature = "tpm") {
                cmd.args(["--features", "tessera-agent/tpm"]);
            }
            if release {
                cmd.arg("--release");
            }
            let status = cmd
                .status()
                .expect("cargo must be available to build the binaries");
            assert!(
                status.success(),
                "building tessera-agent, tessera-relay and tessera failed"
            );
            profile_dir
        })
        .clone()
}

/// The path of a workspace binary.
pub fn bin(name: &str) -> PathBuf {
    bin_dir().join(name)
}
