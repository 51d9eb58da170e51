//! The daily bill (issue 14): the cron fetches yesterday's bill once it is made, and
//! `POST /admin/reconciliation?date=` fetches any day's at once; `GET` lists what the match
//! found. wxedge-core decides everything ([`flow::bill`]: which day, what the apply answer
//! means, the one batch that stores and matches the bill); this module moves the bytes: the
//! apply call, the download, gzip through the runtime's own `DecompressionStream`, the
//! inflated chunks into the core's streaming [`BillParser`] as they come.

use js_sys::Uint8Array;
use serde_json::{Value, json};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use worker::wasm_bindgen_futures::JsFuture;
use worker::{D1Database, Method};
use wxedge_core::bill::BillParser;
use wxedge_core::flow::bill::{self as flow, BillSeen, Next, Recorded, Rows};
use wxedge_core::v3::tradebill;
use wxedge_core::{random, store};

use crate::api::{ApiError, ApiResult};
use crate::config::{Config, PayApi};
use crate::{db, now_ms, v3, wechat};

#[wasm_bindgen]
extern "C" {
    /// The Compression Streams API (stable in workerd; web-sys keeps it behind an unstable
    /// cfg, so it is declared here).
    type DecompressionStream;
    #[wasm_bindgen(constructor, catch)]
    fn new(format: &str) -> Result<DecompressionStream, JsValue>;
    #[wasm_bindgen(method, getter)]
    fn readable(this: &DecompressionStream) -> web_sys::ReadableStream;
    #[wasm_bindgen(method, getter)]
    fn writable(this: &DecompressionStream) -> web_sys::WritableStream;
}

/// Differences in the reply of a fetch (the rest: `GET /admin/reconciliation`, paged).
const FIRST_PAGE: u64 = 20;

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(e.to_string())
}

/// The cron's part: yesterday's bill if it is due, else nothing.
pub async fn run_due(db: &D1Database, cfg: &Config) -> ApiResult<Option<Value>> {
    let now = now_ms();
    let yesterday = flow::previous_day(&flow::beijing_date(now)).unwrap_or_default();
    let seen = db::json(db, &store::bill_seen(&yesterday)).await?;
    let seen = BillSeen::from_json(seen.as_deref()).map_err(db::unreadable)?;
    match flow::due(now, seen.as_ref(), &cfg.bill) {
        Some(date) => Ok(Some(fetch(db, cfg, &date).await?)),
        None => Ok(None),
    }
}

/// Fetches, checks, stores and matches the bill of `date` (`YYYY-MM-DD`), or records why
/// not; the report of the day either way.
pub async fn fetch(db: &D1Database, cfg: &Config, date: &str) -> ApiResult<Value> {
    let outcome = match cfg.pay_api {
        PayApi::V3 => fetch_v3(db, cfg, date).await?,
        PayApi::V2 => fetch_v2(db, cfg, date).await?,
    };
    let now = now_ms();
    let (batch, refused) = match outcome {
        Ok(batch) => (batch, None),
        Err(r) => (r.batch(date, now), Some(r)),
    };
    db::execute(db, &batch).await?;
    // The reply holds the first differences; GET /admin/reconciliation pages through all.
    let report = report(db, date, 0, FIRST_PAGE).await?;
    let differences = report["bill"]["differences"].as_u64().unwrap_or(0);
    if let Some(r) = &refused {
        worker::console_error!(
            "{}",
            json!({ "level": "error", "what": "the daily bill was not matched", "bill_date": date,
                    "status": r.status.as_str(), "code": r.code, "detail": r.note })
        );
    } else if differences > 0 {
        worker::console_error!(
            "{}",
            json!({ "level": "error", "what": "the daily bill differs from our records",
                    "bill_date": date, "differences": differences,
                    "see": format!("GET /admin/reconciliation?date={date}") })
        );
    }
    let mut out = report;
    out["fetched"] = json!({
        "ok": refused.is_none(),
        "status": refused.as_ref().map_or("MATCHED", |r| r.status.as_str()),
        "code": refused.as_ref().map(|r| r.code),
        "note": refused.as_ref().map(|r| r.note.as_str()),
    });
    Ok(out)
}

/// v3: `GET /v3/bill/tradebill` (verified) → the download (unsigned; its SHA-1 is the check).
async fn fetch_v3(
    _db: &D1Database,
    cfg: &Config,
    date: &str,
) -> ApiResult<Result<store::Batch, Recorded>> {
    let v3cfg = cfg.v3()?;
    let path = tradebill::apply_path(date)
        .ok_or_else(|| ApiError::param(format!("date {date:?} is not YYYY-MM-DD")))?;
    let outcome = match v3::call(cfg, Method::Get, &path, "").await? {
        Ok(a) => v3::judge(v3cfg, &a, tradebill::apply_outcome).await?,
        Err(_) => return Ok(Err(Recorded::unreachable("tradebill"))),
    };
    let (path, hash_value) = match flow::after_apply(outcome, &cfg.pay_base) {
        Next::Record(r) => return Ok(Err(r)),
        Next::Download { path, hash_value } => (path, hash_value),
    };
    let file = match v3::call(cfg, Method::Get, &path, "").await? {
        Ok(a) if a.status == 200 => a.body,
        Ok(a) => return Ok(Err(Recorded::download_refused(a.status))),
        Err(_) => return Ok(Err(Recorded::unreachable("billdownload"))),
    };
    read_file(date, file, Some(&hash_value)).await
}

/// v2: `POST /pay/downloadbill`: the file itself, or an XML refusal.
async fn fetch_v2(
    _db: &D1Database,
    cfg: &Config,
    date: &str,
) -> ApiResult<Result<store::Batch, Recorded>> {
    let v2_date = wxedge_core::bill::to_v2_bill_date(date)
        .ok_or_else(|| ApiError::param(format!("date {date:?} is not YYYY-MM-DD")))?;
    let nonce = random::nonce_str().map_err(internal)?;
    let xml = cfg
        .merchant()
        .download_bill_request(&v2_date, &nonce)
        .map_err(internal)?;
    let Ok(answer) =
        wechat::post_xml(&cfg.pay_url("downloadbill"), &xml, cfg.wechat_timeout_ms).await
    else {
        return Ok(Err(Recorded::unreachable("downloadbill")));
    };
    let merchant = cfg.merchant();
    let file = match flow::after_download_bill(merchant.parse_download_bill_response(&answer)) {
        Ok(file) => file.to_vec(),
        Err(r) => return Ok(Err(r)),
    };
    drop(answer);
    read_file(date, file, None).await
}

/// The file (gzip or plain) through the core's parser, chunk by chunk, then the core's
/// verdict: the batch to store and match it, or why it is refused.
async fn read_file(
    date: &str,
    file: Vec<u8>,
    hash_value: Option<&str>,
) -> ApiResult<Result<store::Batch, Recorded>> {
    let mut parser = BillParser::new();
    let mut rows = Rows::new();
    let mut parsed = Vec::new();
    let mut failed = None;
    let mut feed = |chunk: &[u8]| {
        if failed.is_none() {
            match parser.feed(chunk, &mut parsed) {
                Ok(()) => rows.take(&mut parsed),
                Err(e) => failed = Some(e),
            }
        }
    };
    if file.starts_with(&[0x1f, 0x8b]) {
        if let Err(e) = inflate(file, &mut feed).await? {
            return Ok(Err(Recorded::bad_gzip(&e)));
        }
    } else {
        feed(&file);
    }
    let read = match failed {
        Some(e) => Err(e),
        None => {
            let r = parser.finish(&mut parsed);
            rows.take(&mut parsed);
            r
        }
    };
    Ok(flow::after_file(date, read, hash_value, rows, now_ms()))
}

/// Gunzips `file` through `DecompressionStream`, handing each inflated chunk to `feed`:
/// the inflated bill (tens of MB for 100,000 rows) is never held whole. `Ok(Err(why))`: the
/// file is not valid gzip.
async fn inflate(file: Vec<u8>, feed: &mut impl FnMut(&[u8])) -> ApiResult<Result<(), String>> {
    let js = |e: JsValue| ApiError::internal(format!("gunzip: {e:?}"));
    // A copy in JS memory: a view into the wasm's would be detached when it grows.
    let bytes = Uint8Array::from(file.as_slice());
    drop(file);
    let source = web_sys::Response::new_with_opt_buffer_source(Some(&bytes)).map_err(js)?;
    let body = source
        .body()
        .ok_or_else(|| ApiError::internal("gunzip: no body"))?;
    let ds = DecompressionStream::new("gzip").map_err(js)?;
    let pair = web_sys::ReadableWritablePair::new(&ds.readable(), &ds.writable());
    let inflated = body.pipe_through(&pair);
    let reader: web_sys::ReadableStreamDefaultReader = inflated.get_reader().unchecked_into();
    let mut buf = Vec::new();
    loop {
        let step: web_sys::ReadableStreamReadResult = match JsFuture::from(reader.read()).await {
            Ok(s) => s.unchecked_into(),
            Err(e) => {
                let why = js_sys::Error::from(e).message();
                return Ok(Err(String::from(why)));
            }
        };
        if step.get_done().unwrap_or(false) {
            return Ok(Ok(()));
        }
        let chunk: Uint8Array = step.get_value().unchecked_into();
        buf.resize(chunk.length() as usize, 0);
        chunk.copy_to(&mut buf);
        feed(&buf);
    }
}

/// The bill of `date` and a page of its differences (`GET /admin/reconciliation?date=`):
/// `limit` of them after the cursor, and `next_cursor` when there may be more.
pub async fn report(db: &D1Database, date: &str, after_id: u64, limit: u64) -> ApiResult<Value> {
    let j = db::json(db, &store::reconciliation_report(date, after_id, limit)).await?;
    let v: Value = serde_json::from_str(j.as_deref().unwrap_or("{}")).map_err(internal)?;
    let differences = v.get("differences").cloned().unwrap_or_else(|| json!([]));
    let full = differences
        .as_array()
        .is_some_and(|d| d.len() as u64 == limit);
    let next = v.get("last").and_then(Value::as_u64).filter(|_| full);
    Ok(json!({
        "bill_date": date,
        "bill": v.get("bill").cloned().unwrap_or(Value::Null),
        "differences": differences,
        "next_cursor": next.map(|n| n.to_string()),
    }))
}
