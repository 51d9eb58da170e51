//! The v3 payment notify (支付成功回调通知): a signed JSON envelope whose `resource` is
//! the transaction, encrypted with the APIv3 key.
//!
//! Trust is earned in order: the signature over the raw body ([`Verified`], from
//! [`crate::v3::verify`]), then the envelope (JSON, every documented field, `event_type`
//! `TRANSACTION.SUCCESS`, `AEAD_AES_256_GCM`), then the GCM tag ([`crate::v3::aead`]), then
//! the transaction's fields. The result is the same [`Notify`] a v2 notify gives, so
//! [`Notify::check`] and `flow::notify::decide` judge both formats alike.
//!
//! Envelope and transaction fields: 支付成功回调通知 <https://pay.weixin.qq.com/doc/v3/merchant/4012791836>
//! (`id`, `create_time`, `event_type`, `resource_type` `encrypt-resource`, `resource`
//! {`original_type` `transaction`, `algorithm`, `ciphertext`, `associated_data`, `nonce`},
//! `summary`; the transaction's `appid`, `mchid`, `out_trade_no`, `transaction_id`,
//! `trade_type`, `trade_state`, `trade_state_desc`, `bank_type`, `attach`, `success_time`,
//! `payer.openid`, `amount.total`…). Unknown fields are allowed, as WeChat adds fields
//! ("接口可能增加字段"); a documented field missing or of the wrong type is an error.
//!
//! Replies (same page, and 回调通知注意事项 <https://pay.weixin.qq.com/doc/v3/merchant/4012075420>):
//! success is HTTP 200 or 204 with no body; failure is 4xx/5xx with
//! `{"code":"FAIL","message":"…"}`, and WeChat retries.

use thiserror::Error;

use crate::flow::notify::Reply as FlowReply;
use crate::json::{self, Object};
use crate::notify::{Notify, Outcome};
use crate::v3::aead::{self, AeadError, ApiV3Key};
use crate::v3::verify::Verified;
use crate::{ErrorCode, Fen, Params};

/// The only event a payment notify carries.
pub const EVENT_TRANSACTION_SUCCESS: &str = "TRANSACTION.SUCCESS";
/// The only algorithm WeChat encrypts resources with.
pub const ALGORITHM: &str = "AEAD_AES_256_GCM";

/// Why a v3 notify must not be believed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NotifyV3Error {
    #[error("notify body is not WeChat's v3 envelope: {0}")]
    BadEnvelope(String),
    #[error(
        "notify is a {event_type} / {original_type} event, not TRANSACTION.SUCCESS / transaction: send it to its own handler"
    )]
    UnexpectedEvent {
        event_type: String,
        original_type: String,
    },
    #[error("resource algorithm {0:?} is not AEAD_AES_256_GCM")]
    UnsupportedAlgorithm(String),
    #[error("notify resource does not decrypt: {0}")]
    Decrypt(#[from] AeadError),
    #[error("the decrypted transaction is not JSON of the documented shape: {0}")]
    BadTransaction(String),
    #[error("the transaction lacks {0}")]
    MissingField(&'static str),
    #[error("amount.currency is {0:?}; orders here are in CNY")]
    Currency(String),
}

impl ErrorCode for NotifyV3Error {
    fn code(&self) -> &'static str {
        match self {
            NotifyV3Error::BadEnvelope(_) => "V3_BAD_NOTIFY",
            NotifyV3Error::UnexpectedEvent { .. } => "V3_UNEXPECTED_EVENT",
            NotifyV3Error::UnsupportedAlgorithm(_) => "V3_UNSUPPORTED_ALGORITHM",
            NotifyV3Error::Decrypt(e) => e.code(),
            NotifyV3Error::BadTransaction(_) => "NOT_JSON",
            NotifyV3Error::MissingField(_) => "MISSING_FIELD",
            NotifyV3Error::Currency(_) => "FIELD_MISMATCH",
        }
    }
}

/// The notify's envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub id: String,
    pub create_time: String,
    pub event_type: String,
    pub resource_type: String,
    pub resource: Resource,
    pub summary: String,
}

/// The encrypted resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub algorithm: String,
    pub ciphertext: String,
    /// May be empty; for a payment it is `transaction`.
    pub associated_data: String,
    pub original_type: String,
    pub nonce: String,
}

/// The decrypted transaction (also the body of a query's answer). Fields shown as empty
/// strings may be left out; `mchid`, `out_trade_no` and `trade_state` may not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    pub appid: String,
    pub mchid: String,
    pub out_trade_no: String,
    pub transaction_id: String,
    pub trade_type: String,
    pub trade_state: String,
    pub trade_state_desc: String,
    pub bank_type: String,
    pub attach: String,
    pub success_time: String,
    pub payer: Option<Payer>,
    pub amount: Option<Amount>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payer {
    pub openid: String,
}

/// Integer fen: a negative, fractional or string amount is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Amount {
    pub total: u64,
    pub payer_total: Option<u64>,
    pub currency: Option<String>,
    pub payer_currency: Option<String>,
}

impl Envelope {
    /// Reads the envelope's JSON (every documented field; unknown ones allowed).
    pub fn from_json(body: &[u8]) -> Result<Envelope, String> {
        let fields = json::object(body)?;
        let e = Object::new(&fields, "");
        let r = e.object("resource", "resource.")?;
        Ok(Envelope {
            id: e.string("id")?,
            create_time: e.string("create_time")?,
            event_type: e.string("event_type")?,
            resource_type: e.string("resource_type")?,
            resource: Resource {
                algorithm: r.string("algorithm")?,
                ciphertext: r.string("ciphertext")?,
                associated_data: r.string_or_empty("associated_data")?,
                original_type: r.string("original_type")?,
                nonce: r.string("nonce")?,
            },
            summary: e.string("summary")?,
        })
    }
}

impl Transaction {
    /// Reads a transaction's JSON (a decrypted resource, or a query's answer).
    pub fn from_json(body: &[u8]) -> Result<Transaction, String> {
        let fields = json::object(body)?;
        let t = Object::new(&fields, "");
        let payer = match t.opt_object("payer", "payer.")? {
            Some(p) => Some(Payer {
                openid: p.string_or_empty("openid")?,
            }),
            None => None,
        };
        let amount = match t.opt_object("amount", "amount.")? {
            Some(a) => Some(Amount {
                total: a.u64("total")?,
                payer_total: a.opt_u64("payer_total")?,
                currency: a.opt_string("currency")?,
                payer_currency: a.opt_string("payer_currency")?,
            }),
            None => None,
        };
        Ok(Transaction {
            appid: t.string_or_empty("appid")?,
            mchid: t.string("mchid")?,
            out_trade_no: t.string("out_trade_no")?,
            transaction_id: t.string_or_empty("transaction_id")?,
            trade_type: t.string_or_empty("trade_type")?,
            trade_state: t.string("trade_state")?,
            trade_state_desc: t.string_or_empty("trade_state_desc")?,
            bank_type: t.string_or_empty("bank_type")?,
            attach: t.string_or_empty("attach")?,
            success_time: t.string_or_empty("success_time")?,
            payer,
            amount,
        })
    }
}

/// Reads a verified notify's envelope (without decrypting it).
pub fn parse_envelope(verified: &Verified<'_>) -> Result<Envelope, NotifyV3Error> {
    Envelope::from_json(verified.body()).map_err(NotifyV3Error::BadEnvelope)
}

/// A verified notify → the [`Notify`] the v2 flow decides on.
pub fn parse_notify(verified: &Verified<'_>, key: &ApiV3Key) -> Result<Notify, NotifyV3Error> {
    parse_transaction(&parse_envelope(verified)?, key)
}

/// A verified payment notify's envelope → the [`Notify`] the v2 flow decides on.
pub fn parse_transaction(envelope: &Envelope, key: &ApiV3Key) -> Result<Notify, NotifyV3Error> {
    let r = &envelope.resource;
    if envelope.event_type != EVENT_TRANSACTION_SUCCESS || r.original_type != "transaction" {
        return Err(NotifyV3Error::UnexpectedEvent {
            event_type: envelope.event_type.clone(),
            original_type: r.original_type.clone(),
        });
    }
    if r.algorithm != ALGORITHM {
        return Err(NotifyV3Error::UnsupportedAlgorithm(r.algorithm.clone()));
    }
    let plain = aead::decrypt(key, &r.nonce, &r.associated_data, &r.ciphertext)?;
    let tx = Transaction::from_json(&plain).map_err(NotifyV3Error::BadTransaction)?;
    let mut notify = to_notify(&tx)?;
    for (k, v) in [
        ("notify_id", &envelope.id),
        ("event_type", &envelope.event_type),
        ("create_time", &envelope.create_time),
    ] {
        notify.params.insert(k.into(), v.clone());
    }
    Ok(notify)
}

/// A transaction (decrypted notify resource) as the flow's [`Notify`]: `mchid` is
/// `mch_id`, `amount.total` is `total_fee`, `payer.openid` is `openid`, `success_time` is
/// `time_end` (as `yyyyMMddHHmmss` when it is Beijing time, as v2 writes it); a
/// `trade_state` other than SUCCESS is [`Outcome::Failed`] with that state as `err_code`.
pub fn to_notify(tx: &Transaction) -> Result<Notify, NotifyV3Error> {
    let required = |v: &str, name| {
        if v.is_empty() {
            Err(NotifyV3Error::MissingField(name))
        } else {
            Ok(v.to_owned())
        }
    };
    let amount = tx
        .amount
        .as_ref()
        .ok_or(NotifyV3Error::MissingField("amount"))?;
    if let Some(c) = amount.currency.as_deref()
        && c != "CNY"
    {
        return Err(NotifyV3Error::Currency(c.to_owned()));
    }
    let outcome = if tx.trade_state == "SUCCESS" {
        Outcome::Paid
    } else {
        Outcome::Failed {
            err_code: tx.trade_state.clone(),
            err_code_des: tx.trade_state_desc.clone(),
        }
    };
    if outcome == Outcome::Paid {
        required(&tx.transaction_id, "transaction_id")?;
    }
    let openid = tx
        .payer
        .as_ref()
        .map(|p| p.openid.clone())
        .unwrap_or_default();
    let mut params = Params::new();
    let total = amount.total.to_string();
    let payer_total = amount
        .payer_total
        .map(|t| t.to_string())
        .unwrap_or_default();
    for (k, v) in [
        ("appid", tx.appid.as_str()),
        ("mchid", tx.mchid.as_str()),
        ("out_trade_no", tx.out_trade_no.as_str()),
        ("transaction_id", tx.transaction_id.as_str()),
        ("trade_type", tx.trade_type.as_str()),
        ("trade_state", tx.trade_state.as_str()),
        ("trade_state_desc", tx.trade_state_desc.as_str()),
        ("bank_type", tx.bank_type.as_str()),
        ("attach", tx.attach.as_str()),
        ("success_time", tx.success_time.as_str()),
        ("openid", openid.as_str()),
        ("total", total.as_str()),
        ("payer_total", payer_total.as_str()),
        ("currency", amount.currency.as_deref().unwrap_or("")),
    ] {
        if !v.is_empty() {
            params.insert(k.to_owned(), v.to_owned());
        }
    }
    Ok(Notify {
        appid: required(&tx.appid, "appid")?,
        mch_id: required(&tx.mchid, "mchid")?,
        out_trade_no: required(&tx.out_trade_no, "out_trade_no")?,
        transaction_id: tx.transaction_id.clone(),
        total_fee: Fen::new(amount.total),
        openid,
        time_end: v2_time(&tx.success_time),
        outcome,
        params,
    })
}

/// `2018-06-08T10:34:56+08:00` → `20180608103456`; any other form is kept as it is.
pub(crate) fn v2_time(rfc3339: &str) -> String {
    let b = rfc3339.as_bytes();
    let shaped = b.len() == 25
        && rfc3339.ends_with("+08:00")
        && [4, 7].iter().all(|&i| b[i] == b'-')
        && b[10] == b'T'
        && [13, 16].iter().all(|&i| b[i] == b':')
        && [0..4, 5..7, 8..10, 11..13, 14..16, 17..19]
            .into_iter()
            .all(|r| b[r].iter().all(u8::is_ascii_digit));
    if !shaped {
        return rfc3339.to_owned();
    }
    [0..4, 5..7, 8..10, 11..13, 14..16, 17..19]
        .into_iter()
        .map(|r| &rfc3339[r])
        .collect()
}

/// The answer to a v3 notify: an HTTP status and its body (empty on success).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

/// 204, no body: WeChat stops retrying.
pub fn reply_success() -> Reply {
    Reply {
        status: 204,
        body: String::new(),
    }
}

/// A failure WeChat will retry: `status` (4xx/5xx; anything else becomes 500) and
/// `{"code":"FAIL","message":…}`.
pub fn reply_fail(status: u16, message: &str) -> Reply {
    let status = if (400..600).contains(&status) {
        status
    } else {
        500
    };
    Reply {
        status,
        body: serde_json::json!({ "code": "FAIL", "message": message }).to_string(),
    }
}

/// The v3 form of a flow decision's reply: the flow decides once for both wire formats
/// and writes v2's XML; a v3 shell answers with this instead.
pub fn from_flow(reply: &FlowReply) -> Reply {
    if reply.is_success() {
        return reply_success();
    }
    let reason = crate::xml::parse_xml(reply.body.as_bytes())
        .ok()
        .and_then(|p| p.get("return_msg").cloned())
        .unwrap_or_else(|| "FAIL".into());
    reply_fail(reply.status, &reason)
}

/// Whether a receiver's answer stops WeChat's retries: 200 or 204.
pub fn is_success_status(status: u16) -> bool {
    status == 200 || status == 204
}

/// What a payment notify says, for the side that sends it (wxsim, tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaidNotice<'a> {
    pub notify_id: &'a str,
    pub appid: &'a str,
    pub mchid: &'a str,
    pub out_trade_no: &'a str,
    pub transaction_id: &'a str,
    pub total: Fen,
    pub openid: &'a str,
    /// RFC 3339, e.g. `2018-06-08T10:34:56+08:00`; also the envelope's `create_time`.
    pub success_time: &'a str,
    /// 12 bytes, fresh for each notify (from [`crate::random`]).
    pub nonce: &'a str,
}

/// The JSON body of a successful payment notify, its resource encrypted as WeChat does.
/// The sender signs it with [`crate::v3::verify`]'s message rule.
pub fn build_paid_notify(key: &ApiV3Key, n: &PaidNotice<'_>) -> Result<String, AeadError> {
    build(key, n, false)
}

/// The same notify with the last byte of its GCM tag flipped (for wxsim's `bad_tag`
/// fault): signed like a genuine one, yet its resource must not decrypt, so a receiver
/// that skips the tag check is caught.
pub fn build_paid_notify_bad_tag(key: &ApiV3Key, n: &PaidNotice<'_>) -> Result<String, AeadError> {
    build(key, n, true)
}

fn build(key: &ApiV3Key, n: &PaidNotice<'_>, corrupt_tag: bool) -> Result<String, AeadError> {
    let tx = serde_json::json!({
        "appid": n.appid, "mchid": n.mchid, "out_trade_no": n.out_trade_no,
        "transaction_id": n.transaction_id, "trade_type": "JSAPI", "trade_state": "SUCCESS",
        "trade_state_desc": "支付成功", "bank_type": "OTHERS", "attach": "",
        "success_time": n.success_time, "payer": { "openid": n.openid },
        "amount": { "total": n.total.get(), "payer_total": n.total.get(), "currency": "CNY", "payer_currency": "CNY" },
    });
    let mut ciphertext = aead::encrypt(key, n.nonce, "transaction", tx.to_string().as_bytes())?;
    if corrupt_tag {
        ciphertext = aead::corrupt_tag(&ciphertext)?;
    }
    Ok(serde_json::json!({
        "id": n.notify_id, "create_time": n.success_time, "resource_type": "encrypt-resource",
        "event_type": EVENT_TRANSACTION_SUCCESS, "summary": "支付成功",
        "resource": { "original_type": "transaction", "algorithm": ALGORITHM,
            "ciphertext": ciphertext, "associated_data": "transaction", "nonce": n.nonce },
    })
    .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beijing_time_becomes_v2_time() {
        assert_eq!(v2_time("2018-06-08T10:34:56+08:00"), "20180608103456");
        assert_eq!(v2_time("2018-06-08T02:34:56Z"), "2018-06-08T02:34:56Z");
        assert_eq!(
            v2_time("2018-06-08T10:34:56+08:0"),
            "2018-06-08T10:34:56+08:0"
        );
    }

    #[test]
    fn flow_replies_map_to_v3_replies() {
        let ok = FlowReply {
            status: 200,
            body: crate::notify::reply_success(),
        };
        assert_eq!(from_flow(&ok), reply_success());
        let fail = FlowReply {
            status: 404,
            body: crate::notify::reply_fail("unknown order"),
        };
        let r = from_flow(&fail);
        assert_eq!(r.status, 404);
        assert_eq!(r.body, r#"{"code":"FAIL","message":"unknown order"}"#);
        assert_eq!(reply_fail(200, "x").status, 500);
    }
    #[test]
    fn a_bad_tag_notify_does_not_decrypt() {
        let key = ApiV3Key::new("a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb").unwrap();
        let n = PaidNotice {
            notify_id: "EV-1",
            appid: "wx1",
            mchid: "1900000109",
            out_trade_no: "T000001",
            transaction_id: "4200000001",
            total: Fen::new(1),
            openid: "o1",
            success_time: "2026-01-01T08:00:00+08:00",
            nonce: "0123456789ab",
        };
        let body = build_paid_notify_bad_tag(&key, &n).unwrap();
        let env = Envelope::from_json(body.as_bytes()).unwrap();
        let r = env.resource;
        assert_eq!(
            aead::decrypt(&key, &r.nonce, &r.associated_data, &r.ciphertext),
            Err(AeadError::Failed)
        );
    }
}
