//! The issuing side of the org CA: generate it, and sign agent and operator certificates.
//!
//! This runs on an operator's workstation (`tessera ca ...`), never on the relay.

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
    SubjectPublicKeyInfo, PKCS_ECDSA_P256_SHA256,
};
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use time::OffsetDateTime;

use super::{
    AgentCertificate, CertError, EnrollmentRequest, IdentityKey, IdentityPublicKey, PinnedCa,
    RenewalRequest, AGENT_OU, OPERATOR_OU, SERVICE_OU, WRAP_KEY_OID,
};
use crate::envelope::WrapPublicKey;
use crate::ids::{AgentId, OperatorId};
use crate::random;
use crate::secret::SecretBytes;

/// A validity window, unix seconds, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// First second of validity.
    pub not_before: i64,
    /// Last second of validity.
    pub not_after: i64,
}

impl Validity {
    /// From `now` (backdated by five minutes for clock skew) for `days` days.
    pub fn days_from(now: i64, days: u32) -> Self {
        Self {
            not_before: now.saturating_sub(300),
            not_after: now.saturating_add(i64::from(days) * 86_400),
        }
    }
}

/// The org CA with its private key.
pub struct OrgCa {
    key: IdentityKey,
    cert_der: Vec<u8>,
    pinned: PinnedCa,
}

impl std::fmt::Debug for OrgCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrgCa")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl OrgCa {
    /// Generates a new CA key and its self-signed certificate.
    pub fn generate(org_name: &str, validity: Validity) -> Result<Self, CertError> {
        let key = IdentityKey::generate()?;
        let signer = rcgen_key(&key)?;
        let mut params = base_params(validity)?;
        params.distinguished_name = dn(
            &format!("{org_name} Tessera org CA"),
            "tessera-ca",
            org_name,
        );
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params
            .self_signed(&signer)
            .map_err(|_| CertError::Internal("self-signing the CA certificate"))?;
        Self::from_parts(cert.der(), &key.to_pkcs8_der()?)
    }

    /// Loads a CA from its certificate and PKCS#8 key, checking that they belong together.
    pub fn from_parts(cert_der: &[u8], key_pkcs8: &SecretBytes) -> Result<Self, CertError> {
        let key = IdentityKey::from_pkcs8_der(key_pkcs8)?;
        let pinned = PinnedCa::from_der(cert_der)?;
        if pinned.public_key() != key.public_key() {
            return Err(CertError::Malformed(
                "CA key does not match the CA certificate",
            ));
        }
        Ok(Self {
            key,
            cert_der: cert_der.to_vec(),
            pinned,
        })
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The CA as agents pin it.
    pub fn pinned(&self) -> &PinnedCa {
        &self.pinned
    }

    /// The CA key (signs revocation lists).
    pub fn key(&self) -> &IdentityKey {
        &self.key
    }

    /// Signs an agent certificate for a verified enrolment request.
    pub fn issue_agent(
        &self,
        request: &EnrollmentRequest,
        validity: Validity,
    ) -> Result<Vec<u8>, CertError> {
        let (identity, wrap) = request.verify()?;
        self.issue_agent_keys(&request.body.agent_id, &identity, &wrap, validity)
    }

    /// Signs the green certificate of a key rotation: `request` verified against `current`, the agent's
    /// certificate the caller trusts (the live one the CA's registry holds for the request's serial, verified
    /// against this CA). The new certificate names the same agent and carries the request's new keys.
    pub fn issue_renewal(
        &self,
        request: &RenewalRequest,
        current: &AgentCertificate,
        validity: Validity,
    ) -> Result<Vec<u8>, CertError> {
        let (identity, wrap) = request.verify(current)?;
        self.issue_agent_keys(&current.agent_id, &identity, &wrap, validity)
    }

    fn issue_agent_keys(
        &self,
        agent: &AgentId,
        identity: &IdentityPublicKey,
        wrap: &WrapPublicKey,
        validity: Validity,
    ) -> Result<Vec<u8>, CertError> {
        let mut params = base_params(validity)?;
        params.distinguished_name = dn(agent.as_str(), AGENT_OU, self.pinned.org_name());
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.custom_extensions = vec![CustomExtension::from_oid_content(
            WRAP_KEY_OID,
            wrap.spki_der().to_vec(),
        )];
        self.sign(&params, identity)
    }

    /// Signs an operator certificate.
    pub fn issue_operator(
        &self,
        operator: &OperatorId,
        identity: &IdentityPublicKey,
        validity: Validity,
    ) -> Result<Vec<u8>, CertError> {
        let mut params = base_params(validity)?;
        params.distinguished_name = dn(operator.as_str(), OPERATOR_OU, self.pinned.org_name());
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(&params, identity)
    }

    /// Signs a service certificate (the broker's or a relay's TLS identity): `CN=<name>, OU=tessera-service`,
    /// with DNS and IP subject alternative names, EKU serverAuth and clientAuth.
    pub fn issue_service(
        &self,
        name: &str,
        dns_names: &[&str],
        ips: &[std::net::IpAddr],
        identity: &IdentityPublicKey,
        validity: Validity,
    ) -> Result<Vec<u8>, CertError> {
        if !crate::ids::is_valid_name(name) {
            return Err(CertError::Malformed(
                "service name must match the id alphabet",
            ));
        }
        let mut params = base_params(validity)?;
        params.distinguished_name = dn(name, SERVICE_OU, self.pinned.org_name());
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        for dns in dns_names {
            let dns = (*dns)
                .try_into()
                .map_err(|_| CertError::Malformed("DNS name is not IA5"))?;
            params.subject_alt_names.push(SanType::DnsName(dns));
        }
        params
            .subject_alt_names
            .extend(ips.iter().copied().map(SanType::IpAddress));
        self.sign(&params, identity)
    }

    fn sign(
        &self,
        params: &CertificateParams,
        subject: &IdentityPublicKey,
    ) -> Result<Vec<u8>, CertError> {
        let issuer = Issuer::from_ca_cert_der(
            &CertificateDer::from(self.cert_der.as_slice()),
            rcgen_key(&self.key)?,
        )
        .map_err(|_| CertError::Internal("loading the CA as issuer"))?;
        let spki = SubjectPublicKeyInfo::from_der(subject.spki_der())
            .map_err(|_| CertError::Malformed("subject public key"))?;
        let cert = params
            .signed_by(&spki, &issuer)
            .map_err(|_| CertError::Internal("signing a certificate"))?;
        Ok(cert.der().to_vec())
    }
}

fn rcgen_key(key: &IdentityKey) -> Result<KeyPair, CertError> {
    let der = key.to_pkcs8_der()?;
    der.expose(|d| {
        KeyPair::from_pkcs8_der_and_sign_algo(&PrivatePkcs8KeyDer::from(d), &PKCS_ECDSA_P256_SHA256)
    })
    .map_err(|_| CertError::Internal("loading the CA key for signing"))
}

fn base_params(validity: Validity) -> Result<CertificateParams, CertError> {
    let mut params = CertificateParams::default();
    params.not_before = OffsetDateTime::from_unix_timestamp(validity.not_before)
        .map_err(|_| CertError::Malformed("not_before out of range"))?;
    params.not_after = OffsetDateTime::from_unix_timestamp(validity.not_after)
        .map_err(|_| CertError::Malformed("not_after out of range"))?;
    // 16 random bytes, top bit clear so the DER INTEGER is positive without padding.
    let mut serial = random::array::<16>();
    serial[0] &= 0x7f;
    serial[0] |= 0x01;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

fn dn(common_name: &str, unit: &str, org: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, org);
    dn.push(DnType::OrganizationalUnitName, unit);
    dn.push(DnType::CommonName, common_name);
    dn
}
