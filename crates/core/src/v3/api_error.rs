//! WeChat's APIv3 error answers: a 4xx/5xx (or 202) status with
//! `{"code": "...", "message": "...", "detail": {...}}`.
//!
//! The codes are those WeChat documents for JSAPI prepay, query by out_trade_no and close
//! (公共错误码 and 业务错误码 tables of 关闭订单 <https://pay.weixin.qq.com/doc/v3/merchant/4012556398>,
//! of the partner close-order page <https://pay.weixin.qq.com/docs/partner/apis/partner-miniprogram-payment/close-order.html>,
//! and the status table of <https://pay.weixin.qq.com/doc/global/v3/zh/4012354972>). A code
//! added later is kept as [`Code::Other`], never an error of ours.
//!
//! WeChat signs an answer only when it accepted the request's signature (签名验证:
//! "如果验证商户的请求签名正确，微信支付会在应答的HTTP头部中包括应答签名"), so a refusal
//! such as SIGN_ERROR may arrive unsigned: it is read from the raw bytes and only ever
//! refuses, never credits.

use serde::Deserialize;
use thiserror::Error;

use crate::ErrorCode;

/// A code WeChat answers with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Code {
    /// 400 参数错误.
    ParamError,
    /// 400 the request breaks the APIv3 rules, or 无效请求.
    InvalidRequest,
    /// 401 签名错误 / 验证不通过; `detail.sign_information` says what WeChat signed.
    SignError,
    /// 500 系统异常，请稍后重试.
    SystemError,
    /// 202 用户支付中，需要输入密码.
    UserPaying,
    /// 400 AppID和mch_id不匹配.
    AppidMchidNotMatch,
    /// 400 商户号不存在.
    MchNotExists,
    /// 400 订单已关闭.
    OrderClosed,
    /// 403 账号异常.
    AccountError,
    /// 403 商户无权限.
    NoAuth,
    /// 403 余额不足.
    NotEnough,
    /// 403 商户订单号重复.
    OutTradeNoUsed,
    /// 403 业务规则限制.
    RuleLimit,
    /// 403 交易错误.
    TradeError,
    /// 404 订单不存在.
    OrderNotExist,
    /// 429 频率超限.
    FrequencyLimited,
    /// 500 银行系统异常.
    BankError,
    /// 500 订单号非法.
    InvalidTransactionid,
    /// 500 OpenID和AppID不匹配.
    OpenidMismatch,
    /// A code this list does not know (or none, when the body was not WeChat's).
    Other(String),
}

const NAMES: &[(&str, Code)] = &[
    ("PARAM_ERROR", Code::ParamError),
    ("INVALID_REQUEST", Code::InvalidRequest),
    ("SIGN_ERROR", Code::SignError),
    ("SYSTEM_ERROR", Code::SystemError),
    ("USER_PAYING", Code::UserPaying),
    ("APPID_MCHID_NOT_MATCH", Code::AppidMchidNotMatch),
    ("MCH_NOT_EXISTS", Code::MchNotExists),
    ("ORDER_CLOSED", Code::OrderClosed),
    ("ACCOUNT_ERROR", Code::AccountError),
    ("NO_AUTH", Code::NoAuth),
    ("NOT_ENOUGH", Code::NotEnough),
    ("OUT_TRADE_NO_USED", Code::OutTradeNoUsed),
    ("RULE_LIMIT", Code::RuleLimit),
    ("TRADE_ERROR", Code::TradeError),
    ("ORDER_NOT_EXIST", Code::OrderNotExist),
    ("FREQUENCY_LIMITED", Code::FrequencyLimited),
    ("BANK_ERROR", Code::BankError),
    ("INVALID_TRANSACTIONID", Code::InvalidTransactionid),
    ("OPENID_MISMATCH", Code::OpenidMismatch),
];

impl Code {
    pub fn parse(s: &str) -> Code {
        NAMES
            .iter()
            .find(|(name, _)| *name == s)
            .map_or_else(|| Code::Other(s.to_owned()), |(_, c)| c.clone())
    }

    pub fn as_str(&self) -> &str {
        match self {
            Code::Other(s) => s,
            known => NAMES
                .iter()
                .find(|(_, c)| c == known)
                .map_or("", |(name, _)| name),
        }
    }
}

/// What WeChat wrote in `detail.sign_information` of a SIGN_ERROR: the message it built
/// from our request (truncated) and its length, the raw material of a v3 explain.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SignInformation {
    #[serde(default)]
    pub method: String,
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub sign_message_length: u64,
    #[serde(default)]
    pub truncated_sign_message: String,
}

/// A refusal from WeChat.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("WeChat Pay answered HTTP {status} {}: {message}", code.as_str())]
pub struct ApiError {
    pub status: u16,
    pub code: Code,
    pub message: String,
    /// `detail`, as WeChat sent it (its shape differs per code).
    pub detail: Option<serde_json::Value>,
}

impl ErrorCode for ApiError {
    fn code(&self) -> &'static str {
        "WECHAT_ERROR"
    }
}

#[derive(Deserialize)]
struct Wire {
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    detail: Option<serde_json::Value>,
}

impl ApiError {
    /// Reads an error answer. A body that is not WeChat's error JSON (a gateway's HTML, an
    /// empty 502) still gives an error, with code `Other("")`. Never panics.
    pub fn parse(status: u16, body: &[u8]) -> ApiError {
        match serde_json::from_slice::<Wire>(body) {
            Ok(w) => ApiError {
                status,
                code: Code::parse(&w.code),
                message: w.message,
                detail: w.detail,
            },
            Err(_) => ApiError {
                status,
                code: Code::Other(String::new()),
                message: format!("HTTP {status} without a WeChat error body"),
                detail: None,
            },
        }
    }

    /// Whether the same request may succeed later (WeChat's "请稍后重试" answers and
    /// overload), so a flow keeps the order open and asks again.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.code,
            Code::SystemError | Code::BankError | Code::FrequencyLimited | Code::UserPaying
        ) || self.status == 429
            || self.status >= 500
    }

    /// `detail.sign_information` of a SIGN_ERROR, when WeChat gave one.
    pub fn sign_information(&self) -> Option<SignInformation> {
        let info = self.detail.as_ref()?.get("sign_information")?;
        serde_json::from_value(info.clone()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_code_round_trips() {
        for (name, code) in NAMES {
            assert_eq!(Code::parse(name), *code);
            assert_eq!(code.as_str(), *name);
        }
        assert_eq!(Code::parse("NEW_ONE"), Code::Other("NEW_ONE".into()));
    }

    #[test]
    fn a_sign_error_keeps_what_wechat_signed() {
        // The shape of a real answer quoted in WeChat's community
        // (https://developers.weixin.qq.com/community/pay/doc/00004839bf4710761b8fd15dc51000).
        let body = r#"{"code":"SIGN_ERROR","detail":{"detail":{"issue":"sign not match"},"field":"signature","location":"authorization","sign_information":{"method":"GET","sign_message_length":85,"truncated_sign_message":"GET\n/v3/certificates?algorithm_type=RSA\n1680144553\nvDit3y4Fmv45dem0CSmKbBK4tUHRR8Dj\n\n","url":"/v3/certificates?algorithm_type=RSA"}},"message":"错误的签名，验签失败"}"#;
        let e = ApiError::parse(401, body.as_bytes());
        assert_eq!(e.code, Code::SignError);
        assert!(!e.is_transient());
        let info = e.sign_information().unwrap();
        assert_eq!(info.sign_message_length, 85);
        assert!(info.truncated_sign_message.ends_with("\n\n"));
    }

    #[test]
    fn a_gateway_page_is_still_an_error() {
        let e = ApiError::parse(502, b"<html>bad gateway</html>");
        assert_eq!(e.code, Code::Other(String::new()));
        assert!(e.is_transient());
    }
}
