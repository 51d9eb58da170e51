//! Who is calling the operator and merchant routes. Both use `Authorization: Bearer …`:
//! the admin token (a secret, compared in constant time by wxedge-core) or a merchant API
//! key (looked up by its SHA-256; the key itself is never stored). Each kind opens only its
//! own routes: a merchant key on an admin route, or the admin token on a merchant route, is
//! code 7 like a wrong one.

use worker::{Env, Request};
use wxedge_core::auth;

use crate::api::{ApiError, ApiResult};
use crate::config::Config;
use crate::db::{self, Arg};

fn bearer(req: &Request) -> ApiResult<Option<String>> {
    Ok(req
        .headers()
        .get("Authorization")?
        .and_then(|h| h.strip_prefix("Bearer ").map(|t| t.trim().to_owned()))
        .filter(|t| !t.is_empty()))
}

/// Passes only with `Authorization: Bearer <ADMIN_TOKEN>`.
pub fn admin(req: &Request, env: &Env) -> ApiResult<()> {
    let cfg = Config::from_env(env)?;
    let Some(given) = bearer(req)? else {
        return Err(ApiError::forbidden(
            "admin routes need Authorization: Bearer <ADMIN_TOKEN>",
        ));
    };
    if cfg.admin_token.is_empty() {
        return Err(ApiError::forbidden(
            "admin routes are off: ADMIN_TOKEN is not set (.dev.vars or `wrangler secret put ADMIN_TOKEN`)",
        ));
    }
    if !auth::admin_token_matches(&cfg.admin_token, &given) {
        return Err(ApiError::forbidden("wrong admin token"));
    }
    Ok(())
}

/// The merchant whose API key is the bearer.
pub async fn merchant(req: &Request, env: &Env) -> ApiResult<String> {
    let Some(key) = bearer(req)? else {
        return Err(ApiError::forbidden(
            "merchant routes need Authorization: Bearer <api_key> (from POST /admin/merchants)",
        ));
    };
    if !auth::is_api_key_shaped(&key) {
        return Err(ApiError::forbidden(format!(
            "not a merchant API key: they start with {} (an admin token or session token does not open merchant routes)",
            auth::API_KEY_PREFIX
        )));
    }
    let db = db::d1(env)?;
    let found: Option<String> = db::stmt(
        &db,
        "SELECT merchant_id FROM merchants WHERE api_key_hash = ?1",
        &[Arg::Text(&auth::api_key_hash(&key))],
    )?
    .first(Some("merchant_id"))
    .await?;
    found.ok_or_else(|| ApiError::forbidden("unknown or revoked merchant API key"))
}
