//! One deterministic simulation that drives the production decisions.
//!
//! The money flows of `wxedge_core::flow` (pay, notify, the reconciler's step, withdraw)
//! run against SQLite with the worker's own migrations, their writes executed as the
//! batches `wxedge_core::store` renders — the same SQL and the same guards D1 runs. A
//! model of WeChat answers unifiedorder, orderquery and closeorder (with SYSTEMERROR,
//! silence, ORDERNOTEXIST lag, PAYERROR and USERPAYING), users pay the prepay_ids they
//! were handed, and notifies arrive valid, duplicated, reordered, late, forged, for
//! another amount, or never. Flows interleave at every point where the worker awaits,
//! and any in-flight flow may crash between two of its steps.
//!
//! After every step: the ledger audit holds (per merchant, to the fen: paid equals
//! withdrawn plus available, through the production audit query); every order paid here is a
//! payment WeChat holds as SUCCESS for its amount and transaction; and no order is ended
//! here while WeChat would still take a payment for it. At the end of every episode,
//! once WeChat's retries and the reconciler have run their course: every payment WeChat
//! holds as SUCCESS is credited here exactly once.
//!
//! `SIM_STEPS` (default 200 000) and `SIM_SEED` (default 1; `random` for a fresh one)
//! choose the run; a failure prints the seed and step that reproduce it.
//! `scripts/sim` runs the million-step figure in release.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rusqlite::Connection;
use rusqlite::types::Value;

use wxedge_core::flow::notify::{self as nflow, Expect, Read, Received};
use wxedge_core::flow::pay::{self as pflow, NewRequest, Next};
use wxedge_core::flow::reconcile::{self as rflow, PREPAY_LIFE_MS, Policy, Step};
use wxedge_core::flow::withdraw::{self as wflow, Begin, ClaimedOrder, WithdrawalRow};
use wxedge_core::flow::{Decision, MAX_ATTEMPTS};
use wxedge_core::ledger::{AuditSnapshot, OrderStatus};
use wxedge_core::notify::{PaidNotice, build_paid_notify};
use wxedge_core::order::OrderRow;
use wxedge_core::pay::{Merchant, OrderQuery, PayError, Prepay, TradeState};
use wxedge_core::store::{self, Batch, SqlArg, Statement};
use wxedge_core::{Fen, SignType};

const MIGRATIONS: [&str; 4] = [
    include_str!("../../../migrations/0001_init.sql"),
    include_str!("../../../migrations/0002_ledger.sql"),
    include_str!("../../../migrations/0003_flows.sql"),
    include_str!("../../../migrations/0004_refunds.sql"),
];
const APPID: &str = "wxd930ea5d5a258f4f";
const MCH_ID: &str = "1900000109";
const KEY: &str = "192006250b4c09247ec02edce69f6a2d";
const MERCHANTS: [&str; 3] = ["default", "m_a", "m_b"];
const USERS: [&str; 4] = ["o_1", "o_2", "o_3", "o_4"];
const EPISODE_STEPS: u64 = 400;

fn merchant() -> Merchant {
    Merchant {
        appid: APPID.into(),
        mch_id: MCH_ID.into(),
        key: KEY.into(),
        sign_type: SignType::Md5,
    }
}

// ---------------------------------------------------------------------------------------
// Storage: SQLite with the migrations, batches as transactions (a D1 batch).

struct Db(Connection);

#[derive(Debug)]
enum DbError {
    Unique,
    Other(#[allow(dead_code)] String),
}

fn bind(args: &[SqlArg]) -> Vec<Value> {
    args.iter()
        .map(|a| match a {
            SqlArg::Text(s) => Value::Text(s.clone()),
            SqlArg::Int(n) => Value::Integer(i64::try_from(*n).expect("fits i64")),
            SqlArg::Null => Value::Null,
        })
        .collect()
}

impl Db {
    fn new() -> Db {
        let c = Connection::open_in_memory().expect("sqlite");
        c.execute_batch("PRAGMA foreign_keys = ON;")
            .expect("pragma");
        for m in MIGRATIONS {
            c.execute_batch(m).expect("migration");
        }
        for m in &MERCHANTS[1..] {
            c.execute(
                "INSERT INTO merchants (merchant_id, name, created_ms) VALUES (?1, ?1, 0)",
                [m],
            )
            .expect("merchant");
        }
        for u in USERS {
            c.execute(
                "INSERT INTO users (openid, created_ms, login_ms, updated_ms) VALUES (?1, 0, 0, 0)",
                [u],
            )
            .expect("user");
        }
        Db(c)
    }

    /// One batch, all or nothing; the rows each statement changed.
    fn run(&self, b: &Batch) -> Result<Vec<usize>, DbError> {
        let tx = self
            .0
            .unchecked_transaction()
            .map_err(|e| DbError::Other(e.to_string()))?;
        let mut changes = Vec::new();
        for s in &b.statements {
            match tx.execute(&s.sql, rusqlite::params_from_iter(bind(&s.args))) {
                Ok(n) => changes.push(n),
                Err(e) if e.to_string().contains("UNIQUE constraint failed") => {
                    return Err(DbError::Unique);
                }
                Err(e) => return Err(DbError::Other(format!("{e}: {}", s.sql))),
            }
        }
        tx.commit().map_err(|e| DbError::Other(e.to_string()))?;
        Ok(changes)
    }

    /// Column `j` of the first row, if any.
    fn json(&self, s: &Statement) -> Option<String> {
        let mut st = self.0.prepare_cached(&s.sql).expect("prepare");
        let mut rows = st
            .query(rusqlite::params_from_iter(bind(&s.args)))
            .expect("query");
        let row = rows.next().expect("row")?;
        row.get::<_, Option<String>>("j").expect("j")
    }

    fn order(&self, no: &str) -> Option<OrderRow> {
        self.json(&store::order_by_no(no))
            .map(|j| OrderRow::from_json(&j).expect("order row"))
    }

    fn all_orders(&self) -> Vec<OrderRow> {
        let s = Statement {
            sql: format!(
                "SELECT COALESCE(json_group_array(json(j)), '[]') AS j FROM (SELECT {} AS j FROM orders)",
                store::ORDER_JSON
            ),
            args: vec![],
        };
        OrderRow::list_from_json(&self.json(&s).unwrap_or_default()).expect("orders")
    }

    fn withdrawal(&self, q: &Statement) -> Option<WithdrawalRow> {
        self.json(q)
            .map(|j| WithdrawalRow::from_json(&j).expect("withdrawal"))
    }

    fn claimed(&self, id: &str) -> Vec<ClaimedOrder> {
        wflow::claimed_from_json(&self.json(&store::claimed_orders(id)).unwrap_or_default())
            .expect("claimed")
    }

    fn count(&self, sql: &str) -> u64 {
        self.0
            .query_row(sql, [], |r| r.get::<_, i64>(0))
            .expect("count") as u64
    }
}

// ---------------------------------------------------------------------------------------
// WeChat: the truth about every order, and its (sometimes unhelpful) answers.

#[derive(Debug, Clone, PartialEq)]
enum WxState {
    NotPay,
    Success { tx: String },
    Closed,
}

#[derive(Debug, Clone)]
struct WxOrder {
    fee: Fen,
    state: WxState,
    prepay_id: String,
    prepay_ms: u64,
}

#[derive(Default)]
struct WeChat {
    orders: HashMap<String, WxOrder>,
    seq: u64,
}

fn business<T>(code: &str) -> Result<T, PayError> {
    Err(PayError::Business {
        err_code: code.into(),
        err_code_des: String::new(),
    })
}

impl WeChat {
    fn unified_order(
        &mut self,
        rng: &mut StdRng,
        no: &str,
        fee: Fen,
        now: u64,
    ) -> Option<Result<Prepay, PayError>> {
        let roll = rng.random_range(0..100);
        if roll < 5 {
            return None; // lost before WeChat
        }
        if roll < 9 {
            return Some(business("SYSTEMERROR"));
        }
        let exists = self.orders.contains_key(no);
        if roll < 11 && !exists {
            return Some(business("PARAM_ERROR")); // refused, not created
        }
        if roll < 13 && exists {
            return Some(business("INVALID_REQUEST")); // refused, the order stays as it was
        }
        self.seq += 1;
        let fresh = format!("wx{}", self.seq);
        let o = self.orders.entry(no.to_owned()).or_insert_with(|| WxOrder {
            fee,
            state: WxState::NotPay,
            prepay_id: fresh.clone(),
            prepay_ms: now,
        });
        let answer = match o.state {
            WxState::Success { .. } => business("ORDERPAID"),
            WxState::Closed => business("ORDERCLOSED"),
            WxState::NotPay => {
                if now.saturating_sub(o.prepay_ms) >= PREPAY_LIFE_MS {
                    o.prepay_id = fresh;
                    o.prepay_ms = now;
                }
                Ok(Prepay {
                    prepay_id: o.prepay_id.clone(),
                    trade_type: "JSAPI".into(),
                    code_url: None,
                })
            }
        };
        if roll < 17 {
            return None; // WeChat acted, the answer was lost
        }
        Some(answer)
    }

    fn order_query(&self, rng: &mut StdRng, no: &str) -> Option<Result<OrderQuery, PayError>> {
        let roll = rng.random_range(0..100);
        if roll < 5 {
            return None;
        }
        if roll < 10 {
            return Some(business("SYSTEMERROR"));
        }
        let Some(o) = self.orders.get(no) else {
            return Some(business("ORDERNOTEXIST"));
        };
        if roll < 13 {
            return Some(business("ORDERNOTEXIST")); // WeChat's lag
        }
        let (state, fee, tx) = match &o.state {
            // A failed attempt or a user at the password prompt: still payable.
            WxState::NotPay if roll < 18 => (TradeState::PayError, None, None),
            WxState::NotPay if roll < 22 => (TradeState::UserPaying, None, None),
            WxState::NotPay => (TradeState::NotPay, None, None),
            WxState::Success { tx } => (TradeState::Success, Some(o.fee), Some(tx.clone())),
            WxState::Closed => (TradeState::Closed, None, None),
        };
        Some(Ok(OrderQuery {
            out_trade_no: no.to_owned(),
            trade_state: state,
            total_fee: fee,
            transaction_id: tx,
            openid: None,
            time_end: None,
        }))
    }

    fn close_order(&mut self, rng: &mut StdRng, no: &str) -> Option<Result<(), PayError>> {
        let roll = rng.random_range(0..100);
        if roll < 5 {
            return None;
        }
        if roll < 10 {
            return Some(business("SYSTEMERROR"));
        }
        let Some(o) = self.orders.get_mut(no) else {
            // wxsim says ORDERNOTEXIST; WeChat answers SUCCESS for any number.
            return Some(if roll < 55 {
                business("ORDERNOTEXIST")
            } else {
                Ok(())
            });
        };
        let answer = match o.state {
            WxState::Success { .. } => business("ORDERPAID"),
            WxState::Closed => business("ORDERCLOSED"),
            WxState::NotPay => {
                o.state = WxState::Closed;
                Ok(())
            }
        };
        if roll < 14 {
            return None; // closed, the answer was lost
        }
        Some(answer)
    }

    /// The user pays with a prepay_id they were handed: true if WeChat took the money.
    fn pay(&mut self, no: &str, prepay_id: &str, now: u64) -> Option<String> {
        let o = self.orders.get_mut(no)?;
        if o.state != WxState::NotPay
            || o.prepay_id != prepay_id
            || now.saturating_sub(o.prepay_ms) >= PREPAY_LIFE_MS
        {
            return None;
        }
        self.seq += 1;
        let tx = format!("42000{:020}", self.seq);
        o.state = WxState::Success { tx: tx.clone() };
        Some(tx)
    }

    fn payable(&self, no: &str, prepay_id: &str, now: u64) -> bool {
        self.orders.get(no).is_some_and(|o| {
            o.state == WxState::NotPay
                && o.prepay_id == prepay_id
                && now.saturating_sub(o.prepay_ms) < PREPAY_LIFE_MS
        })
    }
}

fn notify_body(no: &str, tx: &str, fee: Fen, key: &str) -> Vec<u8> {
    let m = Merchant {
        key: key.into(),
        ..merchant()
    };
    build_paid_notify(
        &m,
        &PaidNotice {
            out_trade_no: no,
            transaction_id: tx,
            total_fee: fee,
            openid: "o_1",
            time_end: "20261202000000",
            nonce_str: "nonce",
            include_sign_type: false,
        },
    )
    .expect("notify")
    .into_bytes()
}

// ---------------------------------------------------------------------------------------
// The shell: what the worker does around each decision (load, decide, execute, and
// decide again on the fresh row when a guard did not hold).

/// Runs a decision's batch; whether its guard held.
fn execute<R>(db: &Db, d: &Decision<R>) -> bool {
    let batch = d.batch().expect("a flow decided a write the store refuses");
    let changes = db.run(&batch).expect("batch");
    batch.guard_held(&changes)
}

#[derive(Debug)]
enum Flow {
    /// `/pay/` for a new order: create, then ask WeChat, then apply its answer.
    PayNew {
        user: usize,
        fee: Fen,
        merchant: usize,
        no: Option<String>,
        answer: Option<Option<Result<Prepay, PayError>>>,
    },
    /// `/pay/` retrying an order; `answer` once WeChat was asked.
    PayRetry {
        no: String,
        answer: Option<Option<Result<Prepay, PayError>>>,
    },
    /// `/notify/`: read (verify + load the order), then decide and write.
    Notify {
        body: Vec<u8>,
        delivery: usize,
        loaded: Option<(Option<OrderRow>, bool)>,
    },
    /// One reconciler run: its queue, and the order it is on.
    Reconcile {
        queue: Option<Vec<OrderRow>>,
        current: Option<ReconcileOne>,
    },
    /// `POST /merchant/withdrawals`.
    Withdraw {
        merchant: usize,
        key: Option<String>,
        begun: Option<Begin>,
        done: bool,
    },
}

#[derive(Debug)]
struct ReconcileOne {
    row: OrderRow,
    query: Option<Option<Result<OrderQuery, PayError>>>,
    close: Option<(u64, Option<Result<(), PayError>>)>,
}

#[derive(Default, Debug)]
struct Counts {
    orders: u64,
    handed_out: u64,
    payments: u64,
    notifies: u64,
    forged: u64,
    credited_notify: u64,
    credited_reconciler: u64,
    late_payments: u64,
    closed: u64,
    failed: u64,
    guard_retries: u64,
    crashes: u64,
    withdrawals: u64,
    replays: u64,
    nothing_to_withdraw: u64,
    reconciler_runs: u64,
}

struct Delivery {
    body: Vec<u8>,
    /// WeChat stops once it reads SUCCESS.
    acknowledged: bool,
}

struct World {
    db: Db,
    wx: WeChat,
    rng: StdRng,
    now: u64,
    policy: Policy,
    flows: Vec<Flow>,
    /// Notifies WeChat keeps sending until acknowledged (or has given up on: lost).
    deliveries: Vec<Delivery>,
    /// prepay_ids handed to users: (out_trade_no, prepay_id).
    wallet: Vec<(String, String)>,
    counts: Counts,
    seq: u64,
}

impl World {
    fn new(seed: u64) -> World {
        World {
            db: Db::new(),
            wx: WeChat::default(),
            rng: StdRng::seed_from_u64(seed),
            now: 1_000_000,
            policy: Policy::default(),
            flows: Vec::new(),
            deliveries: Vec::new(),
            wallet: Vec::new(),
            counts: Counts::default(),
            seq: 0,
        }
    }

    /// A random order; with `open`, mostly one still open (users retry those).
    fn some_order(&mut self, open: bool) -> Option<String> {
        let filter = if open && self.rng.random_bool(0.8) {
            format!("WHERE status IN ({})", store::status_list(&store::OPEN))
        } else {
            String::new()
        };
        let n = self
            .db
            .count(&format!("SELECT COUNT(*) FROM orders {filter}"));
        if n == 0 {
            return None;
        }
        let offset = self.rng.random_range(0..n);
        self.db
            .0
            .query_row(
                &format!("SELECT out_trade_no FROM orders {filter} ORDER BY id LIMIT 1 OFFSET ?1"),
                [offset as i64],
                |r| r.get(0),
            )
            .ok()
    }

    /// One random event.
    fn step(&mut self) {
        let roll = self.rng.random_range(0..100);
        match roll {
            0..=11 => {
                let (user, merchant) = (
                    self.rng.random_range(0..USERS.len()),
                    self.rng.random_range(0..MERCHANTS.len()),
                );
                let fee = Fen::new(self.rng.random_range(1..=5000));
                self.flows.push(Flow::PayNew {
                    user,
                    fee,
                    merchant,
                    no: None,
                    answer: None,
                });
            }
            12..=15 => {
                if let Some(no) = self.some_order(true) {
                    self.flows.push(Flow::PayRetry { no, answer: None });
                }
            }
            16..=23 => self.user_pays(),
            24..=33 => self.deliver(),
            34..=37 => self.forge(),
            38..=41 => self.flows.push(Flow::Reconcile {
                queue: None,
                current: None,
            }),
            42..=45 => {
                let merchant = self.rng.random_range(0..MERCHANTS.len());
                let key = self
                    .rng
                    .random_bool(0.5)
                    .then(|| format!("k{}", self.rng.random_range(0..3)));
                self.flows.push(Flow::Withdraw {
                    merchant,
                    key,
                    begun: None,
                    done: false,
                });
            }
            46..=49 => {
                if !self.flows.is_empty() {
                    let i = self.rng.random_range(0..self.flows.len());
                    self.flows.swap_remove(i);
                    self.counts.crashes += 1;
                }
            }
            50..=59 => self.now += self.rng.random_range(1_000..20 * 60_000),
            _ => {
                if !self.flows.is_empty() {
                    let i = self.rng.random_range(0..self.flows.len());
                    let mut f = self.flows.swap_remove(i);
                    if !self.advance(&mut f) {
                        self.flows.push(f);
                    }
                }
            }
        }
    }

    fn user_pays(&mut self) {
        if self.wallet.is_empty() {
            return;
        }
        let i = self.rng.random_range(0..self.wallet.len());
        let (no, prepay_id) = self.wallet[i].clone();
        if let Some(tx) = self.wx.pay(&no, &prepay_id, self.now) {
            self.counts.payments += 1;
            // Some notifies are lost for good (our endpoint down through every retry).
            if self.rng.random_bool(0.8) {
                let fee = self.wx.orders[&no].fee;
                self.deliveries.push(Delivery {
                    body: notify_body(&no, &tx, fee, KEY),
                    acknowledged: false,
                });
            }
        }
    }

    /// WeChat (re)sends a notify: any pending one (reordered), or an acknowledged one
    /// again (a duplicate).
    fn deliver(&mut self) {
        if self.deliveries.is_empty() {
            return;
        }
        let i = self.rng.random_range(0..self.deliveries.len());
        if self.deliveries[i].acknowledged && self.rng.random_bool(0.7) {
            return;
        }
        self.flows.push(Flow::Notify {
            body: self.deliveries[i].body.clone(),
            delivery: i,
            loaded: None,
        });
    }

    /// A notify nobody at WeChat sent: signed with another key, for another amount
    /// (signed with ours: only a key leak does that), or junk.
    fn forge(&mut self) {
        let Some(no) = self.some_order(false) else {
            return;
        };
        let fee = self.db.order(&no).map_or(Fen::new(1), |o| o.total_fee);
        self.counts.forged += 1;
        let body = match self.rng.random_range(0..3) {
            0 => notify_body(&no, "4200000000000000000000000001", fee, &"f".repeat(32)),
            1 => notify_body(
                &no,
                "4200000000000000000000000002",
                Fen::new(fee.get() + 1),
                KEY,
            ),
            _ => b"<xml><return_code>SUCCESS</return_code></xml>junk".to_vec(),
        };
        self.flows.push(Flow::Notify {
            body,
            delivery: usize::MAX,
            loaded: None,
        });
    }

    /// Moves a flow one step; true when it is finished.
    fn advance(&mut self, f: &mut Flow) -> bool {
        match f {
            Flow::PayNew {
                user,
                fee,
                merchant,
                no,
                answer,
            } => {
                let Some(no_) = no.clone() else {
                    self.seq += 1;
                    let new_no = format!("T{:08}", self.seq);
                    let req = NewRequest {
                        openid: USERS[*user],
                        money: Some(*fee),
                        merchant_id: Some(MERCHANTS[*merchant]),
                        body: None,
                        client_ip: "127.0.0.1",
                    };
                    let write = pflow::new_order(&req, new_no.clone(), self.now, &self.policy)
                        .expect("valid request");
                    let store::Write::CreateOrder(new) = &write else {
                        panic!("new_order wrote {write:?}")
                    };
                    let expected = new.row();
                    let d = Decision::new(vec![write], ());
                    assert!(execute(&self.db, &d), "the merchant exists");
                    // The shell answers from this row without reading it back.
                    assert_eq!(self.db.order(&new_no), Some(expected));
                    self.counts.orders += 1;
                    *no = Some(new_no);
                    return false;
                };
                let Some(a) = answer else {
                    *answer = Some(self.wx.unified_order(&mut self.rng, &no_, *fee, self.now));
                    return false;
                };
                self.apply_unified_order(&no_, a.as_ref(), true)
            }
            Flow::PayRetry { no, answer } => {
                let no = no.clone();
                let Some(row) = self.db.order(&no) else {
                    return true;
                };
                let Some(a) = answer else {
                    match pflow::retry(&row, &row.openid, None, self.now, &self.policy) {
                        Ok(Next::Reuse { prepay_id }) => {
                            self.wallet.push((no, prepay_id));
                            self.counts.handed_out += 1;
                            return true;
                        }
                        Ok(Next::UnifiedOrder) => {
                            *answer = Some(self.wx.unified_order(
                                &mut self.rng,
                                &no,
                                row.total_fee,
                                self.now,
                            ));
                            return false;
                        }
                        Err(_) => return true,
                    }
                };
                self.apply_unified_order(&no, a.as_ref(), false)
            }
            Flow::Notify {
                body,
                delivery,
                loaded,
            } => {
                let r = Received {
                    body,
                    remote_ip: Some("127.0.0.1"),
                    now_ms: self.now,
                };
                let n = match nflow::read(&r, KEY, SignType::Md5) {
                    Read::Verified(n) => n,
                    Read::Unverified(d) | Read::Refused(d) => {
                        assert!(execute(&self.db, &d));
                        return true;
                    }
                    Read::Refund(n) => panic!("a v2 payment notify read as a refund: {n:?}"),
                };
                let Some((row, _)) = loaded else {
                    // The worker awaits D1 for the order: others may act meanwhile.
                    *loaded = Some((self.db.order(&n.out_trade_no), true));
                    return false;
                };
                let expect = Expect {
                    appid: APPID,
                    mch_id: MCH_ID,
                };
                let d = nflow::decide(&n, row.as_ref(), expect, &r);
                if !execute(&self.db, &d) {
                    self.counts.guard_retries += 1;
                    *loaded = None;
                    return false;
                }
                self.counts.notifies += 1;
                if matches!(&d.writes[0], store::Write::Order { change: store::Change::Paid { attention, .. }, .. } if attention.is_some())
                {
                    self.counts.late_payments += 1;
                }
                if matches!(
                    &d.writes[0],
                    store::Write::Order {
                        change: store::Change::Paid { .. },
                        ..
                    }
                ) {
                    self.counts.credited_notify += 1;
                }
                if d.reply.is_success() && *delivery != usize::MAX {
                    self.deliveries[*delivery].acknowledged = true;
                }
                true
            }
            Flow::Reconcile { queue, current } => {
                let Some(q) = queue else {
                    let j = self
                        .db
                        .json(&store::due_orders(self.now, self.policy.batch))
                        .unwrap_or_default();
                    *queue = Some(OrderRow::list_from_json(&j).expect("due"));
                    self.counts.reconciler_runs += 1;
                    return false;
                };
                let Some(one) = current else {
                    if q.is_empty() {
                        return true;
                    }
                    *current = Some(ReconcileOne {
                        row: q.remove(0),
                        query: None,
                        close: None,
                    });
                    return false;
                };
                if self.reconcile_one(one) {
                    *current = None;
                }
                false
            }
            Flow::Withdraw {
                merchant,
                key,
                begun,
                done,
            } => {
                let m = MERCHANTS[*merchant];
                let Some(b) = begun else {
                    let existing = key
                        .as_deref()
                        .and_then(|k| self.db.withdrawal(&store::withdrawal_by_key(m, k)));
                    self.seq += 1;
                    *begun = Some(wflow::begin(
                        existing.as_ref(),
                        m,
                        key.as_deref(),
                        format!("wd_{}", self.seq),
                        self.now,
                    ));
                    return false;
                };
                let id = match b {
                    Begin::Replay { withdrawal_id } => {
                        self.counts.replays += 1;
                        withdrawal_id.clone()
                    }
                    Begin::Claim {
                        withdrawal_id,
                        batch,
                    } => {
                        if !*done {
                            match self.db.run(batch) {
                                Ok(_) => {}
                                // The same key won a race: the batch rolled back whole.
                                Err(DbError::Unique) => {
                                    self.counts.replays += 1;
                                    return true;
                                }
                                Err(e) => panic!("withdrawal batch: {e:?}"),
                            }
                            *done = true;
                            return false;
                        }
                        withdrawal_id.clone()
                    }
                };
                let row = self.db.withdrawal(&store::withdrawal_by_id(&id));
                match wflow::answer(row.as_ref(), &self.db.claimed(&id)) {
                    Ok(_) => self.counts.withdrawals += 1,
                    Err(wflow::WithdrawError::Nothing(_)) => self.counts.nothing_to_withdraw += 1,
                    Err(e) => panic!("withdrawal answer: {e}"),
                }
                true
            }
        }
    }

    /// After unifiedorder answered (or did not): the pay flow's last step, deciding again
    /// on the fresh row whenever the guard did not hold.
    fn apply_unified_order(
        &mut self,
        no: &str,
        answer: Option<&Result<Prepay, PayError>>,
        fresh: bool,
    ) -> bool {
        for _ in 0..MAX_ATTEMPTS {
            let Some(row) = self.db.order(no) else {
                return true;
            };
            let d = pflow::after_unified_order(&row, answer, fresh, self.now, &self.policy);
            if execute(&self.db, &d) {
                if let pflow::Reply::Pay { prepay_id } = &d.reply {
                    self.wallet.push((no.to_owned(), prepay_id.clone()));
                    self.counts.handed_out += 1;
                }
                self.count_end(&d);
                return true;
            }
            self.counts.guard_retries += 1;
        }
        true
    }

    fn count_end<R>(&mut self, d: &Decision<R>) {
        if let Some(store::Write::Order {
            change: store::Change::Ended { status, .. },
            ..
        }) = d.writes.first()
        {
            match status {
                OrderStatus::Closed => self.counts.closed += 1,
                _ => self.counts.failed += 1,
            }
        }
    }

    /// One order of a reconciler run, one step: query, decide; close, decide. True when
    /// this order is done.
    fn reconcile_one(&mut self, one: &mut ReconcileOne) -> bool {
        let no = one.row.out_trade_no.clone();
        let Some(query) = &one.query else {
            one.query = Some(self.wx.order_query(&mut self.rng, &no));
            return false;
        };
        if let Some((closed_at, answer)) = &one.close {
            for _ in 0..MAX_ATTEMPTS {
                let Some(row) = self.db.order(&no) else {
                    return true;
                };
                let d =
                    rflow::after_close(&row, *closed_at, answer.as_ref(), self.now, &self.policy);
                if execute(&self.db, &d) {
                    self.count_end(&d);
                    return true;
                }
                self.counts.guard_retries += 1;
            }
            return true;
        }
        for _ in 0..MAX_ATTEMPTS {
            let Some(row) = self.db.order(&no) else {
                return true;
            };
            match rflow::after_query(&row, query.as_ref(), self.now, &self.policy) {
                Step::Close => {
                    one.close = Some((row.version, self.wx.close_order(&mut self.rng, &no)));
                    return false;
                }
                Step::Decided(d) => {
                    if execute(&self.db, &d) {
                        if matches!(
                            &d.writes.first(),
                            Some(store::Write::Order {
                                change: store::Change::Paid { .. },
                                ..
                            })
                        ) {
                            self.counts.credited_reconciler += 1;
                        }
                        self.count_end(&d);
                        return true;
                    }
                    self.counts.guard_retries += 1;
                }
            }
        }
        true
    }

    // -----------------------------------------------------------------------------------
    // The invariants.

    fn check(&self) -> Result<(), String> {
        let j = self.db.json(&store::audit_snapshot()).unwrap_or_default();
        let report = AuditSnapshot::from_json(&j)
            .map_err(|e| e.to_string())?
            .audit();
        if !report.ok() {
            let v: Vec<String> = report.violations().map(ToString::to_string).collect();
            return Err(format!("ledger audit: {v:?}"));
        }
        for o in self.db.all_orders() {
            let wx = self.wx.orders.get(&o.out_trade_no);
            if o.status.is_paid() {
                match wx.map(|w| (&w.state, w.fee)) {
                    Some((WxState::Success { tx }, fee))
                        if Some(tx.as_str()) == o.transaction_id.as_deref()
                            && fee == o.total_fee => {}
                    other => {
                        return Err(format!(
                            "{} is {} here, but WeChat holds {other:?}: money invented",
                            o.out_trade_no, o.status
                        ));
                    }
                }
            }
            if matches!(o.status, OrderStatus::Closed | OrderStatus::Failed)
                && self
                    .wallet
                    .iter()
                    .any(|(no, p)| no == &o.out_trade_no && self.wx.payable(no, p, self.now))
            {
                return Err(format!(
                    "{} is {} here while WeChat would still take its payment",
                    o.out_trade_no, o.status
                ));
            }
        }
        Ok(())
    }

    /// The end of an episode: WeChat's retries run their course (every pending notify is
    /// delivered until acknowledged), then the reconciler runs until nothing is open.
    fn settle(&mut self) -> Result<(), String> {
        self.flows.clear();
        for i in 0..self.deliveries.len() {
            if self.deliveries[i].acknowledged {
                continue;
            }
            let mut f = Flow::Notify {
                body: self.deliveries[i].body.clone(),
                delivery: i,
                loaded: None,
            };
            while !self.advance(&mut f) {}
        }
        for _ in 0..400 {
            self.now += 30 * 60_000;
            let mut f = Flow::Reconcile {
                queue: None,
                current: None,
            };
            while !self.advance(&mut f) {}
            self.check()?;
            if self.db.count(&format!(
                "SELECT COUNT(*) FROM orders WHERE status IN ({})",
                store::status_list(&store::OPEN)
            )) == 0
            {
                break;
            }
        }
        let ours: BTreeMap<String, OrderRow> = self
            .db
            .all_orders()
            .into_iter()
            .map(|o| (o.out_trade_no.clone(), o))
            .collect();
        for (no, w) in &self.wx.orders {
            if let WxState::Success { tx } = &w.state {
                match ours.get(no) {
                    Some(o) if o.status.is_paid() && o.transaction_id.as_deref() == Some(tx) => {}
                    other => {
                        return Err(format!(
                            "WeChat holds {no} paid ({tx}) but it is {:?} here: a payment not credited",
                            other.map(|o| o.status)
                        ));
                    }
                }
            }
        }
        let twice = self.db.count(
            "SELECT COUNT(*) FROM (SELECT out_trade_no FROM notifications WHERE verdict = 'CREDITED' GROUP BY out_trade_no HAVING COUNT(*) > 1)",
        );
        if twice > 0 {
            return Err(format!("{twice} order(s) credited by two notifies"));
        }
        Ok(())
    }
}

fn add(total: &mut Counts, c: &Counts) {
    macro_rules! sum {
        ($($f:ident),*) => { $(total.$f += c.$f;)* };
    }
    sum!(
        orders,
        handed_out,
        payments,
        notifies,
        forged,
        credited_notify,
        credited_reconciler,
        late_payments,
        closed,
        failed,
        guard_retries,
        crashes,
        withdrawals,
        replays,
        nothing_to_withdraw,
        reconciler_runs
    );
}

#[test]
fn the_money_flows_keep_every_fen_under_any_schedule() {
    let steps: u64 = std::env::var("SIM_STEPS")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(200_000);
    let base_seed: u64 = match std::env::var("SIM_SEED").as_deref() {
        Ok("random") => rand::random(),
        Ok(s) => s.parse().expect("SIM_SEED is a number or `random`"),
        Err(_) => 1,
    };
    let start = Instant::now();
    let mut total = Counts::default();
    let mut done = 0u64;
    let mut episode = 0u64;
    while done < steps {
        let seed = base_seed.wrapping_add(episode);
        let mut w = World::new(seed);
        let n = EPISODE_STEPS.min(steps - done);
        for step in 1..=n {
            w.step();
            if let Err(e) = w.check() {
                panic!(
                    "SIM_SEED={seed} step {step} of an episode (SIM_STEPS={n} reproduces it): {e}"
                );
            }
        }
        if let Err(e) = w.settle() {
            panic!("SIM_SEED={seed}, settling after {n} steps (SIM_STEPS={n} reproduces it): {e}");
        }
        add(&mut total, &w.counts);
        done += n;
        episode += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "simulation: {done} steps in {episode} episodes from SIM_SEED={base_seed}, {secs:.1} s ({:.0} steps/s)\n{total:#?}",
        done as f64 / secs
    );
    // The schedule must have reached every path it claims to test.
    if steps >= 50_000 {
        let c = &total;
        for (what, n) in [
            ("payments", c.payments),
            ("credits by notify", c.credited_notify),
            ("credits by the reconciler", c.credited_reconciler),
            ("closes", c.closed),
            ("fails", c.failed),
            ("guard retries", c.guard_retries),
            ("crashes", c.crashes),
            ("withdrawals", c.withdrawals),
            ("idempotent replays", c.replays),
            ("empty withdrawals", c.nothing_to_withdraw),
            ("forged notifies", c.forged),
        ] {
            assert!(n > 0, "the schedule never produced {what}: {c:#?}");
        }
    }
}

/// The reconciler's queue under abuse: `QUEUE_ABANDONED` (default 1 000; the recorded
/// figure uses 10 000) orders placed and never paid, then one paid whose every notify was
/// lost, all through the production pay flow; then the cron every 5 minutes with the
/// default policy (`QUEUE_BATCH` overrides the batch). Counts the runs until the paid one
/// is credited. Ordered by next-due time, every look pushes an order back, so the paid
/// order is reached once the looks due before it are done: at most ⌈(N + 1) / batch⌉ runs.
#[test]
fn a_paid_order_behind_a_flood_of_abandoned_ones_is_reached() {
    let n: u64 = std::env::var("QUEUE_ABANDONED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let mut w = World::new(7);
    if let Some(b) = std::env::var("QUEUE_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        w.policy.batch = b;
    }
    let place = |w: &mut World, i: u64| -> String {
        let no = format!("Q{i:08}");
        let req = NewRequest {
            openid: USERS[0],
            money: Some(Fen::new(100)),
            merchant_id: None,
            body: None,
            client_ip: "127.0.0.1",
        };
        let create = Decision::new(
            vec![pflow::new_order(&req, no.clone(), w.now, &w.policy).expect("valid")],
            (),
        );
        assert!(execute(&w.db, &create));
        w.wx.seq += 1;
        let prepay = format!("wx{}", w.wx.seq);
        w.wx.orders.insert(
            no.clone(),
            WxOrder {
                fee: Fen::new(100),
                state: WxState::NotPay,
                prepay_id: prepay.clone(),
                prepay_ms: w.now,
            },
        );
        let row = w.db.order(&no).expect("row");
        let answer = Ok(Prepay {
            prepay_id: prepay,
            trade_type: "JSAPI".into(),
            code_url: None,
        });
        let d = pflow::after_unified_order(&row, Some(&answer), true, w.now, &w.policy);
        assert!(execute(&w.db, &d));
        no
    };
    // One account's worth of abuse: an order every 0.36 s (10 000 an hour).
    for i in 0..n {
        place(&mut w, i);
        w.now += 360;
    }
    let paid = place(&mut w, n);
    let tx =
        w.wx.pay(&paid, &w.wx.orders[&paid].prepay_id.clone(), w.now)
            .expect("paid");
    let start = w.now;
    let mut runs = 0u64;
    let mut looks = 0u64;
    while w.db.order(&paid).is_some_and(|o| !o.status.is_paid()) {
        w.now += 5 * 60_000;
        runs += 1;
        let due = OrderRow::list_from_json(
            &w.db
                .json(&store::due_orders(w.now, w.policy.batch))
                .unwrap_or_default(),
        )
        .expect("due");
        for row in due {
            looks += 1;
            let truth = |o: &WxOrder| match &o.state {
                WxState::Success { tx } => (TradeState::Success, Some(o.fee), Some(tx.clone())),
                WxState::Closed => (TradeState::Closed, None, None),
                WxState::NotPay => (TradeState::NotPay, None, None),
            };
            let (state, fee, t) = truth(&w.wx.orders[&row.out_trade_no]);
            let q = Ok(OrderQuery {
                out_trade_no: row.out_trade_no.clone(),
                trade_state: state,
                total_fee: fee,
                transaction_id: t,
                openid: None,
                time_end: None,
            });
            match rflow::after_query(&row, Some(&q), w.now, &w.policy) {
                Step::Decided(d) => assert!(execute(&w.db, &d)),
                Step::Close => {
                    w.wx.orders.get_mut(&row.out_trade_no).expect("order").state = WxState::Closed;
                    let d = rflow::after_close(&row, row.version, Some(&Ok(())), w.now, &w.policy);
                    assert!(execute(&w.db, &d));
                }
            }
        }
        assert!(runs < 100_000, "never reached");
    }
    assert_eq!(w.db.order(&paid).and_then(|o| o.transaction_id), Some(tx));
    let bound = (n + 1).div_ceil(w.policy.batch) + 3;
    println!(
        "queue: {n} abandoned orders + 1 paid with every notify lost, batch {}: credited after {runs} cron runs ({:.1} h at one run per 5 min, {looks} orderqueries); bound {bound}",
        w.policy.batch,
        (w.now - start) as f64 / 3_600_000.0,
    );
    assert!(runs <= bound, "{runs} runs > {bound}");
}
