//! Harness for the agent's wire tests: the shared one-agent world of `tessera-system-tests` (a real Mosquitto, the
//! real binary enrolled through its CLI, the test acting as the relay), run with this crate's `tessera-agent`.
#![allow(dead_code, unreachable_pub)]

pub use tessera_system_tests::wire_world::*;

pub const BIN: &str = env!("CARGO_BIN_EXE_tessera-agent");

/// The world for this crate's binary.
pub async fn world() -> World {
    World::new(std::path::Path::new(BIN)).await
}
