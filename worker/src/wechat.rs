//! Fetches to WeChat (or wxsim) with a deadline. The worker never waits on WeChat for
//! longer than `WECHAT_TIMEOUT_MS`: a hung upstream becomes code 9 / 504, and the order
//! it concerned stays in a state a retry or the reconciler can finish.

use wasm_bindgen::JsValue;
use worker::wasm_bindgen_futures::JsFuture;
use worker::{AbortSignal, Fetch, Headers, Method, Request, RequestInit, web_sys};

use crate::api::ApiError;

/// Why WeChat gave no usable answer.
#[derive(Debug)]
pub enum Upstream {
    Timeout,
    Unreachable(String),
    /// An HTTP status other than 200 (WeChat's own errors come as 200 with a body).
    Status(u16),
}

impl Upstream {
    pub fn into_api(self, what: &str) -> ApiError {
        match self {
            Upstream::Timeout => ApiError::unreachable(
                504,
                format!("WeChat did not answer {what} in time; nothing was lost, try again"),
            ),
            Upstream::Unreachable(e) => ApiError::unreachable(
                502,
                format!("WeChat is unreachable for {what} ({e}); nothing was lost, try again"),
            ),
            Upstream::Status(s) => ApiError::unreachable(
                502,
                format!("WeChat answered {what} with HTTP {s}; nothing was lost, try again"),
            ),
        }
    }
}

/// One request to WeChat under `AbortSignal.timeout`: the runtime's own timer aborts the
/// fetch, or the body read, at the deadline. No timer or closure of ours crosses into the
/// wasm, which matters on a path whose CPU is mostly such crossings.
async fn send(request: Request, timeout_ms: u64) -> Result<Vec<u8>, Upstream> {
    let ms = u32::try_from(timeout_ms).unwrap_or(u32::MAX);
    let signal = AbortSignal::from(web_sys::AbortSignal::timeout_with_u32(ms));
    let result = async {
        let res = Fetch::Request(request).send_with_signal(&signal).await?;
        let status = res.status_code();
        // One arrayBuffer() for the whole body: worker::Response::bytes() reads the stream
        // chunk by chunk, each chunk a round trip between JS and the wasm.
        let res: web_sys::Response = res.into();
        let buffer = JsFuture::from(res.array_buffer()?).await?;
        Ok::<_, worker::Error>((status, js_sys::Uint8Array::new(&buffer).to_vec()))
    }
    .await;
    match result {
        Ok((200, body)) => Ok(body),
        Ok((status, _)) => Err(Upstream::Status(status)),
        Err(_) if signal.aborted() => Err(Upstream::Timeout),
        Err(e) => Err(Upstream::Unreachable(e.to_string())),
    }
}

pub async fn get(url: &str, timeout_ms: u64) -> Result<Vec<u8>, Upstream> {
    let request =
        Request::new(url, Method::Get).map_err(|e| Upstream::Unreachable(e.to_string()))?;
    send(request, timeout_ms).await
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
    let request = build().map_err(|e| Upstream::Unreachable(e.to_string()))?;
    send(request, timeout_ms).await
}
