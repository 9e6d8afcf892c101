//! Test harness: the real server on port 0 against a fresh database per test. Every test runs
//! on SQLite, and on PostgreSQL too when `SLOPROOF_TEST_POSTGRES_URL` names a server whose user
//! may create databases (each test gets its own database with an ICU `en-US` collation, dropped
//! afterwards).

#![allow(dead_code)]

pub mod openslo;
pub mod promtool;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use actix_web::web;
use diesel::{Connection, PgConnection, RunQueryDsl};
use serde_json::Value;
use sloproof::api::{AppState, Limits};
use sloproof::store::Db;

pub struct TestApp {
    pub backend: &'static str,
    /// The database URL the app serves from.
    pub db_url: String,
    pub base: String,
    pub client: awc::Client,
    pg: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        actix_web::rt::spawn(async move { handle.stop(false).await });
        if let Some((admin, name)) = &self.pg {
            if let Ok(mut c) = PgConnection::establish(admin) {
                let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut c);
            }
        }
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The admin token every test app is bootstrapped with; the default client sends it.
/// 2026-11-01T00:00:00Z, where simulated production series start.
pub const BASE: i64 = 1_793_491_200;

/// Unix seconds as RFC 3339 (UTC, whole seconds), as the API writes times.
pub fn at(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub const ADMIN_TOKEN: &str = "sp_test_admin_token_0123456789abcdef";

/// Replaces the database name of a PostgreSQL URL.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let authority_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let cut = base[authority_end..]
        .find('/')
        .map(|i| i + authority_end)
        .unwrap_or(base.len());
    format!("{}/{name}{query}", &base[..cut])
}

async fn spawn(
    backend: &'static str,
    url: String,
    limits: Limits,
    guard: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
) -> TestApp {
    let db_url = url.clone();
    let db = web::block(move || Db::open(&url, 4).map(|db| db.with_series_cache(16 << 20)))
        .await
        .unwrap()
        .expect("open test database");
    let db2 = db.clone();
    web::block(move || sloproof::access::service::bootstrap(&db2, Some(ADMIN_TOKEN)))
        .await
        .unwrap()
        .expect("bootstrap admin token");
    let state = web::Data::new(AppState::new(db, limits));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = sloproof::server::build_server(state, listener, Some(1)).unwrap();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    // Pooled connections are dropped after 2 s idle, before the server's 5 s keep-alive closes
    // them: a test that computes for a while between requests (slow on a loaded CI machine)
    // would otherwise write its next request into a closed connection (broken pipe).
    let client = awc::Client::builder()
        .connector(awc::Connector::new().conn_keep_alive(Duration::from_secs(2)))
        .timeout(Duration::from_secs(600))
        .bearer_auth(ADMIN_TOKEN)
        .finish();
    TestApp {
        backend,
        db_url,
        base: format!("http://127.0.0.1:{port}"),
        client,
        pg,
        _dir: guard,
        handle,
    }
}

/// One app per available backend, each on a fresh database.
pub async fn apps() -> Vec<TestApp> {
    apps_with(Limits::default()).await
}

pub async fn apps_with(limits: Limits) -> Vec<TestApp> {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("test.db").to_string_lossy().into_owned();
    let mut out = vec![spawn("sqlite", url, limits, Some(dir), None).await];
    if let Ok(admin) = std::env::var("SLOPROOF_TEST_POSTGRES_URL") {
        let name = format!(
            "sloproof_t{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let admin2 = admin.clone();
        let name2 = name.clone();
        web::block(move || {
            let mut c =
                PgConnection::establish(&admin2).expect("connect to SLOPROOF_TEST_POSTGRES_URL");
            // A linguistic (ICU) collation, as most production servers have, so tests meet a
            // text order that differs from the bytewise order sloproof sorts units in.
            diesel::sql_query(format!(
                "CREATE DATABASE {name2} TEMPLATE template0 LOCALE_PROVIDER icu \
                 ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
            ))
            .execute(&mut c)
            .expect("create test database");
        })
        .await
        .unwrap();
        let url = with_database(&admin, &name);
        out.push(spawn("postgres", url, limits, None, Some((admin, name))).await);
    }
    out
}

/// A response: status, content type and body parsed as JSON (Null when empty or not JSON).
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub content_type: String,
    pub location: Option<String>,
    /// `WWW-Authenticate` (401) and `Allow` (405) headers.
    pub www_authenticate: Option<String>,
    pub allow: Option<String>,
    /// `Retry-After` (503).
    pub retry_after: Option<String>,
    pub body: Value,
    pub text: String,
}

impl TestApp {
    async fn finish(
        &self,
        mut r: awc::ClientResponse<
            impl futures_util::Stream<Item = Result<web::Bytes, awc::error::PayloadError>> + Unpin,
        >,
    ) -> Resp {
        let bytes = r.body().limit(64 << 20).await.expect("read body");
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let header = |name: &str| {
            r.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Resp {
            status: r.status().as_u16(),
            content_type: header("content-type").unwrap_or_default(),
            location: header("location"),
            www_authenticate: header("www-authenticate"),
            allow: header("allow"),
            retry_after: header("retry-after"),
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }

    /// A request with an explicit token (or none), bypassing the default admin token.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Resp {
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(60))
            .finish();
        let method = awc::http::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.insert_header(("authorization", format!("Bearer {t}")));
        }
        let r = match body {
            Some(b) => {
                req.insert_header(("content-type", "application/json"))
                    .send_body(b.to_string())
                    .await
            }
            None => req.send().await,
        }
        .expect("send");
        self.finish(r).await
    }

    pub async fn get(&self, path: &str) -> Resp {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("send");
        self.finish(r).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Resp {
        self.post_raw(path, "application/json", body.to_string().into_bytes())
            .await
    }

    pub async fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> Resp {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .insert_header(("content-type", content_type))
            .send_body(body)
            .await
            .expect("send");
        self.finish(r).await
    }

    /// Loads a simulated experiment through the API.
    pub async fn load_simulated(&self, sim: &sloproof::simulate::Simulated) {
        for m in &sim.metrics {
            let r = self.post_json("/api/v1/metrics", m).await;
            assert!(
                r.status == 201 || r.status == 409,
                "{}: {r:?}",
                self.backend
            );
        }
        let r = self.post_json("/api/v1/experiments", &sim.experiment).await;
        assert_eq!(r.status, 201, "{}: {r:?}", self.backend);
        let key = sim.experiment["key"].as_str().unwrap();
        for (what, body) in [
            ("assignments", &sim.assignments_ndjson),
            ("observations", &sim.observations_ndjson),
        ] {
            let r = self
                .post_raw(
                    &format!("/api/v1/experiments/{key}/{what}"),
                    "application/x-ndjson",
                    body.clone(),
                )
                .await;
            assert_eq!(r.status, 200, "{}: {what}: {r:?}", self.backend);
        }
    }

    /// Creates `metrics`, then the experiment `body`, each answered 201.
    pub async fn create_experiment(&self, metrics: &[Value], body: &Value) {
        for m in metrics {
            let r = self.post_json("/api/v1/metrics", m).await;
            assert_eq!(r.status, 201, "{}: {r:?}", self.backend);
        }
        let r = self.post_json("/api/v1/experiments", body).await;
        assert_eq!(r.status, 201, "{}: {r:?}", self.backend);
    }

    /// Uploads an experiment's assignments, then its observations (NDJSON), each in one
    /// request that must succeed.
    pub async fn upload(&self, key: &str, assignments: String, observations: String) {
        for (what, body) in [("assignments", assignments), ("observations", observations)] {
            let r = self
                .post_raw(
                    &format!("/api/v1/experiments/{key}/{what}"),
                    "application/x-ndjson",
                    body.into_bytes(),
                )
                .await;
            assert_eq!(r.status, 200, "{}: {what}: {r:?}", self.backend);
        }
    }

    /// Creates the catalog and experiment used by most tests: latency SLI (continuous),
    /// conversion KPI (binary), revenue KPI (continuous), orders guardrail (count); arms
    /// control / plus-100 / plus-200.
    pub async fn seed_experiment(&self, key: &str) {
        for m in [
            serde_json::json!({"key": "conversion", "name": "Conversion", "kind": "kpi", "value_type": "binary", "unit": "", "direction": "higher_is_better", "layer": "business"}),
            serde_json::json!({"key": "revenue", "name": "Revenue per session", "kind": "kpi", "value_type": "continuous", "unit": "USD", "direction": "higher_is_better", "layer": "business"}),
            serde_json::json!({"key": "orders", "name": "Orders", "kind": "kpi", "value_type": "count", "unit": "orders", "direction": "higher_is_better", "layer": "business"}),
            serde_json::json!({"key": "latency", "name": "Checkout latency", "kind": "sli", "value_type": "continuous", "unit": "ms", "direction": "lower_is_better", "layer": "journey", "parents": ["conversion"]}),
        ] {
            let r = self.post_json("/api/v1/metrics", &m).await;
            assert!(
                r.status == 201 || r.status == 409,
                "{}: {r:?}",
                self.backend
            );
        }
        let r = self
            .post_json(
                "/api/v1/experiments",
                &serde_json::json!({
                    "key": key, "name": "Latency injection", "hypothesis": "Slower checkout converts less",
                    "sli": "latency", "kpis": ["conversion", "revenue"], "guardrails": ["orders"],
                    "variants": [
                        {"key": "control", "weight": 0.5, "control": true, "dose": 0},
                        {"key": "plus-100", "weight": 0.25, "dose": 100},
                        {"key": "plus-200", "weight": 0.25, "dose": 200}
                    ]
                }),
            )
            .await;
        assert_eq!(r.status, 201, "{}: {r:?}", self.backend);
    }
}

/// The first element of a JSON array that `pred` accepts (panics naming `what` otherwise).
pub fn find<'a>(list: &'a Value, pred: impl Fn(&Value) -> bool, what: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|v| pred(v))
        .unwrap_or_else(|| panic!("{what} missing in {list}"))
}

/// Asserts a problem+json answer with this status, and returns its body.
pub fn assert_problem(r: &Resp, status: u16, backend: &str) -> Value {
    assert_eq!(r.status, status, "{backend}: {r:?}");
    assert_eq!(
        r.content_type, "application/problem+json",
        "{backend}: {r:?}"
    );
    assert_eq!(r.body["status"], status, "{backend}: {r:?}");
    assert!(
        r.body["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("https://sloproof.dev/problems/")),
        "{r:?}"
    );
    assert!(
        r.body["title"].is_string() && r.body["detail"].is_string(),
        "{r:?}"
    );
    r.body.clone()
}

/// The `field` of every listed error.
pub fn error_fields(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["field"].as_str().map(str::to_owned))
        .collect()
}

/// The `row` of every listed error.
pub fn error_rows(body: &Value) -> Vec<u64> {
    body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["row"].as_u64())
        .collect()
}

/// A fresh, empty PostgreSQL database on `SLOPROOF_TEST_POSTGRES_URL` for tests that run the
/// binary or migrations themselves; dropped with this guard. `None` without PostgreSQL.
pub struct PgScratch {
    admin: String,
    name: String,
    pub url: String,
}

impl PgScratch {
    pub fn new(tag: &str) -> Option<PgScratch> {
        let admin = std::env::var("SLOPROOF_TEST_POSTGRES_URL").ok()?;
        let name = format!("sloproof_{tag}_{}", std::process::id());
        let mut c = PgConnection::establish(&admin).expect("connect to SLOPROOF_TEST_POSTGRES_URL");
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut c)
            .expect("create scratch database");
        let url = with_database(&admin, &name);
        Some(PgScratch { admin, name, url })
    }
}

impl Drop for PgScratch {
    fn drop(&mut self) {
        if let Ok(mut c) = PgConnection::establish(&self.admin) {
            let _ = diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut c);
        }
    }
}

impl TestApp {
    /// Loads a 40,000-unit simulated experiment with a real effect (−0.2% conversion per
    /// +100 ms) under `key` and analyses it; returns the analysis id.
    pub async fn analysed(&self, key: &str, doses: Vec<f64>) -> i64 {
        let sim = sloproof::simulate::generate(&sloproof::simulate::SimConfig {
            key: key.into(),
            units: 40_000,
            effect_per_100ms: -0.2,
            seed: 21,
            doses,
            ..sloproof::simulate::SimConfig::default()
        })
        .unwrap();
        self.load_simulated(&sim).await;
        let r = self
            .post_json(
                &format!("/api/v1/experiments/{key}/analyses"),
                &serde_json::json!({"bootstrap": {"resamples": 200, "seed": 1}}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        r.body["id"].as_i64().unwrap()
    }
}
