//! A wxsim served on a real loopback port, a notify receiver the test scripts, and a
//! client that speaks to both over HTTP.
#![allow(dead_code)]

pub mod v3;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};
use wxedge_core::pay::{Merchant, UnifiedOrder};
use wxedge_core::{Fen, Params, SignType};
use wxsim::config::Config;
use wxsim::{Options, Sim};

pub const APPID: &str = "wxsim0000000000001";
pub const SECRET: &str = "0123456789abcdef0123456789abcdef";
pub const MD5_MCH: &str = "1900000001";
pub const HMAC_MCH: &str = "1900000002";
pub const MD5_KEY: &str = "md5key0000000000000000000000000A";
pub const HMAC_KEY: &str = "hmackey000000000000000000000000B";
pub const OTHER_APPID: &str = "wxsim0000000000002";

pub fn config() -> Config {
    let mut c = Config::default();
    c.add_app(APPID, SECRET, false).unwrap();
    c.add_app(OTHER_APPID, "other-secret", true).unwrap();
    c.add_merchant(MD5_MCH, MD5_KEY, APPID, SignType::Md5)
        .unwrap();
    c.add_merchant(HMAC_MCH, HMAC_KEY, APPID, SignType::HmacSha256)
        .unwrap();
    c
}

pub fn merchant(mch_id: &str) -> Merchant {
    let (key, st) = if mch_id == MD5_MCH {
        (MD5_KEY, SignType::Md5)
    } else {
        (HMAC_KEY, SignType::HmacSha256)
    };
    Merchant {
        appid: APPID.into(),
        mch_id: mch_id.into(),
        key: key.into(),
        sign_type: st,
    }
}

#[derive(Clone)]
pub struct Harness {
    pub base: String,
    pub sim: Arc<Sim>,
    pub http: reqwest::Client,
    pub receiver: Receiver,
}

/// Starts wxsim (time scaled by `time_scale`) and a notify receiver.
pub async fn start(time_scale: f64) -> Harness {
    start_with(Options {
        time_scale,
        notify_timeout: Duration::from_millis(500),
        ..Options::default()
    })
    .await
}

pub async fn start_with(options: Options) -> Harness {
    start_with_state(options, Default::default()).await
}

pub async fn start_with_state(options: Options, state: wxsim::state::State) -> Harness {
    let sim = Sim::new(config(), options, state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let s = Arc::clone(&sim);
    tokio::spawn(async move { wxsim::serve(listener, s, std::future::pending()).await });
    Harness {
        base: format!("http://{addr}"),
        sim,
        http: reqwest::Client::new(),
        receiver: Receiver::start().await,
    }
}

/// What the receiver answers next: a status and a body.
pub type Answer = (u16, String);

/// A notify_url under the test's control: records every body, answers from a script
/// (then SUCCESS once the script runs out).
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    pub bodies: Arc<Mutex<Vec<String>>>,
    pub script: Arc<Mutex<VecDeque<Answer>>>,
}

pub fn success_xml() -> String {
    "<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>".into()
}

pub fn fail_xml() -> String {
    "<xml><return_code><![CDATA[FAIL]]></return_code><return_msg><![CDATA[busy]]></return_msg></xml>".into()
}

impl Receiver {
    async fn start() -> Receiver {
        let bodies: Arc<Mutex<Vec<String>>> = Arc::default();
        let script: Arc<Mutex<VecDeque<Answer>>> = Arc::default();
        let (b, s) = (Arc::clone(&bodies), Arc::clone(&script));
        let app = axum::Router::new().route(
            "/notify",
            axum::routing::post(move |body: Bytes| {
                let (b, s) = (Arc::clone(&b), Arc::clone(&s));
                async move {
                    b.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&body).into_owned());
                    let (status, text) = s
                        .lock()
                        .unwrap()
                        .pop_front()
                        .unwrap_or((200, success_xml()));
                    (StatusCode::from_u16(status).unwrap(), text).into_response()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver {
            url: format!("http://{addr}/notify"),
            bodies,
            script,
        }
    }

    pub fn answer_next(&self, answers: impl IntoIterator<Item = Answer>) {
        self.script.lock().unwrap().extend(answers);
    }

    pub fn bodies(&self) -> Vec<String> {
        self.bodies.lock().unwrap().clone()
    }
}

impl Harness {
    pub async fn post_json(&self, path: &str, body: Value) -> (u16, Value) {
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    pub async fn post_xml(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, String) {
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .body(body)
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    }

    /// `GET /sns/jscode2session` with these query pairs; the JSON answer.
    pub async fn code2session(&self, pairs: &[(&str, &str)]) -> Value {
        let res = self
            .http
            .get(format!("{}/sns/jscode2session", self.base))
            .query(pairs)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "WeChat answers jscode2session with 200");
        serde_json::from_str(&res.text().await.unwrap()).unwrap()
    }

    /// A code for `openid` of `appid` (a new user when `openid` is None).
    pub async fn sim_login(&self, appid: &str, openid: Option<&str>) -> (String, String) {
        let mut body = json!({ "appid": appid });
        if let Some(o) = openid {
            body["openid"] = json!(o);
        }
        let (status, v) = self.post_json("/sim/login", body).await;
        assert_eq!(status, 200, "{v}");
        (
            v["code"].as_str().unwrap().to_owned(),
            v["openid"].as_str().unwrap().to_owned(),
        )
    }

    /// A logged-in user: (openid, session_key).
    pub async fn logged_in_user(&self) -> (String, String) {
        let (code, openid) = self.sim_login(APPID, None).await;
        let v = self
            .code2session(&[
                ("appid", APPID),
                ("secret", SECRET),
                ("js_code", &code),
                ("grant_type", "authorization_code"),
            ])
            .await;
        assert_eq!(v["openid"], openid.as_str(), "{v}");
        (openid, v["session_key"].as_str().unwrap().to_owned())
    }

    pub fn order(&self, out_trade_no: &str, fee: u64, openid: &str) -> UnifiedOrder {
        UnifiedOrder {
            body: "wxsim test".into(),
            out_trade_no: out_trade_no.into(),
            total_fee: Fen::new(fee),
            spbill_create_ip: "127.0.0.1".into(),
            notify_url: self.receiver.url.clone(),
            trade_type: Default::default(),
            openid: Some(openid.into()),
            attach: None,
            time_expire: None,
        }
    }

    /// unifiedorder through the client rules of the core: the prepay_id, or the error.
    pub async fn unified_order(
        &self,
        m: &Merchant,
        order: &UnifiedOrder,
    ) -> Result<String, wxedge_core::pay::PayError> {
        let body = m
            .unified_order_request(order, &wxedge_core::random::nonce_str().unwrap())
            .unwrap();
        let (status, answer) = self.post_xml("/pay/unifiedorder", body).await;
        assert_eq!(status, 200, "{answer}");
        m.parse_unified_order_response(answer.as_bytes())
            .map(|p| p.prepay_id)
    }

    /// Places an order and pays it through `/sim/pay`; the out_trade_no.
    pub async fn paid_order(&self, m: &Merchant, fee: u64) -> String {
        let (openid, _) = self.logged_in_user().await;
        let no = wxedge_core::random::out_trade_no().unwrap();
        let prepay = self
            .unified_order(m, &self.order(&no, fee, &openid))
            .await
            .unwrap();
        let (status, v) = self.pay(m, &prepay).await;
        assert_eq!(status, 200, "{v}");
        no
    }

    /// `/sim/pay` with the fields `paymentParams` would give the app.
    pub async fn pay(&self, m: &Merchant, prepay_id: &str) -> (u16, Value) {
        let p = m.payment_params(prepay_id, 1_795_000_000, "nonce123");
        self.post_json("/sim/pay", serde_json::to_value(&p).unwrap())
            .await
    }

    pub async fn order_state(&self, out_trade_no: &str) -> Value {
        let (status, v) = self.get_json(&format!("/sim/orders/{out_trade_no}")).await;
        assert_eq!(status, 200, "{v}");
        v
    }

    /// Waits until `pred` holds of the delivery log of `out_trade_no` (or panics after 10 s).
    pub async fn wait_deliveries(
        &self,
        out_trade_no: &str,
        pred: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        for _ in 0..1000 {
            let (_, v) = self
                .get_json(&format!("/sim/notifications?out_trade_no={out_trade_no}"))
                .await;
            let list = v["notifications"].as_array().cloned().unwrap_or_default();
            if pred(&list) {
                return list;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("deliveries of {out_trade_no} never reached the expected state");
    }
}

/// Parses the answer params of a Pay call without judging them.
pub fn params(xml: &str) -> Params {
    wxedge_core::xml::parse_xml(xml.as_bytes()).unwrap()
}
