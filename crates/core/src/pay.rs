//! WeChat Pay v2 for mini-programs: unifiedorder, the wx.requestPayment parameters,
//! orderquery and closeorder.
//!
//! A [`Merchant`] holds what every request needs (appid, mch_id, API key, sign type).
//! Each call has a builder that returns the signed XML to POST and a judge that takes the
//! answer's bytes. Field limits are checked *before* sending, all at once, so a developer
//! sees every problem in one go instead of one PARAM_ERROR per round trip.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;
use thiserror::Error;

use crate::money::MoneyError;
use crate::sign::{self, SignError, SignType};
use crate::xml::{self, XmlError};
use crate::{ErrorCode, Fen, Params};

/// One problem with one field of a request, for people to read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldProblem {
    pub field: String,
    pub problem: String,
}

impl FieldProblem {
    fn new(field: &str, problem: impl Into<String>) -> Self {
        FieldProblem {
            field: field.to_owned(),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.problem)
    }
}

/// Why a pay call failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PayError {
    #[error("invalid request: {}", join(.0))]
    Invalid(Vec<FieldProblem>),
    #[error("WeChat Pay answer is not valid XML: {0}")]
    Xml(#[from] XmlError),
    #[error("WeChat Pay refused the call (return_code FAIL): {return_msg}")]
    Communication { return_msg: String },
    #[error("WeChat Pay answer failed its signature check: {0}")]
    Sign(#[from] SignError),
    #[error("WeChat Pay answered err_code {err_code}: {err_code_des}")]
    Business {
        err_code: String,
        err_code_des: String,
    },
    #[error("{0} is missing")]
    MissingField(&'static str),
    #[error("{field} is {found:?}, expected {expected:?}")]
    Mismatch {
        field: &'static str,
        expected: String,
        found: String,
    },
    #[error("{field} is invalid: {reason}")]
    BadField { field: &'static str, reason: String },
    /// APIv3: WeChat refused the call (`{code, message, detail}`).
    #[error("{0}")]
    V3(Box<crate::v3::api_error::ApiError>),
    /// APIv3: an answer that failed verification or is not the documented JSON. Nothing
    /// is known from it, as with a v2 answer whose sign is wrong.
    #[error("WeChat Pay's APIv3 answer cannot be trusted ({code}): {reason}")]
    V3Untrusted { code: &'static str, reason: String },
    /// v2 下载交易账单 refused (`return_code FAIL` with its own `error_code`, unsigned like
    /// every `return_code FAIL`), for any reason but "no bill that day", which is
    /// [`DownloadBill::NoBill`]. `error_code` is empty when WeChat gave none.
    #[error("WeChat Pay refused the bill (error_code {error_code:?}): {return_msg}")]
    BillRefused {
        error_code: String,
        return_msg: String,
    },
}

/// What a refusal tells a money flow, whichever API said it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Said {
    /// The order is closed at WeChat (v2 ORDERCLOSED, v3 ORDER_CLOSED).
    Closed,
    /// WeChat holds no such order (v2 ORDERNOTEXIST, v3 ORDER_NOT_EXIST).
    NotFound,
    /// The order is paid (v2 ORDERPAID): orderquery will say how.
    Paid,
    /// Try again later (SYSTEMERROR, BANKERROR, USERPAYING, FREQUENCY_LIMITED; v3's
    /// transient codes and 429/5xx).
    Busy,
}

fn join(problems: &[FieldProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl ErrorCode for PayError {
    fn code(&self) -> &'static str {
        match self {
            PayError::Invalid(_) => "INVALID_PARAMS",
            PayError::Xml(e) => e.code(),
            PayError::Communication { .. } => "WECHAT_RETURN_FAIL",
            PayError::Sign(e) => e.code(),
            PayError::Business { .. } => "WECHAT_ERROR",
            PayError::MissingField(_) => "MISSING_FIELD",
            PayError::Mismatch { .. } => "FIELD_MISMATCH",
            PayError::BadField { .. } => "BAD_FIELD",
            PayError::V3(e) => e.code(),
            PayError::V3Untrusted { code, .. } => code,
            // A refusal of the call itself, as `Communication` is (the npm package's list
            // of codes stays as it is).
            PayError::BillRefused { .. } => "WECHAT_RETURN_FAIL",
        }
    }
}

impl PayError {
    /// WeChat's business error code, when WeChat gave one (`ORDERPAID`, `SYSTEMERROR`…;
    /// APIv3's `code`, e.g. `ORDER_CLOSED`).
    pub fn err_code(&self) -> Option<&str> {
        match self {
            PayError::Business { err_code, .. } => Some(err_code),
            PayError::V3(e) => Some(e.code.as_str()),
            _ => None,
        }
    }

    /// WeChat's words for people: v2 `err_code_des`, v3 `message`.
    pub fn err_code_des(&self) -> Option<&str> {
        match self {
            PayError::Business { err_code_des, .. } => Some(err_code_des),
            PayError::V3(e) => Some(&e.message),
            _ => None,
        }
    }

    /// What the refusal means to a flow (`None`: a refusal that settles nothing).
    pub fn said(&self) -> Option<Said> {
        use crate::v3::api_error::Code;
        match self {
            PayError::Business { err_code, .. } => match err_code.as_str() {
                "ORDERCLOSED" => Some(Said::Closed),
                "ORDERNOTEXIST" => Some(Said::NotFound),
                "ORDERPAID" => Some(Said::Paid),
                "SYSTEMERROR" | "BANKERROR" | "USERPAYING" | "FREQUENCY_LIMITED" => {
                    Some(Said::Busy)
                }
                _ => None,
            },
            PayError::V3(e) => match e.code {
                Code::OrderClosed => Some(Said::Closed),
                Code::OrderNotExist => Some(Said::NotFound),
                _ if e.is_transient() => Some(Said::Busy),
                _ => None,
            },
            // 下载交易账单's error table: SYSTEMERROR (下载失败) and Bill Creating (账单未生成:
            // made after 9:00 the next day) are worth asking again.
            PayError::BillRefused { return_msg, .. }
                if return_msg.eq_ignore_ascii_case("SYSTEMERROR")
                    || return_msg.eq_ignore_ascii_case("Bill Creating") =>
            {
                Some(Said::Busy)
            }
            _ => None,
        }
    }

    /// Whether retrying the same request later may succeed.
    pub fn is_transient(&self) -> bool {
        self.said() == Some(Said::Busy)
    }
}

/// `trade_type` of unifiedorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TradeType {
    /// Mini-programs and official accounts; needs `openid`.
    #[default]
    Jsapi,
    /// QR code; needs `product_id`.
    Native,
    App,
    Mweb,
}

impl TradeType {
    pub const fn as_str(self) -> &'static str {
        match self {
            TradeType::Jsapi => "JSAPI",
            TradeType::Native => "NATIVE",
            TradeType::App => "APP",
            TradeType::Mweb => "MWEB",
        }
    }
}

/// A merchant's credentials. `Debug` never prints the key.
#[derive(Clone, PartialEq, Eq)]
pub struct Merchant {
    pub appid: String,
    pub mch_id: String,
    /// The 32-character API key from the merchant platform (not the AppSecret).
    pub key: String,
    pub sign_type: SignType,
}

impl fmt::Debug for Merchant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Merchant")
            .field("appid", &self.appid)
            .field("mch_id", &self.mch_id)
            .field("key", &"<redacted>")
            .field("sign_type", &self.sign_type)
            .finish()
    }
}

/// What a mini-program order asks unifiedorder for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnifiedOrder {
    /// Shown to the payer; ≤ 128 bytes.
    pub body: String,
    pub out_trade_no: String,
    pub total_fee: Fen,
    /// The payer's IP (`CF-Connecting-IP` at the edge).
    pub spbill_create_ip: String,
    /// Where WeChat POSTs the notify; http(s), no query string.
    pub notify_url: String,
    pub trade_type: TradeType,
    /// Required for JSAPI.
    pub openid: Option<String>,
    pub attach: Option<String>,
    /// `yyyyMMddHHmmss`, Beijing time.
    pub time_expire: Option<String>,
}

/// What unifiedorder gives back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepay {
    /// Valid 2 hours.
    pub prepay_id: String,
    pub trade_type: String,
    /// NATIVE only.
    pub code_url: Option<String>,
}

/// The five fields of `wx.requestPayment`, plus the appId they were signed with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentParams {
    pub app_id: String,
    pub time_stamp: String,
    pub nonce_str: String,
    pub package: String,
    pub sign_type: String,
    pub pay_sign: String,
}

/// `trade_state` of orderquery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TradeState {
    Success,
    Refund,
    NotPay,
    Closed,
    Revoked,
    UserPaying,
    PayError,
    /// A state WeChat added after this code was written; treated as not paid.
    Other(String),
}

impl TradeState {
    pub fn parse(s: &str) -> TradeState {
        match s {
            "SUCCESS" => TradeState::Success,
            "REFUND" => TradeState::Refund,
            "NOTPAY" => TradeState::NotPay,
            "CLOSED" => TradeState::Closed,
            "REVOKED" => TradeState::Revoked,
            "USERPAYING" => TradeState::UserPaying,
            "PAYERROR" => TradeState::PayError,
            other => TradeState::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            TradeState::Success => "SUCCESS",
            TradeState::Refund => "REFUND",
            TradeState::NotPay => "NOTPAY",
            TradeState::Closed => "CLOSED",
            TradeState::Revoked => "REVOKED",
            TradeState::UserPaying => "USERPAYING",
            TradeState::PayError => "PAYERROR",
            TradeState::Other(s) => s,
        }
    }
}

/// What orderquery says of an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderQuery {
    pub out_trade_no: String,
    pub trade_state: TradeState,
    /// Present when the order was paid.
    pub total_fee: Option<Fen>,
    pub transaction_id: Option<String>,
    pub openid: Option<String>,
    pub time_end: Option<String>,
}

/// Characters WeChat allows in `out_trade_no`.
pub fn is_valid_out_trade_no(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'|' | b'*'))
}

fn is_wechat_time(s: &str) -> bool {
    if s.len() != 14 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let n = |r: std::ops::Range<usize>| s[r].parse::<u32>().unwrap_or(u32::MAX);
    let (mo, d, h, mi, se) = (n(4..6), n(6..8), n(8..10), n(10..12), n(12..14));
    (1..=12).contains(&mo) && (1..=31).contains(&d) && h < 24 && mi < 60 && se < 60
}

/// A Unix time (seconds) as WeChat writes times: `yyyyMMddHHmmss` in Beijing time
/// (UTC+8, no daylight saving), e.g. for `time_expire` and `time_end`. The caller reads
/// the clock; the core only formats.
pub fn wechat_time(unix_secs: i64) -> String {
    let t = unix_secs + 8 * 3600;
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days: proleptic Gregorian date of a day count.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}{:02}{:02}{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Every problem of a unifiedorder parameter map, at once (WeChat's documented limits;
/// lengths are in bytes of UTF-8, as WeChat counts them). Needs no key: `sign`, if
/// present, is only checked for shape.
pub fn validate_unified_order(params: &Params) -> Vec<FieldProblem> {
    let mut problems = Vec::new();
    let get = |k: &str| params.get(k).map(String::as_str).filter(|v| !v.is_empty());
    for field in [
        "appid",
        "mch_id",
        "nonce_str",
        "body",
        "out_trade_no",
        "total_fee",
        "spbill_create_ip",
        "notify_url",
        "trade_type",
    ] {
        if get(field).is_none() {
            problems.push(FieldProblem::new(field, "is required"));
        }
    }
    for (field, max) in [
        ("appid", 32),
        ("mch_id", 32),
        ("device_info", 32),
        ("nonce_str", 32),
        ("sign", 64),
        ("body", 128),
        ("detail", 6000),
        ("attach", 127),
        ("fee_type", 16),
        ("spbill_create_ip", 64),
        ("goods_tag", 32),
        ("notify_url", 256),
        ("product_id", 32),
        ("openid", 128),
        ("scene_info", 256),
    ] {
        if let Some(v) = get(field)
            && v.len() > max
        {
            problems.push(FieldProblem::new(
                field,
                format!("is {} bytes, at most {max} allowed", v.len()),
            ));
        }
    }
    if let Some(v) = get("out_trade_no")
        && !is_valid_out_trade_no(v)
    {
        problems.push(FieldProblem::new(
            "out_trade_no",
            "must be 1 to 32 characters of [0-9A-Za-z_-|*]",
        ));
    }
    if let Some(v) = get("total_fee") {
        match Fen::parse(v) {
            Ok(f) if f.get() >= 1 => {}
            Ok(_) => problems.push(FieldProblem::new("total_fee", "must be at least 1 (fen)")),
            Err(e) => problems.push(FieldProblem::new("total_fee", money_problem(&e))),
        }
    }
    if let Some(v) = get("fee_type")
        && v != "CNY"
    {
        problems.push(FieldProblem::new("fee_type", "must be CNY"));
    }
    if let Some(v) = get("spbill_create_ip")
        && v.parse::<IpAddr>().is_err()
    {
        problems.push(FieldProblem::new(
            "spbill_create_ip",
            "must be an IPv4 or IPv6 address",
        ));
    }
    if let Some(v) = get("notify_url") {
        if !(v.starts_with("http://") || v.starts_with("https://")) || v.len() <= "https://".len() {
            problems.push(FieldProblem::new(
                "notify_url",
                "must be an absolute http:// or https:// URL",
            ));
        }
        if v.contains('?') {
            problems.push(FieldProblem::new(
                "notify_url",
                "must not carry a query string (WeChat drops it)",
            ));
        }
    }
    if let Some(v) = get("sign_type")
        && v.parse::<SignType>().is_err()
    {
        problems.push(FieldProblem::new("sign_type", "must be MD5 or HMAC-SHA256"));
    }
    match get("trade_type") {
        Some("JSAPI") if get("openid").is_none() => {
            problems.push(FieldProblem::new("openid", "is required for JSAPI"));
        }
        Some("NATIVE") if get("product_id").is_none() => {
            problems.push(FieldProblem::new("product_id", "is required for NATIVE"));
        }
        Some("JSAPI" | "NATIVE" | "APP" | "MWEB") | None => {}
        Some(_) => problems.push(FieldProblem::new(
            "trade_type",
            "must be JSAPI, NATIVE, APP or MWEB",
        )),
    }
    for field in ["time_start", "time_expire"] {
        if let Some(v) = get(field)
            && !is_wechat_time(v)
        {
            problems.push(FieldProblem::new(field, "must be yyyyMMddHHmmss"));
        }
    }
    if let (Some(start), Some(expire)) = (get("time_start"), get("time_expire"))
        && is_wechat_time(start)
        && is_wechat_time(expire)
        && expire <= start
    {
        problems.push(FieldProblem::new(
            "time_expire",
            "must be later than time_start",
        ));
    }
    if let Some(v) = get("limit_pay")
        && v != "no_credit"
    {
        problems.push(FieldProblem::new("limit_pay", "must be no_credit"));
    }
    if let Some(v) = get("receipt")
        && v != "Y"
    {
        problems.push(FieldProblem::new("receipt", "must be Y"));
    }
    if let Some(v) = get("profit_sharing")
        && v != "Y"
        && v != "N"
    {
        problems.push(FieldProblem::new("profit_sharing", "must be Y or N"));
    }
    problems
}

fn money_problem(e: &MoneyError) -> String {
    format!("must be a whole number of fen: {e}")
}

fn put(params: &mut Params, k: &str, v: impl Into<String>) {
    params.insert(k.to_owned(), v.into());
}

impl Merchant {
    /// The common head of every request: appid, mch_id, nonce_str, sign_type.
    fn head(&self, nonce_str: &str) -> Params {
        let mut p = Params::new();
        put(&mut p, "appid", &self.appid);
        put(&mut p, "mch_id", &self.mch_id);
        put(&mut p, "nonce_str", nonce_str);
        put(&mut p, "sign_type", self.sign_type.as_str());
        p
    }

    /// Signs `params` and writes them as XML (keys must be valid XML names).
    pub fn signed_xml(&self, mut params: Params) -> Result<String, XmlError> {
        sign::sign_into(&mut params, &self.key, self.sign_type);
        xml::to_xml(&params)
    }

    /// The unifiedorder parameters, unsigned, for inspection.
    pub fn unified_order_params(&self, order: &UnifiedOrder, nonce_str: &str) -> Params {
        let mut p = self.head(nonce_str);
        put(&mut p, "body", &order.body);
        put(&mut p, "out_trade_no", &order.out_trade_no);
        put(&mut p, "total_fee", order.total_fee.to_string());
        put(&mut p, "spbill_create_ip", &order.spbill_create_ip);
        put(&mut p, "notify_url", &order.notify_url);
        put(&mut p, "trade_type", order.trade_type.as_str());
        for (k, v) in [
            ("openid", &order.openid),
            ("attach", &order.attach),
            ("time_expire", &order.time_expire),
        ] {
            if let Some(v) = v {
                put(&mut p, k, v);
            }
        }
        p
    }

    /// The signed XML body to POST to `/pay/unifiedorder`, or every problem of the order.
    pub fn unified_order_request(
        &self,
        order: &UnifiedOrder,
        nonce_str: &str,
    ) -> Result<String, PayError> {
        let params = self.unified_order_params(order, nonce_str);
        let problems = validate_unified_order(&params);
        if !problems.is_empty() {
            return Err(PayError::Invalid(problems));
        }
        Ok(self.signed_xml(params)?)
    }

    /// Judges any v2 answer: return_code, then the sign (with our configured algorithm),
    /// then appid/mch_id are ours, then result_code. Only then are its fields trusted.
    pub fn judge_answer(&self, body: &[u8]) -> Result<Params, PayError> {
        let params = xml::parse_xml(body)?;
        if params.get("return_code").map(String::as_str) != Some("SUCCESS") {
            return Err(PayError::Communication {
                return_msg: params
                    .get("return_msg")
                    .cloned()
                    .unwrap_or_else(|| "no return_msg".into()),
            });
        }
        sign::verify(&params, &self.key, self.sign_type)?;
        self.check_ours(&params)?;
        if params.get("result_code").map(String::as_str) != Some("SUCCESS") {
            return Err(PayError::Business {
                err_code: params.get("err_code").cloned().unwrap_or_default(),
                err_code_des: params.get("err_code_des").cloned().unwrap_or_default(),
            });
        }
        Ok(params)
    }

    /// A signed message about another app or merchant is not about us, whatever it says.
    pub(crate) fn check_ours(&self, params: &Params) -> Result<(), PayError> {
        for (field, ours) in [("appid", &self.appid), ("mch_id", &self.mch_id)] {
            if let Some(theirs) = params.get(field)
                && theirs != ours
            {
                return Err(PayError::Mismatch {
                    field,
                    expected: ours.clone(),
                    found: theirs.clone(),
                });
            }
        }
        Ok(())
    }

    /// Reads unifiedorder's answer.
    pub fn parse_unified_order_response(&self, body: &[u8]) -> Result<Prepay, PayError> {
        let mut p = self.judge_answer(body)?;
        let prepay_id = p
            .remove("prepay_id")
            .filter(|s| !s.is_empty())
            .ok_or(PayError::MissingField("prepay_id"))?;
        Ok(Prepay {
            prepay_id,
            trade_type: p.remove("trade_type").unwrap_or_default(),
            code_url: p.remove("code_url"),
        })
    }

    /// The `wx.requestPayment` fields for a prepay_id: the second sign, over `appId`,
    /// `timeStamp`, `nonceStr`, `package`, `signType` (camelCase, as the app checks
    /// them), with the same API key. `timestamp` is Unix seconds, handed in by the caller.
    pub fn payment_params(
        &self,
        prepay_id: &str,
        timestamp: i64,
        nonce_str: &str,
    ) -> PaymentParams {
        payment_params(
            &self.appid,
            prepay_id,
            &self.key,
            self.sign_type,
            timestamp,
            nonce_str,
        )
    }

    /// The signed XML body of `/pay/orderquery`.
    pub fn order_query_request(
        &self,
        out_trade_no: &str,
        nonce_str: &str,
    ) -> Result<String, PayError> {
        self.by_out_trade_no(out_trade_no, nonce_str)
    }

    /// The signed XML body of `/pay/closeorder`.
    pub fn close_order_request(
        &self,
        out_trade_no: &str,
        nonce_str: &str,
    ) -> Result<String, PayError> {
        self.by_out_trade_no(out_trade_no, nonce_str)
    }

    fn by_out_trade_no(&self, out_trade_no: &str, nonce_str: &str) -> Result<String, PayError> {
        if !is_valid_out_trade_no(out_trade_no) {
            return Err(PayError::Invalid(vec![FieldProblem::new(
                "out_trade_no",
                "must be 1 to 32 characters of [0-9A-Za-z_-|*]",
            )]));
        }
        let mut p = self.head(nonce_str);
        put(&mut p, "out_trade_no", out_trade_no);
        Ok(self.signed_xml(p)?)
    }

    /// Reads orderquery's answer.
    pub fn parse_order_query_response(&self, body: &[u8]) -> Result<OrderQuery, PayError> {
        let mut p = self.judge_answer(body)?;
        let trade_state = p
            .remove("trade_state")
            .map(|s| TradeState::parse(&s))
            .ok_or(PayError::MissingField("trade_state"))?;
        let total_fee = match p.remove("total_fee").filter(|s| !s.is_empty()) {
            Some(s) => Some(Fen::parse(&s).map_err(|e| PayError::BadField {
                field: "total_fee",
                reason: e.to_string(),
            })?),
            None => None,
        };
        if trade_state == TradeState::Success && total_fee.is_none() {
            return Err(PayError::MissingField("total_fee"));
        }
        Ok(OrderQuery {
            out_trade_no: p
                .remove("out_trade_no")
                .ok_or(PayError::MissingField("out_trade_no"))?,
            trade_state,
            total_fee,
            transaction_id: p.remove("transaction_id"),
            openid: p.remove("openid"),
            time_end: p.remove("time_end"),
        })
    }

    /// Reads closeorder's answer: `Ok` when closed; WeChat's ORDERPAID / ORDERCLOSED come
    /// back as [`PayError::Business`].
    pub fn parse_close_order_response(&self, body: &[u8]) -> Result<(), PayError> {
        self.judge_answer(body).map(drop)
    }

    /// The signed XML body of `POST /pay/downloadbill` for the whole day's ALL bill,
    /// gzipped (`tar_type=GZIP`: a 100,000-row bill is ~25 MB of text, a tenth of that
    /// compressed). `bill_date` is v2's `yyyyMMdd` ([`crate::bill::to_v2_bill_date`]
    /// converts v3's `YYYY-MM-DD`). Signed with the configured algorithm, `sign_type` sent.
    pub fn download_bill_request(
        &self,
        bill_date: &str,
        nonce_str: &str,
    ) -> Result<String, PayError> {
        if crate::bill::from_v2_bill_date(bill_date).is_none() {
            return Err(PayError::Invalid(vec![FieldProblem::new(
                "bill_date",
                "must be a calendar date as yyyyMMdd (8 digits)",
            )]));
        }
        let mut p = self.head(nonce_str);
        put(&mut p, "bill_date", bill_date);
        put(&mut p, "bill_type", "ALL");
        put(&mut p, "tar_type", "GZIP");
        Ok(self.signed_xml(p)?)
    }

    /// Reads 下载交易账单's answer (<https://pay.weixin.qq.com/doc/v2/merchant/4011985040>):
    /// on success the bill itself (no XML, no sign: its content is checked by its summary
    /// when parsed, [`crate::bill::BillParser`]), on failure an unsigned `<xml>` with
    /// `return_code FAIL`, `return_msg` and `error_code`. Told apart by the first bytes: a
    /// gzip member starts 0x1f 0x8b, the failure with `<xml`, anything else is the plain
    /// table. `error_code 20002` (return_msg `No Bill Exist`: no trade that day, observed
    /// in WeChat's developer community) is [`DownloadBill::NoBill`]; every other failure
    /// is [`PayError::BillRefused`].
    pub fn parse_download_bill_response<'a>(
        &self,
        body: &'a [u8],
    ) -> Result<DownloadBill<'a>, PayError> {
        if body.starts_with(&[0x1f, 0x8b]) {
            return Ok(DownloadBill::File { body, gzip: true });
        }
        let start = body
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(body.len());
        let text = &body[start..];
        let text = text.strip_prefix("\u{feff}".as_bytes()).unwrap_or(text);
        if text.is_empty() {
            return Err(PayError::MissingField("bill"));
        }
        if !text.starts_with(b"<xml") {
            return Ok(DownloadBill::File { body, gzip: false });
        }
        let mut p = xml::parse_xml(text)?;
        if p.get("return_code").map(String::as_str) != Some("FAIL") {
            return Err(PayError::BadField {
                field: "return_code",
                reason: "an XML answer to downloadbill that is not return_code FAIL holds no bill"
                    .into(),
            });
        }
        let error_code = p.remove("error_code").unwrap_or_default();
        let return_msg = p.remove("return_msg").unwrap_or_default();
        if error_code == NO_BILL_ERROR_CODE || return_msg.eq_ignore_ascii_case("No Bill Exist") {
            return Ok(DownloadBill::NoBill);
        }
        Err(PayError::BillRefused {
            error_code,
            return_msg,
        })
    }
}

/// Where v2's bill is downloaded.
pub const DOWNLOAD_BILL_PATH: &str = "/pay/downloadbill";

/// 下载交易账单's `error_code` for a day without trade (`No Bill Exist`).
pub const NO_BILL_ERROR_CODE: &str = "20002";

/// What v2 下载交易账单 gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownloadBill<'a> {
    /// The bill: gzipped (inflate it first) or the plain table; then
    /// [`crate::bill::BillParser`].
    File { body: &'a [u8], gzip: bool },
    /// No trade that day: an empty bill, nothing to reconcile.
    NoBill,
}

/// The `wx.requestPayment` fields (see [`Merchant::payment_params`]).
pub fn payment_params(
    appid: &str,
    prepay_id: &str,
    key: &str,
    sign_type: SignType,
    timestamp: i64,
    nonce_str: &str,
) -> PaymentParams {
    let time_stamp = timestamp.to_string();
    let package = format!("prepay_id={prepay_id}");
    let pay_sign = pay_sign(appid, &time_stamp, nonce_str, &package, sign_type, key).to_string();
    PaymentParams {
        app_id: appid.to_owned(),
        time_stamp,
        nonce_str: nonce_str.to_owned(),
        package,
        sign_type: sign_type.as_str().to_owned(),
        pay_sign,
    }
}

/// The second sign: over exactly the five camelCase fields the WeChat app checks.
fn pay_sign(
    appid: &str,
    time_stamp: &str,
    nonce_str: &str,
    package: &str,
    sign_type: SignType,
    key: &str,
) -> sign::Signature {
    let mut signed = Params::new();
    put(&mut signed, "appId", appid);
    put(&mut signed, "timeStamp", time_stamp);
    put(&mut signed, "nonceStr", nonce_str);
    put(&mut signed, "package", package);
    put(&mut signed, "signType", sign_type.as_str());
    sign::sign(&signed, key, sign_type)
}

/// Checks `wx.requestPayment` fields as the WeChat app does: `appId` (if present) is
/// ours, `package` is `prepay_id=…`, `signType` is known, `timeStamp` is seconds, and
/// `paySign` is the sign of the five fields under `key`.
pub fn verify_payment_params(params: &Params, appid: &str, key: &str) -> Result<(), PayError> {
    let field = |k: &'static str| {
        params
            .get(k)
            .filter(|v| !v.is_empty())
            .ok_or(PayError::MissingField(k))
    };
    if let Some(given) = params.get("appId")
        && given != appid
    {
        return Err(PayError::Mismatch {
            field: "appId",
            expected: appid.to_owned(),
            found: given.clone(),
        });
    }
    let time_stamp = field("timeStamp")?;
    if time_stamp.len() > 12 || !time_stamp.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PayError::BadField {
            field: "timeStamp",
            reason: "must be Unix seconds as a string of digits".into(),
        });
    }
    let package = field("package")?;
    if package.strip_prefix("prepay_id=").is_none_or(str::is_empty) {
        return Err(PayError::BadField {
            field: "package",
            reason: "must be prepay_id=<the prepay_id unifiedorder gave>".into(),
        });
    }
    let sign_type: SignType = field("signType")?.parse()?;
    let given = field("paySign")?;
    let nonce_str = field("nonceStr")?;
    if pay_sign(appid, time_stamp, nonce_str, package, sign_type, key).matches(given) {
        Ok(())
    } else {
        Err(PayError::Sign(SignError::Mismatch))
    }
}

impl PaymentParams {
    /// As a parameter map with WeChat's camelCase keys (`paySign` included).
    pub fn to_params(&self) -> Params {
        let mut p = Params::new();
        put(&mut p, "appId", &self.app_id);
        put(&mut p, "timeStamp", &self.time_stamp);
        put(&mut p, "nonceStr", &self.nonce_str);
        put(&mut p, "package", &self.package);
        put(&mut p, "signType", &self.sign_type);
        put(&mut p, "paySign", &self.pay_sign);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::wechat_time;

    #[test]
    fn wechat_time_is_beijing_time() {
        assert_eq!(wechat_time(0), "19700101080000");
        // 2026-11-25 14:24:05 UTC is 22:24:05 in Beijing.
        assert_eq!(wechat_time(1_795_616_645), "20261125222405");
        // Crossing midnight and a leap day: 2024-02-28 16:00:00 UTC.
        assert_eq!(wechat_time(1_709_136_000), "20240229000000");
    }
}
