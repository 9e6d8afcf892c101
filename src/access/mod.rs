//! API tokens: generation and hashing ([`service`] stores them and resolves callers).
//!
//! Tokens are 256-bit random strings (`sp_` + 64 hex digits), shown once, stored as SHA-256.

pub mod service;
pub mod session;

use rand::RngCore;
use sha2::{Digest, Sha256};

/// Name of the admin token `SLOPROOF_ADMIN_TOKEN` sets.
pub const BOOTSTRAP_TOKEN_NAME: &str = "bootstrap-admin";

/// A new random token.
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "sp_{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// Hex SHA-256 of a token.
pub fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
