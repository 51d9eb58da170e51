//! `AEAD_AES_256_GCM`: the encryption of a v3 notify's `resource` (and of the platform
//! certificates' download).
//!
//! Key: the APIv3 key, its 32 bytes as set in the merchant platform; nonce: `resource.nonce`
//! (12 bytes of text, used as bytes); AAD: `resource.associated_data` (may be empty);
//! `resource.ciphertext` is base64 of the ciphertext followed by the 16-byte tag. Sources:
//! 如何解密回调报文 <https://pay.weixin.qq.com/doc/v3/merchant/4012071382> (the official Java:
//! `GCMParameterSpec(128, nonce)`, `updateAAD(associatedData)`, `doFinal(base64(ciphertext))`)
//! and wechatpay-java's `AeadAesCipherTest` (a 32-byte key, 12-byte nonce).
//!
//! A key of any other length is refused: wechatpay-go's notify test data uses a 16-byte key
//! (AES-128-GCM), which a v3 key check must refuse rather than quietly run another cipher.

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::fmt;
use thiserror::Error;

use crate::ErrorCode;

/// Bytes of an APIv3 key.
pub const KEY_LEN: usize = 32;
/// Bytes of the nonce WeChat writes in `resource.nonce`.
pub const NONCE_LEN: usize = 12;
/// Bytes of the GCM tag at the end of the ciphertext.
pub const TAG_LEN: usize = 16;

/// Why a resource cannot be decrypted (or encrypted).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AeadError {
    #[error(
        "the APIv3 key is {0} bytes; it must be exactly 32 (the APIv3 key from the merchant platform, not the v2 API key or the AppSecret)"
    )]
    BadKeyLength(usize),
    #[error("resource.nonce is {0} bytes; WeChat's AEAD_AES_256_GCM nonce is 12")]
    BadNonceLength(usize),
    #[error("resource.ciphertext is not base64")]
    BadBase64,
    #[error("resource.ciphertext is {0} bytes, shorter than its 16-byte tag")]
    TooShort(usize),
    #[error(
        "the GCM tag does not verify: wrong APIv3 key, nonce or associated_data, or the ciphertext was altered"
    )]
    Failed,
}

impl ErrorCode for AeadError {
    fn code(&self) -> &'static str {
        match self {
            AeadError::BadKeyLength(_) => "BAD_KEY_LENGTH",
            AeadError::BadNonceLength(_) => "V3_BAD_NONCE_LENGTH",
            AeadError::BadBase64 => "BAD_BASE64",
            AeadError::TooShort(_) => "BAD_CIPHERTEXT_LENGTH",
            AeadError::Failed => "V3_DECRYPT_FAILED",
        }
    }
}

/// The APIv3 key. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiV3Key([u8; KEY_LEN]);

impl fmt::Debug for ApiV3Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiV3Key(<redacted>)")
    }
}

impl ApiV3Key {
    /// The key as the merchant platform shows it: 32 characters, used as their bytes.
    pub fn new(key: &str) -> Result<ApiV3Key, AeadError> {
        key.as_bytes()
            .try_into()
            .map(ApiV3Key)
            .map_err(|_| AeadError::BadKeyLength(key.len()))
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&self.0.into())
    }
}

fn nonce(nonce: &str) -> Result<Nonce<aes_gcm::aead::consts::U12>, AeadError> {
    let bytes: [u8; NONCE_LEN] = nonce
        .as_bytes()
        .try_into()
        .map_err(|_| AeadError::BadNonceLength(nonce.len()))?;
    Ok(bytes.into())
}

/// Decrypts a resource: base64 → ciphertext ‖ tag → plaintext, the tag checked over
/// `associated_data`. Never panics.
pub fn decrypt(
    key: &ApiV3Key,
    nonce_text: &str,
    associated_data: &str,
    ciphertext_b64: &str,
) -> Result<Vec<u8>, AeadError> {
    let nonce = nonce(nonce_text)?;
    let sealed = STANDARD
        .decode(ciphertext_b64.as_bytes())
        .map_err(|_| AeadError::BadBase64)?;
    if sealed.len() < TAG_LEN {
        return Err(AeadError::TooShort(sealed.len()));
    }
    key.cipher()
        .decrypt(
            &nonce,
            Payload {
                msg: &sealed,
                aad: associated_data.as_bytes(),
            },
        )
        .map_err(|_| AeadError::Failed)
}

/// Encrypts a resource as WeChat does (for wxsim and round trips): base64 of ciphertext ‖
/// tag. The caller supplies the nonce (from [`crate::random`]); reusing one under a key
/// breaks GCM.
pub fn encrypt(
    key: &ApiV3Key,
    nonce_text: &str,
    associated_data: &str,
    plaintext: &[u8],
) -> Result<String, AeadError> {
    let nonce = nonce(nonce_text)?;
    let sealed = key
        .cipher()
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad: associated_data.as_bytes(),
            },
        )
        .map_err(|_| AeadError::Failed)?;
    Ok(STANDARD.encode(sealed))
}

/// `ciphertext_b64` with the last byte of its tag flipped: for senders that test a
/// receiver's tag check (wxsim's `bad_tag` fault). Never panics.
pub fn corrupt_tag(ciphertext_b64: &str) -> Result<String, AeadError> {
    let mut sealed = STANDARD
        .decode(ciphertext_b64.as_bytes())
        .map_err(|_| AeadError::BadBase64)?;
    if sealed.len() < TAG_LEN {
        return Err(AeadError::TooShort(sealed.len()));
    }
    if let Some(b) = sealed.last_mut() {
        *b ^= 0x01;
    }
    Ok(STANDARD.encode(sealed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_trip_and_every_tamper_is_refused() {
        let key = ApiV3Key::new(&"k".repeat(32)).unwrap();
        let c = encrypt(&key, "0123456789ab", "transaction", b"{\"a\":1}").unwrap();
        assert_eq!(
            decrypt(&key, "0123456789ab", "transaction", &c).unwrap(),
            b"{\"a\":1}"
        );
        assert_eq!(
            decrypt(&key, "0123456789ab", "certificate", &c),
            Err(AeadError::Failed)
        );
        assert_eq!(
            decrypt(&key, "0123456789ac", "transaction", &c),
            Err(AeadError::Failed)
        );
        let other = ApiV3Key::new(&"j".repeat(32)).unwrap();
        assert_eq!(
            decrypt(&other, "0123456789ab", "transaction", &c),
            Err(AeadError::Failed)
        );
        assert_eq!(
            decrypt(&key, "0123456789ab", "", "AAAA"),
            Err(AeadError::TooShort(3))
        );
        assert_eq!(
            decrypt(&key, "0123456789ab", "", "%%"),
            Err(AeadError::BadBase64)
        );
        assert_eq!(
            decrypt(&key, "short", "", &c),
            Err(AeadError::BadNonceLength(5))
        );
    }

    #[test]
    fn only_a_32_byte_key_is_an_apiv3_key() {
        assert_eq!(
            ApiV3Key::new("testMchAPIv3Key0"),
            Err(AeadError::BadKeyLength(16))
        );
        assert!(format!("{:?}", ApiV3Key::new(&"k".repeat(32)).unwrap()).contains("redacted"));
    }
}
