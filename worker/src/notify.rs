//! `POST /notify/`: WeChat's payment notify, driven through wxedge-core's
//! [`flow::notify`]: read (verify with our key and *our configured* algorithm) → the order
//! → decide → one batch → WeChat's XML answer.
//!
//! A verified body is kept whole with its verdict; an unverified one keeps at most a
//! 512-byte prefix, its hash and the reason, and counts against the sender's per-IP limit
//! (over it, nothing is written). Storage failing means FAIL, so WeChat retries: nothing is
//! acknowledged that was not recorded.

use worker::{Env, Request, Response};
use wxedge_core::flow::notify::{self as flow, Expect, Read, Received};
use wxedge_core::flow::{Decision, MAX_ATTEMPTS};

use crate::api::{self, ApiError, ApiResult, read_body};
use crate::config::Config;
use crate::limits::{self, Limit};
use crate::{db, now_ms};

fn answer(reply: &flow::Reply) -> ApiResult<Response> {
    Ok(api::xml(reply.status, reply.body.clone())?)
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(e.to_string())
}

pub async fn handle(mut req: Request, env: &Env) -> ApiResult<Response> {
    let body = match read_body(&mut req).await {
        Ok(b) => b,
        Err(e) if e.code == 8 => return answer(&flow::too_large()),
        Err(e) => return Err(e),
    };
    let cfg = Config::from_env(env)?;
    let remote_ip = req.headers().get("CF-Connecting-IP").ok().flatten();
    let received = Received {
        body: &body,
        remote_ip: remote_ip.as_deref(),
        now_ms: now_ms(),
    };
    let merchant = cfg.merchant();
    let n = match flow::read(&received, &merchant.key, merchant.sign_type) {
        Read::Verified(n) => n,
        Read::Unverified(d) => {
            if !limits::allows(env, Limit::NotifyRejectedPerIp, &limits::client_ip(&req)).await {
                return answer(&flow::rate_limited());
            }
            return run(env, &d).await;
        }
    };
    let db = db::d1(env)?;
    let expect = Expect {
        appid: &cfg.appid,
        mch_id: &cfg.mch_id,
    };
    for _ in 0..MAX_ATTEMPTS {
        let order = db::order(&db, &n.out_trade_no).await?;
        let d = flow::decide(&n, order.as_ref(), expect, &received);
        if db::execute(&db, &d.batch().map_err(internal)?).await? {
            return answer(&d.reply);
        }
        // The order moved between our read and our write: decide again on what it is now.
    }
    answer(&flow::storage_failed())
}

async fn run(env: &Env, d: &Decision<flow::Reply>) -> ApiResult<Response> {
    let db = db::d1(env)?;
    db::execute(&db, &d.batch().map_err(internal)?).await?;
    answer(&d.reply)
}

/// A notify that failed for our own reasons (storage) gets FAIL, so WeChat retries it.
pub fn internal_failure(_: &ApiError) -> ApiResult<Response> {
    answer(&flow::storage_failed())
}
