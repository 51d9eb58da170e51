//! WeChat Pay APIv3 on the same port: JSAPI prepay, query and close by out_trade_no, and
//! refunds (request, query by out_refund_no; their rules are [`crate::refunds`]').
//!
//! Each call goes through one frame, in WeChat's order: faults (the wire fails before
//! WeChat reads) → the `Authorization` header (its merchant, certificate serial, clock
//! window and SHA256withRSA signature over the exact request: method, path with query,
//! timestamp, nonce, raw body) → the business act → the answer signed with WeChat's key
//! (`Wechatpay-Timestamp`/`-Nonce`/`-Signature`/`-Serial`, the serial being the
//! `PUB_KEY_ID_…` of the 微信支付公钥). A request whose signature fails gets WeChat's 401
//! SIGN_ERROR with `sign_information`, unsigned: WeChat signs an answer only once it has
//! accepted the request ("如果验证商户的请求签名正确，微信支付会在应答的HTTP头部中包括应答签名",
//! 签名验证, <https://wechatpay-api.gitbook.io/wechatpay-api-v3/qian-ming-zhi-nan-1/qian-ming-yan-zheng>).
//!
//! Every byte written and every check made is `wxedge_core::v3`'s; this module only
//! decides what WeChat would do with the order.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use wxedge_core::answer::BillType;
use wxedge_core::v3::api_error::{ApiError, Code};
use wxedge_core::v3::authorization::{self, Authorization, RequestRefusal};
use wxedge_core::v3::jsapi::{self, JsapiError, QueryAnswer};
use wxedge_core::v3::refund as v3refund;
use wxedge_core::v3::{tradebill, verify};
use wxedge_core::{Fen, Params, random};

use crate::bills;
use crate::config::{MerchantV3, WechatKey};
use crate::faults::{self, Fault, Kind, Target};
use crate::refunds::{self, Ask, OrderRef};
use crate::state::{Api, Order, Refund, RefundSource, RefundStatus, TradeState};
use crate::wechat::{NewOrder, PlaceRefusal, place_order, transport_fault};
use crate::{Sim, SimState};

/// What a v3 call asked, as received: the signature covers exactly these.
struct Received {
    method: Method,
    /// Path with its query, as sent (never re-encoded).
    url: String,
    body: Bytes,
}

/// A merchant whose `Authorization` verified.
struct Caller<'a> {
    mchid: &'a str,
    appid: &'a str,
}

/// A business answer: status and JSON body (empty for 204), or WeChat's error.
type Answer = Result<(StatusCode, String), ApiError>;

fn error(code: Code, message: impl AsRef<str>) -> ApiError {
    ApiError::new(code, message.as_ref())
}

fn param_error(e: JsapiError) -> ApiError {
    error(Code::ParamError, e.to_string())
}

/// An answer as WeChat writes it: JSON, a `Request-ID`, and the four signed headers when
/// `signer` is given (refusals of the signature itself go out unsigned).
fn respond(sim: &Sim, status: StatusCode, body: String, signer: Option<&WechatKey>) -> Response {
    let mut res = (status, body.clone()).into_response();
    let h = res.headers_mut();
    if !body.is_empty() {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
    }
    let request_id = format!("08{:X}{:08X}", sim.wall_secs(), sim.state().next_seq);
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        h.insert("request-id", v);
    }
    let Some(key) = signer else {
        return res;
    };
    let signed = random::nonce_str()
        .map_err(|e| e.to_string())
        .and_then(|nonce| {
            verify::sign(&*key.key, &key.id, sim.wall_secs(), &nonce, body.as_bytes())
                .map_err(|e| e.to_string())
        });
    match signed {
        Ok(signed) => {
            for (name, value) in signed.pairs() {
                if let Ok(v) = HeaderValue::from_str(value) {
                    h.insert(name, v);
                }
            }
            res
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot sign a v3 answer");
            let err = error(Code::SystemError, "系统异常，请稍后重试");
            (StatusCode::INTERNAL_SERVER_ERROR, err.to_body()).into_response()
        }
    }
}

fn refuse(sim: &Sim, e: &ApiError, signer: Option<&WechatKey>) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    respond(sim, status, e.to_body(), signer)
}

/// WeChat's check of the caller, before anything else is read: the merchant, its APIv3
/// setup, then [`authorization::check_request`].
fn authenticate<'a>(
    sim: &'a Sim,
    headers: &HeaderMap,
    req: &Received,
) -> Result<(Caller<'a>, &'a MerchantV3), ApiError> {
    let unreadable = |e| {
        let r = RequestRefusal::Unreadable(e);
        error(Code::SignError, r.wechat_message())
    };
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            unreadable(authorization::AuthorizationError::MissingField(
                "Authorization",
            ))
        })?;
    let auth = Authorization::parse(value).map_err(unreadable)?;
    let Some((mchid, merchant)) = sim.config.merchants.get_key_value(&auth.mchid) else {
        return Err(error(Code::MchNotExists, "商户号不存在"));
    };
    // A merchant configured for v2 only has no API certificate as far as v3 goes.
    let v3 = sim
        .config
        .v3
        .get(mchid)
        .ok_or_else(|| error(Code::SignError, "商户未申请过证书"))?;
    let url = req.url.as_str();
    authorization::check_request(
        &auth,
        req.method.as_str(),
        url,
        &req.body,
        &v3.serial,
        &v3.public_key,
        sim.wall_secs(),
    )
    .map_err(|refusal| match refusal {
        RequestRefusal::Mismatch { message } => {
            ApiError::sign_mismatch(req.method.as_str(), url, &message)
        }
        other => error(Code::SignError, other.wechat_message()),
    })?;
    Ok((
        Caller {
            mchid,
            appid: &merchant.appid,
        },
        v3,
    ))
}

/// The frame every v3 call goes through (see the module docs).
async fn v3_call(
    sim: Arc<Sim>,
    target: Target,
    headers: HeaderMap,
    req: Received,
    out_trade_no: Option<String>,
    act: impl FnOnce(&Arc<Sim>, &Caller<'_>, &Received, Option<&Fault>) -> Answer,
) -> Response {
    let fault = faults::take(&mut sim.state_mut().faults, target, out_trade_no.as_deref());
    if let Some(f) = &fault
        && let Some(res) = transport_fault(f).await
    {
        return res;
    }
    let (caller, _) = match authenticate(&sim, &headers, &req) {
        Ok(c) => c,
        Err(e) => return refuse(&sim, &e, None),
    };
    let rotated = fault.as_ref().is_some_and(|f| f.kind == Kind::RotatedKey);
    let signer = if rotated {
        sim.config.rotated_key.as_ref()
    } else {
        sim.config.wechat_key.as_ref()
    };
    let answer = match fault.as_ref().map(|f| f.kind) {
        Some(Kind::SystemError) => Err(error(Code::SystemError, "系统异常，请稍后重试")),
        Some(Kind::ErrCode) => {
            let code = fault
                .as_ref()
                .and_then(|f| f.err_code.as_deref())
                .unwrap_or("SYSTEM_ERROR");
            let mut e = error(Code::parse(code), "injected by /sim/faults");
            if let Some(status) = refund_code_status(code) {
                e.status = status;
            }
            Err(e)
        }
        _ => act(&sim, &caller, &req, fault.as_ref()),
    };
    match answer {
        Ok((status, body)) => respond(&sim, status, body, signer),
        Err(e) => refuse(&sim, &e, signer),
    }
}

fn received(method: Method, uri: &Uri, body: Bytes) -> Received {
    let url = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned());
    Received { method, url, body }
}

/// `POST /v3/pay/transactions/jsapi` → `{"prepay_id": …}`.
pub async fn jsapi(
    sim: SimState,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // For fault matching only; the body is judged after the signature.
    let no = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("out_trade_no")?.as_str().map(str::to_owned));
    let req = received(method, &uri, body);
    v3_call(sim.0, Target::Jsapi, headers, req, no, prepay).await
}

fn prepay(sim: &Arc<Sim>, caller: &Caller<'_>, req: &Received, _: Option<&Fault>) -> Answer {
    let r = jsapi::parse_prepay_request(&req.body).map_err(param_error)?;
    if r.mchid != caller.mchid {
        return Err(error(
            Code::ParamError,
            "mchid与Authorization中的mchid不一致",
        ));
    }
    if r.appid != caller.appid {
        return Err(error(Code::AppidMchidNotMatch, "AppID和mch_id不匹配"));
    }
    let mut fields = Params::new();
    for (k, v) in [
        ("appid", Some(r.appid.clone())),
        ("description", Some(r.description.clone())),
        ("notify_url", Some(r.notify_url.clone())),
        ("total", Some(r.amount.total.to_string())),
        ("openid", Some(r.payer.openid.clone())),
        ("attach", r.attach.clone()),
        ("time_expire", r.time_expire.clone()),
    ] {
        if let Some(v) = v {
            fields.insert(k.to_owned(), v);
        }
    }
    let placed = place_order(
        sim,
        NewOrder {
            api: Api::V3,
            appid: r.appid,
            mch_id: r.mchid,
            out_trade_no: r.out_trade_no,
            total_fee: r.amount.total,
            openid: Some(r.payer.openid),
            notify_url: r.notify_url,
            attach: r.attach,
            trade_type: "JSAPI".into(),
            sign_type: "RSA".into(),
            fields,
        },
    );
    let prepay_id = placed.map_err(|refusal| match refusal {
        PlaceRefusal::UnknownUser(msg) => error(Code::ParamError, msg),
        // v2's ORDERPAID; WeChat's v3 tables name no code of their own for it.
        PlaceRefusal::Paid => error(Code::Other("ORDERPAID".into()), "该订单已支付"),
        PlaceRefusal::Closed => error(Code::OrderClosed, "订单已关闭"),
        PlaceRefusal::OtherApp | PlaceRefusal::Changed => {
            error(Code::OutTradeNoUsed, "商户订单号重复")
        }
        PlaceRefusal::System(msg) => error(Code::SystemError, msg),
    })?;
    Ok((StatusCode::OK, jsapi::prepay_answer(&prepay_id)))
}

/// The order `out_trade_no` of `mchid`, or WeChat's 404.
fn find(sim: &Sim, mchid: &str, out_trade_no: &str) -> Result<Order, ApiError> {
    sim.state()
        .orders
        .get(&Order::key(mchid, out_trade_no))
        .cloned()
        .ok_or_else(|| error(Code::OrderNotExist, "订单不存在"))
}

/// `GET /v3/pay/transactions/out-trade-no/{out_trade_no}?mchid=…`.
pub async fn query(
    sim: SimState,
    Path(out_trade_no): Path<String>,
    RawQuery(q): RawQuery,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = received(method, &uri, body);
    let mchid: Option<String> = form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "mchid")
        .map(|(_, v)| v.into_owned());
    let no = out_trade_no.clone();
    v3_call(
        sim.0,
        Target::Query,
        headers,
        req,
        Some(no),
        move |sim, caller, _, fault| {
            match mchid.as_deref() {
                None | Some("") => {
                    return Err(error(
                        Code::ParamError,
                        "输入源“/query/mchid”映射到值字段“直连商户号”字符串规则校验失败，值为空",
                    ));
                }
                Some(m) if m != caller.mchid => {
                    return Err(error(
                        Code::ParamError,
                        "mchid与Authorization中的mchid不一致",
                    ));
                }
                Some(_) => {}
            }
            let order = find(sim, caller.mchid, &out_trade_no)?;
            Ok((StatusCode::OK, query_body(&order, fault)))
        },
    )
    .await
}

fn query_body(order: &Order, fault: Option<&Fault>) -> String {
    let injected = fault.and_then(|f| f.trade_state.as_deref());
    let paid = order.state == TradeState::Success && injected.is_none();
    let state = injected.unwrap_or(order.state.as_str());
    let success_time = order.time_end.as_deref().map(rfc3339);
    jsapi::query_answer(&QueryAnswer {
        appid: &order.appid,
        mchid: &order.mch_id,
        out_trade_no: &order.out_trade_no,
        transaction_id: order.transaction_id.as_deref().filter(|_| paid),
        trade_type: &order.trade_type,
        trade_state: state,
        trade_state_desc: match (injected, order.state) {
            (Some(s), _) => s,
            (None, TradeState::Notpay) => "订单未支付",
            (None, TradeState::Success) => "支付成功",
            (None, TradeState::Closed) => "订单已关闭",
        },
        attach: order.attach.as_deref().filter(|_| paid),
        success_time: success_time.as_deref().filter(|_| paid),
        openid: order.openid.as_deref(),
        total: Fen::new(order.total_fee),
    })
}

/// v2's `time_end` (`yyyyMMddHHmmss`, Beijing time) as v3's RFC 3339.
pub(crate) fn rfc3339(time_end: &str) -> String {
    if time_end.len() != 14 || !time_end.bytes().all(|b| b.is_ascii_digit()) {
        return time_end.to_owned();
    }
    let t = time_end;
    format!(
        "{}-{}-{}T{}:{}:{}+08:00",
        &t[0..4],
        &t[4..6],
        &t[6..8],
        &t[8..10],
        &t[10..12],
        &t[12..14]
    )
}

/// `POST /v3/pay/transactions/out-trade-no/{out_trade_no}/close` → 204.
pub async fn close(
    sim: SimState,
    Path(out_trade_no): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = received(method, &uri, body);
    let no = out_trade_no.clone();
    v3_call(
        sim.0,
        Target::Close,
        headers,
        req,
        Some(no),
        move |sim, caller, req, fault| {
            let mchid = jsapi::parse_close_request(&req.body).map_err(param_error)?;
            if mchid != caller.mchid {
                return Err(error(
                    Code::ParamError,
                    "mchid与Authorization中的mchid不一致",
                ));
            }
            let order = find(sim, caller.mchid, &out_trade_no)?;
            match order.state {
                TradeState::Success => {
                    return Err(error(Code::Other("ORDERPAID".into()), "订单已支付"));
                }
                TradeState::Closed => return Err(error(Code::OrderClosed, "订单已关闭")),
                TradeState::Notpay => {
                    // `ignored`: 204, yet the order stays payable.
                    if fault.is_none_or(|f| f.kind != Kind::Ignored)
                        && let Some(o) = sim
                            .state_mut()
                            .orders
                            .get_mut(&Order::key(caller.mchid, &out_trade_no))
                    {
                        o.state = TradeState::Closed;
                    }
                }
            }
            Ok((StatusCode::NO_CONTENT, String::new()))
        },
    )
    .await
}

/// Codes of the refund error table whose status the core's [`Code`] does not know
/// (退款申请: RESOURCE_NOT_EXISTS and MCH_NOT_EXISTS 404, USER_ACCOUNT_ABNORMAL 403).
fn refund_code_status(code: &str) -> Option<u16> {
    match code {
        "RESOURCE_NOT_EXISTS" => Some(404),
        "USER_ACCOUNT_ABNORMAL" => Some(403),
        _ => None,
    }
}

fn not_exists(message: &str) -> ApiError {
    let mut e = error(Code::Other("RESOURCE_NOT_EXISTS".into()), message);
    e.status = 404;
    e
}

/// `POST /v3/refund/domestic/refunds` → 200 and the refund, PROCESSING.
pub async fn refund(
    sim: SimState,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // For fault matching only; the body is judged after the signature.
    let named = serde_json::from_slice::<serde_json::Value>(&body).ok();
    let field = |k: &str| {
        named
            .as_ref()
            .and_then(|v| v.get(k)?.as_str().map(str::to_owned))
    };
    let no = match (field("out_trade_no"), field("transaction_id")) {
        (Some(no), _) => Some(no),
        (None, Some(id)) => refunds::out_trade_no_of(&sim, &OrderRef::TransactionId(&id)),
        (None, None) => None,
    };
    let req = received(method, &uri, body);
    v3_call(sim.0, Target::Refund, headers, req, no, create_refund).await
}

fn create_refund(
    sim: &Arc<Sim>,
    caller: &Caller<'_>,
    req: &Received,
    fault: Option<&Fault>,
) -> Answer {
    let r =
        v3refund::parse_request(&req.body).map_err(|e| error(Code::ParamError, e.to_string()))?;
    if let Some(url) = &r.notify_url
        && (!(url.starts_with("https://") || url.starts_with("http://"))
            || url.len() > 256
            || url.contains('?'))
    {
        return Err(error(
            Code::ParamError,
            "notify_url must be an absolute http(s) URL of at most 256 bytes, without a query",
        ));
    }
    if let Some(reason) = &r.reason
        && reason.len() > v3refund::MAX_REASON_BYTES
    {
        return Err(error(Code::ParamError, "reason不可超过80个字节长度"));
    }
    let ends = match fault.map(|f| f.kind) {
        Some(Kind::RefundAbnormal) => RefundStatus::Abnormal,
        Some(Kind::RefundClosed) => RefundStatus::Closed,
        _ => RefundStatus::Success,
    };
    let by = match (&r.out_trade_no, &r.transaction_id) {
        (Some(no), _) => OrderRef::OutTradeNo(no),
        (None, Some(id)) => OrderRef::TransactionId(id),
        (None, None) => unreachable!("parse_request requires one of them"),
    };
    let ask = Ask {
        out_refund_no: r.out_refund_no.clone(),
        refund_fee: r.amount.refund,
        total_fee: Some(r.amount.total),
        reason: r.reason.clone(),
        notify_url: r.notify_url.clone(),
        source: RefundSource::Api,
        ends,
    };
    let (made, _) = refunds::refund(sim, Some(caller.mchid), by, ask).map_err(|refusal| {
        let mut e = error(Code::parse(refusal.code()), refusal.message());
        e.status = refusal.status();
        e
    })?;
    Ok((
        StatusCode::OK,
        v3refund::answer_body(&made.wire(), &made.create_time),
    ))
}

/// `GET /v3/refund/domestic/refunds/{out_refund_no}` → the refund, or 404
/// RESOURCE_NOT_EXISTS 退款单不存在.
pub async fn refund_query(
    sim: SimState,
    Path(out_refund_no): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = received(method, &uri, body);
    // Faults match the refund's order.
    let no = sim
        .state()
        .refunds
        .values()
        .find(|r| r.out_refund_no == out_refund_no)
        .map(|r| r.out_trade_no.clone());
    v3_call(
        sim.0,
        Target::RefundQuery,
        headers,
        req,
        no,
        move |sim, caller, _, _| {
            let st = sim.state();
            let r = st
                .refunds
                .get(&Refund::key(caller.mchid, &out_refund_no))
                .ok_or_else(|| not_exists("退款单不存在"))?;
            Ok((
                StatusCode::OK,
                v3refund::answer_body(&r.wire(), &r.create_time),
            ))
        },
    )
    .await
}

/// `GET /v3/bill/tradebill?bill_date=…&bill_type=ALL[&tar_type=GZIP]` → the SHA-1 of the
/// day's bill and a `download_url` on the origin the request came to (the `Host` header:
/// wxsim has no name of its own), valid 5 minutes, for the merchant that applied. The
/// bill's rules are [`crate::bills`]'.
pub async fn tradebill(
    sim: SimState,
    RawQuery(q): RawQuery,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_owned();
    let req = received(method, &uri, body);
    v3_call(
        sim.0,
        Target::Bill,
        headers,
        req,
        None,
        move |sim, caller, _, fault| {
            let ask = tradebill::parse_apply_query(q.as_deref().unwrap_or_default())
                .map_err(|m| error(Code::ParamError, m))?;
            if ask.bill_type != BillType::All {
                return Err(error(
                    Code::ParamError,
                    "wxsim makes only the ALL bill (bill_type=ALL)",
                ));
            }
            wxedge_core::bill::judge_bill_date(&ask.bill_date, &bills::today(sim))
                .map_err(|e| error(Code::ParamError, e.to_string()))?;
            let system = |e: &dyn std::fmt::Display| {
                tracing::error!(error = %e, "cannot make a bill");
                error(Code::SystemError, "系统异常，请稍后重试")
            };
            let file = bills::make(sim, caller.mchid, &ask.bill_date, fault)
                .map_err(|e| system(&e))?
                .ok_or_else(tradebill::no_statement)?;
            let mut hash = wxedge_core::bill::sha1_hex(file.as_bytes());
            if fault.is_some_and(|f| f.kind == Kind::BillHash) {
                // Another file's SHA-1: what a cut or altered download would show.
                hash = wxedge_core::bill::sha1_hex(format!("{file}wxsim bill_hash").as_bytes());
            }
            let body = if ask.gzip {
                Bytes::from(bills::gzip(file.as_bytes()).map_err(|e| system(&e))?)
            } else {
                Bytes::from(file)
            };
            let token = bills::keep(
                sim,
                bills::BillFile {
                    mch_id: caller.mchid.to_owned(),
                    body,
                    gzip: ask.gzip,
                    expires_ms: sim.now_ms() + tradebill::DOWNLOAD_TTL_SECS * 1000,
                },
            )
            .map_err(|e| system(&e))?;
            let url = format!("http://{host}{}?token={token}", tradebill::DOWNLOAD_PATH);
            Ok((StatusCode::OK, tradebill::apply_answer(&hash, &url)))
        },
    )
    .await
}

/// `GET /v3/billdownload/file?token=…`: a signed request like every v3 call (the
/// `Authorization` checked, the token bound to its merchant), answered with the file and
/// no signature (下载账单: "该接口响应的信息请求头中不包含微信接口响应的签名值"). An unknown,
/// expired or other merchant's token is `400 INVALID_REQUEST` (WeChat's exact answer to a
/// stale URL is not documented).
pub async fn billdownload(
    sim: SimState,
    RawQuery(q): RawQuery,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let sim = sim.0;
    let req = received(method, &uri, body);
    let (caller, _) = match authenticate(&sim, &headers, &req) {
        Ok(c) => c,
        Err(e) => return refuse(&sim, &e, None),
    };
    let token: Option<String> = form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned());
    let Some(file) = token.and_then(|t| bills::fetch(&sim, caller.mchid, &t)) else {
        let e = error(
            Code::InvalidRequest,
            "下载链接已失效或不存在 (download_url lives 5 minutes; apply again)",
        );
        return refuse(&sim, &e, None);
    };
    let content_type = if file.gzip {
        "application/octet-stream"
    } else {
        "text/plain; charset=utf-8"
    };
    ([(header::CONTENT_TYPE, content_type)], file.body).into_response()
}
