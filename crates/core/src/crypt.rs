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
    /// No watermark, or one that is not WeChat's shape: `appid` must be a string and
    /// `timestamp` an integer (see [`judge_watermark`]).
    #[error(
        "decrypted data carries no valid watermark: it needs appid (a string) and timestamp (an integer)"
    )]
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

/// The watermark WeChat adds to every encrypted payload, as [`judge_watermark`] accepts
/// it: `timestamp` within ±(2^53 − 1), what every JSON reader, the engine's `JSON.parse`
/// included, reads exactly.
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
/// hand the watermark's fields, as received, to [`judge_watermark`].
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

/// A watermark field as the JSON reader that parsed the payload saw it, before any
/// judgement. The reader only reports what is there (serde_json in
/// [`decrypt_user_data`], the engine's `JSON.parse` in the npm package) and
/// [`judge_watermark`] decides, so every face refuses exactly the same payloads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Received<'a> {
    /// The key is absent (or the watermark itself is absent or not an object).
    Absent,
    /// A JSON string.
    Text(&'a str),
    /// A JSON number, as the IEEE double it denotes: the most any JSON reader is
    /// guaranteed to give (`JSON.parse` gives nothing else), so `1.0` and `1e3` are the
    /// integers 1 and 1000 for every reader alike.
    Number(f64),
    /// `null`, a boolean, an array or an object.
    Other,
}

impl<'a> Received<'a> {
    /// A field of a serde_json watermark value; anything but an object has no fields.
    pub fn field_of(watermark: Option<&'a Value>, key: &str) -> Self {
        match watermark
            .and_then(|w| w.as_object())
            .and_then(|w| w.get(key))
        {
            None => Received::Absent,
            Some(Value::String(s)) => Received::Text(s),
            // `None` only under serde_json's arbitrary_precision (not enabled), for a
            // number no double holds: refused like any other non-integer.
            Some(Value::Number(n)) => n.as_f64().map_or(Received::Other, Received::Number),
            Some(_) => Received::Other,
        }
    }
}

/// The largest integer a double holds exactly, and with it every integer below: 2^53 − 1.
/// Beyond it two readers may round the same digits to different integers (serde_json
/// reads `9007199254740993` exactly, `JSON.parse` as 9007199254740992), so no verdict
/// could be the same for both; no Unix timestamp comes near it.
const MAX_EXACT_INTEGER: f64 = 9_007_199_254_740_991.0;

/// The one rule for a payload's watermark, from its fields as received: `appid` a
/// string, `timestamp` an integer (by value, within ±(2^53 − 1)), and `appid` ours.
/// Anything else is refused: data encrypted for another mini-program, forged, or not
/// WeChat's shape. A missing or malformed field is [`CryptError::MissingWatermark`], never
/// a default, so a missing timestamp is not silently read as 0.
pub fn judge_watermark(
    appid: &str,
    received_appid: Received<'_>,
    received_timestamp: Received<'_>,
) -> Result<Watermark, CryptError> {
    let Received::Text(found) = received_appid else {
        return Err(CryptError::MissingWatermark);
    };
    let timestamp = match received_timestamp {
        Received::Number(t) if t.fract() == 0.0 && t.abs() <= MAX_EXACT_INTEGER => {
            // Exact: an integral double of at most 53 bits converts without loss.
            t as i64
        }
        _ => return Err(CryptError::MissingWatermark),
    };
    if found != appid {
        return Err(CryptError::WatermarkMismatch {
            expected: appid.to_owned(),
            found: found.to_owned(),
        });
    }
    Ok(Watermark {
        appid: found.to_owned(),
        timestamp,
    })
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
    let received = data.remove("watermark");
    let watermark = judge_watermark(
        appid,
        Received::field_of(received.as_ref(), "appid"),
        Received::field_of(received.as_ref(), "timestamp"),
    )?;
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

#[cfg(test)]
mod tests {
    use super::*;

    const APPID: &str = "wxapp";
    const KEY: &str = "tiihtNczf5v6AKRyjwEUhQ==";

    /// `json` encrypted under KEY as WeChat does, so `decrypt_user_data` reads exactly
    /// these bytes (pkg/test/trust.test.mjs sends the package the same texts).
    fn decrypt(json: &str) -> Result<UserData, CryptError> {
        let key: [u8; 16] = B64.decode(KEY).unwrap().try_into().unwrap();
        let iv = [7u8; 16];
        let cipher = cbc::Encryptor::<Aes128>::new(&key.into(), &iv.into())
            .encrypt_padded_vec::<Pkcs7>(json.as_bytes());
        decrypt_user_data(APPID, KEY, &B64.encode(cipher), &B64.encode(iv))
    }

    fn with_watermark(wm: &str) -> Result<UserData, CryptError> {
        decrypt(&format!(r#"{{"nickName":"n","watermark":{wm}}}"#))
    }

    #[test]
    fn a_missing_or_non_integer_timestamp_is_refused_not_read_as_zero() {
        for wm in [
            r#"{"appid":"wxapp"}"#,
            r#"{"appid":"wxapp","timestamp":1.5}"#,
            r#"{"appid":"wxapp","timestamp":"123"}"#,
            r#"{"appid":"wxapp","timestamp":null}"#,
            r#"{"appid":"wxapp","timestamp":true}"#,
            r#"{"appid":"wxapp","timestamp":[1]}"#,
            r#"{"appid":"wxapp","timestamp":{"s":1}}"#,
            r#"{"appid":"wxapp","timestamp":1e20}"#,
            r#"{"appid":"wxapp","timestamp":9007199254740992}"#,
            r#"{"appid":"wxapp","timestamp":-9007199254740993}"#,
            r#"{"timestamp":1477314187}"#,
            r#"{"appid":7,"timestamp":1477314187}"#,
            "null",
            r#""wxapp""#,
            "[]",
        ] {
            let got = with_watermark(wm);
            assert_eq!(got, Err(CryptError::MissingWatermark), "{wm}");
            assert_eq!(got.unwrap_err().code(), "MISSING_WATERMARK");
        }
        assert_eq!(
            decrypt(r#"{"nickName":"n"}"#),
            Err(CryptError::MissingWatermark)
        );
    }

    #[test]
    fn an_integer_timestamp_is_taken_by_its_value() {
        for (ts, want) in [
            ("1477314187", 1_477_314_187),
            ("0", 0),
            ("1.0", 1),
            ("1e3", 1000),
            ("9007199254740991", 9_007_199_254_740_991),
            ("-9007199254740991", -9_007_199_254_740_991),
        ] {
            let user = with_watermark(&format!(r#"{{"appid":"wxapp","timestamp":{ts}}}"#))
                .unwrap_or_else(|e| panic!("{ts}: {e}"));
            assert_eq!(
                user.watermark,
                Watermark {
                    appid: APPID.into(),
                    timestamp: want
                },
                "{ts}"
            );
            assert!(!user.data.contains_key("watermark"));
        }
    }

    #[test]
    fn another_apps_watermark_is_a_mismatch_once_well_formed() {
        assert_eq!(
            with_watermark(r#"{"appid":"wxother","timestamp":1}"#),
            Err(CryptError::WatermarkMismatch {
                expected: APPID.into(),
                found: "wxother".into()
            })
        );
        // Malformed and foreign: the shape is judged first, as the npm package does.
        assert_eq!(
            with_watermark(r#"{"appid":"wxother","timestamp":1.5}"#),
            Err(CryptError::MissingWatermark)
        );
    }

    #[test]
    fn judge_watermark_reads_only_what_it_is_given() {
        use Received::*;
        let ok = Watermark {
            appid: APPID.into(),
            timestamp: 7,
        };
        assert_eq!(judge_watermark(APPID, Text(APPID), Number(7.0)), Ok(ok));
        for (a, t) in [
            (Absent, Number(7.0)),
            (Other, Number(7.0)),
            (Number(1.0), Number(7.0)),
            (Text(APPID), Absent),
            (Text(APPID), Other),
            (Text(APPID), Text("7")),
            (Text(APPID), Number(7.5)),
            (Text(APPID), Number(f64::NAN)),
            (Text(APPID), Number(f64::INFINITY)),
            (Text(APPID), Number(9_007_199_254_740_992.0)),
        ] {
            assert_eq!(
                judge_watermark(APPID, a, t),
                Err(CryptError::MissingWatermark),
                "{a:?} {t:?}"
            );
        }
    }
}
