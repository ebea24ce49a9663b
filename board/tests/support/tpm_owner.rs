//! Test and bench support: what a TPM owner does outside the sealer, with tss-esapi over password sessions (an
//! owner context; a persistent primary storage key made as `tpm2_createprimary` + `tpm2_evictcontrol` would).
#![allow(dead_code, clippy::unwrap_used)]

use std::str::FromStr as _;

use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::handles::PersistentTpmHandle;
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::dynamic_handles::Persistent;
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::resource_handles::{Hierarchy, Provision};
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{
    EccPoint, Public, PublicBuilder, PublicEccParametersBuilder, SymmetricDefinitionObject,
};
use tss_esapi::{Context, TctiNameConf};

/// A context on `tcti` authorising with password sessions (the test plays the TPM owner).
pub(crate) fn owner_context(tcti: &str) -> Context {
    let mut ctx = Context::new(TctiNameConf::from_str(tcti).unwrap()).unwrap();
    ctx.set_sessions((Some(AuthSession::Password), None, None));
    ctx
}

/// An ECC P-256 restricted decryption (storage) key template with `unique` as its unique field.
pub(crate) fn primary_public(unique: EccPoint) -> Public {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_restricted(true)
        .with_decrypt(true)
        .build()
        .unwrap();
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_ecc_parameters(
            PublicEccParametersBuilder::new_restricted_decryption_key(
                SymmetricDefinitionObject::AES_128_CFB,
                EccCurve::NistP256,
            )
            .build()
            .unwrap(),
        )
        .with_ecc_unique_identifier(unique)
        .build()
        .unwrap()
}

/// Creates a primary storage key from [`primary_public`]`(unique)` and persists it at `handle`.
pub(crate) fn make_persistent_primary(tcti: &str, handle: u32, unique: EccPoint) {
    let mut ctx = owner_context(tcti);
    let primary = ctx
        .create_primary(
            Hierarchy::Owner,
            primary_public(unique),
            None,
            None,
            None,
            None,
        )
        .unwrap();
    ctx.evict_control(
        Provision::Owner,
        primary.key_handle.into(),
        Persistent::Persistent(PersistentTpmHandle::new(handle).unwrap()),
    )
    .unwrap();
    ctx.flush_context(primary.key_handle.into()).unwrap();
}
