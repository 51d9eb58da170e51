//! `POST /admin/attention/{out_trade_no}/resolve`: an operator dealt with an order's mark
//! (delivered the goods of a late payment, refunded it, settled a mismatch). The mark is
//! cleared, guarded by the version the operator's request was decided on, and the note
//! keeps what was done and which mark it was; the money the order carries is untouched.

use crate::flow::Decision;
use crate::order::OrderRow;
use crate::store::{Change, Write};

/// The longest note an operator may leave, in characters.
pub const MAX_NOTE_CHARS: usize = 500;

/// Why a resolution is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The order carries no mark (code 6).
    #[error("order {0} has no mark to resolve")]
    NothingToResolve(String),
    /// The note is missing or too long (code 1).
    #[error("note must say what was done, 1 to {MAX_NOTE_CHARS} characters")]
    BadNote,
}

/// The decision for resolving `row`'s mark with `note`.
pub fn resolve(row: &OrderRow, note: &str, now_ms: u64) -> Result<Decision<()>, ResolveError> {
    let note = note.trim();
    if note.is_empty() || note.chars().count() > MAX_NOTE_CHARS {
        return Err(ResolveError::BadNote);
    }
    let Some(mark) = row.attention else {
        return Err(ResolveError::NothingToResolve(row.out_trade_no.clone()));
    };
    Ok(Decision::new(
        vec![Write::Order {
            seen: row.seen(),
            change: Change::Resolve {
                note: format!("{mark} resolved: {note}"),
            },
            now_ms,
        }],
        (),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::OrderStatus;
    use crate::order::{Attention, test_row};

    #[test]
    fn a_mark_is_cleared_with_what_was_done_and_nothing_else_is() {
        let mut row = test_row(OrderStatus::Paid);
        assert!(matches!(
            resolve(&row, "refunded", 1),
            Err(ResolveError::NothingToResolve(_))
        ));
        row.attention = Some(Attention::LatePayment);
        assert_eq!(resolve(&row, "  ", 1), Err(ResolveError::BadNote));
        let d = resolve(&row, "goods delivered", 1).unwrap();
        let Write::Order { seen, change, .. } = &d.writes[0] else {
            panic!()
        };
        assert_eq!(seen.version, row.version);
        assert_eq!(
            change,
            &Change::Resolve {
                note: "LATE_PAYMENT resolved: goods delivered".into()
            }
        );
        let sql = &d.batch().unwrap().statements[0].sql;
        assert!(sql.contains("attention = NULL"), "{sql}");
        let set = sql.split("WHERE").next().unwrap_or_default();
        assert!(!set.contains("status"), "the status stays: {sql}");
    }
}
