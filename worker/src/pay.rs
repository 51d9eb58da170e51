//! `POST /pay/`: drives wxedge-core's [`flow::pay`]: the order row (CREATED) →
//! unifiedorder → the decision on its answer → the five wx.requestPayment fields.
//!
//! Every rule (amount, body, reuse of a prepay_id, what each WeChat answer does to the
//! order) is the core's. This module reads the session and the row, calls WeChat, runs the
//! decided batch, decides again on the fresh row if its guard did not hold, and answers.

use serde_json::json;
use worker::{Env, Method, Request, Response};
use wxedge_core::flow::MAX_ATTEMPTS;
use wxedge_core::flow::pay::{self as flow, NewRequest, Next, Refusal, Reply};
use wxedge_core::money::{self, AmountError};
use wxedge_core::order::OrderRow;
use wxedge_core::pay::{PayError, Prepay, UnifiedOrder};
use wxedge_core::store::{self, Write};
use wxedge_core::v3::jsapi::{self, JsapiError, JsapiOrder};
use wxedge_core::{Fen, random};

use crate::api::{ApiError, ApiResult, Input, ok};
use crate::config::{Config, PayApi};
use crate::limits::{self, Limit};
use crate::session::{self, Session};
use crate::wechat::Upstream;
use crate::{db, now_ms, v3, wechat};

fn refused(r: Refusal) -> ApiError {
    match r {
        Refusal::Param(m) => ApiError::param(m),
        Refusal::NotFound(m) => ApiError::not_found(m),
        Refusal::Forbidden(m) => ApiError::forbidden(m),
        Refusal::Conflict(m) => ApiError::conflict(m),
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(e.to_string())
}

pub async fn handle(mut req: Request, env: &Env) -> ApiResult<Response> {
    let input = Input::read(&mut req).await?;
    let cfg = Config::from_env(env)?;
    let session = session::get(env, input.token()?).await?;
    let ip = limits::client_ip(&req);
    limits::check(env, Limit::PayPerIp, &ip).await?;
    limits::check(env, Limit::PayPerOpenid, &session.openid).await?;
    let retry_no = input.opt_text("out_trade_no")?;
    let money = match money::parse_amount(input.raw("money"), Fen::new(cfg.max_pay_fen)) {
        Ok(f) => Some(f),
        // A retry may leave the amount out: the order already has one.
        Err(AmountError::Missing) if retry_no.is_some() => None,
        Err(e) => return Err(ApiError::param(e.to_string())),
    };
    let db = db::d1(env)?;
    let (order, created_here) = match retry_no {
        Some(no) => (crate::orders::owned(&db, &session, no).await?, false),
        None => {
            let req = NewRequest {
                openid: &session.openid,
                money,
                merchant_id: input.opt_text("merchant_id")?,
                body: input.opt_text("body")?,
                client_ip: &ip,
            };
            let no = random::out_trade_no().map_err(internal)?;
            let write = flow::new_order(&req, no, now_ms(), &cfg.reconcile).map_err(refused)?;
            let Write::CreateOrder(new) = &write else {
                return Err(ApiError::internal(
                    "flow::pay::new_order did not create an order",
                ));
            };
            let row = new.row();
            let create = store::batch(std::slice::from_ref(&write)).map_err(internal)?;
            if !db::execute(&db, &create).await? {
                return Err(refused(flow::no_merchant(req.merchant_id)));
            }
            (row, true)
        }
    };
    let answer = match flow::retry(&order, &session.openid, money, now_ms(), &cfg.reconcile)
        .map_err(refused)?
    {
        Next::Reuse { prepay_id } => {
            return pay_params(&cfg, &order.out_trade_no, &prepay_id).await;
        }
        Next::UnifiedOrder => match cfg.pay_api {
            PayApi::V2 => {
                let nonce = random::nonce_str().map_err(internal)?;
                unified_order(&cfg, &session, &order, &nonce).await
            }
            PayApi::V3 => prepay_v3(&cfg, &session, &order).await?,
        },
    };
    let (answer, upstream) = match answer {
        Ok(a) => (Some(a), None),
        Err(u) => (None, Some(u)),
    };
    let mut row = order;
    for _ in 0..MAX_ATTEMPTS {
        let d = flow::after_unified_order(
            &row,
            answer.as_ref(),
            created_here,
            now_ms(),
            &cfg.reconcile,
        );
        if db::execute(&db, &d.batch().map_err(internal)?).await? {
            return reply(&cfg, &row.out_trade_no, d.reply, upstream).await;
        }
        // The row moved while we asked WeChat: decide again on what it is now.
        row = db::order(&db, &row.out_trade_no)
            .await?
            .ok_or_else(|| ApiError::internal("the order vanished"))?;
    }
    Err(
        ApiError::internal("the order is changing too fast; try again with this out_trade_no")
            .with_data(json!({ "out_trade_no": row.out_trade_no })),
    )
}

/// unifiedorder for `order`, always with the fields it was created with, so a retry is
/// the same request to WeChat. `Err`: no answer came (the kind, for the reply).
async fn unified_order(
    cfg: &Config,
    session: &Session,
    order: &OrderRow,
    nonce: &str,
) -> Result<Result<Prepay, PayError>, Upstream> {
    let merchant = cfg.merchant();
    let request = UnifiedOrder {
        body: order.body.clone(),
        out_trade_no: order.out_trade_no.clone(),
        total_fee: order.total_fee,
        spbill_create_ip: order.spbill_create_ip.clone(),
        notify_url: cfg.notify_url(),
        trade_type: Default::default(),
        openid: Some(session.openid.clone()),
        attach: None,
        time_expire: None,
    };
    let xml = match merchant.unified_order_request(&request, nonce) {
        Ok(xml) => xml,
        // Never sent: the decision treats it as WeChat's refusal of our request.
        Err(e) => return Ok(Err(e)),
    };
    let body = wechat::post_xml(&cfg.pay_url("unifiedorder"), &xml, cfg.wechat_timeout_ms).await?;
    Ok(merchant.parse_unified_order_response(&body))
}

async fn reply(
    cfg: &Config,
    no: &str,
    reply: Reply,
    upstream: Option<Upstream>,
) -> ApiResult<Response> {
    let retry = json!({ "out_trade_no": no });
    match reply {
        Reply::Pay { prepay_id } => pay_params(cfg, no, &prepay_id).await,
        Reply::Retry { reason } => Err(match upstream {
            Some(u) => u.into_api("unifiedorder"),
            None => ApiError::unreachable(
                502,
                format!("{reason}; nothing was charged: retry with this out_trade_no"),
            ),
        }
        .with_data(retry)),
        Reply::Refused {
            err_code,
            err_code_des,
            return_msg,
        } => Err(match (err_code, return_msg) {
            (Some(code), _) => ApiError::wechat(
                502,
                format!("WeChat Pay refused the order ({code}): see data.err_code_des"),
                json!({ "err_code": code, "err_code_des": err_code_des, "out_trade_no": no }),
            ),
            (None, Some(msg)) => ApiError::wechat(
                502,
                "WeChat Pay refused the request (return_code FAIL): see data.return_msg".to_owned(),
                json!({ "return_msg": msg, "out_trade_no": no }),
            ),
            (None, None) => ApiError::internal(format!(
                "server misconfigured, the order cannot be placed: {err_code_des}"
            ))
            .with_data(retry),
        }),
        Reply::Settled => Err(ApiError::conflict(
            "the order was settled meanwhile; see GET /orders/{out_trade_no}",
        )
        .with_data(retry)),
    }
}

/// JSAPI prepay (APIv3) for `order`, always with the fields it was created with. The
/// answer is verified, then read by the core into the flow's terms.
async fn prepay_v3(
    cfg: &Config,
    session: &Session,
    order: &OrderRow,
) -> ApiResult<Result<Result<Prepay, PayError>, Upstream>> {
    let notify_url = cfg.notify_url();
    let jsapi_order = JsapiOrder {
        appid: &cfg.appid,
        mchid: &cfg.mch_id,
        description: &order.body,
        out_trade_no: &order.out_trade_no,
        notify_url: &notify_url,
        total: order.total_fee,
        openid: &session.openid,
        attach: None,
        time_expire: None,
    };
    let body = match jsapi::prepay_body(&jsapi_order) {
        Ok(b) => b,
        // Never sent: the decision treats it as WeChat's refusal of our request.
        Err(JsapiError::Invalid(problems)) => return Ok(Ok(Err(PayError::Invalid(problems)))),
        Err(e) => return Err(internal(e)),
    };
    let answer = match v3::call(cfg, Method::Post, jsapi::PREPAY_PATH, &body).await? {
        Ok(a) => a,
        Err(u) => return Ok(Err(u)),
    };
    Ok(Ok(
        v3::judge(cfg.v3()?, &answer, jsapi::prepay_outcome).await?
    ))
}

/// The wx.requestPayment fields for `prepay_id`, signed as the deployment's API signs
/// them: v2 MD5/HMAC-SHA256 (`signType` as configured), v3 RSA with the merchant key.
async fn pay_params(cfg: &Config, out_trade_no: &str, prepay_id: &str) -> ApiResult<Response> {
    let nonce = random::nonce_str().map_err(internal)?;
    let timestamp = (now_ms() / 1000) as i64;
    let p = match cfg.pay_api {
        PayApi::V2 => cfg.merchant().payment_params(prepay_id, timestamp, &nonce),
        PayApi::V3 => {
            let package = jsapi::package(prepay_id);
            let message =
                jsapi::payment_message(&cfg.appid, &timestamp.to_string(), &nonce, &package);
            let signature = v3::sign(cfg.v3()?, &message).await?;
            jsapi::payment_params(&cfg.appid, prepay_id, timestamp, &nonce, &signature)
        }
    };
    ok(json!({
        "timeStamp": p.time_stamp,
        "nonceStr": p.nonce_str,
        "package": p.package,
        "signType": p.sign_type,
        "paySign": p.pay_sign,
        "out_trade_no": out_trade_no,
    }))
}
