//! WeChat Pay v2's refund notify (退款结果通知): an unsigned XML envelope whose `req_info`
//! is the refund, AES-256-ECB encrypted under the lowercase hex MD5 of the v2 API key.
//! WeChat sends it for every refund of a v2 merchant, also for one made by hand in the
//! merchant platform (`refund_request_source` `VENDOR_PLATFORM`).
//!
//! The envelope carries no `sign` (the documented fields are `return_code`, `return_msg`,
//! `appid`, `mch_id`, `nonce_str`, `req_info`: 退款结果通知,
//! <https://pay.weixin.qq.com/doc/v2/partner/4011989265>), so a `req_info` that decrypts
//! and unpads under our key is what proves it WeChat's. Decryption: base64 → AES-256-ECB
//! with key = the 32 ASCII characters of `md5(key)` in lowercase hex → PKCS#7 ("对商户key做
//! md5，得到32位小写key"). The plaintext is `<root>…</root>` with `out_refund_no`,
//! `out_trade_no`, `refund_id`, `transaction_id`, `total_fee`, `refund_fee`,
//! `refund_status` (`SUCCESS`, `CHANGE` = abnormal, `REFUNDCLOSE` = closed), `success_time`
//! (`YYYY-MM-DD HH:MM:SS`), `refund_recv_accout` [sic], `refund_account`,
//! `refund_request_source`. Vectors: wechatpy's `test_refund_notify_decrypt_message`
//! (tests/vectors.rs).

use aes::Aes256;
use aes::cipher::{BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use md5::{Digest, Md5};
use thiserror::Error;

use crate::v3::refund::{RefundState, WechatRefundStatus};
use crate::xml::{self, XmlError};
use crate::{ErrorCode, Fen, Params};

/// Why a v2 refund notify is not believed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RefundNotifyError {
    #[error("refund notify is not WeChat's XML: {0}")]
    Xml(#[from] XmlError),
    #[error("refund notify says return_code FAIL: {0}")]
    ReturnFail(String),
    #[error("refund notify lacks {0}")]
    MissingField(&'static str),
    #[error("req_info is not base64 of whole AES blocks")]
    BadCiphertext,
    #[error(
        "req_info does not decrypt under our API key (its padding is wrong): forged, or the key is not this merchant's"
    )]
    Decrypt,
    #[error("req_info decrypts to something that is not the refund's XML: {0}")]
    BadInner(XmlError),
    #[error("{field} is {value:?}: {why}")]
    BadField {
        field: &'static str,
        value: String,
        why: &'static str,
    },
}

impl ErrorCode for RefundNotifyError {
    fn code(&self) -> &'static str {
        match self {
            RefundNotifyError::Xml(e) => e.code(),
            RefundNotifyError::ReturnFail(_) => "WECHAT_RETURN_FAIL",
            RefundNotifyError::MissingField(_) => "MISSING_FIELD",
            RefundNotifyError::BadCiphertext => "BAD_CIPHERTEXT_LENGTH",
            RefundNotifyError::Decrypt => "REQ_INFO_DECRYPT_FAILED",
            RefundNotifyError::BadInner(_) => "REQ_INFO_NOT_XML",
            RefundNotifyError::BadField { .. } => "BAD_FIELD",
        }
    }
}

/// Whether a parsed v2 notify is a refund's (it carries `req_info`).
pub fn is_refund_notify(params: &Params) -> bool {
    params.contains_key("req_info")
}

fn cipher(api_key: &str) -> Aes256 {
    let digest = Md5::digest(api_key.as_bytes());
    let mut hex = [0u8; 32];
    for (i, b) in digest.iter().enumerate() {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        hex[2 * i] = HEX[usize::from(b >> 4)];
        hex[2 * i + 1] = HEX[usize::from(b & 0x0f)];
    }
    Aes256::new(&hex.into())
}

/// `req_info` → its plaintext, every PKCS#7 pad byte checked.
pub fn decrypt_req_info(req_info: &str, api_key: &str) -> Result<Vec<u8>, RefundNotifyError> {
    let mut data = STANDARD
        .decode(req_info.trim().as_bytes())
        .map_err(|_| RefundNotifyError::BadCiphertext)?;
    if data.is_empty() || data.len() % 16 != 0 {
        return Err(RefundNotifyError::BadCiphertext);
    }
    let c = cipher(api_key);
    for block in data.chunks_exact_mut(16) {
        let block: &mut [u8; 16] = block
            .try_into()
            .map_err(|_| RefundNotifyError::BadCiphertext)?;
        c.decrypt_block(block.into());
    }
    let pad = usize::from(*data.last().ok_or(RefundNotifyError::Decrypt)?);
    if pad == 0
        || pad > 16
        || data[data.len() - pad..]
            .iter()
            .any(|&b| usize::from(b) != pad)
    {
        return Err(RefundNotifyError::Decrypt);
    }
    data.truncate(data.len() - pad);
    Ok(data)
}

/// `plain` as WeChat encrypts a `req_info` (for wxsim and tests).
pub fn encrypt_req_info(plain: &[u8], api_key: &str) -> String {
    let pad = 16 - plain.len() % 16;
    let mut data = plain.to_vec();
    data.extend(std::iter::repeat_n(pad as u8, pad));
    let c = cipher(api_key);
    for block in data.chunks_exact_mut(16) {
        if let Ok(block) = <&mut [u8; 16]>::try_from(block) {
            c.encrypt_block(block.into());
        }
    }
    STANDARD.encode(data)
}

/// A v2 refund notify, decrypted: the merchant it is for and the refund's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundNoticeV2 {
    pub appid: String,
    pub mch_id: String,
    pub state: RefundState,
    /// `API` or `VENDOR_PLATFORM` (made by hand in the merchant platform).
    pub request_source: Option<String>,
}

fn fen(p: &Params, field: &'static str) -> Result<Fen, RefundNotifyError> {
    let v = p.get(field).ok_or(RefundNotifyError::MissingField(field))?;
    Fen::parse(v).map_err(|_| RefundNotifyError::BadField {
        field,
        value: v.clone(),
        why: "not whole fen",
    })
}

/// `2020-01-04 18:34:24` (Beijing time) → RFC 3339; anything else is kept as it is.
fn rfc3339(v2: &str) -> String {
    let b = v2.as_bytes();
    if b.len() == 19 && b[10] == b' ' {
        format!("{}T{}+08:00", &v2[..10], &v2[11..])
    } else {
        v2.to_owned()
    }
}

/// Reads a v2 refund notify: strict XML, `return_code` SUCCESS, `req_info` decrypted
/// under `api_key` and read strictly.
pub fn parse(body: &[u8], api_key: &str) -> Result<RefundNoticeV2, RefundNotifyError> {
    let outer = xml::parse_xml(body)?;
    if outer.get("return_code").map(String::as_str) != Some("SUCCESS") {
        return Err(RefundNotifyError::ReturnFail(
            outer.get("return_msg").cloned().unwrap_or_default(),
        ));
    }
    let req = outer
        .get("req_info")
        .ok_or(RefundNotifyError::MissingField("req_info"))?;
    let plain = decrypt_req_info(req, api_key)?;
    let inner = xml::parse_flat(&plain, xml::DEFAULT_MAX_BYTES, "root")
        .map_err(RefundNotifyError::BadInner)?;
    let text = |field: &'static str| {
        inner
            .get(field)
            .filter(|v| !v.is_empty())
            .cloned()
            .ok_or(RefundNotifyError::MissingField(field))
    };
    let status_text = text("refund_status")?;
    let status = match status_text.as_str() {
        "SUCCESS" => WechatRefundStatus::Success,
        "CHANGE" => WechatRefundStatus::Abnormal,
        "REFUNDCLOSE" => WechatRefundStatus::Closed,
        _ => {
            return Err(RefundNotifyError::BadField {
                field: "refund_status",
                value: status_text,
                why: "not SUCCESS, CHANGE or REFUNDCLOSE",
            });
        }
    };
    Ok(RefundNoticeV2 {
        appid: outer.get("appid").cloned().unwrap_or_default(),
        mch_id: outer
            .get("mch_id")
            .cloned()
            .ok_or(RefundNotifyError::MissingField("mch_id"))?,
        state: RefundState {
            out_refund_no: text("out_refund_no")?,
            out_trade_no: text("out_trade_no")?,
            refund_id: text("refund_id")?,
            transaction_id: text("transaction_id")?,
            status,
            refund: fen(&inner, "refund_fee")?,
            total: fen(&inner, "total_fee")?,
            success_time: inner.get("success_time").map(|t| rfc3339(t)),
            user_received_account: inner.get("refund_recv_accout").cloned(),
        },
        request_source: inner.get("refund_request_source").cloned(),
    })
}

/// A v2 refund notify's body for `s`, as WeChat builds it (for wxsim and tests).
pub fn build(
    appid: &str,
    mch_id: &str,
    api_key: &str,
    s: &RefundState,
    nonce: &str,
    source: &str,
) -> Result<String, XmlError> {
    let status = match s.status {
        WechatRefundStatus::Success | WechatRefundStatus::Processing => "SUCCESS",
        WechatRefundStatus::Abnormal => "CHANGE",
        WechatRefundStatus::Closed => "REFUNDCLOSE",
    };
    let time = s
        .success_time
        .as_deref()
        .map(|t| t.get(..19).unwrap_or(t).replace('T', " "))
        .unwrap_or_default();
    let mut inner = Params::new();
    for (k, v) in [
        ("out_refund_no", s.out_refund_no.clone()),
        ("out_trade_no", s.out_trade_no.clone()),
        ("refund_account", "REFUND_SOURCE_RECHARGE_FUNDS".into()),
        ("refund_fee", s.refund.get().to_string()),
        ("refund_id", s.refund_id.clone()),
        ("refund_recv_accout", "支付用户零钱".into()),
        ("refund_request_source", source.into()),
        ("refund_status", status.into()),
        ("settlement_refund_fee", s.refund.get().to_string()),
        ("settlement_total_fee", s.total.get().to_string()),
        ("success_time", time),
        ("total_fee", s.total.get().to_string()),
        ("transaction_id", s.transaction_id.clone()),
    ] {
        inner.insert(k.into(), v);
    }
    let plain = xml::to_xml(&inner)?.replacen("<xml>", "<root>", 1);
    let plain = match plain.rfind("</xml>") {
        Some(i) => format!("{}</root>", &plain[..i]),
        None => plain,
    };
    let mut outer = Params::new();
    for (k, v) in [
        ("return_code", "SUCCESS".to_owned()),
        ("appid", appid.to_owned()),
        ("mch_id", mch_id.to_owned()),
        ("nonce_str", nonce.to_owned()),
        ("req_info", encrypt_req_info(plain.as_bytes(), api_key)),
    ] {
        outer.insert(k.into(), v);
    }
    xml::to_xml(&outer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_trip_and_every_refusal() {
        let s = RefundState {
            out_refund_no: "R1".into(),
            out_trade_no: "T000001".into(),
            refund_id: "503".into(),
            transaction_id: "4200".into(),
            status: WechatRefundStatus::Closed,
            refund: Fen::new(30),
            total: Fen::new(100),
            success_time: None,
            user_received_account: None,
        };
        let key = "k".repeat(32);
        let body = build("wx1", "1900000109", &key, &s, "n", "VENDOR_PLATFORM").unwrap();
        let n = parse(body.as_bytes(), &key).unwrap();
        assert_eq!(
            (n.state.status, n.state.refund, n.mch_id.as_str()),
            (WechatRefundStatus::Closed, Fen::new(30), "1900000109")
        );
        assert_eq!(n.request_source.as_deref(), Some("VENDOR_PLATFORM"));
        assert_eq!(
            parse(body.as_bytes(), &"x".repeat(32)).unwrap_err().code(),
            "REQ_INFO_DECRYPT_FAILED"
        );
        let not_blocks = body.replace("<req_info><![CDATA[", "<req_info><![CDATA[AAAA");
        assert!(parse(not_blocks.as_bytes(), &key).is_err());
        assert_eq!(
            parse(
                b"<xml><return_code>FAIL</return_code><return_msg>x</return_msg></xml>",
                &key
            )
            .unwrap_err()
            .code(),
            "WECHAT_RETURN_FAIL"
        );
        assert_eq!(
            parse(b"<xml><return_code>SUCCESS</return_code></xml>", &key)
                .unwrap_err()
                .code(),
            "MISSING_FIELD"
        );
        assert_eq!(rfc3339("2020-01-04 18:34:24"), "2020-01-04T18:34:24+08:00");
    }
}
