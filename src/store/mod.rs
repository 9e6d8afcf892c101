//! Storage: the diesel schema, the connection pool and every query. Nothing else in the crate
//! touches the database. All functions here are blocking; async callers run them through
//! `actix_web::web::block`.
//!
//! One schema serves two backends: SQLite (embedded, the default) and PostgreSQL, chosen by the
//! database URL's scheme (`postgres://` or `postgresql://` for PostgreSQL; `sqlite://PATH` or a
//! plain path for SQLite).

pub mod analyses;
pub mod assignments;
pub mod experiments;
pub mod metrics;
pub mod observations;
pub mod recommendations;
pub mod schema;
pub mod tokens;
pub mod upsert;

use anyhow::Context;
use diesel::connection::SimpleConnection;
use diesel::r2d2::{ManageConnection, Pool, PooledConnection};
use diesel::{Connection, PgConnection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// How long a SQLite writer waits for a lock before giving up.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 10_000;

/// A connection to either backend. Queries written against it run on both.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgresql(PgConnection),
    Sqlite(SqliteConnection),
}

/// Runs the same diesel code against the concrete connection of either backend, for queries the
/// multi-backend connection cannot express (`ON CONFLICT`, bulk inserts).
macro_rules! with_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::store::DbConnection::Postgresql($c) => $body,
            $crate::store::DbConnection::Sqlite($c) => $body,
        }
    };
}
pub(crate) use with_backend;

/// Which database a URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// Chooses the backend by the URL's scheme and returns the string to connect with.
    pub fn from_url(url: &str) -> (Backend, String) {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_owned())
        } else {
            (
                Backend::Sqlite,
                url.strip_prefix("sqlite://").unwrap_or(url).to_owned(),
            )
        }
    }
}

/// r2d2 manager that opens a connection of the backend the URL names, and sets SQLite up for
/// concurrent use (WAL journal, busy timeout, foreign keys).
#[derive(Debug)]
pub struct Manager {
    backend: Backend,
    target: String,
}

impl ManageConnection for Manager {
    type Connection = DbConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<DbConnection, Self::Error> {
        use diesel::r2d2::Error as E;
        match self.backend {
            Backend::Postgres => PgConnection::establish(&self.target)
                .map(DbConnection::Postgresql)
                .map_err(E::ConnectionError),
            Backend::Sqlite => {
                let mut c =
                    SqliteConnection::establish(&self.target).map_err(E::ConnectionError)?;
                // The WAL journal mode is persistent and set once by `Db::open`.
                c.batch_execute(&format!(
                    "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}; PRAGMA synchronous = NORMAL; \
                     PRAGMA foreign_keys = ON;"
                ))
                .map_err(E::QueryError)?;
                Ok(DbConnection::Sqlite(c))
            }
        }
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), Self::Error> {
        conn.batch_execute("SELECT 1")
            .map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, _conn: &mut DbConnection) -> bool {
        false
    }
}

/// Puts SQLite in multi-thread mode before its first connection opens: a connection is used by
/// one thread at a time (diesel's `SqliteConnection` is not `Sync` and the pool hands each to one
/// caller), so SQLite's per-connection mutex, taken on every column read in the default serialized
/// mode, only costs time. When SQLite is already initialised (another pool opened first in this
/// process), the call is refused and the mode stays serialized, which is merely slower.
#[allow(unsafe_code)] // the one FFI call of the crate; see SAFETY below
fn sqlite_multithread() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: sqlite3_config with SQLITE_CONFIG_MULTITHREAD takes no further arguments and
        // is only valid before sqlite3_initialize; otherwise it returns SQLITE_MISUSE, harmlessly.
        let rc =
            unsafe { libsqlite3_sys::sqlite3_config(libsqlite3_sys::SQLITE_CONFIG_MULTITHREAD) };
        if rc != libsqlite3_sys::SQLITE_OK {
            tracing::debug!(
                rc,
                "SQLite was already initialised; it stays in serialized mode"
            );
        }
    });
}

/// The database: a connection pool of one backend.
#[derive(Clone)]
pub struct Db {
    pool: Pool<Manager>,
    backend: Backend,
}

pub type Conn = PooledConnection<Manager>;

impl Db {
    /// Opens the pool and applies pending migrations.
    pub fn open(url: &str, max_connections: u32) -> anyhow::Result<Db> {
        let (backend, target) = Backend::from_url(url);
        if backend == Backend::Sqlite {
            sqlite_multithread();
            // Switching to WAL needs a lock no other connection holds: do it before the pool opens.
            SqliteConnection::establish(&target)
                .with_context(|| format!("cannot open the SQLite database '{target}'"))?
                .batch_execute("PRAGMA journal_mode = WAL;")
                .context("cannot switch SQLite to WAL mode")?;
        }
        let pool = Pool::builder()
            .max_size(max_connections)
            .connection_timeout(std::time::Duration::from_secs(10))
            .build(Manager { backend, target })
            .with_context(|| format!("cannot open the {backend:?} database"))?;
        let db = Db { pool, backend };
        db.migrate()?;
        Ok(db)
    }

    fn migrate(&self) -> anyhow::Result<()> {
        let mut conn = self
            .pool
            .get()
            .context("cannot connect to run migrations")?;
        let applied = match &mut *conn {
            DbConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|v| v.len()),
            DbConnection::Postgresql(c) => c
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(|v| v.len()),
        }
        .map_err(|e| anyhow::anyhow!("migrations failed: {e}"))?;
        if applied > 0 {
            tracing::info!(applied, backend = ?self.backend, "applied database migrations");
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Takes a connection from the pool (blocking).
    pub fn conn(&self) -> Result<Conn, diesel::r2d2::PoolError> {
        self.pool.get()
    }

    /// Checks that the database answers (blocking).
    pub fn ping(&self) -> crate::error::AppResult<()> {
        self.conn()?.batch_execute("SELECT 1")?;
        Ok(())
    }
}

/// Runs `f` in one transaction: its reads see one snapshot of the database, and its writes
/// commit together or not at all.
pub fn transaction<T>(
    conn: &mut DbConnection,
    f: impl FnOnce(&mut DbConnection) -> crate::error::AppResult<T>,
) -> crate::error::AppResult<T> {
    conn.transaction(f)
}

/// The current time in UTC, truncated to microseconds so both backends store it alike.
pub fn now() -> chrono::NaiveDateTime {
    let t = chrono::Utc::now().naive_utc();
    chrono::DurationRound::duration_trunc(t, chrono::TimeDelta::microseconds(1)).unwrap_or(t)
}

pub use crate::domain::Page;
