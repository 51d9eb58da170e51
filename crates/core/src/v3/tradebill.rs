//! APIv3's daily trade bill: the apply call (`GET /v3/bill/tradebill`) and the download it
//! names.
//!
//! Sources: 申请交易账单 <https://pay.weixin.qq.com/doc/v3/merchant/4012556654> (`bill_date`
//! `yyyy-MM-DD`, only the last 3 months; `bill_type` ALL / SUCCESS / REFUND; `tar_type` GZIP;
//! answer `{hash_type: "SHA1", hash_value, download_url}`, the hash over the *uncompressed*
//! file; `400 NO_STATEMENT_EXIST` when there was no trade that day), 账单 FAQ
//! <https://pay.weixin.qq.com/doc/v3/merchant/4013071254> (`STATEMENT_CREATING`: ask again
//! later; the bill is made after 10:00 the next day), and wechatpay-go's FAQ (the download
//! is a signed GET whose answer is not signed: its SHA-1 is the check).

use serde::Deserialize;

use crate::ErrorCode;
use crate::pay::PayError;
use crate::v3::jsapi::Answer;

/// Where a bill is applied for.
pub const TRADEBILL_PATH: &str = "/v3/bill/tradebill";

/// What the apply call gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Apply {
    /// The bill exists: download it from `download_url` and check its SHA-1.
    Ready {
        hash_value: String,
        download_url: String,
    },
    /// No trade that day: an empty bill.
    NoBill,
    /// Not made yet (STATEMENT_CREATING, or WeChat busy): ask again later.
    NotYet(String),
}

/// `YYYY-MM-DD`, a real calendar date (no time, no zone).
pub fn is_bill_date(d: &str) -> bool {
    let b = d.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| d[r].parse::<u32>().ok();
    let (Some(y), Some(m), Some(day)) = (num(0..4), num(5..7), num(8..10)) else {
        return false;
    };
    if !b
        .iter()
        .enumerate()
        .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
    {
        return false;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

/// The apply path with its query (signed as sent), for the whole day's ALL bill, gzipped.
pub fn apply_path(bill_date: &str) -> Option<String> {
    is_bill_date(bill_date)
        .then(|| format!("{TRADEBILL_PATH}?bill_date={bill_date}&bill_type=ALL&tar_type=GZIP"))
}

#[derive(Deserialize)]
struct Wire {
    hash_type: String,
    hash_value: String,
    download_url: String,
}

/// The apply answer, verified, in the cron's terms.
pub fn apply_outcome(answer: &Answer<'_>) -> Result<Apply, PayError> {
    let untrusted = |code: &'static str, reason: String| PayError::V3Untrusted { code, reason };
    if !(200..300).contains(&answer.status) {
        let e = crate::v3::api_error::ApiError::parse(answer.status, answer.body);
        return match e.code.as_str() {
            "NO_STATEMENT_EXIST" if answer.verified.is_ok() => Ok(Apply::NoBill),
            "STATEMENT_CREATING" => Ok(Apply::NotYet(e.message.clone())),
            _ if e.is_transient() => Ok(Apply::NotYet(e.to_string())),
            _ => Err(PayError::V3(Box::new(e))),
        };
    }
    let v = answer
        .verified
        .map_err(|e| untrusted(e.code(), e.to_string()))?;
    let w: Wire =
        serde_json::from_slice(v.body()).map_err(|e| untrusted("NOT_JSON", e.to_string()))?;
    if !w.hash_type.eq_ignore_ascii_case("SHA1") || w.hash_value.is_empty() {
        return Err(untrusted(
            "V3_UNEXPECTED_STATUS",
            format!("hash_type {:?} is not SHA1", w.hash_type),
        ));
    }
    Ok(Apply::Ready {
        hash_value: w.hash_value,
        download_url: w.download_url,
    })
}

/// The path and query to sign for `download_url`, which must be on WeChat's own origin
/// (`pay_base`): a signed request never goes anywhere else.
pub fn download_path(download_url: &str, pay_base: &str) -> Option<String> {
    let base = pay_base.trim_end_matches('/');
    let rest = download_url.strip_prefix(base)?;
    rest.starts_with('/').then(|| rest.to_owned())
}

/// Where a bill's `download_url` points (申请交易账单's sample:
/// `https://api.mch.weixin.qq.com/v3/billdownload/file?token=…`).
pub const DOWNLOAD_PATH: &str = "/v3/billdownload/file";

/// How long a `download_url` stays valid (下载账单: "账单文件的下载地址的有效时间为5min").
pub const DOWNLOAD_TTL_SECS: i64 = 5 * 60;

/// What an apply request asks for (WeChat's side, for wxsim).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyAsk {
    /// `YYYY-MM-DD`, a calendar date (its range is [`crate::bill::judge_bill_date`]'s).
    pub bill_date: String,
    /// ALL (the default), SUCCESS or REFUND.
    pub bill_type: crate::answer::BillType,
    /// `tar_type=GZIP`: the download is gzipped; the hash stays the plain file's.
    pub gzip: bool,
}

/// Reads the apply call's query as WeChat does (WeChat's side, for wxsim): `bill_date`
/// required, `bill_type` ALL / SUCCESS / REFUND, `tar_type` GZIP or absent; an error is
/// the PARAM_ERROR message.
pub fn parse_apply_query(query: &str) -> Result<ApplyAsk, String> {
    use crate::answer::BillType;
    let mut date = None;
    let mut bill_type = BillType::All;
    let mut gzip = false;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match (k.as_ref(), v.as_ref()) {
            ("bill_date", d) => date = Some(d.to_owned()),
            ("bill_type", "ALL") => bill_type = BillType::All,
            ("bill_type", "SUCCESS") => bill_type = BillType::Success,
            ("bill_type", "REFUND") => bill_type = BillType::Refund,
            ("bill_type", other) => {
                return Err(format!("bill_type {other:?} is not ALL, SUCCESS or REFUND"));
            }
            ("tar_type", "GZIP") => gzip = true,
            ("tar_type", other) => return Err(format!("tar_type {other:?} is not GZIP")),
            _ => {}
        }
    }
    let bill_date = date.ok_or("bill_date is required (yyyy-MM-DD)")?;
    if !is_bill_date(&bill_date) {
        return Err(format!(
            "bill_date {bill_date:?} is not a date as yyyy-MM-DD"
        ));
    }
    Ok(ApplyAsk {
        bill_date,
        bill_type,
        gzip,
    })
}

/// The apply answer's body (WeChat's side): the SHA-1 of the uncompressed file and where
/// to download it.
pub fn apply_answer(hash_value: &str, download_url: &str) -> String {
    serde_json::json!({
        "hash_type": "SHA1",
        "hash_value": hash_value,
        "download_url": download_url,
    })
    .to_string()
}

/// `400 NO_STATEMENT_EXIST` 请求的账单文件不存在 (the wording of 账单 FAQ 4013071254): no
/// trade on that day.
pub fn no_statement() -> crate::v3::api_error::ApiError {
    use crate::v3::api_error::{ApiError, Code};
    let mut e = ApiError::new(
        Code::Other("NO_STATEMENT_EXIST".into()),
        "请求的账单文件不存在",
    );
    e.status = 400;
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wechats_side_meets_the_merchants() {
        use crate::answer::BillType;
        use crate::v3::verify::{Headers, WechatKeys};
        const ID: &str = "PUB_KEY_ID_0000000000000024101100397200000006";
        let keys: WechatKeys<()> = WechatKeys::new().with_public_key(ID, ()).unwrap();
        // A body as if its signature had verified (the caller's RSA saying "valid").
        let verified = |body: &'static [u8]| {
            let h = Headers {
                timestamp: Some("1000"),
                nonce: Some("n"),
                signature: Some("c2ln"),
                serial: Some(ID),
            };
            keys.check(&h, body, 1000).unwrap().conclude(true).unwrap()
        };
        let path = apply_path("2026-12-01").unwrap();
        let ask = parse_apply_query(path.split_once('?').unwrap().1).unwrap();
        assert_eq!(
            ask,
            ApplyAsk {
                bill_date: "2026-12-01".into(),
                bill_type: BillType::All,
                gzip: true
            }
        );
        assert_eq!(
            parse_apply_query("bill_date=2026-12-01&bill_type=REFUND")
                .unwrap()
                .bill_type,
            BillType::Refund
        );
        for bad in [
            "bill_type=ALL",
            "bill_date=20261201",
            "bill_date=2026-12-01&bill_type=RECHARGE_REFUND",
            "bill_date=2026-12-01&tar_type=ZIP",
        ] {
            assert!(parse_apply_query(bad).is_err(), "{bad}");
        }
        let body: &'static str = Box::leak(
            apply_answer(
                "abc",
                "https://api.mch.weixin.qq.com/v3/billdownload/file?token=t",
            )
            .into_boxed_str(),
        );
        let answer = Answer {
            status: 200,
            body: body.as_bytes(),
            verified: Ok(verified(body.as_bytes())),
        };
        assert_eq!(
            apply_outcome(&answer),
            Ok(Apply::Ready {
                hash_value: "abc".into(),
                download_url: "https://api.mch.weixin.qq.com/v3/billdownload/file?token=t".into()
            })
        );
        let e = no_statement();
        let body: &'static str = Box::leak(e.to_body().into_boxed_str());
        let answer = Answer {
            status: e.status,
            body: body.as_bytes(),
            verified: Ok(verified(body.as_bytes())),
        };
        assert_eq!(apply_outcome(&answer), Ok(Apply::NoBill));
    }

    #[test]
    fn dates_paths_and_origins() {
        assert!(is_bill_date("2026-12-01") && is_bill_date("2024-02-29"));
        for bad in [
            "2026-13-01",
            "2025-02-29",
            "2026-1-01",
            "20261201",
            "2026-12-01T00",
            "2026-12-00",
        ] {
            assert!(!is_bill_date(bad), "{bad}");
        }
        assert_eq!(
            apply_path("2026-12-01").unwrap(),
            "/v3/bill/tradebill?bill_date=2026-12-01&bill_type=ALL&tar_type=GZIP"
        );
        assert_eq!(
            download_path(
                "https://api.mch.weixin.qq.com/v3/billdownload/file?token=x",
                "https://api.mch.weixin.qq.com"
            ),
            Some("/v3/billdownload/file?token=x".into())
        );
        assert_eq!(
            download_path("https://evil.example/v3/x", "https://api.mch.weixin.qq.com"),
            None
        );
        assert_eq!(
            download_path(
                "https://api.mch.weixin.qq.com.evil/x",
                "https://api.mch.weixin.qq.com"
            ),
            None
        );
    }
}
