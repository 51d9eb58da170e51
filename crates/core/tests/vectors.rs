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
