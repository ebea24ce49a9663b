//! The verifying side: the pinned org CA and the certificate checks every agent and the relay run.

use x509_parser::certificate::X509Certificate;
use x509_parser::oid_registry::{
    Oid, OID_SIG_ECDSA_WITH_SHA256, OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER,
    OID_X509_EXT_BASIC_CONSTRAINTS, OID_X509_EXT_EXTENDED_KEY_USAGE, OID_X509_EXT_KEY_USAGE,
    OID_X509_EXT_SUBJECT_KEY_IDENTIFIER,
};

use super::{
    CertError, CertSerial, IdentityPublicKey, AGENT_OU, OPERATOR_OU, SERVICE_OU, WRAP_KEY_OID,
};
use crate::envelope::WrapPublicKey;
use crate::ids::{AgentId, OperatorId};
use crate::statement::RevocationList;

/// The org CA certificate an agent pinned at enrolment: the root of trust.
#[derive(Clone, PartialEq, Eq)]
pub struct PinnedCa {
    der: Vec<u8>,
    subject_raw: Vec<u8>,
    public: IdentityPublicKey,
    org_name: String,
    not_before: i64,
    not_after: i64,
}

impl std::fmt::Debug for PinnedCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinnedCa")
            .field("org", &self.org_name)
            .field("key", &self.public)
            .finish_non_exhaustive()
    }
}

/// A verified agent certificate.
#[derive(Clone, Debug)]
pub struct AgentCertificate {
    /// The agent id (CN).
    pub agent_id: AgentId,
    /// Serial number.
    pub serial: CertSerial,
    /// P-256 identity key.
    pub identity: IdentityPublicKey,
    /// RSA wrap key.
    pub wrap: WrapPublicKey,
    /// Validity start, unix seconds.
    pub not_before: i64,
    /// Validity end, unix seconds.
    pub not_after: i64,
    /// The certificate, DER.
    pub der: Vec<u8>,
}

/// A verified operator certificate.
#[derive(Clone, Debug)]
pub struct OperatorCertificate {
    /// The operator id (CN).
    pub operator_id: OperatorId,
    /// Serial number.
    pub serial: CertSerial,
    /// P-256 identity key (verifies the operator's statements).
    pub identity: IdentityPublicKey,
    /// Validity start, unix seconds.
    pub not_before: i64,
    /// Validity end, unix seconds.
    pub not_after: i64,
    /// The certificate, DER.
    pub der: Vec<u8>,
}

/// The fields every Tessera certificate has, after the signature and structure checks.
struct Checked {
    cn: String,
    serial: CertSerial,
    identity: IdentityPublicKey,
    not_before: i64,
    not_after: i64,
    wrap_spki: Option<Vec<u8>>,
}

impl PinnedCa {
    /// Parses and checks a CA certificate: self-signed by its own P-256 key, with `CA:TRUE`.
    pub fn from_der(der: &[u8]) -> Result<Self, CertError> {
        let cert = parse(der)?;
        let public = IdentityPublicKey::from_spki_der(cert.public_key().raw)?;
        if cert.issuer().as_raw() != cert.subject().as_raw() {
            return Err(CertError::Malformed("CA certificate is not self-issued"));
        }
        check_signature(&cert, &public)?;
        let is_ca = cert
            .basic_constraints()
            .ok()
            .flatten()
            .is_some_and(|bc| bc.value.ca);
        if !is_ca {
            return Err(CertError::Malformed(
                "CA certificate lacks basicConstraints CA:TRUE",
            ));
        }
        let org_name = cert
            .subject()
            .iter_organization()
            .next()
            .and_then(|o| o.as_str().ok())
            .unwrap_or_default()
            .to_owned();
        Ok(Self {
            der: der.to_vec(),
            subject_raw: cert.subject().as_raw().to_vec(),
            public,
            org_name,
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
        })
    }

    /// The CA certificate, DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The CA's public key.
    pub fn public_key(&self) -> &IdentityPublicKey {
        &self.public
    }

    /// The organisation name in the CA's subject.
    pub fn org_name(&self) -> &str {
        &self.org_name
    }

    /// Verifies an agent certificate at `now` (unix seconds) against `revoked`.
    pub fn verify_agent(
        &self,
        der: &[u8],
        now: i64,
        revoked: &RevocationList,
    ) -> Result<AgentCertificate, CertError> {
        let c = self.check(der, AGENT_OU, Some(now), revoked)?;
        let agent_id = AgentId::new(c.cn).map_err(|_| CertError::Malformed("agent id in CN"))?;
        let wrap_spki = c
            .wrap_spki
            .ok_or(CertError::Malformed("agent certificate has no wrap key"))?;
        let wrap = WrapPublicKey::from_spki_der(&wrap_spki)
            .map_err(|_| CertError::Malformed("wrap key is not an RSA 2048..4096 key"))?;
        Ok(AgentCertificate {
            agent_id,
            serial: c.serial,
            identity: c.identity,
            wrap,
            not_before: c.not_before,
            not_after: c.not_after,
            der: der.to_vec(),
        })
    }

    /// Verifies a service certificate (broker, relay MQTT identity, relay admin API) valid at `now`, not revoked:
    /// its service name (CN).
    pub fn verify_service(
        &self,
        der: &[u8],
        now: i64,
        revoked: &RevocationList,
    ) -> Result<String, CertError> {
        self.check(der, SERVICE_OU, Some(now), revoked)
            .map(|c| c.cn)
    }

    /// Verifies an operator certificate: valid at `at` (unix seconds; for a statement, its signing time) and not
    /// revoked now.
    pub fn verify_operator(
        &self,
        der: &[u8],
        at: i64,
        revoked: &RevocationList,
    ) -> Result<OperatorCertificate, CertError> {
        let c = self.check(der, OPERATOR_OU, Some(at), revoked)?;
        let operator_id =
            OperatorId::new(c.cn).map_err(|_| CertError::Malformed("operator id in CN"))?;
        Ok(OperatorCertificate {
            operator_id,
            serial: c.serial,
            identity: c.identity,
            not_before: c.not_before,
            not_after: c.not_after,
            der: der.to_vec(),
        })
    }

    fn check(
        &self,
        der: &[u8],
        role: &'static str,
        at: Option<i64>,
        revoked: &RevocationList,
    ) -> Result<Checked, CertError> {
        let cert = parse(der)?;
        if cert.issuer().as_raw() != self.subject_raw.as_slice() {
            return Err(CertError::UntrustedIssuer);
        }
        check_signature(&cert, &self.public)?;
        let not_before = cert.validity().not_before.timestamp();
        let not_after = cert.validity().not_after.timestamp();
        if let Some(now) = at {
            let ca_ok = self.not_before <= now && now <= self.not_after;
            if !(ca_ok && not_before <= now && now <= not_after) {
                return Err(CertError::Expired {
                    not_before,
                    not_after,
                    now,
                });
            }
        }
        let serial = CertSerial::from_bytes(cert.raw_serial());
        if revoked.is_revoked(&serial) {
            return Err(CertError::Revoked(serial));
        }
        if cert
            .basic_constraints()
            .ok()
            .flatten()
            .is_some_and(|bc| bc.value.ca)
        {
            return Err(CertError::WrongRole { expected: role });
        }
        let ou = single_attr(cert.subject().iter_organizational_unit())?;
        if ou != role {
            return Err(CertError::WrongRole { expected: role });
        }
        let cn = single_attr(cert.subject().iter_common_name())?;
        let identity = IdentityPublicKey::from_spki_der(cert.public_key().raw)?;
        let wrap_oid = Oid::from(WRAP_KEY_OID).map_err(|_| CertError::Internal("wrap key OID"))?;
        let mut wrap_spki = None;
        for ext in cert.extensions() {
            if ext.oid == wrap_oid {
                if wrap_spki.is_some() {
                    return Err(CertError::Malformed("duplicate wrap key extension"));
                }
                wrap_spki = Some(ext.value.to_vec());
            } else if ext.critical && !is_known_critical(&ext.oid) {
                return Err(CertError::Malformed("unknown critical extension"));
            }
        }
        Ok(Checked {
            cn,
            serial,
            identity,
            not_before,
            not_after,
            wrap_spki,
        })
    }
}

fn parse(der: &[u8]) -> Result<X509Certificate<'_>, CertError> {
    match x509_parser::parse_x509_certificate(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err(CertError::Malformed("trailing bytes after the certificate")),
        Err(_) => Err(CertError::Malformed("not a DER X.509 certificate")),
    }
}

fn check_signature(
    cert: &X509Certificate<'_>,
    issuer: &IdentityPublicKey,
) -> Result<(), CertError> {
    if cert.signature_algorithm.algorithm != OID_SIG_ECDSA_WITH_SHA256 {
        return Err(CertError::UnsupportedAlgorithm);
    }
    issuer
        .verify(cert.tbs_certificate.as_ref(), &cert.signature_value.data)
        .map_err(|_| CertError::UntrustedIssuer)
}

fn single_attr<'a>(
    mut values: impl Iterator<Item = &'a x509_parser::x509::AttributeTypeAndValue<'a>>,
) -> Result<String, CertError> {
    let first = values
        .next()
        .and_then(|v| v.as_str().ok())
        .ok_or(CertError::Malformed("missing subject attribute"))?;
    if values.next().is_some() {
        return Err(CertError::Malformed("repeated subject attribute"));
    }
    Ok(first.to_owned())
}

fn is_known_critical(oid: &Oid<'_>) -> bool {
    [
        OID_X509_EXT_BASIC_CONSTRAINTS,
        OID_X509_EXT_KEY_USAGE,
        OID_X509_EXT_EXTENDED_KEY_USAGE,
        OID_X509_EXT_SUBJECT_KEY_IDENTIFIER,
        OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER,
    ]
    .contains(oid)
}
