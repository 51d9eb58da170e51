//! PEM and just enough DER to find an RSA key: the forms the merchant platform hands out
//! (`apiclient_key.pem`, PKCS#8; WeChat's `pub_key.pem`, SPKI; a platform certificate,
//! X.509) turned into the two forms every RSA implementation imports: PKCS#8 for a private
//! key, SPKI for a public one (WebCrypto's `importKey("pkcs8" | "spki", …)`), and the bare
//! `RSAPublicKey` ring verifies with. No cryptography here: only framing, so the Worker
//! (which has no RSA crate) and the `ring` build read keys the same way.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::rsa::RsaError;

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OCTET_STRING: u8 = 0x04;
const NULL: u8 = 0x05;
const OID: u8 = 0x06;
const EXPLICIT_0: u8 = 0xa0;
/// 1.2.840.113549.1.1.1, rsaEncryption.
const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

fn bad(why: &str) -> RsaError {
    RsaError::BadKey(format!("DER: {why}"))
}

/// The label and DER bytes of the first PEM block. Accepts `\r\n` and the literal `\n`
/// escapes a secret pasted through a one-line form may carry.
pub fn decode(pem: &str) -> Result<(String, Vec<u8>), RsaError> {
    let bad = |why: &str| RsaError::BadKey(format!("not PEM: {why}"));
    let unescaped;
    let pem = if pem.contains("\\n") && !pem.contains('\n') {
        unescaped = pem.replace("\\n", "\n");
        unescaped.as_str()
    } else {
        pem
    };
    let begin = pem
        .find("-----BEGIN ")
        .ok_or_else(|| bad("no -----BEGIN line"))?;
    let after = &pem[begin + "-----BEGIN ".len()..];
    let label_end = after
        .find("-----")
        .ok_or_else(|| bad("unterminated BEGIN line"))?;
    let label = &after[..label_end];
    let body = &after[label_end + 5..];
    let end_marker = format!("-----END {label}-----");
    let end = body
        .find(&end_marker)
        .ok_or_else(|| bad(&format!("no {end_marker} line")))?;
    let b64: String = body[..end].split_ascii_whitespace().collect();
    let der = STANDARD
        .decode(b64.as_bytes())
        .map_err(|e| bad(&format!("body is not base64: {e}")))?;
    Ok((label.to_owned(), der))
}

/// Every PEM block in `text`, in order (a bundle of platform certificates).
pub fn decode_all(text: &str) -> Result<Vec<(String, Vec<u8>)>, RsaError> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(begin) = rest.find("-----BEGIN ") {
        let block = &rest[begin..];
        let (label, der) = decode(block)?;
        let end_marker = format!("-----END {label}-----");
        let end = block
            .find(&end_marker)
            .map_or(block.len(), |i| i + end_marker.len());
        blocks.push((label, der));
        rest = &block[end..];
    }
    Ok(blocks)
}

/// One TLV: (tag, content, rest). Definite lengths up to 3 bytes only.
fn tlv(input: &[u8]) -> Result<(u8, &[u8], &[u8]), RsaError> {
    let (&tag, rest) = input.split_first().ok_or_else(|| bad("truncated tag"))?;
    let (&first, rest) = rest.split_first().ok_or_else(|| bad("truncated length"))?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 3 || rest.len() < n {
            return Err(bad("unsupported length"));
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err(bad("content runs past the end"));
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

fn expect<'a>(input: &'a [u8], want: u8, what: &str) -> Result<(&'a [u8], &'a [u8]), RsaError> {
    let (tag, content, rest) = tlv(input)?;
    if tag != want {
        return Err(bad(&format!("expected {what}")));
    }
    Ok((content, rest))
}

/// A TLV with `tag` around `content`.
fn wrap(tag: u8, content: &[u8]) -> Vec<u8> {
    let len = content.len();
    let mut out = Vec::with_capacity(len + 5);
    out.push(tag);
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(content);
    out
}

/// `AlgorithmIdentifier { rsaEncryption, NULL }`.
fn rsa_algorithm() -> Vec<u8> {
    let mut inner = wrap(OID, RSA_ENCRYPTION);
    inner.extend_from_slice(&[NULL, 0]);
    wrap(SEQUENCE, &inner)
}

/// SubjectPublicKeyInfo → the `RSAPublicKey` inside it.
pub fn spki_rsa_key(spki: &[u8]) -> Result<&[u8], RsaError> {
    let (inner, _) = expect(spki, SEQUENCE, "SubjectPublicKeyInfo")?;
    let (algorithm, rest) = expect(inner, SEQUENCE, "AlgorithmIdentifier")?;
    let (oid, _) = expect(algorithm, OID, "algorithm OID")?;
    if oid != RSA_ENCRYPTION {
        return Err(RsaError::BadKey("the public key is not RSA".into()));
    }
    let (bits, _) = expect(rest, BIT_STRING, "subjectPublicKey")?;
    match bits.split_first() {
        Some((0, key)) => Ok(key),
        _ => Err(bad("subjectPublicKey has unused bits")),
    }
}

/// Certificate → (serial number bytes, its SubjectPublicKeyInfo).
pub fn certificate(cert: &[u8]) -> Result<(&[u8], &[u8]), RsaError> {
    let (inner, _) = expect(cert, SEQUENCE, "Certificate")?;
    let (mut tbs, _) = expect(inner, SEQUENCE, "TBSCertificate")?;
    if tbs.first() == Some(&EXPLICIT_0) {
        tbs = tlv(tbs)?.2;
    }
    let (serial, rest) = expect(tbs, INTEGER, "serialNumber")?;
    let mut rest = rest;
    for what in ["signature", "issuer", "validity", "subject"] {
        rest = expect(rest, SEQUENCE, what)?.1;
    }
    let spki_len = rest.len() - tlv(rest)?.2.len();
    let spki = &rest[..spki_len];
    spki_rsa_key(spki)?;
    Ok((serial, spki))
}

/// A public key PEM (`PUBLIC KEY`, `RSA PUBLIC KEY` or `CERTIFICATE`) as SPKI DER.
pub fn public_key_spki(pem: &str) -> Result<Vec<u8>, RsaError> {
    let (label, der) = decode(pem)?;
    match label.as_str() {
        "PUBLIC KEY" => {
            spki_rsa_key(&der)?;
            Ok(der)
        }
        "RSA PUBLIC KEY" => {
            expect(&der, SEQUENCE, "RSAPublicKey")?;
            let mut bits = vec![0];
            bits.extend_from_slice(&der);
            let mut inner = rsa_algorithm();
            inner.extend_from_slice(&wrap(BIT_STRING, &bits));
            Ok(wrap(SEQUENCE, &inner))
        }
        "CERTIFICATE" => Ok(certificate(&der)?.1.to_vec()),
        other => Err(RsaError::BadKey(format!(
            "PEM holds {other:?}; expected PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE"
        ))),
    }
}

/// A private key PEM (`PRIVATE KEY`, PKCS#8, what `apiclient_key.pem` holds; or `RSA
/// PRIVATE KEY`, PKCS#1) as PKCS#8 DER.
pub fn private_key_pkcs8(pem: &str) -> Result<Vec<u8>, RsaError> {
    let (label, der) = decode(pem)?;
    match label.as_str() {
        "PRIVATE KEY" => {
            let (inner, _) = expect(&der, SEQUENCE, "PrivateKeyInfo")?;
            let (_, rest) = expect(inner, INTEGER, "version")?;
            let (algorithm, _) = expect(rest, SEQUENCE, "AlgorithmIdentifier")?;
            let (oid, _) = expect(algorithm, OID, "algorithm OID")?;
            if oid != RSA_ENCRYPTION {
                return Err(RsaError::BadKey("the private key is not RSA".into()));
            }
            Ok(der)
        }
        "RSA PRIVATE KEY" => {
            expect(&der, SEQUENCE, "RSAPrivateKey")?;
            let mut inner = wrap(INTEGER, &[0]);
            inner.extend_from_slice(&rsa_algorithm());
            inner.extend_from_slice(&wrap(OCTET_STRING, &der));
            Ok(wrap(SEQUENCE, &inner))
        }
        "ENCRYPTED PRIVATE KEY" => Err(RsaError::BadKey(
            "the private key is encrypted; export it unencrypted (openssl pkcs8 -nocrypt)".into(),
        )),
        other => Err(RsaError::BadKey(format!(
            "PEM holds {other:?}; expected PRIVATE KEY (PKCS#8) or RSA PRIVATE KEY (PKCS#1)"
        ))),
    }
}

/// The serial of a certificate DER as WeChat writes `Wechatpay-Serial`: uppercase hex,
/// without leading zero bytes.
pub fn serial_hex(cert_der: &[u8]) -> Result<String, RsaError> {
    let serial = certificate(cert_der)?.0;
    let trimmed = match serial.iter().position(|b| *b != 0) {
        Some(i) => &serial[i..],
        None => &serial[serial.len().saturating_sub(1)..],
    };
    Ok(trimmed.iter().map(|b| format!("{b:02X}")).collect())
}

/// Every certificate in a PEM bundle: (its serial, its SPKI DER).
pub fn certificates(bundle: &str) -> Result<Vec<(String, Vec<u8>)>, RsaError> {
    decode_all(bundle)?
        .into_iter()
        .map(|(label, der)| {
            if label != "CERTIFICATE" {
                return Err(RsaError::BadKey(format!(
                    "the bundle holds {label:?}; expected only CERTIFICATE blocks"
                )));
            }
            Ok((serial_hex(&der)?, certificate(&der)?.1.to_vec()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_round_trip_through_wrap() {
        for len in [0usize, 1, 127, 128, 255, 256, 70_000] {
            let content = vec![7u8; len];
            let w = wrap(OCTET_STRING, &content);
            let (tag, c, rest) = tlv(&w).unwrap();
            assert_eq!((tag, c.len(), rest.len()), (OCTET_STRING, len, 0));
        }
    }

    #[test]
    fn garbage_is_a_typed_error_never_a_panic() {
        for s in [
            "",
            "-----BEGIN PUBLIC KEY-----",
            "-----BEGIN PUBLIC KEY-----\n!!\n-----END PUBLIC KEY-----",
            "-----BEGIN PUBLIC KEY-----\nMAA=\n-----END PUBLIC KEY-----",
            "-----BEGIN X-----\nMAA=\n-----END X-----",
        ] {
            assert!(public_key_spki(s).is_err(), "{s:?}");
            assert!(private_key_pkcs8(s).is_err(), "{s:?}");
        }
        assert!(
            certificates("-----BEGIN PUBLIC KEY-----\nMAA=\n-----END PUBLIC KEY-----").is_err()
        );
        assert_eq!(certificates("no pem at all").unwrap(), vec![]);
    }
}
