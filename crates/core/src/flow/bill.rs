//! The daily bill as decisions: which day the cron fetches and when, what WeChat's apply
//! answer means, and the one batch that stores a downloaded bill and matches it against our
//! orders and refunds (or records why it could not be).
//!
//! WeChat makes the bill of day D (Beijing time) from 09:00 the next day and asks merchants
//! to fetch it after 10:00 (下载交易账单 <https://pay.weixin.qq.com/doc/v2/merchant/4011985040>,
//! 注意 2); the v3 apply answers `STATEMENT_CREATING` before then. A bill is stored and
//! matched in one atomic batch only after its summary and (v3) SHA-1 checked out, so a bill
//! that does not is refused with nothing written but the note saying why; a bill already
//! matched is never downgraded by a later failed fetch of the same day.

use crate::bill::{BillError, BillRow, BillSummary, check_hash};
use crate::pay::{DownloadBill, PayError};
use crate::store::{self, Batch, Statement};
use crate::v3::tradebill::{Apply, download_path, is_bill_date};
use crate::{ErrorCode, pay};

/// Milliseconds in a day.
pub const DAY_MS: u64 = 86_400_000;
/// Beijing time is UTC+8, with no daylight saving.
const BEIJING_OFFSET_MS: u64 = 8 * 3_600_000;

/// Where a day's bill stands (`bills.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BillStatus {
    /// Downloaded, stored and matched: `reconciliation` lists its differences.
    Matched,
    /// WeChat has no bill for that day: nothing was traded.
    NoBill,
    /// Not made yet (or WeChat busy, or unreachable): the cron asks again later.
    NotYet,
    /// Refused (hash, summary, format, an error WeChat will repeat): the note says why; the
    /// cron asks again later, an operator can ask at once.
    Failed,
}

impl BillStatus {
    pub const ALL: [BillStatus; 4] = [
        BillStatus::Matched,
        BillStatus::NoBill,
        BillStatus::NotYet,
        BillStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BillStatus::Matched => "MATCHED",
            BillStatus::NoBill => "NO_BILL",
            BillStatus::NotYet => "NOT_YET",
            BillStatus::Failed => "FAILED",
        }
    }

    pub fn parse(s: &str) -> Option<BillStatus> {
        BillStatus::ALL.into_iter().find(|b| b.as_str() == s)
    }

    /// Whether the day is settled: the cron does not fetch it again.
    pub fn is_final(self) -> bool {
        matches!(self, BillStatus::Matched | BillStatus::NoBill)
    }
}

/// When the cron fetches bills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Off: the cron never fetches (an operator still can, `POST /admin/reconciliation`).
    pub enabled: bool,
    /// Milliseconds after Beijing midnight before yesterday's bill is asked for (10:00).
    pub ready_after_ms: u64,
    /// The wait before asking again after NOT_YET or FAILED.
    pub retry_ms: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            enabled: true,
            ready_after_ms: 10 * 3_600_000,
            retry_ms: 30 * 60_000,
        }
    }
}

/// A day's bill as read back from `bills` (see [`store::bill_seen`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillSeen {
    pub status: BillStatus,
    pub updated_ms: u64,
}

impl BillSeen {
    /// The row as [`store::bill_seen`] gives it (`{"status":…,"updated_ms":…}`), or `None`
    /// when there is no row yet.
    pub fn from_json(text: Option<&str>) -> Result<Option<BillSeen>, crate::order::RowError> {
        use crate::order::RowError;
        let Some(text) = text else { return Ok(None) };
        let fields = crate::json::object(text.as_bytes()).map_err(RowError)?;
        let o = crate::json::Object::new(&fields, "");
        let status = o.string("status").map_err(RowError)?;
        Ok(Some(BillSeen {
            status: BillStatus::parse(&status)
                .ok_or_else(|| RowError(format!("unknown bill status {status:?}")))?,
            updated_ms: o.u64("updated_ms").map_err(RowError)?,
        }))
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The Beijing date (`YYYY-MM-DD`) of a Unix time in milliseconds.
pub fn beijing_date(unix_ms: u64) -> String {
    let t = pay::wechat_time((unix_ms / 1000) as i64);
    format!("{}-{}-{}", &t[0..4], &t[4..6], &t[6..8])
}

/// The Unix milliseconds `[start, end)` of a Beijing day, or `None` for a date that is not
/// `YYYY-MM-DD` (or lies before 1970).
pub fn day_bounds(date: &str) -> Option<(u64, u64)> {
    if !is_bill_date(date) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| date[r].parse::<i64>().ok();
    let days = days_from_civil(n(0..4)?, n(5..7)?, n(8..10)?);
    let start = u64::try_from(days).ok()?.checked_mul(DAY_MS)?;
    let start = start.checked_sub(BEIJING_OFFSET_MS)?;
    Some((start, start + DAY_MS))
}

/// The day before `date`.
pub fn previous_day(date: &str) -> Option<String> {
    let (start, _) = day_bounds(date)?;
    Some(beijing_date(start.checked_sub(DAY_MS)?))
}

/// The day whose bill the cron should fetch now, if any: yesterday (Beijing), once it is
/// past `ready_after_ms`, unless that bill is settled or was tried less than `retry_ms` ago.
pub fn due(now_ms: u64, seen: Option<&BillSeen>, policy: &Policy) -> Option<String> {
    if !policy.enabled {
        return None;
    }
    let today = beijing_date(now_ms);
    let (today_start, _) = day_bounds(&today)?;
    if now_ms - today_start < policy.ready_after_ms {
        return None;
    }
    match seen {
        Some(s) if s.status.is_final() => None,
        Some(s) if now_ms < s.updated_ms.saturating_add(policy.retry_ms) => None,
        _ => previous_day(&today),
    }
}

/// What to do after the apply call (v3 `tradebill`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Download the file (a signed GET of `path`, on WeChat's own origin) and check it
    /// against this SHA-1.
    Download { path: String, hash_value: String },
    /// Nothing to download: record this and stop.
    Record(Recorded),
}

/// An outcome that ends a fetch without a bill to match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub status: BillStatus,
    /// What happened, for `bills.note` and the operator (never a secret).
    pub note: String,
    /// `bill_code` in the report: the typed reason (BILL_HASH_MISMATCH, a WeChat code…).
    pub code: &'static str,
}

impl Recorded {
    fn new(status: BillStatus, code: &'static str, note: impl Into<String>) -> Recorded {
        Recorded {
            status,
            code,
            note: note.into(),
        }
    }

    /// WeChat could not be reached (no answer, a timeout, a gateway's 5xx): ask again later.
    pub fn unreachable(what: &str) -> Recorded {
        Recorded::new(
            BillStatus::NotYet,
            "WECHAT_UNAVAILABLE",
            format!("no answer from WeChat ({what}); asked again later"),
        )
    }

    /// The download answered something other than the file.
    pub fn download_refused(status: u16) -> Recorded {
        Recorded::new(
            BillStatus::Failed,
            "BILL_DOWNLOAD_FAILED",
            format!("the bill download answered HTTP {status}"),
        )
    }

    /// WeChat refused the call: asked again later if it may succeed then (busy, the bill
    /// being made), else FAILED with WeChat's words.
    pub fn wechat_refused(e: &PayError) -> Recorded {
        let status = if e.is_transient() {
            BillStatus::NotYet
        } else {
            BillStatus::Failed
        };
        Recorded::new(status, e.code(), e.to_string())
    }

    /// The download is not valid gzip (`why`: the runtime's words).
    pub fn bad_gzip(why: &str) -> Recorded {
        Recorded::new(
            BillStatus::Failed,
            "BILL_BAD_GZIP",
            format!("the bill is not valid gzip: {why}"),
        )
    }

    /// The download URL WeChat named is not on WeChat's origin: never sent a signed request.
    pub fn foreign_download_url() -> Recorded {
        Recorded::new(
            BillStatus::Failed,
            "BILL_FOREIGN_URL",
            "the download_url is not on WeChat's API origin; not followed",
        )
    }

    /// The batch that records it: a matched day keeps its match (a failed re-fetch of a day
    /// already reconciled changes nothing but is reported to whoever asked).
    pub fn batch(&self, bill_date: &str, now_ms: u64) -> Batch {
        Batch {
            statements: vec![store::bill_end(
                bill_date,
                self.status.as_str(),
                &self.note,
                now_ms,
            )],
            guard: None,
        }
    }
}

/// What v3's apply answer means for the fetch. `pay_base` is WeChat's API origin: a
/// download URL anywhere else is not followed (the request would carry our signature).
pub fn after_apply(outcome: Result<Apply, PayError>, pay_base: &str) -> Next {
    match outcome {
        Ok(Apply::Ready {
            hash_value,
            download_url,
        }) => match download_path(&download_url, pay_base) {
            Some(path) => Next::Download { path, hash_value },
            None => Next::Record(Recorded::foreign_download_url()),
        },
        Ok(Apply::NoBill) => Next::Record(Recorded::new(
            BillStatus::NoBill,
            "NO_STATEMENT_EXIST",
            "WeChat has no bill for that day: no trade",
        )),
        Ok(Apply::NotYet(why)) => Next::Record(Recorded::new(
            BillStatus::NotYet,
            "STATEMENT_CREATING",
            format!("not ready: {why}"),
        )),
        Err(e) => Next::Record(Recorded::wechat_refused(&e)),
    }
}

/// What v2's downloadbill answer means: the file itself (gzip or plain; v2 gives no hash,
/// the summary is the check), or what to record.
pub fn after_download_bill(outcome: Result<DownloadBill<'_>, PayError>) -> Result<&[u8], Recorded> {
    match outcome {
        Ok(DownloadBill::File { body, .. }) => Ok(body),
        Ok(DownloadBill::NoBill) => Err(Recorded::new(
            BillStatus::NoBill,
            "NO_BILL_EXIST",
            "WeChat has no bill for that day: no trade",
        )),
        Err(e) => Err(Recorded::wechat_refused(&e)),
    }
}

/// The rows of a bill as they stream out of the parser, kept compactly as the JSON chunks
/// one `INSERT … SELECT FROM json_each(?)` each stores (so a bill of 100,000 rows is a
/// handful of statements, within D1's 1,000 queries per invocation and 2 MB per value).
#[derive(Debug, Clone, Default)]
pub struct Rows {
    chunks: Vec<String>,
    current: String,
    count: u64,
}

impl Rows {
    pub fn new() -> Rows {
        Rows::default()
    }

    /// Takes every row in `rows` (leaving it empty for the next chunk of the file).
    pub fn take(&mut self, rows: &mut Vec<BillRow>) {
        for r in rows.drain(..) {
            if store::push_bill_row(&mut self.current, &r) {
                self.count += 1;
            }
            if self.current.len() >= store::BILL_ROWS_JSON_BYTES {
                self.chunks.push(store::close_bill_rows(&mut self.current));
            }
        }
    }

    /// Payment and refund rows kept.
    pub fn count(&self) -> u64 {
        self.count
    }

    fn into_chunks(mut self) -> Vec<String> {
        if !self.current.is_empty() {
            self.chunks.push(store::close_bill_rows(&mut self.current));
        }
        self.chunks
    }
}

/// The end of a download: the parser's verdict on the whole file (its summary), checked
/// against `hash_value` when WeChat gave one; then either the batch that stores and
/// matches the bill of `bill_date`, or the record of why it was refused (nothing stored).
pub fn after_file(
    bill_date: &str,
    read: Result<BillSummary, BillError>,
    hash_value: Option<&str>,
    rows: Rows,
    now_ms: u64,
) -> Result<Batch, Recorded> {
    let refused = |e: BillError| Recorded::new(BillStatus::Failed, e.code(), e.to_string());
    let summary = read.map_err(refused)?;
    if let Some(h) = hash_value {
        check_hash(&summary, h).map_err(refused)?;
    }
    let (Some((start, end)), Some(previous)) = (day_bounds(bill_date), previous_day(bill_date))
    else {
        return Err(Recorded::new(
            BillStatus::Failed,
            "PARAM_ERROR",
            format!("{bill_date:?} is not a date YYYY-MM-DD"),
        ));
    };
    let mut statements: Vec<Statement> = store::bill_begin(bill_date, now_ms).statements;
    statements.extend(
        rows.into_chunks()
            .iter()
            .map(|c| store::bill_rows_insert_json(bill_date, c)),
    );
    statements
        .extend(store::bill_match(bill_date, &previous, start, end, &summary, now_ms).statements);
    Ok(Batch {
        statements,
        guard: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beijing_days() {
        // 2026-12-01 16:00 UTC is 2026-12-02 00:00 in Beijing.
        let midnight = 1_796_140_800_000u64;
        assert_eq!(beijing_date(midnight), "2026-12-02");
        assert_eq!(beijing_date(midnight - 1), "2026-12-01");
        assert_eq!(
            day_bounds("2026-12-02"),
            Some((midnight, midnight + DAY_MS))
        );
        assert_eq!(previous_day("2026-03-01").as_deref(), Some("2026-02-28"));
        assert_eq!(previous_day("2024-03-01").as_deref(), Some("2024-02-29"));
        assert_eq!(previous_day("2027-01-01").as_deref(), Some("2026-12-31"));
        assert_eq!(day_bounds("2026-02-30"), None);
        assert_eq!(day_bounds("1970-01-01"), None);
    }

    #[test]
    fn the_cron_fetches_yesterday_after_ten_once() {
        let p = Policy::default();
        let (today, _) = day_bounds("2026-12-02").unwrap();
        assert_eq!(due(today + 9 * 3_600_000, None, &p), None);
        let ten = today + 10 * 3_600_000;
        assert_eq!(due(ten, None, &p).as_deref(), Some("2026-12-01"));
        for (status, later, expect) in [
            (BillStatus::Matched, DAY_MS / 2, None),
            (BillStatus::NoBill, DAY_MS / 2, None),
            (BillStatus::NotYet, p.retry_ms - 1, None),
            (BillStatus::NotYet, p.retry_ms, Some("2026-12-01")),
            (BillStatus::Failed, p.retry_ms, Some("2026-12-01")),
        ] {
            let seen = BillSeen {
                status,
                updated_ms: ten,
            };
            assert_eq!(
                due(ten + later, Some(&seen), &p).as_deref(),
                expect,
                "{status:?}"
            );
        }
        let off = Policy {
            enabled: false,
            ..p
        };
        assert_eq!(due(ten, None, &off), None);
        for s in BillStatus::ALL {
            assert_eq!(BillStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(
            BillSeen::from_json(Some(r#"{"status":"MATCHED","updated_ms":5}"#)).unwrap(),
            Some(BillSeen {
                status: BillStatus::Matched,
                updated_ms: 5
            })
        );
        assert!(BillSeen::from_json(Some(r#"{"status":"LOST","updated_ms":5}"#)).is_err());
    }

    #[test]
    fn apply_answers_become_records_or_a_download() {
        let base = "https://api.mch.weixin.qq.com";
        let ready = |url: &str| {
            after_apply(
                Ok(Apply::Ready {
                    hash_value: "ab".into(),
                    download_url: url.into(),
                }),
                base,
            )
        };
        assert_eq!(
            ready("https://api.mch.weixin.qq.com/v3/billdownload/file?token=t"),
            Next::Download {
                path: "/v3/billdownload/file?token=t".into(),
                hash_value: "ab".into()
            }
        );
        let Next::Record(r) = ready("https://elsewhere.example/v3/billdownload/file") else {
            panic!()
        };
        assert_eq!((r.status, r.code), (BillStatus::Failed, "BILL_FOREIGN_URL"));
        let Next::Record(r) = after_apply(Ok(Apply::NoBill), base) else {
            panic!()
        };
        assert_eq!(r.status, BillStatus::NoBill);
        let Next::Record(r) = after_apply(Ok(Apply::NotYet("wait".into())), base) else {
            panic!()
        };
        assert_eq!(r.status, BillStatus::NotYet);
        let file = b"csv";
        assert_eq!(
            after_download_bill(Ok(DownloadBill::File {
                body: file,
                gzip: false
            })),
            Ok(&file[..])
        );
        assert_eq!(
            after_download_bill(Ok(DownloadBill::NoBill))
                .unwrap_err()
                .status,
            BillStatus::NoBill
        );
    }
}
