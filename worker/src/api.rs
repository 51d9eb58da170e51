//! The HTTP contract every route shares: the `{code, msg, data}` envelope with a matching
//! status, the body bound, JSON-or-form bodies, and the token in the body or a Bearer header
//! (the seed tutorial's mini-program client sends `token` in a JSON body).

use futures_util::StreamExt;
use serde_json::{Map, Value, json};
use worker::{Headers, Request, Response};

/// Largest body any route reads. WeChat's notifies are ~1 KiB, user-info payloads ~2 KiB.
pub const MAX_BODY: usize = 64 * 1024;

/// A failed request: SPEC.md's code, its HTTP status, a message that says what to fix.
#[derive(Debug)]
pub struct ApiError {
    pub code: u8,
    pub status: u16,
    pub msg: String,
    pub data: Option<Value>,
    /// Sent as `Retry-After` (code 10).
    pub retry_after_secs: Option<u32>,
}

impl ApiError {
    fn new(code: u8, status: u16, msg: impl Into<String>) -> Self {
        ApiError {
            code,
            status,
            msg: msg.into(),
            data: None,
            retry_after_secs: None,
        }
    }

    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    /// Code 1: a parameter is missing or invalid; `msg` names it.
    pub fn param(msg: impl Into<String>) -> Self {
        Self::new(1, 400, msg)
    }

    /// Code 2: no usable token.
    pub fn token(msg: impl Into<String>) -> Self {
        Self::new(2, 401, msg)
    }

    /// Code 3: WeChat answered with an error (`data` carries it).
    pub fn wechat(status: u16, msg: impl Into<String>, data: Value) -> Self {
        Self::new(3, status, msg).with_data(data)
    }

    /// Code 4: the payload does not decrypt under the session_key we hold.
    pub fn stale(msg: impl Into<String>) -> Self {
        Self::new(4, 401, msg)
    }

    pub fn not_found(msg: impl Into<String>) -> Self {
        Self::new(5, 404, msg)
    }

    pub fn method_not_allowed(msg: impl Into<String>) -> Self {
        Self::new(5, 405, msg)
    }

    pub fn conflict(msg: impl Into<String>) -> Self {
        Self::new(6, 409, msg)
    }

    pub fn forbidden(msg: impl Into<String>) -> Self {
        Self::new(7, 403, msg)
    }

    pub fn too_large() -> Self {
        Self::new(8, 413, format!("the body is over {MAX_BODY} bytes"))
    }

    /// Code 10: a rate limit; retry after the window.
    pub fn too_many(msg: impl Into<String>, retry_after_secs: u32) -> Self {
        let mut e = Self::new(10, 429, msg);
        e.retry_after_secs = Some(retry_after_secs);
        e
    }

    /// Code 9: our fault or WeChat's unreachability; state stays consistent.
    pub fn internal(msg: impl Into<String>) -> Self {
        Self::new(9, 500, msg)
    }

    pub fn unreachable(status: u16, msg: impl Into<String>) -> Self {
        Self::new(9, status, msg)
    }

    pub fn response(&self) -> worker::Result<Response> {
        let res = envelope(
            self.status,
            self.code,
            &self.msg,
            self.data.clone().unwrap_or(Value::Null),
        )?;
        if let Some(secs) = self.retry_after_secs {
            res.headers().set("Retry-After", &secs.to_string())?;
        }
        Ok(res)
    }
}

/// Storage and runtime failures: code 9, the detail logged, never shown (it may name
/// tables or values).
impl From<worker::Error> for ApiError {
    fn from(e: worker::Error) -> Self {
        let detail = match &e {
            worker::Error::D1(d) => d.cause(),
            other => other.to_string(),
        };
        worker::console_error!(
            "{}",
            json!({ "level": "error", "what": "storage or runtime", "detail": detail })
        );
        ApiError::internal("internal error: storage unavailable; nothing was changed, try again")
    }
}

impl From<worker::kv::KvError> for ApiError {
    fn from(e: worker::kv::KvError) -> Self {
        worker::Error::from(e).into()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

pub fn envelope(status: u16, code: u8, msg: &str, data: Value) -> worker::Result<Response> {
    Ok(
        Response::from_json(&json!({ "code": code, "msg": msg, "data": data }))?
            .with_status(status),
    )
}

pub fn ok(data: Value) -> ApiResult<Response> {
    Ok(envelope(200, 0, "ok", data)?)
}

pub fn xml(status: u16, body: String) -> worker::Result<Response> {
    let headers = Headers::new();
    headers.set("Content-Type", "text/xml; charset=utf-8")?;
    Ok(Response::from_bytes(body.into_bytes())?
        .with_status(status)
        .with_headers(headers))
}

/// A JSON answer of WeChat's shape (not our envelope): APIv3's notify replies. A 204
/// carries no body, as HTTP requires.
pub fn json_body(status: u16, body: String) -> worker::Result<Response> {
    if status == 204 {
        return Ok(Response::empty()?.with_status(204));
    }
    let headers = Headers::new();
    headers.set("Content-Type", "application/json; charset=utf-8")?;
    Ok(Response::from_bytes(body.into_bytes())?
        .with_status(status)
        .with_headers(headers))
}

/// A request body read within the bound: its bytes, not yet interpreted.
///
/// With a `Content-Length` the bound is judged before reading, and a body within it is
/// read with one `arrayBuffer()` (one crossing into the wasm; the hot paths all send a
/// length). Without one (chunked), the body is read chunk by chunk and refused as soon
/// as it passes the bound: the rest is never buffered, and a sender that never finishes
/// gets its 413 anyway. Dropping the stream cancels it.
pub async fn read_body(req: &mut Request) -> ApiResult<Vec<u8>> {
    let declared = req
        .headers()
        .get("Content-Length")?
        .and_then(|len| len.trim().parse::<u64>().ok());
    match declared {
        Some(n) if n > MAX_BODY as u64 => Err(ApiError::too_large()),
        Some(_) => {
            let bytes = req.bytes().await?;
            // A length header that undersold the body is not believed either.
            if bytes.len() > MAX_BODY {
                return Err(ApiError::too_large());
            }
            Ok(bytes)
        }
        None if req.inner().body().is_none() => Ok(Vec::new()),
        None => {
            let mut stream = req.stream()?;
            let mut body = Vec::new();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                if !within_bound(body.len(), chunk.len()) {
                    return Err(ApiError::too_large());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(body)
        }
    }
}

/// Whether `more` bytes may join the `have` already read.
fn within_bound(have: usize, more: usize) -> bool {
    have.checked_add(more).is_some_and(|n| n <= MAX_BODY)
}

/// The parameters of a request: a JSON object or a form, plus the Bearer token if any.
pub struct Input {
    fields: Map<String, Value>,
    bearer: Option<String>,
}

impl Input {
    pub async fn read(req: &mut Request) -> ApiResult<Input> {
        let bearer = req
            .headers()
            .get("Authorization")?
            .and_then(|h| h.strip_prefix("Bearer ").map(|t| t.trim().to_owned()))
            .filter(|t| !t.is_empty());
        let content_type = req.headers().get("Content-Type")?.unwrap_or_default();
        let body = read_body(req).await?;
        let mut fields = parse_fields(&content_type, &body)?;
        // A GET carries its parameters (token, …) in the query string.
        if let Ok(url) = req.url() {
            for (k, v) in url.query_pairs() {
                fields
                    .entry(k.into_owned())
                    .or_insert_with(|| Value::String(v.into_owned()));
            }
        }
        Ok(Input { fields, bearer })
    }

    /// A required string parameter.
    pub fn text(&self, name: &str) -> ApiResult<&str> {
        match self.fields.get(name) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s),
            None | Some(Value::Null) => Err(ApiError::param(format!("{name} is required"))),
            Some(Value::String(_)) => Err(ApiError::param(format!("{name} is empty"))),
            Some(_) => Err(ApiError::param(format!("{name} must be a string"))),
        }
    }

    /// An optional string parameter (absent, null or empty = none).
    pub fn opt_text(&self, name: &str) -> ApiResult<Option<&str>> {
        match self.fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ApiError::param(format!("{name} must be a string"))),
        }
    }

    pub fn raw(&self, name: &str) -> Option<&Value> {
        self.fields.get(name).filter(|v| !v.is_null())
    }

    /// The session token: `Authorization: Bearer …`, else `token` in the body.
    pub fn token(&self) -> ApiResult<&str> {
        if let Some(t) = &self.bearer {
            return Ok(t);
        }
        match self.fields.get("token") {
            Some(Value::String(t)) if !t.is_empty() => Ok(t),
            Some(Value::String(_)) | None | Some(Value::Null) => Err(ApiError::token(
                "token missing: call wx.login, POST the code to /login/, and send the token it gives",
            )),
            Some(_) => Err(ApiError::token("token must be a string")),
        }
    }
}

fn parse_fields(content_type: &str, body: &[u8]) -> ApiResult<Map<String, Value>> {
    let trimmed = body.trim_ascii();
    if trimmed.is_empty() {
        return Ok(Map::new());
    }
    let is_form = content_type
        .to_ascii_lowercase()
        .starts_with("application/x-www-form-urlencoded");
    if !is_form && trimmed.first() == Some(&b'{') {
        return match serde_json::from_slice::<Value>(trimmed) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(ApiError::param(
                "the body is not valid JSON: send a JSON object or a form (application/x-www-form-urlencoded)",
            )),
        };
    }
    if is_form || (trimmed.contains(&b'=') && std::str::from_utf8(trimmed).is_ok()) {
        return Ok(form_urlencoded::parse(trimmed)
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect());
    }
    Err(ApiError::param(
        "the body must be a JSON object or a form (application/x-www-form-urlencoded)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_is_64_kib_inclusive() {
        assert!(within_bound(0, MAX_BODY));
        assert!(within_bound(MAX_BODY - 1, 1));
        assert!(!within_bound(MAX_BODY, 1));
        assert!(!within_bound(1, MAX_BODY));
        assert!(!within_bound(usize::MAX, 1), "no overflow");
    }

    #[test]
    fn json_and_form_bodies() {
        let j = parse_fields("application/json", br#"{"code":"abc","money":1}"#).unwrap();
        assert_eq!(j["money"], 1);
        let f = parse_fields(
            "application/x-www-form-urlencoded",
            b"code=abc&encryptedData=a%2Bb",
        )
        .unwrap();
        assert_eq!(f["encryptedData"], "a+b");
        // wx.request without a content type still sends JSON.
        assert!(parse_fields("", br#" {"a":"b"} "#).is_ok());
        assert_eq!(parse_fields("text/plain", b"").unwrap().len(), 0);
        for bad in [&b"[1,2]"[..], b"{not json", b"\xff\xfe"] {
            assert_eq!(parse_fields("application/json", bad).unwrap_err().code, 1);
        }
    }
}
