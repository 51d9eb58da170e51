//! `POST /merchant/withdrawals`: the seed tutorial's 题目 done right.
//!
//! One batch ([`crate::store::withdrawal_batch`]) claims the merchant's claimable orders
//! and unclaimed ledger entries (refunds) and sets the amount to the sum of exactly the
//! rows it claimed; when that sum is not positive (nothing to claim, or refunds owed) it
//! gives the rows back and deletes itself in the same batch. The same `Idempotency-Key` answers the first
//! withdrawal again. The answer re-derives the amount from the claimed orders and refuses
//! to answer if they differ: a broken ledger is reported, never hidden.

use serde::Deserialize;

use crate::Fen;
use crate::ledger::{self, LedgerError};
use crate::store::{self, Batch};

/// A withdrawal row (see [`store::WITHDRAWAL_JSON`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WithdrawalRow {
    pub withdrawal_id: String,
    pub merchant_id: String,
    pub amount_fen: Fen,
    pub order_count: u64,
    /// Σ of the ledger entries it claimed, as stored (refunds negative).
    #[serde(default)]
    pub entries_fen: i64,
    #[serde(default)]
    pub entry_count: u64,
    /// Σ of the entries that name it now, recomputed by the read.
    #[serde(default)]
    pub claimed_entries_fen: i64,
    pub idempotency_key: Option<String>,
    pub created_ms: u64,
    pub seq: u64,
}

impl WithdrawalRow {
    pub fn from_json(text: &str) -> Result<WithdrawalRow, LedgerError> {
        serde_json::from_str(text).map_err(|e| LedgerError::Unreadable(e.to_string()))
    }
}

/// An order a withdrawal claimed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ClaimedOrder {
    pub out_trade_no: String,
    pub total_fee: Fen,
    pub paid_ms: Option<u64>,
}

/// Reads [`store::claimed_orders`]'s array.
pub fn claimed_from_json(text: &str) -> Result<Vec<ClaimedOrder>, LedgerError> {
    serde_json::from_str(text).map_err(|e| LedgerError::Unreadable(e.to_string()))
}

/// What to do with a withdrawal request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// This key already made a withdrawal: answer it again.
    Replay { withdrawal_id: String },
    /// Run this batch, then read the withdrawal `withdrawal_id` back.
    Claim { withdrawal_id: String, batch: Batch },
}

/// The decision for a request, given the withdrawal its key already names (if any), with
/// no settlement hold.
pub fn begin(
    existing: Option<&WithdrawalRow>,
    merchant_id: &str,
    idempotency_key: Option<&str>,
    new_id: String,
    now_ms: u64,
) -> Begin {
    begin_with(
        existing,
        merchant_id,
        idempotency_key,
        new_id,
        now_ms,
        &ledger::Settlement::default(),
    )
}

/// [`begin`] under the deployment's settlement rules: orders still in their hold are not
/// claimed.
pub fn begin_with(
    existing: Option<&WithdrawalRow>,
    merchant_id: &str,
    idempotency_key: Option<&str>,
    new_id: String,
    now_ms: u64,
    settlement: &ledger::Settlement,
) -> Begin {
    if let Some(w) = existing {
        return Begin::Replay {
            withdrawal_id: w.withdrawal_id.clone(),
        };
    }
    let batch = store::withdrawal_batch(
        &new_id,
        merchant_id,
        idempotency_key,
        now_ms,
        settlement.withdrawable_before(now_ms),
    );
    Begin::Claim {
        withdrawal_id: new_id,
        batch,
    }
}

/// Why a withdrawal has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WithdrawError {
    /// The batch claimed nothing and deleted itself (code 6).
    #[error(transparent)]
    Nothing(LedgerError),
    /// Its stored amount differs from its orders and entries: the ledger is broken (code
    /// 9, alert).
    #[error(
        "withdrawal {withdrawal_id}: stored {stored} fen, its orders and entries sum to {claimed} fen"
    )]
    Inconsistent {
        withdrawal_id: String,
        stored: Fen,
        claimed: Fen,
    },
    #[error("withdrawal {0}: its orders cannot be summed: {1}")]
    Unsummable(String, LedgerError),
}

/// The withdrawal as read back after its batch (or for a replay or a GET), checked
/// against the orders and entries that name it.
pub fn answer(row: Option<&WithdrawalRow>, claimed: &[ClaimedOrder]) -> Result<Fen, WithdrawError> {
    let Some(w) = row else {
        return Err(WithdrawError::Nothing(LedgerError::NothingToWithdraw));
    };
    let sum = ledger::withdrawal_amount(claimed.iter().map(|o| o.total_fee), w.claimed_entries_fen)
        .map_err(|e| WithdrawError::Unsummable(w.withdrawal_id.clone(), e))?;
    if sum != w.amount_fen || w.entries_fen != w.claimed_entries_fen {
        return Err(WithdrawError::Inconsistent {
            withdrawal_id: w.withdrawal_id.clone(),
            stored: w.amount_fen,
            claimed: sum,
        });
    }
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(amount: u64) -> WithdrawalRow {
        WithdrawalRow {
            withdrawal_id: "wd_1".into(),
            merchant_id: "m".into(),
            amount_fen: Fen::new(amount),
            order_count: 1,
            entries_fen: 0,
            entry_count: 0,
            claimed_entries_fen: 0,
            idempotency_key: None,
            created_ms: 0,
            seq: 1,
        }
    }

    fn claimed(fee: u64) -> ClaimedOrder {
        ClaimedOrder {
            out_trade_no: "T".into(),
            total_fee: Fen::new(fee),
            paid_ms: Some(1),
        }
    }

    #[test]
    fn a_key_replays_and_a_new_request_claims() {
        assert!(matches!(
            begin(Some(&row(5)), "m", Some("k"), "wd_2".into(), 0),
            Begin::Replay { withdrawal_id } if withdrawal_id == "wd_1"
        ));
        let Begin::Claim { batch, .. } = begin(None, "m", None, "wd_2".into(), 0) else {
            panic!()
        };
        assert_eq!(batch.statements.len(), 7);
    }

    #[test]
    fn the_answer_is_the_sum_of_its_orders_or_an_alarm() {
        assert_eq!(answer(Some(&row(5)), &[claimed(5)]), Ok(Fen::new(5)));
        assert!(matches!(
            answer(Some(&row(6)), &[claimed(5)]),
            Err(WithdrawError::Inconsistent { .. })
        ));
        assert!(matches!(answer(None, &[]), Err(WithdrawError::Nothing(_))));
    }
}
