//! Migrations applied to databases written by earlier versions: the one-active-SLO and
//! unique-live-token-name rules keep such data usable, and recommendations keep their analysis
//! when they gain a second possible source (SQLite; PostgreSQL when
//! `SLOPROOF_TEST_POSTGRES_URL` is set).

// A failed unwrap is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use diesel::connection::SimpleConnection;
use diesel::migration::MigrationSource;
use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

const SQLITE: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Rows written before the rules: three active SLOs of one pair, and live tokens sharing names.
const OLD_DATA: &str = "
INSERT INTO metrics (id,key,name,kind,value_type,unit,direction,layer,created_at) VALUES
  (1,'lat_ms','a','sli','continuous','ms','lower_is_better','journey','2026-01-01'),
  (2,'conv_1','b','kpi','binary','','higher_is_better','business','2026-01-01');
INSERT INTO experiments (id,key,name,hypothesis,sli_metric_id,created_at) VALUES (1,'e','e','h',1,'2026-01-01');
INSERT INTO analyses (id,experiment_id,created_at,seed,fingerprint,parameters,result) VALUES (1,1,'2026-01-01',1,'f','{}','{}');
INSERT INTO recommendations VALUES (1,1,1,2,'approved','2026-01-01','x','{}'),
  (2,1,1,2,'approved','2026-01-02','x','{}'), (3,1,1,2,'approved','2026-01-03','x','{}');
INSERT INTO slos VALUES (1,1,1,2,'active','2026-01-01',NULL,NULL),
  (2,2,1,2,'active','2026-01-02',NULL,NULL), (3,3,1,2,'active','2026-01-03',NULL,NULL);
INSERT INTO api_tokens VALUES (1,'bootstrap-admin','admin','h1','2026-01-01',NULL),
  (2,'bootstrap-admin','admin','h2','2026-01-02',NULL), (3,'bob','analyst','h3','2026-01-01',NULL),
  (4,'bob','analyst','h4','2026-01-02',NULL), (5,'bob','analyst','h5','2026-01-02','2026-01-03');
";

#[derive(QueryableByName, Debug, PartialEq)]
struct Row {
    #[diesel(sql_type = diesel::sql_types::Text)]
    line: String,
}

/// The migration that introduced the rules.
const RULES: &str = "2026-11-29-000007";

fn before_rules<C>(conn: &mut C, source: EmbeddedMigrations)
where
    C: MigrationHarness<C::Backend> + Connection,
    EmbeddedMigrations: MigrationSource<C::Backend>,
{
    // Creates diesel's bookkeeping table.
    let all = MigrationSource::<C::Backend>::migrations(&source).unwrap();
    assert!(conn.has_pending_migration(source).unwrap());
    for m in all {
        if m.name().to_string().starts_with(RULES) {
            break;
        }
        conn.run_migration(&*m).unwrap();
    }
}

fn check(lines: Vec<Row>) {
    let lines: Vec<String> = lines.into_iter().map(|r| r.line).collect();
    assert_eq!(
        lines,
        vec![
            "slo 1 superseded by 3",
            "slo 2 superseded by 3",
            "slo 3 active by -",
            "recommendation 1 on analysis 1",
            "recommendation 2 on analysis 1",
            "recommendation 3 on analysis 1",
            "token 1 bootstrap-admin live",
            "token 2 bootstrap-admin revoked",
            "token 3 bob live",
            "token 4 bob #4 live",
            "token 5 bob revoked",
        ]
    );
}

const REPORT: &str = "
SELECT 'slo ' || CAST(id AS TEXT) || ' ' || status || ' by ' || COALESCE(CAST(superseded_by AS TEXT), '-') AS line, 0 AS k, id FROM slos
UNION ALL
SELECT 'recommendation ' || CAST(id AS TEXT) || ' on analysis ' || CAST(analysis_id AS TEXT), 1, id FROM recommendations
UNION ALL
SELECT 'token ' || CAST(id AS TEXT) || ' ' || name || ' ' || CASE WHEN revoked_at IS NULL THEN 'live' ELSE 'revoked' END, 2, id FROM api_tokens
ORDER BY k, id";

#[test]
fn old_data_meets_the_one_active_slo_and_unique_name_rules() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = SqliteConnection::establish(dir.path().join("m.db").to_str().unwrap()).unwrap();
    // As the server's connections: the rebuild of `recommendations` (016) must keep every
    // reference to it valid.
    c.batch_execute("PRAGMA foreign_keys = ON").unwrap();
    before_rules(&mut c, SQLITE);
    c.batch_execute(OLD_DATA).unwrap();
    c.run_pending_migrations(SQLITE).unwrap();
    check(diesel::sql_query(REPORT).load(&mut c).unwrap());
    let broken: Vec<Row> = diesel::sql_query(
        "SELECT \"table\" || ' ' || CAST(rowid AS TEXT) AS line FROM pragma_foreign_key_check",
    )
    .load(&mut c)
    .unwrap();
    assert_eq!(broken, vec![]);
    let fk: Vec<Row> =
        diesel::sql_query("SELECT CAST(foreign_keys AS TEXT) AS line FROM pragma_foreign_keys")
            .load(&mut c)
            .unwrap();
    assert_eq!(
        fk,
        vec![Row { line: "1".into() }],
        "foreign keys are on again"
    );
    // Exactly one source per recommendation.
    assert!(c
        .batch_execute("INSERT INTO recommendations (analysis_id, observational_analysis_id, sli_metric_id, kpi_metric_id, status, created_at, created_by, document) VALUES (NULL, NULL, 1, 2, 'proposed', '2026-01-04', 'x', '{}')")
        .is_err());

    if let Some(pg) = common::PgScratch::new("migrations") {
        let mut p = PgConnection::establish(&pg.url).unwrap();
        before_rules(&mut p, POSTGRES);
        p.batch_execute(OLD_DATA).unwrap();
        p.run_pending_migrations(POSTGRES).unwrap();
        check(diesel::sql_query(REPORT).load(&mut p).unwrap());
    }
}
