//! # wxedge-core
//!
//! Every rule of WeChat mini-program login, user-data decryption and WeChat Pay v2,
//! written once and shared by the Cloudflare Worker, the `wxsim` simulator and the npm
//! package.
//!
//! The crate is *sans-IO*: it builds requests and judges answers, but never opens a
//! socket, sleeps, or reads a clock. Callers hand it the bytes they received and the time
//! they observed; it hands back the bytes to send. Randomness is the one exception, and it
//! enters at a single named edge, [`random`], from the operating system's CSPRNG.
//!
//! | module | what it holds |
//! |---|---|
//! | [`money`] | [`Fen`], the only money type: integer fen, checked arithmetic |
//! | [`sign`] | the v2 signature (MD5 / HMAC-SHA256) and its constant-time check |
//! | [`explain`] | "签名错误" diagnosis: which known mistake explains a mismatch |
//! | [`xml`] | WeChat's flat `<xml>` maps, written as CDATA, parsed strictly |
//! | [`crypt`] | `wx.getUserInfo` payloads: AES-128-CBC, PKCS#7, watermark, rawData |
//! | [`ledger`] | order states, balances, the no-fen-lost invariant |
//! | [`order`] | the order row as flows read it, the guard of a write, operator marks |
//! | [`flow`] | every money flow as a pure decision: pay, notify, reconcile, withdraw |
//! | [`store`] | the SQL of every decision's writes and reads, for D1 and SQLite |
//! | [`login`] | `jscode2session`: the request and its answer, errcodes typed |
//! | [`pay`] | unifiedorder, wx.requestPayment params, orderquery, closeorder |
//! | [`notify`] | the payment notify: verify, check against the order, reply |
//! | [`answer`] | WeChat's side: judging a merchant's request, writing WeChat's answers |
//! | [`auth`] | the admin token check, merchant API keys and their stored hash |
//! | [`session`] | login sessions: storage keys (a hash of the token), the record, validity and sliding refresh |
//! | [`v3`] | WeChat Pay APIv3: request signing, answer/notify verification, GCM, JSAPI |
//! | [`random`] | nonce_str, out_trade_no, session tokens from getrandom |

pub mod answer;
pub mod auth;
pub mod bill;
pub mod crypt;
pub mod error;
pub mod explain;
pub mod flow;
mod json;
pub mod ledger;
pub mod login;
pub mod money;
pub mod notify;
pub mod order;
pub mod pay;
pub mod random;
pub mod refund;
pub mod refund_notify;
pub mod session;
pub mod sign;
pub mod store;
pub mod v3;
pub mod xml;

pub use error::{ALL_CODES, ErrorCode};
pub use money::Fen;
pub use sign::SignType;

/// A flat WeChat parameter map. A `BTreeMap` keeps keys in byte order, which is exactly
/// the order the v2 signature needs, so signing never has to sort.
pub type Params = std::collections::BTreeMap<String, String>;
