//! `GET /healthz`: what this worker is configured as, and whether KV and D1 answer.

use serde_json::json;
use worker::{Env, Response};

use crate::api::{ApiError, ApiResult, envelope};
use crate::config::Config;

pub async fn handle(env: &Env) -> ApiResult<Response> {
    let cfg = Config::from_env(env)?;
    let kv = match env.kv("SESSIONS") {
        Ok(kv) => kv.get("healthz").text().await.is_ok(),
        Err(_) => false,
    };
    let d1 = match env.d1("DB") {
        Ok(db) => db
            .prepare("SELECT 1 AS one")
            .first::<u32>(Some("one"))
            .await
            .is_ok(),
        Err(_) => false,
    };
    let data = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "appid": cfg.appid,
        "mch_id": cfg.mch_id,
        "sign_type": cfg.sign_type.as_str(),
        "kv": kv,
        "d1": d1,
    });
    if kv && d1 {
        Ok(envelope(200, 0, "ok", data)?)
    } else {
        Err(ApiError::internal("storage unavailable (see data.kv, data.d1)").with_data(data))
    }
}
