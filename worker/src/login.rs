//! `POST /login/`: wx.login's code → jscode2session → a session token.

use serde_json::json;
use worker::{Env, Request, Response};
use wxedge_core::login::{self, LoginError};
use wxedge_core::random;

use crate::api::{ApiError, ApiResult, Input, ok};
use crate::config::Config;
use crate::limits::{self, Limit};
use crate::session;
use crate::{db, now_ms, wechat};

pub async fn handle(mut req: Request, env: &Env) -> ApiResult<Response> {
    let input = Input::read(&mut req).await?;
    let cfg = Config::from_env(env)?;
    let code = input.text("code")?;
    limits::check(env, Limit::LoginPerIp, &limits::client_ip(&req)).await?;
    let url = login::code2session_url(&cfg.api_base, &cfg.appid, &cfg.app_secret, code)
        .map_err(|e| ApiError::param(format!("code: {e}")))?;
    let body = wechat::get(&url, cfg.wechat_timeout_ms)
        .await
        .map_err(|e| e.into_api("jscode2session"))?;
    let answer = login::parse_code2session(&body).map_err(|e| match e {
        LoginError::WeChat {
            errcode,
            kind,
            errmsg,
        } => {
            // A bad or used code is the caller's to fix (call wx.login again); the rest
            // (wrong secret, rate limit, WeChat busy) is upstream trouble.
            let status = if kind.is_transient() || matches!(errcode, 40013 | 40125) {
                502
            } else {
                400
            };
            ApiError::wechat(
                status,
                format!(
                    "WeChat refused the code ({errcode}): call wx.login again for a fresh code"
                ),
                json!({ "errcode": errcode, "errmsg": errmsg }),
            )
        }
        // Malformed's text quotes the answer (serde's error names the value it choked
        // on, which may be the session_key): neither shown nor logged.
        LoginError::Malformed(_) => ApiError::unreachable(
            502,
            "WeChat's jscode2session answer is unusable: not the JSON WeChat documents",
        ),
        other => ApiError::unreachable(
            502,
            format!("WeChat's jscode2session answer is unusable: {other}"),
        ),
    })?;
    limits::check(env, Limit::LoginPerOpenid, &answer.openid).await?;
    let token = random::token().map_err(|e| ApiError::internal(e.to_string()))?;
    // The user row first: a token must never point at a user D1 does not know.
    db::upsert_user(env, &answer.openid, answer.unionid.as_deref(), now_ms()).await?;
    session::create(
        env,
        &token,
        answer.openid,
        answer.session_key,
        answer.unionid,
    )
    .await?;
    ok(json!({
        "token": token,
        "expires_in": cfg.session_ttl_secs,
        "ttl_mode": if cfg.session_sliding { "sliding" } else { "fixed" },
    }))
}

/// `POST /logout/`: the token (body or Bearer) stops working.
pub async fn logout(mut req: Request, env: &Env) -> ApiResult<Response> {
    let input = Input::read(&mut req).await?;
    session::delete(env, input.token()?).await?;
    ok(json!({ "logged_out": true }))
}
