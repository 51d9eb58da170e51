//! Every way an input can be wrong, and the typed error (with its stable code) it gets.

use wxedge_core::crypt::{
    CryptError, Field, Watermark, decrypt_user_data, encrypt_user_data, verify_raw_data,
};
use wxedge_core::xml::{XmlError, parse_xml, parse_xml_with_limit, to_xml};
use wxedge_core::{ErrorCode, Params};

#[test]
fn xml_bad_inputs() {
    let big = format!("<xml><a>{}</a></xml>", "x".repeat(70 * 1024));
    let cases: Vec<(&str, &[u8], XmlError, &str)> = vec![
        ("over the bound", big.as_bytes(), XmlError::TooLarge { size: big.len(), limit: 65536 }, "XML_TOO_LARGE"),
        ("not utf-8", b"<xml><a>\xff</a></xml>", XmlError::NotUtf8, "XML_NOT_UTF8"),
        ("doctype", b"<!DOCTYPE xml><xml><a>1</a></xml>", XmlError::Doctype, "XML_DOCTYPE"),
        (
            "xxe entity declaration",
            b"<?xml version=\"1.0\"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]><xml><a>&xxe;</a></xml>",
            XmlError::EntityDeclaration,
            "XML_ENTITY_DECLARATION",
        ),
        (
            "billion laughs",
            b"<!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;&lol;\">]><xml><a>&lol2;</a></xml>",
            XmlError::EntityDeclaration,
            "XML_ENTITY_DECLARATION",
        ),
        ("undefined entity", b"<xml><a>&nbsp;</a></xml>", XmlError::UnknownEntity("nbsp".into()), "XML_UNKNOWN_ENTITY"),
        ("empty body", b"", XmlError::MissingRoot, "XML_MISSING_ROOT"),
        ("json, not xml", b"{\"a\":1}", XmlError::MissingRoot, "XML_MISSING_ROOT"),
        ("wrong root", b"<root><a>1</a></root>", XmlError::WrongRoot("root".into()), "XML_WRONG_ROOT"),
        ("nested", b"<xml><a><b>1</b></a></xml>", XmlError::Nested("b".into()), "XML_NESTED"),
        (
            "duplicate key",
            b"<xml><total_fee>1</total_fee><total_fee>100</total_fee></xml>",
            XmlError::DuplicateKey("total_fee".into()),
            "XML_DUPLICATE_KEY",
        ),
        ("attributes", b"<xml><a x=\"1\">1</a></xml>", XmlError::Attributes("a".into()), "XML_ATTRIBUTES"),
        ("trailing garbage", b"<xml><a>1</a></xml>junk", XmlError::TrailingContent, "XML_TRAILING_CONTENT"),
        ("second root", b"<xml></xml><xml></xml>", XmlError::TrailingContent, "XML_TRAILING_CONTENT"),
        ("stray text", b"<xml>hello<a>1</a></xml>", XmlError::StrayText, "XML_STRAY_TEXT"),
        ("unclosed", b"<xml><a>1</a>", XmlError::Unclosed, "XML_UNCLOSED"),
    ];
    for (name, body, want, code) in cases {
        let got = parse_xml(body).expect_err(name);
        assert_eq!(got, want, "{name}");
        assert_eq!(got.code(), code, "{name}");
        assert!(!got.to_string().is_empty());
    }
    // Malformed: mismatched tags carry a position.
    let e = parse_xml(b"<xml><a>1</b></xml>").unwrap_err();
    assert_eq!(e.code(), "XML_MALFORMED", "{e}");
    // A bound of our choosing.
    assert!(matches!(
        parse_xml_with_limit(b"<xml></xml>", 5),
        Err(XmlError::TooLarge { size: 11, limit: 5 })
    ));
    // Writing refuses keys that are not XML names.
    let mut p = Params::new();
    p.insert("a b".into(), "1".into());
    assert_eq!(to_xml(&p), Err(XmlError::InvalidKey("a b".into())));
}

const APPID: &str = "wx4f4bc4dec97d474b";
const KEY: &str = "tiihtNczf5v6AKRyjwEUhQ==";
const IV: &str = "r7BXXKkLb8qrSNn05n0qiA==";

fn encrypt(plain_json: &str, iv: [u8; 16]) -> (String, String) {
    let data: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(plain_json).unwrap();
    let wm: Watermark = serde_json::from_value(data["watermark"].clone()).unwrap();
    let mut data = data;
    data.remove("watermark");
    encrypt_user_data(KEY, &data, &wm, iv).unwrap()
}

/// Raw AES-CBC with chosen padding, to build payloads our encrypt would never produce.
fn encrypt_raw(plain: &[u8]) -> String {
    use aes::Aes128;
    use base64::Engine;
    use cbc::cipher::{BlockModeEncrypt, KeyIvInit, block_padding::NoPadding};
    let b64 = base64::engine::general_purpose::STANDARD;
    let key: [u8; 16] = b64.decode(KEY).unwrap().try_into().unwrap();
    let iv: [u8; 16] = b64.decode(IV).unwrap().try_into().unwrap();
    let mut buf = plain.to_vec();
    let n = buf.len();
    cbc::Encryptor::<Aes128>::new(&key.into(), &iv.into())
        .encrypt_padded::<NoPadding>(&mut buf, n)
        .unwrap();
    b64.encode(buf)
}

/// (what is wrong, (session_key, encryptedData, iv), the error, its code)
type DecryptCase<'a> = (&'a str, (&'a str, &'a str, &'a str), CryptError, &'a str);

#[test]
fn decrypt_bad_inputs() {
    let (good, good_iv) = encrypt(
        r#"{"nickName":"n","watermark":{"appid":"wx4f4bc4dec97d474b","timestamp":1}}"#,
        [7; 16],
    );
    assert!(decrypt_user_data(APPID, KEY, &good, &good_iv).is_ok());

    // A well-formed plaintext whose last pad byte is right but an earlier one is not:
    // the seed's `_unpad` accepts it, we must not.
    let mut half_padded =
        br#"{"a":1,"watermark":{"appid":"wx4f4bc4dec97d474b","timestamp":1}}"#.to_vec();
    let pad = 16 - half_padded.len() % 16;
    half_padded.extend(std::iter::repeat_n(pad as u8, pad));
    let last = half_padded.len() - 2;
    half_padded[last] ^= 0x01;
    let not_json = encrypt_raw(
        b"this is not json\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10",
    );
    let no_wm = encrypt_raw(
        b"{\"nickName\":\"x\"}\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10",
    );
    let half_padded = encrypt_raw(&half_padded);
    let (other_app, other_iv) = encrypt(
        r#"{"watermark":{"appid":"wxOTHER","timestamp":1}}"#,
        [3; 16],
    );
    let stale_key = "AAAAAAAAAAAAAAAAAAAAAA==";

    let cases: Vec<DecryptCase> = vec![
        (
            "key not base64",
            ("!!", &good, &good_iv),
            CryptError::BadBase64 {
                field: Field::SessionKey,
                hint: "",
            },
            "BAD_BASE64",
        ),
        (
            "data not base64",
            (KEY, "%%%", &good_iv),
            CryptError::BadBase64 {
                field: Field::EncryptedData,
                hint: "",
            },
            "BAD_BASE64",
        ),
        (
            "iv not base64",
            (KEY, &good, "@@"),
            CryptError::BadBase64 {
                field: Field::Iv,
                hint: "",
            },
            "BAD_BASE64",
        ),
        (
            "key of 8 bytes",
            ("AAAAAAAAAAA=", &good, &good_iv),
            CryptError::BadKeyLength(8),
            "BAD_KEY_LENGTH",
        ),
        (
            "iv of 12 bytes",
            (KEY, &good, "AAAAAAAAAAAAAAAA"),
            CryptError::BadIvLength(12),
            "BAD_IV_LENGTH",
        ),
        (
            "ciphertext not whole blocks",
            (KEY, "AAAAAAAAAAAAAAAAAAAA", &good_iv),
            CryptError::BadCiphertextLength(15),
            "BAD_CIPHERTEXT_LENGTH",
        ),
        (
            "empty ciphertext",
            (KEY, "", &good_iv),
            CryptError::BadCiphertextLength(0),
            "BAD_CIPHERTEXT_LENGTH",
        ),
        (
            "stale session_key",
            (stale_key, &good, &good_iv),
            CryptError::BadPadding,
            "BAD_PADDING",
        ),
        (
            "one wrong pad byte",
            (KEY, &half_padded, IV),
            CryptError::BadPadding,
            "BAD_PADDING",
        ),
        (
            "not json",
            (KEY, &not_json, IV),
            CryptError::NotJson,
            "NOT_JSON",
        ),
        (
            "no watermark",
            (KEY, &no_wm, IV),
            CryptError::MissingWatermark,
            "MISSING_WATERMARK",
        ),
        (
            "another app's data",
            (KEY, &other_app, &other_iv),
            CryptError::WatermarkMismatch {
                expected: APPID.into(),
                found: "wxOTHER".into(),
            },
            "WATERMARK_MISMATCH",
        ),
    ];
    for (name, (key, data, iv), want, code) in cases {
        let got = decrypt_user_data(APPID, key, data, iv).expect_err(name);
        assert_eq!(got, want, "{name}");
        assert_eq!(got.code(), code, "{name}");
    }
}

#[test]
fn a_plus_turned_into_a_space_is_named() {
    let err = decrypt_user_data(APPID, KEY, "ab cd", IV).unwrap_err();
    assert!(err.to_string().contains("form-encoding"), "{err}");
}

#[test]
fn raw_data_signature() {
    let raw = r#"{"nickName":"Band","gender":1}"#;
    let sig = wxedge_core::crypt::raw_data_signature(raw, KEY);
    assert_eq!(sig.len(), 40);
    assert_eq!(verify_raw_data(raw, KEY, &sig), Ok(()));
    let err = verify_raw_data(raw, "AAAAAAAAAAAAAAAAAAAAAA==", &sig).unwrap_err();
    assert_eq!(err.code(), "RAW_DATA_SIGNATURE_MISMATCH");
    assert!(verify_raw_data(&format!("{raw} "), KEY, &sig).is_err());
}

#[test]
fn every_code_is_published() {
    use wxedge_core::ALL_CODES;
    use wxedge_core::login::LoginError;
    use wxedge_core::money::MoneyError;
    use wxedge_core::notify::NotifyError;
    use wxedge_core::pay::PayError;
    use wxedge_core::sign::SignError;
    let samples: Vec<Box<dyn ErrorCode>> = vec![
        Box::new(MoneyError::Empty),
        Box::new(SignError::MissingSign),
        Box::new(SignError::UnknownSignType(String::new())),
        Box::new(SignError::Mismatch),
        Box::new(CryptError::RawDataSignatureMismatch),
        Box::new(LoginError::EmptyCode),
        Box::new(LoginError::BadSessionKey),
        Box::new(PayError::Invalid(vec![])),
        Box::new(PayError::Communication {
            return_msg: String::new(),
        }),
        Box::new(PayError::MissingField("x")),
        Box::new(PayError::BadField {
            field: "x",
            reason: String::new(),
        }),
        Box::new(NotifyError::ReturnFail(String::new())),
        Box::new(NotifyError::Mismatch {
            field: "x",
            expected: String::new(),
            found: String::new(),
        }),
        Box::new(XmlError::Malformed {
            position: 0,
            reason: String::new(),
        }),
    ];
    for e in samples {
        assert!(
            ALL_CODES.contains(&e.code()),
            "{} is not in ALL_CODES",
            e.code()
        );
    }
}

#[test]
fn payload_and_watermark_steps_compose_to_decrypt() {
    use wxedge_core::crypt::{Received, decrypt_payload, judge_watermark};
    let (good, iv) = encrypt(
        r#"{"nickName":"😀","watermark":{"appid":"wx4f4bc4dec97d474b","timestamp":7}}"#,
        [9; 16],
    );
    let plain = decrypt_payload(KEY, &good, &iv).unwrap();
    let parsed: serde_json::Value = serde_json::from_slice(&plain).unwrap();
    assert_eq!(parsed["nickName"], "😀");
    let wm = parsed.get("watermark");
    let judged = judge_watermark(
        APPID,
        Received::field_of(wm, "appid"),
        Received::field_of(wm, "timestamp"),
    );
    assert_eq!(
        judged,
        Ok(Watermark {
            appid: APPID.into(),
            timestamp: 7
        })
    );
    assert_eq!(
        judge_watermark(APPID, Received::Absent, Received::Absent),
        Err(CryptError::MissingWatermark)
    );
    assert!(matches!(
        judge_watermark(APPID, Received::Text("wxOTHER"), Received::Number(1.0)),
        Err(CryptError::WatermarkMismatch { .. })
    ));
    assert_eq!(
        decrypt_payload("AAAAAAAAAAAAAAAAAAAAAA==", &good, &iv),
        Err(CryptError::BadPadding)
    );
}
