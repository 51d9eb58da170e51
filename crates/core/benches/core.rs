//! Each core operation of `wxedge-core` next to the same operation written directly with
//! the raw crates (md-5, hmac/sha2, quick-xml, base64, aes/cbc, serde_json), in one run.
//!
//! Groups come in pairs: `<operation>/wxedge` and `<operation>/raw`. `scripts/bench`
//! runs this file and turns the medians into the table in `bench/RESULTS.md`; the budget
//! is wxedge ≤ 1.2 × raw.
//!
//! The raw twins are what a competent developer would write against the crates directly:
//! straightforward, not deliberately slow. Where the obvious code has a cheap fast form
//! (table hex instead of `format!("{:02X}")` per byte) the fast form is used, so the ratio
//! measures wxedge's own overhead rather than flattering it. Before anything is timed,
//! every pair is checked to compute the same answer.
//!
//! On 64-bit Linux the clock is the thread's CPU time, not wall time (see [`cpu_time`]), so
//! that a busy neighbour on a shared machine does not decide the ratios.
//!
//! Run it with `scripts/bench`, or alone with `cargo bench -p wxedge-core --bench core`.

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::Measurement;
use criterion::{Criterion, criterion_group, criterion_main};

use wxedge_core::notify::{PaidNotice, build_paid_notify, parse_notify};
use wxedge_core::pay::Merchant;
use wxedge_core::sign::{SignType, sign};
use wxedge_core::{Fen, Params};

// ---------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------

/// The API key of the WeChat Pay "安全规范 → 签名算法" example.
const PAY_KEY: &str = "192006250b4c09247ec02edce69f6a2d";
/// The doc's expected signs for [`doc_params`].
const DOC_MD5: &str = "9A0A8659F005D6984697E2CA0A9CF3B7";
const DOC_HMAC: &str = "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6";

/// The official `WXBizDataCrypt` demo vector.
const DEMO_APPID: &str = "wx4f4bc4dec97d474b";
const DEMO_SESSION_KEY: &str = "tiihtNczf5v6AKRyjwEUhQ==";
const DEMO_IV: &str = "r7BXXKkLb8qrSNn05n0qiA==";
const DEMO_ENCRYPTED: &str = "CiyLU1Aw2KjvrjMdj8YKliAjtP4gsMZMQmRzooG2xrDcvSnxIMXFufNstNGTyaGS9uT5geRa0W4oTOb1WT7fJlAC+oNPdbB+3hVbJSRgv+4lGOETKUQz6OYStslQ142dNCuabNPGBzlooOmB231qMM85d2/fV6ChevvXvQP8Hkue1poOFtnEtpyxVLW1zAo6/1Xx1COxFvrc2d7UL/lmHInNlxuacJXwu0fjpXfz/YqYzBIBzD6WUfTIF9GRHpOn/Hz7saL8xz+W//FRAUid1OksQaQx4CMs8LOddcQhULW4ucetDf96JcR3g0gfRK4PC7E/r7Z6xNrXd2UIeorGj5Ef7b1pJAYB6Y5anaHqZ9J6nKEBvB4DnNLIVWSgARns/8wR2SiRS7MNACwTyrGvt9ts8p12PKFdlqYTopNHR1Vf7XjfhQlVsAJdNiKdYmYVoKlaRv85IfVunYzO0IKXsyl7JCUjCpoG20f0a04COwfneQAGGwd5oa+T8yO5hzuyDb/XcxxmK01EpqOyuxINew==";
const DEMO_OPENID: &str = "oGZUI0egBJY1zhBYw2KhdUfwVJJE";

fn params(pairs: &[(&str, &str)]) -> Params {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The five parameters of the WeChat Pay signing example.
fn doc_params() -> Params {
    params(&[
        ("appid", "wxd930ea5d5a258f4f"),
        ("mch_id", "10000100"),
        ("device_info", "1000"),
        ("body", "test"),
        ("nonce_str", "ibuaiVcKdpRxkhJA"),
    ])
}

/// A mini-program JSAPI unifiedorder as it is signed: 11 fields, a UTF-8 body.
fn order_params(sign_type: SignType) -> Params {
    params(&[
        ("appid", "wxd930ea5d5a258f4f"),
        ("mch_id", "10000100"),
        ("nonce_str", "5K8264ILTKCH16CQ2502SI8ZNMTM67VS"),
        ("sign_type", sign_type.as_str()),
        ("body", "腾讯充值中心-QQ会员充值"),
        ("out_trade_no", "20150806125346A7Kq9xZ2"),
        ("total_fee", "88"),
        ("spbill_create_ip", "123.12.12.123"),
        ("notify_url", "https://api.example.com/wxpay/notify"),
        ("trade_type", "JSAPI"),
        ("openid", "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"),
    ])
}

fn merchant() -> Merchant {
    Merchant {
        appid: "wxd930ea5d5a258f4f".into(),
        mch_id: "10000100".into(),
        key: PAY_KEY.into(),
        sign_type: SignType::Md5,
    }
}

/// A signed successful-payment notify, as WeChat POSTs it (CDATA values, 16 fields).
fn notify_body() -> String {
    build_paid_notify(
        &merchant(),
        &PaidNotice {
            out_trade_no: "20150806125346A7Kq9xZ2",
            transaction_id: "4200001234202508061234567890",
            total_fee: Fen::new(88),
            openid: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
            time_end: "20250806125412",
            nonce_str: "5d2b6c2a8db53831f7eda20af46e531c",
            include_sign_type: false,
        },
    )
    .expect("the notify builds")
}

// ---------------------------------------------------------------------------------------
// The raw twins
// ---------------------------------------------------------------------------------------

mod raw {
    use std::collections::BTreeMap;

    use aes::Aes128;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use cbc::cipher::block_padding::Pkcs7;
    use cbc::cipher::{BlockModeDecrypt, KeyIvInit};
    use hmac::{Hmac, KeyInit, Mac};
    use md5::{Digest, Md5};
    use quick_xml::Reader;
    use quick_xml::events::Event;
    use sha2::Sha256;

    /// `stringSignTemp`: non-empty params but `sign`, in key order, then `&key=KEY`.
    pub fn string_sign_temp(params: &BTreeMap<String, String>, key: &str) -> String {
        let mut s = String::with_capacity(256);
        for (k, v) in params {
            if v.is_empty() || k == "sign" {
                continue;
            }
            if !s.is_empty() {
                s.push('&');
            }
            s.push_str(k);
            s.push('=');
            s.push_str(v);
        }
        s.push_str("&key=");
        s.push_str(key);
        s
    }

    /// Uppercase hex, as `hex::encode_upper` does it.
    pub fn upper_hex(bytes: &[u8]) -> String {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let mut out = String::with_capacity(bytes.len() * 2);
        for &b in bytes {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        out
    }

    pub fn sign_md5(params: &BTreeMap<String, String>, key: &str) -> String {
        let s = string_sign_temp(params, key);
        upper_hex(&Md5::digest(s.as_bytes()))
    }

    pub fn sign_hmac_sha256(params: &BTreeMap<String, String>, key: &str) -> String {
        let s = string_sign_temp(params, key);
        let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
        mac.update(s.as_bytes());
        upper_hex(&mac.finalize().into_bytes())
    }

    /// What a handler keeps of a notify.
    #[derive(Debug)]
    pub struct Notify {
        pub out_trade_no: String,
        pub transaction_id: String,
        pub total_fee: u64,
        pub openid: String,
        pub params: BTreeMap<String, String>,
    }

    /// Parses the flat `<xml>` map from the POST body's bytes, checks return_code and
    /// the MD5 sign, and picks out the fields a payment handler needs.
    pub fn parse_notify(body: &[u8], key: &str) -> Result<Notify, &'static str> {
        let body = std::str::from_utf8(body).map_err(|_| "not utf-8")?;
        let mut reader = Reader::from_str(body);
        let mut map = BTreeMap::new();
        let mut field: Option<String> = None;
        let mut value = String::new();
        loop {
            match reader.read_event().map_err(|_| "bad xml")? {
                Event::Start(e) => {
                    let name = e.name();
                    if name.as_ref() != "xml" {
                        field = Some(name.as_ref().to_owned());
                        value.clear();
                    }
                }
                Event::Text(t) if field.is_some() => value.push_str(&t.into_inner()),
                Event::CData(t) if field.is_some() => value.push_str(&t.into_inner()),
                Event::End(_) => {
                    if let Some(k) = field.take() {
                        map.insert(k, std::mem::take(&mut value));
                    }
                }
                Event::Eof => break,
                _ => {}
            }
        }
        if map.get("return_code").map(String::as_str) != Some("SUCCESS") {
            return Err("return_code FAIL");
        }
        let given = map.get("sign").ok_or("no sign")?;
        if *given != sign_md5(&map, key) {
            return Err("sign mismatch");
        }
        let get = |k: &str| map.get(k).cloned().ok_or("missing field");
        Ok(Notify {
            out_trade_no: get("out_trade_no")?,
            transaction_id: get("transaction_id")?,
            total_fee: get("total_fee")?.parse().map_err(|_| "bad total_fee")?,
            openid: get("openid")?,
            params: map,
        })
    }

    /// base64 ×3, AES-128-CBC + PKCS#7, JSON, watermark.appid check.
    pub fn decrypt_user_data(
        appid: &str,
        session_key: &str,
        encrypted: &str,
        iv: &str,
    ) -> Result<serde_json::Value, &'static str> {
        let key: [u8; 16] = STANDARD
            .decode(session_key)
            .map_err(|_| "bad base64")?
            .try_into()
            .map_err(|_| "bad key length")?;
        let iv: [u8; 16] = STANDARD
            .decode(iv)
            .map_err(|_| "bad base64")?
            .try_into()
            .map_err(|_| "bad iv length")?;
        let mut buf = STANDARD.decode(encrypted).map_err(|_| "bad base64")?;
        let plain = cbc::Decryptor::<Aes128>::new(&key.into(), &iv.into())
            .decrypt_padded::<Pkcs7>(&mut buf)
            .map_err(|_| "bad padding")?;
        let data: serde_json::Value = serde_json::from_slice(plain).map_err(|_| "not json")?;
        if data["watermark"]["appid"] != appid {
            return Err("watermark mismatch");
        }
        Ok(data)
    }
}

// ---------------------------------------------------------------------------------------
// Benchmarks
// ---------------------------------------------------------------------------------------

/// Benchmarks `ours` as `<group>/wxedge` and `theirs` as `<group>/raw`.
fn pair<M: Measurement, O, T>(
    c: &mut Criterion<M>,
    group: &str,
    mut ours: impl FnMut() -> O,
    mut theirs: impl FnMut() -> T,
) {
    let mut g = c.benchmark_group(group);
    g.bench_function("wxedge", |b| b.iter(&mut ours));
    g.bench_function("raw", |b| b.iter(&mut theirs));
    g.finish();
}

fn bench_sign(c: &mut Criterion<Clock>) {
    let doc = doc_params();
    assert_eq!(sign(&doc, PAY_KEY, SignType::Md5).as_str(), DOC_MD5);
    assert_eq!(raw::sign_md5(&doc, PAY_KEY), DOC_MD5);
    assert_eq!(sign(&doc, PAY_KEY, SignType::HmacSha256).as_str(), DOC_HMAC);
    assert_eq!(raw::sign_hmac_sha256(&doc, PAY_KEY), DOC_HMAC);

    let md5_order = order_params(SignType::Md5);
    let hmac_order = order_params(SignType::HmacSha256);
    assert_eq!(
        sign(&md5_order, PAY_KEY, SignType::Md5).as_str(),
        raw::sign_md5(&md5_order, PAY_KEY)
    );
    assert_eq!(
        sign(&hmac_order, PAY_KEY, SignType::HmacSha256).as_str(),
        raw::sign_hmac_sha256(&hmac_order, PAY_KEY)
    );

    // wxedge takes the algorithm at run time (from the merchant's configuration), the raw
    // twin calls the one it was written for.
    for (name, p) in [("sign_md5_doc", &doc), ("sign_md5_order", &md5_order)] {
        pair(
            c,
            name,
            || sign(black_box(p), black_box(PAY_KEY), black_box(SignType::Md5)),
            || raw::sign_md5(black_box(p), black_box(PAY_KEY)),
        );
    }
    for (name, p) in [
        ("sign_hmac_sha256_doc", &doc),
        ("sign_hmac_sha256_order", &hmac_order),
    ] {
        pair(
            c,
            name,
            || {
                sign(
                    black_box(p),
                    black_box(PAY_KEY),
                    black_box(SignType::HmacSha256),
                )
            },
            || raw::sign_hmac_sha256(black_box(p), black_box(PAY_KEY)),
        );
    }
}

fn bench_notify(c: &mut Criterion<Clock>) {
    let body = notify_body();
    let body = body.as_bytes();
    let ours = parse_notify(body, PAY_KEY, SignType::Md5).expect("wxedge verifies");
    let theirs = raw::parse_notify(body, PAY_KEY).expect("raw verifies");
    assert_eq!(ours.params, theirs.params);
    assert_eq!(ours.total_fee.get(), theirs.total_fee);
    assert_eq!(ours.out_trade_no, theirs.out_trade_no);
    assert_eq!(ours.transaction_id, theirs.transaction_id);
    assert_eq!(ours.openid, theirs.openid);

    pair(
        c,
        "notify_parse_verify",
        || {
            parse_notify(
                black_box(body),
                black_box(PAY_KEY),
                black_box(SignType::Md5),
            )
        },
        || raw::parse_notify(black_box(body), black_box(PAY_KEY)),
    );
}

fn bench_decrypt(c: &mut Criterion<Clock>) {
    let ours = wxedge_core::crypt::decrypt_user_data(
        DEMO_APPID,
        DEMO_SESSION_KEY,
        DEMO_ENCRYPTED,
        DEMO_IV,
    )
    .expect("wxedge decrypts the demo vector");
    let theirs = raw::decrypt_user_data(DEMO_APPID, DEMO_SESSION_KEY, DEMO_ENCRYPTED, DEMO_IV)
        .expect("raw decrypts the demo vector");
    assert_eq!(ours.data["openId"], DEMO_OPENID);
    assert_eq!(theirs["openId"], DEMO_OPENID);

    pair(
        c,
        "decrypt_user_data",
        || {
            wxedge_core::crypt::decrypt_user_data(
                black_box(DEMO_APPID),
                black_box(DEMO_SESSION_KEY),
                black_box(DEMO_ENCRYPTED),
                black_box(DEMO_IV),
            )
        },
        || {
            raw::decrypt_user_data(
                black_box(DEMO_APPID),
                black_box(DEMO_SESSION_KEY),
                black_box(DEMO_ENCRYPTED),
                black_box(DEMO_IV),
            )
        },
    );
}

/// Thread CPU time, Linux's `CLOCK_THREAD_CPUTIME_ID`, as a criterion measurement.
///
/// Wall time counts the slices in which the scheduler runs someone else on our CPU. On a
/// shared machine (a fuzzer or a build next door) that makes the distribution bimodal,
/// and the median of one twin can land in the slow mode while its twin's lands in the
/// fast one: ratios of 1.5× came out of code within 15% of each other. CPU time counts
/// only what this thread ran. It cannot see contention below the guest (a VM's vCPU
/// sharing its host core), which is why `scripts/bench` also repeats the run.
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
mod cpu_time {
    use std::os::raw::{c_int, c_long};
    use std::time::Duration;

    use criterion::measurement::{Measurement, ValueFormatter, WallTime};

    const CLOCK_THREAD_CPUTIME_ID: c_int = 3;

    #[repr(C)]
    struct Timespec {
        tv_sec: c_long,
        tv_nsec: c_long,
    }

    unsafe extern "C" {
        fn clock_gettime(clock: c_int, tp: *mut Timespec) -> c_int;
    }

    fn now_ns() -> u64 {
        let mut ts = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a live, writable `struct timespec` (two `long`s on 64-bit Linux)
        // and the clock id is the constant Linux defines; libc is linked by std.
        let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }

    /// Values are `Duration`s in nanoseconds, formatted like wall time.
    pub struct CpuTime(WallTime);

    impl CpuTime {
        pub fn new() -> Self {
            CpuTime(WallTime)
        }
    }

    impl Measurement for CpuTime {
        type Intermediate = u64;
        type Value = Duration;

        fn start(&self) -> u64 {
            now_ns()
        }
        fn end(&self, start: u64) -> Duration {
            Duration::from_nanos(now_ns() - start)
        }
        fn add(&self, a: &Duration, b: &Duration) -> Duration {
            *a + *b
        }
        fn zero(&self) -> Duration {
            Duration::ZERO
        }
        fn to_f64(&self, value: &Duration) -> f64 {
            value.as_nanos() as f64
        }
        fn formatter(&self) -> &dyn ValueFormatter {
            self.0.formatter()
        }
    }
}

#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
type Clock = cpu_time::CpuTime;
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
fn clock() -> Clock {
    cpu_time::CpuTime::new()
}

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
type Clock = criterion::measurement::WallTime;
#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
fn clock() -> Clock {
    criterion::measurement::WallTime
}

/// Short runs: 14 measurements of 0.2 s warm-up + 0.4 s, under 10 s of CPU for the file
/// (more in wall time on a shared machine). `scripts/bench` runs it several times and
/// keeps the lowest median of each. Medians of operations this small are steady at 100
/// samples; 10 000 bootstrap resamples are plenty for the confidence intervals printed.
fn config() -> Criterion<Clock> {
    Criterion::default()
        .with_measurement(clock())
        .sample_size(100)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_millis(400))
        .nresamples(10_000)
        .without_plots()
}

#[path = "../tests/v3_keys/mod.rs"]
mod v3_keys;

/// APIv3: verifying a signed answer (the message from the headers and the raw body, the key
/// the serial names, the skew, then SHA256withRSA through `ring`) and decrypting a notify
/// resource (AEAD_AES_256_GCM), each beside the same work written with `ring` and
/// `aes-gcm` directly.
fn bench_v3(c: &mut Criterion<Clock>) {
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use wxedge_core::v3::aead::{self, ApiV3Key};
    use wxedge_core::v3::rsa::RsaSigner;
    use wxedge_core::v3::rsa::native::PrivateKey;
    use wxedge_core::v3::verify::{Headers, WechatKeys};

    let key = PrivateKey::from_pem(v3_keys::TEST_KEY_PKCS1).expect("the test key");
    let body = br#"{"prepay_id":"wx26112221580621e9b071c00d9e093b0000"}"#;
    let (ts, nonce, now) = (
        "1554208460",
        "593BEC0C930BF1AFEB40B4A08C8FB242",
        1_554_208_460,
    );
    let message = format!(
        "{ts}\n{nonce}\n{}\n",
        std::str::from_utf8(body).expect("utf-8")
    );
    let signature = STANDARD.encode(key.sign(message.as_bytes()).expect("signs"));
    let keys = WechatKeys::new()
        .with_public_key("PUB_KEY_ID_0114232134912410000000000000", key.public_key())
        .expect("a key id");
    let headers = Headers {
        timestamp: Some(ts),
        nonce: Some(nonce),
        signature: Some(&signature),
        serial: Some("PUB_KEY_ID_0114232134912410000000000000"),
    };
    assert!(keys.verify(&headers, body, now).is_ok());
    let pem_der = STANDARD
        .decode(
            v3_keys::TEST_KEY_PKCS1
                .lines()
                .filter(|l| !l.starts_with("-----"))
                .collect::<String>(),
        )
        .expect("PEM body");
    let key_pair = ring::rsa::KeyPair::from_der(&pem_der).expect("PKCS#1 key");
    let public_der = ring::signature::KeyPair::public_key(&key_pair)
        .as_ref()
        .to_vec();
    let raw_verify = || {
        if ts.parse::<i64>().map_or(true, |t| t.abs_diff(now) > 300) {
            return false;
        }
        let Ok(sig) = STANDARD.decode(signature.as_bytes()) else {
            return false;
        };
        let mut m = Vec::with_capacity(ts.len() + nonce.len() + body.len() + 3);
        for line in [ts.as_bytes(), nonce.as_bytes(), body.as_slice()] {
            m.extend_from_slice(line);
            m.push(b'\n');
        }
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            &public_der,
        )
        .verify(&m, &sig)
        .is_ok()
    };
    assert!(raw_verify());
    pair(
        c,
        "v3_verify_answer",
        || {
            keys.verify(black_box(&headers), black_box(body), black_box(now))
                .is_ok()
        },
        || black_box(raw_verify()),
    );

    let api_key = "0123456789abcdef0123456789abcdef";
    let v3_key = ApiV3Key::new(api_key).expect("32 bytes");
    let plain = br#"{"mchid":"1900000109","appid":"wxd678efh567hg6787","out_trade_no":"1217752501201407033233368018","transaction_id":"1217752501201407033233368018","trade_type":"JSAPI","trade_state":"SUCCESS","amount":{"total":100,"payer_total":100,"currency":"CNY"},"payer":{"openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},"success_time":"2018-06-08T10:34:56+08:00"}"#;
    let (gcm_nonce, aad) = ("fdasflkja484", "transaction");
    let sealed = aead::encrypt(&v3_key, gcm_nonce, aad, plain).expect("encrypts");
    let raw_decrypt = || -> Option<Vec<u8>> {
        let bytes = STANDARD.decode(sealed.as_bytes()).ok()?;
        let key: [u8; 32] = api_key.as_bytes().try_into().ok()?;
        let n: [u8; 12] = gcm_nonce.as_bytes().try_into().ok()?;
        aes_gcm::Aes256Gcm::new(&key.into())
            .decrypt(
                &n.into(),
                Payload {
                    msg: &bytes,
                    aad: aad.as_bytes(),
                },
            )
            .ok()
    };
    assert_eq!(raw_decrypt().as_deref(), Some(plain.as_slice()));
    pair(
        c,
        "v3_decrypt_resource",
        || {
            aead::decrypt(
                &v3_key,
                black_box(gcm_nonce),
                black_box(aad),
                black_box(&sealed),
            )
        },
        || black_box(raw_decrypt()),
    );
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_sign, bench_notify, bench_decrypt, bench_v3
}
criterion_main!(benches);
