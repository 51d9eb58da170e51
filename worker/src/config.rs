//! What the worker is told by `wrangler.toml` `[vars]` and its secrets (`.dev.vars`
//! locally, `wrangler secret put` in production). Read once per isolate: bindings are
//! fixed for the life of a deployment (a new one starts new isolates), and reading eleven
//! of them costs eleven trips across the JS boundary on every request otherwise.

use std::cell::RefCell;
use std::rc::Rc;

use serde_json::json;
use worker::Env;
use wxedge_core::SignType;
use wxedge_core::flow::reconcile::Policy;
use wxedge_core::pay::Merchant;
use wxedge_core::session;
use wxedge_core::v3::aead::ApiV3Key;
use wxedge_core::v3::pem;
use wxedge_core::v3::verify::WechatKeys;

use crate::api::ApiError;

pub struct Config {
    /// `CONFIG_MODE`: strict (the default) refuses to serve with placeholder or unsafe
    /// settings; `local` (scripts/dev, the e2e stacks) allows them.
    pub config_mode: ConfigMode,
    pub appid: String,
    pub mch_id: String,
    pub app_secret: String,
    /// `PAY_API`: which WeChat Pay API places, queries and closes orders.
    pub pay_api: PayApi,
    /// The v2 API key. Required for `PAY_API=v2`; optional for v3, where it is kept only
    /// so v2 XML notifies of orders placed before a switch still verify (empty: unset).
    pub pay_key: String,
    /// APIv3's credentials (`PAY_API=v3` only).
    pub v3: Option<V3>,
    /// When the cron fetches the daily bill (`BILL_FETCH` on/off, `BILL_READY_AFTER_SECS`
    /// after Beijing midnight, `BILL_RETRY_SECS`).
    pub bill: wxedge_core::flow::bill::Policy,
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
    /// The reconciler: grace, close-after, backoff, and how many due orders one run asks
    /// WeChat about (each costs one or two subrequests; a Worker invocation may make 50 on
    /// the free plan, 1000 on the paid one).
    pub reconcile: Policy,
    /// How long unverified notifies (a 512-byte prefix, a hash and the reason) are kept
    /// before the cron deletes them.
    pub notify_rejected_retention_ms: u64,
}

/// `PAY_API`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayApi {
    V2,
    V3,
}

/// What APIv3 needs, read from the secrets and checked once per isolate (a PEM that does
/// not parse is named at the first request, never at the first payment). Debug prints no
/// key material.
pub struct V3 {
    /// `WECHAT_PAY_V3_SERIAL`: the merchant API certificate's serial (`serial_no`).
    pub serial_no: String,
    /// `WECHAT_PAY_V3_PRIVATE_KEY` (`apiclient_key.pem`), as PKCS#8 DER for WebCrypto.
    pub private_key: Vec<u8>,
    /// `WECHAT_PAY_V3_KEY`: opens notify resources.
    pub api_v3_key: ApiV3Key,
    /// WeChat's keys by the name `Wechatpay-Serial` gives them, as SPKI DER: the 微信支付公钥
    /// (`WECHAT_PAY_PUBLIC_KEY` + `WECHAT_PAY_PUBLIC_KEY_ID`) and, during a migration, the
    /// platform certificates of `WECHAT_PAY_PLATFORM_CERTS`.
    pub wechat: WechatKeys<Vec<u8>>,
}

impl std::fmt::Debug for V3 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("V3")
            .field("serial_no", &self.serial_no)
            .finish_non_exhaustive()
    }
}

fn misconfigured(name: &str, problem: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("server misconfigured: {name} {problem}"))
}

impl V3 {
    fn read(env: &Env) -> Result<V3, ApiError> {
        let serial_no = required(env, "WECHAT_PAY_V3_SERIAL")?;
        let private_key = pem::private_key_pkcs8(&required(env, "WECHAT_PAY_V3_PRIVATE_KEY")?)
            .map_err(|e| {
                misconfigured(
                    "WECHAT_PAY_V3_PRIVATE_KEY",
                    format!("is not the merchant's apiclient_key.pem: {e}"),
                )
            })?;
        let api_v3_key = ApiV3Key::new(&required(env, "WECHAT_PAY_V3_KEY")?).map_err(|_| {
            misconfigured(
                "WECHAT_PAY_V3_KEY",
                "must be the 32-character APIv3 key set in the merchant platform (API安全 → APIv3密钥)",
            )
        })?;
        let mut wechat = WechatKeys::new();
        let public = var(env, "WECHAT_PAY_PUBLIC_KEY");
        let public_id = var(env, "WECHAT_PAY_PUBLIC_KEY_ID");
        match (public, public_id) {
            (Some(key), Some(id)) => {
                let spki = pem::public_key_spki(&key).map_err(|e| {
                    misconfigured(
                        "WECHAT_PAY_PUBLIC_KEY",
                        format!("is not the 微信支付公钥 pub_key.pem: {e}"),
                    )
                })?;
                wechat = wechat.with_public_key(id.trim(), spki).map_err(|_| {
                    misconfigured(
                        "WECHAT_PAY_PUBLIC_KEY_ID",
                        "must be the key's id as the merchant platform shows it, PUB_KEY_ID_…",
                    )
                })?;
            }
            (None, None) => {}
            (Some(_), None) => {
                return Err(misconfigured(
                    "WECHAT_PAY_PUBLIC_KEY_ID",
                    "is not set, but WECHAT_PAY_PUBLIC_KEY is: set both",
                ));
            }
            (None, Some(_)) => {
                return Err(misconfigured(
                    "WECHAT_PAY_PUBLIC_KEY",
                    "is not set, but WECHAT_PAY_PUBLIC_KEY_ID is: set both",
                ));
            }
        }
        if let Some(bundle) = var(env, "WECHAT_PAY_PLATFORM_CERTS") {
            let certs = pem::certificates(&bundle).map_err(|e| {
                misconfigured(
                    "WECHAT_PAY_PLATFORM_CERTS",
                    format!("must be platform certificates in PEM: {e}"),
                )
            })?;
            for (serial, spki) in certs {
                wechat = wechat
                    .with_certificate(&serial, spki)
                    .map_err(|e| misconfigured("WECHAT_PAY_PLATFORM_CERTS", e.to_string()))?;
            }
        }
        if wechat.is_empty() {
            return Err(misconfigured(
                "WECHAT_PAY_PUBLIC_KEY",
                "is not set: APIv3 needs WeChat's key to verify its answers and notifies (the 微信支付公钥 and its id, or WECHAT_PAY_PLATFORM_CERTS)",
            ));
        }
        Ok(V3 {
            serial_no,
            private_key,
            api_v3_key,
            wechat,
        })
    }
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
        // Unset is v2: a deployment from before PAY_API existed keeps working as it was.
        // wrangler.toml (what a new deployment starts from) says v3.
        let pay_api = match var(env, "PAY_API").as_deref() {
            None | Some("v2") => PayApi::V2,
            Some("v3") => PayApi::V3,
            Some(other) => {
                return Err(ApiError::internal(format!(
                    "server misconfigured: PAY_API is {other:?}, use v3 (APIv3 with the 微信支付公钥) or v2"
                )));
            }
        };
        let config_mode = match var(env, "CONFIG_MODE").as_deref() {
            None | Some("strict") => ConfigMode::Strict,
            Some("local") => ConfigMode::Local,
            Some(other) => {
                return Err(ApiError::internal(format!(
                    "server misconfigured: CONFIG_MODE is {other:?}, use strict (production) or local (scripts/dev, tests)"
                )));
            }
        };
        Ok(Config {
            config_mode,
            appid: required(env, "WECHAT_APPID")?,
            mch_id: required(env, "WECHAT_MCH_ID")?,
            app_secret: required(env, "WECHAT_APP_SECRET")?,
            pay_api,
            pay_key: match pay_api {
                PayApi::V2 => required(env, "WECHAT_PAY_KEY")?,
                PayApi::V3 => var(env, "WECHAT_PAY_KEY").unwrap_or_default(),
            },
            // A v2 deployment may hold APIv3's credentials too: refunds go through APIv3
            // (it refunds orders paid through v2 as well).
            v3: match pay_api {
                PayApi::V2 if var(env, "WECHAT_PAY_V3_PRIVATE_KEY").is_none() => None,
                _ => Some(V3::read(env)?),
            },
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
                grace_ms: number(env, "RECONCILE_GRACE_SECS", 600, 0)?.saturating_mul(1000),
                close_after_ms: number(env, "RECONCILE_CLOSE_AFTER_SECS", 7200, 1)?
                    .saturating_mul(1000),
                backoff_min_ms: number(env, "RECONCILE_BACKOFF_MIN_SECS", 600, 1)?
                    .saturating_mul(1000),
                backoff_max_ms: number(env, "RECONCILE_BACKOFF_MAX_SECS", 21600, 1)?
                    .saturating_mul(1000),
                batch: number(env, "RECONCILE_BATCH", 20, 1)?,
                settlement: wxedge_core::ledger::Settlement {
                    fee_bps: match number(env, "SETTLEMENT_FEE_BPS", 0, 0)? {
                        bps @ 0..=10_000 => bps as u32,
                        _ => {
                            return Err(ApiError::internal(
                                "server misconfigured: SETTLEMENT_FEE_BPS is a fee in basis points, 0 to 10000",
                            ));
                        }
                    },
                    hold_ms: number(env, "SETTLEMENT_HOLD_SECS", 0, 0)?.saturating_mul(1000),
                },
            },
            bill: wxedge_core::flow::bill::Policy {
                enabled: match var(env, "BILL_FETCH").as_deref() {
                    None | Some("on") => true,
                    Some("off") => false,
                    Some(other) => {
                        return Err(ApiError::internal(format!(
                            "server misconfigured: BILL_FETCH is {other:?}, use on or off"
                        )));
                    }
                },
                ready_after_ms: match number(env, "BILL_READY_AFTER_SECS", 36_000, 0)? {
                    s @ 0..86_400 => s * 1000,
                    _ => {
                        return Err(ApiError::internal(
                            "server misconfigured: BILL_READY_AFTER_SECS is seconds after Beijing midnight, below 86400",
                        ));
                    }
                },
                retry_ms: number(env, "BILL_RETRY_SECS", 1800, 60)?.saturating_mul(1000),
            },
            notify_rejected_retention_ms: number(
                env,
                "NOTIFY_REJECTED_RETENTION_SECS",
                7 * 86400,
                0,
            )?
            .saturating_mul(1000),
        })
    }

    /// Refuses settings that read fine but must not serve: a session cap below the TTL,
    /// and in strict mode everything [`strict_problems`] finds.
    fn check(&self) -> Result<(), ApiError> {
        if self.session_max_secs < self.session_ttl_secs {
            return Err(ApiError::internal(
                "server misconfigured: SESSION_MAX_SECS is below SESSION_TTL_SECS; make it at least as long",
            ));
        }
        if self.config_mode == ConfigMode::Strict {
            let problems = strict_problems(&Settings {
                appid: &self.appid,
                mch_id: &self.mch_id,
                pay_key: &self.pay_key,
                pay_key_optional: self.pay_api == PayApi::V3,
                admin_token: &self.admin_token,
                api_base: &self.api_base,
                pay_base: &self.pay_base,
                public_base_url: &self.public_base_url,
            });
            if !problems.is_empty() {
                return Err(refused(&problems));
            }
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

    /// The refund rules this deployment runs: the reconciler's grace and backoff.
    pub fn refund_policy(&self) -> wxedge_core::flow::refund::Policy {
        wxedge_core::flow::refund::Policy {
            grace_ms: self.reconcile.grace_ms,
            backoff_min_ms: self.reconcile.backoff_min_ms,
            backoff_max_ms: self.reconcile.backoff_max_ms,
        }
    }

    /// The v3 credentials; `PAY_API=v3` guarantees them.
    pub fn v3(&self) -> Result<&V3, ApiError> {
        self.v3
            .as_ref()
            .ok_or_else(|| ApiError::internal("server misconfigured: PAY_API is not v3"))
    }

    /// `WECHAT_PAY_BASE` + an APIv3 path (with its query).
    pub fn v3_url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.pay_base.trim_end_matches('/'))
    }

    pub fn pay_url(&self, call: &str) -> String {
        format!("{}/pay/{call}", self.pay_base.trim_end_matches('/'))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigMode {
    Strict,
    Local,
}

/// The settings strict mode judges, as read.
pub struct Settings<'a> {
    pub appid: &'a str,
    pub mch_id: &'a str,
    pub pay_key: &'a str,
    /// APIv3 deployments may leave the v2 key unset.
    pub pay_key_optional: bool,
    pub admin_token: &'a str,
    pub api_base: &'a str,
    pub pay_base: &'a str,
    pub public_base_url: &'a str,
}

/// One setting strict mode refuses, and what to do about it. Never carries a secret's
/// value (only its length).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub setting: &'static str,
    pub fix: String,
}

/// What keeps `settings` from being a real deployment: wrangler.toml's placeholders, a
/// pay key WeChat cannot have issued, a guessable admin token, or plain-HTTP origins
/// (WeChat POSTs notifies only to an https notify_url, and the AppSecret and pay key must
/// not cross the network in clear). Empty when all is well. `CONFIG_MODE=local` skips
/// exactly these checks, for stacks that talk to wxsim over http.
pub fn strict_problems(s: &Settings) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut problem = |setting: &'static str, fix: String| problems.push(Problem { setting, fix });
    if s.appid.starts_with("wx0000") {
        problem(
            "WECHAT_APPID",
            "is wrangler.toml's placeholder: set your mini-program's AppID in [vars]".into(),
        );
    }
    if s.mch_id == "1900000000" {
        problem(
            "WECHAT_MCH_ID",
            "is wrangler.toml's placeholder 1900000000: set your merchant's mch_id in [vars]"
                .into(),
        );
    }
    let key_len = s.pay_key.chars().count();
    if key_len != 32 && !(s.pay_key_optional && key_len == 0) {
        problem(
            "WECHAT_PAY_KEY",
            format!(
                "is {key_len} characters; a WeChat Pay v2 API key is 32: `wrangler secret put WECHAT_PAY_KEY` with the key from the merchant platform"
            ),
        );
    }
    let admin_len = s.admin_token.chars().count();
    if admin_len > 0 && admin_len < 32 {
        problem(
            "ADMIN_TOKEN",
            format!(
                "is {admin_len} characters; use at least 32 random ones (`openssl rand -hex 32 | wrangler secret put ADMIN_TOKEN`), or leave it unset to switch the admin routes off"
            ),
        );
    }
    for (setting, value, what) in [
        ("WECHAT_API_BASE", s.api_base, "https://api.weixin.qq.com"),
        (
            "WECHAT_PAY_BASE",
            s.pay_base,
            "https://api.mch.weixin.qq.com",
        ),
    ] {
        if !is_https(value) {
            problem(
                setting,
                format!("is not an https URL: leave it at {what} (or remove it)"),
            );
        }
    }
    let host = worker::Url::parse(s.public_base_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase));
    if host
        .as_deref()
        .is_some_and(|h| h == "example.com" || h.ends_with(".example.com"))
    {
        problem(
            "PUBLIC_BASE_URL",
            "is wrangler.toml's example.com placeholder: set the https origin WeChat will POST notifies to (your workers.dev URL or custom domain)".into(),
        );
    } else if !is_https(s.public_base_url) {
        problem(
            "PUBLIC_BASE_URL",
            "is not an https URL: WeChat sends notifies only to an https notify_url; set your worker's https origin".into(),
        );
    }
    problems
}

fn is_https(url: &str) -> bool {
    worker::Url::parse(url).is_ok_and(|u| u.scheme() == "https" && u.host_str().is_some())
}

/// Code 9 naming every problem, in the message and as `data.problems`.
fn refused(problems: &[Problem]) -> ApiError {
    let list: Vec<String> = problems
        .iter()
        .map(|p| format!("{} {}", p.setting, p.fix))
        .collect();
    ApiError::internal(format!(
        "server misconfigured (CONFIG_MODE is strict): {}",
        list.join("; ")
    ))
    .with_data(json!({
        "problems": problems
            .iter()
            .map(|p| json!({ "setting": p.setting, "problem": p.fix }))
            .collect::<Vec<_>>(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deployment that passes: what `wrangler secret put` and real [vars] give.
    fn good() -> Settings<'static> {
        Settings {
            appid: "wxd930ea5d5a258f4f",
            mch_id: "10000100",
            pay_key: "192006250b4c09247ec02edce69f6a2d",
            pay_key_optional: false,
            admin_token: "5f0c7c3b2b1a4e0d9c8b7a6f5e4d3c2b1a0f9e8d",
            api_base: "https://api.weixin.qq.com",
            pay_base: "https://api.mch.weixin.qq.com",
            public_base_url: "https://pay.shop.cn",
        }
    }

    fn settings_named(s: &Settings) -> Vec<&'static str> {
        strict_problems(s).iter().map(|p| p.setting).collect()
    }

    #[test]
    fn a_real_deployment_passes_and_an_unset_admin_token_is_allowed() {
        assert_eq!(strict_problems(&good()), vec![]);
        let no_admin = Settings {
            admin_token: "",
            ..good()
        };
        assert_eq!(strict_problems(&no_admin), vec![]);
    }

    #[test]
    fn wrangler_toml_placeholders_are_each_named() {
        // Exactly the [vars] of wrangler.toml.
        let toml = Settings {
            appid: "wx0000000000000000",
            mch_id: "1900000000",
            public_base_url: "https://wxedge.example.com",
            ..good()
        };
        assert_eq!(
            settings_named(&toml),
            ["WECHAT_APPID", "WECHAT_MCH_ID", "PUBLIC_BASE_URL"]
        );
        let bare = Settings {
            public_base_url: "https://example.com/",
            ..good()
        };
        assert_eq!(settings_named(&bare), ["PUBLIC_BASE_URL"]);
        let lookalike = Settings {
            public_base_url: "https://notexample.com",
            ..good()
        };
        assert_eq!(strict_problems(&lookalike), vec![]);
    }

    #[test]
    fn keys_of_the_wrong_length_are_named_without_their_value() {
        let short = Settings {
            pay_key: "s3cr3t",
            admin_token: "hunter2",
            ..good()
        };
        let problems = strict_problems(&short);
        assert_eq!(
            problems.iter().map(|p| p.setting).collect::<Vec<_>>(),
            ["WECHAT_PAY_KEY", "ADMIN_TOKEN"]
        );
        for p in &problems {
            assert!(
                !p.fix.contains("s3cr3t") && !p.fix.contains("hunter2"),
                "{p:?}"
            );
        }
        assert!(problems[0].fix.contains("is 6 characters"));
        let long = Settings {
            pay_key: "192006250b4c09247ec02edce69f6a2d0",
            ..good()
        };
        assert_eq!(settings_named(&long), ["WECHAT_PAY_KEY"]);
    }

    #[test]
    fn every_origin_must_be_https() {
        let http = Settings {
            api_base: "http://127.0.0.1:9100",
            pay_base: "http://127.0.0.1:9100",
            public_base_url: "http://127.0.0.1:8787",
            ..good()
        };
        assert_eq!(
            settings_named(&http),
            ["WECHAT_API_BASE", "WECHAT_PAY_BASE", "PUBLIC_BASE_URL"]
        );
        let garbage = Settings {
            api_base: "api.weixin.qq.com",
            ..good()
        };
        assert_eq!(settings_named(&garbage), ["WECHAT_API_BASE"]);
    }

    #[test]
    fn the_refusal_names_each_setting_in_the_message_and_the_data() {
        let e = refused(&strict_problems(&Settings {
            mch_id: "1900000000",
            api_base: "http://x",
            ..good()
        }));
        assert_eq!((e.code, e.status), (9, 500));
        assert!(e.msg.contains("WECHAT_MCH_ID") && e.msg.contains("WECHAT_API_BASE"));
        let data = e.data.unwrap();
        assert_eq!(data["problems"][0]["setting"], "WECHAT_MCH_ID");
        assert_eq!(data["problems"][1]["setting"], "WECHAT_API_BASE");
    }
}
