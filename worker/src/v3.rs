//! APIv3 calls from the Worker. The core builds every signed message, picks every key and
//! judges every answer (`wxedge_core::v3`); this module runs the one step it leaves to its
//! caller, SHA256withRSA, through WebCrypto ([`crate::webcrypto`]), and moves the bytes.
//! Answers are verified over the bytes received, before anything reads them.

use worker::Method;
use wxedge_core::ErrorCode;
use wxedge_core::random;
use wxedge_core::v3::authorization::{Authorization, Request};
use wxedge_core::v3::jsapi;
use wxedge_core::v3::verify::{
    HEADER_NONCE, HEADER_SERIAL, HEADER_SIGNATURE, HEADER_TIMESTAMP, Headers, Verified, VerifyError,
};

use crate::api::{ApiError, ApiResult};
use crate::config::{Config, V3};
use crate::wechat::{self, Answer, Upstream};
use crate::{now_ms, webcrypto};

/// The name the merchant's private key is cached under.
const MERCHANT_KEY: &str = "merchant";

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(e.to_string())
}

fn now_secs() -> i64 {
    (now_ms() / 1000) as i64
}

/// Imports every configured key once (a bad PEM is named at the first request).
pub async fn prepare(v3: &V3) -> ApiResult<()> {
    let public: Vec<(&str, &[u8])> = v3
        .wechat
        .keys()
        .map(|(name, der)| (name, der.as_slice()))
        .collect();
    webcrypto::prepare(&[(MERCHANT_KEY, &v3.private_key)], &public)
        .await
        .map_err(|e| {
            ApiError::internal(format!(
                "server misconfigured: {e} (check WECHAT_PAY_V3_PRIVATE_KEY, WECHAT_PAY_PUBLIC_KEY, WECHAT_PAY_PLATFORM_CERTS)"
            ))
        })
}

/// SHA256withRSA of `message` with the merchant's key.
pub async fn sign(v3: &V3, message: &[u8]) -> ApiResult<Vec<u8>> {
    webcrypto::sign(MERCHANT_KEY, &v3.private_key, message)
        .await
        .map_err(internal)
}

/// One signed request: `path` with its query exactly as sent, `body` exactly as sent
/// (empty for GET). `Ok(Err(_))`: no answer came.
pub async fn call(
    cfg: &Config,
    method: Method,
    path: &str,
    body: &str,
) -> ApiResult<Result<Answer, Upstream>> {
    let v3 = cfg.v3()?;
    let nonce = random::nonce_str().map_err(internal)?;
    let request = Request {
        method: method.as_ref(),
        url: path,
        timestamp: now_secs(),
        nonce_str: &nonce,
        body: body.as_bytes(),
    };
    let message = request.message().map_err(internal)?;
    let signature = sign(v3, &message).await?;
    let authorization = Authorization::new(&cfg.mch_id, &v3.serial_no, &request, &signature)
        .map_err(internal)?
        .to_header_value();
    let body = (!body.is_empty()).then_some(body);
    Ok(wechat::v3(
        &cfg.v3_url(path),
        method,
        &authorization,
        v3.wechat.public_key_id(),
        body,
        cfg.wechat_timeout_ms,
    )
    .await)
}

/// The `Wechatpay-*` headers of a request or an answer, owned.
pub struct SignatureHeaders([Option<String>; 4]);

impl SignatureHeaders {
    pub fn of(headers: &worker::Headers) -> SignatureHeaders {
        SignatureHeaders(
            [
                HEADER_TIMESTAMP,
                HEADER_NONCE,
                HEADER_SIGNATURE,
                HEADER_SERIAL,
            ]
            .map(|name| headers.get(name).ok().flatten()),
        )
    }

    pub fn borrow(&self) -> Headers<'_> {
        let [timestamp, nonce, signature, serial] = &self.0;
        Headers {
            timestamp: timestamp.as_deref(),
            nonce: nonce.as_deref(),
            signature: signature.as_deref(),
            serial: serial.as_deref(),
        }
    }
}

/// The core's check of `body` under `headers` (probe, skew, serial → key, the message),
/// then WebCrypto's RSA verdict on it.
pub async fn verify<'a>(
    v3: &'a V3,
    headers: &Headers<'a>,
    body: &'a [u8],
) -> ApiResult<Result<Verified<'a>, VerifyError>> {
    let pending = match v3.wechat.check(headers, body, now_secs()) {
        Ok(p) => p,
        Err(e) => return Ok(Err(e)),
    };
    let valid = webcrypto::verify(
        pending.serial,
        pending.key,
        &pending.message,
        &pending.signature,
    )
    .await
    .map_err(internal)?;
    Ok(pending.conclude(valid))
}

/// An answer verified and handed to one of the core's readers (`jsapi::*_outcome`).
pub async fn judge<T>(
    v3: &V3,
    answer: &Answer,
    read: impl FnOnce(&jsapi::Answer<'_>) -> T,
) -> ApiResult<T> {
    let headers = SignatureHeaders::of(&answer.headers);
    let verified = verify(v3, &headers.borrow(), &answer.body).await?;
    if let Err(e) = &verified
        && (200..300).contains(&answer.status)
    {
        log_unverified(answer.status, e);
    }
    Ok(read(&jsapi::Answer {
        status: answer.status,
        body: &answer.body,
        verified: verified.as_ref().copied(),
    }))
}

/// A success answer that did not verify is worth an operator's look (a key rotated at
/// WeChat, a clock far off): one JSON line, without the body.
fn log_unverified(status: u16, e: &VerifyError) {
    worker::console_error!(
        "{}",
        serde_json::json!({
            "level": "error",
            "what": "an APIv3 answer failed verification; it was not believed",
            "status": status,
            "code": e.code(),
            "detail": e.to_string(),
        })
    );
}
