//! The merchant ledger: which orders a withdrawal may take, what a balance is, and the
//! invariant that says no fen was lost.
//!
//! The seed tutorial's withdrawal reads the sum of a merchant's paid orders, then marks
//! *every* paid order withdrawn. An order paid between the two steps is marked but never
//! paid out. The rule here is the other way round: a withdrawal first **claims** orders
//! (PAID, not yet in any withdrawal) and its amount is the sum of what it actually
//! claimed. Storage turns [`is_claimable`] into the guard of one atomic statement; this
//! module never sees a database.
//!
//! The invariant, per merchant, at every instant:
//!
//! ```text
//! Σ fen of orders ever paid (PAID + WITHDRAWN) = available + Σ withdrawal amounts
//! ```
//!
//! with no order in two withdrawals and every withdrawal's amount equal to the sum of its
//! orders. [`audit`] checks it from totals (which SQL can compute without loading rows);
//! [`check`] checks it from rows, for models and tests.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use crate::Fen;

/// An order's state. `CREATED → PREPAID → PAID → WITHDRAWN`; `CREATED`/`PREPAID` may
/// also end `CLOSED` or `FAILED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OrderStatus {
    Created,
    Prepaid,
    Paid,
    Withdrawn,
    Closed,
    Failed,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 6] = [
        OrderStatus::Created,
        OrderStatus::Prepaid,
        OrderStatus::Paid,
        OrderStatus::Withdrawn,
        OrderStatus::Closed,
        OrderStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Created => "CREATED",
            OrderStatus::Prepaid => "PREPAID",
            OrderStatus::Paid => "PAID",
            OrderStatus::Withdrawn => "WITHDRAWN",
            OrderStatus::Closed => "CLOSED",
            OrderStatus::Failed => "FAILED",
        }
    }

    /// Still waiting for money: a notify or an orderquery may make it PAID.
    pub fn is_open(self) -> bool {
        matches!(self, OrderStatus::Created | OrderStatus::Prepaid)
    }

    /// The money arrived (whether or not it has been withdrawn since).
    pub fn is_paid(self) -> bool {
        matches!(self, OrderStatus::Paid | OrderStatus::Withdrawn)
    }

    /// Whether `self → to` is a move the order machine allows. Payment only ever comes
    /// from an open order, withdrawal only from PAID; nothing leaves a final state.
    pub fn can_become(self, to: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (self, to),
            (Created | Prepaid, Prepaid | Paid | Closed | Failed) | (Paid, Withdrawn)
        )
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("unknown order status {0:?}: use one of CREATED, PREPAID, PAID, WITHDRAWN, CLOSED, FAILED")]
pub struct UnknownStatus(pub String);

impl FromStr for OrderStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OrderStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

/// The claim rule: a withdrawal may take an order only while it is PAID and in no
/// withdrawal. Storage must apply it in the same atomic step that marks the order.
pub fn is_claimable(status: OrderStatus, withdrawal_id: Option<&str>) -> bool {
    status == OrderStatus::Paid && withdrawal_id.is_none()
}

/// What a withdrawal may not do.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum LedgerError {
    #[error("nothing to withdraw: the merchant has no paid order that is not already withdrawn")]
    NothingToWithdraw,
    #[error("the sum of the claimed orders overflows")]
    Overflow,
}

/// One order as the ledger sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerOrder {
    pub out_trade_no: String,
    pub merchant_id: String,
    pub total_fee: Fen,
    pub status: OrderStatus,
    pub withdrawal_id: Option<String>,
}

/// A withdrawal as stored: its amount and the merchant it pays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withdrawal {
    pub withdrawal_id: String,
    pub merchant_id: String,
    pub amount: Fen,
}

/// What a withdrawal takes: these orders, for exactly their sum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub out_trade_nos: Vec<String>,
    pub amount: Fen,
}

/// The orders of `merchant_id` that a withdrawal takes now, and its amount. Applied to
/// rows in memory (the model, tests); the worker applies the same rule inside one D1
/// batch and takes the amount from the rows it actually changed.
pub fn claim<'a>(
    merchant_id: &str,
    orders: impl IntoIterator<Item = &'a LedgerOrder>,
) -> Result<Claim, LedgerError> {
    let taken: Vec<&LedgerOrder> = orders
        .into_iter()
        .filter(|o| o.merchant_id == merchant_id)
        .filter(|o| is_claimable(o.status, o.withdrawal_id.as_deref()))
        .collect();
    withdrawal_amount(taken.iter().map(|o| o.total_fee)).map(|amount| Claim {
        out_trade_nos: taken.iter().map(|o| o.out_trade_no.clone()).collect(),
        amount,
    })
}

/// A withdrawal's amount from the fees of the orders it claimed: their exact sum, and
/// never a withdrawal of nothing.
pub fn withdrawal_amount(fees: impl IntoIterator<Item = Fen>) -> Result<Fen, LedgerError> {
    let mut n = 0usize;
    let sum =
        Fen::checked_sum(fees.into_iter().inspect(|_| n += 1)).ok_or(LedgerError::Overflow)?;
    if n == 0 || sum == Fen::ZERO {
        return Err(LedgerError::NothingToWithdraw);
    }
    Ok(sum)
}

/// A merchant's money, as `GET /merchant/balance` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Balance {
    /// Paid and not yet withdrawn: what the next withdrawal would take.
    pub available: Fen,
    /// The sum of the merchant's withdrawals.
    pub withdrawn: Fen,
    /// Everything ever paid to the merchant (`available + withdrawn` when the ledger holds).
    pub paid: Fen,
}

/// One withdrawal seen from both sides: its stored amount, and the orders that name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WithdrawalTotals {
    pub withdrawal_id: String,
    pub amount: Fen,
    /// Σ fee of the orders whose `withdrawal_id` is this one.
    pub claimed: Fen,
    pub claimed_orders: u64,
}

/// A merchant's ledger as sums (what SQL aggregates give without loading rows).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MerchantTotals {
    pub merchant_id: String,
    /// Σ fee of orders PAID or WITHDRAWN.
    pub paid: Fen,
    /// Σ fee of orders PAID with no withdrawal.
    pub available: Fen,
    pub withdrawals: Vec<WithdrawalTotals>,
    /// Orders whose state and withdrawal disagree: WITHDRAWN without a withdrawal, a
    /// withdrawal named by an order that is not WITHDRAWN, or by another merchant's order.
    pub stray_orders: u64,
    /// A sum did not fit in u64 fen (only a corrupt table gets there).
    pub overflowed: bool,
}

/// A broken ledger rule: each one is money unaccounted for.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum Violation {
    #[error(
        "merchant {merchant_id}: paid {paid} fen ≠ available {available} + withdrawn {withdrawn} (drift {drift} fen)"
    )]
    Drift {
        merchant_id: String,
        paid: Fen,
        available: Fen,
        withdrawn: Fen,
        /// paid − (available + withdrawn), signed.
        drift: i128,
    },
    #[error("withdrawal {withdrawal_id}: amount {amount} fen ≠ its orders' {claimed} fen")]
    WithdrawalMismatch {
        withdrawal_id: String,
        amount: Fen,
        claimed: Fen,
    },
    #[error("withdrawal {withdrawal_id} claims no order")]
    EmptyWithdrawal { withdrawal_id: String },
    #[error("merchant {merchant_id}: {count} order(s) whose status and withdrawal disagree")]
    StrayOrders { merchant_id: String, count: u64 },
    #[error("merchant {merchant_id}: the sums overflow")]
    Overflow { merchant_id: String },
}

impl MerchantTotals {
    pub fn withdrawn(&self) -> Option<Fen> {
        Fen::checked_sum(self.withdrawals.iter().map(|w| w.amount))
    }

    pub fn balance(&self) -> Option<Balance> {
        Some(Balance {
            available: self.available,
            withdrawn: self.withdrawn()?,
            paid: self.paid,
        })
    }
}

/// Every rule the ledger must keep, checked from a merchant's totals. Empty means no fen
/// is unaccounted for.
pub fn audit(t: &MerchantTotals) -> Vec<Violation> {
    let mut out = Vec::new();
    let (Some(withdrawn), false) = (t.withdrawn(), t.overflowed) else {
        return vec![Violation::Overflow {
            merchant_id: t.merchant_id.clone(),
        }];
    };
    let accounted = i128::from(t.available.get()) + i128::from(withdrawn.get());
    let drift = i128::from(t.paid.get()) - accounted;
    if drift != 0 {
        out.push(Violation::Drift {
            merchant_id: t.merchant_id.clone(),
            paid: t.paid,
            available: t.available,
            withdrawn,
            drift,
        });
    }
    for w in &t.withdrawals {
        if w.claimed_orders == 0 {
            out.push(Violation::EmptyWithdrawal {
                withdrawal_id: w.withdrawal_id.clone(),
            });
        }
        if w.amount != w.claimed {
            out.push(Violation::WithdrawalMismatch {
                withdrawal_id: w.withdrawal_id.clone(),
                amount: w.amount,
                claimed: w.claimed,
            });
        }
    }
    if t.stray_orders > 0 {
        out.push(Violation::StrayOrders {
            merchant_id: t.merchant_id.clone(),
            count: t.stray_orders,
        });
    }
    out
}

/// The totals of every merchant named by `orders` or `withdrawals`, from rows.
pub fn totals(orders: &[LedgerOrder], withdrawals: &[Withdrawal]) -> Vec<MerchantTotals> {
    let mut by_merchant: BTreeMap<String, MerchantTotals> = BTreeMap::new();
    fn of<'m>(m: &'m mut BTreeMap<String, MerchantTotals>, id: &str) -> &'m mut MerchantTotals {
        m.entry(id.to_owned()).or_insert_with(|| MerchantTotals {
            merchant_id: id.to_owned(),
            ..MerchantTotals::default()
        })
    }
    // withdrawal_id → (its merchant, index in that merchant's list)
    let mut owner: BTreeMap<&str, (&str, usize)> = BTreeMap::new();
    for w in withdrawals {
        let t = of(&mut by_merchant, &w.merchant_id);
        owner.insert(&w.withdrawal_id, (&w.merchant_id, t.withdrawals.len()));
        t.withdrawals.push(WithdrawalTotals {
            withdrawal_id: w.withdrawal_id.clone(),
            amount: w.amount,
            claimed: Fen::ZERO,
            claimed_orders: 0,
        });
    }
    fn add(t: &mut MerchantTotals, a: Fen, b: Fen) -> Fen {
        a.checked_add(b).unwrap_or_else(|| {
            t.overflowed = true;
            a
        })
    }
    for o in orders {
        let mut stray = false;
        if o.status.is_paid() {
            let t = of(&mut by_merchant, &o.merchant_id);
            let paid = t.paid;
            t.paid = add(t, paid, o.total_fee);
        }
        match (o.status, o.withdrawal_id.as_deref()) {
            (OrderStatus::Paid, None) => {
                let t = of(&mut by_merchant, &o.merchant_id);
                let available = t.available;
                t.available = add(t, available, o.total_fee);
            }
            (OrderStatus::Withdrawn, Some(w)) => match owner.get(w) {
                Some(&(m, i)) if m == o.merchant_id => {
                    let t = of(&mut by_merchant, m);
                    let claimed = t.withdrawals[i].claimed;
                    t.withdrawals[i].claimed = add(t, claimed, o.total_fee);
                    t.withdrawals[i].claimed_orders += 1;
                }
                _ => stray = true,
            },
            (OrderStatus::Withdrawn, None) | (_, Some(_)) => stray = true,
            (_, None) => {}
        }
        if stray {
            of(&mut by_merchant, &o.merchant_id).stray_orders += 1;
        }
    }
    by_merchant.into_values().collect()
}

/// [`audit`] of every merchant, from rows.
pub fn check(orders: &[LedgerOrder], withdrawals: &[Withdrawal]) -> Vec<Violation> {
    totals(orders, withdrawals).iter().flat_map(audit).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(no: &str, m: &str, fee: u64, status: OrderStatus, w: Option<&str>) -> LedgerOrder {
        LedgerOrder {
            out_trade_no: no.into(),
            merchant_id: m.into(),
            total_fee: Fen::new(fee),
            status,
            withdrawal_id: w.map(Into::into),
        }
    }

    #[test]
    fn statuses_round_trip_and_unknown_ones_are_named() {
        for s in OrderStatus::ALL {
            assert_eq!(s.as_str().parse::<OrderStatus>(), Ok(s));
        }
        let e = "paid".parse::<OrderStatus>().unwrap_err();
        assert!(e.to_string().contains("PAID"), "{e}");
    }

    #[test]
    fn the_machine_only_pays_open_orders_and_withdraws_paid_ones() {
        use OrderStatus::*;
        assert!(Prepaid.can_become(Paid));
        assert!(Paid.can_become(Withdrawn));
        for from in [Paid, Withdrawn, Closed, Failed] {
            assert!(!from.can_become(Paid), "{from} → PAID");
        }
        for from in [Created, Prepaid, Withdrawn, Closed, Failed] {
            assert!(!from.can_become(Withdrawn), "{from} → WITHDRAWN");
        }
    }

    #[test]
    fn a_claim_takes_exactly_the_unwithdrawn_paid_orders_of_its_merchant() {
        use OrderStatus::*;
        let orders = [
            order("a", "m1", 100, Paid, None),
            order("b", "m1", 250, Paid, None),
            order("c", "m1", 999, Withdrawn, Some("w0")),
            order("d", "m1", 7, Prepaid, None),
            order("e", "m2", 40, Paid, None),
        ];
        let c = claim("m1", &orders).unwrap();
        assert_eq!(c.out_trade_nos, ["a", "b"]);
        assert_eq!(c.amount, Fen::new(350));
        assert_eq!(claim("m3", &orders), Err(LedgerError::NothingToWithdraw));
    }

    #[test]
    fn the_seed_withdrawal_is_caught_by_the_audit() {
        use OrderStatus::*;
        // The seed: sum read (100), then an order paid (50), then ALL paid orders marked.
        let orders = [
            order("a", "m", 100, Withdrawn, Some("w1")),
            order("b", "m", 50, Withdrawn, Some("w1")),
        ];
        let withdrawals = [Withdrawal {
            withdrawal_id: "w1".into(),
            merchant_id: "m".into(),
            amount: Fen::new(100),
        }];
        let v = check(&orders, &withdrawals);
        assert!(
            v.iter()
                .any(|v| matches!(v, Violation::Drift { drift: 50, .. })),
            "{v:?}"
        );
        assert!(
            v.iter()
                .any(|v| matches!(v, Violation::WithdrawalMismatch { .. })),
            "{v:?}"
        );
    }

    #[test]
    fn a_sound_ledger_has_no_violation_and_its_balance_adds_up() {
        use OrderStatus::*;
        let orders = [
            order("a", "m", 100, Withdrawn, Some("w1")),
            order("b", "m", 50, Paid, None),
            order("c", "m", 70, Closed, None),
        ];
        let withdrawals = [Withdrawal {
            withdrawal_id: "w1".into(),
            merchant_id: "m".into(),
            amount: Fen::new(100),
        }];
        assert_eq!(check(&orders, &withdrawals), []);
        let t = &totals(&orders, &withdrawals)[0];
        assert_eq!(
            t.balance(),
            Some(Balance {
                available: Fen::new(50),
                withdrawn: Fen::new(100),
                paid: Fen::new(150)
            })
        );
    }

    #[test]
    fn stray_and_cross_merchant_claims_are_violations() {
        use OrderStatus::*;
        let withdrawals = [Withdrawal {
            withdrawal_id: "w1".into(),
            merchant_id: "m1".into(),
            amount: Fen::new(10),
        }];
        for bad in [
            order("x", "m2", 10, Withdrawn, Some("w1")),
            order("x", "m1", 10, Withdrawn, None),
            order("x", "m1", 10, Paid, Some("w1")),
        ] {
            let v = check(std::slice::from_ref(&bad), &withdrawals);
            assert!(
                v.iter().any(|v| matches!(v, Violation::StrayOrders { .. })),
                "{bad:?}: {v:?}"
            );
        }
        let v = check(&[], &withdrawals);
        assert!(v.contains(&Violation::EmptyWithdrawal {
            withdrawal_id: "w1".into()
        }));
    }

    #[test]
    fn nothing_is_never_withdrawn() {
        assert_eq!(withdrawal_amount([]), Err(LedgerError::NothingToWithdraw));
        assert_eq!(
            withdrawal_amount([Fen::new(u64::MAX), Fen::new(1)]),
            Err(LedgerError::Overflow)
        );
        assert_eq!(
            withdrawal_amount([Fen::new(3), Fen::new(4)]),
            Ok(Fen::new(7))
        );
    }
}
