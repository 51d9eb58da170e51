//! WeChat's refund rules, shared by the APIv3 refund (`POST /v3/refund/domestic/refunds`,
//! in [`crate::wechat_v3`]) and a refund made by hand in the merchant platform
//! (`/sim/refund`, in [`crate::app`]), and a refund's course: accepted PROCESSING, then
//! after `--refund-delay-ms` (× `--time-scale`) SUCCESS (or ABNORMAL / CLOSED when a fault
//! says so) and its REFUND.* notify, on the payment notify's retry schedule.
//!
//! The rules (退款申请, <https://pay.weixin.qq.com/doc/v3/merchant/4012556457>, and its
//! error table; `/work/research/refunds_bills.md` §1): the order must be paid (an unknown
//! or unpaid one is `404 RESOURCE_NOT_EXISTS` 订单号不存在); `amount.total` must be the
//! order's; the refunds of an order (CLOSED ones give their money back) never add up to
//! more than it; at most 50 per order; "同一退款单号多次请求只退一笔": the same
//! out_refund_no again is the same refund, and with another amount it is refused.

use std::sync::Arc;
use std::time::Duration;

use wxedge_core::pay;
use wxedge_core::v3::refund::MAX_REFUNDS_PER_ORDER;

use crate::Sim;
use crate::faults::{self, Target};
use crate::notifier::{self, Subject};
use crate::state::{Order, Refund, RefundSource, RefundStatus, State, TradeState};
use crate::wechat_v3::rfc3339;

/// How a refund names its order.
pub(crate) enum OrderRef<'a> {
    OutTradeNo(&'a str),
    TransactionId(&'a str),
}

/// A refund asked for, by the API or by hand.
pub(crate) struct Ask {
    pub out_refund_no: String,
    pub refund_fee: u64,
    /// The order's total as the request states it (v3 `amount.total`); `None` by hand.
    pub total_fee: Option<u64>,
    pub reason: Option<String>,
    /// `None`: the order's notify_url (WeChat would use the URL set in the merchant
    /// platform; wxsim has none).
    pub notify_url: Option<String>,
    pub source: RefundSource,
    /// What PROCESSING turns into.
    pub ends: RefundStatus,
}

/// Why WeChat refuses a refund: each is a v3 error (`code`, `status`, `message`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No such order, or not paid.
    NoOrder,
    /// `amount.total` is not the order's total.
    TotalMismatch,
    /// The out_refund_no was used for another amount or another order.
    Reused,
    /// 50 refunds already.
    TooMany,
    /// Nothing left to refund.
    FullyRefunded,
    /// More than what is left.
    OverRefund { refundable: u64 },
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::NoOrder => "RESOURCE_NOT_EXISTS",
            _ => "INVALID_REQUEST",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            Refusal::NoOrder => 404,
            _ => 400,
        }
    }

    pub fn message(&self) -> String {
        match self {
            // 退款申请's error table.
            Refusal::NoOrder => "订单号不存在".into(),
            // 退款 FAQ (4013071200).
            Refusal::TotalMismatch => "您的请求参数与订单信息不一致".into(),
            // Observed as v2's err_code_des; the v3 message is taken to be the same.
            Refusal::Reused => "订单金额或退款金额与之前请求不一致,请核实后再试".into(),
            // The texts below are UNVERIFIED for v3 (no sample found, research notes §1.3
            // and §6): 订单已全额退款 is v2's, the others are ours, in WeChat's manner.
            Refusal::TooMany => {
                format!("退款次数超过限制（每笔订单最多{MAX_REFUNDS_PER_ORDER}次）")
            }
            Refusal::FullyRefunded => "订单已全额退款".into(),
            Refusal::OverRefund { refundable } => {
                format!("退款金额超过可退金额（可退{refundable}分）")
            }
        }
    }
}

fn find_paid<'a>(st: &'a State, mch_id: Option<&str>, by: &OrderRef<'_>) -> Option<&'a Order> {
    let mine = |o: &&Order| mch_id.is_none_or(|m| m == o.mch_id);
    let order = match by {
        OrderRef::OutTradeNo(no) => match mch_id {
            Some(m) => st.orders.get(&Order::key(m, no)),
            None => st.orders.values().find(|o| o.out_trade_no == *no),
        },
        OrderRef::TransactionId(id) => st
            .orders
            .values()
            .filter(mine)
            .find(|o| o.transaction_id.as_deref() == Some(*id)),
    }?;
    (order.state == TradeState::Success).then_some(order)
}

/// The out_trade_no a refund request is about, for matching faults before the request is
/// judged (a request naming only its transaction_id is matched through the order).
pub(crate) fn out_trade_no_of(sim: &Sim, by: &OrderRef<'_>) -> Option<String> {
    match by {
        OrderRef::OutTradeNo(no) => Some((*no).to_owned()),
        OrderRef::TransactionId(_) => {
            find_paid(&sim.state(), None, by).map(|o| o.out_trade_no.clone())
        }
    }
}

/// Applies WeChat's rules to `ask`: the new refund (`true`, PROCESSING, its course
/// started), or the one this out_refund_no already made (`false`: a replay changes
/// nothing), or the refusal. `mch_id`: the caller's (the API), or any merchant (by hand).
pub(crate) fn refund(
    sim: &Arc<Sim>,
    mch_id: Option<&str>,
    by: OrderRef<'_>,
    ask: Ask,
) -> Result<(Refund, bool), Refusal> {
    let now = sim.now_ms();
    let made = {
        let mut st = sim.state_mut();
        let order = find_paid(&st, mch_id, &by).ok_or(Refusal::NoOrder)?.clone();
        let key = Refund::key(&order.mch_id, &ask.out_refund_no);
        if let Some(r) = st.refunds.get(&key) {
            let same = r.out_trade_no == order.out_trade_no
                && r.refund_fee == ask.refund_fee
                && ask.total_fee.is_none_or(|t| t == r.total_fee);
            return if same {
                Ok((r.clone(), false))
            } else {
                Err(Refusal::Reused)
            };
        }
        if ask.total_fee.is_some_and(|t| t != order.total_fee) {
            return Err(Refusal::TotalMismatch);
        }
        let (count, taken) = st
            .refunds
            .values()
            .filter(|r| r.mch_id == order.mch_id && r.out_trade_no == order.out_trade_no)
            .fold((0u64, 0u64), |(n, sum), r| {
                let kept = if r.status == RefundStatus::Closed {
                    0
                } else {
                    r.refund_fee
                };
                (n + 1, sum + kept)
            });
        if count >= MAX_REFUNDS_PER_ORDER {
            return Err(Refusal::TooMany);
        }
        let refundable = order.total_fee.saturating_sub(taken);
        if refundable == 0 {
            return Err(Refusal::FullyRefunded);
        }
        if ask.refund_fee > refundable {
            return Err(Refusal::OverRefund { refundable });
        }
        let seq = st.take_seq();
        let time = pay::wechat_time(now / 1000);
        let refund = Refund {
            mch_id: order.mch_id.clone(),
            out_trade_no: order.out_trade_no.clone(),
            transaction_id: order.transaction_id.clone().unwrap_or_default(),
            out_refund_no: ask.out_refund_no,
            // WeChat's refund ids are 29 digits (50300103182020010413419046597).
            refund_id: format!(
                "5030{seq:010}{}{:07}",
                &time[..8],
                now.rem_euclid(10_000_000)
            ),
            refund_fee: ask.refund_fee,
            total_fee: order.total_fee,
            reason: ask.reason,
            notify_url: ask.notify_url.unwrap_or(order.notify_url),
            source: ask.source,
            status: RefundStatus::Processing,
            ends: ask.ends,
            created_ms: now,
            create_time: rfc3339(&time),
            success_time: None,
            notify: Default::default(),
        };
        st.refunds.insert(key.clone(), refund.clone());
        (refund, key)
    };
    let (refund, key) = made;
    settle_later(sim, key, sim.options.refund_delay);
    Ok((refund, true))
}

/// WeChat's time to settle a refund, scaled like its retry delays.
fn scaled(sim: &Sim, delay: Duration) -> Duration {
    delay.mul_f64(sim.options.time_scale)
}

/// After `delay` (WeChat's time, scaled), the refund ends as it was meant to and its
/// notify goes out.
fn settle_later(sim: &Arc<Sim>, key: String, delay: Duration) {
    let sim = Arc::clone(sim);
    let generation = sim.generation();
    tokio::spawn(async move {
        tokio::time::sleep(scaled(&sim, delay)).await;
        if sim.generation() != generation {
            return;
        }
        settle(&sim, &key);
    });
}

fn settle(sim: &Arc<Sim>, key: &str) {
    let now = sim.now_ms();
    let faults = {
        let mut st = sim.state_mut();
        let Some(r) = st.refunds.get_mut(key) else {
            return;
        };
        if r.status != RefundStatus::Processing {
            return;
        }
        r.status = r.ends;
        if r.status == RefundStatus::Success {
            r.success_time = Some(rfc3339(&pay::wechat_time(now / 1000)));
        }
        let out_trade_no = r.out_trade_no.clone();
        tracing::info!(
            %out_trade_no,
            out_refund_no = %r.out_refund_no,
            status = r.status.wechat().as_str(),
            "refund ended"
        );
        faults::take_notify(&mut st.faults, Target::RefundNotify, &out_trade_no)
    };
    notifier::schedule_about(sim, Subject::Refund(key.to_owned()), faults);
}

/// After a restart with `--state`: refunds still PROCESSING settle when they were due
/// (their notifies, and those not acknowledged yet, are the notifier's [`notifier::resume`]).
pub fn resume(sim: &Arc<Sim>) {
    let now = sim.now_ms();
    let due: Vec<(String, Duration)> = sim
        .state()
        .refunds
        .iter()
        .filter(|(_, r)| r.status == RefundStatus::Processing)
        .map(|(k, r)| {
            // Real milliseconds since it was made, in WeChat's (unscaled) time.
            let elapsed = (now - r.created_ms).max(0) as f64 / 1000.0 / sim.options.time_scale;
            let left = sim
                .options
                .refund_delay
                .saturating_sub(Duration::from_secs_f64(elapsed.min(1e9)));
            (k.clone(), left)
        })
        .collect();
    for (key, left) in due {
        settle_later(sim, key, left);
    }
}
