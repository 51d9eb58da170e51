//! `POST /pay/`: a new order, a retry of one, and what unifiedorder's answer does to it.
//!
//! The order is written (CREATED) before WeChat is asked, so whatever WeChat does the
//! order exists and says how far it got. A retry repeats the identical unifiedorder, which
//! WeChat answers with the same prepay_id: one order, one possible charge.
//!
//! An order is ended here only when WeChat agrees it can no longer be paid: ORDERCLOSED,
//! or a refusal of a brand-new order WeChat never created. Any other refusal of an order
//! that may exist at WeChat (a retry: its earlier prepay_id may still be payable) leaves
//! it open and asks the reconciler to look at once; the reconciler ends orders only
//! through closeorder.

use crate::Fen;
use crate::flow::Decision;
use crate::flow::reconcile::Policy;
use crate::ledger::OrderStatus;
use crate::order::OrderRow;
use crate::pay::{PayError, Prepay, Said};
use crate::store::{Change, NewOrder, Write};

/// A prepay_id is handed out again only with this much of its life to spare.
pub const PREPAY_REUSE_MARGIN_MS: u64 = 5 * 60 * 1000;
/// WeChat's limit on `body`, in bytes.
pub const MAX_BODY_BYTES: usize = 128;
/// The `body` of an order whose request names none.
pub const DEFAULT_BODY: &str = "wxedge order";
/// The merchant of an order whose request names none (the seed client names none).
pub const DEFAULT_MERCHANT: &str = "default";

/// Why a pay request is refused before WeChat is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A parameter is missing or wrong (code 1).
    Param(String),
    /// No such order or merchant (code 5).
    NotFound(String),
    /// Not the caller's order (code 7).
    Forbidden(String),
    /// The order's state does not allow it (code 6).
    Conflict(String),
}

/// A request for a new order, as the shell parsed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRequest<'a> {
    pub openid: &'a str,
    pub money: Option<Fen>,
    pub merchant_id: Option<&'a str>,
    pub body: Option<&'a str>,
    pub client_ip: &'a str,
}

/// The write that creates the order. Its guard is the merchant's existence: if it did not
/// hold, answer [`no_merchant`].
pub fn new_order(
    req: &NewRequest<'_>,
    out_trade_no: String,
    now_ms: u64,
    policy: &Policy,
) -> Result<Write, Refusal> {
    let total_fee = req
        .money
        .ok_or_else(|| Refusal::Param(crate::money::AmountError::Missing.to_string()))?;
    let body = req.body.unwrap_or(DEFAULT_BODY);
    if body.len() > MAX_BODY_BYTES {
        return Err(Refusal::Param(format!(
            "body is {} bytes; WeChat allows at most {MAX_BODY_BYTES}",
            body.len()
        )));
    }
    Ok(Write::CreateOrder(NewOrder {
        out_trade_no,
        openid: req.openid.to_owned(),
        merchant_id: req.merchant_id.unwrap_or(DEFAULT_MERCHANT).to_owned(),
        total_fee,
        body: body.to_owned(),
        spbill_create_ip: req.client_ip.to_owned(),
        now_ms,
        next_check_ms: policy.first_check(now_ms),
    }))
}

/// The refusal when the order's merchant does not exist (the create's guard failed).
pub fn no_merchant(merchant_id: Option<&str>) -> Refusal {
    Refusal::NotFound(format!(
        "no merchant {}",
        merchant_id.unwrap_or(DEFAULT_MERCHANT)
    ))
}

/// What to do for an order that exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Its prepay_id is still good: sign fresh payment fields for it.
    Reuse { prepay_id: String },
    /// Ask WeChat (again) with the order's own fields.
    UnifiedOrder,
}

/// A retry (or the first call for a new order): whose order, for how much, what next.
pub fn retry(
    row: &OrderRow,
    openid: &str,
    money: Option<Fen>,
    now_ms: u64,
    policy: &Policy,
) -> Result<Next, Refusal> {
    let no = &row.out_trade_no;
    if row.openid != openid {
        return Err(Refusal::Forbidden("this order is not yours".into()));
    }
    if let Some(m) = money
        && m != row.total_fee
    {
        return Err(Refusal::Conflict(format!(
            "order {no} is for {} fen, not {m}: leave money out to retry it, or place a new order",
            row.total_fee
        )));
    }
    match row.status {
        OrderStatus::Created | OrderStatus::Prepaid => {}
        OrderStatus::Paid | OrderStatus::Withdrawn => {
            return Err(Refusal::Conflict(format!("order {no} is already paid")));
        }
        other => {
            return Err(Refusal::Conflict(format!(
                "order {no} is {other}: place a new order"
            )));
        }
    }
    if row.status == OrderStatus::Prepaid
        && let (Some(prepay_id), Some(at)) = (&row.prepay_id, row.prepay_ms)
        && now_ms.saturating_sub(at) < policy.prepay_reuse_ms()
    {
        return Ok(Next::Reuse {
            prepay_id: prepay_id.clone(),
        });
    }
    Ok(Next::UnifiedOrder)
}

/// What the caller is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Sign wx.requestPayment's fields for this prepay_id.
    Pay { prepay_id: String },
    /// No trustworthy answer (none, SYSTEMERROR, an unverifiable one): nothing was
    /// charged; the caller retries with the out_trade_no (code 9).
    Retry { reason: String },
    /// WeChat refused (code 3), with its codes.
    Refused {
        err_code: Option<String>,
        err_code_des: String,
        return_msg: Option<String>,
    },
    /// The order was settled while we asked WeChat (code 6).
    Settled,
}

/// What unifiedorder's answer does to the order as it is now (`row`, re-read if a guard
/// failed). `answer` is `None` when WeChat gave none (timeout, network, HTTP error).
/// `created_here` says this request created the order; if the row is also untouched
/// since (version 0: no retry placed it meanwhile), a refusal means WeChat never created
/// it, and it may end FAILED.
pub fn after_unified_order(
    row: &OrderRow,
    answer: Option<&Result<Prepay, PayError>>,
    created_here: bool,
    now_ms: u64,
    policy: &Policy,
) -> Decision<Reply> {
    if !row.status.is_open() {
        return Decision::reply(Reply::Settled);
    }
    let fresh = created_here && row.version == 0 && row.prepay_id.is_none();
    let change = |change: Change| Write::Order {
        seen: row.seen(),
        change,
        now_ms,
    };
    let retry = |reason: String| Decision::reply(Reply::Retry { reason });
    let err = match answer {
        None => return retry("WeChat did not answer".into()),
        Some(Ok(prepay)) => {
            return Decision::new(
                vec![change(Change::Prepaid {
                    prepay_id: prepay.prepay_id.clone(),
                    next_check_ms: policy.first_check(now_ms),
                })],
                Reply::Pay {
                    prepay_id: prepay.prepay_id.clone(),
                },
            );
        }
        Some(Err(e)) => e,
    };
    if err.is_transient() {
        return retry(format!("WeChat is busy ({err})"));
    }
    let refused = |err_code: Option<&str>, des: &str, return_msg: Option<&str>| Reply::Refused {
        err_code: err_code.map(str::to_owned),
        err_code_des: des.to_owned(),
        return_msg: return_msg.map(str::to_owned),
    };
    let (reply, reason) = match err {
        PayError::Business { .. } | PayError::V3(_) => {
            let code = err.err_code().unwrap_or_default();
            let des = err.err_code_des().unwrap_or_default();
            (refused(Some(code), des, None), code.to_owned())
        }
        PayError::Communication { return_msg } => {
            (refused(None, "", Some(return_msg)), return_msg.clone())
        }
        PayError::Invalid(_) => (refused(None, &err.to_string(), None), err.to_string()),
        // An answer we cannot trust (bad XML, bad sign, another merchant's): nothing is
        // known, so the order stays as it is for a retry or the reconciler.
        _ => return retry(format!("WeChat Pay's answer could not be verified ({err})")),
    };
    let write = match err.said() {
        // WeChat agrees the order is over.
        Some(Said::Closed) => change(Change::Ended {
            status: OrderStatus::Closed,
            reason,
        }),
        // The money arrived: the reconciler's orderquery credits it, at once.
        Some(Said::Paid) => change(Change::Recheck {
            at_ms: now_ms,
            note: "unifiedorder says ORDERPAID".into(),
            attention: None,
        }),
        // A brand-new order WeChat refused to create cannot be paid.
        _ if fresh => change(Change::Ended {
            status: OrderStatus::Failed,
            reason,
        }),
        // It may exist at WeChat with a payable prepay_id: never end it here. The
        // reconciler looks at once and ends it only through closeorder.
        _ => change(Change::Recheck {
            at_ms: now_ms,
            note: format!("unifiedorder refused a retry: {reason}"),
            attention: None,
        }),
    };
    Decision::new(vec![write], reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Change;

    fn row(status: OrderStatus, prepay_ms: Option<u64>) -> OrderRow {
        OrderRow {
            prepay_id: prepay_ms.map(|_| "wx1".into()),
            prepay_ms,
            ..crate::order::test_row(status)
        }
    }

    fn business(code: &str) -> Result<Prepay, PayError> {
        Err(PayError::Business {
            err_code: code.into(),
            err_code_des: "des".into(),
        })
    }

    fn change_of(d: &Decision<Reply>) -> Option<&Change> {
        match d.writes.first()? {
            Write::Order { change, .. } => Some(change),
            _ => None,
        }
    }

    #[test]
    fn a_retry_reuses_a_fresh_prepay_id_and_asks_again_after() {
        let p = Policy::default();
        let reuse = p.prepay_reuse_ms();
        assert_eq!(reuse, 2 * 3600 * 1000 - PREPAY_REUSE_MARGIN_MS);
        let r = row(OrderStatus::Prepaid, Some(1000));
        assert_eq!(
            retry(&r, "o1", None, 1000 + reuse - 1, &p),
            Ok(Next::Reuse {
                prepay_id: "wx1".into()
            })
        );
        assert_eq!(
            retry(&r, "o1", None, 1000 + reuse, &p),
            Ok(Next::UnifiedOrder)
        );
        assert!(matches!(
            retry(&r, "o2", None, 0, &p),
            Err(Refusal::Forbidden(_))
        ));
        assert!(matches!(
            retry(&r, "o1", Some(Fen::new(101)), 0, &p),
            Err(Refusal::Conflict(_))
        ));
        assert!(matches!(
            retry(&row(OrderStatus::Closed, None), "o1", None, 0, &p),
            Err(Refusal::Conflict(_))
        ));
    }

    #[test]
    fn a_refused_retry_never_ends_an_order_that_may_be_payable() {
        let p = Policy::default();
        let r = row(OrderStatus::Prepaid, Some(0));
        for code in ["INVALID_REQUEST", "PARAM_ERROR", "ORDERPAID", "NOAUTH"] {
            let d = after_unified_order(&r, Some(&business(code)), false, 5, &p);
            assert!(
                matches!(change_of(&d), Some(Change::Recheck { at_ms: 5, .. })),
                "{code}: {d:?}"
            );
            assert!(matches!(d.reply, Reply::Refused { .. }));
        }
        let closed = after_unified_order(&r, Some(&business("ORDERCLOSED")), false, 5, &p);
        assert!(matches!(
            change_of(&closed),
            Some(Change::Ended {
                status: OrderStatus::Closed,
                ..
            })
        ));
        // A brand-new order WeChat refused never existed there.
        let mut new = row(OrderStatus::Created, None);
        new.version = 0;
        let fresh = after_unified_order(&new, Some(&business("PARAM_ERROR")), true, 5, &p);
        assert!(matches!(
            change_of(&fresh),
            Some(Change::Ended {
                status: OrderStatus::Failed,
                ..
            })
        ));
        // Placed by a concurrent retry meanwhile: it may exist at WeChat now.
        new.version = 1;
        let moved = after_unified_order(&new, Some(&business("PARAM_ERROR")), true, 5, &p);
        assert!(matches!(change_of(&moved), Some(Change::Recheck { .. })));
    }

    #[test]
    fn no_answer_or_a_busy_one_writes_nothing() {
        let p = Policy::default();
        let r = row(OrderStatus::Created, None);
        for a in [None, Some(&business("SYSTEMERROR"))] {
            let d = after_unified_order(&r, a, true, 5, &p);
            assert!(d.writes.is_empty());
            assert!(matches!(d.reply, Reply::Retry { .. }));
        }
        let ok = Ok(Prepay {
            prepay_id: "wx9".into(),
            trade_type: "JSAPI".into(),
            code_url: None,
        });
        let d = after_unified_order(&r, Some(&ok), true, 5, &p);
        assert!(matches!(change_of(&d), Some(Change::Prepaid { .. })));
        let settled = after_unified_order(&row(OrderStatus::Paid, None), Some(&ok), false, 5, &p);
        assert_eq!(settled, Decision::reply(Reply::Settled));
    }
}
