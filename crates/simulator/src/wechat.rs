//! WeChat's server endpoints: `jscode2session` (JSON) and the Pay v2 calls (XML), the
//! daily bill (`downloadbill`) among them.
//!
//! Each behaves as WeChat documents it, errors included: a code is good once, for five
//! minutes, for the appid it was made for; a request whose sign does not verify is
//! refused with 签名错误 before anything else is looked at; the same out_trade_no with
//! the same parameters gives the same prepay_id.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::RawQuery;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use wxedge_core::answer::{self, BillRefusal, BillType, Refusal};
use wxedge_core::pay::{self, Merchant};
use wxedge_core::{Params, crypt, random};

use crate::bills;
use crate::faults::{self, Kind, Target};
use crate::state::{Api, Order, State, TradeState};
use crate::{CODE_TTL_MS, PREPAY_TTL_MS, RATE_LIMIT_CALLS, RATE_LIMIT_WINDOW_MS, Sim, SimState};

/// WeChat answers jscode2session as JSON labelled `text/plain`.
fn wechat_json(v: serde_json::Value) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        v.to_string(),
    )
        .into_response()
}

fn errcode(sim: &Sim, code: i64, msg: &str) -> Response {
    let rid = format!("{:x}-{:x}", sim.now_ms() / 1000, sim.state().next_seq);
    wechat_json(json!({ "errcode": code, "errmsg": format!("{msg}, rid: {rid}") }))
}

fn xml_response(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], body).into_response()
}

/// The fault-injected answers every WeChat endpoint can give.
pub(crate) async fn transport_fault(fault: &faults::Fault) -> Option<Response> {
    match fault.kind {
        Kind::Http500 => {
            Some((StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response())
        }
        Kind::Timeout => {
            tokio::time::sleep(Duration::from_millis(fault.delay_ms)).await;
            Some((StatusCode::GATEWAY_TIMEOUT, "Gateway Timeout").into_response())
        }
        _ => None,
    }
}

/// `GET /sns/jscode2session`: a wx.login code → openid + a fresh session_key.
pub async fn jscode2session(sim: SimState, RawQuery(query): RawQuery) -> Response {
    let sim = sim.0;
    let q: Params = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect();
    let arg = |k: &str| q.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let Some(appid) = arg("appid") else {
        return errcode(&sim, 41002, "appid missing");
    };
    let Some(secret) = arg("secret") else {
        return errcode(&sim, 41004, "appsecret missing");
    };
    let Some(js_code) = arg("js_code") else {
        return errcode(&sim, 41008, "missing code");
    };
    if arg("grant_type") != Some("authorization_code") {
        return errcode(&sim, 40002, "invalid grant_type: use authorization_code");
    }
    let Some(app) = sim.config.apps.get(appid) else {
        return errcode(&sim, 40013, "invalid appid");
    };
    if app.secret != secret {
        return errcode(&sim, 40125, "invalid appsecret");
    }
    let fault = faults::take(&mut sim.state_mut().faults, Target::Jscode2session, None);
    if let Some(fault) = fault {
        if let Some(res) = transport_fault(&fault).await {
            return res;
        }
        return errcode(&sim, -1, "system error");
    }
    let now = sim.now_ms();
    let session_key = match crypt::new_session_key() {
        Ok(k) => k,
        Err(_) => return errcode(&sim, -1, "system error"),
    };
    // The lock is released at the end of this statement, before `errcode` reads the state.
    let outcome = exchange(&mut sim.state_mut(), appid, js_code, now, session_key);
    match outcome {
        Ok(answer) => wechat_json(answer),
        Err((code, msg)) => errcode(&sim, code, msg),
    }
}

/// The code → session exchange itself, under the state lock: WeChat's checks in its
/// order, then the code spent and the new session_key issued. `Err` is (errcode, errmsg).
fn exchange(
    st: &mut State,
    appid: &str,
    js_code: &str,
    now: i64,
    session_key: String,
) -> Result<serde_json::Value, (i64, &'static str)> {
    const INVALID: (i64, &str) = (40029, "invalid code");
    let code = st.codes.get(js_code).cloned().ok_or(INVALID)?;
    if code.appid != appid || now - code.issued_ms > CODE_TTL_MS {
        return Err(INVALID);
    }
    if code.used {
        return Err((40163, "code been used"));
    }
    let user = st
        .users
        .get_mut(&State::user_key(appid, &code.openid))
        .ok_or(INVALID)?;
    if user.high_risk {
        return Err((40226, "invalid login: high risk user"));
    }
    while user
        .calls
        .front()
        .is_some_and(|&t| now - t >= RATE_LIMIT_WINDOW_MS)
    {
        user.calls.pop_front();
    }
    if user.calls.len() >= RATE_LIMIT_CALLS {
        return Err((45011, "api minute-quota reach limit, retry next minute"));
    }
    user.calls.push_back(now);
    let mut answer = json!({ "session_key": session_key, "openid": user.openid });
    if let Some(unionid) = &user.unionid {
        answer["unionid"] = json!(unionid);
    }
    user.session_key = Some(session_key);
    if let Some(c) = st.codes.get_mut(js_code) {
        c.used = true;
    }
    Ok(answer)
}

/// A business outcome: the fields of a success, or WeChat's err_code and its text.
type Outcome = Result<Params, (&'static str, String)>;

/// Finds the merchant a request names, as WeChat checks it before the sign.
fn merchant_of(sim: &Sim, params: &Params) -> Result<Merchant, Refusal> {
    let get = |k: &str| params.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let mch_id = get("mch_id").ok_or_else(|| Refusal::new("LACK_PARAMS", "缺少参数mch_id"))?;
    let appid = get("appid").ok_or_else(|| Refusal::new("LACK_PARAMS", "缺少参数appid"))?;
    let merchant = sim
        .config
        .merchants
        .get(mch_id)
        .ok_or_else(|| Refusal::new("MCHID_NOT_EXIST", "mch_id参数错误: 商户号不存在"))?;
    if merchant.appid != appid {
        return Err(Refusal::new("APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配"));
    }
    Ok(merchant.clone())
}

/// The frame of every Pay call: faults, reading and verifying the request, the answer
/// signed with the request's own algorithm.
async fn pay_call(
    sim: Arc<Sim>,
    target: Target,
    body: Bytes,
    act: fn(&Sim, &Merchant, &Params) -> Outcome,
) -> Response {
    // A fault applies even to an unreadable request: the wire fails before WeChat reads.
    let parsed = answer::parse_request(&body);
    let out_trade_no = parsed
        .as_ref()
        .ok()
        .and_then(|p| p.get("out_trade_no").cloned());
    let fault = faults::take(&mut sim.state_mut().faults, target, out_trade_no.as_deref());
    if let Some(f) = &fault
        && let Some(res) = transport_fault(f).await
    {
        return res;
    }
    let params = match parsed {
        Ok(p) => p,
        Err(refusal) => return xml_response(refusal.to_xml()),
    };
    let mut merchant = None;
    let sign_type = match answer::verify_request(&params, |params| {
        let m = merchant_of(&sim, params)?;
        let key = m.key.clone();
        merchant = Some(m);
        Ok(key)
    }) {
        Ok(st) => st,
        Err(refusal) => return xml_response(refusal.to_xml()),
    };
    let Some(mut merchant) = merchant else {
        return xml_response(Refusal::new("SYSTEMERROR", "系统错误").to_xml());
    };
    merchant.sign_type = sign_type;
    let injected = fault.as_ref().and_then(|f| f.err_code.clone());
    let outcome = match fault.as_ref().map(|f| f.kind) {
        Some(Kind::SystemError) => Err(("SYSTEMERROR", "系统超时".to_owned())),
        Some(Kind::ErrCode) => Err(("", "injected by /sim/faults".to_owned())),
        // SUCCESS, and the order stays as it was.
        Some(Kind::Ignored) => Ok(Params::new()),
        _ => act(&sim, &merchant, &params),
    };
    // An orderquery that reports another state than the order's own (which stays).
    let outcome = match (
        outcome,
        fault.as_ref().and_then(|f| f.trade_state.as_deref()),
    ) {
        (Ok(mut fields), Some(ts)) => {
            for k in [
                "transaction_id",
                "time_end",
                "cash_fee",
                "bank_type",
                "is_subscribe",
            ] {
                fields.remove(k);
            }
            fields.insert("trade_state".into(), ts.to_owned());
            fields.insert("trade_state_desc".into(), ts.to_owned());
            Ok(fields)
        }
        (other, _) => other,
    };
    let outcome = match &outcome {
        Ok(fields) => Ok(fields.clone()),
        Err((code, des)) => Err((injected.as_deref().unwrap_or(code), des.as_str())),
    };
    match answer::signed(&merchant, outcome) {
        Ok(xml) => xml_response(xml),
        Err(_) => xml_response(Refusal::new("SYSTEMERROR", "系统错误").to_xml()),
    }
}

pub async fn unifiedorder(sim: SimState, body: Bytes) -> Response {
    pay_call(sim.0, Target::Unifiedorder, body, unified_order).await
}

pub async fn orderquery(sim: SimState, body: Bytes) -> Response {
    pay_call(sim.0, Target::Orderquery, body, order_query).await
}

pub async fn closeorder(sim: SimState, body: Bytes) -> Response {
    pay_call(sim.0, Target::Closeorder, body, close_order).await
}

/// The fields that make two unifiedorder calls "the same order": everything but the
/// per-request nonce, the sign and its algorithm.
fn order_fields(params: &Params) -> Params {
    params
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "sign" | "sign_type" | "nonce_str"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

pub(crate) fn prepay_id(now_ms: i64) -> Result<String, (&'static str, String)> {
    let tail = random::alphanumeric(20)
        .map_err(|e| ("SYSTEMERROR", e.to_string()))?
        .to_ascii_lowercase();
    Ok(format!("wx{}{tail}", pay::wechat_time(now_ms / 1000)))
}

fn unified_order(sim: &Sim, merchant: &Merchant, params: &Params) -> Outcome {
    let problems = pay::validate_unified_order(params);
    if !problems.is_empty() {
        let des = problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        return Err(("PARAM_ERROR", des));
    }
    let get = |k: &str| params.get(k).filter(|v| !v.is_empty()).cloned();
    let out_trade_no = get("out_trade_no").unwrap_or_default();
    let total_fee: u64 = get("total_fee")
        .and_then(|v| v.parse().ok())
        .ok_or(("PARAM_ERROR", "total_fee is invalid".to_owned()))?;
    let trade_type = get("trade_type").unwrap_or_default();
    let placed = place_order(
        sim,
        NewOrder {
            api: Api::V2,
            appid: merchant.appid.clone(),
            mch_id: merchant.mch_id.clone(),
            out_trade_no,
            total_fee,
            openid: get("openid"),
            notify_url: get("notify_url").unwrap_or_default(),
            attach: get("attach"),
            trade_type: trade_type.clone(),
            sign_type: merchant.sign_type.as_str().to_owned(),
            fields: order_fields(params),
        },
    );
    let prepay = placed.map_err(|refusal| match refusal {
        PlaceRefusal::UnknownUser(msg) => ("PARAM_ERROR", msg),
        PlaceRefusal::Paid => ("ORDERPAID", "商户订单已支付".into()),
        PlaceRefusal::Closed => ("ORDERCLOSED", "订单已关闭".into()),
        PlaceRefusal::OtherApp => ("OUT_TRADE_NO_USED", "商户订单号重复".into()),
        PlaceRefusal::Changed => (
            "INVALID_REQUEST",
            "201 商户订单号重复: an order with this out_trade_no exists with other parameters"
                .into(),
        ),
        PlaceRefusal::System(msg) => ("SYSTEMERROR", msg),
    })?;
    let mut out = Params::new();
    if trade_type == "NATIVE" {
        out.insert(
            "code_url".into(),
            format!(
                "weixin://wxpay/bizpayurl/up?pr={}",
                &prepay[prepay.len() - 8..]
            ),
        );
    }
    out.insert("prepay_id".into(), prepay);
    out.insert("trade_type".into(), trade_type);
    Ok(out)
}

/// What a prepay asks for, in either API: v2's unifiedorder and v3's jsapi share one
/// order store, so `/sim/pay`, `/sim/orders` and both queries see every order.
pub(crate) struct NewOrder {
    pub api: Api,
    pub appid: String,
    pub mch_id: String,
    pub out_trade_no: String,
    pub total_fee: u64,
    pub openid: Option<String>,
    pub notify_url: String,
    pub attach: Option<String>,
    pub trade_type: String,
    pub sign_type: String,
    /// The business fields: a second prepay for the same out_trade_no must repeat them.
    pub fields: Params,
}

/// Why a prepay is refused; each API words it its own way.
pub(crate) enum PlaceRefusal {
    UnknownUser(String),
    Paid,
    Closed,
    /// The out_trade_no is another app's order.
    OtherApp,
    /// The same out_trade_no with other parameters.
    Changed,
    System(String),
}

/// Places (or re-places) an order: the same out_trade_no with the same parameters gives
/// the same prepay_id for 2 hours, then a fresh one.
pub(crate) fn place_order(sim: &Sim, new: NewOrder) -> Result<String, PlaceRefusal> {
    let now = sim.now_ms();
    let fresh = || prepay_id(now).map_err(|(_, e)| PlaceRefusal::System(e));
    let mut st = sim.state_mut();
    if let Some(openid) = &new.openid
        && !st.users.contains_key(&State::user_key(&new.appid, openid))
    {
        return Err(PlaceRefusal::UnknownUser(format!(
            "openid {openid} is not a user of appid {} (log the user in with /sim/login and jscode2session first)",
            new.appid
        )));
    }
    let key = Order::key(&new.mch_id, &new.out_trade_no);
    if let Some(order) = st.orders.get_mut(&key) {
        match order.state {
            TradeState::Success => return Err(PlaceRefusal::Paid),
            TradeState::Closed => return Err(PlaceRefusal::Closed),
            TradeState::Notpay => {}
        }
        if order.appid != new.appid {
            return Err(PlaceRefusal::OtherApp);
        }
        if order.fields != new.fields || order.api != new.api {
            return Err(PlaceRefusal::Changed);
        }
        if now - order.prepay_ms < PREPAY_TTL_MS {
            return Ok(order.prepay_id.clone());
        }
        let new_prepay = fresh()?;
        order.prepay_id = new_prepay.clone();
        order.prepay_ms = now;
        st.prepays.insert(new_prepay.clone(), key);
        return Ok(new_prepay);
    }
    let new_prepay = fresh()?;
    let order = Order {
        api: new.api,
        appid: new.appid,
        mch_id: new.mch_id,
        out_trade_no: new.out_trade_no,
        total_fee: new.total_fee,
        openid: new.openid,
        notify_url: new.notify_url,
        attach: new.attach,
        trade_type: new.trade_type,
        sign_type: new.sign_type,
        fields: new.fields,
        prepay_id: new_prepay.clone(),
        prepay_ms: now,
        created_ms: now,
        state: TradeState::Notpay,
        transaction_id: None,
        time_end: None,
        notify: Default::default(),
    };
    st.orders.insert(key.clone(), order);
    st.prepays.insert(new_prepay.clone(), key);
    Ok(new_prepay)
}

fn find_order(
    st: &State,
    merchant: &Merchant,
    params: &Params,
) -> Result<Order, (&'static str, String)> {
    let get = |k: &str| params.get(k).filter(|v| !v.is_empty());
    let found = if let Some(no) = get("out_trade_no") {
        st.orders.get(&Order::key(&merchant.mch_id, no))
    } else if let Some(tid) = get("transaction_id") {
        st.orders
            .values()
            .find(|o| o.mch_id == merchant.mch_id && o.transaction_id.as_ref() == Some(tid))
    } else {
        return Err((
            "PARAM_ERROR",
            "out_trade_no or transaction_id is required".into(),
        ));
    };
    found
        .cloned()
        .ok_or(("ORDERNOTEXIST", "此交易订单号不存在".into()))
}

fn order_query(sim: &Sim, merchant: &Merchant, params: &Params) -> Outcome {
    let order = find_order(&sim.state(), merchant, params)?;
    let mut out = Params::new();
    let mut put = |k: &str, v: &str| {
        out.insert(k.to_owned(), v.to_owned());
    };
    put("out_trade_no", &order.out_trade_no);
    put("trade_state", order.state.as_str());
    put(
        "trade_state_desc",
        match order.state {
            TradeState::Notpay => "订单未支付",
            TradeState::Success => "支付成功",
            TradeState::Closed => "订单已关闭",
        },
    );
    put("total_fee", &order.total_fee.to_string());
    put("fee_type", "CNY");
    put("trade_type", &order.trade_type);
    if let Some(openid) = &order.openid {
        put("openid", openid);
    }
    if let Some(attach) = &order.attach {
        put("attach", attach);
    }
    if order.state == TradeState::Success {
        put("cash_fee", &order.total_fee.to_string());
        put("bank_type", "OTHERS");
        put("is_subscribe", "N");
        put(
            "transaction_id",
            order.transaction_id.as_deref().unwrap_or_default(),
        );
        put("time_end", order.time_end.as_deref().unwrap_or_default());
    }
    Ok(out)
}

fn close_order(sim: &Sim, merchant: &Merchant, params: &Params) -> Outcome {
    let mut st = sim.state_mut();
    let order = find_order(&st, merchant, params)?;
    match order.state {
        TradeState::Success => Err(("ORDERPAID", "订单已支付，不能发起关单".into())),
        TradeState::Closed => Err(("ORDERCLOSED", "订单已关闭，无法重复关闭".into())),
        TradeState::Notpay => {
            let key = Order::key(&order.mch_id, &order.out_trade_no);
            if let Some(o) = st.orders.get_mut(&key) {
                o.state = TradeState::Closed;
            }
            Ok(Params::new())
        }
    }
}

/// `POST /pay/downloadbill`: v2's bill, in WeChat's order: faults (the wire fails first),
/// the XML, the merchant and its sign (MD5 or HMAC-SHA256 as the request's `sign_type`
/// says), the parameters, the day; then the bill itself as the body (gzipped for
/// `tar_type=GZIP`), or `return_code FAIL` with `error_code`, never signed. The bill's
/// rules are [`crate::bills`]'.
pub async fn downloadbill(sim: SimState, body: Bytes) -> Response {
    let sim = sim.0;
    let parsed = answer::parse_request(&body);
    let fault = faults::take(&mut sim.state_mut().faults, Target::Bill, None);
    if let Some(f) = &fault
        && let Some(res) = transport_fault(f).await
    {
        return res;
    }
    let refused = |r: BillRefusal| xml_response(r.to_xml());
    let params = match parsed {
        Ok(p) => p,
        Err(r) => return refused(BillRefusal::from_refusal(&r)),
    };
    if let Err(r) = answer::verify_request(&params, |p| merchant_of(&sim, p).map(|m| m.key)) {
        return refused(BillRefusal::from_refusal(&r));
    }
    if fault.as_ref().is_some_and(|f| f.kind == Kind::SystemError) {
        return refused(BillRefusal::system_error());
    }
    let ask = match answer::read_download_bill(&params) {
        Ok(a) => a,
        Err(r) => return refused(r),
    };
    if ask.bill_type != BillType::All {
        return refused(BillRefusal::param(
            "invalid bill_type: wxsim makes only the ALL bill",
        ));
    }
    if let Err(e) = wxedge_core::bill::judge_bill_date(&ask.date, &bills::today(&sim)) {
        return refused(BillRefusal::param(format!("invalid bill_date: {e}")));
    }
    // `merchant_of` found it before the sign verified.
    let mch_id = params.get("mch_id").cloned().unwrap_or_default();
    let file = match bills::make(&sim, &mch_id, &ask.date, fault.as_ref()) {
        Ok(Some(f)) => f,
        Ok(None) => return refused(BillRefusal::no_bill()),
        Err(e) => {
            tracing::error!(error = %e, "cannot make a bill");
            return refused(BillRefusal::system_error());
        }
    };
    if !ask.gzip {
        return ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], file).into_response();
    }
    match bills::gzip(file.as_bytes()) {
        Ok(gz) => ([(header::CONTENT_TYPE, "application/octet-stream")], gz).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot gzip a bill");
            refused(BillRefusal::system_error())
        }
    }
}
