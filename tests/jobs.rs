//! Analyses as jobs: `?async=true` answers 202 with a job that a job worker computes to the same
//! numbers as the synchronous analysis; a cancelled job stores nothing; bad parameters are
//! refused before anything is queued; and a server killed mid-job marks the job failed when it
//! starts again (the real binary, SIGKILL), never leaving it "running".

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{apps, assert_problem, error_fields, TestApp, ADMIN_TOKEN};
use serde_json::{json, Value};
use sloproof::simulate::{generate, SimConfig};

fn sim(key: &str, units: usize) -> sloproof::simulate::Simulated {
    generate(&SimConfig {
        key: key.into(),
        units,
        seed: 3,
        ..SimConfig::default()
    })
    .unwrap()
}

/// Polls a job until it has finished (at most two minutes); answers it.
async fn finished(app: &TestApp, href: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let r = app.get(href).await;
        assert_eq!(r.status, 200, "{}", r.text);
        if !["queued", "running"].contains(&r.body["state"].as_str().unwrap()) {
            return r.body;
        }
        assert!(
            Instant::now() < deadline,
            "the job did not finish: {}",
            r.text
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_web::test]
async fn an_analysis_runs_as_a_job_to_the_same_numbers() {
    for app in apps().await {
        let b = app.backend;
        app.load_simulated(&sim("jobbed", 20_000)).await;
        let url = "/api/v1/experiments/jobbed/analyses";
        let params = json!({"bootstrap": {"resamples": 200, "seed": 7}});

        // Bad parameters and unknown experiments are refused before anything is queued.
        let r = app
            .post_json(
                &format!("{url}?async=true"),
                &json!({"bootstrap": {"resamples": 5}}),
            )
            .await;
        assert_eq!(
            error_fields(&r.body),
            vec!["bootstrap.resamples"],
            "{b}: {}",
            r.text
        );
        let r = app
            .post_json("/api/v1/experiments/nope/analyses?async=true", &params)
            .await;
        assert_problem(&r, 404, b);
        assert_problem(&app.get("/api/v1/jobs/1").await, 404, b);

        let r = app.post_json(&format!("{url}?async=true"), &params).await;
        assert_eq!(r.status, 202, "{b}: {}", r.text);
        let href = r.location.clone().unwrap();
        assert_eq!(href, format!("/api/v1/jobs/{}", r.body["id"]));
        assert_eq!(r.body["experiment"], "jobbed");
        assert_eq!(r.body["state"], "queued", "{b}: {}", r.text);
        assert!(r.body["created_by"].is_string(), "{b}: {}", r.text);
        let done = finished(&app, &href).await;
        assert_eq!(done["state"], "succeeded", "{b}: {done}");
        assert_eq!(done["progress_percent"], 100.0, "{b}: {done}");
        assert!(done["started_at"].is_string() && done["finished_at"].is_string());
        let analysis = app.get(done["analysis_href"].as_str().unwrap()).await;
        assert_eq!(analysis.status, 200, "{b}");
        // The synchronous analysis with the same seed gives the same numbers.
        let sync = app.post_json(url, &params).await;
        assert_eq!(sync.status, 201, "{b}: {}", sync.text);
        for part in ["kpi_effects", "causal_effects", "verdicts", "srm"] {
            assert_eq!(analysis.body[part], sync.body[part], "{b}: {part}");
        }
        assert!(!analysis.body["causal_effects"]
            .as_array()
            .unwrap()
            .is_empty());
        // A finished job cannot be cancelled.
        let r = app.call("DELETE", &href, Some(ADMIN_TOKEN), None).await;
        assert_problem(&r, 409, b);
    }
}

#[actix_web::test]
async fn a_cancelled_job_stores_nothing() {
    for app in apps().await {
        let b = app.backend;
        app.load_simulated(&sim("cancelled", 40_000)).await;
        let r = app
            .post_json(
                "/api/v1/experiments/cancelled/analyses?async=true",
                &json!({"bootstrap": {"resamples": 20_000, "seed": 1}}),
            )
            .await;
        assert_eq!(r.status, 202, "{b}: {}", r.text);
        let href = r.location.clone().unwrap();
        let r = app.call("DELETE", &href, Some(ADMIN_TOKEN), None).await;
        assert_eq!(r.status, 202, "{b}: {}", r.text);
        assert_eq!(r.body["cancel_requested"], true, "{b}: {}", r.text);
        let done = finished(&app, &href).await;
        assert_eq!(done["state"], "cancelled", "{b}: {done}");
        assert!(done["analysis_id"].is_null(), "{b}: {done}");
        let list = app.get("/api/v1/experiments/cancelled/analyses").await;
        assert_eq!(list.body["items"], json!([]), "{b}: {}", list.text);
    }
}

const TOKEN: &str = "sp_jobs_admin_token_0123456789abcdef";

struct Server {
    child: Child,
    base: String,
}

async fn start(db_url: &str) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_sloproof"))
        .arg("serve")
        .env("SLOPROOF_DATABASE_URL", db_url)
        .env("SLOPROOF_BIND", format!("127.0.0.1:{port}"))
        .env("SLOPROOF_ADMIN_TOKEN", TOKEN)
        .env("SLOPROOF_LOG", "warn")
        .env("SLOPROOF_WRITE_RATE", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sloproof");
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = awc::Client::default()
            .get(format!("{base}/readyz"))
            .send()
            .await
        {
            if r.status().is_success() {
                break;
            }
        }
        assert!(Instant::now() < deadline, "sloproof did not become ready");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    Server { child, base }
}

impl Server {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let req = awc::Client::builder()
            .timeout(Duration::from_secs(60))
            .finish()
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .bearer_auth(TOKEN);
        let mut r = match body {
            Some(b) => req.send_json(&b).await.unwrap(),
            None => req.send().await.unwrap(),
        };
        let status = r.status().as_u16();
        let body = r
            .json::<Value>()
            .limit(1 << 24)
            .await
            .unwrap_or(Value::Null);
        (status, body)
    }
}

/// The real binary is killed (SIGKILL) while a job computes; started again on the same
/// database, the job is `failed` with why, and a new job of the same analysis succeeds.
#[actix_web::test]
async fn a_job_running_when_the_server_dies_is_failed_on_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("jobs.db").to_string_lossy().into_owned();
    let mut server = start(&db).await;
    let base = server.base.clone();
    let loaded = actix_web::web::block(move || {
        Command::new(env!("CARGO_BIN_EXE_sloproof"))
            .args([
                "simulate", "--api", &base, "--token", TOKEN, "--key", "dies", "--units", "40000",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(loaded.status.success(), "{loaded:?}");
    let heavy = json!({"bootstrap": {"resamples": 50_000, "seed": 1}});
    let (status, job) = server
        .call(
            "POST",
            "/api/v1/experiments/dies/analyses?async=true",
            Some(heavy),
        )
        .await;
    assert_eq!(status, 202, "{job}");
    let href = format!("/api/v1/jobs/{}", job["id"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, j) = server.call("GET", &href, None).await;
        if j["state"] == "running" && j["stage"] == "computing" {
            break;
        }
        assert_ne!(
            j["state"], "succeeded",
            "the job finished before the kill: {j}"
        );
        assert!(Instant::now() < deadline, "the job did not start: {j}");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    let mut again = start(&db).await;
    let (status, j) = again.call("GET", &href, None).await;
    assert_eq!(status, 200, "{j}");
    assert_eq!(j["state"], "failed", "{j}");
    assert!(
        j["error"].as_str().unwrap().contains("submit it again"),
        "{j}"
    );
    assert!(j["finished_at"].is_string(), "{j}");
    let light = json!({"bootstrap": {"resamples": 200, "seed": 1}});
    let (status, job) = again
        .call(
            "POST",
            "/api/v1/experiments/dies/analyses?async=true",
            Some(light),
        )
        .await;
    assert_eq!(status, 202, "{job}");
    let href = format!("/api/v1/jobs/{}", job["id"]);
    let deadline = Instant::now() + Duration::from_secs(120);
    let done = loop {
        let (_, j) = again.call("GET", &href, None).await;
        if !["queued", "running"].contains(&j["state"].as_str().unwrap()) {
            break j;
        }
        assert!(Instant::now() < deadline, "{j}");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(done["state"], "succeeded", "{done}");
    again.child.kill().unwrap();
    again.child.wait().unwrap();
}

/// A full job queue answers 503 with `Retry-After` and queues nothing.
#[actix_web::test]
async fn a_full_job_queue_is_told_to_retry() {
    let limits = sloproof::api::Limits {
        max_queued_jobs: 1,
        max_concurrent_analyses: 0,
        ..sloproof::api::Limits::default()
    };
    for app in common::apps_with(limits).await {
        let b = app.backend;
        app.load_simulated(&sim("queued", 2_000)).await;
        let url = "/api/v1/experiments/queued/analyses?async=true";
        // No slot ever frees (a limit of 0), so the first job waits and fills the queue.
        let first = app.post_json(url, &json!({})).await;
        assert_eq!(first.status, 202, "{b}: {}", first.text);
        let r = app.post_json(url, &json!({})).await;
        let p = assert_problem(&r, 503, b);
        assert!(
            p["detail"]
                .as_str()
                .unwrap()
                .contains("SLOPROOF_MAX_QUEUED_JOBS"),
            "{b}: {p}"
        );
        assert_eq!(r.retry_after.as_deref(), Some("30"), "{b}");
        let job = app.get(first.location.as_deref().unwrap()).await;
        assert_eq!(job.body["state"], "queued", "{b}: {}", job.text);
    }
}

/// Jobs leave one analysis slot to requests: with the default two slots, a synchronous
/// analysis is computed while a long job runs (not refused with 503).
#[actix_web::test]
async fn a_running_job_leaves_a_slot_to_requests() {
    for app in apps().await {
        let b = app.backend;
        app.load_simulated(&sim("shared", 40_000)).await;
        let url = "/api/v1/experiments/shared/analyses";
        let heavy = json!({"bootstrap": {"resamples": 50_000, "seed": 1}});
        let r = app.post_json(&format!("{url}?async=true"), &heavy).await;
        assert_eq!(r.status, 202, "{b}: {}", r.text);
        let href = r.location.clone().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while app.get(&href).await.body["state"] != "running" {
            assert!(Instant::now() < deadline, "{b}: the job did not start");
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
        let sync = app
            .post_json(url, &json!({"bootstrap": {"resamples": 200, "seed": 2}}))
            .await;
        assert_eq!(sync.status, 201, "{b}: {}", sync.text);
        // The job is then cancelled, or has finished meanwhile (a fast backend).
        let r = app.call("DELETE", &href, Some(ADMIN_TOKEN), None).await;
        assert!(r.status == 202 || r.status == 409, "{b}: {}", r.text);
        let end = finished(&app, &href).await;
        assert!(
            end["state"] == "cancelled" || end["state"] == "succeeded",
            "{b}: {end}"
        );
    }
}
