//! The WeChat app's side (`wx.login`, `wx.getUserInfo`, `wx.requestPayment`) for scripts
//! and tests that stand in for a phone, and the `/sim/*` controls.
//!
//! Answers are JSON. Failures carry `errMsg` the way the app's callbacks do
//! (`requestPayment:fail …`) and a non-2xx status, so a script cannot mistake one for a
//! success.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery};
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use wxedge_core::crypt::{self, Watermark};
use wxedge_core::v3::jsapi;
use wxedge_core::v3::refund as v3refund;
use wxedge_core::v3::tradebill;
use wxedge_core::{Params, pay, random};

use crate::bills;
use crate::faults::{self, FaultRequest, Kind, Target};
use crate::refunds::{self, Ask, OrderRef};
use crate::state::{Api, Order, Refund, RefundSource, RefundStatus, State, TradeState, User};
use crate::{PREPAY_TTL_MS, SimState, notifier};

fn fail(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(json!({ "errMsg": msg.into() }))).into_response()
}

fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, Box<Response>> {
    serde_json::from_slice(body).map_err(|e| {
        Box::new(fail(
            StatusCode::BAD_REQUEST,
            format!("the body must be a JSON object: {e}"),
        ))
    })
}

fn valid_openid(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    appid: String,
    openid: Option<String>,
    unionid: Option<String>,
    #[serde(default)]
    high_risk: bool,
}

/// `POST /sim/login`: what `wx.login` gives the app, a code for jscode2session.
pub async fn login(sim: SimState, body: Bytes) -> Response {
    let req: LoginRequest = match parse(&body) {
        Ok(r) => r,
        Err(res) => return *res,
    };
    let Some(app) = sim.config.apps.get(&req.appid) else {
        return fail(
            StatusCode::NOT_FOUND,
            format!("login:fail appid {} is not configured in wxsim", req.appid),
        );
    };
    let openid = match req.openid {
        Some(o) if valid_openid(&o) => o,
        Some(_) => {
            return fail(
                StatusCode::BAD_REQUEST,
                "login:fail openid must be 1 to 64 characters of [A-Za-z0-9_-]",
            );
        }
        None => match random::alphanumeric(27) {
            Ok(s) => format!("o{s}"),
            Err(e) => return fail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        },
    };
    let (code, minted_unionid) = match (random::alphanumeric(32), random::alphanumeric(27)) {
        (Ok(c), Ok(u)) => (c, format!("u{u}")),
        _ => {
            return fail(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the system random source failed",
            );
        }
    };
    let now = sim.now_ms();
    let mut st = sim.state_mut();
    st.prune_codes(now, crate::CODE_TTL_MS);
    let user = st
        .users
        .entry(State::user_key(&req.appid, &openid))
        .or_insert_with(|| User {
            appid: req.appid.clone(),
            openid: openid.clone(),
            session_key: None,
            unionid: app.unionid.then_some(minted_unionid),
            high_risk: false,
            calls: Default::default(),
        });
    if let Some(u) = req.unionid {
        user.unionid = Some(u);
    }
    user.high_risk = req.high_risk;
    st.codes.insert(
        code.clone(),
        crate::state::Code {
            appid: req.appid,
            openid: openid.clone(),
            issued_ms: now,
            used: false,
        },
    );
    Json(json!({ "code": code, "openid": openid, "expires_in": crate::CODE_TTL_MS / 1000 }))
        .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserInfoRequest {
    appid: String,
    openid: String,
    profile: Option<Map<String, Value>>,
}

/// The profile a fresh simulated user has; a 4-byte emoji in the nickname keeps every
/// layer honest about UTF-8.
fn default_profile() -> Map<String, Value> {
    let v = json!({
        "nickName": "微信用户🐼",
        "gender": 1,
        "language": "zh_CN",
        "city": "Shenzhen",
        "province": "Guangdong",
        "country": "China",
        "avatarUrl": "https://thirdwx.qlogo.cn/mmopen/vi_32/wxsim/132"
    });
    v.as_object().cloned().unwrap_or_default()
}

/// `POST /sim/userinfo`: what `wx.getUserInfo` gives the app, encrypted under the user's
/// current session_key with WeChat's watermark.
pub async fn userinfo(sim: SimState, body: Bytes) -> Response {
    let req: UserInfoRequest = match parse(&body) {
        Ok(r) => r,
        Err(res) => return *res,
    };
    let user = sim
        .state()
        .users
        .get(&State::user_key(&req.appid, &req.openid))
        .cloned();
    let Some(user) = user else {
        return fail(
            StatusCode::NOT_FOUND,
            format!(
                "getUserInfo:fail no user {} of appid {}: call /sim/login first",
                req.openid, req.appid
            ),
        );
    };
    let Some(session_key) = user.session_key else {
        return fail(
            StatusCode::CONFLICT,
            "getUserInfo:fail the user has no session yet: exchange the /sim/login code at jscode2session first",
        );
    };
    let mut profile = default_profile();
    profile.extend(req.profile.unwrap_or_default());
    let raw_data = Value::Object(profile.clone()).to_string();
    let mut data = profile.clone();
    data.insert("openId".into(), json!(user.openid));
    if let Some(u) = &user.unionid {
        data.insert("unionId".into(), json!(u));
    }
    let watermark = Watermark {
        appid: req.appid,
        timestamp: sim.now_ms() / 1000,
    };
    let mut iv = [0u8; 16];
    if random::fill(&mut iv).is_err() {
        return fail(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the system random source failed",
        );
    }
    match crypt::encrypt_user_data(&session_key, &data, &watermark, iv) {
        Ok((encrypted_data, iv)) => Json(json!({
            "encryptedData": encrypted_data,
            "iv": iv,
            "rawData": raw_data,
            "signature": crypt::raw_data_signature(&raw_data, &session_key),
            "userInfo": profile,
            "errMsg": "getUserInfo:ok",
        }))
        .into_response(),
        Err(e) => fail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `POST /sim/pay`: `wx.requestPayment`. The app checks paySign over the five fields
/// with the merchant's key (as the real app has WeChat do), then the payment happens and
/// the notify is scheduled.
pub async fn pay(sim: SimState, body: Bytes) -> Response {
    let req: Map<String, Value> = match parse(&body) {
        Ok(r) => r,
        Err(res) => return *res,
    };
    let text = |k: &str| req.get(k).and_then(Value::as_str).map(str::to_owned);
    let mut params = Params::new();
    for k in ["timeStamp", "nonceStr", "package", "signType", "paySign"] {
        match req.get(k) {
            Some(Value::String(s)) => {
                params.insert(k.to_owned(), s.clone());
            }
            Some(_) => {
                return fail(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "requestPayment:fail {k} must be a string, as wx.requestPayment takes it"
                    ),
                );
            }
            None => {
                return fail(
                    StatusCode::BAD_REQUEST,
                    format!("requestPayment:fail {k} is missing"),
                );
            }
        }
    }
    if let Some(appid) = text("appId").or_else(|| text("appid")) {
        params.insert("appId".into(), appid);
    }
    let prepay_id = params["package"]
        .strip_prefix("prepay_id=")
        .unwrap_or_default()
        .to_owned();
    let Some(order) = ({
        let st = sim.state();
        st.prepays
            .get(&prepay_id)
            .and_then(|k| st.orders.get(k))
            .cloned()
    }) else {
        return fail(
            StatusCode::NOT_FOUND,
            "requestPayment:fail package names no prepay_id this wxsim issued (package must be prepay_id=<from unifiedorder>)",
        );
    };
    let Some(merchant) = sim.config.merchants.get(&order.mch_id) else {
        return fail(StatusCode::INTERNAL_SERVER_ERROR, "merchant vanished");
    };
    let checked = match order.api {
        Api::V2 => pay::verify_payment_params(&params, &order.appid, &merchant.key)
            .map_err(|e| e.to_string()),
        // A v3 prepay_id is paid with an RSA paySign under the merchant's API key.
        Api::V3 => match sim.config.v3.get(&order.mch_id) {
            None => Err("the merchant has no APIv3 key".to_owned()),
            Some(v3) => {
                let field = |k: &str| params.get(k).cloned().unwrap_or_default();
                let fields = pay::PaymentParams {
                    app_id: params
                        .get("appId")
                        .cloned()
                        .unwrap_or_else(|| order.appid.clone()),
                    time_stamp: field("timeStamp"),
                    nonce_str: field("nonceStr"),
                    package: field("package"),
                    sign_type: field("signType"),
                    pay_sign: field("paySign"),
                };
                if fields.app_id != order.appid {
                    Err("appId is not the order's appid".to_owned())
                } else if jsapi::verify_payment_params(&fields, &v3.public_key) {
                    Ok(())
                } else {
                    Err("paySign does not verify under the merchant's API key with signType RSA (appId\\ntimeStamp\\nnonceStr\\npackage\\n)".to_owned())
                }
            }
        },
    };
    if let Err(e) = checked {
        return fail(
            StatusCode::BAD_REQUEST,
            format!("requestPayment:fail 支付验证签名失败: {e}"),
        );
    }
    if let Some(openid) = text("openid")
        && order.openid.as_ref() != Some(&openid)
    {
        return fail(
            StatusCode::FORBIDDEN,
            "requestPayment:fail this order was placed for another user (openid)",
        );
    }
    if req.get("cancel").and_then(Value::as_bool) == Some(true) {
        return fail(StatusCode::BAD_REQUEST, "requestPayment:fail cancel");
    }
    let now = sim.now_ms();
    let key = Order::key(&order.mch_id, &order.out_trade_no);
    let (transaction_id, notify_faults) = {
        let mut st = sim.state_mut();
        if faults::take(&mut st.faults, Target::Pay, Some(&order.out_trade_no))
            .is_some_and(|f| f.kind == Kind::NotEnough)
        {
            return fail(
                StatusCode::PAYMENT_REQUIRED,
                "requestPayment:fail 余额不足 (NOTENOUGH): the order stays unpaid",
            );
        }
        let seq = st.take_seq();
        let Some(o) = st.orders.get_mut(&key) else {
            return fail(StatusCode::NOT_FOUND, "requestPayment:fail order vanished");
        };
        if o.prepay_id != prepay_id || now - o.prepay_ms >= PREPAY_TTL_MS {
            return fail(
                StatusCode::BAD_REQUEST,
                "requestPayment:fail prepay_id expired (valid 2 hours): call unifiedorder again",
            );
        }
        match o.state {
            TradeState::Success => {
                return fail(StatusCode::CONFLICT, "requestPayment:fail 该订单已支付");
            }
            TradeState::Closed => {
                return fail(StatusCode::CONFLICT, "requestPayment:fail 订单已关闭");
            }
            TradeState::Notpay => {}
        }
        let time_end = pay::wechat_time(now / 1000);
        let transaction_id = format!(
            "4200{seq:010}{}{:06}",
            &time_end[..8],
            now.rem_euclid(1_000_000)
        );
        o.state = TradeState::Success;
        o.transaction_id = Some(transaction_id.clone());
        o.time_end = Some(time_end);
        let out_trade_no = o.out_trade_no.clone();
        (
            transaction_id,
            faults::take_notify(&mut st.faults, Target::Notify, &out_trade_no),
        )
    };
    notifier::schedule(&sim.0, key, notify_faults);
    Json(json!({
        "errMsg": "requestPayment:ok",
        "out_trade_no": order.out_trade_no,
        "transaction_id": transaction_id,
    }))
    .into_response()
}

fn query_param(query: &Option<String>, key: &str) -> Option<String> {
    form_urlencoded::parse(query.as_deref().unwrap_or_default().as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefundByHand {
    out_trade_no: String,
    amount_fen: u64,
    out_refund_no: Option<String>,
    reason: Option<String>,
    /// What the refund ends as: SUCCESS (default), ABNORMAL or CLOSED.
    ends: Option<RefundStatus>,
}

fn refund_fail(status: StatusCode, code: &str, msg: impl Into<String>) -> Response {
    (
        status,
        Json(json!({ "errMsg": format!("refund:fail {}", msg.into()), "code": code })),
    )
        .into_response()
}

/// `POST /sim/refund {out_trade_no, amount_fen, out_refund_no?, reason?, ends?}`: a refund
/// made by hand in the merchant platform, under WeChat's rules; its REFUND.* notify goes to
/// the order's notify_url, about a refund the merchant never asked for.
pub async fn refund(sim: SimState, body: Bytes) -> Response {
    let req: RefundByHand = match parse(&body) {
        Ok(r) => r,
        Err(res) => return *res,
    };
    if req.amount_fen == 0 {
        return refund_fail(
            StatusCode::BAD_REQUEST,
            "PARAM_ERROR",
            "amount_fen must be at least 1",
        );
    }
    if req.ends == Some(RefundStatus::Processing) {
        return refund_fail(
            StatusCode::BAD_REQUEST,
            "PARAM_ERROR",
            "ends must be SUCCESS, ABNORMAL or CLOSED",
        );
    }
    let mch_id = sim
        .state()
        .orders
        .values()
        .find(|o| o.out_trade_no == req.out_trade_no)
        .map(|o| o.mch_id.clone());
    if let Some(m) = &mch_id
        && !sim.config.v3.contains_key(m)
    {
        return refund_fail(
            StatusCode::CONFLICT,
            "NO_AUTH",
            format!("merchant {m} has no APIv3 key: wxsim sends refund notifies in APIv3 only"),
        );
    }
    let out_refund_no = match req.out_refund_no {
        Some(no) if v3refund::is_valid_out_refund_no(&no) => no,
        Some(_) => {
            return refund_fail(
                StatusCode::BAD_REQUEST,
                "PARAM_ERROR",
                "out_refund_no must be 1 to 64 characters of [0-9A-Za-z_-|*@]",
            );
        }
        None => {
            let seq = sim.state_mut().take_seq();
            format!("MP{}{seq:08}", pay::wechat_time(sim.now_ms() / 1000))
        }
    };
    let ask = Ask {
        out_refund_no,
        refund_fee: req.amount_fen,
        total_fee: None,
        reason: req.reason,
        notify_url: None,
        source: RefundSource::MerchantPlatform,
        ends: req.ends.unwrap_or(RefundStatus::Success),
    };
    match refunds::refund(&sim.0, None, OrderRef::OutTradeNo(&req.out_trade_no), ask) {
        Ok((r, fresh)) => Json(json!({
            "errMsg": "refund:ok",
            "replayed": !fresh,
            "refund": refund_json(&r),
        }))
        .into_response(),
        Err(refusal) => refund_fail(
            StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::BAD_REQUEST),
            refusal.code(),
            refusal.message(),
        ),
    }
}

fn refund_json(r: &Refund) -> Value {
    json!({
        "out_refund_no": r.out_refund_no,
        "refund_id": r.refund_id,
        "out_trade_no": r.out_trade_no,
        "transaction_id": r.transaction_id,
        "refund_fee": r.refund_fee,
        "total_fee": r.total_fee,
        "status": r.status,
        "source": r.source,
        "reason": r.reason,
        "notify_url": r.notify_url,
        "create_time": r.create_time,
        "success_time": r.success_time,
        "notify": r.notify,
    })
}

/// `GET /sim/notifications[?out_trade_no=…][&out_refund_no=…]`: every delivery attempt,
/// payments' and refunds', oldest first.
pub async fn notifications(sim: SimState, RawQuery(query): RawQuery) -> Response {
    let want = query_param(&query, "out_trade_no");
    let want_refund = query_param(&query, "out_refund_no");
    let st = sim.state();
    let list: Vec<&crate::state::Delivery> = st
        .deliveries
        .iter()
        .filter(|d| want.as_ref().is_none_or(|w| *w == d.out_trade_no))
        .filter(|d| {
            want_refund
                .as_ref()
                .is_none_or(|w| d.out_refund_no.as_ref() == Some(w))
        })
        .collect();
    Json(json!({ "notifications": list })).into_response()
}

/// `GET /sim/orders/{out_trade_no}`: the order as WeChat holds it.
pub async fn order(sim: SimState, Path(out_trade_no): Path<String>) -> Response {
    let st = sim.state();
    match st.orders.values().find(|o| o.out_trade_no == out_trade_no) {
        Some(o) => {
            let mut refunds: Vec<&Refund> = st
                .refunds
                .values()
                .filter(|r| r.mch_id == o.mch_id && r.out_trade_no == o.out_trade_no)
                .collect();
            refunds.sort_by_key(|r| (r.created_ms, r.refund_id.clone()));
            // What has left the merchant: every refund but the CLOSED ones.
            let refunded_fee: u64 = refunds
                .iter()
                .filter(|r| r.status != RefundStatus::Closed)
                .map(|r| r.refund_fee)
                .sum();
            Json(json!({
                "api": o.api,
                "appid": o.appid,
                "mch_id": o.mch_id,
                "out_trade_no": o.out_trade_no,
                "total_fee": o.total_fee,
                "trade_state": o.state.as_str(),
                "trade_type": o.trade_type,
                "sign_type": o.sign_type,
                "openid": o.openid,
                "notify_url": o.notify_url,
                "prepay_id": o.prepay_id,
                "transaction_id": o.transaction_id,
                "time_end": o.time_end,
                "notify": o.notify,
                "refunded_fee": refunded_fee,
                "refunds": refunds.iter().map(|r| refund_json(r)).collect::<Vec<_>>(),
            }))
            .into_response()
        }
        None => fail(
            StatusCode::NOT_FOUND,
            format!("no order {out_trade_no}: unifiedorder never saw it"),
        ),
    }
}

/// `POST /sim/faults`: inject a failure for the next N matching calls.
pub async fn add_fault(sim: SimState, body: Bytes) -> Response {
    let req: FaultRequest = match parse(&body) {
        Ok(r) => r,
        Err(res) => return *res,
    };
    if req.kind == Kind::RotatedKey && sim.config.rotated_key.is_none() {
        return fail(
            StatusCode::BAD_REQUEST,
            "rotated_key needs a second WeChat key: set WXSIM_ROTATED_PRIVATE_KEY in .dev.vars (scripts/dev writes one)",
        );
    }
    let mut st = sim.state_mut();
    let id = st.take_seq();
    match req.into_fault(id) {
        Ok(fault) => {
            st.faults.push(fault.clone());
            (StatusCode::CREATED, Json(json!(fault))).into_response()
        }
        Err(msg) => fail(StatusCode::BAD_REQUEST, msg),
    }
}

/// `GET /sim/faults`: the faults not used up yet.
pub async fn list_faults(sim: SimState) -> Response {
    Json(json!({ "faults": sim.state().faults })).into_response()
}

/// `DELETE /sim/faults`: drop every fault not used up yet.
pub async fn clear_faults(sim: SimState) -> Response {
    let dropped = std::mem::take(&mut sim.state_mut().faults).len();
    Json(json!({ "dropped": dropped })).into_response()
}

/// The merchant a `/sim/bill*` call means: the one named, or the only one configured.
fn bill_merchant(sim: &crate::Sim, named: Option<String>) -> Result<String, Box<Response>> {
    match named {
        Some(m) if sim.config.merchants.contains_key(&m) => Ok(m),
        Some(m) => Err(Box::new(fail(
            StatusCode::NOT_FOUND,
            format!("merchant {m} is not configured in wxsim"),
        ))),
        None if sim.config.merchants.len() == 1 => Ok(sim
            .config
            .merchants
            .keys()
            .next()
            .cloned()
            .unwrap_or_default()),
        None => Err(Box::new(fail(
            StatusCode::BAD_REQUEST,
            format!(
                "name the merchant (mch_id): wxsim has {:?}",
                sim.config.merchants.keys().collect::<Vec<_>>()
            ),
        ))),
    }
}

/// `GET /sim/bill?date=YYYY-MM-DD[&mch_id=…]`: the ALL bill of that day as WeChat would
/// make it now, as plain text (for people and scripts; no fault is used up, no date
/// range applies). 404 when the day had no trade.
pub async fn bill(sim: SimState, RawQuery(query): RawQuery) -> Response {
    let Some(date) = query_param(&query, "date").filter(|d| tradebill::is_bill_date(d)) else {
        return fail(StatusCode::BAD_REQUEST, "date=YYYY-MM-DD is required");
    };
    let mch_id = match bill_merchant(&sim, query_param(&query, "mch_id")) {
        Ok(m) => m,
        Err(res) => return *res,
    };
    match bills::make(&sim, &mch_id, &date, None) {
        Ok(Some(csv)) => ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv).into_response(),
        Ok(None) => fail(
            StatusCode::NOT_FOUND,
            format!(
                "no trade on {date} for {mch_id}: WeChat makes no bill (NO_STATEMENT_EXIST, 20002)"
            ),
        ),
        Err(e) => fail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PaddingRequest {
    mch_id: Option<String>,
    date: String,
    rows: u64,
}

/// `POST /sim/bill-padding {"mch_id"?, "date": "YYYY-MM-DD", "rows": N}`: that day's bill
/// gets N synthetic payments (`PAD…` out_trade_nos, 0.01 to 99.99 yuan) after its real
/// rows, to benchmark reading a big bill. Only the bill: no order exists for them. Sets the
/// count (a second call replaces it; 0 removes it).
pub async fn bill_padding(sim: SimState, body: Bytes) -> Response {
    let req: PaddingRequest = match parse(&body) {
        Ok(r) => r,
        Err(res) => return *res,
    };
    if !tradebill::is_bill_date(&req.date) {
        return fail(StatusCode::BAD_REQUEST, "date must be YYYY-MM-DD");
    }
    if req.rows > bills::MAX_PADDING_ROWS {
        return fail(
            StatusCode::BAD_REQUEST,
            format!("rows must be at most {}", bills::MAX_PADDING_ROWS),
        );
    }
    let mch_id = match bill_merchant(&sim, req.mch_id) {
        Ok(m) => m,
        Err(res) => return *res,
    };
    let key = bills::padding_key(&mch_id, &req.date);
    let mut st = sim.state_mut();
    if req.rows == 0 {
        st.bill_padding.remove(&key);
    } else {
        st.bill_padding.insert(key, req.rows);
    }
    Json(json!({ "mch_id": mch_id, "date": req.date, "rows": req.rows })).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockRequest {
    advance_secs: i64,
}

/// `POST /sim/clock {"advance_secs": N}`: moves simulated time forward, to expire codes
/// (5 minutes) and prepay_ids (2 hours) without waiting.
pub async fn advance_clock(sim: SimState, body: Bytes) -> Response {
    let req: ClockRequest = match parse(&body) {
        Ok(r) => r,
        Err(res) => return *res,
    };
    if req.advance_secs < 0 {
        return fail(
            StatusCode::BAD_REQUEST,
            "advance_secs must be ≥ 0: time does not go back",
        );
    }
    let offset = sim.advance_clock(req.advance_secs.saturating_mul(1000));
    Json(json!({ "offset_ms": offset, "now_ms": sim.now_ms() })).into_response()
}

/// `POST /sim/reset`: forget every code, user, order, delivery and fault.
pub async fn reset(sim: SimState) -> Response {
    crate::reset(&sim);
    Json(json!({ "ok": true })).into_response()
}

pub async fn healthz(sim: SimState) -> Response {
    let (users, orders) = {
        let st = sim.state();
        (st.users.len(), st.orders.len())
    };
    Json(json!({
        "users": users,
        "orders": orders,
        "ok": true,
        "service": "wxsim",
        "version": env!("CARGO_PKG_VERSION"),
        "apps": sim.config.apps.keys().collect::<Vec<_>>(),
        "merchants": sim.config.merchants.keys().collect::<Vec<_>>(),
        "time_scale": sim.options.time_scale,
    }))
    .into_response()
}

pub async fn not_found(method: Method, uri: Uri) -> Response {
    fail(
        StatusCode::NOT_FOUND,
        format!(
            "wxsim has no {method} {}: see `wxsim --help` for its endpoints",
            uri.path()
        ),
    )
}
