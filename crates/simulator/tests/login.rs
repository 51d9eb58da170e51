//! jscode2session and the app's login and user info, over HTTP.

mod common;

use common::*;
use serde_json::json;
use wxedge_core::crypt::{self, CryptError};

fn q<'a>(appid: &'a str, secret: &'a str, code: &'a str) -> [(&'a str, &'a str); 4] {
    [
        ("appid", appid),
        ("secret", secret),
        ("js_code", code),
        ("grant_type", "authorization_code"),
    ]
}

#[tokio::test]
async fn a_code_is_good_once_for_its_appid() {
    let h = start(1.0).await;
    let (code, openid) = h.sim_login(APPID, Some("oUser_1")).await;
    assert_eq!(openid, "oUser_1");
    let v = h.code2session(&q(APPID, SECRET, &code)).await;
    assert_eq!(v["openid"], "oUser_1");
    assert!(v.get("unionid").is_none(), "this app has no unionid: {v}");
    let key = v["session_key"].as_str().unwrap();
    use base64::Engine;
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(key)
            .unwrap()
            .len(),
        16
    );
    assert_eq!(
        h.code2session(&q(APPID, SECRET, &code)).await["errcode"],
        40163
    );

    // A code is valid for the appid that asked for it only.
    let (code, _) = h.sim_login(APPID, None).await;
    let v = h.code2session(&q(OTHER_APPID, "other-secret", &code)).await;
    assert_eq!(v["errcode"], 40029, "{v}");
    assert!(
        v["errmsg"]
            .as_str()
            .unwrap()
            .starts_with("invalid code, rid: ")
    );

    // The other app was configured with unionids.
    let (code, _) = h.sim_login(OTHER_APPID, None).await;
    let v = h.code2session(&q(OTHER_APPID, "other-secret", &code)).await;
    assert!(v["unionid"].as_str().unwrap().starts_with('u'), "{v}");
}

#[tokio::test]
async fn every_errcode_wechat_documents() {
    let h = start(1.0).await;
    let (code, _) = h.sim_login(APPID, None).await;
    for (pairs, errcode) in [
        (q(APPID, "wrong", &code).to_vec(), 40125),
        (q("wxnope", SECRET, &code).to_vec(), 40013),
        (q(APPID, SECRET, "not-a-code").to_vec(), 40029),
        (q(APPID, SECRET, &code)[1..].to_vec(), 41002),
        (vec![("appid", APPID), ("js_code", &code)], 41004),
        (vec![("appid", APPID), ("secret", SECRET)], 41008),
        (
            vec![("appid", APPID), ("secret", SECRET), ("js_code", &code)],
            40002,
        ),
    ] {
        assert_eq!(
            h.code2session(&pairs).await["errcode"],
            errcode,
            "{pairs:?}"
        );
    }
    // None of those used the code up.
    assert!(h.code2session(&q(APPID, SECRET, &code)).await["openid"].is_string());

    // Five minutes later a code is dead.
    let (code, _) = h.sim_login(APPID, None).await;
    let (s, _) = h
        .post_json("/sim/clock", json!({"advance_secs": 301}))
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        h.code2session(&q(APPID, SECRET, &code)).await["errcode"],
        40029
    );

    // A high-risk user is refused.
    let (s, v) = h
        .post_json("/sim/login", json!({"appid": APPID, "high_risk": true}))
        .await;
    assert_eq!(s, 200);
    let v = h
        .code2session(&q(APPID, SECRET, v["code"].as_str().unwrap()))
        .await;
    assert_eq!(v["errcode"], 40226);
}

#[tokio::test]
async fn a_hundred_logins_a_minute_per_user() {
    let h = start(1.0).await;
    for i in 0..101 {
        let (code, _) = h.sim_login(APPID, Some("oBusy")).await;
        let v = h.code2session(&q(APPID, SECRET, &code)).await;
        if i < 100 {
            assert!(v["openid"].is_string(), "call {i}: {v}");
        } else {
            assert_eq!(v["errcode"], 45011, "{v}");
        }
    }
    // Another user is not limited; a minute later neither is this one.
    let (code, _) = h.sim_login(APPID, Some("oCalm")).await;
    assert!(h.code2session(&q(APPID, SECRET, &code)).await["openid"].is_string());
    h.post_json("/sim/clock", json!({"advance_secs": 61})).await;
    let (code, _) = h.sim_login(APPID, Some("oBusy")).await;
    assert!(h.code2session(&q(APPID, SECRET, &code)).await["openid"].is_string());
}

#[tokio::test]
async fn user_info_is_encrypted_under_the_current_session_key() {
    let h = start(1.0).await;
    let (openid, first_key) = h.logged_in_user().await;
    let info = |profile: serde_json::Value| {
        let h = &h;
        let openid = openid.clone();
        async move {
            let (s, v) = h
                .post_json(
                    "/sim/userinfo",
                    json!({"appid": APPID, "openid": openid, "profile": profile}),
                )
                .await;
            assert_eq!(s, 200, "{v}");
            v
        }
    };
    let v = info(json!({"nickName": "小明🐼"})).await;
    let s = |k: &str| v[k].as_str().unwrap().to_owned();
    let data = crypt::decrypt_user_data(APPID, &first_key, &s("encryptedData"), &s("iv")).unwrap();
    assert_eq!(data.data["nickName"], "小明🐼");
    assert_eq!(data.data["openId"], openid.as_str());
    assert_eq!(data.watermark.appid, APPID);
    crypt::verify_raw_data(&s("rawData"), &first_key, &s("signature")).unwrap();
    assert_eq!(v["userInfo"]["nickName"], "小明🐼");

    // A second login gives a new session_key: new data is under it, the old key fails.
    let (code, _) = h.sim_login(APPID, Some(&openid)).await;
    let second = h.code2session(&q(APPID, SECRET, &code)).await;
    let second_key = second["session_key"].as_str().unwrap();
    assert_ne!(second_key, first_key);
    let v = info(json!({})).await;
    let s = |k: &str| v[k].as_str().unwrap().to_owned();
    assert!(crypt::decrypt_user_data(APPID, second_key, &s("encryptedData"), &s("iv")).is_ok());
    let stale = crypt::decrypt_user_data(APPID, &first_key, &s("encryptedData"), &s("iv"));
    assert!(
        matches!(stale, Err(CryptError::BadPadding | CryptError::NotJson)),
        "{stale:?}"
    );
    assert_eq!(
        crypt::verify_raw_data(&s("rawData"), &first_key, &s("signature")),
        Err(CryptError::RawDataSignatureMismatch)
    );
}

#[tokio::test]
async fn app_side_bad_input_gets_a_clear_error() {
    let h = start(1.0).await;
    for (path, body, status) in [
        ("/sim/login", json!({"appid": "wxnope"}), 404),
        ("/sim/login", json!({"appid": APPID, "openid": "a b"}), 400),
        ("/sim/login", json!({"appid": APPID, "extra": 1}), 400),
        ("/sim/login", json!([1, 2]), 400),
        (
            "/sim/userinfo",
            json!({"appid": APPID, "openid": "oNobody"}),
            404,
        ),
        ("/sim/clock", json!({"advance_secs": -5}), 400),
        (
            "/sim/faults",
            json!({"target": "notify", "kind": "http500"}),
            400,
        ),
        (
            "/sim/faults",
            json!({"target": "moon", "kind": "timeout"}),
            400,
        ),
    ] {
        let (s, v) = h.post_json(path, body.clone()).await;
        assert_eq!(s, status, "{path} {body}: {v}");
        assert!(v["errMsg"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    }
    // Logged in through /sim/login but the code never exchanged: no session yet.
    let (_, openid) = h.sim_login(APPID, None).await;
    let (s, v) = h
        .post_json("/sim/userinfo", json!({"appid": APPID, "openid": openid}))
        .await;
    assert_eq!(s, 409, "{v}");
    let (s, v) = h.get_json("/nope").await;
    assert_eq!(s, 404);
    assert!(v["errMsg"].as_str().unwrap().contains("/nope"));
}

#[tokio::test]
async fn jscode2session_faults() {
    let h = start(1.0).await;
    let (code, _) = h.sim_login(APPID, None).await;
    for (kind, delay) in [
        ("http500", None),
        ("timeout", Some(50)),
        ("system_error", None),
    ] {
        let mut f = json!({"target": "jscode2session", "kind": kind});
        if let Some(d) = delay {
            f["delay_ms"] = json!(d);
        }
        let (s, v) = h.post_json("/sim/faults", f).await;
        assert_eq!(s, 201, "{v}");
    }
    let status = |pairs| {
        let h = &h;
        async move {
            h.http
                .get(format!("{}/sns/jscode2session", h.base))
                .query(pairs)
                .send()
                .await
                .unwrap()
        }
    };
    let pairs = q(APPID, SECRET, &code);
    assert_eq!(status(&pairs).await.status(), 500);
    assert_eq!(status(&pairs).await.status(), 504);
    assert_eq!(
        h.code2session(&q(APPID, SECRET, &code)).await["errcode"],
        -1
    );
    // Faults used up, and none of them spent the code.
    assert!(h.code2session(&q(APPID, SECRET, &code)).await["openid"].is_string());
}
