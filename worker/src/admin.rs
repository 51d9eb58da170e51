//! Operator routes, behind `Authorization: Bearer <ADMIN_TOKEN>`: merchants and their keys,
//! orders by status, the ledger audit, and an on-demand reconciler run.

use serde::Deserialize;
use serde_json::{Value, json};
use worker::{Env, Request, Response};
use wxedge_core::auth as keys;
use wxedge_core::flow::MAX_ATTEMPTS;
use wxedge_core::flow::attention::{self, ResolveError};
use wxedge_core::ledger::{AuditSnapshot, OrderStatus};
use wxedge_core::order::OrderRow;
use wxedge_core::{random, store};

use crate::api::{ApiError, ApiResult, Input, ok};
use crate::db::{self, Arg};
use crate::ledger::{cursor, limit};
use crate::{auth, bills, now_ms, orders, reconcile};

/// `POST /admin/merchants` {name}: a merchant and its API key, shown this once.
pub async fn create_merchant(mut req: Request, env: &Env) -> ApiResult<Response> {
    auth::admin(&req, env)?;
    let input = Input::read(&mut req).await?;
    let name = input.text("name")?.trim();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(ApiError::param("name must be 1 to 64 characters"));
    }
    let rand = |e: random::RandomError| ApiError::internal(e.to_string());
    let merchant_id = format!("m_{}", random::alphanumeric(16).map_err(rand)?);
    let api_key = keys::new_api_key().map_err(rand)?;
    let db = db::d1(env)?;
    db::run(db::stmt(
        &db,
        "INSERT INTO merchants (merchant_id, name, api_key_hash, created_ms) VALUES (?1, ?2, ?3, ?4)",
        &[
            Arg::Text(&merchant_id),
            Arg::Text(name),
            Arg::Text(&keys::api_key_hash(&api_key)),
            Arg::Int(now_ms()),
        ],
    )?)
    .await?;
    ok(json!({
        "merchant_id": merchant_id,
        "name": name,
        "api_key": api_key,
        "note": "the api_key is shown only now; store it safely (only its SHA-256 is kept)",
    }))
}

/// `POST /admin/merchants/{id}/api_key`: a new key for the merchant; the old one stops
/// working at once (a leaked key, or the `default` merchant of the seed client).
pub async fn rotate_key(req: Request, env: &Env, merchant_id: &str) -> ApiResult<Response> {
    auth::admin(&req, env)?;
    let api_key = keys::new_api_key().map_err(|e| ApiError::internal(e.to_string()))?;
    let db = db::d1(env)?;
    let changed = db::run(db::stmt(
        &db,
        "UPDATE merchants SET api_key_hash = ?2 WHERE merchant_id = ?1",
        &[
            Arg::Text(merchant_id),
            Arg::Text(&keys::api_key_hash(&api_key)),
        ],
    )?)
    .await?;
    if changed != 1 {
        return Err(ApiError::not_found(format!("no merchant {merchant_id}")));
    }
    ok(json!({ "merchant_id": merchant_id, "api_key": api_key }))
}

/// `GET /admin/orders?status=&merchant_id=&limit=&cursor=`: newest first.
pub async fn list_orders(req: Request, env: &Env) -> ApiResult<Response> {
    auth::admin(&req, env)?;
    let url = req.url()?;
    let q = |k: &str| {
        url.query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.into_owned())
    };
    let status = q("status")
        .map(|s| s.parse::<OrderStatus>())
        .transpose()
        .map_err(|e| ApiError::param(format!("status: {e}")))?;
    let merchant = q("merchant_id");
    let (limit, cursor) = (limit(&url)?, cursor(&url)?);
    let db = db::d1(env)?;
    #[derive(Deserialize)]
    struct Page {
        j: String,
        last: Option<u64>,
    }
    let page: Option<Page> = db::stmt(
        &db,
        &format!(
            "SELECT COALESCE(json_group_array(json(j)), '[]') AS j, MIN(id) AS last FROM
               (SELECT {} AS j, id FROM orders
                WHERE id < ?1 AND (?2 IS NULL OR status = ?2) AND (?3 IS NULL OR merchant_id = ?3)
                ORDER BY id DESC LIMIT ?4)",
            store::ORDER_JSON
        ),
        &[
            Arg::Int(cursor),
            status.map(OrderStatus::as_str).into(),
            merchant.as_deref().into(),
            Arg::Int(limit),
        ],
    )?
    .first(None)
    .await?;
    let (j, last) = page.map_or(("[]".to_owned(), None), |p| (p.j, p.last));
    let rows = OrderRow::list_from_json(&j).map_err(db::unreadable)?;
    let last = last.filter(|_| rows.len() as u64 == limit);
    let items: Vec<Value> = rows.iter().map(admin_view).collect();
    ok(json!({ "items": items, "next_cursor": last.map(|n| n.to_string()) }))
}

/// `GET /admin/ledger`: every merchant's totals and wxedge-core's audit of them, from one
/// consistent snapshot. `ok: false` lists what is broken; `attention` counts the orders an
/// operator must look at (late payments and the like: credited money that needs a person).
pub async fn audit(req: Request, env: &Env) -> ApiResult<Response> {
    auth::admin(&req, env)?;
    let db = db::d1(env)?;
    let j = db::json(&db, &store::audit_snapshot()).await?;
    let report = AuditSnapshot::from_json(j.as_deref().unwrap_or("{}"))
        .map_err(db::unreadable)?
        .audit();
    let merchants: Vec<Value> = report
        .merchants
        .iter()
        .map(|(t, found)| {
            json!({
                "merchant_id": t.merchant_id,
                "paid_fen": t.paid,
                // What the next withdrawal would take (below zero: refunds owed, a debt).
                "available_fen": i64::try_from(t.balance()).unwrap_or(i64::MIN),
                "refunded_fen": t.refunds_held,
                "withdrawn_fen": t.withdrawn(),
                "withdrawals": t.withdrawals.len(),
                "ok": found.is_empty(),
            })
        })
        .collect();
    let violations: Vec<String> = report.violations().map(ToString::to_string).collect();
    let attention_total: u64 = report.attention.values().sum();
    let bills = db::json(&db, &store::reconciliation_summary()).await?;
    let bills: Value = serde_json::from_str(bills.as_deref().unwrap_or("{}"))
        .map_err(|e| ApiError::internal(e.to_string()))?;
    ok(json!({
        // The daily bill's differences (GET /admin/reconciliation?date= lists a day's).
        "reconciliation": bills,
        "ok": report.ok(),
        "violations": violations,
        "merchants": merchants,
        "attention": report.attention,
        "attention_orders": attention_total,
    }))
}

/// `GET /admin/attention?limit=&cursor=`: orders marked for an operator (a payment that
/// arrived after the order was ended, another amount, a refund nothing credited…), newest
/// first, with why.
pub async fn attention(req: Request, env: &Env) -> ApiResult<Response> {
    auth::admin(&req, env)?;
    let url = req.url()?;
    let (limit, cursor) = (limit(&url)?, cursor(&url)?);
    let db = db::d1(env)?;
    #[derive(Deserialize)]
    struct Page {
        j: String,
        last: Option<u64>,
    }
    let page: Option<Page> = db::prepare(&db, &store::attention_page(cursor, limit))?
        .first(None)
        .await?;
    let (j, last) = page.map_or(("[]".to_owned(), None), |p| (p.j, p.last));
    let rows = OrderRow::list_from_json(&j).map_err(db::unreadable)?;
    let last = last.filter(|_| rows.len() as u64 == limit);
    ok(json!({
        "items": rows.iter().map(admin_view).collect::<Vec<_>>(),
        "next_cursor": last.map(|n| n.to_string()),
    }))
}

/// `POST /admin/attention/{out_trade_no}/resolve {note}`: the operator dealt with the
/// order's mark; wxedge-core's [`flow::attention::resolve`] clears it, guarded by the
/// version read (a concurrent change means: read it again and decide again).
pub async fn resolve(mut req: Request, env: &Env, no: &str) -> ApiResult<Response> {
    auth::admin(&req, env)?;
    let input = Input::read(&mut req).await?;
    let note = input.text("note")?;
    let db = db::d1(env)?;
    for _ in 0..MAX_ATTEMPTS {
        let row = db::order(&db, no)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no order {no}")))?;
        let d = attention::resolve(&row, note, now_ms()).map_err(|e| match e {
            ResolveError::NothingToResolve(_) => ApiError::conflict(e.to_string()),
            ResolveError::BadNote => ApiError::param(e.to_string()),
        })?;
        let batch = d.batch().map_err(|e| ApiError::internal(e.to_string()))?;
        if db::execute(&db, &batch).await? {
            let row = db::order(&db, no).await?.unwrap_or(row);
            return ok(admin_view(&row));
        }
    }
    Err(ApiError::internal("the order kept changing; try again"))
}

/// An order as operators see it.
fn admin_view(o: &OrderRow) -> Value {
    let mut v = orders::view(o);
    v["openid"] = json!(o.openid);
    v["withdrawal_id"] = json!(o.withdrawal_id);
    v["transaction_id"] = json!(o.transaction_id);
    v["failure"] = json!(o.failure);
    v["paid_via"] = json!(o.paid_via);
    v["attention"] = json!(o.attention.map(|a| a.as_str()));
    v["attention_note"] = json!(o.attention_note);
    v["reconcile_note"] = json!(o.reconcile_note);
    v["next_check_ms"] = json!(o.next_check_ms);
    v
}

/// `POST /admin/reconcile`: one reconciler run now, with what it did.
pub async fn reconcile_now(req: Request, env: &Env) -> ApiResult<Response> {
    auth::admin(&req, env)?;
    ok(reconcile::run(env).await?)
}

/// The `date` of a reconciliation route: a real `YYYY-MM-DD`.
fn bill_date(req: &Request) -> ApiResult<String> {
    let url = req.url()?;
    let date = url
        .query_pairs()
        .find(|(n, _)| n == "date")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| ApiError::param("date is required: ?date=YYYY-MM-DD (a Beijing day)"))?;
    if wxedge_core::v3::tradebill::is_bill_date(&date) {
        Ok(date)
    } else {
        Err(ApiError::param(format!(
            "date {date:?} is not a calendar date YYYY-MM-DD"
        )))
    }
}

/// `GET /admin/reconciliation?date=YYYY-MM-DD&limit=&cursor=`: the day's bill (its status,
/// figures and SHA-1) and the differences the match stored, a page at a time in the order
/// found; 404 when that day's bill was never fetched.
pub async fn reconciliation(req: Request, env: &Env) -> ApiResult<Response> {
    auth::admin(&req, env)?;
    let date = bill_date(&req)?;
    let url = req.url()?;
    let limit = limit(&url)?;
    let after = match url.query_pairs().find(|(k, _)| k == "cursor") {
        None => 0,
        Some((_, v)) => v
            .parse::<u64>()
            .map_err(|_| ApiError::param("cursor must be the next_cursor of the previous page"))?,
    };
    let db = db::d1(env)?;
    let report = bills::report(&db, &date, after, limit).await?;
    if report["bill"].is_null() {
        return Err(ApiError::not_found(format!(
            "no bill fetched for {date} yet: POST /admin/reconciliation?date={date} fetches it now"
        )));
    }
    ok(report)
}

/// `POST /admin/reconciliation?date=YYYY-MM-DD`: fetch, check and match that day's bill now
/// (again, if it was already), with the report.
pub async fn fetch_bill(req: Request, env: &Env) -> ApiResult<Response> {
    auth::admin(&req, env)?;
    let date = bill_date(&req)?;
    let cfg = crate::config::Config::from_env(env)?;
    let db = db::d1(env)?;
    ok(bills::fetch(&db, &cfg, &date).await?)
}
