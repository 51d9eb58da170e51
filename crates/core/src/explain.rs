//! `explain_sign`: the answer to "签名错误".
//!
//! Given the parameters someone signed, the API key and the sign they got (or sent),
//! show the exact string WeChat signs, both signs it yields, and which of the known
//! mistakes would turn the right sign into the given one. Each mistake is tried by
//! redoing the signature the wrong way; a mistake is named only if it reproduces the
//! given sign exactly, so the diagnosis is never a guess.

use serde::Serialize;
use std::fmt;

use crate::Params;
use crate::sign::{self, SignType};

/// A known way to get a v2 signature wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "code", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Mistake {
    /// Signed with the other algorithm than the one `sign_type`/`signType` names.
    OtherAlgorithm { used: String, expected: String },
    /// The `sign` parameter itself was included in the signed string.
    SignIncluded,
    /// `sign_type` was left out of the signed string although it is sent.
    SignTypeLeftOut { key: String },
    /// A `sign_type` that is not sent was included in the signed string.
    SignTypeAdded { value: String },
    /// Parameters with empty values were included (`k=&`); WeChat skips them.
    EmptyValuesIncluded { keys: Vec<String> },
    /// The sign from unifiedorder's answer was passed on as `paySign`.
    UnifiedOrderSignAsPaySign,
    /// A key was signed under another casing (`timestamp` for `timeStamp`…).
    KeyCasing { signed_as: String, expected: String },
    /// A value was signed with its surrounding whitespace trimmed (or sent untrimmed).
    WhitespaceInValue { keys: Vec<String> },
    /// The API key has surrounding whitespace (a copy-paste newline or space).
    WhitespaceInKey,
    /// The sign is right but in lowercase hex; WeChat wants uppercase.
    LowercaseHex,
    /// Signed with the mini-program's AppSecret instead of the merchant API key.
    AppSecretAsKey,
    /// `&key=API_KEY` was not appended before hashing.
    KeyNotAppended,
    /// Keys were not sorted in byte order (e.g. as inserted, or case-insensitively).
    NotSorted,
}

impl Mistake {
    pub fn code(&self) -> &'static str {
        match self {
            Mistake::OtherAlgorithm { .. } => "OTHER_ALGORITHM",
            Mistake::SignIncluded => "SIGN_INCLUDED",
            Mistake::SignTypeLeftOut { .. } => "SIGN_TYPE_LEFT_OUT",
            Mistake::SignTypeAdded { .. } => "SIGN_TYPE_ADDED",
            Mistake::EmptyValuesIncluded { .. } => "EMPTY_VALUES_INCLUDED",
            Mistake::UnifiedOrderSignAsPaySign => "UNIFIED_ORDER_SIGN_AS_PAY_SIGN",
            Mistake::KeyCasing { .. } => "KEY_CASING",
            Mistake::WhitespaceInValue { .. } => "WHITESPACE_IN_VALUE",
            Mistake::WhitespaceInKey => "WHITESPACE_IN_KEY",
            Mistake::LowercaseHex => "LOWERCASE_HEX",
            Mistake::AppSecretAsKey => "APP_SECRET_AS_KEY",
            Mistake::KeyNotAppended => "KEY_NOT_APPENDED",
            Mistake::NotSorted => "NOT_SORTED",
        }
    }
}

impl fmt::Display for Mistake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mistake::OtherAlgorithm { used, expected } => write!(
                f,
                "signed with {used}, but the parameters say {expected}: sign with the algorithm sign_type names (absent = MD5)"
            ),
            Mistake::SignIncluded => {
                write!(
                    f,
                    "the `sign` parameter was included in the signed string; leave it out"
                )
            }
            Mistake::SignTypeLeftOut { key } => write!(
                f,
                "`{key}` was left out of the signed string; every sent parameter except `sign` is signed"
            ),
            Mistake::SignTypeAdded { value } => write!(
                f,
                "`sign_type={value}` was signed but is not sent; sign exactly what you send"
            ),
            Mistake::EmptyValuesIncluded { keys } => write!(
                f,
                "parameters with empty values were signed ({}); WeChat skips empty values",
                keys.join(", ")
            ),
            Mistake::UnifiedOrderSignAsPaySign => write!(
                f,
                "the sign of unifiedorder's answer was used as paySign; paySign is a second sign over appId, timeStamp, nonceStr, package, signType"
            ),
            Mistake::KeyCasing {
                signed_as,
                expected,
            } => write!(
                f,
                "`{signed_as}` was signed where WeChat expects `{expected}` (keys are case-sensitive)"
            ),
            Mistake::WhitespaceInValue { keys } => write!(
                f,
                "whitespace around the value of {} differs between what was signed and what is sent",
                keys.join(", ")
            ),
            Mistake::WhitespaceInKey => write!(
                f,
                "the API key has surrounding whitespace (a pasted newline or space?); trim it"
            ),
            Mistake::LowercaseHex => {
                write!(
                    f,
                    "the sign is in lowercase hex; WeChat compares uppercase hex"
                )
            }
            Mistake::AppSecretAsKey => write!(
                f,
                "signed with the mini-program's AppSecret; WeChat Pay signs with the merchant API key (商户平台 → API安全)"
            ),
            Mistake::KeyNotAppended => write!(
                f,
                "`&key=API_KEY` was not appended before hashing (for HMAC-SHA256 it is appended AND used as the HMAC key)"
            ),
            Mistake::NotSorted => write!(
                f,
                "the parameters were not sorted by key in byte (ASCII) order before joining"
            ),
        }
    }
}

/// Optional context that lets more mistakes be recognised.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context<'a> {
    /// The mini-program AppSecret, to recognise it used in place of the API key.
    pub app_secret: Option<&'a str>,
    /// The `sign` of the unifiedorder answer, to recognise it passed on as `paySign`.
    pub unified_order_sign: Option<&'a str>,
}

/// The diagnosis of one signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// `stringA`: what WeChat signs, before `&key=`.
    pub canonical: String,
    /// `stringSignTemp` with the key masked, safe to print.
    pub string_to_sign: String,
    /// The algorithm the parameters name (`sign_type` / `signType`; absent = MD5).
    pub sign_type: String,
    pub md5: String,
    pub hmac_sha256: String,
    /// The sign these parameters should carry.
    pub expected: String,
    pub given: String,
    /// The given sign is exactly right.
    pub matches: bool,
    /// The mistakes that reproduce the given sign (all together), empty if it matches
    /// or if no known mistake explains it.
    pub mistakes: Vec<Mistake>,
    /// What to check next, in one sentence.
    pub hint: String,
}

/// Masks a key for display: its length and last 4 characters only.
fn mask(key: &str) -> String {
    let n = key.chars().count();
    let tail: String = key.chars().skip(n.saturating_sub(4)).collect();
    format!("<API key: {n} chars, ends {tail:?}>")
}

fn named_algorithm(params: &Params) -> (SignType, Option<&'static str>) {
    for k in ["sign_type", "signType"] {
        if let Some(v) = params.get(k) {
            return (v.parse().unwrap_or_default(), Some(k));
        }
    }
    (SignType::Md5, None)
}

/// A way of building the signed string, to try against the given sign.
struct Attempt {
    message: String,
    key: String,
    mistakes: Vec<Mistake>,
}

fn join_pairs<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    pairs
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn with_key(s: &str, key: &str) -> String {
    format!("{s}&key={key}")
}

/// Explains `given_sign` for `params` under `key` (see the module docs).
pub fn explain_sign(params: &Params, key: &str, given_sign: &str, ctx: Context<'_>) -> Explanation {
    // wx.requestPayment objects carry their sign as `paySign`; it is never signed.
    let stripped;
    let params = if params.contains_key("paySign") {
        stripped = {
            let mut p = params.clone();
            p.remove("paySign");
            p
        };
        &stripped
    } else {
        params
    };
    let (sign_type, sign_type_key) = named_algorithm(params);
    let canonical = sign::canonical_string(params);
    let md5 = sign::sign(params, key, SignType::Md5).to_string();
    let hmac = sign::sign(params, key, SignType::HmacSha256).to_string();
    let expected = match sign_type {
        SignType::Md5 => md5.clone(),
        SignType::HmacSha256 => hmac.clone(),
    };
    let given = given_sign.trim();
    let matches = given == expected;
    let mut explanation = Explanation {
        string_to_sign: with_key(&canonical, &mask(key)),
        canonical: canonical.clone(),
        sign_type: sign_type.as_str().to_owned(),
        md5,
        hmac_sha256: hmac,
        expected,
        given: given_sign.to_owned(),
        matches,
        mistakes: Vec::new(),
        hint: String::new(),
    };
    if matches {
        explanation.hint = "the sign is right; if WeChat still says 签名错误, the body sent differs from these parameters".into();
        return explanation;
    }
    let given_upper = given.to_ascii_uppercase();
    let lowercase = given != given_upper && given.bytes().all(|b| b.is_ascii_hexdigit());

    if let Some(mut mistakes) = find_mistakes(
        params,
        key,
        &given_upper,
        sign_type,
        sign_type_key,
        &canonical,
        ctx,
    ) {
        if lowercase {
            mistakes.push(Mistake::LowercaseHex);
        }
        explanation.mistakes = mistakes;
        explanation.hint =
            "fix the mistakes listed; together they reproduce the given sign exactly".into();
    } else if lowercase && given_upper == explanation.expected {
        explanation.mistakes = vec![Mistake::LowercaseHex];
        explanation.hint = "uppercase the hex".into();
    } else {
        explanation.hint = format!(
            "no known mistake reproduces it: check the API key ({} chars here; WeChat's is 32) and that the parameters signed are exactly those sent",
            key.chars().count()
        );
    }
    explanation
}

fn find_mistakes(
    params: &Params,
    key: &str,
    given_upper: &str,
    sign_type: SignType,
    sign_type_key: Option<&'static str>,
    canonical: &str,
    ctx: Context<'_>,
) -> Option<Vec<Mistake>> {
    let nonempty = || params.iter().filter(|(k, v)| !v.is_empty() && *k != "sign");
    let mut attempts: Vec<Attempt> = Vec::new();
    let attempt = |message: String, key: &str, mistakes: Vec<Mistake>| Attempt {
        message,
        key: key.to_owned(),
        mistakes,
    };

    if let Some(unified) = ctx.unified_order_sign
        && unified.eq_ignore_ascii_case(given_upper)
    {
        return Some(vec![Mistake::UnifiedOrderSignAsPaySign]);
    }

    // The right string, other algorithm (handled by trying both algorithms below).
    attempts.push(attempt(with_key(canonical, key), key, vec![]));
    // `&key=` not appended.
    attempts.push(attempt(
        canonical.to_owned(),
        key,
        vec![Mistake::KeyNotAppended],
    ));
    // `sign` included.
    if params.get("sign").is_some_and(|s| !s.is_empty()) {
        let s = join_pairs(
            params
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        attempts.push(attempt(with_key(&s, key), key, vec![Mistake::SignIncluded]));
    }
    // Empty values included.
    let empties: Vec<String> = params
        .iter()
        .filter(|(k, v)| v.is_empty() && *k != "sign")
        .map(|(k, _)| k.clone())
        .collect();
    if !empties.is_empty() {
        let s = join_pairs(
            params
                .iter()
                .filter(|(k, _)| *k != "sign")
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        attempts.push(attempt(
            with_key(&s, key),
            key,
            vec![Mistake::EmptyValuesIncluded { keys: empties }],
        ));
    }
    // sign_type left out, or added.
    if let Some(stk) = sign_type_key {
        let s = join_pairs(
            nonempty()
                .filter(|(k, _)| *k != stk)
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        attempts.push(attempt(
            with_key(&s, key),
            key,
            vec![Mistake::SignTypeLeftOut {
                key: stk.to_owned(),
            }],
        ));
    } else {
        for st in [SignType::Md5, SignType::HmacSha256] {
            let mut p = params.clone();
            p.insert("sign_type".into(), st.as_str().into());
            attempts.push(attempt(
                with_key(&sign::canonical_string(&p), key),
                key,
                vec![Mistake::SignTypeAdded {
                    value: st.as_str().into(),
                }],
            ));
        }
    }
    // Key casing: the payment params' camelCase keys, and the snake_case habits.
    for (right, wrong) in [
        ("timeStamp", "timestamp"),
        ("nonceStr", "noncestr"),
        ("appId", "appid"),
        ("signType", "signtype"),
    ] {
        for (present, instead) in [(right, wrong), (wrong, right)] {
            if let Some(v) = params.get(present) {
                let mut p = params.clone();
                p.remove(present);
                p.insert(instead.to_owned(), v.clone());
                attempts.push(attempt(
                    with_key(&sign::canonical_string(&p), key),
                    key,
                    vec![Mistake::KeyCasing {
                        signed_as: instead.into(),
                        expected: present.into(),
                    }],
                ));
            }
        }
    }
    // Whitespace in values.
    let spaced: Vec<String> = params
        .iter()
        .filter(|(k, v)| *k != "sign" && v.trim() != v.as_str())
        .map(|(k, _)| k.clone())
        .collect();
    if !spaced.is_empty() {
        let mut p = Params::new();
        for (k, v) in params {
            p.insert(k.clone(), v.trim().to_owned());
        }
        attempts.push(attempt(
            with_key(&sign::canonical_string(&p), key),
            key,
            vec![Mistake::WhitespaceInValue { keys: spaced }],
        ));
    }
    // Whitespace around the key: signed with the untrimmed key, or the given key is untrimmed.
    if key.trim() != key {
        attempts.push(attempt(
            with_key(canonical, key.trim()),
            key.trim(),
            vec![Mistake::WhitespaceInKey],
        ));
    } else {
        for k in [
            format!("{key}\n"),
            format!("{key} "),
            format!(" {key}"),
            format!("{key}\r\n"),
        ] {
            attempts.push(attempt(
                with_key(canonical, &k),
                &k,
                vec![Mistake::WhitespaceInKey],
            ));
        }
    }
    // Not sorted: insertion order is unknown, so try case-insensitive order and reverse.
    {
        let mut pairs: Vec<(&str, &str)> =
            nonempty().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        pairs.sort_unstable_by_key(|(k, _)| k.to_ascii_lowercase());
        let s = join_pairs(pairs.iter().copied());
        if s != canonical {
            attempts.push(attempt(with_key(&s, key), key, vec![Mistake::NotSorted]));
        }
    }
    // AppSecret as key.
    if let Some(secret) = ctx.app_secret {
        attempts.push(attempt(
            with_key(canonical, secret),
            secret,
            vec![Mistake::AppSecretAsKey],
        ));
    }

    for a in &attempts {
        for algorithm in [sign_type, other(sign_type)] {
            if sign::sign_message(&a.message, &a.key, algorithm).as_str() == given_upper {
                let mut mistakes = a.mistakes.clone();
                if algorithm != sign_type {
                    mistakes.insert(
                        0,
                        Mistake::OtherAlgorithm {
                            used: algorithm.as_str().into(),
                            expected: sign_type.as_str().into(),
                        },
                    );
                }
                if mistakes.is_empty() {
                    return None; // only the hex case differs; the caller reports it
                }
                return Some(mistakes);
            }
        }
    }
    None
}

fn other(t: SignType) -> SignType {
    match t {
        SignType::Md5 => SignType::HmacSha256,
        SignType::HmacSha256 => SignType::Md5,
    }
}
