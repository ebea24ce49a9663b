//! The org CA on the operator's workstation: a directory with `ca.pem` (the certificate every agent pins) and
//! `ca.key` (PKCS#8, mode 0600; keep it offline).
//!
//! Every certificate's common name is its MQTT username at the broker, so a name issued to one kind (agent, service,
//! operator) is refused for another ([`crate::issued::Registry::check_name`]).

use std::net::IpAddr;
use std::path::Path;

use tessera_proto::cert::{
    AgentCertificate, CertSerial, EnrollmentRequest, IdentityKey, OrgCa, RenewalRequest, Validity,
};
use tessera_proto::ids::{AgentId, OperatorId};
use tessera_proto::secret::SecretBytes;
use tessera_proto::statement::{RevocationList, Signed};

use crate::issued::{NameKind, Registry};

/// CA operation failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// A file problem.
    #[error("{0}")]
    Io(String),
    /// Bad input (request, names).
    #[error("{0}")]
    Invalid(String),
}

fn io(path: &Path, e: &std::io::Error) -> CaError {
    CaError::Io(format!("{}: {e}", path.display()))
}

fn write_pem(path: &Path, tag: &str, der: &[u8], private: bool) -> Result<(), CaError> {
    let text = pem::encode(&pem::Pem::new(tag, der));
    if private {
        write_private(path, text.as_bytes())
    } else {
        std::fs::write(path, text).map_err(|e| io(path, &e))
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), CaError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io(path, &e))?;
    f.write_all(bytes).map_err(|e| io(path, &e))
}

/// Writes `STEM.key` (0600) and `STEM.pem` in `out_dir`.
fn write_identity(
    out_dir: &Path,
    stem: &str,
    key: &IdentityKey,
    cert_der: &[u8],
) -> Result<(), CaError> {
    std::fs::create_dir_all(out_dir).map_err(|e| io(out_dir, &e))?;
    let k = key
        .to_pkcs8_der()
        .map_err(|e| CaError::Invalid(e.to_string()))?;
    k.expose(|k| write_pem(&out_dir.join(format!("{stem}.key")), "PRIVATE KEY", k, true))?;
    write_pem(
        &out_dir.join(format!("{stem}.pem")),
        "CERTIFICATE",
        cert_der,
        false,
    )
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// An agent certificate's validity: from five minutes ago (clock skew) for `lifetime_secs`.
fn agent_validity(lifetime_secs: i64) -> Validity {
    let now = now();
    Validity {
        not_before: now.saturating_sub(300),
        not_after: now.saturating_add(lifetime_secs),
    }
}

/// An agent certificate's lifetime from the command line's `--days` or `--hours`.
pub fn lifetime_secs(days: u32, hours: Option<u32>) -> i64 {
    hours.map_or_else(|| i64::from(days) * 86_400, |h| i64::from(h) * 3_600)
}

/// `ca init`: a new CA in `dir` (refuses to overwrite).
pub fn init(dir: &Path, org: &str, days: u32) -> Result<(), CaError> {
    std::fs::create_dir_all(dir).map_err(|e| io(dir, &e))?;
    if dir.join("ca.key").exists() {
        return Err(CaError::Invalid(format!(
            "{} already holds a CA",
            dir.display()
        )));
    }
    let ca = OrgCa::generate(org, Validity::days_from(now() - 300, days))
        .map_err(|e| CaError::Invalid(e.to_string()))?;
    let key = ca
        .key()
        .to_pkcs8_der()
        .map_err(|e| CaError::Invalid(e.to_string()))?;
    key.expose(|k| write_pem(&dir.join("ca.key"), "PRIVATE KEY", k, true))?;
    write_pem(&dir.join("ca.pem"), "CERTIFICATE", ca.cert_der(), false)
}

/// Loads the CA from `dir`.
pub fn load(dir: &Path) -> Result<OrgCa, CaError> {
    let read = |name: &str| {
        std::fs::read(dir.join(name)).map_err(|e| {
            CaError::Io(format!(
                "{}: {e} (--dir must be the CA directory that `tessera ca init` created)",
                dir.join(name).display()
            ))
        })
    };
    let cert = tessera_proto::pem_files::first_cert(&read("ca.pem")?)
        .map_err(|e| CaError::Invalid(format!("{}: {e}", dir.join("ca.pem").display())))?;
    let key_pem = read("ca.key")?;
    let key = pem::parse(&key_pem)
        .map_err(|e| CaError::Invalid(format!("{}: {e}", dir.join("ca.key").display())))?;
    OrgCa::from_parts(&cert, &SecretBytes::new(key.into_contents())).map_err(|e| {
        CaError::Invalid(format!(
            "{} and {}: {e} (the key must be the CA certificate's)",
            dir.join("ca.pem").display(),
            dir.join("ca.key").display()
        ))
    })
}

/// What `ca issue-agent` did.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The agent.
    pub agent: AgentId,
    /// The new certificate's serial.
    pub serial: CertSerial,
    /// Serials of the certificates it replaced (now revoked).
    pub replaced: Vec<CertSerial>,
    /// The new revocation list, when certificates were replaced.
    pub revocations: Option<Signed<RevocationList>>,
}

/// `ca issue-agent`: signs an enrolment request and records the certificate in the CA's registry
/// ([`crate::issued`]). An agent id that already holds a live certificate is refused unless `replace`, which
/// revokes the certificates it replaces.
pub fn issue_agent(
    dir: &Path,
    request: &Path,
    out: &Path,
    lifetime_secs: i64,
    replace: bool,
) -> Result<Issued, CaError> {
    let ca = load(dir)?;
    let bytes = std::fs::read(request).map_err(|e| io(request, &e))?;
    let req: EnrollmentRequest = serde_json::from_slice(&bytes).map_err(|e| {
        CaError::Invalid(format!(
            "{}: not an enrolment request ({e}); give the file `tessera-agent enroll --request-out` wrote",
            request.display()
        ))
    })?;
    let agent = req.body.agent_id.clone();
    let mut registry = Registry::load(dir)
        .map_err(|e| CaError::Invalid(e.to_string()))?
        .unwrap_or_default();
    let revoked = crate::revocations::read_dir_copy(dir, ca.pinned())
        .map_err(|e| CaError::Invalid(e.to_string()))?
        .unwrap_or_else(RevocationList::empty);
    registry
        .check_name(agent.as_str(), NameKind::Agent)
        .map_err(|e| CaError::Invalid(e.to_string()))?;
    let live = registry.live(&agent, ca.pinned(), now(), &revoked);
    if !live.is_empty() && !replace {
        let serials: Vec<&str> = live.iter().map(|c| c.serial.as_str()).collect();
        return Err(CaError::Invalid(format!(
            "agent {} already holds a live certificate (serial {}); give --replace to issue a new one and revoke \
             the old",
            agent.as_str(),
            serials.join(", ")
        )));
    }
    let der = ca
        .issue_agent(&req, agent_validity(lifetime_secs))
        .map_err(|e| CaError::Invalid(format!("enrolment request refused: {e}")))?;
    let cert = ca
        .pinned()
        .verify_agent(&der, now(), &RevocationList::empty())
        .map_err(|e| CaError::Invalid(format!("the issued certificate does not verify: {e}")))?;
    write_pem(out, "CERTIFICATE", &der, false)?;
    let replaced = registry.record(&cert, now());
    registry
        .save(dir)
        .map_err(|e| CaError::Invalid(e.to_string()))?;
    let revocations = if replaced.is_empty() {
        None
    } else {
        Some(revoke(dir, &replaced)?)
    };
    Ok(Issued {
        agent,
        serial: cert.serial,
        replaced,
        revocations,
    })
}

/// What `ca renew` issued.
#[derive(Debug, Clone)]
pub struct Renewed {
    /// The green certificate, DER.
    pub der: Vec<u8>,
    /// Its serial.
    pub serial: CertSerial,
}

/// `ca renew`: issues the green certificate of a key rotation for `request`, already verified against `current`
/// (the live certificate the registry holds for it: [`crate::renew::plan`]), and records it in the registry as
/// renewing `current` (both stay live until [`retire`]). Nothing is revoked here on the relay's word: a green the
/// agent never switched to is retired with blue, once the agent's receipt shows which green it uses.
pub fn renew(
    dir: &Path,
    request: &RenewalRequest,
    current: &AgentCertificate,
    lifetime_secs: i64,
) -> Result<Renewed, CaError> {
    let ca = load(dir)?;
    let mut registry = Registry::load(dir)
        .map_err(|e| CaError::Invalid(e.to_string()))?
        .unwrap_or_default();
    let der = ca
        .issue_renewal(request, current, agent_validity(lifetime_secs))
        .map_err(|e| CaError::Invalid(format!("renewal request refused: {e}")))?;
    let cert = ca
        .pinned()
        .verify_agent(&der, now(), &RevocationList::empty())
        .map_err(|e| CaError::Invalid(format!("the issued certificate does not verify: {e}")))?;
    registry.record_renewal(&cert, &current.serial, now());
    registry
        .save(dir)
        .map_err(|e| CaError::Invalid(e.to_string()))?;
    Ok(Renewed {
        der,
        serial: cert.serial,
    })
}

/// `ca renew` after a completed rotation: `blue` of `agent` is retired (replaced by `green` as of `at`, the agent's
/// switch) and revoked, with any other green certificate issued for `blue` that the agent did not switch to; returns
/// the new revocation list.
pub fn retire(
    dir: &Path,
    agent: &AgentId,
    blue: &CertSerial,
    green: &CertSerial,
    at: i64,
) -> Result<Signed<RevocationList>, CaError> {
    let mut registry = Registry::load(dir)
        .map_err(|e| CaError::Invalid(e.to_string()))?
        .unwrap_or_default();
    // Blue, and every other green issued for it that the agent did not switch to (keys it discarded).
    let mut retired = vec![blue.clone()];
    retired.extend(
        registry
            .certs
            .iter()
            .filter(|c| {
                c.agent == *agent
                    && c.renews.as_ref() == Some(blue)
                    && c.serial != *green
                    && c.replaced_by.is_none()
            })
            .map(|c| c.serial.clone()),
    );
    for s in &retired {
        registry.retire(agent, s, green, at);
    }
    registry
        .save(dir)
        .map_err(|e| CaError::Invalid(e.to_string()))?;
    revoke(dir, &retired)
}

/// The CA's registry with `name` recorded as the common name of a `kind` certificate, refused when it was issued to
/// another kind; written back by the caller once the certificate is out.
fn claim_name(dir: &Path, name: &str, kind: NameKind) -> Result<Registry, CaError> {
    let mut registry = Registry::load(dir)
        .map_err(|e| CaError::Invalid(e.to_string()))?
        .unwrap_or_default();
    registry
        .check_name(name, kind)
        .map_err(|e| CaError::Invalid(e.to_string()))?;
    registry.names.insert(name.to_owned(), kind);
    Ok(registry)
}

/// `ca issue-operator`: a new operator key and certificate in `out_dir` (`operator.pem`, `operator.key`, and a copy
/// of `ca.pem`).
pub fn issue_operator(dir: &Path, id: &str, out_dir: &Path, days: u32) -> Result<(), CaError> {
    let ca = load(dir)?;
    let id = OperatorId::new(id).map_err(|e| CaError::Invalid(e.to_string()))?;
    let registry = claim_name(dir, id.as_str(), NameKind::Operator)?;
    let key = IdentityKey::generate().map_err(|e| CaError::Invalid(e.to_string()))?;
    let der = ca
        .issue_operator(
            &id,
            key.public_key(),
            Validity::days_from(now() - 300, days),
        )
        .map_err(|e| CaError::Invalid(e.to_string()))?;
    write_identity(out_dir, "operator", &key, &der)?;
    write_pem(&out_dir.join("ca.pem"), "CERTIFICATE", ca.cert_der(), false)?;
    registry
        .save(dir)
        .map_err(|e| CaError::Invalid(e.to_string()))?;
    // The new operator directory starts with the CA's registry of issued agent certificates (sealing needs it) and
    // its newest revocation list (so that a relay withholding the list cannot get a revoked agent sealed to).
    registry
        .save(out_dir)
        .map_err(|e| CaError::Invalid(e.to_string()))?;
    let list = crate::revocations::read_signed_copy(dir, ca.pinned())
        .map_err(|e| CaError::Invalid(e.to_string()))?;
    if let Some(list) = list {
        crate::revocations::write_dir_copy(out_dir, &list)
            .map_err(|e| CaError::Invalid(e.to_string()))?;
    }
    Ok(())
}

/// `ca issue-service`: a TLS server/client certificate for the broker or the relay (`NAME.pem`, `NAME.key`).
pub fn issue_service(
    dir: &Path,
    name: &str,
    dns: &[String],
    ips: &[IpAddr],
    out_dir: &Path,
    days: u32,
) -> Result<(), CaError> {
    let ca = load(dir)?;
    let registry = claim_name(dir, name, NameKind::Service)?;
    let key = IdentityKey::generate().map_err(|e| CaError::Invalid(e.to_string()))?;
    let dns: Vec<&str> = dns.iter().map(String::as_str).collect();
    let der = ca
        .issue_service(
            name,
            &dns,
            ips,
            key.public_key(),
            Validity::days_from(now() - 300, days),
        )
        .map_err(|e| CaError::Invalid(e.to_string()))?;
    write_identity(out_dir, name, &key, &der)?;
    registry
        .save(dir)
        .map_err(|e| CaError::Invalid(e.to_string()))
}

/// `ca revoke`: adds serials to the CA's revocation list (`revocations.json` in `dir`, signed, serial + 1).
pub fn revoke(dir: &Path, serials: &[CertSerial]) -> Result<Signed<RevocationList>, CaError> {
    let ca = load(dir)?;
    let held = crate::revocations::read_dir_copy(dir, ca.pinned())
        .map_err(|e| CaError::Invalid(e.to_string()))?
        .unwrap_or_else(RevocationList::empty);
    let serial = held
        .serial
        .checked_add(1)
        .ok_or_else(|| CaError::Invalid("the revocation list serial cannot be raised".into()))?;
    let list = RevocationList::new(serial, now(), held.revoked.iter().chain(serials).cloned());
    let signed = list
        .sign(&ca)
        .map_err(|e| CaError::Invalid(e.to_string()))?;
    crate::revocations::write_dir_copy(dir, &signed)
        .map_err(|e| CaError::Invalid(e.to_string()))?;
    Ok(signed)
}

/// `ca revoke` (a compromised or removed agent or operator): [`revoke`], and the registry forgets any retirement of
/// those certificates, so that receipts their keys signed are no longer vouched for (a stolen key can sign any time).
pub fn revoke_for_cause(
    dir: &Path,
    serials: &[CertSerial],
) -> Result<Signed<RevocationList>, CaError> {
    let signed = revoke(dir, serials)?;
    if let Some(mut registry) = Registry::load(dir).map_err(|e| CaError::Invalid(e.to_string()))? {
        let mut changed = false;
        for c in registry
            .certs
            .iter_mut()
            .filter(|c| serials.contains(&c.serial) && c.retired_at.is_some())
        {
            c.retired_at = None;
            changed = true;
        }
        if changed {
            registry
                .save(dir)
                .map_err(|e| CaError::Invalid(e.to_string()))?;
        }
    }
    Ok(signed)
}

/// The serial of an agent or operator certificate file issued by this CA.
pub fn serial_of(dir: &Path, cert: &Path) -> Result<CertSerial, CaError> {
    let ca = load(dir)?;
    let bytes = std::fs::read(cert).map_err(|e| io(cert, &e))?;
    let der = tessera_proto::pem_files::first_cert(&bytes)
        .map_err(|e| CaError::Invalid(format!("{}: {e}", cert.display())))?;
    let empty = RevocationList::empty();
    ca.pinned()
        .verify_agent(&der, now(), &empty)
        .map(|c| c.serial)
        .or_else(|_| {
            ca.pinned()
                .verify_operator(&der, now(), &empty)
                .map(|c| c.serial)
        })
        .map_err(|e| CaError::Invalid(format!("{}: {e}", cert.display())))
}

#[cfg(test)]
mod tests;
