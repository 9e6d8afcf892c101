//! Process start-up: logging, database, HTTP server.

use actix_web::dev::Server;
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
    if let Some(token) = api::auth::bootstrap(&db, settings.admin_token.as_deref())
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
    };
    Ok(web::Data::new(AppState { db, limits }))
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

/// Serves the API until the process is stopped.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let state = state(&settings)?;
    let listener = std::net::TcpListener::bind(&settings.bind)
        .with_context(|| format!("cannot bind {}", settings.bind))?;
    tracing::info!(bind = %settings.bind, backend = ?state.db.backend(), "sloproof listening");
    build_server(state, listener, settings.workers)?.await?;
    Ok(())
}
