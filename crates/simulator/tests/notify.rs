//! The async notify: its body, WeChat's retry schedule (time-scaled), and injected
//! duplicates, forgeries and reordering.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use wxedge_core::Fen;
use wxedge_core::notify::{self, ExpectedPayment, RETRY_SCHEDULE_SECS};
use wxedge_core::pay::Merchant;

/// An independent reading of a notify: string search for `<k><![CDATA[v]]></k>` and the
/// v2 sign written out by hand, sharing no code with wxedge-core.
fn naive_verify(body: &str, key: &str, hmac: bool) -> BTreeMap<String, String> {
    let inner = body
        .strip_prefix("<xml>")
        .and_then(|b| b.strip_suffix("</xml>"))
        .expect("a flat <xml> document");
    let mut map = BTreeMap::new();
    let mut rest = inner;
    while let Some(open_end) = rest.find('>') {
        let tag = &rest[1..open_end];
        let after = &rest[open_end + 1..];
        let close = format!("</{tag}>");
        let end = after.find(&close).expect("closing tag");
        let raw = &after[..end];
        let value = raw
            .strip_prefix("<![CDATA[")
            .and_then(|v| v.strip_suffix("]]>"))
            .unwrap_or(raw);
        map.insert(tag.to_owned(), value.to_owned());
        rest = &after[end + close.len()..];
    }
    let mut canonical = String::new();
    for (k, v) in &map {
        if k != "sign" && !v.is_empty() {
            canonical.push_str(&format!("{k}={v}&"));
        }
    }
    canonical.push_str(&format!("key={key}"));
    let digest: Vec<u8> = if hmac {
        use hmac::{KeyInit, Mac};
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(canonical.as_bytes());
        mac.finalize().into_bytes().to_vec()
    } else {
        use md5::Digest;
        md5::Md5::digest(canonical.as_bytes()).to_vec()
    };
    let hex: String = digest.iter().map(|b| format!("{b:02X}")).collect();
    assert_eq!(map["sign"], hex, "independent sign check of {body}");
    map
}

fn core_verify(body: &str, m: &Merchant, fee: u64, out_trade_no: &str) -> notify::Notify {
    let n = notify::parse_notify(body.as_bytes(), &m.key, m.sign_type).unwrap();
    n.check(&ExpectedPayment {
        appid: &m.appid,
        mch_id: &m.mch_id,
        out_trade_no,
        total_fee: Fen::new(fee),
    })
    .unwrap();
    n
}

#[tokio::test]
async fn the_notify_verifies_with_the_core_and_independently() {
    let h = start(0.001).await;
    for (mch, hmac) in [(MD5_MCH, false), (HMAC_MCH, true)] {
        let m = merchant(mch);
        let no = h.paid_order(&m, 1234).await;
        let log = h
            .wait_deliveries(&no, |l| l.iter().any(|d| d["success"] == true))
            .await;
        assert_eq!(log.len(), 1, "{log:?}");
        assert_eq!(log[0]["attempt"], 1);
        assert_eq!(log[0]["status"], 200);
        let body = h
            .receiver
            .bodies()
            .into_iter()
            .find(|b| b.contains(&no))
            .unwrap();
        let fields = naive_verify(&body, &m.key, hmac);
        // WeChat may leave sign_type out even for HMAC-SHA256; wxsim does by default.
        assert!(!fields.contains_key("sign_type"));
        let order = h.order_state(&no).await;
        assert_eq!(fields["total_fee"], "1234");
        assert_eq!(
            fields["transaction_id"],
            order["transaction_id"].as_str().unwrap()
        );
        assert_eq!(fields["time_end"].len(), 14);
        assert_eq!(fields["openid"], order["openid"].as_str().unwrap());
        let n = core_verify(&body, &m, 1234, &no);
        assert_eq!(
            Some(n.transaction_id.as_str()),
            order["transaction_id"].as_str()
        );
        assert_eq!(order["notify"]["acknowledged"], true);
    }
}

#[tokio::test]
async fn sign_type_can_be_included() {
    let h = start_with(wxsim::Options {
        time_scale: 0.001,
        notify_sign_type: true,
        ..Default::default()
    })
    .await;
    let m = merchant(HMAC_MCH);
    let no = h.paid_order(&m, 7).await;
    h.wait_deliveries(&no, |l| !l.is_empty()).await;
    let body = h.receiver.bodies().pop().unwrap();
    assert_eq!(
        naive_verify(&body, &m.key, true)["sign_type"],
        "HMAC-SHA256"
    );
    core_verify(&body, &m, 7, &no);
}

#[tokio::test]
async fn retries_follow_wechats_schedule_until_success() {
    // 0.002: 15 s → 30 ms, 30 s → 60 ms, 3 min → 360 ms.
    let scale = 0.002;
    let h = start(scale).await;
    // FAIL, a 500, an HTML page, FAIL again, then the default SUCCESS.
    h.receiver.answer_next([
        (200, fail_xml()),
        (500, "oops".into()),
        (200, "<html>ok</html>".into()),
        (200, fail_xml()),
    ]);
    let no = h.paid_order(&merchant(MD5_MCH), 50).await;
    let log = h
        .wait_deliveries(&no, |l| l.iter().any(|d| d["success"] == true))
        .await;
    let attempts: Vec<u64> = log.iter().map(|d| d["attempt"].as_u64().unwrap()).collect();
    assert_eq!(attempts, [1, 2, 3, 4, 5]);
    let statuses: Vec<Value> = log.iter().map(|d| d["status"].clone()).collect();
    assert_eq!(
        statuses,
        [json!(200), json!(500), json!(200), json!(200), json!(200)]
    );
    let success: Vec<bool> = log
        .iter()
        .map(|d| d["success"].as_bool().unwrap())
        .collect();
    assert_eq!(success, [false, false, false, false, true]);
    // Each wait is at least the scheduled delay (scaled).
    for (i, pair) in log.windows(2).enumerate() {
        let gap = pair[1]["at_ms"].as_i64().unwrap() - pair[0]["at_ms"].as_i64().unwrap();
        let due = (RETRY_SCHEDULE_SECS[i] as f64 * scale * 1000.0) as i64;
        assert!(
            gap >= due,
            "retry {} came after {gap} ms, due after {due} ms",
            i + 1
        );
    }
    assert_eq!(h.order_state(&no).await["notify"]["attempts"], 5);
}

#[tokio::test]
async fn after_fifteen_retries_wechat_gives_up() {
    // The whole 24 h schedule in under a second.
    let h = start(0.00001).await;
    h.receiver.answer_next((0..40).map(|_| (200, fail_xml())));
    let no = h.paid_order(&merchant(MD5_MCH), 1).await;
    for _ in 0..500 {
        if h.order_state(&no).await["notify"]["gave_up"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let order = h.order_state(&no).await;
    assert_eq!(order["notify"]["gave_up"], true, "{order}");
    assert_eq!(order["notify"]["attempts"], 16);
    // The order is paid all the same: orderquery is how a receiver finds out.
    assert_eq!(order["trade_state"], "SUCCESS");
    let (_, v) = h
        .get_json(&format!("/sim/notifications?out_trade_no={no}"))
        .await;
    assert_eq!(v["notifications"].as_array().unwrap().len(), 16);
}

#[tokio::test]
async fn an_unreachable_receiver_is_logged_and_retried() {
    let h = start(0.001).await;
    let m = merchant(MD5_MCH);
    let (openid, _) = h.logged_in_user().await;
    let mut order = h.order("DEAD1", 1, &openid);
    order.notify_url = "http://127.0.0.1:9/notify".into();
    let prepay = h.unified_order(&m, &order).await.unwrap();
    assert_eq!(h.pay(&m, &prepay).await.0, 200);
    let log = h.wait_deliveries("DEAD1", |l| l.len() >= 2).await;
    assert!(log[0]["status"].is_null());
    assert!(
        log[0]["error"].as_str().unwrap().contains("refused"),
        "{log:?}"
    );
}

async fn fault(h: &Harness, f: Value) {
    let (s, v) = h.post_json("/sim/faults", f).await;
    assert_eq!(s, 201, "{v}");
}

#[tokio::test]
async fn duplicate_and_forged_notifies() {
    let h = start(0.001).await;
    let m = merchant(HMAC_MCH);
    fault(&h, json!({"target": "notify", "kind": "duplicate"})).await;
    fault(&h, json!({"target": "notify", "kind": "wrong_sign"})).await;
    fault(&h, json!({"target": "notify", "kind": "wrong_amount"})).await;
    let no = h.paid_order(&m, 300).await;
    let log = h
        .wait_deliveries(&no, |l| l.iter().any(|d| d["kind"] == "duplicate"))
        .await;
    let kinds: Vec<&str> = log.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["wrong_sign", "wrong_amount", "notify", "duplicate"]);
    let bodies = h.receiver.bodies();
    assert_eq!(bodies.len(), 4);
    // The forgery fails the sign; the wrong amount verifies but does not match the order;
    // the genuine notify and its duplicate pass both.
    assert!(notify::parse_notify(bodies[0].as_bytes(), &m.key, m.sign_type).is_err());
    let wrong = notify::parse_notify(bodies[1].as_bytes(), &m.key, m.sign_type).unwrap();
    let expected = ExpectedPayment {
        appid: &m.appid,
        mch_id: &m.mch_id,
        out_trade_no: &no,
        total_fee: Fen::new(300),
    };
    assert!(wrong.check(&expected).is_err());
    core_verify(&bodies[2], &m, 300, &no);
    core_verify(&bodies[3], &m, 300, &no);
    // Faults were used up: the next payment gets one plain notify.
    let next = h.paid_order(&m, 1).await;
    let log = h.wait_deliveries(&next, |l| !l.is_empty()).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(log.len(), 1);
}

#[tokio::test]
async fn a_dropped_notify_is_never_sent_but_the_order_is_paid() {
    let h = start(0.001).await;
    let m = merchant(MD5_MCH);
    fault(&h, json!({"target": "notify", "kind": "drop"})).await;
    let no = h.paid_order(&m, 500).await;
    let log = h.wait_deliveries(&no, |l| !l.is_empty()).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["kind"], "dropped");
    assert!(h.receiver.bodies().is_empty(), "a dropped notify was sent");
    // WeChat still knows it was paid: orderquery is how the reconciler finds out.
    let (status, order) = h.get_json(&format!("/sim/orders/{no}")).await;
    assert_eq!(status, 200, "{order}");
    assert_eq!(order["trade_state"], "SUCCESS", "{order}");
}

#[tokio::test]
async fn out_of_order_notifies() {
    let h = start(0.001).await;
    let m = merchant(MD5_MCH);
    let (openid, _) = h.logged_in_user().await;
    fault(
        &h,
        json!({"target": "notify", "kind": "out_of_order", "out_trade_no": "FIRST", "delay_ms": 300}),
    )
    .await;
    for no in ["FIRST", "SECOND"] {
        let prepay = h.unified_order(&m, &h.order(no, 1, &openid)).await.unwrap();
        assert_eq!(h.pay(&m, &prepay).await.0, 200);
    }
    h.wait_deliveries("FIRST", |l| !l.is_empty()).await;
    let bodies = h.receiver.bodies();
    assert!(
        bodies[0].contains("SECOND") && bodies[1].contains("FIRST"),
        "{bodies:?}"
    );
}

#[tokio::test]
async fn reset_forgets_and_stops_deliveries() {
    let h = start(0.01).await;
    h.receiver.answer_next((0..5).map(|_| (200, fail_xml())));
    let no = h.paid_order(&merchant(MD5_MCH), 1).await;
    h.wait_deliveries(&no, |l| !l.is_empty()).await;
    let (s, _) = h.post_json("/sim/reset", json!({})).await;
    assert_eq!(s, 200);
    let (s, _) = h.get_json(&format!("/sim/orders/{no}")).await;
    assert_eq!(s, 404);
    let before = h.receiver.bodies().len();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        h.receiver.bodies().len(),
        before,
        "a reset stops pending retries"
    );
}
