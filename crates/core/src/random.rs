//! The one edge where randomness enters the core.
//!
//! Everything unpredictable (nonce_str, out_trade_no, session tokens) comes from the OS
//! CSPRNG through `getrandom` (`crypto.getRandomValues` on wasm). Never a clock, never a
//! small alphabet: the seed tutorial's `random.sample("123456789abcdefghijklmn", 10)`
//! draws 10 of 23 letters without repetition, about 2^41 values, and its order numbers
//! were a timestamp plus 5 such letters, which collide under load.

use base64::Engine;
use thiserror::Error;

use crate::ErrorCode;

/// The operating system refused to give randomness. Rare, but never papered over with a
/// weaker source.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("the system random source failed: {0}")]
pub struct RandomError(String);

impl ErrorCode for RandomError {
    fn code(&self) -> &'static str {
        "RANDOM_UNAVAILABLE"
    }
}

const ALNUM: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Fills `buf` from the OS CSPRNG.
pub fn fill(buf: &mut [u8]) -> Result<(), RandomError> {
    getrandom::fill(buf).map_err(|e| RandomError(e.to_string()))
}

/// `len` characters from `[0-9A-Za-z]`, uniformly: bytes ≥ 248 are rejected so that
/// `b % 62` has no bias. Each character carries log2(62) ≈ 5.95 bits.
pub fn alphanumeric(len: usize) -> Result<String, RandomError> {
    let mut out = String::with_capacity(len);
    let mut pool = [0u8; 64];
    while out.len() < len {
        fill(&mut pool)?;
        for &b in &pool {
            if b < 248 && out.len() < len {
                out.push(ALNUM[usize::from(b % 62)] as char);
            }
        }
    }
    Ok(out)
}

/// A `nonce_str` of WeChat's maximum length, 32 characters (≈190 bits).
pub fn nonce_str() -> Result<String, RandomError> {
    alphanumeric(32)
}

/// An `out_trade_no`: 32 characters of `[0-9A-Za-z]`, within WeChat's
/// `[0-9A-Za-z_\-|*]{1,32}`, unique without coordination (≈190 bits).
pub fn out_trade_no() -> Result<String, RandomError> {
    alphanumeric(32)
}

/// An opaque session token: 256 random bits, base64url without padding (43 characters),
/// safe in a URL, a header and a KV key.
pub fn token() -> Result<String, RandomError> {
    let mut bytes = [0u8; 32];
    fill(&mut bytes)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Whether `s` has the shape of a [`token`] (43 characters of base64url): anything else
/// cannot be one of ours and is refused without a storage lookup.
pub fn is_token_shaped(s: &str) -> bool {
    s.len() == 43
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn tokens_have_the_shape_we_check() {
        assert!(is_token_shaped(&token().unwrap()));
        assert!(!is_token_shaped("short"));
        assert!(!is_token_shaped(&"+".repeat(43)));
    }

    #[test]
    fn nonces_are_long_alphanumeric_and_distinct() {
        let mut seen = HashSet::new();
        for _ in 0..10_000 {
            let n = nonce_str().unwrap();
            assert_eq!(n.len(), 32);
            assert!(n.bytes().all(|b| b.is_ascii_alphanumeric()));
            assert!(seen.insert(n), "a nonce repeated");
        }
    }

    #[test]
    fn alphabet_is_fully_used() {
        let s = alphanumeric(20_000).unwrap();
        let used: HashSet<u8> = s.bytes().collect();
        assert_eq!(used.len(), 62);
    }

    #[test]
    fn tokens_are_url_safe_and_256_bits() {
        let t = token().unwrap();
        assert_eq!(t.len(), 43);
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_ne!(t, token().unwrap());
    }
}
