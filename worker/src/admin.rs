//! Operator routes, behind `Authorization: Bearer <ADMIN_TOKEN>`: merchants and their keys,
//! orders by status, the ledger audit, and an on-demand reconciler run.

use serde::Deserialize;
use serde_json::{Value, json};
use worker::{Env, Request, Response};
use wxedge_core::auth as keys;
use wxedge_core::ledger::{self, MerchantTotals, OrderStatus, WithdrawalTotals};
use wxedge_core::{Fen, random};

use crate::api::{ApiError, ApiResult, Input, ok};
use crate::db::{self, Arg};
use crate::ledger::{cursor, limit};
use crate::{auth, now_ms, orders, reconcile};

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
            db::ORDER_JSON
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
    let rows: Vec<db::Order> = serde_json::from_str(&j)
        .map_err(|e| ApiError::internal(format!("unreadable orders: {e}")))?;
    let last = last.filter(|_| rows.len() as u64 == limit);
    let items: Vec<Value> = rows
        .iter()
        .map(|o| {
            let mut v = orders::view(o);
            v["openid"] = json!(o.openid);
            v["withdrawal_id"] = json!(o.withdrawal_id);
            v["transaction_id"] = json!(o.transaction_id);
            v["failure"] = json!(o.failure);
            v
        })
        .collect();
    ok(json!({ "items": items, "next_cursor": last.map(|n| n.to_string()) }))
}

/// `GET /admin/ledger`: every merchant's totals and wxedge-core's audit of them, from one
/// consistent snapshot. `ok: false` lists what is broken.
pub async fn audit(req: Request, env: &Env) -> ApiResult<Response> {
    auth::admin(&req, env)?;
    let db = db::d1(env)?;
    let j: Option<String> = db::stmt(
        &db,
        "SELECT json_object(
           'merchants', (SELECT COALESCE(json_group_array(json_array(m.merchant_id,
               (SELECT COALESCE(SUM(total_fee), 0) FROM orders WHERE merchant_id = m.merchant_id AND status IN ('PAID', 'WITHDRAWN')),
               (SELECT COALESCE(SUM(total_fee), 0) FROM orders WHERE merchant_id = m.merchant_id AND status = 'PAID' AND withdrawal_id IS NULL),
               (SELECT COUNT(*) FROM orders o WHERE o.merchant_id = m.merchant_id AND (
                   (o.status = 'WITHDRAWN') <> (o.withdrawal_id IS NOT NULL)
                   OR (o.withdrawal_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM withdrawals w
                        WHERE w.withdrawal_id = o.withdrawal_id AND w.merchant_id = o.merchant_id)))))), '[]')
               FROM merchants m),
           'withdrawals', (SELECT COALESCE(json_group_array(json_array(w.withdrawal_id, w.merchant_id, w.amount_fen,
               (SELECT COALESCE(SUM(total_fee), 0) FROM orders o WHERE o.withdrawal_id = w.withdrawal_id AND o.merchant_id = w.merchant_id AND o.status = 'WITHDRAWN'),
               (SELECT COUNT(*) FROM orders o WHERE o.withdrawal_id = w.withdrawal_id AND o.merchant_id = w.merchant_id AND o.status = 'WITHDRAWN'))), '[]')
               FROM withdrawals w)) AS j",
        &[],
    )?
    .first(Some("j"))
    .await?;
    #[derive(Deserialize)]
    struct Snapshot {
        merchants: Vec<(String, u64, u64, u64)>,
        withdrawals: Vec<(String, String, u64, u64, u64)>,
    }
    let s: Snapshot = serde_json::from_str(j.as_deref().unwrap_or("{}"))
        .map_err(|e| ApiError::internal(format!("unreadable ledger: {e}")))?;
    let mut out = Vec::new();
    let mut violations = Vec::new();
    for (merchant_id, paid, available, stray) in s.merchants {
        let t = MerchantTotals {
            withdrawals: s
                .withdrawals
                .iter()
                .filter(|w| w.1 == merchant_id)
                .map(|w| WithdrawalTotals {
                    withdrawal_id: w.0.clone(),
                    amount: Fen::new(w.2),
                    claimed: Fen::new(w.3),
                    claimed_orders: w.4,
                })
                .collect(),
            merchant_id,
            paid: Fen::new(paid),
            available: Fen::new(available),
            stray_orders: stray,
            overflowed: false,
        };
        let found = ledger::audit(&t);
        violations.extend(found.iter().map(ToString::to_string));
        out.push(json!({
            "merchant_id": t.merchant_id,
            "paid_fen": paid,
            "available_fen": available,
            "withdrawn_fen": t.withdrawn().map(Fen::get),
            "withdrawals": t.withdrawals.len(),
            "ok": found.is_empty(),
        }));
    }
    ok(json!({ "ok": violations.is_empty(), "violations": violations, "merchants": out }))
}

/// `POST /admin/reconcile`: one reconciler run now, with what it did.
pub async fn reconcile_now(req: Request, env: &Env) -> ApiResult<Response> {
    auth::admin(&req, env)?;
    ok(reconcile::run(env).await?)
}
