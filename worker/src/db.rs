//! D1 rows: users, orders, notifications. Every state change of an order is one guarded
//! statement (`… WHERE status IN (…)`), so a duplicate or a race changes nothing instead
//! of changing something twice.

use js_sys::{Array, Reflect};
use serde::{Deserialize, Serialize};
use wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::worker_sys::D1Database as D1DatabaseSys;
use worker::{D1Database, D1PreparedStatement, Env};

use crate::api::ApiResult;

pub fn d1(env: &Env) -> ApiResult<D1Database> {
    Ok(env.d1("DB")?)
}

/// A bind value. Amounts and times stay far below 2^53, so JS numbers hold them exactly.
pub enum Arg<'a> {
    Text(&'a str),
    Int(u64),
    Null,
}

impl From<&Arg<'_>> for JsValue {
    fn from(a: &Arg<'_>) -> JsValue {
        match a {
            Arg::Text(s) => JsValue::from_str(s),
            Arg::Int(n) => JsValue::from_f64(*n as f64),
            Arg::Null => JsValue::NULL,
        }
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        v.map_or(Arg::Null, Arg::Text)
    }
}

pub fn stmt(db: &D1Database, sql: &str, args: &[Arg<'_>]) -> ApiResult<D1PreparedStatement> {
    let values: Vec<JsValue> = args.iter().map(JsValue::from).collect();
    Ok(db.prepare(sql).bind(&values)?)
}

/// Runs a write; the rows it changed (a guarded UPDATE that matched nothing gives 0).
///
/// Through the raw statement rather than `D1PreparedStatement::run` + `D1Result::meta`:
/// `meta` deserializes a dozen fields one JS round trip each, and the only one a write
/// needs is `changes`. On the pay and notify paths those round trips are most of what
/// the worker itself costs (bench/RESULTS.md, worker section).
pub async fn run(stmt: D1PreparedStatement) -> ApiResult<usize> {
    let promise = stmt.inner().run().map_err(worker::Error::from)?;
    let result = JsFuture::from(promise).await.map_err(worker::Error::from)?;
    Ok(changes(&result))
}

/// `result.meta.changes` of one D1 result object (0 when absent).
fn changes(result: &JsValue) -> usize {
    Reflect::get(result, &JsValue::from_str("meta"))
        .and_then(|meta| Reflect::get(&meta, &JsValue::from_str("changes")))
        .ok()
        .and_then(|c| c.as_f64())
        .map_or(0, |c| c as usize)
}

/// Runs statements as one D1 batch (one transaction: all or nothing); the rows each changed.
pub async fn batch(db: &D1Database, stmts: &[D1PreparedStatement]) -> ApiResult<Vec<usize>> {
    let array: Array = stmts.iter().map(|s| JsValue::from(s.inner())).collect();
    let sys: &D1DatabaseSys = db.as_ref().unchecked_ref();
    let promise = sys.batch(array).map_err(worker::Error::from)?;
    let results = JsFuture::from(promise).await.map_err(worker::Error::from)?;
    Ok(Array::from(&results).iter().map(|r| changes(&r)).collect())
}

pub async fn upsert_user(
    env: &Env,
    openid: &str,
    unionid: Option<&str>,
    now: u64,
) -> ApiResult<()> {
    let db = d1(env)?;
    run(stmt(
        &db,
        "INSERT INTO users (openid, unionid, created_ms, login_ms, updated_ms) VALUES (?1, ?2, ?3, ?3, ?3)
         ON CONFLICT (openid) DO UPDATE SET unionid = COALESCE(excluded.unionid, users.unionid),
           login_ms = excluded.login_ms, updated_ms = excluded.updated_ms",
        &[Arg::Text(openid), unionid.into(), Arg::Int(now)],
    )?).await?;
    Ok(())
}

pub async fn save_profile(env: &Env, openid: &str, profile: &str, now: u64) -> ApiResult<()> {
    let db = d1(env)?;
    run(stmt(
        &db,
        "UPDATE users SET profile = ?2, updated_ms = ?3 WHERE openid = ?1",
        &[Arg::Text(openid), Arg::Text(profile), Arg::Int(now)],
    )?)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Order {
    pub out_trade_no: String,
    pub openid: String,
    pub merchant_id: String,
    pub total_fee: u64,
    pub body: String,
    pub spbill_create_ip: String,
    pub status: String,
    pub prepay_id: Option<String>,
    pub prepay_ms: Option<u64>,
    pub transaction_id: Option<String>,
    pub paid_ms: Option<u64>,
    pub failure: Option<String>,
    pub withdrawal_id: Option<String>,
    pub created_ms: u64,
    pub updated_ms: u64,
}

/// An order row as one JSON string built by SQLite: a single value crosses into the wasm,
/// where serde_json reads it, instead of one JS round trip per column.
pub const ORDER_JSON: &str = "json_object('out_trade_no', out_trade_no, 'openid', openid, \
     'merchant_id', merchant_id, 'total_fee', total_fee, 'body', body, \
     'spbill_create_ip', spbill_create_ip, 'status', status, 'prepay_id', prepay_id, \
     'prepay_ms', prepay_ms, 'transaction_id', transaction_id, 'paid_ms', paid_ms, \
     'failure', failure, 'withdrawal_id', withdrawal_id, 'created_ms', created_ms, \
     'updated_ms', updated_ms)";

pub async fn order(env: &Env, out_trade_no: &str) -> ApiResult<Option<Order>> {
    let db = d1(env)?;
    let row: Option<String> = stmt(
        &db,
        &format!("SELECT {ORDER_JSON} AS j FROM orders WHERE out_trade_no = ?1"),
        &[Arg::Text(out_trade_no)],
    )?
    .first(Some("j"))
    .await?;
    row.map(|j| {
        serde_json::from_str(&j)
            .map_err(|e| crate::api::ApiError::internal(format!("unreadable order row: {e}")))
    })
    .transpose()
}

/// Writes a new order (CREATED) for an existing merchant, in one statement: the merchant
/// check and the insert are one D1 round trip. False (nothing written) when the merchant
/// does not exist.
pub async fn insert_order(env: &Env, o: &Order) -> ApiResult<bool> {
    let db = d1(env)?;
    Ok(run(stmt(
        &db,
        "INSERT INTO orders (out_trade_no, openid, merchant_id, total_fee, body, spbill_create_ip, status, created_ms, updated_ms)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, 'CREATED', ?7, ?7
         WHERE EXISTS (SELECT 1 FROM merchants WHERE merchant_id = ?3)",
        &[
            Arg::Text(&o.out_trade_no),
            Arg::Text(&o.openid),
            Arg::Text(&o.merchant_id),
            Arg::Int(o.total_fee),
            Arg::Text(&o.body),
            Arg::Text(&o.spbill_create_ip),
            Arg::Int(o.created_ms),
        ],
    )?).await? == 1)
}

/// CREATED/PREPAID → PREPAID with this prepay_id; false if the order moved on meanwhile.
pub async fn mark_prepaid(
    env: &Env,
    out_trade_no: &str,
    prepay_id: &str,
    now: u64,
) -> ApiResult<bool> {
    let db = d1(env)?;
    Ok(run(stmt(
        &db,
        "UPDATE orders SET status = 'PREPAID', prepay_id = ?2, prepay_ms = ?3, updated_ms = ?3
         WHERE out_trade_no = ?1 AND status IN ('CREATED', 'PREPAID')",
        &[Arg::Text(out_trade_no), Arg::Text(prepay_id), Arg::Int(now)],
    )?)
    .await?
        == 1)
}

/// CREATED/PREPAID → CLOSED or FAILED (with WeChat's reason).
pub async fn mark_ended(
    env: &Env,
    out_trade_no: &str,
    status: &str,
    failure: &str,
    now: u64,
) -> ApiResult<bool> {
    let db = d1(env)?;
    Ok(run(stmt(
        &db,
        "UPDATE orders SET status = ?2, failure = ?3, updated_ms = ?4
         WHERE out_trade_no = ?1 AND status IN ('CREATED', 'PREPAID')",
        &[
            Arg::Text(out_trade_no),
            Arg::Text(status),
            Arg::Text(failure),
            Arg::Int(now),
        ],
    )?)
    .await?
        == 1)
}

/// Stores a notify body before anything else looks at it; returns its row id.
pub async fn store_notification(
    env: &Env,
    body: &str,
    remote_ip: Option<&str>,
    now: u64,
) -> ApiResult<u64> {
    let db = d1(env)?;
    let id: Option<u64> = stmt(
        &db,
        "INSERT INTO notifications (received_ms, body, remote_ip) VALUES (?1, ?2, ?3) RETURNING id",
        &[Arg::Int(now), Arg::Text(body), remote_ip.into()],
    )?
    .first(Some("id"))
    .await?;
    id.ok_or_else(|| crate::api::ApiError::internal("the notification was not stored"))
}

pub async fn set_verdict(
    env: &Env,
    id: u64,
    out_trade_no: Option<&str>,
    verdict: &str,
    reason: &str,
) -> ApiResult<()> {
    let db = d1(env)?;
    run(stmt(
        &db,
        "UPDATE notifications SET out_trade_no = ?2, verdict = ?3, reason = ?4 WHERE id = ?1",
        &[
            Arg::Int(id),
            out_trade_no.into(),
            Arg::Text(verdict),
            Arg::Text(reason),
        ],
    )?)
    .await?;
    Ok(())
}

/// The one statement that makes an order PAID: guarded on its being open, so whichever of
/// a notify or the reconciler comes first credits it and the other changes nothing.
fn mark_paid(
    db: &D1Database,
    out_trade_no: &str,
    transaction_id: &str,
    via: &str,
    now: u64,
) -> ApiResult<D1PreparedStatement> {
    stmt(
        db,
        "UPDATE orders SET status = 'PAID', transaction_id = ?2, paid_ms = ?3, updated_ms = ?3, paid_via = ?4
         WHERE out_trade_no = ?1 AND status IN ('CREATED', 'PREPAID')",
        &[
            Arg::Text(out_trade_no),
            Arg::Text(transaction_id),
            Arg::Int(now),
            Arg::Text(via),
        ],
    )
}

/// The reconciler's credit, from an orderquery that said SUCCESS for our amount.
pub async fn credit_by_query(
    env: &Env,
    out_trade_no: &str,
    transaction_id: &str,
    now: u64,
) -> ApiResult<bool> {
    let db = d1(env)?;
    Ok(run(mark_paid(
        &db,
        out_trade_no,
        transaction_id,
        "reconciler",
        now,
    )?)
    .await?
        == 1)
}

/// The reconciler's note on an order it looked at and left as it was (or could not move).
pub async fn note_reconciled(env: &Env, out_trade_no: &str, note: &str, now: u64) -> ApiResult<()> {
    let db = d1(env)?;
    run(stmt(
        &db,
        "UPDATE orders SET reconciled_ms = ?2, reconcile_note = ?3 WHERE out_trade_no = ?1",
        &[Arg::Text(out_trade_no), Arg::Int(now), Arg::Text(note)],
    )?)
    .await?;
    Ok(())
}

/// Open orders whose last change (or last reconciliation) is older than `before`.
pub async fn due_orders(env: &Env, before: u64, limit: u64) -> ApiResult<Vec<Order>> {
    let db = d1(env)?;
    let j: Option<String> = stmt(
        &db,
        &format!(
            "SELECT COALESCE(json_group_array(json(j)), '[]') AS j FROM
               (SELECT {ORDER_JSON} AS j FROM orders
                WHERE status IN ('CREATED', 'PREPAID') AND MAX(updated_ms, COALESCE(reconciled_ms, 0)) <= ?1
                ORDER BY updated_ms LIMIT ?2)"
        ),
        &[Arg::Int(before), Arg::Int(limit)],
    )?
    .first(Some("j"))
    .await?;
    serde_json::from_str(j.as_deref().unwrap_or("[]"))
        .map_err(|e| crate::api::ApiError::internal(format!("unreadable orders: {e}")))
}

/// The credit, in one batch: the order CREATED/PREPAID → PAID (guarded, so only the first
/// verified notify changes it) and the notification's verdict, CREDITED or DUPLICATE by
/// whether the guard let it through. Returns whether this notify credited the order.
pub async fn credit(
    env: &Env,
    notification_id: u64,
    out_trade_no: &str,
    transaction_id: &str,
    now: u64,
) -> ApiResult<bool> {
    let db = d1(env)?;
    let changed = batch(
        &db,
        &[
            mark_paid(&db, out_trade_no, transaction_id, "notify", now)?,
            stmt(
                &db,
                "UPDATE notifications SET out_trade_no = ?2,
                   verdict = CASE WHEN changes() = 1 THEN 'CREDITED' ELSE 'DUPLICATE' END,
                   reason = CASE WHEN changes() = 1 THEN 'verified; order is now PAID' ELSE 'verified; order was already settled' END
                 WHERE id = ?1",
                &[Arg::Int(notification_id), Arg::Text(out_trade_no)],
            )?,
        ],
    )
    .await?;
    Ok(changed.first() == Some(&1))
}
