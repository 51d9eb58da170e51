//! `POST /notify/`: what a payment notify does.
//!
//! [`read`] verifies it (strict XML, our key, *our configured* algorithm); only then is
//! the body kept whole. An unverifiable body keeps at most [`REJECTED_PREFIX_BYTES`] of
//! itself, its SHA-256 and its size, and counts against the sender's rate limit: junk
//! cannot fill the database. [`decide`] then matches a verified notify to the order as
//! read and credits it with one guarded batch, so a duplicate, late or concurrent notify
//! credits nothing twice.
//!
//! A verified payment is always credited, also for an order we had CLOSED or FAILED: the
//! money is in the merchant's account. Such an order is marked `LATE_PAYMENT` for an
//! operator (deliver or refund) rather than refused: nothing verified ends as a log line.

use sha2::{Digest, Sha256};

use crate::flow::Decision;
use crate::ledger::{OrderStatus, Settlement};
use crate::notify::{self, ExpectedPayment, Notify, NotifyError, Outcome};
use crate::order::{Attention, OrderRow, PaidVia};
use crate::sign::SignType;
use crate::store::{Change, NotificationRecord, Verdict, Write};
use crate::{ErrorCode, pay, xml};

/// How much of an unverified body is kept.
pub const REJECTED_PREFIX_BYTES: usize = 512;

/// The answer to WeChat: an HTTP status and its XML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    fn success() -> Self {
        Reply {
            status: 200,
            body: notify::reply_success(),
        }
    }

    fn fail(status: u16, reason: &str) -> Self {
        Reply {
            status,
            body: notify::reply_fail(reason),
        }
    }

    /// The acknowledgement: WeChat stops retrying.
    pub fn ok() -> Self {
        Reply::success()
    }

    /// A failure WeChat retries, with its HTTP status and reason.
    pub fn fail_with(status: u16, reason: &str) -> Self {
        Reply::fail(status, reason)
    }

    /// Whether this reply stops WeChat's retries.
    pub fn is_success(&self) -> bool {
        notify::is_success_reply(self.body.as_bytes())
    }
}

/// The reply when storage failed: WeChat retries later.
pub fn storage_failed() -> Reply {
    Reply::fail(500, "storage unavailable, retry later")
}

/// The reply to a body over the size bound.
pub fn too_large() -> Reply {
    Reply::fail(413, "body too large")
}

/// The reply to a sender over its rate limit for rejected notifies (nothing is stored).
pub fn rate_limited() -> Reply {
    Reply::fail(
        429,
        "too many rejected notifies from this address; slow down",
    )
}

/// Where and when a notify came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received<'a> {
    pub body: &'a [u8],
    pub remote_ip: Option<&'a str>,
    pub now_ms: u64,
}

/// A notify after verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// Signed with our key under our algorithm: find its order and [`decide`].
    Verified(Box<Notify>),
    /// Not believed. The decision keeps a prefix, a hash and the reason; the shell counts
    /// it against the sender's rate limit before writing (over it: [`rate_limited`],
    /// nothing written).
    Unverified(Decision<Reply>),
    /// WeChat's own (its signature verified) but not usable here: a resource our APIv3
    /// key does not open, an event this handler does not take. Kept whole, answered with
    /// a failure so WeChat retries once the configuration is fixed; never counted
    /// against the sender's rate limit.
    Refused(Decision<Reply>),
    /// A verified refund notify (REFUND.*, or v2's req_info): for
    /// [`crate::flow::refund::after_notify`].
    Refund(Box<crate::flow::refund::Notice>),
}

/// The wire format of a notify body, told by its content: v2 is an XML document, v3 a
/// JSON envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    V2Xml,
    V3Json,
}

impl Format {
    /// `<…` is v2, `{…` v3 (after leading whitespace); anything else is neither.
    pub fn of(body: &[u8]) -> Option<Format> {
        match body.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'<') => Some(Format::V2Xml),
            Some(b'{') => Some(Format::V3Json),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Format::V2Xml => "a v2 XML notify",
            Format::V3Json => "an APIv3 JSON notify",
        }
    }
}

/// The decision for a body this deployment cannot read at all: neither format, or a
/// format it holds no key for (`expected`: the one it speaks). Kept as a prefix, like
/// any unverified body.
pub fn unreadable(r: &Received<'_>, expected: Format) -> Read {
    let (code, reason) = match Format::of(r.body) {
        None => (
            "NOT_A_NOTIFY",
            format!("neither XML nor JSON: expected {}", expected.name()),
        ),
        Some(found) => (
            "WRONG_NOTIFY_FORMAT",
            format!(
                "{} to a merchant configured for {} (PAY_API): no key here verifies it",
                found.name(),
                expected.name()
            ),
        ),
    };
    Read::Unverified(Decision::new(
        vec![Write::Notification(record(
            r,
            false,
            None,
            Verdict::Rejected,
            format!("{code}: {reason}"),
        ))],
        Reply::fail(400, &format!("rejected: {code}")),
    ))
}

/// Reads an APIv3 notify: `verified` is what checking its `Wechatpay-*` headers over
/// these very bytes gave (the shell ran the RSA check [`WechatKeys::check`] set up), `key`
/// the APIv3 key that opens its resource. Only then is the body kept whole.
///
/// [`WechatKeys::check`]: crate::v3::verify::WechatKeys::check
pub fn read_v3(
    r: &Received<'_>,
    verified: Result<crate::v3::verify::Verified<'_>, &crate::v3::verify::VerifyError>,
    key: &crate::v3::aead::ApiV3Key,
) -> Read {
    use crate::v3::notify::NotifyV3Error;
    let verified = match verified {
        Ok(v) => v,
        Err(e) => {
            let reason = format!("{}: {e}", e.code());
            return Read::Unverified(Decision::new(
                vec![Write::Notification(record(
                    r,
                    false,
                    None,
                    Verdict::Rejected,
                    reason,
                ))],
                Reply::fail(401, &format!("rejected: {}", e.code())),
            ));
        }
    };
    let parsed = crate::v3::notify::parse_envelope(&verified).and_then(|envelope| {
        if crate::v3::refund::is_refund_event(&envelope.event_type) {
            crate::v3::refund::parse_notify(&envelope, key).map(|n| {
                Read::Refund(Box::new(crate::flow::refund::Notice {
                    mchid: n.mchid,
                    state: n.state,
                }))
            })
        } else {
            crate::v3::notify::parse_transaction(&envelope, key)
                .map(|n| Read::Verified(Box::new(n)))
        }
    });
    let e = match parsed {
        Ok(read) => return read,
        Err(e) => e,
    };
    let (status, reason) = match &e {
        // Signed by WeChat yet our key does not open it: the APIv3 key configured is
        // not this merchant's. 500 keeps WeChat retrying until it is fixed.
        NotifyV3Error::Decrypt(_) => (
            500,
            format!(
                "{}: {e} (is WECHAT_PAY_V3_KEY this merchant's APIv3 key?)",
                e.code()
            ),
        ),
        _ => (400, format!("{}: {e}", e.code())),
    };
    Read::Refused(Decision::new(
        vec![Write::Notification(record(
            r,
            true,
            None,
            Verdict::Rejected,
            reason,
        ))],
        Reply::fail(status, &format!("rejected: {}", e.code())),
    ))
}

pub(crate) fn sha256_hex(body: &[u8]) -> String {
    Sha256::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The first `max` bytes of `body` as text, cut on a character boundary.
fn prefix(body: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(max)]);
    let mut s = text.into_owned();
    while s.len() > max {
        s.pop();
    }
    s
}

fn record(
    r: &Received<'_>,
    verified: bool,
    out_trade_no: Option<&str>,
    verdict: Verdict,
    reason: String,
) -> NotificationRecord {
    NotificationRecord {
        received_ms: r.now_ms,
        body: if verified {
            String::from_utf8_lossy(r.body).into_owned()
        } else {
            prefix(r.body, REJECTED_PREFIX_BYTES)
        },
        body_sha256: sha256_hex(r.body),
        body_bytes: r.body.len() as u64,
        verified,
        remote_ip: r.remote_ip.map(str::to_owned),
        out_trade_no: out_trade_no.map(str::to_owned),
        verdict,
        reason,
    }
}

/// Verifies a notify with the merchant's key and configured algorithm.
pub fn read(r: &Received<'_>, key: &str, sign_type: SignType) -> Read {
    // A refund notify carries no sign: its req_info decrypting under our key is the proof.
    if let Ok(params) = xml::parse_xml(r.body)
        && crate::refund_notify::is_refund_notify(&params)
    {
        return match crate::refund_notify::parse(r.body, key) {
            Ok(n) => Read::Refund(Box::new(crate::flow::refund::Notice {
                mchid: n.mch_id,
                state: n.state,
            })),
            Err(e) => {
                let claimed = params
                    .get("out_trade_no")
                    .filter(|no| pay::is_valid_out_trade_no(no))
                    .cloned();
                Read::Unverified(Decision::new(
                    vec![Write::Notification(record(
                        r,
                        false,
                        claimed.as_deref(),
                        Verdict::Rejected,
                        format!("{}: {e}", e.code()),
                    ))],
                    Reply::fail(400, &format!("rejected: {}", e.code())),
                ))
            }
        };
    }
    let e = match notify::parse_notify(r.body, key, sign_type) {
        Ok(n) => return Read::Verified(Box::new(n)),
        Err(e) => e,
    };
    // The order it claims to be about, kept for operators (not trusted).
    let claimed = xml::parse_xml(r.body)
        .ok()
        .and_then(|p| p.get("out_trade_no").cloned())
        .filter(|no| pay::is_valid_out_trade_no(no));
    let reason = format!("{}: {e}", e.code());
    let (verdict, reply) = match e {
        // An unsigned "the payment failed" is harmless to acknowledge: it changes nothing.
        NotifyError::ReturnFail(_) => (Verdict::PaymentFailed, Reply::success()),
        _ => (
            Verdict::Rejected,
            Reply::fail(400, &format!("rejected: {}", e.code())),
        ),
    };
    Read::Unverified(Decision::new(
        vec![Write::Notification(record(
            r,
            false,
            claimed.as_deref(),
            verdict,
            reason,
        ))],
        reply,
    ))
}

/// Who the notify must be from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expect<'a> {
    pub appid: &'a str,
    pub mch_id: &'a str,
}

/// What a verified notify does to the order as read (`None`: we hold no such order),
/// with no settlement fee.
pub fn decide(
    n: &Notify,
    order: Option<&OrderRow>,
    expect: Expect<'_>,
    r: &Received<'_>,
) -> Decision<Reply> {
    decide_with(n, order, expect, r, &Settlement::default())
}

/// [`decide`] under the deployment's settlement rules (a credit takes the platform fee).
pub fn decide_with(
    n: &Notify,
    order: Option<&OrderRow>,
    expect: Expect<'_>,
    r: &Received<'_>,
    settlement: &Settlement,
) -> Decision<Reply> {
    let no = n.out_trade_no.as_str();
    let note =
        |verdict, reason: String| Write::Notification(record(r, true, Some(no), verdict, reason));
    let Some(order) = order else {
        return Decision::new(
            vec![note(Verdict::UnknownOrder, "no such out_trade_no".into())],
            Reply::fail(404, "unknown order"),
        );
    };
    let expected = ExpectedPayment {
        appid: expect.appid,
        mch_id: expect.mch_id,
        out_trade_no: &order.out_trade_no,
        total_fee: order.total_fee,
    };
    if let Err(e) = n.check(&expected) {
        return Decision::new(
            vec![note(Verdict::Rejected, format!("{}: {e}", e.code()))],
            Reply::fail(400, &format!("rejected: {}", e.code())),
        );
    }
    if let Outcome::Failed {
        err_code,
        err_code_des,
    } = &n.outcome
    {
        // The payment did not go through; the order stays payable.
        return Decision::new(
            vec![note(
                Verdict::PaymentFailed,
                format!("{err_code}: {err_code_des}"),
            )],
            Reply::success(),
        );
    }
    let credit = |attention: Option<(Attention, String)>, reason: String| {
        Decision::new(
            vec![
                Write::Order {
                    seen: order.seen(),
                    change: Change::Paid {
                        transaction_id: n.transaction_id.clone(),
                        via: PaidVia::Notify,
                        attention,
                        fee: settlement.fee_of(order.total_fee),
                    },
                    now_ms: r.now_ms,
                },
                note(Verdict::Credited, reason),
            ],
            Reply::success(),
        )
    };
    match order.status {
        OrderStatus::Created | OrderStatus::Prepaid => {
            credit(None, "verified; order is now PAID".into())
        }
        OrderStatus::Closed | OrderStatus::Failed => {
            let why = format!(
                "paid after the order was {} ({}): the money is credited; deliver or refund",
                order.status,
                order.failure.as_deref().unwrap_or("no reason kept")
            );
            credit(Some((Attention::LatePayment, why.clone())), why)
        }
        OrderStatus::Paid | OrderStatus::Withdrawn => {
            if order.transaction_id.as_deref() == Some(n.transaction_id.as_str()) {
                return Decision::new(
                    vec![note(
                        Verdict::Duplicate,
                        "verified; order was already settled".into(),
                    )],
                    Reply::success(),
                );
            }
            let why = format!(
                "a second transaction {} for an order paid by {}",
                n.transaction_id,
                order.transaction_id.as_deref().unwrap_or("?")
            );
            Decision::new(
                vec![
                    Write::Order {
                        seen: order.seen(),
                        change: Change::Mark {
                            attention: Attention::SecondTransaction,
                            note: why.clone(),
                        },
                        now_ms: r.now_ms,
                    },
                    note(Verdict::Conflict, why),
                ],
                Reply::success(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Fen;
    use crate::notify::{PaidNotice, build_paid_notify};
    use crate::pay::Merchant;

    fn merchant() -> Merchant {
        Merchant {
            appid: "wx1".into(),
            mch_id: "1900000109".into(),
            key: "k".repeat(32),
            sign_type: SignType::Md5,
        }
    }

    fn body(tx: &str) -> String {
        build_paid_notify(
            &merchant(),
            &PaidNotice {
                out_trade_no: "T1",
                transaction_id: tx,
                total_fee: Fen::new(100),
                openid: "o1",
                time_end: "20260101000000",
                nonce_str: "n",
                include_sign_type: false,
            },
        )
        .unwrap()
    }

    fn order(status: OrderStatus, tx: Option<&str>) -> OrderRow {
        OrderRow {
            version: 1,
            transaction_id: tx.map(Into::into),
            paid_ms: tx.map(|_| 1),
            failure: Some("NOTPAY past the prepay life".into()),
            ..crate::order::test_row(status)
        }
    }

    const EXPECT: Expect<'static> = Expect {
        appid: "wx1",
        mch_id: "1900000109",
    };

    fn verified(b: &[u8]) -> Notify {
        let m = merchant();
        match read(
            &Received {
                body: b,
                remote_ip: None,
                now_ms: 1,
            },
            &m.key,
            m.sign_type,
        ) {
            Read::Verified(n) => *n,
            Read::Unverified(d) | Read::Refused(d) => panic!("{d:?}"),
            Read::Refund(n) => panic!("{n:?}"),
        }
    }

    #[test]
    fn junk_keeps_a_prefix_and_its_hash_never_the_body() {
        let junk = vec![b'x'; 64 * 1024];
        let r = Received {
            body: &junk,
            remote_ip: Some("1.2.3.4"),
            now_ms: 1,
        };
        let Read::Unverified(d) = read(&r, "k", SignType::Md5) else {
            panic!("junk verified")
        };
        let Write::Notification(n) = &d.writes[0] else {
            panic!()
        };
        assert_eq!(n.body.len(), REJECTED_PREFIX_BYTES);
        assert_eq!(n.body_bytes, 64 * 1024);
        assert_eq!(n.body_sha256.len(), 64);
        assert!(!n.verified);
        assert_eq!(d.reply.status, 400);
        // A multi-byte character straddling the cut is dropped, not split.
        assert_eq!(prefix("aé".as_bytes(), 2), "a");
    }

    #[test]
    fn a_verified_payment_is_credited_even_for_an_ended_order() {
        let b = body("42");
        let n = verified(b.as_bytes());
        let r = Received {
            body: b.as_bytes(),
            remote_ip: None,
            now_ms: 5,
        };
        for status in [OrderStatus::Closed, OrderStatus::Failed] {
            let d = decide(&n, Some(&order(status, None)), EXPECT, &r);
            let Write::Order {
                change: Change::Paid { attention, .. },
                ..
            } = &d.writes[0]
            else {
                panic!("{d:?}")
            };
            assert_eq!(
                attention.as_ref().map(|a| a.0),
                Some(Attention::LatePayment)
            );
            assert!(d.reply.is_success());
        }
        let open = decide(&n, Some(&order(OrderStatus::Prepaid, None)), EXPECT, &r);
        assert!(matches!(
            open.writes[0],
            Write::Order {
                change: Change::Paid {
                    attention: None,
                    ..
                },
                ..
            }
        ));
        assert!(open.batch().unwrap().guard.is_some());
    }

    #[test]
    fn duplicates_second_transactions_and_unknown_orders() {
        let b = body("42");
        let n = verified(b.as_bytes());
        let r = Received {
            body: b.as_bytes(),
            remote_ip: None,
            now_ms: 5,
        };
        let dup = decide(&n, Some(&order(OrderStatus::Paid, Some("42"))), EXPECT, &r);
        assert_eq!(dup.writes.len(), 1);
        assert!(dup.reply.is_success());
        let second = decide(
            &n,
            Some(&order(OrderStatus::Withdrawn, Some("41"))),
            EXPECT,
            &r,
        );
        assert!(matches!(
            second.writes[0],
            Write::Order {
                change: Change::Mark {
                    attention: Attention::SecondTransaction,
                    ..
                },
                ..
            }
        ));
        let unknown = decide(&n, None, EXPECT, &r);
        assert_eq!(unknown.reply.status, 404);
        let other = decide(
            &n,
            Some(&order(OrderStatus::Prepaid, None)),
            Expect {
                appid: "wx2",
                mch_id: "1900000109",
            },
            &r,
        );
        assert_eq!(other.reply.status, 400);
    }
}
