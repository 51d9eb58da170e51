//! unifiedorder, orderquery, closeorder and the app's payment, over HTTP, judged by the
//! core's client-side rules (the same the worker uses).

mod common;

use common::*;
use serde_json::json;
use wxedge_core::pay::{PayError, TradeState};
use wxedge_core::{Params, SignType, random, sign, xml};

fn refusal_code(answer: &str) -> String {
    let p = params(answer);
    assert_eq!(p["return_code"], "FAIL", "{answer}");
    p["err_code"].clone()
}

#[tokio::test]
async fn unifiedorder_in_md5_and_hmac_and_reentry() {
    let h = start(1.0).await;
    let (openid, _) = h.logged_in_user().await;
    for mch in [MD5_MCH, HMAC_MCH] {
        let m = merchant(mch);
        let no = random::out_trade_no().unwrap();
        let order = h.order(&no, 100, &openid);
        let first = h.unified_order(&m, &order).await.unwrap();
        assert!(first.starts_with("wx") && first.len() == 36, "{first}");
        // Same out_trade_no, same parameters (new nonce): the same prepay_id.
        assert_eq!(h.unified_order(&m, &order).await.unwrap(), first);
        // Same out_trade_no, another amount: INVALID_REQUEST.
        let e = h
            .unified_order(&m, &h.order(&no, 101, &openid))
            .await
            .unwrap_err();
        assert_eq!(e.err_code(), Some("INVALID_REQUEST"), "{e}");
        // Two hours later the prepay_id is renewed for the same order.
        h.post_json("/sim/clock", json!({"advance_secs": 7201}))
            .await;
        let renewed = h.unified_order(&m, &order).await.unwrap();
        assert_ne!(renewed, first);
        assert_eq!(h.order_state(&no).await["prepay_id"], renewed.as_str());
    }
}

#[tokio::test]
async fn a_request_signed_with_the_wrong_key_gets_signerror() {
    let h = start(1.0).await;
    let (openid, _) = h.logged_in_user().await;
    let mut m = merchant(MD5_MCH);
    m.key = "wrongkey000000000000000000000000".into();
    let body = m
        .unified_order_request(&h.order("A1", 1, &openid), "n1")
        .unwrap();
    let (status, answer) = h.post_xml("/pay/unifiedorder", body).await;
    assert_eq!(status, 200);
    assert_eq!(refusal_code(&answer), "SIGNERROR");
    assert_eq!(params(&answer)["return_msg"], "签名错误");
    // The client rules read it as WeChat's refusal.
    assert!(matches!(
        m.parse_unified_order_response(answer.as_bytes()),
        Err(PayError::Communication { return_msg }) if return_msg == "签名错误"
    ));
    // An HMAC request verified as MD5 would be the classic mistake: WeChat uses the
    // request's own sign_type, so a correct HMAC request passes.
    let hm = merchant(HMAC_MCH);
    assert!(
        h.unified_order(&hm, &h.order("A2", 1, &openid))
            .await
            .is_ok()
    );
    // Nothing was created by the refused request.
    let (s, _) = h.get_json("/sim/orders/A1").await;
    assert_eq!(s, 404);
}

/// Signs arbitrary params for a merchant (bypassing the client's own field checks).
fn signed(mch: &str, mut p: Params) -> String {
    let m = merchant(mch);
    let st = SignType::of_params(&p).unwrap_or_default();
    sign::sign_into(&mut p, &m.key, st);
    xml::to_xml(&p).unwrap()
}

fn base_params(openid: &str, notify_url: &str) -> Params {
    [
        ("appid", APPID),
        ("mch_id", MD5_MCH),
        ("nonce_str", "n0"),
        ("body", "goods"),
        ("out_trade_no", "P1"),
        ("total_fee", "1"),
        ("spbill_create_ip", "127.0.0.1"),
        ("notify_url", notify_url),
        ("trade_type", "JSAPI"),
        ("openid", openid),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

#[tokio::test]
async fn unifiedorder_bad_requests() {
    let h = start(1.0).await;
    let (openid, _) = h.logged_in_user().await;
    let good = base_params(&openid, &h.receiver.url);
    let with = |k: &str, v: &str| {
        let mut p = good.clone();
        p.insert(k.into(), v.into());
        p
    };
    // Refused before anything is read: unsigned FAIL answers.
    for (body, code) in [
        (String::new(), "POST_DATA_EMPTY"),
        ("<xml><a>1</a>".to_owned(), "XML_FORMAT_ERROR"),
        (
            "<!DOCTYPE x [<!ENTITY e \"boom\">]><xml><a>&e;</a></xml>".to_owned(),
            "XML_FORMAT_ERROR",
        ),
        (
            format!("<xml><body>{}</body></xml>", "x".repeat(100_000)),
            "XML_FORMAT_ERROR",
        ),
        (xml::to_xml(&good).unwrap(), "LACK_PARAMS"),
        (signed(MD5_MCH, with("mch_id", "42")), "MCHID_NOT_EXIST"),
        (
            signed(MD5_MCH, with("appid", OTHER_APPID)),
            "APPID_MCHID_NOT_MATCH",
        ),
        (signed(MD5_MCH, with("sign_type", "SHA1")), "PARAM_ERROR"),
    ] {
        let (status, answer) = h.post_xml("/pay/unifiedorder", body).await;
        assert_eq!(status, 200);
        assert_eq!(refusal_code(&answer), code, "{answer}");
    }
    // Read and verified, but the fields break WeChat's limits: PARAM_ERROR, signed, with
    // every problem named.
    let m = merchant(MD5_MCH);
    let mut bad = with("body", &"长".repeat(50));
    bad.insert("total_fee".into(), "0".into());
    let (_, answer) = h.post_xml("/pay/unifiedorder", signed(MD5_MCH, bad)).await;
    let e = m.judge_answer(answer.as_bytes()).unwrap_err();
    assert_eq!(e.err_code(), Some("PARAM_ERROR"));
    let des = params(&answer)["err_code_des"].clone();
    assert!(des.contains("body") && des.contains("total_fee"), "{des}");
    // An openid that is no user of the app.
    let (_, answer) = h
        .post_xml(
            "/pay/unifiedorder",
            signed(MD5_MCH, with("openid", "oStranger")),
        )
        .await;
    assert_eq!(
        m.judge_answer(answer.as_bytes()).unwrap_err().err_code(),
        Some("PARAM_ERROR")
    );
    // Wrong method.
    let res = h
        .http
        .get(format!("{}/pay/unifiedorder", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
}

#[tokio::test]
async fn query_pay_close_lifecycle() {
    let h = start(1.0).await;
    let m = merchant(HMAC_MCH);
    let (openid, _) = h.logged_in_user().await;
    let query = |no: String| {
        let (h, m) = (&h, &m);
        async move {
            let body = m.order_query_request(&no, "q").unwrap();
            let (_, answer) = h.post_xml("/pay/orderquery", body).await;
            m.parse_order_query_response(answer.as_bytes())
        }
    };
    let close = |no: String| {
        let (h, m) = (&h, &m);
        async move {
            let body = m.close_order_request(&no, "c").unwrap();
            let (_, answer) = h.post_xml("/pay/closeorder", body).await;
            m.parse_close_order_response(answer.as_bytes())
        }
    };
    assert_eq!(
        query("NOPE".into()).await.unwrap_err().err_code(),
        Some("ORDERNOTEXIST")
    );

    // Paid: orderquery says SUCCESS with the amount; close says ORDERPAID.
    let no = random::out_trade_no().unwrap();
    let prepay = h
        .unified_order(&m, &h.order(&no, 888, &openid))
        .await
        .unwrap();
    assert_eq!(
        query(no.clone()).await.unwrap().trade_state,
        TradeState::NotPay
    );
    let (s, v) = h.pay(&m, &prepay).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["errMsg"], "requestPayment:ok");
    let q = query(no.clone()).await.unwrap();
    assert_eq!(q.trade_state, TradeState::Success);
    assert_eq!(q.total_fee.map(|f| f.get()), Some(888));
    assert_eq!(q.transaction_id.as_deref(), v["transaction_id"].as_str());
    assert_eq!(q.transaction_id.as_ref().map(String::len), Some(28));
    assert_eq!(
        close(no.clone()).await.unwrap_err().err_code(),
        Some("ORDERPAID")
    );
    let (s, v) = h.pay(&m, &prepay).await;
    assert_eq!(
        (s, v["errMsg"].as_str()),
        (409, Some("requestPayment:fail 该订单已支付"))
    );
    assert_eq!(
        h.unified_order(&m, &h.order(&no, 888, &openid))
            .await
            .unwrap_err()
            .err_code(),
        Some("ORDERPAID")
    );

    // Unpaid and closed: closed once, ORDERCLOSED after; it can no longer be paid.
    let no = random::out_trade_no().unwrap();
    let prepay = h
        .unified_order(&m, &h.order(&no, 5, &openid))
        .await
        .unwrap();
    close(no.clone()).await.unwrap();
    assert_eq!(
        query(no.clone()).await.unwrap().trade_state,
        TradeState::Closed
    );
    assert_eq!(
        close(no.clone()).await.unwrap_err().err_code(),
        Some("ORDERCLOSED")
    );
    let (s, _) = h.pay(&m, &prepay).await;
    assert_eq!(s, 409);
    assert_eq!(
        h.unified_order(&m, &h.order(&no, 5, &openid))
            .await
            .unwrap_err()
            .err_code(),
        Some("ORDERCLOSED")
    );
}

#[tokio::test]
async fn the_app_checks_pay_sign_and_prepay_life() {
    let h = start(1.0).await;
    let m = merchant(MD5_MCH);
    let (openid, _) = h.logged_in_user().await;
    let no = random::out_trade_no().unwrap();
    let prepay = h
        .unified_order(&m, &h.order(&no, 3, &openid))
        .await
        .unwrap();
    let good = serde_json::to_value(m.payment_params(&prepay, 1_795_000_000, "n")).unwrap();
    let tamper = |k: &str, v: serde_json::Value| {
        let mut p = good.clone();
        p[k] = v;
        p
    };
    // The unifiedorder sign is no paySign; a wrong key, a changed field: all refused.
    let mut wrong_key = m.clone();
    wrong_key.key = "x".repeat(32);
    for (body, status) in [
        (tamper("paySign", json!("0".repeat(32))), 400),
        (tamper("nonceStr", json!("other")), 400),
        (tamper("timeStamp", json!(1795000000)), 400),
        (tamper("package", json!("prepay_id=wx-unknown")), 404),
        (
            serde_json::to_value(wrong_key.payment_params(&prepay, 1, "n")).unwrap(),
            400,
        ),
        (tamper("openid", json!("oSomeoneElse")), 403),
        (tamper("cancel", json!(true)), 400),
    ] {
        let (s, v) = h.post_json("/sim/pay", body.clone()).await;
        assert_eq!(s, status, "{body}: {v}");
        assert!(
            v["errMsg"]
                .as_str()
                .unwrap()
                .starts_with("requestPayment:fail"),
            "{v}"
        );
    }
    assert_eq!(h.order_state(&no).await["trade_state"], "NOTPAY");

    // Balance short once: the order stays unpaid and can be paid afterwards.
    let (s, _) = h
        .post_json(
            "/sim/faults",
            json!({"target": "pay", "kind": "not_enough", "out_trade_no": no}),
        )
        .await;
    assert_eq!(s, 201);
    let (s, v) = h.post_json("/sim/pay", good.clone()).await;
    assert_eq!(s, 402, "{v}");
    assert_eq!(h.order_state(&no).await["trade_state"], "NOTPAY");

    // Two hours on, the prepay_id is dead.
    h.post_json("/sim/clock", json!({"advance_secs": 7200}))
        .await;
    let (s, v) = h.post_json("/sim/pay", good).await;
    assert_eq!(s, 400);
    assert!(v["errMsg"].as_str().unwrap().contains("expired"), "{v}");
}

#[tokio::test]
async fn a_double_tap_pays_once() {
    let h = start(1.0).await;
    let m = merchant(MD5_MCH);
    let (openid, _) = h.logged_in_user().await;
    let no = random::out_trade_no().unwrap();
    let prepay = h
        .unified_order(&m, &h.order(&no, 10, &openid))
        .await
        .unwrap();
    let mut taps = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (h, m, prepay) = (h.clone(), m.clone(), prepay.clone());
        taps.spawn(async move { h.pay(&m, &prepay).await });
    }
    let results: Vec<(u16, serde_json::Value)> = taps.join_all().await;
    let ok = results.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(ok, 1, "{results:?}");
    assert!(results.iter().all(|(s, _)| *s == 200 || *s == 409));
}

#[tokio::test]
async fn pay_endpoint_faults() {
    let h = start(1.0).await;
    let m = merchant(MD5_MCH);
    let (openid, _) = h.logged_in_user().await;
    for f in [
        json!({"target": "unifiedorder", "kind": "system_error"}),
        json!({"target": "unifiedorder", "kind": "http500"}),
        json!({"target": "unifiedorder", "kind": "timeout", "delay_ms": 50}),
    ] {
        let (s, v) = h.post_json("/sim/faults", f).await;
        assert_eq!(s, 201, "{v}");
    }
    let (_, v) = h.get_json("/sim/faults").await;
    assert_eq!(v["faults"].as_array().unwrap().len(), 3);
    // DELETE drops them all; put them back.
    let res = h
        .http
        .delete(format!("{}/sim/faults", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<serde_json::Value>().await.unwrap()["dropped"], 3);
    let (_, v) = h.get_json("/sim/faults").await;
    assert!(v["faults"].as_array().unwrap().is_empty());
    for f in [
        json!({"target": "unifiedorder", "kind": "system_error"}),
        json!({"target": "unifiedorder", "kind": "http500"}),
        json!({"target": "unifiedorder", "kind": "timeout", "delay_ms": 50}),
    ] {
        assert_eq!(h.post_json("/sim/faults", f).await.0, 201);
    }
    let no = random::out_trade_no().unwrap();
    let order = h.order(&no, 1, &openid);
    let e = h.unified_order(&m, &order).await.unwrap_err();
    assert_eq!(e.err_code(), Some("SYSTEMERROR"));
    assert!(e.is_transient());
    let body = m.unified_order_request(&order, "n").unwrap();
    assert_eq!(h.post_xml("/pay/unifiedorder", body.clone()).await.0, 500);
    assert_eq!(h.post_xml("/pay/unifiedorder", body).await.0, 504);
    // Faults spent; the same order now goes through, and was never half-created.
    assert!(h.unified_order(&m, &order).await.is_ok());
}
