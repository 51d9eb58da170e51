//! The merchant routes: balance and withdrawals.
//!
//! A withdrawal is wxedge-core's [`flow::withdraw`]: one D1 batch (one transaction) that
//! inserts the withdrawal, claims the merchant's claimable orders, sets the amount to the
//! sum of exactly the rows it claimed, and deletes the withdrawal again if it claimed
//! nothing. Never "read the sum, then mark all paid orders": an order paid in between is
//! either claimed and counted, or left for the next withdrawal.

use serde_json::{Value, json};
use worker::{D1Database, Env, Request, Response};
use wxedge_core::flow::withdraw::{
    self as flow, Begin, ClaimedOrder, WithdrawError, WithdrawalRow,
};
use wxedge_core::ledger::BalanceSnapshot;
use wxedge_core::store::WITHDRAWAL_JSON;
use wxedge_core::{random, store};

use crate::api::{ApiError, ApiResult, ok};
use crate::db::{self, Arg};
use crate::{auth, now_ms};

fn view(w: &WithdrawalRow) -> Value {
    json!({
        "withdrawal_id": w.withdrawal_id,
        "amount_fen": w.amount_fen,
        "order_count": w.order_count,
        // Refunds it counted (negative) and refunds given back (positive).
        "entries_fen": w.entries_fen,
        "entry_count": w.entry_count,
        "idempotency_key": w.idempotency_key,
        "created_ms": w.created_ms,
    })
}

fn parse<T: serde::de::DeserializeOwned>(j: &str, what: &str) -> ApiResult<T> {
    serde_json::from_str(j).map_err(|e| db::unreadable(format!("{what}: {e}")))
}

/// `GET /merchant/balance`: one statement, so the figures are one consistent snapshot;
/// the sums are the core's, checked.
pub async fn balance(req: Request, env: &Env) -> ApiResult<Response> {
    let merchant_id = auth::merchant(&req, env).await?;
    let db = db::d1(env)?;
    let cfg = crate::config::Config::from_env(env)?;
    let paid_before = cfg.reconcile.settlement.withdrawable_before(now_ms());
    let j = db::json(&db, &store::balance_at(&merchant_id, paid_before)).await?;
    let b = BalanceSnapshot::from_json(j.as_deref().unwrap_or("{}"))
        .and_then(|s| s.view())
        .map_err(db::unreadable)?;
    ok(json!({
        "merchant_id": merchant_id,
        "available_fen": b.balance.available,
        "debt_fen": b.balance.debt,
        "withdrawn_fen": b.balance.withdrawn,
        "paid_fen": b.balance.paid,
        "refunded_fen": b.balance.refunded,
        "held_fen": b.balance.held,
        "fees_fen": b.balance.fees,
        "counts": {
            "available_orders": b.available_orders,
            "paid_orders": b.paid_orders,
            "withdrawn_orders": b.withdrawn_orders,
            "open_orders": b.open_orders,
            "closed_orders": b.closed_orders,
            "failed_orders": b.failed_orders,
            "withdrawals": b.withdrawals,
            "attention_orders": b.attention_orders,
            "refunds": b.refunds,
        },
    }))
}

/// The merchant's `Idempotency-Key`, if any: 1–128 visible ASCII characters.
pub fn idempotency_key(req: &Request) -> ApiResult<Option<String>> {
    let Some(k) = req.headers().get("Idempotency-Key")? else {
        return Ok(None);
    };
    let k = k.trim();
    if k.is_empty() || k.len() > 128 || !k.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::param(
            "Idempotency-Key must be 1 to 128 visible ASCII characters (a UUID is a good choice)",
        ));
    }
    Ok(Some(k.to_owned()))
}

async fn withdrawal(db: &D1Database, q: &store::Statement) -> ApiResult<Option<WithdrawalRow>> {
    db::json(db, q)
        .await?
        .map(|j| WithdrawalRow::from_json(&j).map_err(db::unreadable))
        .transpose()
}

async fn by_key(db: &D1Database, merchant_id: &str, key: &str) -> ApiResult<Option<WithdrawalRow>> {
    withdrawal(db, &store::withdrawal_by_key(merchant_id, key)).await
}

async fn by_id(db: &D1Database, id: &str) -> ApiResult<Option<WithdrawalRow>> {
    withdrawal(db, &store::withdrawal_by_id(id)).await
}

async fn claimed_orders(db: &D1Database, withdrawal_id: &str) -> ApiResult<Vec<ClaimedOrder>> {
    let j = db::json(db, &store::claimed_orders(withdrawal_id)).await?;
    flow::claimed_from_json(j.as_deref().unwrap_or("[]")).map_err(db::unreadable)
}

/// The answer for a withdrawal, checked by the core against the orders that name it: a
/// difference is a broken ledger, reported, never hidden.
async fn answer(db: &D1Database, w: Option<&WithdrawalRow>, replay: bool) -> ApiResult<Response> {
    let orders = match w {
        Some(w) => claimed_orders(db, &w.withdrawal_id).await?,
        None => Vec::new(),
    };
    match flow::answer(w, &orders) {
        Ok(_) => {}
        Err(WithdrawError::Nothing(e)) => return Err(ApiError::conflict(e.to_string())),
        Err(e) => {
            worker::console_error!(
                "{}",
                json!({ "level": "error", "what": "withdrawal differs from its orders", "detail": e.to_string() })
            );
            return Err(ApiError::internal(
                "the ledger is inconsistent for this withdrawal; an operator has been alerted",
            ));
        }
    }
    let Some(w) = w else {
        return Err(ApiError::internal("no withdrawal"));
    };
    let mut data = view(w);
    data["order_ids"] = orders.iter().map(|o| json!(o.out_trade_no)).collect();
    data["orders"] = orders
        .iter()
        .map(|o| json!({ "out_trade_no": o.out_trade_no, "total_fee": o.total_fee, "paid_ms": o.paid_ms }))
        .collect();
    data["idempotent_replay"] = json!(replay);
    ok(data)
}

fn is_unique_violation(e: &worker::Error) -> bool {
    let text = match e {
        worker::Error::D1(d) => d.cause(),
        other => other.to_string(),
    };
    text.contains("UNIQUE constraint failed")
}

/// `POST /merchant/withdrawals`: the core's [`flow::begin`] (replay, or the claim batch),
/// then the withdrawal read back and checked by [`flow::answer`].
pub async fn withdraw(req: Request, env: &Env) -> ApiResult<Response> {
    let merchant_id = auth::merchant(&req, env).await?;
    let key = idempotency_key(&req)?;
    let db = db::d1(env)?;
    let existing = match &key {
        Some(k) => by_key(&db, &merchant_id, k).await?,
        None => None,
    };
    let new_id = format!(
        "wd_{}",
        random::alphanumeric(24).map_err(|e| ApiError::internal(e.to_string()))?
    );
    let cfg = crate::config::Config::from_env(env)?;
    match flow::begin_with(
        existing.as_ref(),
        &merchant_id,
        key.as_deref(),
        new_id,
        now_ms(),
        &cfg.reconcile.settlement,
    ) {
        Begin::Replay { .. } => answer(&db, existing.as_ref(), true).await,
        Begin::Claim {
            withdrawal_id,
            batch,
        } => {
            let stmts = batch
                .statements
                .iter()
                .map(|s| db::prepare(&db, s))
                .collect::<ApiResult<Vec<_>>>()?;
            match db.batch(stmts).await {
                Ok(_) => {}
                // The same key won a race with us: the whole batch rolled back; answer theirs.
                Err(e) if key.is_some() && is_unique_violation(&e) => {
                    let theirs =
                        by_key(&db, &merchant_id, key.as_deref().unwrap_or_default()).await?;
                    if theirs.is_some() {
                        return answer(&db, theirs.as_ref(), true).await;
                    }
                    return Err(e.into());
                }
                Err(e) => return Err(e.into()),
            }
            answer(&db, by_id(&db, &withdrawal_id).await?.as_ref(), false).await
        }
    }
}

/// `GET /merchant/withdrawals/{id}`.
pub async fn get(req: Request, env: &Env, id: &str) -> ApiResult<Response> {
    let merchant_id = auth::merchant(&req, env).await?;
    let db = db::d1(env)?;
    let w = by_id(&db, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no withdrawal {id}")))?;
    if w.merchant_id != merchant_id {
        return Err(ApiError::forbidden("this withdrawal is not yours"));
    }
    answer(&db, Some(&w), false).await
}

/// A page size from `?limit=` (1–100, default 20).
pub fn limit(url: &worker::Url) -> ApiResult<u64> {
    match url.query_pairs().find(|(k, _)| k == "limit") {
        None => Ok(20),
        Some((_, v)) => v
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| ApiError::param("limit must be a whole number from 1 to 100")),
    }
}

/// A `?cursor=` from a previous page's `next_cursor` (a row position).
pub fn cursor(url: &worker::Url) -> ApiResult<u64> {
    match url.query_pairs().find(|(k, _)| k == "cursor") {
        None => Ok(i64::MAX as u64),
        Some((_, v)) => v
            .parse::<u64>()
            .map_err(|_| ApiError::param("cursor must be the next_cursor of the previous page")),
    }
}

/// `GET /merchant/withdrawals?limit=&cursor=`: newest first.
pub async fn list(req: Request, env: &Env) -> ApiResult<Response> {
    let merchant_id = auth::merchant(&req, env).await?;
    let url = req.url()?;
    let (limit, cursor) = (limit(&url)?, cursor(&url)?);
    let db = db::d1(env)?;
    let j: Option<String> = db::stmt(
        &db,
        &format!(
            "SELECT COALESCE(json_group_array(json(j)), '[]') AS j FROM
               (SELECT {WITHDRAWAL_JSON} AS j FROM withdrawals
                WHERE merchant_id = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3)"
        ),
        &[Arg::Text(&merchant_id), Arg::Int(cursor), Arg::Int(limit)],
    )?
    .first(Some("j"))
    .await?;
    let rows: Vec<WithdrawalRow> = parse(j.as_deref().unwrap_or("[]"), "withdrawals")?;
    let next = (rows.len() as u64 == limit)
        .then(|| rows.last().map(|w| w.seq.to_string()))
        .flatten();
    ok(json!({
        "items": rows.iter().map(view).collect::<Vec<_>>(),
        "next_cursor": next,
    }))
}
