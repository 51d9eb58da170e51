//! Fetches to WeChat (or wxsim) with a deadline. The worker never waits on WeChat for
//! longer than `WECHAT_TIMEOUT_MS`: a hung upstream becomes code 9 / 504, and the order
//! it concerned stays in a state a retry or the reconciler can finish.

use wasm_bindgen::JsValue;
use worker::wasm_bindgen_futures::JsFuture;
use worker::{AbortSignal, Fetch, Headers, Method, Request, RequestInit, web_sys};

use crate::api::ApiError;

/// Why WeChat gave no usable answer. Carries no text from the runtime: a fetch error's
/// message can hold the URL, and jscode2session's URL holds the AppSecret. The detail is
/// logged where it happens ([`log_failure`]), with every query cut off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    Timeout,
    Unreachable,
    /// An HTTP status other than 200 (WeChat's own errors come as 200 with a body).
    Status(u16),
}

impl Upstream {
    /// Code 9 with a fixed message per kind; `what` is our name for the call.
    pub fn into_api(self, what: &str) -> ApiError {
        match self {
            Upstream::Timeout => ApiError::unreachable(
                504,
                format!("WeChat did not answer {what} in time; nothing was lost, try again"),
            ),
            Upstream::Unreachable => ApiError::unreachable(
                502,
                format!("WeChat is unreachable for {what}; nothing was lost, try again"),
            ),
            Upstream::Status(s) => ApiError::unreachable(
                502,
                format!("WeChat answered {what} with HTTP {s}; nothing was lost, try again"),
            ),
        }
    }
}

/// `url` without its query and fragment: all of a WeChat URL that may be logged.
fn without_query(url: &str) -> &str {
    url.find(['?', '#']).map_or(url, |i| &url[..i])
}

/// Text from the runtime made fit for a log line: every URL in it loses its query, and
/// any `secret=` value left (a query quoted without its scheme) is masked.
fn redact(detail: &str) -> String {
    let mut out = String::with_capacity(detail.len());
    let mut rest = detail;
    // Any scheme: the runtime quotes the URL it refused too (`Fetch API cannot load: ftp://…`).
    while let Some(sep) = rest.find("://") {
        let start = rest[..sep]
            .char_indices()
            .rev()
            .take_while(|(_, c)| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
            .last()
            .map_or(sep, |(i, _)| i);
        out.push_str(&rest[..start]);
        let url = &rest[start..];
        let end = url
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | ')' | ','))
            .unwrap_or(url.len());
        out.push_str(without_query(&url[..end]));
        rest = &url[end..];
    }
    out.push_str(rest);
    let mut masked = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(i) = rest.find("secret=") {
        let value = &rest[i + "secret=".len()..];
        masked.push_str(&rest[..i]);
        masked.push_str("secret=…");
        rest = value
            .find(|c: char| c == '&' || c.is_whitespace() || matches!(c, '"' | '\''))
            .map_or("", |end| &value[end..]);
    }
    masked.push_str(rest);
    masked
}

/// One JSON line for a call that got no answer: the URL without its query, the kind, and
/// the runtime's text redacted.
fn log_failure(url: &str, kind: Upstream, detail: &str) {
    worker::console_error!(
        "{}",
        serde_json::json!({
            "level": "error",
            "what": "WeChat call failed",
            "url": without_query(url),
            "kind": format!("{kind:?}"),
            "detail": redact(detail),
        })
    );
}

/// An answer with any status: what APIv3 calls need (their refusals are 4xx/5xx with a
/// JSON body, and their signature is in the headers).
pub struct Answer {
    pub status: u16,
    pub headers: worker::Headers,
    pub body: Vec<u8>,
}

/// One request to WeChat under `AbortSignal.timeout`: the runtime's own timer aborts the
/// fetch, or the body read, at the deadline. No timer or closure of ours crosses into the
/// wasm, which matters on a path whose CPU is mostly such crossings.
async fn send_any(url: &str, request: Request, timeout_ms: u64) -> Result<Answer, Upstream> {
    let ms = u32::try_from(timeout_ms).unwrap_or(u32::MAX);
    let signal = AbortSignal::from(web_sys::AbortSignal::timeout_with_u32(ms));
    let result = async {
        let res = Fetch::Request(request).send_with_signal(&signal).await?;
        let status = res.status_code();
        let headers = res.headers().clone();
        // One arrayBuffer() for the whole body: worker::Response::bytes() reads the stream
        // chunk by chunk, each chunk a round trip between JS and the wasm.
        let res: web_sys::Response = res.into();
        let buffer = JsFuture::from(res.array_buffer()?).await?;
        Ok::<_, worker::Error>(Answer {
            status,
            headers,
            body: js_sys::Uint8Array::new(&buffer).to_vec(),
        })
    }
    .await;
    result.map_err(|e| {
        let kind = if signal.aborted() {
            Upstream::Timeout
        } else {
            Upstream::Unreachable
        };
        log_failure(url, kind, &e.to_string());
        kind
    })
}

/// [`send_any`] for v2 calls: WeChat's v2 answers are 200 with a body; any other status
/// is no answer.
async fn send(url: &str, request: Request, timeout_ms: u64) -> Result<Vec<u8>, Upstream> {
    let answer = send_any(url, request, timeout_ms).await?;
    match answer.status {
        200 => Ok(answer.body),
        status => Err(Upstream::Status(status)),
    }
}

/// An APIv3 request: `method` with the `Authorization` value and, for POST, the JSON body
/// exactly as signed. Any status comes back (a gateway's 502 as well as WeChat's 4xx).
pub async fn v3(
    url: &str,
    method: Method,
    authorization: &str,
    wechatpay_serial: Option<&str>,
    body: Option<&str>,
    timeout_ms: u64,
) -> Result<Answer, Upstream> {
    let build = || -> worker::Result<Request> {
        let headers = Headers::new();
        headers.set("Authorization", authorization)?;
        // The 微信支付公钥 id, so WeChat signs its answer with that key (see
        // wxedge_core::v3::verify::WechatKeys::public_key_id).
        if let Some(serial) = wechatpay_serial {
            headers.set("Wechatpay-Serial", serial)?;
        }
        // 基本规则 (https://pay.weixin.qq.com/docs/merchant/development/interface-rules/basic-rules.html):
        // "请求须设置HTTP头部 Content-Type: application/json, Accept: application/json";
        // the v3 rules also ask for a User-Agent naming the client
        // (https://wechatpay-api.gitbook.io/wechatpay-api-v3/wei-xin-zhi-fu-api-v3-jie-kou-gui-fan).
        headers.set("Content-Type", "application/json")?;
        headers.set("Accept", "application/json")?;
        headers.set("User-Agent", concat!("wxedge/", env!("CARGO_PKG_VERSION")))?;
        let mut init = RequestInit::new();
        init.with_method(method.clone()).with_headers(headers);
        if let Some(b) = body {
            init.with_body(Some(JsValue::from_str(b)));
        }
        Request::new_with_init(url, &init)
    };
    let request = build().map_err(|e| unbuildable(url, &e))?;
    send_any(url, request, timeout_ms).await
}

fn unbuildable(url: &str, e: &worker::Error) -> Upstream {
    log_failure(url, Upstream::Unreachable, &e.to_string());
    Upstream::Unreachable
}

pub async fn get(url: &str, timeout_ms: u64) -> Result<Vec<u8>, Upstream> {
    let request = Request::new(url, Method::Get).map_err(|e| unbuildable(url, &e))?;
    send(url, request, timeout_ms).await
}

pub async fn post_xml(url: &str, body: &str, timeout_ms: u64) -> Result<Vec<u8>, Upstream> {
    let build = || -> worker::Result<Request> {
        let headers = Headers::new();
        headers.set("Content-Type", "text/xml; charset=utf-8")?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_headers(headers)
            .with_body(Some(JsValue::from_str(body)));
        Request::new_with_init(url, &init)
    };
    let request = build().map_err(|e| unbuildable(url, &e))?;
    send(url, request, timeout_ms).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://api.weixin.qq.com/sns/jscode2session?appid=wx1&secret=0123abcd&js_code=c&grant_type=authorization_code";

    #[test]
    fn callers_get_a_fixed_message_per_kind() {
        let e = Upstream::Unreachable.into_api("jscode2session");
        assert_eq!((e.code, e.status), (9, 502));
        assert_eq!(
            e.msg,
            "WeChat is unreachable for jscode2session; nothing was lost, try again"
        );
        assert_eq!(Upstream::Timeout.into_api("orderquery").status, 504);
        assert!(
            Upstream::Status(500)
                .into_api("unifiedorder")
                .msg
                .contains("HTTP 500")
        );
    }

    #[test]
    fn logged_text_keeps_no_query_and_no_secret() {
        assert_eq!(
            without_query(URL),
            "https://api.weixin.qq.com/sns/jscode2session"
        );
        assert_eq!(without_query("http://h/p#f"), "http://h/p");
        assert_eq!(without_query("http://h/p"), "http://h/p");
        let runtime = format!("TypeError: fetch failed for {URL} (connection refused)");
        assert_eq!(
            redact(&runtime),
            "TypeError: fetch failed for https://api.weixin.qq.com/sns/jscode2session (connection refused)"
        );
        let quoted = format!("Error: \"{URL}\" (http://x/y?secret=s2), and again {URL}");
        let r = redact(&quoted);
        assert!(
            !r.contains("0123abcd") && !r.contains("s2") && !r.contains('?'),
            "{r}"
        );
        let ftp = "TypeError: Fetch API cannot load: ftp://127.0.0.1:1/sns/jscode2session?appid=wx1&secret=0123abcd&js_code=c";
        assert_eq!(
            redact(ftp),
            "TypeError: Fetch API cannot load: ftp://127.0.0.1:1/sns/jscode2session"
        );
        assert_eq!(redact("://x?y=1 and a://b"), "://x and a://b");
        assert_eq!(redact("é…ftp://x?q=1 ü"), "é…ftp://x ü");
        let bare = "query was appid=wx1&secret=0123abcd&js_code=c";
        assert_eq!(redact(bare), "query was appid=wx1&secret=…&js_code=c");
        assert_eq!(redact("secret=tail"), "secret=…");
        assert_eq!(redact("nothing to hide"), "nothing to hide");
    }
}
