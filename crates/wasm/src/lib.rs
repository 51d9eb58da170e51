//! The npm package `wxedge`: wxedge-core for JavaScript.
//!
//! A shell, not a second implementation: each function converts JS values to core types,
//! calls the core, and converts back. Failures throw an `Error` whose `code` is the core's
//! stable [`ErrorCode`] (`SIGN_MISMATCH`, `XML_DOCTYPE`, `BAD_PADDING`, …), so callers
//! branch on `err.code`, never on message text.

use js_sys::{Array, Object, Reflect};
use std::cell::RefCell;
use wasm_bindgen::prelude::*;
use wxedge_core::explain::{self, Context, Mistake};
use wxedge_core::notify::{self, Outcome};
use wxedge_core::pay::{self, PayError};
use wxedge_core::sign::{self, SignType, Signer};
use wxedge_core::v3::explain::Mistake as MistakeV3;
use wxedge_core::{ALL_CODES, ErrorCode, Params, crypt, random, xml};

/// An `Error` with a stable `code` property.
fn error(code: &str, message: &str) -> JsValue {
    let e = js_sys::Error::new(message);
    // Setting a property on a fresh Error cannot fail.
    let _ = Reflect::set(&e, &"code".into(), &code.into());
    e.into()
}

fn core_error<E: ErrorCode + std::fmt::Display>(e: E) -> JsValue {
    error(e.code(), &e.to_string())
}

fn invalid(message: impl AsRef<str>) -> JsValue {
    error("INVALID_ARGUMENT", message.as_ref())
}

// Strings and values are what is expensive to move across the wasm boundary: every
// crossing costs about as much as hashing a short string. Params therefore travel as one
// `"k\0v\0k\0v…"` string each way, built and taken apart by these functions in a single
// call; inbound, the engine encodes it straight into a buffer in wasm memory (one native
// `encodeInto`, no per-character copy by the glue). (scripts/lib/common.sh rewrites the
// `export`s for the CommonJS build.)
#[wasm_bindgen(inline_js = r#"
function flat(obj) {
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) return '\u0002';
  let out = '';
  let n = 0;
  for (const k in obj) {
    const v = obj[k];
    if (v == null) continue;
    const t = typeof v;
    if (t === 'string') {
      out += k + '\u0000' + v + '\u0000';
    } else if (t === 'object' || t === 'function' || t === 'symbol') {
      return '\u0001' + k;
    } else {
      out += k + '\u0000' + String(v) + '\u0000';
    }
    n++;
  }
  return n + '\u0000' + out;
}
const utf8 = new TextEncoder();
// The reused buffer's view, made again only when the buffer moves or memory grows.
let view = null;
function into(s, memory, ptr, cap) {
  if (view === null || view.buffer !== memory.buffer || view.byteOffset !== ptr || view.length !== cap) {
    view = new Uint8Array(memory.buffer, ptr, cap);
  }
  const { read, written } = utf8.encodeInto(s, view);
  return read === s.length ? written : -3 * s.length;
}
export function flattenInto(obj, memory, ptr, cap) {
  return into(flat(obj), memory, ptr, cap);
}
export function textInto(s, memory, ptr, cap) {
  return into(s, memory, ptr, cap);
}
export function unflatten(s) {
  const o = {};
  if (s === '') return o;
  const parts = s.split('\u0000');
  for (let i = 0; i + 1 < parts.length; i += 2) o[parts[i]] = parts[i + 1];
  return o;
}
const hasOwn = Object.prototype.hasOwnProperty;
export function notifyRecord(s) {
  const parts = s.split('\u0000');
  const params = {};
  for (let i = 4; i + 1 < parts.length; i += 2) params[parts[i]] = parts[i + 1];
  const text = (k) => (hasOwn.call(params, k) ? params[k] : '');
  const nullable = (v) => (v === '\u0001' ? null : v);
  return {
    appid: text('appid'),
    mch_id: text('mch_id'),
    out_trade_no: text('out_trade_no'),
    transaction_id: text('transaction_id'),
    total_fee: Number(parts[0]),
    openid: text('openid'),
    time_end: text('time_end'),
    result_code: parts[1],
    err_code: nullable(parts[2]),
    err_code_des: nullable(parts[3]),
    params,
  };
}
export function watermarkOf(d) {
  const w = hasOwn.call(d, 'watermark') ? d.watermark : undefined;
  const fields = typeof w === 'object' && w !== null;
  const kind = (k) => {
    if (!fields || !hasOwn.call(w, k)) return 'a';
    const t = typeof w[k];
    return t === 'string' ? 's' : t === 'number' ? 'n' : 'o';
  };
  const a = kind('appid');
  const t = kind('timestamp');
  return a + t + '\u0000' + (a === 's' ? w.appid : '');
}
export function watermarkTimestamp(d) {
  return d.watermark.timestamp;
}
"#)]
extern "C" {
    // `catch`: a getter that throws comes back as an Err, so our borrow of the buffer ends
    // normally instead of being skipped by a JS exception unwinding through wasm.
    #[wasm_bindgen(catch, js_name = flattenInto)]
    fn flatten_into(obj: &JsValue, memory: &JsValue, ptr: u32, cap: u32) -> Result<i32, JsValue>;
    /// A string encoded into the buffer as UTF-8, as [`flatten_into`] does.
    #[wasm_bindgen(js_name = textInto)]
    fn text_into(s: &JsValue, memory: &JsValue, ptr: u32, cap: u32) -> i32;
    /// A parsed notify in one crossing: `"total_fee\0result_code\0err_code\0err_code_des\0"`
    /// (`\u{1}` for a null), then its params as `k\0v\0…`. The other fields are the
    /// params' own (`""` when absent), as [`notify::parse_notify`] reads them.
    #[wasm_bindgen(js_name = notifyRecord)]
    fn notify_record(flat: &str) -> JsValue;
    fn unflatten(flat: &str) -> JsValue;
    /// The own `watermark.appid` and `watermark.timestamp` of a JSON.parse result, in one
    /// crossing: a kind letter for each (`a` absent, `s` string, `n` number, `o` anything
    /// else), NUL, the appid. Own properties only: one inherited from a polluted
    /// `Object.prototype` is not in the payload.
    #[wasm_bindgen(js_name = watermarkOf)]
    fn watermark_of(data: &JsValue) -> String;
    /// `watermark.timestamp`, once [`watermark_of`] said it is a number: passed as the
    /// double itself (no float parsing in the wasm: its tables are kilobytes).
    #[wasm_bindgen(js_name = watermarkTimestamp)]
    fn watermark_timestamp(data: &JsValue) -> f64;
}

/// Runs `f` on the bytes `fill` writes into a reused buffer in wasm memory (through the
/// engine's `encodeInto`): `fill(memory, ptr, cap)` says how much it wrote or, negative,
/// how large the buffer must be.
fn with_encoded<R>(
    fill: impl Fn(&JsValue, u32, u32) -> Result<i32, JsValue>,
    f: impl FnOnce(&[u8]) -> Result<R, JsValue>,
) -> Result<R, JsValue> {
    thread_local! {
        static BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; 8192]);
        static MEMORY: JsValue = wasm_bindgen::memory();
    }
    let run = |buf: &mut Vec<u8>| {
        let written = MEMORY.with(|memory| {
            loop {
                let n = fill(memory, buf.as_mut_ptr() as u32, buf.len() as u32)?;
                match usize::try_from(n) {
                    Ok(n) => break Ok::<usize, JsValue>(n),
                    Err(_) => buf.resize(n.unsigned_abs() as usize, 0),
                }
            }
        })?;
        f(buf.get(..written).unwrap_or_default())
    };
    // Re-entered (a getter in a params object calling back into wxedge): a fresh buffer.
    BUF.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => run(&mut buf),
        Err(_) => run(&mut vec![0; 8192]),
    })
}

/// Runs `f` on the flattened form of a JS params object: `"n\0k\0v\0…k\0v\0"`, the count
/// of pairs then the pairs (numbers and booleans as `String(x)` writes them; `null` and
/// `undefined` values left out, like empty ones), read from a reused buffer.
fn with_flat<R>(
    value: &JsValue,
    what: &str,
    f: impl FnOnce(&str) -> Result<R, JsValue>,
) -> Result<R, JsValue> {
    with_encoded(
        |memory, ptr, cap| flatten_into(value, memory, ptr, cap),
        |bytes| {
            let flat = std::str::from_utf8(bytes)
                .map_err(|_| invalid(format!("{what} is not valid text")))?;
            // The type checks happen in JS: each check from here would be a crossing.
            if flat.starts_with('\u{2}') {
                return Err(invalid(format!("{what} must be an object of strings")));
            }
            check_nested(flat, what)?;
            f(flat)
        },
    )
}

fn check_nested(flat: &str, what: &str) -> Result<(), JsValue> {
    match flat.strip_prefix('\u{1}') {
        Some(key) => Err(invalid(format!(
            "{what}.{key} must be a string or a number, not an object"
        ))),
        None => Ok(()),
    }
}

/// The pairs of a flat string, sorted by key in byte order (JS keys are unique). A NUL
/// inside a key or value shows as a wrong count of pieces.
fn sorted_pairs<'a>(flat: &'a str, what: &str) -> Result<Vec<(&'a str, &'a str)>, JsValue> {
    let nul = || invalid(format!("{what} has a NUL character in a key or value"));
    let (count, rest) = flat.split_once('\0').ok_or_else(nul)?;
    let count: usize = count.parse().map_err(|_| nul())?;
    // A plain byte scan: with two dozen short pieces, `str::split`'s searcher set-up per
    // piece showed in profiles. NUL is ASCII, so every cut is on a char boundary.
    let mut pairs = Vec::with_capacity(count);
    let (mut start, mut key) = (0, None);
    for (i, &b) in rest.as_bytes().iter().enumerate() {
        if b == 0 {
            let piece = &rest[start..i];
            match key.take() {
                None => key = Some(piece),
                Some(k) => pairs.push((k, piece)),
            }
            start = i + 1;
        }
    }
    // Every piece ends in NUL; a NUL inside a key or value adds a piece, and so breaks
    // either the pairing or the count.
    if key.is_some() || start != rest.len() || pairs.len() != count {
        return Err(nul());
    }
    pairs.sort_unstable_by(|a, b| a.0.cmp(b.0));
    Ok(pairs)
}

/// A JS params object → [`Params`].
fn params_of(value: &JsValue, what: &str) -> Result<Params, JsValue> {
    with_flat(value, what, |flat| {
        let mut params = Params::new();
        for (k, v) in sorted_pairs(flat, what)? {
            params.insert(k.to_owned(), v.to_owned());
        }
        Ok(params)
    })
}

/// The sign type given, else the one the pairs name (absent = MD5). For signing only:
/// whoever signs chooses the algorithm anyway.
fn sign_type_for(given: Option<String>, pairs: &[(&str, &str)]) -> Result<SignType, JsValue> {
    match sign_type_of(given)? {
        Some(t) => Ok(t),
        None => {
            let named = pairs
                .iter()
                .find(|(k, _)| *k == "sign_type")
                .map(|(_, v)| *v);
            SignType::named(named).map_err(core_error)
        }
    }
}

/// The algorithm a verification uses: the caller's, and nothing else. Falling back to the
/// message's own `sign_type` would let the sender choose the algorithm it is checked
/// with (a downgrade to MD5 for an HMAC-SHA256 merchant), and WeChat may leave
/// `sign_type` out of a notify anyway; so a missing one is a usage error, not a default.
fn verifying_sign_type(given: Option<String>, function: &str) -> Result<SignType, JsValue> {
    match given.as_deref() {
        None | Some("") => Err(invalid(format!(
            "{function} needs the sign type to verify with: pass your merchant's sign type: 'MD5' or 'HMAC-SHA256' (the message's own sign_type is never trusted)"
        ))),
        Some(t) => t.parse().map_err(core_error),
    }
}

/// [`Params`] → a plain JS object, in one crossing (field by field in the rare case of a
/// NUL inside a key or value, which the flat form cannot carry).
fn params_js(params: &Params) -> JsValue {
    if params
        .iter()
        .any(|(k, v)| k.contains('\0') || v.contains('\0'))
    {
        return object(params.iter().map(|(k, v)| (k.as_str(), str_js(v))));
    }
    let mut flat = String::with_capacity(params.iter().map(|(k, v)| k.len() + v.len() + 2).sum());
    for (i, (k, v)) in params.iter().enumerate() {
        if i > 0 {
            flat.push('\0');
        }
        flat.push_str(k);
        flat.push('\0');
        flat.push_str(v);
    }
    unflatten(&flat)
}

/// A plain JS object from string pairs.
fn object<'a>(pairs: impl IntoIterator<Item = (&'a str, JsValue)>) -> JsValue {
    let o = Object::new();
    for (k, v) in pairs {
        // Setting a property on a fresh plain object cannot fail.
        let _ = Reflect::set(&o, &k.into(), &v);
    }
    o.into()
}

fn str_js(s: &str) -> JsValue {
    JsValue::from_str(s)
}

fn sign_type_of(s: Option<String>) -> Result<Option<SignType>, JsValue> {
    s.map(|s| s.parse::<SignType>().map_err(core_error))
        .transpose()
}

/// Runs `f` on the bytes of a body given as a string (encoded straight into the reused
/// buffer: no copy by the glue, no allocation) or a Uint8Array.
fn with_body<R>(
    value: &JsValue,
    what: &str,
    f: impl FnOnce(&[u8]) -> Result<R, JsValue>,
) -> Result<R, JsValue> {
    if value.is_string() {
        with_encoded(|memory, ptr, cap| Ok(text_into(value, memory, ptr, cap)), f)
    } else {
        f(&body_of(value, what)?)
    }
}

/// Bytes of a body given as a string or a Uint8Array.
fn body_of(value: &JsValue, what: &str) -> Result<Vec<u8>, JsValue> {
    if let Some(s) = value.as_string() {
        Ok(s.into_bytes())
    } else if value.is_instance_of::<js_sys::Uint8Array>() {
        Ok(js_sys::Uint8Array::from(value.clone()).to_vec())
    } else {
        Err(invalid(format!("{what} must be a string or a Uint8Array")))
    }
}

/// The v2 signature of `params` under the API key. `signType` defaults to the params'
/// own `sign_type`, then MD5.
#[wasm_bindgen(js_name = sign)]
pub fn sign_js(params: JsValue, key: &str, sign_type: Option<String>) -> Result<String, JsValue> {
    // Signed straight from the borrowed pairs: no map, no per-field allocation.
    with_flat(&params, "params", |flat| {
        let pairs = sorted_pairs(flat, "params")?;
        let t = sign_type_for(sign_type, &pairs)?;
        Ok(with_signer(key, t, |s| s.sign_sorted_pairs(pairs)).to_string())
    })
}

/// Runs `f` with a [`Signer`] for `key`: the last one made, when it is for the same key
/// and algorithm (a backend signs with one merchant key over and over).
fn with_signer<R>(key: &str, t: SignType, f: impl FnOnce(&Signer) -> R) -> R {
    thread_local! {
        static LAST: RefCell<Option<Signer>> = const { RefCell::new(None) };
    }
    LAST.with(|cell| {
        let mut last = cell.borrow_mut();
        match last.as_ref() {
            Some(s) if s.is_for(key, t) => {}
            _ => *last = Some(Signer::new(key, t)),
        }
        match last.as_ref() {
            Some(s) => f(s),
            None => f(&Signer::new(key, t)),
        }
    })
}

/// Whether `params.sign` is right under the caller's `signType` (required: see
/// [`verifying_sign_type`]); `params.sign_type` is only a signed field like any other.
#[wasm_bindgen(js_name = verifySign)]
pub fn verify_sign(params: JsValue, key: &str, sign_type: Option<String>) -> Result<bool, JsValue> {
    let t = verifying_sign_type(sign_type, "verifySign")?;
    with_flat(&params, "params", |flat| {
        let pairs = sorted_pairs(flat, "params")?;
        match with_signer(key, t, |s| s.verify_sorted_pairs(&pairs)) {
            Ok(()) => Ok(true),
            Err(sign::SignError::Mismatch) => Ok(false),
            Err(e) => Err(core_error(e)),
        }
    })
}

#[wasm_bindgen(js_name = toXml)]
pub fn to_xml(params: JsValue) -> Result<String, JsValue> {
    xml::to_xml(&params_of(&params, "params")?).map_err(core_error)
}

#[wasm_bindgen(js_name = parseXml)]
pub fn parse_xml(body: JsValue) -> Result<JsValue, JsValue> {
    let map = with_body(&body, "xml", |b| xml::parse_xml(b).map_err(core_error))?;
    Ok(params_js(&map))
}

/// The decrypted payload, `watermark` included (as WeChat's own demo returns it), after
/// the core judged the watermark (appid a string and ours, timestamp an integer).
#[wasm_bindgen(js_name = decryptUserData)]
pub fn decrypt_user_data(
    app_id: &str,
    session_key: &str,
    encrypted_data: &str,
    iv: &str,
) -> Result<JsValue, JsValue> {
    // The engine's JSON.parse reads the plaintext; the core decides what is acceptable.
    let plain = crypt::decrypt_payload(session_key, encrypted_data, iv).map_err(core_error)?;
    let not_json = || core_error(crypt::CryptError::NotJson);
    let text = String::from_utf8(plain).map_err(|_| not_json())?;
    let data = js_sys::JSON::parse(&text).map_err(|_| not_json())?;
    if !data.is_object() || Array::is_array(&data) {
        return Err(not_json());
    }
    // The watermark's raw fields go to the core's one rule, which judges them exactly as
    // it judges serde_json's reading in the worker.
    let fields = watermark_of(&data);
    let (appid, timestamp) = received_watermark(&fields, || watermark_timestamp(&data));
    crypt::judge_watermark(app_id, appid, timestamp).map_err(core_error)?;
    Ok(data)
}

/// The two fields [`watermark_of`] wrote, as [`crypt::Received`].
fn received_watermark(
    fields: &str,
    timestamp: impl FnOnce() -> f64,
) -> (crypt::Received<'_>, crypt::Received<'_>) {
    use crypt::Received;
    let (head, appid) = fields.split_once('\0').unwrap_or((fields, ""));
    let kind = |i: usize| head.as_bytes().get(i).copied();
    let received_appid = match kind(0) {
        Some(b's') => Received::Text(appid),
        Some(b'o') => Received::Other,
        _ => Received::Absent,
    };
    let received_timestamp = match kind(1) {
        Some(b'n') => Received::Number(timestamp()),
        Some(b's' | b'o') => Received::Other,
        _ => Received::Absent,
    };
    (received_appid, received_timestamp)
}

#[wasm_bindgen(js_name = verifyRawData)]
pub fn verify_raw_data(raw_data: &str, session_key: &str, signature: &str) -> bool {
    crypt::verify_raw_data(raw_data, session_key, signature).is_ok()
}

fn string_field(obj: &JsValue, key: &str, required: bool) -> Result<Option<String>, JsValue> {
    let v = Reflect::get(obj, &key.into()).unwrap_or(JsValue::UNDEFINED);
    if v.is_undefined() || v.is_null() {
        return if required {
            Err(invalid(format!("{key} is required")))
        } else {
            Ok(None)
        };
    }
    if let Some(s) = v.as_string() {
        return Ok(Some(s));
    }
    if let Some(n) = v.as_f64()
        && n.is_finite()
        && n.fract() == 0.0
    {
        return Ok(js_sys::Number::from(n)
            .to_string_with_radix(10)
            .ok()
            .map(String::from));
    }
    Err(invalid(format!("{key} must be a string")))
}

/// The five `wx.requestPayment` fields (plus `appId`) for a prepay_id.
/// `{appId, prepayId, key, signType?, timeStamp?, nonceStr?}`; timeStamp defaults to now.
#[wasm_bindgen(js_name = paymentParams)]
pub fn payment_params(options: JsValue) -> Result<JsValue, JsValue> {
    if !options.is_object() {
        return Err(invalid(
            "paymentParams takes {appId, prepayId, key, signType?}",
        ));
    }
    let req = |k| string_field(&options, k, true).map(Option::unwrap_or_default);
    let (app_id, prepay_id, key) = (req("appId")?, req("prepayId")?, req("key")?);
    if prepay_id.is_empty() {
        return Err(invalid("prepayId is empty"));
    }
    let t = sign_type_of(string_field(&options, "signType", false)?)?.unwrap_or_default();
    let time_stamp = match string_field(&options, "timeStamp", false)? {
        Some(s) => s
            .parse::<i64>()
            .map_err(|_| invalid("timeStamp must be Unix seconds"))?,
        None => (js_sys::Date::now() / 1000.0).floor() as i64,
    };
    let nonce = match string_field(&options, "nonceStr", false)? {
        Some(s) => s,
        None => random::nonce_str().map_err(core_error)?,
    };
    let pp = pay::payment_params(&app_id, &prepay_id, &key, t, time_stamp, &nonce);
    Ok(params_js(&pp.to_params()))
}

/// Checks `wx.requestPayment` fields as the WeChat app does. `false` when paySign or
/// appId does not match; throws when a field is missing or malformed.
#[wasm_bindgen(js_name = verifyPaymentParams)]
pub fn verify_payment_params(params: JsValue, app_id: &str, key: &str) -> Result<bool, JsValue> {
    let params = params_of(&params, "params")?;
    match pay::verify_payment_params(&params, app_id, key) {
        Ok(()) => Ok(true),
        Err(PayError::Sign(sign::SignError::Mismatch) | PayError::Mismatch { .. }) => Ok(false),
        Err(e) => Err(core_error(e)),
    }
}

/// Every problem of a unifiedorder parameter map, as `[{field, problem}]` (empty = ok).
#[wasm_bindgen(js_name = validateUnifiedOrder)]
pub fn validate_unified_order(params: JsValue) -> Result<JsValue, JsValue> {
    let problems = pay::validate_unified_order(&params_of(&params, "params")?);
    let mut out = String::from("[");
    for (i, p) in problems.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let mut j = Json::new();
        j.str("field", &p.field).str("problem", &p.problem);
        out.push_str(&j.finish());
    }
    out.push(']');
    js_sys::JSON::parse(&out).map_err(|_| error("INTERNAL", "wxedge wrote invalid JSON"))
}

/// A random `nonce_str` of `[0-9A-Za-z]`, 32 characters by default (1–32).
#[wasm_bindgen(js_name = nonceStr)]
pub fn nonce_str(len: Option<u32>) -> Result<String, JsValue> {
    let len = len.unwrap_or(32);
    if !(1..=32).contains(&len) {
        return Err(invalid("nonceStr length must be 1 to 32 (WeChat's limit)"));
    }
    random::alphanumeric(len as usize).map_err(core_error)
}

/// Why a sign does not match: the canonical string, both signs, and the known mistakes
/// that reproduce the given sign. `options`: `{appSecret?, unifiedOrderSign?}`.
#[wasm_bindgen(js_name = explainSign)]
pub fn explain_sign(
    params: JsValue,
    key: &str,
    given_sign: &str,
    options: Option<Object>,
) -> Result<JsValue, JsValue> {
    let params = params_of(&params, "params")?;
    let opts: JsValue = options.map(Into::into).unwrap_or(JsValue::UNDEFINED);
    let (app_secret, unified) = if opts.is_object() {
        (
            string_field(&opts, "appSecret", false)?,
            string_field(&opts, "unifiedOrderSign", false)?,
        )
    } else {
        (None, None)
    };
    let e = explain::explain_sign(
        &params,
        key,
        given_sign,
        Context {
            app_secret: app_secret.as_deref(),
            unified_order_sign: unified.as_deref(),
        },
    );
    let mut mistakes = String::from("[");
    for (i, m) in e.mistakes.iter().enumerate() {
        if i > 0 {
            mistakes.push(',');
        }
        let mut j = Json::new();
        j.str("code", m.code())
            .str("message", &m.to_string())
            .raw("detail", &mistake_detail(m));
        mistakes.push_str(&j.finish());
    }
    mistakes.push(']');
    let mut j = Json::new();
    j.str("canonical", &e.canonical)
        .str("stringToSign", &e.string_to_sign)
        .str("signType", &e.sign_type)
        .str("md5", &e.md5)
        .str("hmacSha256", &e.hmac_sha256)
        .str("expected", &e.expected)
        .str("given", &e.given)
        .bool("matches", Some(e.matches))
        .raw("mistakes", &mistakes)
        .str("hint", &e.hint);
    Ok(j.parse())
}

/// The specifics of a mistake, camelCase, as a JSON object.
fn mistake_detail(m: &Mistake) -> String {
    let mut j = Json::new();
    match m {
        Mistake::OtherAlgorithm { used, expected } => {
            j.str("used", used).str("expected", expected);
        }
        Mistake::SignTypeLeftOut { key } => {
            j.str("key", key);
        }
        Mistake::SignTypeAdded { value } => {
            j.str("value", value);
        }
        Mistake::EmptyValuesIncluded { keys } | Mistake::WhitespaceInValue { keys } => {
            j.strings("keys", keys);
        }
        Mistake::KeyCasing {
            signed_as,
            expected,
        } => {
            j.str("signedAs", signed_as).str("expected", expected);
        }
        _ => {}
    }
    j.finish()
}

/// Parses and verifies a payment notify with the merchant's key and sign type (required,
/// never read from the notify: see [`verifying_sign_type`]).
/// Returns `{appid, mch_id, out_trade_no, transaction_id, total_fee, openid, time_end,
/// result_code, err_code?, err_code_des?, params}`; throws on a forged or malformed one.
#[wasm_bindgen(js_name = parseNotify)]
pub fn parse_notify(
    body: JsValue,
    key: &str,
    sign_type: Option<String>,
) -> Result<JsValue, JsValue> {
    let t = verifying_sign_type(sign_type, "parseNotify")?;
    let n = with_body(&body, "xml", |b| {
        notify::parse_notify(b, key, t).map_err(core_error)
    })?;
    let (result_code, err_code, err_code_des) = match &n.outcome {
        Outcome::Paid => ("SUCCESS", None, None),
        Outcome::Failed {
            err_code,
            err_code_des,
        } => ("FAIL", Some(err_code.as_str()), Some(err_code_des.as_str())),
    };
    // Fen fit a JS number exactly far beyond any real payment (2^53 fen).
    let total_fee = n.total_fee.get();

    // One crossing with `notify_record` unless a value could be mistaken for its markers.
    let nul = |v: &str| v.contains('\0');
    let marker = |v: &Option<&str>| v.is_some_and(|v| nul(v) || v.starts_with('\u{1}'));
    if marker(&err_code) || marker(&err_code_des) || n.params.iter().any(|(k, v)| nul(k) || nul(v))
    {
        let text = [
            ("appid", n.appid.as_str()),
            ("mch_id", &n.mch_id),
            ("out_trade_no", &n.out_trade_no),
            ("transaction_id", &n.transaction_id),
            ("openid", &n.openid),
            ("time_end", &n.time_end),
            ("result_code", result_code),
        ];
        let nullable = [("err_code", err_code), ("err_code_des", err_code_des)];
        let mut pairs: Vec<(&str, JsValue)> = text.iter().map(|(k, v)| (*k, str_js(v))).collect();
        pairs.extend(
            nullable
                .iter()
                .map(|(k, v)| (*k, v.map_or(JsValue::NULL, str_js))),
        );
        pairs.push(("total_fee", JsValue::from_f64(total_fee as f64)));
        pairs.push(("params", params_js(&n.params)));
        return Ok(object(pairs));
    }
    let mut flat = String::with_capacity(
        64 + n
            .params
            .iter()
            .map(|(k, v)| k.len() + v.len() + 2)
            .sum::<usize>(),
    );
    flat.push_str(&total_fee.to_string());
    for v in [Some(result_code), err_code, err_code_des] {
        flat.push('\0');
        flat.push_str(v.unwrap_or("\u{1}"));
    }
    for (k, v) in &n.params {
        flat.extend(["\0", k, "\0", v]);
    }
    Ok(notify_record(&flat))
}

/// The XML answer to a notify: `SUCCESS`/`OK`, or `FAIL` with the reason.
#[wasm_bindgen(js_name = notifyReply)]
pub fn notify_reply(ok: bool, reason: Option<String>) -> String {
    if ok {
        notify::reply_success()
    } else {
        notify::reply_fail(reason.as_deref().unwrap_or("FAIL"))
    }
}

/// Why an APIv3 request got SIGN_ERROR: WeChat's `sign_information` against the message we
/// signed. `ours`: `{method?, url?, timestamp?, nonceStr?, body?, message?, authorization?,
/// certificateSerial?}` (the request's parts, or the exact `message` signed, and/or the
/// `Authorization` header); `answer`: WeChat's response body. No RSA: nothing is signed.
#[wasm_bindgen(js_name = explainV3)]
pub fn explain_v3(ours: JsValue, answer: JsValue) -> Result<JsValue, JsValue> {
    use wxedge_core::v3::api_error::SignInformation;
    use wxedge_core::v3::explain::{Answer, Ours, Signed, SignedRequest};
    if !ours.is_object() {
        return Err(invalid(
            "explainV3 takes {method, url, timestamp, nonceStr, body} or {message}, and/or {authorization}",
        ));
    }
    let field = |k| string_field(&ours, k, false);
    let bytes_field = |k: &str| -> Result<Option<Vec<u8>>, JsValue> {
        let v = Reflect::get(&ours, &k.into()).unwrap_or(JsValue::UNDEFINED);
        if v.is_undefined() || v.is_null() {
            return Ok(None);
        }
        body_of(&v, k).map(Some)
    };
    let answer = body_of(&answer, "answer")?;
    let (method, url, timestamp, nonce) = (
        field("method")?,
        field("url")?,
        field("timestamp")?,
        field("nonceStr")?,
    );
    let body = bytes_field("body")?.unwrap_or_default();
    let message = bytes_field("message")?;
    let (authorization, certificate_serial) =
        (field("authorization")?, field("certificateSerial")?);
    let parts = [&method, &url, &timestamp, &nonce];
    let signed = match &message {
        Some(m) => {
            if parts.iter().any(|p| p.is_some()) {
                return Err(invalid(
                    "pass either message or the request's parts, not both",
                ));
            }
            Some(Signed::Message(m))
        }
        None if parts.iter().all(|p| p.is_some()) => Some(Signed::Request(SignedRequest {
            method: method.as_deref().unwrap_or_default(),
            url: url.as_deref().unwrap_or_default(),
            timestamp: timestamp.as_deref().unwrap_or_default(),
            nonce_str: nonce.as_deref().unwrap_or_default(),
            body: &body,
        })),
        None if parts.iter().any(|p| p.is_some()) => {
            return Err(invalid(
                "the request's parts are method, url, timestamp and nonceStr (and body): pass all four",
            ));
        }
        None => None,
    };
    // The engine's JSON.parse reads WeChat's answer: no JSON parser in the wasm (size).
    let text =
        String::from_utf8(answer).map_err(|_| error("NOT_JSON", "the answer is not UTF-8"))?;
    let parsed = js_sys::JSON::parse(&text)
        .ok()
        .filter(|v| v.is_object() && !Array::is_array(v))
        .ok_or_else(|| error("NOT_JSON", "WeChat's answer is not its JSON error body"))?;
    let get = |o: &JsValue, k: &str| Reflect::get(o, &k.into()).unwrap_or(JsValue::UNDEFINED);
    let info = get(&get(&parsed, "detail"), "sign_information");
    let sign_information = info.is_object().then(|| SignInformation {
        method: get(&info, "method").as_string().unwrap_or_default(),
        url: get(&info, "url").as_string().unwrap_or_default(),
        sign_message_length: get(&info, "sign_message_length")
            .as_f64()
            .filter(|n| *n >= 0.0 && n.fract() == 0.0)
            .map_or(0, |n| n as u64),
        truncated_sign_message: get(&info, "truncated_sign_message")
            .as_string()
            .unwrap_or_default(),
    });
    let read = Answer {
        code: get(&parsed, "code")
            .as_string()
            .ok_or_else(|| error("NOT_JSON", "WeChat's answer has no code"))?,
        message: get(&parsed, "message").as_string().unwrap_or_default(),
        sign_information,
    };
    let e = wxedge_core::v3::explain::explain_answer(
        Ours {
            signed,
            authorization: authorization.as_deref(),
            certificate_serial: certificate_serial.as_deref(),
        },
        &read,
    )
    .map_err(core_error)?;
    let wechat = e.wechat.as_ref().map_or_else(
        || "null".to_owned(),
        |w| {
            let mut j = Json::new();
            j.str("method", &w.method)
                .str("url", &w.url)
                .num("signMessageLength", w.sign_message_length)
                .str("truncatedSignMessage", &w.truncated_sign_message)
                .opt_str("timestamp", w.timestamp.as_deref())
                .opt_str("nonce", w.nonce.as_deref())
                .bool("complete", Some(w.complete));
            j.finish()
        },
    );
    let mut mistakes = String::from("[");
    for (i, m) in e.mistakes.iter().enumerate() {
        if i > 0 {
            mistakes.push(',');
        }
        let mut j = Json::new();
        j.str("code", m.code()).str("message", &m.to_string());
        mistake_v3_fields(m, &mut j);
        mistakes.push_str(&j.finish());
    }
    mistakes.push(']');
    let mut j = Json::new();
    j.str("wechatMessage", &e.wechat_message)
        .opt_str("ours", e.ours.as_deref())
        .opt_num("oursLength", e.ours_length.map(|n| n as u64))
        .raw("wechat", &wechat)
        .bool("messageMatches", e.message_matches)
        .raw("mistakes", &mistakes)
        .str("hint", &e.hint);
    Ok(j.parse())
}

/// The specifics of a v3 mistake, camelCase, beside its code and message.
fn mistake_v3_fields(m: &MistakeV3, j: &mut Json) {
    let len = |n: usize| n as u64;
    match m {
        MistakeV3::OtherRequest {
            field,
            header,
            wechat,
        } => {
            j.str("field", field)
                .str("header", header)
                .str("wechat", wechat);
        }
        MistakeV3::MethodMismatch { signed, wechat }
        | MistakeV3::FullUrlSigned { signed, wechat }
        | MistakeV3::QueryDropped { signed, wechat }
        | MistakeV3::UrlMismatch { signed, wechat } => {
            j.str("signed", signed).str("wechat", wechat);
        }
        MistakeV3::TimestampMismatch { signed, sent }
        | MistakeV3::NonceMismatch { signed, sent } => {
            j.str("signed", signed).str("sent", sent);
        }
        MistakeV3::BodyMissing { wechat_length } => {
            j.num("wechatLength", *wechat_length);
        }
        MistakeV3::BodyNotSent { signed_length } => {
            j.num("signedLength", len(*signed_length));
        }
        MistakeV3::BodyReserialized {
            how,
            signed_length,
            wechat_length,
        } => {
            j.str("how", how)
                .num("signedLength", len(*signed_length))
                .num("wechatLength", *wechat_length);
        }
        MistakeV3::BodyDiffers {
            signed_length,
            wechat_length,
            first_difference,
        } => {
            j.num("signedLength", len(*signed_length))
                .opt_num("wechatLength", *wechat_length)
                .opt_num("firstDifference", first_difference.map(len));
        }
        MistakeV3::SerialMismatch {
            sent,
            expected,
            wechat_says,
        } => {
            j.opt_str("sent", sent.as_deref())
                .opt_str("expected", expected.as_deref())
                .opt_str("wechatSays", wechat_says.as_deref());
        }
        MistakeV3::SignatureMalformed { decoded_length } => {
            j.opt_num("decodedLength", decoded_length.map(len));
        }
        MistakeV3::KeyOrSignatureWrong { compared } => {
            j.str("compared", compared);
        }
        MistakeV3::FinalNewlineMissing => {}
    }
}

/// Every `err.code` this package can throw.
#[wasm_bindgen(js_name = errorCodes)]
pub fn error_codes() -> Vec<String> {
    // The v3 codes the package's own v3 helpers can throw (verify, the request's
    // authorization, WebCrypto's keys, AEAD), beside explainV3's.
    const V3_HELPERS: &[&str] = &[
        "V3_HEADER_MISSING",
        "V3_BAD_TIMESTAMP",
        "V3_TIMESTAMP_SKEW",
        "V3_SIGN_PROBE",
        "V3_UNKNOWN_SERIAL",
        "V3_BAD_KEY",
        "V3_RSA_FAILED",
        "V3_BAD_NONCE_LENGTH",
        "V3_DECRYPT_FAILED",
    ];
    let mut codes: Vec<&str> = ALL_CODES.to_vec();
    for c in wxedge_core::v3::explain::CODES.iter().chain(V3_HELPERS) {
        if !codes.contains(c) {
            codes.push(c);
        }
    }
    codes
        .iter()
        .chain(["INVALID_ARGUMENT", "INTERNAL"].iter())
        .map(|s| (*s).to_owned())
        .collect()
}

// APIv3. RSA is never done here: the package's `v3.js` signs and verifies with WebCrypto
// (`crypto.subtle`) and calls these `_v3*` functions, internal to the package, for
// everything else: the messages, the key chosen by serial, the clock window, the probe,
// the header, and the verdict.

/// A body or message given as a string or bytes.
fn bytes_arg(value: &JsValue, what: &str) -> Result<Vec<u8>, JsValue> {
    if value.is_undefined() || value.is_null() {
        return Ok(Vec::new());
    }
    body_of(value, what)
}

fn bytes_js(b: &[u8]) -> JsValue {
    js_sys::Uint8Array::from(b).into()
}

fn timestamp_of(options: &JsValue, key: &str) -> Result<i64, JsValue> {
    let t = string_field(options, key, true)?.unwrap_or_default();
    t.parse::<i64>()
        .map_err(|_| invalid(format!("{key} must be Unix seconds")))
}

/// The request `options` describes (`{method, url, body?, timestamp, nonce}`, defaults
/// already filled in by v3.js), with its body.
fn with_request<R>(
    options: &JsValue,
    f: impl FnOnce(&wxedge_core::v3::authorization::Request<'_>) -> Result<R, JsValue>,
) -> Result<R, JsValue> {
    let req = |k| string_field(options, k, true).map(Option::unwrap_or_default);
    let (method, url, nonce) = (req("method")?, req("url")?, req("nonce")?);
    let timestamp = timestamp_of(options, "timestamp")?;
    let body = bytes_arg(
        &Reflect::get(options, &"body".into()).unwrap_or(JsValue::UNDEFINED),
        "body",
    )?;
    f(&wxedge_core::v3::authorization::Request {
        method: &method,
        url: &url,
        timestamp,
        nonce_str: &nonce,
        body: &body,
    })
}

/// The message an APIv3 request's signature covers, as bytes; every field checked first,
/// `mchid` and `serialNo` too (so nothing is signed that cannot become a header).
#[wasm_bindgen(js_name = _v3RequestMessage)]
pub fn v3_request_message(options: JsValue) -> Result<JsValue, JsValue> {
    use wxedge_core::v3::authorization::Authorization;
    let req = |k| string_field(&options, k, true).map(Option::unwrap_or_default);
    let (mchid, serial) = (req("mchid")?, req("serialNo")?);
    with_request(&options, |r| {
        let message = r.message().map_err(core_error)?;
        Authorization::new(&mchid, &serial, r, &[]).map_err(core_error)?;
        Ok(bytes_js(&message))
    })
}

/// The `Authorization` header for the request, given WebCrypto's signature of its message.
#[wasm_bindgen(js_name = _v3RequestHeader)]
pub fn v3_request_header(options: JsValue, signature: &[u8]) -> Result<String, JsValue> {
    use wxedge_core::v3::authorization::Authorization;
    let req = |k| string_field(&options, k, true).map(Option::unwrap_or_default);
    let (mchid, serial) = (req("mchid")?, req("serialNo")?);
    with_request(&options, |r| {
        Ok(Authorization::new(&mchid, &serial, r, signature)
            .map_err(core_error)?
            .to_header_value())
    })
}

/// Runs `f` on the core's [`WechatKeys::check`](wxedge_core::v3::verify::WechatKeys::check)
/// of `options`: `{timestamp?, nonce?, signature?, serial?}` (the `Wechatpay-*` headers as
/// found), `body`, `publicKeyId?`, `certificates` (serials), `now` (Unix seconds). Keys are
/// held by name: the name is what v3.js finds its CryptoKey under.
fn with_check<R>(
    options: &JsValue,
    f: impl FnOnce(
        wxedge_core::v3::verify::Pending<'_, ()>,
    ) -> Result<R, wxedge_core::v3::verify::VerifyError>,
) -> Result<R, JsValue> {
    use wxedge_core::v3::verify::{Headers, WechatKeys};
    let field = |k| string_field(options, k, false);
    let (timestamp, nonce, signature, serial) = (
        field("timestamp")?,
        field("nonce")?,
        field("signature")?,
        field("serial")?,
    );
    let body = bytes_arg(
        &Reflect::get(options, &"body".into()).unwrap_or(JsValue::UNDEFINED),
        "body",
    )?;
    let now = timestamp_of(options, "now")?;
    let mut keys = WechatKeys::new();
    if let Some(id) = field("publicKeyId")? {
        keys = keys.with_public_key(&id, ()).map_err(core_error)?;
    }
    let certificates = Reflect::get(options, &"certificates".into()).unwrap_or(JsValue::UNDEFINED);
    for serial in Array::from(&certificates).iter() {
        let serial = serial
            .as_string()
            .ok_or_else(|| invalid("keys.platformCertificates must map serials to PEMs"))?;
        keys = keys.with_certificate(&serial, ()).map_err(core_error)?;
    }
    let headers = Headers {
        timestamp: timestamp.as_deref(),
        nonce: nonce.as_deref(),
        signature: signature.as_deref(),
        serial: serial.as_deref(),
    };
    let pending = keys.check(&headers, &body, now).map_err(core_error)?;
    f(pending).map_err(core_error)
}

/// Step one of verifying an answer or notify: `[serial, message, signature]` for
/// WebCrypto to check, or the reason it must not be believed before any RSA.
#[wasm_bindgen(js_name = _v3Check)]
pub fn v3_check(options: JsValue) -> Result<JsValue, JsValue> {
    with_check(&options, |p| {
        Ok(Array::of3(
            &str_js(p.serial),
            &bytes_js(&p.message),
            &bytes_js(&p.signature),
        )
        .into())
    })
}

/// Step two: the same check concluded with WebCrypto's verdict. `[serial, timestamp,
/// nonce]` of the verified message, or SIGN_MISMATCH.
#[wasm_bindgen(js_name = _v3Conclude)]
pub fn v3_conclude(options: JsValue, valid: bool) -> Result<JsValue, JsValue> {
    with_check(&options, |p| {
        let v = p.conclude(valid)?;
        Ok(Array::of3(
            &str_js(v.serial()),
            &JsValue::from_f64(v.timestamp() as f64),
            &str_js(v.nonce()),
        )
        .into())
    })
}

/// A PEM key as WebCrypto imports it: `[format, der]`, format `pkcs8` or `spki`.
#[wasm_bindgen(js_name = _v3KeyDer)]
pub fn v3_key_der(pem: &str) -> Result<JsValue, JsValue> {
    use wxedge_core::v3::rsa::{WebCryptoKey, webcrypto_key};
    let (format, der) = match webcrypto_key(pem).map_err(core_error)? {
        WebCryptoKey::Pkcs8(d) => ("pkcs8", d),
        WebCryptoKey::Spki(d) => ("spki", d),
    };
    Ok(Array::of2(&str_js(format), &bytes_js(&der)).into())
}

/// The wx.requestPayment fields for `options` (`{appId, prepayId, timeStamp, nonceStr}`,
/// defaults filled in by v3.js): without `signature`, the message `paySign` signs (bytes);
/// with WebCrypto's signature of it, the fields.
#[wasm_bindgen(js_name = _v3Payment)]
pub fn v3_payment(options: JsValue, signature: Option<Vec<u8>>) -> Result<JsValue, JsValue> {
    use wxedge_core::v3::jsapi;
    let req = |k| string_field(&options, k, true).map(Option::unwrap_or_default);
    let (app_id, prepay_id, nonce) = (req("appId")?, req("prepayId")?, req("nonceStr")?);
    for (name, v) in [
        ("appId", &app_id),
        ("prepayId", &prepay_id),
        ("nonceStr", &nonce),
    ] {
        if v.is_empty() {
            return Err(invalid(format!("{name} is empty")));
        }
    }
    let time_stamp = timestamp_of(&options, "timeStamp")?;
    if time_stamp < 0 {
        return Err(invalid("timeStamp must be Unix seconds"));
    }
    let Some(signature) = signature else {
        let package = format!("prepay_id={prepay_id}");
        let m = jsapi::payment_message(&app_id, &time_stamp.to_string(), &nonce, &package);
        return Ok(bytes_js(&m));
    };
    let p = jsapi::payment_params(&app_id, &prepay_id, time_stamp, &nonce, &signature);
    let mut j = Json::new();
    j.str("appId", &p.app_id)
        .str("timeStamp", &p.time_stamp)
        .str("nonceStr", &p.nonce_str)
        .str("package", &p.package)
        .str("signType", &p.sign_type)
        .str("paySign", &p.pay_sign);
    Ok(j.parse())
}

/// A notify's `resource` decrypted (AEAD_AES_256_GCM under the 32-byte APIv3 key), as text.
/// `{apiV3Key, nonce, associatedData?, ciphertext}`.
#[wasm_bindgen(js_name = v3Decrypt)]
pub fn v3_decrypt(options: JsValue) -> Result<String, JsValue> {
    use wxedge_core::v3::aead::{self, ApiV3Key};
    if !options.is_object() {
        return Err(invalid(
            "v3Decrypt takes {apiV3Key, nonce, associatedData, ciphertext}",
        ));
    }
    let req = |k| string_field(&options, k, true).map(Option::unwrap_or_default);
    let (key, nonce, ciphertext) = (req("apiV3Key")?, req("nonce")?, req("ciphertext")?);
    let aad = string_field(&options, "associatedData", false)?.unwrap_or_default();
    let key = ApiV3Key::new(&key).map_err(core_error)?;
    let plain = aead::decrypt(&key, &nonce, &aad, &ciphertext).map_err(core_error)?;
    String::from_utf8(plain)
        .map_err(|_| error("NOT_JSON", "the decrypted resource is not UTF-8 text"))
}

/// A JSON object written by hand and read by the engine's `JSON.parse`: one crossing for
/// a whole result, and no serde in the wasm (size).
struct Json(String);

impl Json {
    fn new() -> Json {
        Json(String::from("{"))
    }

    fn key(&mut self, k: &str) -> &mut Json {
        if !matches!(self.0.as_bytes().last(), Some(b'{' | b'[')) {
            self.0.push(',');
        }
        json_string(&mut self.0, k);
        self.0.push(':');
        self
    }

    fn str(&mut self, k: &str, v: &str) -> &mut Json {
        self.key(k);
        json_string(&mut self.0, v);
        self
    }

    fn opt_str(&mut self, k: &str, v: Option<&str>) -> &mut Json {
        match v {
            Some(v) => self.str(k, v),
            None => self.raw(k, "null"),
        }
    }

    fn num(&mut self, k: &str, n: u64) -> &mut Json {
        self.raw(k, &n.to_string())
    }

    fn opt_num(&mut self, k: &str, n: Option<u64>) -> &mut Json {
        match n {
            Some(n) => self.num(k, n),
            None => self.raw(k, "null"),
        }
    }

    fn bool(&mut self, k: &str, b: Option<bool>) -> &mut Json {
        self.raw(
            k,
            match b {
                Some(true) => "true",
                Some(false) => "false",
                None => "null",
            },
        )
    }

    /// `v` is JSON already (a nested object, an array, null).
    fn raw(&mut self, k: &str, v: &str) -> &mut Json {
        self.key(k);
        self.0.push_str(v);
        self
    }

    fn strings(&mut self, k: &str, items: &[String]) -> &mut Json {
        self.key(k);
        self.0.push('[');
        for (i, s) in items.iter().enumerate() {
            if i > 0 {
                self.0.push(',');
            }
            json_string(&mut self.0, s);
        }
        self.0.push(']');
        self
    }

    fn finish(mut self) -> String {
        self.0.push('}');
        self.0
    }

    fn parse(self) -> JsValue {
        // Our own output is valid JSON; a failure would be a bug, reported as INTERNAL.
        js_sys::JSON::parse(&self.finish())
            .unwrap_or_else(|_| error("INTERNAL", "wxedge wrote invalid JSON"))
    }
}

/// `s` as a JSON string literal.
fn json_string(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}
