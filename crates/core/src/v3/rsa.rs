//! The RSA seam: the core builds every signed message and picks every key; the
//! SHA256withRSA (RSASSA-PKCS1-v1_5 over SHA-256) operation is the caller's.
//!
//! Why: the pure-Rust `rsa` crate's private-key operations are not constant-time
//! (RUSTSEC-2023-0071, the Marvin attack), and in the Worker and the npm package the key
//! lives in WebCrypto (`crypto.subtle`, imported once per isolate), which is constant-time
//! and asynchronous. So the core depends on no RSA at all by default: a signer or verifier
//! is any type implementing these traits, or the caller takes the two-step road
//! ([`crate::v3::verify::Pending`]: the core hands out `{key, message, signature}`, the shell
//! reports whether it verified). Natively (wxsim, tests) the `ring` feature supplies
//! [`native::PrivateKey`] and [`native::PublicKey`], parsed from PEM; ring's RSA signing is
//! constant-time and blinded.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use thiserror::Error;

use crate::ErrorCode;

/// Why a key could not be used or an RSA operation failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RsaError {
    #[error("key is not usable: {0}")]
    BadKey(String),
    #[error("the RSA operation failed: {0}")]
    Failed(String),
}

impl ErrorCode for RsaError {
    fn code(&self) -> &'static str {
        match self {
            RsaError::BadKey(_) => "V3_BAD_KEY",
            RsaError::Failed(_) => "V3_RSA_FAILED",
        }
    }
}

/// A private key that signs with SHA256withRSA (PKCS#1 v1.5): the merchant's API key in
/// the Worker and tests, WeChat's in wxsim.
pub trait RsaSigner {
    /// The raw signature of `message` (256 bytes for a 2048-bit key).
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, RsaError>;
}

/// A public key that checks SHA256withRSA (PKCS#1 v1.5) signatures: the 微信支付公钥, a
/// platform certificate's key, or (in wxsim) a merchant's.
pub trait RsaVerifier {
    /// Whether `signature` is this key's signature of `message`. Only a boolean: a
    /// malformed signature is simply not a valid one.
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool;
}

/// ring-backed keys, parsed from PEM. Only with the `ring` feature.
#[cfg(feature = "ring")]
pub mod native {
    use ring::rand::SystemRandom;
    use ring::signature::{
        KeyPair, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaKeyPair, UnparsedPublicKey,
    };

    use super::{RsaError, RsaSigner, RsaVerifier, der, pem_block};

    /// An RSA private key: PKCS#8 (`BEGIN PRIVATE KEY`, what the merchant platform's
    /// `apiclient_key.pem` holds) or PKCS#1 (`BEGIN RSA PRIVATE KEY`, the form of WeChat's
    /// published test key).
    pub struct PrivateKey {
        pair: RsaKeyPair,
        rng: SystemRandom,
    }

    impl std::fmt::Debug for PrivateKey {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("PrivateKey(<redacted>)")
        }
    }

    impl PrivateKey {
        pub fn from_pem(pem: &str) -> Result<PrivateKey, RsaError> {
            let (label, der) = pem_block(pem)?;
            let pair = match label.as_str() {
                "PRIVATE KEY" => RsaKeyPair::from_pkcs8(&der),
                "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der),
                other => {
                    return Err(RsaError::BadKey(format!(
                        "PEM holds {other:?}; expected PRIVATE KEY (PKCS#8) or RSA PRIVATE KEY (PKCS#1)"
                    )));
                }
            }
            .map_err(|e| RsaError::BadKey(format!("not an RSA private key ring accepts: {e}")))?;
            Ok(PrivateKey {
                pair,
                rng: SystemRandom::new(),
            })
        }

        /// Its public half, e.g. for wxsim to check the merchant it simulates.
        pub fn public_key(&self) -> PublicKey {
            PublicKey {
                rsa_public_key_der: self.pair.public_key().as_ref().to_vec(),
            }
        }
    }

    impl RsaSigner for PrivateKey {
        fn sign(&self, message: &[u8]) -> Result<Vec<u8>, RsaError> {
            let mut signature = vec![0; self.pair.public().modulus_len()];
            self.pair
                .sign(&RSA_PKCS1_SHA256, &self.rng, message, &mut signature)
                .map_err(|_| RsaError::Failed("ring could not sign".into()))?;
            Ok(signature)
        }
    }

    /// An RSA public key (2048 to 8192 bits), held as a DER `RSAPublicKey`.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct PublicKey {
        rsa_public_key_der: Vec<u8>,
    }

    impl PublicKey {
        /// From `BEGIN PUBLIC KEY` (SPKI: the 微信支付公钥 file `pub_key.pem`), `BEGIN RSA
        /// PUBLIC KEY` (PKCS#1) or `BEGIN CERTIFICATE` (a platform certificate).
        pub fn from_pem(pem: &str) -> Result<PublicKey, RsaError> {
            let (label, der) = pem_block(pem)?;
            let rsa_public_key_der = match label.as_str() {
                "PUBLIC KEY" => der::spki_rsa_key(&der)?.to_vec(),
                "RSA PUBLIC KEY" => der,
                "CERTIFICATE" => der::spki_rsa_key(der::certificate(&der)?.1)?.to_vec(),
                other => {
                    return Err(RsaError::BadKey(format!(
                        "PEM holds {other:?}; expected PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE"
                    )));
                }
            };
            Ok(PublicKey { rsa_public_key_der })
        }
    }

    impl RsaVerifier for PublicKey {
        fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
            UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &self.rsa_public_key_der)
                .verify(message, signature)
                .is_ok()
        }
    }

    /// The serial of a certificate PEM as WeChat writes `Wechatpay-Serial`: uppercase hex,
    /// without leading zero bytes.
    pub fn certificate_serial(pem: &str) -> Result<String, RsaError> {
        let (label, der) = pem_block(pem)?;
        if label != "CERTIFICATE" {
            return Err(RsaError::BadKey(format!(
                "PEM holds {label:?}, not a CERTIFICATE"
            )));
        }
        let serial = der::certificate(&der)?.0;
        let trimmed = match serial.iter().position(|b| *b != 0) {
            Some(i) => &serial[i..],
            None => &serial[serial.len().saturating_sub(1)..],
        };
        Ok(trimmed.iter().map(|b| format!("{b:02X}")).collect())
    }
}

/// A PEM key in the form WebCrypto's `importKey` takes (the npm package holds RSA keys in
/// `crypto.subtle`, which reads PKCS#8 and SPKI, but neither certificates nor PKCS#1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebCryptoKey {
    /// For `importKey('pkcs8', …)`: a private key, `BEGIN PRIVATE KEY`.
    Pkcs8(Vec<u8>),
    /// For `importKey('spki', …)`: `BEGIN PUBLIC KEY` (the 微信支付公钥), or the key of a
    /// `BEGIN CERTIFICATE` (a platform certificate).
    Spki(Vec<u8>),
}

/// Reads a PEM key for WebCrypto (see [`WebCryptoKey`]). RSA keys only; a PKCS#1 private
/// key is refused with the command that converts it.
pub fn webcrypto_key(pem: &str) -> Result<WebCryptoKey, RsaError> {
    let (label, der) = pem_block(pem)?;
    match label.as_str() {
        "PRIVATE KEY" => Ok(WebCryptoKey::Pkcs8(der)),
        "PUBLIC KEY" => {
            der::spki_rsa_key(&der)?;
            Ok(WebCryptoKey::Spki(der))
        }
        "CERTIFICATE" => Ok(WebCryptoKey::Spki(der::certificate(&der)?.1.to_vec())),
        "RSA PRIVATE KEY" => Err(RsaError::BadKey(
            "PEM holds a PKCS#1 RSA PRIVATE KEY, which WebCrypto cannot import: convert it once with `openssl pkcs8 -topk8 -nocrypt -in key.pem` (the merchant platform's apiclient_key.pem is PKCS#8 already)".into(),
        )),
        other => Err(RsaError::BadKey(format!(
            "PEM holds {other:?}; expected PRIVATE KEY (PKCS#8), PUBLIC KEY or CERTIFICATE"
        ))),
    }
}

/// The label and DER bytes of the first PEM block.
pub(crate) fn pem_block(pem: &str) -> Result<(String, Vec<u8>), RsaError> {
    let bad = |why: &str| RsaError::BadKey(format!("not PEM: {why}"));
    let begin = pem
        .find("-----BEGIN ")
        .ok_or_else(|| bad("no -----BEGIN line"))?;
    let after = &pem[begin + "-----BEGIN ".len()..];
    let label_end = after
        .find("-----")
        .ok_or_else(|| bad("unterminated BEGIN line"))?;
    let label = &after[..label_end];
    let body = &after[label_end + 5..];
    let end_marker = format!("-----END {label}-----");
    let end = body
        .find(&end_marker)
        .ok_or_else(|| bad(&format!("no {end_marker} line")))?;
    let b64: String = body[..end].split_ascii_whitespace().collect();
    let der = STANDARD
        .decode(b64.as_bytes())
        .map_err(|e| bad(&format!("body is not base64: {e}")))?;
    Ok((label.to_owned(), der))
}

/// Just enough DER to find an RSA key in an SPKI or an X.509 certificate.
pub(crate) mod der {
    use super::RsaError;

    const SEQUENCE: u8 = 0x30;
    const INTEGER: u8 = 0x02;
    const BIT_STRING: u8 = 0x03;
    const OID: u8 = 0x06;
    const EXPLICIT_0: u8 = 0xa0;
    /// 1.2.840.113549.1.1.1, rsaEncryption.
    const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

    fn bad(why: &str) -> RsaError {
        RsaError::BadKey(format!("DER: {why}"))
    }

    /// One TLV: (tag, content, rest). Definite lengths up to 3 bytes only.
    fn tlv(input: &[u8]) -> Result<(u8, &[u8], &[u8]), RsaError> {
        let (&tag, rest) = input.split_first().ok_or_else(|| bad("truncated tag"))?;
        let (&first, rest) = rest.split_first().ok_or_else(|| bad("truncated length"))?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 3 || rest.len() < n {
                return Err(bad("unsupported length"));
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (len, &rest[n..])
        };
        if rest.len() < len {
            return Err(bad("content runs past the end"));
        }
        Ok((tag, &rest[..len], &rest[len..]))
    }

    fn expect<'a>(input: &'a [u8], want: u8, what: &str) -> Result<(&'a [u8], &'a [u8]), RsaError> {
        let (tag, content, rest) = tlv(input)?;
        if tag != want {
            return Err(bad(&format!("expected {what}")));
        }
        Ok((content, rest))
    }

    /// SubjectPublicKeyInfo → the `RSAPublicKey` inside it.
    pub(super) fn spki_rsa_key(spki: &[u8]) -> Result<&[u8], RsaError> {
        let (inner, _) = expect(spki, SEQUENCE, "SubjectPublicKeyInfo")?;
        let (algorithm, rest) = expect(inner, SEQUENCE, "AlgorithmIdentifier")?;
        let (oid, _) = expect(algorithm, OID, "algorithm OID")?;
        if oid != RSA_ENCRYPTION {
            return Err(RsaError::BadKey("the public key is not RSA".into()));
        }
        let (bits, _) = expect(rest, BIT_STRING, "subjectPublicKey")?;
        match bits.split_first() {
            Some((0, key)) => Ok(key),
            _ => Err(bad("subjectPublicKey has unused bits")),
        }
    }

    /// Certificate → (serial number bytes, its SubjectPublicKeyInfo, checked to be RSA).
    pub(super) fn certificate(cert: &[u8]) -> Result<(&[u8], &[u8]), RsaError> {
        let (inner, _) = expect(cert, SEQUENCE, "Certificate")?;
        let (mut tbs, _) = expect(inner, SEQUENCE, "TBSCertificate")?;
        if tbs.first() == Some(&EXPLICIT_0) {
            tbs = tlv(tbs)?.2;
        }
        let (serial, rest) = expect(tbs, INTEGER, "serialNumber")?;
        let mut rest = rest;
        for what in ["signature", "issuer", "validity", "subject"] {
            rest = expect(rest, SEQUENCE, what)?.1;
        }
        let spki_len = rest.len() - tlv(rest)?.2.len();
        let spki = &rest[..spki_len];
        spki_rsa_key(spki)?;
        Ok((serial, spki))
    }
}
