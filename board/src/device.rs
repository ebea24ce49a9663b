//! Device facts: serial number and model.
//!
//! Sources, first hit wins per field: configuration overrides; the device tree (`/proc/device-tree/serial-number`,
//! `/proc/device-tree/model`, NUL-terminated, as on ARM boards); DMI (`/sys/class/dmi/id/product_serial`,
//! `product_name`, as on x86 and UEFI ARM servers). Placeholder values firmware vendors leave behind ("To be filled
//! by O.E.M.", "Default string", all zeros) are ignored.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

/// Values from configuration that take precedence over what the board reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceOverrides {
    /// The serial number.
    #[serde(default)]
    pub serial: Option<String>,
    /// The model.
    #[serde(default)]
    pub model: Option<String>,
}

/// What the agent reports about its device in its enrolment request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceFacts {
    /// The serial number, if known.
    pub serial: Option<String>,
    /// The model, if known.
    pub model: Option<String>,
}

const MAX_FACT_BYTES: usize = 128;

impl DeviceFacts {
    /// Reads the facts from the running system.
    pub fn probe(overrides: &DeviceOverrides) -> Self {
        Self::probe_at(Path::new("/"), overrides)
    }

    /// Reads the facts with `root` as the filesystem root (for tests and for images mounted elsewhere).
    pub fn probe_at(root: &Path, overrides: &DeviceOverrides) -> Self {
        let read = |rel: &str| read_fact(&root.join(rel));
        let serial = overrides
            .serial
            .clone()
            .or_else(|| read("proc/device-tree/serial-number"))
            .or_else(|| read("sys/class/dmi/id/product_serial"));
        let model = overrides
            .model
            .clone()
            .or_else(|| read("proc/device-tree/model"))
            .or_else(|| read("sys/class/dmi/id/product_name"));
        Self { serial, model }
    }

    /// The facts as the enrolment request's `device` map.
    pub fn to_map(&self) -> BTreeMap<String, String> {
        let mut map = BTreeMap::new();
        if let Some(s) = &self.serial {
            map.insert("serial".to_owned(), s.clone());
        }
        if let Some(m) = &self.model {
            map.insert("model".to_owned(), m.clone());
        }
        map
    }
}

fn read_fact(path: &Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let value: String = text
        .trim_matches(|c: char| c == '\0' || c.is_whitespace())
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_FACT_BYTES)
        .collect();
    let placeholder = value.is_empty()
        || value.chars().all(|c| c == '0')
        || [
            "to be filled by o.e.m.",
            "default string",
            "not specified",
            "none",
        ]
        .contains(&value.to_ascii_lowercase().as_str());
    (!placeholder).then_some(value)
}

#[cfg(test)]
mod tests;
