//! `POST /pay/`: an order row (CREATED) → unifiedorder → PREPAID → the five
//! wx.requestPayment fields.
//!
//! The row is written before WeChat is called, so whatever WeChat does (times out,
//! answers SYSTEMERROR, answers after we gave up) the order exists and its state says how
//! far it got. A retry names the order (`out_trade_no`) and repeats the same unifiedorder,
//! which WeChat answers with the same prepay_id: one order, one possible charge.

use serde_json::json;
use worker::{Env, Request, Response};
use wxedge_core::money::{self, AmountError};
use wxedge_core::pay::{PayError, UnifiedOrder};
use wxedge_core::{Fen, random};

use crate::api::{ApiError, ApiResult, Input, ok};
use crate::config::Config;
use crate::db::{self, Order};
use crate::limits::{self, Limit};
use crate::session::{self, Session};
use crate::{now_ms, wechat};

/// A prepay_id lives 2 hours; we hand one out only with 5 minutes to spare.
const PREPAY_REUSE_MS: u64 = (2 * 3600 - 5 * 60) * 1000;
const DEFAULT_BODY: &str = "wxedge order";

pub async fn handle(mut req: Request, env: &Env) -> ApiResult<Response> {
    let input = Input::read(&mut req).await?;
    let cfg = Config::from_env(env)?;
    let session = session::get(env, input.token()?).await?;
    let ip = limits::client_ip(&req);
    limits::check(env, Limit::PayPerIp, &ip).await?;
    limits::check(env, Limit::PayPerOpenid, &session.openid).await?;
    let money = match money::parse_amount(input.raw("money"), Fen::new(cfg.max_pay_fen)) {
        Ok(f) => Some(f),
        // A retry may leave the amount out: the order already has one.
        Err(AmountError::Missing) if input.opt_text("out_trade_no")?.is_some() => None,
        Err(e) => return Err(ApiError::param(e.to_string())),
    };
    let order = match input.opt_text("out_trade_no")? {
        Some(no) => existing(env, &session, no, money).await?,
        None => new_order(env, &req, &input, &session, money).await?,
    };
    if order.status == "PREPAID"
        && let (Some(prepay_id), Some(at)) = (&order.prepay_id, order.prepay_ms)
        && now_ms().saturating_sub(at) < PREPAY_REUSE_MS
    {
        return pay_params(&cfg, &order.out_trade_no, prepay_id);
    }
    let prepay_id = unified_order(env, &cfg, &session, &order).await?;
    if !db::mark_prepaid(env, &order.out_trade_no, &prepay_id, now_ms()).await? {
        // Paid or closed while we were asking WeChat (a notify or the reconciler won).
        return Err(ApiError::conflict(
            "the order was settled meanwhile; see GET /orders/{out_trade_no}",
        )
        .with_data(json!({ "out_trade_no": order.out_trade_no })));
    }
    pay_params(&cfg, &order.out_trade_no, &prepay_id)
}

async fn new_order(
    env: &Env,
    req: &Request,
    input: &Input,
    session: &Session,
    money: Option<Fen>,
) -> ApiResult<Order> {
    let total_fee = money.ok_or_else(|| ApiError::param(AmountError::Missing.to_string()))?;
    let merchant_id = input.opt_text("merchant_id")?.unwrap_or("default");
    let body = input.opt_text("body")?.unwrap_or(DEFAULT_BODY);
    if body.len() > 128 {
        return Err(ApiError::param(format!(
            "body is {} bytes; WeChat allows at most 128",
            body.len()
        )));
    }
    let now = now_ms();
    let order = Order {
        out_trade_no: random::out_trade_no().map_err(|e| ApiError::internal(e.to_string()))?,
        openid: session.openid.clone(),
        merchant_id: merchant_id.to_owned(),
        total_fee: total_fee.get(),
        body: body.to_owned(),
        spbill_create_ip: limits::client_ip(req),
        status: "CREATED".into(),
        prepay_id: None,
        prepay_ms: None,
        transaction_id: None,
        paid_ms: None,
        failure: None,
        withdrawal_id: None,
        created_ms: now,
        updated_ms: now,
    };
    if !db::insert_order(env, &order).await? {
        return Err(ApiError::not_found(format!("no merchant {merchant_id}")));
    }
    Ok(order)
}

/// The order a retry names: the caller's own, still payable, for the same amount.
async fn existing(env: &Env, session: &Session, no: &str, money: Option<Fen>) -> ApiResult<Order> {
    let order = crate::orders::owned(env, session, no).await?;
    if let Some(m) = money
        && m.get() != order.total_fee
    {
        return Err(ApiError::conflict(format!(
            "order {no} is for {} fen, not {}: leave money out to retry it, or place a new order",
            order.total_fee,
            m.get()
        )));
    }
    match order.status.as_str() {
        "CREATED" | "PREPAID" => Ok(order),
        "PAID" | "WITHDRAWN" => Err(ApiError::conflict(format!("order {no} is already paid"))),
        other => Err(ApiError::conflict(format!(
            "order {no} is {other}: place a new order"
        ))),
    }
}

/// unifiedorder for `order`, always with the fields it was created with, so a retry is
/// the same request to WeChat.
async fn unified_order(
    env: &Env,
    cfg: &Config,
    session: &Session,
    order: &Order,
) -> ApiResult<String> {
    let merchant = cfg.merchant();
    let request = UnifiedOrder {
        body: order.body.clone(),
        out_trade_no: order.out_trade_no.clone(),
        total_fee: Fen::new(order.total_fee),
        spbill_create_ip: order.spbill_create_ip.clone(),
        notify_url: cfg.notify_url(),
        trade_type: Default::default(),
        openid: Some(session.openid.clone()),
        attach: None,
        time_expire: None,
    };
    let nonce = random::nonce_str().map_err(|e| ApiError::internal(e.to_string()))?;
    let no = &order.out_trade_no;
    let retry = json!({ "out_trade_no": no });
    let xml = match merchant.unified_order_request(&request, &nonce) {
        Ok(xml) => xml,
        Err(e) => {
            db::mark_ended(env, no, "FAILED", &e.to_string(), now_ms()).await?;
            return Err(ApiError::internal(format!(
                "server misconfigured, the order cannot be placed: {e}"
            )));
        }
    };
    let answer = wechat::post_xml(&cfg.pay_url("unifiedorder"), &xml, cfg.wechat_timeout_ms)
        .await
        .map_err(|e| e.into_api("unifiedorder").with_data(retry.clone()))?;
    match merchant.parse_unified_order_response(&answer) {
        Ok(prepay) => Ok(prepay.prepay_id),
        Err(e) if e.is_transient() => Err(ApiError::unreachable(
            502,
            format!("WeChat is busy ({e}); nothing was charged: retry with this out_trade_no"),
        )
        .with_data(retry)),
        Err(PayError::Business { err_code, err_code_des }) => {
            let status = if err_code == "ORDERCLOSED" { "CLOSED" } else { "FAILED" };
            if err_code != "ORDERPAID" {
                db::mark_ended(env, no, status, &err_code, now_ms()).await?;
            }
            Err(ApiError::wechat(
                502,
                format!("WeChat Pay refused the order: {err_code} {err_code_des}"),
                json!({ "err_code": err_code, "err_code_des": err_code_des, "out_trade_no": no }),
            ))
        }
        Err(PayError::Communication { return_msg }) => {
            db::mark_ended(env, no, "FAILED", &return_msg, now_ms()).await?;
            Err(ApiError::wechat(
                502,
                format!("WeChat Pay refused the request: {return_msg}"),
                json!({ "return_msg": return_msg, "out_trade_no": no }),
            ))
        }
        // An answer we cannot trust (bad XML, bad sign, another merchant's): nothing is
        // known, so the order stays as it is for a retry or the reconciler.
        Err(e) => Err(ApiError::unreachable(
            502,
            format!("WeChat Pay's answer could not be verified ({e}); nothing was charged: retry with this out_trade_no"),
        )
        .with_data(retry)),
    }
}

fn pay_params(cfg: &Config, out_trade_no: &str, prepay_id: &str) -> ApiResult<Response> {
    let nonce = random::nonce_str().map_err(|e| ApiError::internal(e.to_string()))?;
    let p = cfg
        .merchant()
        .payment_params(prepay_id, (now_ms() / 1000) as i64, &nonce);
    ok(json!({
        "timeStamp": p.time_stamp,
        "nonceStr": p.nonce_str,
        "package": p.package,
        "signType": p.sign_type,
        "paySign": p.pay_sign,
        "out_trade_no": out_trade_no,
    }))
}
