//! Refunds as the ledger sees them: a refund's states, and which of them hold the
//! merchant's money.
//!
//! A refund takes its amount from the merchant the moment it is recorded (requested here,
//! or learned from WeChat for one made by hand in the merchant platform): the money is on
//! its way back to the payer and must not be withdrawn meanwhile. It gives the amount back
//! only if it ends without money leaving: WeChat refused the request (FAILED) or closed the
//! refund (CLOSED). An ABNORMAL refund still holds: WeChat could not pay the payer (a
//! closed card, a frozen account), the money is not the merchant's again until an operator
//! settles it in the merchant platform.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// A refund's state. `REQUESTED → PROCESSING → SUCCESS | CLOSED | ABNORMAL`;
/// `REQUESTED → FAILED` when WeChat refuses the request; `ABNORMAL → SUCCESS | CLOSED`
/// once an operator settles it. A notify may skip PROCESSING.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RefundStatus {
    /// Recorded here; WeChat has not answered (yet).
    Requested,
    /// WeChat accepted it and is paying it back.
    Processing,
    /// The payer has the money.
    Success,
    /// WeChat closed it: no money left the merchant.
    Closed,
    /// WeChat could not pay the payer; the money is held until an operator acts.
    Abnormal,
    /// WeChat refused the request: no refund ever existed.
    Failed,
}

/// The states in which a refund holds the merchant's money.
pub const HOLDING: [RefundStatus; 4] = [
    RefundStatus::Requested,
    RefundStatus::Processing,
    RefundStatus::Success,
    RefundStatus::Abnormal,
];

impl RefundStatus {
    pub const ALL: [RefundStatus; 6] = [
        RefundStatus::Requested,
        RefundStatus::Processing,
        RefundStatus::Success,
        RefundStatus::Closed,
        RefundStatus::Abnormal,
        RefundStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Requested => "REQUESTED",
            RefundStatus::Processing => "PROCESSING",
            RefundStatus::Success => "SUCCESS",
            RefundStatus::Closed => "CLOSED",
            RefundStatus::Abnormal => "ABNORMAL",
            RefundStatus::Failed => "FAILED",
        }
    }

    /// Whether the refund holds the merchant's money in this state.
    pub fn holds(self) -> bool {
        HOLDING.contains(&self)
    }

    /// No further change is expected: the reconciler stops asking.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RefundStatus::Success | RefundStatus::Closed | RefundStatus::Failed
        )
    }

    /// Whether `self → to` is a move the refund machine allows.
    pub fn can_become(self, to: RefundStatus) -> bool {
        use RefundStatus::*;
        matches!(
            (self, to),
            (Requested, Processing | Success | Closed | Abnormal | Failed)
                | (Processing, Success | Closed | Abnormal)
                | (Abnormal, Success | Closed)
        )
    }
}

impl fmt::Display for RefundStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored status that is not one of ours: a schema fault, never input.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("unknown refund status {0:?}")]
pub struct UnknownRefundStatus(pub String);

impl FromStr for RefundStatus {
    type Err = UnknownRefundStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RefundStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownRefundStatus(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_refund_that_ends_without_money_leaving_gives_it_back() {
        use RefundStatus::*;
        for s in RefundStatus::ALL {
            assert_eq!(s.as_str().parse::<RefundStatus>(), Ok(s));
            assert_eq!(s.holds(), !matches!(s, Closed | Failed), "{s}");
        }
        assert!(
            Requested.can_become(Success),
            "a notify may skip PROCESSING"
        );
        assert!(Abnormal.can_become(Success));
        for from in [Success, Closed, Failed] {
            for to in RefundStatus::ALL {
                assert!(!from.can_become(to), "{from} → {to}");
            }
        }
        assert!(
            !Processing.can_become(Failed),
            "a refund WeChat accepted is not refused later"
        );
    }
}

/// Who made a refund.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefundSource {
    /// Requested through wxedge (`POST /merchant/refunds`).
    Api,
    /// Made by hand in the merchant platform; learned from WeChat's notify.
    ByHand,
}

impl RefundSource {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundSource::Api => "API",
            RefundSource::ByHand => "BY_HAND",
        }
    }
}

impl FromStr for RefundSource {
    type Err = UnknownRefundStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "API" => Ok(RefundSource::Api),
            "BY_HAND" => Ok(RefundSource::ByHand),
            other => Err(UnknownRefundStatus(other.to_owned())),
        }
    }
}

/// A refund row, as [`crate::store::REFUND_JSON`] hands it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRow {
    pub out_refund_no: String,
    pub out_trade_no: String,
    pub merchant_id: String,
    pub amount_fen: crate::Fen,
    pub reason: Option<String>,
    pub status: RefundStatus,
    pub source: RefundSource,
    pub refund_id: Option<String>,
    pub version: u64,
    pub idempotency_key: Option<String>,
    pub request_sha256: Option<String>,
    pub failure: Option<String>,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub success_ms: Option<u64>,
    pub next_check_ms: Option<u64>,
    pub checks: u32,
}

impl RefundRow {
    pub fn from_json(text: &str) -> Result<RefundRow, crate::order::RowError> {
        use crate::order::RowError;
        let fields = crate::json::object(text.as_bytes()).map_err(RowError)?;
        RefundRow::of(crate::json::Object::new(&fields, "")).map_err(RowError)
    }

    pub fn list_from_json(text: &str) -> Result<Vec<RefundRow>, crate::order::RowError> {
        use crate::order::RowError;
        crate::json::array(text.as_bytes())
            .map_err(RowError)?
            .iter()
            .map(|row| match row {
                serde_json::Value::Object(fields) => {
                    RefundRow::of(crate::json::Object::new(fields, "")).map_err(RowError)
                }
                _ => Err(RowError("expected a refund row object".to_owned())),
            })
            .collect()
    }

    fn of(r: crate::json::Object<'_>) -> Result<RefundRow, String> {
        Ok(RefundRow {
            out_refund_no: r.string("out_refund_no")?,
            out_trade_no: r.string("out_trade_no")?,
            merchant_id: r.string("merchant_id")?,
            amount_fen: crate::Fen::new(r.u64("amount_fen")?),
            reason: r.opt_string("reason")?,
            status: r.parsed("status")?,
            source: r.parsed("source")?,
            refund_id: r.opt_string("refund_id")?,
            version: r.u64("version")?,
            idempotency_key: r.opt_string("idempotency_key")?,
            request_sha256: r.opt_string("request_sha256")?,
            failure: r.opt_string("failure")?,
            created_ms: r.u64("created_ms")?,
            updated_ms: r.u64("updated_ms")?,
            success_ms: r.opt_u64("success_ms")?,
            next_check_ms: r.opt_u64("next_check_ms")?,
            checks: r.u32_or_zero("checks")?,
        })
    }

    /// The guard for a write decided on this row.
    pub fn seen(&self) -> RefundSeen {
        RefundSeen {
            out_refund_no: self.out_refund_no.clone(),
            out_trade_no: self.out_trade_no.clone(),
            merchant_id: self.merchant_id.clone(),
            amount: self.amount_fen,
            status: self.status,
            version: self.version,
        }
    }
}

/// What a refund write is guarded by (and what a release must give back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundSeen {
    pub out_refund_no: String,
    pub out_trade_no: String,
    pub merchant_id: String,
    pub amount: crate::Fen,
    pub status: RefundStatus,
    pub version: u64,
}
