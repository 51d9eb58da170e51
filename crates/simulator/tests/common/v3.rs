//! The APIv3 side of the tests: keys made per run, a wxsim with v3 config, a merchant that
//! signs requests with the core, and a notify receiver that verifies and decrypts payment
//! and refund notifies with the core alone.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Value, json};
use wxedge_core::v3::aead::ApiV3Key;
use wxedge_core::v3::authorization::{self, Request};
use wxedge_core::v3::jsapi::{self, JsapiOrder};
use wxedge_core::v3::notify as v3notify;
use wxedge_core::v3::refund as v3refund;
use wxedge_core::v3::rsa::native::{PrivateKey, PublicKey};
use wxedge_core::v3::verify::{Headers, WechatKeys};
use wxedge_core::{ErrorCode, Fen};
use wxsim::config::{Config, WechatKey};
use wxsim::{Options, Sim};

use super::{APPID, MD5_MCH};

pub const SERIAL: &str = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1";
pub const API_V3_KEY: &str = "a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb";
pub const KEY_ID: &str = "PUB_KEY_ID_0000000000000024101100397200000006";
pub const ROTATED_ID: &str = "PUB_KEY_ID_0000000000000024101100397200000007";

/// Three fresh 2048-bit keys (merchant, WeChat, WeChat's second), made once per run with
/// `openssl genpkey`, the way scripts/dev makes them: no key is committed.
pub struct Keys {
    pub merchant: String,
    pub wechat: String,
    pub rotated: String,
}

pub fn keys() -> &'static Keys {
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

pub fn merchant_key() -> PrivateKey {
    PrivateKey::from_pem(&keys().merchant).unwrap()
}

pub fn wechat_public() -> PublicKey {
    PrivateKey::from_pem(&keys().wechat).unwrap().public_key()
}

pub fn rotated_public() -> PublicKey {
    PrivateKey::from_pem(&keys().rotated).unwrap().public_key()
}

/// What the merchant trusts: the 微信支付公钥, or after WeChat's switch the second key.
pub fn trusted(after_rotation: bool) -> WechatKeys<PublicKey> {
    let (id, key) = if after_rotation {
        (ROTATED_ID, rotated_public())
    } else {
        (KEY_ID, wechat_public())
    };
    WechatKeys::new().with_public_key(id, key).unwrap()
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn config() -> Config {
    let mut c = super::config();
    c.add_merchant_v3(MD5_MCH, SERIAL, merchant_key().public_key(), API_V3_KEY)
        .unwrap();
    c.wechat_key = Some(WechatKey::new(KEY_ID, &keys().wechat).unwrap());
    c.rotated_key = Some(WechatKey::new(ROTATED_ID, &keys().rotated).unwrap());
    c.check().unwrap();
    c
}

/// A payment: `Ok((out_trade_no, total))`; a refund: `Ok((out_refund_no, refund))`; or
/// the core's error code (`REFUSED_BY_TEST` when the test had it refuse).
pub type Outcome = Result<(String, u64), String>;

/// What the merchant's notify handler concluded about one notify.
#[derive(Debug, Clone)]
pub struct Seen {
    pub serial: String,
    /// The envelope's `event_type` (`TRANSACTION.SUCCESS`, `REFUND.SUCCESS`…), once verified.
    pub event: String,
    pub outcome: Outcome,
}

#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// This many next notifies are answered 500, whatever they are.
    pub refuse: Arc<AtomicUsize>,
}

/// A verified notify read as the merchant reads it: a refund's with
/// `v3::refund::parse_notify`, a payment's with `v3::notify::parse_notify`.
fn read_notify(v: &wxedge_core::v3::verify::Verified<'_>, key: &ApiV3Key) -> (String, Outcome) {
    let envelope = match v3notify::parse_envelope(v) {
        Ok(e) => e,
        Err(e) => return (String::new(), Err(e.code().to_owned())),
    };
    let event = envelope.event_type.clone();
    let outcome = if v3refund::is_refund_event(&event) {
        v3refund::parse_notify(&envelope, key)
            .map(|n| (n.state.out_refund_no, n.state.refund.get()))
            .map_err(|e| e.code().to_owned())
    } else {
        v3notify::parse_notify(v, key)
            .map(|n| (n.out_trade_no, n.total_fee.get()))
            .map_err(|e| e.code().to_owned())
    };
    (event, outcome)
}

/// A merchant's v3 notify handler written only with the core: verify the raw bytes with
/// the headers, decrypt with the APIv3 key, answer 204 or 4xx `{"code":"FAIL"}`.
pub async fn receiver(with_rotated: bool) -> Receiver {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let refuse: Arc<AtomicUsize> = Arc::default();
    let (s, r) = (Arc::clone(&seen), Arc::clone(&refuse));
    let app = axum::Router::new().route(
        "/notify",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let (s, r) = (Arc::clone(&s), Arc::clone(&r));
            async move {
                let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
                let h = Headers::from_lookup(get);
                let serial = h.serial.unwrap_or_default().to_owned();
                let refused = r
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                if refused {
                    s.lock().unwrap().push(Seen {
                        serial,
                        event: String::new(),
                        outcome: Err("REFUSED_BY_TEST".into()),
                    });
                    return (StatusCode::INTERNAL_SERVER_ERROR, "busy").into_response();
                }
                let keys = trusted(false);
                let rotated = trusted(true);
                let use_rotated = with_rotated && h.serial == Some(ROTATED_ID);
                let keys = if use_rotated { &rotated } else { &keys };
                let key = ApiV3Key::new(API_V3_KEY).unwrap();
                let (event, outcome) = match keys.verify(&h, &body, now()) {
                    Ok(v) => read_notify(&v, &key),
                    Err(e) => (String::new(), Err(e.code().to_owned())),
                };
                let reply = match &outcome {
                    Ok(_) => v3notify::reply_success(),
                    Err(code) => v3notify::reply_fail(401, code),
                };
                s.lock().unwrap().push(Seen {
                    serial,
                    event,
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
        refuse,
    }
}

pub struct H {
    pub base: String,
    pub http: reqwest::Client,
    pub receiver: Receiver,
    pub sim: Arc<Sim>,
}

/// The options the tests run with: WeChat's delays × 0.0001.
pub fn options() -> Options {
    Options {
        time_scale: 0.0001,
        notify_timeout: Duration::from_millis(500),
        ..Options::default()
    }
}

pub async fn start() -> H {
    start_receiving(false).await
}

pub async fn start_receiving(with_rotated: bool) -> H {
    start_with(options(), Default::default(), receiver(with_rotated).await).await
}

/// A wxsim with these options and state, its notifies (those the tests place) going to
/// `receiver`.
pub async fn start_with(options: Options, state: wxsim::state::State, receiver: Receiver) -> H {
    let sim = Sim::new(config(), options, state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let s = Arc::clone(&sim);
    tokio::spawn(async move { wxsim::serve(listener, s, std::future::pending()).await });
    H {
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
        receiver,
        sim,
    }
}

/// A v3 answer: status, headers, raw body.
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The answer checked as the merchant must: its signature over the raw bytes.
    pub fn verify_with<T>(
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
    pub async fn call_as(
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

    pub async fn call(&self, method: &str, url: &str, body: &str) -> Answer {
        self.call_as(method, url, body, &merchant_key(), SERIAL, MD5_MCH)
            .await
    }

    pub async fn user(&self) -> String {
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
            super::SECRET
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

    pub fn prepay_body(&self, out_trade_no: &str, openid: &str, total: u64) -> String {
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
    pub async fn prepay(&self, out_trade_no: &str, total: u64) -> String {
        let openid = self.user().await;
        let body = self.prepay_body(out_trade_no, &openid, total);
        let a = self.call("POST", jsapi::PREPAY_PATH, &body).await;
        assert_eq!(a.status, 200, "{:?}", a.json());
        a.verify_with(&trusted(false), |v| jsapi::parse_prepay(v).unwrap())
            .unwrap()
    }

    /// wx.requestPayment with the RSA paySign the merchant's key makes.
    pub async fn pay(&self, prepay_id: &str) -> (u16, Value) {
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

    pub async fn fault(&self, f: Value) {
        let res = self
            .http
            .post(format!("{}/sim/faults", self.base))
            .json(&f)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 201, "{}", res.text().await.unwrap());
    }

    pub async fn wait_seen(&self, pred: impl Fn(&[Seen]) -> bool) -> Vec<Seen> {
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

    pub async fn get_json(&self, path: &str) -> Value {
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

pub fn query_url(no: &str) -> String {
    jsapi::query_url(no, MD5_MCH).unwrap()
}
