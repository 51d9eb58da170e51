//! Money: integer fen (分), never a float.
//!
//! WeChat Pay counts in fen (`total_fee`), and a float cannot hold 0.1 yuan exactly; the
//! seed tutorial's ledger lost money partly because amounts were loose. Every amount in
//! wxedge is a [`Fen`], arithmetic is checked, and amounts cross JSON as integers.

use serde::{Deserialize, Serialize};
use std::fmt;
use thiserror::Error;

use crate::ErrorCode;

/// An amount of money in fen (1 yuan = 100 fen). Never negative.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Fen(u64);

/// Why a string is not an amount of fen.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MoneyError {
    #[error("amount is empty")]
    Empty,
    #[error("amount {0:?} is not a whole number of fen (digits only, no sign, no decimal point)")]
    NotAnInteger(String),
    #[error("amount {0:?} has a leading zero")]
    LeadingZero(String),
    #[error("amount {0:?} is too large")]
    TooLarge(String),
}

impl ErrorCode for MoneyError {
    fn code(&self) -> &'static str {
        "BAD_AMOUNT"
    }
}

impl Fen {
    pub const ZERO: Fen = Fen(0);

    pub const fn new(fen: u64) -> Self {
        Fen(fen)
    }

    pub const fn get(self) -> u64 {
        self.0
    }

    pub fn checked_add(self, other: Fen) -> Option<Fen> {
        self.0.checked_add(other.0).map(Fen)
    }

    /// `None` rather than a negative amount: a balance that would go below zero is a bug
    /// the caller must see, not a number to store.
    pub fn checked_sub(self, other: Fen) -> Option<Fen> {
        self.0.checked_sub(other.0).map(Fen)
    }

    /// Sums amounts, `None` on overflow.
    pub fn checked_sum<I: IntoIterator<Item = Fen>>(items: I) -> Option<Fen> {
        items
            .into_iter()
            .try_fold(Fen::ZERO, |acc, x| acc.checked_add(x))
    }

    /// Parses WeChat's decimal `total_fee` form strictly: ASCII digits only, no sign, no
    /// decimal point, no leading zero (so one amount has exactly one spelling, which
    /// matters because the spelling is signed).
    pub fn parse(s: &str) -> Result<Fen, MoneyError> {
        if s.is_empty() {
            return Err(MoneyError::Empty);
        }
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(MoneyError::NotAnInteger(s.to_owned()));
        }
        if s.len() > 1 && s.starts_with('0') {
            return Err(MoneyError::LeadingZero(s.to_owned()));
        }
        s.parse::<u64>()
            .map(Fen)
            .map_err(|_| MoneyError::TooLarge(s.to_owned()))
    }

    /// The amount in yuan with two decimals, for humans only (`"12.05"`).
    pub fn to_yuan_string(self) -> String {
        format!("{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

impl fmt::Display for Fen {
    /// Fen as WeChat writes `total_fee`: a bare integer.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::str::FromStr for Fen {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Fen::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_canonical_integers() {
        assert_eq!(Fen::parse("1"), Ok(Fen(1)));
        assert_eq!(Fen::parse("0"), Ok(Fen(0)));
        assert_eq!(Fen::parse("1000000000"), Ok(Fen(1_000_000_000)));
        for bad in ["", "1.0", "-1", "+1", " 1", "1e3", "01", "0x10", "１"] {
            assert!(Fen::parse(bad).is_err(), "{bad:?} must be rejected");
        }
        assert!(matches!(
            Fen::parse("99999999999999999999"),
            Err(MoneyError::TooLarge(_))
        ));
    }

    #[test]
    fn arithmetic_never_wraps_or_goes_negative() {
        assert_eq!(Fen(5).checked_sub(Fen(6)), None);
        assert_eq!(Fen(u64::MAX).checked_add(Fen(1)), None);
        assert_eq!(Fen::checked_sum([Fen(1), Fen(2), Fen(3)]), Some(Fen(6)));
        assert_eq!(Fen::checked_sum([Fen(u64::MAX), Fen(1)]), None);
    }

    #[test]
    fn displays_as_fen_and_yuan() {
        assert_eq!(Fen(1205).to_string(), "1205");
        assert_eq!(Fen(1205).to_yuan_string(), "12.05");
        assert_eq!(Fen(7).to_yuan_string(), "0.07");
        assert_eq!(serde_json::to_string(&Fen(42)).unwrap(), "42");
    }
}
