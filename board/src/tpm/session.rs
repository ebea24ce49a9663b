//! Opening the TPM: a `Context` per operation, the primary key, and sessions.
//!
//! tss-esapi's `Context` flushes every transient object and session it created when it drops, so an operation
//! that fails half-way leaves nothing loaded in the TPM; the sealer still flushes explicitly on the success path
//! (a TPM without a resource manager has room for three loaded sessions and a few objects only).

use tss_esapi::attributes::{ObjectAttributesBuilder, SessionAttributesBuilder};
use tss_esapi::constants::SessionType;
use tss_esapi::handles::{KeyHandle, ObjectHandle, PersistentTpmHandle, SessionHandle, TpmHandle};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{
    Auth, EccPoint, Public, PublicBuilder, PublicEccParametersBuilder, SymmetricDefinition,
    SymmetricDefinitionObject,
};
use tss_esapi::{Context, TctiNameConf};

use super::blob::PrimarySpec;
use super::errors::{no_tpm, to_seal_error, Stage};
use crate::sealer::SealError;

/// Opens a context on `tcti` (the string is only for the error message).
pub(crate) fn open(tcti: &TctiNameConf, tcti_str: &str) -> Result<Context, SealError> {
    Context::new(tcti.clone()).map_err(|e| no_tpm(tcti_str, e))
}

/// The primary key the sealed object lives under.
#[derive(Debug)]
pub(crate) struct Primary {
    pub(crate) handle: KeyHandle,
    /// Flush when done (a transient primary made from the template).
    transient: bool,
}

impl Primary {
    /// Creates the template primary (authorised by the owner hierarchy's auth over an HMAC session, so the auth
    /// value never crosses the bus), or opens the persistent one.
    pub(crate) fn get(
        ctx: &mut Context,
        spec: PrimarySpec,
        owner_auth: &Auth,
    ) -> Result<Self, SealError> {
        let err = |e: tss_esapi::Error| {
            to_seal_error(
                e,
                Stage::Primary,
                match spec {
                    PrimarySpec::Persistent(h) => Some(h),
                    PrimarySpec::Template => None,
                },
            )
        };
        match spec {
            PrimarySpec::Template => {
                ctx.tr_set_auth(ObjectHandle::Owner, owner_auth.clone())
                    .map_err(err)?;
                let session = start(ctx, None, SessionType::Hmac, false).map_err(err)?;
                let created = ctx
                    .execute_with_session(Some(session), |c| {
                        c.create_primary(Hierarchy::Owner, template()?, None, None, None, None)
                    })
                    .map_err(err);
                flush_session(ctx, session);
                Ok(Self {
                    handle: created?.key_handle,
                    transient: true,
                })
            }
            PrimarySpec::Persistent(h) => {
                let tpm_handle = PersistentTpmHandle::new(h)
                    .map(TpmHandle::Persistent)
                    .map_err(err)?;
                let object = ctx.tr_from_tpm_public(tpm_handle).map_err(err)?;
                Ok(Self {
                    handle: object.into(),
                    transient: false,
                })
            }
        }
    }

    /// Flushes a transient primary (errors ignored: the context's drop retries).
    pub(crate) fn release(self, ctx: &mut Context) {
        if self.transient {
            let _ = ctx.flush_context(self.handle.into());
        }
    }
}

/// The standard storage primary template: ECC NIST P-256 restricted decryption key, AES-128-CFB for its children,
/// SHA-256 name, empty unique (what `tpm2_createprimary -C o -G ecc256:null:aes128cfb` creates).
pub(crate) fn template() -> tss_esapi::Result<Public> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_restricted(true)
        .with_decrypt(true)
        .build()?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_ecc_parameters(
            PublicEccParametersBuilder::new_restricted_decryption_key(
                SymmetricDefinitionObject::AES_128_CFB,
                EccCurve::NistP256,
            )
            .build()?,
        )
        .with_ecc_unique_identifier(EccPoint::default())
        .build()
}

/// Starts a session. With `salt_key` the session is salted with that key (its secret is derived from an ECDH or
/// RSA exchange a bus observer cannot follow) and marked for parameter encryption both ways (the first command
/// parameter, e.g. the sealed data, and the first response parameter, e.g. the unsealed data).
pub(crate) fn start(
    ctx: &mut Context,
    salt_key: Option<KeyHandle>,
    kind: SessionType,
    encrypt: bool,
) -> tss_esapi::Result<AuthSession> {
    let symmetric = if encrypt {
        SymmetricDefinition::AES_128_CFB
    } else {
        SymmetricDefinition::Null
    };
    let session = ctx
        .execute_without_session(|c| {
            c.start_auth_session(
                salt_key,
                None,
                None,
                kind,
                symmetric,
                HashingAlgorithm::Sha256,
            )
        })?
        .ok_or(tss_esapi::Error::WrapperError(
            tss_esapi::WrapperErrorKind::WrongValueFromTpm,
        ))?;
    let (attributes, mask) = SessionAttributesBuilder::new()
        .with_continue_session(true)
        .with_decrypt(encrypt)
        .with_encrypt(encrypt)
        .build();
    ctx.tr_sess_set_attributes(session, attributes, mask)?;
    Ok(session)
}

/// Flushes a session (errors ignored: the context's drop retries).
pub(crate) fn flush_session(ctx: &mut Context, session: AuthSession) {
    if !matches!(session, AuthSession::Password) {
        let _ = ctx.flush_context(SessionHandle::from(session).into());
    }
}
