//! Stable error codes shared by every face.
//!
//! The worker maps them to its `{code,msg}` envelope and the npm package exposes them as
//! `err.code`; both need a string that never changes when a message is reworded.

/// A stable, SCREAMING_SNAKE identifier for an error, e.g. `SIGN_MISMATCH`.
pub trait ErrorCode {
    /// The identifier; part of the public contract of the npm package.
    fn code(&self) -> &'static str;
}

/// Every code any core error can carry, for bindings that publish the list (the npm
/// package's TypeScript union is checked against it).
pub const ALL_CODES: &[&str] = &[
    "BAD_AMOUNT",
    "RANDOM_UNAVAILABLE",
    "SIGN_MISSING",
    "SIGN_TYPE_UNKNOWN",
    "SIGN_MISMATCH",
    "XML_TOO_LARGE",
    "XML_NOT_UTF8",
    "XML_DOCTYPE",
    "XML_ENTITY_DECLARATION",
    "XML_UNKNOWN_ENTITY",
    "XML_MISSING_ROOT",
    "XML_WRONG_ROOT",
    "XML_NESTED",
    "XML_DUPLICATE_KEY",
    "XML_ATTRIBUTES",
    "XML_TRAILING_CONTENT",
    "XML_STRAY_TEXT",
    "XML_UNCLOSED",
    "XML_INVALID_KEY",
    "XML_MALFORMED",
    "BAD_BASE64",
    "BAD_KEY_LENGTH",
    "BAD_IV_LENGTH",
    "BAD_CIPHERTEXT_LENGTH",
    "BAD_PADDING",
    "NOT_JSON",
    "MISSING_WATERMARK",
    "WATERMARK_MISMATCH",
    "RAW_DATA_SIGNATURE_MISMATCH",
    "BAD_JS_CODE",
    "WECHAT_ERROR",
    "WECHAT_MALFORMED_ANSWER",
    "INVALID_PARAMS",
    "WECHAT_RETURN_FAIL",
    "MISSING_FIELD",
    "FIELD_MISMATCH",
    "BAD_FIELD",
    "NOTIFY_RETURN_FAIL",
    "NOTIFY_MISMATCH",
];
