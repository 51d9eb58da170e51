//! The money flows as pure decisions (the shape of quinn-proto: the protocol owns the
//! state machine, the shell drives it).
//!
//! Each flow takes what the shell observed — the stored row it read, the parsed input,
//! WeChat's answer (or that there was none), `now` — and returns a [`Decision`]: the
//! writes to make, each guarded by the status and version it was decided on, and the
//! reply. The shell runs the writes as one batch ([`crate::store::batch`]); if the guard
//! did not hold, the row moved under it, so it reads the row again and asks again, at most
//! [`MAX_ATTEMPTS`] times. No shell holds a status name or a money rule.
//!
//! | flow | decides |
//! |---|---|
//! | [`pay`] | a new order, reusing a prepay_id, a retry; what unifiedorder's answer means |
//! | [`notify`] | what to keep of a notify, its verdict, the credit, the reply to WeChat |
//! | [`reconcile`] | one order's step: orderquery's answer, closeorder's, when to look again |
//! | [`refund`] | a refund request (the money taken at once), WeChat's answer, the query, a refund notify (also one made by hand) |
//! | [`withdraw`] | a withdrawal's claim batch, an idempotent replay, the answer |
//! | [`attention`] | an operator clearing an order's mark once dealt with |
//! | [`bill`] | which day's bill to fetch and when, what the apply answer means, the batch that stores and matches it |

pub mod attention;
pub mod bill;
pub mod notify;
pub mod pay;
pub mod reconcile;
pub mod refund;
pub mod withdraw;

use crate::store::{self, Batch, StoreError, Write};

/// How many times a shell decides again after a guard failed (the row moved between its
/// read and its write) before it gives up and answers "try again".
pub const MAX_ATTEMPTS: usize = 4;

/// What a flow decided: writes (one atomic batch) and the reply once they took effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<R> {
    pub writes: Vec<Write>,
    pub reply: R,
}

impl<R> Decision<R> {
    pub fn new(writes: Vec<Write>, reply: R) -> Self {
        Decision { writes, reply }
    }

    /// Nothing to write.
    pub fn reply(reply: R) -> Self {
        Decision {
            writes: Vec::new(),
            reply,
        }
    }

    /// The writes as the batch storage runs.
    pub fn batch(&self) -> Result<Batch, StoreError> {
        store::batch(&self.writes)
    }
}
