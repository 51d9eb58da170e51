//! An order as the money flows see it: the stored row, the guard a write holds under, and
//! the marks an operator must look at.
//!
//! Every flow decision is taken on one row as it was read. The write it returns names
//! that row's status *and* version ([`Seen`]); storage applies it only if both still
//! hold, so a decision taken on stale facts changes nothing and the shell decides again
//! on the fresh row. The version is bumped by every write to the row.

use std::fmt;
use std::str::FromStr;

use serde_json::Value;
use thiserror::Error;

use crate::Fen;
use crate::json::{self, Object};
use crate::ledger::OrderStatus;

/// An order row, as [`crate::store::ORDER_JSON`] hands it over (read by
/// [`OrderRow::from_json`]: `null` and a left-out column are alike for the optional ones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRow {
    pub out_trade_no: String,
    pub openid: String,
    pub merchant_id: String,
    pub total_fee: Fen,
    pub body: String,
    pub spbill_create_ip: String,
    pub status: OrderStatus,
    /// Bumped by every write: the guard of the next one.
    pub version: u64,
    pub prepay_id: Option<String>,
    pub prepay_ms: Option<u64>,
    pub transaction_id: Option<String>,
    pub paid_ms: Option<u64>,
    pub paid_via: Option<String>,
    /// Why an order ended (WeChat's err_code or the reconciler's reason).
    pub failure: Option<String>,
    pub withdrawal_id: Option<String>,
    pub created_ms: u64,
    pub updated_ms: u64,
    /// When the reconciler looks at it next (open orders only).
    pub next_check_ms: Option<u64>,
    /// How many times the reconciler has looked at it without settling it.
    pub checks: u32,
    pub attention: Option<Attention>,
    pub attention_note: Option<String>,
    pub reconcile_note: Option<String>,
    /// Σ of the order's refunds that hold money (never above `total_fee` by our own).
    pub refunded_fen: Fen,
}

impl OrderRow {
    /// The guard for a write decided on this row.
    pub fn seen(&self) -> Seen {
        Seen {
            out_trade_no: self.out_trade_no.clone(),
            status: self.status,
            version: self.version,
        }
    }

    /// Reads a row from the JSON text storage produced with [`crate::store::ORDER_JSON`].
    pub fn from_json(text: &str) -> Result<OrderRow, RowError> {
        let fields = json::object(text.as_bytes()).map_err(RowError)?;
        OrderRow::of(Object::new(&fields, "")).map_err(RowError)
    }

    /// Reads a JSON array of rows.
    pub fn list_from_json(text: &str) -> Result<Vec<OrderRow>, RowError> {
        json::array(text.as_bytes())
            .map_err(RowError)?
            .iter()
            .map(|row| match row {
                Value::Object(fields) => OrderRow::of(Object::new(fields, "")).map_err(RowError),
                _ => Err(RowError("expected an order row object".to_owned())),
            })
            .collect()
    }

    fn of(r: Object<'_>) -> Result<OrderRow, String> {
        Ok(OrderRow {
            out_trade_no: r.string("out_trade_no")?,
            openid: r.string("openid")?,
            merchant_id: r.string("merchant_id")?,
            total_fee: Fen::new(r.u64("total_fee")?),
            body: r.string("body")?,
            spbill_create_ip: r.string("spbill_create_ip")?,
            status: r.parsed("status")?,
            version: r.u64("version")?,
            prepay_id: r.opt_string("prepay_id")?,
            prepay_ms: r.opt_u64("prepay_ms")?,
            transaction_id: r.opt_string("transaction_id")?,
            paid_ms: r.opt_u64("paid_ms")?,
            paid_via: r.opt_string("paid_via")?,
            failure: r.opt_string("failure")?,
            withdrawal_id: r.opt_string("withdrawal_id")?,
            created_ms: r.u64("created_ms")?,
            updated_ms: r.u64("updated_ms")?,
            next_check_ms: r.opt_u64("next_check_ms")?,
            checks: r.u32_or_zero("checks")?,
            attention: r.opt_parsed("attention")?,
            attention_note: r.opt_string("attention_note")?,
            reconcile_note: r.opt_string("reconcile_note")?,
            refunded_fen: Fen::new(r.opt_u64("refunded_fen")?.unwrap_or(0)),
        })
    }
}

/// A stored row that does not read as an order: a schema or a storage fault, never input.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("unreadable order row: {0}")]
pub struct RowError(pub String);

/// What a write is guarded by: the row is still in this status at this version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub out_trade_no: String,
    pub status: OrderStatus,
    pub version: u64,
}

/// Why an operator must look at an order. Money is never decided by a log line: each of
/// these is on the row, listed by `GET /admin/attention` and counted by the audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Attention {
    /// Paid after we had ended it (CLOSED or FAILED): the money is in the merchant's
    /// account and credited; deliver the goods or refund.
    LatePayment,
    /// WeChat reports a payment for another amount than the order's.
    AmountMismatch,
    /// WeChat reports the order paid and refunded, but nothing credited it here.
    RefundedAtWechat,
    /// A second, different transaction for an order already paid.
    SecondTransaction,
    /// WeChat answered about another order than the one asked for.
    WrongOrder,
}

impl Attention {
    pub const ALL: [Attention; 5] = [
        Attention::LatePayment,
        Attention::AmountMismatch,
        Attention::RefundedAtWechat,
        Attention::SecondTransaction,
        Attention::WrongOrder,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Attention::LatePayment => "LATE_PAYMENT",
            Attention::AmountMismatch => "AMOUNT_MISMATCH",
            Attention::RefundedAtWechat => "REFUNDED_AT_WECHAT",
            Attention::SecondTransaction => "SECOND_TRANSACTION",
            Attention::WrongOrder => "WRONG_ORDER",
        }
    }
}

impl fmt::Display for Attention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error(
    "unknown attention mark {0:?}: use one of LATE_PAYMENT, AMOUNT_MISMATCH, REFUNDED_AT_WECHAT, SECOND_TRANSACTION, WRONG_ORDER"
)]
pub struct UnknownAttention(pub String);

impl FromStr for Attention {
    type Err = UnknownAttention;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Attention::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| UnknownAttention(s.to_owned()))
    }
}

/// Who made an order PAID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaidVia {
    Notify,
    Reconciler,
}

impl PaidVia {
    pub fn as_str(self) -> &'static str {
        match self {
            PaidVia::Notify => "notify",
            PaidVia::Reconciler => "reconciler",
        }
    }
}

/// A row for unit tests: order `T1` of user `o1`, 100 fen, as created but for `status`
/// and version 2.
#[cfg(test)]
pub(crate) fn test_row(status: OrderStatus) -> OrderRow {
    let created = crate::store::NewOrder {
        out_trade_no: "T1".into(),
        openid: "o1".into(),
        merchant_id: "default".into(),
        total_fee: Fen::new(100),
        body: "b".into(),
        spbill_create_ip: "1.2.3.4".into(),
        now_ms: 0,
        next_check_ms: 0,
    }
    .row();
    OrderRow {
        status,
        version: 2,
        next_check_ms: None,
        ..created
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_read_from_storage_json_with_typed_status_and_marks() {
        let row = OrderRow::from_json(
            r#"{"out_trade_no":"T1","openid":"o","merchant_id":"default","total_fee":100,
                "body":"b","spbill_create_ip":"1.2.3.4","status":"PREPAID","version":3,
                "prepay_id":"wx1","prepay_ms":5,"transaction_id":null,"paid_ms":null,
                "failure":null,"withdrawal_id":null,"created_ms":1,"updated_ms":5,
                "next_check_ms":600005,"checks":0,"attention":"LATE_PAYMENT"}"#,
        )
        .unwrap();
        assert_eq!(row.status, OrderStatus::Prepaid);
        assert_eq!(row.attention, Some(Attention::LatePayment));
        assert_eq!(row.seen().version, 3);
        let bad = OrderRow::from_json(r#"{"status":"paid"}"#).unwrap_err();
        assert!(bad.to_string().contains("unreadable"), "{bad}");
    }

    #[test]
    fn attention_marks_round_trip() {
        for a in Attention::ALL {
            assert_eq!(a.as_str().parse::<Attention>(), Ok(a));
        }
        assert!("late".parse::<Attention>().is_err());
    }
}
