//! wxsim speaks WeChat Pay APIv3 on the same port, over real HTTP: a merchant signs with
//! the core (native ring), wxsim checks it and signs every answer and notify as WeChat does,
//! and the merchant side here verifies and decrypts them with the core alone.

mod common;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use common::{APPID, HMAC_MCH, MD5_MCH};
use serde_json::{Value, json};
use wxedge_core::pay::TradeState as QueryState;
use wxedge_core::v3::aead::ApiV3Key;
use wxedge_core::v3::api_error::{ApiError, Code};
use wxedge_core::v3::authorization::{self, Request};
use wxedge_core::v3::jsapi::{self, JsapiOrder};
use wxedge_core::v3::notify as v3notify;
use wxedge_core::v3::rsa::native::{PrivateKey, PublicKey};
use wxedge_core::v3::verify::{Headers, WechatKeys};
use wxedge_core::{ErrorCode, Fen};
use wxsim::config::{Config, WechatKey};
use wxsim::{Options, Sim};

const SERIAL: &str = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1";
const API_V3_KEY: &str = "a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb";
const KEY_ID: &str = "PUB_KEY_ID_0000000000000024101100397200000006";
const ROTATED_ID: &str = "PUB_KEY_ID_0000000000000024101100397200000007";

/// Three fresh 2048-bit keys (merchant, WeChat, WeChat's second), made once per run with
/// `openssl genpkey`, the way scripts/dev makes them: no key is committed.
struct Keys {
    merchant: String,
    wechat: String,
    rotated: String,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let gen_key = || {
            let out = std::process::Command::new("openssl")
                .args([
                    "genpkey",
                    "-algorithm",
                    "RSA",
                    "-pkeyopt",
                    "rsa_keygen_bits:2048",
                ])
                .output()
                .expect("openssl is needed to make test keys (scripts/test installs it)");
            assert!(out.status.success());
            String::from_utf8(out.stdout).unwrap()
        };
        Keys {
            merchant: gen_key(),
            wechat: gen_key(),
            rotated: gen_key(),
        }
    })
}

fn merchant_key() -> PrivateKey {
    PrivateKey::from_pem(&keys().merchant).unwrap()
}

fn wechat_public() -> PublicKey {
    PrivateKey::from_pem(&keys().wechat).unwrap().public_key()
}

fn rotated_public() -> PublicKey {
    PrivateKey::from_pem(&keys().rotated).unwrap().public_key()
}

/// What the merchant trusts: the 微信支付公钥, or after WeChat's switch the second key.
fn trusted(after_rotation: bool) -> WechatKeys<PublicKey> {
    let (id, key) = if after_rotation {
        (ROTATED_ID, rotated_public())
    } else {
        (KEY_ID, wechat_public())
    };
    WechatKeys::new().with_public_key(id, key).unwrap()
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn config() -> Config {
    let mut c = common::config();
    c.add_merchant_v3(MD5_MCH, SERIAL, merchant_key().public_key(), API_V3_KEY)
        .unwrap();
    c.wechat_key = Some(WechatKey::new(KEY_ID, &keys().wechat).unwrap());
    c.rotated_key = Some(WechatKey::new(ROTATED_ID, &keys().rotated).unwrap());
    c.check().unwrap();
    c
}

/// What the merchant's notify handler concluded about one notify.
#[derive(Debug, Clone)]
struct Seen {
    serial: String,
    /// `Ok((out_trade_no, total))` or the core's error code.
    outcome: Result<(String, u64), String>,
}

#[derive(Clone)]
struct Receiver {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// A merchant's v3 notify handler written only with the core: verify the raw bytes with
/// the headers, decrypt with the APIv3 key, answer 204 or 4xx `{"code":"FAIL"}`.
async fn receiver(with_rotated: bool) -> Receiver {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let s = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/notify",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let s = Arc::clone(&s);
            async move {
                let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
                let h = Headers::from_lookup(get);
                let keys = trusted(false);
                let rotated = trusted(true);
                let use_rotated = with_rotated && h.serial == Some(ROTATED_ID);
                let keys = if use_rotated { &rotated } else { &keys };
                let key = ApiV3Key::new(API_V3_KEY).unwrap();
                let outcome = keys
                    .verify(&h, &body, now())
                    .map_err(|e| e.code().to_owned())
                    .and_then(|v| v3notify::parse_notify(&v, &key).map_err(|e| e.code().to_owned()))
                    .map(|n| (n.out_trade_no, n.total_fee.get()));
                let reply = match &outcome {
                    Ok(_) => v3notify::reply_success(),
                    Err(code) => v3notify::reply_fail(401, code),
                };
                s.lock().unwrap().push(Seen {
                    serial: h.serial.unwrap_or_default().to_owned(),
                    outcome,
                });
                (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver {
        url: format!("http://{addr}/notify"),
        seen,
    }
}

struct H {
    base: String,
    http: reqwest::Client,
    receiver: Receiver,
    _sim: Arc<Sim>,
}

async fn start() -> H {
    start_receiving(false).await
}

async fn start_receiving(with_rotated: bool) -> H {
    let sim = Sim::new(
        config(),
        Options {
            time_scale: 0.0001,
            notify_timeout: Duration::from_millis(500),
            ..Options::default()
        },
        Default::default(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let s = Arc::clone(&sim);
    tokio::spawn(async move { wxsim::serve(listener, s, std::future::pending()).await });
    H {
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
        receiver: receiver(with_rotated).await,
        _sim: sim,
    }
}

/// A v3 answer: status, headers, raw body.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The answer checked as the merchant must: its signature over the raw bytes.
    fn verify_with<T>(
        &self,
        keys: &WechatKeys<PublicKey>,
        then: impl FnOnce(&wxedge_core::v3::verify::Verified<'_>) -> T,
    ) -> Result<T, String> {
        let h = Headers::from_lookup(|n| self.header(n));
        keys.verify(&h, &self.body, now())
            .map(|v| then(&v))
            .map_err(|e| e.code().to_owned())
    }
}

impl H {
    /// Sends a v3 request signed by `signer` (the merchant's key unless a test says
    /// otherwise) under `serial`, exactly as the worker will.
    async fn call_as(
        &self,
        method: &str,
        url: &str,
        body: &str,
        signer: &PrivateKey,
        serial: &str,
        mchid: &str,
    ) -> Answer {
        let nonce = wxedge_core::random::nonce_str().unwrap();
        let request = Request {
            method,
            url,
            timestamp: now(),
            nonce_str: &nonce,
            body: body.as_bytes(),
        };
        let auth = authorization::authorize(signer, mchid, serial, &request).unwrap();
        let req = match method {
            "GET" => self.http.get(format!("{}{url}", self.base)),
            _ => self
                .http
                .post(format!("{}{url}", self.base))
                .header("content-type", "application/json")
                .body(body.to_owned()),
        };
        let res = req
            .header("authorization", auth)
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        Answer {
            status: res.status().as_u16(),
            headers: res.headers().clone(),
            body: res.bytes().await.unwrap(),
        }
    }

    async fn call(&self, method: &str, url: &str, body: &str) -> Answer {
        self.call_as(method, url, body, &merchant_key(), SERIAL, MD5_MCH)
            .await
    }

    async fn user(&self) -> String {
        let (code, openid) = {
            let res = self
                .http
                .post(format!("{}/sim/login", self.base))
                .json(&json!({ "appid": APPID }))
                .send()
                .await
                .unwrap();
            let v: Value = res.json().await.unwrap();
            (
                v["code"].as_str().unwrap().to_owned(),
                v["openid"].as_str().unwrap().to_owned(),
            )
        };
        let url = format!(
            "{}/sns/jscode2session?appid={APPID}&secret={}&js_code={code}&grant_type=authorization_code",
            self.base,
            common::SECRET
        );
        let v: Value = self
            .http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["openid"], openid.as_str());
        openid
    }

    fn prepay_body(&self, out_trade_no: &str, openid: &str, total: u64) -> String {
        jsapi::prepay_body(&JsapiOrder {
            appid: APPID,
            mchid: MD5_MCH,
            description: "v3 demo",
            out_trade_no,
            notify_url: &self.receiver.url,
            total: Fen::new(total),
            openid,
            attach: None,
            time_expire: None,
        })
        .unwrap()
    }

    /// A v3 order placed and its verified prepay_id.
    async fn prepay(&self, out_trade_no: &str, total: u64) -> String {
        let openid = self.user().await;
        let body = self.prepay_body(out_trade_no, &openid, total);
        let a = self.call("POST", jsapi::PREPAY_PATH, &body).await;
        assert_eq!(a.status, 200, "{:?}", a.json());
        a.verify_with(&trusted(false), |v| jsapi::parse_prepay(v).unwrap())
            .unwrap()
    }

    /// wx.requestPayment with the RSA paySign the merchant's key makes.
    async fn pay(&self, prepay_id: &str) -> (u16, Value) {
        let nonce = wxedge_core::random::nonce_str().unwrap();
        let p =
            jsapi::sign_payment_params(&merchant_key(), APPID, prepay_id, now(), &nonce).unwrap();
        let res = self
            .http
            .post(format!("{}/sim/pay", self.base))
            .json(
                &json!({ "appId": p.app_id, "timeStamp": p.time_stamp, "nonceStr": p.nonce_str,
                "package": p.package, "signType": p.sign_type, "paySign": p.pay_sign }),
            )
            .send()
            .await
            .unwrap();
        (
            res.status().as_u16(),
            res.json().await.unwrap_or(Value::Null),
        )
    }

    async fn fault(&self, f: Value) {
        let res = self
            .http
            .post(format!("{}/sim/faults", self.base))
            .json(&f)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 201, "{}", res.text().await.unwrap());
    }

    async fn wait_seen(&self, pred: impl Fn(&[Seen]) -> bool) -> Vec<Seen> {
        for _ in 0..1000 {
            let seen = self.receiver.seen.lock().unwrap().clone();
            if pred(&seen) {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "the notifies never reached the expected state: {:?}",
            self.receiver.seen.lock().unwrap()
        );
    }

    async fn get_json(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

fn query_url(no: &str) -> String {
    jsapi::query_url(no, MD5_MCH).unwrap()
}

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
