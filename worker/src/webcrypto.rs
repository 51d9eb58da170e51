//! SHA256withRSA (RSASSA-PKCS1-v1_5 over SHA-256) through the runtime's WebCrypto: the
//! one cryptographic operation APIv3 needs that the core leaves to its caller
//! (`wxedge_core::v3::rsa`). WebCrypto's RSA is constant-time and keeps the private key
//! out of the wasm's memory once imported; the pure-Rust `rsa` crate's is not
//! (RUSTSEC-2023-0071). Keys are imported once per isolate and kept (`import` is the
//! expensive step); the PEM → PKCS#8 / SPKI framing is the core's (`v3::pem`).

use std::cell::RefCell;

use js_sys::{Array, Object, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{CryptoKey, SubtleCrypto};
use worker::wasm_bindgen_futures::JsFuture;

const ALGORITHM: &str = "RSASSA-PKCS1-v1_5";

/// Why WebCrypto could not do what was asked. Carries no key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("WebCrypto (crypto.subtle) is not available in this runtime")]
    Unavailable,
    #[error("WebCrypto refused the {what} key: {detail}")]
    Import { what: &'static str, detail: String },
    #[error("WebCrypto could not sign: {0}")]
    Sign(String),
}

fn subtle() -> Result<SubtleCrypto, CryptoError> {
    let crypto = Reflect::get(&js_sys::global(), &JsValue::from_str("crypto"))
        .map_err(|_| CryptoError::Unavailable)?;
    let subtle = Reflect::get(&crypto, &JsValue::from_str("subtle"))
        .map_err(|_| CryptoError::Unavailable)?;
    if subtle.is_undefined() {
        return Err(CryptoError::Unavailable);
    }
    Ok(subtle.unchecked_into())
}

fn js_text(e: &JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| "unknown error".into())
}

thread_local! {
    /// Imported keys with their usage (`true`: private) and name, for the isolate's life,
    /// like the configuration. A handful at most (the merchant's, WeChat's one or two), so
    /// a list, not a map: no hasher in the wasm.
    static KEYS: RefCell<Vec<(bool, String, CryptoKey)>> = const { RefCell::new(Vec::new()) };
}

/// A key for signing (`private`: PKCS#8 DER) or verifying (SPKI DER), imported the first
/// time `name` is asked for and reused after.
async fn key(name: &str, der: &[u8], private: bool) -> Result<CryptoKey, CryptoError> {
    let cached = KEYS.with(|keys| {
        keys.borrow()
            .iter()
            .find(|(p, n, _)| *p == private && n == name)
            .map(|(_, _, k)| k.clone())
    });
    if let Some(k) = cached {
        return Ok(k);
    }
    let what = if private { "private" } else { "public" };
    let algorithm = Object::new();
    let set =
        |k: &str, v: &str| Reflect::set(&algorithm, &JsValue::from_str(k), &JsValue::from_str(v));
    set("name", ALGORITHM)
        .and_then(|_| set("hash", "SHA-256"))
        .map_err(|e| CryptoError::Import {
            what,
            detail: js_text(&e),
        })?;
    let usages = Array::of1(&JsValue::from_str(if private { "sign" } else { "verify" }));
    let data = Uint8Array::from(der);
    let promise = subtle()?
        .import_key_with_object(
            if private { "pkcs8" } else { "spki" },
            &data,
            &algorithm,
            false,
            &usages,
        )
        .map_err(|e| CryptoError::Import {
            what,
            detail: js_text(&e),
        })?;
    let k: CryptoKey = JsFuture::from(promise)
        .await
        .map_err(|e| CryptoError::Import {
            what,
            detail: js_text(&e),
        })?
        .unchecked_into();
    KEYS.with(|keys| {
        keys.borrow_mut()
            .push((private, name.to_owned(), k.clone()))
    });
    Ok(k)
}

/// Checks that every configured key imports (so a bad secret is named at once, not at
/// the first payment). Idempotent: imported keys are kept.
pub async fn prepare(
    private: &[(&str, &[u8])],
    public: &[(&str, &[u8])],
) -> Result<(), CryptoError> {
    for (name, der) in private {
        key(name, der, true).await?;
    }
    for (name, der) in public {
        key(name, der, false).await?;
    }
    Ok(())
}

/// The signature of `message` under the private key `name` (PKCS#8 `der`).
pub async fn sign(name: &str, der: &[u8], message: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let k = key(name, der, true).await?;
    let promise = subtle()?
        .sign_with_str_and_u8_array(ALGORITHM, &k, message)
        .map_err(|e| CryptoError::Sign(js_text(&e)))?;
    let buffer = JsFuture::from(promise)
        .await
        .map_err(|e| CryptoError::Sign(js_text(&e)))?;
    Ok(Uint8Array::new(&buffer).to_vec())
}

/// Whether `signature` is the public key `name`'s (SPKI `der`) over `message`. Any
/// failure of WebCrypto itself is "not valid": a body is believed only on a plain yes.
pub async fn verify(
    name: &str,
    der: &[u8],
    message: &[u8],
    signature: &[u8],
) -> Result<bool, CryptoError> {
    let k = key(name, der, false).await?;
    let Ok(promise) =
        subtle()?.verify_with_str_and_u8_array_and_u8_array(ALGORITHM, &k, signature, message)
    else {
        return Ok(false);
    };
    Ok(JsFuture::from(promise)
        .await
        .ok()
        .and_then(|v| v.as_bool())
        .unwrap_or(false))
}
