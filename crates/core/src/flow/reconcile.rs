//! The reconciler's step for one open order: what orderquery's answer means, when to call
//! closeorder, what its answer means, and when to look again.
//!
//! Notifies get lost (our endpoint was down for WeChat's whole retry schedule, a proxy
//! ate them). Asking WeChat closes the gap: SUCCESS credits the order exactly as a
//! verified notify would. An order is ended only after WeChat agrees: an unpaid order
//! past its prepay_id's life is closed at WeChat first (`closeorder`), so it can never be
//! paid after we called it CLOSED; PAYERROR and USERPAYING are still payable, not
//! failures. Every write is guarded by the version the step saw, so a `/pay/` retry or
//! a notify between the query and the write makes the write change nothing.
//!
//! The queue is ordered by each order's next check time. Every look that settles nothing
//! moves the order's next check forward (doubling from `backoff_min` up to `backoff_max`,
//! never past the moment it can be closed), so no order stays at the head of the queue
//! and every order is reached in turn.

use crate::flow::Decision;
use crate::ledger::{OrderStatus, Settlement};
use crate::order::{Attention, OrderRow, PaidVia};
use crate::pay::{OrderQuery, PayError, Said, TradeState};
use crate::store::{Change, Write};

/// A prepay_id is valid for 2 hours; after that the user cannot pay it.
pub const PREPAY_LIFE_MS: u64 = 2 * 3600 * 1000;

/// When the reconciler looks at orders, and how many per run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// How long a new or changed order is left alone: the notify normally arrives within
    /// seconds, and querying sooner only doubles WeChat traffic.
    pub grace_ms: u64,
    /// After this long an unpaid order is closed (the prepay_id's life).
    pub close_after_ms: u64,
    /// The wait after the first look that settled nothing; it doubles with each look.
    pub backoff_min_ms: u64,
    /// The longest wait between two looks.
    pub backoff_max_ms: u64,
    /// How many due orders one run looks at (each is one or two subrequests).
    pub batch: u64,
    /// The settlement rules a credit found here is taken under (the platform fee).
    pub settlement: Settlement,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            grace_ms: 10 * 60 * 1000,
            close_after_ms: PREPAY_LIFE_MS,
            backoff_min_ms: 10 * 60 * 1000,
            backoff_max_ms: 6 * 3600 * 1000,
            batch: 20,
            settlement: Settlement::default(),
        }
    }
}

impl Policy {
    /// When a new (or newly prepaid) order is first looked at.
    pub fn first_check(&self, now_ms: u64) -> u64 {
        now_ms.saturating_add(self.grace_ms)
    }

    /// The wait after `checks` looks that settled nothing.
    pub fn backoff_ms(&self, checks: u32) -> u64 {
        let factor = 1u64.checked_shl(checks.min(40)).unwrap_or(u64::MAX);
        self.backoff_min_ms
            .saturating_mul(factor)
            .min(self.backoff_max_ms)
            .max(1)
    }

    /// How long a prepay_id is handed out again: its life (`close_after_ms`) less
    /// [`crate::flow::pay::PREPAY_REUSE_MARGIN_MS`], so a user never gets one that expires
    /// while they pay.
    pub fn prepay_reuse_ms(&self) -> u64 {
        self.close_after_ms
            .saturating_sub(crate::flow::pay::PREPAY_REUSE_MARGIN_MS)
    }

    /// When the order can no longer be paid (its last prepay_id's life is over).
    pub fn closable_at(&self, order: &OrderRow) -> u64 {
        order
            .prepay_ms
            .unwrap_or(order.created_ms)
            .saturating_add(self.close_after_ms)
    }
}

/// What one look at an order comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Apply these writes; the reply says what happened (for the run's summary).
    Decided(Decision<String>),
    /// Nobody paid and nobody can any more: call closeorder, then [`after_close`].
    Close,
}

fn recheck(
    order: &OrderRow,
    at_ms: u64,
    note: String,
    attention: Option<(Attention, String)>,
    now_ms: u64,
) -> Step {
    Step::Decided(look_again(order, at_ms, note, attention, now_ms))
}

fn look_again(
    order: &OrderRow,
    at_ms: u64,
    note: String,
    attention: Option<(Attention, String)>,
    now_ms: u64,
) -> Decision<String> {
    let summary = format!("wait: {note}");
    Decision::new(
        vec![Write::Order {
            seen: order.seen(),
            change: Change::Recheck {
                at_ms,
                note,
                attention,
            },
            now_ms,
        }],
        summary,
    )
}

fn end(order: &OrderRow, status: OrderStatus, reason: String, now_ms: u64) -> Decision<String> {
    let summary = format!("{status}: {reason}");
    Decision::new(
        vec![Write::Order {
            seen: order.seen(),
            change: Change::Ended { status, reason },
            now_ms,
        }],
        summary,
    )
}

/// The next look for an order that is still payable, or closing it once it is not.
fn while_payable(order: &OrderRow, note: &str, now_ms: u64, policy: &Policy) -> Step {
    let closable = policy.closable_at(order);
    if now_ms >= closable {
        return Step::Close;
    }
    let at = now_ms
        .saturating_add(policy.backoff_ms(order.checks))
        .min(closable);
    recheck(order, at, note.to_owned(), None, now_ms)
}

/// One order's step from orderquery's answer (`None`: WeChat gave none).
pub fn after_query(
    order: &OrderRow,
    query: Option<&Result<OrderQuery, PayError>>,
    now_ms: u64,
    policy: &Policy,
) -> Step {
    if !order.status.is_open() {
        return Step::Decided(Decision::reply("already settled".into()));
    }
    let later = |note: String| {
        recheck(
            order,
            now_ms.saturating_add(policy.backoff_ms(order.checks)),
            note,
            None,
            now_ms,
        )
    };
    let mark = |attention: Attention, note: String| {
        recheck(
            order,
            now_ms.saturating_add(policy.backoff_max_ms),
            note.clone(),
            Some((attention, note)),
            now_ms,
        )
    };
    let q = match query {
        None => return later("orderquery: WeChat did not answer".into()),
        Some(Ok(q)) => q,
        // The order has not reached WeChat (yet): a pay retry may still place it, so
        // wait; once none can, close it at WeChat too before ending it here.
        Some(Err(e)) if e.said() == Some(Said::NotFound) => {
            return while_payable(
                order,
                "WeChat does not know the order yet; a retry may still place it",
                now_ms,
                policy,
            );
        }
        Some(Err(e)) => return later(format!("orderquery failed: {e}")),
    };
    if q.out_trade_no != order.out_trade_no {
        return mark(
            Attention::WrongOrder,
            format!(
                "orderquery answered about {} instead of {}",
                q.out_trade_no, order.out_trade_no
            ),
        );
    }
    match &q.trade_state {
        TradeState::Success => match (q.total_fee, q.transaction_id.as_deref()) {
            (Some(fee), Some(tx)) if fee == order.total_fee && !tx.is_empty() => {
                Step::Decided(Decision::new(
                    vec![Write::Order {
                        seen: order.seen(),
                        change: Change::Paid {
                            transaction_id: tx.to_owned(),
                            via: PaidVia::Reconciler,
                            attention: None,
                            fee: policy.settlement.fee_of(order.total_fee),
                        },
                        now_ms,
                    }],
                    "credited: orderquery says SUCCESS".into(),
                ))
            }
            (Some(fee), _) if fee != order.total_fee => mark(
                Attention::AmountMismatch,
                format!(
                    "WeChat says paid {fee} fen, the order is for {} fen",
                    order.total_fee
                ),
            ),
            _ => later("SUCCESS without its total_fee or transaction_id".into()),
        },
        // Still payable: NOTPAY, a failed attempt (PAYERROR: the user may try again), or a
        // state added after this was written.
        TradeState::NotPay | TradeState::PayError | TradeState::Other(_) => while_payable(
            order,
            &format!("{}: not paid yet", q.trade_state.as_str()),
            now_ms,
            policy,
        ),
        // The user is entering a password: never close under them.
        TradeState::UserPaying => later("USERPAYING: the user is paying".into()),
        TradeState::Closed => Step::Decided(end(
            order,
            OrderStatus::Closed,
            "closed at WeChat".into(),
            now_ms,
        )),
        TradeState::Revoked => Step::Decided(end(
            order,
            OrderStatus::Failed,
            "REVOKED at WeChat".into(),
            now_ms,
        )),
        TradeState::Refund => mark(
            Attention::RefundedAtWechat,
            "WeChat says paid and refunded, but nothing credited it here".into(),
        ),
    }
}

/// What closeorder's answer (`None`: none came) means for the order as it is now.
/// `closed_at_version` is the version the decision to close was taken on: if the order
/// moved since (a `/pay/` retry placed it again, say), the answer may predate that move,
/// so nothing is ended and the order is looked at again at once.
pub fn after_close(
    order: &OrderRow,
    closed_at_version: u64,
    answer: Option<&Result<(), PayError>>,
    now_ms: u64,
    policy: &Policy,
) -> Decision<String> {
    if !order.status.is_open() {
        return Decision::reply("already settled".into());
    }
    if order.version != closed_at_version {
        return look_again(
            order,
            now_ms,
            "the order changed while it was being closed; looking again".into(),
            None,
            now_ms,
        );
    }
    let later = |note: String| {
        let at = now_ms.saturating_add(policy.backoff_ms(order.checks));
        look_again(order, at, note, None, now_ms)
    };
    match answer {
        None => later("closeorder: WeChat did not answer".into()),
        Some(Ok(())) => end(
            order,
            OrderStatus::Closed,
            "closed by the reconciler: unpaid past the prepay_id's life".into(),
            now_ms,
        ),
        Some(Err(e)) => match e.said() {
            // WeChat agrees: it is closed, or it never had the order.
            Some(Said::Closed) => end(
                order,
                OrderStatus::Closed,
                "closed at WeChat".into(),
                now_ms,
            ),
            Some(Said::NotFound) => end(
                order,
                OrderStatus::Closed,
                format!("{}: never reached WeChat", e.err_code().unwrap_or_default()),
                now_ms,
            ),
            // Paid at the last moment: look again now, and orderquery credits it.
            Some(Said::Paid) => look_again(
                order,
                now_ms,
                "closeorder says ORDERPAID; orderquery will credit it".into(),
                None,
                now_ms,
            ),
            _ => later(format!("closeorder failed: {e}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Fen;

    const MIN: u64 = 60_000;

    fn order(prepay_ms: Option<u64>, checks: u32) -> OrderRow {
        let status = if prepay_ms.is_some() {
            OrderStatus::Prepaid
        } else {
            OrderStatus::Created
        };
        OrderRow {
            version: 7,
            prepay_id: prepay_ms.map(|_| "wx".into()),
            prepay_ms,
            next_check_ms: Some(0),
            checks,
            ..crate::order::test_row(status)
        }
    }

    fn query(state: &str, fee: Option<u64>, tx: Option<&str>) -> Result<OrderQuery, PayError> {
        Ok(OrderQuery {
            out_trade_no: "T1".into(),
            trade_state: TradeState::parse(state),
            total_fee: fee.map(Fen::new),
            transaction_id: tx.map(Into::into),
            openid: None,
            time_end: None,
        })
    }

    fn business<T>(code: &str) -> Result<T, PayError> {
        Err(PayError::Business {
            err_code: code.into(),
            err_code_des: String::new(),
        })
    }

    fn change(step: &Step) -> &Change {
        match step {
            Step::Decided(d) => match &d.writes[0] {
                Write::Order { change, seen, .. } => {
                    assert_eq!(seen.version, 7, "guarded by the version seen");
                    change
                }
                w => panic!("{w:?}"),
            },
            Step::Close => panic!("close"),
        }
    }

    #[test]
    fn a_paid_order_is_credited_for_our_amount_only() {
        let p = Policy::default();
        let o = order(Some(0), 0);
        let s = after_query(
            &o,
            Some(&query("SUCCESS", Some(100), Some("42"))),
            20 * MIN,
            &p,
        );
        assert!(matches!(
            change(&s),
            Change::Paid {
                via: PaidVia::Reconciler,
                ..
            }
        ));
        let other = after_query(
            &o,
            Some(&query("SUCCESS", Some(101), Some("42"))),
            20 * MIN,
            &p,
        );
        assert!(matches!(
            change(&other),
            Change::Recheck {
                attention: Some((Attention::AmountMismatch, _)),
                ..
            }
        ));
    }

    #[test]
    fn unpaid_payerror_and_unknown_orders_wait_then_close_through_closeorder() {
        let p = Policy::default();
        let o = order(Some(10 * MIN), 0);
        let life_end = 10 * MIN + PREPAY_LIFE_MS;
        for state in ["NOTPAY", "PAYERROR"] {
            let q = query(state, None, None);
            let s = after_query(&o, Some(&q), life_end - 1, &p);
            // Never later than the moment it can be closed.
            assert!(
                matches!(change(&s), Change::Recheck { at_ms, .. } if *at_ms == life_end),
                "{s:?}"
            );
            assert_eq!(after_query(&o, Some(&q), life_end, &p), Step::Close);
        }
        let missing = business("ORDERNOTEXIST");
        assert!(matches!(
            change(&after_query(&o, Some(&missing), 20 * MIN, &p)),
            Change::Recheck { .. }
        ));
        assert_eq!(after_query(&o, Some(&missing), life_end, &p), Step::Close);
        // Never while the user is paying.
        let paying = after_query(
            &o,
            Some(&query("USERPAYING", None, None)),
            10 * PREPAY_LIFE_MS,
            &p,
        );
        assert!(matches!(change(&paying), Change::Recheck { .. }));
    }

    #[test]
    fn closeorder_answers() {
        let p = Policy::default();
        let o = order(Some(0), 3);
        let ended = |d: Decision<String>| {
            matches!(
                &d.writes[0],
                Write::Order {
                    change: Change::Ended {
                        status: OrderStatus::Closed,
                        ..
                    },
                    ..
                }
            )
        };
        assert!(ended(after_close(&o, 7, Some(&Ok(())), 0, &p)));
        assert!(ended(after_close(
            &o,
            7,
            Some(&business("ORDERCLOSED")),
            0,
            &p
        )));
        assert!(ended(after_close(
            &o,
            7,
            Some(&business("ORDERNOTEXIST")),
            0,
            &p
        )));
        let paid = after_close(&o, 7, Some(&business("ORDERPAID")), 5, &p);
        assert!(matches!(
            &paid.writes[0],
            Write::Order {
                change: Change::Recheck { at_ms: 5, .. },
                ..
            }
        ));
        let busy = after_close(&o, 7, Some(&business("SYSTEMERROR")), 5, &p);
        assert!(
            matches!(&busy.writes[0], Write::Order { change: Change::Recheck { at_ms, .. }, .. } if *at_ms > 5)
        );
        // Placed again while it was being closed: the answer may be stale, look again.
        let moved = after_close(&o, 6, Some(&Ok(())), 5, &p);
        assert!(matches!(
            &moved.writes[0],
            Write::Order {
                change: Change::Recheck { at_ms: 5, .. },
                ..
            }
        ));
    }

    #[test]
    fn backoff_doubles_up_to_its_ceiling() {
        let p = Policy::default();
        assert_eq!(p.backoff_ms(0), p.backoff_min_ms);
        assert_eq!(p.backoff_ms(1), 2 * p.backoff_min_ms);
        assert_eq!(p.backoff_ms(60), p.backoff_max_ms);
    }
}
