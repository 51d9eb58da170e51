//! The merchant ledger: what a balance is, what a withdrawal may take, and the invariant
//! that says no fen was lost.
//!
//! The seed tutorial's withdrawal reads the sum of a merchant's paid orders, then marks
//! *every* paid order withdrawn. An order paid between the two steps is marked but never
//! paid out. The rule here is the other way round: a withdrawal first **claims** orders
//! (PAID, not yet in any withdrawal: [`crate::store::claimable_sql`]) in one atomic batch,
//! and its amount is the sum of what it actually claimed ([`withdrawal_amount`]).
//!
//! The invariant, per merchant, at every instant:
//!
//! ```text
//! Σ fen of orders ever paid (PAID + WITHDRAWN) + Σ ledger entries = available + Σ withdrawal amounts
//! ```
//!
//! Ledger entries are refunds (negative, written when a refund is requested or learned)
//! and refunds given back (positive, when one ends without money leaving). `available`
//! (paid orders and entries no withdrawal has claimed) may be negative: a refund of an
//! order already withdrawn is a debt the merchant's next credits repay before anything is
//! withdrawable. No order or entry is in two withdrawals, and every withdrawal's amount
//! equals the sum of its orders and entries (and is positive). [`audit`] checks it from totals, which SQL computes without loading rows
//! ([`crate::store::audit_snapshot`], read by [`AuditSnapshot`]).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::Deserialize;
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

    /// Whether `self → to` is a move the order machine allows. Payment comes from an open
    /// order, or late from one we had ended (WeChat confirmed the money: it is real, and an
    /// operator is told); withdrawal only from PAID; nothing leaves WITHDRAWN.
    pub fn can_become(self, to: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (self, to),
            (Created | Prepaid, Prepaid | Paid | Closed | Failed)
                | (Closed | Failed, Paid)
                | (Paid, Withdrawn)
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

/// What a withdrawal may not do.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum LedgerError {
    #[error("nothing to withdraw: the merchant has no paid order that is not already withdrawn")]
    NothingToWithdraw,
    #[error("the sum of the claimed orders overflows")]
    Overflow,
    #[error("unreadable ledger snapshot: {0}")]
    Unreadable(String),
}

/// A withdrawal's amount from what it claimed: the fees of its orders plus its ledger
/// entries (refunds negative, refunds returned positive). Never a withdrawal of nothing,
/// nor of a debt: a sum that is not positive withdraws nothing.
pub fn withdrawal_amount(
    fees: impl IntoIterator<Item = Fen>,
    entries: i64,
) -> Result<Fen, LedgerError> {
    let orders = Fen::checked_sum(fees).ok_or(LedgerError::Overflow)?;
    let total = i128::from(orders.get()) + i128::from(entries);
    if total <= 0 {
        return Err(LedgerError::NothingToWithdraw);
    }
    u64::try_from(total)
        .map(Fen::new)
        .map_err(|_| LedgerError::Overflow)
}

/// A moment after every payment (2^52 − 1 ms: exact as a JavaScript number).
pub const NO_HOLD: u64 = (1 << 52) - 1;

/// Optional settlement rules (both off by default): a platform fee taken on every credit,
/// and a hold before a paid order can be withdrawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Settlement {
    /// The platform's fee in basis points (1 bp = 0.01 %), at most 10 000.
    pub fee_bps: u32,
    /// How long after its payment an order stays held (not withdrawable).
    pub hold_ms: u64,
}

impl Settlement {
    /// The fee on a credit of `total`: `floor(total × fee_bps / 10 000)` fen. The rounding
    /// is down, always: the fraction of a fen stays with the merchant. The fee is the
    /// platform's once taken; a refund of the order does not give it back (a full refund
    /// leaves the merchant owing the fee).
    pub fn fee_of(&self, total: Fen) -> Fen {
        let fee = u128::from(total.get()) * u128::from(self.fee_bps.min(10_000)) / 10_000;
        Fen::new(u64::try_from(fee).unwrap_or(u64::MAX))
    }

    /// Orders paid at or before this moment can be withdrawn. Without a hold, every paid
    /// order (whatever clock stamped it).
    pub fn withdrawable_before(&self, now_ms: u64) -> u64 {
        if self.hold_ms == 0 {
            NO_HOLD
        } else {
            now_ms.saturating_sub(self.hold_ms)
        }
    }
}

/// A merchant's money, as `GET /merchant/balance` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Balance {
    /// What the next withdrawal would take: paid orders not yet withdrawn, less refunds
    /// not yet counted by a withdrawal. Below zero the merchant owes refunds of orders it
    /// had withdrawn (a debt its next credits repay first).
    pub available: i64,
    /// `max(0, −available)`.
    pub debt: Fen,
    /// The sum of the merchant's withdrawals.
    pub withdrawn: Fen,
    /// Everything ever paid to the merchant.
    pub paid: Fen,
    /// Refunds that hold money (requested, processing, done, or abnormal).
    pub refunded: Fen,
    /// Paid orders not withdrawable yet (the settlement hold).
    pub held: Fen,
    /// Platform fees taken.
    pub fees: Fen,
}

/// One withdrawal seen from both sides: its stored amount, and the orders and entries
/// that name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WithdrawalTotals {
    pub withdrawal_id: String,
    pub amount: Fen,
    /// Σ fee of the orders whose `withdrawal_id` is this one.
    pub claimed: Fen,
    pub claimed_orders: u64,
    /// Σ of the ledger entries whose `withdrawal_id` is this one (signed).
    pub claimed_entries: i64,
    pub entry_count: u64,
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
    /// Σ of every ledger entry (refunds negative, returns positive).
    pub entries: i64,
    /// Σ of the entries no withdrawal has claimed.
    pub unclaimed_entries: i64,
    /// Σ of the refund entries (REFUND negative, REFUND_RETURNED positive); `entries`
    /// minus this is the fees taken.
    pub refund_entries: i64,
    /// Σ of the refunds that hold money (not FAILED, not CLOSED).
    pub refunds_held: Fen,
    /// Σ `refunded_fen` over the merchant's orders (what each order has given back).
    pub orders_refunded: Fen,
    /// Orders whose `refunded_fen` exceeds their fee.
    pub overrefunded_orders: u64,
    /// A sum did not fit in u64 fen (only a corrupt table gets there).
    pub overflowed: bool,
}

/// A broken ledger rule: each one is money unaccounted for.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum Violation {
    #[error(
        "merchant {merchant_id}: paid {paid} fen + entries {entries} ≠ available {available} + withdrawn {withdrawn} (drift {drift} fen)"
    )]
    Drift {
        merchant_id: String,
        paid: Fen,
        entries: i64,
        available: i64,
        withdrawn: Fen,
        /// paid + entries − (available + withdrawn), signed.
        drift: i128,
    },
    #[error(
        "withdrawal {withdrawal_id}: amount {amount} fen ≠ its orders' {claimed} fen + its entries' {entries}"
    )]
    WithdrawalMismatch {
        withdrawal_id: String,
        amount: Fen,
        claimed: Fen,
        entries: i64,
    },
    #[error("withdrawal {withdrawal_id} claims nothing")]
    EmptyWithdrawal { withdrawal_id: String },
    #[error("merchant {merchant_id}: {count} order(s) whose status and withdrawal disagree")]
    StrayOrders { merchant_id: String, count: u64 },
    #[error(
        "merchant {merchant_id}: entries sum to {entries} but the refunds holding money to {held} fen"
    )]
    RefundEntries {
        merchant_id: String,
        entries: i64,
        held: Fen,
    },
    #[error(
        "merchant {merchant_id}: orders record {recorded} fen refunded, the refunds holding money {held} fen; {overrefunded} order(s) refunded above their fee"
    )]
    RefundedOrders {
        merchant_id: String,
        recorded: Fen,
        held: Fen,
        overrefunded: u64,
    },
    #[error("merchant {merchant_id}: the sums overflow")]
    Overflow { merchant_id: String },
}

impl MerchantTotals {
    pub fn withdrawn(&self) -> Option<Fen> {
        Fen::checked_sum(self.withdrawals.iter().map(|w| w.amount))
    }

    /// What the next withdrawal would take (signed: a debt is negative).
    pub fn balance(&self) -> i128 {
        i128::from(self.available.get()) + i128::from(self.unclaimed_entries)
    }
}

/// Every rule the ledger must keep, checked from a merchant's totals. Empty means no fen
/// is unaccounted for:
///
/// ```text
/// Σ paid + Σ entries = available (unclaimed orders + unclaimed entries) + Σ withdrawals
/// Σ refund entries = −Σ refunds holding money   Σ refunded_fen of orders = Σ refunds holding money
/// every withdrawal = Σ its orders + Σ its entries, and claims something
/// ```
pub fn audit(t: &MerchantTotals) -> Vec<Violation> {
    let mut out = Vec::new();
    let (Some(withdrawn), false) = (t.withdrawn(), t.overflowed) else {
        return vec![Violation::Overflow {
            merchant_id: t.merchant_id.clone(),
        }];
    };
    let balance = t.balance();
    let drift =
        i128::from(t.paid.get()) + i128::from(t.entries) - (balance + i128::from(withdrawn.get()));
    if drift != 0 {
        out.push(Violation::Drift {
            merchant_id: t.merchant_id.clone(),
            paid: t.paid,
            entries: t.entries,
            available: i64::try_from(balance).unwrap_or(i64::MAX),
            withdrawn,
            drift,
        });
    }
    if i128::from(t.refund_entries) != -i128::from(t.refunds_held.get()) {
        out.push(Violation::RefundEntries {
            merchant_id: t.merchant_id.clone(),
            entries: t.refund_entries,
            held: t.refunds_held,
        });
    }
    if t.orders_refunded != t.refunds_held || t.overrefunded_orders > 0 {
        out.push(Violation::RefundedOrders {
            merchant_id: t.merchant_id.clone(),
            recorded: t.orders_refunded,
            held: t.refunds_held,
            overrefunded: t.overrefunded_orders,
        });
    }
    for w in &t.withdrawals {
        if w.claimed_orders == 0 && w.entry_count == 0 {
            out.push(Violation::EmptyWithdrawal {
                withdrawal_id: w.withdrawal_id.clone(),
            });
        }
        let sum = i128::from(w.claimed.get()) + i128::from(w.claimed_entries);
        if i128::from(w.amount.get()) != sum || sum <= 0 {
            out.push(Violation::WithdrawalMismatch {
                withdrawal_id: w.withdrawal_id.clone(),
                amount: w.amount,
                claimed: w.claimed,
                entries: w.claimed_entries,
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

/// What [`crate::store::balance`] gives for one merchant.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BalanceSnapshot {
    /// status → (orders, Σ fen)
    #[serde(default)]
    pub by_status: Option<BTreeMap<String, (u64, Fen)>>,
    pub available: (u64, Fen),
    pub withdrawals: (u64, Fen),
    #[serde(default)]
    pub attention: u64,
    /// Unclaimed ledger entries: (count, Σ signed fen).
    #[serde(default)]
    pub entries: (u64, i64),
    /// Σ refunded_fen of the merchant's orders.
    #[serde(default)]
    pub refunded: Fen,
    /// refund status → count.
    #[serde(default)]
    pub refunds: Option<BTreeMap<String, u64>>,
    /// Paid, unclaimed orders still in the settlement hold: (count, Σ fen).
    #[serde(default)]
    pub held: (u64, Fen),
    /// Σ platform fees taken (positive).
    #[serde(default)]
    pub fees: Fen,
}

/// A merchant's balance with its order counts, as `GET /merchant/balance` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceView {
    pub balance: Balance,
    pub available_orders: u64,
    pub paid_orders: u64,
    pub withdrawn_orders: u64,
    pub open_orders: u64,
    pub closed_orders: u64,
    pub failed_orders: u64,
    pub withdrawals: u64,
    /// Orders marked for an operator (late payments and the like).
    pub attention_orders: u64,
    /// Refunds by status.
    pub refunds: BTreeMap<String, u64>,
}

impl BalanceSnapshot {
    pub fn from_json(text: &str) -> Result<BalanceSnapshot, LedgerError> {
        serde_json::from_str(text).map_err(|e| LedgerError::Unreadable(e.to_string()))
    }

    /// The balance, every sum checked.
    pub fn view(&self) -> Result<BalanceView, LedgerError> {
        let empty = BTreeMap::new();
        let by = self.by_status.as_ref().unwrap_or(&empty);
        let of = |st: OrderStatus| by.get(st.as_str()).copied().unwrap_or((0, Fen::ZERO));
        let add = |a: u64, b: u64| a.checked_add(b).ok_or(LedgerError::Overflow);
        let paid = of(OrderStatus::Paid)
            .1
            .checked_add(of(OrderStatus::Withdrawn).1)
            .ok_or(LedgerError::Overflow)?;
        let available =
            i64::try_from(i128::from(self.available.1.get()) + i128::from(self.entries.1))
                .map_err(|_| LedgerError::Overflow)?;
        Ok(BalanceView {
            balance: Balance {
                available,
                debt: Fen::new(available.min(0).unsigned_abs()),
                withdrawn: self.withdrawals.1,
                paid,
                refunded: self.refunded,
                held: self.held.1,
                fees: self.fees,
            },
            available_orders: self.available.0,
            paid_orders: add(of(OrderStatus::Paid).0, of(OrderStatus::Withdrawn).0)?,
            withdrawn_orders: of(OrderStatus::Withdrawn).0,
            open_orders: add(of(OrderStatus::Created).0, of(OrderStatus::Prepaid).0)?,
            closed_orders: of(OrderStatus::Closed).0,
            failed_orders: of(OrderStatus::Failed).0,
            withdrawals: self.withdrawals.0,
            attention_orders: self.attention,
            refunds: self.refunds.clone().unwrap_or_default(),
        })
    }
}

/// One merchant in [`crate::store::audit_snapshot`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MerchantSnapshot {
    pub merchant_id: String,
    pub paid: Fen,
    pub available: Fen,
    pub stray: u64,
    #[serde(default)]
    pub entries: i64,
    #[serde(default)]
    pub unclaimed_entries: i64,
    #[serde(default)]
    pub refunds_held: Fen,
    #[serde(default)]
    pub orders_refunded: Fen,
    #[serde(default)]
    pub overrefunded: u64,
    /// Σ of the REFUND and REFUND_RETURNED entries (the fees' are the rest).
    #[serde(default)]
    pub refund_entries: i64,
}

/// One withdrawal in [`crate::store::audit_snapshot`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WithdrawalSnapshot {
    pub withdrawal_id: String,
    pub merchant_id: String,
    pub amount: Fen,
    pub claimed: Fen,
    pub orders: u64,
    #[serde(default)]
    pub entries: i64,
    #[serde(default)]
    pub entry_count: u64,
}

/// What [`crate::store::audit_snapshot`] gives: per merchant its sums, per withdrawal
/// what it claimed, and the count of orders per operator mark.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AuditSnapshot {
    pub merchants: Vec<MerchantSnapshot>,
    pub withdrawals: Vec<WithdrawalSnapshot>,
    #[serde(default)]
    pub attention: BTreeMap<String, u64>,
}

/// The audit of every merchant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    pub merchants: Vec<(MerchantTotals, Vec<Violation>)>,
    /// Orders per operator mark (`LATE_PAYMENT`, …): money that is credited but needs a
    /// person (deliver or refund).
    pub attention: BTreeMap<String, u64>,
}

impl AuditReport {
    pub fn violations(&self) -> impl Iterator<Item = &Violation> {
        self.merchants.iter().flat_map(|(_, v)| v)
    }

    pub fn ok(&self) -> bool {
        self.violations().next().is_none()
    }
}

impl AuditSnapshot {
    pub fn from_json(text: &str) -> Result<AuditSnapshot, LedgerError> {
        serde_json::from_str(text).map_err(|e| LedgerError::Unreadable(e.to_string()))
    }

    pub fn audit(&self) -> AuditReport {
        let merchants = self
            .merchants
            .iter()
            .map(|m| {
                let t = MerchantTotals {
                    merchant_id: m.merchant_id.clone(),
                    paid: m.paid,
                    available: m.available,
                    withdrawals: self
                        .withdrawals
                        .iter()
                        .filter(|w| w.merchant_id == m.merchant_id)
                        .map(|w| WithdrawalTotals {
                            withdrawal_id: w.withdrawal_id.clone(),
                            amount: w.amount,
                            claimed: w.claimed,
                            claimed_orders: w.orders,
                            claimed_entries: w.entries,
                            entry_count: w.entry_count,
                        })
                        .collect(),
                    stray_orders: m.stray,
                    entries: m.entries,
                    unclaimed_entries: m.unclaimed_entries,
                    refunds_held: m.refunds_held,
                    refund_entries: m.refund_entries,
                    orders_refunded: m.orders_refunded,
                    overrefunded_orders: m.overrefunded,
                    overflowed: false,
                };
                let v = audit(&t);
                (t, v)
            })
            .collect();
        AuditReport {
            merchants,
            attention: self.attention.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(paid: u64, available: u64, withdrawals: &[(u64, u64, u64)]) -> MerchantTotals {
        MerchantTotals {
            merchant_id: "m".into(),
            paid: Fen::new(paid),
            available: Fen::new(available),
            withdrawals: withdrawals
                .iter()
                .enumerate()
                .map(|(i, &(amount, claimed, n))| WithdrawalTotals {
                    withdrawal_id: format!("w{i}"),
                    amount: Fen::new(amount),
                    claimed: Fen::new(claimed),
                    claimed_orders: n,
                    claimed_entries: 0,
                    entry_count: 0,
                })
                .collect(),
            ..MerchantTotals::default()
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
    fn the_machine_pays_unpaid_orders_and_withdraws_paid_ones() {
        use OrderStatus::*;
        assert!(Prepaid.can_become(Paid));
        assert!(Closed.can_become(Paid), "a late payment is still money");
        assert!(Paid.can_become(Withdrawn));
        for from in [Paid, Withdrawn] {
            assert!(!from.can_become(Paid), "{from} → PAID");
        }
        for from in [Created, Prepaid, Withdrawn, Closed, Failed] {
            assert!(!from.can_become(Withdrawn), "{from} → WITHDRAWN");
        }
        for to in OrderStatus::ALL {
            assert!(!Withdrawn.can_become(to));
        }
    }

    #[test]
    fn the_seed_withdrawal_is_caught_by_the_audit() {
        // The seed: sum read (100), then an order paid (50), then ALL paid orders marked:
        // 150 fen paid, one withdrawal of 100 whose orders sum to 150.
        let v = audit(&totals(150, 0, &[(100, 150, 2)]));
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
        let t = totals(150, 50, &[(100, 100, 1)]);
        assert_eq!(audit(&t), []);
        assert_eq!(t.withdrawn(), Some(Fen::new(100)));
        let mut stray = totals(0, 0, &[(10, 0, 0)]);
        stray.stray_orders = 1;
        let v = audit(&stray);
        assert!(v.iter().any(|v| matches!(v, Violation::StrayOrders { .. })));
        assert!(
            v.iter()
                .any(|v| matches!(v, Violation::EmptyWithdrawal { .. }))
        );
    }

    #[test]
    fn a_refund_after_a_withdrawal_is_a_debt_the_next_credit_repays() {
        // Paid 100, withdrawn 100, then 30 refunded: balance −30 (debt), and it adds up.
        let mut t = totals(100, 0, &[(100, 100, 1)]);
        t.entries = -30;
        t.unclaimed_entries = -30;
        t.refund_entries = -30;
        t.refunds_held = Fen::new(30);
        t.orders_refunded = Fen::new(30);
        assert_eq!(audit(&t), []);
        assert_eq!(t.balance(), -30);
        // A refund taken without its entry is caught, and so is one past its order.
        let mut missing = t.clone();
        missing.entries = 0;
        missing.unclaimed_entries = 0;
        missing.refund_entries = 0;
        assert!(
            audit(&missing)
                .iter()
                .any(|v| matches!(v, Violation::RefundEntries { .. }))
        );
        let mut over = t.clone();
        over.overrefunded_orders = 1;
        assert!(
            audit(&over)
                .iter()
                .any(|v| matches!(v, Violation::RefundedOrders { .. }))
        );
        // Then 50 paid: the next withdrawal takes 50 − 30 = 20, claiming the order and
        // the refund's entry.
        let mut w = totals(150, 0, &[(100, 100, 1), (20, 50, 1)]);
        w.withdrawals[1].claimed_entries = -30;
        w.withdrawals[1].entry_count = 1;
        w.entries = -30;
        w.refund_entries = -30;
        w.refunds_held = Fen::new(30);
        w.orders_refunded = Fen::new(30);
        assert_eq!(audit(&w), []);
        assert_eq!(withdrawal_amount([Fen::new(50)], -30), Ok(Fen::new(20)));
        assert_eq!(
            withdrawal_amount([Fen::new(20)], -30),
            Err(LedgerError::NothingToWithdraw),
            "a debt is never withdrawn"
        );
        assert_eq!(
            withdrawal_amount([], 5),
            Ok(Fen::new(5)),
            "a returned refund alone"
        );
    }

    #[test]
    fn snapshots_read_as_storage_writes_them() {
        let a = AuditSnapshot::from_json(
            r#"{"merchants":[{"merchant_id":"m","paid":150,"available":50,"stray":0}],"withdrawals":[{"withdrawal_id":"w0","merchant_id":"m","amount":100,"claimed":100,"orders":1}],"attention":{"LATE_PAYMENT":1}}"#,
        )
        .unwrap()
        .audit();
        assert!(a.ok());
        assert_eq!(a.attention["LATE_PAYMENT"], 1);
        let b = BalanceSnapshot::from_json(
            r#"{"by_status":{"PAID":[1,50],"WITHDRAWN":[1,100],"PREPAID":[2,7]},"available":[1,50],"withdrawals":[1,100],"attention":0,"entries":[1,-80],"refunded":80}"#,
        )
        .unwrap()
        .view()
        .unwrap();
        assert_eq!(b.balance.paid, Fen::new(150));
        assert_eq!((b.balance.available, b.balance.debt), (-30, Fen::new(30)));
        assert_eq!(b.open_orders, 2);
        // A merchant with no orders yet: json_group_object over nothing is NULL.
        let empty = BalanceSnapshot::from_json(
            r#"{"by_status":null,"available":[0,0],"withdrawals":[0,0],"attention":0}"#,
        )
        .unwrap();
        assert_eq!(empty.view().unwrap().balance.paid, Fen::ZERO);
        let huge = BalanceSnapshot::from_json(&format!(
            r#"{{"by_status":{{"PAID":[1,{m}],"WITHDRAWN":[1,1]}},"available":[0,0],"withdrawals":[0,0]}}"#,
            m = u64::MAX
        ))
        .unwrap();
        assert_eq!(huge.view(), Err(LedgerError::Overflow));
    }

    #[test]
    fn nothing_is_never_withdrawn() {
        assert_eq!(
            withdrawal_amount([], 0),
            Err(LedgerError::NothingToWithdraw)
        );
        assert_eq!(
            withdrawal_amount([Fen::new(u64::MAX), Fen::new(1)], 0),
            Err(LedgerError::Overflow)
        );
        assert_eq!(
            withdrawal_amount([Fen::new(3), Fen::new(4)], 0),
            Ok(Fen::new(7))
        );
    }
}
