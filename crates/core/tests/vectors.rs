//! WeChat's own published vectors. If any of these fails, wxedge disagrees with WeChat.

mod common;
use common::{DOC_KEY, doc_params};
use wxedge_core::crypt::{decrypt_user_data, encrypt_user_data};
use wxedge_core::sign::{self, SignType};

/// The user-data decryption demo of WeChat's mini-program docs ("加密数据解密算法",
/// developers.weixin.qq.com/miniprogram/dev/framework/open-ability/signature.html, the
/// WXBizDataCrypt demo zip). Copied from the demo as redistributed verbatim in
/// sandyxu/wechat-aes-sample `Python/demo.py`, and checked byte-identical against
/// binarywang/WxJava `WxMaCryptUtilsTest.java`, wechatpy/wechatpy
/// `tests/test_crypto.py` and w7corp/easywechat `tests/MiniApp/DecryptorTest.php`.
pub const DEMO_APPID: &str = "wx4f4bc4dec97d474b";
pub const DEMO_SESSION_KEY: &str = "tiihtNczf5v6AKRyjwEUhQ==";
pub const DEMO_IV: &str = "r7BXXKkLb8qrSNn05n0qiA==";
pub const DEMO_ENCRYPTED: &str = "CiyLU1Aw2KjvrjMdj8YKliAjtP4gsMZMQmRzooG2xrDcvSnxIMXFufNstNGTyaGS9uT5geRa0W4oTOb1WT7fJlAC+oNPdbB+3hVbJSRgv+4lGOETKUQz6OYStslQ142dNCuabNPGBzlooOmB231qMM85d2/fV6ChevvXvQP8Hkue1poOFtnEtpyxVLW1zAo6/1Xx1COxFvrc2d7UL/lmHInNlxuacJXwu0fjpXfz/YqYzBIBzD6WUfTIF9GRHpOn/Hz7saL8xz+W//FRAUid1OksQaQx4CMs8LOddcQhULW4ucetDf96JcR3g0gfRK4PC7E/r7Z6xNrXd2UIeorGj5Ef7b1pJAYB6Y5anaHqZ9J6nKEBvB4DnNLIVWSgARns/8wR2SiRS7MNACwTyrGvt9ts8p12PKFdlqYTopNHR1Vf7XjfhQlVsAJdNiKdYmYVoKlaRv85IfVunYzO0IKXsyl7JCUjCpoG20f0a04COwfneQAGGwd5oa+T8yO5hzuyDb/XcxxmK01EpqOyuxINew==";

#[test]
fn official_decrypt_demo_vector() {
    let user = decrypt_user_data(DEMO_APPID, DEMO_SESSION_KEY, DEMO_ENCRYPTED, DEMO_IV).unwrap();
    assert_eq!(user.data["openId"], "oGZUI0egBJY1zhBYw2KhdUfwVJJE");
    assert_eq!(user.data["nickName"], "Band");
    assert_eq!(user.data["gender"], 1);
    assert_eq!(user.data["city"], "Guangzhou");
    assert_eq!(user.data["unionId"], "ocMvos6NjeKLIBqg5Mr9QjxrP1FA");
    assert_eq!(user.watermark.appid, DEMO_APPID);
    assert_eq!(user.watermark.timestamp, 1477314187);
    assert!(
        !user.data.contains_key("watermark"),
        "the watermark is returned apart, not inside the profile"
    );
}

#[test]
fn official_vector_reencrypts_to_the_same_bytes() {
    // serde_json keeps keys sorted, so compare by decrypting again rather than by bytes.
    let user = decrypt_user_data(DEMO_APPID, DEMO_SESSION_KEY, DEMO_ENCRYPTED, DEMO_IV).unwrap();
    let iv: [u8; 16] = [
        0xaf, 0xb0, 0x57, 0x5c, 0xa9, 0x0b, 0x6f, 0xca, 0xab, 0x48, 0xd9, 0xf4, 0xe6, 0x7d, 0x2a,
        0x88,
    ];
    let (enc, iv_b64) =
        encrypt_user_data(DEMO_SESSION_KEY, &user.data, &user.watermark, iv).unwrap();
    assert_eq!(iv_b64, DEMO_IV);
    let again = decrypt_user_data(DEMO_APPID, DEMO_SESSION_KEY, &enc, &iv_b64).unwrap();
    assert_eq!(again, user);
}

/// WeChat Pay v2 "安全规范 → 签名算法" (pay.weixin.qq.com/wiki/doc/api/wxa/wxa_api.php?chapter=4_3),
/// the worked example; the same figures are asserted by binarywang/WxJava
/// `weixin-java-pay/src/test/java/com/github/binarywang/wxpay/util/SignUtilsTest.java`.
#[test]
fn official_v2_signing_example() {
    let p = doc_params();
    assert_eq!(
        sign::canonical_string(&p),
        "appid=wxd930ea5d5a258f4f&body=test&device_info=1000&mch_id=10000100&nonce_str=ibuaiVcKdpRxkhJA"
    );
    assert_eq!(
        sign::sign(&p, DOC_KEY, SignType::Md5).as_str(),
        "9A0A8659F005D6984697E2CA0A9CF3B7"
    );
    assert_eq!(
        sign::sign(&p, DOC_KEY, SignType::HmacSha256).as_str(),
        "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6"
    );
}

#[test]
fn official_example_verifies_and_its_xml_round_trips() {
    let mut p = doc_params();
    p.insert("sign".into(), "9A0A8659F005D6984697E2CA0A9CF3B7".into());
    assert_eq!(sign::verify(&p, DOC_KEY, SignType::Md5), Ok(()));
    // The doc's final XML, as WeChat shows it (no CDATA).
    let doc_xml = "<xml>\n<appid>wxd930ea5d5a258f4f</appid>\n<mch_id>10000100</mch_id>\n<device_info>1000</device_info>\n<body>test</body>\n<nonce_str>ibuaiVcKdpRxkhJA</nonce_str>\n<sign>9A0A8659F005D6984697E2CA0A9CF3B7</sign>\n</xml>";
    assert_eq!(wxedge_core::xml::parse_xml(doc_xml.as_bytes()).unwrap(), p);
}

/// wechatpy's v2 refund-notify vector (tests/test_crypto.py,
/// `test_refund_notify_decrypt_message`): req_info under md5("OF4Ne3znh8KqL0V4NqmALQa0uXMYKcEk").
#[test]
fn wechatpy_refund_notify_req_info_decrypts() {
    use wxedge_core::refund_notify;
    let body = concat!(
        "<xml>\n<return_code>SUCCESS</return_code>\n<appid><![CDATA[wx4f4bc4dec97d474b]]></appid>\n",
        "<mch_id><![CDATA[12345678]]></mch_id>\n<nonce_str><![CDATA[c1c237efc87ee8dfcb3f9124b63a4d94]]></nonce_str>\n",
        "<req_info><![CDATA[51A27s9LxbaEv52nBOrqa0FCs3HVIM31Wc3BpNqSCP5MQlS8HL1Vl7mZ21043B7PZy7adtOZGtZv44lGl0U8JXlVFL4Ltxsw6+pACjZBB0Qi1LUDjFlP2IyTxYX4eC57kxnCphDdIyRkU67kOWW/HN/efggTUlaPJkoL5kVe9Y1MZF55IHR4lwGI7WtVLtxATX1tkAVZF+/ri0WlPXo9+GkqeB2/id6Ozw09Tqp8C/TKbmKBpRhTCRU2TzfQoLa6fjbgETFHJ795aEMyUZPQYbbsz6U9Rj9lUzEh8+Oc8KYTXa9zVk+nnFr82+yjffb3d36ylTe0y/VmYf90rf9cbiJQdM00zZ8Qa99SlMTs2wjOO4Mi4Btlg1PebsLF8TkqbSZkRJDGs61UunUB8Km1b/VeBxXuv4D3H7DiVZ9Fj7lq2j07zFDpxxlhhen7kZvMWWO3lrfFpA9c4eFOqfF9SxcU9nBmHfDD1g/dsrMl6+a71xQHJ/gn80fZOefUBv92ggqutsuJ4gd4OqkmO0XUs8e4XQyLpra+LvpmahsU5lBIZuQcMq3FHrqe8hXTfp3+3qym2wGfvPI75jx41VZwmBQy9izB1Id+A5lUeXC5QJy+ryDu/dWkhB+aMjkElaI/Epmcc/IEPaI73W6Hc58hNednOM536rPnn+GDc98PdGszpLTjmaZSu8dtqwPaym66yRqFQowzFoBbooik57iHUFBCeWya7XcXYL9WKhRF3uIZM+Kfv9/Zs2pF+w9/EJpltuzPpT1GP2VTMSHz45zwphFlS2lX8wHyZ+k9n2dptzQqpOCPedt5iQAmAe1oNQMxNdPDH9g68x9UzWD1kfK/dPO+3NPAh0XG+io4x15fIknNf7JLjpAuWicMMzCdwC4hhqeYOzQ+pC9f2xJXi5YViNKIZY69oO8eoHYRitLZrHLgx3oB2zimmqX6BI+DMklKAzAqqgGmbFxcVTvxZB6cMCx+H7TTWXnjAG+6A3SrCcxg0l5+UB93pkAYR7SVJ+VaZoiBqlqnZvb7IM17n9XaaFntlzvbbFCIa7OnOQb5Lvw=]]></req_info>\n</xml>"
    );
    let n = refund_notify::parse(body.as_bytes(), "OF4Ne3znh8KqL0V4NqmALQa0uXMYKcEk").unwrap();
    assert_eq!(n.state.out_refund_no, "1234");
    assert_eq!(n.state.out_trade_no, "2020010418301551404339261814");
    assert_eq!(n.state.transaction_id, "4200000483202001042069747825");
    assert_eq!(n.state.refund_id, "50300103182020010413419046597");
    assert_eq!((n.state.refund.get(), n.state.total.get()), (1, 1));
    assert_eq!(
        n.state.success_time.as_deref(),
        Some("2020-01-04T18:34:24+08:00")
    );
    assert_eq!(
        (n.appid.as_str(), n.mch_id.as_str()),
        ("wx4f4bc4dec97d474b", "12345678")
    );
    // The plaintext is the 795 bytes wechatpy's test decrypts (SHA-256 b707671e…).
    let req = body
        .split("<req_info><![CDATA[")
        .nth(1)
        .unwrap()
        .split("]]>")
        .next()
        .unwrap();
    let plain = refund_notify::decrypt_req_info(req, "OF4Ne3znh8KqL0V4NqmALQa0uXMYKcEk").unwrap();
    assert_eq!(plain.len(), 795);
    use sha2::Digest;
    let hex: String = sha2::Sha256::digest(&plain)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        hex,
        "b707671ec7a175abcd80ff33e6bab415457d12ea7e7d8621e1642a67fd848791"
    );
    // Under another key it does not decrypt.
    assert!(refund_notify::parse(body.as_bytes(), "OF4Ne3znh8KqL0V4NqmALQa0uXMYKcEl").is_err());
}
