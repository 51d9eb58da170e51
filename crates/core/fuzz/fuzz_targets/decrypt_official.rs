//! `crypt::decrypt_user_data` with WeChat's demo appid, session_key and iv, so that the
//! fuzzer gets past base64 and the key checks. Random ciphertext almost never unpads to
//! JSON, so the first input byte picks what the rest is:
//!
//! * `mode % 3 == 0`: raw ciphertext (any length), base64-encoded as it is;
//! * `mode % 3 == 1`: a plaintext, PKCS#7-padded and encrypted: reaches the JSON and
//!   watermark checks with fuzzer-chosen JSON;
//! * `mode % 3 == 2`: a plaintext cut to whole blocks and encrypted without padding, so
//!   the fuzzer chooses the pad bytes the unpadding sees.
#![no_main]

use aes::Aes128;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use cbc::cipher::block_padding::{NoPadding, Pkcs7};
use cbc::cipher::{BlockModeEncrypt, KeyIvInit};
use libfuzzer_sys::fuzz_target;
use wxedge_core::crypt::{CryptError, decrypt_user_data};

const APPID: &str = "wx4f4bc4dec97d474b";
const SESSION_KEY: &str = "tiihtNczf5v6AKRyjwEUhQ==";
const IV: &str = "r7BXXKkLb8qrSNn05n0qiA==";

fn encryptor() -> cbc::Encryptor<Aes128> {
    let key: [u8; 16] = B64.decode(SESSION_KEY).unwrap().try_into().unwrap();
    let iv: [u8; 16] = B64.decode(IV).unwrap().try_into().unwrap();
    cbc::Encryptor::<Aes128>::new(&key.into(), &iv.into())
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let cipher = match mode % 3 {
        0 => rest.to_vec(),
        1 => encryptor().encrypt_padded_vec::<Pkcs7>(rest),
        _ => encryptor().encrypt_padded_vec::<NoPadding>(&rest[..rest.len() / 16 * 16]),
    };
    let result = decrypt_user_data(APPID, SESSION_KEY, &B64.encode(&cipher), IV);
    match &result {
        Ok(user) => {
            assert_eq!(user.watermark.appid, APPID);
            assert!(!user.data.contains_key("watermark"));
        }
        Err(CryptError::BadCiphertextLength(n)) => {
            assert!(*n == 0 || n % 16 != 0, "length {n} refused: {result:?}");
            assert_ne!(mode % 3, 1, "a PKCS#7-padded ciphertext has a valid length");
        }
        Err(CryptError::BadPadding) => {
            assert_ne!(mode % 3, 1, "PKCS#7 padding we wrote was refused");
        }
        Err(CryptError::NotJson | CryptError::MissingWatermark) => {}
        Err(CryptError::WatermarkMismatch { expected, found }) => {
            assert_eq!(expected, APPID);
            assert_ne!(found, APPID);
        }
        Err(e) => panic!("key and iv are valid, yet: {e:?}"),
    }
});
