//! The async payment notify: POST WeChat's signed XML to the order's notify_url until the
//! receiver answers `SUCCESS`, on WeChat's retry schedule (scaled by `--time-scale`). An
//! order placed through APIv3 gets the v3 notify instead: the JSON envelope with its
//! resource encrypted under the merchant's APIv3 key, signed in the `Wechatpay-*` headers,
//! acknowledged by HTTP 200 or 204 (支付成功回调通知, <https://pay.weixin.qq.com/doc/v3/merchant/4012791836>);
//! same schedule, same delivery log. A refund that ends (SUCCESS, ABNORMAL, CLOSED) gets
//! its REFUND.* notify the same way: always v3 (refunds are an APIv3 call), to the
//! refund's notify_url.
//!
//! Every attempt lands in the delivery log (`/sim/notifications`), so a test can see what
//! the receiver answered each time and when.

use std::sync::Arc;
use std::time::Duration;

use wxedge_core::notify::{self, PaidNotice, RETRY_SCHEDULE_SECS};
use wxedge_core::pay::Merchant;
use wxedge_core::v3::notify as v3notify;
use wxedge_core::v3::refund as v3refund;
use wxedge_core::v3::verify;
use wxedge_core::{Fen, pay, random};

use crate::Sim;
use crate::faults::{Fault, Kind, SKEW_SECS};
use crate::state::{Api, Delivery, NotifyProgress, Order, Refund, State, TradeState};
use crate::wechat_v3::rfc3339;

/// What a notify is about: a paid order (by order key) or an ended refund (by refund key).
#[derive(Debug, Clone)]
pub enum Subject {
    Payment(String),
    Refund(String),
}

impl Subject {
    fn progress<'a>(&self, st: &'a mut State) -> Option<&'a mut NotifyProgress> {
        match self {
            Subject::Payment(k) => st.orders.get_mut(k).map(|o| &mut o.notify),
            Subject::Refund(k) => st.refunds.get_mut(k).map(|r| &mut r.notify),
        }
    }
}

/// What the delivery log says of a notify, whatever its subject.
struct About {
    out_trade_no: String,
    url: String,
    out_refund_no: Option<String>,
    event_type: Option<String>,
}

impl About {
    fn of(st: &State, subject: &Subject) -> Option<About> {
        Some(match subject {
            Subject::Payment(k) => {
                let o = st.orders.get(k)?;
                About {
                    out_trade_no: o.out_trade_no.clone(),
                    url: o.notify_url.clone(),
                    out_refund_no: None,
                    event_type: None,
                }
            }
            Subject::Refund(k) => {
                let r = st.refunds.get(k)?;
                About {
                    out_trade_no: r.out_trade_no.clone(),
                    url: r.notify_url.clone(),
                    out_refund_no: Some(r.out_refund_no.clone()),
                    event_type: r.status.wechat().event().map(str::to_owned),
                }
            }
        })
    }
}

/// One notify ready to POST.
struct Outgoing {
    body: String,
    content_type: &'static str,
    /// The `Wechatpay-*` headers of a v3 notify.
    headers: Vec<(&'static str, String)>,
    api: Api,
}

/// Starts delivering the notify of a just-paid order.
pub fn schedule(sim: &Arc<Sim>, order_key: String, faults: Vec<Fault>) {
    schedule_about(sim, Subject::Payment(order_key), faults);
}

/// Starts delivering the notify of `subject` (a paid order or an ended refund).
pub fn schedule_about(sim: &Arc<Sim>, subject: Subject, faults: Vec<Fault>) {
    let sim = Arc::clone(sim);
    tokio::spawn(async move { deliver(sim, subject, faults).await });
}

/// After a restart with `--state`, picks up the notifies that were not acknowledged yet,
/// of payments and of refunds that ended.
pub fn resume(sim: &Arc<Sim>) {
    let pending = |n: &NotifyProgress| !n.acknowledged && !n.gave_up;
    let subjects: Vec<Subject> = {
        let st = sim.state();
        let payments = st
            .orders
            .iter()
            .filter(|(_, o)| o.state == TradeState::Success && pending(&o.notify))
            .map(|(k, _)| Subject::Payment(k.clone()));
        let refunds = st
            .refunds
            .iter()
            .filter(|(_, r)| r.status.wechat().event().is_some() && pending(&r.notify))
            .map(|(k, _)| Subject::Refund(k.clone()));
        payments.chain(refunds).collect()
    };
    for subject in subjects {
        schedule_about(sim, subject, Vec::new());
    }
}

fn delay(sim: &Sim, secs: u64) -> Duration {
    Duration::from_secs_f64(secs as f64 * sim.options.time_scale)
}

/// The notify for `order`, in the API that placed it, possibly tampered with as a fault
/// asks; `rotated`: signed with wxsim's second WeChat key (v3 only).
fn outgoing(sim: &Sim, order: &Order, tamper: Option<Kind>, rotated: bool) -> Option<Outgoing> {
    match order.api {
        Api::V2 => Some(Outgoing {
            body: v2_body(sim, order, tamper)?,
            content_type: "text/xml; charset=utf-8",
            headers: Vec::new(),
            api: Api::V2,
        }),
        Api::V3 => v3_outgoing(sim, order, tamper, rotated),
    }
}

/// The v3 notify: built, encrypted and signed by the core; the faults decide only which
/// bytes are signed, with which key, at which time.
fn v3_outgoing(sim: &Sim, order: &Order, tamper: Option<Kind>, rotated: bool) -> Option<Outgoing> {
    let merchant = sim.config.v3.get(&order.mch_id)?;
    let total = order.total_fee + u64::from(tamper == Some(Kind::WrongAmount));
    let resource_nonce = random::alphanumeric(12).ok()?;
    let notify_id = format!("EV-{}", random::alphanumeric(24).ok()?);
    let success_time = rfc3339(order.time_end.as_deref().unwrap_or_default());
    let notice = v3notify::PaidNotice {
        notify_id: &notify_id,
        appid: &order.appid,
        mchid: &order.mch_id,
        out_trade_no: &order.out_trade_no,
        transaction_id: order.transaction_id.as_deref().unwrap_or_default(),
        total: Fen::new(total),
        openid: order.openid.as_deref().unwrap_or_default(),
        success_time: &success_time,
        nonce: &resource_nonce,
    };
    let body = if tamper == Some(Kind::BadTag) {
        v3notify::build_paid_notify_bad_tag(&merchant.api_v3_key, &notice)
    } else {
        v3notify::build_paid_notify(&merchant.api_v3_key, &notice)
    }
    .ok()?;
    signed_v3(sim, body, tamper, rotated)
}

/// A refund's REFUND.* notify (`wrong_amount`: for 1 fen more), built by the core.
fn refund_outgoing(
    sim: &Sim,
    refund: &Refund,
    tamper: Option<Kind>,
    rotated: bool,
) -> Option<Outgoing> {
    let merchant = sim.config.v3.get(&refund.mch_id)?;
    let mut state = refund.wire();
    if tamper == Some(Kind::WrongAmount) {
        state.refund = Fen::new(refund.refund_fee + 1);
    }
    let nonce = random::alphanumeric(12).ok()?;
    let notify_id = format!("EV-{}", random::alphanumeric(24).ok()?);
    let create_time = rfc3339(&pay::wechat_time(sim.now_ms() / 1000));
    let body = v3refund::build_notify(
        &merchant.api_v3_key,
        &notify_id,
        &refund.mch_id,
        &state,
        &create_time,
        &nonce,
    )
    .ok()?;
    signed_v3(sim, body, tamper, rotated)
}

/// `body` with its `Wechatpay-*` headers; `rotated`: signed with wxsim's second key.
fn signed_v3(sim: &Sim, body: String, tamper: Option<Kind>, rotated: bool) -> Option<Outgoing> {
    let key = if rotated {
        sim.config.rotated_key.as_ref()?
    } else {
        sim.config.wechat_key.as_ref()?
    };
    let timestamp = sim.wall_secs()
        - if tamper == Some(Kind::Skewed) {
            SKEW_SECS
        } else {
            0
        };
    let nonce = random::nonce_str().ok()?;
    // A forgery: a genuine signature, but of other bytes than those sent.
    let signed: &[u8] = if tamper == Some(Kind::WrongSign) {
        b"{}"
    } else {
        body.as_bytes()
    };
    let mut headers = verify::sign(&*key.key, &key.id, timestamp, &nonce, signed).ok()?;
    if tamper == Some(Kind::Signtest) {
        headers = headers.probe();
    }
    Some(Outgoing {
        headers: headers
            .pairs()
            .iter()
            .map(|(k, v)| (*k, (*v).to_owned()))
            .collect(),
        body,
        content_type: "application/json",
        api: Api::V3,
    })
}

/// The notify XML for `order`, possibly tampered with as a fault asks.
fn v2_body(sim: &Sim, order: &Order, tamper: Option<Kind>) -> Option<String> {
    let mut merchant: Merchant = sim.config.merchants.get(&order.mch_id)?.clone();
    merchant.sign_type = order.sign_type.parse().unwrap_or(merchant.sign_type);
    let mut total_fee = order.total_fee;
    match tamper {
        Some(Kind::WrongSign) => merchant.key = merchant.key.chars().rev().collect(),
        Some(Kind::WrongAmount) => total_fee += 1,
        _ => {}
    }
    let nonce = random::nonce_str().ok()?;
    let notice = PaidNotice {
        out_trade_no: &order.out_trade_no,
        transaction_id: order.transaction_id.as_deref().unwrap_or_default(),
        total_fee: Fen::new(total_fee),
        openid: order.openid.as_deref().unwrap_or_default(),
        time_end: order.time_end.as_deref().unwrap_or_default(),
        nonce_str: &nonce,
        include_sign_type: sim.options.notify_sign_type,
    };
    notify::build_paid_notify(&merchant, &notice).ok()
}

/// One POST; the receiver's status, the start of its answer, and whether it acknowledged
/// (v2: `SUCCESS` in a 2xx; v3: 200 or 204).
async fn post(sim: &Sim, url: &str, out: Outgoing) -> (Option<u16>, String, bool, Option<String>) {
    let mut req = sim.http.post(url).header("content-type", out.content_type);
    for (name, value) in &out.headers {
        req = req.header(*name, value);
    }
    let res = req.body(out.body).send().await;
    match res {
        Err(e) => (None, String::new(), false, Some(error_text(&e))),
        Ok(res) => {
            let status = res.status().as_u16();
            match res.bytes().await {
                Ok(bytes) => {
                    let ok = match out.api {
                        Api::V2 => (200..300).contains(&status) && notify::is_success_reply(&bytes),
                        Api::V3 => v3notify::is_success_status(status),
                    };
                    let answer: String =
                        String::from_utf8_lossy(&bytes).chars().take(300).collect();
                    (Some(status), answer, ok, None)
                }
                Err(e) => (Some(status), String::new(), false, Some(error_text(&e))),
            }
        }
    }
}

fn error_text(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection refused or unreachable".into()
    } else {
        e.to_string()
    }
}

/// A copy of what a notify is about.
enum Held {
    Order(Box<Order>),
    Refund(Box<Refund>),
}

/// Sends one notify and logs it; returns whether it was acknowledged.
async fn attempt(
    sim: &Sim,
    subject: &Subject,
    kind: Option<Kind>,
    attempt: u32,
    rotated: bool,
) -> Option<bool> {
    // A copy, so the lock is not held while signing.
    let (about, what) = {
        let st = sim.state();
        let what = match subject {
            Subject::Payment(k) => Held::Order(Box::new(st.orders.get(k)?.clone())),
            Subject::Refund(k) => Held::Refund(Box::new(st.refunds.get(k)?.clone())),
        };
        (About::of(&st, subject)?, what)
    };
    let out = match &what {
        Held::Order(order) => outgoing(sim, order, kind, rotated),
        Held::Refund(refund) => refund_outgoing(sim, refund, kind, rotated),
    }?;
    let (status, answer, success, error) = post(sim, &about.url, out).await;
    let kind_name = match kind {
        None => "notify",
        Some(Kind::Duplicate) => "duplicate",
        Some(Kind::WrongSign) => "wrong_sign",
        Some(Kind::WrongAmount) => "wrong_amount",
        Some(Kind::Signtest) => "signtest",
        Some(Kind::Skewed) => "skewed",
        Some(Kind::BadTag) => "bad_tag",
        Some(_) => "notify",
    };
    tracing::info!(
        out_trade_no = %about.out_trade_no,
        out_refund_no = about.out_refund_no.as_deref(),
        kind = kind_name,
        attempt,
        status,
        success,
        "notify delivered"
    );
    let at_ms = sim.now_ms();
    let mut st = sim.state_mut();
    st.log_delivery(Delivery {
        seq: 0,
        out_trade_no: about.out_trade_no,
        kind: kind_name.into(),
        attempt,
        at_ms,
        url: about.url,
        status,
        answer,
        success,
        error,
        out_refund_no: about.out_refund_no,
        event_type: about.event_type,
    });
    if kind.is_none()
        && let Some(p) = subject.progress(&mut st)
    {
        p.attempts = attempt;
        p.acknowledged |= success;
    }
    Some(success)
}

/// A lost notify: logged (kind `dropped`, nothing sent) so a test can see it happened.
fn drop_notify(sim: &Sim, subject: &Subject) {
    let at_ms = sim.now_ms();
    let mut st = sim.state_mut();
    let Some(about) = About::of(&st, subject) else {
        return;
    };
    if let Some(p) = subject.progress(&mut st) {
        p.gave_up = true;
    }
    tracing::info!(
        out_trade_no = %about.out_trade_no,
        out_refund_no = about.out_refund_no.as_deref(),
        kind = "dropped",
        "notify dropped by a fault"
    );
    st.log_delivery(Delivery {
        seq: 0,
        out_trade_no: about.out_trade_no,
        kind: "dropped".into(),
        attempt: 0,
        at_ms,
        url: about.url,
        status: None,
        answer: String::new(),
        success: false,
        error: Some("dropped by an injected fault: never sent".into()),
        out_refund_no: about.out_refund_no,
        event_type: about.event_type,
    });
}

async fn deliver(sim: Arc<Sim>, subject: Subject, faults: Vec<Fault>) {
    let generation = sim.generation();
    let has = |k: Kind| faults.iter().find(|f| f.kind == k);
    if has(Kind::Drop).is_some() {
        drop_notify(&sim, &subject);
        return;
    }
    if let Some(f) = has(Kind::OutOfOrder) {
        tokio::time::sleep(Duration::from_millis(f.delay_ms)).await;
    }
    // WeChat switched keys: every try of this notify is signed with the second one.
    let rotated = has(Kind::RotatedKey).is_some();
    // The v3-only forgeries (probe, stale timestamp, broken tag) have no v2 form: a v2
    // order skips them (the fault is still used up). Refund notifies are always v3.
    let is_v3 = match &subject {
        Subject::Payment(k) => sim.state().orders.get(k).is_some_and(|o| o.api == Api::V3),
        Subject::Refund(_) => true,
    };
    for forged in [
        Kind::WrongSign,
        Kind::WrongAmount,
        Kind::Signtest,
        Kind::Skewed,
        Kind::BadTag,
    ] {
        let v3_only = matches!(forged, Kind::Signtest | Kind::Skewed | Kind::BadTag);
        if has(forged).is_some() && (is_v3 || !v3_only) && sim.generation() == generation {
            attempt(&sim, &subject, Some(forged), 1, rotated).await;
        }
    }
    let mut n = subject.progress(&mut sim.state()).map_or(0, |p| p.attempts);
    loop {
        if sim.generation() != generation {
            return;
        }
        n += 1;
        let Some(success) = attempt(&sim, &subject, None, n, rotated).await else {
            return;
        };
        if success {
            if has(Kind::Duplicate).is_some() && sim.generation() == generation {
                attempt(&sim, &subject, Some(Kind::Duplicate), 1, rotated).await;
            }
            return;
        }
        // n attempts made; WeChat retries after each delay of its schedule, then stops.
        let Some(&wait) = RETRY_SCHEDULE_SECS.get(n as usize - 1) else {
            if let Some(p) = subject.progress(&mut sim.state_mut()) {
                p.gave_up = true;
            }
            return;
        };
        tokio::time::sleep(delay(&sim, wait)).await;
    }
}
