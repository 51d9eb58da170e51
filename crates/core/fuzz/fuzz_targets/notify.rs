//! `notify::parse_notify` on arbitrary bytes with the demo merchant key, under both sign
//! types, and `Notify::check` on whatever passes.
//!
//! A fuzzer cannot forge a sign, so on its own it rarely gets past the signature check.
//! The target therefore also re-signs whatever parses as a WeChat XML map and feeds that
//! back, which exercises the field checks after the signature (missing fields, amounts,
//! `result_code` FAIL…) with fuzzer-chosen values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wxedge_core::Fen;
use wxedge_core::notify::{ExpectedPayment, Notify, Outcome, parse_notify};
use wxedge_core::sign::{self, SignType};
use wxedge_core::xml::{parse_xml, to_xml};

const KEY: &str = "192006250b4c09247ec02edce69f6a2d";

/// The order the seed notifies are about (see examples/gen_seeds.rs).
const EXPECTED: ExpectedPayment<'static> = ExpectedPayment {
    appid: "wxd930ea5d5a258f4f",
    mch_id: "10000100",
    out_trade_no: "1415659990",
    total_fee: Fen::new(1),
};

fn judge(n: &Notify, sign_type: SignType) {
    // What a notify says must be what its params say.
    assert_eq!(
        n.params.get("return_code").map(String::as_str),
        Some("SUCCESS")
    );
    assert_eq!(sign::verify(&n.params, KEY, sign_type), Ok(()));
    assert_eq!(n.params["appid"], n.appid);
    assert_eq!(n.params["mch_id"], n.mch_id);
    assert_eq!(n.params["out_trade_no"], n.out_trade_no);
    // One amount, one spelling: the parsed fee prints back as the signed string.
    assert_eq!(n.params["total_fee"], n.total_fee.to_string());
    if n.outcome == Outcome::Paid {
        assert!(!n.transaction_id.is_empty());
    }
    let ok = n.check(&EXPECTED).is_ok();
    let matches = n.appid == EXPECTED.appid
        && n.mch_id == EXPECTED.mch_id
        && n.out_trade_no == EXPECTED.out_trade_no
        && n.total_fee == EXPECTED.total_fee;
    assert_eq!(ok, matches, "check disagrees with the fields: {n:?}");
    // Any other order must be refused.
    let other = ExpectedPayment {
        total_fee: Fen::new(n.total_fee.get().wrapping_add(1)),
        ..EXPECTED
    };
    assert!(n.check(&other).is_err());
}

fuzz_target!(|data: &[u8]| {
    for sign_type in [SignType::Md5, SignType::HmacSha256] {
        if let Ok(n) = parse_notify(data, KEY, sign_type) {
            judge(&n, sign_type);
        }
    }
    // Past the signature: sign the fuzzer's map with the right key and parse it again.
    let Ok(mut params) = parse_xml(data) else {
        return;
    };
    let sign_type = if data.len().is_multiple_of(2) {
        SignType::Md5
    } else {
        SignType::HmacSha256
    };
    sign::sign_into(&mut params, KEY, sign_type);
    let Ok(body) = to_xml(&params) else {
        return;
    };
    // Re-signed bodies can exceed the default 64 KiB bound; only judge those within it.
    match parse_notify(body.as_bytes(), KEY, sign_type) {
        Ok(n) => judge(&n, sign_type),
        Err(wxedge_core::notify::NotifyError::Sign(e)) => {
            panic!("a map signed with the merchant key fails its check: {e:?}\n{body}")
        }
        Err(_) => {}
    }
});
