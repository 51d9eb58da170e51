//! Fetches to WeChat (or wxsim) with a deadline. The worker never waits on WeChat for
//! longer than `WECHAT_TIMEOUT_MS`: a hung upstream becomes code 9 / 504, and the order
//! it concerned stays in a state a retry or the reconciler can finish.

use std::time::Duration;

use futures_util::future::{Either, select};
use wasm_bindgen::JsValue;
use worker::{AbortController, Delay, Fetch, Headers, Method, Request, RequestInit};

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

async fn send(request: Request, timeout_ms: u64) -> Result<Vec<u8>, Upstream> {
    let controller = AbortController::default();
    let signal = controller.signal();
    let fetch = Box::pin(async move {
        let mut res = Fetch::Request(request).send_with_signal(&signal).await?;
        let status = res.status_code();
        let body = res.bytes().await?;
        Ok::<_, worker::Error>((status, body))
    });
    let deadline = Box::pin(Delay::from(Duration::from_millis(timeout_ms)));
    match select(fetch, deadline).await {
        Either::Left((Ok((200, body)), _)) => Ok(body),
        Either::Left((Ok((status, _)), _)) => Err(Upstream::Status(status)),
        Either::Left((Err(e), _)) => Err(Upstream::Unreachable(e.to_string())),
        Either::Right(_) => {
            controller.abort();
            Err(Upstream::Timeout)
        }
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
