//! `GET /healthz`: what this worker is configured as, and whether KV and D1 answer.
//! `GET /healthz?wechat=1` also asks whether WeChat's API answers from here (any HTTP
//! answer within the deadline counts: it proves DNS, TLS and the route).

use serde_json::json;
use worker::{Env, Request, Response};

use crate::api::{ApiError, ApiResult, envelope};
use crate::config::{Config, PayApi};

pub async fn handle(req: &Request, env: &Env) -> ApiResult<Response> {
    let cfg = Config::from_env(env)?;
    let deep = req
        .url()
        .is_ok_and(|u| u.query_pairs().any(|(k, v)| k == "wechat" && v == "1"));
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
    let wechat = if deep {
        let url = format!("{}/sns/jscode2session", cfg.api_base.trim_end_matches('/'));
        Some(!matches!(
            crate::wechat::get(&url, cfg.wechat_timeout_ms).await,
            Err(crate::wechat::Upstream::Timeout | crate::wechat::Upstream::Unreachable)
        ))
    } else {
        None
    };
    // APIv3: every key imports into WebCrypto (a PEM WebCrypto refuses is named here,
    // not at the first payment). Imports are kept for the isolate's life.
    let keys = match &cfg.v3 {
        Some(v3) => Some(crate::v3::prepare(v3).await),
        None => None,
    };
    let mut data = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "appid": cfg.appid,
        "mch_id": cfg.mch_id,
        "pay_api": match cfg.pay_api {
            PayApi::V2 => "v2",
            PayApi::V3 => "v3",
        },
        "sign_type": cfg.sign_type.as_str(),
        "kv": kv,
        "d1": d1,
    });
    if let Some(v3) = &cfg.v3 {
        data["v3"] = json!({
            "serial_no": v3.serial_no,
            "wechat_keys": v3.wechat.keys().map(|(name, _)| name).collect::<Vec<_>>(),
        });
    }
    if let Some(Err(e)) = keys {
        return Err(e.with_data(data));
    }
    if let Some(w) = wechat {
        data["wechat"] = json!(w);
    }
    if kv && d1 && wechat != Some(false) {
        Ok(envelope(200, 0, "ok", data)?)
    } else {
        Err(
            ApiError::internal("a dependency does not answer (see data.kv, data.d1, data.wechat)")
                .with_data(data),
        )
    }
}
