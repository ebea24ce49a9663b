use std::path::PathBuf;

use super::*;

fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

#[test]
fn reads_dmi() {
    let facts = DeviceFacts::probe_at(&testdata("dmi"), &DeviceOverrides::default());
    assert_eq!(facts.serial.as_deref(), Some("SN-4711"));
    assert_eq!(facts.model.as_deref(), Some("EdgeBox 300"));
}

#[test]
fn device_tree_wins_over_dmi_and_nul_is_stripped() {
    let facts = DeviceFacts::probe_at(&testdata("devicetree"), &DeviceOverrides::default());
    assert_eq!(facts.serial.as_deref(), Some("00000000a1b2c3d4"));
    assert_eq!(
        facts.model.as_deref(),
        Some("Raspberry Pi Compute Module 4 Rev 1.0")
    );
}

#[test]
fn overrides_win_and_placeholders_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let dmi = dir.path().join("sys/class/dmi/id");
    std::fs::create_dir_all(&dmi).unwrap();
    std::fs::write(dmi.join("product_serial"), "To be filled by O.E.M.\n").unwrap();
    std::fs::write(dmi.join("product_name"), "Box\n").unwrap();
    let facts = DeviceFacts::probe_at(dir.path(), &DeviceOverrides::default());
    assert_eq!(facts.serial, None);
    let facts = DeviceFacts::probe_at(
        dir.path(),
        &DeviceOverrides {
            serial: Some("from-config".into()),
            model: None,
        },
    );
    assert_eq!(facts.serial.as_deref(), Some("from-config"));
    assert_eq!(facts.model.as_deref(), Some("Box"));
    assert_eq!(facts.to_map().len(), 2);
}

#[test]
fn nothing_found_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let facts = DeviceFacts::probe_at(dir.path(), &DeviceOverrides::default());
    assert_eq!(facts, DeviceFacts::default());
    assert!(facts.to_map().is_empty());
}
