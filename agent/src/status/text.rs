//! `tessera-agent status` without `--json`: a few aligned lines for a person at the appliance's console.

use std::fmt::Write as _;

use super::AgentStatus;

/// The status as text.
pub fn render(s: &AgentStatus) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "agent         {} (tessera-agent {})",
        s.agent, s.version
    );
    let _ = writeln!(
        out,
        "broker        {} ({})",
        s.broker.address,
        if s.broker.connected {
            "connected"
        } else {
            "not connected"
        }
    );
    let mut reg = s.registration.state.clone();
    if let (Some(e), Some(r)) = (
        s.registration.backfill_expected,
        s.registration.backfill_received,
    ) {
        let _ = write!(reg, " ({r} of {e} deliveries)");
    }
    let _ = writeln!(out, "registration  {reg}");
    let _ = writeln!(
        out,
        "certificate   serial {}, valid until {}",
        s.certificate.serial, s.certificate.not_after
    );
    let mut key = format!(
        "generation {} ({}, {})",
        s.store_key.generation, s.store_key.sealer, s.store_key.state
    );
    if let Some(r) = s.store_key.retiring {
        let _ = write!(key, ", retiring generation {r}");
    }
    let _ = writeln!(out, "store key     {key}");
    let _ = writeln!(out, "credentials   {}", s.credentials.len());
    for c in &s.credentials {
        let flag = match serde_json::to_value(c.status) {
            Ok(serde_json::Value::String(v)) if v != "ok" => format!(" [{v}]"),
            _ => String::new(),
        };
        let _ = writeln!(out, "  {} v{}{flag}", c.name, c.version);
    }
    out
}
