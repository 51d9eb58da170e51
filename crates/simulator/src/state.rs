//! Everything the simulated WeChat remembers. Plain data behind one lock, serializable so
//! `--state FILE` can carry it across restarts.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use wxedge_core::v3::refund::{RefundState, WechatRefundStatus};
use wxedge_core::{Fen, Params};

use crate::bills::BillFile;
use crate::faults::Fault;

/// A `wx.login` code: valid once, for 5 minutes, for the appid that asked for it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Code {
    pub appid: String,
    pub openid: String,
    pub issued_ms: i64,
    pub used: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub appid: String,
    pub openid: String,
    /// The key of the latest jscode2session; a new login replaces it, and data encrypted
    /// under the old one no longer decrypts with the new.
    pub session_key: Option<String>,
    pub unionid: Option<String>,
    /// WeChat refuses such users with 40226.
    pub high_risk: bool,
    /// When this user's recent jscode2session calls happened (rate limit window).
    pub calls: VecDeque<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TradeState {
    Notpay,
    Success,
    Closed,
}

impl TradeState {
    pub fn as_str(self) -> &'static str {
        match self {
            TradeState::Notpay => "NOTPAY",
            TradeState::Success => "SUCCESS",
            TradeState::Closed => "CLOSED",
        }
    }
}

/// How the notify of a paid order is going.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NotifyProgress {
    pub attempts: u32,
    pub acknowledged: bool,
    pub gave_up: bool,
}

/// Which WeChat Pay API placed an order: its notify goes out in the same one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    /// XML, MD5 or HMAC-SHA256 (unifiedorder).
    #[default]
    V2,
    /// JSON, SHA256withRSA, the resource AES-256-GCM encrypted (`/v3/pay/transactions/jsapi`).
    V3,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Order {
    /// Orders saved before v3 existed are v2.
    #[serde(default)]
    pub api: Api,
    pub appid: String,
    pub mch_id: String,
    pub out_trade_no: String,
    /// The business fields of the first unifiedorder: a second call must repeat them.
    pub fields: Params,
    pub total_fee: u64,
    pub openid: Option<String>,
    pub notify_url: String,
    pub attach: Option<String>,
    pub trade_type: String,
    /// The algorithm of the unifiedorder call; the notify is signed with it.
    pub sign_type: String,
    pub prepay_id: String,
    pub prepay_ms: i64,
    pub created_ms: i64,
    pub state: TradeState,
    pub transaction_id: Option<String>,
    pub time_end: Option<String>,
    pub notify: NotifyProgress,
}

impl Order {
    pub fn key(mch_id: &str, out_trade_no: &str) -> String {
        format!("{mch_id}/{out_trade_no}")
    }
}

/// A refund's state at WeChat, in APIv3's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RefundStatus {
    Processing,
    Success,
    Closed,
    Abnormal,
}

impl RefundStatus {
    pub fn wechat(self) -> WechatRefundStatus {
        match self {
            RefundStatus::Processing => WechatRefundStatus::Processing,
            RefundStatus::Success => WechatRefundStatus::Success,
            RefundStatus::Closed => WechatRefundStatus::Closed,
            RefundStatus::Abnormal => WechatRefundStatus::Abnormal,
        }
    }
}

/// Who asked for a refund.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundSource {
    /// `POST /v3/refund/domestic/refunds`.
    Api,
    /// By hand in the merchant platform (`/sim/refund`): the merchant never asked.
    MerchantPlatform,
}

/// A refund of (part of) a paid order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Refund {
    pub mch_id: String,
    pub out_trade_no: String,
    pub transaction_id: String,
    pub out_refund_no: String,
    pub refund_id: String,
    pub refund_fee: u64,
    /// The order's total when the refund was made.
    pub total_fee: u64,
    pub reason: Option<String>,
    /// Where its REFUND.* notify goes: the request's `notify_url`, else the order's.
    pub notify_url: String,
    pub source: RefundSource,
    pub status: RefundStatus,
    /// What PROCESSING turns into: SUCCESS unless a fault (`refund_abnormal`,
    /// `refund_closed`) or `/sim/refund`'s `ends` says otherwise.
    pub ends: RefundStatus,
    pub created_ms: i64,
    /// RFC 3339, Beijing time.
    pub create_time: String,
    pub success_time: Option<String>,
    pub notify: NotifyProgress,
}

impl Refund {
    /// `mch_id/out_refund_no`: an out_refund_no is unique within its merchant.
    pub fn key(mch_id: &str, out_refund_no: &str) -> String {
        format!("{mch_id}/{out_refund_no}")
    }

    /// The refund in the core's terms, for `answer_body` and `build_notify`.
    pub fn wire(&self) -> RefundState {
        RefundState {
            out_refund_no: self.out_refund_no.clone(),
            out_trade_no: self.out_trade_no.clone(),
            refund_id: self.refund_id.clone(),
            transaction_id: self.transaction_id.clone(),
            status: self.status.wechat(),
            refund: Fen::new(self.refund_fee),
            total: Fen::new(self.total_fee),
            success_time: self.success_time.clone(),
            user_received_account: None,
        }
    }
}

/// One attempt to deliver a notify, as `/sim/notifications` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Delivery {
    pub seq: u64,
    pub out_trade_no: String,
    /// `notify` for WeChat's genuine notify; otherwise the injected fault that made it
    /// (`duplicate`, `wrong_sign`, `wrong_amount`), or `dropped` for a notify never sent.
    pub kind: String,
    /// 1 for the first try of this notify, then 2, 3… on retries.
    pub attempt: u32,
    pub at_ms: i64,
    pub url: String,
    /// The receiver's HTTP status, if it answered at all.
    pub status: Option<u16>,
    /// The start of what it answered.
    pub answer: String,
    /// Whether the answer was WeChat's `SUCCESS` (which stops the retries).
    pub success: bool,
    pub error: Option<String>,
    /// A refund's notify: which refund, and its event (`REFUND.SUCCESS`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_refund_no: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct State {
    /// Added to the real clock: `/sim/clock` moves simulated time forward.
    pub clock_offset_ms: i64,
    pub codes: HashMap<String, Code>,
    /// Keyed by `appid/openid`.
    pub users: HashMap<String, User>,
    /// Keyed by `mch_id/out_trade_no`.
    pub orders: HashMap<String, Order>,
    /// prepay_id → order key.
    pub prepays: HashMap<String, String>,
    /// Keyed by `mch_id/out_refund_no` (state files from before refunds have none).
    #[serde(default)]
    pub refunds: HashMap<String, Refund>,
    pub deliveries: VecDeque<Delivery>,
    pub faults: Vec<Fault>,
    pub next_seq: u64,
    /// Synthetic payments added to a day's bill (`/sim/bill-padding`), keyed by
    /// `mch_id/YYYY-MM-DD`: how many rows.
    #[serde(default)]
    pub bill_padding: BTreeMap<String, u64>,
    /// The files behind live v3 `download_url`s, by token. Not saved: a URL lives 5
    /// minutes, and after a restart the merchant applies again.
    #[serde(skip)]
    pub bill_files: HashMap<String, BillFile>,
}

/// The delivery log keeps this many entries; older ones are dropped first.
pub const MAX_DELIVERIES: usize = 100_000;

impl State {
    pub fn user_key(appid: &str, openid: &str) -> String {
        format!("{appid}/{openid}")
    }

    pub fn take_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    pub fn log_delivery(&mut self, mut d: Delivery) {
        d.seq = self.take_seq();
        if self.deliveries.len() >= MAX_DELIVERIES {
            self.deliveries.pop_front();
        }
        self.deliveries.push_back(d);
    }

    /// Codes are looked up by value; expired ones are dropped now and then so a long run
    /// does not grow without bound.
    pub fn prune_codes(&mut self, now_ms: i64, ttl_ms: i64) {
        if self.codes.len() > 10_000 {
            self.codes.retain(|_, c| now_ms - c.issued_ms <= ttl_ms);
        }
    }
}
