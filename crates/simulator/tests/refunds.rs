//! wxsim plays WeChat's APIv3 refunds over real HTTP: the merchant signs each request with
//! the core, reads each answer as the worker does (`v3::verify`, then
//! `v3::refund::outcome`), and its notify receiver verifies and decrypts REFUND.* notifies
//! with `v3::verify` and `v3::refund::parse_notify` alone (the harness: `common/v3.rs`).

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::v3::*;
use common::{APPID, MD5_MCH};
use serde_json::{Value, json};
use wxedge_core::pay::PayError;
use wxedge_core::v3::jsapi;
use wxedge_core::v3::refund::{self as v3refund, RefundRequest, RefundState, WechatRefundStatus};
use wxedge_core::v3::rsa::native::PrivateKey;
use wxedge_core::v3::verify::Headers;
use wxedge_core::{Fen, random};

/// A signed refund request's body, as the worker builds it.
fn refund_body(
    out_trade_no: &str,
    out_refund_no: &str,
    refund: u64,
    total: u64,
    url: &str,
) -> String {
    v3refund::request_body(&RefundRequest {
        out_trade_no,
        out_refund_no,
        reason: Some("退货"),
        notify_url: url,
        refund: Fen::new(refund),
        total: Fen::new(total),
    })
    .unwrap()
}

/// The answer read as the worker reads it: verified, then judged by the core.
fn read(a: &Answer, out_refund_no: &str) -> Result<RefundState, PayError> {
    let h = Headers::from_lookup(|n| a.header(n));
    let keys = trusted(false);
    let verified = keys.verify(&h, &a.body, now());
    let answer = jsapi::Answer {
        status: a.status,
        body: &a.body,
        verified: verified.as_ref().copied(),
    };
    v3refund::outcome(&answer, out_refund_no)
}

/// WeChat's refusal: (status, code, message), and whether it was signed.
fn refusal(a: &Answer) -> (u16, String, String, bool) {
    let v = a.json();
    let signed = a.verify_with(&trusted(false), |_| ()).is_ok();
    (
        a.status,
        v["code"].as_str().unwrap_or_default().to_owned(),
        v["message"].as_str().unwrap_or_default().to_owned(),
        signed,
    )
}

impl H {
    /// A paid v3 order of `total` fen (its payment notify acknowledged); its transaction_id.
    async fn paid(&self, no: &str, total: u64) -> String {
        let prepay_id = self.prepay(no, total).await;
        let (status, v) = self.pay(&prepay_id).await;
        assert_eq!(status, 200, "{v}");
        let want = Ok((no.to_owned(), total));
        self.wait_seen(|s| s.iter().any(|x| x.outcome == want))
            .await;
        v["transaction_id"].as_str().unwrap().to_owned()
    }

    async fn refund(&self, no: &str, rno: &str, refund: u64, total: u64) -> Answer {
        let body = refund_body(no, rno, refund, total, &self.receiver.url);
        self.call("POST", v3refund::REFUND_PATH, &body).await
    }

    async fn query_refund(&self, rno: &str) -> Answer {
        self.call("GET", &v3refund::query_path(rno).unwrap(), "")
            .await
    }

    async fn by_hand(&self, body: Value) -> (u16, Value) {
        let res = self
            .http
            .post(format!("{}/sim/refund", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        (
            res.status().as_u16(),
            res.json().await.unwrap_or(Value::Null),
        )
    }

    /// The refund notifies the receiver has seen: (event, outcome).
    fn refund_notifies(&self) -> Vec<(String, Outcome)> {
        self.receiver
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.event.starts_with("REFUND.") || s.outcome.is_err())
            .map(|s| (s.event.clone(), s.outcome.clone()))
            .collect()
    }

    /// Waits until `pred` holds of the delivery log of refund `rno`.
    async fn wait_log(&self, rno: &str, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        for _ in 0..1000 {
            let v = self
                .get_json(&format!("/sim/notifications?out_refund_no={rno}"))
                .await;
            let list = v["notifications"].as_array().cloned().unwrap_or_default();
            if pred(&list) {
                return list;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the deliveries of refund {rno} never reached the expected state");
    }

    async fn order_refunds(&self, no: &str) -> (u64, Vec<Value>) {
        let o = self.get_json(&format!("/sim/orders/{no}")).await;
        (
            o["refunded_fee"].as_u64().unwrap(),
            o["refunds"].as_array().unwrap().clone(),
        )
    }
}

#[tokio::test]
async fn a_refund_is_processing_then_success_with_a_signed_notify() {
    let h = start().await;
    let transaction_id = h.paid("RFOK0001", 100).await;
    let a = h.refund("RFOK0001", "RF-OK-1", 30, 100).await;
    assert_eq!(a.status, 200, "{:?}", a.json());
    let r = read(&a, "RF-OK-1").unwrap();
    assert_eq!(r.status, WechatRefundStatus::Processing);
    assert_eq!((r.refund, r.total), (Fen::new(30), Fen::new(100)));
    assert_eq!(r.transaction_id, transaction_id);
    assert_eq!(r.success_time, None);
    assert_eq!(a.json()["amount"]["currency"], "CNY");
    // Then SUCCESS, told by a REFUND.SUCCESS notify the merchant verified and decrypted.
    let want = ("REFUND.SUCCESS".to_owned(), Ok(("RF-OK-1".to_owned(), 30)));
    h.wait_seen(|_| h.refund_notifies().contains(&want)).await;
    let q = read(&h.query_refund("RF-OK-1").await, "RF-OK-1").unwrap();
    assert_eq!(q.status, WechatRefundStatus::Success);
    assert_eq!(q.refund_id, r.refund_id);
    assert!(q.success_time.is_some());
    // Acknowledged by 204 at the first try, in the delivery log like a payment's notify.
    let log = h.wait_log("RF-OK-1", |l| !l.is_empty()).await;
    assert_eq!(log.len(), 1);
    assert_eq!(
        (
            log[0]["event_type"].as_str(),
            log[0]["status"].as_u64(),
            log[0]["success"].as_bool(),
            log[0]["out_trade_no"].as_str()
        ),
        (
            Some("REFUND.SUCCESS"),
            Some(204),
            Some(true),
            Some("RFOK0001")
        )
    );
    let (refunded, refunds) = h.order_refunds("RFOK0001").await;
    assert_eq!(refunded, 30);
    assert_eq!(
        (
            refunds[0]["status"].as_str(),
            refunds[0]["refund_fee"].as_u64(),
            refunds[0]["source"].as_str(),
            refunds[0]["notify"]["acknowledged"].as_bool()
        ),
        (Some("SUCCESS"), Some(30), Some("api"), Some(true))
    );
}

#[tokio::test]
async fn the_same_out_refund_no_is_one_refund_and_the_sum_never_exceeds_the_order() {
    let h = start().await;
    h.paid("RFSUM001", 100).await;
    assert_eq!(h.refund("RFSUM001", "RS1", 60, 100).await.status, 200);
    // The same request again: the same refund, no second one, no second notify.
    let want = ("REFUND.SUCCESS".to_owned(), Ok(("RS1".to_owned(), 60)));
    h.wait_seen(|_| h.refund_notifies().contains(&want)).await;
    let again = h.refund("RFSUM001", "RS1", 60, 100).await;
    let first = read(&h.query_refund("RS1").await, "RS1").unwrap();
    let replay = read(&again, "RS1").unwrap();
    assert_eq!(replay.refund_id, first.refund_id);
    assert_eq!(replay.status, WechatRefundStatus::Success);
    assert_eq!(h.order_refunds("RFSUM001").await.1.len(), 1);
    // With another amount: refused, as WeChat words it.
    let (status, code, message, signed) = refusal(&h.refund("RFSUM001", "RS1", 61, 100).await);
    assert_eq!(
        (status, code.as_str(), message.as_str(), signed),
        (
            400,
            "INVALID_REQUEST",
            "订单金额或退款金额与之前请求不一致,请核实后再试",
            true
        )
    );
    // amount.total that is not the order's.
    let (status, code, message, _) = refusal(&h.refund("RFSUM001", "RS2", 10, 99).await);
    assert_eq!(
        (status, code.as_str(), message.as_str()),
        (400, "INVALID_REQUEST", "您的请求参数与订单信息不一致")
    );
    // 40 fen are left: 41 is too much, 40 is fine, then nothing is left.
    let (status, code, message, _) = refusal(&h.refund("RFSUM001", "RS2", 41, 100).await);
    assert_eq!((status, code.as_str()), (400, "INVALID_REQUEST"));
    assert!(message.contains("退款金额超过可退金额"), "{message}");
    assert_eq!(h.refund("RFSUM001", "RS2", 40, 100).await.status, 200);
    let (status, _, message, _) = refusal(&h.refund("RFSUM001", "RS3", 1, 100).await);
    assert_eq!((status, message.as_str()), (400, "订单已全额退款"));
    let (refunded, refunds) = h.order_refunds("RFSUM001").await;
    assert_eq!((refunded, refunds.len()), (100, 2));
}

#[tokio::test]
async fn at_most_50_refunds_per_order() {
    let h = start().await;
    h.paid("RFMAX001", 100).await;
    for i in 0..50 {
        let a = h.refund("RFMAX001", &format!("RM{i}"), 1, 100).await;
        assert_eq!(a.status, 200, "refund {i}: {:?}", a.json());
    }
    let (status, code, message, _) = refusal(&h.refund("RFMAX001", "RM50", 1, 100).await);
    assert_eq!((status, code.as_str()), (400, "INVALID_REQUEST"));
    assert!(message.contains("50"), "{message}");
}

#[tokio::test]
async fn unknown_unpaid_and_malformed_refunds_are_refused_and_bad_signatures_get_401() {
    let h = start().await;
    h.prepay("RFUNPAID", 10).await;
    for no in ["RFUNPAID", "RFNOSUCH"] {
        let (status, code, message, signed) = refusal(&h.refund(no, "RU1", 1, 10).await);
        assert_eq!(
            (status, code.as_str(), message.as_str(), signed),
            (404, "RESOURCE_NOT_EXISTS", "订单号不存在", true),
            "{no}"
        );
    }
    let (status, code, message, signed) = refusal(&h.query_refund("RU1").await);
    assert_eq!(
        (status, code.as_str(), message.as_str(), signed),
        (404, "RESOURCE_NOT_EXISTS", "退款单不存在", true)
    );
    // The core reads that 404 as WeChat's refusal, not as a refund.
    assert!(read(&h.query_refund("RU1").await, "RU1").is_err());
    h.paid("RFBAD001", 10).await;
    let usd = refund_body("RFBAD001", "RU2", 1, 10, &h.receiver.url).replace("CNY", "USD");
    let a = h.call("POST", v3refund::REFUND_PATH, &usd).await;
    assert_eq!(
        (a.status, a.json()["code"].as_str()),
        (400, Some("PARAM_ERROR"))
    );
    // Signed with another key: 401 SIGN_ERROR, unsigned, and no refund made.
    let other = PrivateKey::from_pem(&keys().rotated).unwrap();
    let body = refund_body("RFBAD001", "RU3", 1, 10, &h.receiver.url);
    let a = h
        .call_as(
            "POST",
            v3refund::REFUND_PATH,
            &body,
            &other,
            SERIAL,
            MD5_MCH,
        )
        .await;
    let (status, code, _, signed) = refusal(&a);
    assert_eq!((status, code.as_str(), signed), (401, "SIGN_ERROR", false));
    let path = v3refund::query_path("RU3").unwrap();
    let a = h.call_as("GET", &path, "", &other, SERIAL, MD5_MCH).await;
    assert_eq!(a.status, 401);
    assert!(h.order_refunds("RFBAD001").await.1.is_empty());
}

#[tokio::test]
async fn an_order_placed_through_v2_is_refunded_through_v3_by_transaction_id() {
    let h = start().await;
    let (code, _) = {
        let v: Value = h
            .http
            .post(format!("{}/sim/login", h.base))
            .json(&json!({ "appid": APPID, "openid": "oRefundV2" }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (v["code"].as_str().unwrap().to_owned(), ())
    };
    let url = format!(
        "{}/sns/jscode2session?appid={APPID}&secret={}&js_code={code}&grant_type=authorization_code",
        h.base,
        common::SECRET
    );
    h.http.get(url).send().await.unwrap();
    let m = common::merchant(MD5_MCH);
    let order = wxedge_core::pay::UnifiedOrder {
        body: "v2 order".into(),
        out_trade_no: "RFV2ORD1".into(),
        total_fee: Fen::new(50),
        spbill_create_ip: "127.0.0.1".into(),
        // Not the v3 receiver: the v2 payment notify is no concern here.
        notify_url: h.receiver.url.replace("/notify", "/v2"),
        trade_type: Default::default(),
        openid: Some("oRefundV2".into()),
        attach: None,
        time_expire: None,
    };
    let xml = m
        .unified_order_request(&order, &random::nonce_str().unwrap())
        .unwrap();
    let res = h
        .http
        .post(format!("{}/pay/unifiedorder", h.base))
        .body(xml)
        .send()
        .await
        .unwrap();
    let prepay = m
        .parse_unified_order_response(&res.bytes().await.unwrap())
        .unwrap()
        .prepay_id;
    let p = m.payment_params(&prepay, 1_795_000_000, "nonce123");
    let res = h
        .http
        .post(format!("{}/sim/pay", h.base))
        .json(&p)
        .send()
        .await
        .unwrap();
    let paid: Value = res.json().await.unwrap();
    let transaction_id = paid["transaction_id"].as_str().unwrap();
    // v3 names the order by transaction_id alone.
    let body = json!({ "transaction_id": transaction_id, "out_refund_no": "RV2-1",
        "notify_url": h.receiver.url, "amount": { "refund": 50, "total": 50, "currency": "CNY" } })
    .to_string();
    let a = h.call("POST", v3refund::REFUND_PATH, &body).await;
    let r = read(&a, "RV2-1").unwrap();
    assert_eq!(
        (r.out_trade_no.as_str(), r.refund),
        ("RFV2ORD1", Fen::new(50))
    );
    let want = ("REFUND.SUCCESS".to_owned(), Ok(("RV2-1".to_owned(), 50)));
    h.wait_seen(|_| h.refund_notifies().contains(&want)).await;
    assert_eq!(h.order_refunds("RFV2ORD1").await.0, 50);
}

#[tokio::test]
async fn a_refund_by_hand_in_the_merchant_platform_is_notified_to_the_order_url() {
    let h = start().await;
    h.paid("RFHAND01", 80).await;
    let (status, v) = h
        .by_hand(json!({ "out_trade_no": "RFHAND01", "amount_fen": 20 }))
        .await;
    assert_eq!(status, 200, "{v}");
    let rno = v["refund"]["out_refund_no"].as_str().unwrap().to_owned();
    assert_eq!(v["refund"]["source"], "merchant_platform");
    assert_eq!(v["refund"]["status"], "PROCESSING");
    // The merchant never asked, yet hears of it at the order's notify_url…
    let want = ("REFUND.SUCCESS".to_owned(), Ok((rno.clone(), 20)));
    h.wait_seen(|_| h.refund_notifies().contains(&want)).await;
    // …and can query it like its own.
    let q = read(&h.query_refund(&rno).await, &rno).unwrap();
    assert_eq!(q.status, WechatRefundStatus::Success);
    // The same rules: the same out_refund_no is one refund; never past what is left.
    let (status, v) = h
        .by_hand(json!({ "out_trade_no": "RFHAND01", "amount_fen": 20, "out_refund_no": rno }))
        .await;
    assert_eq!((status, v["replayed"].as_bool()), (200, Some(true)));
    let (status, v) = h
        .by_hand(json!({ "out_trade_no": "RFHAND01", "amount_fen": 61 }))
        .await;
    assert_eq!((status, v["code"].as_str()), (400, Some("INVALID_REQUEST")));
    let (status, v) = h
        .by_hand(json!({ "out_trade_no": "RFNOSUCH", "amount_fen": 1 }))
        .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (404, Some("RESOURCE_NOT_EXISTS"))
    );
    // One ending ABNORMAL by hand.
    let (status, _) = h
        .by_hand(json!({ "out_trade_no": "RFHAND01", "amount_fen": 5, "out_refund_no": "RH-AB", "ends": "ABNORMAL" }))
        .await;
    assert_eq!(status, 200);
    let want = ("REFUND.ABNORMAL".to_owned(), Ok(("RH-AB".to_owned(), 5)));
    h.wait_seen(|_| h.refund_notifies().contains(&want)).await;
    assert_eq!(h.order_refunds("RFHAND01").await.0, 25);
}

#[tokio::test]
async fn transport_and_business_faults_apply_to_refund_and_refund_query() {
    let h = start().await;
    h.paid("RFFAULT1", 10).await;
    h.fault(json!({ "target": "refund", "kind": "http500", "out_trade_no": "RFFAULT1" }))
        .await;
    let a = h.refund("RFFAULT1", "RF1", 1, 10).await;
    assert_eq!((a.status, a.header("wechatpay-signature")), (500, None));
    h.fault(json!({ "target": "refund", "kind": "timeout", "delay_ms": 50 }))
        .await;
    assert_eq!(h.refund("RFFAULT1", "RF1", 1, 10).await.status, 504);
    h.fault(json!({ "target": "refund", "kind": "system_error" }))
        .await;
    let (status, code, _, signed) = refusal(&h.refund("RFFAULT1", "RF1", 1, 10).await);
    assert_eq!((status, code.as_str(), signed), (500, "SYSTEM_ERROR", true));
    h.fault(json!({ "target": "refund", "kind": "err_code", "err_code": "NOT_ENOUGH" }))
        .await;
    let (status, code, _, _) = refusal(&h.refund("RFFAULT1", "RF1", 1, 10).await);
    assert_eq!((status, code.as_str()), (403, "NOT_ENOUGH"));
    // None of them made a refund; the same request now does.
    assert!(h.order_refunds("RFFAULT1").await.1.is_empty());
    assert_eq!(h.refund("RFFAULT1", "RF1", 1, 10).await.status, 200);
    for (kind, status, code) in [
        ("system_error", 500, "SYSTEM_ERROR"),
        ("err_code", 429, "FREQUENCY_LIMITED"),
    ] {
        h.fault(json!({ "target": "refund_query", "kind": kind, "err_code": (kind == "err_code").then_some("FREQUENCY_LIMITED") }))
            .await;
        let (s, c, _, signed) = refusal(&h.query_refund("RF1").await);
        assert_eq!((s, c.as_str(), signed), (status, code, true));
    }
    h.fault(json!({ "target": "refund_query", "kind": "http500" }))
        .await;
    assert_eq!(h.query_refund("RF1").await.status, 500);
    assert!(read(&h.query_refund("RF1").await, "RF1").is_ok());
    // A refund-only kind on another target is refused.
    let res = h
        .http
        .post(format!("{}/sim/faults", h.base))
        .json(&json!({ "target": "query", "kind": "refund_closed" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
}

#[tokio::test]
async fn refund_abnormal_and_refund_closed_end_the_refund_so_with_their_notify() {
    let h = start().await;
    h.paid("RFEND001", 10).await;
    h.fault(json!({ "target": "refund", "kind": "refund_abnormal" }))
        .await;
    let r = read(&h.refund("RFEND001", "RE-AB", 4, 10).await, "RE-AB").unwrap();
    assert_eq!(r.status, WechatRefundStatus::Processing);
    let want = ("REFUND.ABNORMAL".to_owned(), Ok(("RE-AB".to_owned(), 4)));
    h.wait_seen(|_| h.refund_notifies().contains(&want)).await;
    let q = read(&h.query_refund("RE-AB").await, "RE-AB").unwrap();
    assert_eq!(
        (q.status, q.success_time),
        (WechatRefundStatus::Abnormal, None)
    );
    h.fault(json!({ "target": "refund", "kind": "refund_closed" }))
        .await;
    assert_eq!(h.refund("RFEND001", "RE-CL", 6, 10).await.status, 200);
    let want = ("REFUND.CLOSED".to_owned(), Ok(("RE-CL".to_owned(), 6)));
    h.wait_seen(|_| h.refund_notifies().contains(&want)).await;
    let q = read(&h.query_refund("RE-CL").await, "RE-CL").unwrap();
    assert_eq!(q.status, WechatRefundStatus::Closed);
    // The closed refund's money can be refunded again; the abnormal one's cannot.
    let (refunded, refunds) = h.order_refunds("RFEND001").await;
    assert_eq!((refunded, refunds.len()), (4, 2));
    assert_eq!(h.refund("RFEND001", "RE-3", 6, 10).await.status, 200);
    assert_eq!(h.refund("RFEND001", "RE-4", 1, 10).await.status, 400);
}

#[tokio::test]
async fn refund_notify_faults_drop_or_forge_a_refund_notify_but_not_a_payment_notify() {
    let h = start().await;
    // Placed before the payment: a refund_notify fault leaves the payment's notify alone.
    h.fault(json!({ "target": "refund_notify", "kind": "drop", "out_trade_no": "RFLOST01" }))
        .await;
    h.paid("RFLOST01", 10).await;
    assert_eq!(h.refund("RFLOST01", "RL1", 3, 10).await.status, 200);
    let log = h.wait_log("RL1", |l| !l.is_empty()).await;
    assert_eq!(
        (log[0]["kind"].as_str(), log[0]["event_type"].as_str()),
        (Some("dropped"), Some("REFUND.SUCCESS"))
    );
    // Lost for good: only the query tells the merchant.
    let q = read(&h.query_refund("RL1").await, "RL1").unwrap();
    assert_eq!(q.status, WechatRefundStatus::Success);
    assert!(h.refund_notifies().is_empty(), "{:?}", h.refund_notifies());
    // A forgery and a 1-fen-more notify come first, then the genuine one, then a duplicate.
    for kind in ["wrong_sign", "wrong_amount", "duplicate"] {
        h.fault(json!({ "target": "refund_notify", "kind": kind }))
            .await;
    }
    assert_eq!(h.refund("RFLOST01", "RL2", 2, 10).await.status, 200);
    h.wait_seen(|_| h.refund_notifies().len() >= 4).await;
    assert_eq!(
        h.refund_notifies(),
        [
            (String::new(), Err("SIGN_MISMATCH".to_owned())),
            ("REFUND.SUCCESS".to_owned(), Ok(("RL2".to_owned(), 3))),
            ("REFUND.SUCCESS".to_owned(), Ok(("RL2".to_owned(), 2))),
            ("REFUND.SUCCESS".to_owned(), Ok(("RL2".to_owned(), 2))),
        ]
    );
    let log = h.wait_log("RL2", |l| l.len() >= 4).await;
    let kinds: Vec<&str> = log.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["wrong_sign", "wrong_amount", "notify", "duplicate"]);
}

#[tokio::test]
async fn a_refused_refund_notify_is_retried_and_state_carries_refunds_across_restarts() {
    let dir = std::env::temp_dir().join(format!("wxsim-refunds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = |n: &str| dir.join(format!("{n}.json"));
    let receiver = receiver(false).await;
    // WeChat's real time (15 s before the first retry), a refund that stays PROCESSING.
    let opts = |name: &str, delay: Duration| wxsim::Options {
        time_scale: 1.0,
        refund_delay: delay,
        state_file: Some(file(name)),
        ..options()
    };
    let h = start_with(
        opts("one", Duration::from_secs(3600)),
        Default::default(),
        receiver.clone(),
    )
    .await;
    h.paid("RFSTATE1", 10).await;
    let a = h.refund("RFSTATE1", "RP1", 7, 10).await;
    assert_eq!(
        read(&a, "RP1").unwrap().status,
        WechatRefundStatus::Processing
    );
    h.sim.save().unwrap();
    let state = wxsim::load_state(&file("one")).unwrap();
    h.http
        .post(format!("{}/sim/reset", h.base))
        .send()
        .await
        .unwrap();
    // Restarted with a short delay: the PROCESSING refund ends; its notify is refused once.
    receiver.refuse.store(1, Ordering::SeqCst);
    let h = start_with(
        opts("two", Duration::from_millis(1)),
        state,
        receiver.clone(),
    )
    .await;
    let log = h.wait_log("RP1", |l| !l.is_empty()).await;
    assert_eq!(
        (log[0]["attempt"].as_u64(), log[0]["success"].as_bool()),
        (Some(1), Some(false))
    );
    h.sim.save().unwrap();
    let state = wxsim::load_state(&file("two")).unwrap();
    h.http
        .post(format!("{}/sim/reset", h.base))
        .send()
        .await
        .unwrap();
    // Restarted again: the unacknowledged notify is resumed at once (not 15 s later).
    let h = start_with(
        opts("three", Duration::from_millis(1)),
        state,
        receiver.clone(),
    )
    .await;
    let want = ("REFUND.SUCCESS".to_owned(), Ok(("RP1".to_owned(), 7)));
    h.wait_seen(|_| h.refund_notifies().contains(&want)).await;
    let (refunded, refunds) = h.order_refunds("RFSTATE1").await;
    assert_eq!(refunded, 7);
    assert_eq!(
        (
            refunds[0]["status"].as_str(),
            refunds[0]["notify"]["attempts"].as_u64(),
            refunds[0]["notify"]["acknowledged"].as_bool()
        ),
        (Some("SUCCESS"), Some(2), Some(true))
    );
    std::fs::remove_dir_all(&dir).ok();
}
