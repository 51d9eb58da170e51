//! Login sessions in KV, executing `wxedge_core::session`'s rules: the record under
//! `session:` + SHA-256(token) (never the token itself), written once at login with its
//! expiry inside; in sliding mode, "in use until" under `seen:` + the same hash, the only
//! key a request in use rewrites. `POST /logout/` deletes both, and a refresh racing it
//! can only write `seen:` back, which opens nothing without the record.
//!
//! The session_key never leaves the worker. KV is eventually consistent: a logout or
//! expiry is seen at once where it happened and within about 60 s everywhere else.

use serde_json::json;
use worker::Env;
use wxedge_core::session::{Keys, Put, SessionError};

use crate::api::{ApiError, ApiResult};
use crate::config::Config;

/// What a handler gets for a valid token.
pub type Session = wxedge_core::session::Record;

fn refused(e: SessionError) -> ApiError {
    match e {
        SessionError::Unreadable => {
            // Its content holds a session_key: neither logged nor shown.
            worker::console_error!(
                "{}",
                json!({ "level": "error", "what": "unreadable session record in KV" })
            );
            ApiError::internal("internal error: a stored session is unreadable; log in again")
        }
        other => ApiError::token(other.to_string()),
    }
}

fn keys(token: &str) -> ApiResult<Keys> {
    Keys::of(token).map_err(refused)
}

async fn write(env: &Env, key: &str, put: Put) -> ApiResult<()> {
    env.kv("SESSIONS")?
        .put(key, put.value)?
        .expiration_ttl(put.ttl_secs)
        .execute()
        .await?;
    Ok(())
}

/// Stores a new session for `token` (login). In sliding mode the record and its first
/// activity mark go out together.
pub async fn create(
    env: &Env,
    token: &str,
    openid: String,
    session_key: String,
    unionid: Option<String>,
) -> ApiResult<()> {
    let policy = Config::from_env(env)?.session_policy();
    let keys = keys(token)?;
    let (record, seen) = policy.login(openid, session_key, unionid, crate::now_ms());
    match seen {
        None => write(env, &keys.record, record).await,
        Some(seen) => {
            let (a, b) = futures_util::future::join(
                write(env, &keys.record, record),
                write(env, &keys.seen, seen),
            )
            .await;
            a.and(b)
        }
    }
}

/// The session of `token`, if it is still valid now; code 2 otherwise. In sliding mode the
/// record and the activity mark are read at once, and the mark (only) is moved on when
/// less than half the idle TTL is left.
pub async fn get(env: &Env, token: &str) -> ApiResult<Session> {
    let policy = Config::from_env(env)?.session_policy();
    let keys = keys(token)?;
    let kv = env.kv("SESSIONS")?;
    // As text, parsed in the core: KV's own JSON mode would hand over a JS object that
    // serde then reads field by field across the JS boundary.
    let (record, mut seen) = if policy.sliding {
        let (r, s) =
            futures_util::future::join(kv.get(&keys.record).text(), kv.get(&keys.seen).text())
                .await;
        (r?, s?)
    } else {
        (kv.get(&keys.record).text().await?, None)
    };
    let mut verdict = policy.judge(record.as_deref(), seen.as_deref(), crate::now_ms());
    // A sliding session from before a switch to fixed mode still needs its mark.
    if !policy.sliding && verdict == Err(SessionError::Idle) {
        seen = kv.get(&keys.seen).text().await?;
        verdict = policy.judge(record.as_deref(), seen.as_deref(), crate::now_ms());
    }
    let valid = verdict.map_err(refused)?;
    if let Some(put) = valid.refresh_seen {
        write(env, &keys.seen, put).await?;
    }
    Ok(valid.record)
}

/// Ends a session now: the record first (that alone ends it), then the activity mark.
/// Deleting an unknown or expired one is not an error: either way the token no longer
/// works.
pub async fn delete(env: &Env, token: &str) -> ApiResult<()> {
    let keys = keys(token)?;
    let kv = env.kv("SESSIONS")?;
    kv.delete(&keys.record).await?;
    kv.delete(&keys.seen).await?;
    Ok(())
}
