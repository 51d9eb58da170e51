//! # wxedge-worker
//!
//! The Cloudflare Worker: routes requests, keeps sessions in KV and rows in D1, and
//! fetches from WeChat. Every WeChat rule (signing, XML, decryption, amounts, field
//! limits) comes from `wxedge-core`; this crate only moves bytes and stores rows.
//!
//! | module | route |
//! |---|---|
//! | [`login`] | `POST /login/`, `POST /logout/` |
//! | [`getinfo`] | `POST /getinfo/` |
//! | [`pay`] | `POST /pay/` |
//! | [`orders`] | `GET /orders/{out_trade_no}` |
//! | [`notify`] | `POST /notify/` |
//! | [`health`] | `GET /healthz` |
//! | [`ledger`] | `GET /merchant/balance`, `/merchant/withdrawals` (POST, GET, GET by id) |
//! | [`refunds`] | `/merchant/refunds` (POST, GET, GET by out_refund_no) |
//! | [`admin`] | `/admin/merchants`, `/admin/orders`, `/admin/attention`, `/admin/ledger`, `/admin/reconcile`, `/admin/reconciliation` |
//! | [`bills`] | the daily bill: the cron's fetch of yesterday's, the download gunzipped into the core's parser |
//! | [`reconcile`] | the cron: open orders past their grace period, asked with orderquery |
//!
//! Shared: [`api`] (envelope, body bound, inputs), [`auth`] (admin token, merchant keys),
//! [`limits`] (per-IP and per-openid rate limits),
//! [`config`], [`session`] (KV), [`db`] (D1), [`wechat`] (fetch with a deadline).

pub mod admin;
pub mod api;
pub mod auth;
pub mod bills;
pub mod config;
pub mod db;
pub mod getinfo;
pub mod health;
pub mod ledger;
pub mod limits;
pub mod login;
pub mod notify;
pub mod orders;
pub mod pay;
pub mod reconcile;
pub mod refunds;
pub mod session;
pub mod v3;
pub mod webcrypto;
pub mod wechat;

use serde_json::json;
use worker::{
    Context, Date, Env, Method, Request, Response, ScheduleContext, ScheduledEvent, console_log,
    event,
};

use crate::api::{ApiError, ApiResult};

pub fn now_ms() -> u64 {
    Date::now().as_millis()
}

/// Paths are matched without their trailing slash: the seed client calls `login/`, others
/// call `/login`.
fn route_of(path: &str) -> &str {
    match path.trim_end_matches('/') {
        "" => "/",
        p => p,
    }
}

async fn dispatch(req: Request, env: &Env, route: &str) -> ApiResult<Response> {
    // A misconfigured worker serves nothing, on every route (the notify in WeChat's XML),
    // so a deploy with placeholders fails loudly at its first request, not at a payment.
    if let Err(e) = config::Config::from_env(env) {
        return if route == "/notify" {
            notify::internal_failure(&e)
        } else {
            Err(e)
        };
    }
    let allow = |m: Method, what: &str| {
        if req.method() == m {
            Ok(())
        } else {
            Err(ApiError::method_not_allowed(format!(
                "{route} takes {what} only, not {}",
                req.method().as_ref()
            )))
        }
    };
    match route {
        "/login" => {
            allow(Method::Post, "POST")?;
            login::handle(req, env).await
        }
        "/logout" => {
            allow(Method::Post, "POST")?;
            login::logout(req, env).await
        }
        "/getinfo" => {
            allow(Method::Post, "POST")?;
            getinfo::handle(req, env).await
        }
        "/pay" => {
            allow(Method::Post, "POST")?;
            pay::handle(req, env).await
        }
        "/notify" => {
            allow(Method::Post, "POST")?;
            match notify::handle(req, env).await {
                Ok(r) => Ok(r),
                Err(e) => notify::internal_failure(&e),
            }
        }
        "/healthz" => {
            allow(Method::Get, "GET")?;
            health::handle(&req, env).await
        }
        r if r.starts_with("/orders/") => {
            allow(Method::Get, "GET")?;
            let no = r.trim_start_matches("/orders/").to_owned();
            orders::handle(req, env, &no).await
        }
        "/merchant/balance" => {
            allow(Method::Get, "GET")?;
            ledger::balance(req, env).await
        }
        "/merchant/refunds" => match req.method() {
            Method::Post => refunds::create(req, env).await,
            Method::Get => refunds::list(req, env).await,
            m => Err(ApiError::method_not_allowed(format!(
                "/merchant/refunds takes POST or GET, not {}",
                m.as_ref()
            ))),
        },
        r if r.starts_with("/merchant/refunds/") => {
            allow(Method::Get, "GET")?;
            let no = r.trim_start_matches("/merchant/refunds/").to_owned();
            refunds::get(req, env, &no).await
        }
        "/merchant/withdrawals" => match req.method() {
            Method::Post => ledger::withdraw(req, env).await,
            Method::Get => ledger::list(req, env).await,
            _ => Err(ApiError::method_not_allowed(
                "/merchant/withdrawals takes POST (withdraw) or GET (list)",
            )),
        },
        r if r.starts_with("/merchant/withdrawals/") => {
            allow(Method::Get, "GET")?;
            let id = r.trim_start_matches("/merchant/withdrawals/").to_owned();
            ledger::get(req, env, &id).await
        }
        "/admin/merchants" => {
            allow(Method::Post, "POST")?;
            admin::create_merchant(req, env).await
        }
        r if r.starts_with("/admin/merchants/") && r.ends_with("/api_key") => {
            allow(Method::Post, "POST")?;
            let id = r
                .trim_start_matches("/admin/merchants/")
                .trim_end_matches("/api_key")
                .to_owned();
            admin::rotate_key(req, env, &id).await
        }
        "/admin/orders" => {
            allow(Method::Get, "GET")?;
            admin::list_orders(req, env).await
        }
        "/admin/ledger" => {
            allow(Method::Get, "GET")?;
            admin::audit(req, env).await
        }
        "/admin/attention" => {
            allow(Method::Get, "GET")?;
            admin::attention(req, env).await
        }
        r if r.starts_with("/admin/attention/") && r.ends_with("/resolve") => {
            allow(Method::Post, "POST")?;
            let no = r
                .trim_start_matches("/admin/attention/")
                .trim_end_matches("/resolve")
                .to_owned();
            admin::resolve(req, env, &no).await
        }
        "/admin/reconcile" => {
            allow(Method::Post, "POST")?;
            admin::reconcile_now(req, env).await
        }
        "/admin/reconciliation" => match req.method() {
            Method::Get => admin::reconciliation(req, env).await,
            Method::Post => admin::fetch_bill(req, env).await,
            m => Err(ApiError::method_not_allowed(format!(
                "/admin/reconciliation takes GET (the report) or POST (fetch the bill now), not {}",
                m.as_ref()
            ))),
        },
        _ => Err(ApiError::not_found(format!(
            "no route {route}: see the README for /login/, /logout/, /getinfo/, /pay/, /orders/{{out_trade_no}}, /notify/, /healthz, /merchant/… and /admin/…"
        ))),
    }
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    let start = js_sys::Date::now();
    let method = req.method();
    let route = route_of(&req.path()).to_owned();
    let (response, code) = match dispatch(req, &env, &route).await {
        Ok(r) => (r, 0),
        Err(e) => (e.response()?, e.code),
    };
    // One structured line per request. Never the body, query or headers: they carry
    // tokens, codes and user data.
    let shown_route = if route.starts_with("/orders/") {
        "/orders/{out_trade_no}"
    } else if route.starts_with("/merchant/refunds/") {
        "/merchant/refunds/{out_refund_no}"
    } else if route.starts_with("/merchant/withdrawals/") {
        "/merchant/withdrawals/{id}"
    } else if route.starts_with("/admin/attention/") {
        "/admin/attention/{out_trade_no}/resolve"
    } else if route.starts_with("/admin/merchants/") {
        "/admin/merchants/{id}/api_key"
    } else {
        route.as_str()
    };
    console_log!(
        "{}",
        json!({
            "method": method.as_ref(),
            "route": shown_route,
            "status": response.status_code(),
            "code": code,
            "ms": js_sys::Date::now() - start,
        })
    );
    Ok(response)
}

/// The cron: one reconciler run, then yesterday's bill if it is due; one line each.
#[event(scheduled)]
async fn scheduled(event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    let start = js_sys::Date::now();
    let line = match reconcile::run(&env).await {
        Ok(summary) => json!({
            "cron": event.cron(),
            "route": "scheduled",
            "checked": summary["checked"],
            "orders": summary["orders"],
            "ms": js_sys::Date::now() - start,
        }),
        Err(e) => json!({ "cron": event.cron(), "route": "scheduled", "error": e.msg }),
    };
    console_log!("{}", line);
    let start = js_sys::Date::now();
    let bill = async {
        let cfg = config::Config::from_env(&env)?;
        bills::run_due(&db::d1(&env)?, &cfg).await
    };
    match bill.await {
        Ok(None) => {}
        Ok(Some(report)) => console_log!(
            "{}",
            json!({
                "cron": event.cron(),
                "route": "scheduled/bill",
                "bill_date": report["bill_date"],
                "fetched": report["fetched"],
                "differences": report["bill"]["differences"],
                "ms": js_sys::Date::now() - start,
            })
        ),
        Err(e) => console_log!(
            "{}",
            json!({ "cron": event.cron(), "route": "scheduled/bill", "error": e.msg })
        ),
    }
}
