//! The async payment notify: POST WeChat's signed XML to the order's notify_url until the
//! receiver answers `SUCCESS`, on WeChat's retry schedule (scaled by `--time-scale`).
//!
//! Every attempt lands in the delivery log (`/sim/notifications`), so a test can see what
//! the receiver answered each time and when.

use std::sync::Arc;
use std::time::Duration;

use wxedge_core::notify::{self, PaidNotice, RETRY_SCHEDULE_SECS};
use wxedge_core::pay::Merchant;
use wxedge_core::{Fen, random};

use crate::Sim;
use crate::faults::{Fault, Kind};
use crate::state::{Delivery, Order, TradeState};

/// Starts delivering the notify of a just-paid order.
pub fn schedule(sim: &Arc<Sim>, order_key: String, faults: Vec<Fault>) {
    let sim = Arc::clone(sim);
    tokio::spawn(async move { deliver(sim, order_key, faults).await });
}

/// After a restart with `--state`, picks up the notifies that were not acknowledged yet.
pub fn resume(sim: &Arc<Sim>) {
    let pending: Vec<String> = sim
        .state()
        .orders
        .iter()
        .filter(|(_, o)| {
            o.state == TradeState::Success && !o.notify.acknowledged && !o.notify.gave_up
        })
        .map(|(k, _)| k.clone())
        .collect();
    for key in pending {
        schedule(sim, key, Vec::new());
    }
}

fn delay(sim: &Sim, secs: u64) -> Duration {
    Duration::from_secs_f64(secs as f64 * sim.options.time_scale)
}

/// The notify XML for `order`, possibly tampered with as a fault asks.
fn body(sim: &Sim, order: &Order, tamper: Option<Kind>) -> Option<String> {
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

/// One POST; the receiver's status, the start of its answer, and whether it said SUCCESS.
async fn post(sim: &Sim, url: &str, body: String) -> (Option<u16>, String, bool, Option<String>) {
    let res = sim
        .http
        .post(url)
        .header("content-type", "text/xml; charset=utf-8")
        .body(body)
        .send()
        .await;
    match res {
        Err(e) => (None, String::new(), false, Some(error_text(&e))),
        Ok(res) => {
            let status = res.status().as_u16();
            match res.bytes().await {
                Ok(bytes) => {
                    let ok = (200..300).contains(&status) && notify::is_success_reply(&bytes);
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

/// Sends one notify and logs it; returns whether it was acknowledged.
async fn attempt(sim: &Sim, key: &str, kind: Option<Kind>, attempt: u32) -> Option<bool> {
    let order = sim.state().orders.get(key).cloned()?;
    let body = body(sim, &order, kind)?;
    let (status, answer, success, error) = post(sim, &order.notify_url, body).await;
    let kind_name = match kind {
        None => "notify",
        Some(Kind::Duplicate) => "duplicate",
        Some(Kind::WrongSign) => "wrong_sign",
        Some(Kind::WrongAmount) => "wrong_amount",
        Some(_) => "notify",
    };
    tracing::info!(
        out_trade_no = %order.out_trade_no,
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
        out_trade_no: order.out_trade_no.clone(),
        kind: kind_name.into(),
        attempt,
        at_ms,
        url: order.notify_url.clone(),
        status,
        answer,
        success,
        error,
    });
    if kind.is_none()
        && let Some(o) = st.orders.get_mut(key)
    {
        o.notify.attempts = attempt;
        o.notify.acknowledged |= success;
    }
    Some(success)
}

/// A lost notify: logged (kind `dropped`, nothing sent) so a test can see it happened.
fn drop_notify(sim: &Sim, key: &str) {
    let at_ms = sim.now_ms();
    let mut st = sim.state_mut();
    let Some(order) = st.orders.get_mut(key) else {
        return;
    };
    order.notify.gave_up = true;
    let (out_trade_no, url) = (order.out_trade_no.clone(), order.notify_url.clone());
    tracing::info!(%out_trade_no, kind = "dropped", "notify dropped by a fault");
    st.log_delivery(Delivery {
        seq: 0,
        out_trade_no,
        kind: "dropped".into(),
        attempt: 0,
        at_ms,
        url,
        status: None,
        answer: String::new(),
        success: false,
        error: Some("dropped by an injected fault: never sent".into()),
    });
}

async fn deliver(sim: Arc<Sim>, key: String, faults: Vec<Fault>) {
    let generation = sim.generation();
    let has = |k: Kind| faults.iter().find(|f| f.kind == k);
    if has(Kind::Drop).is_some() {
        drop_notify(&sim, &key);
        return;
    }
    if let Some(f) = has(Kind::OutOfOrder) {
        tokio::time::sleep(Duration::from_millis(f.delay_ms)).await;
    }
    for forged in [Kind::WrongSign, Kind::WrongAmount] {
        if has(forged).is_some() && sim.generation() == generation {
            attempt(&sim, &key, Some(forged), 1).await;
        }
    }
    let mut n = sim
        .state()
        .orders
        .get(&key)
        .map_or(0, |o| o.notify.attempts);
    loop {
        if sim.generation() != generation {
            return;
        }
        n += 1;
        let Some(success) = attempt(&sim, &key, None, n).await else {
            return;
        };
        if success {
            if has(Kind::Duplicate).is_some() && sim.generation() == generation {
                attempt(&sim, &key, Some(Kind::Duplicate), 1).await;
            }
            return;
        }
        // n attempts made; WeChat retries after each delay of its schedule, then stops.
        let Some(&wait) = RETRY_SCHEDULE_SECS.get(n as usize - 1) else {
            if let Some(o) = sim.state_mut().orders.get_mut(&key) {
                o.notify.gave_up = true;
            }
            return;
        };
        tokio::time::sleep(delay(&sim, wait)).await;
    }
}
