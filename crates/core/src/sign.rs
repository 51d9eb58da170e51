//! The WeChat Pay v2 signature.
//!
//! 80% of "签名错误" comes from building the string to sign differently from WeChat
//! (the seed notes say as much). The rule, exactly once:
//!
//! 1. take every parameter except `sign` whose value is not empty;
//! 2. sort by key in byte order (a [`Params`] `BTreeMap` already is);
//! 3. join `k=v` with `&`, then append `&key=API_KEY`;
//! 4. MD5 it, or HMAC-SHA256 it keyed with the API key; uppercase hex.
//!
//! `sign_type`, when present, is an ordinary parameter: it is part of the signed string.

use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;
use std::fmt;
use std::str::FromStr;
use subtle::ConstantTimeEq;
use thiserror::Error;

use crate::{ErrorCode, Params};

/// The two v2 signature algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SignType {
    /// WeChat's default when `sign_type` is absent.
    #[default]
    Md5,
    HmacSha256,
}

impl SignType {
    /// The spelling WeChat uses in `sign_type` / `signType`.
    pub const fn as_str(self) -> &'static str {
        match self {
            SignType::Md5 => "MD5",
            SignType::HmacSha256 => "HMAC-SHA256",
        }
    }

    /// The algorithm named by a parameter map's `sign_type`; absent means MD5, as WeChat
    /// says. An unknown name is an error, never a silent fallback.
    pub fn of_params(params: &Params) -> Result<SignType, SignError> {
        SignType::named(params.get("sign_type").map(String::as_str))
    }

    /// The algorithm a `sign_type` value names, `None` (absent) meaning MD5.
    pub fn named(sign_type: Option<&str>) -> Result<SignType, SignError> {
        sign_type.map_or(Ok(SignType::Md5), str::parse)
    }

    /// Length of the uppercase hex sign this algorithm yields.
    pub const fn hex_len(self) -> usize {
        match self {
            SignType::Md5 => 32,
            SignType::HmacSha256 => 64,
        }
    }
}

impl fmt::Display for SignType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SignType {
    type Err = SignError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "MD5" => Ok(SignType::Md5),
            "HMAC-SHA256" => Ok(SignType::HmacSha256),
            other => Err(SignError::UnknownSignType(other.to_owned())),
        }
    }
}

/// Why a signature check failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignError {
    #[error("the parameters carry no `sign`")]
    MissingSign,
    #[error("unknown sign type {0:?}: use \"MD5\" or \"HMAC-SHA256\"")]
    UnknownSignType(String),
    #[error(
        "signature mismatch: the sign does not match these parameters under this key (explain_sign tells which mistake would explain it)"
    )]
    Mismatch,
}

impl ErrorCode for SignError {
    fn code(&self) -> &'static str {
        match self {
            SignError::MissingSign => "SIGN_MISSING",
            SignError::UnknownSignType(_) => "SIGN_TYPE_UNKNOWN",
            SignError::Mismatch => "SIGN_MISMATCH",
        }
    }
}

/// An uppercase hex signature held on the stack: signing allocates nothing.
#[derive(Clone, Copy)]
pub struct Signature {
    hex: [u8; 64],
    len: usize,
}

impl Signature {
    fn from_digest(digest: &[u8]) -> Self {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let mut hex = [0u8; 64];
        for (i, b) in digest.iter().enumerate().take(32) {
            hex[2 * i] = HEX[usize::from(b >> 4)];
            hex[2 * i + 1] = HEX[usize::from(b & 0x0f)];
        }
        Signature {
            hex,
            len: digest.len().min(32) * 2,
        }
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits were written.
        std::str::from_utf8(&self.hex[..self.len]).unwrap_or_default()
    }

    /// Constant-time comparison with a sign received from outside. A length mismatch is
    /// answered at once; the length is not secret.
    pub fn matches(&self, given: &str) -> bool {
        bool::from(self.hex[..self.len].ct_eq(given.as_bytes()))
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", self.as_str())
    }
}

/// Calls `feed` with the pieces of `stringA` (see the module docs), without `&key=`.
/// `pairs` must come in byte order of their keys, each key once.
fn feed_canonical<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    mut feed: impl FnMut(&[u8]),
) {
    let mut first = true;
    for (k, v) in pairs {
        if v.is_empty() || k == "sign" {
            continue;
        }
        if !first {
            feed(b"&");
        }
        first = false;
        feed(k.as_bytes());
        feed(b"=");
        feed(v.as_bytes());
    }
}

fn pairs(params: &Params) -> impl Iterator<Item = (&str, &str)> {
    params.iter().map(|(k, v)| (k.as_str(), v.as_str()))
}

/// `stringA`: the parameters WeChat signs, `k=v&k=v`, without the key. Shown to people
/// debugging a mismatch; [`sign`] never builds it as a `String`.
pub fn canonical_string(params: &Params) -> String {
    let mut s = String::new();
    feed_canonical(pairs(params), |piece| {
        s.push_str(std::str::from_utf8(piece).unwrap_or_default())
    });
    s
}

/// Signs `params` (its own `sign`, if any, is ignored) with the API key.
pub fn sign(params: &Params, key: &str, sign_type: SignType) -> Signature {
    sign_sorted_pairs(pairs(params), key, sign_type)
}

/// [`sign`] over borrowed pairs, for callers that already hold the parameters in another
/// form (the npm package signs without building a map). The pairs must be sorted by key
/// in byte order, each key once; `sign` and empty values are skipped here as always.
pub fn sign_sorted_pairs<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    key: &str,
    sign_type: SignType,
) -> Signature {
    sign_prepared(Hasher::new(sign_type, key), key, pairs)
}

/// The canonical string of `pairs` and `&key=KEY`, through a hasher already keyed.
fn sign_prepared<'a>(
    hasher: Hasher,
    key: &str,
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Signature {
    let mut h = hasher;
    feed_canonical(pairs, |p| h.update(p));
    h.update(b"&key=");
    h.update(key.as_bytes());
    h.finish()
}

/// An API key made ready to sign many parameter maps: for HMAC-SHA256 the key's inner and
/// outer pads are hashed once, here, instead of once per sign (two of the seven SHA-256
/// blocks of a unifiedorder). Signs exactly as [`sign_sorted_pairs`] does.
#[derive(Clone)]
pub struct Signer {
    key: String,
    sign_type: SignType,
    prepared: Hasher,
}

impl Signer {
    pub fn new(key: &str, sign_type: SignType) -> Signer {
        Signer {
            key: key.to_owned(),
            sign_type,
            prepared: Hasher::new(sign_type, key),
        }
    }

    /// Whether this signer signs with `key` under `sign_type`.
    pub fn is_for(&self, key: &str, sign_type: SignType) -> bool {
        self.sign_type == sign_type && self.key == key
    }

    /// [`sign_sorted_pairs`] under this signer's key and algorithm.
    pub fn sign_sorted_pairs<'a>(
        &self,
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Signature {
        sign_prepared(self.prepared.clone(), &self.key, pairs)
    }

    /// [`verify_sorted_pairs`] under this signer's key and algorithm.
    pub fn verify_sorted_pairs(&self, pairs: &[(&str, &str)]) -> Result<(), SignError> {
        let given = pairs.iter().find(|(k, _)| *k == "sign").map(|(_, v)| *v);
        judge(given, self.sign_sorted_pairs(pairs.iter().copied()))
    }
}

/// The sign of an arbitrary message: `MD5(message)` or `HMAC-SHA256(key, message)`.
/// Only [`crate::explain`] needs this, to try the strings people sign by mistake.
pub(crate) fn sign_message(message: &str, key: &str, sign_type: SignType) -> Signature {
    let mut h = Hasher::new(sign_type, key);
    h.update(message.as_bytes());
    h.finish()
}

/// The two digests behind a v2 sign, fed in pieces so no string is ever built.
#[derive(Clone)]
enum Hasher {
    Md5(Md5),
    /// Keyed with the API key (which is also appended to the message).
    HmacSha256(Hmac<Sha256>),
}

impl Hasher {
    fn new(sign_type: SignType, key: &str) -> Self {
        match sign_type {
            SignType::Md5 => Hasher::Md5(Md5::new()),
            SignType::HmacSha256 => Hasher::HmacSha256(
                <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_bytes())
                    .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length")),
            ),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Md5(h) => h.update(bytes),
            Hasher::HmacSha256(m) => m.update(bytes),
        }
    }

    fn finish(self) -> Signature {
        match self {
            Hasher::Md5(h) => Signature::from_digest(&h.finalize()),
            Hasher::HmacSha256(m) => Signature::from_digest(&m.finalize().into_bytes()),
        }
    }
}

/// Signs with the algorithm the params' own `sign_type` names (absent = MD5), as WeChat
/// does when it reads a request.
pub fn sign_by_params(params: &Params, key: &str) -> Result<Signature, SignError> {
    Ok(sign(params, key, SignType::of_params(params)?))
}

/// Checks `params["sign"]` under `sign_type`, in constant time.
///
/// The algorithm is the caller's choice, not the message's: a notify may omit
/// `sign_type` even for an HMAC-SHA256 merchant, and an attacker must not pick the
/// algorithm for us.
pub fn verify(params: &Params, key: &str, sign_type: SignType) -> Result<(), SignError> {
    judge(
        params.get("sign").map(String::as_str),
        sign(params, key, sign_type),
    )
}

/// [`verify`] over borrowed pairs sorted by key in byte order (see [`sign_sorted_pairs`]).
pub fn verify_sorted_pairs(
    pairs: &[(&str, &str)],
    key: &str,
    sign_type: SignType,
) -> Result<(), SignError> {
    let given = pairs.iter().find(|(k, _)| *k == "sign").map(|(_, v)| *v);
    judge(
        given,
        sign_sorted_pairs(pairs.iter().copied(), key, sign_type),
    )
}

/// The verdict on a received sign against the one we computed.
fn judge(given: Option<&str>, expected: Signature) -> Result<(), SignError> {
    match given {
        None => Err(SignError::MissingSign),
        Some(given) if expected.matches(given) => Ok(()),
        Some(_) => Err(SignError::Mismatch),
    }
}

/// Signs and inserts `sign` into `params`, returning it as well.
pub fn sign_into(params: &mut Params, key: &str, sign_type: SignType) -> String {
    let s = sign(params, key, sign_type).to_string();
    params.insert("sign".to_owned(), s.clone());
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn params(pairs: &[(&str, &str)]) -> Params {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn canonical_string_skips_empty_and_sign_and_sorts_by_bytes() {
        let p = params(&[
            ("b", "2"),
            ("a", "1"),
            ("empty", ""),
            ("sign", "XYZ"),
            ("B", "upper sorts first"),
            ("sign_type", "MD5"),
        ]);
        assert_eq!(
            canonical_string(&p),
            "B=upper sorts first&a=1&b=2&sign_type=MD5"
        );
    }

    #[test]
    fn unknown_sign_type_is_an_error() {
        let p = params(&[("sign_type", "SHA1")]);
        assert_eq!(
            sign_by_params(&p, "k").unwrap_err(),
            SignError::UnknownSignType("SHA1".into())
        );
        assert_eq!(
            SignType::of_params(&params(&[])).unwrap(),
            SignType::Md5,
            "absent sign_type means MD5"
        );
    }

    #[test]
    fn verify_rejects_lowercase_and_truncated_signs() {
        let mut p = params(&[("a", "1")]);
        let s = sign_into(&mut p, "key", SignType::Md5);
        assert_eq!(verify(&p, "key", SignType::Md5), Ok(()));
        p.insert("sign".into(), s.to_lowercase());
        assert_eq!(verify(&p, "key", SignType::Md5), Err(SignError::Mismatch));
        p.insert("sign".into(), s[..31].to_string());
        assert_eq!(verify(&p, "key", SignType::Md5), Err(SignError::Mismatch));
        p.remove("sign");
        assert_eq!(
            verify(&p, "key", SignType::Md5),
            Err(SignError::MissingSign)
        );
    }

    #[test]
    fn the_algorithm_is_the_verifiers_choice() {
        let mut p = params(&[("a", "1")]);
        sign_into(&mut p, "key", SignType::HmacSha256);
        assert_eq!(verify(&p, "key", SignType::HmacSha256), Ok(()));
        assert_eq!(verify(&p, "key", SignType::Md5), Err(SignError::Mismatch));
    }

    #[test]
    fn a_signer_signs_as_sign_does_again_and_again() {
        let long = "x".repeat(300); // several blocks
        let p = params(&[("a", "1"), ("b", long.as_str()), ("c", ""), ("sign", "S")]);
        for t in [SignType::Md5, SignType::HmacSha256] {
            let signer = Signer::new("key", t);
            assert!(signer.is_for("key", t) && !signer.is_for("other", t));
            for _ in 0..2 {
                assert_eq!(
                    signer.sign_sorted_pairs(pairs(&p)).as_str(),
                    sign(&p, "key", t).as_str()
                );
            }
            let pairs: Vec<(&str, &str)> = pairs(&p).collect();
            assert_eq!(signer.verify_sorted_pairs(&pairs), Err(SignError::Mismatch));
        }
    }
}
