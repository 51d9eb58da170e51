//! Refunds: what a merchant's request, WeChat's answer, the reconciler's query and a
//! refund notify do to the ledger.
//!
//! A refund takes its money the moment it is recorded ([`request`]): the order's
//! `refunded_fen` grows (guarded by the order's status and version, and never past its
//! fee) and a REFUND entry takes the amount from the merchant, so a withdrawal racing the
//! refund can no longer pay it out; an order already withdrawn becomes a debt the next
//! credits repay. WeChat's answers ([`after_answer`], [`after_query`]) and notifies
//! ([`after_notify`]) move the refund; one that ends without money leaving (refused,
//! CLOSED) gives the money back in the same batch. A notify for a refund we never asked
//! for (made by hand in the merchant platform) becomes a refund row of its own and takes
//! its money exactly like ours.

use crate::flow::Decision;
use crate::flow::notify::{Received, Reply as NotifyReply};
use crate::money::{self, AmountError};
use crate::order::OrderRow;
use crate::pay::{PayError, Said};
use crate::refund::{RefundRow, RefundSource, RefundStatus};
use crate::store::{NewRefund, NotificationRecord, RefundChange, Verdict, Write};
use crate::v3::refund::{MAX_REASON_BYTES, MAX_REFUNDS_PER_ORDER, RefundState, WechatRefundStatus};
use crate::{ErrorCode, Fen};

/// WeChat refunds an order only within a year of its payment (退款申请: "支付成功时间+365天").
pub const REFUND_WINDOW_MS: u64 = 365 * 24 * 3600 * 1000;

/// When the reconciler asks about refunds that are not final.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// After a request, how long to wait for WeChat's answer or notify before asking.
    pub grace_ms: u64,
    pub backoff_min_ms: u64,
    pub backoff_max_ms: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            grace_ms: 600_000,
            backoff_min_ms: 600_000,
            backoff_max_ms: 6 * 3600 * 1000,
        }
    }
}

impl Policy {
    fn backoff(&self, checks: u32) -> u64 {
        let doubled = self.backoff_min_ms.saturating_mul(1u64 << checks.min(20));
        doubled.min(self.backoff_max_ms.max(self.backoff_min_ms))
    }
}

/// A merchant's refund request, as the shell read it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub merchant_id: &'a str,
    pub out_trade_no: &'a str,
    pub amount: Option<&'a serde_json::Value>,
    pub reason: Option<&'a str>,
    pub idempotency_key: Option<&'a str>,
    /// SHA-256 of the request's meaning (order, amount, reason), so a reused key with
    /// another request is told apart from a replay.
    pub request_sha256: &'a str,
}

/// Why a refund request is refused (nothing is written).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A missing or ill-formed field (code 1).
    #[error("{0}")]
    Param(String),
    /// No such order of this merchant (code 5).
    #[error("{0}")]
    NotFound(String),
    /// The order's state does not allow it (code 6).
    #[error("{0}")]
    Conflict(String),
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// This key already made this refund: answer it again.
    Replay(Box<RefundRow>),
    /// Record it (one guarded batch), then ask WeChat.
    Create {
        out_refund_no: String,
        write: Box<Write>,
    },
}

/// The SHA-256 (hex) of what a request means: the same order, amount and reason give the
/// same digest however the body was written.
pub fn request_digest(out_trade_no: &str, amount: Fen, reason: Option<&str>) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in [
        out_trade_no,
        &amount.get().to_string(),
        reason.unwrap_or(""),
    ] {
        h.update(part.len().to_string().as_bytes());
        h.update(b":");
        h.update(part.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The amount of a request, checked: integer fen, at least 1.
pub fn amount(value: Option<&serde_json::Value>) -> Result<Fen, Refusal> {
    money::parse_amount(value, Fen::new(u64::MAX)).map_err(|e| match e {
        AmountError::Missing => {
            Refusal::Param("amount_fen is required (integer fen, at least 1)".into())
        }
        other => Refusal::Param(format!("amount_fen: {other}")),
    })
}

/// The decision for a request, given the order as read, the refund the key already names
/// (if any), how many refunds the order has, and a fresh `out_refund_no`.
pub fn request(
    order: Option<&OrderRow>,
    existing: Option<&RefundRow>,
    refunds_of_order: u64,
    r: &Request<'_>,
    new_no: String,
    now_ms: u64,
    policy: &Policy,
) -> Result<Next, Refusal> {
    if let Some(e) = existing {
        return if e.request_sha256.as_deref() == Some(r.request_sha256) {
            Ok(Next::Replay(Box::new(e.clone())))
        } else {
            Err(Refusal::Conflict(format!(
                "Idempotency-Key {:?} was used for another refund ({}); use a new key for a new refund",
                r.idempotency_key.unwrap_or_default(),
                e.out_refund_no
            )))
        };
    }
    let no = r.out_trade_no;
    let order = order
        .filter(|o| o.merchant_id == r.merchant_id)
        .ok_or_else(|| Refusal::NotFound(format!("no order {no} of this merchant")))?;
    let amount = amount(r.amount)?;
    if let Some(reason) = r.reason
        && (reason.is_empty() || reason.len() > MAX_REASON_BYTES)
    {
        return Err(Refusal::Param(format!(
            "reason is {} bytes; 1 to {MAX_REASON_BYTES} allowed (WeChat shows it to the payer)",
            reason.len()
        )));
    }
    if !order.status.is_paid() {
        return Err(Refusal::Conflict(format!(
            "order {no} is {}: only a paid order can be refunded",
            order.status
        )));
    }
    let left = order
        .total_fee
        .checked_sub(order.refunded_fen)
        .unwrap_or(Fen::ZERO);
    if amount > left {
        return Err(Refusal::Conflict(format!(
            "{amount} fen is above what is left to refund on order {no}: {left} of {} fen",
            order.total_fee
        )));
    }
    if refunds_of_order >= MAX_REFUNDS_PER_ORDER {
        return Err(Refusal::Conflict(format!(
            "order {no} has {refunds_of_order} refunds; WeChat allows at most {MAX_REFUNDS_PER_ORDER}"
        )));
    }
    if let Some(paid) = order.paid_ms
        && now_ms.saturating_sub(paid) > REFUND_WINDOW_MS
    {
        return Err(Refusal::Conflict(format!(
            "order {no} was paid more than a year ago; WeChat refunds only within 365 days"
        )));
    }
    let write = Box::new(Write::CreateRefund {
        order: order.seen(),
        refund: NewRefund {
            out_refund_no: new_no.clone(),
            out_trade_no: no.to_owned(),
            merchant_id: r.merchant_id.to_owned(),
            amount,
            reason: r.reason.map(str::to_owned),
            status: RefundStatus::Requested,
            source: RefundSource::Api,
            refund_id: None,
            idempotency_key: r.idempotency_key.map(str::to_owned),
            request_sha256: Some(r.request_sha256.to_owned()),
            now_ms,
            success_ms: None,
            next_check_ms: Some(now_ms.saturating_add(policy.grace_ms)),
        },
        bounded: true,
    });
    Ok(Next::Create {
        out_refund_no: new_no,
        write,
    })
}

/// Our state for what WeChat reports.
pub fn status_of(s: WechatRefundStatus) -> RefundStatus {
    match s {
        WechatRefundStatus::Processing => RefundStatus::Processing,
        WechatRefundStatus::Success => RefundStatus::Success,
        WechatRefundStatus::Closed => RefundStatus::Closed,
        WechatRefundStatus::Abnormal => RefundStatus::Abnormal,
    }
}

/// The move WeChat's report makes (None: nothing to change).
fn report(row: &RefundRow, state: &RefundState, now_ms: u64, policy: &Policy) -> Option<Write> {
    let to = status_of(state.status);
    if to == row.status && row.refund_id.as_deref() == Some(state.refund_id.as_str()) {
        return None;
    }
    if to != row.status && !row.status.can_become(to) {
        return None;
    }
    Some(Write::Refund {
        seen: row.seen(),
        change: RefundChange {
            status: to,
            refund_id: (!state.refund_id.is_empty()).then(|| state.refund_id.clone()),
            failure: None,
            success_ms: (to == RefundStatus::Success).then_some(now_ms),
            next_check_ms: (!to.is_final()).then(|| now_ms.saturating_add(policy.grace_ms)),
            counted: false,
        },
        now_ms,
    })
}

/// What the merchant is told after the request's batch and WeChat's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Read the refund back and show it (its status says how far it got).
    Show,
    /// WeChat did not answer, or was busy: the refund is REQUESTED and the reconciler
    /// finishes it; the merchant may look at it later. Never send it again with a new
    /// number (that could refund twice).
    Pending { reason: String },
}

/// What the create answer does to the refund as read. `None`: no answer came.
pub fn after_answer(
    row: &RefundRow,
    answer: Option<&Result<RefundState, PayError>>,
    now_ms: u64,
    policy: &Policy,
) -> Decision<Reply> {
    let pending = |reason: String| Decision::reply(Reply::Pending { reason });
    match answer {
        None => pending("WeChat did not answer; the reconciler will ask about it".into()),
        Some(Ok(state)) => match report(row, state, now_ms, policy) {
            Some(w) => Decision::new(vec![w], Reply::Show),
            None => Decision::reply(Reply::Show),
        },
        Some(Err(e))
            if e.said() == Some(Said::Busy) || matches!(e, PayError::V3Untrusted { .. }) =>
        {
            pending(format!("{e}; the reconciler will ask about it"))
        }
        Some(Err(e)) => {
            if row.status != RefundStatus::Requested {
                return Decision::reply(Reply::Show);
            }
            // WeChat refused it: no refund exists; the money is the merchant's again.
            let failure = format!(
                "{}: {}",
                e.err_code().unwrap_or(e.code()),
                e.err_code_des().unwrap_or_default()
            );
            Decision::new(
                vec![Write::Refund {
                    seen: row.seen(),
                    change: RefundChange {
                        status: RefundStatus::Failed,
                        refund_id: None,
                        failure: Some(failure),
                        success_ms: None,
                        next_check_ms: None,
                        counted: false,
                    },
                    now_ms,
                }],
                Reply::Show,
            )
        }
    }
}

/// What the reconciler does after asking WeChat about a refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Write this (possibly nothing) and go on.
    Decided(Decision<String>),
    /// WeChat never received the request: send it again with the same `out_refund_no`
    /// (WeChat's rule: one refund per number, however many requests), then
    /// [`after_answer`].
    Resend,
}

/// The reconciler's step for a refund that is not final, after its query.
pub fn after_query(
    row: &RefundRow,
    answer: Option<&Result<RefundState, PayError>>,
    now_ms: u64,
    policy: &Policy,
) -> Step {
    let later = |note: String| {
        Step::Decided(Decision::new(
            vec![Write::Refund {
                seen: row.seen(),
                change: RefundChange {
                    status: row.status,
                    refund_id: None,
                    failure: None,
                    success_ms: None,
                    next_check_ms: Some(now_ms.saturating_add(policy.backoff(row.checks))),
                    counted: true,
                },
                now_ms,
            }],
            note,
        ))
    };
    match answer {
        None => later("refund query: WeChat did not answer".into()),
        Some(Ok(state)) => match report(row, state, now_ms, policy) {
            Some(w) if status_of(state.status) != row.status => {
                Step::Decided(Decision::new(vec![w], format!("refund {}", state.status)))
            }
            // Still PROCESSING / ABNORMAL: ask again later.
            _ => later(format!("refund still {}", state.status)),
        },
        Some(Err(PayError::V3(e)))
            if e.code.as_str() == "RESOURCE_NOT_EXISTS"
                && row.status == RefundStatus::Requested =>
        {
            Step::Resend
        }
        Some(Err(e)) => later(format!("refund query failed: {e}")),
    }
}

/// A refund notify's facts, whichever wire format brought them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub mchid: String,
    pub state: RefundState,
}

fn record(r: &Received<'_>, no: &str, verdict: Verdict, reason: String) -> Write {
    Write::Notification(NotificationRecord {
        received_ms: r.now_ms,
        body: String::from_utf8_lossy(r.body).into_owned(),
        body_sha256: crate::flow::notify::sha256_hex(r.body),
        body_bytes: r.body.len() as u64,
        verified: true,
        remote_ip: r.remote_ip.map(str::to_owned),
        out_trade_no: Some(no.to_owned()),
        verdict,
        reason,
    })
}

/// What a verified refund notify does, given the refund it names and its order as read.
pub fn after_notify(
    n: &Notice,
    refund: Option<&RefundRow>,
    order: Option<&OrderRow>,
    mch_id: &str,
    received: &Received<'_>,
    now_ms: u64,
    policy: &Policy,
) -> Decision<NotifyReply> {
    let s = &n.state;
    let no = s.out_trade_no.as_str();
    let note = |verdict, reason: String| record(received, no, verdict, reason);
    if n.mchid != mch_id {
        return Decision::new(
            vec![note(
                Verdict::Rejected,
                format!("FIELD_MISMATCH: mchid {} is not ours", n.mchid),
            )],
            NotifyReply::fail_with(400, "rejected: FIELD_MISMATCH"),
        );
    }
    let Some(order) = order else {
        return Decision::new(
            vec![note(Verdict::UnknownOrder, "no such out_trade_no".into())],
            NotifyReply::fail_with(404, "unknown order"),
        );
    };
    match refund {
        Some(row) => {
            if row.out_trade_no != order.out_trade_no || row.amount_fen != s.refund {
                return Decision::new(
                    vec![note(
                        Verdict::Rejected,
                        format!(
                            "FIELD_MISMATCH: refund {} is {} fen of {}, WeChat says {} fen of {}",
                            row.out_refund_no,
                            row.amount_fen,
                            row.out_trade_no,
                            s.refund,
                            s.out_trade_no
                        ),
                    )],
                    NotifyReply::fail_with(400, "rejected: FIELD_MISMATCH"),
                );
            }
            match report(row, s, now_ms, policy) {
                Some(w) => Decision::new(
                    vec![
                        w,
                        note(
                            Verdict::RefundApplied,
                            format!("refund {} {}", row.out_refund_no, s.status),
                        ),
                    ],
                    NotifyReply::ok(),
                ),
                None => Decision::new(
                    vec![note(
                        Verdict::Duplicate,
                        format!("refund {} already {}", row.out_refund_no, row.status),
                    )],
                    NotifyReply::ok(),
                ),
            }
        }
        None => {
            if !order.status.is_paid() {
                // WeChat refunded a payment not credited here yet: the reconciler credits it
                // first; until then WeChat keeps retrying.
                return Decision::new(
                    vec![note(
                        Verdict::Rejected,
                        format!(
                            "order {no} is {} here; its payment is not credited yet",
                            order.status
                        ),
                    )],
                    NotifyReply::fail_with(409, "order not paid here yet"),
                );
            }
            let status = status_of(s.status);
            let write = Write::CreateRefund {
                order: order.seen(),
                refund: NewRefund {
                    out_refund_no: s.out_refund_no.clone(),
                    out_trade_no: order.out_trade_no.clone(),
                    merchant_id: order.merchant_id.clone(),
                    amount: s.refund,
                    reason: None,
                    status,
                    source: RefundSource::ByHand,
                    refund_id: (!s.refund_id.is_empty()).then(|| s.refund_id.clone()),
                    idempotency_key: None,
                    request_sha256: None,
                    now_ms,
                    success_ms: (status == RefundStatus::Success).then_some(now_ms),
                    next_check_ms: (!status.is_final())
                        .then(|| now_ms.saturating_add(policy.grace_ms)),
                },
                // WeChat's own total is the truth: never refuse what it already refunded.
                bounded: false,
            };
            Decision::new(
                vec![
                    write,
                    note(
                        Verdict::RefundRecorded,
                        format!("refund {} made outside wxedge: recorded", s.out_refund_no),
                    ),
                ],
                NotifyReply::ok(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::OrderStatus;
    use crate::order::test_row;

    fn paid(total: u64, refunded: u64) -> OrderRow {
        OrderRow {
            merchant_id: "m".into(),
            total_fee: Fen::new(total),
            refunded_fen: Fen::new(refunded),
            paid_ms: Some(1),
            ..test_row(OrderStatus::Paid)
        }
    }

    fn req<'a>(amount: &'a serde_json::Value, digest: &'a str) -> Request<'a> {
        Request {
            merchant_id: "m",
            out_trade_no: "T000001",
            amount: Some(amount),
            reason: None,
            idempotency_key: Some("k1"),
            request_sha256: digest,
        }
    }

    #[test]
    fn a_refund_is_never_above_what_is_left() {
        let p = Policy::default();
        let v = serde_json::json!(30);
        let mut o = paid(100, 80);
        o.out_trade_no = "T000001".into();
        let r = request(Some(&o), None, 1, &req(&v, "d"), "R1".into(), 5, &p);
        assert!(
            matches!(r, Err(Refusal::Conflict(ref m)) if m.contains("20 of 100")),
            "{r:?}"
        );
        let ok = request(
            Some(&paid(100, 70)),
            None,
            1,
            &Request {
                out_trade_no: "T000001",
                ..req(&v, "d")
            },
            "R1".into(),
            5,
            &p,
        );
        assert!(matches!(ok, Ok(Next::Create { .. })), "{ok:?}");
        for bad in [
            serde_json::json!(0),
            serde_json::json!(1.5),
            serde_json::json!("x"),
            serde_json::json!(-3),
        ] {
            assert!(matches!(
                request(
                    Some(&paid(100, 0)),
                    None,
                    0,
                    &req(&bad, "d"),
                    "R1".into(),
                    5,
                    &p
                ),
                Err(Refusal::Param(_))
            ));
        }
        let unpaid = OrderRow {
            merchant_id: "m".into(),
            ..test_row(OrderStatus::Prepaid)
        };
        assert!(matches!(
            request(Some(&unpaid), None, 0, &req(&v, "d"), "R1".into(), 5, &p),
            Err(Refusal::Conflict(_))
        ));
        let foreign = OrderRow {
            merchant_id: "other".into(),
            ..paid(100, 0)
        };
        assert!(matches!(
            request(Some(&foreign), None, 0, &req(&v, "d"), "R1".into(), 5, &p),
            Err(Refusal::NotFound(_))
        ));
        assert!(matches!(
            request(
                Some(&paid(100, 0)),
                None,
                50,
                &req(&v, "d"),
                "R1".into(),
                5,
                &p
            ),
            Err(Refusal::Conflict(_))
        ));
    }

    #[test]
    fn a_key_replays_its_refund_or_refuses_another() {
        let p = Policy::default();
        let v = serde_json::json!(30);
        let row = RefundRow {
            out_refund_no: "R0".into(),
            out_trade_no: "T000001".into(),
            merchant_id: "m".into(),
            amount_fen: Fen::new(30),
            reason: None,
            status: RefundStatus::Processing,
            source: RefundSource::Api,
            refund_id: None,
            version: 1,
            idempotency_key: Some("k1".into()),
            request_sha256: Some("d".into()),
            failure: None,
            created_ms: 0,
            updated_ms: 0,
            success_ms: None,
            next_check_ms: None,
            checks: 0,
        };
        assert!(matches!(
            request(None, Some(&row), 0, &req(&v, "d"), "R1".into(), 5, &p),
            Ok(Next::Replay(_))
        ));
        assert!(matches!(
            request(None, Some(&row), 0, &req(&v, "other"), "R1".into(), 5, &p),
            Err(Refusal::Conflict(_))
        ));
        assert_eq!(
            request_digest("T1", Fen::new(3), Some("a")),
            request_digest("T1", Fen::new(3), Some("a"))
        );
        assert_ne!(
            request_digest("T1", Fen::new(3), None),
            request_digest("T1", Fen::new(30), None)
        );
    }
}
