//! The reconciler: the cron (`[triggers] crons` in wrangler.toml) and `POST
//! /admin/reconcile`. Drives wxedge-core's [`flow::reconcile`] for the due orders, soonest
//! first: orderquery → the core's step → (closeorder → the core's decision) → one guarded
//! write, decided again on the fresh row if the order moved meanwhile. Then the unverified
//! notifies past their retention are pruned.

use serde_json::{Value, json};
use worker::{D1Database, Env, Method};
use wxedge_core::flow::MAX_ATTEMPTS;
use wxedge_core::flow::reconcile::{self as flow, Step};
use wxedge_core::flow::refund as rflow;
use wxedge_core::order::OrderRow;
use wxedge_core::pay::{Merchant, OrderQuery, PayError};
use wxedge_core::refund::RefundRow;
use wxedge_core::v3::jsapi;
use wxedge_core::v3::refund as v3refund;
use wxedge_core::{random, store};

use crate::api::{ApiError, ApiResult};
use crate::config::{Config, PayApi};
use crate::{db, now_ms, v3, wechat};

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(e.to_string())
}

/// One run: at most `RECONCILE_BATCH` due orders, one at a time (each is one or two
/// subrequests). Returns what happened to each, for the log and the admin route.
pub async fn run(env: &Env) -> ApiResult<Value> {
    let cfg = Config::from_env(env)?;
    let db = db::d1(env)?;
    let due = db::orders(&db, &store::due_orders(now_ms(), cfg.reconcile.batch)).await?;
    let mut results = Vec::with_capacity(due.len());
    for order in &due {
        let outcome = match one(&db, &cfg, order).await {
            Ok(o) => o,
            Err(e) => format!("error: {}", e.msg),
        };
        results.push(json!({ "out_trade_no": order.out_trade_no, "outcome": outcome }));
    }
    let mut refunds = Vec::new();
    if cfg.v3.is_some() {
        let j = db::json(&db, &store::due_refunds(now_ms(), cfg.reconcile.batch)).await?;
        let due =
            RefundRow::list_from_json(j.as_deref().unwrap_or("[]")).map_err(db::unreadable)?;
        for r in &due {
            let outcome = match one_refund(&db, &cfg, r).await {
                Ok(o) => o,
                Err(e) => format!("error: {}", e.msg),
            };
            refunds.push(json!({ "out_refund_no": r.out_refund_no, "outcome": outcome }));
        }
    }
    let cutoff = now_ms().saturating_sub(cfg.notify_rejected_retention_ms);
    let pruned = db::run(db::prepare(&db, &store::prune_rejected(cutoff))?).await?;
    Ok(json!({
        "checked": results.len(),
        "orders": results,
        "refunds": refunds,
        "pruned_notifications": pruned,
    }))
}

/// A signed request for `call`, sent; `None` when WeChat gave no answer.
async fn ask(
    cfg: &Config,
    call: &str,
    xml: Result<String, impl std::fmt::Display>,
) -> ApiResult<Option<Vec<u8>>> {
    let xml = xml.map_err(internal)?;
    Ok(
        wechat::post_xml(&cfg.pay_url(call), &xml, cfg.wechat_timeout_ms)
            .await
            .map_err(|e| e.into_api(call))
            .ok(),
    )
}

async fn query(
    cfg: &Config,
    m: &Merchant,
    no: &str,
) -> ApiResult<Option<Result<OrderQuery, PayError>>> {
    let nonce = random::nonce_str().map_err(internal)?;
    let body = ask(cfg, "orderquery", m.order_query_request(no, &nonce)).await?;
    Ok(body.map(|b| m.parse_order_query_response(&b)))
}

async fn close(cfg: &Config, m: &Merchant, no: &str) -> ApiResult<Option<Result<(), PayError>>> {
    let nonce = random::nonce_str().map_err(internal)?;
    let body = ask(cfg, "closeorder", m.close_order_request(no, &nonce)).await?;
    Ok(body.map(|b| m.parse_close_order_response(&b).map(|_| ())))
}

/// The order's state at WeChat through APIv3 (`GET …/out-trade-no/{no}?mchid=`).
async fn query_v3(cfg: &Config, no: &str) -> ApiResult<Option<Result<OrderQuery, PayError>>> {
    let path = jsapi::query_url(no, &cfg.mch_id).map_err(internal)?;
    let Ok(answer) = v3::call(cfg, Method::Get, &path, "").await? else {
        return Ok(None);
    };
    let (mchid, appid) = (cfg.mch_id.as_str(), cfg.appid.as_str());
    Ok(Some(
        v3::judge(cfg.v3()?, &answer, |a| {
            jsapi::query_outcome(a, mchid, appid, no)
        })
        .await?,
    ))
}

/// Closes the order at WeChat through APIv3 (`POST …/{no}/close`, 204).
async fn close_v3(cfg: &Config, no: &str) -> ApiResult<Option<Result<(), PayError>>> {
    let (path, body) = jsapi::close_request(no, &cfg.mch_id).map_err(internal)?;
    let Ok(answer) = v3::call(cfg, Method::Post, &path, &body).await? else {
        return Ok(None);
    };
    Ok(Some(
        v3::judge(cfg.v3()?, &answer, jsapi::close_outcome).await?,
    ))
}

/// One refund that is not final: the refund query → the core's step (a write, or resend
/// the request with the same out_refund_no and read that answer).
async fn one_refund(db: &D1Database, cfg: &Config, refund: &RefundRow) -> ApiResult<String> {
    let v3 = cfg.v3()?;
    let path = v3refund::query_path(&refund.out_refund_no).map_err(internal)?;
    let answer = match v3::call(cfg, Method::Get, &path, "").await? {
        Ok(a) => {
            let no = refund.out_refund_no.as_str();
            Some(v3::judge(v3, &a, |a| v3refund::outcome(a, no)).await?)
        }
        Err(_) => None,
    };
    let mut row = refund.clone();
    for _ in 0..MAX_ATTEMPTS {
        match rflow::after_query(&row, answer.as_ref(), now_ms(), &cfg.refund_policy()) {
            rflow::Step::Decided(d) => {
                if db::execute(db, &d.batch().map_err(internal)?).await? {
                    return Ok(d.reply);
                }
            }
            rflow::Step::Resend => {
                let order = db::order(db, &row.out_trade_no)
                    .await?
                    .ok_or_else(|| ApiError::internal("the refund's order vanished"))?;
                let again = crate::refunds::ask_wechat(cfg, &row, &order).await?;
                for _ in 0..MAX_ATTEMPTS {
                    let d =
                        rflow::after_answer(&row, again.as_ref(), now_ms(), &cfg.refund_policy());
                    if db::execute(db, &d.batch().map_err(internal)?).await? {
                        return Ok("resent: WeChat had not received it".into());
                    }
                    row = crate::refunds::by_no(db, &row.out_refund_no)
                        .await?
                        .ok_or_else(|| ApiError::internal("the refund vanished"))?;
                }
                return Ok("busy: the refund kept changing; next run".into());
            }
        }
        row = crate::refunds::by_no(db, &row.out_refund_no)
            .await?
            .ok_or_else(|| ApiError::internal("the refund vanished"))?;
    }
    Ok("busy: the refund kept changing; next run".into())
}

async fn reload(db: &D1Database, no: &str) -> ApiResult<OrderRow> {
    db::order(db, no)
        .await?
        .ok_or_else(|| ApiError::internal("the order vanished"))
}

async fn one(db: &D1Database, cfg: &Config, order: &OrderRow) -> ApiResult<String> {
    let merchant = cfg.merchant();
    let no = &order.out_trade_no;
    let answer = match cfg.pay_api {
        PayApi::V2 => query(cfg, &merchant, no).await?,
        PayApi::V3 => query_v3(cfg, no).await?,
    };
    let mut row = order.clone();
    for _ in 0..MAX_ATTEMPTS {
        let d = match flow::after_query(&row, answer.as_ref(), now_ms(), &cfg.reconcile) {
            Step::Decided(d) => d,
            Step::Close => {
                let closed_at = row.version;
                let answer = match cfg.pay_api {
                    PayApi::V2 => close(cfg, &merchant, no).await?,
                    PayApi::V3 => close_v3(cfg, no).await?,
                };
                for _ in 0..MAX_ATTEMPTS {
                    let d = flow::after_close(
                        &row,
                        closed_at,
                        answer.as_ref(),
                        now_ms(),
                        &cfg.reconcile,
                    );
                    if db::execute(db, &d.batch().map_err(internal)?).await? {
                        return Ok(d.reply);
                    }
                    row = reload(db, no).await?;
                }
                return Ok("busy: the order kept changing; next run".into());
            }
        };
        if db::execute(db, &d.batch().map_err(internal)?).await? {
            return Ok(d.reply);
        }
        // The order moved between the query and the write: decide again on what it is now.
        row = reload(db, no).await?;
    }
    Ok("busy: the order kept changing; next run".into())
}
