//! Base64 (standard alphabet, padded), the encoding of every binary field on the wire.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// Encodes bytes as standard padded base64.
pub fn encode(bytes: impl AsRef<[u8]>) -> String {
    STANDARD.encode(bytes)
}

/// Decodes standard padded base64; `None` on any malformed input.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    STANDARD.decode(text).ok()
}

/// Serde adapter for `Vec<u8>` fields carried as base64 strings.
pub mod vec {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(&super::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(de)?;
        super::decode(&text).ok_or_else(|| serde::de::Error::custom("invalid base64"))
    }
}

/// Serde adapter for fixed-size byte arrays carried as base64 strings.
pub(crate) mod array {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer, const N: usize>(
        bytes: &[u8; N],
        ser: S,
    ) -> Result<S::Ok, S::Error> {
        ser.serialize_str(&super::encode(bytes))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        de: D,
    ) -> Result<[u8; N], D::Error> {
        let text = String::deserialize(de)?;
        let bytes =
            super::decode(&text).ok_or_else(|| serde::de::Error::custom("invalid base64"))?;
        <[u8; N]>::try_from(bytes.as_slice())
            .map_err(|_| serde::de::Error::custom(format_args!("expected {N} bytes")))
    }
}
