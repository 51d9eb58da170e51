//! `wx.getUserInfo` / `getPhoneNumber` payloads: decryption and the rawData signature.
//!
//! WeChat encrypts the user's profile with AES-128-CBC under the user's current
//! `session_key`. The seed tutorial's `_unpad` trusts the last byte blindly
//! (`s[:-ord(s[-1])]`), so a stale key yields garbage that sometimes "decrypts". Here the
//! padding is checked in full, the JSON parsed, and the watermark's appid compared: a
//! stale session_key ends in a typed error that says "log in again", never in garbage.

use aes::Aes128;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;
use thiserror::Error;

use crate::ErrorCode;

/// Which input a base64 error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    SessionKey,
    EncryptedData,
    Iv,
}

impl Field {
    pub const fn as_str(self) -> &'static str {
        match self {
            Field::SessionKey => "session_key",
            Field::EncryptedData => "encryptedData",
            Field::Iv => "iv",
        }
    }
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a payload could not be decrypted. Each says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CryptError {
    #[error("{field} is not valid base64{hint}")]
    BadBase64 { field: Field, hint: &'static str },
    #[error("session_key decodes to {0} bytes; it must be 16 (AES-128)")]
    BadKeyLength(usize),
    #[error("iv decodes to {0} bytes; it must be 16")]
    BadIvLength(usize),
    #[error(
        "encryptedData decodes to {0} bytes; it must be a non-empty multiple of 16 (AES blocks)"
    )]
    BadCiphertextLength(usize),
    #[error(
        "PKCS#7 padding is wrong: the session_key is stale or the data was tampered with; call wx.login again"
    )]
    BadPadding,
    #[error(
        "decrypted data is not JSON: the session_key is stale or the data was tampered with; call wx.login again"
    )]
    NotJson,
    #[error("decrypted data carries no watermark.appid")]
    MissingWatermark,
    #[error(
        "watermark appid {found:?} is not ours ({expected:?}): the data was encrypted for another mini-program"
    )]
    WatermarkMismatch { expected: String, found: String },
    #[error("rawData signature does not match sha1(rawData + session_key)")]
    RawDataSignatureMismatch,
}

impl ErrorCode for CryptError {
    fn code(&self) -> &'static str {
        match self {
            CryptError::BadBase64 { .. } => "BAD_BASE64",
            CryptError::BadKeyLength(_) => "BAD_KEY_LENGTH",
            CryptError::BadIvLength(_) => "BAD_IV_LENGTH",
            CryptError::BadCiphertextLength(_) => "BAD_CIPHERTEXT_LENGTH",
            CryptError::BadPadding => "BAD_PADDING",
            CryptError::NotJson => "NOT_JSON",
            CryptError::MissingWatermark => "MISSING_WATERMARK",
            CryptError::WatermarkMismatch { .. } => "WATERMARK_MISMATCH",
            CryptError::RawDataSignatureMismatch => "RAW_DATA_SIGNATURE_MISMATCH",
        }
    }
}

/// The watermark WeChat adds to every encrypted payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    pub appid: String,
    pub timestamp: i64,
}

/// A decrypted payload: the profile (or phone number…) without its watermark, and the
/// watermark itself.
#[derive(Debug, Clone, PartialEq)]
pub struct UserData {
    pub data: Map<String, Value>,
    pub watermark: Watermark,
}

fn decode(field: Field, s: &str) -> Result<Vec<u8>, CryptError> {
    B64.decode(s).map_err(|_| CryptError::BadBase64 {
        field,
        // The commonest cause by far: a form-encoded body turned '+' into ' '.
        hint: if s.contains(' ') {
            " (it contains a space: was a '+' turned into ' ' by form-encoding? URL-encode it or send JSON)"
        } else {
            ""
        },
    })
}

fn key_of(session_key_b64: &str) -> Result<[u8; 16], CryptError> {
    let key = decode(Field::SessionKey, session_key_b64)?;
    key.as_slice()
        .try_into()
        .map_err(|_| CryptError::BadKeyLength(key.len()))
}

fn iv_of(iv_b64: &str) -> Result<[u8; 16], CryptError> {
    let iv = decode(Field::Iv, iv_b64)?;
    iv.as_slice()
        .try_into()
        .map_err(|_| CryptError::BadIvLength(iv.len()))
}

/// The plaintext of a payload: AES-128-CBC with every PKCS#7 pad byte checked. Callers
/// that parse JSON themselves (the npm package uses the engine's `JSON.parse`) must then
/// pass the watermark to [`check_watermark`].
pub fn decrypt_payload(
    session_key_b64: &str,
    encrypted_b64: &str,
    iv_b64: &str,
) -> Result<Vec<u8>, CryptError> {
    let key = key_of(session_key_b64)?;
    let iv = iv_of(iv_b64)?;
    let mut buf = decode(Field::EncryptedData, encrypted_b64)?;
    if buf.is_empty() || buf.len() % 16 != 0 {
        return Err(CryptError::BadCiphertextLength(buf.len()));
    }
    let len = cbc::Decryptor::<Aes128>::new(&key.into(), &iv.into())
        .decrypt_padded::<Pkcs7>(&mut buf)
        .map_err(|_| CryptError::BadPadding)?
        .len();
    buf.truncate(len);
    Ok(buf)
}

/// The watermark must exist and name our appid: data encrypted for another
/// mini-program (or forged) is refused.
pub fn check_watermark(appid: &str, watermark: Option<Watermark>) -> Result<Watermark, CryptError> {
    let watermark = watermark.ok_or(CryptError::MissingWatermark)?;
    if watermark.appid != appid {
        return Err(CryptError::WatermarkMismatch {
            expected: appid.to_owned(),
            found: watermark.appid,
        });
    }
    Ok(watermark)
}

/// Decrypts `encryptedData` from `wx.getUserInfo` (or any payload WeChat encrypts with
/// the session_key) and checks it was made for `appid`.
pub fn decrypt_user_data(
    appid: &str,
    session_key_b64: &str,
    encrypted_b64: &str,
    iv_b64: &str,
) -> Result<UserData, CryptError> {
    let plain = decrypt_payload(session_key_b64, encrypted_b64, iv_b64)?;
    let Ok(Value::Object(mut data)) = serde_json::from_slice::<Value>(&plain) else {
        return Err(CryptError::NotJson);
    };
    let watermark = data
        .remove("watermark")
        .and_then(|w| serde_json::from_value::<Watermark>(w).ok());
    let watermark = check_watermark(appid, watermark)?;
    Ok(UserData { data, watermark })
}

/// Encrypts a payload the way WeChat does (for the simulator and for tests): the
/// watermark is added to `data`, the JSON encrypted under the session_key. Returns
/// `(encryptedData, iv)` in base64.
pub fn encrypt_user_data(
    session_key_b64: &str,
    data: &Map<String, Value>,
    watermark: &Watermark,
    iv: [u8; 16],
) -> Result<(String, String), CryptError> {
    let key = key_of(session_key_b64)?;
    let mut full = data.clone();
    full.insert(
        "watermark".into(),
        serde_json::json!({ "timestamp": watermark.timestamp, "appid": watermark.appid }),
    );
    let plain = serde_json::to_vec(&full).map_err(|_| CryptError::NotJson)?;
    let cipher =
        cbc::Encryptor::<Aes128>::new(&key.into(), &iv.into()).encrypt_padded_vec::<Pkcs7>(&plain);
    Ok((B64.encode(cipher), B64.encode(iv)))
}

/// `signature` of `wx.getUserInfo`: lowercase hex `sha1(rawData + session_key)`, where
/// session_key is the base64 string itself, as WeChat computes it.
pub fn raw_data_signature(raw_data: &str, session_key_b64: &str) -> String {
    let mut h = Sha1::new();
    h.update(raw_data.as_bytes());
    h.update(session_key_b64.as_bytes());
    let digest = h.finalize();
    let mut out = String::with_capacity(40);
    for b in digest.iter() {
        out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(b & 0xf)]));
    }
    out
}

/// Checks `signature` against `rawData` in constant time.
pub fn verify_raw_data(
    raw_data: &str,
    session_key_b64: &str,
    signature: &str,
) -> Result<(), CryptError> {
    let expected = raw_data_signature(raw_data, session_key_b64);
    if bool::from(expected.as_bytes().ct_eq(signature.as_bytes())) {
        Ok(())
    } else {
        Err(CryptError::RawDataSignatureMismatch)
    }
}

/// A fresh random session_key (16 bytes, base64), as WeChat issues at each login.
pub fn new_session_key() -> Result<String, crate::random::RandomError> {
    let mut k = [0u8; 16];
    crate::random::fill(&mut k)?;
    Ok(B64.encode(k))
}
