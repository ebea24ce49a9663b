//! Shared fixtures of the fuzz targets: one fixed org CA, operator, agent and wrap key for every process.
//!
//! The key material is committed in `fuzz/fixtures/` (fuzz-only test keys, trusted by nothing) and loaded once per
//! process through a [`OnceLock`]. It is fixed, not generated per run, so that the committed seed inputs (signed
//! statements, certificates, envelopes) verify in every fuzzing process and the fuzzer starts past the signature
//! checks instead of spending its time on JSON errors. `examples/gen_corpus.rs` wrote the fixtures and writes the
//! seeds.
//!
//! A panic here is a broken fixture, not a finding: fixtures are checked once, at the first input.
#![forbid(unsafe_code)]
#![allow(clippy::expect_used, clippy::missing_panics_doc)]

use std::sync::OnceLock;

use tessera_proto::cert::{IdentityKey, OrgCa, PinnedCa};
use tessera_proto::envelope::{Envelope, WrapPrivateKey};
use tessera_proto::secret::SecretBytes;
use tessera_proto::statement::{RevocationList, Signed};

/// The fixed time of every check, unix seconds (2026-09-21); every fixture certificate is valid then.
pub const NOW: i64 = 1_790_000_000;
/// The fixture operator's id.
pub const OPERATOR_ID: &str = "fuzz-operator";
/// The fixture agent's id.
pub const AGENT_ID: &str = "fuzz-agent";
/// The plaintext sealed in `fixtures/envelope.json`.
pub const ENVELOPE_PLAINTEXT: &[u8] = br#"{"secret":"fuzz"}"#;

/// The fixture files, in the order `gen_corpus fixtures` writes them.
pub mod files {
    /// Org CA certificate, DER.
    pub const CA_CERT: &str = "ca.der";
    /// Org CA key, PKCS#8 DER.
    pub const CA_KEY: &str = "ca.key.der";
    /// Operator certificate, DER.
    pub const OPERATOR_CERT: &str = "operator.der";
    /// Operator identity key, PKCS#8 DER.
    pub const OPERATOR_KEY: &str = "operator.key.der";
    /// Agent certificate (with the wrap key below), DER.
    pub const AGENT_CERT: &str = "agent.der";
    /// The agent's RSA-2048 wrap key, PKCS#8 DER.
    pub const WRAP_KEY: &str = "wrap.key.der";
    /// A service certificate (must pass neither as agent nor as operator), DER.
    pub const SERVICE_CERT: &str = "service.der";
    /// [`super::ENVELOPE_PLAINTEXT`] sealed to the wrap key, JSON.
    pub const ENVELOPE: &str = "envelope.json";
}

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/", $name)).as_slice()
    };
}

/// Every fixed key and certificate.
pub struct Fixtures {
    /// The org CA, with its key (signs fuzzed certificate bodies and revocation lists).
    pub ca: OrgCa,
    /// The operator's identity key (signs fuzzed credential statements).
    pub operator_key: IdentityKey,
    /// The operator's certificate, DER.
    pub operator_cert: Vec<u8>,
    /// The agent's certificate, DER.
    pub agent_cert: Vec<u8>,
    /// A service certificate, DER.
    pub service_cert: Vec<u8>,
    /// The agent's wrap key (opens fuzzed envelopes).
    pub wrap: WrapPrivateKey,
    /// A valid envelope sealed to `wrap`, holding [`ENVELOPE_PLAINTEXT`].
    pub envelope: Envelope,
    /// A revocation list (serial 1) revoking the operator's and the agent's certificates.
    pub revoking: RevocationList,
}

impl std::fmt::Debug for Fixtures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixtures").finish_non_exhaustive()
    }
}

/// The fixtures, loaded and checked at the first call.
pub fn fixtures() -> &'static Fixtures {
    static FX: OnceLock<Fixtures> = OnceLock::new();
    FX.get_or_init(|| {
        let ca = OrgCa::from_parts(
            fixture!("ca.der"),
            &SecretBytes::copy_from(fixture!("ca.key.der")),
        )
        .expect("fixtures/ca.der and ca.key.der");
        let operator_key =
            IdentityKey::from_pkcs8_der(&SecretBytes::copy_from(fixture!("operator.key.der")))
                .expect("fixtures/operator.key.der");
        let wrap =
            WrapPrivateKey::from_pkcs8_der(&SecretBytes::copy_from(fixture!("wrap.key.der")))
                .expect("fixtures/wrap.key.der");
        let envelope: Envelope =
            serde_json::from_slice(fixture!("envelope.json")).expect("fixtures/envelope.json");
        let none = RevocationList::empty();
        let operator = ca
            .pinned()
            .verify_operator(fixture!("operator.der"), NOW, &none)
            .expect("fixtures/operator.der verifies");
        let agent = ca
            .pinned()
            .verify_agent(fixture!("agent.der"), NOW, &none)
            .expect("fixtures/agent.der verifies");
        assert!(
            operator.identity == *operator_key.public_key(),
            "operator.der certifies operator.key.der"
        );
        assert!(
            agent.wrap.spki_der() == wrap.public_key().spki_der(),
            "agent.der certifies wrap.key.der"
        );
        let revoking = RevocationList::new(1, NOW, [operator.serial, agent.serial]);
        Fixtures {
            ca,
            operator_key,
            operator_cert: fixture!("operator.der").to_vec(),
            agent_cert: fixture!("agent.der").to_vec(),
            service_cert: fixture!("service.der").to_vec(),
            wrap,
            envelope,
            revoking,
        }
    })
}

/// The pinned CA every verification runs against.
pub fn pinned() -> &'static PinnedCa {
    fixtures().ca.pinned()
}

/// A [`Signed`] with exactly these bytes, through its wire form (its fields are public, its constructor is
/// [`Signed::sign`], which canonicalises a typed body: here the payload is arbitrary bytes).
pub fn signed_raw<T>(payload: &[u8], signature: &[u8], signer_cert: &[u8]) -> Option<Signed<T>>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let json = serde_json::json!({
        "payload": tessera_proto::b64_encode(payload),
        "signature": tessera_proto::b64_encode(signature),
        "signer_cert": tessera_proto::b64_encode(signer_cert),
    });
    serde_json::from_value(json).ok()
}

/// A DER tag-length-value with a definite length.
pub fn der_tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = value.len();
    if len < 0x80 {
        out.push(u8::try_from(len).unwrap_or(0));
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        let significant = bytes.get(skip..).unwrap_or_default();
        out.push(0x80 | u8::try_from(significant.len()).unwrap_or(0));
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(value);
    out
}

/// DER of AlgorithmIdentifier ecdsa-with-SHA256 (1.2.840.10045.4.3.2), no parameters.
const ECDSA_WITH_SHA256: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
];

/// A certificate whose to-be-signed part is `tbs` (used as is, even if it is not DER), signed by `key` with
/// ECDSA P-256/SHA-256: how the fuzzer gets arbitrary certificate bodies past the CA signature check.
pub fn certificate_with_tbs(tbs: &[u8], key: &IdentityKey) -> Vec<u8> {
    let signature = key.sign(tbs);
    let mut bit_string = vec![0u8];
    bit_string.extend_from_slice(&signature);
    let mut body = tbs.to_vec();
    body.extend_from_slice(ECDSA_WITH_SHA256);
    body.extend_from_slice(&der_tlv(0x03, &bit_string));
    der_tlv(0x30, &body)
}

/// The first DER element inside the outer SEQUENCE of `cert`: a certificate's TBSCertificate bytes.
pub fn tbs_of(cert: &[u8]) -> Option<&[u8]> {
    let (_, inner) = split_tlv(cert)?;
    let (len, _) = split_tlv(inner)?;
    inner.get(..len)
}

/// (Length of the whole first element, its contents) of a DER element with a definite length.
fn split_tlv(der: &[u8]) -> Option<(usize, &[u8])> {
    let first = *der.get(1)?;
    let (header, len) = if first < 0x80 {
        (2, usize::from(first))
    } else {
        let n = usize::from(first & 0x7f);
        let mut len = 0usize;
        for b in der.get(2..2 + n)? {
            len = len.checked_mul(256)?.checked_add(usize::from(*b))?;
        }
        (2 + n, len)
    };
    let end = header.checked_add(len)?;
    Some((end, der.get(header..end)?))
}

/// Splits a fuzz input into its first byte (which mode of a target runs) and the rest.
pub fn mode(data: &[u8]) -> Option<(u8, &[u8])> {
    data.split_first().map(|(m, rest)| (*m, rest))
}
