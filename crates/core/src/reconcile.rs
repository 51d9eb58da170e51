//! The reconciler's decisions: what to do with an order that is still open (CREATED or
//! PREPAID) long after it was placed, given what WeChat's `orderquery` says of it.
//!
//! Notifies get lost (our endpoint was down for WeChat's whole retry schedule, a proxy
//! ate them). Asking WeChat closes the gap: SUCCESS credits the order exactly as a
//! verified notify would, and an order nobody paid within the prepay_id's life is closed
//! at WeChat first (`closeorder`), so it can never be paid after we called it CLOSED.
//! The caller does the I/O and applies the [`Action`] with the same guarded statements
//! as the notify, so a notify arriving after the reconciler changes nothing.

use crate::Fen;
use crate::pay::{OrderQuery, PayError, TradeState};

/// A prepay_id is valid for 2 hours; after that the user cannot pay it.
pub const PREPAY_LIFE_MS: u64 = 2 * 3600 * 1000;

/// When the reconciler looks at orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// How long an open order is left alone after its last change: the notify normally
    /// arrives within seconds, and querying sooner only doubles WeChat traffic.
    pub grace_ms: u64,
    /// After this long an unpaid order is closed (the prepay_id's life).
    pub close_after_ms: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            grace_ms: 10 * 60 * 1000,
            close_after_ms: PREPAY_LIFE_MS,
        }
    }
}

/// The open order as we hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenOrder<'a> {
    pub out_trade_no: &'a str,
    pub total_fee: Fen,
    /// When it was placed; the prepay_id's life counts from the last unifiedorder.
    pub created_ms: u64,
    pub prepay_ms: Option<u64>,
    /// Its last change.
    pub updated_ms: u64,
}

impl OpenOrder<'_> {
    /// Whether the reconciler should ask WeChat about it now.
    pub fn is_due(&self, now_ms: u64, policy: &Policy) -> bool {
        now_ms.saturating_sub(self.updated_ms) >= policy.grace_ms
    }

    /// Whether a user could still pay it.
    fn payable_at(&self, now_ms: u64, policy: &Policy) -> bool {
        let since = self.prepay_ms.unwrap_or(self.created_ms);
        now_ms.saturating_sub(since) < policy.close_after_ms
    }
}

/// What to do with the order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// WeChat says it is paid, for our amount: make it PAID (guarded, once).
    Credit { transaction_id: String },
    /// Nobody paid and nobody can any more: call `closeorder`, then [`after_close`].
    Close,
    /// Already ended at WeChat (or never reached it): end it here with this status.
    End {
        status: crate::ledger::OrderStatus,
        reason: String,
    },
    /// Nothing to do yet (still payable, or WeChat did not answer): ask again next run.
    Wait { reason: String },
    /// WeChat's view contradicts ours (a refund, another amount): an operator must look.
    Conflict { reason: String },
}

/// The decision for `order` from orderquery's answer (`Err` when the call failed or was
/// refused).
pub fn decide(
    order: &OpenOrder<'_>,
    query: Result<&OrderQuery, &PayError>,
    now_ms: u64,
    policy: &Policy,
) -> Action {
    use crate::ledger::OrderStatus;
    let wait = |reason: &str| Action::Wait {
        reason: reason.to_owned(),
    };
    let q = match query {
        Ok(q) => q,
        // The order never reached WeChat (unifiedorder timed out before it arrived): once
        // no retry can still place it, it is over.
        Err(PayError::Business { err_code, .. }) if err_code == "ORDERNOTEXIST" => {
            return if order.payable_at(now_ms, policy) {
                wait("WeChat does not know the order yet; a retry may still place it")
            } else {
                Action::End {
                    status: OrderStatus::Closed,
                    reason: "ORDERNOTEXIST: never reached WeChat".into(),
                }
            };
        }
        Err(e) => return wait(&format!("orderquery failed: {e}")),
    };
    if q.out_trade_no != order.out_trade_no {
        return Action::Conflict {
            reason: format!(
                "orderquery answered about {} instead of {}",
                q.out_trade_no, order.out_trade_no
            ),
        };
    }
    match &q.trade_state {
        TradeState::Success => match (q.total_fee, q.transaction_id.as_deref()) {
            (Some(fee), Some(tx)) if fee == order.total_fee && !tx.is_empty() => Action::Credit {
                transaction_id: tx.to_owned(),
            },
            (Some(fee), _) if fee != order.total_fee => Action::Conflict {
                reason: format!(
                    "WeChat says paid {fee} fen, the order is for {} fen",
                    order.total_fee
                ),
            },
            _ => wait("SUCCESS without its total_fee or transaction_id"),
        },
        TradeState::NotPay | TradeState::Other(_) => {
            if order.payable_at(now_ms, policy) {
                wait("not paid yet; the prepay_id is still valid")
            } else {
                Action::Close
            }
        }
        // The user is entering a password: never close under them.
        TradeState::UserPaying => wait("the user is paying"),
        TradeState::Closed => Action::End {
            status: OrderStatus::Closed,
            reason: "closed at WeChat".into(),
        },
        TradeState::Revoked | TradeState::PayError => Action::End {
            status: OrderStatus::Failed,
            reason: q.trade_state.as_str().to_owned(),
        },
        TradeState::Refund => Action::Conflict {
            reason: "WeChat says paid and refunded, but no notify credited it".into(),
        },
    }
}

/// What `closeorder`'s answer means for the order.
pub fn after_close(answer: Result<(), &PayError>) -> Action {
    use crate::ledger::OrderStatus;
    match answer {
        Ok(()) => Action::End {
            status: OrderStatus::Closed,
            reason: "closed by the reconciler: unpaid past the prepay_id's life".into(),
        },
        Err(PayError::Business { err_code, .. }) if err_code == "ORDERCLOSED" => Action::End {
            status: OrderStatus::Closed,
            reason: "closed at WeChat".into(),
        },
        // Paid at the last moment: the next run's orderquery credits it.
        Err(PayError::Business { err_code, .. }) if err_code == "ORDERPAID" => Action::Wait {
            reason: "paid at the last moment; orderquery will credit it".into(),
        },
        Err(e) => Action::Wait {
            reason: format!("closeorder failed: {e}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::OrderStatus;

    const MIN: u64 = 60_000;

    fn order(prepay_ms: Option<u64>) -> OpenOrder<'static> {
        OpenOrder {
            out_trade_no: "T1",
            total_fee: Fen::new(100),
            created_ms: 0,
            prepay_ms,
            updated_ms: prepay_ms.unwrap_or(0),
        }
    }

    fn query(state: &str, fee: Option<u64>, tx: Option<&str>) -> OrderQuery {
        OrderQuery {
            out_trade_no: "T1".into(),
            trade_state: TradeState::parse(state),
            total_fee: fee.map(Fen::new),
            transaction_id: tx.map(Into::into),
            openid: None,
            time_end: None,
        }
    }

    fn business(code: &str) -> PayError {
        PayError::Business {
            err_code: code.into(),
            err_code_des: String::new(),
        }
    }

    #[test]
    fn only_orders_past_the_grace_period_are_due() {
        let p = Policy::default();
        let o = order(Some(0));
        assert!(!o.is_due(p.grace_ms - 1, &p));
        assert!(o.is_due(p.grace_ms, &p));
    }

    #[test]
    fn a_paid_order_is_credited_for_our_amount_only() {
        let p = Policy::default();
        let o = order(Some(0));
        assert_eq!(
            decide(
                &o,
                Ok(&query("SUCCESS", Some(100), Some("42"))),
                20 * MIN,
                &p
            ),
            Action::Credit {
                transaction_id: "42".into()
            }
        );
        assert!(matches!(
            decide(
                &o,
                Ok(&query("SUCCESS", Some(101), Some("42"))),
                20 * MIN,
                &p
            ),
            Action::Conflict { .. }
        ));
    }

    #[test]
    fn unpaid_orders_close_only_after_the_prepay_life() {
        let p = Policy::default();
        let o = order(Some(10 * MIN));
        let q = query("NOTPAY", None, None);
        assert!(matches!(
            decide(&o, Ok(&q), 10 * MIN + PREPAY_LIFE_MS - 1, &p),
            Action::Wait { .. }
        ));
        assert_eq!(
            decide(&o, Ok(&q), 10 * MIN + PREPAY_LIFE_MS, &p),
            Action::Close
        );
        // Never while the user is paying.
        assert!(matches!(
            decide(
                &o,
                Ok(&query("USERPAYING", None, None)),
                10 * PREPAY_LIFE_MS,
                &p
            ),
            Action::Wait { .. }
        ));
    }

    #[test]
    fn orders_wechat_never_saw_end_closed_once_no_retry_can_place_them() {
        let p = Policy::default();
        let o = order(None);
        let e = business("ORDERNOTEXIST");
        assert!(matches!(
            decide(&o, Err(&e), 20 * MIN, &p),
            Action::Wait { .. }
        ));
        assert!(matches!(
            decide(&o, Err(&e), PREPAY_LIFE_MS, &p),
            Action::End {
                status: OrderStatus::Closed,
                ..
            }
        ));
        let busy = business("SYSTEMERROR");
        assert!(matches!(
            decide(&o, Err(&busy), 10 * PREPAY_LIFE_MS, &p),
            Action::Wait { .. }
        ));
    }

    #[test]
    fn closeorder_answers() {
        assert!(matches!(
            after_close(Ok(())),
            Action::End {
                status: OrderStatus::Closed,
                ..
            }
        ));
        assert!(matches!(
            after_close(Err(&business("ORDERPAID"))),
            Action::Wait { .. }
        ));
        assert!(matches!(
            after_close(Err(&business("ORDERCLOSED"))),
            Action::End {
                status: OrderStatus::Closed,
                ..
            }
        ));
    }
}
