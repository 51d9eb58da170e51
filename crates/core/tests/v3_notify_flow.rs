//! One flow, two wire formats: a v3 notify, once verified and decrypted, is the same
//! `Notify` a v2 notify gives, and `flow::notify::decide` answers it the same way.

mod v3_keys;

use wxedge_core::flow::notify::{Expect, Read, Received, decide, read, read_v3};
use wxedge_core::ledger::OrderStatus;
use wxedge_core::notify::{Notify, Outcome, PaidNotice as V2Notice, build_paid_notify as build_v2};
use wxedge_core::order::OrderRow;
use wxedge_core::pay::Merchant;
use wxedge_core::store::{Verdict, Write};
use wxedge_core::v3::aead::ApiV3Key;
use wxedge_core::v3::notify::{self, PaidNotice, build_paid_notify};
use wxedge_core::v3::rsa::RsaSigner;
use wxedge_core::v3::rsa::native::PrivateKey;
use wxedge_core::v3::verify::{Headers, WechatKeys};
use wxedge_core::{ErrorCode, Fen, SignType};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

const APPID: &str = "wx1";
const MCHID: &str = "1900000109";
const KEY_ID: &str = "PUB_KEY_ID_0000000000000024101100397200000006";
const NOW: i64 = 1_767_225_600;
const TX: &str = "4200000001202601010000000001";

/// WeChat's published test key plays WeChat's own key here: any RSA key would do.
fn wechat() -> PrivateKey {
    PrivateKey::from_pem(v3_keys::TEST_KEY_PKCS1).unwrap()
}

fn api_v3_key() -> ApiV3Key {
    ApiV3Key::new("a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb").unwrap()
}

fn v3_body(tx: &str, total: u64) -> String {
    build_paid_notify(
        &api_v3_key(),
        &PaidNotice {
            notify_id: "EV-1",
            appid: APPID,
            mchid: MCHID,
            out_trade_no: "T000001",
            transaction_id: tx,
            total: Fen::new(total),
            openid: "o1",
            success_time: "2026-01-01T08:00:00+08:00",
            nonce: "0123456789ab",
        },
    )
    .unwrap()
}

/// Signs a body as WeChat does and verifies + decrypts it as the shell would.
fn v3_notify(body: &str) -> Notify {
    let ts = NOW.to_string();
    let message = format!("{ts}\nnonce-1\n{body}\n");
    let signature = STANDARD.encode(wechat().sign(message.as_bytes()).unwrap());
    let keys = WechatKeys::new()
        .with_public_key(KEY_ID, wechat().public_key())
        .unwrap();
    let headers = Headers {
        timestamp: Some(&ts),
        nonce: Some("nonce-1"),
        signature: Some(&signature),
        serial: Some(KEY_ID),
    };
    let verified = keys.verify(&headers, body.as_bytes(), NOW + 10).unwrap();
    notify::parse_notify(&verified, &api_v3_key()).unwrap()
}

fn v2_notify(tx: &str, total: u64) -> Notify {
    let m = Merchant {
        appid: APPID.into(),
        mch_id: MCHID.into(),
        key: "k".repeat(32),
        sign_type: SignType::HmacSha256,
    };
    let body = build_v2(
        &m,
        &V2Notice {
            out_trade_no: "T000001",
            transaction_id: tx,
            total_fee: Fen::new(total),
            openid: "o1",
            time_end: "20260101080000",
            nonce_str: "n",
            include_sign_type: false,
        },
    )
    .unwrap();
    let r = Received {
        body: body.as_bytes(),
        remote_ip: None,
        now_ms: 1,
    };
    match read(&r, &m.key, m.sign_type) {
        Read::Verified(n) => *n,
        Read::Unverified(d) | Read::Refused(d) => panic!("{d:?}"),
        Read::Refund(n) => panic!("{n:?}"),
    }
}

fn order(status: OrderStatus, tx: Option<&str>) -> OrderRow {
    OrderRow {
        out_trade_no: "T000001".into(),
        openid: "o1".into(),
        merchant_id: "default".into(),
        total_fee: Fen::new(100),
        body: "b".into(),
        spbill_create_ip: "1.2.3.4".into(),
        status,
        version: 3,
        prepay_id: None,
        prepay_ms: None,
        transaction_id: tx.map(Into::into),
        paid_ms: tx.map(|_| 1),
        paid_via: None,
        failure: Some("closed by the reconciler".into()),
        withdrawal_id: None,
        created_ms: 0,
        updated_ms: 0,
        next_check_ms: None,
        checks: 0,
        attention: None,
        attention_note: None,
        reconcile_note: None,
        refunded_fen: Fen::ZERO,
    }
}

/// What a decision does, without the stored body (which differs by format).
fn outcome(n: &Notify, row: Option<&OrderRow>) -> (Vec<String>, Verdict, u16) {
    let r = Received {
        body: b"{}",
        remote_ip: None,
        now_ms: 7,
    };
    let d = decide(
        n,
        row,
        Expect {
            appid: APPID,
            mch_id: MCHID,
        },
        &r,
    );
    let mut verdict = None;
    let mut orders = Vec::new();
    for w in &d.writes {
        match w {
            Write::Notification(rec) => verdict = Some(rec.verdict),
            other => orders.push(format!("{other:?}")),
        }
    }
    (orders, verdict.unwrap(), d.reply.status)
}

#[test]
fn the_v3_notify_is_the_v2_notify() {
    let v3 = v3_notify(&v3_body(TX, 100));
    let v2 = v2_notify(TX, 100);
    for (a, b) in [
        (&v3.appid, &v2.appid),
        (&v3.mch_id, &v2.mch_id),
        (&v3.out_trade_no, &v2.out_trade_no),
        (&v3.transaction_id, &v2.transaction_id),
        (&v3.openid, &v2.openid),
        (&v3.time_end, &v2.time_end),
    ] {
        assert_eq!(a, b);
    }
    assert_eq!((v3.total_fee, &v3.outcome), (v2.total_fee, &Outcome::Paid));
    assert_eq!(v3.params.get("notify_id").map(String::as_str), Some("EV-1"));
}

#[test]
fn decide_judges_both_formats_alike() {
    let rows = [
        Some(order(OrderStatus::Prepaid, None)),
        Some(order(OrderStatus::Created, None)),
        Some(order(OrderStatus::Closed, None)),
        Some(order(OrderStatus::Paid, Some(TX))),
        Some(order(
            OrderStatus::Paid,
            Some("4200000001202601010000000002"),
        )),
        None,
    ];
    for total in [100, 99] {
        let (v3, v2) = (v3_notify(&v3_body(TX, total)), v2_notify(TX, total));
        for row in &rows {
            assert_eq!(
                outcome(&v3, row.as_ref()),
                outcome(&v2, row.as_ref()),
                "{row:?} {total}"
            );
        }
    }
    // And the verdicts are the ones a user would expect.
    let v3 = v3_notify(&v3_body(TX, 100));
    assert_eq!(outcome(&v3, rows[0].as_ref()).1, Verdict::Credited);
    assert_eq!(outcome(&v3, rows[3].as_ref()).1, Verdict::Duplicate);
    let short = v3_notify(&v3_body(TX, 99));
    assert_eq!(outcome(&short, rows[0].as_ref()).1, Verdict::Rejected);
}

#[test]
fn the_flow_reply_becomes_a_v3_reply() {
    let r = Received {
        body: b"{}",
        remote_ip: None,
        now_ms: 7,
    };
    let v3 = v3_notify(&v3_body(TX, 100));
    let ok = decide(
        &v3,
        Some(&order(OrderStatus::Prepaid, None)),
        Expect {
            appid: APPID,
            mch_id: MCHID,
        },
        &r,
    );
    assert_eq!(notify::from_flow(&ok.reply), notify::reply_success());
    let unknown = decide(
        &v3,
        None,
        Expect {
            appid: APPID,
            mch_id: MCHID,
        },
        &r,
    );
    let reply = notify::from_flow(&unknown.reply);
    assert_eq!(reply.status, 404);
    assert!(reply.body.starts_with(r#"{"code":"FAIL","message":"#));
}

#[test]
fn a_bad_tag_or_wrong_aad_is_refused_after_the_signature() {
    let body = v3_body(TX, 100);
    let mut envelope: serde_json::Value = serde_json::from_str(&body).unwrap();
    envelope["resource"]["associated_data"] = "certificate".into();
    let tampered = envelope.to_string();
    let ts = NOW.to_string();
    let message = format!("{ts}\nnonce-1\n{tampered}\n");
    let signature = STANDARD.encode(wechat().sign(message.as_bytes()).unwrap());
    let keys = WechatKeys::new()
        .with_public_key(KEY_ID, wechat().public_key())
        .unwrap();
    let headers = Headers {
        timestamp: Some(&ts),
        nonce: Some("nonce-1"),
        signature: Some(&signature),
        serial: Some(KEY_ID),
    };
    let verified = keys.verify(&headers, tampered.as_bytes(), NOW).unwrap();
    let e = notify::parse_notify(&verified, &api_v3_key()).unwrap_err();
    assert_eq!(e.code(), "V3_DECRYPT_FAILED");
}

/// `read_v3` as the worker runs it: the two-step check, the RSA verdict, then the read.
fn read_signed(body: &str, sign_over: &str, now: i64) -> Read {
    let ts = NOW.to_string();
    let message = format!("{ts}\nnonce-1\n{sign_over}\n");
    let signature = STANDARD.encode(wechat().sign(message.as_bytes()).unwrap());
    let keys = WechatKeys::new()
        .with_public_key(KEY_ID, wechat().public_key())
        .unwrap();
    let headers = Headers {
        timestamp: Some(&ts),
        nonce: Some("nonce-1"),
        signature: Some(&signature),
        serial: Some(KEY_ID),
    };
    let r = Received {
        body: body.as_bytes(),
        remote_ip: Some("1.2.3.4"),
        now_ms: 7,
    };
    let checked = keys.check(&headers, body.as_bytes(), now);
    let verified = match checked {
        Ok(p) => {
            use wxedge_core::v3::rsa::RsaVerifier;
            let valid = p.key.verify(&p.message, &p.signature);
            p.conclude(valid)
        }
        Err(e) => Err(e),
    };
    read_v3(&r, verified.as_ref().copied(), &api_v3_key())
}

fn notification(
    d: &wxedge_core::flow::Decision<wxedge_core::flow::notify::Reply>,
) -> &wxedge_core::store::NotificationRecord {
    match &d.writes[..] {
        [Write::Notification(n)] => n,
        other => panic!("{other:?}"),
    }
}

#[test]
fn read_v3_believes_only_the_bytes_that_were_signed() {
    let body = v3_body(TX, 100);
    assert!(matches!(read_signed(&body, &body, NOW), Read::Verified(_)));
    // Re-serialized after signing (the peers' bug): the bytes differ, so nothing verifies.
    let reserialized =
        serde_json::to_string_pretty(&serde_json::from_str::<serde_json::Value>(&body).unwrap())
            .unwrap();
    for (read, code) in [
        (read_signed(&reserialized, &body, NOW), "SIGN_MISMATCH"),
        (read_signed(&body, &body, NOW + 301), "V3_TIMESTAMP_SKEW"),
        (read_signed(&body, &body, NOW - 301), "V3_TIMESTAMP_SKEW"),
    ] {
        let Read::Unverified(d) = read else {
            panic!("{code}: believed")
        };
        let n = notification(&d);
        assert!(!n.verified && n.reason.starts_with(code), "{}", n.reason);
        assert_eq!(notify::from_flow(&d.reply).status, 401);
        assert!(n.body.len() <= wxedge_core::flow::notify::REJECTED_PREFIX_BYTES);
    }
    // Signed, but the resource does not open: kept whole, 500 so WeChat retries.
    let mut envelope: serde_json::Value = serde_json::from_str(&body).unwrap();
    envelope["resource"]["associated_data"] = "certificate".into();
    let tampered = envelope.to_string();
    let Read::Refused(d) = read_signed(&tampered, &tampered, NOW) else {
        panic!("a bad AAD was not refused")
    };
    let n = notification(&d);
    assert!(n.verified && n.body == tampered && n.reason.starts_with("V3_DECRYPT_FAILED"));
    let reply = notify::from_flow(&d.reply);
    assert_eq!(reply.status, 500);
    assert!(reply.body.contains("FAIL"));
}

#[test]
fn a_notify_in_the_other_format_is_named_and_changes_nothing() {
    use wxedge_core::flow::notify::{Format, unreadable};
    assert_eq!(Format::of(b"  <xml></xml>"), Some(Format::V2Xml));
    assert_eq!(Format::of(b"\n{}"), Some(Format::V3Json));
    assert_eq!(Format::of(b"hello"), None);
    let r = Received {
        body: b"<xml><return_code>SUCCESS</return_code></xml>",
        remote_ip: None,
        now_ms: 1,
    };
    let Read::Unverified(d) = unreadable(&r, Format::V3Json) else {
        panic!()
    };
    let n = notification(&d);
    assert!(n.reason.starts_with("WRONG_NOTIFY_FORMAT"), "{}", n.reason);
    assert_eq!(d.reply.status, 400);
}

mod outcomes {
    use super::*;
    use wxedge_core::pay::{PayError, Said};
    use wxedge_core::v3::jsapi::{Answer, close_outcome, prepay_outcome, query_outcome};
    use wxedge_core::v3::verify::sign;

    /// Close's answer as WeChat signs it (or unsigned), judged as the worker does.
    fn answered(status: u16, body: &str, signed: bool) -> Result<(), PayError> {
        let keys = WechatKeys::new()
            .with_public_key(KEY_ID, wechat().public_key())
            .unwrap();
        let h = sign(&wechat(), KEY_ID, NOW, "n-1", body.as_bytes()).unwrap();
        let pairs = h.pairs();
        let get = |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
        let headers = if signed {
            Headers::from_lookup(get)
        } else {
            Headers::default()
        };
        let verified = keys.verify(&headers, body.as_bytes(), NOW);
        close_outcome(&Answer {
            status,
            body: body.as_bytes(),
            verified: verified.as_ref().copied(),
        })
    }

    #[test]
    fn an_ending_refusal_counts_only_when_signed() {
        let closed = r#"{"code":"ORDER_CLOSED","message":"订单已关闭"}"#;
        let signed = answered(400, closed, true).unwrap_err();
        assert_eq!(signed.said(), Some(Said::Closed));
        let forged = answered(400, closed, false).unwrap_err();
        assert!(matches!(forged, PayError::V3Untrusted { .. }), "{forged:?}");
        assert_eq!(forged.said(), None);
        // A refusal that ends nothing may be unsigned (SIGN_ERROR is).
        let busy = answered(500, r#"{"code":"SYSTEM_ERROR","message":"x"}"#, false).unwrap_err();
        assert_eq!(busy.said(), Some(Said::Busy));
        assert!(answered(204, "", true).is_ok());
        assert!(matches!(
            answered(204, "", false),
            Err(PayError::V3Untrusted { .. })
        ));
    }

    #[test]
    fn prepay_and_query_answers_read_only_when_verified() {
        let keys = WechatKeys::new()
            .with_public_key(KEY_ID, wechat().public_key())
            .unwrap();
        let body = r#"{"prepay_id":"wx201410272009395522657a690389285100"}"#;
        let h = sign(&wechat(), KEY_ID, NOW, "n-2", body.as_bytes()).unwrap();
        let pairs = h.pairs();
        let get = |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
        let v = keys.verify(&Headers::from_lookup(get), body.as_bytes(), NOW);
        let answer = Answer {
            status: 200,
            body: body.as_bytes(),
            verified: v.as_ref().copied(),
        };
        assert_eq!(
            prepay_outcome(&answer).unwrap().prepay_id,
            "wx201410272009395522657a690389285100"
        );
        let missing = r#"{"code":"ORDER_NOT_EXIST","message":"订单不存在"}"#;
        let h = sign(&wechat(), KEY_ID, NOW, "n-3", missing.as_bytes()).unwrap();
        let pairs = h.pairs();
        let get = |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
        let v = keys.verify(&Headers::from_lookup(get), missing.as_bytes(), NOW);
        let answer = Answer {
            status: 404,
            body: missing.as_bytes(),
            verified: v.as_ref().copied(),
        };
        let e = query_outcome(&answer, MCHID, APPID, "T000001").unwrap_err();
        assert_eq!(e.said(), Some(Said::NotFound));
        assert_eq!(e.err_code(), Some("ORDER_NOT_EXIST"));
    }
}

#[test]
fn a_refund_notify_reads_as_a_refund() {
    use wxedge_core::v3::refund::{RefundState, WechatRefundStatus, build_notify};
    let s = RefundState {
        out_refund_no: "R0000001".into(),
        out_trade_no: "T000001".into(),
        refund_id: "50300".into(),
        transaction_id: TX.into(),
        status: WechatRefundStatus::Closed,
        refund: Fen::new(30),
        total: Fen::new(100),
        success_time: None,
        user_received_account: None,
    };
    let body = build_notify(
        &api_v3_key(),
        "EV-9",
        MCHID,
        &s,
        "2026-12-02T10:00:00+08:00",
        "0123456789ab",
    )
    .unwrap();
    let Read::Refund(n) = read_signed(&body, &body, NOW) else {
        panic!("not read as a refund")
    };
    assert_eq!(
        (n.mchid.as_str(), n.state.status, n.state.refund),
        (MCHID, WechatRefundStatus::Closed, Fen::new(30))
    );
    // Its resource under another key is refused like a payment's.
    let other = ApiV3Key::new("b7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb").unwrap();
    let forged = build_notify(&other, "EV-9", MCHID, &s, "t", "0123456789ab").unwrap();
    assert!(matches!(
        read_signed(&forged, &forged, NOW),
        Read::Refused(_)
    ));
}

#[test]
fn a_v2_refund_notify_reads_as_a_refund_and_a_forged_one_is_refused() {
    use wxedge_core::refund_notify;
    use wxedge_core::v3::refund::{RefundState, WechatRefundStatus};
    let key = "k".repeat(32);
    let s = RefundState {
        out_refund_no: "HAND0001".into(),
        out_trade_no: "T000001".into(),
        refund_id: "503".into(),
        transaction_id: TX.into(),
        status: WechatRefundStatus::Success,
        refund: Fen::new(10),
        total: Fen::new(100),
        success_time: Some("2026-12-02T10:00:00+08:00".into()),
        user_received_account: None,
    };
    let body = refund_notify::build(APPID, MCHID, &key, &s, "n", "VENDOR_PLATFORM").unwrap();
    let r = Received {
        body: body.as_bytes(),
        remote_ip: None,
        now_ms: 1,
    };
    let Read::Refund(n) = read(&r, &key, SignType::Md5) else {
        panic!("not read as a refund")
    };
    assert_eq!((n.mchid.as_str(), n.state.refund), (MCHID, Fen::new(10)));
    let forged = refund_notify::build(APPID, MCHID, &"x".repeat(32), &s, "n", "API").unwrap();
    let r = Received {
        body: forged.as_bytes(),
        remote_ip: None,
        now_ms: 1,
    };
    let Read::Unverified(d) = read(&r, &key, SignType::Md5) else {
        panic!("a forged refund notify was believed")
    };
    assert_eq!(d.reply.status, 400);
    assert!(
        d.reply.body.contains("REQ_INFO_DECRYPT_FAILED"),
        "{}",
        d.reply.body
    );
}
