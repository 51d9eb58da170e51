//! WeChat's side of the daily trade bill: the ALL bill written from typed rows, for wxsim
//! and for tests, beside [`super::BillParser`] so the two sides cannot drift apart.
//!
//! The layout is the one the parser's tests hold (WxJava's `WxPayBillResultTest` ALL
//! sample, 27 columns) and 交易账单格式说明 (the apifox mirror of the v2 下载交易账单 page,
//! <https://apifox.com/apidoc/docs-site/1172626/api-26085739>): every detail field starts
//! with a backtick; the ALL bill holds the day's successful payments (交易时间 = when the
//! payment succeeded) and the refunds accepted that day (交易时间 = when the refund was
//! accepted, 退款状态 as it was when the bill was made); the summary row's count and totals
//! are the rows'. Amounts are yuan with two decimals, the fee column with five.
//!
//! What is not modelled: coupons (代金券, 充值券 are always 0.00), fees (手续费 0.00000 at
//! 费率 0.00%: no rate is documented per merchant), 设备号, 商户数据包. The writer is
//! streamed: each row is appended to the caller's buffer, which it may send and clear
//! between rows, so a bill of any size is never held whole.

use std::fmt::Write as _;

use thiserror::Error;

use crate::{ErrorCode, Fen};

/// The ALL bill's header row (without its newline).
pub const ALL_HEADER: &str = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注";

/// The summary's header row (the post-2018 settlement bill's, 免充值券).
pub const SUMMARY_HEADER: &str =
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额";

/// Why a row cannot be written: the format has no escaping, so a comma or a line break in
/// a field would shift or split the row, and a reader would see another bill.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BillWriteError {
    #[error("{field} {value:?} holds a comma or a line break: the bill format cannot escape it")]
    BadField { field: &'static str, value: String },
    #[error("交易时间 {0:?} is not yyyy-MM-dd HH:mm:ss")]
    BadTime(String),
    #[error("the bill's totals overflow")]
    Overflow,
}

impl ErrorCode for BillWriteError {
    fn code(&self) -> &'static str {
        "BILL_BAD_ROW"
    }
}

/// A payment as the bill shows it (交易状态 SUCCESS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BilledPayment<'a> {
    /// When it succeeded, Beijing time, `yyyy-MM-dd HH:mm:ss` ([`super::bill_time`]).
    pub time: &'a str,
    pub appid: &'a str,
    pub mch_id: &'a str,
    pub transaction_id: &'a str,
    pub out_trade_no: &'a str,
    pub openid: &'a str,
    /// JSAPI, NATIVE, APP, …
    pub trade_type: &'a str,
    pub amount: Fen,
    /// 商品名称 (`body` / `description`); may hold commas: the parser counts the columns
    /// after it from the right.
    pub goods: &'a str,
}

/// A refund as the bill shows it (交易状态 REFUND), on the day it was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BilledRefund<'a> {
    /// When it was accepted (not when it succeeded), Beijing time.
    pub time: &'a str,
    pub appid: &'a str,
    pub mch_id: &'a str,
    /// The refunded payment's.
    pub transaction_id: &'a str,
    pub out_trade_no: &'a str,
    pub openid: &'a str,
    pub trade_type: &'a str,
    pub refund_id: &'a str,
    pub out_refund_no: &'a str,
    pub amount: Fen,
    /// 退款状态 when the bill was made: SUCCESS, PROCESSING, CLOSED, ABNORMAL…
    pub status: &'a str,
    pub goods: &'a str,
}

/// A bill being written: the header at [`BillWriter::new`], a row per call, the summary at
/// [`BillWriter::finish`], whose count and totals are those of the rows written.
#[derive(Debug, Clone, Default)]
pub struct BillWriter {
    rows: u64,
    paid: Fen,
    refunded: Fen,
}

fn is_time(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() == 19
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b' ',
            13 | 16 => *c == b':',
            _ => c.is_ascii_digit(),
        })
}

/// Appends `` `value, ``, refusing what would break the row (a reader strips exactly one
/// backtick, so a value's own leading backtick survives).
fn push(out: &mut String, field: &'static str, value: &str) -> Result<(), BillWriteError> {
    if value.contains([',', '\n', '\r']) {
        return Err(BillWriteError::BadField {
            field,
            value: value.to_owned(),
        });
    }
    out.push('`');
    out.push_str(value);
    out.push(',');
    Ok(())
}

/// 商品名称 is the payer-facing text the merchant chose: a comma stays (WeChat writes it
/// and the parser counts the later columns from the right), a line break becomes a space
/// so the row stays one line (how WeChat writes one is not documented).
fn push_goods(out: &mut String, goods: &str) {
    out.push('`');
    out.extend(
        goods
            .chars()
            .map(|c| if c == '\n' || c == '\r' { ' ' } else { c }),
    );
    out.push(',');
}

/// Appends `` `12.05, `` without allocating.
fn push_yuan(out: &mut String, fen: Fen) {
    // Writing to a String cannot fail.
    let _ = write!(out, "`{}.{:02},", fen.get() / 100, fen.get() % 100);
}

impl BillWriter {
    /// Starts a bill: its header row is appended to `out`.
    pub fn new(out: &mut String) -> BillWriter {
        out.push_str(ALL_HEADER);
        out.push('\n');
        BillWriter::default()
    }

    /// How many rows were written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Appends a payment's row. On an error nothing is appended.
    pub fn payment(
        &mut self,
        p: &BilledPayment<'_>,
        out: &mut String,
    ) -> Result<(), BillWriteError> {
        let paid = self
            .paid
            .checked_add(p.amount)
            .ok_or(BillWriteError::Overflow)?;
        let start = out.len();
        let written = Self::head(
            out,
            p.time,
            [
                p.appid,
                p.mch_id,
                p.transaction_id,
                p.out_trade_no,
                p.openid,
                p.trade_type,
            ],
            "SUCCESS",
        )
        .map(|()| {
            push_yuan(out, p.amount); // 应结订单金额
            out.push_str("`0.00,`0,`0,`0.00,`0.00,`,`,"); // coupons, no refund
            push_goods(out, p.goods);
            out.push_str("`,`0.00000,`0.00%,"); // 商户数据包, 手续费, 费率
            push_yuan(out, p.amount); // 订单金额
            out.push_str("`0.00,`\n"); // 申请退款金额, 费率备注
        });
        if let Err(e) = written {
            out.truncate(start);
            return Err(e);
        }
        self.rows += 1;
        self.paid = paid;
        Ok(())
    }

    /// Appends a refund's row. On an error nothing is appended.
    pub fn refund(&mut self, r: &BilledRefund<'_>, out: &mut String) -> Result<(), BillWriteError> {
        let refunded = self
            .refunded
            .checked_add(r.amount)
            .ok_or(BillWriteError::Overflow)?;
        let start = out.len();
        let written = Self::head(
            out,
            r.time,
            [
                r.appid,
                r.mch_id,
                r.transaction_id,
                r.out_trade_no,
                r.openid,
                r.trade_type,
            ],
            "REFUND",
        )
        .and_then(|()| {
            out.push_str("`0.00,`0.00,"); // 应结订单金额, 代金券金额
            push(out, "微信退款单号", r.refund_id)?;
            push(out, "商户退款单号", r.out_refund_no)?;
            push_yuan(out, r.amount); // 退款金额
            out.push_str("`0.00,`ORIGINAL,"); // 充值券退款金额, 退款类型
            push(out, "退款状态", r.status)?;
            push_goods(out, r.goods);
            out.push_str("`,`0.00000,`0.00%,`0.00,"); // 商户数据包, 手续费, 费率, 订单金额
            push_yuan(out, r.amount); // 申请退款金额
            out.push_str("`\n");
            Ok(())
        });
        if let Err(e) = written {
            out.truncate(start);
            return Err(e);
        }
        self.rows += 1;
        self.refunded = refunded;
        Ok(())
    }

    /// 交易时间 … 货币种类: the columns every row starts with.
    fn head(
        out: &mut String,
        time: &str,
        [
            appid,
            mch_id,
            transaction_id,
            out_trade_no,
            openid,
            trade_type,
        ]: [&str; 6],
        state: &str,
    ) -> Result<(), BillWriteError> {
        if !is_time(time) {
            return Err(BillWriteError::BadTime(time.to_owned()));
        }
        push(out, "交易时间", time)?;
        push(out, "公众账号ID", appid)?;
        push(out, "商户号", mch_id)?;
        out.push_str("`0,`,"); // 特约商户号, 设备号
        push(out, "微信订单号", transaction_id)?;
        push(out, "商户订单号", out_trade_no)?;
        push(out, "用户标识", openid)?;
        push(out, "交易类型", trade_type)?;
        out.push('`');
        out.push_str(state);
        out.push_str(",`OTHERS,`CNY,"); // 付款银行, 货币种类
        Ok(())
    }

    /// Appends the summary: its header and the one row of count and totals.
    pub fn finish(self, out: &mut String) {
        out.push_str(SUMMARY_HEADER);
        out.push('\n');
        let _ = write!(out, "`{},", self.rows);
        push_yuan(out, self.paid); // 应结订单总金额
        push_yuan(out, self.refunded); // 退款总金额
        out.push_str("`0.00,`0.00000,"); // 充值券退款总金额, 手续费总金额
        push_yuan(out, self.paid); // 订单总金额
        push_yuan(out, self.refunded); // 申请退款总金额
        // The last field has no trailing comma.
        out.pop();
        out.push('\n');
    }
}

/// One row of a bill to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BilledRow<'a> {
    Payment(BilledPayment<'a>),
    Refund(BilledRefund<'a>),
}

/// A whole bill at once, for callers whose rows fit in memory anyway.
pub fn render<'a>(rows: impl IntoIterator<Item = BilledRow<'a>>) -> Result<String, BillWriteError> {
    let mut out = String::new();
    let mut w = BillWriter::new(&mut out);
    for row in rows {
        match &row {
            BilledRow::Payment(p) => w.payment(p, &mut out)?,
            BilledRow::Refund(r) => w.refund(r, &mut out)?,
        }
    }
    w.finish(&mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::{BillParser, BillRow, BillSummary, check_hash};
    use super::*;
    use proptest::prelude::*;

    fn payment(no: &str, fen: u64) -> BilledPayment<'_> {
        BilledPayment {
            time: "2026-12-01 08:35:41",
            appid: "wxd930ea5d5a258f4f",
            mch_id: "10000100",
            transaction_id: "4200000001",
            out_trade_no: no,
            openid: "oXXXX",
            trade_type: "JSAPI",
            amount: Fen::new(fen),
            goods: "商品",
        }
    }

    fn refund<'a>(no: &'a str, rno: &'a str, fen: u64, status: &'a str) -> BilledRefund<'a> {
        BilledRefund {
            time: "2026-12-01 09:00:00",
            appid: "wxd930ea5d5a258f4f",
            mch_id: "10000100",
            transaction_id: "4200000001",
            out_trade_no: no,
            openid: "oXXXX",
            trade_type: "JSAPI",
            refund_id: "50300001",
            out_refund_no: rno,
            amount: Fen::new(fen),
            status,
            goods: "商品",
        }
    }

    fn read(bill: &str, chunk: usize) -> (Vec<BillRow>, BillSummary) {
        let mut p = BillParser::new();
        let mut rows = Vec::new();
        for c in bill.as_bytes().chunks(chunk.max(1)) {
            p.feed(c, &mut rows).unwrap();
        }
        let s = p.finish(&mut rows).unwrap();
        (rows, s)
    }

    #[test]
    fn the_parsers_sample_is_what_the_writer_writes() {
        // The parser's WxJava-shaped sample, as this writer spells the columns it does not
        // model (fees, bank): the same columns in the same places, read the same.
        let bill = render([
            BilledRow::Payment(BilledPayment {
                time: "2019-07-25 08:35:41",
                appid: "WWWW",
                mch_id: "XXXXXXXX",
                transaction_id: "4200000001",
                out_trade_no: "T0000001",
                openid: "oXXXX",
                trade_type: "JSAPI",
                amount: Fen::new(600),
                goods: "商品",
            }),
            BilledRow::Refund(refund("T0000001", "R0000001", 150, "SUCCESS")),
        ])
        .unwrap();
        let lines: Vec<&str> = bill.lines().collect();
        assert_eq!(lines.len(), 5);
        assert_eq!(lines[0], ALL_HEADER);
        assert_eq!(
            lines[1],
            "`2019-07-25 08:35:41,`WWWW,`XXXXXXXX,`0,`,`4200000001,`T0000001,`oXXXX,`JSAPI,`SUCCESS,`OTHERS,`CNY,`6.00,`0.00,`0,`0,`0.00,`0.00,`,`,`商品,`,`0.00000,`0.00%,`6.00,`0.00,`"
        );
        assert!(
            lines[2].contains("`REFUND,")
                && lines[2].contains("`R0000001,`1.50,`0.00,`ORIGINAL,`SUCCESS,")
        );
        assert_eq!(lines[3], SUMMARY_HEADER);
        assert_eq!(lines[4], "`2,`6.00,`1.50,`0.00,`0.00000,`6.00,`1.50");
        for line in &lines[1..3] {
            assert_eq!(line.split(',').count(), 27, "{line}");
        }
        let (rows, s) = read(&bill, 7);
        assert_eq!(
            rows[0],
            BillRow::Payment {
                out_trade_no: "T0000001".into(),
                transaction_id: "4200000001".into(),
                amount: Fen::new(600),
                time: "2019-07-25 08:35:41".into(),
            }
        );
        assert!(
            matches!(&rows[1], BillRow::Refund { out_refund_no, amount, status, refund_id, .. }
            if out_refund_no == "R0000001" && *amount == Fen::new(150) && status == "SUCCESS" && refund_id == "50300001")
        );
        assert_eq!(
            (s.rows, s.paid, s.refunded),
            (2, Fen::new(600), Fen::new(150))
        );
        assert!(check_hash(&s, &s.sha1.clone()).is_ok());
    }

    #[test]
    fn rows_that_would_break_the_format_are_refused_and_leave_nothing() {
        let mut out = String::new();
        let mut w = BillWriter::new(&mut out);
        let len = out.len();
        for bad in ["A,B", "A\nB", "A\r"] {
            let e = w.payment(&payment(bad, 1), &mut out).unwrap_err();
            assert!(
                matches!(
                    e,
                    BillWriteError::BadField {
                        field: "商户订单号",
                        ..
                    }
                ),
                "{bad}"
            );
            assert_eq!(out.len(), len);
        }
        let e = w
            .refund(&refund("A", "R", 1, "SUCC,ESS"), &mut out)
            .unwrap_err();
        assert_eq!(e.code(), "BILL_BAD_ROW");
        let late = BilledPayment {
            time: "2026-12-01T08:00:00",
            ..payment("A", 1)
        };
        assert!(matches!(
            w.payment(&late, &mut out),
            Err(BillWriteError::BadTime(_))
        ));
        assert_eq!(out.len(), len);
        // A comma in the goods name is what WeChat writes too; the parser copes; a line
        // break becomes a space.
        let goods = BilledPayment {
            goods: "大号,红\n色",
            ..payment("A", 250)
        };
        w.payment(&goods, &mut out).unwrap();
        let big = BilledPayment {
            amount: Fen::new(u64::MAX),
            ..payment("B", 1)
        };
        assert_eq!(w.payment(&big, &mut out), Err(BillWriteError::Overflow));
        assert_eq!(w.rows(), 1);
        w.finish(&mut out);
        let (rows, s) = read(&out, 64);
        assert!(matches!(&rows[0], BillRow::Payment { amount, .. } if *amount == Fen::new(250)));
        assert_eq!(s.paid, Fen::new(250));
    }

    #[test]
    fn an_empty_bill_still_parses() {
        let bill = render([]).unwrap();
        let (rows, s) = read(&bill, 3);
        assert!(rows.is_empty());
        assert_eq!((s.rows, s.paid), (0, Fen::ZERO));
    }

    #[test]
    fn a_hundred_thousand_rows_render_and_read_back() {
        let mut out = String::new();
        let mut w = BillWriter::new(&mut out);
        let mut sum = 0u64;
        for i in 0..100_000u64 {
            let no = format!("PAD{i:08}");
            w.payment(&payment(&no, 1 + i % 10_000), &mut out).unwrap();
            sum += 1 + i % 10_000;
        }
        w.finish(&mut out);
        let (rows, s) = read(&out, 64 * 1024);
        assert_eq!((rows.len(), s.paid), (100_000, Fen::new(sum)));
    }

    proptest! {
        #[test]
        fn any_rows_round_trip_in_any_chunking(
            rows in proptest::collection::vec(
                (any::<bool>(), 0u64..10_000_000, "[A-Za-z0-9_-]{1,32}", "[A-Z]{4,10}"),
                0..20,
            ),
            chunk in 1usize..200,
        ) {
            let billed: Vec<BilledRow<'_>> = rows
                .iter()
                .map(|(is_pay, fen, no, status)| {
                    if *is_pay {
                        BilledRow::Payment(payment(no, *fen))
                    } else {
                        BilledRow::Refund(refund(no, no, *fen, status))
                    }
                })
                .collect();
            let bill = render(billed).unwrap();
            let (read_rows, s) = read(&bill, chunk);
            prop_assert_eq!(read_rows.len(), rows.len());
            for ((is_pay, fen, no, status), got) in rows.iter().zip(&read_rows) {
                match got {
                    BillRow::Payment { out_trade_no, amount, .. } => {
                        prop_assert!(*is_pay);
                        prop_assert_eq!(out_trade_no, no);
                        prop_assert_eq!(amount.get(), *fen);
                    }
                    BillRow::Refund { out_refund_no, amount, status: st, .. } => {
                        prop_assert!(!*is_pay);
                        prop_assert_eq!(out_refund_no, no);
                        prop_assert_eq!(amount.get(), *fen);
                        prop_assert_eq!(st, status);
                    }
                    BillRow::Other { .. } => prop_assert!(false),
                }
            }
            let paid: u64 = rows.iter().filter(|r| r.0).map(|r| r.1).sum();
            let refunded: u64 = rows.iter().filter(|r| !r.0).map(|r| r.1).sum();
            prop_assert_eq!((s.paid.get(), s.refunded.get()), (paid, refunded));
        }
    }
}
