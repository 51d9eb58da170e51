//! Abuse limits on login and pay, per client IP and per openid, through Cloudflare's rate
//! limiting bindings (`[[ratelimits]]` in wrangler.toml: a limit per 10 or 60 s window,
//! counted at each Cloudflare location; simulated locally by wrangler dev).
//!
//! A binding that is not configured means no limit. A limiter that fails is logged and let
//! through: abuse protection must not take the payment path down with it.

use serde_json::json;
use worker::{Env, Request};

use crate::api::{ApiError, ApiResult};

/// The window of the bindings in wrangler.toml, for `Retry-After`.
const WINDOW_SECS: u32 = 60;

#[derive(Debug, Clone, Copy)]
pub enum Limit {
    LoginPerIp,
    LoginPerOpenid,
    PayPerIp,
    PayPerOpenid,
    /// Notifies that did not verify, per sender: junk cannot fill the database.
    NotifyRejectedPerIp,
}

impl Limit {
    fn binding(self) -> &'static str {
        match self {
            Limit::LoginPerIp => "LOGIN_IP_LIMITER",
            Limit::LoginPerOpenid => "LOGIN_OPENID_LIMITER",
            Limit::PayPerIp => "PAY_IP_LIMITER",
            Limit::PayPerOpenid => "PAY_OPENID_LIMITER",
            Limit::NotifyRejectedPerIp => "NOTIFY_REJECT_IP_LIMITER",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Limit::LoginPerIp => "logins from this IP address",
            Limit::LoginPerOpenid => "logins of this WeChat user",
            Limit::PayPerIp => "payments from this IP address",
            Limit::PayPerOpenid => "payments by this WeChat user",
            Limit::NotifyRejectedPerIp => "rejected notifies from this IP address",
        }
    }
}

/// The caller's address as Cloudflare saw it (always set in production).
pub fn client_ip(req: &Request) -> String {
    req.headers()
        .get("CF-Connecting-IP")
        .ok()
        .flatten()
        .filter(|ip| ip.parse::<std::net::IpAddr>().is_ok())
        .unwrap_or_else(|| "127.0.0.1".into())
}

/// Counts one request against `limit` for `key`; code 10 (429) when over.
pub async fn check(env: &Env, limit: Limit, key: &str) -> ApiResult<()> {
    let Ok(limiter) = env.rate_limiter(limit.binding()) else {
        return Ok(());
    };
    match limiter.limit(format!("{}:{key}", limit.binding())).await {
        Ok(outcome) if outcome.success => Ok(()),
        Ok(_) => Err(ApiError::too_many(
            format!(
                "too many {}: wait up to {WINDOW_SECS} s and try again",
                limit.what()
            ),
            WINDOW_SECS,
        )),
        Err(e) => {
            worker::console_error!(
                "{}",
                json!({ "level": "error", "what": "rate limiter failed; request let through",
                        "binding": limit.binding(), "detail": e.to_string() })
            );
            Ok(())
        }
    }
}

/// Whether one more request for `key` is within `limit` (a missing or failing limiter
/// allows it, as [`check`] does).
pub async fn allows(env: &Env, limit: Limit, key: &str) -> bool {
    check(env, limit, key).await.is_ok()
}
