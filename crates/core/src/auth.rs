//! Operator and merchant credentials: the admin token check and merchant API keys.
//!
//! A merchant's API key is shown once, when it is made; storage keeps only its SHA-256,
//! so a leaked table leaks no key. Keys are 256 random bits, which is why a plain
//! (unsalted, fast) hash is enough: there is no dictionary to try. Lookups go by the
//! hash, and the admin token is compared in constant time, so neither leaks through
//! timing how much of a guess was right.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::random::{self, RandomError};

/// What every merchant API key starts with, so a key found in a log or a paste is
/// recognisable (and scanners can look for it).
pub const API_KEY_PREFIX: &str = "wxk_";

/// A new merchant API key: the prefix and 256 random bits in base64url.
pub fn new_api_key() -> Result<String, RandomError> {
    Ok(format!("{API_KEY_PREFIX}{}", random::token()?))
}

/// Whether `s` can be one of our API keys (checked before any storage lookup).
pub fn is_api_key_shaped(s: &str) -> bool {
    s.strip_prefix(API_KEY_PREFIX)
        .is_some_and(random::is_token_shaped)
}

/// The form an API key is stored and looked up in: lowercase hex SHA-256.
pub fn api_key_hash(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    out
}

/// Whether `given` is the configured admin token, in time that does not depend on where
/// they differ. An empty configured token matches nothing: an unset secret must not open
/// the admin routes.
pub fn admin_token_matches(configured: &str, given: &str) -> bool {
    if configured.is_empty() {
        return false;
    }
    // Compare digests so the comparison also hides the configured token's length.
    let a = Sha256::digest(configured.as_bytes());
    let b = Sha256::digest(given.as_bytes());
    bool::from(a.as_slice().ct_eq(b.as_slice()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_random_and_recognised() {
        let a = new_api_key().unwrap();
        let b = new_api_key().unwrap();
        assert_ne!(a, b);
        assert!(is_api_key_shaped(&a), "{a}");
        assert!(!is_api_key_shaped(&a[1..]));
        assert!(!is_api_key_shaped(&random::token().unwrap()));
        assert!(!is_api_key_shaped("wxk_short"));
    }

    #[test]
    fn the_hash_is_sha256_hex() {
        // FIPS 180-2 test vector.
        assert_eq!(
            api_key_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn the_admin_token_must_match_exactly_and_never_when_unset() {
        assert!(admin_token_matches("s3cret-token", "s3cret-token"));
        assert!(!admin_token_matches("s3cret-token", "s3cret-tokeN"));
        assert!(!admin_token_matches("s3cret-token", "s3cret-token "));
        assert!(!admin_token_matches("s3cret-token", ""));
        assert!(!admin_token_matches("", ""));
    }
}
