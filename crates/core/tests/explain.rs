//! explain_sign names the mistake behind a "签名错误", reproducing each one for real.

use md5::{Digest, Md5};
use wxedge_core::Params;
use wxedge_core::explain::{Context, Mistake, explain_sign};
use wxedge_core::pay::payment_params;
use wxedge_core::sign::{self, SignType};

mod common;
use common::DOC_KEY as KEY;

fn doc() -> Params {
    common::doc_params()
}

/// wx.requestPayment params for the doc appid, signed with the doc key.
fn doc_payment_params() -> Params {
    payment_params(
        "wxd930ea5d5a258f4f",
        "wx2017",
        KEY,
        SignType::Md5,
        1_700_000_000,
        "n0nce",
    )
    .to_params()
}

fn md5_upper(s: &str) -> String {
    Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

fn codes(m: &[Mistake]) -> Vec<&'static str> {
    m.iter().map(Mistake::code).collect()
}

#[test]
fn a_right_sign_matches_and_shows_the_string() {
    let e = explain_sign(
        &doc(),
        KEY,
        "9A0A8659F005D6984697E2CA0A9CF3B7",
        Context::default(),
    );
    assert!(e.matches);
    assert!(e.mistakes.is_empty());
    assert_eq!(
        e.canonical,
        "appid=wxd930ea5d5a258f4f&body=test&device_info=1000&mch_id=10000100&nonce_str=ibuaiVcKdpRxkhJA"
    );
    assert_eq!(e.md5, "9A0A8659F005D6984697E2CA0A9CF3B7");
    assert_eq!(
        e.hmac_sha256,
        "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6"
    );
    assert!(
        !e.string_to_sign.contains(KEY),
        "the key is masked: {}",
        e.string_to_sign
    );
    assert!(
        e.string_to_sign
            .ends_with("&key=<API key: 32 chars, ends \"6a2d\">")
    );
}

#[test]
fn other_algorithm() {
    let mut p = doc();
    p.insert("sign_type".into(), "HMAC-SHA256".into());
    let md5 = sign::sign(&p, KEY, SignType::Md5).to_string();
    let e = explain_sign(&p, KEY, &md5, Context::default());
    assert_eq!(
        e.mistakes,
        vec![Mistake::OtherAlgorithm {
            used: "MD5".into(),
            expected: "HMAC-SHA256".into()
        }]
    );
}

#[test]
fn lowercase_hex() {
    let e = explain_sign(
        &doc(),
        KEY,
        "9a0a8659f005d6984697e2ca0a9cf3b7",
        Context::default(),
    );
    assert_eq!(codes(&e.mistakes), ["LOWERCASE_HEX"]);
}

#[test]
fn sign_and_empty_values_included() {
    let mut p = doc();
    p.insert("sign".into(), "OLD".into());
    let bad = md5_upper(&format!(
        "{}&key={KEY}",
        "appid=wxd930ea5d5a258f4f&body=test&device_info=1000&mch_id=10000100&nonce_str=ibuaiVcKdpRxkhJA&sign=OLD"
    ));
    assert_eq!(
        codes(&explain_sign(&p, KEY, &bad, Context::default()).mistakes),
        ["SIGN_INCLUDED"]
    );

    let mut p = doc();
    p.insert("attach".into(), String::new());
    let bad = md5_upper(&format!(
        "appid=wxd930ea5d5a258f4f&attach=&body=test&device_info=1000&mch_id=10000100&nonce_str=ibuaiVcKdpRxkhJA&key={KEY}"
    ));
    assert_eq!(
        explain_sign(&p, KEY, &bad, Context::default()).mistakes,
        vec![Mistake::EmptyValuesIncluded {
            keys: vec!["attach".into()]
        }]
    );
}

#[test]
fn sign_type_left_out_or_added() {
    let mut p = doc();
    p.insert("sign_type".into(), "MD5".into());
    let without = sign::sign(&doc(), KEY, SignType::Md5).to_string();
    assert_eq!(
        codes(&explain_sign(&p, KEY, &without, Context::default()).mistakes),
        ["SIGN_TYPE_LEFT_OUT"]
    );

    let mut with = doc();
    with.insert("sign_type".into(), "HMAC-SHA256".into());
    let s = sign::sign(&with, KEY, SignType::HmacSha256).to_string();
    let e = explain_sign(&doc(), KEY, &s, Context::default());
    assert_eq!(codes(&e.mistakes), ["OTHER_ALGORITHM", "SIGN_TYPE_ADDED"]);
}

#[test]
fn timestamp_casing_in_payment_params() {
    let pp = doc_payment_params();
    let mut wrong = pp.clone();
    let ts = wrong.remove("timeStamp").unwrap();
    wrong.insert("timestamp".into(), ts);
    wrong.remove("paySign");
    let bad = sign::sign(&wrong, KEY, SignType::Md5).to_string();
    let e = explain_sign(&pp, KEY, &bad, Context::default());
    assert_eq!(
        e.mistakes,
        vec![Mistake::KeyCasing {
            signed_as: "timestamp".into(),
            expected: "timeStamp".into()
        }]
    );
    assert!(
        !e.canonical.contains("paySign"),
        "paySign is never part of the string"
    );
}

#[test]
fn unifiedorder_sign_passed_as_pay_sign() {
    let pp = doc_payment_params();
    let unified = "C380BEC2BFD727A4B6845133519F3AD6";
    let e = explain_sign(
        &pp,
        KEY,
        unified,
        Context {
            unified_order_sign: Some(unified),
            ..Context::default()
        },
    );
    assert_eq!(codes(&e.mistakes), ["UNIFIED_ORDER_SIGN_AS_PAY_SIGN"]);
}

#[test]
fn whitespace_in_value_or_key() {
    let mut p = doc();
    p.insert("body".into(), "test ".into());
    let trimmed = sign::sign(&doc(), KEY, SignType::Md5).to_string();
    assert_eq!(
        codes(&explain_sign(&p, KEY, &trimmed, Context::default()).mistakes),
        ["WHITESPACE_IN_VALUE"]
    );

    let with_newline = sign::sign(&doc(), &format!("{KEY}\n"), SignType::Md5).to_string();
    assert_eq!(
        codes(&explain_sign(&doc(), KEY, &with_newline, Context::default()).mistakes),
        ["WHITESPACE_IN_KEY"]
    );
    let right = sign::sign(&doc(), KEY, SignType::Md5).to_string();
    assert_eq!(
        codes(&explain_sign(&doc(), &format!(" {KEY}"), &right, Context::default()).mistakes),
        ["WHITESPACE_IN_KEY"]
    );
}

#[test]
fn app_secret_used_as_key_and_key_not_appended() {
    let secret = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
    let bad = sign::sign(&doc(), secret, SignType::Md5).to_string();
    let e = explain_sign(
        &doc(),
        KEY,
        &bad,
        Context {
            app_secret: Some(secret),
            ..Context::default()
        },
    );
    assert_eq!(codes(&e.mistakes), ["APP_SECRET_AS_KEY"]);

    let bad = md5_upper(
        "appid=wxd930ea5d5a258f4f&body=test&device_info=1000&mch_id=10000100&nonce_str=ibuaiVcKdpRxkhJA",
    );
    assert_eq!(
        codes(&explain_sign(&doc(), KEY, &bad, Context::default()).mistakes),
        ["KEY_NOT_APPENDED"]
    );
}

#[test]
fn unexplained_mismatch_says_what_to_check() {
    let e = explain_sign(
        &doc(),
        KEY,
        "0123456789ABCDEF0123456789ABCDEF",
        Context::default(),
    );
    assert!(!e.matches);
    assert!(e.mistakes.is_empty());
    assert!(e.hint.contains("API key"), "{}", e.hint);
    // Mistakes explain themselves in words a developer can act on.
    assert!(Mistake::LowercaseHex.to_string().contains("uppercase"));
}

#[test]
fn keys_not_sorted_in_byte_order() {
    let p: Params = [("Zone", "1"), ("amount", "2")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let bad = md5_upper(&format!("amount=2&Zone=1&key={KEY}"));
    assert_eq!(
        codes(&explain_sign(&p, KEY, &bad, Context::default()).mistakes),
        ["NOT_SORTED"]
    );
}
