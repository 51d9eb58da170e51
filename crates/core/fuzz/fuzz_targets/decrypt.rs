//! `crypt::decrypt_user_data` on four arbitrary strings: appid, session_key, encryptedData
//! and iv, separated by `\n` in the input (the last one takes the rest, newlines and
//! all; a piece that is not UTF-8 is read lossily). It must never panic, and an Ok must
//! carry the watermark of the appid asked for.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wxedge_core::crypt::decrypt_user_data;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(4, |&b| b == b'\n');
    let mut next = || String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let (appid, session_key, encrypted, iv) = (next(), next(), next(), next());
    if let Ok(user) = decrypt_user_data(&appid, &session_key, &encrypted, &iv) {
        assert_eq!(user.watermark.appid, appid);
        assert!(!user.data.contains_key("watermark"));
    }
});
