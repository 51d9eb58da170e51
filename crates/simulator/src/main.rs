//! `wxsim`: the command line of the local WeChat.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use wxsim::config::{self, Config};
use wxsim::{Options, Sim};

#[derive(Clone, Copy, ValueEnum)]
enum NotifySignType {
    /// Leave `sign_type` out of notifies, as WeChat sometimes does even for HMAC-SHA256.
    Omit,
    /// Put `sign_type` in every notify.
    Include,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// A local WeChat for mini-program backends: login, user data, WeChat Pay v2 and its notify.
///
/// WeChat's servers:
///   GET  /sns/jscode2session?appid&secret&js_code&grant_type   (JSON, WeChat's errcodes)
///   POST /pay/unifiedorder | /pay/orderquery | /pay/closeorder  (signed XML, MD5 or HMAC-SHA256)
///   POST /v3/pay/transactions/jsapi                             (APIv3: JSON, Authorization
///   GET  /v3/pay/transactions/out-trade-no/{no}?mchid=           WECHATPAY2-SHA256-RSA2048,
///   POST /v3/pay/transactions/out-trade-no/{no}/close            answers signed Wechatpay-*)
///   POST /v3/refund/domestic/refunds                            (APIv3 refund, of v2 or v3
///   GET  /v3/refund/domestic/refunds/{out_refund_no}             orders: PROCESSING, then
///                                                                SUCCESS after --refund-delay-ms)
///   GET  /v3/bill/tradebill?bill_date=YYYY-MM-DD&bill_type=ALL[&tar_type=GZIP]
///   GET  /v3/billdownload/file?token=…          (the daily bill, today's as the day so far;
///   POST /pay/downloadbill                       v2: XML in, the bill or FAIL XML out)
///   and, after a payment, the signed notify POSTed to the order's notify_url (v2 XML, or the
///   v3 JSON envelope for a v3 order), and when a refund ends its v3 REFUND.* notify to the
///   refund's notify_url, retried on WeChat's schedule (15s 15s 30s 3m 10m 20m 30m 30m 30m
///   60m 3h 3h 3h 6h 6h) until acknowledged.
///
/// The WeChat app (JSON), for scripts and tests:
///   POST /sim/login {appid, openid?}            -> {code, openid}       (wx.login)
///   POST /sim/userinfo {appid, openid, profile?} -> {encryptedData, iv, rawData, signature, userInfo}
///   POST /sim/pay {timeStamp, nonceStr, package, signType, paySign, appId?}   (wx.requestPayment)
///   POST /sim/refund {out_trade_no, amount_fen, out_refund_no?, reason?, ends?}
///                                              a refund by hand in the merchant platform
///   GET  /sim/notifications[?out_trade_no=&out_refund_no=]   the notify delivery log
///   GET  /sim/orders/{out_trade_no}            an order as WeChat holds it, with its refunds
///   POST /sim/faults {target, kind, count?, out_trade_no?, delay_ms?, err_code?, trade_state?}
///                                              inject failures
///   GET|DELETE /sim/faults                     list | drop the faults not used up
///   GET  /sim/bill?date=YYYY-MM-DD[&mch_id=]   a day's bill as text
///   POST /sim/bill-padding {mch_id?, date, rows} N synthetic payments in that day's bill
///   POST /sim/clock {advance_secs}             move simulated time forward
///   POST /sim/reset                            forget everything
///
/// The app and merchant come from .dev.vars (WECHAT_APPID, WECHAT_APP_SECRET, WECHAT_MCH_ID,
/// WECHAT_PAY_KEY, SIGN_TYPE; for APIv3 WECHAT_PAY_V3_PRIVATE_KEY, WECHAT_PAY_V3_SERIAL,
/// WECHAT_PAY_V3_KEY, WECHAT_PAY_PUBLIC_KEY, WECHAT_PAY_PUBLIC_KEY_ID and wxsim's own
/// WXSIM_WECHAT_PRIVATE_KEY, WXSIM_ROTATED_PRIVATE_KEY), the file the worker reads under
/// `wrangler dev`, so the two always agree. `scripts/dev` writes it. Logs: one line per request; RUST_LOG=warn quiets them.
#[derive(Parser)]
#[command(name = "wxsim", version, verbatim_doc_comment)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "WXSIM_LISTEN", default_value = "127.0.0.1:9100")]
    listen: SocketAddr,

    /// The .dev.vars file to read the app and merchant from.
    #[arg(long, env = "WXSIM_DEV_VARS", value_name = "PATH")]
    dev_vars: Option<PathBuf>,

    /// Another mini-program, as APPID:SECRET (repeatable).
    #[arg(long = "app", value_name = "APPID:SECRET")]
    apps: Vec<String>,

    /// Another merchant, as MCH_ID:KEY:APPID[:MD5|HMAC-SHA256] (repeatable).
    #[arg(long = "merchant", value_name = "MCH_ID:KEY:APPID[:SIGN_TYPE]")]
    merchants: Vec<String>,

    /// Give the users of apps added with --app a unionid.
    #[arg(long)]
    unionid: bool,

    /// Multiply WeChat's notify retry delays: 0.001 makes 15 s into 15 ms, for tests.
    #[arg(long, env = "WXSIM_TIME_SCALE", default_value_t = 1.0)]
    time_scale: f64,

    /// Whether notifies carry sign_type.
    #[arg(long, value_enum, default_value = "omit")]
    notify_sign_type: NotifySignType,

    /// How long a notify receiver may take to answer, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    notify_timeout_ms: u64,

    /// How long a refund stays PROCESSING before it ends (SUCCESS, or ABNORMAL/CLOSED by a
    /// fault) and its REFUND.* notify goes out, in milliseconds of WeChat's time:
    /// multiplied by --time-scale like the retry delays.
    #[arg(long, env = "WXSIM_REFUND_DELAY_MS", default_value_t = wxsim::DEFAULT_REFUND_DELAY_MS)]
    refund_delay_ms: u64,

    /// Keep the state (codes, users, orders, refunds, pending notifies) in FILE across restarts.
    #[arg(long = "state", env = "WXSIM_STATE", value_name = "FILE")]
    state_file: Option<PathBuf>,

    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
}

fn config(args: &Args) -> Result<Config, String> {
    let explicit = args.dev_vars.is_some();
    let path = args
        .dev_vars
        .clone()
        .unwrap_or_else(|| PathBuf::from(".dev.vars"));
    let mut config = if explicit || path.exists() {
        let vars = config::read_dev_vars(&path).map_err(|e| e.to_string())?;
        Config::from_dev_vars(&vars).map_err(|e| format!("{}: {e}", path.display()))?
    } else {
        Config::default()
    };
    for app in &args.apps {
        config
            .add_app_flag(app, args.unionid)
            .map_err(|e| e.to_string())?;
    }
    for m in &args.merchants {
        config.add_merchant_flag(m).map_err(|e| e.to_string())?;
    }
    config.check().map_err(|e| e.to_string())?;
    Ok(config)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    match args.log_format {
        LogFormat::Text => fmt.init(),
        LogFormat::Json => fmt.json().init(),
    }
    if !(args.time_scale > 0.0 && args.time_scale <= 1000.0) {
        eprintln!("wxsim: --time-scale must be > 0 and ≤ 1000");
        return ExitCode::from(2);
    }
    let config = match config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("wxsim: {e}");
            return ExitCode::from(2);
        }
    };
    let state = match &args.state_file {
        Some(path) => match wxsim::load_state(path) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("wxsim: {e}");
                return ExitCode::from(2);
            }
        },
        None => Default::default(),
    };
    let options = Options {
        time_scale: args.time_scale,
        notify_sign_type: matches!(args.notify_sign_type, NotifySignType::Include),
        notify_timeout: Duration::from_millis(args.notify_timeout_ms),
        state_file: args.state_file.clone(),
        refund_delay: Duration::from_millis(args.refund_delay_ms),
    };
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("wxsim: cannot listen on {}: {e}", args.listen);
            return ExitCode::from(1);
        }
    };
    tracing::info!(
        listen = %args.listen,
        apps = ?config.apps.keys().collect::<Vec<_>>(),
        merchants = ?config.merchants.keys().collect::<Vec<_>>(),
        v3_merchants = ?config.v3.keys().collect::<Vec<_>>(),
        time_scale = args.time_scale,
        "wxsim ready"
    );
    let sim = Sim::new(config, options, state);
    match wxsim::serve(listener, sim, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wxsim: {e}");
            ExitCode::from(1)
        }
    }
}
