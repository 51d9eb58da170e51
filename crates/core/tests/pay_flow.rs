//! The pay flow as a backend lives it: unifiedorder out, answer in, wx.requestPayment
//! params out, notify in, orderquery/closeorder for the reconciler.

use wxedge_core::notify::{
    ExpectedPayment, NotifyError, Outcome, PaidNotice, build_paid_notify, parse_notify, reply_fail,
    reply_success,
};
use wxedge_core::pay::{
    Merchant, PayError, TradeState, TradeType, UnifiedOrder, validate_unified_order,
    verify_payment_params,
};
use wxedge_core::sign::{self, SignError, SignType};
use wxedge_core::xml::{parse_xml, to_xml};
use wxedge_core::{ErrorCode, Fen, Params};

fn merchant(t: SignType) -> Merchant {
    Merchant {
        appid: "wxapp0000000001".into(),
        mch_id: "1900000109".into(),
        key: "0123456789abcdef0123456789abcdef".into(),
        sign_type: t,
    }
}

fn order() -> UnifiedOrder {
    UnifiedOrder {
        body: "老男孩学费".into(),
        out_trade_no: "20261125abcXYZ_-|*".into(),
        total_fee: Fen::new(1),
        spbill_create_ip: "203.0.113.7".into(),
        notify_url: "https://pay.example.com/notify/".into(),
        trade_type: TradeType::Jsapi,
        openid: Some("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o".into()),
        attach: None,
        time_expire: None,
    }
}

fn p(pairs: &[(&str, &str)]) -> Params {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// What WeChat answers, signed with `m`'s key.
fn answer(m: &Merchant, mut fields: Params) -> Vec<u8> {
    fields
        .entry("return_code".into())
        .or_insert_with(|| "SUCCESS".into());
    fields
        .entry("appid".into())
        .or_insert_with(|| m.appid.clone());
    fields
        .entry("mch_id".into())
        .or_insert_with(|| m.mch_id.clone());
    fields.insert(
        "nonce_str".into(),
        "5K8264ILTKCH16CQ2502SI8ZNMTM67VS".into(),
    );
    m.signed_xml(fields).unwrap().into_bytes()
}

#[test]
fn unifiedorder_request_is_signed_complete_xml() {
    for t in [SignType::Md5, SignType::HmacSha256] {
        let m = merchant(t);
        let xml = m.unified_order_request(&order(), "nonce123").unwrap();
        let sent = parse_xml(xml.as_bytes()).unwrap();
        assert_eq!(sign::verify(&sent, &m.key, t), Ok(()));
        assert_eq!(sent["sign_type"], t.as_str());
        assert_eq!(sent["total_fee"], "1");
        assert_eq!(sent["trade_type"], "JSAPI");
        assert_eq!(sent["body"], "老男孩学费");
        assert!(validate_unified_order(&sent).is_empty());
    }
}

#[test]
fn unifiedorder_problems_are_all_reported_at_once() {
    let mut o = order();
    o.body = "長".repeat(43); // 129 bytes
    o.out_trade_no = "has space".into();
    o.total_fee = Fen::ZERO;
    o.spbill_create_ip = "localhost".into();
    o.notify_url = "https://x.example.com/notify?order=1".into();
    o.openid = None;
    let err = merchant(SignType::Md5)
        .unified_order_request(&o, &"n".repeat(33))
        .unwrap_err();
    let PayError::Invalid(problems) = &err else {
        panic!("{err:?}")
    };
    let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
    for f in [
        "body",
        "out_trade_no",
        "total_fee",
        "spbill_create_ip",
        "notify_url",
        "openid",
        "nonce_str",
    ] {
        assert!(fields.contains(&f), "{f} missing from {fields:?}");
    }
    assert_eq!(err.code(), "INVALID_PARAMS");
    assert!(
        err.to_string()
            .contains("body: is 129 bytes, at most 128 allowed"),
        "{err}"
    );
}

#[test]
fn validate_names_each_field_rule() {
    let base = p(&[
        ("appid", "wx1"),
        ("mch_id", "1"),
        ("nonce_str", "n"),
        ("body", "b"),
        ("out_trade_no", "o1"),
        ("total_fee", "1"),
        ("spbill_create_ip", "::1"),
        ("notify_url", "http://a.example/n"),
        ("trade_type", "JSAPI"),
        ("openid", "o"),
    ]);
    assert_eq!(validate_unified_order(&base), vec![]);
    for (field, value) in [
        ("total_fee", "1.00"),
        ("total_fee", "-1"),
        ("total_fee", "0"),
        ("fee_type", "USD"),
        ("sign_type", "SHA1"),
        ("trade_type", "H5"),
        ("time_expire", "2026-11-25"),
        ("limit_pay", "credit"),
        ("attach", &"a".repeat(128)),
        ("notify_url", "ftp://x"),
        ("mch_id", &"1".repeat(33)),
        ("appid", ""),
    ] {
        let mut q = base.clone();
        q.insert(field.into(), value.into());
        let problems = validate_unified_order(&q);
        assert!(
            problems.iter().any(|x| x.field == field),
            "{field}={value:?} gave {problems:?}"
        );
    }
    let mut native = base.clone();
    native.insert("trade_type".into(), "NATIVE".into());
    assert_eq!(validate_unified_order(&native)[0].field, "product_id");
    let mut late = base.clone();
    late.insert("time_start".into(), "20261125120000".into());
    late.insert("time_expire".into(), "20261125110000".into());
    assert_eq!(validate_unified_order(&late)[0].field, "time_expire");
}

#[test]
fn unifiedorder_answers_are_judged() {
    let m = merchant(SignType::HmacSha256);
    let ok = answer(
        &m,
        p(&[
            ("result_code", "SUCCESS"),
            ("prepay_id", "wx2017033010242291fcfe0db70013231072"),
            ("trade_type", "JSAPI"),
        ]),
    );
    assert_eq!(
        m.parse_unified_order_response(&ok).unwrap().prepay_id,
        "wx2017033010242291fcfe0db70013231072"
    );

    let fail = to_xml(&p(&[("return_code", "FAIL"), ("return_msg", "签名错误")])).unwrap();
    assert_eq!(
        m.parse_unified_order_response(fail.as_bytes()),
        Err(PayError::Communication {
            return_msg: "签名错误".into()
        })
    );

    let biz = answer(
        &m,
        p(&[
            ("result_code", "FAIL"),
            ("err_code", "ORDERPAID"),
            ("err_code_des", "该订单已支付"),
        ]),
    );
    let e = m.parse_unified_order_response(&biz).unwrap_err();
    assert_eq!(e.err_code(), Some("ORDERPAID"));
    assert!(!e.is_transient());
    let busy = answer(
        &m,
        p(&[
            ("result_code", "FAIL"),
            ("err_code", "SYSTEMERROR"),
            ("err_code_des", "系统错误"),
        ]),
    );
    assert!(
        m.parse_unified_order_response(&busy)
            .unwrap_err()
            .is_transient()
    );

    // Signed with another key: forged.
    let forged = answer(
        &Merchant {
            key: "f".repeat(32),
            ..m.clone()
        },
        p(&[("result_code", "SUCCESS"), ("prepay_id", "wx1")]),
    );
    assert_eq!(
        m.parse_unified_order_response(&forged),
        Err(PayError::Sign(SignError::Mismatch))
    );
    // Validly signed, but for another merchant.
    let other = answer(
        &m,
        p(&[
            ("result_code", "SUCCESS"),
            ("prepay_id", "wx1"),
            ("mch_id", "999"),
        ]),
    );
    assert!(matches!(
        m.parse_unified_order_response(&other),
        Err(PayError::Mismatch {
            field: "mch_id",
            ..
        })
    ));
    // Success without prepay_id.
    let empty = answer(&m, p(&[("result_code", "SUCCESS")]));
    assert_eq!(
        m.parse_unified_order_response(&empty),
        Err(PayError::MissingField("prepay_id"))
    );
}

#[test]
fn payment_params_are_what_wx_request_payment_checks() {
    for t in [SignType::Md5, SignType::HmacSha256] {
        let m = merchant(t);
        let pp = m.payment_params(
            "wx201410272009395522657a690389285100",
            1_414_561_699,
            "e61463f8efa94090b1f366cccfbbb444",
        );
        assert_eq!(pp.package, "prepay_id=wx201410272009395522657a690389285100");
        assert_eq!(pp.time_stamp, "1414561699");
        assert_eq!(pp.sign_type, t.as_str());
        assert_eq!(pp.pay_sign.len(), t.hex_len());
        let json = serde_json::to_value(&pp).unwrap();
        for k in [
            "appId",
            "timeStamp",
            "nonceStr",
            "package",
            "signType",
            "paySign",
        ] {
            assert!(json.get(k).is_some(), "{k}");
        }
        let mut params = pp.to_params();
        assert_eq!(verify_payment_params(&params, &m.appid, &m.key), Ok(()));
        // The seed client forwards only the five fields, without appId.
        params.remove("appId");
        assert_eq!(verify_payment_params(&params, &m.appid, &m.key), Ok(()));
        params.insert("timeStamp".into(), "1414561700".into());
        assert_eq!(
            verify_payment_params(&params, &m.appid, &m.key),
            Err(PayError::Sign(SignError::Mismatch))
        );
    }
    let m = merchant(SignType::Md5);
    let mut params = m.payment_params("wx1", 1, "n").to_params();
    params.insert("appId".into(), "wxsomeoneelse".into());
    assert!(matches!(
        verify_payment_params(&params, &m.appid, &m.key),
        Err(PayError::Mismatch { field: "appId", .. })
    ));
    let mut params = m.payment_params("wx1", 1, "n").to_params();
    params.insert("package".into(), "wx1".into());
    assert!(matches!(
        verify_payment_params(&params, &m.appid, &m.key),
        Err(PayError::BadField {
            field: "package",
            ..
        })
    ));
    params.remove("paySign");
    params.insert("package".into(), "prepay_id=wx1".into());
    assert_eq!(
        verify_payment_params(&params, &m.appid, &m.key),
        Err(PayError::MissingField("paySign"))
    );
}

fn notice(fee: u64, include_sign_type: bool) -> PaidNotice<'static> {
    PaidNotice {
        out_trade_no: "o123",
        transaction_id: "4200000000202611250000000001",
        total_fee: Fen::new(fee),
        openid: "oUser",
        time_end: "20261125120000",
        nonce_str: "abc",
        include_sign_type,
    }
}

fn expected(m: &Merchant) -> ExpectedPayment<'_> {
    ExpectedPayment {
        appid: &m.appid,
        mch_id: &m.mch_id,
        out_trade_no: "o123",
        total_fee: Fen::new(100),
    }
}

#[test]
fn notify_is_verified_with_the_configured_algorithm_with_or_without_sign_type() {
    for t in [SignType::Md5, SignType::HmacSha256] {
        for include in [true, false] {
            let m = merchant(t);
            let body = build_paid_notify(&m, &notice(100, include)).unwrap();
            assert_eq!(body.contains("sign_type"), include);
            let n = parse_notify(body.as_bytes(), &m.key, t).unwrap();
            assert_eq!(n.outcome, Outcome::Paid);
            assert_eq!(n.total_fee, Fen::new(100));
            assert_eq!(n.check(&expected(&m)), Ok(()));
        }
    }
}

#[test]
fn hmac_notify_without_sign_type_fails_if_checked_as_md5() {
    // The trap: an SDK that picks the algorithm from the (absent) sign_type reads MD5.
    let m = merchant(SignType::HmacSha256);
    let body = build_paid_notify(&m, &notice(100, false)).unwrap();
    assert_eq!(
        parse_notify(body.as_bytes(), &m.key, SignType::Md5).unwrap_err(),
        NotifyError::Sign(SignError::Mismatch)
    );
}

#[test]
fn sign_type_in_a_notify_is_part_of_the_signed_string() {
    let m = merchant(SignType::HmacSha256);
    let body = build_paid_notify(&m, &notice(100, true)).unwrap();
    let mut params = parse_xml(body.as_bytes()).unwrap();
    params.remove("sign_type"); // stripped in transit: the sign no longer matches
    let stripped = to_xml(&params).unwrap();
    assert_eq!(
        parse_notify(stripped.as_bytes(), &m.key, SignType::HmacSha256).unwrap_err(),
        NotifyError::Sign(SignError::Mismatch)
    );
}

#[test]
fn notify_that_does_not_fit_the_order_is_refused() {
    let m = merchant(SignType::Md5);
    let cheap = parse_notify(
        build_paid_notify(&m, &notice(1, false)).unwrap().as_bytes(),
        &m.key,
        SignType::Md5,
    )
    .unwrap();
    let e = cheap.check(&expected(&m)).unwrap_err();
    assert_eq!(
        e,
        NotifyError::Mismatch {
            field: "total_fee",
            expected: "100".into(),
            found: "1".into()
        }
    );
    assert_eq!(e.code(), "NOTIFY_MISMATCH");

    let other_app = Merchant {
        appid: "wxother".into(),
        ..m.clone()
    };
    let n = parse_notify(
        build_paid_notify(&other_app, &notice(100, false))
            .unwrap()
            .as_bytes(),
        &m.key,
        SignType::Md5,
    )
    .unwrap();
    assert!(matches!(
        n.check(&expected(&m)),
        Err(NotifyError::Mismatch { field: "appid", .. })
    ));

    let forged = build_paid_notify(
        &Merchant {
            key: "x".repeat(32),
            ..m.clone()
        },
        &notice(100, false),
    )
    .unwrap();
    assert_eq!(
        parse_notify(forged.as_bytes(), &m.key, SignType::Md5)
            .unwrap_err()
            .code(),
        "SIGN_MISMATCH"
    );

    let fail = to_xml(&p(&[("return_code", "FAIL"), ("return_msg", "x")])).unwrap();
    assert_eq!(
        parse_notify(fail.as_bytes(), &m.key, SignType::Md5).unwrap_err(),
        NotifyError::ReturnFail("x".into())
    );

    let mut no_fee = p(&[
        ("return_code", "SUCCESS"),
        ("result_code", "SUCCESS"),
        ("appid", "a"),
        ("mch_id", "m"),
        ("out_trade_no", "o"),
        ("transaction_id", "t"),
    ]);
    sign::sign_into(&mut no_fee, &m.key, SignType::Md5);
    assert_eq!(
        parse_notify(to_xml(&no_fee).unwrap().as_bytes(), &m.key, SignType::Md5).unwrap_err(),
        NotifyError::MissingField("total_fee")
    );
}

#[test]
fn failed_payment_notify_is_verified_but_not_paid() {
    let m = merchant(SignType::Md5);
    let mut f = p(&[
        ("return_code", "SUCCESS"),
        ("result_code", "FAIL"),
        ("err_code", "NOTENOUGH"),
        ("err_code_des", "余额不足"),
        ("appid", &m.appid),
        ("mch_id", &m.mch_id),
        ("out_trade_no", "o123"),
        ("total_fee", "100"),
    ]);
    sign::sign_into(&mut f, &m.key, SignType::Md5);
    let n = parse_notify(to_xml(&f).unwrap().as_bytes(), &m.key, SignType::Md5).unwrap();
    assert_eq!(
        n.outcome,
        Outcome::Failed {
            err_code: "NOTENOUGH".into(),
            err_code_des: "余额不足".into()
        }
    );
}

#[test]
fn notify_replies_are_wechat_xml() {
    assert_eq!(
        reply_success(),
        "<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>"
    );
    let fail = parse_xml(reply_fail("签名失败 ]]> x").as_bytes()).unwrap();
    assert_eq!(fail["return_code"], "FAIL");
    assert_eq!(fail["return_msg"], "签名失败 ]]> x");
}

#[test]
fn orderquery_and_closeorder() {
    let m = merchant(SignType::Md5);
    let req = parse_xml(m.order_query_request("o123", "n1").unwrap().as_bytes()).unwrap();
    assert_eq!(req["out_trade_no"], "o123");
    assert_eq!(sign::verify(&req, &m.key, SignType::Md5), Ok(()));
    assert!(matches!(
        m.order_query_request("bad no", "n"),
        Err(PayError::Invalid(_))
    ));

    let paid = answer(
        &m,
        p(&[
            ("result_code", "SUCCESS"),
            ("trade_state", "SUCCESS"),
            ("out_trade_no", "o123"),
            ("total_fee", "100"),
            ("transaction_id", "42"),
        ]),
    );
    let q = m.parse_order_query_response(&paid).unwrap();
    assert_eq!(
        (q.trade_state, q.total_fee),
        (TradeState::Success, Some(Fen::new(100)))
    );
    let notpay = answer(
        &m,
        p(&[
            ("result_code", "SUCCESS"),
            ("trade_state", "NOTPAY"),
            ("out_trade_no", "o123"),
        ]),
    );
    assert_eq!(
        m.parse_order_query_response(&notpay).unwrap().trade_state,
        TradeState::NotPay
    );
    let paid_no_fee = answer(
        &m,
        p(&[
            ("result_code", "SUCCESS"),
            ("trade_state", "SUCCESS"),
            ("out_trade_no", "o123"),
        ]),
    );
    assert_eq!(
        m.parse_order_query_response(&paid_no_fee),
        Err(PayError::MissingField("total_fee"))
    );
    let missing = answer(
        &m,
        p(&[
            ("result_code", "FAIL"),
            ("err_code", "ORDERNOTEXIST"),
            ("err_code_des", "此交易订单号不存在"),
        ]),
    );
    assert_eq!(
        m.parse_order_query_response(&missing)
            .unwrap_err()
            .err_code(),
        Some("ORDERNOTEXIST")
    );

    let closed = answer(&m, p(&[("result_code", "SUCCESS")]));
    assert_eq!(m.parse_close_order_response(&closed), Ok(()));
    let already_paid = answer(
        &m,
        p(&[
            ("result_code", "FAIL"),
            ("err_code", "ORDERPAID"),
            ("err_code_des", "订单已支付"),
        ]),
    );
    assert_eq!(
        m.parse_close_order_response(&already_paid)
            .unwrap_err()
            .err_code(),
        Some("ORDERPAID")
    );
    assert!(format!("{m:?}").contains("redacted") && !format!("{m:?}").contains(&m.key));
}
