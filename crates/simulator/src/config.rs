//! Who the simulator knows: mini-programs (appid → AppSecret) and merchants (mch_id →
//! API key, sign type, the appid they collect for).
//!
//! By default both come from `.dev.vars`, the file `wrangler dev` reads for the worker's
//! secrets, so the simulator and the worker can never disagree about a key.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use thiserror::Error;
use wxedge_core::SignType;
use wxedge_core::pay::Merchant;
use wxedge_core::v3::aead::ApiV3Key;
use wxedge_core::v3::rsa::native::{PrivateKey, PublicKey};
use wxedge_core::v3::verify::PUBLIC_KEY_ID_PREFIX;

/// The merchant's APIv3 private key, PKCS#8 PEM (`apiclient_key.pem`): the worker signs
/// with it; wxsim reads it only to learn the public half it checks `Authorization` with.
pub const VAR_MCH_PRIVATE_KEY: &str = "WECHAT_PAY_V3_PRIVATE_KEY";
/// The serial of the merchant API certificate (`serial_no` of `Authorization`).
pub const VAR_MCH_SERIAL: &str = "WECHAT_PAY_V3_SERIAL";
/// The APIv3 key (32 characters): notify resources are encrypted under it.
pub const VAR_API_V3_KEY: &str = "WECHAT_PAY_V3_KEY";
/// The 微信支付公钥, SPKI PEM (`pub_key.pem`): the worker verifies answers and notifies
/// with it; wxsim checks it is the public half of its own key.
pub const VAR_WECHAT_PUBLIC_KEY: &str = "WECHAT_PAY_PUBLIC_KEY";
/// Its id, `PUB_KEY_ID_…`: the `Wechatpay-Serial` of everything signed with it.
pub const VAR_WECHAT_PUBLIC_KEY_ID: &str = "WECHAT_PAY_PUBLIC_KEY_ID";
/// wxsim's own: the private half of the 微信支付公钥 (real WeChat never hands it out).
pub const VAR_WXSIM_PRIVATE_KEY: &str = "WXSIM_WECHAT_PRIVATE_KEY";
/// wxsim's own: a second WeChat key and its id, for the `rotated_key` fault.
pub const VAR_WXSIM_ROTATED_PRIVATE_KEY: &str = "WXSIM_ROTATED_PRIVATE_KEY";
pub const VAR_WXSIM_ROTATED_KEY_ID: &str = "WXSIM_ROTATED_PUBLIC_KEY_ID";
/// The rotated key's id when `WXSIM_ROTATED_PUBLIC_KEY_ID` is not set.
pub const DEFAULT_ROTATED_KEY_ID: &str = "PUB_KEY_ID_0000000000000000000000000000000002";

/// What wxsim knows of a merchant that speaks APIv3.
#[derive(Debug, Clone)]
pub struct MerchantV3 {
    /// The serial its `Authorization` must name.
    pub serial: String,
    /// The public half of its API key: every request's signature is checked with it.
    pub public_key: PublicKey,
    pub api_v3_key: ApiV3Key,
}

/// A key WeChat signs with, under the id `Wechatpay-Serial` names.
#[derive(Debug, Clone)]
pub struct WechatKey {
    pub id: String,
    pub key: Arc<PrivateKey>,
}

impl WechatKey {
    pub fn new(id: &str, pem: &str) -> Result<WechatKey, ConfigError> {
        if !id.starts_with(PUBLIC_KEY_ID_PREFIX) || id.len() == PUBLIC_KEY_ID_PREFIX.len() {
            return Err(ConfigError::Invalid(format!(
                "WeChat key id {id:?} must start with {PUBLIC_KEY_ID_PREFIX}"
            )));
        }
        let key = PrivateKey::from_pem(pem)
            .map_err(|e| ConfigError::Invalid(format!("WeChat key {id}: {e}")))?;
        Ok(WechatKey {
            id: id.to_owned(),
            key: Arc::new(key),
        })
    }
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: expected KEY=VALUE, found {text:?}")]
    Syntax {
        path: String,
        line: usize,
        text: String,
    },
    #[error("{0}")]
    Invalid(String),
}

/// A mini-program: its AppSecret, and whether its users have a unionid (an app bound to
/// an Open Platform account gets one).
#[derive(Debug, Clone)]
pub struct App {
    pub secret: String,
    pub unionid: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Config {
    pub apps: BTreeMap<String, App>,
    pub merchants: BTreeMap<String, Merchant>,
    /// The merchants that also speak APIv3, by mch_id. One without an entry has no v3:
    /// its v3 calls are refused and its v2 calls work exactly as before.
    pub v3: BTreeMap<String, MerchantV3>,
    /// The 微信支付公钥's private half: every v3 answer and notify is signed with it.
    pub wechat_key: Option<WechatKey>,
    /// A second key for the `rotated_key` fault (WeChat switching keys).
    pub rotated_key: Option<WechatKey>,
}

/// Reads a dotenv-style file: `KEY=VALUE` lines, `#` comments, optional quotes.
pub fn read_dev_vars(path: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: shown.clone(),
        source,
    })?;
    let mut vars = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((k, v)) = line.split_once('=') else {
            return Err(ConfigError::Syntax {
                path: shown,
                line: i + 1,
                text: raw.chars().take(40).collect(),
            });
        };
        let v = v.trim();
        // In double quotes `\n` is a newline, as dotenv (and so `wrangler dev`) reads it:
        // that is how a PEM key fits on one line.
        let v = match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            Some(quoted) => quoted.replace("\\n", "\n"),
            None => v
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .unwrap_or(v)
                .to_owned(),
        };
        vars.insert(k.trim().to_owned(), v);
    }
    Ok(vars)
}

impl Config {
    /// The app and merchant `.dev.vars` describes (`WECHAT_APPID`, `WECHAT_APP_SECRET`,
    /// `WECHAT_MCH_ID`, `WECHAT_PAY_KEY`, `SIGN_TYPE`), the worker's own names.
    pub fn from_dev_vars(vars: &BTreeMap<String, String>) -> Result<Config, ConfigError> {
        let get = |k: &str| {
            vars.get(k)
                .filter(|v| !v.is_empty())
                .cloned()
                .ok_or_else(|| ConfigError::Invalid(format!("{k} is missing from .dev.vars")))
        };
        let mut config = Config::default();
        let appid = get("WECHAT_APPID")?;
        config.add_app(&appid, &get("WECHAT_APP_SECRET")?, false)?;
        if let Ok(mch_id) = get("WECHAT_MCH_ID") {
            let sign_type = match vars.get("SIGN_TYPE").map(String::as_str) {
                None | Some("") => SignType::Md5,
                Some(s) => s.parse().map_err(|_| {
                    ConfigError::Invalid(format!("SIGN_TYPE is {s:?}: use MD5 or HMAC-SHA256"))
                })?,
            };
            config.add_merchant(&mch_id, &get("WECHAT_PAY_KEY")?, &appid, sign_type)?;
            config.v3_from_dev_vars(vars, &mch_id)?;
        }
        Ok(config)
    }

    /// The APIv3 half of `.dev.vars`: none of its names set means no v3 (v2 only); some
    /// set means all of them are needed, so a half-done setup fails loudly at start.
    fn v3_from_dev_vars(
        &mut self,
        vars: &BTreeMap<String, String>,
        mch_id: &str,
    ) -> Result<(), ConfigError> {
        let val = |k: &str| vars.get(k).filter(|v| !v.is_empty());
        let names = [
            VAR_MCH_PRIVATE_KEY,
            VAR_MCH_SERIAL,
            VAR_API_V3_KEY,
            VAR_WECHAT_PUBLIC_KEY,
            VAR_WECHAT_PUBLIC_KEY_ID,
            VAR_WXSIM_PRIVATE_KEY,
        ];
        if names.iter().all(|k| val(k).is_none()) {
            return Ok(());
        }
        let get = |k: &str| {
            val(k).cloned().ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "{k} is missing from .dev.vars: APIv3 needs all of {} (scripts/dev writes them)",
                    names.join(", ")
                ))
            })
        };
        let merchant_key = PrivateKey::from_pem(&get(VAR_MCH_PRIVATE_KEY)?)
            .map_err(|e| ConfigError::Invalid(format!("{VAR_MCH_PRIVATE_KEY}: {e}")))?;
        self.add_merchant_v3(
            mch_id,
            &get(VAR_MCH_SERIAL)?,
            merchant_key.public_key(),
            &get(VAR_API_V3_KEY)?,
        )?;
        let wechat = WechatKey::new(
            &get(VAR_WECHAT_PUBLIC_KEY_ID)?,
            &get(VAR_WXSIM_PRIVATE_KEY)?,
        )?;
        let published = PublicKey::from_pem(&get(VAR_WECHAT_PUBLIC_KEY)?)
            .map_err(|e| ConfigError::Invalid(format!("{VAR_WECHAT_PUBLIC_KEY}: {e}")))?;
        if published != wechat.key.public_key() {
            return Err(ConfigError::Invalid(format!(
                "{VAR_WECHAT_PUBLIC_KEY} is not the public half of {VAR_WXSIM_PRIVATE_KEY}: the worker would refuse every answer (regenerate both with scripts/dev)"
            )));
        }
        self.wechat_key = Some(wechat);
        if let Some(pem) = val(VAR_WXSIM_ROTATED_PRIVATE_KEY) {
            let id = val(VAR_WXSIM_ROTATED_KEY_ID).map_or(DEFAULT_ROTATED_KEY_ID, String::as_str);
            self.rotated_key = Some(WechatKey::new(id, pem)?);
        }
        Ok(())
    }

    /// Gives the merchant `mch_id` (already added) APIv3.
    pub fn add_merchant_v3(
        &mut self,
        mch_id: &str,
        serial: &str,
        public_key: PublicKey,
        api_v3_key: &str,
    ) -> Result<(), ConfigError> {
        if !self.merchants.contains_key(mch_id) {
            return Err(ConfigError::Invalid(format!(
                "merchant {mch_id} gets APIv3 but is not configured"
            )));
        }
        if serial.is_empty()
            || serial.len() > 64
            || !serial.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(ConfigError::Invalid(format!(
                "merchant {mch_id}: {VAR_MCH_SERIAL} must be the certificate serial (hex)"
            )));
        }
        let api_v3_key = ApiV3Key::new(api_v3_key).map_err(|_| {
            ConfigError::Invalid(format!(
                "merchant {mch_id}: {VAR_API_V3_KEY} must be 32 characters (it is {})",
                api_v3_key.len()
            ))
        })?;
        self.v3.insert(
            mch_id.to_owned(),
            MerchantV3 {
                serial: serial.to_owned(),
                public_key,
                api_v3_key,
            },
        );
        Ok(())
    }

    pub fn add_app(&mut self, appid: &str, secret: &str, unionid: bool) -> Result<(), ConfigError> {
        if appid.is_empty() || appid.len() > 32 || secret.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "app {appid:?}: the appid must be 1 to 32 characters and the secret non-empty"
            )));
        }
        self.apps.insert(
            appid.to_owned(),
            App {
                secret: secret.to_owned(),
                unionid,
            },
        );
        Ok(())
    }

    pub fn add_merchant(
        &mut self,
        mch_id: &str,
        key: &str,
        appid: &str,
        sign_type: SignType,
    ) -> Result<(), ConfigError> {
        if mch_id.is_empty() || mch_id.len() > 32 {
            return Err(ConfigError::Invalid(format!(
                "merchant {mch_id:?}: mch_id must be 1 to 32 characters"
            )));
        }
        if key.len() != 32 {
            return Err(ConfigError::Invalid(format!(
                "merchant {mch_id}: the API key must be 32 characters (it is {})",
                key.len()
            )));
        }
        self.merchants.insert(
            mch_id.to_owned(),
            Merchant {
                appid: appid.to_owned(),
                mch_id: mch_id.to_owned(),
                key: key.to_owned(),
                sign_type,
            },
        );
        Ok(())
    }

    /// `APPID:SECRET`, as `--app` takes it.
    pub fn add_app_flag(&mut self, flag: &str, unionid: bool) -> Result<(), ConfigError> {
        let (appid, secret) = flag
            .split_once(':')
            .ok_or_else(|| ConfigError::Invalid(format!("--app {flag:?}: use APPID:SECRET")))?;
        self.add_app(appid, secret, unionid)
    }

    /// `MCH_ID:KEY:APPID[:SIGN_TYPE]`, as `--merchant` takes it.
    pub fn add_merchant_flag(&mut self, flag: &str) -> Result<(), ConfigError> {
        let usage = || {
            ConfigError::Invalid(format!(
                "--merchant {:?}: use MCH_ID:KEY:APPID[:MD5|HMAC-SHA256]",
                flag.split(':').next().unwrap_or_default()
            ))
        };
        let parts: Vec<&str> = flag.split(':').collect();
        let (mch_id, key, appid, sign_type) = match parts.as_slice() {
            [m, k, a] => (*m, *k, *a, SignType::Md5),
            [m, k, a, s] => (*m, *k, *a, s.parse().map_err(|_| usage())?),
            _ => return Err(usage()),
        };
        self.add_merchant(mch_id, key, appid, sign_type)
    }

    pub fn check(&self) -> Result<(), ConfigError> {
        if !self.v3.is_empty() && self.wechat_key.is_none() {
            return Err(ConfigError::Invalid(format!(
                "APIv3 merchants need WeChat's key: set {VAR_WXSIM_PRIVATE_KEY} and {VAR_WECHAT_PUBLIC_KEY_ID}"
            )));
        }
        if self.apps.is_empty() {
            return Err(ConfigError::Invalid(
                "no mini-program configured: create .dev.vars (scripts/dev writes one) or pass --app APPID:SECRET"
                    .into(),
            ));
        }
        for m in self.merchants.values() {
            if !self.apps.contains_key(&m.appid) {
                return Err(ConfigError::Invalid(format!(
                    "merchant {} collects for appid {}, which is not configured",
                    m.mch_id, m.appid
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_vars_are_read_like_wrangler_reads_them() {
        let dir = std::env::temp_dir().join(format!("wxsim-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join(".dev.vars");
        std::fs::write(
            &f,
            "# made by scripts/dev\nWECHAT_APPID=wx1\nWECHAT_APP_SECRET=\"s3cret\"\n\
             WECHAT_MCH_ID=1900000109\nWECHAT_PAY_KEY='0123456789abcdef0123456789abcdef'\n\
             SIGN_TYPE=HMAC-SHA256\n",
        )
        .unwrap();
        let c = Config::from_dev_vars(&read_dev_vars(&f).unwrap()).unwrap();
        assert_eq!(c.apps["wx1"].secret, "s3cret");
        let m = &c.merchants["1900000109"];
        assert_eq!(m.sign_type, SignType::HmacSha256);
        assert_eq!(m.appid, "wx1");
        c.check().unwrap();
        std::fs::write(&f, "WECHAT_APPID\n").unwrap();
        assert!(matches!(
            read_dev_vars(&f),
            Err(ConfigError::Syntax { line: 1, .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn flags_are_checked() {
        let mut c = Config::default();
        assert!(c.add_app_flag("wx1", false).is_err());
        c.add_app_flag("wx1:secret", true).unwrap();
        assert!(c.add_merchant_flag("1:short:wx1").is_err());
        assert!(
            c.add_merchant_flag("1:0123456789abcdef0123456789abcdef:wx1:SHA1")
                .is_err()
        );
        c.add_merchant_flag("1:0123456789abcdef0123456789abcdef:wx2")
            .unwrap();
        assert!(c.check().is_err(), "wx2 is not configured");
    }
    #[test]
    fn a_half_done_v3_setup_fails_loudly_and_none_means_v2_only() {
        let mut vars: BTreeMap<String, String> = [
            ("WECHAT_APPID", "wx1"),
            ("WECHAT_APP_SECRET", "s"),
            ("WECHAT_MCH_ID", "1900000109"),
            ("WECHAT_PAY_KEY", "0123456789abcdef0123456789abcdef"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let c = Config::from_dev_vars(&vars).unwrap();
        assert!(c.v3.is_empty() && c.wechat_key.is_none());
        vars.insert(
            VAR_API_V3_KEY.into(),
            "a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb".into(),
        );
        let e = Config::from_dev_vars(&vars).unwrap_err().to_string();
        assert!(e.contains(VAR_MCH_PRIVATE_KEY), "{e}");
    }

    #[test]
    fn a_pem_fits_on_one_double_quoted_line() {
        let dir = std::env::temp_dir().join(format!("wxsim-pem-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join(".dev.vars");
        std::fs::write(
            &f,
            "K=\"-----BEGIN X-----\\nAAAA\\n-----END X-----\\n\"\nR='a\\nb'\n",
        )
        .unwrap();
        let v = read_dev_vars(&f).unwrap();
        assert_eq!(v["K"], "-----BEGIN X-----\nAAAA\n-----END X-----\n");
        assert_eq!(
            v["R"], "a\\nb",
            "single quotes keep backslashes, as dotenv does"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
