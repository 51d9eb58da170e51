//! `POST /merchant/refunds`, `GET /merchant/refunds`, `GET /merchant/refunds/{out_refund_no}`:
//! drives wxedge-core's [`flow::refund`]. The refund is recorded first (its money taken
//! from the merchant at once, guarded by the order's status and version), then asked of
//! WeChat through APIv3 (which also refunds orders paid through v2), then moved by the
//! core's reading of the answer. WeChat not answering leaves it REQUESTED for the
//! reconciler; it is never sent again under another number.

use serde_json::{Value, json};
use worker::{D1Database, Env, Method, Request, Response};
use wxedge_core::flow::MAX_ATTEMPTS;
use wxedge_core::flow::refund::{self as flow, Next, Refusal, Reply};
use wxedge_core::order::OrderRow;
use wxedge_core::pay::PayError;
use wxedge_core::refund::RefundRow;
use wxedge_core::v3::refund::{self as wire, RefundRequest, RefundState};
use wxedge_core::{random, store};

use crate::api::{ApiError, ApiResult, Input, ok};
use crate::config::Config;
use crate::ledger::{cursor, idempotency_key, limit};
use crate::{auth, db, now_ms, v3};

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(e.to_string())
}

fn refused(r: Refusal) -> ApiError {
    match r {
        Refusal::Param(m) => ApiError::param(m),
        Refusal::NotFound(m) => ApiError::not_found(m),
        Refusal::Conflict(m) => ApiError::conflict(m),
    }
}

/// A refund as the merchant API shows it.
pub fn view(r: &RefundRow) -> Value {
    json!({
        "out_refund_no": r.out_refund_no,
        "out_trade_no": r.out_trade_no,
        "amount_fen": r.amount_fen,
        "reason": r.reason,
        "status": r.status.as_str(),
        "source": r.source.as_str(),
        "refund_id": r.refund_id,
        "failure": r.failure,
        "created_ms": r.created_ms,
        "updated_ms": r.updated_ms,
        "success_ms": r.success_ms,
    })
}

async fn refund(db: &D1Database, q: &store::Statement) -> ApiResult<Option<RefundRow>> {
    db::json(db, q)
        .await?
        .map(|j| RefundRow::from_json(&j).map_err(db::unreadable))
        .transpose()
}

pub async fn by_no(db: &D1Database, out_refund_no: &str) -> ApiResult<Option<RefundRow>> {
    refund(db, &store::refund_by_no(out_refund_no)).await
}

/// An order's refunds, oldest first.
pub async fn of_order(db: &D1Database, out_trade_no: &str) -> ApiResult<Vec<RefundRow>> {
    let j = db::json(db, &store::refunds_of_order(out_trade_no)).await?;
    RefundRow::list_from_json(j.as_deref().unwrap_or("[]")).map_err(db::unreadable)
}

async fn by_key(
    db: &D1Database,
    merchant_id: &str,
    key: Option<&str>,
) -> ApiResult<Option<RefundRow>> {
    match key {
        Some(k) => refund(db, &store::refund_by_key(merchant_id, k)).await,
        None => Ok(None),
    }
}

/// Asks WeChat to make `row` (with its own `out_refund_no`, so a resend is the same
/// refund). `None`: no answer came.
pub async fn ask_wechat(
    cfg: &Config,
    row: &RefundRow,
    order: &OrderRow,
) -> ApiResult<Option<Result<RefundState, PayError>>> {
    let v3 = cfg
        .v3
        .as_ref()
        .ok_or_else(|| ApiError::internal("server misconfigured: refunds go through APIv3; set its secrets (README: \"WeChat Pay APIv3\")"))?;
    let notify_url = cfg.notify_url();
    let body = wire::request_body(&RefundRequest {
        out_trade_no: &row.out_trade_no,
        out_refund_no: &row.out_refund_no,
        reason: row.reason.as_deref(),
        notify_url: &notify_url,
        refund: row.amount_fen,
        total: order.total_fee,
    })
    .map_err(internal)?;
    let Ok(answer) = v3::call(cfg, Method::Post, wire::REFUND_PATH, &body).await? else {
        return Ok(None);
    };
    let no = row.out_refund_no.as_str();
    Ok(Some(
        v3::judge(v3, &answer, |a| wire::outcome(a, no)).await?,
    ))
}

/// Runs `after_answer` on the refund as it is now, deciding again if it moved meanwhile.
async fn settle(
    db: &D1Database,
    cfg: &Config,
    no: &str,
    answer: Option<&Result<RefundState, PayError>>,
) -> ApiResult<(RefundRow, Reply)> {
    for _ in 0..MAX_ATTEMPTS {
        let row = by_no(db, no)
            .await?
            .ok_or_else(|| ApiError::internal("the refund vanished"))?;
        let d = flow::after_answer(&row, answer, now_ms(), &cfg.refund_policy());
        if db::execute(db, &d.batch().map_err(internal)?).await? {
            let row = by_no(db, no).await?.unwrap_or(row);
            return Ok((row, d.reply));
        }
    }
    Err(ApiError::internal(
        "the refund is changing too fast; see GET /merchant/refunds/{out_refund_no}",
    ))
}

/// `POST /merchant/refunds`: `out_trade_no`, `amount_fen`, optional `reason`; optional
/// `Idempotency-Key` (the same key and request give the same refund back; another
/// request under it is refused).
pub async fn create(mut req: Request, env: &Env) -> ApiResult<Response> {
    let merchant_id = auth::merchant(&req, env).await?;
    let key = idempotency_key(&req)?;
    let input = Input::read(&mut req).await?;
    let cfg = Config::from_env(env)?;
    let no = input.text("out_trade_no")?;
    let reason = input.opt_text("reason")?;
    let amount = flow::amount(input.raw("amount_fen")).map_err(refused)?;
    let digest = flow::request_digest(no, amount, reason);
    let db = db::d1(env)?;
    let request = flow::Request {
        merchant_id: &merchant_id,
        out_trade_no: no,
        amount: input.raw("amount_fen"),
        reason,
        idempotency_key: key.as_deref(),
        request_sha256: &digest,
    };
    let mut created = None;
    for _ in 0..MAX_ATTEMPTS {
        let order = db::order(&db, no).await?;
        let existing = by_key(&db, &merchant_id, key.as_deref()).await?;
        let count = of_order(&db, no).await?.len() as u64;
        let new_no = random::alphanumeric(32).map_err(internal)?;
        match flow::request(
            order.as_ref(),
            existing.as_ref(),
            count,
            &request,
            new_no,
            now_ms(),
            &cfg.refund_policy(),
        )
        .map_err(refused)?
        {
            Next::Replay(row) => return answer(&row, true, None),
            Next::Create {
                out_refund_no,
                write,
            } => {
                let batch = store::batch(&[*write]).map_err(internal)?;
                match db::execute(&db, &batch).await {
                    Ok(true) => {
                        created = order.map(|o| (out_refund_no, o));
                        break;
                    }
                    // The order moved (a withdrawal, a notify, another refund): decide again.
                    Ok(false) => {}
                    // The same key won a race with us: the batch rolled back whole; theirs.
                    Err(e) => match by_key(&db, &merchant_id, key.as_deref()).await? {
                        Some(theirs) if key.is_some() => return answer(&theirs, true, None),
                        _ => return Err(e),
                    },
                }
            }
        }
    }
    let (out_refund_no, order) = created.ok_or_else(|| {
        ApiError::internal(
            "the order is changing too fast; try again with the same Idempotency-Key",
        )
    })?;
    let row = by_no(&db, &out_refund_no)
        .await?
        .ok_or_else(|| ApiError::internal("the refund vanished"))?;
    let wechat = ask_wechat(&cfg, &row, &order).await?;
    let (row, reply) = settle(&db, &cfg, &out_refund_no, wechat.as_ref()).await?;
    match (&wechat, reply) {
        (Some(Err(e)), Reply::Show) if row.status == wxedge_core::refund::RefundStatus::Failed => {
            Err(ApiError::wechat(
                502,
                format!(
                    "WeChat Pay refused the refund ({}): nothing was refunded, the money stays available",
                    e.err_code().unwrap_or("error")
                ),
                json!({
                    "err_code": e.err_code(),
                    "err_code_des": e.err_code_des(),
                    "refund": view(&row),
                }),
            ))
        }
        (_, Reply::Pending { reason }) => answer(&row, false, Some(reason)),
        _ => answer(&row, false, None),
    }
}

fn answer(row: &RefundRow, replay: bool, pending: Option<String>) -> ApiResult<Response> {
    let mut data = view(row);
    data["idempotent_replay"] = json!(replay);
    if let Some(p) = pending {
        data["note"] = json!(format!(
            "{p}; the refund is recorded and its money held: look it up later, never request it again under a new key"
        ));
    }
    ok(data)
}

/// `GET /merchant/refunds/{out_refund_no}`.
pub async fn get(req: Request, env: &Env, out_refund_no: &str) -> ApiResult<Response> {
    let merchant_id = auth::merchant(&req, env).await?;
    let db = db::d1(env)?;
    let r = by_no(&db, out_refund_no)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no refund {out_refund_no}")))?;
    if r.merchant_id != merchant_id {
        return Err(ApiError::forbidden("this refund is not yours"));
    }
    answer(&r, false, None)
}

/// `GET /merchant/refunds?limit=&cursor=`: newest first.
pub async fn list(req: Request, env: &Env) -> ApiResult<Response> {
    let merchant_id = auth::merchant(&req, env).await?;
    let url = req.url()?;
    let (limit, cursor) = (limit(&url)?, cursor(&url)?);
    let db = db::d1(env)?;
    let q = store::refunds_page(&merchant_id, cursor, limit);
    let stmt = db::prepare(&db, &q)?;
    #[derive(serde::Deserialize)]
    struct Page {
        j: Option<String>,
        last: Option<u64>,
    }
    let page: Option<Page> = stmt.first(None).await?;
    let (j, last) = page.map_or((None, None), |p| (p.j, p.last));
    let rows = RefundRow::list_from_json(j.as_deref().unwrap_or("[]")).map_err(db::unreadable)?;
    let next = (rows.len() as u64 == limit)
        .then(|| last.map(|l| l.to_string()))
        .flatten();
    ok(json!({
        "items": rows.iter().map(view).collect::<Vec<_>>(),
        "next_cursor": next,
    }))
}
