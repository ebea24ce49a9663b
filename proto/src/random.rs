//! The one source of randomness: the operating system's CSPRNG.

use rand_core::{OsRng, RngCore as _};

/// Fills `buf` from the OS CSPRNG.
pub(crate) fn fill(buf: &mut [u8]) {
    OsRng.fill_bytes(buf);
}

/// A fresh random array.
pub(crate) fn array<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    fill(&mut out);
    out
}
