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

/// Why a payment amount from a client is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AmountError {
    #[error("money is required: a whole number of fen (100 = ¥1.00)")]
    Missing,
    #[error("money must be a whole number of fen, not {0} (100 = ¥1.00; no decimals)")]
    NotWhole(String),
    #[error("money must be at least 1 fen, not {0}")]
    NotPositive(String),
    #[error("money {amount} fen is over the maximum of {max} fen")]
    OverMaximum { amount: u64, max: u64 },
    #[error("money must be a number or a string of digits")]
    WrongType,
}

impl ErrorCode for AmountError {
    fn code(&self) -> &'static str {
        "BAD_AMOUNT"
    }
}

/// A payment amount as a client sends it (the seed client posts `"money": 1`, a form posts
/// `money=1`): an integer JSON number or a string of digits, at least 1, at most `max`.
/// `1.5`, `1.0`, `"1e2"`, `-1`, `0`, `true` are all refused: money is never guessed at.
pub fn parse_amount(value: Option<&serde_json::Value>, max: Fen) -> Result<Fen, AmountError> {
    use serde_json::Value;
    let fen = match value {
        None | Some(Value::Null) => return Err(AmountError::Missing),
        Some(Value::Number(n)) => match (n.as_u64(), n.as_i64()) {
            (Some(v), _) => Fen(v),
            (None, Some(_)) => return Err(AmountError::NotPositive(n.to_string())),
            (None, None) => return Err(AmountError::NotWhole(n.to_string())),
        },
        Some(Value::String(s)) => {
            let t = s.trim();
            if let Some(rest) = t.strip_prefix('-')
                && Fen::parse(rest).is_ok()
            {
                return Err(AmountError::NotPositive(t.to_owned()));
            }
            Fen::parse(t).map_err(|_| AmountError::NotWhole(format!("{s:?}")))?
        }
        Some(_) => return Err(AmountError::WrongType),
    };
    if fen.0 == 0 {
        return Err(AmountError::NotPositive("0".into()));
    }
    if fen > max {
        return Err(AmountError::OverMaximum {
            amount: fen.0,
            max: max.0,
        });
    }
    Ok(fen)
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

#[cfg(test)]
mod amount_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn amounts_clients_send() {
        let max = Fen::new(10_000);
        let ok = |v: serde_json::Value| parse_amount(Some(&v), max);
        assert_eq!(ok(json!(1)), Ok(Fen::new(1)));
        assert_eq!(ok(json!("250")), Ok(Fen::new(250)));
        assert_eq!(ok(json!(" 7 ")), Ok(Fen::new(7)));
        assert_eq!(ok(json!(10_000)), Ok(max));
        for bad in [
            json!(1.5),
            json!(1.0),
            json!("1.5"),
            json!("1e2"),
            json!("abc"),
            json!(""),
        ] {
            assert!(
                matches!(ok(bad.clone()), Err(AmountError::NotWhole(_))),
                "{bad}"
            );
        }
        for bad in [json!(0), json!(-3), json!("-3"), json!("0")] {
            assert!(
                matches!(ok(bad.clone()), Err(AmountError::NotPositive(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            ok(json!(10_001)),
            Err(AmountError::OverMaximum { .. })
        ));
        assert_eq!(ok(json!(true)), Err(AmountError::WrongType));
        assert_eq!(parse_amount(None, max), Err(AmountError::Missing));
    }
}
