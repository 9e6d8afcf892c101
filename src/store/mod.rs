//! Storage: the diesel schema, the connection pool and every query. Nothing else in the crate
//! touches the database. All functions here are blocking; async callers run them through
//! `actix_web::web::block`.
//!
//! One schema serves two backends: SQLite (embedded, the default) and PostgreSQL, chosen by the
//! database URL's scheme (`postgres://` or `postgresql://` for PostgreSQL; `sqlite://PATH` or a
//! plain path for SQLite).

pub mod aggregates;
pub mod analyses;
pub mod assignments;
pub mod calendars;
pub mod early_warnings;
pub mod experiments;
pub mod jobs;
pub mod journeys;
pub mod metrics;
pub mod observational;
pub mod observations;
pub mod recommendations;
pub mod revalidations;
pub mod schema;
pub mod series;
pub mod series_cache;
pub mod sessions;
pub mod tokens;
pub mod unit_rows;
pub mod units;
pub mod upsert;

use anyhow::Context;
use diesel::connection::SimpleConnection;
use diesel::r2d2::{ManageConnection, Pool, PooledConnection};
use diesel::{Connection, PgConnection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Bytes of a SQLite database file each connection reads through a memory map.
const SQLITE_MMAP_BYTES: u64 = 256 << 20;

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
                // The WAL journal mode is persistent and set once by `Db::open`. Reads map
                // the file (shared page cache of the OS) instead of copying pages through
                // read(2): a status reads tens of thousands of series windows.
                c.batch_execute(&format!(
                    "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}; PRAGMA synchronous = NORMAL; \
                     PRAGMA foreign_keys = ON; PRAGMA mmap_size = {SQLITE_MMAP_BYTES};"
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

    /// A connection left inside a transaction (a rollback that failed) or in a broken
    /// transaction state is dropped rather than handed to the next caller.
    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        use diesel::connection::{AnsiTransactionManager, TransactionManager};
        std::thread::panicking()
            || with_backend!(conn, |c| {
                AnsiTransactionManager::is_broken_transaction_manager(c)
            })
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
    series_cache: std::sync::Arc<series_cache::SeriesCache>,
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
        let db = Db {
            pool,
            backend,
            series_cache: std::sync::Arc::new(series_cache::SeriesCache::new(0)),
        };
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

    /// Keeps up to `bytes` of decoded production windows in memory between reads (see
    /// [`series_cache`]; 0, the default, keeps none).
    pub fn with_series_cache(mut self, bytes: usize) -> Db {
        self.series_cache = std::sync::Arc::new(series_cache::SeriesCache::new(bytes));
        self
    }

    /// The cache of decoded production windows.
    pub fn series_cache(&self) -> &series_cache::SeriesCache {
        &self.series_cache
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

/// How a transaction begins on each backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Begin {
    /// A consistent, read-only snapshot: `REPEATABLE READ, READ ONLY` on PostgreSQL (every
    /// statement sees the same commits); a deferred transaction on SQLite, whose WAL readers see
    /// one snapshot from their first read on.
    Snapshot,
    /// Reads that decide a write: `BEGIN IMMEDIATE` on SQLite, so the write lock is taken (or
    /// waited for, up to the busy timeout) before the first read instead of failing at the first
    /// write when another writer committed in between; `SERIALIZABLE` on PostgreSQL.
    Serializable,
    /// Writes whose first statement is a write (inserts, bulk uploads): SQLite's deferred
    /// transaction takes the write lock at that statement; PostgreSQL's default READ COMMITTED.
    Write,
    /// A write that reads before it writes: SQLite takes the write lock at BEGIN (a deferred
    /// transaction that read first cannot take it once another writer committed, and fails
    /// at once without waiting); PostgreSQL READ COMMITTED, as `Write`.
    WriteLocked,
}

impl Begin {
    fn sql(self, backend: Backend) -> &'static str {
        match (self, backend) {
            (Begin::Snapshot, Backend::Postgres) => {
                "BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
            }
            (Begin::Serializable, Backend::Postgres) => {
                "BEGIN TRANSACTION ISOLATION LEVEL SERIALIZABLE"
            }
            (Begin::Serializable, Backend::Sqlite) => "BEGIN IMMEDIATE",
            // Explicit, whatever the server's default_transaction_isolation says.
            (Begin::Write | Begin::WriteLocked, Backend::Postgres) => {
                "BEGIN TRANSACTION ISOLATION LEVEL READ COMMITTED"
            }
            (Begin::WriteLocked, Backend::Sqlite) => "BEGIN IMMEDIATE",
            (Begin::Snapshot | Begin::Write, Backend::Sqlite) => "BEGIN",
        }
    }
}

/// Attempts of a serializable transaction that PostgreSQL aborted for a concurrent one.
const SERIALIZATION_ATTEMPTS: u32 = 8;

/// Runs `f` in one transaction begun as `begin` says; commits when it returns `Ok`, rolls back
/// otherwise. Inside an open transaction it runs in a savepoint of that one.
fn run<T>(
    conn: &mut DbConnection,
    begin: Begin,
    f: impl FnOnce(&mut DbConnection) -> crate::error::AppResult<T>,
) -> crate::error::AppResult<T> {
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    let (backend, open) = match conn {
        DbConnection::Postgresql(c) => (
            Backend::Postgres,
            AnsiTransactionManager::transaction_manager_status_mut(c).transaction_depth(),
        ),
        DbConnection::Sqlite(c) => (
            Backend::Sqlite,
            AnsiTransactionManager::transaction_manager_status_mut(c).transaction_depth(),
        ),
    };
    if open?.is_some() {
        return conn.transaction(f);
    }
    let sql = begin.sql(backend);
    with_backend!(&mut *conn, |c| {
        AnsiTransactionManager::begin_transaction_sql(c, sql)
    })?;
    type Manager = <DbConnection as Connection>::TransactionManager;
    match f(conn) {
        Ok(value) => match Manager::commit_transaction(conn) {
            Ok(()) => Ok(value),
            Err(e) => {
                // A failed COMMIT may leave the transaction open (PostgreSQL serialization
                // failures do); roll it back so the pooled connection is clean.
                let _ = Manager::rollback_transaction(conn);
                Err(e.into())
            }
        },
        Err(e) => {
            // The caller's error is the answer; a failed rollback (SQLite may already have
            // rolled back after a busy or I/O error) only marks the connection broken.
            if let Err(rollback) = Manager::rollback_transaction(conn) {
                tracing::warn!(error = %rollback, "rollback failed");
            }
            Err(e)
        }
    }
}

/// Runs `f` in one write transaction: its writes commit together or not at all.
pub fn transaction<T>(
    conn: &mut DbConnection,
    f: impl FnOnce(&mut DbConnection) -> crate::error::AppResult<T>,
) -> crate::error::AppResult<T> {
    run(conn, Begin::Write, f)
}

/// Runs `f`, which reads before it writes, in one write transaction holding SQLite's write
/// lock from its start (see [`Begin::WriteLocked`]).
pub fn transaction_locked<T>(
    conn: &mut DbConnection,
    f: impl FnOnce(&mut DbConnection) -> crate::error::AppResult<T>,
) -> crate::error::AppResult<T> {
    run(conn, Begin::WriteLocked, f)
}

/// Runs `f`'s reads in one consistent read-only snapshot.
pub fn read_snapshot<T>(
    conn: &mut DbConnection,
    f: impl FnOnce(&mut DbConnection) -> crate::error::AppResult<T>,
) -> crate::error::AppResult<T> {
    run(conn, Begin::Snapshot, f)
}

/// Runs `f`, whose reads decide its writes, as if no other transaction ran at the same time:
/// SQLite takes the write lock first; PostgreSQL runs it SERIALIZABLE and runs it again (up to
/// [`SERIALIZATION_ATTEMPTS`] times) when a concurrent transaction made it abort. A database
/// still busy after that answers 503 (see `AppError::from`).
pub fn serializable<T>(
    conn: &mut DbConnection,
    mut f: impl FnMut(&mut DbConnection) -> crate::error::AppResult<T>,
) -> crate::error::AppResult<T> {
    let mut attempt = 1;
    loop {
        match run(conn, Begin::Serializable, &mut f) {
            Err(e) if attempt < SERIALIZATION_ATTEMPTS && e.is_serialization_failure() => {
                tracing::debug!(
                    attempt,
                    "serialization failure; running the transaction again"
                );
                // Spread the contenders out: 1–10 ms, doubling per attempt.
                let jitter = 1 + rand::random::<u64>() % 10;
                std::thread::sleep(std::time::Duration::from_millis(jitter << attempt.min(4)));
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// The current time in UTC, truncated to microseconds so both backends store it alike.
pub fn now() -> chrono::NaiveDateTime {
    let t = chrono::Utc::now().naive_utc();
    chrono::DurationRound::duration_trunc(t, chrono::TimeDelta::microseconds(1)).unwrap_or(t)
}

pub use crate::domain::Page;
