//! Envelopes: the wire JSON parsed and opened with the fixed RSA wrap key (`tessera_proto::envelope::open`), then
//! the plaintext checked the way a target checks it (`SecretPayload::from_canonical`).
//!
//! The first input byte picks the mode (the rest is the input proper):
//! - 0: the rest is an envelope's JSON.
//! - 1: structured mutation of a valid envelope (`fixtures/envelope.json`): the next byte names a field
//!   (encrypted_key, iv, ciphertext, tag) and the rest is XORed into that field's decoded bytes (and appended
//!   where longer), then re-encoded.
//! - 2: as 1, but the rest replaces the field's base64 text.
//! - 3: the rest is a plaintext, sealed to the wrap key and opened.
//!
//! Checked beyond "no panic": a mutated envelope that opens holds the original plaintext (AES-GCM and OAEP
//! integrity), and seal then open returns the plaintext sealed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_fuzz::{fixtures, mode, ENVELOPE_PLAINTEXT};
use tessera_proto::envelope::{self, Envelope};
use tessera_proto::secret::{SecretBytes, SecretPayload, MAX_SECRET_BYTES};
use tessera_proto::{b64_decode, b64_encode};

fn open(env: &Envelope) -> Option<SecretBytes> {
    let plain = envelope::open(&fixtures().wrap, env).ok()?;
    let _ = SecretPayload::from_canonical(plain.clone());
    Some(plain)
}

fn field(env: &mut Envelope, which: u8) -> &mut String {
    match which % 4 {
        0 => &mut env.encrypted_key,
        1 => &mut env.iv,
        2 => &mut env.ciphertext,
        _ => &mut env.tag,
    }
}

fuzz_target!(|data: &[u8]| {
    let fx = fixtures();
    match mode(data) {
        Some((0, json)) => {
            if let Ok(env) = serde_json::from_slice::<Envelope>(json) {
                let _ = open(&env);
            }
        }
        Some((1, rest)) => {
            let Some((which, mask)) = mode(rest) else {
                return;
            };
            let mut env = fx.envelope.clone();
            let text = field(&mut env, which);
            let mut bytes = b64_decode(text).expect("the fixture envelope is base64");
            for (i, m) in mask.iter().enumerate() {
                match bytes.get_mut(i) {
                    Some(b) => *b ^= m,
                    None => bytes.push(*m),
                }
            }
            *text = b64_encode(&bytes);
            if let Some(plain) = open(&env) {
                plain.expose(|p| assert_eq!(p, ENVELOPE_PLAINTEXT, "an altered envelope opened"));
            }
        }
        Some((2, rest)) => {
            let Some((which, replacement)) = mode(rest) else {
                return;
            };
            let Ok(replacement) = std::str::from_utf8(replacement) else {
                return;
            };
            let mut env = fx.envelope.clone();
            replacement.clone_into(field(&mut env, which));
            if let Some(plain) = open(&env) {
                plain.expose(|p| assert_eq!(p, ENVELOPE_PLAINTEXT, "an altered envelope opened"));
            }
        }
        Some((3, plaintext)) => {
            let sealed = envelope::seal(fx.wrap.public_key(), &SecretBytes::copy_from(plaintext));
            match sealed {
                Ok(env) => {
                    let plain = open(&env).expect("a sealed envelope opens");
                    plain.expose(|p| assert_eq!(p, plaintext));
                }
                Err(_) => assert!(plaintext.len() > MAX_SECRET_BYTES),
            }
        }
        _ => {}
    }
});
