//! Server settings, from flags or environment variables.

use clap::{Args, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Server settings; each flag can also be set by its environment variable.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Database URL: `postgres://…` for PostgreSQL, or a SQLite file path (`sqlite://` optional).
    #[arg(
        long,
        env = "SLOPROOF_DATABASE_URL",
        default_value = "sloproof.db",
        global = true
    )]
    pub database_url: String,
    /// Address to listen on.
    #[arg(
        long,
        env = "SLOPROOF_BIND",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub bind: String,
    /// Log filter, e.g. `info` or `sloproof=debug,actix_web=info`.
    #[arg(long, env = "SLOPROOF_LOG", default_value = "info", global = true)]
    pub log_level: String,
    /// Log line format.
    #[arg(
        long,
        env = "SLOPROOF_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
    /// Largest bulk-upload body in bytes.
    #[arg(long, env = "SLOPROOF_INGEST_BODY_LIMIT", default_value_t = 512 << 20, global = true)]
    pub ingest_body_limit: usize,
    /// Largest JSON body of other requests in bytes.
    #[arg(long, env = "SLOPROOF_JSON_BODY_LIMIT", default_value_t = 1 << 20, global = true)]
    pub json_body_limit: usize,
    /// Largest analysis, in bootstrap weights: assigned units × resamples × metrics (SLI, KPIs
    /// and guardrails). A larger one is refused with a 422 saying what to lower.
    #[arg(
        long,
        env = "SLOPROOF_MAX_ANALYSIS_COST",
        default_value_t = 100_000_000_000,
        value_parser = clap::value_parser!(u64).range(1..),
        global = true
    )]
    pub max_analysis_cost: u64,
    /// Largest analysis in assigned units: an analysis holds every unit's values (peak RSS
    /// ~0.5 GB per million units on SQLite, ~0.9 GB on PostgreSQL), so the default keeps it
    /// under 1 GiB. A larger one is refused with a 422 pointing at the summary
    /// (`GET /experiments/{key}/summary?resamples=…`), which runs in bounded memory.
    #[arg(
        long,
        env = "SLOPROOF_MAX_ANALYSIS_UNITS",
        default_value_t = 1_000_000,
        value_parser = clap::value_parser!(u64).range(1..),
        global = true
    )]
    pub max_analysis_units: u64,
    /// Analyses at least this large (units × resamples × metrics) answer 202 with a job
    /// instead of computing while the request waits (`?async=true` asks for a job at any size).
    #[arg(
        long,
        env = "SLOPROOF_ASYNC_ANALYSIS_COST",
        default_value_t = 10_000_000_000,
        value_parser = clap::value_parser!(u64).range(1..),
        global = true
    )]
    pub async_analysis_cost: u64,
    /// Analysis jobs queued or running at once; more answer 503 with `Retry-After`.
    #[arg(
        long,
        env = "SLOPROOF_MAX_QUEUED_JOBS",
        default_value_t = 32,
        value_parser = clap::value_parser!(u32).range(1..),
        global = true
    )]
    pub max_queued_jobs: u32,
    /// Writes (POST, PUT, DELETE) per second each token may make on average; more answer
    /// 429 with `Retry-After`. 0 turns the limit off.
    #[arg(long, env = "SLOPROOF_WRITE_RATE", default_value_t = 20, global = true)]
    pub write_rate: u32,
    /// Writes a token may make in a burst before the rate applies.
    #[arg(
        long,
        env = "SLOPROOF_WRITE_BURST",
        default_value_t = 200,
        value_parser = clap::value_parser!(u32).range(1..),
        global = true
    )]
    pub write_burst: u32,
    /// Analyses computed at once; further requests answer 503 with `Retry-After`.
    #[arg(
        long,
        env = "SLOPROOF_MAX_CONCURRENT_ANALYSES",
        default_value_t = 2,
        value_parser = clap::value_parser!(u16).range(1..),
        global = true
    )]
    pub max_concurrent_analyses: u16,
    /// Database connections in the pool.
    #[arg(
        long,
        env = "SLOPROOF_DB_POOL_SIZE",
        default_value_t = 8,
        value_parser = clap::value_parser!(u32).range(1..),
        global = true
    )]
    pub db_pool_size: u32,
    /// MiB of decoded production windows kept in memory between live-status reads (checked
    /// against the series' revision on every read); 0 turns the cache off.
    #[arg(
        long,
        env = "SLOPROOF_SERIES_CACHE_MB",
        default_value_t = 64,
        value_parser = clap::value_parser!(u32).range(0..=65_536),
        global = true
    )]
    pub series_cache_mb: u32,
    /// Initial admin bearer token (at least 16 characters). Without it, the first start creates
    /// an admin token and prints it once to the log.
    #[arg(
        long,
        env = "SLOPROOF_ADMIN_TOKEN",
        global = true,
        hide_env_values = true
    )]
    pub admin_token: Option<String>,
    /// Days after which an SLO's evidence is due for re-validation (its status says so).
    #[arg(
        long,
        env = "SLOPROOF_EVIDENCE_MAX_AGE_DAYS",
        default_value_t = 90,
        value_parser = clap::value_parser!(u32).range(1..=3650),
        global = true
    )]
    pub evidence_max_age_days: u32,
    /// Seconds between background pulls of the production series of active SLOs' SLIs from
    /// their Prometheus sources; 0 (default) turns the background sync off.
    #[arg(
        long,
        env = "SLOPROOF_SYNC_INTERVAL",
        default_value_t = 0,
        global = true
    )]
    pub sync_interval: u64,
    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "SLOPROOF_WORKERS", value_parser = at_least_one, global = true)]
    pub workers: Option<usize>,
}

/// A count of at least one (`usize` has no range parser in clap).
fn at_least_one(raw: &str) -> Result<usize, String> {
    match raw.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("'{raw}' is not a whole number of at least 1")),
    }
}
