//! The merchant routes: balance and withdrawals.
//!
//! A withdrawal is one D1 batch (one transaction): insert the withdrawal, claim the
//! merchant's claimable orders (wxedge-core's rule, [`ledger::is_claimable`], as the guard
//! of one UPDATE), set the amount to the sum of exactly the rows that UPDATE changed, and
//! delete the withdrawal again if it claimed nothing. Never "read the sum, then mark all
//! paid orders": an order paid in between is either claimed and counted, or left for the
//! next withdrawal.

use serde::Deserialize;
use serde_json::{Value, json};
use worker::{Env, Request, Response};
use wxedge_core::ledger::{self, OrderStatus};
use wxedge_core::{Fen, random};

use crate::api::{ApiError, ApiResult, ok};
use crate::db::{self, Arg};
use crate::{auth, now_ms};

/// What `ledger::is_claimable` says, as SQL over the orders table.
fn claimable_sql() -> String {
    debug_assert!(ledger::is_claimable(OrderStatus::Paid, None));
    format!(
        "status = '{}' AND withdrawal_id IS NULL",
        OrderStatus::Paid.as_str()
    )
}

const WITHDRAWAL_JSON: &str = "json_object('withdrawal_id', withdrawal_id, 'merchant_id', merchant_id, \
     'amount_fen', amount_fen, 'order_count', order_count, 'idempotency_key', idempotency_key, \
     'created_ms', created_ms, 'seq', seq)";

#[derive(Debug, Deserialize)]
struct WithdrawalRow {
    withdrawal_id: String,
    merchant_id: String,
    amount_fen: u64,
    order_count: u64,
    idempotency_key: Option<String>,
    created_ms: u64,
    seq: u64,
}

impl WithdrawalRow {
    fn view(&self) -> Value {
        json!({
            "withdrawal_id": self.withdrawal_id,
            "amount_fen": self.amount_fen,
            "order_count": self.order_count,
            "idempotency_key": self.idempotency_key,
            "created_ms": self.created_ms,
        })
    }
}

fn parse<T: serde::de::DeserializeOwned>(j: &str, what: &str) -> ApiResult<T> {
    serde_json::from_str(j).map_err(|e| ApiError::internal(format!("unreadable {what}: {e}")))
}

/// `GET /merchant/balance`: one statement, so the figures are one consistent snapshot.
pub async fn balance(req: Request, env: &Env) -> ApiResult<Response> {
    let merchant_id = auth::merchant(&req, env).await?;
    let db = db::d1(env)?;
    let j: Option<String> = db::stmt(
        &db,
        &format!(
            "SELECT json_object(
               'by_status', (SELECT json_group_object(status, json_array(n, fen)) FROM
                   (SELECT status, COUNT(*) AS n, SUM(total_fee) AS fen FROM orders
                    WHERE merchant_id = ?1 GROUP BY status)),
               'available', (SELECT json_array(COUNT(*), COALESCE(SUM(total_fee), 0)) FROM orders
                    WHERE merchant_id = ?1 AND {}),
               'withdrawals', (SELECT json_array(COUNT(*), COALESCE(SUM(amount_fen), 0))
                    FROM withdrawals WHERE merchant_id = ?1)) AS j",
            claimable_sql()
        ),
        &[Arg::Text(&merchant_id)],
    )?
    .first(Some("j"))
    .await?;
    #[derive(Deserialize)]
    struct Snapshot {
        by_status: std::collections::BTreeMap<String, (u64, u64)>,
        available: (u64, u64),
        withdrawals: (u64, u64),
    }
    let s: Snapshot = parse(j.as_deref().unwrap_or("{}"), "balance")?;
    let count = |st: OrderStatus| s.by_status.get(st.as_str()).map_or(0, |v| v.0);
    let fen = |st: OrderStatus| s.by_status.get(st.as_str()).map_or(0, |v| v.1);
    let paid = fen(OrderStatus::Paid) + fen(OrderStatus::Withdrawn);
    let totals = ledger::MerchantTotals {
        merchant_id: merchant_id.clone(),
        paid: Fen::new(paid),
        available: Fen::new(s.available.1),
        ..Default::default()
    };
    let withdrawn = Fen::new(s.withdrawals.1);
    ok(json!({
        "merchant_id": merchant_id,
        "available_fen": totals.available.get(),
        "withdrawn_fen": withdrawn.get(),
        "paid_fen": totals.paid.get(),
        "counts": {
            "available_orders": s.available.0,
            "paid_orders": count(OrderStatus::Paid) + count(OrderStatus::Withdrawn),
            "withdrawn_orders": count(OrderStatus::Withdrawn),
            "open_orders": count(OrderStatus::Created) + count(OrderStatus::Prepaid),
            "closed_orders": count(OrderStatus::Closed),
            "failed_orders": count(OrderStatus::Failed),
            "withdrawals": s.withdrawals.0,
        },
    }))
}

/// The merchant's `Idempotency-Key`, if any: 1–128 visible ASCII characters.
fn idempotency_key(req: &Request) -> ApiResult<Option<String>> {
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

async fn by_key(env: &Env, merchant_id: &str, key: &str) -> ApiResult<Option<WithdrawalRow>> {
    let db = db::d1(env)?;
    let j: Option<String> = db::stmt(
        &db,
        &format!(
            "SELECT {WITHDRAWAL_JSON} AS j FROM withdrawals WHERE merchant_id = ?1 AND idempotency_key = ?2"
        ),
        &[Arg::Text(merchant_id), Arg::Text(key)],
    )?
    .first(Some("j"))
    .await?;
    j.map(|j| parse(&j, "withdrawal")).transpose()
}

async fn by_id(env: &Env, id: &str) -> ApiResult<Option<WithdrawalRow>> {
    let db = db::d1(env)?;
    let j: Option<String> = db::stmt(
        &db,
        &format!("SELECT {WITHDRAWAL_JSON} AS j FROM withdrawals WHERE withdrawal_id = ?1"),
        &[Arg::Text(id)],
    )?
    .first(Some("j"))
    .await?;
    j.map(|j| parse(&j, "withdrawal")).transpose()
}

/// The orders a withdrawal claimed: `(out_trade_no, total_fee, paid_ms)`, oldest first.
async fn claimed_orders(env: &Env, withdrawal_id: &str) -> ApiResult<Vec<(String, u64, u64)>> {
    let db = db::d1(env)?;
    let j: Option<String> = db::stmt(
        &db,
        "SELECT COALESCE(json_group_array(json_array(out_trade_no, total_fee, paid_ms)), '[]') AS j
         FROM (SELECT out_trade_no, total_fee, paid_ms FROM orders WHERE withdrawal_id = ?1 ORDER BY id)",
        &[Arg::Text(withdrawal_id)],
    )?
    .first(Some("j"))
    .await?;
    parse(j.as_deref().unwrap_or("[]"), "claimed orders")
}

/// The answer for a withdrawal: the row, and its orders as the ledger sums them. The
/// amount is re-derived from the claimed rows with wxedge-core's rule; a difference would
/// be a broken ledger and is reported, never hidden.
async fn answer(env: &Env, w: &WithdrawalRow, replay: bool) -> ApiResult<Response> {
    let orders = claimed_orders(env, &w.withdrawal_id).await?;
    let sum = ledger::withdrawal_amount(orders.iter().map(|o| Fen::new(o.1)))
        .map_err(|e| ApiError::internal(format!("withdrawal {}: {e}", w.withdrawal_id)))?;
    if sum.get() != w.amount_fen {
        worker::console_error!(
            "{}",
            json!({ "level": "error", "what": "withdrawal amount differs from its orders",
                    "withdrawal_id": w.withdrawal_id, "amount_fen": w.amount_fen, "orders_fen": sum.get() })
        );
        return Err(ApiError::internal(
            "the ledger is inconsistent for this withdrawal; an operator has been alerted",
        ));
    }
    let mut data = w.view();
    data["order_ids"] = orders.iter().map(|o| json!(o.0)).collect();
    data["orders"] = orders
        .iter()
        .map(|(no, fee, paid)| json!({ "out_trade_no": no, "total_fee": fee, "paid_ms": paid }))
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

/// `POST /merchant/withdrawals`.
pub async fn withdraw(req: Request, env: &Env) -> ApiResult<Response> {
    let merchant_id = auth::merchant(&req, env).await?;
    let key = idempotency_key(&req)?;
    if let Some(k) = &key
        && let Some(w) = by_key(env, &merchant_id, k).await?
    {
        return answer(env, &w, true).await;
    }
    let id = format!(
        "wd_{}",
        random::alphanumeric(24).map_err(|e| ApiError::internal(e.to_string()))?
    );
    let now = now_ms();
    let db = db::d1(env)?;
    let m = merchant_id.as_str();
    let batch = vec![
        db::stmt(
            &db,
            "INSERT INTO withdrawals (withdrawal_id, merchant_id, amount_fen, order_count, idempotency_key, created_ms)
             VALUES (?1, ?2, 0, 0, ?3, ?4)",
            &[Arg::Text(&id), Arg::Text(m), key.as_deref().into(), Arg::Int(now)],
        )?,
        db::stmt(
            &db,
            &format!(
                "UPDATE orders SET status = '{}', withdrawal_id = ?1, updated_ms = ?3
                 WHERE merchant_id = ?2 AND {}",
                OrderStatus::Withdrawn.as_str(),
                claimable_sql()
            ),
            &[Arg::Text(&id), Arg::Text(m), Arg::Int(now)],
        )?,
        db::stmt(
            &db,
            "UPDATE withdrawals SET (amount_fen, order_count) =
               (SELECT COALESCE(SUM(total_fee), 0), COUNT(*) FROM orders WHERE withdrawal_id = ?1)
             WHERE withdrawal_id = ?1",
            &[Arg::Text(&id)],
        )?,
        db::stmt(
            &db,
            "DELETE FROM withdrawals WHERE withdrawal_id = ?1 AND order_count = 0",
            &[Arg::Text(&id)],
        )?,
    ];
    match db.batch(batch).await {
        Ok(_) => {}
        // The same key won a race with us: the whole batch rolled back; answer with theirs.
        Err(e) if key.is_some() && is_unique_violation(&e) => {
            if let Some(w) = by_key(env, m, key.as_deref().unwrap_or_default()).await? {
                return answer(env, &w, true).await;
            }
            return Err(e.into());
        }
        Err(e) => return Err(e.into()),
    }
    match by_id(env, &id).await? {
        Some(w) => answer(env, &w, false).await,
        None => Err(ApiError::conflict(
            ledger::LedgerError::NothingToWithdraw.to_string(),
        )),
    }
}

/// `GET /merchant/withdrawals/{id}`.
pub async fn get(req: Request, env: &Env, id: &str) -> ApiResult<Response> {
    let merchant_id = auth::merchant(&req, env).await?;
    let w = by_id(env, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no withdrawal {id}")))?;
    if w.merchant_id != merchant_id {
        return Err(ApiError::forbidden("this withdrawal is not yours"));
    }
    answer(env, &w, false).await
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
        "items": rows.iter().map(WithdrawalRow::view).collect::<Vec<_>>(),
        "next_cursor": next,
    }))
}
