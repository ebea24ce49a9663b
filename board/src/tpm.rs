//! The TPM 2.0 backend: the store key is the sensitive data of a KeyedHash "sealed data" object created under a
//! storage primary key in the owner hierarchy, optionally bound to PCR values by a PolicyPCR authPolicy.
//!
//! - Seal: open a context, get the primary (created from the standard template, or the configured persistent
//!   key), read the policy's PCRs and have the TPM compute the policy digest in a trial session, create the sealed
//!   object over a session salted with the primary (the key crosses the bus encrypted), and write the blob
//!   ([`blob`]): the primary spec, the PCR bank, PCRs and their values, the object's public and private areas.
//! - Unseal: decode the blob; check its primary is the configured one and its PCR selection and values reproduce
//!   the public area's authPolicy (so an altered header is refused, never acted on); load the object under the
//!   primary (the TPM checks the private area's integrity HMAC, which covers the public area: an altered blob or
//!   one from another TPM fails here); satisfy the PCR policy in a salted policy session and unseal with response
//!   encryption. A policy failure is reported as [`SealError::PcrMismatch`] naming the PCRs whose current value
//!   differs from the value stored in the blob.
//! - Destroy: nothing persistent; the caller deletes the blob.
//!
//! A `Context` is opened per operation (seal and unseal are rare), which keeps the sealer `Send + Sync`; every
//! transient object and session is flushed when the operation ends, on error paths too.

mod blob;
mod errors;
mod pcr;
mod policy;
mod session;

use std::str::FromStr as _;

use tessera_proto::secret::SecretBytes;
use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::constants::SessionType;
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::structures::{
    Auth, Digest, KeyedHashScheme, Private, Public, PublicBuilder, PublicKeyedHashParameters,
    SensitiveData,
};
use tss_esapi::traits::{Marshall, UnMarshall};
use tss_esapi::{Context, TctiNameConf};
use zeroize::Zeroizing;

use self::blob::{PrimarySpec, SealedBlob};
use self::errors::{class_of, to_seal_error, Class, Stage};
use self::session::{flush_session, start, Primary};
use crate::sealer::{SealError, SealedKey, Sealer, STORE_KEY_BYTES};
use crate::tpm_config::TpmConfig;

/// Largest owner authorization value accepted (the owner hierarchy's auth is at most a SHA-512 digest long).
const MAX_AUTH_BYTES: usize = 64;

/// The TPM 2.0 sealer. See the module documentation.
pub struct TpmSealer {
    cfg: TpmConfig,
    tcti: TctiNameConf,
    owner_auth: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for TpmSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TpmSealer")
            .field("tcti", &self.cfg.tcti)
            .field("primary_handle", &self.cfg.primary_handle)
            .field("pcrs", &self.cfg.pcrs)
            .field("pcr_bank", &self.cfg.pcr_bank)
            .field("owner_auth_file", &self.cfg.owner_auth_file)
            .finish_non_exhaustive()
    }
}

impl TpmSealer {
    /// Validates `cfg`, reads the owner auth file, and opens the TCTI once (and the persistent primary, if
    /// configured) so a missing TPM or primary is reported at start rather than at the first seal.
    pub fn new(cfg: &TpmConfig) -> Result<Self, SealError> {
        cfg.validate()?;
        let tcti = TctiNameConf::from_str(&cfg.tcti).map_err(|_| {
            SealError::TpmConfig(format!(
                "tcti {:?} does not parse (device:<path>, swtpm:host=..,port=.., mssim:host=..,port=..)",
                cfg.tcti
            ))
        })?;
        let owner_auth = match &cfg.owner_auth_file {
            None => Zeroizing::new(Vec::new()),
            Some(path) => read_auth_file(path)?,
        };
        let sealer = Self {
            cfg: cfg.clone(),
            tcti,
            owner_auth,
        };
        let mut ctx = sealer.open()?;
        if let PrimarySpec::Persistent(_) = sealer.primary_spec() {
            sealer.primary(&mut ctx)?.release(&mut ctx);
        }
        Ok(sealer)
    }

    fn primary_spec(&self) -> PrimarySpec {
        PrimarySpec::from_config(self.cfg.primary_handle)
    }

    fn open(&self) -> Result<Context, SealError> {
        session::open(&self.tcti, &self.cfg.tcti)
    }

    fn primary(&self, ctx: &mut Context) -> Result<Primary, SealError> {
        let auth = Auth::try_from(self.owner_auth.to_vec()).map_err(|_| {
            SealError::TpmConfig(format!(
                "owner_auth_file holds more than {MAX_AUTH_BYTES} bytes"
            ))
        })?;
        Primary::get(ctx, self.primary_spec(), &auth)
    }

    fn seal_err(&self, stage: Stage) -> impl Fn(tss_esapi::Error) -> SealError + '_ {
        move |e| to_seal_error(e, stage, self.cfg.primary_handle)
    }

    fn seal_under(
        &self,
        ctx: &mut Context,
        primary: &Primary,
        key: &SecretBytes,
    ) -> Result<SealedBlob, SealError> {
        let err = self.seal_err(Stage::Seal);
        let bank = self.cfg.pcr_bank;
        let pcrs = self.cfg.sorted_pcrs();
        let (auth_policy, pcr_values) = if pcrs.is_empty() {
            (Digest::default(), Vec::new())
        } else {
            let values = pcr::read(ctx, bank, &pcrs).map_err(&err)?;
            let digest = pcr::trial_policy(ctx, bank, &pcrs, &values).map_err(&err)?;
            if digest.value() != policy::pcr_policy_digest(bank, &pcrs, &values) {
                return Err(SealError::Tpm {
                    detail: "the TPM's PolicyPCR digest differs from the one computed here"
                        .to_owned(),
                });
            }
            (digest, values)
        };
        let public = sealed_object_template(auth_policy, !pcrs.is_empty()).map_err(&err)?;
        let sensitive = key
            .expose(|k| SensitiveData::try_from(k.to_vec()))
            .map_err(&err)?;
        let session = start(ctx, Some(primary.handle), SessionType::Hmac, true).map_err(&err)?;
        let created = ctx.execute_with_session(Some(session), |c| {
            c.create(primary.handle, public, None, Some(sensitive), None, None)
        });
        flush_session(ctx, session);
        let created = created.map_err(&err)?;
        Ok(SealedBlob {
            primary: self.primary_spec(),
            bank,
            pcrs,
            pcr_values,
            public: created.out_public.marshall().map_err(&err)?,
            private: created.out_private.value().to_vec(),
        })
    }

    fn unseal_under(
        &self,
        ctx: &mut Context,
        primary: &Primary,
        blob: &SealedBlob,
        public: Public,
        private: Private,
    ) -> Result<SecretBytes, SealError> {
        let load_err = self.seal_err(Stage::Load);
        let session =
            start(ctx, Some(primary.handle), SessionType::Hmac, true).map_err(&load_err)?;
        let item = match ctx
            .execute_with_session(Some(session), |c| c.load(primary.handle, private, public))
        {
            Ok(item) => item,
            Err(e) => {
                flush_session(ctx, session);
                return Err(load_err(e));
            }
        };
        let unsealed = if blob.pcrs.is_empty() {
            let r = ctx.execute_with_session(Some(session), |c| c.unseal(item.into()));
            flush_session(ctx, session);
            r
        } else {
            flush_session(ctx, session);
            pcr::policy_session(ctx, primary.handle, blob.bank, &blob.pcrs).and_then(|policy| {
                let r = ctx.execute_with_session(Some(policy), |c| c.unseal(item.into()));
                flush_session(ctx, policy);
                r
            })
        };
        let _ = ctx.flush_context(item.into());
        match unsealed {
            Ok(data) => {
                let key = SecretBytes::copy_from(data.value());
                if key.len() == STORE_KEY_BYTES {
                    Ok(key)
                } else {
                    Err(SealError::KeyLength)
                }
            }
            Err(e) if class_of(e, Stage::Unseal) == Class::Policy && !blob.pcrs.is_empty() => {
                Err(pcr_mismatch(ctx, blob))
            }
            Err(e) => Err(to_seal_error(e, Stage::Unseal, self.cfg.primary_handle)),
        }
    }
}

/// After a policy failure: the PCRs whose value now differs from the blob's, or [`SealError::Unseal`] if none does.
fn pcr_mismatch(ctx: &mut Context, blob: &SealedBlob) -> SealError {
    let now = match pcr::read(ctx, blob.bank, &blob.pcrs) {
        Ok(now) => now,
        Err(e) => return to_seal_error(e, Stage::Unseal, None),
    };
    let changed: Vec<u8> = blob
        .pcrs
        .iter()
        .zip(blob.pcr_values.iter().zip(&now))
        .filter(|(_, (then, now))| then != now)
        .map(|(&pcr, _)| pcr)
        .collect();
    if changed.is_empty() {
        SealError::Unseal("tpm")
    } else {
        SealError::PcrMismatch {
            bank: blob.bank.name().to_owned(),
            pcrs: changed,
        }
    }
}

/// The sealed data object: bound to this TPM and this parent, not subject to dictionary-attack lockout (its
/// authorization is a policy or empty, not a guessable password), administered only by policy; with a PCR policy
/// the empty auth value cannot be used instead of the policy.
fn sealed_object_template(auth_policy: Digest, with_policy: bool) -> tss_esapi::Result<Public> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_no_da(true)
        .with_admin_with_policy(true)
        .with_user_with_auth(!with_policy)
        .build()?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::KeyedHash)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_auth_policy(auth_policy)
        .with_keyed_hash_parameters(PublicKeyedHashParameters::new(KeyedHashScheme::Null))
        .with_keyed_hash_unique_identifier(Digest::default())
        .build()
}

/// Reads the owner auth file: raw bytes, one trailing newline (`\n` or `\r\n`) stripped. Refused unless it is a
/// regular file others cannot read or write (it may be group-readable: root-owned, group of the agent's user).
fn read_auth_file(path: &std::path::Path) -> Result<Zeroizing<Vec<u8>>, SealError> {
    use std::os::unix::fs::PermissionsExt as _;
    let meta = std::fs::metadata(path)
        .map_err(|e| SealError::TpmConfig(format!("owner_auth_file {}: {e}", path.display())))?;
    let mode = meta.permissions().mode() & 0o7777;
    if !meta.is_file() || mode & 0o007 != 0 {
        return Err(SealError::TpmConfig(format!(
            "owner_auth_file {} must be a regular file others cannot read or write (it is {}mode {mode:04o}); \
             chmod 0640 it",
            path.display(),
            if meta.is_file() { "" } else { "not a regular file, " }
        )));
    }
    let mut bytes = Zeroizing::new(std::fs::read(path).map_err(|source| SealError::Io {
        path: path.to_owned(),
        source,
    })?);
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
    if bytes.len() > MAX_AUTH_BYTES {
        return Err(SealError::TpmConfig(format!(
            "owner_auth_file {} holds more than {MAX_AUTH_BYTES} bytes",
            path.display()
        )));
    }
    Ok(bytes)
}

/// Decodes and checks a blob before anything in it is used: `None` means not ours or altered.
fn checked_blob(
    sealed: &SealedKey,
    expected_primary: PrimarySpec,
) -> Option<(SealedBlob, Public, Private)> {
    let blob = SealedBlob::decode(&sealed.0)?;
    if blob.primary != expected_primary {
        return None;
    }
    let public = Public::unmarshall(&blob.public).ok()?;
    // The TPM must see exactly the stored bytes: a byte tss-esapi would normalise away is refused here.
    if public.marshall().ok()? != blob.public {
        return None;
    }
    let expected_policy = if blob.pcrs.is_empty() {
        Vec::new()
    } else {
        policy::pcr_policy_digest(blob.bank, &blob.pcrs, &blob.pcr_values).to_vec()
    };
    let attributes = public.object_attributes();
    if public.auth_policy().value() != expected_policy.as_slice()
        || attributes.user_with_auth() != blob.pcrs.is_empty()
    {
        return None;
    }
    let private = Private::try_from(blob.private.clone()).ok()?;
    Some((blob, public, private))
}

impl Sealer for TpmSealer {
    fn backend(&self) -> &'static str {
        "tpm"
    }

    fn seal(&self, key: &SecretBytes) -> Result<SealedKey, SealError> {
        if key.len() != STORE_KEY_BYTES {
            return Err(SealError::KeyLength);
        }
        let mut ctx = self.open()?;
        let primary = self.primary(&mut ctx)?;
        let blob = self.seal_under(&mut ctx, &primary, key);
        primary.release(&mut ctx);
        blob?.encode().map(SealedKey).ok_or_else(|| SealError::Tpm {
            detail: "the sealed object does not fit the blob format".to_owned(),
        })
    }

    fn unseal(&self, sealed: &SealedKey) -> Result<SecretBytes, SealError> {
        let (blob, public, private) =
            checked_blob(sealed, self.primary_spec()).ok_or(SealError::Unseal("tpm"))?;
        let mut ctx = self.open()?;
        let primary = self.primary(&mut ctx)?;
        let key = self.unseal_under(&mut ctx, &primary, &blob, public, private);
        primary.release(&mut ctx);
        key
    }

    fn destroy(&self) -> Result<(), SealError> {
        // The sealed object is transient and lives only in the blob: nothing to evict.
        Ok(())
    }
}
