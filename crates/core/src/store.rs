//! The storage contract: every statement a money flow needs, as SQL text and binds, for
//! D1 (the worker) and SQLite (the simulation in `tests/simulation.rs`, which runs these
//! same statements against the same migrations).
//!
//! The flows decide in terms of [`Write`]s; this module is the one place that turns them
//! into SQL, so the guard a decision relies on (the status and version it saw) and the
//! status names are written once. A [`Batch`] runs as one transaction (a D1 batch);
//! [`Batch::guard_held`] reads the changed-row counts it gave back.

use thiserror::Error;

use crate::Fen;
use crate::flow::bill::BillStatus;
use crate::ledger::OrderStatus;
use crate::order::{Attention, PaidVia, Seen};
use crate::refund::{RefundSeen, RefundSource, RefundStatus};

/// A bind value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlArg {
    Text(String),
    /// Bound exactly: storage shells must not pass a value above 2^53 − 1 as a float
    /// (the worker binds such values as decimal text, which SQLite's INTEGER affinity
    /// stores as the same integer).
    Int(u64),
    Null,
}

impl From<&str> for SqlArg {
    fn from(s: &str) -> Self {
        SqlArg::Text(s.to_owned())
    }
}

impl From<String> for SqlArg {
    fn from(s: String) -> Self {
        SqlArg::Text(s)
    }
}

impl From<u64> for SqlArg {
    fn from(n: u64) -> Self {
        SqlArg::Int(n)
    }
}

impl From<Fen> for SqlArg {
    fn from(f: Fen) -> Self {
        SqlArg::Int(f.get())
    }
}

impl<T: Into<SqlArg>> From<Option<T>> for SqlArg {
    fn from(v: Option<T>) -> Self {
        v.map_or(SqlArg::Null, Into::into)
    }
}

/// One SQL statement with its binds (`?1`, `?2`, … in order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub sql: String,
    pub args: Vec<SqlArg>,
}

impl Statement {
    fn new(sql: impl Into<String>, args: Vec<SqlArg>) -> Self {
        Statement {
            sql: sql.into(),
            args,
        }
    }
}

/// Statements run as one transaction: all or nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Batch {
    pub statements: Vec<Statement>,
    /// The statement that must change exactly one row for the decision to have taken
    /// effect (its guard held). The statement after it, if dependent, is conditioned on
    /// that with `changes() = 1`, so a failed guard leaves the whole batch without effect.
    pub guard: Option<usize>,
}

impl Batch {
    /// Whether the decision took effect, from the rows each statement changed.
    pub fn guard_held(&self, changes: &[usize]) -> bool {
        self.guard
            .is_none_or(|i| changes.get(i).copied() == Some(1))
    }

    pub fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }
}

/// A decision's write that storage could not express: a bug in a flow, never input.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum StoreError {
    #[error("the order machine does not allow {from} → {to}")]
    Forbidden { from: OrderStatus, to: OrderStatus },
    #[error("a batch may hold one guarded write, first")]
    Shape,
    #[error("the refund machine does not allow {from} → {to}")]
    RefundForbidden {
        from: RefundStatus,
        to: RefundStatus,
    },
}

/// A new order, CREATED, for an existing merchant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    pub out_trade_no: String,
    pub openid: String,
    pub merchant_id: String,
    pub total_fee: Fen,
    pub body: String,
    pub spbill_create_ip: String,
    pub now_ms: u64,
    /// When the reconciler first looks at it if nothing else settles it.
    pub next_check_ms: u64,
}

impl NewOrder {
    /// The row as [`Write::CreateOrder`] stores it, so the shell need not read it back.
    pub fn row(&self) -> crate::order::OrderRow {
        crate::order::OrderRow {
            out_trade_no: self.out_trade_no.clone(),
            openid: self.openid.clone(),
            merchant_id: self.merchant_id.clone(),
            total_fee: self.total_fee,
            body: self.body.clone(),
            spbill_create_ip: self.spbill_create_ip.clone(),
            status: OrderStatus::Created,
            version: 0,
            prepay_id: None,
            prepay_ms: None,
            transaction_id: None,
            paid_ms: None,
            paid_via: None,
            failure: None,
            withdrawal_id: None,
            created_ms: self.now_ms,
            updated_ms: self.now_ms,
            next_check_ms: Some(self.next_check_ms),
            checks: 0,
            attention: None,
            attention_note: None,
            reconcile_note: None,
            refunded_fen: Fen::ZERO,
        }
    }
}

/// What happens to one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// WeChat gave a prepay_id: PREPAID.
    Prepaid {
        prepay_id: String,
        next_check_ms: u64,
    },
    /// WeChat confirmed the payment: PAID, with an operator mark if it came late.
    Paid {
        transaction_id: String,
        via: PaidVia,
        attention: Option<(Attention, String)>,
        /// The platform fee taken with the credit (a FEE entry), zero when off.
        fee: Fen,
    },
    /// WeChat agrees it is over: CLOSED or FAILED.
    Ended { status: OrderStatus, reason: String },
    /// Nothing settled: look again at `at_ms`, with a note (and maybe a mark).
    Recheck {
        at_ms: u64,
        note: String,
        attention: Option<(Attention, String)>,
    },
    /// A mark for an operator on an order whose status stays as it is.
    Mark { attention: Attention, note: String },
    /// An operator dealt with the mark (delivered, refunded): it is cleared, and the note
    /// keeps what was done.
    Resolve { note: String },
}

/// What a verdict on a notify is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Moved the order to PAID.
    Credited,
    /// Verified, for an order already settled by this payment.
    Duplicate,
    /// Not believed: unverifiable, or verified but not about our order as we hold it.
    Rejected,
    /// Verified, but we hold no such order.
    UnknownOrder,
    /// WeChat says the payment did not go through.
    PaymentFailed,
    /// Verified, but contradicts what we hold (a second transaction): marked for an operator.
    Conflict,
    /// A refund notify that moved one of our refunds.
    RefundApplied,
    /// A refund notify for a refund made outside wxedge (by hand): recorded as a refund.
    RefundRecorded,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Credited => "CREDITED",
            Verdict::Duplicate => "DUPLICATE",
            Verdict::Rejected => "REJECTED",
            Verdict::UnknownOrder => "UNKNOWN_ORDER",
            Verdict::PaymentFailed => "PAYMENT_FAILED",
            Verdict::Conflict => "CONFLICT",
            Verdict::RefundApplied => "REFUND_APPLIED",
            Verdict::RefundRecorded => "REFUND_RECORDED",
        }
    }
}

/// A notify as we keep it. Verified bodies are kept whole; an unverified one keeps at
/// most [`crate::flow::notify::REJECTED_PREFIX_BYTES`] of itself, its hash and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationRecord {
    pub received_ms: u64,
    pub body: String,
    pub body_sha256: String,
    pub body_bytes: u64,
    pub verified: bool,
    pub remote_ip: Option<String>,
    pub out_trade_no: Option<String>,
    pub verdict: Verdict,
    pub reason: String,
}

/// One write of a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    CreateOrder(NewOrder),
    /// A change of one order, applied only while it is as `seen`.
    Order {
        seen: Seen,
        change: Change,
        now_ms: u64,
    },
    Notification(NotificationRecord),
    /// A new refund of `order`: its amount reserved on the order (guarded by the order's
    /// status and version; `bounded`: only while the order's refunds stay within its fee)
    /// and taken from the merchant with a REFUND entry, when the refund holds money.
    CreateRefund {
        order: Seen,
        refund: NewRefund,
        bounded: bool,
    },
    /// A refund's move, applied only while it is as `seen`; one that stops holding money
    /// gives it back (the order's `refunded_fen`, a REFUND_RETURNED entry).
    Refund {
        seen: RefundSeen,
        change: RefundChange,
        now_ms: u64,
    },
}

impl Write {
    fn is_guarded(&self) -> bool {
        !matches!(self, Write::Notification(_))
    }
}

/// A refund to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRefund {
    pub out_refund_no: String,
    pub out_trade_no: String,
    pub merchant_id: String,
    pub amount: Fen,
    pub reason: Option<String>,
    pub status: RefundStatus,
    pub source: RefundSource,
    pub refund_id: Option<String>,
    pub idempotency_key: Option<String>,
    pub request_sha256: Option<String>,
    pub now_ms: u64,
    pub success_ms: Option<u64>,
    /// When the reconciler asks WeChat about it (None: final).
    pub next_check_ms: Option<u64>,
}

/// What a refund becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundChange {
    pub status: RefundStatus,
    pub refund_id: Option<String>,
    pub failure: Option<String>,
    pub success_ms: Option<u64>,
    /// When the reconciler looks next (None: final, or no change to the queue).
    pub next_check_ms: Option<u64>,
    /// A look that settled nothing: counts for the backoff.
    pub counted: bool,
}

/// The kinds of ledger entry (names are constants, never input).
pub const ENTRY_REFUND: &str = "REFUND";
pub const ENTRY_REFUND_RETURNED: &str = "REFUND_RETURNED";
pub const ENTRY_FEE: &str = "FEE";

/// The columns of an order row as one JSON object built by SQLite: a single value
/// crosses from storage, and [`crate::order::OrderRow::from_json`] reads it.
pub const ORDER_JSON: &str = "json_object('out_trade_no', out_trade_no, 'openid', openid, \
     'merchant_id', merchant_id, 'total_fee', total_fee, 'body', body, \
     'spbill_create_ip', spbill_create_ip, 'status', status, 'version', version, \
     'prepay_id', prepay_id, 'prepay_ms', prepay_ms, 'transaction_id', transaction_id, \
     'paid_ms', paid_ms, 'paid_via', paid_via, 'failure', failure, \
     'withdrawal_id', withdrawal_id, 'created_ms', created_ms, 'updated_ms', updated_ms, \
     'next_check_ms', next_check_ms, 'checks', checks, 'attention', attention, \
     'attention_note', attention_note, 'reconcile_note', reconcile_note, 'refunded_fen', refunded_fen)";

/// `'A', 'B'` for an SQL `IN (…)`, from the enum (the names are constants, never input).
pub fn status_list(statuses: &[OrderStatus]) -> String {
    quoted(statuses.iter().map(|s| s.as_str()))
}

/// The same for refund states.
pub fn refund_status_list(statuses: &[RefundStatus]) -> String {
    quoted(statuses.iter().map(|s| s.as_str()))
}

fn quoted<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Still waiting for money.
pub const OPEN: [OrderStatus; 2] = [OrderStatus::Created, OrderStatus::Prepaid];
/// The money arrived.
pub const PAID: [OrderStatus; 2] = [OrderStatus::Paid, OrderStatus::Withdrawn];

fn guard_sql() -> &'static str {
    "WHERE out_trade_no = ?1 AND status = ?2 AND version = ?3"
}

fn order_write(seen: &Seen, change: &Change, now: u64) -> Result<Statement, StoreError> {
    let to = match change {
        Change::Prepaid { .. } => OrderStatus::Prepaid,
        Change::Paid { .. } => OrderStatus::Paid,
        Change::Ended { status, .. } => *status,
        Change::Recheck { .. } | Change::Mark { .. } | Change::Resolve { .. } => seen.status,
    };
    let moves = to != seen.status || matches!(change, Change::Prepaid { .. });
    if moves && !seen.status.can_become(to) {
        return Err(StoreError::Forbidden {
            from: seen.status,
            to,
        });
    }
    let mut args = vec![
        SqlArg::from(seen.out_trade_no.as_str()),
        SqlArg::from(seen.status.as_str()),
        SqlArg::Int(seen.version),
        SqlArg::Int(now),
    ];
    let mut push = |a: SqlArg| {
        args.push(a);
        args.len()
    };
    let set = match change {
        Change::Prepaid {
            prepay_id,
            next_check_ms,
        } => {
            let s = push(to.as_str().into());
            let p = push(prepay_id.as_str().into());
            let n = push(SqlArg::Int(*next_check_ms));
            format!(
                "status = ?{s}, prepay_id = ?{p}, prepay_ms = ?4, next_check_ms = ?{n}, checks = 0"
            )
        }
        Change::Paid {
            transaction_id,
            via,
            attention,
            ..
        } => {
            let s = push(to.as_str().into());
            let t = push(transaction_id.as_str().into());
            let v = push(via.as_str().into());
            let a = push(attention.as_ref().map(|a| a.0.as_str()).into());
            let n = push(attention.as_ref().map(|a| a.1.clone()).into());
            format!(
                "status = ?{s}, transaction_id = ?{t}, paid_ms = ?4, paid_via = ?{v}, next_check_ms = NULL, \
                 attention = COALESCE(?{a}, attention), attention_note = COALESCE(?{n}, attention_note)"
            )
        }
        Change::Ended { status, reason } => {
            let s = push(status.as_str().into());
            let r = push(reason.as_str().into());
            format!("status = ?{s}, failure = ?{r}, next_check_ms = NULL")
        }
        Change::Recheck {
            at_ms,
            note,
            attention,
        } => {
            let at = push(SqlArg::Int(*at_ms));
            let r = push(note.as_str().into());
            let a = push(attention.as_ref().map(|a| a.0.as_str()).into());
            let n = push(attention.as_ref().map(|a| a.1.clone()).into());
            format!(
                "next_check_ms = ?{at}, reconciled_ms = ?4, reconcile_note = ?{r}, checks = checks + 1, \
                 attention = COALESCE(?{a}, attention), attention_note = COALESCE(?{n}, attention_note)"
            )
        }
        Change::Mark { attention, note } => {
            let a = push(attention.as_str().into());
            let n = push(note.as_str().into());
            format!("attention = ?{a}, attention_note = ?{n}")
        }
        Change::Resolve { note } => {
            let n = push(note.as_str().into());
            format!("attention = NULL, attention_note = ?{n}")
        }
    };
    // updated_ms records changes an operator or the order's owner would see; the
    // reconciler's bookkeeping (Recheck) leaves it.
    let touch = if matches!(change, Change::Recheck { .. }) {
        ""
    } else {
        ", updated_ms = ?4"
    };
    Ok(Statement::new(
        format!(
            "UPDATE orders SET {set}{touch}, version = version + 1 {}",
            guard_sql()
        ),
        args,
    ))
}

fn create_order(o: &NewOrder) -> Statement {
    Statement::new(
        "INSERT INTO orders (out_trade_no, openid, merchant_id, total_fee, body, spbill_create_ip, status,
           version, created_ms, updated_ms, next_check_ms)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?8, ?8, ?9
         WHERE EXISTS (SELECT 1 FROM merchants WHERE merchant_id = ?3)",
        vec![
            o.out_trade_no.as_str().into(),
            o.openid.as_str().into(),
            o.merchant_id.as_str().into(),
            o.total_fee.into(),
            o.body.as_str().into(),
            o.spbill_create_ip.as_str().into(),
            OrderStatus::Created.as_str().into(),
            SqlArg::Int(o.now_ms),
            SqlArg::Int(o.next_check_ms),
        ],
    )
}

fn notification(n: &NotificationRecord, dependent: bool) -> Statement {
    let condition = if dependent {
        " WHERE changes() = 1"
    } else {
        ""
    };
    Statement::new(
        format!(
            "INSERT INTO notifications (received_ms, body, body_sha256, body_bytes, verified, remote_ip,
               out_trade_no, verdict, reason)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9{condition}"
        ),
        vec![
            SqlArg::Int(n.received_ms),
            n.body.as_str().into(),
            n.body_sha256.as_str().into(),
            SqlArg::Int(n.body_bytes),
            SqlArg::Int(u64::from(n.verified)),
            n.remote_ip.clone().into(),
            n.out_trade_no.clone().into(),
            n.verdict.as_str().into(),
            n.reason.as_str().into(),
        ],
    )
}

fn create_refund(order: &Seen, r: &NewRefund, bounded: bool) -> Result<Vec<Statement>, StoreError> {
    if !order.status.is_paid() {
        return Err(StoreError::Forbidden {
            from: order.status,
            to: order.status,
        });
    }
    let insert = |condition: &str| {
        Statement::new(
            format!(
                "INSERT INTO refunds (out_refund_no, out_trade_no, merchant_id, amount_fen, reason, status, source,
                   refund_id, version, idempotency_key, request_sha256, created_ms, updated_ms, success_ms, next_check_ms)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9, ?10, ?11, ?11, ?12, ?13{condition}"
            ),
            vec![
                r.out_refund_no.as_str().into(),
                r.out_trade_no.as_str().into(),
                r.merchant_id.as_str().into(),
                r.amount.into(),
                r.reason.clone().into(),
                r.status.as_str().into(),
                r.source.as_str().into(),
                r.refund_id.clone().into(),
                r.idempotency_key.clone().into(),
                r.request_sha256.clone().into(),
                SqlArg::Int(r.now_ms),
                r.success_ms.map(SqlArg::Int).unwrap_or(SqlArg::Null),
                r.next_check_ms.map(SqlArg::Int).unwrap_or(SqlArg::Null),
            ],
        )
    };
    if !r.status.holds() {
        // Learned already ended (a refund made by hand and closed): nothing to reserve.
        return Ok(vec![insert("")]);
    }
    let bound = if bounded {
        " AND refunded_fen + ?4 <= total_fee"
    } else {
        ""
    };
    Ok(vec![
        Statement::new(
            format!(
                "UPDATE orders SET refunded_fen = refunded_fen + ?4, updated_ms = ?5, version = version + 1
                 WHERE out_trade_no = ?1 AND status = ?2 AND version = ?3{bound}"
            ),
            vec![
                order.out_trade_no.as_str().into(),
                order.status.as_str().into(),
                SqlArg::Int(order.version),
                r.amount.into(),
                SqlArg::Int(r.now_ms),
            ],
        ),
        insert(" WHERE changes() = 1"),
        entry(ENTRY_REFUND, true, &r.merchant_id, r.amount, &r.out_refund_no, &r.out_trade_no, r.now_ms),
    ])
}

/// A ledger entry of `amount` (taken when `negative`), recorded only if the statement
/// before it changed one row.
fn entry(
    kind: &str,
    negative: bool,
    merchant_id: &str,
    amount: Fen,
    out_refund_no: &str,
    out_trade_no: &str,
    now_ms: u64,
) -> Statement {
    let signed = if negative { "0 - ?3" } else { "?3" };
    Statement::new(
        format!(
            "INSERT INTO ledger_entries (merchant_id, kind, amount_fen, out_refund_no, out_trade_no, created_ms)
             SELECT ?1, ?2, {signed}, ?4, ?5, ?6 WHERE changes() = 1"
        ),
        vec![
            merchant_id.into(),
            kind.into(),
            amount.into(),
            out_refund_no.into(),
            out_trade_no.into(),
            SqlArg::Int(now_ms),
        ],
    )
}

/// The platform fee of a credit, taken only if the credit's write changed the order.
fn fee_entry(out_trade_no: &str, fee: Fen, now_ms: u64) -> Statement {
    Statement::new(
        format!(
            "INSERT INTO ledger_entries (merchant_id, kind, amount_fen, out_trade_no, created_ms)
             SELECT merchant_id, '{ENTRY_FEE}', 0 - ?2, out_trade_no, ?3 FROM orders
             WHERE out_trade_no = ?1 AND changes() = 1"
        ),
        vec![out_trade_no.into(), fee.into(), SqlArg::Int(now_ms)],
    )
}

fn refund_write(
    seen: &RefundSeen,
    c: &RefundChange,
    now: u64,
) -> Result<Vec<Statement>, StoreError> {
    let moves = c.status != seen.status;
    if moves && !seen.status.can_become(c.status) {
        return Err(StoreError::RefundForbidden {
            from: seen.status,
            to: c.status,
        });
    }
    let checks = if c.counted {
        "checks + 1"
    } else if moves {
        "0"
    } else {
        "checks"
    };
    let mut out = vec![Statement::new(
        format!(
            "UPDATE refunds SET status = ?4, refund_id = COALESCE(?5, refund_id), failure = COALESCE(?6, failure),
               success_ms = COALESCE(?7, success_ms), next_check_ms = ?8, checks = {checks},
               updated_ms = ?9, version = version + 1
             WHERE out_refund_no = ?1 AND status = ?2 AND version = ?3"
        ),
        vec![
            seen.out_refund_no.as_str().into(),
            seen.status.as_str().into(),
            SqlArg::Int(seen.version),
            c.status.as_str().into(),
            c.refund_id.clone().into(),
            c.failure.clone().into(),
            c.success_ms.map(SqlArg::Int).unwrap_or(SqlArg::Null),
            c.next_check_ms.map(SqlArg::Int).unwrap_or(SqlArg::Null),
            SqlArg::Int(now),
        ],
    )];
    if seen.status.holds() && !c.status.holds() {
        out.push(Statement::new(
            "UPDATE orders SET refunded_fen = refunded_fen - ?2, updated_ms = ?3, version = version + 1
             WHERE out_trade_no = ?1 AND changes() = 1",
            vec![
                seen.out_trade_no.as_str().into(),
                seen.amount.into(),
                SqlArg::Int(now),
            ],
        ));
        out.push(entry(
            ENTRY_REFUND_RETURNED,
            false,
            &seen.merchant_id,
            seen.amount,
            &seen.out_refund_no,
            &seen.out_trade_no,
            now,
        ));
    }
    Ok(out)
}

/// The batch for a decision's writes: at most one guarded write, first; a notification
/// after it is recorded only if the guard held.
pub fn batch(writes: &[Write]) -> Result<Batch, StoreError> {
    let guarded: Vec<usize> = (0..writes.len())
        .filter(|&i| writes[i].is_guarded())
        .collect();
    let guard = match guarded.as_slice() {
        [] => None,
        [0] => Some(0),
        _ => return Err(StoreError::Shape),
    };
    let mut statements = Vec::with_capacity(writes.len() + 2);
    for w in writes {
        match w {
            Write::CreateOrder(o) => statements.push(create_order(o)),
            Write::Order {
                seen,
                change,
                now_ms,
            } => {
                statements.push(order_write(seen, change, *now_ms)?);
                if let Change::Paid { fee, .. } = change
                    && *fee > Fen::ZERO
                {
                    statements.push(fee_entry(&seen.out_trade_no, *fee, *now_ms));
                }
            }
            Write::Notification(n) => statements.push(notification(n, guard.is_some())),
            Write::CreateRefund {
                order,
                refund,
                bounded,
            } => statements.extend(create_refund(order, refund, *bounded)?),
            Write::Refund {
                seen,
                change,
                now_ms,
            } => statements.extend(refund_write(seen, change, *now_ms)?),
        }
    }
    Ok(Batch { statements, guard })
}

/// The order `out_trade_no`, as one JSON value in column `j` (none: no such order).
pub fn order_by_no(out_trade_no: &str) -> Statement {
    Statement::new(
        format!("SELECT {ORDER_JSON} AS j FROM orders WHERE out_trade_no = ?1"),
        vec![out_trade_no.into()],
    )
}

/// The reconciler's queue: open orders whose next check is due, soonest first, as one
/// JSON array in column `j`. Every check moves an order's `next_check_ms` forward, so
/// nothing stays at the head and every order is reached in turn.
pub fn due_orders(now_ms: u64, limit: u64) -> Statement {
    Statement::new(
        format!(
            "SELECT COALESCE(json_group_array(json(j)), '[]') AS j FROM
               (SELECT {ORDER_JSON} AS j FROM orders
                WHERE next_check_ms <= ?1 AND status IN ({})
                ORDER BY next_check_ms, id LIMIT ?2)",
            status_list(&OPEN)
        ),
        vec![SqlArg::Int(now_ms), SqlArg::Int(limit)],
    )
}

/// Deletes unverified notifies received before `before_ms` (their prefix and hash are
/// kept for a while for operators; verified ones are the payment's evidence and stay).
pub fn prune_rejected(before_ms: u64) -> Statement {
    Statement::new(
        "DELETE FROM notifications WHERE verified = 0 AND received_ms < ?1",
        vec![SqlArg::Int(before_ms)],
    )
}

/// What [`crate::ledger::is_claimable`] says, as SQL over the orders table.
pub fn claimable_sql() -> String {
    format!(
        "status = '{}' AND withdrawal_id IS NULL",
        OrderStatus::Paid.as_str()
    )
}

/// One withdrawal, as one batch: insert it (amount 0), claim the merchant's claimable
/// orders and its unclaimed ledger entries, set its amount to the sum of exactly the rows
/// it claimed, and, when that sum is not positive (nothing to claim, or refunds owed: a
/// debt), give the rows back and delete it. An order paid or a refund taken meanwhile is
/// either claimed and counted, or left.
pub fn withdrawal_batch(
    withdrawal_id: &str,
    merchant_id: &str,
    idempotency_key: Option<&str>,
    now_ms: u64,
    paid_before_ms: u64,
) -> Batch {
    let id = || SqlArg::from(withdrawal_id);
    let refused = "EXISTS (SELECT 1 FROM withdrawals WHERE withdrawal_id = ?1 AND amount_fen = 0)";
    Batch {
        statements: vec![
            Statement::new(
                "INSERT INTO withdrawals (withdrawal_id, merchant_id, amount_fen, order_count, idempotency_key, created_ms)
                 VALUES (?1, ?2, 0, 0, ?3, ?4)",
                vec![id(), merchant_id.into(), idempotency_key.into(), SqlArg::Int(now_ms)],
            ),
            Statement::new(
                format!(
                    "UPDATE orders SET status = '{}', withdrawal_id = ?1, updated_ms = ?3, version = version + 1
                     WHERE merchant_id = ?2 AND {} AND paid_ms <= ?4",
                    OrderStatus::Withdrawn.as_str(),
                    claimable_sql()
                ),
                vec![id(), merchant_id.into(), SqlArg::Int(now_ms), SqlArg::Int(paid_before_ms)],
            ),
            Statement::new(
                "UPDATE ledger_entries SET withdrawal_id = ?1 WHERE merchant_id = ?2 AND withdrawal_id IS NULL",
                vec![id(), merchant_id.into()],
            ),
            Statement::new(
                "UPDATE withdrawals SET (amount_fen, order_count, entries_fen, entry_count) =
                   (SELECT MAX(o.fen + e.fen, 0), o.n, e.fen, e.n FROM
                     (SELECT COALESCE(SUM(total_fee), 0) AS fen, COUNT(*) AS n FROM orders WHERE withdrawal_id = ?1) o,
                     (SELECT COALESCE(SUM(amount_fen), 0) AS fen, COUNT(*) AS n FROM ledger_entries WHERE withdrawal_id = ?1) e)
                 WHERE withdrawal_id = ?1",
                vec![id()],
            ),
            Statement::new(
                format!(
                    "UPDATE orders SET status = '{}', withdrawal_id = NULL, version = version + 1
                     WHERE withdrawal_id = ?1 AND {refused}",
                    OrderStatus::Paid.as_str()
                ),
                vec![id()],
            ),
            Statement::new(
                format!("UPDATE ledger_entries SET withdrawal_id = NULL WHERE withdrawal_id = ?1 AND {refused}"),
                vec![id()],
            ),
            Statement::new(
                "DELETE FROM withdrawals WHERE withdrawal_id = ?1 AND amount_fen = 0",
                vec![id()],
            ),
        ],
        guard: None,
    }
}

/// A merchant's balance as one JSON object in column `j`, from one statement (one
/// consistent snapshot): `{by_status: {STATUS: [count, fen]}, available: [count, fen],
/// withdrawals: [count, fen]}`; [`crate::ledger::Balance::from_snapshot`] reads it.
pub fn balance(merchant_id: &str) -> Statement {
    balance_at(merchant_id, crate::ledger::NO_HOLD)
}

/// [`balance`] under a settlement hold: only orders paid at or before `paid_before_ms` are
/// available; the rest are `held`.
pub fn balance_at(merchant_id: &str, paid_before_ms: u64) -> Statement {
    Statement::new(
        format!(
            "SELECT json_object(
               'by_status', (SELECT json_group_object(status, json_array(n, fen)) FROM
                   (SELECT status, COUNT(*) AS n, SUM(total_fee) AS fen FROM orders
                    WHERE merchant_id = ?1 GROUP BY status)),
               'available', (SELECT json_array(COUNT(*), COALESCE(SUM(total_fee), 0)) FROM orders
                    WHERE merchant_id = ?1 AND {claimable} AND paid_ms <= ?2),
               'held', (SELECT json_array(COUNT(*), COALESCE(SUM(total_fee), 0)) FROM orders
                    WHERE merchant_id = ?1 AND {claimable} AND paid_ms > ?2),
               'fees', (SELECT COALESCE(0 - SUM(amount_fen), 0) FROM ledger_entries
                    WHERE merchant_id = ?1 AND kind = '{ENTRY_FEE}'),
               'withdrawals', (SELECT json_array(COUNT(*), COALESCE(SUM(amount_fen), 0))
                    FROM withdrawals WHERE merchant_id = ?1),
               'attention', (SELECT COUNT(*) FROM orders WHERE merchant_id = ?1 AND attention IS NOT NULL),
               'entries', (SELECT json_array(COUNT(*), COALESCE(SUM(amount_fen), 0)) FROM ledger_entries
                    WHERE merchant_id = ?1 AND withdrawal_id IS NULL),
               'refunded', (SELECT COALESCE(SUM(refunded_fen), 0) FROM orders WHERE merchant_id = ?1),
               'refunds', (SELECT json_group_object(status, n) FROM
                   (SELECT status, COUNT(*) AS n FROM refunds WHERE merchant_id = ?1 GROUP BY status))) AS j",
            claimable = claimable_sql()
        ),
        vec![merchant_id.into(), SqlArg::Int(paid_before_ms)],
    )
}

/// Every merchant's ledger totals, every withdrawal's claimed sum and the orders marked
/// for an operator, as one JSON object in column `j` from one statement;
/// [`crate::ledger::AuditSnapshot`] reads it.
pub fn audit_snapshot() -> Statement {
    let paid = status_list(&PAID);
    let withdrawn = OrderStatus::Withdrawn.as_str();
    let held = refund_status_list(&crate::refund::HOLDING);
    Statement::new(
        format!(
            "SELECT json_object(
               'merchants', (SELECT COALESCE(json_group_array(json_object(
                   'merchant_id', m.merchant_id,
                   'paid', (SELECT COALESCE(SUM(total_fee), 0) FROM orders WHERE merchant_id = m.merchant_id AND status IN ({paid})),
                   'available', (SELECT COALESCE(SUM(total_fee), 0) FROM orders WHERE merchant_id = m.merchant_id AND {claimable}),
                   'stray', (SELECT COUNT(*) FROM orders o WHERE o.merchant_id = m.merchant_id AND (
                       (o.status = '{withdrawn}') <> (o.withdrawal_id IS NOT NULL)
                       OR (o.withdrawal_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM withdrawals w
                            WHERE w.withdrawal_id = o.withdrawal_id AND w.merchant_id = o.merchant_id)))),
                   'entries', (SELECT COALESCE(SUM(amount_fen), 0) FROM ledger_entries WHERE merchant_id = m.merchant_id),
                   'unclaimed_entries', (SELECT COALESCE(SUM(amount_fen), 0) FROM ledger_entries
                       WHERE merchant_id = m.merchant_id AND withdrawal_id IS NULL),
                   'refunds_held', (SELECT COALESCE(SUM(amount_fen), 0) FROM refunds
                       WHERE merchant_id = m.merchant_id AND status IN ({held})),
                   'orders_refunded', (SELECT COALESCE(SUM(refunded_fen), 0) FROM orders WHERE merchant_id = m.merchant_id),
                   'refund_entries', (SELECT COALESCE(SUM(amount_fen), 0) FROM ledger_entries
                       WHERE merchant_id = m.merchant_id AND kind IN ('{ENTRY_REFUND}', '{ENTRY_REFUND_RETURNED}')),
                   'overrefunded', (SELECT COUNT(*) FROM orders WHERE merchant_id = m.merchant_id AND refunded_fen > total_fee))), '[]')
                   FROM merchants m),
               'withdrawals', (SELECT COALESCE(json_group_array(json_object(
                   'withdrawal_id', w.withdrawal_id, 'merchant_id', w.merchant_id, 'amount', w.amount_fen,
                   'claimed', (SELECT COALESCE(SUM(total_fee), 0) FROM orders o WHERE o.withdrawal_id = w.withdrawal_id AND o.merchant_id = w.merchant_id AND o.status = '{withdrawn}'),
                   'orders', (SELECT COUNT(*) FROM orders o WHERE o.withdrawal_id = w.withdrawal_id AND o.merchant_id = w.merchant_id AND o.status = '{withdrawn}'),
                   'entries', (SELECT COALESCE(SUM(amount_fen), 0) FROM ledger_entries e WHERE e.withdrawal_id = w.withdrawal_id AND e.merchant_id = w.merchant_id),
                   'entry_count', (SELECT COUNT(*) FROM ledger_entries e WHERE e.withdrawal_id = w.withdrawal_id AND e.merchant_id = w.merchant_id))), '[]')
                   FROM withdrawals w),
               'attention', (SELECT COALESCE(json_group_object(attention, n), '{{}}') FROM
                   (SELECT attention, COUNT(*) AS n FROM orders WHERE attention IS NOT NULL GROUP BY attention))) AS j",
            claimable = claimable_sql(),
        ),
        vec![],
    )
}

/// A withdrawal row as one JSON object built by SQLite
/// ([`crate::flow::withdraw::WithdrawalRow`] reads it).
pub const WITHDRAWAL_JSON: &str = "json_object('withdrawal_id', withdrawal_id, 'merchant_id', merchant_id, \
     'amount_fen', amount_fen, 'order_count', order_count, 'entries_fen', entries_fen, \
     'entry_count', entry_count, 'claimed_entries_fen', (SELECT COALESCE(SUM(e.amount_fen), 0) \
     FROM ledger_entries e WHERE e.withdrawal_id = withdrawals.withdrawal_id), \
     'idempotency_key', idempotency_key, 'created_ms', created_ms, 'seq', seq)";

/// The withdrawal a merchant's `Idempotency-Key` made, in column `j`.
pub fn withdrawal_by_key(merchant_id: &str, key: &str) -> Statement {
    Statement::new(
        format!(
            "SELECT {WITHDRAWAL_JSON} AS j FROM withdrawals WHERE merchant_id = ?1 AND idempotency_key = ?2"
        ),
        vec![merchant_id.into(), key.into()],
    )
}

/// The withdrawal `withdrawal_id`, in column `j`.
pub fn withdrawal_by_id(withdrawal_id: &str) -> Statement {
    Statement::new(
        format!("SELECT {WITHDRAWAL_JSON} AS j FROM withdrawals WHERE withdrawal_id = ?1"),
        vec![withdrawal_id.into()],
    )
}

/// The orders a withdrawal claimed, oldest first, as a JSON array in column `j`
/// ([`crate::flow::withdraw::ClaimedOrder`]).
pub fn claimed_orders(withdrawal_id: &str) -> Statement {
    Statement::new(
        "SELECT COALESCE(json_group_array(json_object('out_trade_no', out_trade_no, 'total_fee', total_fee, 'paid_ms', paid_ms)), '[]') AS j
         FROM (SELECT out_trade_no, total_fee, paid_ms FROM orders WHERE withdrawal_id = ?1 ORDER BY id)",
        vec![withdrawal_id.into()],
    )
}

/// Orders marked for an operator, newest first, as one JSON array in column `j` and the
/// smallest row id in `last` (for the next page's cursor).
pub fn attention_page(before_id: u64, limit: u64) -> Statement {
    Statement::new(
        format!(
            "SELECT COALESCE(json_group_array(json(j)), '[]') AS j, MIN(id) AS last FROM
               (SELECT {ORDER_JSON} AS j, id FROM orders
                WHERE attention IS NOT NULL AND id < ?1 ORDER BY id DESC LIMIT ?2)"
        ),
        vec![SqlArg::Int(before_id), SqlArg::Int(limit)],
    )
}

/// The columns of a refund row as one JSON object ([`crate::refund::RefundRow`] reads it).
pub const REFUND_JSON: &str = "json_object('out_refund_no', out_refund_no, 'out_trade_no', out_trade_no, \
     'merchant_id', merchant_id, 'amount_fen', amount_fen, 'reason', reason, 'status', status, \
     'source', source, 'refund_id', refund_id, 'version', version, 'idempotency_key', idempotency_key, \
     'request_sha256', request_sha256, 'failure', failure, 'created_ms', created_ms, \
     'updated_ms', updated_ms, 'success_ms', success_ms, 'next_check_ms', next_check_ms, 'checks', checks)";

/// The refund `out_refund_no`, in column `j`.
pub fn refund_by_no(out_refund_no: &str) -> Statement {
    Statement::new(
        format!("SELECT {REFUND_JSON} AS j FROM refunds WHERE out_refund_no = ?1"),
        vec![out_refund_no.into()],
    )
}

/// The refund a merchant's `Idempotency-Key` made, in column `j`.
pub fn refund_by_key(merchant_id: &str, key: &str) -> Statement {
    Statement::new(
        format!(
            "SELECT {REFUND_JSON} AS j FROM refunds WHERE merchant_id = ?1 AND idempotency_key = ?2"
        ),
        vec![merchant_id.into(), key.into()],
    )
}

/// An order's refunds, oldest first, as a JSON array in column `j`.
pub fn refunds_of_order(out_trade_no: &str) -> Statement {
    Statement::new(
        format!(
            "SELECT COALESCE(json_group_array(json(j)), '[]') AS j FROM
               (SELECT {REFUND_JSON} AS j FROM refunds WHERE out_trade_no = ?1 ORDER BY id)"
        ),
        vec![out_trade_no.into()],
    )
}

/// A merchant's refunds, newest first, as a JSON array in column `j`, and the smallest
/// row id in `last` (the next page's cursor).
pub fn refunds_page(merchant_id: &str, before_id: u64, limit: u64) -> Statement {
    Statement::new(
        format!(
            "SELECT COALESCE(json_group_array(json(j)), '[]') AS j, MIN(id) AS last FROM
               (SELECT id, {REFUND_JSON} AS j FROM refunds WHERE merchant_id = ?1 AND id < ?2
                ORDER BY id DESC LIMIT ?3)"
        ),
        vec![
            merchant_id.into(),
            SqlArg::Int(before_id),
            SqlArg::Int(limit),
        ],
    )
}

/// Refunds the reconciler should ask WeChat about, soonest due first.
pub fn due_refunds(now_ms: u64, limit: u64) -> Statement {
    Statement::new(
        format!(
            "SELECT COALESCE(json_group_array(json(j)), '[]') AS j FROM
               (SELECT {REFUND_JSON} AS j FROM refunds WHERE next_check_ms IS NOT NULL AND next_check_ms <= ?1
                ORDER BY next_check_ms LIMIT ?2)"
        ),
        vec![SqlArg::Int(now_ms), SqlArg::Int(limit)],
    )
}

/// The most JSON one `bill_rows` insert carries: under D1's 2 MB per value, and enough that
/// a bill of 100,000 rows is a few statements (D1 allows 1,000 queries per invocation).
pub const BILL_ROWS_JSON_BYTES: usize = 1_000_000;

/// Appends one bill row to a JSON array being built (`[kind, out_trade_no, out_refund_no,
/// amount_fen, status]`); false for rows only the parser counts (REVOKED…).
pub fn push_bill_row(json: &mut String, row: &crate::bill::BillRow) -> bool {
    use crate::bill::BillRow;
    use std::fmt::Write as _;
    let quoted = |s: &str| serde_json::Value::from(s).to_string();
    let (kind, no, refund_no, amount, status) = match row {
        BillRow::Payment {
            out_trade_no,
            amount,
            ..
        } => ("PAYMENT", out_trade_no, None, *amount, None),
        BillRow::Refund {
            out_trade_no,
            out_refund_no,
            amount,
            status,
            ..
        } => (
            "REFUND",
            out_trade_no,
            Some(out_refund_no.as_str()),
            *amount,
            Some(status.as_str()),
        ),
        BillRow::Other { .. } => return false,
    };
    json.push(if json.is_empty() { '[' } else { ',' });
    let opt = |v: Option<&str>| v.map_or_else(|| "null".to_owned(), quoted);
    let _ = write!(
        json,
        "[\"{kind}\",{},{},{},{}]",
        quoted(no),
        opt(refund_no),
        amount.get(),
        opt(status)
    );
    true
}

/// Closes the array [`push_bill_row`] built, leaving `json` empty for the next.
pub fn close_bill_rows(json: &mut String) -> String {
    let mut done = std::mem::take(json);
    if done.is_empty() {
        done.push('[');
    }
    done.push(']');
    done
}

/// The statement that stores one JSON array of bill rows ([`push_bill_row`]).
pub fn bill_rows_insert_json(bill_date: &str, rows_json: &str) -> Statement {
    Statement::new(
        "INSERT INTO bill_rows (bill_date, kind, out_trade_no, out_refund_no, amount_fen, status)
         SELECT ?1, json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'),
                json_extract(value, '$[3]'), json_extract(value, '$[4]')
         FROM json_each(?2)",
        vec![bill_date.into(), rows_json.into()],
    )
}

/// The bill of `bill_date` as [`crate::flow::bill::BillSeen`] reads it, in column `j`
/// (no row: no bill tried yet).
pub fn bill_seen(bill_date: &str) -> Statement {
    Statement::new(
        "SELECT json_object('status', status, 'updated_ms', updated_ms) AS j FROM bills WHERE bill_date = ?1",
        vec![bill_date.into()],
    )
}

/// Starts storing the bill of `bill_date` (the first statements of the batch
/// [`crate::flow::bill::after_file`] makes): its earlier rows and differences dropped.
pub fn bill_begin(bill_date: &str, now_ms: u64) -> Batch {
    let d = || SqlArg::from(bill_date);
    Batch {
        statements: vec![
            Statement::new("DELETE FROM bill_rows WHERE bill_date = ?1", vec![d()]),
            Statement::new("DELETE FROM reconciliation WHERE bill_date = ?1", vec![d()]),
            Statement::new(
                "INSERT INTO bills (bill_date, status, updated_ms) VALUES (?1, ?3, ?2)
                 ON CONFLICT (bill_date) DO UPDATE SET status = ?3, note = NULL, updated_ms = ?2",
                vec![
                    d(),
                    SqlArg::Int(now_ms),
                    BillStatus::Matched.as_str().into(),
                ],
            ),
        ],
        guard: None,
    }
}

/// Records a fetch of the bill of `bill_date` that matched nothing (`status`: NO_BILL,
/// NOT_YET, FAILED) with why; a day already MATCHED keeps its match.
pub fn bill_end(bill_date: &str, status: &str, note: &str, now_ms: u64) -> Statement {
    Statement::new(
        "INSERT INTO bills (bill_date, status, note, updated_ms, differences) VALUES (?1, ?2, ?3, ?4, 0)
         ON CONFLICT (bill_date) DO UPDATE SET status = ?2, note = ?3, updated_ms = ?4
         WHERE bills.status <> ?5",
        vec![
            bill_date.into(),
            status.into(),
            note.into(),
            SqlArg::Int(now_ms),
            BillStatus::Matched.as_str().into(),
        ],
    )
}

/// Every difference between the loaded bill of `bill_date` and our records, as one batch:
/// payments and refunds in the bill but not here, amounts that differ, a refund WeChat
/// billed that we hold as ended (or the reverse), and what we credited between
/// `day_start_ms` and `day_end_ms` (the bill's Beijing day) that neither this bill nor the
/// day before's has (we learn of a payment after WeChat makes it). Then the bill is MATCHED
/// with its figures, and rows older than the day before are dropped.
pub fn bill_match(
    bill_date: &str,
    previous_date: &str,
    day_start_ms: u64,
    day_end_ms: u64,
    summary: &crate::bill::BillSummary,
    now_ms: u64,
) -> Batch {
    let paid = status_list(&PAID);
    let held = refund_status_list(&crate::refund::HOLDING);
    let d = || SqlArg::from(bill_date);
    let insert = "INSERT INTO reconciliation (bill_date, kind, reference, difference, ours_fen, bill_fen, ours_status, bill_status)";
    Batch {
        statements: vec![
            Statement::new("DELETE FROM reconciliation WHERE bill_date = ?1", vec![d()]),
            Statement::new(
                format!(
                    "{insert} SELECT ?1, 'PAYMENT', b.out_trade_no, 'MISSING_HERE', NULL, b.amount_fen, o.status, 'SUCCESS'
                     FROM bill_rows b LEFT JOIN orders o ON o.out_trade_no = b.out_trade_no
                     WHERE b.bill_date = ?1 AND b.kind = 'PAYMENT' AND (o.out_trade_no IS NULL OR o.status NOT IN ({paid}))"
                ),
                vec![d()],
            ),
            Statement::new(
                format!(
                    "{insert} SELECT ?1, 'PAYMENT', b.out_trade_no, 'AMOUNT_DIFFERS', o.total_fee, b.amount_fen, o.status, 'SUCCESS'
                     FROM bill_rows b JOIN orders o ON o.out_trade_no = b.out_trade_no
                     WHERE b.bill_date = ?1 AND b.kind = 'PAYMENT' AND o.status IN ({paid}) AND o.total_fee <> b.amount_fen"
                ),
                vec![d()],
            ),
            Statement::new(
                format!(
                    "{insert} SELECT ?1, 'PAYMENT', o.out_trade_no, 'MISSING_IN_BILL', o.total_fee, NULL, o.status, NULL
                     FROM orders o
                     WHERE o.status IN ({paid}) AND o.paid_ms >= ?3 AND o.paid_ms < ?4
                       AND NOT EXISTS (SELECT 1 FROM bill_rows b WHERE b.out_trade_no = o.out_trade_no
                                       AND b.kind = 'PAYMENT' AND b.bill_date IN (?1, ?2))"
                ),
                vec![d(), previous_date.into(), SqlArg::Int(day_start_ms), SqlArg::Int(day_end_ms)],
            ),
            Statement::new(
                format!(
                    "{insert} SELECT ?1, 'REFUND', b.out_refund_no, 'MISSING_HERE', NULL, b.amount_fen, r.status, b.status
                     FROM bill_rows b LEFT JOIN refunds r ON r.out_refund_no = b.out_refund_no
                     WHERE b.bill_date = ?1 AND b.kind = 'REFUND' AND r.out_refund_no IS NULL"
                ),
                vec![d()],
            ),
            Statement::new(
                format!(
                    "{insert} SELECT ?1, 'REFUND', b.out_refund_no,
                       CASE WHEN r.amount_fen <> b.amount_fen THEN 'AMOUNT_DIFFERS' ELSE 'STATUS_DIFFERS' END,
                       r.amount_fen, b.amount_fen, r.status, b.status
                     FROM bill_rows b JOIN refunds r ON r.out_refund_no = b.out_refund_no
                     WHERE b.bill_date = ?1 AND b.kind = 'REFUND'
                       AND (r.amount_fen <> b.amount_fen OR r.status NOT IN ({held}))"
                ),
                vec![d()],
            ),
            Statement::new(
                format!(
                    "{insert} SELECT ?1, 'REFUND', r.out_refund_no, 'MISSING_IN_BILL', r.amount_fen, NULL, r.status, NULL
                     FROM refunds r
                     WHERE r.status IN ({held}) AND r.status <> 'REQUESTED' AND r.created_ms >= ?3 AND r.created_ms < ?4
                       AND NOT EXISTS (SELECT 1 FROM bill_rows b WHERE b.out_refund_no = r.out_refund_no
                                       AND b.kind = 'REFUND' AND b.bill_date IN (?1, ?2))"
                ),
                vec![d(), previous_date.into(), SqlArg::Int(day_start_ms), SqlArg::Int(day_end_ms)],
            ),
            Statement::new(
                "UPDATE bills SET status = ?7, sha1 = ?2, row_count = ?3, paid_fen = ?4, refunded_fen = ?5,
                   differences = (SELECT COUNT(*) FROM reconciliation WHERE bill_date = ?1), note = NULL, updated_ms = ?6
                 WHERE bill_date = ?1",
                vec![
                    d(),
                    summary.sha1.as_str().into(),
                    SqlArg::Int(summary.rows),
                    summary.paid.into(),
                    summary.refunded.into(),
                    SqlArg::Int(now_ms),
                    BillStatus::Matched.as_str().into(),
                ],
            ),
            Statement::new(
                "DELETE FROM bill_rows WHERE bill_date < ?1",
                vec![previous_date.into()],
            ),
        ],
        guard: None,
    }
}

/// What `GET /admin/ledger` counts of the daily bills, as one JSON object in column `j`:
/// differences stored over all days (and by kind), bills by status, the last day matched.
pub fn reconciliation_summary() -> Statement {
    Statement::new(
        "SELECT json_object(
           'differences', (SELECT COUNT(*) FROM reconciliation),
           'by_difference', (SELECT COALESCE(json_group_object(difference, n), '{}')
                             FROM (SELECT difference, COUNT(*) AS n FROM reconciliation GROUP BY difference)),
           'bills', (SELECT COALESCE(json_group_object(status, n), '{}')
                     FROM (SELECT status, COUNT(*) AS n FROM bills GROUP BY status)),
           'last_matched', (SELECT MAX(bill_date) FROM bills WHERE status = ?1)) AS j",
        vec![BillStatus::Matched.as_str().into()],
    )
}

/// The bill of `bill_date` and a page of its differences (in the order found, `id` after
/// `after_id`, at most `limit`), as one JSON object in column `j`; `last` is the page's last
/// `id` (the next page's cursor).
pub fn reconciliation_report(bill_date: &str, after_id: u64, limit: u64) -> Statement {
    Statement::new(
        "SELECT json_object(
           'bill', (SELECT json_object('bill_date', bill_date, 'status', status, 'sha1', sha1, 'rows', row_count,
                      'paid_fen', paid_fen, 'refunded_fen', refunded_fen, 'differences', differences,
                      'note', note, 'updated_ms', updated_ms) FROM bills WHERE bill_date = ?1),
           'differences', (SELECT COALESCE(json_group_array(json_object('kind', kind, 'reference', reference,
                      'difference', difference, 'ours_fen', ours_fen, 'bill_fen', bill_fen,
                      'ours_status', ours_status, 'bill_status', bill_status)), '[]')
                      FROM (SELECT * FROM reconciliation WHERE bill_date = ?1 AND id > ?2 ORDER BY id LIMIT ?3)),
           'last', (SELECT MAX(id) FROM (SELECT id FROM reconciliation WHERE bill_date = ?1 AND id > ?2 ORDER BY id LIMIT ?3))) AS j",
        vec![bill_date.into(), SqlArg::Int(after_id), SqlArg::Int(limit)],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(status: OrderStatus) -> Seen {
        Seen {
            out_trade_no: "T".into(),
            status,
            version: 4,
        }
    }

    #[test]
    fn order_writes_are_guarded_by_status_and_version() {
        let b = batch(&[Write::Order {
            seen: seen(OrderStatus::Prepaid),
            change: Change::Ended {
                status: OrderStatus::Closed,
                reason: "closed".into(),
            },
            now_ms: 9,
        }])
        .unwrap();
        let s = &b.statements[0];
        assert!(s.sql.contains("status = ?2 AND version = ?3"), "{}", s.sql);
        assert!(s.sql.contains("version = version + 1"));
        assert_eq!(s.args[1], SqlArg::Text("PREPAID".into()));
        assert_eq!(s.args[2], SqlArg::Int(4));
        assert!(b.guard_held(&[1]));
        assert!(!b.guard_held(&[0]));
    }

    #[test]
    fn writes_the_order_machine_forbids_are_refused() {
        let e = batch(&[Write::Order {
            seen: seen(OrderStatus::Withdrawn),
            change: Change::Ended {
                status: OrderStatus::Closed,
                reason: String::new(),
            },
            now_ms: 0,
        }])
        .unwrap_err();
        assert!(matches!(e, StoreError::Forbidden { .. }), "{e}");
        // A late payment of a closed order is allowed: the money is real.
        assert!(
            batch(&[Write::Order {
                seen: seen(OrderStatus::Closed),
                change: Change::Paid {
                    transaction_id: "42".into(),
                    via: PaidVia::Notify,
                    attention: Some((Attention::LatePayment, "late".into())),
                    fee: Fen::ZERO,
                },
                now_ms: 0,
            }])
            .is_ok()
        );
    }

    #[test]
    fn a_notification_after_a_guarded_write_depends_on_it() {
        let n = NotificationRecord {
            received_ms: 1,
            body: "<xml/>".into(),
            body_sha256: "00".into(),
            body_bytes: 6,
            verified: true,
            remote_ip: None,
            out_trade_no: Some("T".into()),
            verdict: Verdict::Credited,
            reason: "ok".into(),
        };
        let alone = batch(&[Write::Notification(n.clone())]).unwrap();
        assert_eq!(alone.guard, None);
        assert!(!alone.statements[0].sql.contains("changes()"));
        let after = batch(&[
            Write::Order {
                seen: seen(OrderStatus::Prepaid),
                change: Change::Paid {
                    transaction_id: "42".into(),
                    via: PaidVia::Notify,
                    attention: None,
                    fee: Fen::ZERO,
                },
                now_ms: 1,
            },
            Write::Notification(n.clone()),
        ])
        .unwrap();
        assert!(after.statements[1].sql.contains("WHERE changes() = 1"));
        let two_guards = batch(&[
            Write::Notification(n),
            Write::Order {
                seen: seen(OrderStatus::Prepaid),
                change: Change::Mark {
                    attention: Attention::WrongOrder,
                    note: String::new(),
                },
                now_ms: 1,
            },
        ]);
        assert_eq!(two_guards, Err(StoreError::Shape));
    }
}
