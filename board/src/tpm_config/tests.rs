#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

#[test]
fn defaults() {
    let cfg = TpmConfig::default();
    assert_eq!(cfg.tcti, "device:/dev/tpmrm0");
    assert_eq!(cfg.pcr_bank, PcrBank::Sha256);
    assert!(cfg.pcrs.is_empty() && cfg.primary_handle.is_none() && cfg.owner_auth_file.is_none());
    cfg.validate().unwrap();
}

#[test]
fn parses_from_json_with_defaults_and_refuses_unknown_fields() {
    let cfg: TpmConfig =
        serde_json::from_str(r#"{"pcrs":[7,0],"pcr_bank":"sha384","primary_handle":2164260865}"#)
            .unwrap();
    assert_eq!(cfg.pcrs, vec![7, 0]);
    assert_eq!(cfg.sorted_pcrs(), vec![0, 7]);
    assert_eq!(cfg.pcr_bank, PcrBank::Sha384);
    assert_eq!(cfg.primary_handle, Some(0x8100_0001));
    assert_eq!(cfg.tcti, "device:/dev/tpmrm0");
    assert!(serde_json::from_str::<TpmConfig>(r#"{"owner_auth":"x"}"#).is_err());
    assert!(serde_json::from_str::<TpmConfig>(r#"{"pcr_bank":"SHA256"}"#).is_err());
    let back: TpmConfig = serde_json::from_str(&serde_json::to_string(&cfg).unwrap()).unwrap();
    assert_eq!(back, cfg);
}

#[test]
fn validation() {
    let with = |f: &dyn Fn(&mut TpmConfig)| {
        let mut c = TpmConfig::default();
        f(&mut c);
        c.validate()
    };
    let refused = |r: Result<(), SealError>| matches!(r, Err(SealError::TpmConfig(_)));
    assert!(with(&|c| c.pcrs = vec![0, 2, 4, 7, 23]).is_ok());
    assert!(refused(with(&|c| c.pcrs = vec![24])));
    assert!(refused(with(&|c| c.pcrs = vec![1, 2, 1])));
    assert!(refused(with(&|c| c.pcrs = (0..25).collect())));
    assert!(with(&|c| c.pcrs = (0..24).collect()).is_ok());
    assert!(refused(with(&|c| c.primary_handle = Some(0x8000_0001))));
    assert!(with(&|c| c.primary_handle = Some(0x8100_0001)).is_ok());
    assert!(refused(with(&|c| c.tcti = "tabrmd".to_owned())));
    assert!(refused(with(&|c| c.tcti = String::new())));
    assert!(with(&|c| c.tcti = "swtpm:host=127.0.0.1,port=2321".to_owned()).is_ok());
    assert!(refused(with(&|c| c.owner_auth_file = Some(PathBuf::new()))));
}

#[test]
fn banks() {
    for bank in [PcrBank::Sha1, PcrBank::Sha256, PcrBank::Sha384] {
        assert_eq!(PcrBank::from_alg_id(bank.alg_id()), Some(bank));
        assert_eq!(bank.to_string(), bank.name());
    }
    assert_eq!(PcrBank::from_alg_id(0x0012), None);
}

#[cfg(not(feature = "tpm"))]
#[test]
fn without_the_feature_the_tpm_backend_is_refused() {
    const { assert!(!crate::TPM_BUILT) };
    let err = crate::tpm_sealer(&TpmConfig::default()).unwrap_err();
    assert!(matches!(err, SealError::TpmNotBuilt));
    assert!(err.to_string().contains("--features tpm"));
}
