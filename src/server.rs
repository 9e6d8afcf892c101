//! Process start-up, the composition root: logging, the database, the shared state every
//! request sees, and the HTTP server. The only code besides `store/` and the `service` seams
//! that names the database, which it opens and hands to the services.

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use tracing_subscriber::EnvFilter;

use crate::analysis::jobs::{JobRunner, Slot, Slots};
use crate::api;
use crate::config::{LogFormat, Settings};
use crate::error::{AppError, AppResult};
use crate::store::Db;

/// Body size limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest bulk upload, in bytes.
    pub ingest_body_bytes: usize,
    /// Largest JSON body elsewhere, in bytes.
    pub json_body_bytes: usize,
    /// Analyses computed at once; more answer 503 with `Retry-After` (each uses all cores and
    /// memory in proportion to the experiment).
    pub max_concurrent_analyses: usize,
    /// Largest analysis: assigned units × bootstrap resamples × metrics.
    pub max_analysis_cost: u64,
    /// Largest analysis in assigned units (its memory grows with them).
    pub max_analysis_units: u64,
    /// Analyses at least this large answer 202 with a job.
    pub async_analysis_cost: u64,
    /// Analysis jobs queued or running at once.
    pub max_queued_jobs: usize,
    /// Writes (POST, PUT, DELETE) per second each token may make on average; 0: no limit.
    pub write_rate_per_second: u32,
    /// Writes a token may make at once before the rate applies.
    pub write_burst: u32,
    /// Days after which an SLO's evidence is due for re-validation.
    pub evidence_max_age_days: u32,
}

impl Limits {
    /// The limits of one analysis.
    pub fn analysis(&self) -> crate::analysis::service::AnalysisLimits {
        crate::analysis::service::AnalysisLimits {
            max_cost: self.max_analysis_cost,
            max_units: self.max_analysis_units,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            ingest_body_bytes: 512 << 20,
            json_body_bytes: 1 << 20,
            max_concurrent_analyses: 2,
            max_analysis_cost: 100_000_000_000,
            max_analysis_units: 1_000_000,
            async_analysis_cost: 10_000_000_000,
            max_queued_jobs: 32,
            write_rate_per_second: 20,
            write_burst: 200,
            evidence_max_age_days: 90,
        }
    }
}

/// Shared state of every request.
pub struct AppState {
    pub db: Db,
    pub limits: Limits,
    /// Analyses being computed now, by requests and job workers.
    slots: Slots,
    /// The analysis job workers' queue.
    pub jobs: JobRunner,
    /// Each token's write budget (a GCRA rate limiter keyed by token id); `None` when off.
    writes: Option<governor::DefaultKeyedRateLimiter<i64>>,
}

/// Seconds a client is asked to wait when every analysis slot is taken.
const ANALYSIS_RETRY_AFTER_SECONDS: u64 = 10;

impl AppState {
    pub fn new(db: Db, limits: Limits) -> AppState {
        let writes = std::num::NonZeroU32::new(limits.write_rate_per_second).map(|rate| {
            let burst = std::num::NonZeroU32::new(limits.write_burst).unwrap_or(rate);
            governor::RateLimiter::keyed(governor::Quota::per_second(rate).allow_burst(burst))
        });
        let slots = Slots::new(limits.max_concurrent_analyses);
        let jobs = JobRunner::start(
            &db,
            limits.max_concurrent_analyses,
            &slots,
            limits.analysis(),
        );
        AppState {
            db,
            limits,
            slots,
            jobs,
            writes,
        }
    }

    /// Spends one write of `token_id`'s budget, or answers 429 saying when to retry.
    pub fn spend_write(&self, token_id: i64) -> AppResult<()> {
        use governor::clock::Clock;
        let Some(limiter) = &self.writes else {
            return Ok(());
        };
        limiter.check_key(&token_id).map_err(|not_until| {
            let wait = not_until.wait_time_from(limiter.clock().now());
            AppError::TooManyRequests {
                per_second: self.limits.write_rate_per_second,
                burst: self.limits.write_burst,
                retry_after_seconds: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            }
        })
    }

    /// Takes an analysis slot, or answers 503 when all are taken.
    pub fn analysis_slot(&self) -> AppResult<Slot> {
        self.slots.try_take().ok_or_else(|| {
            AppError::busy(
                format!(
                    "{} analyses are running, the most this server computes at once (SLOPROOF_MAX_CONCURRENT_ANALYSES)",
                    self.limits.max_concurrent_analyses
                ),
                ANALYSIS_RETRY_AFTER_SECONDS,
            )
        })
    }

    /// Runs blocking work with the database (a service call) on actix's blocking pool, so the
    /// async workers never wait on it.
    pub async fn run<T, F>(&self, f: F) -> AppResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Db) -> AppResult<T> + Send + 'static,
    {
        let db = self.db.clone();
        web::block(move || f(&db))
            .await
            .map_err(|e| AppError::Internal(anyhow::anyhow!("blocking task failed: {e}")))?
    }
}

/// Installs the global tracing subscriber (text or JSON lines on stderr).
pub fn init_logging(settings: &Settings) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&settings.log_level).context("invalid log level")?;
    // One line per request, written when its span (opened by TracingLogger) closes.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_writer(std::io::stderr);
    let result = match settings.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}

/// Builds the shared state: opens the database and applies migrations.
pub fn state(settings: &Settings) -> anyhow::Result<web::Data<AppState>> {
    let db = Db::open(&settings.database_url, settings.db_pool_size)?
        .with_series_cache(settings.series_cache_mb as usize * (1 << 20));
    if let Some(token) = crate::access::service::bootstrap(&db, settings.admin_token.as_deref())
        .map_err(|e| anyhow::anyhow!("{e}"))?
    {
        tracing::warn!(
            token = %token,
            "created the initial admin API token; it is shown only this once: store it, or set SLOPROOF_ADMIN_TOKEN"
        );
    }
    let limits = Limits {
        ingest_body_bytes: settings.ingest_body_limit,
        json_body_bytes: settings.json_body_limit,
        max_concurrent_analyses: usize::from(settings.max_concurrent_analyses),
        max_analysis_cost: settings.max_analysis_cost,
        max_analysis_units: settings.max_analysis_units,
        async_analysis_cost: settings.async_analysis_cost,
        max_queued_jobs: settings.max_queued_jobs as usize,
        write_rate_per_second: settings.write_rate,
        write_burst: settings.write_burst,
        evidence_max_age_days: settings.evidence_max_age_days,
    };
    Ok(web::Data::new(AppState::new(db, limits)))
}

/// Builds the HTTP server on an already bound listener (tests bind port 0).
pub fn build_server(
    state: web::Data<AppState>,
    listener: std::net::TcpListener,
    workers: Option<usize>,
) -> anyhow::Result<Server> {
    let mut server = HttpServer::new(move || {
        App::new()
            .wrap(tracing_actix_web::TracingLogger::default())
            .configure(api::configure(state.clone()))
            .default_service(web::to(api::problem::not_found))
    });
    if let Some(w) = workers {
        server = server.workers(w);
    }
    Ok(server.listen(listener)?.run())
}

/// Serves the API until the process is stopped. The address is bound before the admin token is
/// set up: a second start that cannot bind (another server holds the port) must not rotate the
/// token of the server that is running.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let listener = std::net::TcpListener::bind(&settings.bind)
        .with_context(|| format!("cannot bind {}", settings.bind))?;
    let state = state(&settings)?;
    tracing::info!(bind = %settings.bind, backend = ?state.db.backend(), "sloproof listening");
    if settings.sync_interval > 0 {
        let state = state.clone();
        let every = std::time::Duration::from_secs(settings.sync_interval);
        actix_web::rt::spawn(async move {
            loop {
                api::series::sync_round(&state).await;
                actix_web::rt::time::sleep(every).await;
            }
        });
    }
    build_server(state, listener, settings.workers)?.await?;
    Ok(())
}
