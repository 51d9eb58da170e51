//! Login sessions in KV: an opaque random token → openid + session_key, expiring after
//! `SESSION_TTL_SECS` (fixed from login, or sliding while in use: `SESSION_TTL_MODE`).
//! The session_key never leaves the worker. `POST /logout/` deletes one.
//!
//! KV is eventually consistent: a logout or expiry is seen at once where it happened and
//! within about 60 s everywhere else.

use serde::{Deserialize, Serialize};
use worker::Env;

use crate::api::{ApiError, ApiResult};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub openid: String,
    pub session_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unionid: Option<String>,
    pub login_ms: u64,
    /// When the stored copy expires (0 for sessions written before this field existed).
    #[serde(default)]
    pub expires_ms: u64,
}

/// Tokens are 43 characters of base64url; anything else is not ours, and is refused
/// before KV is asked.
fn key(token: &str) -> ApiResult<String> {
    if !wxedge_core::random::is_token_shaped(token) {
        return Err(ApiError::token(
            "token is not one this server issued: log in again (wx.login → /login/)",
        ));
    }
    Ok(format!("session:{token}"))
}

pub async fn put(env: &Env, token: &str, session: &mut Session, ttl_secs: u64) -> ApiResult<()> {
    session.expires_ms = crate::now_ms() + ttl_secs * 1000;
    let value = serde_json::to_string(session)
        .map_err(|e| ApiError::internal(format!("cannot store the session: {e}")))?;
    env.kv("SESSIONS")?
        .put(&key(token)?, value)?
        .expiration_ttl(ttl_secs)
        .execute()
        .await?;
    Ok(())
}

pub async fn get(env: &Env, token: &str) -> ApiResult<Session> {
    let key = key(token)?;
    // As text, parsed here: KV's own JSON mode would hand over a JS object that serde
    // then reads field by field across the JS boundary.
    let found = env.kv("SESSIONS")?.get(&key).text().await?;
    let text = found.ok_or_else(|| {
        ApiError::token("token unknown or expired: log in again (wx.login → /login/)")
    })?;
    let mut session: Session = serde_json::from_str(&text)
        .map_err(|e| ApiError::internal(format!("unreadable session: {e}")))?;
    let cfg = crate::config::Config::from_env(env)?;
    let ttl_ms = cfg.session_ttl_secs * 1000;
    if cfg.session_sliding && session.expires_ms.saturating_sub(crate::now_ms()) < ttl_ms / 2 {
        put(env, token, &mut session, cfg.session_ttl_secs).await?;
    }
    Ok(session)
}

/// Ends a session now. Deleting an unknown or expired one is not an error: either way the
/// token no longer works.
pub async fn delete(env: &Env, token: &str) -> ApiResult<()> {
    env.kv("SESSIONS")?.delete(&key(token)?).await?;
    Ok(())
}
