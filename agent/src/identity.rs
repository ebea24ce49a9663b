//! The agent's own keys, certificate, pinned CA and revocation list, loaded from the store.

use tessera_proto::cert::{AgentCertificate, CertError, IdentityKey, PinnedCa};
use tessera_proto::envelope::{Envelope, EnvelopeError, KeyFingerprint, WrapPrivateKey};
use tessera_proto::ids::AgentId;
use tessera_proto::receipt::{Receipt, ReceiptBody, ReceiptError, ReceiptFact};
use tessera_proto::secret::SecretBytes;
use tessera_proto::statement::{RevocationList, Signed};

use crate::store::{SelfRecord, Store, StoreError};

/// Everything the agent is.
#[derive(Debug)]
pub struct AgentKeys {
    /// The agent id.
    pub id: AgentId,
    /// The P-256 identity key (TLS client key, statement signatures).
    pub identity: IdentityKey,
    /// The RSA wrap key envelopes are sealed to.
    pub wrap: WrapPrivateKey,
    /// The pinned org CA.
    pub ca: PinnedCa,
    /// The agent's certificate, verified against the CA and the keys.
    pub cert: AgentCertificate,
    /// The newest revocation list accepted.
    pub revocations: RevocationList,
    /// Wrap keys that open envelopes but are not announced: during a rotation's validation the green key, after it
    /// (until the old certificate is revoked or expires) the blue one.
    pub decrypt_only: Vec<WrapPrivateKey>,
}

/// Why the agent's identity could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// Enrolment has not been run.
    #[error("this agent is not enrolled (run `tessera-agent enroll`)")]
    NotEnrolled,
    /// Enrolment ran, but no certificate was installed.
    #[error("no certificate installed (run `tessera-agent install-cert FILE` with the certificate the operator signed)")]
    NoCertificate,
    /// A stored key or certificate does not parse, or the certificate no longer verifies.
    #[error("stored {what} is not valid: {source}")]
    Invalid {
        /// Which record.
        what: &'static str,
        /// Why.
        source: CertError,
    },
    /// The certificate does not carry this agent's keys.
    #[error("the installed certificate does not match this agent's keys")]
    KeyMismatch,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn text(store: &Store, item: SelfRecord) -> Result<Option<String>, IdentityError> {
    Ok(store
        .get_self(item)?
        .map(|b| b.expose(|b| String::from_utf8_lossy(b).into_owned())))
}

/// The revocation list held, or the empty one.
pub fn load_revocations(store: &Store, ca: &PinnedCa) -> Result<RevocationList, IdentityError> {
    let Some(bytes) = store.get_self(SelfRecord::Revocations)? else {
        return Ok(RevocationList::empty());
    };
    let signed: Option<Signed<RevocationList>> = bytes.expose(|b| serde_json::from_slice(b).ok());
    // A list stored by us was verified when accepted; verify again against the empty list to re-check signature.
    signed
        .and_then(|s| s.verify(ca, &RevocationList::empty()).ok())
        .ok_or(IdentityError::Invalid {
            what: "revocation list",
            source: CertError::Malformed("stored revocation list"),
        })
}

/// The pinned CA, identity and wrap keys (present after enrolment).
pub fn load_enrolled(
    store: &Store,
) -> Result<(AgentId, IdentityKey, WrapPrivateKey, PinnedCa), IdentityError> {
    let id = text(store, SelfRecord::AgentId)?.ok_or(IdentityError::NotEnrolled)?;
    let id = AgentId::new(id).map_err(|_| IdentityError::Invalid {
        what: "agent id",
        source: CertError::Malformed("agent id"),
    })?;
    let invalid = |what| move |source| IdentityError::Invalid { what, source };
    let identity = store
        .get_self(SelfRecord::IdentityKey)?
        .ok_or(IdentityError::NotEnrolled)?;
    let identity = IdentityKey::from_pkcs8_der(&identity).map_err(invalid("identity key"))?;
    let wrap = store
        .get_self(SelfRecord::WrapKey)?
        .ok_or(IdentityError::NotEnrolled)?;
    let wrap = WrapPrivateKey::from_pkcs8_der(&wrap).map_err(|_| IdentityError::Invalid {
        what: "wrap key",
        source: CertError::Malformed("wrap key"),
    })?;
    let ca = store
        .get_self(SelfRecord::OrgCa)?
        .ok_or(IdentityError::NotEnrolled)?;
    let ca = ca.expose(PinnedCa::from_der).map_err(invalid("org CA"))?;
    Ok((id, identity, wrap, ca))
}

/// Checks that `der` is a valid certificate for this agent's id and keys.
pub fn check_certificate(
    der: &[u8],
    id: &AgentId,
    identity: &IdentityKey,
    wrap: &WrapPrivateKey,
    ca: &PinnedCa,
    revocations: &RevocationList,
    now: i64,
) -> Result<AgentCertificate, IdentityError> {
    let cert = ca
        .verify_agent(der, now, revocations)
        .map_err(|source| IdentityError::Invalid {
            what: "certificate",
            source,
        })?;
    if cert.agent_id != *id
        || cert.identity.spki_der() != identity.public_key().spki_der()
        || cert.wrap.spki_der() != wrap.public_key().spki_der()
    {
        return Err(IdentityError::KeyMismatch);
    }
    Ok(cert)
}

impl AgentKeys {
    /// Loads and checks everything; the agent cannot run without it.
    pub fn load(store: &Store, now: i64) -> Result<Self, IdentityError> {
        let (id, identity, wrap, ca) = load_enrolled(store)?;
        let revocations = load_revocations(store, &ca)?;
        let der = store
            .get_self(SelfRecord::Certificate)?
            .ok_or(IdentityError::NoCertificate)?;
        let cert =
            der.expose(|d| check_certificate(d, &id, &identity, &wrap, &ca, &revocations, now))?;
        let decrypt_only =
            match store.get_self(SelfRecord::PreviousWrapKey)? {
                Some(der) => vec![WrapPrivateKey::from_pkcs8_der(&der).map_err(|_| {
                    IdentityError::Invalid {
                        what: "previous wrap key",
                        source: CertError::Malformed("wrap key"),
                    }
                })?],
                None => Vec::new(),
            };
        Ok(Self {
            id,
            identity,
            wrap,
            ca,
            cert,
            revocations,
            decrypt_only,
        })
    }

    /// Opens an envelope with the wrap key it names (`hint`: the fingerprint the relay says it is sealed to, untrusted
    /// and only an order), then with the others this agent holds. One RSA operation when the hint is right.
    pub fn open(
        &self,
        envelope: &Envelope,
        hint: Option<&KeyFingerprint>,
    ) -> Result<SecretBytes, EnvelopeError> {
        self.open_sized(envelope, hint, tessera_proto::secret::MAX_SECRET_BYTES)
    }

    /// Opens a batch envelope (docs/protocol.md, "Batched rewrap") as [`Self::open`] does, and reads its items.
    pub fn open_batch(
        &self,
        envelope: &Envelope,
        hint: Option<&KeyFingerprint>,
    ) -> Result<
        Vec<tessera_proto::envelope::batch::BatchItem>,
        tessera_proto::envelope::batch::BatchError,
    > {
        use tessera_proto::envelope::batch;
        batch::decode(&self.open_sized(envelope, hint, batch::MAX_BATCH_PLAINTEXT)?)
    }

    fn open_sized(
        &self,
        envelope: &Envelope,
        hint: Option<&KeyFingerprint>,
        max: usize,
    ) -> Result<SecretBytes, EnvelopeError> {
        let mut keys: Vec<&WrapPrivateKey> = std::iter::once(&self.wrap)
            .chain(self.decrypt_only.iter())
            .collect();
        if let Some(h) = hint {
            if let Some(i) = keys.iter().position(|k| k.public_key().fingerprint() == *h) {
                keys.swap(0, i);
            }
        }
        let mut last = EnvelopeError::KeyUnwrap;
        for key in keys {
            match tessera_proto::envelope::open_sized(key, envelope, max) {
                Ok(plain) => return Ok(plain),
                // Another key may open it; any other failure is the envelope's and the same for every key.
                Err(EnvelopeError::KeyUnwrap) => last = EnvelopeError::KeyUnwrap,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    /// A receipt of `fact` signed now by the identity key of the certificate in use.
    pub fn receipt(&self, fact: ReceiptFact, now: i64) -> Result<Receipt, ReceiptError> {
        let body = ReceiptBody::new(self.id.clone(), self.cert.serial.clone(), now, fact);
        Receipt::sign(&body, &self.identity)
    }
}
