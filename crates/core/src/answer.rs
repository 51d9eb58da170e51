//! WeChat Pay's side of a v2 call: judging a merchant's signed request and writing the
//! answer WeChat gives. The simulator is built on it, and so are tests that stand in for
//! WeChat, so the answers they write are checked by the very rules in [`crate::pay`].
//!
//! WeChat answers in two layers, and clients tell them apart:
//! - `return_code FAIL` (unsigned): the request itself was unreadable or unauthentic
//!   (XML_FORMAT_ERROR, SIGNERROR, MCHID_NOT_EXIST, …); nothing was done.
//! - `return_code SUCCESS`, signed: WeChat read the request; `result_code` says whether
//!   the business call succeeded, with `err_code` (ORDERPAID, SYSTEMERROR, …) when not.

use crate::pay::Merchant;
use crate::sign::{self, SignType};
use crate::xml::{self, XmlError};
use crate::{Params, random};

/// A request WeChat refuses before acting on it: `return_code FAIL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// WeChat's name for it (`SIGNERROR`, `XML_FORMAT_ERROR`, `LACK_PARAMS`, …).
    pub err_code: &'static str,
    /// The `return_msg` WeChat writes, in its words.
    pub return_msg: String,
}

impl Refusal {
    pub fn new(err_code: &'static str, return_msg: impl Into<String>) -> Self {
        Refusal {
            err_code,
            return_msg: return_msg.into(),
        }
    }

    /// The unsigned answer: `return_code FAIL`, the message, and `err_code` so scripts can
    /// match on a stable name rather than on the Chinese text.
    pub fn to_xml(&self) -> String {
        xml::write_xml(
            [
                ("err_code", self.err_code),
                ("return_code", "FAIL"),
                ("return_msg", self.return_msg.as_str()),
            ]
            .into_iter(),
        )
    }
}

/// Reads a merchant's request as WeChat does: strict XML, then `sign` checked under the
/// algorithm the request's own `sign_type` names (absent = MD5) with `key_of(params)`.
/// Returns the params and the algorithm, which the answer must be signed with.
pub fn read_signed_request(
    body: &[u8],
    key_of: impl FnOnce(&Params) -> Result<String, Refusal>,
) -> Result<(Params, SignType), Refusal> {
    let params = parse_request(body)?;
    let sign_type = verify_request(&params, key_of)?;
    Ok((params, sign_type))
}

/// The first half of [`read_signed_request`], for callers that look at a field (to match
/// an injected fault, say) before the sign is checked.
pub fn parse_request(body: &[u8]) -> Result<Params, Refusal> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Refusal::new("POST_DATA_EMPTY", "post数据为空"));
    }
    xml::parse_xml(body).map_err(|e| match e {
        XmlError::NotUtf8 => Refusal::new("NOT_UTF8", "编码格式错误"),
        e => Refusal::new("XML_FORMAT_ERROR", format!("XML格式错误: {e}")),
    })
}

/// The second half of [`read_signed_request`]: the sign, under the request's own
/// `sign_type`, with the key of the merchant the request names.
pub fn verify_request(
    params: &Params,
    key_of: impl FnOnce(&Params) -> Result<String, Refusal>,
) -> Result<SignType, Refusal> {
    let sign_type = SignType::of_params(params)
        .map_err(|_| Refusal::new("PARAM_ERROR", "sign_type参数格式错误"))?;
    if params.get("sign").is_none_or(String::is_empty) {
        return Err(Refusal::new("LACK_PARAMS", "缺少参数sign"));
    }
    let key = key_of(params)?;
    sign::verify(params, &key, sign_type).map_err(|_| Refusal::new("SIGNERROR", "签名错误"))?;
    Ok(sign_type)
}

/// WeChat's signed answer for `merchant` (its `sign_type` being the request's):
/// `return_code SUCCESS`, appid, mch_id, a fresh nonce_str, and either `result_code
/// SUCCESS` with `fields`, or `result_code FAIL` with `err_code`/`err_code_des`.
pub fn signed(
    merchant: &Merchant,
    outcome: Result<Params, (&str, &str)>,
) -> Result<String, random::RandomError> {
    let mut p = match outcome {
        Ok(fields) => {
            let mut p = fields;
            p.insert("result_code".into(), "SUCCESS".into());
            p
        }
        Err((err_code, err_code_des)) => {
            let mut p = Params::new();
            p.insert("result_code".into(), "FAIL".into());
            p.insert("err_code".into(), err_code.into());
            p.insert("err_code_des".into(), err_code_des.into());
            p
        }
    };
    p.insert("return_code".into(), "SUCCESS".into());
    p.insert("return_msg".into(), "OK".into());
    p.insert("appid".into(), merchant.appid.clone());
    p.insert("mch_id".into(), merchant.mch_id.clone());
    p.insert("nonce_str".into(), random::nonce_str()?);
    // Keys are constants of WeChat's protocol or fields we validated as XML names.
    Ok(merchant
        .signed_xml(p)
        .unwrap_or_else(|e| Refusal::new("SYSTEMERROR", e.to_string()).to_xml()))
}

/// 下载交易账单's failure (<https://pay.weixin.qq.com/doc/v2/merchant/4011985040>): unlike
/// other calls it carries `error_code`, not `err_code`, and never a sign; its success is the
/// bill itself, not XML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillRefusal {
    /// `20002` for no bill, `20001` for a bad sign; empty when WeChat writes none.
    pub error_code: &'static str,
    pub return_msg: String,
}

impl BillRefusal {
    /// No trade that day. The wire text as WeChat writes it (`No Bill Exist`, error_code
    /// 20002), observed in WeChat's developer community and in WxJava #1241 (the doc
    /// spells it `NO Bill Exist`; the server does not).
    pub fn no_bill() -> Self {
        BillRefusal {
            error_code: crate::pay::NO_BILL_ERROR_CODE,
            return_msg: "No Bill Exist".into(),
        }
    }

    /// A request WeChat refused before reading it (`Refusal`): a bad sign is
    /// `sign error` / 20001 as observed in WeChat's developer community; the rest keep
    /// their message under 20001 too (an assumption: the doc's table names messages, not
    /// numbers, for them).
    pub fn from_refusal(r: &Refusal) -> Self {
        let return_msg = if r.err_code == "SIGNERROR" {
            "sign error".to_owned()
        } else {
            r.return_msg.clone()
        };
        BillRefusal {
            error_code: "20001",
            return_msg,
        }
    }

    /// A parameter WeChat does not take (`invalid bill_date`, `invalid bill_type`…, the
    /// doc's table's wording); error_code 20001 is assumed, as for a bad sign.
    pub fn param(return_msg: impl Into<String>) -> Self {
        BillRefusal {
            error_code: "20001",
            return_msg: return_msg.into(),
        }
    }

    /// SYSTEMERROR (下载失败: ask again). No error_code is documented for it.
    pub fn system_error() -> Self {
        BillRefusal {
            error_code: "",
            return_msg: "SYSTEMERROR".into(),
        }
    }

    /// The unsigned `<xml>` answer.
    pub fn to_xml(&self) -> String {
        let mut fields = vec![
            ("return_code", "FAIL"),
            ("return_msg", self.return_msg.as_str()),
        ];
        if !self.error_code.is_empty() {
            fields.push(("error_code", self.error_code));
        }
        xml::write_xml(fields.into_iter())
    }
}

/// `bill_type` of 下载交易账单.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BillType {
    /// The day's payments and refunds (the default).
    All,
    Success,
    Refund,
    RechargeRefund,
}

/// What a verified downloadbill request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillAsk {
    /// The day, `YYYY-MM-DD` (the request's `yyyyMMdd` converted).
    pub date: String,
    pub bill_type: BillType,
    /// `tar_type=GZIP`: the bill gzipped; else the plain table.
    pub gzip: bool,
}

/// Reads a downloadbill request whose sign verified ([`verify_request`]), and whose
/// appid and mch_id the caller matched to the merchant: `bill_date` exactly 8 digits of a
/// calendar day, `bill_type` one of the four (absent = ALL), `tar_type` absent or GZIP.
/// Whether the day is within the last three months is [`crate::bill::judge_bill_date`]'s.
pub fn read_download_bill(params: &Params) -> Result<BillAsk, BillRefusal> {
    let get = |k: &str| params.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let date = get("bill_date")
        .and_then(crate::bill::from_v2_bill_date)
        .ok_or_else(|| BillRefusal::param("invalid bill_date"))?;
    let bill_type = match get("bill_type") {
        None | Some("ALL") => BillType::All,
        Some("SUCCESS") => BillType::Success,
        Some("REFUND") => BillType::Refund,
        Some("RECHARGE_REFUND") => BillType::RechargeRefund,
        Some(_) => return Err(BillRefusal::param("invalid bill_type")),
    };
    let gzip = match get("tar_type") {
        None => false,
        Some("GZIP") => true,
        Some(_) => return Err(BillRefusal::param("invalid tar_type")),
    };
    Ok(BillAsk {
        date,
        bill_type,
        gzip,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pay::PayError;

    fn merchant(sign_type: SignType) -> Merchant {
        Merchant {
            appid: "wxd930ea5d5a258f4f".into(),
            mch_id: "10000100".into(),
            key: "192006250b4c09247ec02edce69f6a2d".into(),
            sign_type,
        }
    }

    #[test]
    fn signed_answers_are_judged_by_the_client_rules() {
        for st in [SignType::Md5, SignType::HmacSha256] {
            let m = merchant(st);
            let mut f = Params::new();
            f.insert("prepay_id".into(), "wx123".into());
            f.insert("trade_type".into(), "JSAPI".into());
            let ok = signed(&m, Ok(f)).unwrap();
            assert_eq!(
                m.parse_unified_order_response(ok.as_bytes())
                    .unwrap()
                    .prepay_id,
                "wx123"
            );
            let err = signed(&m, Err(("ORDERPAID", "商户订单已支付"))).unwrap();
            let e = m.judge_answer(err.as_bytes()).unwrap_err();
            assert_eq!(e.err_code(), Some("ORDERPAID"));
        }
    }

    #[test]
    fn refusals_read_as_communication_failures() {
        let m = merchant(SignType::Md5);
        let e = m
            .judge_answer(Refusal::new("SIGNERROR", "签名错误").to_xml().as_bytes())
            .unwrap_err();
        assert_eq!(
            e,
            PayError::Communication {
                return_msg: "签名错误".into()
            }
        );
    }

    #[test]
    fn downloadbill_requests_and_refusals_meet_the_merchants_judge() {
        use crate::ErrorCode;
        use crate::pay::DownloadBill;
        for st in [SignType::Md5, SignType::HmacSha256] {
            let m = merchant(st);
            let body = m.download_bill_request("20261201", "nonce123").unwrap();
            let key = |_: &Params| Ok(m.key.clone());
            let (p, used) = read_signed_request(body.as_bytes(), key).unwrap();
            assert_eq!(used, st);
            assert_eq!(
                read_download_bill(&p).unwrap(),
                BillAsk {
                    date: "2026-12-01".into(),
                    bill_type: BillType::All,
                    gzip: true
                }
            );
            let no_bill = BillRefusal::no_bill().to_xml();
            assert_eq!(
                m.parse_download_bill_response(no_bill.as_bytes()),
                Ok(DownloadBill::NoBill)
            );
            // A request signed with another key: 20001, a refusal the judge keeps typed.
            let wrong = |_: &Params| Ok("x".repeat(32));
            let refusal = read_signed_request(body.as_bytes(), wrong).unwrap_err();
            let xml = BillRefusal::from_refusal(&refusal).to_xml();
            let e = m.parse_download_bill_response(xml.as_bytes()).unwrap_err();
            assert_eq!(
                e,
                PayError::BillRefused {
                    error_code: "20001".into(),
                    return_msg: "sign error".into()
                }
            );
            assert!(!e.is_transient());
            let busy = BillRefusal::system_error().to_xml();
            let e = m.parse_download_bill_response(busy.as_bytes()).unwrap_err();
            assert!(e.is_transient(), "{e}");
            assert_eq!(e.code(), "WECHAT_RETURN_FAIL");
        }
        assert!(
            merchant(SignType::Md5)
                .download_bill_request("2026-12-01", "n")
                .is_err()
        );
        let with = |pairs: &[(&str, &str)]| {
            let p: Params = pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            read_download_bill(&p)
        };
        assert_eq!(
            with(&[("bill_date", "20261201")]).unwrap(),
            BillAsk {
                date: "2026-12-01".into(),
                bill_type: BillType::All,
                gzip: false
            }
        );
        assert_eq!(
            with(&[("bill_date", "20261201"), ("bill_type", "REFUND")])
                .unwrap()
                .bill_type,
            BillType::Refund
        );
        for (bad, msg) in [
            (&[("bill_date", "2026-12-01")][..], "invalid bill_date"),
            (&[("bill_date", "20261301")][..], "invalid bill_date"),
            (&[][..], "invalid bill_date"),
            (
                &[("bill_date", "20261201"), ("bill_type", "all")][..],
                "invalid bill_type",
            ),
            (
                &[("bill_date", "20261201"), ("tar_type", "ZIP")][..],
                "invalid tar_type",
            ),
        ] {
            assert_eq!(with(bad).unwrap_err().return_msg, msg);
        }
    }

    #[test]
    fn the_bill_answer_is_told_apart_by_its_first_bytes() {
        use crate::pay::DownloadBill;
        let m = merchant(SignType::Md5);
        let csv = crate::bill::render([]).unwrap();
        assert_eq!(
            m.parse_download_bill_response(csv.as_bytes()),
            Ok(DownloadBill::File {
                body: csv.as_bytes(),
                gzip: false
            })
        );
        let gz = [0x1f, 0x8b, 8, 0];
        assert_eq!(
            m.parse_download_bill_response(&gz),
            Ok(DownloadBill::File {
                body: &gz,
                gzip: true
            })
        );
        // The community's sample, whitespace and all.
        let sample = b"\n<xml><return_code><![CDATA[FAIL]]></return_code>\n<return_msg><![CDATA[No Bill Exist]]></return_msg>\n<error_code><![CDATA[20002]]></error_code>\n</xml>";
        assert_eq!(
            m.parse_download_bill_response(sample),
            Ok(DownloadBill::NoBill)
        );
        assert_eq!(
            m.parse_download_bill_response(b"  "),
            Err(PayError::MissingField("bill"))
        );
        assert!(matches!(
            m.parse_download_bill_response(b"<xml><return_code>SUCCESS</return_code></xml>"),
            Err(PayError::BadField { .. })
        ));
        assert!(matches!(
            m.parse_download_bill_response(b"<xml><return_code>FAIL"),
            Err(PayError::Xml(_))
        ));
    }

    #[test]
    fn requests_are_verified_under_their_own_sign_type() {
        let m = merchant(SignType::HmacSha256);
        let mut p = Params::new();
        p.insert("mch_id".into(), m.mch_id.clone());
        p.insert("sign_type".into(), "HMAC-SHA256".into());
        let body = m.signed_xml(p.clone()).unwrap();
        let key = |_: &Params| Ok(m.key.clone());
        let (_, st) = read_signed_request(body.as_bytes(), key).unwrap();
        assert_eq!(st, SignType::HmacSha256);
        let wrong = |_: &Params| Ok("x".repeat(32));
        assert_eq!(
            read_signed_request(body.as_bytes(), wrong)
                .unwrap_err()
                .err_code,
            "SIGNERROR"
        );
        for (bad, code) in [
            (&b""[..], "POST_DATA_EMPTY"),
            (b"<xml><a>1</a>", "XML_FORMAT_ERROR"),
            (b"<xml><a>1</a></xml>", "LACK_PARAMS"),
            (
                b"<xml><sign>A</sign><sign_type>SHA1</sign_type></xml>",
                "PARAM_ERROR",
            ),
        ] {
            assert_eq!(read_signed_request(bad, key).unwrap_err().err_code, code);
        }
    }
}
