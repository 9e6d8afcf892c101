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
    before(conn, source, RULES);
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

/// Assignments and observations with text unit ids, as stored before units were numbered:
/// two experiments sharing a unit id, ids with spaces and non-ASCII letters, and an
/// observation of a unit that was never assigned.
const NAMED_UNITS: &str = "
INSERT INTO metrics (id,key,name,kind,value_type,unit,direction,layer,created_at) VALUES
  (1,'lat_ms','a','sli','continuous','ms','lower_is_better','journey','2026-01-01'),
  (2,'conv_1','b','kpi','binary','','higher_is_better','business','2026-01-01');
INSERT INTO experiments (id,key,name,hypothesis,sli_metric_id,created_at) VALUES
  (1,'e','e','h',1,'2026-01-01'), (2,'f','f','h',1,'2026-01-01');
INSERT INTO variants (id,experiment_id,key,weight,is_control,dose,position) VALUES
  (1,1,'control',1,TRUE,0,0), (2,1,'slow',1,FALSE,100,1), (3,2,'control',1,TRUE,0,0);
INSERT INTO assignments (experiment_id,unit_id,variant_id,assigned_at) VALUES
  (1,'user 2',1,NULL), (1,'ünit_9',2,'2026-01-02 03:04:05'), (1,'user 10',2,NULL), (2,'user 2',3,NULL);
INSERT INTO observations (experiment_id,unit_id,metric_id,period,value,observed_at) VALUES
  (1,'user 2',1,'post',120.5,NULL), (1,'user 2',2,'post',1,NULL), (1,'user 2',1,'pre',99.25,NULL),
  (1,'ünit_9',1,'post',330,'2026-01-03 00:00:00'), (1,'ghost',2,'post',0,NULL), (2,'user 2',1,'post',7,NULL);
";

/// The migration that numbered the units.
const NUMBERED: &str = "2026-11-30-000023";

/// Every assignment and observation with its unit's text id, as one line each.
const NAMED_REPORT: &str = "
SELECT 'a ' || CAST(a.experiment_id AS TEXT) || ' ' || u.key || ' #' || CAST(u.id AS TEXT) || ' v' || CAST(a.variant_id AS TEXT) || ' ' || COALESCE(CAST(a.assigned_at AS TEXT), '-') AS line
FROM assignments a JOIN units u ON u.experiment_id = a.experiment_id AND u.id = a.unit_id
UNION ALL
SELECT 'o ' || CAST(o.experiment_id AS TEXT) || ' ' || u.key || ' #' || CAST(u.id AS TEXT) || ' m' || CAST(o.metric_id AS TEXT) || ' ' || o.period || ' ' || CAST(o.value AS TEXT)
FROM observations o JOIN units u ON u.experiment_id = o.experiment_id AND u.id = o.unit_id";

/// Runs the migrations before the one whose name starts with `name`.
fn before<C>(conn: &mut C, source: EmbeddedMigrations, name: &str)
where
    C: MigrationHarness<C::Backend> + Connection,
    EmbeddedMigrations: MigrationSource<C::Backend>,
{
    let all = MigrationSource::<C::Backend>::migrations(&source).unwrap();
    // Creates diesel's bookkeeping table.
    assert!(conn.has_pending_migration(source).unwrap());
    for m in all {
        if m.name().to_string().starts_with(name) {
            break;
        }
        conn.run_migration(&*m).unwrap();
    }
}

/// What the migrated rows say, per backend (the values' text differs: 120.5 and 330.0).
fn numbered_lines(lines: Vec<Row>, whole: &dyn Fn(f64) -> String) -> Vec<String> {
    // Sorted here, bytewise: the database's collation may order them otherwise.
    let mut got: Vec<String> = lines.into_iter().map(|r| r.line).collect();
    got.sort();
    let mut want: Vec<String> = vec![
        "a 1 user 10 #2 v2 -".into(),
        "a 1 user 2 #3 v1 -".into(),
        "a 1 ünit_9 #4 v2 2026-01-02 03:04:05".into(),
        "a 2 user 2 #1 v3 -".into(),
        format!("o 1 ghost #1 m2 post {}", whole(0.0)),
        "o 1 user 2 #3 m1 post 120.5".into(),
        "o 1 user 2 #3 m1 pre 99.25".into(),
        format!("o 1 user 2 #3 m2 post {}", whole(1.0)),
        format!("o 1 ünit_9 #4 m1 post {}", whole(330.0)),
        format!("o 2 user 2 #1 m1 post {}", whole(7.0)),
    ];
    want.sort();
    assert_eq!(got, want);
    got
}

#[test]
fn stored_unit_ids_are_numbered_per_experiment_in_id_order_and_numbering_reverts() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = SqliteConnection::establish(dir.path().join("u.db").to_str().unwrap()).unwrap();
    c.batch_execute("PRAGMA foreign_keys = ON").unwrap();
    before(&mut c, SQLITE, NUMBERED);
    c.batch_execute(&NAMED_UNITS.replace("TRUE", "1").replace("FALSE", "0"))
        .unwrap();
    c.run_pending_migrations(SQLITE).unwrap();
    let sqlite_whole = |x: f64| format!("{x:.1}");
    numbered_lines(
        diesel::sql_query(NAMED_REPORT).load(&mut c).unwrap(),
        &sqlite_whole,
    );
    // Back to text ids: the same rows as before the migration.
    c.revert_last_migration(SQLITE).unwrap();
    let named: Vec<Row> = diesel::sql_query(
        "SELECT 'a ' || unit_id || ' v' || CAST(variant_id AS TEXT) AS line FROM assignments \
         UNION ALL SELECT 'o ' || unit_id || ' ' || period FROM observations ORDER BY line",
    )
    .load(&mut c)
    .unwrap();
    let named: Vec<String> = named.into_iter().map(|r| r.line).collect();
    assert_eq!(
        named,
        [
            "a user 10 v2",
            "a user 2 v1",
            "a user 2 v3",
            "a ünit_9 v2",
            "o ghost post",
            "o user 2 post",
            "o user 2 post",
            "o user 2 post",
            "o user 2 pre",
            "o ünit_9 post"
        ]
    );

    if let Some(pg) = common::PgScratch::new("migrations_units") {
        let mut p = PgConnection::establish(&pg.url).unwrap();
        before(&mut p, POSTGRES, NUMBERED);
        p.batch_execute(NAMED_UNITS).unwrap();
        p.run_pending_migrations(POSTGRES).unwrap();
        let pg_whole = |x: f64| format!("{x}");
        numbered_lines(
            diesel::sql_query(NAMED_REPORT).load(&mut p).unwrap(),
            &pg_whole,
        );
        p.revert_last_migration(POSTGRES).unwrap();
        let back: Vec<Row> = diesel::sql_query(
            "SELECT 'a ' || unit_id || ' v' || CAST(variant_id AS TEXT) AS line FROM assignments \
             ORDER BY line",
        )
        .load(&mut p)
        .unwrap();
        assert_eq!(back.len(), 4);
    }
}
