//! # wxsim: a local WeChat
//!
//! Plays WeChat's servers (`/sns/jscode2session`, `/pay/unifiedorder`, `/pay/orderquery`,
//! `/pay/closeorder`, their APIv3 counterparts, APIv3 refunds, and the async payment and
//! refund notifies with their retries) and the WeChat app
//! (`/sim/login`, `/sim/userinfo`, `/sim/pay`), so the whole mini-program flow runs on one
//! machine without a merchant licence.
//!
//! Every signature, XML document and cipher goes through `wxedge-core`: the simulator
//! decides *what* WeChat would do (codes valid once, prepay_ids for 2 hours, the retry
//! schedule, injected faults) and the core says *how* it is written.
//!
//! | module | what it holds |
//! |---|---|
//! | [`config`] | apps and merchants, from `.dev.vars` or flags |
//! | [`state`] | codes, users, orders, the delivery log: plain data, persisted by `--state` |
//! | [`faults`] | injected failures, consumed by matching calls |
//! | [`wechat`] | WeChat's server endpoints (v2 XML, jscode2session) |
//! | [`wechat_v3`] | WeChat Pay APIv3: JSAPI prepay, query, close, refund and its query, signed like WeChat |
//! | [`refunds`] | WeChat's refund rules (API and by hand) and a refund's course to its REFUND.* notify |
//! | [`bills`] | the daily trade bill: which payments and refunds a day holds, faults, padding |
//! | [`app`] | the app's side and the `/sim/*` controls |
//! | [`notifier`] | delivering notifies (payments' and refunds') on WeChat's retry schedule |

pub mod app;
pub mod bills;
pub mod config;
pub mod faults;
pub mod notifier;
pub mod refunds;
pub mod state;
pub mod wechat;
pub mod wechat_v3;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State as AxumState};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};

use wxedge_core::pay::DOWNLOAD_BILL_PATH;
use wxedge_core::v3::refund::REFUND_PATH;
use wxedge_core::v3::tradebill::{DOWNLOAD_PATH, TRADEBILL_PATH};

use crate::config::Config;
use crate::state::State;

/// How long a `wx.login` code stays valid.
pub const CODE_TTL_MS: i64 = 5 * 60 * 1000;
/// How long a prepay_id stays valid.
pub const PREPAY_TTL_MS: i64 = 2 * 3600 * 1000;
/// jscode2session calls allowed per user per window (45011 beyond).
pub const RATE_LIMIT_CALLS: usize = 100;
pub const RATE_LIMIT_WINDOW_MS: i64 = 60 * 1000;

/// Knobs that are not about who exists.
#[derive(Debug, Clone)]
pub struct Options {
    /// Multiplies WeChat's notify retry delays (0.001 turns 15 s into 15 ms).
    pub time_scale: f64,
    /// Whether notifies carry `sign_type`. WeChat sometimes leaves it out even for
    /// HMAC-SHA256 merchants; receivers must cope with both.
    pub notify_sign_type: bool,
    /// How long a notify receiver may take to answer.
    pub notify_timeout: Duration,
    /// Where the state is kept across restarts.
    pub state_file: Option<PathBuf>,
    /// How long a refund stays PROCESSING before it ends, in WeChat's time: multiplied by
    /// `time_scale` like the retry delays.
    pub refund_delay: Duration,
}

/// A refund's PROCESSING time unless `--refund-delay-ms` says otherwise.
pub const DEFAULT_REFUND_DELAY_MS: u64 = 1000;

impl Default for Options {
    fn default() -> Self {
        Options {
            time_scale: 1.0,
            notify_sign_type: false,
            notify_timeout: Duration::from_secs(5),
            state_file: None,
            refund_delay: Duration::from_millis(DEFAULT_REFUND_DELAY_MS),
        }
    }
}

/// The simulator: configuration, state, and the HTTP client that sends notifies.
pub struct Sim {
    pub config: Config,
    pub options: Options,
    state: Mutex<State>,
    dirty: AtomicBool,
    /// A copy of `State::clock_offset_ms`, readable without the lock.
    clock_offset_ms: AtomicI64,
    /// Bumped by `/sim/reset`: deliveries of an older generation stop.
    generation: AtomicU64,
    http: reqwest::Client,
}

impl Sim {
    pub fn new(config: Config, options: Options, state: State) -> Arc<Sim> {
        let http = reqwest::Client::builder()
            .timeout(options.notify_timeout)
            .pool_max_idle_per_host(64)
            .build()
            .unwrap_or_default();
        Arc::new(Sim {
            config,
            options,
            clock_offset_ms: AtomicI64::new(state.clock_offset_ms),
            state: Mutex::new(state),
            dirty: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            http,
        })
    }

    /// The state, for reading. A panic elsewhere never poisons it for good: the data is
    /// plain and every handler leaves it consistent before it can panic.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The state, for changing: marks it to be saved.
    pub fn state_mut(&self) -> MutexGuard<'_, State> {
        self.dirty.store(true, Ordering::Relaxed);
        self.state()
    }

    /// Simulated time in Unix milliseconds: the real clock plus `/sim/clock` advances.
    pub fn now_ms(&self) -> i64 {
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        real.saturating_add(self.clock_offset_ms.load(Ordering::SeqCst))
    }

    /// The real clock in Unix seconds, without `/sim/clock`'s offset: v3 signatures carry
    /// it (`Wechatpay-Timestamp`) and check the merchant's `Authorization` timestamp against
    /// it, because the merchant checks with its own real clock; the offset only moves
    /// WeChat's business time (codes, prepay_ids expiring).
    pub fn wall_secs(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }

    /// Moves simulated time forward (never back: WeChat's clock does not go back).
    pub fn advance_clock(&self, ms: i64) -> i64 {
        let mut st = self.state_mut();
        st.clock_offset_ms = st.clock_offset_ms.saturating_add(ms.max(0));
        self.clock_offset_ms
            .store(st.clock_offset_ms, Ordering::SeqCst);
        st.clock_offset_ms
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn bump_generation(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Writes the state to `--state FILE` if it changed (to a temporary file, then
    /// renamed, so a crash never leaves half a file).
    pub fn save(&self) -> std::io::Result<()> {
        let Some(path) = &self.options.state_file else {
            return Ok(());
        };
        if !self.dirty.swap(false, Ordering::Relaxed) {
            return Ok(());
        }
        let json = serde_json::to_vec(&*self.state()).map_err(std::io::Error::other)?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, json)?;
        std::fs::rename(&tmp, path)
    }
}

/// Reads `--state FILE` if it exists.
pub fn load_state(path: &std::path::Path) -> Result<State, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| format!("{} is not a wxsim state file: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Every route of the simulator.
pub fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/sns/jscode2session", get(wechat::jscode2session))
        .route("/pay/unifiedorder", post(wechat::unifiedorder))
        .route("/pay/orderquery", post(wechat::orderquery))
        .route("/pay/closeorder", post(wechat::closeorder))
        .route("/v3/pay/transactions/jsapi", post(wechat_v3::jsapi))
        .route(
            "/v3/pay/transactions/out-trade-no/{out_trade_no}",
            get(wechat_v3::query),
        )
        .route(
            "/v3/pay/transactions/out-trade-no/{out_trade_no}/close",
            post(wechat_v3::close),
        )
        .route(REFUND_PATH, post(wechat_v3::refund))
        .route(
            "/v3/refund/domestic/refunds/{out_refund_no}",
            get(wechat_v3::refund_query),
        )
        .route(TRADEBILL_PATH, get(wechat_v3::tradebill))
        .route(DOWNLOAD_PATH, get(wechat_v3::billdownload))
        .route(DOWNLOAD_BILL_PATH, post(wechat::downloadbill))
        .route("/sim/login", post(app::login))
        .route("/sim/userinfo", post(app::userinfo))
        .route("/sim/pay", post(app::pay))
        .route("/sim/refund", post(app::refund))
        .route("/sim/notifications", get(app::notifications))
        .route("/sim/orders/{out_trade_no}", get(app::order))
        .route(
            "/sim/faults",
            post(app::add_fault)
                .get(app::list_faults)
                .delete(app::clear_faults),
        )
        .route("/sim/bill", get(app::bill))
        .route("/sim/bill-padding", post(app::bill_padding))
        .route("/sim/clock", post(app::advance_clock))
        .route("/sim/reset", post(app::reset))
        .route("/healthz", get(app::healthz))
        .fallback(app::not_found)
        // WeChat's own bound on XML bodies is enforced by the core's parser (64 KiB); this
        // only stops a client from making us buffer megabytes first.
        .layer(DefaultBodyLimit::max(256 * 1024))
        .layer(middleware::from_fn(log_request))
        .with_state(sim)
}

/// One structured line per request: method, path (never the query, which carries the
/// AppSecret on jscode2session), status, milliseconds.
async fn log_request(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let start = Instant::now();
    let res = next.run(req).await;
    tracing::info!(
        %method,
        path,
        status = res.status().as_u16(),
        ms = format_args!("{:.2}", start.elapsed().as_secs_f64() * 1e3),
        "request"
    );
    res
}

/// Starts the background work (saving the state, resuming unfinished notifies) and serves
/// until `shutdown` resolves; then saves once more.
pub async fn serve(
    listener: tokio::net::TcpListener,
    sim: Arc<Sim>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    notifier::resume(&sim);
    refunds::resume(&sim);
    if sim.options.state_file.is_some() {
        let saver = Arc::clone(&sim);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if let Err(e) = saver.save() {
                    tracing::error!(error = %e, "cannot save the state");
                }
            }
        });
    }
    axum::serve(listener, router(Arc::clone(&sim)))
        .with_graceful_shutdown(shutdown)
        .await?;
    sim.save()
}

/// Shared by handlers: `/sim/reset` empties the state and stops pending deliveries.
pub(crate) fn reset(sim: &Sim) {
    sim.bump_generation();
    *sim.state_mut() = State::default();
    sim.clock_offset_ms.store(0, Ordering::SeqCst);
}

pub(crate) type SimState = AxumState<Arc<Sim>>;
