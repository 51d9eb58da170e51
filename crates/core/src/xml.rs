//! WeChat's flat `<xml>` maps.
//!
//! WeChat Pay v2 speaks `<xml><k>v</k>…</xml>`: one root, one level of leaves, no
//! attributes. Anything richer in a body that claims to be from WeChat is either a bug or
//! an attack (XXE via a DOCTYPE, entity expansion bombs, a duplicate `total_fee` hoping
//! one parser reads the first and another the last), so the parser refuses it with a typed
//! error instead of guessing. It never panics and never expands a declared entity.
//!
//! Values are kept byte-exact (no whitespace trimming, no end-of-line normalisation)
//! because the signature is computed over the exact bytes.

use quick_xml::Reader;
use quick_xml::events::{BytesRef, Event};
use thiserror::Error;

use crate::{ErrorCode, Params};

/// The default bound on a body: WeChat's largest answers are a few KiB.
pub const DEFAULT_MAX_BYTES: usize = 64 * 1024;

/// Why a body is not a WeChat XML map.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum XmlError {
    #[error("XML body is {size} bytes, over the {limit}-byte bound")]
    TooLarge { size: usize, limit: usize },
    #[error("XML body is not UTF-8")]
    NotUtf8,
    #[error("XML carries a DOCTYPE; WeChat never sends one and it is refused (XXE)")]
    Doctype,
    #[error("XML declares an entity; refused, never expanded")]
    EntityDeclaration,
    #[error("XML references the undefined entity &{0};")]
    UnknownEntity(String),
    #[error("XML has no <xml> root element")]
    MissingRoot,
    #[error("XML root is <{0}>, expected <xml>")]
    WrongRoot(String),
    #[error("XML element <{0}> is nested inside another field; WeChat maps are flat")]
    Nested(String),
    #[error("XML has the key <{0}> twice")]
    DuplicateKey(String),
    #[error("XML element <{0}> has attributes; WeChat maps have none")]
    Attributes(String),
    #[error("XML has content after the closing </xml>")]
    TrailingContent,
    #[error("XML has text directly inside <xml>, outside any field")]
    StrayText,
    #[error("XML ends before </xml>")]
    Unclosed,
    #[error("XML key {0:?} is not a valid element name (use [A-Za-z_][A-Za-z0-9_.-]*)")]
    InvalidKey(String),
    #[error("XML is malformed at byte {position}: {reason}")]
    Malformed { position: u64, reason: String },
}

impl ErrorCode for XmlError {
    fn code(&self) -> &'static str {
        match self {
            XmlError::TooLarge { .. } => "XML_TOO_LARGE",
            XmlError::NotUtf8 => "XML_NOT_UTF8",
            XmlError::Doctype => "XML_DOCTYPE",
            XmlError::EntityDeclaration => "XML_ENTITY_DECLARATION",
            XmlError::UnknownEntity(_) => "XML_UNKNOWN_ENTITY",
            XmlError::MissingRoot => "XML_MISSING_ROOT",
            XmlError::WrongRoot(_) => "XML_WRONG_ROOT",
            XmlError::Nested(_) => "XML_NESTED",
            XmlError::DuplicateKey(_) => "XML_DUPLICATE_KEY",
            XmlError::Attributes(_) => "XML_ATTRIBUTES",
            XmlError::TrailingContent => "XML_TRAILING_CONTENT",
            XmlError::StrayText => "XML_STRAY_TEXT",
            XmlError::Unclosed => "XML_UNCLOSED",
            XmlError::InvalidKey(_) => "XML_INVALID_KEY",
            XmlError::Malformed { .. } => "XML_MALFORMED",
        }
    }
}

/// Keys we write must be plain ASCII XML names; WeChat's all are.
fn is_valid_key(k: &str) -> bool {
    let mut bytes = k.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        && !k.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("xml"))
}

/// Writes a map as WeChat expects it: `<xml><k><![CDATA[v]]></k>…</xml>`, keys in byte
/// order. A `]]>` inside a value is split across two CDATA sections, which every XML
/// parser joins back into the same text.
pub fn to_xml(params: &Params) -> Result<String, XmlError> {
    if let Some(bad) = params.keys().find(|k| !is_valid_key(k)) {
        return Err(XmlError::InvalidKey(bad.clone()));
    }
    Ok(write_xml(
        params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    ))
}

/// Writes pairs whose keys are known to be valid names (checked by [`to_xml`], or
/// constants of this crate).
pub(crate) fn write_xml<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)> + Clone) -> String {
    let mut out = String::with_capacity(
        16 + pairs
            .clone()
            .map(|(k, v)| 2 * k.len() + v.len() + 17)
            .sum::<usize>(),
    );
    out.push_str("<xml>");
    for (k, v) in pairs {
        out.push('<');
        out.push_str(k);
        out.push_str("><![CDATA[");
        if v.contains("]]>") {
            out.push_str(&v.replace("]]>", "]]]]><![CDATA[>"));
        } else {
            out.push_str(v);
        }
        out.push_str("]]></");
        out.push_str(k);
        out.push('>');
    }
    out.push_str("</xml>");
    out
}

/// [`parse_xml_with_limit`] with [`DEFAULT_MAX_BYTES`].
pub fn parse_xml(body: &[u8]) -> Result<Params, XmlError> {
    parse_xml_with_limit(body, DEFAULT_MAX_BYTES)
}

enum State {
    BeforeRoot,
    InRoot,
    InField { key: String, value: String },
    AfterRoot,
}

fn is_blank(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_whitespace())
}

/// The text a reference stands for: the five predefined entities and character
/// references only. Anything else would need a DTD, which we refuse.
fn resolve_ref(r: &BytesRef<'_>) -> Result<char, XmlError> {
    if let Ok(Some(c)) = r.resolve_char_ref() {
        return Ok(c);
    }
    let name = r.clone().into_inner();
    match &*name {
        "lt" => Ok('<'),
        "gt" => Ok('>'),
        "amp" => Ok('&'),
        "apos" => Ok('\''),
        "quot" => Ok('"'),
        other => Err(XmlError::UnknownEntity(other.to_owned())),
    }
}

/// Parses a WeChat XML map strictly (see the module docs), refusing bodies over `limit`
/// bytes before reading them.
pub fn parse_xml_with_limit(body: &[u8], limit: usize) -> Result<Params, XmlError> {
    parse_flat(body, limit, "xml")
}

/// [`parse_xml`] for a flat document whose root is `root` (a v2 refund notify's decrypted
/// `req_info` is `<root>…</root>`), with the same strictness.
pub fn parse_flat(body: &[u8], limit: usize, root: &str) -> Result<Params, XmlError> {
    if body.len() > limit {
        return Err(XmlError::TooLarge {
            size: body.len(),
            limit,
        });
    }
    let text = std::str::from_utf8(body).map_err(|_| XmlError::NotUtf8)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = Reader::from_str(text);
    let config = reader.config_mut();
    config.check_end_names = true;
    config.expand_empty_elements = false;
    config.trim_text(false);

    let mut map = Params::new();
    let mut state = State::BeforeRoot;
    let malformed = |reader: &Reader<&[u8]>, e: &dyn std::fmt::Display| XmlError::Malformed {
        position: reader.error_position(),
        reason: e.to_string(),
    };
    loop {
        let event = reader.read_event().map_err(|e| malformed(&reader, &e))?;
        state = match (state, event) {
            (_, Event::DocType(d)) => {
                return Err(if d.into_inner().contains("ENTITY") {
                    XmlError::EntityDeclaration
                } else {
                    XmlError::Doctype
                });
            }
            (s, Event::Comment(_)) => s,
            (State::BeforeRoot, Event::Decl(_)) => State::BeforeRoot,
            (State::BeforeRoot, Event::Text(t)) if is_blank(&t.borrow().into_inner()) => {
                State::BeforeRoot
            }
            (State::BeforeRoot, Event::Start(e) | Event::Empty(e)) if e.name().as_ref() != root => {
                return Err(XmlError::WrongRoot(e.name().as_ref().to_owned()));
            }
            (State::BeforeRoot, Event::Start(e)) => {
                if e.attributes().next().is_some() {
                    return Err(XmlError::Attributes(root.into()));
                }
                State::InRoot
            }
            (State::BeforeRoot, Event::Empty(_)) => State::AfterRoot,
            (State::BeforeRoot, _) => return Err(XmlError::MissingRoot),

            (State::InRoot, Event::Text(t)) if is_blank(&t.borrow().into_inner()) => State::InRoot,
            (State::InRoot, Event::Text(_) | Event::CData(_) | Event::GeneralRef(_)) => {
                return Err(XmlError::StrayText);
            }
            (State::InRoot, Event::Start(e) | Event::Empty(e))
                if e.attributes().next().is_some() =>
            {
                return Err(XmlError::Attributes(e.name().as_ref().to_owned()));
            }
            (State::InRoot, Event::Start(e)) => State::InField {
                key: e.name().as_ref().to_owned(),
                value: String::new(),
            },
            (State::InRoot, Event::Empty(e)) => {
                insert(&mut map, e.name().as_ref().to_owned(), String::new())?;
                State::InRoot
            }
            (State::InRoot, Event::End(_)) => State::AfterRoot,

            (State::InField { key, mut value }, Event::Text(t)) => {
                value.push_str(&t.into_inner());
                State::InField { key, value }
            }
            (State::InField { key, mut value }, Event::CData(t)) => {
                value.push_str(&t.into_inner());
                State::InField { key, value }
            }
            (State::InField { key, mut value }, Event::GeneralRef(r)) => {
                value.push(resolve_ref(&r)?);
                State::InField { key, value }
            }
            (State::InField { .. }, Event::Start(e) | Event::Empty(e)) => {
                return Err(XmlError::Nested(e.name().as_ref().to_owned()));
            }
            (State::InField { key, value }, Event::End(_)) => {
                insert(&mut map, key, value)?;
                State::InRoot
            }

            (State::AfterRoot, Event::Text(t)) if is_blank(&t.borrow().into_inner()) => {
                State::AfterRoot
            }
            (State::AfterRoot, Event::Eof) => return Ok(map),
            (State::AfterRoot, _) => return Err(XmlError::TrailingContent),

            (State::InRoot | State::InField { .. }, Event::Eof) => return Err(XmlError::Unclosed),
            (_, Event::Decl(_) | Event::PI(_)) => {
                return Err(XmlError::Malformed {
                    position: reader.buffer_position(),
                    reason: "processing instruction inside the document".into(),
                });
            }
        };
    }
}

fn insert(map: &mut Params, key: String, value: String) -> Result<(), XmlError> {
    use std::collections::btree_map::Entry;
    match map.entry(key) {
        Entry::Occupied(e) => Err(XmlError::DuplicateKey(e.key().clone())),
        Entry::Vacant(e) => {
            e.insert(value);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_cdata_and_splits_the_terminator() {
        let mut p = Params::new();
        p.insert("a".into(), "x]]>y".into());
        p.insert("b".into(), "<&>".into());
        let xml = to_xml(&p).unwrap();
        assert_eq!(
            xml,
            "<xml><a><![CDATA[x]]]]><![CDATA[>y]]></a><b><![CDATA[<&>]]></b></xml>"
        );
        assert_eq!(parse_xml(xml.as_bytes()).unwrap(), p);
    }

    #[test]
    fn reads_what_wechat_sends() {
        let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<xml>\n  <return_code><![CDATA[SUCCESS]]></return_code>\n  <total_fee>1</total_fee>\n  <msg>a &amp; b &#x4e2d;</msg>\n  <empty/>\n  <!-- a comment -->\n</xml>\n";
        let p = parse_xml(body.as_bytes()).unwrap();
        assert_eq!(p["return_code"], "SUCCESS");
        assert_eq!(p["total_fee"], "1");
        assert_eq!(p["msg"], "a & b 中");
        assert_eq!(p["empty"], "");
        assert_eq!(p.len(), 4);
    }
}
