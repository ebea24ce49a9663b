//! # tessera-board
//!
//! What differs per appliance: sealing the agent's store key (a key file, or a TPM 2.0 behind the `tpm` cargo
//! feature) and device facts (serial, model; from DMI or the device tree where present, from config otherwise).
//!
//! Status: the crate exists so the workspace has its final shape; the `Sealer` trait, the file backend and the
//! device facts arrive with the agent (issue "Agent"), the TPM backend with its own issue.
//!
//! This is the only crate that may contain `unsafe` (for board FFI), and then only item by item with
//! `#[allow(unsafe_code)]` and a safety comment; the workspace denies it everywhere else and the other crates
//! forbid it outright.
