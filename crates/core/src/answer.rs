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
