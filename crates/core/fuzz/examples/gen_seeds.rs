//! Writes the seed inputs under `seeds/<target>/` (committed). Rerun after a change to
//! the signing rules or the demo vectors:
//!
//!     cargo run --manifest-path crates/core/fuzz/Cargo.toml --example gen_seeds
//!
//! The libFuzzer corpora (`corpus/`, ignored by git) grow from these.

use std::fs;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use wxedge_core::notify::{PaidNotice, build_paid_notify};
use wxedge_core::pay::Merchant;
use wxedge_core::{Fen, Params, SignType, sign};

/// WeChat Pay's documentation merchant (the notify target uses the same key).
const APPID: &str = "wxd930ea5d5a258f4f";
const MCH_ID: &str = "10000100";
const KEY: &str = "192006250b4c09247ec02edce69f6a2d";

/// WeChat's user-data decryption demo (crates/core/tests/vectors.rs).
const DEMO_APPID: &str = "wx4f4bc4dec97d474b";
const DEMO_SESSION_KEY: &str = "tiihtNczf5v6AKRyjwEUhQ==";
const DEMO_IV: &str = "r7BXXKkLb8qrSNn05n0qiA==";
const DEMO_ENCRYPTED: &str = "CiyLU1Aw2KjvrjMdj8YKliAjtP4gsMZMQmRzooG2xrDcvSnxIMXFufNstNGTyaGS9uT5geRa0W4oTOb1WT7fJlAC+oNPdbB+3hVbJSRgv+4lGOETKUQz6OYStslQ142dNCuabNPGBzlooOmB231qMM85d2/fV6ChevvXvQP8Hkue1poOFtnEtpyxVLW1zAo6/1Xx1COxFvrc2d7UL/lmHInNlxuacJXwu0fjpXfz/YqYzBIBzD6WUfTIF9GRHpOn/Hz7saL8xz+W//FRAUid1OksQaQx4CMs8LOddcQhULW4ucetDf96JcR3g0gfRK4PC7E/r7Z6xNrXd2UIeorGj5Ef7b1pJAYB6Y5anaHqZ9J6nKEBvB4DnNLIVWSgARns/8wR2SiRS7MNACwTyrGvt9ts8p12PKFdlqYTopNHR1Vf7XjfhQlVsAJdNiKdYmYVoKlaRv85IfVunYzO0IKXsyl7JCUjCpoG20f0a04COwfneQAGGwd5oa+T8yO5hzuyDb/XcxxmK01EpqOyuxINew==";

fn merchant(sign_type: SignType) -> Merchant {
    Merchant {
        appid: APPID.into(),
        mch_id: MCH_ID.into(),
        key: KEY.into(),
        sign_type,
    }
}

fn notice(include_sign_type: bool, total_fee: u64) -> PaidNotice<'static> {
    PaidNotice {
        out_trade_no: "1415659990",
        transaction_id: "1004400740201409030005092168",
        total_fee: Fen::new(total_fee),
        openid: "oUpF8uMEb4qRXf22hE3X68TekukE",
        time_end: "20140903131540",
        nonce_str: "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
        include_sign_type,
    }
}

/// A signed map written the way WeChat's own servers format notifies: a declaration,
/// one field per line, CDATA for strings and bare text for numbers.
fn wechat_style(params: &Params) -> String {
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<xml>\n");
    for (k, v) in params {
        if v.bytes().all(|b| b.is_ascii_digit()) && !v.is_empty() {
            s += &format!("  <{k}>{v}</{k}>\n");
        } else {
            s += &format!("  <{k}><![CDATA[{v}]]></{k}>\n");
        }
    }
    s + "</xml>\n"
}

fn signed(pairs: &[(&str, &str)], sign_type: SignType) -> Params {
    let mut p: Params = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    sign::sign_into(&mut p, KEY, sign_type);
    p
}

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) {
    fs::write(dir.join(name), bytes).unwrap();
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    for t in ["parse_xml", "decrypt", "decrypt_official", "notify"] {
        let _ = fs::remove_dir_all(root.join(t));
        fs::create_dir_all(root.join(t)).unwrap();
    }

    // notify: real signed notifies, and ones that fail each later check.
    let d = root.join("notify");
    let md5 = build_paid_notify(&merchant(SignType::Md5), &notice(false, 1)).unwrap();
    write(&d, "paid-md5", &md5);
    let hmac = build_paid_notify(&merchant(SignType::HmacSha256), &notice(true, 1)).unwrap();
    write(&d, "paid-hmac", &hmac);
    let hmac_bare = build_paid_notify(&merchant(SignType::HmacSha256), &notice(false, 1)).unwrap();
    write(&d, "paid-hmac-no-sign-type", &hmac_bare);
    write(
        &d,
        "paid-md5-wrong-fee",
        build_paid_notify(&merchant(SignType::Md5), &notice(false, 100)).unwrap(),
    );
    let base: Vec<(&str, &str)> = vec![
        ("appid", APPID),
        ("mch_id", MCH_ID),
        ("nonce_str", "5K8264ILTKCH16CQ2502SI8ZNMTM67VS"),
        ("openid", "oUpF8uMEb4qRXf22hE3X68TekukE"),
        ("out_trade_no", "1415659990"),
        ("return_code", "SUCCESS"),
        ("time_end", "20140903131540"),
        ("total_fee", "1"),
        ("trade_type", "JSAPI"),
    ];
    let mut paid = base.clone();
    paid.extend([
        ("result_code", "SUCCESS"),
        ("transaction_id", "1004400740201409030005092168"),
    ]);
    write(
        &d,
        "paid-md5-wechat-style",
        wechat_style(&signed(&paid, SignType::Md5)),
    );
    let mut failed = base.clone();
    failed.extend([
        ("result_code", "FAIL"),
        ("err_code", "NOTENOUGH"),
        ("err_code_des", "余额不足"),
    ]);
    write(
        &d,
        "failed-md5",
        wechat_style(&signed(&failed, SignType::Md5)),
    );
    let mut bad_fee = paid.clone();
    bad_fee.retain(|(k, _)| *k != "total_fee");
    bad_fee.push(("total_fee", "01"));
    write(
        &d,
        "leading-zero-fee-md5",
        wechat_style(&signed(&bad_fee, SignType::Md5)),
    );
    write(
        &d,
        "return-fail",
        "<xml><return_code><![CDATA[FAIL]]></return_code><return_msg><![CDATA[签名失败]]></return_msg></xml>",
    );
    write(
        &d,
        "tampered-fee",
        md5.replace("<total_fee><![CDATA[1]]>", "<total_fee><![CDATA[100]]>"),
    );

    // parse_xml: what WeChat sends, and what an attacker would.
    let d = root.join("parse_xml");
    write(&d, "notify-md5", &md5);
    write(
        &d,
        "notify-wechat-style",
        wechat_style(&signed(&paid, SignType::Md5)),
    );
    write(
        &d,
        "unifiedorder-answer",
        "<xml>\n   <return_code><![CDATA[SUCCESS]]></return_code>\n   <return_msg><![CDATA[OK]]></return_msg>\n   <appid><![CDATA[wx2421b1c4370ec43b]]></appid>\n   <mch_id><![CDATA[10000100]]></mch_id>\n   <nonce_str><![CDATA[IITRi8Iabbblz1Jc]]></nonce_str>\n   <openid><![CDATA[oUpF8uMuAJO_M2pxb1Q9zNjWeS6o]]></openid>\n   <sign><![CDATA[7921E432F65EB8ED0CE9755F0E86D72F]]></sign>\n   <result_code><![CDATA[SUCCESS]]></result_code>\n   <prepay_id><![CDATA[wx201411101639507cbf6ffd8b0779950874]]></prepay_id>\n   <trade_type><![CDATA[JSAPI]]></trade_type>\n</xml>",
    );
    write(
        &d,
        "plain-and-refs",
        "\u{feff}<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- c -->\n<xml>\n  <total_fee>1</total_fee>\n  <msg>a &amp; b &lt;&gt;&quot;&apos; &#x4e2d;&#20013;</msg>\n  <empty/>\n  <e2></e2>\n  <!-- inside -->\n  <split><![CDATA[x]]]]><![CDATA[>y]]>tail</split>\n</xml>\n",
    );
    write(&d, "empty-root", "<xml/>");
    write(
        &d,
        "xxe-doctype",
        "<?xml version=\"1.0\"?>\n<!DOCTYPE xml [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>\n<xml><return_code>&xxe;</return_code></xml>",
    );
    write(&d, "doctype-plain", "<!DOCTYPE xml><xml><a>1</a></xml>");
    write(
        &d,
        "billion-laughs",
        "<!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\"><!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">]>\n<xml><a>&lol3;</a></xml>",
    );
    write(&d, "undeclared-entity", "<xml><a>&xxe;</a></xml>");
    write(&d, "nested", "<xml><a><b>1</b></a></xml>");
    write(
        &d,
        "nested-deep",
        "<xml><a><b><c><d><e>1</e></d></c></b></a></xml>",
    );
    write(
        &d,
        "duplicate-key",
        "<xml><total_fee>1</total_fee><out_trade_no>1</out_trade_no><total_fee>100</total_fee></xml>",
    );
    write(&d, "duplicate-empty", "<xml><a/><a></a></xml>");
    write(
        &d,
        "attributes",
        "<xml><total_fee currency=\"CNY\">1</total_fee></xml>",
    );
    write(&d, "root-attributes", "<xml id=\"1\"><a>1</a></xml>");
    write(&d, "wrong-root", "<root><a>1</a></root>");
    write(&d, "trailing", "<xml><a>1</a></xml><xml><a>2</a></xml>");
    write(&d, "stray-text", "<xml>hello<a>1</a></xml>");
    write(&d, "unclosed", "<xml><a>1</a>");
    write(&d, "mismatched-end", "<xml><a>1</b></xml>");
    write(&d, "pi-inside", "<xml><?php echo 1; ?><a>1</a></xml>");
    write(
        &d,
        "namespaced-key",
        "<xml><a:b>1</a:b><xmlns>2</xmlns></xml>",
    );
    write(
        &d,
        "crlf-value",
        "<xml><a>line1\r\nline2\r</a><b><![CDATA[\r\n]]></b></xml>",
    );

    // decrypt: appid \n session_key \n encryptedData \n iv.
    let d = root.join("decrypt");
    let line = |a: &str, k: &str, e: &str, i: &str| format!("{a}\n{k}\n{e}\n{i}");
    write(
        &d,
        "demo",
        line(DEMO_APPID, DEMO_SESSION_KEY, DEMO_ENCRYPTED, DEMO_IV),
    );
    write(
        &d,
        "demo-other-appid",
        line(
            "wxd930ea5d5a258f4f",
            DEMO_SESSION_KEY,
            DEMO_ENCRYPTED,
            DEMO_IV,
        ),
    );
    write(
        &d,
        "demo-form-encoded",
        line(
            DEMO_APPID,
            DEMO_SESSION_KEY,
            &DEMO_ENCRYPTED.replace('+', " "),
            DEMO_IV,
        ),
    );
    write(
        &d,
        "stale-key",
        line(
            DEMO_APPID,
            "AAAAAAAAAAAAAAAAAAAAAA==",
            DEMO_ENCRYPTED,
            DEMO_IV,
        ),
    );
    write(
        &d,
        "short-key",
        line(DEMO_APPID, "AAAA", "AAAAAAAAAAAAAAAAAAAAAA==", "AAAA"),
    );
    write(
        &d,
        "short-cipher",
        line(DEMO_APPID, DEMO_SESSION_KEY, "AAAAAAAAAAAAAAA=", DEMO_IV),
    );

    // decrypt_official: a mode byte (0 raw ciphertext, 1 PKCS#7 plaintext, 2 raw
    // plaintext blocks), then the data.
    let d = root.join("decrypt_official");
    let mut raw = vec![0u8];
    raw.extend(B64.decode(DEMO_ENCRYPTED).unwrap());
    write(&d, "raw-demo", raw);
    let json = |s: &str| [&[1u8][..], s.as_bytes()].concat();
    write(
        &d,
        "json-ok",
        json(
            r#"{"openId":"oGZUI0egBJY1zhBYw2KhdUfwVJJE","nickName":"Band","watermark":{"timestamp":1477314187,"appid":"wx4f4bc4dec97d474b"}}"#,
        ),
    );
    write(
        &d,
        "json-other-appid",
        json(r#"{"watermark":{"timestamp":1,"appid":"wxd930ea5d5a258f4f"}}"#),
    );
    write(
        &d,
        "json-no-watermark",
        json(r#"{"phoneNumber":"13800138000"}"#),
    );
    write(
        &d,
        "json-bad-watermark",
        json(r#"{"watermark":{"appid":1}}"#),
    );
    write(&d, "not-json", json("[1,2,3]"));
    let mut blocks = vec![2u8];
    blocks.extend(br#"{"watermark":{"appid":"wx4f4bc4dec97d474b","timestamp":0}}"#);
    let pad = 16 - (blocks.len() - 1) % 16;
    blocks.extend(std::iter::repeat_n(pad as u8, pad));
    write(&d, "blocks-padded-by-hand", &blocks);
    let mut bad_pad = vec![2u8];
    bad_pad.extend([b'{', b'}']);
    bad_pad.extend([3u8; 13]);
    bad_pad.push(14);
    write(&d, "blocks-bad-pad", bad_pad);
}
