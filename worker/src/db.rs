//! D1: runs what wxedge-core's [`store`] renders (the flows' guarded batches and reads),
//! and the few statements that are not money (users, profiles). Every order write is the
//! core's: this module binds values and reads back the rows each statement changed.

use js_sys::{Array, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::worker_sys::D1Database as D1DatabaseSys;
use worker::{D1Database, D1PreparedStatement, Env};
use wxedge_core::order::OrderRow;
use wxedge_core::store::{self, Batch, SqlArg, Statement};

use crate::api::{ApiError, ApiResult};

pub fn d1(env: &Env) -> ApiResult<D1Database> {
    Ok(env.d1("DB")?)
}

/// A bind value.
pub enum Arg<'a> {
    Text(&'a str),
    Int(u64),
    Null,
}

/// The largest integer a JavaScript number holds exactly (2^53 − 1).
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// An integer for D1, exactly: a JS number up to 2^53 − 1, beyond that its decimal text,
/// which SQLite's INTEGER affinity stores (and compares) as the same integer. A u64 above
/// 2^53 passed as a float would silently become a neighbouring integer: fen invented or lost.
fn int(n: u64) -> JsValue {
    if n <= MAX_SAFE_INTEGER {
        JsValue::from_f64(n as f64)
    } else {
        JsValue::from_str(&n.to_string())
    }
}

impl From<&Arg<'_>> for JsValue {
    fn from(a: &Arg<'_>) -> JsValue {
        match a {
            Arg::Text(s) => JsValue::from_str(s),
            Arg::Int(n) => int(*n),
            Arg::Null => JsValue::NULL,
        }
    }
}

fn sql_arg(a: &SqlArg) -> JsValue {
    match a {
        SqlArg::Text(s) => JsValue::from_str(s),
        SqlArg::Int(n) => int(*n),
        SqlArg::Null => JsValue::NULL,
    }
}

/// A stored row or snapshot that does not read (a schema or storage fault): code 9 with a
/// fixed message; the detail, which may quote stored values, goes to the log only.
pub fn unreadable(e: impl std::fmt::Display) -> ApiError {
    worker::console_error!(
        "{}",
        serde_json::json!({ "level": "error", "what": "unreadable stored data", "detail": e.to_string() })
    );
    ApiError::internal("internal error: stored data is unreadable; an operator has been alerted")
}

/// A statement the core rendered, prepared and bound.
pub fn prepare(db: &D1Database, s: &Statement) -> ApiResult<D1PreparedStatement> {
    let values: Vec<JsValue> = s.args.iter().map(sql_arg).collect();
    Ok(db.prepare(&s.sql).bind(&values)?)
}

/// Runs a decision's batch (one transaction); whether its guard held.
pub async fn execute(db: &D1Database, b: &Batch) -> ApiResult<bool> {
    if b.is_empty() {
        return Ok(true);
    }
    let stmts = b
        .statements
        .iter()
        .map(|s| prepare(db, s))
        .collect::<ApiResult<Vec<_>>>()?;
    let changes = if stmts.len() == 1 {
        let one = stmts
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::internal("empty batch"))?;
        vec![run(one).await?]
    } else {
        batch(db, &stmts).await?
    };
    Ok(b.guard_held(&changes))
}

/// Column `j` of the first row a core query gives (none: no row).
pub async fn json(db: &D1Database, s: &Statement) -> ApiResult<Option<String>> {
    Ok(prepare(db, s)?.first(Some("j")).await?)
}

/// The order `out_trade_no`, typed by the core.
pub async fn order(db: &D1Database, out_trade_no: &str) -> ApiResult<Option<OrderRow>> {
    json(db, &store::order_by_no(out_trade_no))
        .await?
        .map(|j| OrderRow::from_json(&j).map_err(unreadable))
        .transpose()
}

/// Rows from a core query that gives a JSON array in `j`.
pub async fn orders(db: &D1Database, s: &Statement) -> ApiResult<Vec<OrderRow>> {
    let j = json(db, s).await?;
    OrderRow::list_from_json(j.as_deref().unwrap_or("[]")).map_err(unreadable)
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        v.map_or(Arg::Null, Arg::Text)
    }
}

pub fn stmt(db: &D1Database, sql: &str, args: &[Arg<'_>]) -> ApiResult<D1PreparedStatement> {
    let values: Vec<JsValue> = args.iter().map(JsValue::from).collect();
    Ok(db.prepare(sql).bind(&values)?)
}

/// Runs a write; the rows it changed (a guarded UPDATE that matched nothing gives 0).
///
/// Through the raw statement rather than `D1PreparedStatement::run` + `D1Result::meta`:
/// `meta` deserializes a dozen fields one JS round trip each, and the only one a write
/// needs is `changes`. On the pay and notify paths those round trips are most of what
/// the worker itself costs (bench/RESULTS.md, worker section).
pub async fn run(stmt: D1PreparedStatement) -> ApiResult<usize> {
    let promise = stmt.inner().run().map_err(worker::Error::from)?;
    let result = JsFuture::from(promise).await.map_err(worker::Error::from)?;
    Ok(changes(&result))
}

/// `result.meta.changes` of one D1 result object (0 when absent).
fn changes(result: &JsValue) -> usize {
    Reflect::get(result, &JsValue::from_str("meta"))
        .and_then(|meta| Reflect::get(&meta, &JsValue::from_str("changes")))
        .ok()
        .and_then(|c| c.as_f64())
        .map_or(0, |c| c as usize)
}

/// Runs statements as one D1 batch (one transaction: all or nothing); the rows each changed.
pub async fn batch(db: &D1Database, stmts: &[D1PreparedStatement]) -> ApiResult<Vec<usize>> {
    let array: Array = stmts.iter().map(|s| JsValue::from(s.inner())).collect();
    let sys: &D1DatabaseSys = db.as_ref().unchecked_ref();
    let promise = sys.batch(array).map_err(worker::Error::from)?;
    let results = JsFuture::from(promise).await.map_err(worker::Error::from)?;
    Ok(Array::from(&results).iter().map(|r| changes(&r)).collect())
}

pub async fn upsert_user(
    env: &Env,
    openid: &str,
    unionid: Option<&str>,
    now: u64,
) -> ApiResult<()> {
    let db = d1(env)?;
    run(stmt(
        &db,
        "INSERT INTO users (openid, unionid, created_ms, login_ms, updated_ms) VALUES (?1, ?2, ?3, ?3, ?3)
         ON CONFLICT (openid) DO UPDATE SET unionid = COALESCE(excluded.unionid, users.unionid),
           login_ms = excluded.login_ms, updated_ms = excluded.updated_ms",
        &[Arg::Text(openid), unionid.into(), Arg::Int(now)],
    )?).await?;
    Ok(())
}

pub async fn save_profile(env: &Env, openid: &str, profile: &str, now: u64) -> ApiResult<()> {
    let db = d1(env)?;
    run(stmt(
        &db,
        "UPDATE users SET profile = ?2, updated_ms = ?3 WHERE openid = ?1",
        &[Arg::Text(openid), Arg::Text(profile), Arg::Int(now)],
    )?)
    .await?;
    Ok(())
}
