//! Verifying WeChat's answers and notifies.
//!
//! The message is three lines, each ended by `\n`: `Wechatpay-Timestamp`, `Wechatpay-Nonce`
//! and the body exactly as received (an empty body leaves just `\n`), checked against the
//! base64 `Wechatpay-Signature` with the key `Wechatpay-Serial` names. Sources:
//! 如何使用微信支付公钥验签, <https://pay.weixin.qq.com/docs/merchant/development/interface-rules/signature-verification.html>
//! ("签名串共有三行…请使用原始报文主体执行验签…对报文主体的任何篡改都会导致验证失败"), and
//! 签名验证, <https://wechatpay-api.gitbook.io/wechatpay-api-v3/qian-ming-zhi-nan-1/qian-ming-yan-zheng.md>.
//!
//! Which key: a serial starting `PUB_KEY_ID_` names the 微信支付公钥; anything else a
//! platform certificate by its serial. During a migration both are configured and WeChat
//! picks per message ("回调场景是随机的…第七天及之后才是100%用公钥", WeChat's answer in
//! <https://developers.weixin.qq.com/community/develop/doc/0004e8c40b09182972936db6d69400>;
//! the id format, `PUB_KEY_ID_` + 32 digits: <https://pay.weixin.qq.com/doc/brand/4015433973>).
//!
//! A timestamp more than [`MAX_SKEW_SECS`] away from `now`, either way, is refused (replay;
//! WeChat's SDKs use the same five minutes: wechatpay-go `consts.FiveMinute`, wechatpay-java
//! `RESPONSE_EXPIRED_MINUTES = 5`). A signature starting [`PROBE_PREFIX`] is WeChat's
//! signature probe ("此前缀为签名探测流量", <https://pay.weixin.qq.com/doc/v3/merchant/4016241880>):
//! it is refused with its own error, so a shell answers it 4xx and never treats it as paid.
//!
//! The RSA check is the caller's ([`crate::v3::rsa`]): [`WechatKeys::verify`] with a key
//! type that implements [`RsaVerifier`], or [`WechatKeys::check`] → [`Pending`] → the shell
//! verifies (WebCrypto) → [`Pending::conclude`]. Either way only a [`Verified`] body may be
//! parsed by [`crate::v3::jsapi`] and [`crate::v3::notify`].

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use thiserror::Error;

use crate::ErrorCode;
use crate::v3::rsa::RsaVerifier;

/// How far `Wechatpay-Timestamp` may be from our clock, in seconds, either way.
pub const MAX_SKEW_SECS: u64 = 300;
/// `Wechatpay-Serial` of a message signed with the 微信支付公钥 starts with this.
pub const PUBLIC_KEY_ID_PREFIX: &str = "PUB_KEY_ID_";
/// `Wechatpay-Signature` of WeChat's signature probe starts with this.
pub const PROBE_PREFIX: &str = "WECHATPAY/SIGNTEST/";

pub const HEADER_TIMESTAMP: &str = "Wechatpay-Timestamp";
pub const HEADER_NONCE: &str = "Wechatpay-Nonce";
pub const HEADER_SIGNATURE: &str = "Wechatpay-Signature";
pub const HEADER_SERIAL: &str = "Wechatpay-Serial";

/// Why an answer or notify must not be believed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VerifyError {
    #[error("the {0} header is missing: this is not a signed WeChat Pay v3 message")]
    MissingHeader(&'static str),
    #[error(
        "Wechatpay-Signature starts with WECHATPAY/SIGNTEST/: WeChat's signature probe; answer it 4xx, never as success"
    )]
    Probe,
    #[error("Wechatpay-Timestamp {0:?} is not Unix seconds")]
    BadTimestamp(String),
    #[error(
        "Wechatpay-Timestamp {timestamp} is {off} s from our clock ({now}); more than {MAX_SKEW_SECS} s is refused: check this server's clock, or it is a replay"
    )]
    Skewed { timestamp: i64, now: i64, off: u64 },
    #[error(
        "Wechatpay-Serial {serial:?} names no key we hold (we hold {held:?}): configure the 微信支付公钥 with that id if it starts with PUB_KEY_ID_, else download the platform certificate with that serial"
    )]
    UnknownSerial { serial: String, held: Vec<String> },
    #[error(
        "{0:?} is not a 微信支付公钥 id: those start with PUB_KEY_ID_ (a platform certificate goes in by its serial)"
    )]
    BadPublicKeyId(String),
    #[error(
        "{0:?} starts with PUB_KEY_ID_: it is a 微信支付公钥 id, not a platform certificate serial"
    )]
    BadCertificateSerial(String),
    #[error("Wechatpay-Signature is not base64")]
    BadSignatureEncoding,
    #[error(
        "Wechatpay-Signature does not verify under {serial}: verify the raw bytes received (never a re-serialization) with the key of that serial"
    )]
    Mismatch { serial: String },
}

impl ErrorCode for VerifyError {
    fn code(&self) -> &'static str {
        match self {
            VerifyError::MissingHeader(_) => "V3_HEADER_MISSING",
            VerifyError::Probe => "V3_SIGN_PROBE",
            VerifyError::BadTimestamp(_) => "V3_BAD_TIMESTAMP",
            VerifyError::Skewed { .. } => "V3_TIMESTAMP_SKEW",
            VerifyError::UnknownSerial { .. }
            | VerifyError::BadPublicKeyId(_)
            | VerifyError::BadCertificateSerial(_) => "V3_UNKNOWN_SERIAL",
            VerifyError::BadSignatureEncoding => "BAD_BASE64",
            VerifyError::Mismatch { .. } => "SIGN_MISMATCH",
        }
    }
}

/// The four `Wechatpay-*` headers as the shell found them (`None`: absent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Headers<'a> {
    pub timestamp: Option<&'a str>,
    pub nonce: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub serial: Option<&'a str>,
}

impl<'a> Headers<'a> {
    /// Reads the four headers through the shell's (case-insensitive) lookup.
    pub fn from_lookup(get: impl Fn(&str) -> Option<&'a str>) -> Headers<'a> {
        Headers {
            timestamp: get(HEADER_TIMESTAMP),
            nonce: get(HEADER_NONCE),
            signature: get(HEADER_SIGNATURE),
            serial: get(HEADER_SERIAL),
        }
    }
}

/// Which kind of key a serial named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// The 微信支付公钥 (`PUB_KEY_ID_…`).
    PublicKey,
    /// A 微信支付平台证书, by serial.
    PlatformCertificate,
}

/// WeChat's keys we trust, each under the name `Wechatpay-Serial` gives it. `K` is the
/// caller's handle: a parsed key natively, a WebCrypto key's name in a shell.
#[derive(Debug, Clone)]
pub struct WechatKeys<K> {
    public_key: Option<(String, K)>,
    certificates: Vec<(String, K)>,
}

impl<K> Default for WechatKeys<K> {
    fn default() -> Self {
        WechatKeys {
            public_key: None,
            certificates: Vec::new(),
        }
    }
}

/// Unix seconds written as WeChat writes them: 1 to 12 ASCII digits.
pub(crate) fn parse_timestamp(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 12 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl<K> WechatKeys<K> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts the 微信支付公钥 `key` under its id (`PUB_KEY_ID_…`).
    pub fn with_public_key(mut self, id: &str, key: K) -> Result<Self, VerifyError> {
        if !id.starts_with(PUBLIC_KEY_ID_PREFIX) || id.len() == PUBLIC_KEY_ID_PREFIX.len() {
            return Err(VerifyError::BadPublicKeyId(id.to_owned()));
        }
        self.public_key = Some((id.to_owned(), key));
        Ok(self)
    }

    /// Trusts a platform certificate's `key` under its serial (uppercase hex, as WeChat
    /// writes `Wechatpay-Serial`).
    pub fn with_certificate(mut self, serial: &str, key: K) -> Result<Self, VerifyError> {
        if serial.starts_with(PUBLIC_KEY_ID_PREFIX) || serial.is_empty() {
            return Err(VerifyError::BadCertificateSerial(serial.to_owned()));
        }
        self.certificates.push((serial.to_owned(), key));
        Ok(self)
    }

    /// The 微信支付公钥's id, when one is held. A request should name it in its own
    /// `Wechatpay-Serial` header: during a platform certificate → public key switch WeChat
    /// signs its answer with the key the request names, while notifies move to the public
    /// key on WeChat's own schedule (0.1 % on day one to 100 % on day seven), so both keys
    /// stay configured until the switch completes ("应答场景是跟商户请求时的wechatpay-serial
    /// 保持一致，但回调场景是随机的", WeChat Pay's support in
    /// <https://developers.weixin.qq.com/community/develop/doc/0004e8c40b09182972936db6d69400>;
    /// 如何从平台证书切换成微信支付公钥,
    /// <https://pay.weixin.qq.com/docs/partner/products/platform-certificate/update-pub-key.html>).
    pub fn public_key_id(&self) -> Option<&str> {
        self.public_key.as_ref().map(|(id, _)| id.as_str())
    }

    /// Whether no key is trusted at all (every answer would be refused).
    pub fn is_empty(&self) -> bool {
        self.public_key.is_none() && self.certificates.is_empty()
    }

    /// Every key held, as (the name `Wechatpay-Serial` gives it, the key).
    pub fn keys(&self) -> impl Iterator<Item = (&str, &K)> {
        self.public_key
            .iter()
            .chain(&self.certificates)
            .map(|(name, k)| (name.as_str(), k))
    }

    fn held(&self) -> Vec<String> {
        self.public_key
            .iter()
            .chain(&self.certificates)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The key a `Wechatpay-Serial` names.
    pub fn key_for(&self, serial: &str) -> Result<(KeyKind, &K), VerifyError> {
        let found = if serial.starts_with(PUBLIC_KEY_ID_PREFIX) {
            self.public_key
                .as_ref()
                .filter(|(id, _)| id == serial)
                .map(|(_, k)| (KeyKind::PublicKey, k))
        } else {
            self.certificates
                .iter()
                .find(|(s, _)| s == serial)
                .map(|(_, k)| (KeyKind::PlatformCertificate, k))
        };
        found.ok_or_else(|| VerifyError::UnknownSerial {
            serial: serial.to_owned(),
            held: self.held(),
        })
    }

    /// Everything but the RSA check: headers present, not the probe, timestamp within
    /// [`MAX_SKEW_SECS`] of `now` (Unix seconds, the caller's clock), a key for the serial,
    /// the signature decoded and the message built over the raw `body`.
    pub fn check<'a>(
        &'a self,
        headers: &Headers<'a>,
        body: &'a [u8],
        now: i64,
    ) -> Result<Pending<'a, K>, VerifyError> {
        let timestamp_text = headers
            .timestamp
            .ok_or(VerifyError::MissingHeader(HEADER_TIMESTAMP))?;
        let nonce = headers
            .nonce
            .ok_or(VerifyError::MissingHeader(HEADER_NONCE))?;
        let signature = headers
            .signature
            .ok_or(VerifyError::MissingHeader(HEADER_SIGNATURE))?;
        let serial = headers
            .serial
            .ok_or(VerifyError::MissingHeader(HEADER_SERIAL))?;
        if signature.starts_with(PROBE_PREFIX) {
            return Err(VerifyError::Probe);
        }
        let timestamp = parse_timestamp(timestamp_text)
            .ok_or_else(|| VerifyError::BadTimestamp(timestamp_text.to_owned()))?;
        let off = now.abs_diff(timestamp);
        if off > MAX_SKEW_SECS {
            return Err(VerifyError::Skewed {
                timestamp,
                now,
                off,
            });
        }
        let (kind, key) = self.key_for(serial)?;
        let signature = STANDARD
            .decode(signature.as_bytes())
            .map_err(|_| VerifyError::BadSignatureEncoding)?;
        let message = message(timestamp_text, nonce, body);
        Ok(Pending {
            key,
            kind,
            serial,
            message,
            signature,
            verified: Verified {
                body,
                serial,
                timestamp,
                nonce,
            },
        })
    }

    /// [`check`](Self::check), then the RSA check with `K`'s own [`RsaVerifier`].
    pub fn verify<'a>(
        &'a self,
        headers: &Headers<'a>,
        body: &'a [u8],
        now: i64,
    ) -> Result<Verified<'a>, VerifyError>
    where
        K: RsaVerifier,
    {
        let pending = self.check(headers, body, now)?;
        let valid = pending.key.verify(&pending.message, &pending.signature);
        pending.conclude(valid)
    }
}

/// A message ready for the RSA check: verify `signature` over `message` with `key`, then
/// [`conclude`](Pending::conclude) with the result.
#[derive(Debug)]
pub struct Pending<'a, K> {
    pub key: &'a K,
    pub kind: KeyKind,
    pub serial: &'a str,
    pub message: Vec<u8>,
    pub signature: Vec<u8>,
    verified: Verified<'a>,
}

impl<'a, K> Pending<'a, K> {
    /// The body, trusted only if the caller's RSA said the signature is valid.
    pub fn conclude(self, signature_valid: bool) -> Result<Verified<'a>, VerifyError> {
        if signature_valid {
            Ok(self.verified)
        } else {
            Err(VerifyError::Mismatch {
                serial: self.serial.to_owned(),
            })
        }
    }
}

/// A body whose signature verified. Only [`WechatKeys`] makes one, so a parser that takes
/// it cannot read an unverified body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified<'a> {
    body: &'a [u8],
    serial: &'a str,
    timestamp: i64,
    nonce: &'a str,
}

impl<'a> Verified<'a> {
    /// The raw bytes that verified.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }
    /// The `Wechatpay-Serial` whose key verified it.
    pub fn serial(&self) -> &'a str {
        self.serial
    }
    /// `Wechatpay-Timestamp`.
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }
    /// `Wechatpay-Nonce`.
    pub fn nonce(&self) -> &'a str {
        self.nonce
    }
}

/// The message an answer or notify signature covers: `TIMESTAMP\nNONCE\nBODY\n` over the
/// raw body bytes (the module docs cite the rule). One function for both sides, so what
/// wxsim signs is exactly what [`WechatKeys::check`] verifies.
pub fn message(timestamp: &str, nonce: &str, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(timestamp.len() + nonce.len() + body.len() + 3);
    for line in [timestamp.as_bytes(), nonce.as_bytes(), body] {
        m.extend_from_slice(line);
        m.push(b'\n');
    }
    m
}

/// The four `Wechatpay-*` headers WeChat puts on an answer or notify it signs: the side
/// that plays WeChat (wxsim, tests) writes them with [`sign`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    pub timestamp: String,
    pub nonce: String,
    /// Base64 of the SHA256withRSA signature (or the probe's, see [`SignedHeaders::probe`]).
    pub signature: String,
    /// `PUB_KEY_ID_…` for the 微信支付公钥, else a platform certificate's serial.
    pub serial: String,
}

impl SignedHeaders {
    /// `(name, value)` pairs, in the header names WeChat uses.
    pub fn pairs(&self) -> [(&'static str, &str); 4] {
        [
            (HEADER_TIMESTAMP, self.timestamp.as_str()),
            (HEADER_NONCE, self.nonce.as_str()),
            (HEADER_SIGNATURE, self.signature.as_str()),
            (HEADER_SERIAL, self.serial.as_str()),
        ]
    }

    /// The same headers as WeChat's signature probe sends them: the signature prefixed
    /// with [`PROBE_PREFIX`], which no receiver may accept ("此前缀为签名探测流量",
    /// <https://pay.weixin.qq.com/doc/v3/merchant/4016241880>).
    pub fn probe(mut self) -> SignedHeaders {
        self.signature = format!("{PROBE_PREFIX}{}", self.signature);
        self
    }
}

/// Signs `body` as WeChat signs its answers and notifies, with the key `serial` names.
/// `timestamp` is Unix seconds from the caller's clock, `nonce` the caller's random string.
pub fn sign(
    signer: &impl crate::v3::rsa::RsaSigner,
    serial: &str,
    timestamp: i64,
    nonce: &str,
    body: &[u8],
) -> Result<SignedHeaders, crate::v3::rsa::RsaError> {
    let timestamp = timestamp.to_string();
    let signature = signer.sign(&message(&timestamp, nonce, body))?;
    Ok(SignedHeaders {
        timestamp,
        nonce: nonce.to_owned(),
        signature: STANDARD.encode(signature),
        serial: serial.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in RSA: "valid" when the signature equals the message reversed.
    struct Mirror;
    impl RsaVerifier for Mirror {
        fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
            message.iter().rev().eq(signature.iter())
        }
    }

    fn sign(ts: &str, nonce: &str, body: &str) -> String {
        let m = format!("{ts}\n{nonce}\n{body}\n");
        STANDARD.encode(m.bytes().rev().collect::<Vec<_>>())
    }

    fn keys() -> WechatKeys<Mirror> {
        WechatKeys::new()
            .with_public_key("PUB_KEY_ID_0000000000000024101100397200000006", Mirror)
            .unwrap()
            .with_certificate("4DF076AC5A7D968D4A8B0B9C599A74CB4CF8EE8A", Mirror)
            .unwrap()
    }

    fn headers<'a>(ts: &'a str, sig: &'a str, serial: &'a str) -> Headers<'a> {
        Headers {
            timestamp: Some(ts),
            nonce: Some("n1"),
            signature: Some(sig),
            serial: Some(serial),
        }
    }

    #[test]
    fn both_kinds_of_key_verify_side_by_side() {
        let k = keys();
        let sig = sign("1000", "n1", "{}");
        for serial in [
            "PUB_KEY_ID_0000000000000024101100397200000006",
            "4DF076AC5A7D968D4A8B0B9C599A74CB4CF8EE8A",
        ] {
            let v = k
                .verify(&headers("1000", &sig, serial), b"{}", 1000)
                .unwrap();
            assert_eq!(v.body(), b"{}");
            assert_eq!(v.serial(), serial);
        }
    }

    #[test]
    fn the_window_is_300_seconds_either_way() {
        let k = keys();
        let sig = sign("1000", "n1", "");
        let serial = "4DF076AC5A7D968D4A8B0B9C599A74CB4CF8EE8A";
        for now in [700, 1300] {
            assert!(k.verify(&headers("1000", &sig, serial), b"", now).is_ok());
        }
        for now in [699, 1301] {
            let e = k
                .verify(&headers("1000", &sig, serial), b"", now)
                .unwrap_err();
            assert_eq!(e.code(), "V3_TIMESTAMP_SKEW");
        }
    }

    #[test]
    fn the_probe_unknown_serials_and_tampering_are_refused() {
        let k = keys();
        let serial = "PUB_KEY_ID_0000000000000024101100397200000006";
        let probe = format!("{PROBE_PREFIX}{}", sign("1000", "n1", "{}"));
        assert_eq!(
            k.verify(&headers("1000", &probe, serial), b"{}", 1000),
            Err(VerifyError::Probe)
        );
        let sig = sign("1000", "n1", "{}");
        let e = k
            .verify(&headers("1000", &sig, "PUB_KEY_ID_1"), b"{}", 1000)
            .unwrap_err();
        assert_eq!(e.code(), "V3_UNKNOWN_SERIAL");
        let e = k
            .verify(&headers("1000", &sig, serial), b"{ }", 1000)
            .unwrap_err();
        assert_eq!(e.code(), "SIGN_MISMATCH");
        let e = k.verify(&Headers::default(), b"", 1000).unwrap_err();
        assert_eq!(e, VerifyError::MissingHeader(HEADER_TIMESTAMP));
    }

    #[test]
    fn keys_go_in_under_the_right_kind_of_name() {
        assert!(WechatKeys::new().with_public_key("ABC", Mirror).is_err());
        assert!(
            WechatKeys::new()
                .with_certificate("PUB_KEY_ID_1", Mirror)
                .is_err()
        );
    }
    /// A stand-in signer matching [`Mirror`].
    struct MirrorSigner;
    impl crate::v3::rsa::RsaSigner for MirrorSigner {
        fn sign(&self, message: &[u8]) -> Result<Vec<u8>, crate::v3::rsa::RsaError> {
            Ok(message.iter().rev().copied().collect())
        }
    }

    #[test]
    fn what_wechat_signs_is_what_the_merchant_verifies_and_a_probe_is_refused() {
        let id = "PUB_KEY_ID_0000000000000024101100397200000006";
        let h = super::sign(&MirrorSigner, id, 1_700_000_000, "n1", b"{}").unwrap();
        assert_eq!(h.pairs()[3], (HEADER_SERIAL, id));
        let keys = keys();
        let found = |h: &SignedHeaders| {
            let pairs = h.pairs();
            keys.verify(
                &Headers::from_lookup(|n| pairs.iter().find(|(k, _)| *k == n).map(|(_, v)| *v)),
                b"{}",
                1_700_000_100,
            )
            .map(|v| v.serial().to_owned())
        };
        assert_eq!(found(&h), Ok(id.to_owned()));
        assert_eq!(found(&h.clone().probe()), Err(VerifyError::Probe));
    }
}
