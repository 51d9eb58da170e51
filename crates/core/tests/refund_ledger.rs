//! Refunds through the production decisions and their SQL, against SQLite built from the
//! worker's migrations: the money is taken when a refund is recorded, a refund of a
//! withdrawn order is a debt the next credit repays, a refund that ends without money
//! leaving gives it back, a refund made by hand is recorded like ours, and the audit holds
//! to the fen after every step. And the daily bill matched against them (`store::bill_match`).

use rusqlite::Connection;
use rusqlite::types::Value;
use serde_json::json;
use wxedge_core::Fen;
use wxedge_core::flow::Decision;
use wxedge_core::flow::bill;
use wxedge_core::flow::notify::Received;
use wxedge_core::flow::refund::{self as rflow, Next, Notice, Policy, Refusal, Request, Step};
use wxedge_core::flow::withdraw::{self as wflow, Begin, WithdrawalRow};
use wxedge_core::ledger::{AuditSnapshot, BalanceSnapshot};
use wxedge_core::order::OrderRow;
use wxedge_core::pay::PayError;
use wxedge_core::refund::{RefundRow, RefundStatus};
use wxedge_core::store::{self, Batch, SqlArg, Statement};
use wxedge_core::v3::api_error::{ApiError, Code};
use wxedge_core::v3::refund::{RefundState, WechatRefundStatus};

const MIGRATIONS: [&str; 5] = [
    include_str!("../../../migrations/0001_init.sql"),
    include_str!("../../../migrations/0002_ledger.sql"),
    include_str!("../../../migrations/0003_flows.sql"),
    include_str!("../../../migrations/0004_refunds.sql"),
    include_str!("../../../migrations/0005_bills.sql"),
];

struct Db(Connection);

fn bind(args: &[SqlArg]) -> Vec<Value> {
    args.iter()
        .map(|a| match a {
            SqlArg::Text(s) => Value::Text(s.clone()),
            SqlArg::Int(n) => Value::Integer(i64::try_from(*n).unwrap()),
            SqlArg::Null => Value::Null,
        })
        .collect()
}

impl Db {
    fn new() -> Db {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch("PRAGMA foreign_keys = ON;").unwrap();
        for m in MIGRATIONS {
            c.execute_batch(m).unwrap();
        }
        c.execute(
            "INSERT INTO merchants (merchant_id, name, created_ms) VALUES ('m', 'm', 0)",
            [],
        )
        .unwrap();
        c.execute(
            "INSERT INTO users (openid, created_ms, login_ms, updated_ms) VALUES ('o1', 0, 0, 0)",
            [],
        )
        .unwrap();
        Db(c)
    }

    /// A batch as D1 runs it: all or nothing; whether its guard held.
    fn run(&self, b: &Batch) -> bool {
        let tx = self.0.unchecked_transaction().unwrap();
        let mut changes = Vec::new();
        for s in &b.statements {
            changes.push(
                tx.execute(&s.sql, rusqlite::params_from_iter(bind(&s.args)))
                    .unwrap(),
            );
        }
        tx.commit().unwrap();
        b.guard_held(&changes)
    }

    fn json(&self, s: &Statement) -> Option<String> {
        let mut st = self.0.prepare(&s.sql).unwrap();
        let mut rows = st.query(rusqlite::params_from_iter(bind(&s.args))).unwrap();
        let row = rows.next().unwrap()?;
        row.get::<_, Option<String>>("j").unwrap()
    }

    fn order(&self, no: &str) -> OrderRow {
        OrderRow::from_json(&self.json(&store::order_by_no(no)).unwrap()).unwrap()
    }

    fn refund(&self, no: &str) -> RefundRow {
        RefundRow::from_json(&self.json(&store::refund_by_no(no)).unwrap()).unwrap()
    }

    fn paid_order(&self, no: &str, fee: u64, now: u64) {
        self.0
            .execute(
                "INSERT INTO orders (out_trade_no, openid, merchant_id, total_fee, body, spbill_create_ip, status,
                   version, transaction_id, paid_ms, created_ms, updated_ms)
                 VALUES (?1, 'o1', 'm', ?2, 'b', '1.2.3.4', 'PAID', 1, ?3, ?4, 0, 0)",
                rusqlite::params![no, fee as i64, format!("42{no}"), now as i64],
            )
            .unwrap();
    }

    fn audit(&self) {
        let a = AuditSnapshot::from_json(&self.json(&store::audit_snapshot()).unwrap())
            .unwrap()
            .audit();
        let v: Vec<_> = a.violations().collect();
        assert!(v.is_empty(), "audit: {v:?}");
    }

    fn balance(&self) -> (i64, u64) {
        let b = BalanceSnapshot::from_json(&self.json(&store::balance("m")).unwrap())
            .unwrap()
            .view()
            .unwrap();
        (b.balance.available, b.balance.debt.get())
    }

    /// A withdrawal through the production batch; its amount, or None when refused.
    fn withdraw(&self, id: &str) -> Option<u64> {
        let Begin::Claim { batch, .. } = wflow::begin(None, "m", None, id.into(), 10) else {
            unreachable!()
        };
        self.run(&batch);
        let row = self
            .json(&store::withdrawal_by_id(id))
            .map(|j| WithdrawalRow::from_json(&j).unwrap());
        let claimed =
            wflow::claimed_from_json(&self.json(&store::claimed_orders(id)).unwrap()).unwrap();
        wflow::answer(row.as_ref(), &claimed).ok().map(|f| f.get())
    }

    /// `POST /merchant/refunds` as the worker runs it, up to the batch.
    fn request(
        &self,
        no: &str,
        amount: u64,
        key: &str,
        refund_no: &str,
    ) -> Result<String, Refusal> {
        let digest = rflow::request_digest(no, Fen::new(amount), None);
        let v = json!(amount);
        let order = self
            .json(&store::order_by_no(no))
            .map(|j| OrderRow::from_json(&j).unwrap());
        let existing = self
            .json(&store::refund_by_key("m", key))
            .map(|j| RefundRow::from_json(&j).unwrap());
        let r = Request {
            merchant_id: "m",
            out_trade_no: no,
            amount: Some(&v),
            reason: None,
            idempotency_key: Some(key),
            request_sha256: &digest,
        };
        match rflow::request(
            order.as_ref(),
            existing.as_ref(),
            0,
            &r,
            refund_no.into(),
            10,
            &Policy::default(),
        )? {
            Next::Replay(row) => Ok(row.out_refund_no),
            Next::Create {
                out_refund_no,
                write,
            } => {
                assert!(
                    self.run(&store::batch(&[*write]).unwrap()),
                    "the refund's guard held"
                );
                Ok(out_refund_no)
            }
        }
    }

    fn decide<R>(&self, d: &Decision<R>) -> bool {
        self.run(&d.batch().unwrap())
    }
}

fn state(
    no: &str,
    refund_no: &str,
    status: WechatRefundStatus,
    refund: u64,
    total: u64,
) -> RefundState {
    RefundState {
        out_refund_no: refund_no.into(),
        out_trade_no: no.into(),
        refund_id: format!("503{refund_no}"),
        transaction_id: format!("42{no}"),
        status,
        refund: Fen::new(refund),
        total: Fen::new(total),
        success_time: None,
        user_received_account: None,
    }
}

#[test]
fn refunds_take_money_at_once_and_debts_are_repaid_first() {
    let db = Db::new();
    let p = Policy::default();
    db.paid_order("T0000001", 100, 1);
    db.audit();

    // 30 of 100 refunded before any withdrawal: 70 is what can be withdrawn.
    let r1 = db.request("T0000001", 30, "k1", "R0000001").unwrap();
    assert_eq!(db.refund(&r1).status, RefundStatus::Requested);
    assert_eq!(db.order("T0000001").refunded_fen, Fen::new(30));
    assert_eq!(db.balance(), (70, 0));
    db.audit();
    // The same key again is the same refund; above what is left is refused; nothing written.
    assert_eq!(db.request("T0000001", 30, "k1", "R-unused").unwrap(), r1);
    assert!(matches!(
        db.request("T0000001", 71, "k2", "R0000002"),
        Err(Refusal::Conflict(_))
    ));
    assert!(matches!(
        db.request("T0000001", 31, "k1", "R0000002"),
        Err(Refusal::Conflict(_))
    ));
    assert_eq!(db.balance(), (70, 0));

    // WeChat accepts it (PROCESSING), then the notify says SUCCESS.
    let row = db.refund(&r1);
    let d = rflow::after_answer(
        &row,
        Some(&Ok(state(
            "T0000001",
            &r1,
            WechatRefundStatus::Processing,
            30,
            100,
        ))),
        11,
        &p,
    );
    assert!(db.decide(&d));
    assert_eq!(db.refund(&r1).status, RefundStatus::Processing);
    let received = Received {
        body: b"{}",
        remote_ip: None,
        now_ms: 12,
    };
    let n = Notice {
        mchid: "1900000109".into(),
        state: state("T0000001", &r1, WechatRefundStatus::Success, 30, 100),
    };
    let d = rflow::after_notify(
        &n,
        Some(&db.refund(&r1)),
        Some(&db.order("T0000001")),
        "1900000109",
        &received,
        12,
        &p,
    );
    assert!(d.reply.is_success());
    assert!(db.decide(&d));
    assert_eq!(db.refund(&r1).status, RefundStatus::Success);
    // A duplicate changes nothing and is acknowledged.
    let dup = rflow::after_notify(
        &n,
        Some(&db.refund(&r1)),
        Some(&db.order("T0000001")),
        "1900000109",
        &received,
        13,
        &p,
    );
    assert!(dup.reply.is_success());
    assert_eq!(dup.writes.len(), 1, "only the notification is recorded");
    db.audit();

    // Withdraw the 70; then refund 50 more of the withdrawn order: a debt of 50.
    assert_eq!(db.withdraw("w1"), Some(70));
    db.audit();
    let r2 = db.request("T0000001", 50, "k3", "R0000003").unwrap();
    assert_eq!(db.balance(), (-50, 50));
    db.audit();
    assert_eq!(db.withdraw("w2"), None, "a debt is never withdrawn");
    assert_eq!(
        db.balance(),
        (-50, 50),
        "the refused withdrawal gave everything back"
    );
    db.audit();

    // A 30 fen payment does not cover the debt; 60 more does: 90 − 50 = 40 withdrawn.
    db.paid_order("T0000002", 30, 20);
    assert_eq!(db.withdraw("w3"), None);
    db.paid_order("T0000003", 60, 21);
    assert_eq!(db.balance(), (40, 0));
    assert_eq!(db.withdraw("w4"), Some(40));
    assert_eq!(db.balance(), (0, 0));
    db.audit();

    // WeChat closes r2 (no money left the merchant): the 50 comes back.
    let row = db.refund(&r2);
    let d = rflow::after_answer(
        &row,
        Some(&Ok(state(
            "T0000001",
            &r2,
            WechatRefundStatus::Closed,
            50,
            100,
        ))),
        30,
        &p,
    );
    assert!(db.decide(&d));
    assert_eq!(db.refund(&r2).status, RefundStatus::Closed);
    assert_eq!(db.order("T0000001").refunded_fen, Fen::new(30));
    assert_eq!(db.balance(), (50, 0));
    db.audit();
    assert_eq!(db.withdraw("w5"), Some(50));
    db.audit();
}

#[test]
fn a_refused_refund_gives_the_money_back_and_a_lost_one_is_found() {
    let db = Db::new();
    let p = Policy::default();
    db.paid_order("T0000001", 100, 1);
    let r1 = db.request("T0000001", 100, "k1", "R0000001").unwrap();
    assert_eq!(db.balance(), (0, 0));
    let refused = Err(PayError::V3(Box::new(ApiError::new(
        Code::Other("NOT_ENOUGH".into()),
        "基本账户余额不足",
    ))));
    let d = rflow::after_answer(&db.refund(&r1), Some(&refused), 11, &p);
    assert!(db.decide(&d));
    let row = db.refund(&r1);
    assert_eq!(row.status, RefundStatus::Failed);
    assert!(row.failure.unwrap().starts_with("NOT_ENOUGH"));
    assert_eq!(db.balance(), (100, 0));
    db.audit();

    // No answer: REQUESTED, and the reconciler's query finds WeChat never got it → resend.
    let r2 = db.request("T0000001", 40, "k2", "R0000002").unwrap();
    let d = rflow::after_answer(&db.refund(&r2), None, 12, &p);
    assert!(d.writes.is_empty());
    let missing = Err(PayError::V3(Box::new(ApiError::new(
        Code::Other("RESOURCE_NOT_EXISTS".into()),
        "退款单不存在",
    ))));
    assert_eq!(
        rflow::after_query(&db.refund(&r2), Some(&missing), 700_000, &p),
        Step::Resend
    );
    // Still processing at WeChat: looked at again later, counted for the backoff.
    let Step::Decided(d) = rflow::after_query(
        &db.refund(&r2),
        Some(&Ok(state(
            "T0000001",
            &r2,
            WechatRefundStatus::Processing,
            40,
            100,
        ))),
        700_000,
        &p,
    ) else {
        panic!()
    };
    assert!(db.decide(&d));
    let Step::Decided(d) = rflow::after_query(
        &db.refund(&r2),
        Some(&Ok(state(
            "T0000001",
            &r2,
            WechatRefundStatus::Processing,
            40,
            100,
        ))),
        800_000,
        &p,
    ) else {
        panic!()
    };
    assert!(db.decide(&d));
    let row = db.refund(&r2);
    assert_eq!((row.status, row.checks), (RefundStatus::Processing, 1));
    assert!(row.next_check_ms.unwrap() > 800_000);
    db.audit();
}

#[test]
fn a_refund_made_by_hand_is_recorded_like_ours() {
    let db = Db::new();
    let p = Policy::default();
    db.paid_order("T0000001", 100, 1);
    assert_eq!(db.withdraw("w1"), Some(100));
    let received = Received {
        body: b"{}",
        remote_ip: None,
        now_ms: 5,
    };
    let n = Notice {
        mchid: "1900000109".into(),
        state: state("T0000001", "HAND0001", WechatRefundStatus::Success, 25, 100),
    };
    let d = rflow::after_notify(
        &n,
        None,
        Some(&db.order("T0000001")),
        "1900000109",
        &received,
        5,
        &p,
    );
    assert!(d.reply.is_success());
    assert!(db.decide(&d));
    let row = db.refund("HAND0001");
    assert_eq!(
        (row.status, row.amount_fen),
        (RefundStatus::Success, Fen::new(25))
    );
    assert_eq!(
        db.balance(),
        (-25, 25),
        "refunded after its withdrawal: a debt"
    );
    db.audit();
    // Its duplicate, and another merchant's, change nothing.
    let again = rflow::after_notify(
        &n,
        Some(&row),
        Some(&db.order("T0000001")),
        "1900000109",
        &received,
        6,
        &p,
    );
    assert!(db.decide(&again));
    let other = rflow::after_notify(
        &n,
        None,
        Some(&db.order("T0000001")),
        "1234567890",
        &received,
        6,
        &p,
    );
    assert_eq!(other.reply.status, 400);
    assert_eq!(db.balance(), (-25, 25));
    db.audit();
}

#[test]
fn the_daily_bill_finds_every_difference() {
    use wxedge_core::bill::BillParser;
    let db = Db::new();
    let p = Policy::default();
    // Bill days are Beijing days: ours is 2026-12-01.
    let (day, _) = bill::day_bounds("2026-12-01").unwrap();
    // Ours: T1 (100) and T2 (50) paid that day, T4 (70) paid that day but billed the day
    // before (we learned of it after midnight), T5 (20) paid that day and in no bill; a
    // refund R1 of 30 on T1 (PROCESSING), and R2 of 10 on T2 that WeChat closed.
    for (no, fee) in [
        ("T0000001", 100),
        ("T0000002", 50),
        ("T0000004", 70),
        ("T0000005", 20),
    ] {
        db.paid_order(no, fee, day + 10);
    }
    let r1 = db.request("T0000001", 30, "k1", "R0000001").unwrap();
    let d = rflow::after_answer(
        &db.refund(&r1),
        Some(&Ok(state(
            "T0000001",
            &r1,
            WechatRefundStatus::Processing,
            30,
            100,
        ))),
        day + 20,
        &p,
    );
    assert!(db.decide(&d));
    let r2 = db.request("T0000002", 10, "k2", "R0000002").unwrap();
    let d = rflow::after_answer(
        &db.refund(&r2),
        Some(&Ok(state(
            "T0000002",
            &r2,
            WechatRefundStatus::Closed,
            10,
            50,
        ))),
        day + 20,
        &p,
    );
    assert!(db.decide(&d));
    // The bill: T1 right, T2 billed at 55, T3 (40) we never credited, R1 right, R2 billed
    // as a refund that went through, R9 a refund we never heard of.
    let header = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注\n";
    let pay = |no: &str, yuan: &str| {
        format!(
            "`2026-12-01 10:00:00,`wx1,`1900000109,`0,`,`42{no},`{no},`o1,`JSAPI,`SUCCESS,`OTHERS,`CNY,`{yuan},`0.00,`0,`0,`0.00,`0.00,`,`,`b,`,`0.00000,`0.60%,`{yuan},`0.00,`\n"
        )
    };
    let refund = |no: &str, rno: &str, yuan: &str| {
        format!(
            "`2026-12-01 11:00:00,`wx1,`1900000109,`0,`,`42{no},`{no},`o1,`JSAPI,`REFUND,`OTHERS,`CNY,`0.00,`0.00,`503{rno},`{rno},`{yuan},`0.00,`ORIGINAL,`SUCCESS,`b,`,`0.00000,`0.60%,`0.00,`{yuan},`\n"
        )
    };
    let rows = [
        pay("T0000001", "1.00"),
        pay("T0000002", "0.55"),
        pay("T0000003", "0.40"),
        refund("T0000001", "R0000001", "0.30"),
        refund("T0000002", "R0000002", "0.10"),
        refund("T0000001", "R0000009", "0.05"),
    ]
    .concat();
    let bill = format!(
        "{header}{rows}总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\n`6,`1.95,`0.45,`0.00,`0.00000,`1.95,`0.45\n"
    );
    // Each bill is fed in small chunks, as a download streams in, and stored and matched
    // in the one batch the core decides.
    let load = |text: &str, date: &str, now: u64| {
        let mut parser = BillParser::new();
        let mut rows = bill::Rows::new();
        let mut parsed = Vec::new();
        for chunk in text.as_bytes().chunks(7) {
            parser.feed(chunk, &mut parsed).unwrap();
            rows.take(&mut parsed);
        }
        let summary = parser.finish(&mut parsed);
        rows.take(&mut parsed);
        let sha = summary.as_ref().map(|s| s.sha1.clone()).unwrap_or_default();
        bill::after_file(date, summary, Some(&sha), rows, now)
    };
    // Yesterday's bill had T4.
    let yesterday = format!(
        "{header}{}总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\n`1,`0.70,`0.00,`0.00,`0.00000,`0.70,`0.00\n",
        pay("T0000004", "0.70")
    );
    assert!(db.run(&load(&yesterday, "2026-11-30", day).unwrap()));
    // A bill whose SHA-1 is not WeChat's is refused, nothing stored.
    let forged = {
        let mut parser = BillParser::new();
        let mut parsed = Vec::new();
        parser.feed(bill.as_bytes(), &mut parsed).unwrap();
        let s = parser.finish(&mut parsed);
        let mut rows = bill::Rows::new();
        rows.take(&mut parsed);
        bill::after_file("2026-12-01", s, Some("0000"), rows, day)
    };
    let refused = forged.unwrap_err();
    assert_eq!(
        (refused.status, refused.code),
        (bill::BillStatus::Failed, "BILL_HASH_MISMATCH")
    );
    assert!(db.run(&refused.batch("2026-12-01", day)));
    assert_eq!(
        db.json(&store::bill_seen("2026-12-01")).unwrap(),
        format!(r#"{{"status":"FAILED","updated_ms":{day}}}"#)
    );
    assert!(db.run(&load(&bill, "2026-12-01", day + 90_000_000).unwrap()));
    // A later failed fetch of a matched day leaves the match.
    assert!(db.run(&bill::Recorded::unreachable("tradebill").batch("2026-12-01", day)));
    let report: serde_json::Value = serde_json::from_str(
        &db.json(&store::reconciliation_report("2026-12-01", 0, 100))
            .unwrap(),
    )
    .unwrap();
    let mut found: Vec<String> = report["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            format!(
                "{} {} {}",
                d["kind"].as_str().unwrap(),
                d["reference"].as_str().unwrap(),
                d["difference"].as_str().unwrap()
            )
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            "PAYMENT T0000002 AMOUNT_DIFFERS",
            "PAYMENT T0000003 MISSING_HERE",
            "PAYMENT T0000005 MISSING_IN_BILL",
            "REFUND R0000002 STATUS_DIFFERS",
            "REFUND R0000009 MISSING_HERE",
        ]
    );
    assert_eq!(report["bill"]["status"], "MATCHED");
    assert_eq!(report["bill"]["differences"], 5);
    assert_eq!(report["bill"]["paid_fen"], 195);
    db.audit();
}

#[test]
fn settlement_fee_and_hold_keep_the_ledger_exact() {
    use wxedge_core::ledger::Settlement;
    use wxedge_core::order::PaidVia;
    use wxedge_core::store::{Change, Write};
    let db = Db::new();
    let s = Settlement {
        fee_bps: 60,
        hold_ms: 1_000,
    };
    // 0.6 % of 199 fen is 1.194 fen: 1 fen, rounded down (the fraction stays with the merchant).
    assert_eq!(s.fee_of(Fen::new(199)), Fen::new(1));
    assert_eq!(s.fee_of(Fen::new(10_000)), Fen::new(60));
    db.0.execute(
        "INSERT INTO orders (out_trade_no, openid, merchant_id, total_fee, body, spbill_create_ip, status, version, created_ms, updated_ms)
         VALUES ('T0000001', 'o1', 'm', 10000, 'b', '1.2.3.4', 'PREPAID', 1, 0, 0)",
        [],
    )
    .unwrap();
    let credit = Write::Order {
        seen: db.order("T0000001").seen(),
        change: Change::Paid {
            transaction_id: "4200".into(),
            via: PaidVia::Notify,
            attention: None,
            fee: s.fee_of(Fen::new(10_000)),
        },
        now_ms: 5_000,
    };
    assert!(db.run(&store::batch(std::slice::from_ref(&credit)).unwrap()));
    db.audit();
    // The same credit again (a duplicate decided on the old row) takes no second fee.
    assert!(!db.run(&store::batch(&[credit]).unwrap()));
    let balance = |now: u64| {
        BalanceSnapshot::from_json(
            &db.json(&store::balance_at("m", s.withdrawable_before(now)))
                .unwrap(),
        )
        .unwrap()
        .view()
        .unwrap()
        .balance
    };
    // Within the hold: nothing available but −60 (the fee), 10 000 held.
    let b = balance(5_500);
    assert_eq!((b.available, b.held.get(), b.fees.get()), (-60, 10_000, 60));
    let w = |id: &str, now: u64| {
        let Begin::Claim { batch, .. } = wflow::begin_with(None, "m", None, id.into(), now, &s)
        else {
            unreachable!()
        };
        db.run(&batch);
        db.json(&store::withdrawal_by_id(id))
            .map(|j| WithdrawalRow::from_json(&j).unwrap().amount_fen.get())
    };
    assert_eq!(w("w1", 5_500), None, "held orders are not withdrawn");
    db.audit();
    let b = balance(6_000);
    assert_eq!((b.available, b.held.get()), (9_940, 0));
    assert_eq!(w("w2", 6_000), Some(9_940), "paid − fee");
    db.audit();
}
