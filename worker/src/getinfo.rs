//! `POST /getinfo/`: wx.getUserInfo's encryptedData + iv, decrypted with the session_key
//! of the token's session, checked against our appid, saved, returned.

use serde_json::{Value, json};
use worker::{Env, Request, Response};
use wxedge_core::crypt::{self, CryptError};

use crate::api::{ApiError, ApiResult, Input, ok};
use crate::config::Config;
use crate::{db, now_ms, session};

fn judged(e: CryptError) -> ApiError {
    match e {
        // The caller sent something that cannot be a WeChat payload.
        CryptError::BadBase64 { .. }
        | CryptError::BadIvLength(_)
        | CryptError::BadCiphertextLength(_) => ApiError::param(e.to_string()),
        CryptError::BadKeyLength(_) => {
            ApiError::internal("the stored session_key is unusable: log in again")
        }
        // It decrypts to garbage or to someone else's data: our session_key is not the one
        // WeChat used, which is what a stale session looks like.
        _ => ApiError::stale(format!(
            "{e}. The session_key has changed since this data was made: call wx.login, POST the code to /login/, then wx.getUserInfo again"
        )),
    }
}

pub async fn handle(mut req: Request, env: &Env) -> ApiResult<Response> {
    let input = Input::read(&mut req).await?;
    let cfg = Config::from_env(env)?;
    let session = session::get(env, input.token()?).await?;
    let encrypted = input.text("encryptedData")?;
    let iv = input.text("iv")?;
    let raw = (input.opt_text("rawData")?, input.opt_text("signature")?);
    let data = crypt::decrypt_user_data(&cfg.appid, &session.session_key, encrypted, iv)
        .map_err(judged)?;
    match raw {
        (Some(raw_data), Some(signature)) => {
            crypt::verify_raw_data(raw_data, &session.session_key, signature).map_err(judged)?
        }
        (None, None) => {}
        _ => {
            return Err(ApiError::param(
                "rawData and signature go together: send both or neither",
            ));
        }
    }
    let profile = Value::Object(data.data);
    db::save_profile(env, &session.openid, &profile.to_string(), now_ms()).await?;
    ok(json!({ "user": profile }))
}
