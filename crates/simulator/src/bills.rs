//! The daily trade bill WeChat makes for a merchant, shared by v3's `GET /v3/bill/tradebill`
//! (+ its download), v2's `POST /pay/downloadbill` and `/sim/bill`.
//!
//! The bill of day D (Beijing time, `wxedge_core::bill::bill_date_of`) holds the merchant's
//! payments whose success time (`time_end`) falls on D and the refunds accepted (created) on
//! D, each with its status now: wxsim makes the bill when asked, so "as at generation" is
//! now. Unlike WeChat, which makes D's bill the next morning, wxsim also gives TODAY's bill,
//! as the day so far, so tests can reconcile without waiting a day (it never answers
//! STATEMENT_CREATING). A day after today or more than three months back is refused
//! (`judge_bill_date`), a day without trade has no bill.
//!
//! Only the ALL bill is made; SUCCESS and REFUND bills are refused as parameters wxsim
//! does not take. Rows come in time order, then the padding rows (`/sim/bill-padding`:
//! synthetic payments for benchmarks, in the bill only, not in the orders). The format
//! and every total are `wxedge_core::bill::BillWriter`'s; this module picks the rows and
//! applies the `bill` faults.

use std::io::Write as _;

use axum::body::Bytes;
use wxedge_core::bill::{self, BillWriteError, BillWriter, BilledPayment, BilledRefund};
use wxedge_core::random;

use crate::Sim;
use crate::faults::{Fault, Kind};
use crate::state::{Order, RefundStatus, TradeState};

/// At most this many padding rows a day (a million rows is ~250 MB of text).
pub const MAX_PADDING_ROWS: u64 = 1_000_000;

/// The file behind a v3 `download_url`, bound to the merchant that applied.
#[derive(Debug, Clone)]
pub struct BillFile {
    pub mch_id: String,
    /// Gzipped when the apply asked for `tar_type=GZIP`.
    pub body: Bytes,
    pub gzip: bool,
    /// Simulated time (`Sim::now_ms`) after which the URL is dead.
    pub expires_ms: i64,
}

/// A payment's row, owned (taken from the state under its lock, written after).
struct Payment {
    time: String,
    appid: String,
    transaction_id: String,
    out_trade_no: String,
    openid: String,
    trade_type: String,
    amount: u64,
    goods: String,
}

struct RefundRow {
    order: Payment,
    refund_id: String,
    out_refund_no: String,
    amount: u64,
    status: &'static str,
}

/// The day today is at WeChat (simulated clock, Beijing).
pub fn today(sim: &Sim) -> String {
    bill::bill_date_of(sim.now_ms().div_euclid(1000))
}

/// `mch_id/YYYY-MM-DD`, the key of a day's padding.
pub fn padding_key(mch_id: &str, date: &str) -> String {
    format!("{mch_id}/{date}")
}

fn status_name(s: RefundStatus) -> &'static str {
    match s {
        RefundStatus::Processing => "PROCESSING",
        RefundStatus::Success => "SUCCESS",
        RefundStatus::Closed => "CLOSED",
        RefundStatus::Abnormal => "ABNORMAL",
    }
}

fn payment_of(o: &Order, time: String) -> Payment {
    let goods = o
        .fields
        .get("body")
        .or_else(|| o.fields.get("description"))
        .cloned()
        .unwrap_or_default();
    Payment {
        time,
        appid: o.appid.clone(),
        transaction_id: o.transaction_id.clone().unwrap_or_default(),
        out_trade_no: o.out_trade_no.clone(),
        openid: o.openid.clone().unwrap_or_default(),
        trade_type: o.trade_type.clone(),
        amount: o.total_fee,
        goods,
    }
}

/// Why a bill could not be made (wxsim answers SYSTEM_ERROR / SYSTEMERROR).
#[derive(Debug, thiserror::Error)]
pub enum MakeError {
    #[error("{0}")]
    Write(#[from] BillWriteError),
    #[error("{0}")]
    Random(#[from] random::RandomError),
}

/// The bill of `date` for `mch_id` as text, `None` when the day had no trade; `fault` (a
/// `bill` fault already taken) changes it as its kind says.
pub fn make(
    sim: &Sim,
    mch_id: &str,
    date: &str,
    fault: Option<&Fault>,
) -> Result<Option<String>, MakeError> {
    let appid = sim
        .config
        .merchants
        .get(mch_id)
        .map(|m| m.appid.clone())
        .unwrap_or_default();
    let (mut payments, mut refunds, padding) = {
        let st = sim.state();
        let payments: Vec<Payment> = st
            .orders
            .values()
            .filter(|o| o.mch_id == mch_id && o.state == TradeState::Success)
            .filter_map(|o| {
                let time = bill::bill_time_of_wechat_time(o.time_end.as_deref()?)?;
                time.starts_with(date).then(|| payment_of(o, time))
            })
            .collect();
        let refunds: Vec<RefundRow> = st
            .refunds
            .values()
            .filter(|r| r.mch_id == mch_id)
            .filter_map(|r| {
                let time = bill::bill_time(r.created_ms.div_euclid(1000));
                if !time.starts_with(date) {
                    return None;
                }
                let order = st.orders.get(&Order::key(mch_id, &r.out_trade_no))?;
                Some(RefundRow {
                    order: payment_of(order, time),
                    refund_id: r.refund_id.clone(),
                    out_refund_no: r.out_refund_no.clone(),
                    amount: r.refund_fee,
                    status: status_name(r.status),
                })
            })
            .collect();
        let padding = st
            .bill_padding
            .get(&padding_key(mch_id, date))
            .copied()
            .unwrap_or(0);
        (payments, refunds, padding)
    };
    payments.sort_by(|a, b| (&a.time, &a.out_trade_no).cmp(&(&b.time, &b.out_trade_no)));
    refunds.sort_by(|a, b| (&a.order.time, &a.refund_id).cmp(&(&b.order.time, &b.refund_id)));
    if let Some(f) = fault {
        let named = |p: &Payment| {
            f.out_trade_no
                .as_deref()
                .is_none_or(|n| n == p.out_trade_no)
        };
        match f.kind {
            Kind::BillAmount => {
                if let Some(p) = payments.iter_mut().find(|p| named(p)) {
                    p.amount += 1;
                }
            }
            Kind::BillMissing => {
                if let Some(i) = payments.iter().position(named) {
                    payments.remove(i);
                }
            }
            Kind::BillExtra => {
                let rand = random::out_trade_no()?;
                payments.push(Payment {
                    time: format!("{date} 00:00:01"),
                    appid: appid.clone(),
                    transaction_id: format!("4200EXTRA{}", &rand[rand.len().saturating_sub(19)..]),
                    out_trade_no: rand,
                    openid: "oWXSIMEXTRA0000000000000000".into(),
                    trade_type: "JSAPI".into(),
                    amount: 100,
                    goods: "wxsim bill_extra".into(),
                });
            }
            _ => {}
        }
    }
    if payments.is_empty() && refunds.is_empty() && padding == 0 {
        return Ok(None);
    }
    let mut out =
        String::with_capacity(512 + 260 * (payments.len() + refunds.len() + padding as usize));
    let mut w = BillWriter::new(&mut out);
    // Payments and refunds merged in time order.
    let (mut i, mut j) = (0, 0);
    while i < payments.len() || j < refunds.len() {
        let pay_first =
            j >= refunds.len() || (i < payments.len() && payments[i].time <= refunds[j].order.time);
        if pay_first {
            w.payment(&billed(&payments[i], mch_id), &mut out)?;
            i += 1;
        } else {
            let r = &refunds[j];
            let o = &r.order;
            w.refund(
                &BilledRefund {
                    time: &o.time,
                    appid: &o.appid,
                    mch_id,
                    transaction_id: &o.transaction_id,
                    out_trade_no: &o.out_trade_no,
                    openid: &o.openid,
                    trade_type: &o.trade_type,
                    refund_id: &r.refund_id,
                    out_refund_no: &r.out_refund_no,
                    amount: wxedge_core::Fen::new(r.amount),
                    status: r.status,
                    goods: &o.goods,
                },
                &mut out,
            )?;
            j += 1;
        }
    }
    let day = date.replace('-', "");
    for n in 0..padding {
        let secs = n % 86_400;
        let time = format!(
            "{date} {:02}:{:02}:{:02}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        );
        let no = format!("PAD{day}{n:08}");
        let tid = format!("4200PAD{day}{n:010}");
        w.payment(
            &BilledPayment {
                time: &time,
                appid: &appid,
                mch_id,
                transaction_id: &tid,
                out_trade_no: &no,
                openid: "oWXSIMPADDING00000000000000",
                trade_type: "JSAPI",
                amount: wxedge_core::Fen::new(1 + n % 9_999),
                goods: "wxsim padding",
            },
            &mut out,
        )?;
    }
    w.finish(&mut out);
    Ok(Some(out))
}

fn billed<'a>(p: &'a Payment, mch_id: &'a str) -> BilledPayment<'a> {
    BilledPayment {
        time: &p.time,
        appid: &p.appid,
        mch_id,
        transaction_id: &p.transaction_id,
        out_trade_no: &p.out_trade_no,
        openid: &p.openid,
        trade_type: &p.trade_type,
        amount: wxedge_core::Fen::new(p.amount),
        goods: &p.goods,
    }
}

/// The file gzipped (one gzip member, as `tar_type=GZIP` gives it).
pub fn gzip(file: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut e = flate2::write::GzEncoder::new(
        Vec::with_capacity(file.len() / 4),
        flate2::Compression::fast(),
    );
    e.write_all(file)?;
    e.finish()
}

/// Keeps a file for a v3 download and gives its token; expired files are dropped now.
pub fn keep(sim: &Sim, file: BillFile) -> Result<String, random::RandomError> {
    let token = random::alphanumeric(40)?;
    let now = sim.now_ms();
    let mut st = sim.state();
    st.bill_files.retain(|_, f| f.expires_ms > now);
    st.bill_files.insert(token.clone(), file);
    Ok(token)
}

/// The file a token names, if it is `mch_id`'s and still alive.
pub fn fetch(sim: &Sim, mch_id: &str, token: &str) -> Option<BillFile> {
    let now = sim.now_ms();
    let st = sim.state();
    st.bill_files
        .get(token)
        .filter(|f| f.mch_id == mch_id && f.expires_ms > now)
        .cloned()
}
