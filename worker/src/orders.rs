//! `GET /orders/{out_trade_no}`: an order, to the user who placed it and nobody else.

use serde_json::json;
use worker::{D1Database, Env, Request, Response};
use wxedge_core::order::OrderRow;
use wxedge_core::pay;

use crate::api::{ApiError, ApiResult, Input, ok};
use crate::db;
use crate::session::{self, Session};

pub fn view(o: &OrderRow) -> serde_json::Value {
    json!({
        "out_trade_no": o.out_trade_no,
        "status": o.status.as_str(),
        "total_fee": o.total_fee,
        "merchant_id": o.merchant_id,
        "created_ms": o.created_ms,
        "updated_ms": o.updated_ms,
        "paid_ms": o.paid_ms,
    })
}

/// The order `out_trade_no` names, if it exists and belongs to the session's user: code 1
/// for a malformed number, 5 for none, 7 for someone else's.
pub async fn owned(db: &D1Database, session: &Session, out_trade_no: &str) -> ApiResult<OrderRow> {
    if !pay::is_valid_out_trade_no(out_trade_no) {
        return Err(ApiError::param(
            "out_trade_no must be 1 to 32 characters of [0-9A-Za-z_-|*]",
        ));
    }
    let order = db::order(db, out_trade_no)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no order {out_trade_no}")))?;
    if order.openid != session.openid {
        return Err(ApiError::forbidden("this order is not yours"));
    }
    Ok(order)
}

pub async fn handle(mut req: Request, env: &Env, out_trade_no: &str) -> ApiResult<Response> {
    let input = Input::read(&mut req).await?;
    let session = session::get(env, input.token()?).await?;
    let db = db::d1(env)?;
    let order = owned(&db, &session, out_trade_no).await?;
    let mut data = view(&order);
    // Refunds are shown on a paid order (one more query; only a paid order has any).
    if order.status.is_paid() {
        let refunds = crate::refunds::of_order(&db, out_trade_no).await?;
        data["refunded_fen"] = json!(order.refunded_fen);
        data["refunds"] = refunds.iter().map(crate::refunds::view).collect();
    }
    ok(data)
}
