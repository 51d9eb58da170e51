//! What the worker is told by `wrangler.toml` `[vars]` and its secrets (`.dev.vars`
//! locally, `wrangler secret put` in production). Read once per isolate: bindings are
//! fixed for the life of a deployment (a new one starts new isolates), and reading eleven
//! of them costs eleven trips across the JS boundary on every request otherwise.

use std::cell::RefCell;
use std::rc::Rc;

use worker::Env;
use wxedge_core::SignType;
use wxedge_core::pay::Merchant;
use wxedge_core::reconcile::Policy;
use wxedge_core::session;

use crate::api::ApiError;

pub struct Config {
    pub appid: String,
    pub mch_id: String,
    pub app_secret: String,
    pub pay_key: String,
    pub sign_type: SignType,
    pub api_base: String,
    pub pay_base: String,
    pub public_base_url: String,
    pub session_ttl_secs: u64,
    /// `fixed`: a session ends TTL after login. `sliding`: a session in use is extended
    /// to a full TTL whenever less than half of it is left (one KV write per TTL/2 at most,
    /// within KV's one-write-per-second-per-key limit).
    pub session_sliding: bool,
    /// Sliding mode: the longest a session lives from login, however busy
    /// (`SESSION_MAX_SECS`, default 30 days, at least `SESSION_TTL_SECS`).
    pub session_max_secs: u64,
    pub max_pay_fen: u64,
    pub wechat_timeout_ms: u64,
    /// Empty when unset: the admin routes then refuse everyone.
    pub admin_token: String,
    pub reconcile: Policy,
    /// How many open orders one reconciler run asks WeChat about (each costs one or two
    /// subrequests; a Worker invocation may make 50 on the free plan).
    pub reconcile_batch: u64,
}

fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .ok()
        .map(|v| v.to_string())
        .filter(|v| !v.is_empty())
}

fn required(env: &Env, name: &str) -> Result<String, ApiError> {
    var(env, name).ok_or_else(|| {
        ApiError::internal(format!(
            "server misconfigured: {name} is not set (wrangler.toml [vars], .dev.vars or `wrangler secret put {name}`)"
        ))
    })
}

fn number(env: &Env, name: &str, default: u64, min: u64) -> Result<u64, ApiError> {
    match var(env, name) {
        None => Ok(default),
        Some(v) => v.parse::<u64>().ok().filter(|n| *n >= min).ok_or_else(|| {
            ApiError::internal(format!(
                "server misconfigured: {name} is {v:?}, expected a whole number ≥ {min}"
            ))
        }),
    }
}

thread_local! {
    static CACHED: RefCell<Option<Rc<Config>>> = const { RefCell::new(None) };
}

impl Config {
    /// The configuration, read from `env` the first time (a misconfiguration is not
    /// cached: it is reported on every request until fixed).
    pub fn from_env(env: &Env) -> Result<Rc<Config>, ApiError> {
        if let Some(c) = CACHED.with(|c| c.borrow().clone()) {
            return Ok(c);
        }
        let config = Config::read(env)?;
        config.check()?;
        let config = Rc::new(config);
        CACHED.with(|c| *c.borrow_mut() = Some(Rc::clone(&config)));
        Ok(config)
    }

    fn read(env: &Env) -> Result<Config, ApiError> {
        let sign_type = match var(env, "SIGN_TYPE") {
            None => SignType::Md5,
            Some(s) => s.parse().map_err(|_| {
                ApiError::internal(format!(
                    "server misconfigured: SIGN_TYPE is {s:?}, use MD5 or HMAC-SHA256"
                ))
            })?,
        };
        Ok(Config {
            appid: required(env, "WECHAT_APPID")?,
            mch_id: required(env, "WECHAT_MCH_ID")?,
            app_secret: required(env, "WECHAT_APP_SECRET")?,
            pay_key: required(env, "WECHAT_PAY_KEY")?,
            sign_type,
            api_base: var(env, "WECHAT_API_BASE")
                .unwrap_or_else(|| "https://api.weixin.qq.com".into()),
            pay_base: var(env, "WECHAT_PAY_BASE")
                .unwrap_or_else(|| "https://api.mch.weixin.qq.com".into()),
            public_base_url: required(env, "PUBLIC_BASE_URL")?,
            // KV refuses expirations under 60 s.
            session_ttl_secs: number(env, "SESSION_TTL_SECS", 7200, 60)?,
            session_sliding: match var(env, "SESSION_TTL_MODE").as_deref() {
                None | Some("fixed") => false,
                Some("sliding") => true,
                Some(other) => {
                    return Err(ApiError::internal(format!(
                        "server misconfigured: SESSION_TTL_MODE is {other:?}, use fixed or sliding"
                    )));
                }
            },
            session_max_secs: number(env, "SESSION_MAX_SECS", 30 * 86400, 60)?,
            max_pay_fen: number(env, "MAX_PAY_FEN", 10_000_000, 1)?,
            wechat_timeout_ms: number(env, "WECHAT_TIMEOUT_MS", 5000, 100)?,
            admin_token: var(env, "ADMIN_TOKEN").unwrap_or_default(),
            reconcile: Policy {
                grace_ms: number(env, "RECONCILE_GRACE_SECS", 600, 0)? * 1000,
                close_after_ms: number(env, "RECONCILE_CLOSE_AFTER_SECS", 7200, 1)? * 1000,
            },
            reconcile_batch: number(env, "RECONCILE_BATCH", 20, 1)?,
        })
    }

    /// Refuses settings that read fine but must not serve: a session cap below the TTL.
    fn check(&self) -> Result<(), ApiError> {
        if self.session_max_secs < self.session_ttl_secs {
            return Err(ApiError::internal(
                "server misconfigured: SESSION_MAX_SECS is below SESSION_TTL_SECS; make it at least as long",
            ));
        }
        Ok(())
    }

    /// The session rules (`wxedge_core::session`) this deployment runs.
    pub fn session_policy(&self) -> session::Policy {
        session::Policy {
            ttl_secs: self.session_ttl_secs,
            sliding: self.session_sliding,
            max_secs: self.session_max_secs,
        }
    }

    pub fn merchant(&self) -> Merchant {
        Merchant {
            appid: self.appid.clone(),
            mch_id: self.mch_id.clone(),
            key: self.pay_key.clone(),
            sign_type: self.sign_type,
        }
    }

    /// Where WeChat POSTs the notify: `PUBLIC_BASE_URL` + `/notify/`.
    pub fn notify_url(&self) -> String {
        format!("{}/notify/", self.public_base_url.trim_end_matches('/'))
    }

    pub fn pay_url(&self, call: &str) -> String {
        format!("{}/pay/{call}", self.pay_base.trim_end_matches('/'))
    }
}
