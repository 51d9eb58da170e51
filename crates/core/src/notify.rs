//! The payment notify (支付结果通知): WeChat POSTs signed XML to `notify_url`, retrying
//! until it reads `SUCCESS`.
//!
//! Trust is earned in order: parse strictly, verify the sign with the *merchant's
//! configured* algorithm (WeChat may leave `sign_type` out even for HMAC-SHA256
//! merchants, and the sender must not choose the algorithm), then check that appid,
//! mch_id, out_trade_no and total_fee match the order we hold. Only a notify that passes
//! all of that may move an order to PAID.

use thiserror::Error;

use crate::money::MoneyError;
use crate::pay::{Merchant, PayError};
use crate::sign::{self, SignError, SignType};
use crate::xml::{self, XmlError};
use crate::{ErrorCode, Fen, Params};

/// Why a notify must not be believed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NotifyError {
    #[error("notify is not valid WeChat XML: {0}")]
    Xml(#[from] XmlError),
    #[error("notify says return_code FAIL: {0}")]
    ReturnFail(String),
    #[error("notify failed its signature check: {0}")]
    Sign(#[from] SignError),
    #[error("notify lacks {0}")]
    MissingField(&'static str),
    #[error("notify total_fee is not an amount: {0}")]
    BadAmount(#[from] MoneyError),
    #[error("notify {field} is {found:?} but the order has {expected:?}")]
    Mismatch {
        field: &'static str,
        expected: String,
        found: String,
    },
}

impl ErrorCode for NotifyError {
    fn code(&self) -> &'static str {
        match self {
            NotifyError::Xml(e) => e.code(),
            NotifyError::ReturnFail(_) => "NOTIFY_RETURN_FAIL",
            NotifyError::Sign(e) => e.code(),
            NotifyError::MissingField(_) => "MISSING_FIELD",
            NotifyError::BadAmount(_) => "BAD_AMOUNT",
            NotifyError::Mismatch { .. } => "NOTIFY_MISMATCH",
        }
    }
}

/// What the payment came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Paid,
    /// `result_code` FAIL: the payment did not go through.
    Failed {
        err_code: String,
        err_code_des: String,
    },
}

/// A verified notify. Its fields are trustworthy *as WeChat's statement*; whether they
/// fit our order is [`Notify::check`]'s question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    pub appid: String,
    pub mch_id: String,
    pub out_trade_no: String,
    pub transaction_id: String,
    pub total_fee: Fen,
    pub openid: String,
    pub time_end: String,
    pub outcome: Outcome,
    /// Every field as received, for storage and audit.
    pub params: Params,
}

/// What we hold of the order a notify speaks of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectedPayment<'a> {
    pub appid: &'a str,
    pub mch_id: &'a str,
    pub out_trade_no: &'a str,
    pub total_fee: Fen,
}

/// Parses and verifies a notify body with the merchant's key and configured algorithm.
pub fn parse_notify(body: &[u8], key: &str, sign_type: SignType) -> Result<Notify, NotifyError> {
    let params = xml::parse_xml(body)?;
    if params.get("return_code").map(String::as_str) != Some("SUCCESS") {
        return Err(NotifyError::ReturnFail(
            params.get("return_msg").cloned().unwrap_or_default(),
        ));
    }
    sign::verify(&params, key, sign_type)?;
    let field = |k: &'static str| {
        params
            .get(k)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
            .ok_or(NotifyError::MissingField(k))
    };
    let optional = |k: &str| params.get(k).cloned().unwrap_or_default();
    let outcome = match field("result_code")? {
        "SUCCESS" => Outcome::Paid,
        _ => Outcome::Failed {
            err_code: optional("err_code"),
            err_code_des: optional("err_code_des"),
        },
    };
    let transaction_id = if outcome == Outcome::Paid {
        field("transaction_id")?.to_owned()
    } else {
        optional("transaction_id")
    };
    Ok(Notify {
        appid: field("appid")?.to_owned(),
        mch_id: field("mch_id")?.to_owned(),
        out_trade_no: field("out_trade_no")?.to_owned(),
        transaction_id,
        total_fee: Fen::parse(field("total_fee")?)?,
        openid: optional("openid"),
        time_end: optional("time_end"),
        outcome,
        params,
    })
}

impl Notify {
    /// Whether this notify is about the order we hold, to the fen.
    pub fn check(&self, expected: &ExpectedPayment<'_>) -> Result<(), NotifyError> {
        let mismatch = |field, expected: &str, found: &str| NotifyError::Mismatch {
            field,
            expected: expected.to_owned(),
            found: found.to_owned(),
        };
        if self.appid != expected.appid {
            return Err(mismatch("appid", expected.appid, &self.appid));
        }
        if self.mch_id != expected.mch_id {
            return Err(mismatch("mch_id", expected.mch_id, &self.mch_id));
        }
        if self.out_trade_no != expected.out_trade_no {
            return Err(mismatch(
                "out_trade_no",
                expected.out_trade_no,
                &self.out_trade_no,
            ));
        }
        if self.total_fee != expected.total_fee {
            return Err(mismatch(
                "total_fee",
                &expected.total_fee.to_string(),
                &self.total_fee.to_string(),
            ));
        }
        Ok(())
    }
}

/// WeChat's notify retry schedule in seconds: after the first attempt, it tries again
/// after each of these delays until it reads `SUCCESS` (15 retries over about 24 hours).
/// A receiver must therefore expect the same notify many times.
pub const RETRY_SCHEDULE_SECS: [u64; 15] = [
    15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800, 21600, 21600,
];

/// The answer that stops WeChat's retries.
pub fn reply_success() -> String {
    xml::write_xml([("return_code", "SUCCESS"), ("return_msg", "OK")].into_iter())
}

/// The answer that asks WeChat to retry later (or records why we refused).
pub fn reply_fail(reason: &str) -> String {
    xml::write_xml([("return_code", "FAIL"), ("return_msg", reason)].into_iter())
}

/// Whether a receiver's answer to a notify stops WeChat's retries: XML whose
/// `return_code` is `SUCCESS`. Anything else (FAIL, HTML, an empty body) means "again".
pub fn is_success_reply(body: &[u8]) -> bool {
    xml::parse_xml(body).is_ok_and(|p| p.get("return_code").map(String::as_str) == Some("SUCCESS"))
}

/// What a payment notify says, for the side that sends it (the simulator, tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaidNotice<'a> {
    pub out_trade_no: &'a str,
    pub transaction_id: &'a str,
    pub total_fee: Fen,
    pub openid: &'a str,
    /// `yyyyMMddHHmmss`.
    pub time_end: &'a str,
    pub nonce_str: &'a str,
    /// WeChat sometimes omits `sign_type` even for HMAC-SHA256; the simulator can too.
    pub include_sign_type: bool,
}

/// Builds the signed XML of a successful payment notify, as WeChat sends it.
pub fn build_paid_notify(merchant: &Merchant, notice: &PaidNotice<'_>) -> Result<String, PayError> {
    let mut p = Params::new();
    let fee = notice.total_fee.to_string();
    for (k, v) in [
        ("return_code", "SUCCESS"),
        ("result_code", "SUCCESS"),
        ("appid", merchant.appid.as_str()),
        ("mch_id", merchant.mch_id.as_str()),
        ("nonce_str", notice.nonce_str),
        ("openid", notice.openid),
        ("is_subscribe", "N"),
        ("trade_type", "JSAPI"),
        ("bank_type", "OTHERS"),
        ("fee_type", "CNY"),
        ("total_fee", fee.as_str()),
        ("cash_fee", fee.as_str()),
        ("transaction_id", notice.transaction_id),
        ("out_trade_no", notice.out_trade_no),
        ("time_end", notice.time_end),
    ] {
        p.insert(k.to_owned(), v.to_owned());
    }
    if notice.include_sign_type {
        p.insert("sign_type".into(), merchant.sign_type.as_str().into());
    }
    Ok(merchant.signed_xml(p)?)
}
