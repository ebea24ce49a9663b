//! How a credential's plaintext is handed to a process: a payload of the form `{"secret":"..."}` gives the string;
//! any other JSON document is given as its canonical JSON text.

use serde::Deserialize;
use tessera_proto::secret::SecretBytes;
use zeroize::Zeroizing;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretField {
    secret: String,
}

/// The text to inject or print.
pub fn secret_text(payload: &SecretBytes) -> Zeroizing<String> {
    payload.expose(|bytes| match serde_json::from_slice::<SecretField>(bytes) {
        Ok(f) => Zeroizing::new(f.secret),
        Err(_) => Zeroizing::new(String::from_utf8_lossy(bytes).into_owned()),
    })
}
