//! The `wxsim` binary itself: flags, .dev.vars, --state across a restart, its logs.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{APPID, MD5_KEY, MD5_MCH, SECRET};
use serde_json::{Value, json};
use wxedge_core::pay::{Merchant, UnifiedOrder};
use wxedge_core::{Fen, SignType};

fn wxsim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wxsim"))
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wxsim-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write_dev_vars(dir: &Path) -> PathBuf {
    let f = dir.join(".dev.vars");
    std::fs::write(
        &f,
        format!(
            "WECHAT_APPID={APPID}\nWECHAT_APP_SECRET={SECRET}\nWECHAT_MCH_ID={MD5_MCH}\n\
             WECHAT_PAY_KEY={MD5_KEY}\nSIGN_TYPE=MD5\n"
        ),
    )
    .unwrap();
    f
}

#[test]
fn help_and_config_errors() {
    let out = wxsim().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "/sns/jscode2session",
        "/sim/pay",
        "/sim/faults",
        ".dev.vars",
        "--time-scale",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}");
    }
    let dir = temp_dir("errors");
    let out = wxsim()
        .current_dir(&dir)
        .args(["--dev-vars", "missing.vars"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.vars"));
    let out = wxsim().current_dir(&dir).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no mini-program configured"));
    let out = wxsim()
        .current_dir(&dir)
        .args(["--app", "wx1:s", "--time-scale", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

struct Running {
    child: Child,
    base: String,
}

impl Running {
    async fn start(dir: &Path, state: &Path) -> Running {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = wxsim()
            .current_dir(dir)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--state")
            .arg(state)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        for _ in 0..200 {
            if reqwest::get(format!("{base}/healthz")).await.is_ok() {
                return Running { child, base };
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("wxsim did not start");
    }

    /// SIGTERM, as Ctrl-C or a supervisor would stop it; returns its stdout.
    fn stop(mut self) -> String {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "wxsim exited with {status}");
        let mut out = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        out
    }
}

async fn post(base: &str, path: &str, body: impl Into<reqwest::Body>) -> String {
    reqwest::Client::new()
        .post(format!("{base}{path}"))
        .body(body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn state_survives_a_restart_and_logs_hold_no_secret() {
    let dir = temp_dir("state");
    write_dev_vars(&dir);
    let state = dir.join("wxsim.json");
    let m = Merchant {
        appid: APPID.into(),
        mch_id: MD5_MCH.into(),
        key: MD5_KEY.into(),
        sign_type: SignType::Md5,
    };

    let sim = Running::start(&dir, &state).await;
    let login: Value = serde_json::from_str(
        &post(
            &sim.base,
            "/sim/login",
            json!({"appid": APPID, "openid": "oKeep"}).to_string(),
        )
        .await,
    )
    .unwrap();
    let answer: Value = reqwest::get(format!(
        "{}/sns/jscode2session?appid={APPID}&secret={SECRET}&js_code={}&grant_type=authorization_code",
        sim.base,
        login["code"].as_str().unwrap()
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(answer["openid"], "oKeep");
    let order = UnifiedOrder {
        body: "kept".into(),
        out_trade_no: "KEEP1".into(),
        total_fee: Fen::new(42),
        spbill_create_ip: "127.0.0.1".into(),
        notify_url: "http://127.0.0.1:9/notify".into(),
        trade_type: Default::default(),
        openid: Some("oKeep".into()),
        attach: None,
        time_expire: None,
    };
    let body = m.unified_order_request(&order, "n").unwrap();
    let prepay = m
        .parse_unified_order_response(
            post(&sim.base, "/pay/unifiedorder", body.clone())
                .await
                .as_bytes(),
        )
        .unwrap()
        .prepay_id;
    let log = sim.stop();
    assert!(
        log.contains("/pay/unifiedorder"),
        "one line per request: {log}"
    );
    assert!(!log.contains(SECRET), "the AppSecret leaked into the log");
    assert!(!log.contains(MD5_KEY), "the API key leaked into the log");
    assert!(state.exists());

    // Restarted on the same file: the order, its prepay_id and the user are still there.
    let sim = Running::start(&dir, &state).await;
    let again = m
        .parse_unified_order_response(post(&sim.base, "/pay/unifiedorder", body).await.as_bytes())
        .unwrap()
        .prepay_id;
    assert_eq!(again, prepay);
    let pay = m.payment_params(&prepay, 1_795_000_000, "n");
    let paid: Value = serde_json::from_str(
        &post(&sim.base, "/sim/pay", serde_json::to_string(&pay).unwrap()).await,
    )
    .unwrap();
    assert_eq!(paid["errMsg"], "requestPayment:ok", "{paid}");
    sim.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
