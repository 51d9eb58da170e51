//! The reconciler: the cron (`[triggers] crons` in wrangler.toml) and `POST
//! /admin/reconcile`. Open orders past the grace period are asked about with orderquery;
//! wxedge-core's [`reconcile::decide`] says what the answer means, and the same guarded
//! statements as the notify apply it, so whichever of the notify and the reconciler comes
//! second changes nothing.

use serde_json::{Value, json};
use worker::Env;
use wxedge_core::reconcile::{self, Action, OpenOrder};
use wxedge_core::{Fen, random};

use crate::api::{ApiError, ApiResult};
use crate::config::Config;
use crate::db::{self, Order};
use crate::{now_ms, wechat};

/// One run: at most `RECONCILE_BATCH` due orders, one at a time (each is one or two
/// subrequests). Returns what happened to each, for the log and the admin route.
pub async fn run(env: &Env) -> ApiResult<Value> {
    let cfg = Config::from_env(env)?;
    let now = now_ms();
    let due = db::due_orders(
        env,
        now.saturating_sub(cfg.reconcile.grace_ms),
        cfg.reconcile_batch,
    )
    .await?;
    let mut results = Vec::with_capacity(due.len());
    for order in &due {
        let outcome = match one(env, &cfg, order).await {
            Ok(o) => o,
            Err(e) => format!("error: {}", e.msg),
        };
        results.push(json!({ "out_trade_no": order.out_trade_no, "outcome": outcome }));
    }
    Ok(json!({ "checked": results.len(), "orders": results }))
}

async fn one(env: &Env, cfg: &Config, order: &Order) -> ApiResult<String> {
    let merchant = cfg.merchant();
    let open = OpenOrder {
        out_trade_no: &order.out_trade_no,
        total_fee: Fen::new(order.total_fee),
        created_ms: order.created_ms,
        prepay_ms: order.prepay_ms,
        updated_ms: order.updated_ms,
    };
    let nonce = || random::nonce_str().map_err(|e| ApiError::internal(e.to_string()));
    let request = merchant
        .order_query_request(&order.out_trade_no, &nonce()?)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let query =
        match wechat::post_xml(&cfg.pay_url("orderquery"), &request, cfg.wechat_timeout_ms).await {
            Ok(body) => merchant.parse_order_query_response(&body),
            Err(e) => {
                let note = format!("orderquery: {}", e.into_api("orderquery").msg);
                db::note_reconciled(env, &order.out_trade_no, &note, now_ms()).await?;
                return Ok(format!("wait: {note}"));
            }
        };
    let mut action = reconcile::decide(&open, query.as_ref(), now_ms(), &cfg.reconcile);
    if action == Action::Close {
        let request = merchant
            .close_order_request(&order.out_trade_no, &nonce()?)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        action = match wechat::post_xml(&cfg.pay_url("closeorder"), &request, cfg.wechat_timeout_ms)
            .await
        {
            Ok(body) => reconcile::after_close(
                merchant
                    .parse_close_order_response(&body)
                    .as_ref()
                    .map(|_| ()),
            ),
            Err(e) => Action::Wait {
                reason: format!("closeorder: {}", e.into_api("closeorder").msg),
            },
        };
    }
    let now = now_ms();
    let no = &order.out_trade_no;
    Ok(match action {
        Action::Credit { transaction_id } => {
            if db::credit_by_query(env, no, &transaction_id, now).await? {
                "credited: orderquery says SUCCESS".into()
            } else {
                "already settled".into()
            }
        }
        Action::End { status, reason } => {
            if db::mark_ended(env, no, status.as_str(), &reason, now).await? {
                format!("{status}: {reason}")
            } else {
                "already settled".into()
            }
        }
        Action::Wait { reason } => {
            db::note_reconciled(env, no, &reason, now).await?;
            format!("wait: {reason}")
        }
        Action::Conflict { reason } => {
            worker::console_error!(
                "{}",
                json!({ "level": "error", "what": "reconciler conflict", "out_trade_no": no, "reason": reason })
            );
            db::note_reconciled(env, no, &format!("CONFLICT: {reason}"), now).await?;
            format!("conflict: {reason}")
        }
        Action::Close => "wait: close pending".into(),
    })
}
