//! WeChat Pay APIv3, sans-IO: the bytes to sign and send, the judgement of the bytes
//! received, and the v3 notify mapped onto the same [`Notify`](crate::notify::Notify) the
//! v2 flow decides on (one flow, two wire formats).
//!
//! The core decides everything (which message, which key, the clock window, the probe);
//! the RSA operation itself is the caller's (see [`rsa`]): WebCrypto in the Worker and the
//! npm package, `ring` natively behind the `ring` feature. The AES-256-GCM of notify
//! resources is in the core ([`aead`]): it is symmetric and small.
//!
//! | module | what it holds |
//! |---|---|
//! | [`authorization`] | the request's signed message and its `Authorization` header, both ways |
//! | [`verify`] | answers and notifies: `Wechatpay-*` headers → key by serial, skew, probe |
//! | [`pem`] | PEM/DER framing: keys and certificates → PKCS#8 / SPKI, certificate serials |
//! | [`rsa`] | the RSA seam: [`rsa::RsaSigner`] / [`rsa::RsaVerifier`], and the `ring` impl |
//! | [`aead`] | `AEAD_AES_256_GCM` resource decrypt (and encrypt, for wxsim) |
//! | [`notify`] | the notify envelope, the decrypted transaction → `Notify`, the replies |
//! | [`refund`] | domestic refunds: request, answer/query, REFUND.* notifies (both sides) |
//! | [`tradebill`] | the daily trade bill: apply, and the download's origin |
//! | [`jsapi`] | JSAPI prepay, wx.requestPayment (RSA), query and close by out_trade_no |
//! | [`api_error`] | WeChat's `{code, message, detail}` error answers, typed |
//! | [`explain`] | a SIGN_ERROR's `sign_information` against the message we signed: the mistake named |
//!
//! Sources are cited where each rule is written; the official vectors are
//! `crates/core/tests/v3_vectors.rs`.

pub mod aead;
pub mod api_error;
pub mod authorization;
pub mod explain;
pub mod jsapi;
pub mod notify;
pub mod pem;
pub mod refund;
pub mod rsa;
pub mod tradebill;
pub mod verify;

/// Every code a v3 error can carry. Kept apart from [`crate::ALL_CODES`] until the npm
/// package publishes the v3 helpers (its `index.d.ts` lists exactly `ALL_CODES`).
pub const V3_CODES: &[&str] = &[
    "V3_BAD_REQUEST",
    "V3_BAD_AUTHORIZATION",
    "V3_HEADER_MISSING",
    "V3_BAD_TIMESTAMP",
    "V3_TIMESTAMP_SKEW",
    "V3_SIGN_PROBE",
    "V3_UNKNOWN_SERIAL",
    "BAD_BASE64",
    "SIGN_MISMATCH",
    "V3_BAD_KEY",
    "V3_RSA_FAILED",
    "BAD_KEY_LENGTH",
    "V3_BAD_NONCE_LENGTH",
    "BAD_CIPHERTEXT_LENGTH",
    "V3_DECRYPT_FAILED",
    "V3_UNSUPPORTED_ALGORITHM",
    "V3_BAD_NOTIFY",
    "V3_UNEXPECTED_EVENT",
    "NOT_JSON",
    "INVALID_PARAMS",
    "MISSING_FIELD",
    "FIELD_MISMATCH",
    "BAD_AMOUNT",
    "V3_UNEXPECTED_STATUS",
    "WECHAT_ERROR",
    "V3_NOT_SIGN_ERROR",
];
