//! Interoperability with an independent implementation: Python's `cryptography` package
//! (`testdata/interop.py`: OAEP(MGF1(SHA256), SHA256, label None) and AESGCM).
//!
//! Needs `python3` with `cryptography` installed (`.ci/run` and `scripts/test` install it). Set `TESSERA_PYTHON`
//! to use another interpreter.

// Test helpers outside #[test] functions: a failed step must stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use tessera_proto::envelope::{self, Envelope, WrapPrivateKey};
use tessera_proto::secret::SecretBytes;

fn python() -> String {
    std::env::var("TESSERA_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/interop.py")
}

fn run(args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let mut child = Command::new(python())
        .arg(script())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 must be installed for the interop test");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "interop.py {args:?} failed (is the `cryptography` package installed?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn rust_opens_what_python_seals() {
    let key = WrapPrivateKey::generate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spki = dir.path().join("wrap.spki.der");
    std::fs::write(&spki, key.public_key().spki_der()).unwrap();
    let plaintext = r#"{"password":"p@ss wörd","user":"admin"}"#;
    let sealed = run(&["seal", spki.to_str().unwrap()], plaintext.as_bytes());
    let env: Envelope = serde_json::from_slice(&sealed).unwrap();
    let opened = envelope::open(&key, &env).unwrap();
    opened.expose(|p| assert_eq!(p, plaintext.as_bytes()));
}

#[test]
fn python_opens_what_rust_seals() {
    let key = WrapPrivateKey::generate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pkcs8 = dir.path().join("wrap.pkcs8.der");
    key.to_pkcs8_der()
        .expose(|d| std::fs::write(&pkcs8, d))
        .unwrap();
    let plaintext = br#"{"community":"s3cr3t-ro"}"#;
    let env = envelope::seal(key.public_key(), &SecretBytes::copy_from(plaintext)).unwrap();
    let opened = run(
        &["open", pkcs8.to_str().unwrap()],
        &serde_json::to_vec(&env).unwrap(),
    );
    assert_eq!(opened, plaintext);
}

#[test]
fn python_regenerates_the_published_commitment_vectors() {
    let fresh = run(&["vectors"], b"");
    let published = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/commitment_vectors.json"),
    )
    .unwrap();
    let fresh: serde_json::Value = serde_json::from_slice(&fresh).unwrap();
    let published: serde_json::Value = serde_json::from_slice(&published).unwrap();
    assert_eq!(
        fresh, published,
        "testdata/commitment_vectors.json is out of date with interop.py"
    );
}
