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

    use super::{RsaError, RsaSigner, RsaVerifier};
    use crate::v3::pem;

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
            let der = pem::private_key_pkcs8(pem)?;
            let pair = RsaKeyPair::from_pkcs8(&der).map_err(|e| {
                RsaError::BadKey(format!("not an RSA private key ring accepts: {e}"))
            })?;
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
            let spki = pem::public_key_spki(pem)?;
            Ok(PublicKey {
                rsa_public_key_der: pem::spki_rsa_key(&spki)?.to_vec(),
            })
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
        let (label, der) = pem::decode(pem)?;
        if label != "CERTIFICATE" {
            return Err(RsaError::BadKey(format!(
                "PEM holds {label:?}, not a CERTIFICATE"
            )));
        }
        pem::serial_hex(&der)
    }
}

/// A PEM key in the form WebCrypto's `importKey` takes (the npm package holds RSA keys in
/// `crypto.subtle`, which reads PKCS#8 and SPKI, but neither certificates nor PKCS#1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebCryptoKey {
    /// For `importKey('pkcs8', …)`: a private key (`BEGIN PRIVATE KEY`, or a PKCS#1
    /// `BEGIN RSA PRIVATE KEY` wrapped as PKCS#8).
    Pkcs8(Vec<u8>),
    /// For `importKey('spki', …)`: `BEGIN PUBLIC KEY` (the 微信支付公钥), a PKCS#1 `BEGIN RSA
    /// PUBLIC KEY` wrapped, or the key of a `BEGIN CERTIFICATE` (a platform certificate).
    Spki(Vec<u8>),
}

/// Reads a PEM key for WebCrypto (see [`WebCryptoKey`]); the framing is
/// [`crate::v3::pem`]'s, the same the Worker imports its keys with.
pub fn webcrypto_key(pem: &str) -> Result<WebCryptoKey, RsaError> {
    let (label, _) = crate::v3::pem::decode(pem)?;
    if label.contains("PRIVATE KEY") {
        crate::v3::pem::private_key_pkcs8(pem).map(WebCryptoKey::Pkcs8)
    } else {
        crate::v3::pem::public_key_spki(pem).map(WebCryptoKey::Spki)
    }
}
