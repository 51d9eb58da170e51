//! wxsim speaks WeChat Pay APIv3 on the same port, over real HTTP: a merchant signs with
//! the core (native ring), wxsim checks it and signs every answer and notify as WeChat does,
//! and the merchant side here verifies and decrypts them with the core alone (the harness:
//! `common/v3.rs`).

mod common;

use common::v3::*;
use common::{APPID, HMAC_MCH, MD5_MCH};
use serde_json::json;
use wxedge_core::Fen;
use wxedge_core::pay::TradeState as QueryState;
use wxedge_core::v3::api_error::{ApiError, Code};
use wxedge_core::v3::authorization::{self, Request};
use wxedge_core::v3::jsapi;
use wxedge_core::v3::rsa::native::PrivateKey;

#[tokio::test]
async fn a_signed_prepay_gets_a_prepay_id_in_an_answer_signed_with_the_wechat_pay_public_key() {
    let h = start().await;
    let openid = h.user().await;
    let body = h.prepay_body("V3PREPAY1", &openid, 100);
    let a = h.call("POST", jsapi::PREPAY_PATH, &body).await;
    assert_eq!(a.status, 200, "{:?}", a.json());
    assert_eq!(a.header("wechatpay-serial"), Some(KEY_ID));
    assert!(a.header("request-id").is_some());
    let prepay_id = a
        .verify_with(&trusted(false), |v| jsapi::parse_prepay(v).unwrap())
        .unwrap();
    assert!(prepay_id.starts_with("wx"));
    // The same order again: the same prepay_id; other parameters: 403 OUT_TRADE_NO_USED.
    let again = h.call("POST", jsapi::PREPAY_PATH, &body).await;
    assert_eq!(again.json()["prepay_id"], prepay_id.as_str());
    let changed = h.prepay_body("V3PREPAY1", &openid, 101);
    let a = h.call("POST", jsapi::PREPAY_PATH, &changed).await;
    assert_eq!(a.status, 403);
    assert_eq!(a.json()["code"], "OUT_TRADE_NO_USED");
    assert!(
        a.verify_with(&trusted(false), |_| ()).is_ok(),
        "refusals after a good signature are signed too"
    );
    // The order lives in the one store /sim/orders reads.
    let o = h.get_json("/sim/orders/V3PREPAY1").await;
    assert_eq!(
        (o["api"].as_str(), o["prepay_id"].as_str()),
        (Some("v3"), Some(prepay_id.as_str()))
    );
    // A body WeChat's rules refuse: 400 PARAM_ERROR, naming the field.
    let bad = body.replace("\"total\":100", "\"total\":0");
    let a = h.call("POST", jsapi::PREPAY_PATH, &bad).await;
    assert_eq!(
        (a.status, a.json()["code"].as_str()),
        (400, Some("PARAM_ERROR"))
    );
    assert!(
        a.json()["message"]
            .as_str()
            .unwrap()
            .contains("amount.total")
    );
}

#[tokio::test]
async fn a_wrong_signature_gets_401_sign_error_with_the_message_wechat_built() {
    let h = start().await;
    let openid = h.user().await;
    let body = h.prepay_body("V3SIGN01", &openid, 1);
    // Signed with another key: the signature does not verify.
    let other = PrivateKey::from_pem(&keys().rotated).unwrap();
    let a = h
        .call_as("POST", jsapi::PREPAY_PATH, &body, &other, SERIAL, MD5_MCH)
        .await;
    assert_eq!(a.status, 401);
    assert_eq!(
        a.header("wechatpay-signature"),
        None,
        "WeChat signs only accepted requests"
    );
    let e = ApiError::parse(a.status, &a.body);
    assert_eq!(e.code, Code::SignError);
    let v = a.json();
    assert_eq!(v["detail"]["detail"]["issue"], "sign not match");
    assert_eq!(v["detail"]["location"], "authorization");
    let info = e.sign_information().unwrap();
    assert_eq!(
        (info.method.as_str(), info.url.as_str()),
        ("POST", jsapi::PREPAY_PATH)
    );
    // WeChat's message: its four lines whole, the body cut, its whole length in bytes.
    let head_lines: Vec<&str> = info.truncated_sign_message.split('\n').collect();
    assert_eq!(head_lines[0..2], ["POST", jsapi::PREPAY_PATH]);
    assert_eq!(head_lines[4], &body[..8]);
    let auth_len = "POST\n".len()
        + jsapi::PREPAY_PATH.len()
        + 1
        + head_lines[2].len()
        + 1
        + head_lines[3].len()
        + 1;
    assert_eq!(info.sign_message_length as usize, auth_len + body.len() + 1);
    // A GET whose query the signer dropped: WeChat shows the query it saw.
    let path = query_url("V3SIGN01");
    let nonce = "N0NCE";
    let signed_for = Request {
        method: "GET",
        url: "/v3/pay/transactions/out-trade-no/V3SIGN01",
        timestamp: now(),
        nonce_str: nonce,
        body: b"",
    };
    let auth = authorization::authorize(&merchant_key(), MD5_MCH, SERIAL, &signed_for).unwrap();
    let res = h
        .http
        .get(format!("{}{path}", h.base))
        .header("authorization", auth)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    let e = ApiError::parse(401, &res.bytes().await.unwrap());
    let info = e.sign_information().unwrap();
    assert!(
        info.truncated_sign_message
            .starts_with(&format!("GET\n{path}\n"))
    );
    assert!(
        info.truncated_sign_message
            .ends_with(&format!("\n{nonce}\n\n"))
    );
    // The wrong certificate serial, no Authorization, a v2-only merchant: 401 SIGN_ERROR.
    let a = h
        .call_as(
            "POST",
            jsapi::PREPAY_PATH,
            &body,
            &merchant_key(),
            "0123ABCD",
            MD5_MCH,
        )
        .await;
    assert_eq!(
        (a.status, a.json()["message"].as_str()),
        (401, Some("商户证书序列号有误"))
    );
    let res = h
        .http
        .post(format!("{}{}", h.base, jsapi::PREPAY_PATH))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    let a = h
        .call_as(
            "POST",
            jsapi::PREPAY_PATH,
            &body,
            &merchant_key(),
            SERIAL,
            HMAC_MCH,
        )
        .await;
    assert_eq!(
        (a.status, a.json()["code"].as_str()),
        (401, Some("SIGN_ERROR"))
    );
    assert!(
        h.get_json("/sim/orders/V3SIGN01")
            .await
            .get("prepay_id")
            .is_none(),
        "nothing was placed"
    );
}

#[tokio::test]
async fn query_and_close_answer_signed_and_close_ends_the_order() {
    let h = start().await;
    h.prepay("V3CLOSE1", 5).await;
    let trusted = trusted(false);
    let a = h.call("GET", &query_url("V3CLOSE1"), "").await;
    assert_eq!(a.status, 200);
    let q = a
        .verify_with(&trusted, |v| {
            jsapi::parse_query(v, MD5_MCH, APPID, "V3CLOSE1").unwrap()
        })
        .unwrap();
    assert_eq!(
        (q.trade_state, q.total_fee),
        (QueryState::NotPay, Some(Fen::new(5)))
    );
    let (path, body) = jsapi::close_request("V3CLOSE1", MD5_MCH).unwrap();
    let a = h.call("POST", &path, &body).await;
    assert_eq!(a.status, 204);
    assert!(a.body.is_empty());
    a.verify_with(&trusted, |v| jsapi::parse_close(204, v).unwrap())
        .unwrap();
    let a = h.call("GET", &query_url("V3CLOSE1"), "").await;
    let q = a
        .verify_with(&trusted, |v| {
            jsapi::parse_query(v, MD5_MCH, APPID, "V3CLOSE1").unwrap()
        })
        .unwrap();
    assert_eq!(q.trade_state, QueryState::Closed);
    let a = h.call("POST", &path, &body).await;
    assert_eq!(
        (a.status, a.json()["code"].as_str()),
        (400, Some("ORDER_CLOSED"))
    );
    let a = h.call("GET", &query_url("NOSUCH01"), "").await;
    assert_eq!(
        (a.status, a.json()["code"].as_str()),
        (404, Some("ORDER_NOT_EXIST"))
    );
    assert!(a.verify_with(&trusted, |_| ()).is_ok());
    // The one order store says so too.
    let o = h.get_json("/sim/orders/V3CLOSE1").await;
    assert_eq!(o["trade_state"], "CLOSED");
}

#[tokio::test]
async fn a_paid_v3_order_gets_a_v3_notify_the_merchant_verifies_and_decrypts() {
    let h = start().await;
    let prepay_id = h.prepay("V3PAID01", 42).await;
    let (status, v) = h.pay(&prepay_id).await;
    assert_eq!(status, 200, "{v}");
    let seen = h.wait_seen(|s| !s.is_empty()).await;
    assert_eq!(seen[0].serial, KEY_ID);
    assert_eq!(seen[0].outcome, Ok(("V3PAID01".to_owned(), 42)));
    // 204 acknowledged it: one try, logged as a success.
    let log = h.get_json("/sim/notifications?out_trade_no=V3PAID01").await;
    let list = log["notifications"].as_array().unwrap();
    assert_eq!(
        (
            list.len(),
            list[0]["status"].as_u64(),
            list[0]["success"].as_bool()
        ),
        (1, Some(204), Some(true))
    );
    let a = h.call("GET", &query_url("V3PAID01"), "").await;
    let q = a
        .verify_with(&trusted(false), |v| {
            jsapi::parse_query(v, MD5_MCH, APPID, "V3PAID01").unwrap()
        })
        .unwrap();
    assert_eq!(q.trade_state, QueryState::Success);
    assert_eq!(q.transaction_id.as_deref(), v["transaction_id"].as_str());
    // A v2 MD5 paySign does not pay a v3 prepay_id.
    let other = h.prepay("V3PAID02", 1).await;
    let res = h
        .http
        .post(format!("{}/sim/pay", h.base))
        .json(&json!({ "appId": APPID, "timeStamp": "1", "nonceStr": "n", "package": format!("prepay_id={other}"), "signType": "MD5", "paySign": "00" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
}

#[tokio::test]
async fn a_refused_v3_notify_is_retried_until_acknowledged() {
    let h = start().await;
    let prepay_id = h.prepay("V3RETRY1", 1).await;
    // The probe, a stale timestamp and a broken tag each come first; the receiver refuses
    // each (4xx), then the genuine notify is acknowledged.
    for kind in ["signtest", "skewed", "bad_tag"] {
        h.fault(json!({ "target": "notify", "kind": kind, "out_trade_no": "V3RETRY1" }))
            .await;
    }
    h.pay(&prepay_id).await;
    let seen = h.wait_seen(|s| s.len() >= 4).await;
    let outcomes: Vec<_> = seen.iter().map(|s| s.outcome.clone()).collect();
    assert_eq!(
        outcomes,
        [
            Err("V3_SIGN_PROBE".to_owned()),
            Err("V3_TIMESTAMP_SKEW".to_owned()),
            Err("V3_DECRYPT_FAILED".to_owned()),
            Ok(("V3RETRY1".to_owned(), 1)),
        ]
    );
    let log = h.get_json("/sim/notifications?out_trade_no=V3RETRY1").await;
    let kinds: Vec<&str> = log["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["signtest", "skewed", "bad_tag", "notify"]);
}

#[tokio::test]
async fn a_rotated_key_signs_answers_and_notifies_under_a_second_id() {
    let h = start_receiving(true).await;
    h.fault(json!({ "target": "query", "kind": "rotated_key" }))
        .await;
    h.prepay("V3ROTAT1", 3).await;
    let a = h.call("GET", &query_url("V3ROTAT1"), "").await;
    assert_eq!(a.header("wechatpay-serial"), Some(ROTATED_ID));
    assert_eq!(
        a.verify_with(&trusted(false), |_| ()),
        Err("V3_UNKNOWN_SERIAL".to_owned())
    );
    assert!(a.verify_with(&trusted(true), |_| ()).is_ok());
    // The next answer is signed with the usual key again.
    let a = h.call("GET", &query_url("V3ROTAT1"), "").await;
    assert_eq!(a.header("wechatpay-serial"), Some(KEY_ID));
    // A notify: every try under the second id; this receiver holds both keys.
    h.fault(json!({ "target": "notify", "kind": "rotated_key" }))
        .await;
    let prepay_id = h.prepay("V3ROTAT2", 3).await;
    h.pay(&prepay_id).await;
    let seen = h.wait_seen(|s| !s.is_empty()).await;
    assert_eq!(seen[0].serial, ROTATED_ID);
    assert_eq!(seen[0].outcome, Ok(("V3ROTAT2".to_owned(), 3)));
}

#[tokio::test]
async fn transport_and_business_faults_apply_to_the_v3_routes() {
    let h = start().await;
    h.fault(json!({ "target": "jsapi", "kind": "http500" }))
        .await;
    let openid = h.user().await;
    let body = h.prepay_body("V3FAULT1", &openid, 1);
    let a = h.call("POST", jsapi::PREPAY_PATH, &body).await;
    assert_eq!(a.status, 500);
    assert_eq!(a.header("wechatpay-signature"), None);
    h.prepay("V3FAULT1", 1).await;
    h.fault(json!({ "target": "query", "kind": "err_code", "err_code": "FREQUENCY_LIMITED" }))
        .await;
    let a = h.call("GET", &query_url("V3FAULT1"), "").await;
    assert_eq!(
        (a.status, a.json()["code"].as_str()),
        (429, Some("FREQUENCY_LIMITED"))
    );
    assert!(a.verify_with(&trusted(false), |_| ()).is_ok());
    h.fault(json!({ "target": "query", "kind": "trade_state", "trade_state": "USERPAYING" }))
        .await;
    let a = h.call("GET", &query_url("V3FAULT1"), "").await;
    assert_eq!(a.json()["trade_state"], "USERPAYING");
    h.fault(json!({ "target": "close", "kind": "ignored" }))
        .await;
    let (path, close) = jsapi::close_request("V3FAULT1", MD5_MCH).unwrap();
    assert_eq!(h.call("POST", &path, &close).await.status, 204);
    assert_eq!(
        h.get_json("/sim/orders/V3FAULT1").await["trade_state"],
        "NOTPAY"
    );
    h.fault(json!({ "target": "close", "kind": "system_error" }))
        .await;
    let a = h.call("POST", &path, &close).await;
    assert_eq!(
        (a.status, a.json()["code"].as_str()),
        (500, Some("SYSTEM_ERROR"))
    );
}

#[tokio::test]
async fn v3_forgeries_come_before_the_genuine_notify() {
    let h = start().await;
    let prepay_id = h.prepay("V3FORGE1", 7).await;
    for kind in ["wrong_sign", "wrong_amount"] {
        h.fault(json!({ "target": "notify", "kind": kind })).await;
    }
    h.pay(&prepay_id).await;
    let seen = h.wait_seen(|s| s.len() >= 3).await;
    let outcomes: Vec<_> = seen.iter().map(|s| s.outcome.clone()).collect();
    // The forgery's signature covers other bytes; the 1-fen-more notify is genuinely
    // signed (only judging it against the order, as the worker's flow does, refuses it).
    assert_eq!(
        outcomes,
        [
            Err("SIGN_MISMATCH".to_owned()),
            Ok(("V3FORGE1".to_owned(), 8)),
            Ok(("V3FORGE1".to_owned(), 7)),
        ]
    );
}
