//! `POST /notify/`: WeChat's payment notify. Stored as received, then believed only
//! after wxedge-core verifies it (our key, our configured algorithm) and it matches the
//! order (appid, mch_id, total_fee). Then one guarded batch moves the order to PAID, so a
//! duplicate, late or concurrent notify credits nothing twice.
//!
//! Answers are WeChat's XML: `SUCCESS` stops its retries (also for a duplicate, which is
//! settled); `FAIL` for what we refuse. A refused notify changes no order.

use worker::{Env, Request, Response};
use wxedge_core::notify::{self, ExpectedPayment, NotifyError, Outcome};
use wxedge_core::{ErrorCode, Fen, pay, xml};

use crate::api::{self, ApiError, ApiResult, read_body};
use crate::config::Config;
use crate::{db, now_ms};

fn answer(status: u16, xml: String) -> ApiResult<Response> {
    Ok(api::xml(status, xml)?)
}

pub async fn handle(mut req: Request, env: &Env) -> ApiResult<Response> {
    let body = match read_body(&mut req).await {
        Ok(b) => b,
        Err(e) if e.code == 8 => return answer(413, notify::reply_fail("body too large")),
        Err(e) => return Err(e),
    };
    let cfg = Config::from_env(env)?;
    let now = now_ms();
    let remote_ip = req.headers().get("CF-Connecting-IP").ok().flatten();
    // The raw body is kept whatever it is (lossily as text if it is not UTF-8, which
    // strict parsing refuses anyway).
    let text = String::from_utf8_lossy(&body);
    let id = match db::store_notification(env, &text, remote_ip.as_deref(), now).await {
        Ok(id) => id,
        // Cannot record it: ask WeChat to come back rather than act unrecorded.
        Err(_) => return answer(500, notify::reply_fail("storage unavailable, retry later")),
    };
    let merchant = cfg.merchant();
    let parsed = notify::parse_notify(&body, &merchant.key, merchant.sign_type);
    let n = match parsed {
        Ok(n) => n,
        Err(e) => {
            let (verdict, status) = match e {
                NotifyError::ReturnFail(_) => ("PAYMENT_FAILED", 200),
                _ => ("REJECTED", 400),
            };
            // The order it claims to be about, kept for operators (not trusted).
            let claimed = xml::parse_xml(&body)
                .ok()
                .and_then(|p| p.get("out_trade_no").cloned())
                .filter(|no| pay::is_valid_out_trade_no(no));
            db::set_verdict(
                env,
                id,
                claimed.as_deref(),
                verdict,
                &format!("{}: {e}", e.code()),
            )
            .await?;
            return if status == 200 {
                answer(200, notify::reply_success())
            } else {
                answer(400, notify::reply_fail(&format!("rejected: {}", e.code())))
            };
        }
    };
    let no = n.out_trade_no.as_str();
    let Some(order) = db::order(env, no).await? else {
        db::set_verdict(env, id, Some(no), "UNKNOWN_ORDER", "no such out_trade_no").await?;
        return answer(404, notify::reply_fail("unknown order"));
    };
    let expected = ExpectedPayment {
        appid: &cfg.appid,
        mch_id: &cfg.mch_id,
        out_trade_no: &order.out_trade_no,
        total_fee: Fen::new(order.total_fee),
    };
    if let Err(e) = n.check(&expected) {
        db::set_verdict(env, id, Some(no), "REJECTED", &format!("{}: {e}", e.code())).await?;
        return answer(400, notify::reply_fail(&format!("rejected: {}", e.code())));
    }
    if let Outcome::Failed {
        err_code,
        err_code_des,
    } = &n.outcome
    {
        // The payment did not go through; the order stays payable.
        db::set_verdict(
            env,
            id,
            Some(no),
            "PAYMENT_FAILED",
            &format!("{err_code}: {err_code_des}"),
        )
        .await?;
        return answer(200, notify::reply_success());
    }
    if db::credit(env, id, no, &n.transaction_id, now).await? {
        return answer(200, notify::reply_success());
    }
    // Already settled. PAID or WITHDRAWN: a duplicate, acknowledged. CLOSED or FAILED and
    // yet paid: WeChat says the money moved; keep the evidence for an operator.
    let current = db::order(env, no)
        .await?
        .map(|o| o.status)
        .unwrap_or_default();
    if current != "PAID" && current != "WITHDRAWN" {
        db::set_verdict(
            env,
            id,
            Some(no),
            "CONFLICT",
            &format!("verified payment for an order that is {current}: refund or reopen by hand"),
        )
        .await?;
        worker::console_error!(
            "{}",
            serde_json::json!({ "level": "error", "what": "paid notify for a settled order", "out_trade_no": no, "status": current })
        );
    }
    answer(200, notify::reply_success())
}

/// A notify that failed for our own reasons (storage) gets FAIL, so WeChat retries it.
pub fn internal_failure(e: &ApiError) -> ApiResult<Response> {
    answer(
        500,
        notify::reply_fail(&format!("internal error, retry later ({})", e.code)),
    )
}
