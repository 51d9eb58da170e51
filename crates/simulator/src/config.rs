//! Who the simulator knows: mini-programs (appid → AppSecret) and merchants (mch_id →
//! API key, sign type, the appid they collect for).
//!
//! By default both come from `.dev.vars`, the file `wrangler dev` reads for the worker's
//! secrets, so the simulator and the worker can never disagree about a key.

use std::collections::BTreeMap;
use std::path::Path;

use thiserror::Error;
use wxedge_core::SignType;
use wxedge_core::pay::Merchant;

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
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(v);
        vars.insert(k.trim().to_owned(), v.to_owned());
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
        }
        Ok(config)
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
}
