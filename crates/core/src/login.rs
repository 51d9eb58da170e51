//! Mini-program login: `wx.login`'s code → `jscode2session` → `openid` + `session_key`.
//!
//! The worker sends the request this module builds and hands back the body it received;
//! the simulator answers with the same types. WeChat's errcodes become a typed
//! [`WeChatLoginError`] so callers can tell "ask the user to log in again" (40029,
//! 40163) from "back off" (45011, -1).

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::ErrorCode;

/// The longest js_code we pass on; WeChat's are 32 characters.
pub const MAX_JS_CODE_LEN: usize = 128;

/// The jscode2session errcodes WeChat documents, named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeChatLoginError {
    /// -1: system busy; retry later.
    SystemBusy,
    /// 40029: invalid code (expired, forged, or for another appid).
    InvalidCode,
    /// 40163: code already used.
    CodeUsed,
    /// 40226: high-risk user, login refused.
    HighRiskUser,
    /// 45011: rate limited (100 calls a minute per user).
    RateLimited,
    /// 40013: invalid appid.
    InvalidAppid,
    /// 40125: invalid app secret.
    InvalidSecret,
    /// Any other errcode.
    Other,
}

impl WeChatLoginError {
    pub fn from_errcode(errcode: i64) -> Self {
        match errcode {
            -1 => Self::SystemBusy,
            40029 => Self::InvalidCode,
            40163 => Self::CodeUsed,
            40226 => Self::HighRiskUser,
            45011 => Self::RateLimited,
            40013 => Self::InvalidAppid,
            40125 => Self::InvalidSecret,
            _ => Self::Other,
        }
    }

    /// Whether the same call may succeed later without a new code.
    pub fn is_transient(self) -> bool {
        matches!(self, Self::SystemBusy | Self::RateLimited)
    }
}

/// Why a login did not yield a session.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LoginError {
    #[error("js_code is empty: pass the code wx.login gave")]
    EmptyCode,
    #[error("js_code is {0} bytes; wx.login codes are short ASCII strings")]
    BadCode(usize),
    #[error("WeChat jscode2session answered errcode {errcode}: {errmsg}")]
    WeChat {
        errcode: i64,
        errmsg: String,
        kind: WeChatLoginError,
    },
    #[error("jscode2session answer is not the JSON WeChat documents: {0}")]
    Malformed(String),
    #[error("jscode2session answer lacks {0}")]
    MissingField(&'static str),
    #[error("jscode2session session_key is not 16 bytes of base64")]
    BadSessionKey,
}

impl ErrorCode for LoginError {
    fn code(&self) -> &'static str {
        match self {
            LoginError::EmptyCode | LoginError::BadCode(_) => "BAD_JS_CODE",
            LoginError::WeChat { .. } => "WECHAT_ERROR",
            LoginError::Malformed(_) | LoginError::MissingField(_) | LoginError::BadSessionKey => {
                "WECHAT_MALFORMED_ANSWER"
            }
        }
    }
}

/// What jscode2session gives for one user of one mini-program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub openid: String,
    pub session_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unionid: Option<String>,
}

/// Checks a `js_code` before it goes anywhere.
pub fn check_js_code(js_code: &str) -> Result<(), LoginError> {
    if js_code.is_empty() {
        return Err(LoginError::EmptyCode);
    }
    if js_code.len() > MAX_JS_CODE_LEN || !js_code.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(LoginError::BadCode(js_code.len()));
    }
    Ok(())
}

/// The GET URL of jscode2session under `api_base` (e.g. `https://api.weixin.qq.com` or
/// the simulator). It carries the AppSecret: never log it.
pub fn code2session_url(
    api_base: &str,
    appid: &str,
    secret: &str,
    js_code: &str,
) -> Result<String, LoginError> {
    check_js_code(js_code)?;
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("appid", appid)
        .append_pair("secret", secret)
        .append_pair("js_code", js_code)
        .append_pair("grant_type", "authorization_code")
        .finish();
    Ok(format!(
        "{}/sns/jscode2session?{query}",
        api_base.trim_end_matches('/')
    ))
}

#[derive(Deserialize)]
struct RawAnswer {
    #[serde(default)]
    errcode: i64,
    #[serde(default)]
    errmsg: String,
    openid: Option<String>,
    session_key: Option<String>,
    unionid: Option<String>,
}

/// Judges jscode2session's JSON answer. WeChat may send `errcode: 0` with a success,
/// and sends `text/plain` as the content type, so only the body is looked at.
pub fn parse_code2session(body: &[u8]) -> Result<Session, LoginError> {
    let raw: RawAnswer =
        serde_json::from_slice(body).map_err(|e| LoginError::Malformed(e.to_string()))?;
    if raw.errcode != 0 {
        return Err(LoginError::WeChat {
            errcode: raw.errcode,
            kind: WeChatLoginError::from_errcode(raw.errcode),
            errmsg: raw.errmsg,
        });
    }
    let openid = raw
        .openid
        .filter(|s| !s.is_empty())
        .ok_or(LoginError::MissingField("openid"))?;
    let session_key = raw
        .session_key
        .filter(|s| !s.is_empty())
        .ok_or(LoginError::MissingField("session_key"))?;
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&session_key)
        .map_err(|_| LoginError::BadSessionKey)?;
    if decoded.len() != 16 {
        return Err(LoginError::BadSessionKey);
    }
    Ok(Session {
        openid,
        session_key,
        unionid: raw.unionid.filter(|s| !s.is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encodes_every_part() {
        let url = code2session_url("http://127.0.0.1:9100/", "wx1", "s&x=1", "0a1+b").unwrap();
        assert_eq!(
            url,
            "http://127.0.0.1:9100/sns/jscode2session?appid=wx1&secret=s%26x%3D1&js_code=0a1%2Bb&grant_type=authorization_code"
        );
        assert_eq!(
            code2session_url("x", "a", "s", ""),
            Err(LoginError::EmptyCode)
        );
        assert!(matches!(
            code2session_url("x", "a", "s", "a b"),
            Err(LoginError::BadCode(_))
        ));
    }

    #[test]
    fn parses_success_and_each_errcode() {
        let ok = parse_code2session(
            br#"{"openid":"o1","session_key":"tiihtNczf5v6AKRyjwEUhQ==","errcode":0}"#,
        )
        .unwrap();
        assert_eq!(ok.openid, "o1");
        assert_eq!(ok.unionid, None);
        for (code, kind) in [
            (40029, WeChatLoginError::InvalidCode),
            (40163, WeChatLoginError::CodeUsed),
            (40226, WeChatLoginError::HighRiskUser),
            (45011, WeChatLoginError::RateLimited),
            (-1, WeChatLoginError::SystemBusy),
            (40013, WeChatLoginError::InvalidAppid),
            (40125, WeChatLoginError::InvalidSecret),
            (12345, WeChatLoginError::Other),
        ] {
            let body = format!(r#"{{"errcode":{code},"errmsg":"m"}}"#);
            match parse_code2session(body.as_bytes()) {
                Err(LoginError::WeChat {
                    errcode, kind: k, ..
                }) => {
                    assert_eq!((errcode, k), (code, kind));
                }
                other => panic!("{code}: {other:?}"),
            }
        }
        assert!(WeChatLoginError::RateLimited.is_transient());
        assert!(!WeChatLoginError::CodeUsed.is_transient());
    }

    #[test]
    fn rejects_answers_that_are_not_wechats() {
        assert!(matches!(
            parse_code2session(b"<html>"),
            Err(LoginError::Malformed(_))
        ));
        assert_eq!(
            parse_code2session(br#"{"session_key":"tiihtNczf5v6AKRyjwEUhQ=="}"#),
            Err(LoginError::MissingField("openid"))
        );
        assert_eq!(
            parse_code2session(br#"{"openid":"o"}"#),
            Err(LoginError::MissingField("session_key"))
        );
        assert_eq!(
            parse_code2session(br#"{"openid":"o","session_key":"AAAA"}"#),
            Err(LoginError::BadSessionKey)
        );
    }
}
