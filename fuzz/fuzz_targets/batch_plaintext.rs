//! Batch plaintexts, the bytes a batch envelope carries once opened (`tessera_proto::envelope::batch::decode`,
//! docs/protocol.md, "Batched rewrap"): what a target reads from a peer's or an operator's batch.
//!
//! Checked beyond "no panic": a plaintext that decodes has 1–64 items with distinct credential ids and no version
//! 0, and encoding its items again gives the same bytes (one plaintext per batch: no second reading of the same
//! bytes, no ignored trailing data).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_proto::envelope::batch::{self, MAX_BATCH_ITEMS};
use tessera_proto::secret::SecretBytes;

fuzz_target!(|data: &[u8]| {
    let plain = SecretBytes::copy_from(data);
    let Ok(items) = batch::decode(&plain) else {
        return;
    };
    assert!(!items.is_empty() && items.len() <= MAX_BATCH_ITEMS);
    let mut ids: Vec<_> = items.iter().map(|i| i.credential_id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        ids.len(),
        items.len(),
        "duplicate credential in a decoded batch"
    );
    assert!(items.iter().all(|i| i.version > 0));
    let parts: Vec<_> = items
        .iter()
        .map(|i| (i.credential_id, i.version, &i.payload))
        .collect();
    let again = batch::encode(&parts).expect("a decoded batch encodes");
    again.expose(|a| assert_eq!(a, data, "a batch plaintext has one encoding"));
});
