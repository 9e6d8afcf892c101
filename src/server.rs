//! Process start-up: logging, database, HTTP server.

use actix_web::{web, App, HttpServer};
use anyhow::Context;
use tracing_subscriber::EnvFilter;

use crate::api::{self, AppState, Limits};
use crate::config::{LogFormat, Settings};
use crate::store::Db;

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
    let db = Db::open(&settings.database_url, settings.db_pool_size)?;
    let limits = Limits {
        ingest_body_bytes: settings.ingest_body_limit,
        json_body_bytes: settings.json_body_limit,
    };
    Ok(web::Data::new(AppState { db, limits }))
}

/// Serves the API until the process is stopped.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let state = state(&settings)?;
    tracing::info!(bind = %settings.bind, backend = ?state.db.backend(), "sloproof listening");
    let mut server = HttpServer::new(move || {
        App::new()
            .wrap(tracing_actix_web::TracingLogger::default())
            .configure(api::configure(state.clone()))
            .default_service(web::to(api::problem::not_found))
    });
    if let Some(w) = settings.workers {
        server = server.workers(w);
    }
    server
        .bind(&settings.bind)
        .with_context(|| format!("cannot bind {}", settings.bind))?
        .run()
        .await?;
    Ok(())
}
