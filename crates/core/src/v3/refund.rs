//! APIv3 domestic refunds: the request, WeChat's answer (also the query's), and the
//! REFUND.* notify, for both sides (the merchant's and, for wxsim, WeChat's).
//!
//! Sources (checked, not remembered):
//! - 退款申请 <https://pay.weixin.qq.com/doc/v3/merchant/4012556457>: `POST
//!   /v3/refund/domestic/refunds`; `out_trade_no` or `transaction_id`; `out_refund_no`
//!   string(64) of digits, letters and `_-|*@`, "同一退款单号多次请求只退一笔"; `reason`
//!   string(80); `notify_url` string(256) without parameters; `amount` {`refund`, `total`,
//!   `currency` CNY}; refunds within a year of payment, at most 50 per order, the sum never
//!   above the order; the answer only means accepted. Fields of the answer (`refund_id`,
//!   `status` SUCCESS / CLOSED / PROCESSING / ABNORMAL, `amount`…) as wechatpay-go's
//!   `services/refunddomestic/models.go` generates them from the official OpenAPI.
//! - Orders placed through v2 are refunded through v3 too (the maintainers in
//!   wechatpay-apiv3/wechatpay-apache-httpclient#53: "可以退").
//! - 查询单笔退款 `GET /v3/refund/domestic/refunds/{out_refund_no}`: the same object;
//!   `404 RESOURCE_NOT_EXISTS` "退款单不存在".
//! - 退款结果通知 <https://pay.weixin.qq.com/doc/v3/merchant/4012082053>: events
//!   `REFUND.SUCCESS`, `REFUND.ABNORMAL`, `REFUND.CLOSED`, resource `original_type` `refund`
//!   (AAD as sent: samples show `""`, live notifies `refund`), decrypted fields `mchid`,
//!   `out_trade_no`, `transaction_id`, `out_refund_no`, `refund_id`, `refund_status`,
//!   `success_time`, `user_received_account`, `amount` {`total`, `refund`, `payer_total`,
//!   `payer_refund`}.
//! - Error codes (退款申请's table): SYSTEM_ERROR 500, USER_ACCOUNT_ABNORMAL / NOT_ENOUGH /
//!   NO_AUTH 403, PARAM_ERROR / INVALID_REQUEST 400, MCH_NOT_EXISTS / RESOURCE_NOT_EXISTS
//!   404, SIGN_ERROR 401, FREQUENCY_LIMITED 429 — read by [`ApiError`] like any v3 error.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::pay::{FieldProblem, PayError};
use crate::v3::aead::{self, AeadError, ApiV3Key};
use crate::v3::api_error::ApiError;
use crate::v3::jsapi::Answer;
use crate::v3::notify::{ALGORITHM, Envelope, NotifyV3Error};
use crate::v3::verify::Verified;
use crate::{ErrorCode, Fen};

/// Where a refund is requested.
pub const REFUND_PATH: &str = "/v3/refund/domestic/refunds";
/// At most this many refunds per order (退款申请: "每个支付订单的部分退款次数不能超过50次").
pub const MAX_REFUNDS_PER_ORDER: u64 = 50;
/// A refund's `reason`: at most 80 bytes.
pub const MAX_REASON_BYTES: usize = 80;

pub const EVENT_SUCCESS: &str = "REFUND.SUCCESS";
pub const EVENT_ABNORMAL: &str = "REFUND.ABNORMAL";
pub const EVENT_CLOSED: &str = "REFUND.CLOSED";

/// A refund's state as WeChat reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WechatRefundStatus {
    Processing,
    Success,
    Closed,
    Abnormal,
}

impl WechatRefundStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            WechatRefundStatus::Processing => "PROCESSING",
            WechatRefundStatus::Success => "SUCCESS",
            WechatRefundStatus::Closed => "CLOSED",
            WechatRefundStatus::Abnormal => "ABNORMAL",
        }
    }

    /// WeChat's word; `CLOSE` is read as CLOSED (WxJava's docs spell it so).
    pub fn parse(s: &str) -> Option<WechatRefundStatus> {
        match s {
            "PROCESSING" => Some(WechatRefundStatus::Processing),
            "SUCCESS" => Some(WechatRefundStatus::Success),
            "CLOSED" | "CLOSE" => Some(WechatRefundStatus::Closed),
            "ABNORMAL" => Some(WechatRefundStatus::Abnormal),
            _ => None,
        }
    }

    /// The notify event that reports this state (PROCESSING has none).
    pub fn event(self) -> Option<&'static str> {
        match self {
            WechatRefundStatus::Success => Some(EVENT_SUCCESS),
            WechatRefundStatus::Closed => Some(EVENT_CLOSED),
            WechatRefundStatus::Abnormal => Some(EVENT_ABNORMAL),
            WechatRefundStatus::Processing => None,
        }
    }
}

impl fmt::Display for WechatRefundStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a refund request cannot be built or an answer or notify cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RefundError {
    #[error("invalid refund: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldProblem>),
    #[error("WeChat Pay's refund answer is not the documented JSON: {0}")]
    BadAnswer(String),
    #[error("the refund answer lacks {0}")]
    MissingField(&'static str),
    #[error("{field} is {found:?} but we asked about {expected:?}")]
    Mismatch {
        field: &'static str,
        expected: String,
        found: String,
    },
    #[error("refund status {0:?} is not one WeChat documents")]
    UnknownStatus(String),
}

impl ErrorCode for RefundError {
    fn code(&self) -> &'static str {
        match self {
            RefundError::Invalid(_) => "INVALID_PARAMS",
            RefundError::BadAnswer(_) => "NOT_JSON",
            RefundError::MissingField(_) => "MISSING_FIELD",
            RefundError::Mismatch { .. } => "FIELD_MISMATCH",
            RefundError::UnknownStatus(_) => "V3_UNEXPECTED_STATUS",
        }
    }
}

fn problem(field: &str, problem: impl Into<String>) -> FieldProblem {
    FieldProblem {
        field: field.to_owned(),
        problem: problem.into(),
    }
}

/// Characters and length WeChat allows in an `out_refund_no`.
pub fn is_valid_out_refund_no(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'|' | b'*' | b'@'))
}

/// A refund of (part of) an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefundRequest<'a> {
    pub out_trade_no: &'a str,
    pub out_refund_no: &'a str,
    /// Shown to the payer (not for partial refunds of at most 1 元); at most 80 bytes.
    pub reason: Option<&'a str>,
    /// Where REFUND.* notifies go; http(s), no query string.
    pub notify_url: &'a str,
    pub refund: Fen,
    /// The order's total, as WeChat checks it.
    pub total: Fen,
}

/// Every problem of a refund request, at once.
pub fn validate(r: &RefundRequest<'_>) -> Vec<FieldProblem> {
    let mut p = Vec::new();
    if !crate::v3::jsapi::is_valid_out_trade_no(r.out_trade_no) {
        p.push(problem(
            "out_trade_no",
            "must be 6 to 32 characters of [0-9A-Za-z_-|*]",
        ));
    }
    if !is_valid_out_refund_no(r.out_refund_no) {
        p.push(problem(
            "out_refund_no",
            "must be 1 to 64 characters of [0-9A-Za-z_-|*@]",
        ));
    }
    if let Some(reason) = r.reason
        && (reason.is_empty() || reason.len() > MAX_REASON_BYTES)
    {
        p.push(problem(
            "reason",
            format!("is {} bytes; 1 to {MAX_REASON_BYTES} allowed", reason.len()),
        ));
    }
    let url = r.notify_url;
    if !(url.starts_with("https://") || url.starts_with("http://"))
        || url.len() > 256
        || url.contains('?')
    {
        p.push(problem(
            "notify_url",
            "must be an absolute http(s) URL of at most 256 bytes, without a query",
        ));
    }
    if r.refund == Fen::ZERO {
        p.push(problem("amount.refund", "must be at least 1 (fen)"));
    }
    if r.refund > r.total {
        p.push(problem(
            "amount.refund",
            format!("{} fen is above the order's {} fen", r.refund, r.total),
        ));
    }
    p
}

#[derive(Serialize)]
struct RequestBody<'a> {
    out_trade_no: &'a str,
    out_refund_no: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    notify_url: &'a str,
    amount: RequestAmount,
}

#[derive(Serialize)]
struct RequestAmount {
    refund: u64,
    total: u64,
    currency: &'static str,
}

/// The exact JSON body to sign and POST to [`REFUND_PATH`].
pub fn request_body(r: &RefundRequest<'_>) -> Result<String, RefundError> {
    let problems = validate(r);
    if !problems.is_empty() {
        return Err(RefundError::Invalid(problems));
    }
    serde_json::to_string(&RequestBody {
        out_trade_no: r.out_trade_no,
        out_refund_no: r.out_refund_no,
        reason: r.reason,
        notify_url: r.notify_url,
        amount: RequestAmount {
            refund: r.refund.get(),
            total: r.total.get(),
            currency: "CNY",
        },
    })
    .map_err(|e| RefundError::BadAnswer(e.to_string()))
}

/// The path to GET a refund's state, `|` percent-encoded (the path signed is the path sent).
pub fn query_path(out_refund_no: &str) -> Result<String, RefundError> {
    if !is_valid_out_refund_no(out_refund_no) {
        return Err(RefundError::Invalid(vec![problem(
            "out_refund_no",
            "must be 1 to 64 characters of [0-9A-Za-z_-|*@]",
        )]));
    }
    Ok(format!(
        "{REFUND_PATH}/{}",
        out_refund_no.replace('|', "%7C").replace('@', "%40")
    ))
}

/// A refund as WeChat reports it: the create and query answers, and a REFUND.* notify's
/// decrypted resource, read alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundState {
    pub out_refund_no: String,
    pub out_trade_no: String,
    pub refund_id: String,
    pub transaction_id: String,
    pub status: WechatRefundStatus,
    pub refund: Fen,
    pub total: Fen,
    /// RFC 3339; SUCCESS only.
    pub success_time: Option<String>,
    pub user_received_account: Option<String>,
}

#[derive(Deserialize)]
struct WireRefund {
    #[serde(default)]
    refund_id: String,
    out_refund_no: String,
    #[serde(default)]
    transaction_id: String,
    #[serde(default)]
    out_trade_no: String,
    /// The answer's name…
    #[serde(default)]
    status: Option<String>,
    /// …and the notify's.
    #[serde(default)]
    refund_status: Option<String>,
    #[serde(default)]
    success_time: Option<String>,
    #[serde(default)]
    user_received_account: Option<String>,
    amount: WireAmount,
}

/// Integer fen: serde refuses a negative, fractional or string amount.
#[derive(Deserialize)]
struct WireAmount {
    total: u64,
    refund: u64,
}

fn read_state(json: &[u8]) -> Result<RefundState, RefundError> {
    let w: WireRefund =
        serde_json::from_slice(json).map_err(|e| RefundError::BadAnswer(e.to_string()))?;
    let status_text = w
        .status
        .or(w.refund_status)
        .ok_or(RefundError::MissingField("status"))?;
    let status = WechatRefundStatus::parse(&status_text)
        .ok_or_else(|| RefundError::UnknownStatus(status_text.clone()))?;
    if w.out_refund_no.is_empty() {
        return Err(RefundError::MissingField("out_refund_no"));
    }
    if status != WechatRefundStatus::Closed && w.refund_id.is_empty() {
        return Err(RefundError::MissingField("refund_id"));
    }
    Ok(RefundState {
        out_refund_no: w.out_refund_no,
        out_trade_no: w.out_trade_no,
        refund_id: w.refund_id,
        transaction_id: w.transaction_id,
        status,
        refund: Fen::new(w.amount.refund),
        total: Fen::new(w.amount.total),
        success_time: w.success_time.filter(|s| !s.is_empty()),
        user_received_account: w.user_received_account.filter(|s| !s.is_empty()),
    })
}

/// A create or query answer in the flows' terms: a verified 2xx read and checked against
/// the refund asked about, or WeChat's refusal (an unverified answer is never believed; an
/// unverified refusal only ever refuses).
pub fn outcome(answer: &Answer<'_>, out_refund_no: &str) -> Result<RefundState, PayError> {
    let untrusted = |code: &'static str, reason: String| PayError::V3Untrusted { code, reason };
    if !(200..300).contains(&answer.status) {
        let error = ApiError::parse(answer.status, answer.body);
        // RESOURCE_NOT_EXISTS ends nothing by itself (the flow retries the create), but a
        // forged one could make us send a second request: believed only when signed.
        if error.code.as_str() == "RESOURCE_NOT_EXISTS"
            && let Err(e) = answer.verified
        {
            return Err(untrusted(
                e.code(),
                format!("an unverified RESOURCE_NOT_EXISTS answer: {e}"),
            ));
        }
        return Err(PayError::V3(Box::new(error)));
    }
    let verified: Verified<'_> = answer
        .verified
        .map_err(|e| untrusted(e.code(), format!("HTTP {}: {e}", answer.status)))?;
    let state = read_state(verified.body()).map_err(|e| untrusted(e.code(), e.to_string()))?;
    if state.out_refund_no != out_refund_no {
        return Err(untrusted(
            "FIELD_MISMATCH",
            format!(
                "the answer is about refund {} instead of {out_refund_no}",
                state.out_refund_no
            ),
        ));
    }
    Ok(state)
}

/// A verified REFUND.* notify, decrypted: the refund's state and the merchant it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundNotice {
    pub notify_id: String,
    pub event_type: String,
    pub mchid: String,
    pub state: RefundState,
}

/// Whether an envelope's event is a refund's.
pub fn is_refund_event(event_type: &str) -> bool {
    matches!(event_type, EVENT_SUCCESS | EVENT_ABNORMAL | EVENT_CLOSED)
}

/// Reads a verified REFUND.* notify (its envelope already parsed).
pub fn parse_notify(envelope: &Envelope, key: &ApiV3Key) -> Result<RefundNotice, NotifyV3Error> {
    let r = &envelope.resource;
    if !is_refund_event(&envelope.event_type) || r.original_type != "refund" {
        return Err(NotifyV3Error::UnexpectedEvent {
            event_type: envelope.event_type.clone(),
            original_type: r.original_type.clone(),
        });
    }
    if r.algorithm != ALGORITHM {
        return Err(NotifyV3Error::UnsupportedAlgorithm(r.algorithm.clone()));
    }
    let plain = aead::decrypt(key, &r.nonce, &r.associated_data, &r.ciphertext)?;
    #[derive(Deserialize)]
    struct Mchid {
        mchid: String,
    }
    let mchid: Mchid =
        serde_json::from_slice(&plain).map_err(|e| NotifyV3Error::BadTransaction(e.to_string()))?;
    let state = read_state(&plain).map_err(|e| NotifyV3Error::BadTransaction(e.to_string()))?;
    // The event and the status it carries must agree.
    if state.status.event() != Some(envelope.event_type.as_str()) {
        return Err(NotifyV3Error::BadTransaction(format!(
            "event {} carries refund_status {}",
            envelope.event_type, state.status
        )));
    }
    Ok(RefundNotice {
        notify_id: envelope.id.clone(),
        event_type: envelope.event_type.clone(),
        mchid: mchid.mchid,
        state,
    })
}

// WeChat's side, for wxsim and tests.

/// A refund request as WeChat reads it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ReceivedRefund {
    #[serde(default)]
    pub out_trade_no: Option<String>,
    #[serde(default)]
    pub transaction_id: Option<String>,
    pub out_refund_no: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub notify_url: Option<String>,
    pub amount: ReceivedAmount,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ReceivedAmount {
    pub refund: u64,
    pub total: u64,
    pub currency: String,
}

/// Reads a refund request's body as WeChat does (a malformed one is PARAM_ERROR).
pub fn parse_request(body: &[u8]) -> Result<ReceivedRefund, RefundError> {
    let r: ReceivedRefund =
        serde_json::from_slice(body).map_err(|e| RefundError::BadAnswer(e.to_string()))?;
    let mut p = Vec::new();
    if r.out_trade_no.is_none() && r.transaction_id.is_none() {
        p.push(problem(
            "out_trade_no",
            "one of out_trade_no and transaction_id is required",
        ));
    }
    if !is_valid_out_refund_no(&r.out_refund_no) {
        p.push(problem(
            "out_refund_no",
            "must be 1 to 64 characters of [0-9A-Za-z_-|*@]",
        ));
    }
    if r.amount.currency != "CNY" {
        p.push(problem("amount.currency", "must be CNY"));
    }
    if r.amount.refund == 0 {
        p.push(problem("amount.refund", "must be at least 1 (fen)"));
    }
    if p.is_empty() {
        Ok(r)
    } else {
        Err(RefundError::Invalid(p))
    }
}

fn state_json(s: &RefundState, mchid: Option<&str>, status_field: &str) -> serde_json::Value {
    let mut v = serde_json::json!({
        "refund_id": s.refund_id,
        "out_refund_no": s.out_refund_no,
        "transaction_id": s.transaction_id,
        "out_trade_no": s.out_trade_no,
        "user_received_account": s.user_received_account.clone().unwrap_or_else(|| "支付用户零钱".into()),
        "amount": {
            "total": s.total.get(), "refund": s.refund.get(),
            "payer_total": s.total.get(), "payer_refund": s.refund.get(),
        },
    });
    v[status_field] = s.status.as_str().into();
    if let Some(t) = &s.success_time {
        v["success_time"] = t.as_str().into();
    }
    if let Some(m) = mchid {
        v["mchid"] = m.into();
    }
    v
}

/// The create or query answer's body for `s`.
pub fn answer_body(s: &RefundState, create_time: &str) -> String {
    let mut v = state_json(s, None, "status");
    v["channel"] = "ORIGINAL".into();
    v["create_time"] = create_time.into();
    v["funds_account"] = "AVAILABLE".into();
    v["amount"]["currency"] = "CNY".into();
    v["amount"]["settlement_refund"] = s.refund.get().into();
    v["amount"]["settlement_total"] = s.total.get().into();
    v["amount"]["discount_refund"] = 0.into();
    v.to_string()
}

/// A REFUND.* notify's body for `s` (SUCCESS, CLOSED or ABNORMAL), its resource encrypted
/// as WeChat does; the sender signs it.
pub fn build_notify(
    key: &ApiV3Key,
    notify_id: &str,
    mchid: &str,
    s: &RefundState,
    create_time: &str,
    nonce: &str,
) -> Result<String, AeadError> {
    let event = s.status.event().unwrap_or(EVENT_SUCCESS);
    let plain = state_json(s, Some(mchid), "refund_status").to_string();
    let ciphertext = aead::encrypt(key, nonce, "refund", plain.as_bytes())?;
    let summary = match s.status {
        WechatRefundStatus::Success => "退款成功",
        WechatRefundStatus::Closed => "退款关闭",
        _ => "退款异常",
    };
    Ok(serde_json::json!({
        "id": notify_id, "create_time": create_time, "resource_type": "encrypt-resource",
        "event_type": event, "summary": summary,
        "resource": { "original_type": "refund", "algorithm": ALGORITHM,
            "ciphertext": ciphertext, "associated_data": "refund", "nonce": nonce },
    })
    .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> RefundRequest<'static> {
        RefundRequest {
            out_trade_no: "T0000001",
            out_refund_no: "R0000001",
            reason: Some("换货"),
            notify_url: "https://pay.shop.cn/notify/",
            refund: Fen::new(30),
            total: Fen::new(100),
        }
    }

    #[test]
    fn the_body_is_what_wechat_documents_and_reads_back() {
        let body = request_body(&req()).unwrap();
        assert_eq!(
            body,
            r#"{"out_trade_no":"T0000001","out_refund_no":"R0000001","reason":"换货","notify_url":"https://pay.shop.cn/notify/","amount":{"refund":30,"total":100,"currency":"CNY"}}"#
        );
        let r = parse_request(body.as_bytes()).unwrap();
        assert_eq!((r.amount.refund, r.amount.total), (30, 100));
    }

    #[test]
    fn every_problem_is_named_at_once() {
        let bad = RefundRequest {
            out_refund_no: "bad no",
            reason: Some("长"),
            notify_url: "https://x/?a=1",
            refund: Fen::new(101),
            ..req()
        };
        let Err(RefundError::Invalid(p)) = request_body(&bad) else {
            panic!()
        };
        let fields: Vec<_> = p.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["out_refund_no", "notify_url", "amount.refund"]);
        let zero = RefundRequest {
            refund: Fen::ZERO,
            ..req()
        };
        assert!(request_body(&zero).is_err());
        let long = "x".repeat(81);
        assert!(
            request_body(&RefundRequest {
                reason: Some(&long),
                ..req()
            })
            .is_err()
        );
    }

    #[test]
    fn the_answer_and_the_notify_read_alike() {
        let s = RefundState {
            out_refund_no: "R0000001".into(),
            out_trade_no: "T0000001".into(),
            refund_id: "50300".into(),
            transaction_id: "4200".into(),
            status: WechatRefundStatus::Success,
            refund: Fen::new(30),
            total: Fen::new(100),
            success_time: Some("2026-12-02T10:00:00+08:00".into()),
            user_received_account: None,
        };
        let back = read_state(answer_body(&s, "2026-12-02T09:59:00+08:00").as_bytes()).unwrap();
        assert_eq!(back.status, s.status);
        assert_eq!((back.refund, back.total), (s.refund, s.total));
        let key = ApiV3Key::new("a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb").unwrap();
        let body = build_notify(&key, "EV-1", "1900000109", &s, "t", "0123456789ab").unwrap();
        let envelope = Envelope::from_json(body.as_bytes()).unwrap();
        let n = parse_notify(&envelope, &key).unwrap();
        assert_eq!(
            (n.event_type.as_str(), n.mchid.as_str()),
            (EVENT_SUCCESS, "1900000109")
        );
        assert_eq!(n.state.refund, Fen::new(30));
        // An event that contradicts its status is not believed.
        let mut lying = envelope.clone();
        lying.event_type = EVENT_CLOSED.into();
        assert!(parse_notify(&lying, &key).is_err());
        assert_eq!(
            WechatRefundStatus::parse("CLOSE"),
            Some(WechatRefundStatus::Closed)
        );
        assert_eq!(
            query_path("R|1@x").unwrap(),
            "/v3/refund/domestic/refunds/R%7C1%40x"
        );
    }
}
