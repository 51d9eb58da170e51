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
use crate::json::{self, Object};

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

impl ApiError {
    /// Reads an error answer. A body that is not WeChat's error JSON (a gateway's HTML, an
    /// empty 502) still gives an error, with code `Other("")`. Never panics.
    pub fn parse(status: u16, body: &[u8]) -> ApiError {
        // `{code, message?, detail?}`: the same reading as every v3 body (`v3::json`).
        let wire = json::object(body).and_then(|fields| {
            let o = Object::new(&fields, "");
            Ok((
                o.string("code")?,
                o.string_or_empty("message")?,
                o.opt_value("detail"),
            ))
        });
        match wire {
            Ok((code, message, detail)) => ApiError {
                status,
                code: Code::parse(&code),
                message,
                detail,
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

impl Code {
    /// The HTTP status WeChat answers this code with (the status column of the tables the
    /// module docs cite; a code they do not list is a 400).
    pub fn status(&self) -> u16 {
        match self {
            Code::SignError => 401,
            Code::UserPaying => 202,
            Code::AccountError
            | Code::NoAuth
            | Code::NotEnough
            | Code::OutTradeNoUsed
            | Code::RuleLimit
            | Code::TradeError => 403,
            Code::OrderNotExist => 404,
            Code::FrequencyLimited => 429,
            Code::SystemError
            | Code::BankError
            | Code::InvalidTransactionid
            | Code::OpenidMismatch => 500,
            Code::ParamError
            | Code::InvalidRequest
            | Code::AppidMchidNotMatch
            | Code::MchNotExists
            | Code::OrderClosed
            | Code::Other(_) => 400,
        }
    }
}

/// How much of the body WeChat keeps in `truncated_sign_message`: every answer WeChat's
/// community threads show keeps 8 bytes of the body line (`{"mchid"`, `{"appid"`,
/// `{"amount`), then the line's `\n`.
const TRUNCATED_BODY_BYTES: usize = 8;

impl ApiError {
    /// An error answer as WeChat writes it (for wxsim): `code`'s own status.
    pub fn new(code: Code, message: &str) -> ApiError {
        ApiError {
            status: code.status(),
            code,
            message: message.to_owned(),
            detail: None,
        }
    }

    /// The 401 SIGN_ERROR WeChat answers when a request's signature does not verify, with
    /// `detail.sign_information` built from `message`, the message WeChat rebuilt from the
    /// request (its four first lines whole, the body line cut to 8 bytes;
    /// `sign_message_length` the whole message's bytes). The shape is the one on the wire
    /// (`detail.detail.issue`, `field`, `location`, `sign_information{method, url,
    /// sign_message_length, truncated_sign_message}`), as WeChat's answers quoted in
    /// <https://developers.weixin.qq.com/community/pay/doc/000a4ed764c330a1ff4c57d4b5bc00> and
    /// <https://developers.weixin.qq.com/community/pay/doc/000ea00b1bcb181c9979d671e56400> show
    /// it; the fields are described in 如何定位"错误的签名，导致验签失败"的错误,
    /// <https://wechatpay-api.gitbook.io/wechatpay-api-v3/chang-jian-wen-ti/qian-ming-xiang-guan>.
    pub fn sign_mismatch(method: &str, url: &str, message: &[u8]) -> ApiError {
        let mut head_end = 0;
        for _ in 0..4 {
            head_end += message[head_end..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(message.len() - head_end, |i| i + 1);
        }
        let body = &message[head_end..];
        let body = body.strip_suffix(b"\n").unwrap_or(body);
        let mut cut = body.len().min(TRUNCATED_BODY_BYTES);
        while cut > 0 && std::str::from_utf8(&body[..cut]).is_err() {
            cut -= 1;
        }
        let mut truncated = String::from_utf8_lossy(&message[..head_end]).into_owned();
        truncated.push_str(&String::from_utf8_lossy(&body[..cut]));
        truncated.push('\n');
        ApiError {
            status: 401,
            code: Code::SignError,
            message: "错误的签名，验签失败".to_owned(),
            detail: Some(serde_json::json!({
                "detail": { "issue": "sign not match" },
                "field": "signature",
                "location": "authorization",
                "sign_information": {
                    "method": method,
                    "sign_message_length": message.len(),
                    "truncated_sign_message": truncated,
                    "url": url,
                },
            })),
        }
    }

    /// The answer's JSON body: `{"code","message"}` and `detail` when there is one.
    pub fn to_body(&self) -> String {
        let mut v = serde_json::json!({ "code": self.code.as_str(), "message": self.message });
        if let Some(d) = &self.detail {
            v["detail"] = d.clone();
        }
        v.to_string()
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
    #[test]
    fn a_sign_mismatch_reads_back_as_wechat_wrote_it() {
        let m = b"POST\n/v3/pay/transactions/jsapi\n1756951532\nIXlH\n{\"amount\":{\"total\":1}}\n";
        let e = ApiError::sign_mismatch("POST", "/v3/pay/transactions/jsapi", m);
        let back = ApiError::parse(401, e.to_body().as_bytes());
        assert_eq!(back.code, Code::SignError);
        let info = back.sign_information().unwrap();
        assert_eq!(info.sign_message_length, m.len() as u64);
        assert_eq!(
            info.truncated_sign_message,
            "POST\n/v3/pay/transactions/jsapi\n1756951532\nIXlH\n{\"amount\n"
        );
        let get = ApiError::sign_mismatch("GET", "/v3/x?a=1", b"GET\n/v3/x?a=1\n1\nn\n\n");
        assert!(
            get.to_body()
                .contains(r#""truncated_sign_message":"GET\n/v3/x?a=1\n1\nn\n\n""#)
        );
        assert_eq!(ApiError::new(Code::OrderNotExist, "订单不存在").status, 404);
    }
}
