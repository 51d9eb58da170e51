//! JSAPI / mini-program payment in APIv3: prepay, the wx.requestPayment fields (RSA),
//! query and close by out_trade_no.
//!
//! Each call has a builder (the path, the exact body bytes to sign and send) and a reader
//! of its successful answer that takes a [`Verified`] body only. Refusals are
//! [`ApiError::parse`]d from the raw answer by the caller. Sources:
//! - prepay: JSAPI下单 / 小程序下单 <https://pay.weixin.qq.com/doc/v3/merchant/4012525167>,
//!   <https://pay.weixin.qq.com/doc/v3/merchant/4012525182> (`POST /v3/pay/transactions/jsapi`;
//!   `appid`, `mchid`, `description` string(127), `out_trade_no` string(32), `time_expire`,
//!   `attach` string(128), `notify_url` string(255) without parameters, `amount` {`total`,
//!   `currency`}, `payer` {`openid`}; answer `{"prepay_id": …}`). The out_trade_no rule
//!   ("6-32个字符内，只能是数字、大小写字母_-|*") is from the partner page
//!   <https://pay.weixin.qq.com/docs/partner/products/partner-mini-program-payment/apilist.html>.
//! - wx.requestPayment: 小程序调起支付 <https://pay.weixin.qq.com/wiki/doc/apiv3/apis/chapter7_2_9.shtml>
//!   (four lines `appId\ntimeStamp\nnonceStr\npackage\n`, SHA256withRSA with the merchant key,
//!   base64; `signType` `RSA`, not signed).
//! - query: 商户订单号查询订单 <https://pay.weixin.qq.com/doc/v3/merchant/4012556352>
//!   (`GET /v3/pay/transactions/out-trade-no/{out_trade_no}?mchid=…`, `trade_state` SUCCESS,
//!   REFUND, NOTPAY, CLOSED, REVOKED, USERPAYING, PAYERROR).
//! - close: 关闭订单 <https://pay.weixin.qq.com/doc/v3/merchant/4012556398>
//!   (`POST /v3/pay/transactions/out-trade-no/{out_trade_no}/close`, body `{"mchid": …}`,
//!   answer `204 No Content`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use std::fmt;

use crate::json::{self, Object};
use crate::pay::{FieldProblem, OrderQuery, PayError, PaymentParams, Prepay, TradeState};
use crate::v3::api_error::{ApiError, Code};
use crate::v3::notify::{Transaction, v2_time};
use crate::v3::rsa::{RsaError, RsaSigner, RsaVerifier};
use crate::v3::verify::{Verified, VerifyError};
use crate::{ErrorCode, Fen};

/// Where a JSAPI (and mini-program) order is placed.
pub const PREPAY_PATH: &str = "/v3/pay/transactions/jsapi";

/// Why a JSAPI call cannot be built, or its answer cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum JsapiError {
    #[error("invalid request: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldProblem>),
    #[error("WeChat Pay's answer is not the documented JSON: {0}")]
    BadAnswer(String),
    #[error("WeChat Pay's answer lacks {0}")]
    MissingField(&'static str),
    #[error("{field} is {found:?} but we asked about {expected:?}")]
    Mismatch {
        field: &'static str,
        expected: String,
        found: String,
    },
    #[error("WeChat Pay answered HTTP {0} where {1} was expected")]
    UnexpectedStatus(u16, u16),
    #[error("the RSA signer failed: {0}")]
    Signer(#[from] RsaError),
}

impl ErrorCode for JsapiError {
    fn code(&self) -> &'static str {
        match self {
            JsapiError::Invalid(_) => "INVALID_PARAMS",
            JsapiError::BadAnswer(_) => "NOT_JSON",
            JsapiError::MissingField(_) => "MISSING_FIELD",
            JsapiError::Mismatch { .. } => "FIELD_MISMATCH",
            JsapiError::UnexpectedStatus(..) => "V3_UNEXPECTED_STATUS",
            JsapiError::Signer(e) => e.code(),
        }
    }
}

fn problem(field: &str, problem: impl Into<String>) -> FieldProblem {
    FieldProblem {
        field: field.to_owned(),
        problem: problem.into(),
    }
}

/// Characters and length WeChat allows in a v3 `out_trade_no`.
pub fn is_valid_out_trade_no(s: &str) -> bool {
    (6..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'|' | b'*'))
}

fn is_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A JSAPI / mini-program order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsapiOrder<'a> {
    pub appid: &'a str,
    pub mchid: &'a str,
    /// Shown to the payer; at most 127 characters.
    pub description: &'a str,
    pub out_trade_no: &'a str,
    /// http(s), no query string.
    pub notify_url: &'a str,
    pub total: Fen,
    pub openid: &'a str,
    pub attach: Option<&'a str>,
    /// RFC 3339, e.g. `2018-06-08T10:34:56+08:00`.
    pub time_expire: Option<&'a str>,
}

#[derive(Serialize)]
struct PrepayBody<'a> {
    appid: &'a str,
    mchid: &'a str,
    description: &'a str,
    out_trade_no: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    time_expire: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attach: Option<&'a str>,
    notify_url: &'a str,
    amount: AmountBody,
    payer: PayerBody<'a>,
}

#[derive(Serialize)]
struct AmountBody {
    total: u64,
    currency: &'static str,
}

#[derive(Serialize)]
struct PayerBody<'a> {
    openid: &'a str,
}

/// Every problem of an order, at once.
pub fn validate(o: &JsapiOrder<'_>) -> Vec<FieldProblem> {
    let mut p = Vec::new();
    for (field, v) in [("appid", o.appid), ("mchid", o.mchid)] {
        if !is_id(v) {
            p.push(problem(field, "must be 1 to 32 characters of [0-9A-Za-z_]"));
        }
    }
    let chars = o.description.chars().count();
    if chars == 0 || chars > 127 {
        p.push(problem(
            "description",
            format!("is {chars} characters; 1 to 127 allowed"),
        ));
    }
    if !is_valid_out_trade_no(o.out_trade_no) {
        p.push(problem(
            "out_trade_no",
            "must be 6 to 32 characters of [0-9A-Za-z_-|*]",
        ));
    }
    let url = o.notify_url;
    if !(url.starts_with("https://") || url.starts_with("http://"))
        || url.len() <= "https://".len()
        || url.len() > 255
    {
        p.push(problem(
            "notify_url",
            "must be an absolute http(s) URL of at most 255 bytes",
        ));
    }
    if url.contains('?') {
        p.push(problem(
            "notify_url",
            "must not carry a query string (WeChat: 不能携带参数)",
        ));
    }
    if o.total.get() == 0 {
        p.push(problem("amount.total", "must be at least 1 (fen)"));
    }
    if o.openid.is_empty() || o.openid.len() > 128 {
        p.push(problem(
            "payer.openid",
            "is required (at most 128 bytes) for JSAPI",
        ));
    }
    if let Some(a) = o.attach
        && a.len() > 128
    {
        p.push(problem(
            "attach",
            format!("is {} bytes, at most 128 allowed", a.len()),
        ));
    }
    if let Some(t) = o.time_expire
        && (t.is_empty() || t.len() > 64 || !t.contains('T'))
    {
        p.push(problem(
            "time_expire",
            "must be RFC 3339, e.g. 2018-06-08T10:34:56+08:00",
        ));
    }
    p
}

/// The exact JSON body to sign and POST to [`PREPAY_PATH`].
pub fn prepay_body(o: &JsapiOrder<'_>) -> Result<String, JsapiError> {
    let problems = validate(o);
    if !problems.is_empty() {
        return Err(JsapiError::Invalid(problems));
    }
    let body = PrepayBody {
        appid: o.appid,
        mchid: o.mchid,
        description: o.description,
        out_trade_no: o.out_trade_no,
        time_expire: o.time_expire,
        attach: o.attach,
        notify_url: o.notify_url,
        amount: AmountBody {
            total: o.total.get(),
            currency: "CNY",
        },
        payer: PayerBody { openid: o.openid },
    };
    serde_json::to_string(&body).map_err(|e| JsapiError::BadAnswer(e.to_string()))
}

/// Reads prepay's verified 200 answer: the `prepay_id` (valid two hours).
pub fn parse_prepay(answer: &Verified<'_>) -> Result<String, JsapiError> {
    let fields = json::object(answer.body()).map_err(JsapiError::BadAnswer)?;
    let prepay_id = Object::new(&fields, "")
        .string("prepay_id")
        .map_err(JsapiError::BadAnswer)?;
    if prepay_id.is_empty() {
        return Err(JsapiError::MissingField("prepay_id"));
    }
    Ok(prepay_id)
}

/// wx.requestPayment's `package`: `prepay_id=…`.
pub fn package(prepay_id: &str) -> String {
    format!("prepay_id={prepay_id}")
}

/// The message wx.requestPayment's `paySign` signs: `appId\ntimeStamp\nnonceStr\npackage\n`.
pub fn payment_message(app_id: &str, time_stamp: &str, nonce_str: &str, package: &str) -> Vec<u8> {
    format!("{app_id}\n{time_stamp}\n{nonce_str}\n{package}\n").into_bytes()
}

/// The wx.requestPayment fields for `prepay_id`, given the signature the caller's RSA
/// made of [`payment_message`] (with the same `timestamp` and `nonce_str`).
pub fn payment_params(
    app_id: &str,
    prepay_id: &str,
    timestamp: i64,
    nonce_str: &str,
    signature: &[u8],
) -> PaymentParams {
    PaymentParams {
        app_id: app_id.to_owned(),
        time_stamp: timestamp.to_string(),
        nonce_str: nonce_str.to_owned(),
        package: package(prepay_id),
        sign_type: "RSA".to_owned(),
        pay_sign: STANDARD.encode(signature),
    }
}

/// [`payment_params`] with a synchronous signer (ring natively).
pub fn sign_payment_params(
    signer: &impl RsaSigner,
    app_id: &str,
    prepay_id: &str,
    timestamp: i64,
    nonce_str: &str,
) -> Result<PaymentParams, JsapiError> {
    let message = payment_message(
        app_id,
        &timestamp.to_string(),
        nonce_str,
        &package(prepay_id),
    );
    let signature = signer.sign(&message)?;
    Ok(payment_params(
        app_id, prepay_id, timestamp, nonce_str, &signature,
    ))
}

/// Checks wx.requestPayment fields as the WeChat app does (for wxsim's app side):
/// `signType` RSA, `package` `prepay_id=…`, and `paySign` verifying under the merchant's key.
pub fn verify_payment_params(params: &PaymentParams, merchant_key: &impl RsaVerifier) -> bool {
    if params.sign_type != "RSA"
        || params
            .package
            .strip_prefix("prepay_id=")
            .is_none_or(str::is_empty)
    {
        return false;
    }
    let Ok(signature) = STANDARD.decode(params.pay_sign.as_bytes()) else {
        return false;
    };
    let message = payment_message(
        &params.app_id,
        &params.time_stamp,
        &params.nonce_str,
        &params.package,
    );
    merchant_key.verify(&message, &signature)
}

/// The path of an order, `|` percent-encoded so the path signed is the path sent.
fn order_path(out_trade_no: &str) -> Result<String, JsapiError> {
    if !is_valid_out_trade_no(out_trade_no) {
        return Err(JsapiError::Invalid(vec![problem(
            "out_trade_no",
            "must be 6 to 32 characters of [0-9A-Za-z_-|*]",
        )]));
    }
    Ok(format!(
        "/v3/pay/transactions/out-trade-no/{}",
        out_trade_no.replace('|', "%7C")
    ))
}

fn check_mchid(mchid: &str) -> Result<(), JsapiError> {
    if is_id(mchid) {
        Ok(())
    } else {
        Err(JsapiError::Invalid(vec![problem(
            "mchid",
            "must be 1 to 32 characters of [0-9A-Za-z_]",
        )]))
    }
}

/// The path and query to GET (and to sign) for an order's state.
pub fn query_url(out_trade_no: &str, mchid: &str) -> Result<String, JsapiError> {
    check_mchid(mchid)?;
    Ok(format!("{}?mchid={mchid}", order_path(out_trade_no)?))
}

/// Reads query's verified 200 answer as the v2 flow's [`OrderQuery`], after checking it
/// speaks of our merchant, app and order.
pub fn parse_query(
    answer: &Verified<'_>,
    mchid: &str,
    appid: &str,
    out_trade_no: &str,
) -> Result<OrderQuery, JsapiError> {
    let tx = Transaction::from_json(answer.body()).map_err(JsapiError::BadAnswer)?;
    let mismatch = |field, expected: &str, found: &str| JsapiError::Mismatch {
        field,
        expected: expected.to_owned(),
        found: found.to_owned(),
    };
    if tx.mchid != mchid {
        return Err(mismatch("mchid", mchid, &tx.mchid));
    }
    if !tx.appid.is_empty() && tx.appid != appid {
        return Err(mismatch("appid", appid, &tx.appid));
    }
    if tx.out_trade_no != out_trade_no {
        return Err(mismatch("out_trade_no", out_trade_no, &tx.out_trade_no));
    }
    let trade_state = TradeState::parse(&tx.trade_state);
    let total_fee = tx.amount.as_ref().map(|a| Fen::new(a.total));
    if trade_state == TradeState::Success && (total_fee.is_none() || tx.transaction_id.is_empty()) {
        return Err(JsapiError::MissingField(if total_fee.is_none() {
            "amount.total"
        } else {
            "transaction_id"
        }));
    }
    let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    Ok(OrderQuery {
        out_trade_no: tx.out_trade_no.clone(),
        trade_state,
        total_fee,
        transaction_id: some(&tx.transaction_id),
        openid: tx.payer.as_ref().and_then(|p| some(&p.openid)),
        time_end: some(&tx.success_time).map(|t| v2_time(&t)),
    })
}

/// The path to POST to close an order, and its body (`{"mchid":…}`, signed as sent).
pub fn close_request(out_trade_no: &str, mchid: &str) -> Result<(String, String), JsapiError> {
    check_mchid(mchid)?;
    let path = format!("{}/close", order_path(out_trade_no)?);
    Ok((path, serde_json::json!({ "mchid": mchid }).to_string()))
}

/// Reads close's verified answer: closed only on 204 (an unsigned 204 never gets here,
/// so a forged "closed" cannot end an order WeChat would still take payment for).
pub fn parse_close(status: u16, _answer: &Verified<'_>) -> Result<(), JsapiError> {
    if status == 204 {
        Ok(())
    } else {
        Err(JsapiError::UnexpectedStatus(status, 204))
    }
}

/// A v3 answer as the shell received it: the status, the raw body, and what verifying
/// its `Wechatpay-*` headers over that body gave (the shell runs the RSA check the core's
/// [`WechatKeys::check`](crate::v3::verify::WechatKeys::check) set up).
#[derive(Debug, Clone, Copy)]
pub struct Answer<'a> {
    pub status: u16,
    pub body: &'a [u8],
    pub verified: Result<Verified<'a>, &'a VerifyError>,
}

impl<'a> Answer<'a> {
    fn untrusted(code: &'static str, reason: impl fmt::Display) -> PayError {
        PayError::V3Untrusted {
            code,
            reason: reason.to_string(),
        }
    }

    /// A success status, verified; anything else is the refusal (or the distrust) the
    /// flows decide on.
    fn success(&self) -> Result<Verified<'a>, PayError> {
        if (200..300).contains(&self.status) {
            return self
                .verified
                .map_err(|e| Self::untrusted(e.code(), format!("HTTP {}: {e}", self.status)));
        }
        let error = ApiError::parse(self.status, self.body);
        // A refusal that would end an order must be WeChat's own (it signs every answer to
        // a request whose signature it accepted): an unsigned ORDER_CLOSED or
        // ORDER_NOT_EXIST is not believed, so nothing payable is ended on a forgery.
        let ends = matches!(error.code, Code::OrderClosed | Code::OrderNotExist);
        if ends && let Err(e) = self.verified {
            return Err(Self::untrusted(
                e.code(),
                format!("an unverified {} answer: {e}", error.code.as_str()),
            ));
        }
        Err(PayError::V3(Box::new(error)))
    }
}

fn jsapi_untrusted(e: JsapiError) -> PayError {
    PayError::V3Untrusted {
        code: e.code(),
        reason: e.to_string(),
    }
}

/// Prepay's answer in the v2 flow's terms ([`crate::flow::pay::after_unified_order`]
/// decides on it for both APIs).
pub fn prepay_outcome(answer: &Answer<'_>) -> Result<Prepay, PayError> {
    let verified = answer.success()?;
    let prepay_id = parse_prepay(&verified).map_err(jsapi_untrusted)?;
    Ok(Prepay {
        prepay_id,
        trade_type: "JSAPI".into(),
        code_url: None,
    })
}

/// Query's answer in the v2 flow's terms ([`crate::flow::reconcile::after_query`]).
pub fn query_outcome(
    answer: &Answer<'_>,
    mchid: &str,
    appid: &str,
    out_trade_no: &str,
) -> Result<OrderQuery, PayError> {
    let verified = answer.success()?;
    parse_query(&verified, mchid, appid, out_trade_no).map_err(jsapi_untrusted)
}

/// Close's answer in the v2 flow's terms ([`crate::flow::reconcile::after_close`]).
pub fn close_outcome(answer: &Answer<'_>) -> Result<(), PayError> {
    let verified = answer.success()?;
    parse_close(answer.status, &verified).map_err(jsapi_untrusted)
}

/// A prepay request as WeChat reads it (for wxsim): the body's fields, owned.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PrepayRequest {
    pub appid: String,
    pub mchid: String,
    pub description: String,
    pub out_trade_no: String,
    #[serde(default)]
    pub time_expire: Option<String>,
    #[serde(default)]
    pub attach: Option<String>,
    pub notify_url: String,
    pub amount: PrepayAmount,
    pub payer: PrepayPayer,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PrepayAmount {
    pub total: u64,
    #[serde(default)]
    pub currency: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PrepayPayer {
    pub openid: String,
}

impl PrepayRequest {
    /// The order it describes, for [`validate`].
    pub fn order(&self) -> JsapiOrder<'_> {
        JsapiOrder {
            appid: &self.appid,
            mchid: &self.mchid,
            description: &self.description,
            out_trade_no: &self.out_trade_no,
            notify_url: &self.notify_url,
            total: Fen::new(self.amount.total),
            openid: &self.payer.openid,
            attach: self.attach.as_deref(),
            time_expire: self.time_expire.as_deref(),
        }
    }
}

/// Reads a prepay body as WeChat does: JSON of the documented shape (a missing field or a
/// wrong type is [`JsapiError::BadAnswer`]'s text, WeChat's PARAM_ERROR), then every
/// field rule of [`validate`] and the currency (CNY only).
pub fn parse_prepay_request(body: &[u8]) -> Result<PrepayRequest, JsapiError> {
    let r: PrepayRequest =
        serde_json::from_slice(body).map_err(|e| JsapiError::BadAnswer(e.to_string()))?;
    let mut problems = validate(&r.order());
    if r.amount.currency.as_deref().is_some_and(|c| c != "CNY") {
        problems.push(problem("amount.currency", "must be CNY"));
    }
    if problems.is_empty() {
        Ok(r)
    } else {
        Err(JsapiError::Invalid(problems))
    }
}

/// Prepay's 200 answer body, `{"prepay_id": …}`.
pub fn prepay_answer(prepay_id: &str) -> String {
    serde_json::json!({ "prepay_id": prepay_id }).to_string()
}

/// An order as query by out_trade_no reports it (for wxsim); empty strings and `None`
/// are left out of the answer, as WeChat leaves out what an unpaid order lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryAnswer<'a> {
    pub appid: &'a str,
    pub mchid: &'a str,
    pub out_trade_no: &'a str,
    pub transaction_id: Option<&'a str>,
    pub trade_type: &'a str,
    /// SUCCESS, REFUND, NOTPAY, CLOSED, REVOKED, USERPAYING, PAYERROR.
    pub trade_state: &'a str,
    pub trade_state_desc: &'a str,
    pub attach: Option<&'a str>,
    /// RFC 3339; only for a paid order.
    pub success_time: Option<&'a str>,
    pub openid: Option<&'a str>,
    pub total: Fen,
}

/// Query's 200 answer body: the fields [`parse_query`] reads (商户订单号查询订单, cited in the
/// module docs).
pub fn query_answer(a: &QueryAnswer<'_>) -> String {
    let mut v = serde_json::json!({
        "appid": a.appid, "mchid": a.mchid, "out_trade_no": a.out_trade_no,
        "trade_type": a.trade_type, "trade_state": a.trade_state,
        "trade_state_desc": a.trade_state_desc,
        "amount": { "total": a.total.get(), "currency": "CNY" },
    });
    let paid = a.transaction_id.is_some();
    if let Some(t) = a.transaction_id {
        v["transaction_id"] = t.into();
        v["bank_type"] = "OTHERS".into();
        v["amount"]["payer_total"] = a.total.get().into();
        v["amount"]["payer_currency"] = "CNY".into();
    }
    if let Some(t) = a.success_time.filter(|_| paid) {
        v["success_time"] = t.into();
    }
    if let Some(at) = a.attach {
        v["attach"] = at.into();
    }
    if let Some(o) = a.openid {
        v["payer"] = serde_json::json!({ "openid": o });
    }
    v.to_string()
}

#[derive(Deserialize)]
struct CloseBody {
    mchid: String,
}

/// Reads close's body as WeChat does: `{"mchid": …}`, the mchid well formed.
pub fn parse_close_request(body: &[u8]) -> Result<String, JsapiError> {
    let b: CloseBody =
        serde_json::from_slice(body).map_err(|e| JsapiError::BadAnswer(e.to_string()))?;
    check_mchid(&b.mchid)?;
    Ok(b.mchid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order() -> JsapiOrder<'static> {
        JsapiOrder {
            appid: "wxd678efh567hg6787",
            mchid: "1230000109",
            description: "Image形象店-深圳腾大-QQ公仔",
            out_trade_no: "1217752501201407033233368018",
            notify_url: "https://www.weixin.qq.com/wxpay/pay.php",
            total: Fen::new(100),
            openid: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
            attach: None,
            time_expire: None,
        }
    }

    #[test]
    fn the_prepay_body_is_in_wechats_documented_order() {
        assert_eq!(
            prepay_body(&order()).unwrap(),
            r#"{"appid":"wxd678efh567hg6787","mchid":"1230000109","description":"Image形象店-深圳腾大-QQ公仔","out_trade_no":"1217752501201407033233368018","notify_url":"https://www.weixin.qq.com/wxpay/pay.php","amount":{"total":100,"currency":"CNY"},"payer":{"openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}}"#
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut o = order();
        o.out_trade_no = "T1";
        o.notify_url = "https://x.example/n?a=1";
        o.total = Fen::ZERO;
        o.openid = "";
        let Err(JsapiError::Invalid(p)) = prepay_body(&o) else {
            panic!("expected Invalid");
        };
        let fields: Vec<_> = p.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            ["out_trade_no", "notify_url", "amount.total", "payer.openid"]
        );
    }

    #[test]
    fn query_and_close_paths() {
        assert_eq!(
            query_url("T1|2*3_4", "1230000109").unwrap(),
            "/v3/pay/transactions/out-trade-no/T1%7C2*3_4?mchid=1230000109"
        );
        assert_eq!(
            close_request("1217752501201407033233368018", "1230000109").unwrap(),
            (
                "/v3/pay/transactions/out-trade-no/1217752501201407033233368018/close".into(),
                r#"{"mchid":"1230000109"}"#.into()
            )
        );
        assert!(query_url("../x", "1230000109").is_err());
        assert!(query_url("1217752501201407033233368018", "1&x=2").is_err());
    }
    #[test]
    fn wechat_reads_back_what_the_merchant_builds() {
        let o = JsapiOrder {
            appid: "wx1",
            mchid: "1900000109",
            description: "demo",
            out_trade_no: "T00001",
            notify_url: "https://example.com/notify/",
            total: Fen::new(1),
            openid: "o1",
            attach: None,
            time_expire: None,
        };
        let body = prepay_body(&o).unwrap();
        let r = parse_prepay_request(body.as_bytes()).unwrap();
        assert_eq!(r.order(), o);
        assert!(matches!(
            parse_prepay_request(b"{}"),
            Err(JsapiError::BadAnswer(_))
        ));
        let bad = body.replace("T00001", "T1");
        assert!(matches!(
            parse_prepay_request(bad.as_bytes()),
            Err(JsapiError::Invalid(_))
        ));
        let (_, close) = close_request("T00001", "1900000109").unwrap();
        assert_eq!(parse_close_request(close.as_bytes()).unwrap(), "1900000109");
        let q = query_answer(&QueryAnswer {
            appid: "wx1",
            mchid: "1900000109",
            out_trade_no: "T00001",
            transaction_id: None,
            trade_type: "JSAPI",
            trade_state: "NOTPAY",
            trade_state_desc: "订单未支付",
            attach: None,
            success_time: None,
            openid: Some("o1"),
            total: Fen::new(1),
        });
        let tx = Transaction::from_json(q.as_bytes()).unwrap();
        assert_eq!(
            (tx.trade_state.as_str(), tx.transaction_id.as_str()),
            ("NOTPAY", "")
        );
    }
}
