//! Injected failures: "for the next N matching calls, do X". They let a test show what
//! the worker does when WeChat misbehaves, which real WeChat does rarely and never on
//! demand.

use serde::{Deserialize, Serialize};

/// Which call a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Jscode2session,
    Unifiedorder,
    Orderquery,
    Closeorder,
    /// `POST /v3/pay/transactions/jsapi`.
    Jsapi,
    /// `GET /v3/pay/transactions/out-trade-no/{no}`.
    Query,
    /// `POST /v3/pay/transactions/out-trade-no/{no}/close`.
    Close,
    /// `/sim/pay`, the app's payment.
    Pay,
    /// The notify WeChat sends after a payment.
    Notify,
    /// `POST /v3/refund/domestic/refunds`, the refund request.
    Refund,
    /// `GET /v3/refund/domestic/refunds/{out_refund_no}`.
    RefundQuery,
    /// The REFUND.* notify WeChat sends when a refund ends (its own target, so a fault
    /// meant for a payment's notify never hits a refund's, or the other way round).
    RefundNotify,
    /// The next daily trade bill made: v3 `GET /v3/bill/tradebill` or v2
    /// `POST /pay/downloadbill` (`/sim/bill` never uses one up). Its `out_trade_no`, if
    /// any, names the payment `bill_amount` or `bill_missing` changes.
    Bill,
}

/// What goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Answer HTTP 500 with no body WeChat would write.
    Http500,
    /// Hold the request for `delay_ms`, then answer 504: the caller should have given up.
    Timeout,
    /// WeChat's SYSTEMERROR (`errcode -1` for jscode2session).
    SystemError,
    /// The payer's balance is short: `/sim/pay` fails, the order stays NOTPAY.
    NotEnough,
    /// After the notify is acknowledged, send it once more.
    Duplicate,
    /// Hold this notify for `delay_ms` so notifies of later payments overtake it.
    OutOfOrder,
    /// Before the genuine notify, send one signed with a wrong key (a forgery).
    WrongSign,
    /// Before the genuine notify, send one correctly signed but for 1 fen more.
    WrongAmount,
    /// Never send the notify at all (lost for good): only orderquery can find the payment.
    Drop,
    /// unifiedorder, orderquery or closeorder answers with business error `err_code`
    /// (e.g. INVALID_REQUEST, ORDERNOTEXIST though WeChat has the order: its lag right after
    /// unifiedorder); nothing changes at WeChat.
    ErrCode,
    /// closeorder answers SUCCESS but the order stays payable (reported of real WeChat: a
    /// closed order's QR code could still be paid).
    Ignored,
    /// orderquery reports `trade_state` (PAYERROR, USERPAYING, REVOKED, REFUND, …) instead
    /// of the order's own state, which does not change: PAYERROR and USERPAYING orders are
    /// still payable.
    TradeState,
    /// v3 notify: first one signed `WECHATPAY/SIGNTEST/…`, WeChat's signature probe, which
    /// a receiver must refuse (4xx), then the genuine one.
    Signtest,
    /// v3: answers (jsapi, query, close) or every try of a notify signed with wxsim's
    /// second key under its own `PUB_KEY_ID_` (WeChat switching keys).
    RotatedKey,
    /// v3 notify: first one whose `Wechatpay-Timestamp` is 10 minutes old (a replay).
    Skewed,
    /// v3 notify: first one, correctly signed, whose GCM tag is corrupted.
    BadTag,
    /// The refund is accepted (PROCESSING) but ends ABNORMAL (the payer's card was
    /// cancelled or frozen): a REFUND.ABNORMAL notify.
    RefundAbnormal,
    /// The refund is accepted (PROCESSING) but ends CLOSED (no money left): a
    /// REFUND.CLOSED notify.
    RefundClosed,
    /// The bill shows one payment (the fault's `out_trade_no`, else the day's first) 1 fen
    /// more than was paid; its summary agrees with its rows, so the bill still parses: only
    /// reconciling against the merchant's own records finds it.
    BillAmount,
    /// The bill holds one more payment, of 1.00 yuan, under an out_trade_no and
    /// transaction_id the merchant never saw.
    BillExtra,
    /// The bill leaves one payment out (the fault's `out_trade_no`, else the day's first).
    BillMissing,
    /// v3: the apply answer's `hash_value` is not the file's SHA-1 (the download was
    /// tampered with or cut). On v2, which has no hash, it is used up doing nothing.
    BillHash,
}

/// How far the `skewed` notify's timestamp is off: twice WeChat's 5-minute window.
pub const SKEW_SECS: i64 = 600;

impl Kind {
    fn allowed(self, target: Target) -> bool {
        use Kind::*;
        use Target::*;
        let notify = matches!(target, Notify | RefundNotify);
        match self {
            Http500 | Timeout | SystemError => !notify && target != Pay,
            NotEnough => target == Pay,
            Duplicate | OutOfOrder | WrongSign | WrongAmount | Drop => notify,
            Signtest | Skewed => notify,
            // The core builds no refund notify with a broken tag.
            BadTag => target == Notify,
            RotatedKey => notify || matches!(target, Jsapi | Query | Close | Refund | RefundQuery),
            ErrCode => matches!(
                target,
                Unifiedorder
                    | Orderquery
                    | Closeorder
                    | Jsapi
                    | Query
                    | Close
                    | Refund
                    | RefundQuery
            ),
            Ignored => matches!(target, Closeorder | Close),
            TradeState => matches!(target, Orderquery | Query),
            RefundAbnormal | RefundClosed => target == Refund,
            BillAmount | BillExtra | BillMissing | BillHash => target == Bill,
        }
    }
}

/// A fault as `/sim/faults` takes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRequest {
    pub target: Target,
    pub kind: Kind,
    /// How many matching calls it applies to (default 1).
    #[serde(default = "one")]
    pub count: u32,
    /// Only calls about this order (pay, notify and refund targets; a refund's by the
    /// out_trade_no of the order it refunds).
    pub out_trade_no: Option<String>,
    /// For `timeout` (default 10 000) and `out_of_order` (default 1 000).
    pub delay_ms: Option<u64>,
    /// For `trade_state`: the state orderquery reports.
    pub trade_state: Option<String>,
    /// For `err_code`: the business error answered.
    pub err_code: Option<String>,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    pub id: u64,
    pub target: Target,
    pub kind: Kind,
    pub remaining: u32,
    pub out_trade_no: Option<String>,
    pub delay_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trade_state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub err_code: Option<String>,
}

impl FaultRequest {
    /// The fault, or what is wrong with the request.
    pub fn into_fault(self, id: u64) -> Result<Fault, String> {
        if !self.kind.allowed(self.target) {
            return Err(format!(
                "fault kind {:?} does not apply to target {:?}: http500, timeout and system_error \
                 apply to jscode2session, unifiedorder, orderquery, closeorder, jsapi, query, \
                 close, refund and refund_query; not_enough to pay; duplicate, out_of_order, \
                 wrong_sign, wrong_amount, drop, signtest and skewed to notify and refund_notify; \
                 bad_tag to notify; rotated_key to notify, refund_notify, jsapi, query, close, \
                 refund and refund_query; err_code to unifiedorder, orderquery, closeorder, \
                 jsapi, query, close, refund and refund_query; trade_state to orderquery and \
                 query; ignored to closeorder and close; refund_abnormal and refund_closed to \
                 refund; http500, timeout and system_error also to bill, and bill_amount, \
                 bill_extra, bill_missing and bill_hash only to bill",
                self.kind, self.target
            ));
        }
        if self.count == 0 || self.count > 100_000 {
            return Err("count must be between 1 and 100000".into());
        }
        if self.out_trade_no.is_some() && self.target == Target::Jscode2session {
            return Err("out_trade_no does not apply to jscode2session".into());
        }
        let delay_ms = self.delay_ms.unwrap_or(match self.kind {
            Kind::Timeout => 10_000,
            _ => 1_000,
        });
        if delay_ms > 600_000 {
            return Err("delay_ms must be at most 600000 (10 minutes)".into());
        }
        let code = |v: &Option<String>| {
            v.as_ref()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
                .cloned()
        };
        let trade_state = match (self.kind, code(&self.trade_state)) {
            (Kind::TradeState, Some(ts)) => Some(ts),
            (Kind::TradeState, None) => {
                return Err("kind trade_state needs \"trade_state\": an uppercase state such as PAYERROR or USERPAYING".into());
            }
            _ if self.trade_state.is_some() => {
                return Err("\"trade_state\" applies only to kind trade_state".into());
            }
            _ => None,
        };
        let err_code = match (self.kind, code(&self.err_code)) {
            (Kind::ErrCode, Some(c)) => Some(c),
            (Kind::ErrCode, None) => {
                return Err("kind err_code needs \"err_code\": an uppercase code such as INVALID_REQUEST or ORDERNOTEXIST".into());
            }
            _ if self.err_code.is_some() => {
                return Err("\"err_code\" applies only to kind err_code".into());
            }
            _ => None,
        };
        Ok(Fault {
            id,
            target: self.target,
            kind: self.kind,
            remaining: self.count,
            out_trade_no: self.out_trade_no,
            delay_ms,
            trade_state,
            err_code,
        })
    }
}

/// Takes one use of the first fault for `target` that matches `out_trade_no`. A bill is
/// about no one order: a `bill` fault's `out_trade_no` picks the row it changes instead,
/// so it matches every bill.
pub fn take(faults: &mut Vec<Fault>, target: Target, out_trade_no: Option<&str>) -> Option<Fault> {
    let i = faults.iter().position(|f| {
        f.target == target
            && (target == Target::Bill
                || f.out_trade_no
                    .as_deref()
                    .is_none_or(|want| Some(want) == out_trade_no))
    })?;
    let fault = faults[i].clone();
    faults[i].remaining -= 1;
    if faults[i].remaining == 0 {
        faults.remove(i);
    }
    Some(fault)
}

/// Takes one use of every fault of `target` (`notify` or `refund_notify`) matching
/// `out_trade_no` (one of each kind), so a duplicate and a forgery can hit the same notify.
pub fn take_notify(faults: &mut Vec<Fault>, target: Target, out_trade_no: &str) -> Vec<Fault> {
    let mut taken: Vec<Fault> = Vec::new();
    while let Some(i) = faults.iter().position(|f| {
        f.target == target
            && !taken.iter().any(|t| t.kind == f.kind)
            && f.out_trade_no.as_deref().is_none_or(|w| w == out_trade_no)
    }) {
        taken.push(faults[i].clone());
        faults[i].remaining -= 1;
        if faults[i].remaining == 0 {
            faults.remove(i);
        }
    }
    taken
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(target: Target, kind: Kind) -> FaultRequest {
        FaultRequest {
            target,
            kind,
            count: 2,
            out_trade_no: None,
            delay_ms: None,
            trade_state: None,
            err_code: None,
        }
    }

    #[test]
    fn nonsense_combinations_are_refused() {
        assert!(req(Target::Notify, Kind::Http500).into_fault(1).is_err());
        assert!(
            req(Target::Unifiedorder, Kind::Duplicate)
                .into_fault(1)
                .is_err()
        );
        assert!(req(Target::Pay, Kind::NotEnough).into_fault(1).is_ok());
        assert!(req(Target::RefundNotify, Kind::Drop).into_fault(1).is_ok());
        assert!(
            req(Target::RefundNotify, Kind::BadTag)
                .into_fault(1)
                .is_err()
        );
        assert!(
            req(Target::Refund, Kind::RefundClosed)
                .into_fault(1)
                .is_ok()
        );
        assert!(
            req(Target::Query, Kind::RefundAbnormal)
                .into_fault(1)
                .is_err()
        );
        assert!(req(Target::Bill, Kind::BillHash).into_fault(1).is_ok());
        assert!(req(Target::Bill, Kind::Http500).into_fault(1).is_ok());
        assert!(req(Target::Query, Kind::BillExtra).into_fault(1).is_err());
        assert!(req(Target::Bill, Kind::ErrCode).into_fault(1).is_err());
        // A bill fault naming a payment still applies to the next bill.
        let mut f = vec![
            FaultRequest {
                out_trade_no: Some("A".into()),
                ..req(Target::Bill, Kind::BillMissing)
            }
            .into_fault(1)
            .unwrap(),
        ];
        assert!(
            take(&mut f, Target::Bill, None)
                .is_some_and(|f| f.out_trade_no.as_deref() == Some("A"))
        );
    }

    #[test]
    fn faults_are_used_up_and_matched_by_order() {
        let mut f = vec![
            FaultRequest {
                out_trade_no: Some("A".into()),
                ..req(Target::Orderquery, Kind::SystemError)
            }
            .into_fault(1)
            .unwrap(),
        ];
        assert!(take(&mut f, Target::Orderquery, Some("B")).is_none());
        assert!(take(&mut f, Target::Orderquery, Some("A")).is_some());
        assert!(take(&mut f, Target::Orderquery, Some("A")).is_some());
        assert!(take(&mut f, Target::Orderquery, Some("A")).is_none());
        let mut f = vec![
            req(Target::Notify, Kind::Duplicate).into_fault(1).unwrap(),
            req(Target::Notify, Kind::WrongSign).into_fault(2).unwrap(),
        ];
        let kinds: Vec<Kind> = take_notify(&mut f, Target::Notify, "X")
            .iter()
            .map(|f| f.kind)
            .collect();
        assert_eq!(kinds, [Kind::Duplicate, Kind::WrongSign]);
        assert!(take_notify(&mut f, Target::RefundNotify, "Y").is_empty());
        assert_eq!(take_notify(&mut f, Target::Notify, "Y").len(), 2);
        assert!(f.is_empty());
    }
}
