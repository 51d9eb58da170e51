//! wxsim plays WeChat's daily trade bill over real HTTP, and the merchant reads it with the
//! core alone: v3 applies (signed; the answer verified and judged by
//! `v3::tradebill::apply_outcome`), downloads (signed GET, unsigned answer), inflates,
//! parses with `bill::BillParser` and checks the SHA-1; v2 asks with
//! `Merchant::download_bill_request` (MD5 and HMAC-SHA256) and judges the bytes with
//! `parse_download_bill_response`. Then every `bill` fault.

mod common;

use std::io::Read as _;

use common::v3::{H, start, trusted};
use common::{HMAC_MCH, Harness, MD5_MCH, merchant};
use serde_json::{Value, json};
use wxedge_core::bill::{self, BillParser, BillRow, BillSummary, check_hash};
use wxedge_core::pay::{DOWNLOAD_BILL_PATH, DownloadBill, Merchant, PayError};
use wxedge_core::v3::jsapi;
use wxedge_core::v3::refund::{self as v3refund, RefundRequest};
use wxedge_core::v3::tradebill::{self, Apply};
use wxedge_core::v3::verify::Headers;
use wxedge_core::{Fen, random};

fn inflate(gz: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Parses a bill in chunks, as a shell streaming it would.
fn parse(file: &[u8]) -> (Vec<BillRow>, BillSummary) {
    let mut p = BillParser::new();
    let mut rows = Vec::new();
    for c in file.chunks(1000) {
        p.feed(c, &mut rows).unwrap();
    }
    let s = p.finish(&mut rows).unwrap();
    (rows, s)
}

fn payments(rows: &[BillRow]) -> Vec<(String, u64)> {
    rows.iter()
        .filter_map(|r| match r {
            BillRow::Payment {
                out_trade_no,
                amount,
                ..
            } => Some((out_trade_no.clone(), amount.get())),
            _ => None,
        })
        .collect()
}

fn yesterday(now_ms: i64) -> String {
    bill::bill_date_of(now_ms / 1000 - 86_400)
}

impl H {
    /// A paid v3 order; the day its payment is billed on.
    async fn paid_v3(&self, no: &str, total: u64) -> String {
        let prepay_id = self.prepay(no, total).await;
        let (status, v) = self.pay(&prepay_id).await;
        assert_eq!(status, 200, "{v}");
        let o = self.get_json(&format!("/sim/orders/{no}")).await;
        bill::from_v2_bill_date(&o["time_end"].as_str().unwrap()[..8]).unwrap()
    }

    /// Applies for `date`'s bill; the verified outcome.
    async fn apply(&self, date: &str) -> (u16, Result<Apply, PayError>, Value) {
        let a = self
            .call("GET", &tradebill::apply_path(date).unwrap(), "")
            .await;
        let h = Headers::from_lookup(|n| a.header(n));
        let keys = trusted(false);
        let verified = keys.verify(&h, &a.body, common::v3::now());
        let answer = jsapi::Answer {
            status: a.status,
            body: &a.body,
            verified: verified.as_ref().copied(),
        };
        (a.status, tradebill::apply_outcome(&answer), a.json())
    }

    /// Applies and downloads: the inflated file and the hash WeChat named.
    async fn bill_v3(&self, date: &str) -> (Vec<u8>, String) {
        let (status, outcome, body) = self.apply(date).await;
        assert_eq!(status, 200, "{body}");
        let Ok(Apply::Ready {
            hash_value,
            download_url,
        }) = outcome
        else {
            panic!("{outcome:?}");
        };
        let path = tradebill::download_path(&download_url, &self.base).unwrap();
        let a = self.call("GET", &path, "").await;
        assert_eq!(a.status, 200);
        // The download's answer carries no signature: its SHA-1 is the check.
        assert!(a.header("wechatpay-signature").is_none());
        (inflate(&a.body), hash_value)
    }
}

#[tokio::test]
async fn a_v3_merchant_applies_downloads_and_reconciles_the_day() {
    let h = start().await;
    let day = h.paid_v3("BILLV3A1", 250).await;
    h.paid_v3("BILLV3A2", 99).await;
    let body = v3refund::request_body(&RefundRequest {
        out_trade_no: "BILLV3A1",
        out_refund_no: "BILLV3R1",
        reason: None,
        notify_url: &h.receiver.url,
        refund: Fen::new(50),
        total: Fen::new(250),
    })
    .unwrap();
    assert_eq!(
        h.call("POST", v3refund::REFUND_PATH, &body).await.status,
        200
    );
    // The refund's status is the bill's as at its making: wait for it to end, so the two
    // bills below are the same file.
    h.wait_seen(|s| s.iter().any(|x| x.event == "REFUND.SUCCESS"))
        .await;
    let (file, hash) = h.bill_v3(&day).await;
    let (rows, summary) = parse(&file);
    check_hash(&summary, &hash).unwrap();
    let mut paid = payments(&rows);
    paid.sort();
    assert_eq!(
        paid,
        [("BILLV3A1".to_owned(), 250), ("BILLV3A2".to_owned(), 99)]
    );
    assert!(rows.iter().any(|r| matches!(r,
        BillRow::Refund { out_trade_no, out_refund_no, amount, status, .. }
        if out_trade_no == "BILLV3A1" && out_refund_no == "BILLV3R1" && *amount == Fen::new(50)
            && status == "SUCCESS")));
    assert_eq!(
        (summary.rows, summary.paid, summary.refunded),
        (3, Fen::new(349), Fen::new(50))
    );
    // /sim/bill shows the same file.
    let text = h
        .http
        .get(format!("{}/sim/bill?date={day}&mch_id={MD5_MCH}", h.base))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(bill::sha1_hex(&text), hash);

    // A day without trade, a day to come, a day too old.
    let now = h.sim.now_ms();
    let (status, outcome, body) = h.apply(&yesterday(now)).await;
    assert_eq!((status, outcome), (400, Ok(Apply::NoBill)), "{body}");
    let tomorrow = bill::bill_date_of(now / 1000 + 86_400);
    let (status, _, body) = h.apply(&tomorrow).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("PARAM_ERROR")));
    let old = bill::bill_date_of(now / 1000 - 100 * 86_400);
    let (status, _, body) = h.apply(&old).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("PARAM_ERROR")));
}

#[tokio::test]
async fn a_download_url_is_the_merchants_for_five_minutes() {
    let h = start().await;
    let day = h.paid_v3("BILLV3T1", 10).await;
    let (_, outcome, _) = h.apply(&day).await;
    let Ok(Apply::Ready { download_url, .. }) = outcome else {
        panic!("{outcome:?}");
    };
    let path = tradebill::download_path(&download_url, &h.base).unwrap();
    // Unsigned: refused.
    let res = h
        .http
        .get(format!("{}{path}", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    // A made-up token: refused.
    let a = h
        .call(
            "GET",
            &format!("{}?token=nope", tradebill::DOWNLOAD_PATH),
            "",
        )
        .await;
    assert_eq!(
        (a.status, a.json()["code"].as_str()),
        (400, Some("INVALID_REQUEST"))
    );
    assert_eq!(h.call("GET", &path, "").await.status, 200);
    h.sim.advance_clock(301_000);
    assert_eq!(h.call("GET", &path, "").await.status, 400);
}

#[tokio::test]
async fn bill_hash_makes_the_merchants_check_fail_and_transport_faults_apply() {
    let h = start().await;
    let day = h.paid_v3("BILLV3H1", 10).await;
    h.fault(json!({ "target": "bill", "kind": "bill_hash" }))
        .await;
    let (file, hash) = h.bill_v3(&day).await;
    let (_, summary) = parse(&file);
    assert_eq!(
        check_hash(&summary, &hash).unwrap_err(),
        bill::BillError::HashMismatch {
            expected: hash.clone(),
            computed: summary.sha1.clone()
        }
    );
    // Used up: the next bill is whole.
    let (file, hash) = h.bill_v3(&day).await;
    check_hash(&parse(&file).1, &hash).unwrap();
    h.fault(json!({ "target": "bill", "kind": "system_error" }))
        .await;
    let (status, outcome, _) = h.apply(&day).await;
    assert_eq!(status, 500);
    assert!(matches!(outcome, Ok(Apply::NotYet(_))), "{outcome:?}");
}

/// v2: asks for the bill of `date` and judges the answer as the worker will.
async fn download(h: &Harness, m: &Merchant, date: &str) -> Result<Vec<u8>, PayError> {
    let req = m
        .download_bill_request(
            &bill::to_v2_bill_date(date).unwrap(),
            &random::nonce_str().unwrap(),
        )
        .unwrap();
    let res = h
        .http
        .post(format!("{}{DOWNLOAD_BILL_PATH}", h.base))
        .body(req)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let body = res.bytes().await.unwrap();
    match m.parse_download_bill_response(&body)? {
        DownloadBill::File { body, gzip: true } => Ok(inflate(body)),
        DownloadBill::File { body, gzip: false } => Ok(body.to_vec()),
        DownloadBill::NoBill => Ok(Vec::new()),
    }
}

async fn paid_v2(h: &Harness, m: &Merchant, fee: u64) -> (String, String) {
    let no = h.paid_order(m, fee).await;
    let o = h.order_state(&no).await;
    let day = bill::from_v2_bill_date(&o["time_end"].as_str().unwrap()[..8]).unwrap();
    (no, day)
}

#[tokio::test]
async fn v2_downloadbill_in_md5_and_hmac() {
    let h = common::start(0.001).await;
    for mch in [MD5_MCH, HMAC_MCH] {
        let m = merchant(mch);
        let (a, day) = paid_v2(&h, &m, 120).await;
        let (b, _) = paid_v2(&h, &m, 3).await;
        let file = download(&h, &m, &day).await.unwrap();
        let (rows, summary) = parse(&file);
        let mut got = payments(&rows);
        got.sort();
        let mut want = vec![(a, 120), (b, 3)];
        want.sort();
        assert_eq!(got, want, "{mch}");
        assert_eq!(summary.paid, Fen::new(123));
        // No trade yesterday: NoBill, not an error.
        let y = yesterday(h.sim.now_ms());
        assert_eq!(download(&h, &m, &y).await.unwrap(), Vec::<u8>::new());
    }
    // Another merchant's key: WeChat's sign error, typed.
    let mut wrong = merchant(MD5_MCH);
    wrong.key = "x".repeat(32);
    let day = bill::bill_date_of(h.sim.now_ms() / 1000);
    assert_eq!(
        download(&h, &wrong, &day).await.unwrap_err(),
        PayError::BillRefused {
            error_code: "20001".into(),
            return_msg: "sign error".into()
        }
    );
    // A day to come.
    let tomorrow = bill::bill_date_of(h.sim.now_ms() / 1000 + 86_400);
    let e = download(&h, &merchant(MD5_MCH), &tomorrow)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, PayError::BillRefused { error_code, return_msg } if error_code == "20001" && return_msg.starts_with("invalid bill_date")),
        "{e:?}"
    );
}

#[tokio::test]
async fn each_bill_fault_writes_its_discrepancy_and_still_parses() {
    let h = common::start(0.001).await;
    let m = merchant(MD5_MCH);
    let (a, day) = paid_v2(&h, &m, 500).await;
    let (b, _) = paid_v2(&h, &m, 700).await;
    let fault = |f: Value| {
        let h = h.clone();
        async move {
            let (status, v) = h.post_json("/sim/faults", f).await;
            assert_eq!(status, 201, "{v}");
        }
    };
    let amounts = |rows: &[BillRow]| {
        let mut p = payments(rows);
        p.sort();
        p
    };
    let mut truth = vec![(a.clone(), 500), (b.clone(), 700)];
    truth.sort();

    fault(json!({ "target": "bill", "kind": "bill_amount", "out_trade_no": b })).await;
    let (rows, s) = parse(&download(&h, &m, &day).await.unwrap());
    let mut want = truth.clone();
    for w in &mut want {
        if w.0 == b {
            w.1 += 1;
        }
    }
    assert_eq!(amounts(&rows), want);
    assert_eq!(s.paid, Fen::new(1201));

    fault(json!({ "target": "bill", "kind": "bill_missing", "out_trade_no": a })).await;
    let (rows, s) = parse(&download(&h, &m, &day).await.unwrap());
    assert_eq!(amounts(&rows), [(b.clone(), 700)]);
    assert_eq!(s.rows, 1);

    fault(json!({ "target": "bill", "kind": "bill_extra" })).await;
    let (rows, s) = parse(&download(&h, &m, &day).await.unwrap());
    let got = amounts(&rows);
    assert_eq!(got.len(), 3);
    let extra: Vec<_> = got.iter().filter(|p| !truth.contains(p)).collect();
    assert_eq!(extra.len(), 1);
    assert_eq!(extra[0].1, 100);
    assert_eq!(s.paid, Fen::new(1300));

    // Faults used up: the truth again.
    let (rows, _) = parse(&download(&h, &m, &day).await.unwrap());
    assert_eq!(amounts(&rows), truth);

    // The wire fails before WeChat reads: a 500 with no bill.
    fault(json!({ "target": "bill", "kind": "http500" })).await;
    let req = m.download_bill_request(&day.replace('-', ""), "n").unwrap();
    let (status, _) = h.post_xml(DOWNLOAD_BILL_PATH, req.clone()).await;
    assert_eq!(status, 500);
    fault(json!({ "target": "bill", "kind": "system_error" })).await;
    let (_, text) = h.post_xml(DOWNLOAD_BILL_PATH, req).await;
    let e = m.parse_download_bill_response(text.as_bytes()).unwrap_err();
    assert!(e.is_transient(), "{e:?}");
    // A fault kind that is not a bill's is refused.
    let (status, _) = h
        .post_json(
            "/sim/faults",
            json!({ "target": "bill", "kind": "err_code", "err_code": "X" }),
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn padding_makes_a_big_bill_that_still_reconciles() {
    let h = common::start(0.001).await;
    let m = merchant(HMAC_MCH);
    let (a, day) = paid_v2(&h, &m, 42).await;
    let (status, v) = h
        .post_json(
            "/sim/bill-padding",
            json!({ "mch_id": HMAC_MCH, "date": day, "rows": 20_000 }),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let (rows, s) = parse(&download(&h, &m, &day).await.unwrap());
    assert_eq!(s.rows, 20_001);
    assert_eq!(payments(&rows)[0], (a, 42));
    let pad: u64 = (0..20_000u64).map(|n| 1 + n % 9_999).sum();
    assert_eq!(s.paid, Fen::new(42 + pad));
    // Padding alone makes a bill; 0 removes it.
    let y = yesterday(h.sim.now_ms());
    h.post_json(
        "/sim/bill-padding",
        json!({ "mch_id": HMAC_MCH, "date": y, "rows": 3 }),
    )
    .await;
    let (_, s) = parse(&download(&h, &m, &y).await.unwrap());
    assert_eq!(s.rows, 3);
    h.post_json(
        "/sim/bill-padding",
        json!({ "mch_id": HMAC_MCH, "date": y, "rows": 0 }),
    )
    .await;
    assert!(download(&h, &m, &y).await.unwrap().is_empty());
    // /sim/bill: the merchant must be named when there are two; 404 without trade.
    let (status, _) = h.get_json(&format!("/sim/bill?date={day}")).await;
    assert_eq!(status, 400);
    let (status, _) = h
        .get_json(&format!("/sim/bill?date={y}&mch_id={HMAC_MCH}"))
        .await;
    assert_eq!(status, 404);
    let (status, _) = h
        .post_json(
            "/sim/bill-padding",
            json!({ "mch_id": HMAC_MCH, "date": y, "rows": 2_000_000 }),
        )
        .await;
    assert_eq!(status, 400);
}
