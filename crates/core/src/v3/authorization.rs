//! The merchant's side of an APIv3 request: the message to sign and the `Authorization`
//! header that carries the signature; and the parser WeChat's side (wxsim) reads it with.
//!
//! The message has five lines, each ended by `\n`, the last one too, so a GET (empty body)
//! ends in `\n\n`: `METHOD\nURL\nTIMESTAMP\nNONCE\nBODY\n`. URL is the path with its query
//! string, without scheme and host; BODY is the exact bytes sent, never a re-serialization.
//! Source: 签名生成, <https://pay.weixin.qq.com/wiki/doc/api_external/ch/wechatpay/wechatpay4_0.shtml>
//! ("签名串一共有五行…行尾以 \n…结束，包括最后一行"; "请求方法为GET时，报文主体为空";
//! "如果请求中有查询参数，URL末尾应附加有'?'和对应的查询字符串") and the path-parameter
//! example of <https://pay.weixin.qq.com/doc/v3/merchant/4012365334>.
//!
//! The header is `WECHATPAY2-SHA256-RSA2048 mchid="…",nonce_str="…",timestamp="…",serial_no="…",signature="…"`,
//! the five fields in any order (WeChat: "以上五项签名信息，无顺序要求"), `serial_no` being
//! the merchant API certificate's serial. The most common SIGN_ERROR causes in the peers'
//! trackers (body left out, query dropped, full URL signed) are refused here before any
//! signing happens.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use thiserror::Error;

use crate::ErrorCode;
use crate::v3::rsa::{RsaError, RsaSigner, RsaVerifier};

/// The authentication scheme of every APIv3 request.
pub const SCHEMA: &str = "WECHATPAY2-SHA256-RSA2048";

/// A header value longer than this is not one we wrote (a 2048-bit signature is 344
/// base64 characters; everything else is short).
pub const MAX_HEADER_BYTES: usize = 2048;

/// Why a request cannot be signed, or an `Authorization` header cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthorizationError {
    #[error("method {0:?} is not GET, POST, PUT, PATCH or DELETE (uppercase, as WeChat signs it)")]
    BadMethod(String),
    #[error(
        "URL {0:?} has a scheme and host: sign only the path with its query, e.g. /v3/pay/transactions/jsapi"
    )]
    FullUrl(String),
    #[error(
        "URL {0:?} must be a path starting with / (with its ?query, if any), without spaces, newlines or #"
    )]
    BadUrl(String),
    #[error("a GET carries no body: WeChat signs an empty body line for it")]
    GetWithBody,
    #[error(
        "{field} {value:?} must be 1 to 64 visible ASCII characters without quotes or backslashes"
    )]
    BadField { field: &'static str, value: String },
    #[error("timestamp {0} must be Unix seconds, not negative")]
    BadTimestamp(i64),
    #[error("the RSA signer failed: {0}")]
    Signer(#[from] RsaError),
    #[error("Authorization header is over {MAX_HEADER_BYTES} bytes")]
    TooLong,
    #[error("Authorization does not start with {SCHEMA:?} and a space")]
    WrongSchema,
    #[error("Authorization is malformed at byte {position}: {reason}")]
    Malformed {
        position: usize,
        reason: &'static str,
    },
    #[error("Authorization carries {0} twice")]
    Duplicate(String),
    #[error(
        "Authorization carries unknown field {0:?} (only mchid, nonce_str, timestamp, serial_no, signature)"
    )]
    UnknownField(String),
    #[error("Authorization lacks {0}")]
    MissingField(&'static str),
}

impl ErrorCode for AuthorizationError {
    fn code(&self) -> &'static str {
        match self {
            AuthorizationError::BadMethod(_)
            | AuthorizationError::FullUrl(_)
            | AuthorizationError::BadUrl(_)
            | AuthorizationError::GetWithBody
            | AuthorizationError::BadField { .. }
            | AuthorizationError::BadTimestamp(_) => "V3_BAD_REQUEST",
            AuthorizationError::Signer(e) => e.code(),
            AuthorizationError::TooLong
            | AuthorizationError::WrongSchema
            | AuthorizationError::Malformed { .. }
            | AuthorizationError::Duplicate(_)
            | AuthorizationError::UnknownField(_)
            | AuthorizationError::MissingField(_) => "V3_BAD_AUTHORIZATION",
        }
    }
}

/// One request as it will be sent: what its signature covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// `GET`, `POST`…, uppercase.
    pub method: &'a str,
    /// The path and query exactly as sent, e.g. `/v3/pay/transactions/out-trade-no/T1?mchid=1230000109`.
    pub url: &'a str,
    /// Unix seconds, read by the caller (the core reads no clock).
    pub timestamp: i64,
    /// The request's random string (from [`crate::random::nonce_str`]).
    pub nonce_str: &'a str,
    /// The exact bytes of the body sent; empty for GET.
    pub body: &'a [u8],
}

/// Header field values: visible ASCII, no `"` (it ends the quoted value) and no `\`.
fn is_field_value(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\')
}

fn check_field(field: &'static str, value: &str) -> Result<(), AuthorizationError> {
    if is_field_value(value) {
        Ok(())
    } else {
        Err(AuthorizationError::BadField {
            field,
            value: value.to_owned(),
        })
    }
}

impl Request<'_> {
    /// The message to sign: `METHOD\nURL\nTIMESTAMP\nNONCE\nBODY\n` (see the module docs).
    pub fn message(&self) -> Result<Vec<u8>, AuthorizationError> {
        if !matches!(self.method, "GET" | "POST" | "PUT" | "PATCH" | "DELETE") {
            return Err(AuthorizationError::BadMethod(self.method.to_owned()));
        }
        let lower = self.url.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            return Err(AuthorizationError::FullUrl(self.url.to_owned()));
        }
        if !self.url.starts_with('/')
            || self.url.starts_with("//")
            || self
                .url
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b == b'#')
        {
            return Err(AuthorizationError::BadUrl(self.url.to_owned()));
        }
        if self.method == "GET" && !self.body.is_empty() {
            return Err(AuthorizationError::GetWithBody);
        }
        if self.timestamp < 0 {
            return Err(AuthorizationError::BadTimestamp(self.timestamp));
        }
        check_field("nonce_str", self.nonce_str)?;
        let timestamp = self.timestamp.to_string();
        let mut m = Vec::with_capacity(
            self.method.len()
                + self.url.len()
                + timestamp.len()
                + self.nonce_str.len()
                + self.body.len()
                + 5,
        );
        for line in [
            self.method.as_bytes(),
            self.url.as_bytes(),
            timestamp.as_bytes(),
            self.nonce_str.as_bytes(),
            self.body,
        ] {
            m.extend_from_slice(line);
            m.push(b'\n');
        }
        Ok(m)
    }
}

/// The five fields of an `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub mchid: String,
    pub nonce_str: String,
    pub timestamp: String,
    /// The merchant API certificate's serial (not WeChat's `Wechatpay-Serial`).
    pub serial_no: String,
    /// Base64 of the SHA256withRSA signature.
    pub signature: String,
}

impl Authorization {
    /// The header for `request`, given the signature the caller's RSA made of
    /// [`Request::message`]. The timestamp and nonce are the request's own, so the header
    /// and the signed message cannot disagree.
    pub fn new(
        mchid: &str,
        serial_no: &str,
        request: &Request<'_>,
        signature: &[u8],
    ) -> Result<Authorization, AuthorizationError> {
        check_field("mchid", mchid)?;
        check_field("serial_no", serial_no)?;
        check_field("nonce_str", request.nonce_str)?;
        if request.timestamp < 0 {
            return Err(AuthorizationError::BadTimestamp(request.timestamp));
        }
        Ok(Authorization {
            mchid: mchid.to_owned(),
            nonce_str: request.nonce_str.to_owned(),
            timestamp: request.timestamp.to_string(),
            serial_no: serial_no.to_owned(),
            signature: STANDARD.encode(signature),
        })
    }

    /// The `Authorization` header's value.
    pub fn to_header_value(&self) -> String {
        format!(
            "{SCHEMA} mchid=\"{}\",nonce_str=\"{}\",timestamp=\"{}\",serial_no=\"{}\",signature=\"{}\"",
            self.mchid, self.nonce_str, self.timestamp, self.serial_no, self.signature
        )
    }

    /// Reads an `Authorization` header value: the schema, then `key="value"` pairs
    /// separated by commas (spaces around them tolerated), each of the five fields exactly
    /// once, nothing else. Never panics.
    pub fn parse(value: &str) -> Result<Authorization, AuthorizationError> {
        if value.len() > MAX_HEADER_BYTES {
            return Err(AuthorizationError::TooLong);
        }
        let rest = value
            .strip_prefix(SCHEMA)
            .filter(|r| r.starts_with(' '))
            .ok_or(AuthorizationError::WrongSchema)?;
        let b = rest.as_bytes();
        let base = SCHEMA.len();
        let malformed = |i: usize, reason| AuthorizationError::Malformed {
            position: base + i,
            reason,
        };
        let mut fields: [Option<String>; 5] = Default::default();
        const NAMES: [&str; 5] = ["mchid", "nonce_str", "timestamp", "serial_no", "signature"];
        let mut i = 0;
        loop {
            while i < b.len() && b[i] == b' ' {
                i += 1;
            }
            let key_start = i;
            while i < b.len() && (b[i].is_ascii_lowercase() || b[i] == b'_') {
                i += 1;
            }
            if i == key_start {
                return Err(malformed(i, "expected a field name"));
            }
            let key = &rest[key_start..i];
            if b.get(i) != Some(&b'=') || b.get(i + 1) != Some(&b'"') {
                return Err(malformed(i, "expected =\" after the field name"));
            }
            i += 2;
            let value_start = i;
            while i < b.len() && b[i] != b'"' {
                i += 1;
            }
            if i == b.len() {
                return Err(malformed(i, "unterminated quoted value"));
            }
            let field_value = &rest[value_start..i];
            i += 1;
            let slot = NAMES
                .iter()
                .position(|n| *n == key)
                .ok_or_else(|| AuthorizationError::UnknownField(key.to_owned()))?;
            if fields[slot].is_some() {
                return Err(AuthorizationError::Duplicate(key.to_owned()));
            }
            if field_value.is_empty() {
                return Err(malformed(value_start, "empty value"));
            }
            fields[slot] = Some(field_value.to_owned());
            while i < b.len() && b[i] == b' ' {
                i += 1;
            }
            match b.get(i) {
                None => break,
                Some(b',') => i += 1,
                Some(_) => return Err(malformed(i, "expected a comma between fields")),
            }
        }
        let [mchid, nonce_str, timestamp, serial_no, signature] = fields;
        Ok(Authorization {
            mchid: mchid.ok_or(AuthorizationError::MissingField("mchid"))?,
            nonce_str: nonce_str.ok_or(AuthorizationError::MissingField("nonce_str"))?,
            timestamp: timestamp.ok_or(AuthorizationError::MissingField("timestamp"))?,
            serial_no: serial_no.ok_or(AuthorizationError::MissingField("serial_no"))?,
            signature: signature.ok_or(AuthorizationError::MissingField("signature"))?,
        })
    }

    /// The timestamp as Unix seconds, if it is one.
    pub fn timestamp_secs(&self) -> Option<i64> {
        crate::v3::verify::parse_timestamp(&self.timestamp)
    }
}

/// Signs `request` with the caller's RSA and returns the `Authorization` header value.
/// For signers that are synchronous (ring natively); WebCrypto callers sign
/// [`Request::message`] themselves and call [`Authorization::new`].
pub fn authorize(
    signer: &impl RsaSigner,
    mchid: &str,
    serial_no: &str,
    request: &Request<'_>,
) -> Result<String, AuthorizationError> {
    let message = request.message()?;
    let signature = signer.sign(&message)?;
    Ok(Authorization::new(mchid, serial_no, request, &signature)?.to_header_value())
}

/// Why WeChat refuses a request's `Authorization` with 401 SIGN_ERROR, judged on WeChat's
/// side (wxsim). Each variant carries what the answer's `message` says, in WeChat's words
/// (the 401 table of 签名相关常见问题,
/// <https://wechatpay-api.gitbook.io/wechatpay-api-v3/chang-jian-wen-ti/qian-ming-xiang-guan>).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RequestRefusal {
    /// Missing, or not five quoted fields after the schema: "Http头Authorization值格式错误".
    #[error("Http头Authorization值格式错误: {0}")]
    Unreadable(AuthorizationError),
    /// `serial_no` is not the merchant's API certificate: "商户证书序列号有误".
    #[error("商户证书序列号有误: serial_no {0:?} is not this merchant's API certificate")]
    WrongSerial(String),
    /// More than [`crate::v3::verify::MAX_SKEW_SECS`] from WeChat's clock.
    #[error("Http头Authorization中的timestamp与发起请求的时间不得超过5分钟")]
    Skewed,
    /// The signature does not verify over the message WeChat rebuilt from the request;
    /// `message` is that message, for the answer's `sign_information`.
    #[error("错误的签名，验签失败")]
    Mismatch { message: Vec<u8> },
}

impl ErrorCode for RequestRefusal {
    fn code(&self) -> &'static str {
        match self {
            RequestRefusal::Unreadable(e) => e.code(),
            RequestRefusal::WrongSerial(_) => "V3_UNKNOWN_SERIAL",
            RequestRefusal::Skewed => "V3_TIMESTAMP_SKEW",
            RequestRefusal::Mismatch { .. } => "SIGN_MISMATCH",
        }
    }
}

impl RequestRefusal {
    /// The text of the answer's `message`, as WeChat writes it.
    pub fn wechat_message(&self) -> &'static str {
        match self {
            RequestRefusal::Unreadable(_) => "Http头Authorization值格式错误",
            RequestRefusal::WrongSerial(_) => "商户证书序列号有误",
            RequestRefusal::Skewed => {
                "Http头Authorization中的timestamp与发起请求的时间不得超过5分钟"
            }
            RequestRefusal::Mismatch { .. } => "错误的签名，验签失败",
        }
    }
}

/// WeChat's check of a received request (for wxsim): the parsed `Authorization` against
/// the merchant's API certificate `serial` and public `key`, over the message rebuilt from what arrived: `method`, `url` (path with query,
/// exactly as received), the header's own timestamp and nonce, and the raw `body`. `now` is
/// the caller's clock (Unix seconds). The merchant is found by the caller from
/// [`Authorization::parse`]'s `mchid` first; this checks the rest, in WeChat's order.
pub fn check_request(
    auth: &Authorization,
    method: &str,
    url: &str,
    body: &[u8],
    serial: &str,
    key: &impl RsaVerifier,
    now: i64,
) -> Result<(), RequestRefusal> {
    if auth.serial_no != serial {
        return Err(RequestRefusal::WrongSerial(auth.serial_no.clone()));
    }
    let timestamp =
        auth.timestamp_secs()
            .ok_or(RequestRefusal::Unreadable(AuthorizationError::Malformed {
                position: 0,
                reason: "timestamp is not Unix seconds",
            }))?;
    if now.abs_diff(timestamp) > crate::v3::verify::MAX_SKEW_SECS {
        return Err(RequestRefusal::Skewed);
    }
    let request = Request {
        method,
        url,
        timestamp,
        nonce_str: &auth.nonce_str,
        body,
    };
    // A message that cannot even be built (a GET with a body, a lowercase method) is one
    // no signature matches: WeChat answers it as a mismatch, showing what it would sign.
    let message = request.message().unwrap_or_else(|_| {
        let mut m = Vec::new();
        for line in [
            method.as_bytes(),
            url.as_bytes(),
            auth.timestamp.as_bytes(),
            auth.nonce_str.as_bytes(),
            body,
        ] {
            m.extend_from_slice(line);
            m.push(b'\n');
        }
        m
    });
    let valid = STANDARD
        .decode(auth.signature.as_bytes())
        .is_ok_and(|sig| key.verify(&message, &sig));
    if valid {
        Ok(())
    } else {
        Err(RequestRefusal::Mismatch { message })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(url: &str) -> Request<'_> {
        Request {
            method: "GET",
            url,
            timestamp: 1_554_208_460,
            nonce_str: "593BEC0C930BF1AFEB40B4A08C8FB242",
            body: b"",
        }
    }

    #[test]
    fn a_get_keeps_the_final_newline_after_its_empty_body() {
        let m = get("/v3/certificates").message().unwrap();
        assert_eq!(
            m,
            b"GET\n/v3/certificates\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n\n"
        );
    }

    #[test]
    fn the_usual_mistakes_are_refused_before_signing() {
        let full = get("https://api.mch.weixin.qq.com/v3/certificates").message();
        assert!(matches!(full, Err(AuthorizationError::FullUrl(_))));
        assert!(matches!(
            get("v3/x").message(),
            Err(AuthorizationError::BadUrl(_))
        ));
        let mut r = get("/v3/x");
        r.body = b"{}";
        assert_eq!(r.message(), Err(AuthorizationError::GetWithBody));
        r.method = "post";
        assert!(matches!(r.message(), Err(AuthorizationError::BadMethod(_))));
    }

    #[test]
    fn the_header_round_trips_and_field_order_is_free() {
        let a = Authorization::new(
            "1900007291",
            "408B07E79B8269FEC3D5D3E6AB8ED163A6A380DB",
            &get("/v3/x"),
            b"sig",
        )
        .unwrap();
        assert_eq!(Authorization::parse(&a.to_header_value()), Ok(a.clone()));
        let reordered = format!(
            "{SCHEMA} signature=\"{}\", serial_no=\"{}\",timestamp=\"{}\" ,nonce_str=\"{}\",mchid=\"{}\"",
            a.signature, a.serial_no, a.timestamp, a.nonce_str, a.mchid
        );
        assert_eq!(Authorization::parse(&reordered), Ok(a));
    }

    #[test]
    fn a_bad_header_says_what_is_wrong() {
        let p = |s: &str| Authorization::parse(s).unwrap_err();
        assert_eq!(p("Bearer x"), AuthorizationError::WrongSchema);
        assert_eq!(
            p(&format!("{SCHEMA} mchid=\"1\",mchid=\"2\"")),
            AuthorizationError::Duplicate("mchid".into())
        );
        assert_eq!(
            p(&format!("{SCHEMA} mchid=\"1\"")),
            AuthorizationError::MissingField("nonce_str")
        );
        assert!(matches!(
            p(&format!("{SCHEMA} mchid=\"1")),
            AuthorizationError::Malformed { .. }
        ));
        assert_eq!(
            p(&format!("{SCHEMA} appid=\"1\"")),
            AuthorizationError::UnknownField("appid".into())
        );
    }
    /// A stand-in RSA pair: the signature is the message reversed.
    struct Mirror;
    impl RsaSigner for Mirror {
        fn sign(&self, message: &[u8]) -> Result<Vec<u8>, RsaError> {
            Ok(message.iter().rev().copied().collect())
        }
    }
    impl RsaVerifier for Mirror {
        fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
            message.iter().rev().eq(signature.iter())
        }
    }

    #[test]
    fn wechat_rebuilds_the_message_from_what_arrived() {
        let serial = "408B07E79B8269FEC3D5D3E6AB8ED163A6A380DB";
        let mut r = get("/v3/pay/transactions/out-trade-no/T00001?mchid=1900007291");
        r.method = "GET";
        let header = authorize(&Mirror, "1900007291", serial, &r).unwrap();
        let auth = Authorization::parse(&header).unwrap();
        let now = r.timestamp + 10;
        assert_eq!(
            check_request(&auth, "GET", r.url, b"", serial, &Mirror, now),
            Ok(())
        );
        // The query dropped on the way: the message WeChat built says so.
        let Err(RequestRefusal::Mismatch { message }) = check_request(
            &auth,
            "GET",
            "/v3/pay/transactions/out-trade-no/T00001",
            b"",
            serial,
            &Mirror,
            now,
        ) else {
            panic!("a changed URL must not verify");
        };
        assert!(
            message.starts_with(b"GET\n/v3/pay/transactions/out-trade-no/T00001\n1554208460\n")
        );
        assert_eq!(
            check_request(&auth, "GET", r.url, b"", "OTHER", &Mirror, now),
            Err(RequestRefusal::WrongSerial(serial.into()))
        );
        assert_eq!(
            check_request(&auth, "GET", r.url, b"", serial, &Mirror, now + 301),
            Err(RequestRefusal::Skewed)
        );
    }
}
