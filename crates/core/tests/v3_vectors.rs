//! APIv3 vectors: WeChat's own published examples, and the official SDKs' test data, each
//! with its source. They run through the core's native RSA (`ring` feature, enabled for
//! tests by the dev-dependency on this crate). Where no published vector exists, the test
//! says so and checks against an independent computation instead.

use wxedge_core::v3::aead::{self, AeadError, ApiV3Key};
use wxedge_core::v3::authorization::{Authorization, Request, authorize};
use wxedge_core::v3::jsapi::{self, JsapiOrder};
use wxedge_core::v3::rsa::native::{PrivateKey, PublicKey, certificate_serial};
use wxedge_core::v3::rsa::{RsaSigner, RsaVerifier};
use wxedge_core::v3::verify::{Headers, VerifyError, WechatKeys};
use wxedge_core::{ErrorCode, Fen};

mod v3_keys;
use v3_keys::TEST_KEY_PKCS1;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// [`TEST_KEY_PKCS1`] converted with `openssl pkcs8 -topk8 -nocrypt`; its first lines equal
/// the PKCS#8 key printed on the JSAPI调起支付签名 page above (MIIEvAIBADANBgkqhkiG9w0BAQEF…).
const TEST_KEY_PKCS8: &str = r"-----BEGIN PRIVATE KEY-----
MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQCm2mb6q8gMKH/3
CNTbpJAIrbqiBiQGEOtjGcBrDYltsGynWgNscqT7WvfzU14FQbYcQUC5T4Wvva7m
i3fIp3OgX8VqMDNA0qebnr38Pe6kqiLyZgFpJPXlSKDyPyqhRbVTbXssvSMQeVKc
dXeVxoNNeoOlNFHgF/P0io6AmAVnz+hN8SiZKuOsth5/zUTLGvtkgxBcQooQrtXh
RcpLT798OyIb9xeJ2HO3xRtMv2+perEzb4gMibI74UBz+2QEbnkubPE+2jU2rRZu
dnNEz/BPOt3Qj/w2V6/G0VumGDh6+UeMU0jv4aupHztWITC4Akn0l7lBCNy3lgl8
VFaJnkIxAgMBAAECggEAYGL8aESB7NwciDWW2UdoWUsa7GxFtSdjAz2mFXGdeTsY
mVh7b9OOkRGM+Qio4LqEHDBp1mMk5E/cUJwy1zw8pGGO5nfvs7u9TT3XnHaefIs4
YvUgTYAneIuLRkXNN5rQU+CD7mVYczTSz0Vgjqo9wa1LjUz7G0xbBmJgTdMEFGJs
eJjy6AbJo0CGIwp6HJbTm4CmOUgXnnDAIbEGTIRImkZFH/rzneIeR7oZ77FVwxr1
CZB2gfRCov/yRPbw8vnryYkmvQ7D/ze3j5097vRg/MoDGBSdoOwcmo75vyofr0AS
zytMjmHYyifqkf5slPropSiJeGf4p/7gtKyF6dE/XQKBgQDVAlJ+4U5ZVGOuDc3+
sAhz8CTzgFNlq9vKuSoFK6hOz2L+cwj+E7NXGkOe2DsHHZNy2Xqxk7caKhPEp1z9
hhpMpyLVMoFt6CKemyoRBWDCQwLLwem9SZF/IAyovBkLiH36P42Jm26gUkNMKC/5
Zhtqxf6RZgRQzbVudJi47vIRCwKBgQDIh0+v27Oo+DM3fhObH4I1NrXpWOEGH7OQ
G1dEsMuFYF4hjGhg0kBEP3w9vVdl2+mRllZKTsx9oqjb8OibPLLIH8xsdbAB0WLf
JvjLu4wl/ILUzN1RI03dWnnv2EnEeQn6c3hizvrJ9wR5U4ue9RPVnQooJ0hZF1PU
uCL5fWK3MwKBgElReU/PAYbh80WP3t3Rfbdaa32dKBeQ5iCLR5lsA4zM+YgX1HqQ
EWTj126vgvHaDkyz6vWAoL/Sx+cirHFfXWIRDX5Q2hgYlQH+6qXdMgbrxeSYpHnQ
/tHBGFpkFELSAnrGsVMyOwvYBO4LzyeLK9i+ufcWJFoj1FVmsMLHDG8tAoGARdbi
iQQCoYG4DMarO2aQ6cmhN6EN1h0qY7EyBqlwaIZ0okiNfdMcMOjPc41DKCWcRmlO
qlihXcxN9TQFPzO3rH1urAOdBjUPs1qWYhZyrDQyuLyVBBJApyxAtajloDjrob+f
mQIvVDHk7ACN6xG+E7K6+9salnTKbJapD618uQMCgYBNy6XUvzLkP/A1U/UZdtcx
l8GwU/dturLxz4CyGbqDw4ubaYY2e13lnqHUqQgPtiSyH51nq3tdo8G0YAJdfkSv
KvnfslW91fyEBUKnkdW1o3/1UFU/wprZ7ixVL/F42A4xDu7OFE8EnweJOZ0jWceE
OdhCkaIGBCfRnlECRK8UyQ==
-----END PRIVATE KEY-----";

const MCHID: &str = "1900007291";
const SERIAL_NO: &str = "408B07E79B8269FEC3D5D3E6AB8ED163A6A380DB";
const TIMESTAMP: i64 = 1_554_208_460;
const NONCE: &str = "593BEC0C930BF1AFEB40B4A08C8FB242";

fn test_key() -> PrivateKey {
    PrivateKey::from_pem(TEST_KEY_PKCS1).unwrap()
}

fn b64(s: &[u8]) -> String {
    STANDARD.encode(s)
}

/// Source: 路径参数签名示例, <https://pay.weixin.qq.com/doc/v3/merchant/4012365334>:
/// `GET /v3/refund/domestic/refunds/123123123123`, empty body, and the Authorization
/// header it prints.
const REFUND_QUERY_SIGNATURE: &str = "Lc9VXxmeonkdV8Xk9tmigQFLhl0vRWTerdmoRu01aAnYwIrD/5nsSwE1WlmZGLRlAFTNQ3QsMa0+VRDlJp1Wp5p0nO8EK68b5sJBbjouxaFciIfq1zfDWWz+jqhcMoKXI1A6dPm1AW7D4d30WsMTNzp6g23OXakIsh9LO3lUmwvTuE0BY8ncf6tNGk4wKmvXwERd/ZpoQY3MAVKz+Nakwc+2XBmzT66KcUehU5kr4IvGa/lEU5RZb/q00zP9VLdBhC/jQSX3X1UcJLCtEc4gTmib4tnmAT+bHF/e17ZAuxDNcx6rqT8gNEXqaJGG+1OflMSTU2tpyG65G4dMKdFcoA==";

#[test]
fn official_get_request_signature_and_header() {
    let request = Request {
        method: "GET",
        url: "/v3/refund/domestic/refunds/123123123123",
        timestamp: TIMESTAMP,
        nonce_str: NONCE,
        body: b"",
    };
    let message = request.message().unwrap();
    assert_eq!(
        message,
        b"GET\n/v3/refund/domestic/refunds/123123123123\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n\n"
    );
    for pem in [TEST_KEY_PKCS1, TEST_KEY_PKCS8] {
        let key = PrivateKey::from_pem(pem).unwrap();
        assert_eq!(b64(&key.sign(&message).unwrap()), REFUND_QUERY_SIGNATURE);
    }
    // The header exactly as the page prints it (its field order differs from ours: the
    // order is free).
    let official = format!(
        "WECHATPAY2-SHA256-RSA2048 mchid=\"{MCHID}\",nonce_str=\"{NONCE}\",signature=\"{REFUND_QUERY_SIGNATURE}\",timestamp=\"1554208460\",serial_no=\"{SERIAL_NO}\""
    );
    let ours = authorize(&test_key(), MCHID, SERIAL_NO, &request).unwrap();
    assert_eq!(Authorization::parse(&ours), Authorization::parse(&official));
    let parsed = Authorization::parse(&official).unwrap();
    assert_eq!(parsed.signature, REFUND_QUERY_SIGNATURE);
    assert_eq!(parsed.timestamp_secs(), Some(TIMESTAMP));
    // wxsim's side: the header's signature verifies under the merchant's public key.
    let signature = STANDARD.decode(parsed.signature).unwrap();
    assert!(test_key().public_key().verify(&message, &signature));
}

/// Source: Body参数签名示例 (JSAPI下单), <https://pay.weixin.qq.com/doc/v3/merchant/4012365336>:
/// `POST /v3/pay/transactions/jsapi` with the body below, signed with the test key.
const JSAPI_SIGNATURE: &str = "jnks4dlrPw3ZX+ozVvSK39oa0t7OMBsg83BHAwd8BRdUFiVaQNTLTvci+wURgP1OQBbKYhFGvt7iqYpDSTQkp7Uq1sltaQKyncCyrA1g88m5bsKERQfPyT0ahSwKTYJ1CAn9QiJuSJRq1QsQs07eehbU/k9BCS51jTyc1Jpsi2H77HF9f/BnjXAOP3/sPObg6V5Ee4EzwLox684hhuMuIwHo7D8KFk3LIHOKDcNI4It1aCXydFWNpNK+SG86VUDe5kwoDpw4Ulqfu9z8OFDGbDs9TCxEv8iqQzbpxOlEVoOe2kalSYM5kApQb3nZcxdUtoE0liJGW3RGUNE0t4v01A==";

#[test]
fn official_jsapi_prepay_body_and_signature() {
    // The documented body, rebuilt by our prepay builder byte for byte.
    let body = jsapi::prepay_body(&JsapiOrder {
        appid: "wxd678efh567hg6787",
        mchid: MCHID,
        description: "Image形象店-深圳腾大-QQ公仔",
        out_trade_no: "1217752501201407033233368018",
        notify_url: "https://www.weixin.qq.com/wxpay/pay.php",
        total: Fen::new(100),
        openid: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
        attach: None,
        time_expire: None,
    })
    .unwrap();
    assert_eq!(
        body,
        r#"{"appid":"wxd678efh567hg6787","mchid":"1900007291","description":"Image形象店-深圳腾大-QQ公仔","out_trade_no":"1217752501201407033233368018","notify_url":"https://www.weixin.qq.com/wxpay/pay.php","amount":{"total":100,"currency":"CNY"},"payer":{"openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}}"#
    );
    let request = Request {
        method: "POST",
        url: jsapi::PREPAY_PATH,
        timestamp: TIMESTAMP,
        nonce_str: NONCE,
        body: body.as_bytes(),
    };
    let header = authorize(&test_key(), MCHID, SERIAL_NO, &request).unwrap();
    assert_eq!(
        Authorization::parse(&header).unwrap().signature,
        JSAPI_SIGNATURE
    );
    // One byte of body more (a re-serialization with a space) is another signature.
    let respaced = body.replacen(',', ", ", 1);
    let request = Request {
        body: respaced.as_bytes(),
        ..request
    };
    let header = authorize(&test_key(), MCHID, SERIAL_NO, &request).unwrap();
    assert_ne!(
        Authorization::parse(&header).unwrap().signature,
        JSAPI_SIGNATURE
    );
}

/// No official vector with a reproducible key: the query-parameter page
/// (<https://pay.weixin.qq.com/doc/v3/merchant/4012365337>) could not be read whole here.
/// This value was computed independently with
/// `printf 'GET\n/v3/marketing/partnerships?…\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n\n' | openssl dgst -sha256 -sign apiclient_test_key.pem | openssl base64 -A`
/// (OpenSSL 3.0), and a third party's test suite holds the same value.
#[test]
fn a_percent_encoded_query_is_signed_as_sent_independent_check() {
    let url = "/v3/marketing/partnerships?limit=5&offset=10&authorized_data%3D%7B%22business_type%22%3A%22FAVOR_STOCK%22%2C%20%22stock_id%22%3A%222433405%22%7D&partner%3D%7B%22type%22%3A%22APPID%22%2C%22appid%22%3A%22wx4e1916a585d1f4e9%22%2C%22merchant_id%22%3A%222480029552%22%7D";
    let request = Request {
        method: "GET",
        url,
        timestamp: TIMESTAMP,
        nonce_str: NONCE,
        body: b"",
    };
    let signature = test_key().sign(&request.message().unwrap()).unwrap();
    assert_eq!(
        b64(&signature),
        "C9PrZx8RTw7NF+e6SLmZxKgUBdXjH6EmUiu1i85Y6MApfWn4ueNpS4ED5no6uGObU0cfzTdaWyl6gAWDmyO2nG3MjHursadpzpNT8d+HaZapKis+boTHwJLgZXHXtacjX4zx2lOk/AONrKCLkjXRnh/DDp/kNsmDNYEiu+d/SeVvr+cL0XkL0CibAphyQSLYkv7Fh9uel89ax3ZGgVnBx+/MaBLCrYc1UqyYBDqfWPhS9fZf2OSghWMFp9c5dm+ORc97XbgzSOwAl8dcfLSrL/Sb4+L57+JZiq0iURjMXWzAD8FTUFYsJtJOYszRXJKLZNh4WGST39oplhhSdtxcoQ=="
    );
}

/// The mini-program invoke: WeChat's pages show the message
/// (`wx8888888888888888\n1414561699\n5K8264ILTKCH16CQ2502SI8ZNMTM67VS\nprepay_id=wx201410272009395522657a690389285100\n`,
/// <https://pay.weixin.qq.com/wiki/doc/apiv3/apis/chapter7_2_9.shtml>), but the paySign
/// they print was made with an unpublished `apiclient_key.pem`, not the test key, and the
/// test-key page for it could not be read to its end here. So: NOT an official value. It
/// was computed independently with `openssl dgst -sha256 -sign apiclient_test_key.pem |
/// openssl base64 -A` over that message.
#[test]
fn mini_program_pay_sign_independent_check() {
    let params = jsapi::sign_payment_params(
        &test_key(),
        "wx8888888888888888",
        "wx201410272009395522657a690389285100",
        1_414_561_699,
        "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
    )
    .unwrap();
    assert_eq!(params.sign_type, "RSA");
    assert_eq!(
        params.package,
        "prepay_id=wx201410272009395522657a690389285100"
    );
    assert_eq!(
        params.pay_sign,
        "mIDSHc+67tlJlgnSkB1BD1+B08suWtz70aoSI6wwGE+0FC5qnMkKFLn/yl0aFCeD+vrTrztwbyAhgb+RuVEMk3N/d2VYVR+uWt27BqR58mWdlYufNvBwmMwCLXYyDrnWXFUF5OYnVX8ey3NouScOWlCAr7QzbmL7pja1MbuupT7JfIJbI5rzDcVFvFpKbLX93nG5eJcYomKf2Ubiwu0/ZdlLOx848ToI0US0g9g7I0jBUB7tx1eDV+InsYDvHSkGdNjz2xvg3lx7ZaPgIuTRQzf8o5W2RVndInqYfRdyDn0pmqILM76lUlTAlub38D4oViu5To7WihblSEIa+O47Bg=="
    );
    assert_eq!(
        jsapi::payment_message("wx8888888888888888", "1414561699", "5K8264ILTKCH16CQ2502SI8ZNMTM67VS", &params.package),
        b"wx8888888888888888\n1414561699\n5K8264ILTKCH16CQ2502SI8ZNMTM67VS\nprepay_id=wx201410272009395522657a690389285100\n"
    );
    let merchant = test_key().public_key();
    assert!(jsapi::verify_payment_params(&params, &merchant));
    let mut tampered = params.clone();
    tampered.nonce_str.push('x');
    assert!(!jsapi::verify_payment_params(&tampered, &merchant));
}

/// Source: 如何使用微信支付公钥验签,
/// <https://pay.weixin.qq.com/docs/merchant/development/interface-rules/signature-verification.html>:
/// a native-prepay answer's headers and body. The page's public key could not be read here;
/// this SPKI comes from a third party's test suite quoting the example, and it is the key:
/// the page's signature verifies under it (also with `openssl dgst -sha256 -verify`).
const WECHATPAY_PUBLIC_KEY: &str = r"-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAwXNI6sdlknHBnK8Fu2U6
Cwor9qY747jP8KAfeBMeveEt1TqaHkLfaSD07trZLhGpfs8/AHqjhgSMO1O10YQW
OrrJ4hjIWPKqxbgrYMkBQc+mwdiWp4W3ByCqxBRagCveCXRWCmuJYovl9H/bsDI0
iGbpVtEOghJtfciisYSgxcLufUDTRkvwxjIBK1pCRjk33jJ5YTBWTHMRtMAOcFLN
F6hdEYdX8SPsgHHeLZ5Lv2T/686w1xtgCHef/sd4uSfWmyzsalQdHG/e4IyYmrhx
+O3VBoNDzE3nx23bFeV/RVNCG7cV6VhmYokJNHa/erIPkEmEFID6A5wQOXuxUkmJ
WwIDAQAB
-----END PUBLIC KEY-----";

#[test]
fn official_answer_verifies_with_the_wechatpay_public_key() {
    let body = br#"{"code_url":"weixin://wxpay/bizpayurl?pr=JyC91EIz1"}"#;
    let headers = Headers {
        timestamp: Some("1722850421"),
        nonce: Some("d824f2e086d3c1df967785d13fcd22ef"),
        signature: Some(
            "mfI1CPqvBrgcXfgXMFjdNIhBf27ACE2YyeWsWV9ZI7T7RU0vHvbQpu9Z32ogzc+k8ZC5n3kz7h70eWKjgqNdKQF0eRp8mVKlmfzMLBVHbssB9jEZEDXThOX1XFqX7s7ymia1hoHQxQagPGzkdWxtlZPZ4ZPvr1RiqkgAu6Is8MZgXXrRoBKqjmSdrP1N7uxzJ/cjfSiis9FiLjuADoqmQ1P7p2N876YPAol7Rn0+GswwAwxldbdLrmVSjfytfSBJFqTMHn4itojgxSWWN1byuckQt8hSTEv/Lg97QoeGniYP17T80pJeQyL3b+295FPHSO2AtvCgyIbKMZ0BALilAA==",
        ),
        serial: Some("PUB_KEY_ID_0000000000000024101100397200000006"),
    };
    let keys = WechatKeys::new()
        .with_public_key(
            "PUB_KEY_ID_0000000000000024101100397200000006",
            PublicKey::from_pem(WECHATPAY_PUBLIC_KEY).unwrap(),
        )
        .unwrap();
    let now = 1_722_850_421 + 299;
    let verified = keys.verify(&headers, body, now).unwrap();
    assert_eq!(verified.body(), body);
    // The same answer re-serialized (a space after the colon) no longer verifies.
    let respaced = br#"{"code_url": "weixin://wxpay/bizpayurl?pr=JyC91EIz1"}"#;
    assert!(matches!(
        keys.verify(&headers, respaced, now),
        Err(VerifyError::Mismatch { .. })
    ));
    // Six minutes late: refused whatever the signature.
    assert_eq!(
        keys.verify(&headers, body, 1_722_850_421 + 360)
            .unwrap_err()
            .code(),
        "V3_TIMESTAMP_SKEW"
    );
    // The two-step road gives the same verdict.
    let pending = keys.check(&headers, body, now).unwrap();
    assert!(pending.key.verify(&pending.message, &pending.signature));
    assert_eq!(pending.conclude(true).unwrap().body(), body);
}

/// Source: wechatpay-go `core/notify/notify_test.go` (`TestHandler_ParseNotifyRequest`,
/// <https://github.com/wechatpay-apiv3/wechatpay-go>): a notify signed with a platform
/// certificate (serial D7CE59D1F522D701), whose resource is encrypted with the 16-byte key
/// `testMchAPIv3Key0`. Its signature verifies through the certificate path; its key is
/// refused as an APIv3 key (AES-128-GCM is not what WeChat documents).
const GO_CERTIFICATE: &str = r"-----BEGIN CERTIFICATE-----
MIIDVzCCAj+gAwIBAgIJANfOWdH1ItcBMA0GCSqGSIb3DQEBCwUAMEIxCzAJBgNV
BAYTAlhYMRUwEwYDVQQHDAxEZWZhdWx0IENpdHkxHDAaBgNVBAoME0RlZmF1bHQg
Q29tcGFueSBMdGQwHhcNMjEwNDI3MDg1NTIzWhcNMzEwNDI1MDg1NTIzWjBCMQsw
CQYDVQQGEwJYWDEVMBMGA1UEBwwMRGVmYXVsdCBDaXR5MRwwGgYDVQQKDBNEZWZh
dWx0IENvbXBhbnkgTHRkMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA
2VCTd91fnUn73Xy9DLvt/V62TVxRTEEstVdeRaZ3B3leO0pldE806mXO4RwdHXag
HQ4vGeZN0yqm++rDsGK+U3AH7kejyD2pXshNP9Cq5YwbptiLGtjcquw4HNxJQUOm
DeJf2vg6byms9RUipiq4SzbJKqJFlUpbuIPDpSpWz10PYmyCNeDGUUK65E5h2B83
4uxl1zNLYQCrkdBzb8oUxwYeP5a2DNxmjL5lsJML7DGr5znsevnoqGRwTm9fxCGf
y8wus7hwKz6clt3Whmmda7UAdb1c08hEQFVRbF14AR73xbnd8N0obCWJPCbzMCtk
aSef4FdEEgEXJiw0VAJT8wIDAQABo1AwTjAdBgNVHQ4EFgQUT1c7nd/SUO76HSoZ
umNUJv1R5PwwHwYDVR0jBBgwFoAUT1c7nd/SUO76HSoZumNUJv1R5PwwDAYDVR0T
BAUwAwEB/zANBgkqhkiG9w0BAQsFAAOCAQEAfTjxKRQMzNB/U6ZoCUS+BSNfa2Oh
0plMN6ZuzwiVVZwg1jywvv5yv04koS7Pd4i9E4gt9ZBUQXlpq+A3oOCEEHNRR6b2
kyazGRM7s0OP5X21WrbpSmKmU6K7hkfx30yYs08LVs/Q8DIhvaj1FCFeJzUCzYn/
fHMq4tsbKO0dKAeydPM/nrUZBmaYQVKMVOORGLFjFKVO7JV6Kq/R86ouhjEPgJOe
2xulNBUcjicqtZlBdEh/PWCYP2SpGVDclKm8jeo175T3EVAkdKzzmfpxtMmnMlmq
cTJOU9TxuGvNASMtjj7pYIerTx+xgZDXEVBWFW9PjJ0TV06tCRsgSHItgg==
-----END CERTIFICATE-----";

#[test]
fn wechatpay_go_notify_verifies_by_certificate_and_its_16_byte_key_is_refused() {
    let body = r#"{"id":"3119dfba-e649-5eec-ab1e-3412bc4d2e17","create_time":"2021-06-24T16:37:26+08:00","resource_type":"encrypt-resource","event_type":"PAYSCORE.USER_OPEN_SERVICE","summary":"签约成功","resource":{"original_type":"payscore","algorithm":"AEAD_AES_256_GCM","ciphertext":"YDS3lKPaC4Y52Gf3uhft5qUBlIa8b428AWTtTauHQfQrRw+X1WpiuHIDy0vo1Vd6VEq67aVyqPdDYMkRVSDaZL3iZttevRMOoPKMifozg6XPWjIZumks/GpT48lI4NizyeaqLBokNebthah3o1H76qSlO9NkDjp9bzmKLEYYH9TEklFUpsvPqOTOcgSLgh21YJXYR7dEBXFgRLiNIKRgO5JdXh1hccRUAlyVWxE54PXpnQ==","associated_data":"payscore","nonce":"Kj7QIyUiYx1q"}}"#;
    assert_eq!(
        certificate_serial(GO_CERTIFICATE).unwrap(),
        "D7CE59D1F522D701"
    );
    let keys = WechatKeys::new()
        .with_certificate(
            "D7CE59D1F522D701",
            PublicKey::from_pem(GO_CERTIFICATE).unwrap(),
        )
        .unwrap();
    let headers = Headers {
        timestamp: Some("1624523846"),
        nonce: Some("EcZ9Cmy4Xyx1i6RlJQzLcCyEqDa26NBz"),
        signature: Some(
            "tJHIiIS9eB2hAYstmAmbbD3ZE5LiIm/Ug5tuL4fC0YOFRWIHV39UFIZXC0e9Wl6lBu6sKvkqDkzpqzBsVHyXFlbYZTOQrVdG4b6LfTnK4mikv9++ixJMd3vTf2yCqvBkh98zs3Ds5zsYQakzbcwhmw4fMJs4nPLws28H0UW9FjDR//rxELLwXvV1VEA1IBLX70xptjL8hrfUjEE8kkry6yNJTHZRU8CAc7qHli2Ng1V1qb9ARbK8A3ThmFmPQvRGrapI/jS2laKKgYUmfdEdkNO6B2Cke5e8VTxY406ArAmQ90GAihDwIcb16TQMnzCMBoutnwZKNiKRACrFmtxw2Q==",
        ),
        serial: Some("D7CE59D1F522D701"),
    };
    let verified = keys
        .verify(&headers, body.as_bytes(), 1_624_523_846)
        .unwrap();
    assert_eq!(
        ApiV3Key::new("testMchAPIv3Key0"),
        Err(AeadError::BadKeyLength(16))
    );
    // With some 32-byte key the envelope is read, and the event is not a payment.
    let key = ApiV3Key::new(&"0".repeat(32)).unwrap();
    let e = wxedge_core::v3::notify::parse_notify(&verified, &key).unwrap_err();
    assert_eq!(e.code(), "V3_UNEXPECTED_EVENT");
}

/// Source: wechatpay-java `core/src/test/java/com/wechat/pay/java/core/cipher/AeadAesCipherTest.java`
/// with `API_V3_KEY` from `core/src/test/java/com/wechat/pay/java/core/model/TestConfig.java`
/// (<https://github.com/wechatpay-apiv3/wechatpay-java>).
#[test]
fn wechatpay_java_aead_vector() {
    let key = ApiV3Key::new("a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb").unwrap();
    let ciphertext = "ulwSiIajGClcvcOYvOQ7+l+0PAbzzwI=";
    assert_eq!(
        aead::decrypt(&key, "uluk4a9R25RW", "associatedData", ciphertext).unwrap(),
        b"message"
    );
    assert_eq!(
        aead::encrypt(&key, "uluk4a9R25RW", "associatedData", b"message").unwrap(),
        ciphertext
    );
    // The SDK's own negative cases: bad AAD, bad nonce, a bad ciphertext.
    assert_eq!(
        aead::decrypt(&key, "uluk4a9R25RW", "bad-associatedData", ciphertext),
        Err(AeadError::Failed)
    );
    assert_eq!(
        aead::decrypt(&key, "bad-4a9R25RW", "associatedData", ciphertext),
        Err(AeadError::Failed)
    );
    assert_eq!(
        aead::decrypt(&key, "uluk4a9R25RW", "associatedData", &b64(&[0; 128])),
        Err(AeadError::Failed)
    );
}
