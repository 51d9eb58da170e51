//! `POST /notify/`: WeChat's payment notify in either wire format, driven through
//! wxedge-core's [`flow::notify`]. The body's content tells the format
//! ([`Format::of`]): v2 XML is verified with our key and *our configured* algorithm, APIv3
//! JSON with the `Wechatpay-*` headers over the raw bytes received (never a
//! re-serialization), then decrypted with the APIv3 key. Both give the same `Notify`,
//! decided by the same [`flow::notify::decide`] against the order, in one guarded batch.
//!
//! A verified body is kept whole with its verdict; an unverified one keeps at most a
//! 512-byte prefix, its hash and the reason, and counts against the sender's per-IP limit
//! (over it, nothing is written). A format this deployment holds no key for is refused by
//! name. Storage failing means FAIL, so WeChat retries: nothing is acknowledged that was
//! not recorded. Each body is answered in its own format.

use worker::{Env, Request, Response};
use wxedge_core::flow::notify::{self as flow, Expect, Format, Read, Received};
use wxedge_core::flow::{Decision, MAX_ATTEMPTS};
use wxedge_core::v3::notify::from_flow;

use crate::api::{self, ApiError, ApiResult, read_body};
use crate::config::{Config, PayApi};
use crate::limits::{self, Limit};
use crate::v3::SignatureHeaders;
use crate::{db, now_ms, v3};

/// The reply in `format`: v2's XML, or APIv3's 204 / `{"code":"FAIL",…}`.
fn answer(format: Format, reply: &flow::Reply) -> ApiResult<Response> {
    match format {
        Format::V2Xml => Ok(api::xml(reply.status, reply.body.clone())?),
        Format::V3Json => {
            let r = from_flow(reply);
            Ok(api::json_body(r.status, r.body)?)
        }
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(e.to_string())
}

/// The format this deployment speaks (and answers a body in neither format with).
fn spoken(cfg: &Config) -> Format {
    match cfg.pay_api {
        PayApi::V2 => Format::V2Xml,
        PayApi::V3 => Format::V3Json,
    }
}

pub async fn handle(mut req: Request, env: &Env) -> ApiResult<Response> {
    let cfg = Config::from_env(env)?;
    let body = match read_body(&mut req).await {
        Ok(b) => b,
        Err(e) if e.code == 8 => return answer(spoken(&cfg), &flow::too_large()),
        Err(e) => return Err(e),
    };
    let remote_ip = req.headers().get("CF-Connecting-IP").ok().flatten();
    let received = Received {
        body: &body,
        remote_ip: remote_ip.as_deref(),
        now_ms: now_ms(),
    };
    let format = Format::of(&body);
    let read = match (format, &cfg.v3) {
        // A v2 key may stay configured beside APIv3 (orders placed before a switch).
        (Some(Format::V2Xml), _) if !cfg.pay_key.is_empty() => {
            let merchant = cfg.merchant();
            flow::read(&received, &merchant.key, merchant.sign_type)
        }
        (Some(Format::V3Json), Some(keys)) => {
            let headers = SignatureHeaders::of(req.headers());
            let verified = v3::verify(keys, &headers.borrow(), &body).await?;
            flow::read_v3(&received, verified.as_ref().copied(), &keys.api_v3_key)
        }
        _ => flow::unreadable(&received, spoken(&cfg)),
    };
    let format = format.unwrap_or_else(|| spoken(&cfg));
    let n = match read {
        Read::Verified(n) => n,
        Read::Unverified(d) => {
            if !limits::allows(env, Limit::NotifyRejectedPerIp, &limits::client_ip(&req)).await {
                return answer(format, &flow::rate_limited());
            }
            return run(env, format, &d).await;
        }
        Read::Refused(d) => return run(env, format, &d).await,
        Read::Refund(n) => return refund(env, &cfg, format, &n, &received).await,
    };
    let db = db::d1(env)?;
    let expect = Expect {
        appid: &cfg.appid,
        mch_id: &cfg.mch_id,
    };
    for _ in 0..MAX_ATTEMPTS {
        let order = db::order(&db, &n.out_trade_no).await?;
        let d = flow::decide_with(
            &n,
            order.as_ref(),
            expect,
            &received,
            &cfg.reconcile.settlement,
        );
        if db::execute(&db, &d.batch().map_err(internal)?).await? {
            return answer(format, &d.reply);
        }
        // The order moved between our read and our write: decide again on what it is now.
    }
    answer(format, &flow::storage_failed())
}

/// A verified refund notify: the refund it names (ours, or one made by hand) and its order,
/// decided by [`wxedge_core::flow::refund::after_notify`], decided again if either moved.
async fn refund(
    env: &Env,
    cfg: &Config,
    format: Format,
    n: &wxedge_core::flow::refund::Notice,
    received: &Received<'_>,
) -> ApiResult<Response> {
    let db = db::d1(env)?;
    for _ in 0..MAX_ATTEMPTS {
        let refund = crate::refunds::by_no(&db, &n.state.out_refund_no).await?;
        let order = db::order(&db, &n.state.out_trade_no).await?;
        let d = wxedge_core::flow::refund::after_notify(
            n,
            refund.as_ref(),
            order.as_ref(),
            &cfg.mch_id,
            received,
            now_ms(),
            &cfg.refund_policy(),
        );
        if db::execute(&db, &d.batch().map_err(internal)?).await? {
            return answer(format, &d.reply);
        }
    }
    answer(format, &flow::storage_failed())
}

async fn run(env: &Env, format: Format, d: &Decision<flow::Reply>) -> ApiResult<Response> {
    let db = db::d1(env)?;
    db::execute(&db, &d.batch().map_err(internal)?).await?;
    answer(format, &d.reply)
}

/// A notify that failed for our own reasons (storage, configuration) gets FAIL, so
/// WeChat retries it; in XML, since the format of a body we never read is unknown.
pub fn internal_failure(_: &ApiError) -> ApiResult<Response> {
    answer(Format::V2Xml, &flow::storage_failed())
}
