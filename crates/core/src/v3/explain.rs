//! `explain`: the answer to an APIv3 `SIGN_ERROR` ("错误的签名，验签失败").
//!
//! WeChat cannot tell us which key signed, but it does tell us which message it checked the
//! signature against: a SIGN_ERROR carries `detail.sign_information` with four fields,
//! `method`, `url` (path and query, untruncated), `sign_message_length` (the length of the
//! message WeChat built) and `truncated_sign_message` (that message, cut inside the body).
//! Those four are the only ones seen in WeChat's real answers, e.g.
//! `{"code":"SIGN_ERROR","detail":{"detail":{"issue":"sign not match"},"field":"signature",
//! "location":"authorization","sign_information":{"method":"POST","sign_message_length":79,
//! "truncated_sign_message":"POST\n/v3/smartguide/guides\n1591088141\n1591088141009\n{\"sub_mc\n",
//! "url":"/v3/smartguide/guides"}},"message":"错误的签名，验签失败"}`, quoted in WeChat's
//! community (<https://developers.weixin.qq.com/community/personal/oCJUsw8O6xlYgypnBBrpIfujwdaE/answer>,
//! <https://developers.weixin.qq.com/community/pay/doc/0006ee2297891802f5abe876f56400>) and in
//! wechatpay-go #235 (<https://github.com/wechatpay-apiv3/wechatpay-go/issues/235>). WeChat's
//! own advice for the same answer ("sign_message_length是微信验签的字符数，
//! truncated_sign_message是微信验签的字符。用这些信息和你签名时候的信息比较一下",
//! <https://developers.weixin.qq.com/community/personal/oCJUsw0kxgWH6EUCqlp6sMCSlz6Y/answer>)
//! is exactly what this module does, line by line.
//!
//! When the body is long, WeChat shows its first bytes followed by a `\n`; whether that `\n`
//! is the body's or WeChat's marker is not documented, so it is never counted as body.
//! Nor is the unit of `sign_message_length` documented: a length is taken as matching when
//! it equals the UTF-8 bytes or the UTF-16 units (they agree on ASCII, which nearly every
//! request is).
//!
//! Like v2's [`crate::explain`], a mistake is named only when the evidence shows it: a line
//! that differs, a body whose re-serialization reproduces WeChat's length and the bytes it
//! shows, a serial that differs from the certificate's. When the whole message matches,
//! the message was right and the finding is the key (or the signature bytes).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use thiserror::Error;

use crate::ErrorCode;
use crate::v3::api_error::{ApiError, Code, SignInformation};
use crate::v3::authorization::{Authorization, AuthorizationError};

/// Every code [`explain`] can fail with (all but `V3_NOT_SIGN_ERROR` are in
/// [`crate::v3::V3_CODES`] already).
pub const CODES: &[&str] = &[
    "NOT_JSON",
    "V3_NOT_SIGN_ERROR",
    "V3_BAD_AUTHORIZATION",
    "V3_BAD_REQUEST",
];

/// Why there is nothing to explain.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ExplainError {
    #[error("WeChat's answer is not its JSON error body ({{\"code\":…,\"message\":…}})")]
    NotJson,
    #[error(
        "WeChat answered {0}, not SIGN_ERROR: the signature was accepted, the request is refused for another reason"
    )]
    NotSignError(String),
    #[error("the Authorization header: {0}")]
    Authorization(#[from] AuthorizationError),
    #[error(
        "the signed message must start with four lines (METHOD, URL, TIMESTAMP, NONCE, each ended by \\n)"
    )]
    BadMessage,
    #[error(
        "nothing of ours to compare: pass the request (or the exact message) that was signed, or the Authorization header"
    )]
    NothingToCompare,
}

impl ErrorCode for ExplainError {
    fn code(&self) -> &'static str {
        match self {
            ExplainError::NotJson => "NOT_JSON",
            ExplainError::NotSignError(_) => "V3_NOT_SIGN_ERROR",
            ExplainError::Authorization(e) => e.code(),
            ExplainError::BadMessage | ExplainError::NothingToCompare => "V3_BAD_REQUEST",
        }
    }
}

/// The parts of the request our code signed, unchecked: a full URL or a lowercase method is
/// exactly what may need naming, so nothing is refused here (unlike
/// [`crate::v3::authorization::Request::message`], which refuses them before signing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedRequest<'a> {
    pub method: &'a str,
    pub url: &'a str,
    pub timestamp: &'a str,
    pub nonce_str: &'a str,
    /// The body bytes that went into the signature.
    pub body: &'a [u8],
}

/// What our side signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signed<'a> {
    /// The parts; the message is built from them the one right way.
    Request(SignedRequest<'a>),
    /// The exact bytes our code signed (when it logged them): its mistakes in joining the
    /// lines (a missing final `\n`) show only here.
    Message(&'a [u8]),
}

/// Our side of the failed request: any of the three; more of them, more findings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ours<'a> {
    pub signed: Option<Signed<'a>>,
    /// The `Authorization` header value sent.
    pub authorization: Option<&'a str>,
    /// The serial of the merchant API certificate whose private key signs (商户平台 →
    /// API安全 → 管理证书), to check the header's `serial_no` against.
    pub certificate_serial: Option<&'a str>,
}

/// A way the message we signed differs from the one WeChat checked, or the reason it could
/// not verify a right message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(
    tag = "code",
    rename_all = "SCREAMING_SNAKE_CASE",
    rename_all_fields = "camelCase"
)]
pub enum Mistake {
    /// The answer's timestamp or nonce is not the header's: it belongs to another request.
    OtherRequest {
        field: String,
        header: String,
        wechat: String,
    },
    /// Signed with another method than the one sent.
    MethodMismatch { signed: String, wechat: String },
    /// Signed `https://host/path` where WeChat signs only the path and query.
    FullUrlSigned { signed: String, wechat: String },
    /// Signed the path without the query string that was sent.
    QueryDropped { signed: String, wechat: String },
    /// Signed another URL than the one sent (query order or encoding, another path).
    UrlMismatch { signed: String, wechat: String },
    /// The message's timestamp is not the header's (WeChat signs the header's).
    TimestampMismatch { signed: String, sent: String },
    /// The message's nonce is not the header's `nonce_str` (WeChat signs the header's).
    NonceMismatch { signed: String, sent: String },
    /// Signed an empty body line; WeChat received a body.
    BodyMissing { wechat_length: u64 },
    /// Signed a body, but none was sent (a GET, or a body the client dropped).
    BodyNotSent { signed_length: usize },
    /// The body sent is a re-serialization of the body signed (`how` says which).
    BodyReserialized {
        how: String,
        signed_length: usize,
        wechat_length: u64,
    },
    /// The body sent differs from the body signed, in no way we recognise.
    BodyDiffers {
        signed_length: usize,
        wechat_length: Option<u64>,
        /// The first byte offset where WeChat's shown bytes and ours differ, if in view.
        first_difference: Option<usize>,
    },
    /// The signed message does not end with `\n` after the body.
    FinalNewlineMissing,
    /// The header's `serial_no` is not the signing key's certificate (`expected`, when
    /// known), or WeChat said so.
    SerialMismatch {
        sent: Option<String>,
        expected: Option<String>,
        wechat_says: Option<String>,
    },
    /// The header's `signature` is not base64 of a 2048-bit RSA signature.
    SignatureMalformed { decoded_length: Option<usize> },
    /// The message is the one WeChat built (`compared` says how much of it WeChat showed):
    /// the key that signed does not belong to the certificate `serial_no` names.
    KeyOrSignatureWrong { compared: String },
}

impl Mistake {
    pub fn code(&self) -> &'static str {
        match self {
            Mistake::OtherRequest { .. } => "OTHER_REQUEST",
            Mistake::MethodMismatch { .. } => "METHOD_MISMATCH",
            Mistake::FullUrlSigned { .. } => "FULL_URL_SIGNED",
            Mistake::QueryDropped { .. } => "QUERY_DROPPED",
            Mistake::UrlMismatch { .. } => "URL_MISMATCH",
            Mistake::TimestampMismatch { .. } => "TIMESTAMP_MISMATCH",
            Mistake::NonceMismatch { .. } => "NONCE_MISMATCH",
            Mistake::BodyMissing { .. } => "BODY_MISSING",
            Mistake::BodyNotSent { .. } => "BODY_NOT_SENT",
            Mistake::BodyReserialized { .. } => "BODY_RESERIALIZED",
            Mistake::BodyDiffers { .. } => "BODY_DIFFERS",
            Mistake::FinalNewlineMissing => "FINAL_NEWLINE_MISSING",
            Mistake::SerialMismatch { .. } => "SERIAL_MISMATCH",
            Mistake::SignatureMalformed { .. } => "SIGNATURE_MALFORMED",
            Mistake::KeyOrSignatureWrong { .. } => "KEY_OR_SIGNATURE_WRONG",
        }
    }
}

/// Every [`Mistake::code`], for the shells' types.
pub const MISTAKE_CODES: &[&str] = &[
    "OTHER_REQUEST",
    "METHOD_MISMATCH",
    "FULL_URL_SIGNED",
    "QUERY_DROPPED",
    "URL_MISMATCH",
    "TIMESTAMP_MISMATCH",
    "NONCE_MISMATCH",
    "BODY_MISSING",
    "BODY_NOT_SENT",
    "BODY_RESERIALIZED",
    "BODY_DIFFERS",
    "FINAL_NEWLINE_MISSING",
    "SERIAL_MISMATCH",
    "SIGNATURE_MALFORMED",
    "KEY_OR_SIGNATURE_WRONG",
];

impl fmt::Display for Mistake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mistake::OtherRequest {
                field,
                header,
                wechat,
            } => write!(
                f,
                "WeChat's message has {field} {wechat:?} but the Authorization header {header:?}: this answer is for another request"
            ),
            Mistake::MethodMismatch { signed, wechat } => write!(
                f,
                "signed method {signed:?}, sent {wechat:?}: sign the method sent, uppercase"
            ),
            Mistake::FullUrlSigned { signed, wechat } => write!(
                f,
                "signed the full URL {signed:?}; WeChat signs only the path and query {wechat:?}"
            ),
            Mistake::QueryDropped { signed, wechat } => write!(
                f,
                "signed {signed:?} without the query string; WeChat signs {wechat:?}, the ?query included"
            ),
            Mistake::UrlMismatch { signed, wechat } => write!(
                f,
                "signed URL {signed:?}, WeChat received {wechat:?}: sign the path and query exactly as sent (no re-encoding, no reordering)"
            ),
            Mistake::TimestampMismatch { signed, sent } => write!(
                f,
                "signed timestamp {signed}, but the Authorization header says {sent}: use the same timestamp for both"
            ),
            Mistake::NonceMismatch { signed, sent } => write!(
                f,
                "signed nonce {signed:?}, but the Authorization header's nonce_str is {sent:?}: use the same nonce for both"
            ),
            Mistake::BodyMissing { wechat_length } => write!(
                f,
                "the body was left out of the signed message; WeChat received {wechat_length} bytes of body and signs them"
            ),
            Mistake::BodyNotSent { signed_length } => write!(
                f,
                "signed a body of {signed_length} bytes, but WeChat received none (a GET signs an empty body line)"
            ),
            Mistake::BodyReserialized {
                how,
                signed_length,
                wechat_length,
            } => write!(
                f,
                "the body sent ({wechat_length} bytes) is the signed body ({signed_length} bytes) {how}: sign the exact bytes you send, serialize once"
            ),
            Mistake::BodyDiffers {
                signed_length,
                wechat_length,
                first_difference,
            } => {
                write!(
                    f,
                    "the body signed ({signed_length} bytes) is not the body sent"
                )?;
                if let Some(n) = wechat_length {
                    write!(f, " ({n} bytes)")?;
                }
                if let Some(i) = first_difference {
                    write!(f, ", first differing at byte {i}")?;
                }
                write!(f, ": sign the exact bytes you send")
            }
            Mistake::FinalNewlineMissing => write!(
                f,
                "the signed message does not end with \\n after the body; every line ends with \\n, the body line too (a GET ends in \\n\\n)"
            ),
            Mistake::SerialMismatch {
                sent,
                expected,
                wechat_says,
            } => {
                match (sent, expected) {
                    (Some(s), Some(e)) => write!(
                        f,
                        "serial_no {s:?} is not the certificate of the signing key ({e:?})"
                    )?,
                    (Some(s), None) => {
                        write!(f, "serial_no {s:?} is not the signing key's certificate")?
                    }
                    _ => write!(f, "serial_no is not the signing key's certificate")?,
                }
                if let Some(w) = wechat_says {
                    write!(f, " (WeChat: {w})")?;
                }
                write!(
                    f,
                    ": send the serial of the merchant API certificate whose private key signs (商户平台 → API安全)"
                )
            }
            Mistake::SignatureMalformed { decoded_length } => match decoded_length {
                Some(n) => write!(
                    f,
                    "the signature decodes to {n} bytes; a SHA256withRSA-2048 signature is 256: send its standard base64, unaltered"
                ),
                None => write!(
                    f,
                    "the signature is not standard base64 (+/ and = padding): send it unaltered"
                ),
            },
            Mistake::KeyOrSignatureWrong { compared } => write!(
                f,
                "the message is right ({compared}): the private key that signed is not the one of the certificate serial_no names, or the signature is not SHA256withRSA of these bytes"
            ),
        }
    }
}

/// WeChat's view of the message: `sign_information`, read.
/// Serialized camelCase: the npm package hands it to JavaScript as is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WechatView {
    pub method: String,
    pub url: String,
    pub sign_message_length: u64,
    pub truncated_sign_message: String,
    /// The timestamp and nonce lines of `truncated_sign_message` (the header's, as WeChat
    /// read them), when it shows them.
    pub timestamp: Option<String>,
    pub nonce: Option<String>,
    /// `truncated_sign_message` is the whole message (its length is `sign_message_length`).
    pub complete: bool,
}

/// The diagnosis of one SIGN_ERROR.
/// Serialized camelCase (the npm package's shape); each mistake as `{code, ...fields}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    /// WeChat's `message`.
    pub wechat_message: String,
    /// The message we signed (lossy UTF-8), when we know it.
    pub ours: Option<String>,
    pub ours_length: Option<usize>,
    /// `None` when the answer has no `sign_information` (e.g. the serial refusal).
    pub wechat: Option<WechatView>,
    /// Our message is WeChat's, as far as WeChat shows it (`None`: not compared).
    pub message_matches: Option<bool>,
    pub mistakes: Vec<Mistake>,
    /// What to check next, in one sentence.
    pub hint: String,
}

/// Our message taken apart.
struct Lines<'a> {
    method: &'a str,
    url: &'a str,
    timestamp: &'a str,
    nonce: &'a str,
    body: &'a [u8],
    final_newline: bool,
    message: Vec<u8>,
}

fn text(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap_or("\u{fffd}")
}

/// Splits `METHOD\nURL\nTIMESTAMP\nNONCE\n` off `m`; the rest is the body line(s).
fn four_lines(m: &[u8]) -> Option<([&[u8]; 4], &[u8])> {
    let mut rest = m;
    let mut lines: [&[u8]; 4] = [&[]; 4];
    for line in &mut lines {
        let i = rest.iter().position(|&b| b == b'\n')?;
        *line = &rest[..i];
        rest = &rest[i + 1..];
    }
    Some((lines, rest))
}

fn lines_of(signed: Signed<'_>) -> Result<Lines<'_>, ExplainError> {
    match signed {
        Signed::Request(r) => {
            let mut message = Vec::new();
            for line in [
                r.method.as_bytes(),
                r.url.as_bytes(),
                r.timestamp.as_bytes(),
                r.nonce_str.as_bytes(),
                r.body,
            ] {
                message.extend_from_slice(line);
                message.push(b'\n');
            }
            Ok(Lines {
                method: r.method,
                url: r.url,
                timestamp: r.timestamp,
                nonce: r.nonce_str,
                body: r.body,
                final_newline: true,
                message,
            })
        }
        Signed::Message(m) => {
            let ([method, url, timestamp, nonce], rest) =
                four_lines(m).ok_or(ExplainError::BadMessage)?;
            let (body, final_newline) = match rest.strip_suffix(b"\n") {
                Some(body) => (body, true),
                None => (rest, false),
            };
            Ok(Lines {
                method: text(method),
                url: text(url),
                timestamp: text(timestamp),
                nonce: text(nonce),
                body,
                final_newline,
                message: m.to_vec(),
            })
        }
    }
}

/// Whether WeChat's length `n` is the length of `b` (bytes or UTF-16 units: see the
/// module docs).
fn same_length(n: u64, b: &[u8]) -> bool {
    if n == b.len() as u64 {
        return true;
    }
    std::str::from_utf8(b).is_ok_and(|s| n == s.encode_utf16().count() as u64)
}

/// WeChat's body: the bytes it shows, its length when computable, whether shown whole.
struct WechatBody<'a> {
    shown: &'a [u8],
    length: Option<u64>,
    complete: bool,
}

impl WechatBody<'_> {
    fn matches(&self, candidate: &[u8]) -> bool {
        let shown = if self.complete {
            candidate == self.shown
        } else {
            candidate.starts_with(self.shown)
        };
        shown && self.length.is_none_or(|n| same_length(n, candidate))
    }

    fn is_empty(&self) -> bool {
        self.length == Some(0) || (self.complete && self.shown.is_empty())
    }
}

fn view_of(info: &SignInformation) -> (WechatView, Option<WechatBody<'_>>) {
    let t = info.truncated_sign_message.as_bytes();
    let complete = same_length(info.sign_message_length, t);
    let mut view = WechatView {
        method: info.method.clone(),
        url: info.url.clone(),
        sign_message_length: info.sign_message_length,
        truncated_sign_message: info.truncated_sign_message.clone(),
        timestamp: None,
        nonce: None,
        complete,
    };
    let Some(([method, url, timestamp, nonce], rest)) = four_lines(t) else {
        return (view, None);
    };
    view.timestamp = Some(text(timestamp).to_owned());
    view.nonce = Some(text(nonce).to_owned());
    // The body line ends in `\n` when whole; when cut, a `\n` follows the cut (see the
    // module docs): either way it is not counted as body.
    let shown = rest.strip_suffix(b"\n").unwrap_or(rest);
    let head = [method, url, timestamp, nonce]
        .iter()
        .map(|l| l.len() as u64 + 1)
        .sum::<u64>();
    // The body's length is the whole length less the four lines and the body's `\n`;
    // head lines are ASCII in practice, so bytes and units agree on them.
    let length = info.sign_message_length.checked_sub(head + 1);
    (
        view,
        Some(WechatBody {
            shown,
            length,
            complete,
        }),
    )
}

/// Whitespace outside JSON strings removed, key order kept (`None` if `b` is no JSON text
/// we can walk: unbalanced quotes).
fn minified(b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(b.len());
    let (mut in_string, mut escaped) = (false, false);
    for &c in b {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_string = false;
            }
        } else if c == b'"' {
            in_string = true;
            out.push(c);
        } else if !matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
            out.push(c);
        }
    }
    (!in_string).then_some(out)
}

/// `JSON.stringify(value, null, indent)`'s layout applied to minified JSON text, with
/// `newline` between lines (`\r\n` from Windows-side serializers). Key order kept.
fn pretty(min: &[u8], indent: &str, newline: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(min.len() * 2);
    let mut depth = 0usize;
    let (mut in_string, mut escaped) = (false, false);
    let line = |out: &mut Vec<u8>, depth: usize| {
        out.extend_from_slice(newline.as_bytes());
        for _ in 0..depth {
            out.extend_from_slice(indent.as_bytes());
        }
    };
    for (i, &c) in min.iter().enumerate() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_string = false;
            }
            continue;
        }
        match c {
            b'"' => {
                in_string = true;
                out.push(c);
            }
            b'{' | b'[' => {
                out.push(c);
                // An empty container stays `{}` / `[]`.
                if !matches!(min.get(i + 1), Some(b'}' | b']')) {
                    depth += 1;
                    line(&mut out, depth);
                }
            }
            b'}' | b']' => {
                if !matches!(min.get(i.wrapping_sub(1)), Some(b'{' | b'[')) {
                    depth = depth.saturating_sub(1);
                    line(&mut out, depth);
                }
                out.push(c);
            }
            b',' => {
                out.push(c);
                line(&mut out, depth);
            }
            b':' => out.extend_from_slice(b": "),
            _ => out.push(c),
        }
    }
    out
}

/// `\"` and `\\` undone (a body signed as the JSON string of itself), `None` if none.
fn unescaped(b: &[u8]) -> Option<Vec<u8>> {
    if !b.windows(2).any(|w| w == b"\\\"") {
        return None;
    }
    let mut out = Vec::with_capacity(b.len());
    let mut it = b.iter().copied();
    while let Some(c) = it.next() {
        if c == b'\\' {
            match it.next() {
                Some(n @ (b'"' | b'\\' | b'/')) => out.push(n),
                Some(b'n') => out.push(b'\n'),
                Some(b'r') => out.push(b'\r'),
                Some(b't') => out.push(b'\t'),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// `"` and `\\` escaped (a body sent as the JSON string of itself).
fn escaped(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len() + 8);
    for &c in b {
        match c {
            b'"' | b'\\' => out.extend_from_slice(&[b'\\', c]),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => out.push(c),
        }
    }
    out
}

/// The ways a body is commonly re-serialized between signing and sending, each with the
/// words for it. Plain byte walks, no JSON parser: the npm package's wasm has a size
/// budget. (Key re-ordering needs a parser: [`explain`] tries it, [`explain_answer`] not.)
fn reserializations(body: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    if let Some(inner) = unescaped(body) {
        out.push(("with its \\\" escapes undone".into(), inner));
    }
    if let Some(min) = minified(body) {
        for (indent, words) in [("  ", "2 spaces"), ("    ", "4 spaces"), ("\t", "tabs")] {
            for (newline, nl_words) in [("\n", "\\n"), ("\r\n", "\\r\\n")] {
                out.push((
                    format!("pretty-printed ({words}, {nl_words} line ends)"),
                    pretty(&min, indent, newline),
                ));
            }
        }
        out.push(("minified (whitespace removed)".into(), min));
    }
    out.push(("with its quotes escaped (\\\")".into(), escaped(body)));
    out.retain(|(_, b)| b != body);
    out
}

/// Strips `scheme://host` from a full URL, leaving the path and query.
fn path_of_full_url(url: &str) -> Option<&str> {
    let lower = url.get(..8).map(str::to_ascii_lowercase)?;
    let rest = if lower.starts_with("https://") {
        &url[8..]
    } else if lower.starts_with("http://") {
        &url[7..]
    } else {
        return None;
    };
    Some(rest.find('/').map_or("/", |i| &rest[i..]))
}

fn body_mistake(ours: &[u8], w: &WechatBody<'_>) -> Option<Mistake> {
    if w.matches(ours) {
        return None;
    }
    if ours.is_empty() {
        return w
            .length
            .filter(|&n| n > 0)
            .map(|n| Mistake::BodyMissing { wechat_length: n });
    }
    if w.is_empty() {
        return Some(Mistake::BodyNotSent {
            signed_length: ours.len(),
        });
    }
    if let Some(n) = w.length {
        for (how, candidate) in reserializations(ours) {
            if w.matches(&candidate) {
                return Some(Mistake::BodyReserialized {
                    how,
                    signed_length: ours.len(),
                    wechat_length: n,
                });
            }
        }
    }
    let first_difference = ours
        .iter()
        .zip(w.shown)
        .position(|(a, b)| a != b)
        .or_else(|| (ours.len() < w.shown.len()).then_some(ours.len()));
    Some(Mistake::BodyDiffers {
        signed_length: ours.len(),
        wechat_length: w.length,
        first_difference,
    })
}

fn url_mistake(signed: &str, wechat: &str) -> Option<Mistake> {
    if wechat.is_empty() || signed == wechat {
        return None;
    }
    let (signed_s, wechat_s) = (signed.to_owned(), wechat.to_owned());
    if path_of_full_url(signed) == Some(wechat) {
        return Some(Mistake::FullUrlSigned {
            signed: signed_s,
            wechat: wechat_s,
        });
    }
    let path = path_of_full_url(signed).unwrap_or(signed);
    if !path.contains('?') && wechat.split_once('?').is_some_and(|(p, _)| p == path) {
        return Some(Mistake::QueryDropped {
            signed: signed_s,
            wechat: wechat_s,
        });
    }
    Some(Mistake::UrlMismatch {
        signed: signed_s,
        wechat: wechat_s,
    })
}

/// WeChat's error answer, read: its `code`, `message` and `detail.sign_information`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub code: String,
    pub message: String,
    pub sign_information: Option<SignInformation>,
}

/// Explains WeChat's SIGN_ERROR `answer` (the response body, as received) for the request
/// `ours` describes (see the module docs). Never panics.
pub fn explain(ours: Ours<'_>, answer: &[u8]) -> Result<Explanation, ExplainError> {
    let error = ApiError::parse(401, answer);
    if error.code == Code::Other(String::new()) {
        return Err(ExplainError::NotJson);
    }
    let read = Answer {
        code: error.code.as_str().to_owned(),
        message: error.message.clone(),
        sign_information: error.sign_information(),
    };
    let mut e = explain_answer(ours, &read)?;
    // A body sent with its keys re-ordered: serde_json's map is ordered by key.
    if let (Some(Ok(lines)), Some(info)) = (ours.signed.map(lines_of), &read.sign_information)
        && let body = lines.body
        && let Some(i) = e
            .mistakes
            .iter()
            .position(|m| matches!(m, Mistake::BodyDiffers { .. }))
        && let Ok(value) = serde_json::from_slice::<serde_json::Value>(body)
        && let Ok(sorted) = serde_json::to_vec(&value)
        && let (_, Some(w)) = view_of(info)
        && let Some(n) = w.length
        && w.matches(&sorted)
    {
        e.mistakes[i] = Mistake::BodyReserialized {
            how: "re-encoded with its keys sorted".into(),
            signed_length: body.len(),
            wechat_length: n,
        };
    }
    Ok(e)
}

/// [`explain`] for an answer already read (the npm package reads it with the engine's
/// `JSON.parse`); it does not try key re-ordering (see [`reserializations`]).
pub fn explain_answer(ours: Ours<'_>, answer: &Answer) -> Result<Explanation, ExplainError> {
    if answer.code != "SIGN_ERROR" {
        return Err(ExplainError::NotSignError(answer.code.clone()));
    }
    let error = answer;
    let header = ours.authorization.map(Authorization::parse).transpose()?;
    if ours.signed.is_none() && header.is_none() {
        return Err(ExplainError::NothingToCompare);
    }
    let lines = ours.signed.map(lines_of).transpose()?;
    let info = error.sign_information.clone();
    let (view, wechat_body) = match &info {
        Some(i) => {
            let (v, b) = view_of(i);
            (Some(v), b)
        }
        None => (None, None),
    };
    let mut mistakes = Vec::new();

    // The answer must be this request's: WeChat's message carries the header's timestamp
    // and nonce.
    if let (Some(h), Some(v)) = (&header, &view) {
        for (field, ours_value, theirs) in [
            ("timestamp", &h.timestamp, &v.timestamp),
            ("nonce_str", &h.nonce_str, &v.nonce),
        ] {
            if let Some(t) = theirs
                && t != ours_value
            {
                mistakes.push(Mistake::OtherRequest {
                    field: field.into(),
                    header: ours_value.clone(),
                    wechat: t.clone(),
                });
            }
        }
        if !mistakes.is_empty() {
            return Ok(Explanation {
                wechat_message: error.message.clone(),
                ours: lines.as_ref().map(|l| String::from_utf8_lossy(&l.message).into_owned()),
                ours_length: lines.as_ref().map(|l| l.message.len()),
                wechat: view,
                message_matches: None,
                mistakes,
                hint: "pair each answer with the request it answers (same timestamp and nonce_str), then explain again".into(),
            });
        }
    }

    if let Some(l) = &lines {
        if let Some(v) = &view {
            if !v.method.is_empty() && l.method != v.method {
                mistakes.push(Mistake::MethodMismatch {
                    signed: l.method.into(),
                    wechat: v.method.clone(),
                });
            }
            mistakes.extend(url_mistake(l.url, &v.url));
        }
        // The timestamp and nonce WeChat signs are the header's: from the header itself,
        // else from WeChat's message.
        let sent_ts = header
            .as_ref()
            .map(|h| h.timestamp.clone())
            .or_else(|| view.as_ref().and_then(|v| v.timestamp.clone()));
        let sent_nonce = header
            .as_ref()
            .map(|h| h.nonce_str.clone())
            .or_else(|| view.as_ref().and_then(|v| v.nonce.clone()));
        if let Some(sent) = sent_ts
            && sent != l.timestamp
        {
            mistakes.push(Mistake::TimestampMismatch {
                signed: l.timestamp.into(),
                sent,
            });
        }
        if let Some(sent) = sent_nonce
            && sent != l.nonce
        {
            mistakes.push(Mistake::NonceMismatch {
                signed: l.nonce.into(),
                sent,
            });
        }
        if let Some(w) = &wechat_body {
            mistakes.extend(body_mistake(l.body, w));
        }
        if !l.final_newline {
            mistakes.push(Mistake::FinalNewlineMissing);
        }
    }

    // The serial: against the certificate's, and WeChat's own words for it ("商户证书序列号有误。
    // 请使用签名私钥匹配的证书序列号", quoted in
    // https://developers.weixin.qq.com/community/develop/doc/000848dfb946003444a1b56716d800).
    let sent_serial = header.as_ref().map(|h| h.serial_no.clone());
    let expected = ours.certificate_serial.map(|s| s.trim().to_owned());
    let wechat_says = error
        .message
        .contains("证书序列号")
        .then(|| error.message.clone());
    let serial_differs = matches!((&sent_serial, &expected), (Some(s), Some(e)) if s != e);
    if serial_differs || wechat_says.is_some() {
        mistakes.push(Mistake::SerialMismatch {
            sent: sent_serial,
            expected,
            wechat_says,
        });
    }
    if let Some(h) = &header {
        match STANDARD.decode(&h.signature) {
            Ok(sig) if sig.len() == 256 => {}
            Ok(sig) => mistakes.push(Mistake::SignatureMalformed {
                decoded_length: Some(sig.len()),
            }),
            Err(_) => mistakes.push(Mistake::SignatureMalformed {
                decoded_length: None,
            }),
        }
    }

    let message_matches = match (&lines, &view) {
        (Some(_), Some(_)) => Some(!mistakes.iter().any(is_message_mistake)),
        _ => None,
    };
    if message_matches == Some(true) && mistakes.is_empty() {
        let compared = match &view {
            Some(v) if v.complete => "WeChat showed all of it, byte for byte".to_owned(),
            Some(v) => format!(
                "its head lines, its length ({}) and the {} bytes WeChat showed",
                v.sign_message_length,
                v.truncated_sign_message.len()
            ),
            None => String::new(),
        };
        mistakes.push(Mistake::KeyOrSignatureWrong { compared });
    }
    let hint = if mistakes.is_empty() {
        match (&lines, &view) {
            (None, _) => "pass the request you signed (or the message itself) to compare it with WeChat's".into(),
            (_, None) => "WeChat's answer has no sign_information to compare with; check serial_no and the key (商户平台 → API安全)".into(),
            _ => "no difference found".into(),
        }
    } else {
        "fix the mistakes listed, in order".into()
    };
    Ok(Explanation {
        wechat_message: error.message.clone(),
        ours: lines
            .as_ref()
            .map(|l| String::from_utf8_lossy(&l.message).into_owned()),
        ours_length: lines.as_ref().map(|l| l.message.len()),
        wechat: view,
        message_matches,
        mistakes,
        hint,
    })
}

fn is_message_mistake(m: &Mistake) -> bool {
    !matches!(
        m,
        Mistake::SerialMismatch { .. }
            | Mistake::SignatureMalformed { .. }
            | Mistake::KeyOrSignatureWrong { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v3::authorization::Request;

    const TS: i64 = 1_554_208_460;
    const NONCE: &str = "593BEC0C930BF1AFEB40B4A08C8FB242";
    const SERIAL: &str = "408B07E79B8269FEC3D5D3E6AB8ED163A6A380DB";
    const BODY: &[u8] =
        br#"{"appid":"wxd678efh567hg6787","mchid":"1230000109","amount":{"total":100}}"#;

    fn post(body: &[u8]) -> Request<'_> {
        Request {
            method: "POST",
            url: "/v3/pay/transactions/jsapi",
            timestamp: TS,
            nonce_str: NONCE,
            body,
        }
    }

    /// WeChat's SIGN_ERROR for the request it received: the message it built, shown with
    /// the body cut after 8 bytes and a `\n`, as in the answers quoted in the module docs.
    fn answer_to(sent: &Request<'_>) -> Vec<u8> {
        let m = sent.message().unwrap();
        let (_, rest) = four_lines(&m).unwrap();
        let head = &m[..m.len() - rest.len()];
        let shown = &sent.body[..sent.body.len().min(8)];
        let truncated = [head, shown, b"\n"].concat();
        serde_json::to_vec(&serde_json::json!({
            "code": "SIGN_ERROR",
            "message": "错误的签名，验签失败",
            "detail": {
                "detail": {"issue": "sign not match"},
                "field": "signature",
                "location": "authorization",
                "sign_information": {
                    "method": sent.method,
                    "url": sent.url,
                    "sign_message_length": m.len(),
                    "truncated_sign_message": String::from_utf8(truncated).unwrap(),
                }
            }
        }))
        .unwrap()
    }

    fn header_for(sent: &Request<'_>) -> String {
        Authorization::new("1230000109", SERIAL, sent, &[7u8; 256])
            .unwrap()
            .to_header_value()
    }

    /// Explains what `signed` (a message built by the core's builder, then spoiled) gives
    /// when `sent` is what went out.
    fn explain_message(signed: &[u8], sent: &Request<'_>) -> Explanation {
        let header = header_for(sent);
        explain(
            Ours {
                signed: Some(Signed::Message(signed)),
                authorization: Some(&header),
                certificate_serial: Some(SERIAL),
            },
            &answer_to(sent),
        )
        .unwrap()
    }

    fn codes(e: &Explanation) -> Vec<&'static str> {
        e.mistakes.iter().map(Mistake::code).collect()
    }

    #[test]
    fn the_right_message_means_the_key_or_signature_is_wrong() {
        let sent = post(BODY);
        let e = explain_message(&sent.message().unwrap(), &sent);
        assert_eq!(codes(&e), ["KEY_OR_SIGNATURE_WRONG"]);
        assert_eq!(e.message_matches, Some(true));
        assert!(!e.wechat.as_ref().unwrap().complete);
        // A short body is shown whole: the comparison is byte for byte.
        let short = post(br#"{"s":1}"#);
        let e = explain_message(&short.message().unwrap(), &short);
        assert!(e.wechat.as_ref().unwrap().complete);
        assert!(e.mistakes[0].to_string().contains("byte for byte"));
    }

    #[test]
    fn a_real_answer_from_wechat_is_read() {
        // The answer quoted in WeChat's community (module docs): 79 bytes, body cut at 8.
        let answer = r#"{"code":"SIGN_ERROR","detail":{"detail":{"issue":"sign not match"},"field":"signature","location":"authorization","sign_information":{"method":"POST","sign_message_length":79,"truncated_sign_message":"POST\n/v3/smartguide/guides\n1591088141\n1591088141009\n{\"sub_mc\n","url":"/v3/smartguide/guides"}},"message":"错误的签名，验签失败"}"#;
        let signed = SignedRequest {
            method: "POST",
            url: "/v3/smartguide/guides",
            timestamp: "1591088141",
            nonce_str: "1591088141009",
            body: br#"{"sub_mchid":"1544402991"}"#,
        };
        let ours = Ours {
            signed: Some(Signed::Request(signed)),
            ..Ours::default()
        };
        let e = explain(ours, answer.as_bytes()).unwrap();
        assert_eq!(codes(&e), ["KEY_OR_SIGNATURE_WRONG"]);
        // The same request signed in lowercase, as the asker's log shows ("post /v3/…").
        let lower = SignedRequest {
            method: "post",
            ..signed
        };
        let ours = Ours {
            signed: Some(Signed::Request(lower)),
            ..Ours::default()
        };
        let e = explain(ours, answer.as_bytes()).unwrap();
        assert_eq!(codes(&e), ["METHOD_MISMATCH"]);
    }

    #[test]
    fn a_body_left_out_of_the_signature_is_named() {
        let sent = post(BODY);
        let e = explain_message(&post(b"").message().unwrap(), &sent);
        assert_eq!(codes(&e), ["BODY_MISSING"]);
        assert_eq!(
            e.mistakes[0],
            Mistake::BodyMissing {
                wechat_length: BODY.len() as u64
            }
        );
        // Joined without line ends and without the body: both named.
        let mut m = post(b"").message().unwrap();
        m.pop();
        assert_eq!(
            codes(&explain_message(&m, &sent)),
            ["BODY_MISSING", "FINAL_NEWLINE_MISSING"]
        );
    }

    #[test]
    fn a_body_re_serialized_after_signing_is_named() {
        // Signed compact, sent as JSON.stringify(body, null, 2).
        let pretty_body = pretty(BODY, "  ", "\n");
        let sent = post(&pretty_body);
        let e = explain_message(&post(BODY).message().unwrap(), &sent);
        assert_eq!(codes(&e), ["BODY_RESERIALIZED"]);
        assert!(
            e.mistakes[0]
                .to_string()
                .contains("pretty-printed (2 spaces")
        );
        // Signed pretty (CRLF), sent minified.
        let crlf = pretty(BODY, "  ", "\r\n");
        let e = explain_message(&post(&crlf).message().unwrap(), &post(BODY));
        assert!(
            matches!(&e.mistakes[..], [Mistake::BodyReserialized { how, .. }] if how.starts_with("minified"))
        );
        // Signed in insertion order, sent with the keys sorted.
        let sorted =
            br#"{"amount":{"total":100},"appid":"wxd678efh567hg6787","mchid":"1230000109"}"#;
        let e = explain_message(&post(BODY).message().unwrap(), &post(sorted));
        assert!(
            matches!(&e.mistakes[..], [Mistake::BodyReserialized { how, .. }] if how.contains("sorted"))
        );
        // Signed with escaped quotes, sent plain (the forum's case).
        let escaped = br#"{\"s\":1}"#;
        let e = explain_message(&post(escaped).message().unwrap(), &post(br#"{"s":1}"#));
        assert!(
            matches!(&e.mistakes[..], [Mistake::BodyReserialized { how, .. }] if how.contains("escapes undone")),
            "{e:?}"
        );
    }

    #[test]
    fn a_body_changed_otherwise_is_only_said_to_differ() {
        let other =
            br#"{"appid":"wxd678efh567hg6787","mchid":"1230000109","amount":{"total":101}}"#;
        let e = explain_message(&post(other).message().unwrap(), &post(BODY));
        // Same length, same first 8 bytes: WeChat does not show the change, so the
        // message cannot be told from the right one...
        assert_eq!(codes(&e), ["KEY_OR_SIGNATURE_WRONG"]);
        assert!(
            e.mistakes[0].to_string().contains("its length"),
            "{}",
            e.mistakes[0]
        );
        // ...but a different length shows.
        let longer =
            br#"{"appid":"wxd678efh567hg6787","mchid":"1230000109","amount":{"total":1000}}"#;
        let e = explain_message(&post(longer).message().unwrap(), &post(BODY));
        assert_eq!(codes(&e), ["BODY_DIFFERS"]);
    }

    #[test]
    fn a_body_signed_but_not_sent_is_named() {
        let sent = Request {
            method: "GET",
            url: "/v3/pay/transactions/out-trade-no/T1?mchid=1230000109",
            timestamp: TS,
            nonce_str: NONCE,
            body: b"",
        };
        let signed = SignedRequest {
            method: "GET",
            url: sent.url,
            timestamp: "1554208460",
            nonce_str: NONCE,
            body: b"{}",
        };
        let header = header_for(&sent);
        let e = explain(
            Ours {
                signed: Some(Signed::Request(signed)),
                authorization: Some(&header),
                certificate_serial: None,
            },
            &answer_to(&sent),
        )
        .unwrap();
        assert_eq!(codes(&e), ["BODY_NOT_SENT"]);
    }

    fn get(url: &str) -> Request<'_> {
        Request {
            method: "GET",
            url,
            timestamp: TS,
            nonce_str: NONCE,
            body: b"",
        }
    }

    #[test]
    fn a_dropped_query_a_full_url_and_another_url_are_named() {
        let sent = get("/v3/pay/transactions/out-trade-no/T1?mchid=1230000109");
        let dropped = get("/v3/pay/transactions/out-trade-no/T1")
            .message()
            .unwrap();
        assert_eq!(codes(&explain_message(&dropped, &sent)), ["QUERY_DROPPED"]);
        // The core's builder refuses a full URL, so the mistake is made by hand.
        let full = b"GET\nhttps://api.mch.weixin.qq.com/v3/pay/transactions/out-trade-no/T1?mchid=1230000109\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n\n";
        assert_eq!(codes(&explain_message(full, &sent)), ["FULL_URL_SIGNED"]);
        let reordered = get("/v3/x?b=2&a=1").message().unwrap();
        let e = explain_message(&reordered, &get("/v3/x?a=1&b=2"));
        assert_eq!(codes(&e), ["URL_MISMATCH"]);
    }

    #[test]
    fn a_timestamp_or_nonce_other_than_the_headers_is_named() {
        let sent = post(BODY);
        let late = Request {
            timestamp: TS + 1,
            ..sent
        };
        let e = explain_message(&late.message().unwrap(), &sent);
        assert_eq!(codes(&e), ["TIMESTAMP_MISMATCH"]);
        assert!(e.mistakes[0].to_string().contains("1554208461"));
        let other = Request {
            nonce_str: "other",
            ..sent
        };
        assert_eq!(
            codes(&explain_message(&other.message().unwrap(), &sent)),
            ["NONCE_MISMATCH"]
        );
    }

    #[test]
    fn a_missing_final_newline_is_named() {
        let sent = get("/v3/certificates");
        let mut m = sent.message().unwrap();
        m.pop();
        assert_eq!(
            codes(&explain_message(&m, &sent)),
            ["FINAL_NEWLINE_MISSING"]
        );
        let sent = post(BODY);
        let mut m = sent.message().unwrap();
        m.pop();
        assert_eq!(
            codes(&explain_message(&m, &sent)),
            ["FINAL_NEWLINE_MISSING"]
        );
    }

    #[test]
    fn another_certificates_serial_is_named_not_the_key() {
        let sent = post(BODY);
        let header = header_for(&sent);
        let m = sent.message().unwrap();
        let ours = Ours {
            signed: Some(Signed::Message(&m)),
            authorization: Some(&header),
            certificate_serial: Some("5157F09EFDC096DE15EBE81A47057A7232F1B8E1"),
        };
        let e = explain(ours, &answer_to(&sent)).unwrap();
        assert_eq!(codes(&e), ["SERIAL_MISMATCH"]);
        assert_eq!(e.message_matches, Some(true));
        // WeChat's own refusal of the serial carries no sign_information.
        let answer = r#"{"code":"SIGN_ERROR","message":"商户证书序列号有误。请使用签名私钥匹配的证书序列号"}"#;
        let e = explain(
            Ours {
                authorization: Some(&header),
                ..Ours::default()
            },
            answer.as_bytes(),
        )
        .unwrap();
        assert_eq!(codes(&e), ["SERIAL_MISMATCH"]);
        assert!(e.mistakes[0].to_string().contains(SERIAL));
    }

    #[test]
    fn a_mangled_signature_is_named() {
        let sent = post(BODY);
        let header = header_for(&sent).replace("signature=\"", "signature=\"%%");
        let m = sent.message().unwrap();
        let ours = Ours {
            signed: Some(Signed::Message(&m)),
            authorization: Some(&header),
            certificate_serial: None,
        };
        let e = explain(ours, &answer_to(&sent)).unwrap();
        assert_eq!(codes(&e), ["SIGNATURE_MALFORMED"]);
    }

    #[test]
    fn an_answer_for_another_request_is_said_so() {
        let sent = post(BODY);
        let header = header_for(&Request {
            timestamp: TS + 60,
            ..sent
        });
        let m = sent.message().unwrap();
        let ours = Ours {
            signed: Some(Signed::Message(&m)),
            authorization: Some(&header),
            certificate_serial: None,
        };
        let e = explain(ours, &answer_to(&sent)).unwrap();
        assert_eq!(codes(&e), ["OTHER_REQUEST"]);
    }

    #[test]
    fn what_cannot_be_explained_is_a_typed_error() {
        let sent = post(BODY);
        let m = sent.message().unwrap();
        let ours = Ours {
            signed: Some(Signed::Message(&m)),
            ..Ours::default()
        };
        let e = |ours, answer: &[u8]| explain(ours, answer).unwrap_err();
        assert_eq!(e(ours, b"<html>502</html>").code(), "NOT_JSON");
        assert_eq!(
            e(ours, br#"{"code":"PARAM_ERROR","message":"x"}"#).code(),
            "V3_NOT_SIGN_ERROR"
        );
        assert_eq!(
            e(Ours::default(), &answer_to(&sent)).code(),
            "V3_BAD_REQUEST"
        );
        let short = Ours {
            signed: Some(Signed::Message(b"POST\n/v3/x")),
            ..Ours::default()
        };
        assert_eq!(e(short, &answer_to(&sent)).code(), "V3_BAD_REQUEST");
        let bad = Ours {
            authorization: Some("Bearer x"),
            ..Ours::default()
        };
        assert_eq!(e(bad, &answer_to(&sent)).code(), "V3_BAD_AUTHORIZATION");
        for c in [e(ours, b"x"), e(bad, &answer_to(&sent))] {
            assert!(CODES.contains(&c.code()));
        }
    }

    #[test]
    fn every_mistake_code_is_listed() {
        let all = [
            Mistake::FinalNewlineMissing,
            Mistake::KeyOrSignatureWrong {
                compared: String::new(),
            },
        ];
        for m in all {
            assert!(MISTAKE_CODES.contains(&m.code()));
        }
        assert_eq!(MISTAKE_CODES.len(), 15);
    }
}
