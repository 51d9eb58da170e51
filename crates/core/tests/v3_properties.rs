//! APIv3 readers never panic on arbitrary input, and the answer readers read what WeChat
//! documents. Verified bodies are made through the two-step road (`check` → `conclude`),
//! the shell's RSA standing in as "valid".

use proptest::prelude::*;
use wxedge_core::pay::TradeState;
use wxedge_core::v3::aead::{self, ApiV3Key};
use wxedge_core::v3::api_error::ApiError;
use wxedge_core::v3::authorization::{Authorization, Request};
use wxedge_core::v3::jsapi;
use wxedge_core::v3::notify;
use wxedge_core::v3::verify::{Headers, Verified, WechatKeys};
use wxedge_core::{ErrorCode, Fen};

const SERIAL: &str = "PUB_KEY_ID_0000000000000024101100397200000006";

fn keys() -> WechatKeys<()> {
    WechatKeys::new().with_public_key(SERIAL, ()).unwrap()
}

/// `body` as if its signature had verified.
fn verified<'a>(keys: &'a WechatKeys<()>, body: &'a [u8]) -> Verified<'a> {
    let headers = Headers {
        timestamp: Some("1000"),
        nonce: Some("n"),
        signature: Some("c2ln"),
        serial: Some(SERIAL),
    };
    keys.check(&headers, body, 1000)
        .unwrap()
        .conclude(true)
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn authorization_parse_never_panics(s in ".{0,300}", tail in "[a-z_=\", ]{0,80}") {
        let _ = Authorization::parse(&s);
        let _ = Authorization::parse(&format!("WECHATPAY2-SHA256-RSA2048 {tail}"));
    }

    #[test]
    fn a_built_header_always_parses_back(
        mchid in "[0-9]{1,32}", nonce in "[0-9A-Za-z]{1,32}", serial in "[0-9A-F]{1,40}",
        ts in 0i64..10_000_000_000, sig in proptest::collection::vec(any::<u8>(), 1..300),
    ) {
        let req = Request { method: "GET", url: "/v3/x", timestamp: ts, nonce_str: &nonce, body: b"" };
        let a = Authorization::new(&mchid, &serial, &req, &sig).unwrap();
        prop_assert_eq!(Authorization::parse(&a.to_header_value()), Ok(a));
    }

    #[test]
    fn request_message_never_panics(
        method in ".{0,8}", url in ".{0,64}", ts in any::<i64>(), nonce in ".{0,40}",
        body in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let _ = Request { method: &method, url: &url, timestamp: ts, nonce_str: &nonce, body: &body }.message();
    }

    #[test]
    fn verify_check_never_panics(
        ts in proptest::option::of(".{0,16}"), nonce in proptest::option::of(".{0,16}"),
        sig in proptest::option::of(".{0,64}"), serial in proptest::option::of(".{0,48}"),
        now in any::<i64>(), body in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let k = keys();
        let h = Headers {
            timestamp: ts.as_deref(), nonce: nonce.as_deref(),
            signature: sig.as_deref(), serial: serial.as_deref(),
        };
        let _ = k.check(&h, &body, now);
    }

    #[test]
    fn aead_decrypt_never_panics(nonce in ".{0,16}", aad in ".{0,16}", c in ".{0,64}") {
        let key = ApiV3Key::new(&"k".repeat(32)).unwrap();
        let _ = aead::decrypt(&key, &nonce, &aad, &c);
    }

    #[test]
    fn answer_and_notify_readers_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256), status in any::<u16>()) {
        let k = keys();
        let v = verified(&k, &body);
        let key = ApiV3Key::new(&"k".repeat(32)).unwrap();
        let _ = notify::parse_notify(&v, &key);
        let _ = jsapi::parse_prepay(&v);
        let _ = jsapi::parse_query(&v, "1230000109", "wx1", "T0000001");
        let _ = jsapi::parse_close(status, &v);
        let _ = ApiError::parse(status, &body);
    }

    #[test]
    fn json_shaped_notifies_never_panic(
        event in "TRANSACTION.SUCCESS|REFUND.SUCCESS|.{0,8}", alg in "AEAD_AES_256_GCM|.{0,4}",
        c in "[A-Za-z0-9+/=]{0,64}", nonce in ".{0,14}",
    ) {
        let body = serde_json::json!({
            "id": "1", "create_time": "t", "event_type": event, "resource_type": "encrypt-resource",
            "summary": "s", "resource": { "algorithm": alg, "ciphertext": c, "associated_data": "transaction",
            "original_type": "transaction", "nonce": nonce },
        }).to_string();
        let k = keys();
        let key = ApiV3Key::new(&"k".repeat(32)).unwrap();
        prop_assert!(notify::parse_notify(&verified(&k, body.as_bytes()), &key).is_err());
    }
}

#[test]
fn a_prepay_answer_gives_its_prepay_id() {
    let k = keys();
    let body = br#"{"prepay_id":"wx201410272009395522657a690389285100"}"#;
    assert_eq!(
        jsapi::parse_prepay(&verified(&k, body)).unwrap(),
        "wx201410272009395522657a690389285100"
    );
    assert_eq!(
        jsapi::parse_prepay(&verified(&k, br#"{"prepay_id":""}"#))
            .unwrap_err()
            .code(),
        "MISSING_FIELD"
    );
}

#[test]
fn a_query_answer_becomes_the_v2_order_query() {
    let k = keys();
    // The shape of 商户订单号查询订单's answer (https://pay.weixin.qq.com/doc/v3/merchant/4012556352).
    let paid = r#"{"appid":"wxd678efh567hg6787","mchid":"1230000109","out_trade_no":"1217752501201407033233368018","transaction_id":"1217752501201407033233368018","trade_type":"JSAPI","trade_state":"SUCCESS","trade_state_desc":"支付成功","bank_type":"CMC","attach":"","success_time":"2018-06-08T10:34:56+08:00","payer":{"openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},"amount":{"total":100,"payer_total":100,"currency":"CNY","payer_currency":"CNY"}}"#;
    let q = jsapi::parse_query(
        &verified(&k, paid.as_bytes()),
        "1230000109",
        "wxd678efh567hg6787",
        "1217752501201407033233368018",
    )
    .unwrap();
    assert_eq!(q.trade_state, TradeState::Success);
    assert_eq!(q.total_fee, Some(Fen::new(100)));
    assert_eq!(q.time_end.as_deref(), Some("20180608103456"));
    assert_eq!(q.openid.as_deref(), Some("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"));
    let other = jsapi::parse_query(
        &verified(&k, paid.as_bytes()),
        "1900000109",
        "wxd678efh567hg6787",
        "1217752501201407033233368018",
    );
    assert_eq!(other.unwrap_err().code(), "FIELD_MISMATCH");
    let unpaid = r#"{"mchid":"1230000109","out_trade_no":"1217752501201407033233368018","trade_state":"NOTPAY","trade_state_desc":"订单未支付"}"#;
    let q = jsapi::parse_query(
        &verified(&k, unpaid.as_bytes()),
        "1230000109",
        "wx1",
        "1217752501201407033233368018",
    )
    .unwrap();
    assert_eq!((q.trade_state, q.total_fee), (TradeState::NotPay, None));
}

#[test]
fn close_is_done_only_on_a_verified_204() {
    let k = keys();
    assert!(jsapi::parse_close(204, &verified(&k, b"")).is_ok());
    assert_eq!(
        jsapi::parse_close(200, &verified(&k, b""))
            .unwrap_err()
            .code(),
        "V3_UNEXPECTED_STATUS"
    );
}

#[test]
fn every_v3_error_code_is_listed() {
    use wxedge_core::v3::V3_CODES;
    use wxedge_core::v3::aead::AeadError;
    use wxedge_core::v3::authorization::AuthorizationError;
    use wxedge_core::v3::jsapi::JsapiError;
    use wxedge_core::v3::notify::NotifyV3Error;
    use wxedge_core::v3::rsa::RsaError;
    use wxedge_core::v3::verify::VerifyError;
    let samples: Vec<Box<dyn ErrorCode>> = vec![
        Box::new(AuthorizationError::GetWithBody),
        Box::new(AuthorizationError::WrongSchema),
        Box::new(VerifyError::MissingHeader("x")),
        Box::new(VerifyError::Probe),
        Box::new(VerifyError::BadTimestamp(String::new())),
        Box::new(VerifyError::Skewed {
            timestamp: 0,
            now: 0,
            off: 0,
        }),
        Box::new(VerifyError::BadPublicKeyId(String::new())),
        Box::new(VerifyError::BadSignatureEncoding),
        Box::new(VerifyError::Mismatch {
            serial: String::new(),
        }),
        Box::new(RsaError::BadKey(String::new())),
        Box::new(RsaError::Failed(String::new())),
        Box::new(AeadError::BadKeyLength(0)),
        Box::new(AeadError::BadNonceLength(0)),
        Box::new(AeadError::BadBase64),
        Box::new(AeadError::TooShort(0)),
        Box::new(AeadError::Failed),
        Box::new(NotifyV3Error::BadEnvelope(String::new())),
        Box::new(NotifyV3Error::UnexpectedEvent {
            event_type: String::new(),
            original_type: String::new(),
        }),
        Box::new(NotifyV3Error::UnsupportedAlgorithm(String::new())),
        Box::new(NotifyV3Error::BadTransaction(String::new())),
        Box::new(NotifyV3Error::MissingField("x")),
        Box::new(NotifyV3Error::Currency(String::new())),
        Box::new(JsapiError::Invalid(vec![])),
        Box::new(JsapiError::UnexpectedStatus(0, 0)),
        Box::new(ApiError::parse(500, b"")),
    ];
    for e in samples {
        assert!(
            V3_CODES.contains(&e.code()),
            "{} is not in V3_CODES",
            e.code()
        );
    }
}
