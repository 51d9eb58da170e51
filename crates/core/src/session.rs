//! Login sessions: where a token's session is stored, what is stored, and whether it is
//! still good at a given instant. The worker keeps the two keys in KV and executes what
//! [`Policy::judge`] decides; it hands in the time it observed.
//!
//! Three rules, each closing a hole a plain "token → session, re-put on use" store has:
//!
//! - **Keys are a hash of the token, never the token.** [`Keys::of`] gives
//!   `session:` + hex SHA-256 of the token (and `seen:` + the same hash). Anyone who can
//!   list the KV namespace (an operator, a leaked API token, a dashboard screenshot) sees
//!   keys that open nothing. Tokens are 256 random bits, so a fast unsalted hash suffices,
//!   as for merchant API keys ([`crate::auth`]).
//! - **The stored expiry is checked.** A record says when it ends ([`Record::expires_ms`]);
//!   KV's own expiration is a clean-up, not the rule (it is coarse, at least 60 s, and a
//!   record may have been written with a longer one).
//! - **The record is written once, at login, and never again.** Sliding activity lives in
//!   a separate key (`seen:`) that holds only "in use until"; a refresh rewrites that key
//!   alone. So a refresh racing a logout (which deletes the record) can at worst leave an
//!   orphaned `seen:` key behind, which opens nothing: a logged-out session never comes
//!   back. A sliding session also ends at an absolute cap ([`Policy::max_secs`]), however
//!   busy.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::json::{self, Object};
use crate::random;

/// Why a token has no usable session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("token is not one this server issued: log in again (wx.login → /login/)")]
    NotOurs,
    #[error("token unknown or expired: log in again (wx.login → /login/)")]
    Unknown,
    #[error("token expired: log in again (wx.login → /login/)")]
    Expired,
    #[error("token expired after being idle: log in again (wx.login → /login/)")]
    Idle,
    /// The stored record does not parse: written by something else, or corrupted. Its
    /// content is not repeated here (it holds a session_key).
    #[error("the stored session is unreadable")]
    Unreadable,
}

/// The two storage keys of one token's session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// The [`Record`], written at login, deleted at logout.
    pub record: String,
    /// Sliding mode only: until when the session is in use (ms since the epoch, as text).
    pub seen: String,
}

impl Keys {
    /// The keys of `token`, or [`SessionError::NotOurs`] for anything not shaped like a
    /// token we issue (refused before storage is asked).
    pub fn of(token: &str) -> Result<Keys, SessionError> {
        if !random::is_token_shaped(token) {
            return Err(SessionError::NotOurs);
        }
        let digest = Sha256::digest(token.as_bytes());
        let mut hash = String::with_capacity(64);
        for b in digest {
            hash.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
            hash.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
        }
        Ok(Keys {
            record: format!("session:{hash}"),
            seen: format!("seen:{hash}"),
        })
    }
}

/// What a session holds. Written once, at login; read back by [`Record::from_json`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Record {
    pub openid: String,
    pub session_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unionid: Option<String>,
    pub login_ms: u64,
    /// When the session ends whatever happens: login + TTL (fixed), login + the cap
    /// (sliding). A record without it (0) is expired.
    pub expires_ms: u64,
    /// Whether the session also needs its `seen:` key. Stored so a change of
    /// `SESSION_TTL_MODE` applies to new logins and cannot stretch existing sessions (a
    /// sliding record judged as fixed would live to the cap).
    pub sliding: bool,
}

impl Record {
    /// Reads a stored record (`unionid`, `expires_ms` and `sliding` may be left out).
    pub fn from_json(text: &str) -> Option<Record> {
        let fields = json::object(text.as_bytes()).ok()?;
        let r = Object::new(&fields, "");
        let read = || -> Result<Record, String> {
            Ok(Record {
                openid: r.string("openid")?,
                session_key: r.string("session_key")?,
                unionid: r.opt_string("unionid")?,
                login_ms: r.u64("login_ms")?,
                expires_ms: r.opt_u64("expires_ms")?.unwrap_or(0),
                sliding: r.bool_or_false("sliding")?,
            })
        };
        read().ok()
    }
}

/// A write the shell makes: `value` under a key, expiring from storage after `ttl_secs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Put {
    pub value: String,
    pub ttl_secs: u64,
}

/// KV refuses expirations under 60 s.
const MIN_STORE_TTL_SECS: u64 = 60;

/// The session rules for one deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Fixed: the session's life from login. Sliding: how long it lives unused.
    pub ttl_secs: u64,
    pub sliding: bool,
    /// Sliding only: the longest a session lives from login, in use or not.
    pub max_secs: u64,
}

/// A usable session, and the activity write (sliding mode) the shell should make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Valid {
    pub record: Record,
    /// `Some` when the session is sliding and less than half its idle TTL is left: write
    /// it under [`Keys::seen`]. At most one write per half TTL per session, well within
    /// KV's one write per second per key.
    pub refresh_seen: Option<Put>,
}

impl Policy {
    /// The record to write at login, and the `seen:` write that goes with it in sliding
    /// mode. The record's storage TTL ends with its stored expiry.
    pub fn login(
        &self,
        openid: String,
        session_key: String,
        unionid: Option<String>,
        now_ms: u64,
    ) -> (Put, Option<Put>) {
        let life_secs = if self.sliding {
            self.max_secs
        } else {
            self.ttl_secs
        };
        let record = Record {
            openid,
            session_key,
            unionid,
            login_ms: now_ms,
            expires_ms: now_ms.saturating_add(life_secs.saturating_mul(1000)),
            sliding: self.sliding,
        };
        // Serializing a struct of strings and integers cannot fail.
        let value = serde_json::to_string(&record).unwrap_or_default();
        let put = Put {
            value,
            ttl_secs: life_secs.max(MIN_STORE_TTL_SECS),
        };
        let seen = self.sliding.then(|| self.seen(&record, now_ms));
        (put, seen)
    }

    /// "In use until": a full idle TTL from now, never past the record's end.
    fn seen(&self, record: &Record, now_ms: u64) -> Put {
        let until = now_ms
            .saturating_add(self.ttl_secs.saturating_mul(1000))
            .min(record.expires_ms);
        Put {
            value: until.to_string(),
            ttl_secs: self.ttl_secs.max(MIN_STORE_TTL_SECS),
        }
    }

    /// Whether a session is usable at `now_ms`, from what storage holds: the record's
    /// text under [`Keys::record`] and, for a sliding record, the text under
    /// [`Keys::seen`] (`None` when absent). The record is never to be rewritten here.
    pub fn judge(
        &self,
        record: Option<&str>,
        seen: Option<&str>,
        now_ms: u64,
    ) -> Result<Valid, SessionError> {
        let text = record.ok_or(SessionError::Unknown)?;
        let record = Record::from_json(text).ok_or(SessionError::Unreadable)?;
        if record.expires_ms <= now_ms {
            return Err(SessionError::Expired);
        }
        if !record.sliding {
            return Ok(Valid {
                record,
                refresh_seen: None,
            });
        }
        // An unreadable activity value is as good as none: the session is idle.
        let until = seen
            .and_then(|s| s.trim().parse::<u64>().ok())
            .ok_or(SessionError::Idle)?;
        if until <= now_ms {
            return Err(SessionError::Idle);
        }
        let half_ms = self.ttl_secs.saturating_mul(1000) / 2;
        let refresh_seen = (until - now_ms < half_ms && until < record.expires_ms)
            .then(|| self.seen(&record, now_ms));
        Ok(Valid {
            record,
            refresh_seen,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000_000;
    const FIXED: Policy = Policy {
        ttl_secs: 7200,
        sliding: false,
        max_secs: 30 * 86400,
    };
    const SLIDING: Policy = Policy {
        ttl_secs: 600,
        sliding: true,
        max_secs: 3600,
    };

    fn token() -> String {
        random::token().unwrap()
    }

    fn login(p: &Policy) -> (String, Option<String>) {
        let (record, seen) = p.login("oUser".into(), "a2V5".into(), None, T0);
        (record.value, seen.map(|s| s.value))
    }

    #[test]
    fn keys_hash_the_token_and_never_contain_it() {
        let t = token();
        let k = Keys::of(&t).unwrap();
        assert!(!k.record.contains(&t) && !k.seen.contains(&t));
        assert_eq!(k.record.len(), "session:".len() + 64);
        assert_eq!(k.record["session:".len()..], k.seen["seen:".len()..]);
        assert_eq!(
            Keys::of(&t).unwrap(),
            k,
            "the same token gives the same keys"
        );
        assert_ne!(Keys::of(&token()).unwrap(), k);
        // SHA-256 of 43 'A's, from `printf %s AAA…A | sha256sum`.
        assert_eq!(
            Keys::of(&"A".repeat(43)).unwrap().record,
            "session:0f007385b6f9d4b7eeb2748605afe1a984a0a3bfa3f014d09e2a784ce9e5cd1a"
        );
    }

    #[test]
    fn anything_not_token_shaped_is_refused_before_storage() {
        for bad in [
            "",
            "short",
            &"+".repeat(43),
            &format!("{}=", "A".repeat(42)),
        ] {
            assert_eq!(Keys::of(bad), Err(SessionError::NotOurs), "{bad}");
        }
    }

    #[test]
    fn a_fixed_session_ends_at_its_stored_expiry_whatever_storage_still_holds() {
        let (record, seen) = login(&FIXED);
        assert_eq!(seen, None, "fixed sessions keep no activity key");
        let end = T0 + 7200 * 1000;
        let ok = FIXED.judge(Some(&record), None, end - 1).unwrap();
        assert_eq!(ok.record.openid, "oUser");
        assert_eq!(ok.refresh_seen, None, "a fixed session is never refreshed");
        assert_eq!(
            FIXED.judge(Some(&record), None, end),
            Err(SessionError::Expired)
        );
        assert_eq!(FIXED.judge(None, None, T0), Err(SessionError::Unknown));
    }

    #[test]
    fn records_without_an_expiry_or_unreadable_are_refused() {
        let old = r#"{"openid":"o","session_key":"k","login_ms":1}"#;
        assert_eq!(FIXED.judge(Some(old), None, T0), Err(SessionError::Expired));
        for bad in ["", "not json", "[]", r#"{"openid":1}"#] {
            assert_eq!(
                FIXED.judge(Some(bad), None, T0),
                Err(SessionError::Unreadable)
            );
        }
    }

    #[test]
    fn the_record_is_stored_for_as_long_as_it_can_be_valid() {
        let (fixed, _) = FIXED.login("o".into(), "k".into(), None, T0);
        assert_eq!(fixed.ttl_secs, 7200);
        let (sliding, seen) = SLIDING.login("o".into(), "k".into(), None, T0);
        assert_eq!(sliding.ttl_secs, 3600, "a sliding record lives to the cap");
        assert_eq!(seen.unwrap().ttl_secs, 600);
        let short = Policy {
            ttl_secs: 10,
            sliding: false,
            max_secs: 10,
        };
        assert_eq!(short.login("o".into(), "k".into(), None, T0).0.ttl_secs, 60);
    }

    #[test]
    fn a_sliding_session_needs_its_activity_key_and_is_refreshed_past_half_its_ttl() {
        let (record, seen) = login(&SLIDING);
        let seen = seen.unwrap();
        assert_eq!(seen, (T0 + 600_000).to_string());
        // Fresh: usable, no write.
        let v = SLIDING
            .judge(Some(&record), Some(&seen), T0 + 1000)
            .unwrap();
        assert_eq!(v.refresh_seen, None);
        // Less than half left: usable, and the activity key moves a full TTL on.
        let now = T0 + 301_000;
        let v = SLIDING.judge(Some(&record), Some(&seen), now).unwrap();
        let put = v.refresh_seen.unwrap();
        assert_eq!(put.value, (now + 600_000).to_string());
        assert_eq!(put.ttl_secs, 600);
        // Idle past the TTL, or no activity key at all: refused.
        assert_eq!(
            SLIDING.judge(Some(&record), Some(&seen), T0 + 600_000),
            Err(SessionError::Idle)
        );
        assert_eq!(
            SLIDING.judge(Some(&record), None, T0),
            Err(SessionError::Idle)
        );
        assert_eq!(
            SLIDING.judge(Some(&record), Some("soon"), T0),
            Err(SessionError::Idle)
        );
    }

    #[test]
    fn a_sliding_session_in_constant_use_still_ends_at_the_cap() {
        let (record, seen) = login(&SLIDING);
        let mut seen = seen.unwrap();
        let mut now = T0;
        let cap = T0 + 3600 * 1000;
        while now < cap {
            let v = SLIDING.judge(Some(&record), Some(&seen), now).unwrap();
            if let Some(put) = v.refresh_seen {
                assert!(
                    put.value.parse::<u64>().unwrap() <= cap,
                    "never past the cap"
                );
                seen = put.value;
            }
            now += 60_000;
        }
        assert_eq!(
            SLIDING.judge(Some(&record), Some(&seen), cap),
            Err(SessionError::Expired)
        );
    }

    #[test]
    fn a_refresh_landing_after_a_logout_revives_nothing() {
        // The interleaving that resurrected sessions: judge (before the logout), the
        // logout deletes the record, then the refresh is written.
        let (record, seen) = login(&SLIDING);
        let now = T0 + 400_000;
        let v = SLIDING
            .judge(Some(&record), Some(&seen.unwrap()), now)
            .unwrap();
        let late_write = v.refresh_seen.unwrap();
        // After the logout storage holds no record, only the late activity write.
        assert_eq!(
            SLIDING.judge(None, Some(&late_write.value), now + 1),
            Err(SessionError::Unknown)
        );
    }

    #[test]
    fn the_mode_at_login_decides_not_the_mode_now() {
        let (sliding_record, _) = login(&SLIDING);
        // Switched to fixed: the sliding session still needs its activity key, so it
        // cannot live to the cap unused.
        assert_eq!(
            FIXED.judge(Some(&sliding_record), None, T0 + 1),
            Err(SessionError::Idle)
        );
        let (fixed_record, _) = login(&FIXED);
        // Switched to sliding: the fixed session keeps its fixed end.
        assert!(SLIDING.judge(Some(&fixed_record), None, T0 + 1).is_ok());
    }
}
