//! `tessera_proto::wire::decode` on arbitrary bytes, for both directions (`Up` from agents, `Down` from the relay)
//! and the retained `Status`. The relay and the broker are untrusted: any bytes may arrive on either topic.
//!
//! Checked beyond "no panic": a frame that decodes re-encodes (`encode` validates too, so a decoded message is
//! always encodable), and the re-encoded frame decodes to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_proto::wire::{self, Down, Status, Up, WireMessage};

fn round_trip<T: WireMessage + PartialEq + std::fmt::Debug>(data: &[u8]) {
    if let Ok(msg) = wire::decode::<T>(data) {
        let bytes = wire::encode(&msg).expect("a decoded message re-encodes");
        let again = wire::decode::<T>(&bytes).expect("a re-encoded message decodes");
        assert_eq!(again, msg, "decode(encode(m)) == m");
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip::<Up>(data);
    round_trip::<Down>(data);
    round_trip::<Status>(data);
});
