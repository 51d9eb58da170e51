//! Properties that hold for every input, not just the ones we thought of.

use proptest::prelude::*;
use wxedge_core::Params;
use wxedge_core::crypt::{Watermark, decrypt_user_data, encrypt_user_data};
use wxedge_core::notify::parse_notify;
use wxedge_core::sign::{self, SignError, SignType};
use wxedge_core::xml::{parse_xml, to_xml};

/// Values people put in WeChat fields, and the ones that break naive XML code.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-zA-Z0-9 ]{0,20}",
        Just("]]>".to_owned()),
        Just("a]]>b]]]]>c".to_owned()),
        Just("<&>\"'".to_owned()),
        Just("老男孩学费 😀".to_owned()),
        Just(String::new()),
    ]
}

fn key() -> impl Strategy<Value = String> {
    "[a-wyzA-WYZ_][A-Za-z0-9_]{0,15}"
}

fn params() -> impl Strategy<Value = Params> {
    prop::collection::btree_map(key(), value(), 0..12)
}

fn sign_type() -> impl Strategy<Value = SignType> {
    prop_oneof![Just(SignType::Md5), Just(SignType::HmacSha256)]
}

/// An independent, deliberately naive implementation of the documented rule.
fn reference_sign(p: &Params, key: &str, t: SignType) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    use md5::{Digest, Md5};
    let mut pairs: Vec<_> = p
        .iter()
        .filter(|(k, v)| !v.is_empty() && *k != "sign")
        .collect();
    pairs.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let s = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let s = format!("{s}&key={key}");
    let bytes: Vec<u8> = match t {
        SignType::Md5 => Md5::digest(s.as_bytes()).to_vec(),
        SignType::HmacSha256 => {
            let mut m = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key.as_bytes()).unwrap();
            m.update(s.as_bytes());
            m.finalize().into_bytes().to_vec()
        }
    };
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn sign_agrees_with_a_naive_reference(p in params(), key in value(), t in sign_type()) {
        prop_assert_eq!(sign::sign(&p, &key, t).to_string(), reference_sign(&p, &key, t));
    }

    #[test]
    fn signed_params_verify_and_any_change_is_caught(mut p in params(), key in value(), t in sign_type(), extra in "[a-z]{1,3}") {
        sign::sign_into(&mut p, &key, t);
        prop_assert_eq!(sign::verify(&p, &key, t), Ok(()));
        // Change one signed value: the sign must no longer verify.
        let target = p.keys().find(|k| *k != "sign" && !p[*k].is_empty()).cloned();
        if let Some(k) = target {
            let mut q = p.clone();
            q.get_mut(&k).unwrap().push_str(&extra);
            prop_assert_eq!(sign::verify(&q, &key, t), Err(SignError::Mismatch));
        }
        // Another key never verifies.
        let other_key = format!("{key}x");
        prop_assert_eq!(sign::verify(&p, &other_key, t), Err(SignError::Mismatch));
    }

    #[test]
    fn xml_round_trips_any_map(p in params()) {
        let xml = to_xml(&p).unwrap();
        prop_assert_eq!(parse_xml(xml.as_bytes()).unwrap(), p);
    }

    #[test]
    fn signed_xml_still_verifies_after_the_wire(mut p in params(), key in "[0-9a-f]{32}", t in sign_type()) {
        sign::sign_into(&mut p, &key, t);
        let back = parse_xml(to_xml(&p).unwrap().as_bytes()).unwrap();
        prop_assert_eq!(sign::verify(&back, &key, t), Ok(()));
    }

    #[test]
    fn parse_xml_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_xml(&bytes);
    }

    #[test]
    fn parse_xml_never_panics_on_xmlish_text(s in "(<|>|/|xml|a|!|\\[|CDATA|\\]|&|;|#|x|\\?|-| |=|\"|DOCTYPE|ENTITY){0,60}") {
        let _ = parse_xml(s.as_bytes());
    }

    #[test]
    fn parse_notify_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512), t in sign_type()) {
        let _ = parse_notify(&bytes, "192006250b4c09247ec02edce69f6a2d", t);
    }

    #[test]
    fn decrypt_never_panics(a in any::<String>(), k in any::<String>(), e in any::<String>(), i in any::<String>()) {
        let _ = decrypt_user_data(&a, &k, &e, &i);
    }

    #[test]
    fn decrypt_never_panics_on_well_formed_but_random_ciphertext(ct in prop::collection::vec(any::<u8>(), 0..96)) {
        use base64::Engine;
        let e = base64::engine::general_purpose::STANDARD.encode(&ct);
        let r = decrypt_user_data("wx4f4bc4dec97d474b", "tiihtNczf5v6AKRyjwEUhQ==", &e, "r7BXXKkLb8qrSNn05n0qiA==");
        prop_assert!(r.is_err(), "random bytes must not decrypt to a valid watermarked profile");
    }

    #[test]
    fn encrypt_then_decrypt_round_trips(nick in any::<String>(), ts in -9_007_199_254_740_991i64..=9_007_199_254_740_991, key in prop::array::uniform16(any::<u8>()), iv in prop::array::uniform16(any::<u8>())) {
        use base64::Engine;
        let key = base64::engine::general_purpose::STANDARD.encode(key);
        let mut data = serde_json::Map::new();
        data.insert("nickName".into(), nick.into());
        let wm = Watermark { appid: "wxapp".into(), timestamp: ts };
        let (enc, iv) = encrypt_user_data(&key, &data, &wm, iv).unwrap();
        let back = decrypt_user_data("wxapp", &key, &enc, &iv).unwrap();
        prop_assert_eq!(back.data, data);
        prop_assert_eq!(back.watermark, wm);
    }
}
