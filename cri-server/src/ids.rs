//! Fresh ids for pods, containers and streaming tokens.

use std::fs;

use crate::error::{CriError, Result};

/// A new 64-hex-digit id from the kernel's random source.
pub(crate) fn new_id() -> Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(CriError::io("reading /dev/urandom for a new id"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
