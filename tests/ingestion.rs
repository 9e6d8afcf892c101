//! Bulk ingestion: formats, validation, idempotency, conflicts and the all-or-nothing guarantee.

// A failed unwrap is the test failing; reference tables make long test functions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

mod common;

use common::{apps, apps_with, assert_problem, error_fields, error_rows, TestApp};
use serde_json::{json, Value};
use sloproof::api::Limits;

const OBS: &str = "/api/v1/experiments/exp/observations";
const ASSIGN: &str = "/api/v1/experiments/exp/assignments";

async fn seeded() -> Vec<TestApp> {
    let apps = apps().await;
    for app in &apps {
        app.seed_experiment("exp").await;
    }
    apps
}

async fn data(app: &TestApp) -> (i64, i64) {
    let r = app.get("/api/v1/experiments/exp").await;
    (
        r.body["data"]["assigned_units"].as_i64().unwrap(),
        r.body["data"]["observations"].as_i64().unwrap(),
    )
}

fn summary(received: u64, inserted: u64, duplicates: u64, replaced: u64) -> Value {
    json!({"received": received, "inserted": inserted, "duplicates": duplicates, "replaced": replaced})
}

fn ndjson(rows: &[Value]) -> Vec<u8> {
    rows.iter()
        .map(|r| format!("{r}\n"))
        .collect::<String>()
        .into_bytes()
}

#[actix_web::test]
async fn assignments_are_idempotent_and_conflicts_are_rejected() {
    for app in seeded().await {
        let b = app.backend;
        let rows = json!([
            {"unit_id": "u1", "variant": "control", "assigned_at": "2026-11-01T10:00:00Z"},
            {"unit_id": 2, "variant": "plus-100"},
            {"unit_id": "u3", "variant": "plus-200", "assigned_at": "2026-11-01T10:00:00+01:00"}
        ]);
        let r = app.post_json(ASSIGN, &rows).await;
        assert_eq!(r.status, 200, "{b}: {r:?}");
        assert_eq!(r.body, summary(3, 3, 0, 0));
        let r = app.post_json(ASSIGN, &rows).await;
        assert_eq!(r.body, summary(3, 0, 3, 0), "{b}: resending is a no-op");
        // unit 2 was stored as the string "2": the CSV form of the same row is a duplicate
        let csv = "unit_id,variant\n2,plus-100\nu4,control\n";
        let r = app.post_raw(ASSIGN, "text/csv", csv.into()).await;
        assert_eq!(r.body, summary(2, 1, 1, 0), "{b}: {r:?}");
        // re-assigning u1 is a conflict, and nothing of that upload is stored
        let r = app.post_json(ASSIGN, &json!([{"unit_id": "u5", "variant": "control"}, {"unit_id": "u1", "variant": "plus-200"}])).await;
        let body = assert_problem(&r, 422, b);
        assert_eq!(error_rows(&body), vec![2]);
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("already assigned to variant 'control'"),
            "{body}"
        );
        // the same unit twice with different variants within one upload
        let r = app.post_json(ASSIGN, &json!([{"unit_id": "u9", "variant": "control"}, {"unit_id": "u9", "variant": "plus-200"}])).await;
        assert_eq!(error_rows(&assert_problem(&r, 422, b)), vec![2]);
        assert_eq!(data(&app).await, (4, 0), "{b}");
    }
}

#[actix_web::test]
async fn invalid_rows_are_listed_by_number_and_nothing_is_stored() {
    for app in seeded().await {
        let b = app.backend;
        let rows = vec![
            json!({"unit_id": "u1", "metric": "latency", "value": 310.5}),
            json!({"unit_id": "u1", "metric": "conversion", "value": 2}),
            json!({"unit_id": "u1", "metric": "nope", "value": 1}),
            json!({"unit_id": "u1", "metric": "orders", "value": 1.5}),
            json!({"unit_id": "u1", "metric": "revenue", "value": 3.0, "observed_at": "yesterday"}),
            json!({"unit_id": "u1", "metric": "revenue"}),
            json!({"unit_id": "u1", "metric": "revenue", "value": 1, "period": "during"}),
            json!({"unit_id": "", "metric": "revenue", "value": 1}),
            json!({"unit_id": "u2", "metric": "revenue", "value": 1, "extra": true}),
            json!({"unit_id": "u2", "metric": "revenue", "value": "12"}),
        ];
        let r = app
            .post_raw(OBS, "application/x-ndjson", ndjson(&rows))
            .await;
        let body = assert_problem(&r, 422, b);
        assert_eq!(
            error_rows(&body),
            (2..=10).collect::<Vec<u64>>(),
            "{b}: {body}"
        );
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .starts_with("9 of 10 observation rows are invalid"),
            "{body}"
        );
        let fields = error_fields(&body);
        // Rows that do not fit the row's shape name their field too (a wrong enum value,
        // an unknown field, a value of the wrong type); a missing field is named in the message.
        assert_eq!(
            fields,
            [
                "value",
                "metric",
                "value",
                "observed_at",
                "period",
                "unit_id",
                "extra",
                "value"
            ],
            "{body}"
        );
        let msg = |i: usize| body["errors"][i]["message"].as_str().unwrap().to_owned();
        assert!(msg(0).contains("not 0 or 1"));
        assert!(msg(2).contains("whole number"));
        assert!(msg(4).contains("missing field `value`"), "{}", msg(4));
        assert!(msg(5).contains("during"), "{}", msg(5));
        assert!(msg(7).contains("unknown field `extra`"), "{}", msg(7));
        // non-finite values can only arrive by CSV
        let r = app
            .post_raw(
                OBS,
                "text/csv",
                "unit_id,metric,value\nu1,latency,NaN\nu1,revenue,inf\n".into(),
            )
            .await;
        let body = assert_problem(&r, 422, b);
        assert_eq!(error_rows(&body), vec![1, 2]);
        assert!(body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("not a finite number"));
        // CSV structure problems
        let r = app
            .post_raw(
                OBS,
                "text/csv",
                "unit_id,metric,value,colour\nu1,latency,1,red\n".into(),
            )
            .await;
        assert_eq!(error_fields(&assert_problem(&r, 422, b)), vec!["header[3]"]);
        let r = app
            .post_raw(OBS, "text/csv", "unit_id,value\nu1,1\n".into())
            .await;
        assert_eq!(error_fields(&assert_problem(&r, 422, b)), vec!["header"]);
        let r = app
            .post_raw(OBS, "text/csv", "unit_id,metric,value\nu1,latency\n".into())
            .await;
        assert_eq!(error_rows(&assert_problem(&r, 422, b)), vec![1]);
        // An empty or unreadable CSV field is named, as in JSON.
        let r = app
            .post_raw(
                OBS,
                "text/csv",
                "unit_id,metric,value,period\n,latency,1,post\nu2,latency,x,post\nu3,latency,1,during\n"
                    .into(),
            )
            .await;
        let body = assert_problem(&r, 422, b);
        assert_eq!(error_rows(&body), vec![1, 2, 3], "{body}");
        assert_eq!(
            error_fields(&body),
            vec!["unit_id", "value", "period"],
            "{body}"
        );
        // a column named twice
        let r = app
            .post_raw(
                OBS,
                "text/csv",
                "unit_id,metric,value,value\nu1,latency,1,2\n".into(),
            )
            .await;
        assert_eq!(error_fields(&assert_problem(&r, 422, b)), vec!["header[3]"]);
        // NDJSON: a line that is not JSON (or not UTF-8) is a syntax error of the document (400)
        for bad in [
            &b"{\"unit_id\": \"u1\", \"metric\": \"latency\", \"value\": 1}\n{nope\n"[..],
            &b"{\"unit_id\": \"\xff\"}\n"[..],
        ] {
            let r = app
                .post_raw(OBS, "application/x-ndjson", bad.to_vec())
                .await;
            let p = assert_problem(&r, 400, b);
            assert!(
                p["detail"].as_str().unwrap().contains("malformed NDJSON"),
                "{p}"
            );
        }
        // One unit, one identity: surrounding whitespace and control characters are refused in
        // every format, rather than stored as another unit (CSV quoting keeps the spaces).
        let r = app
            .post_json(ASSIGN, &json!([{"unit_id": " sp2", "variant": "control"}]))
            .await;
        assert_eq!(error_fields(&assert_problem(&r, 422, b)), vec!["unit_id"]);
        let r = app
            .post_raw(
                ASSIGN,
                "text/csv",
                "unit_id,variant\n\" sp2\",control\n".into(),
            )
            .await;
        assert_eq!(error_fields(&assert_problem(&r, 422, b)), vec!["unit_id"]);
        let r = app
            .post_json(
                ASSIGN,
                &json!([{"unit_id": "nul\u{0}x", "variant": "control"}]),
            )
            .await;
        let p = assert_problem(&r, 422, b);
        assert!(
            p["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("U+0000"),
            "{p}"
        );
        // a body that is not JSON at all, an unknown content type, an unknown experiment
        assert_problem(
            &app.post_raw(OBS, "application/json", b"[{\"unit_id\": ".to_vec())
                .await,
            400,
            b,
        );
        assert_problem(
            &app.post_raw(OBS, "application/json", b"{\"unit_id\": 1}".to_vec())
                .await,
            400,
            b,
        );
        assert_problem(
            &app.post_raw(OBS, "application/xml", b"<rows/>".to_vec())
                .await,
            415,
            b,
        );
        let r = app
            .post_raw(
                "/api/v1/experiments/none/observations",
                "text/csv",
                "unit_id,metric,value\n".into(),
            )
            .await;
        assert_problem(&r, 404, b);
        assert_problem(
            &app.post_raw(&format!("{OBS}?on_conflict=merge"), "text/csv", vec![])
                .await,
            400,
            b,
        );
        assert_eq!(data(&app).await, (0, 0), "{b}: nothing was stored");
    }
}

#[actix_web::test]
async fn json_ndjson_and_csv_uploads_are_equivalent() {
    for app in seeded().await {
        let b = app.backend;
        let rows = vec![
            json!({"unit_id": "u1", "metric": "latency", "value": 312.25, "observed_at": "2026-11-02T08:00:00Z"}),
            json!({"unit_id": "u1", "metric": "latency", "value": 290.0, "period": "pre"}),
            json!({"unit_id": "u1", "metric": "conversion", "value": 1}),
            json!({"unit_id": "007", "metric": "revenue", "value": 0.1}),
            json!({"unit_id": "u2", "metric": "orders", "value": 3, "period": "post"}),
        ];
        let csv = "unit_id,metric,value,observed_at,period\n\
                   u1,latency,312.25,2026-11-02T08:00:00Z,\n\
                   u1,latency,290,,pre\n\
                   u1,conversion,1,,\n\
                   007,revenue,0.1,,\n\
                   u2,orders,3,,post\n";
        let r = app.post_json(OBS, &Value::Array(rows.clone())).await;
        assert_eq!(r.body, summary(5, 5, 0, 0), "{b}: {r:?}");
        // the same rows in the other formats parse to identical values: all duplicates
        let r = app
            .post_raw(OBS, "application/x-ndjson", ndjson(&rows))
            .await;
        assert_eq!(r.body, summary(5, 0, 5, 0), "{b}: {r:?}");
        let r = app
            .post_raw(OBS, "text/csv; charset=utf-8", csv.into())
            .await;
        assert_eq!(r.body, summary(5, 0, 5, 0), "{b}: {r:?}");
        assert_eq!(data(&app).await, (0, 5));
    }
}

#[actix_web::test]
async fn observation_conflicts_reject_or_replace() {
    for app in seeded().await {
        let b = app.backend;
        let first = json!([{"unit_id": "u1", "metric": "revenue", "value": 10.0}, {"unit_id": "u2", "metric": "revenue", "value": 5.0}]);
        assert_eq!(app.post_json(OBS, &first).await.body, summary(2, 2, 0, 0));
        let second = json!([
            {"unit_id": "u3", "metric": "revenue", "value": 1.0},
            {"unit_id": "u1", "metric": "revenue", "value": 12.0},
            {"unit_id": "u2", "metric": "revenue", "value": 5.0}
        ]);
        let body = assert_problem(&app.post_json(OBS, &second).await, 422, b);
        assert_eq!(error_rows(&body), vec![2]);
        assert!(body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("on_conflict=replace"));
        assert_eq!(data(&app).await, (0, 2), "{b}: u3 was not stored");
        let r = app
            .post_json(&format!("{OBS}?on_conflict=replace"), &second)
            .await;
        assert_eq!(r.body, summary(3, 1, 1, 1), "{b}: {r:?}");
        // the replaced value is what is stored now: resending it is a duplicate
        let r = app
            .post_json(
                OBS,
                &json!([{"unit_id": "u1", "metric": "revenue", "value": 12.0}]),
            )
            .await;
        assert_eq!(r.body, summary(1, 0, 1, 0), "{b}");
    }
}

#[actix_web::test]
async fn oversized_uploads_are_refused() {
    let limits = Limits {
        ingest_body_bytes: 1024,
        ..Limits::default()
    };
    for app in apps_with(limits).await {
        app.seed_experiment("exp").await;
        let rows: Vec<Value> = (0..100)
            .map(|i| json!({"unit_id": format!("u{i}"), "metric": "revenue", "value": 1.0}))
            .collect();
        let r = app
            .post_raw(OBS, "application/x-ndjson", ndjson(&rows))
            .await;
        assert_problem(&r, 413, app.backend);
        assert_eq!(data(&app).await, (0, 0));
    }
}

/// A million rows with one bad row near the end: the answer names it, and nothing is stored.
/// Then the same million rows without the bad one are all stored.
#[actix_web::test]
async fn a_bad_row_at_900_000_leaves_nothing_stored() {
    const N: usize = 1_000_000;
    const BAD: usize = 900_000;
    for app in seeded().await {
        let b = app.backend;
        let body = |bad: bool| {
            let mut s = String::with_capacity(N * 60);
            for i in 1..=N {
                let value = if bad && i == BAD {
                    "2".to_owned()
                } else {
                    (i % 2).to_string()
                };
                s.push_str(&format!(
                    "{{\"unit_id\":\"u{i}\",\"metric\":\"conversion\",\"value\":{value}}}\n"
                ));
            }
            s.into_bytes()
        };
        let r = app.post_raw(OBS, "application/x-ndjson", body(true)).await;
        let problem = assert_problem(&r, 422, b);
        assert_eq!(error_rows(&problem), vec![BAD as u64], "{b}");
        assert_eq!(data(&app).await, (0, 0), "{b}");
        let r = app.post_raw(OBS, "application/x-ndjson", body(false)).await;
        assert_eq!(r.body, summary(N as u64, N as u64, 0, 0), "{b}: {r:?}");
        assert_eq!(data(&app).await, (0, N as i64), "{b}");
    }
}

#[actix_web::test]
async fn uploads_that_change_data_advance_the_data_version() {
    for app in apps().await {
        let b = app.backend;
        app.seed_experiment("exp").await;
        let db = sloproof::store::Db::open(&app.db_url, 1).unwrap();
        let version = || {
            let mut c = db.conn().unwrap();
            let e = sloproof::store::experiments::get(&mut c, "exp").unwrap();
            sloproof::store::experiments::data_version(&mut c, e.id).unwrap()
        };
        let post = |path: &'static str, body: &'static str| {
            let app = &app;
            async move {
                app.post_raw(path, "application/x-ndjson", body.as_bytes().to_vec())
                    .await
                    .status
            }
        };
        let v0 = version();
        let assignment = "{\"unit_id\":\"u1\",\"variant\":\"control\"}\n";
        let observation = "{\"unit_id\":\"u1\",\"metric\":\"latency\",\"value\":250}\n";
        assert_eq!(post(ASSIGN, assignment).await, 200, "{b}");
        assert_eq!(version(), v0 + 1, "{b}: new rows");
        assert_eq!(post(ASSIGN, assignment).await, 200, "{b}");
        assert_eq!(version(), v0 + 1, "{b}: duplicates change nothing");
        assert_eq!(post(OBS, observation).await, 200, "{b}");
        assert_eq!(version(), v0 + 2, "{b}");
        let other = "{\"unit_id\":\"u1\",\"metric\":\"latency\",\"value\":260}\n";
        assert_eq!(
            post(OBS, other).await,
            422,
            "{b}: a conflict stores nothing"
        );
        assert_eq!(version(), v0 + 2, "{b}");
        let replace = "/api/v1/experiments/exp/observations?on_conflict=replace";
        assert_eq!(post(replace, other).await, 200, "{b}");
        assert_eq!(version(), v0 + 3, "{b}: a replaced value");
    }
}

/// Uploads larger than one staged batch (50,000 rows) are written batch by batch in one
/// transaction: a conflict between row 5 and row 120,000 (different batches) rolls everything
/// back and names row 120,000; replace keeps the later value; identical rows in different
/// batches are duplicates.
#[actix_web::test]
async fn conflicts_and_duplicates_are_found_across_batches() {
    const N: usize = 130_000;
    for app in seeded().await {
        let b = app.backend;
        let body = |late_value: u32| {
            let mut s = String::with_capacity(N * 60);
            for i in 1..=N {
                // Row 120,000 repeats row 5's unit with the value given; row 125,000 repeats
                // row 7 exactly.
                let (unit, value) = match i {
                    120_000 => (5, late_value),
                    125_000 => (7, 1),
                    _ => (i, (i % 2) as u32),
                };
                s.push_str(&format!(
                    "{{\"unit_id\":\"u {unit}\",\"metric\":\"conversion\",\"value\":{value}}}\n"
                ));
            }
            s.into_bytes()
        };
        let r = app.post_raw(OBS, "application/x-ndjson", body(0)).await;
        let problem = assert_problem(&r, 422, b);
        assert_eq!(error_rows(&problem), vec![120_000], "{b}: {problem}");
        assert_eq!(data(&app).await, (0, 0), "{b}");
        let r = app
            .post_raw(
                &format!("{OBS}?on_conflict=replace"),
                "application/x-ndjson",
                body(0),
            )
            .await;
        let n = N as u64;
        assert_eq!(r.body, summary(n, n - 2, 1, 1), "{b}: {r:?}");
        assert_eq!(data(&app).await, (0, N as i64 - 2), "{b}");
    }
}

/// A row longer than 64 KiB is refused in every format, naming it, before the parser buffers
/// it whole (one 100 MB row took 221 MB of memory).
#[actix_web::test]
async fn a_row_longer_than_64_kib_is_refused_by_number() {
    let long = "x".repeat(70_000);
    let ok = r#"{"unit_id":"u1","metric":"conversion","value":1}"#;
    let bad = format!(r#"{{"unit_id":"{long}","metric":"conversion","value":1}}"#);
    let bodies = [
        ("application/json", format!("[{ok},{bad}]")),
        ("application/x-ndjson", format!("{ok}\n{bad}\n")),
        (
            "text/csv",
            format!("unit_id,metric,value\nu1,conversion,1\n\"{long}\",conversion,1\n"),
        ),
    ];
    for app in seeded().await {
        let b = app.backend;
        for (ct, body) in &bodies {
            let r = app.post_raw(OBS, ct, body.clone().into_bytes()).await;
            assert!(r.status == 400 || r.status == 422, "{b} {ct}: {r:?}");
            assert!(
                r.body["detail"]
                    .as_str()
                    .unwrap()
                    .contains("row 2 is longer than 65536 bytes"),
                "{b} {ct}: {}",
                r.text
            );
            assert_eq!(data(&app).await, (0, 0), "{b} {ct}");
        }
    }
}

/// Finite values beyond 1e15 in magnitude are refused by row: 1e300 used to pass, overflow the
/// analysis's variances to infinity, and leave a stored analysis whose recommendations were 500.
#[actix_web::test]
async fn values_beyond_1e15_are_refused_by_row() {
    for app in seeded().await {
        let b = app.backend;
        let body = "unit_id,metric,value\nu1,revenue,1000000000000000\nu2,revenue,1e300\nu3,orders,-1e16\n";
        let r = app
            .post_raw(OBS, "text/csv", body.as_bytes().to_vec())
            .await;
        let p = assert_problem(&r, 422, b);
        assert_eq!(error_rows(&p), vec![2, 3], "{b}: {p}");
        assert_eq!(error_fields(&p), vec!["value", "value"], "{b}: {p}");
    }
}
