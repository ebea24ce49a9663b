//! Reading certificates and keys from PEM (or bare DER): the one loader that agent, relay and operator share.

/// Why a PEM/DER file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PemError {
    /// Not PEM.
    #[error("not PEM: {0}")]
    NotPem(String),
    /// No block with the expected tag.
    #[error("no {0} in the file")]
    Missing(&'static str),
    /// A block with another tag where one was expected.
    #[error("expected a PKCS#8 PRIVATE KEY, found {0}")]
    WrongTag(String),
}

/// Every certificate in a PEM file, or the DER file itself.
pub fn all_certs(bytes: &[u8]) -> Result<Vec<Vec<u8>>, PemError> {
    if !bytes.starts_with(b"-----BEGIN") {
        return Ok(vec![bytes.to_vec()]);
    }
    let certs: Vec<Vec<u8>> = pem::parse_many(bytes)
        .map_err(|e| PemError::NotPem(e.to_string()))?
        .into_iter()
        .filter(|p| p.tag() == "CERTIFICATE")
        .map(pem::Pem::into_contents)
        .collect();
    if certs.is_empty() {
        return Err(PemError::Missing("CERTIFICATE"));
    }
    Ok(certs)
}

/// The first certificate of a PEM file, or the DER file itself.
pub fn first_cert(bytes: &[u8]) -> Result<Vec<u8>, PemError> {
    all_certs(bytes)?
        .into_iter()
        .next()
        .ok_or(PemError::Missing("CERTIFICATE"))
}

/// A PKCS#8 private key's DER from PEM or DER, wrapped so it is zeroized on drop.
pub fn pkcs8_key(bytes: &[u8]) -> Result<crate::secret::SecretBytes, PemError> {
    if !bytes.starts_with(b"-----BEGIN") {
        return Ok(crate::secret::SecretBytes::new(bytes.to_vec()));
    }
    let p = pem::parse(bytes).map_err(|e| PemError::NotPem(e.to_string()))?;
    if p.tag() != "PRIVATE KEY" {
        return Err(PemError::WrongTag(p.tag().to_owned()));
    }
    Ok(crate::secret::SecretBytes::new(p.into_contents()))
}
