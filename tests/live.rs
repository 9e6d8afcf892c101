//! Live SLOs end to end: production series pushed and validated, status and alerts compared with
//! the exported rules under `promtool test rules`, recommendations anchored on production and
//! replayed, and series pulled from a real Prometheus. Run on each backend.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

mod common;

use common::promtool::{format_num, promtool_agrees, which};

use std::process::Command;

use common::{apps, assert_problem, at, error_fields, error_rows, TestApp, BASE};
use serde_json::{json, Value};

/// 2026-11-01T00:00:00Z, the first window of every pushed series here.
/// A one-minute histogram window over `bounds` with cumulative `counts` (the last is +Inf).
fn window(start: i64, bounds: &[f64], counts: &[u64]) -> Value {
    let mut buckets: Vec<Value> = bounds
        .iter()
        .zip(counts)
        .map(|(le, c)| json!({"le": le, "count": c}))
        .collect();
    buckets.push(json!({"le": "+Inf", "count": counts[counts.len() - 1]}));
    json!({"start": at(start), "seconds": 60, "count": counts[counts.len() - 1], "buckets": buckets})
}

fn ndjson(rows: &[Value]) -> Vec<u8> {
    rows.iter()
        .map(|r| format!("{r}\n"))
        .collect::<String>()
        .into_bytes()
}

async fn push(app: &TestApp, key: &str, rows: &[Value]) -> common::Resp {
    app.post_raw(
        &format!("/api/v1/metrics/{key}/series"),
        "application/x-ndjson",
        ndjson(rows),
    )
    .await
}

async fn windows_stored(app: &TestApp, key: &str) -> i64 {
    let r = app.get(&format!("/api/v1/metrics/{key}/series")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["windows"].as_i64().unwrap()
}

async fn sli(app: &TestApp, key: &str, source: Option<Value>) {
    let mut m = json!({"key": key, "name": key, "kind": "sli", "value_type": "continuous", "unit": "ms",
        "direction": "lower_is_better", "layer": "journey"});
    if let Some(s) = source {
        m["prometheus"] = json!({"source": s});
    }
    let r = app.post_json("/api/v1/metrics", &m).await;
    assert_eq!(r.status, 201, "{}", r.text);
}

/// Every rule of a series upload is checked per row and field; nothing of a bad upload is kept.
#[actix_web::test]
async fn bad_windows_are_refused_by_row_and_field() {
    for app in apps().await {
        let b = app.backend;
        sli(&app, "lat_v2_9", None).await;
        let bounds = [100.0, 250.0, 500.0];
        let good = window(BASE, &bounds, &[10, 20, 30, 40]);
        let mut cases: Vec<(Value, &str)> = Vec::new();
        let mut v = window(BASE + 60, &bounds, &[10, 20, 30, 40]);
        v["buckets"][1]["count"] = json!(5);
        cases.push((v, "buckets[1].count")); // not cumulative
        let mut v = window(BASE + 60, &bounds, &[10, 20, 30, 40]);
        v["buckets"][2]["le"] = json!(200);
        cases.push((v, "buckets[2].le")); // le not increasing
        let mut v = window(BASE + 60, &bounds, &[10, 20, 30, 40]);
        v["count"] = json!(41);
        cases.push((v, "buckets[3].count")); // +Inf != count
        let mut v = window(BASE + 60, &bounds, &[10, 20, 30, 40]);
        v["buckets"][0]["count"] = json!(-1);
        cases.push((v, "buckets[0].count")); // negative
        let mut v = window(BASE + 60, &bounds, &[10, 20, 30, 40]);
        v["buckets"].as_array_mut().unwrap().pop();
        cases.push((v, "buckets[2].le")); // no +Inf
        let v = window(BASE + 90, &bounds, &[10, 20, 30, 40]);
        cases.push((v, "start")); // not aligned
        let mut v = window(BASE + 120, &bounds, &[10, 20, 30, 40]);
        v["seconds"] = json!(120);
        cases.push((v, "seconds")); // mixed length
        let future = (chrono::Utc::now().timestamp() / 60 + 10) * 60;
        cases.push((window(future, &bounds, &[1, 1, 1, 1]), "start")); // not ended
        cases.push((
            json!({"start": at(BASE + 60), "seconds": 60, "good": 3, "total": 4}),
            "buckets",
        )); // events in a histogram series (checked against the first row)
        cases.push((
            window(BASE + 60, &[100.0, 300.0, 500.0], &[10, 20, 30, 40]),
            "buckets[1].le",
        )); // other bounds
            // Values of the wrong type are named by their path too.
        let mut v = window(BASE + 60, &bounds, &[10, 20, 30, 40]);
        v["buckets"][2]["count"] = json!("many");
        cases.push((v, "buckets[2].count"));
        let mut v = window(BASE + 60, &bounds, &[10, 20, 30, 40]);
        v["buckets"][1]["le"] = json!("fast");
        cases.push((v, "buckets[1].le"));
        let mut v = window(BASE + 60, &bounds, &[10, 20, 30, 40]);
        v["seconds"] = json!(60.5);
        cases.push((v, "seconds"));
        for (bad, field) in cases {
            let r = push(&app, "lat_v2_9", &[good.clone(), bad.clone()]).await;
            let p = assert_problem(&r, 422, &format!("{b}: {bad}"));
            assert_eq!(error_rows(&p), vec![2], "{b}: {p}");
            assert_eq!(error_fields(&p), vec![field.to_owned()], "{b}: {bad}: {p}");
            assert_eq!(windows_stored(&app, "lat_v2_9").await, 0, "{b}: {bad}");
        }
        // Event windows: good > total names `good`.
        sli(&app, "faithful_share_1", None).await;
        let r = push(
            &app,
            "faithful_share_1",
            &[json!({"start": at(BASE), "seconds": 60, "good": 9, "total": 8})],
        )
        .await;
        let p = assert_problem(&r, 422, b);
        assert_eq!(error_fields(&p), vec!["good".to_owned()], "{p}");
        // A KPI's series holds value windows, not histograms; an unknown metric is a 404.
        let kpi = json!({"key": "conv_2026", "name": "Conversion", "kind": "kpi", "value_type": "binary",
            "unit": "", "direction": "higher_is_better", "layer": "business"});
        assert_eq!(app.post_json("/api/v1/metrics", &kpi).await.status, 201);
        let p = assert_problem(
            &push(&app, "conv_2026", std::slice::from_ref(&good)).await,
            422,
            b,
        );
        assert_eq!(error_fields(&p), vec!["value".to_owned()], "{p}");
        assert_eq!(
            push(&app, "nope", std::slice::from_ref(&good)).await.status,
            404,
            "{b}"
        );
    }
}

/// JSON, NDJSON and CSV carry the same windows; re-sending is a no-op, different counts are
/// refused unless replaced, and the layout is fixed by the first upload.
#[actix_web::test]
async fn uploads_are_idempotent_in_every_format() {
    for app in apps().await {
        let b = app.backend;
        sli(&app, "ttft_ms_2", None).await;
        let bounds = [100.0, 250.0, 500.0];
        let rows: Vec<Value> = (0..3)
            .map(|k| window(BASE + 60 * k, &bounds, &[k as u64, 5, 9, 12]))
            .collect();
        let r = app
            .post_json("/api/v1/metrics/ttft_ms_2/series", &json!(rows))
            .await;
        assert_eq!(
            r.body,
            json!({"received": 3, "inserted": 3, "duplicates": 0, "replaced": 0}),
            "{b}: {}",
            r.text
        );
        let csv = format!(
            "start,seconds,count,le_100,le_250,le_500,le_inf\n{},60,12,0,5,9,12\n{},60,12,1,5,9,12\n{},60,12,2,5,9,12\n",
            at(BASE),
            at(BASE + 60),
            at(BASE + 120)
        );
        let r = app
            .post_raw(
                "/api/v1/metrics/ttft_ms_2/series",
                "text/csv",
                csv.into_bytes(),
            )
            .await;
        assert_eq!(
            r.body,
            json!({"received": 3, "inserted": 0, "duplicates": 3, "replaced": 0}),
            "{b}: {}",
            r.text
        );
        let changed = window(BASE + 60, &bounds, &[3, 5, 9, 12]);
        let p = assert_problem(
            &push(&app, "ttft_ms_2", std::slice::from_ref(&changed)).await,
            422,
            b,
        );
        assert_eq!(error_fields(&p), vec!["start".to_owned()], "{p}");
        let r = app
            .post_raw(
                "/api/v1/metrics/ttft_ms_2/series?on_conflict=replace",
                "application/x-ndjson",
                ndjson(&[changed]),
            )
            .await;
        assert_eq!(r.body["replaced"], 1, "{b}: {}", r.text);
        let info = app.get("/api/v1/metrics/ttft_ms_2/series").await.body;
        assert_eq!(info["kind"], "histogram");
        assert_eq!(info["window_seconds"], 60);
        assert_eq!(info["bounds"], json!([100.0, 250.0, 500.0]));
        assert_eq!(info["windows"], 3);
    }
}

/// Analyses the simulated experiment and publishes "p95 < T in 99% of 5-minute windows";
/// returns (recommendation id, SLO id, SLO document).
async fn published(app: &TestApp) -> (i64, i64, Value) {
    let id = app.analysed("exp", vec![0.0, 100.0, 200.0]).await;
    let rec = app
        .post_json(
            &format!("/api/v1/analyses/{id}/recommendations"),
            &json!({"max_relative_kpi_loss": 0.1, "value_per_kpi_unit": 50.0, "units_per_day": 100000.0}),
        )
        .await;
    assert_eq!(rec.status, 201, "{}", rec.text);
    let rid = rec.body["id"].as_i64().unwrap();
    let dec = app
        .post_json(
            &format!("/api/v1/recommendations/{rid}/decision"),
            &json!({"decision": "approve"}),
        )
        .await;
    let sid = dec.body["slo_id"].as_i64().unwrap();
    let slo = app.get(&format!("/api/v1/slos/{sid}")).await.body;
    (rid, sid, slo)
}

/// Slow requests per minute in each minute of the scenario (of 1,000): fine for two hours,
/// half slow for two hours, fine again.
fn slow(minute: usize) -> u64 {
    if (120..240).contains(&minute) {
        500
    } else {
        0
    }
}

/// The same synthetic series goes to the service and, as counters, to `promtool test rules`
/// with the exported rules: at each checkpoint both fire the same page and ticket alerts.
#[actix_web::test]
async fn status_alerts_agree_with_the_exported_rules_under_promtool() {
    for app in apps().await {
        let b = app.backend;
        let (_, sid, slo) = published(&app).await;
        let t = slo["slo"]["threshold"].as_f64().unwrap();
        let bounds = [t / 2.0, t, 2.0 * t];
        let minutes = 360;
        let rows: Vec<Value> = (0..minutes)
            .map(|k| {
                let fast = 1000 - slow(k);
                window(BASE + 60 * k as i64, &bounds, &[fast, fast, 1000, 1000])
            })
            .collect();
        let r = push(&app, "checkout-latency", &rows).await;
        assert_eq!(r.status, 200, "{b}: {}", r.text);
        let mut fired = Vec::new();
        for minute in [60usize, 150, 200, 300, 350] {
            let s = app
                .get(&format!(
                    "/api/v1/slos/{sid}/status?at={}",
                    at(BASE + 60 * minute as i64)
                ))
                .await;
            assert_eq!(s.status, 200, "{b}: {}", s.text);
            let rules = s.body["alert_rules"].as_array().unwrap();
            let has = |sev: &str| rules.iter().any(|r| r["severity"] == sev);
            fired.push((minute, has("page"), has("ticket"), s.body.clone()));
        }
        // The scenario is not trivial: quiet, then paging, then a ticket after recovery.
        let levels: Vec<(usize, bool, bool)> = fired.iter().map(|f| (f.0, f.1, f.2)).collect();
        assert_eq!(
            levels,
            vec![
                (60, false, false),
                (150, true, true),
                (200, true, true),
                (300, false, true),
                (350, false, true)
            ],
            "{b}"
        );
        let at150 = &fired[1].3;
        assert_eq!(at150["alert"], "page");
        assert!(at150["coverage"].as_f64().unwrap() < 0.1, "{at150}");
        assert!(at150["notes"].to_string().contains("have data"), "{at150}");

        let name = slo["name"].as_str().unwrap();
        let statement = slo["slo"]["statement"].as_str().unwrap();
        let rules = app
            .get(&format!("/api/v1/slos/{sid}/prometheus-rules"))
            .await
            .text;
        let (mut bucket, mut count) = (vec![0u64], vec![0u64]);
        for k in 0..minutes {
            bucket.push(bucket[k] + 1000 - slow(k));
            count.push(count[k] + 1000);
        }
        let series = [
            (
                format!(
                    "checkout_latency_seconds_bucket{{le=\"{}\"}}",
                    format_num(t / 1000.0)
                ),
                bucket,
            ),
            ("checkout_latency_seconds_count".to_owned(), count),
        ];
        let checks: Vec<(usize, bool, bool)> = fired.iter().map(|f| (f.0, f.1, f.2)).collect();
        promtool_agrees(b, &rules, (&series, 1), &checks, (name, statement));
    }
}

/// Without production data a status is a 200 with no coverage and no alert.
#[actix_web::test]
async fn a_status_without_data_has_no_coverage_and_no_alert() {
    for app in apps().await {
        let b = app.backend;
        let (_, sid, _) = published(&app).await;
        let s = app.get(&format!("/api/v1/slos/{sid}/status")).await;
        assert_eq!(s.status, 200, "{b}: {}", s.text);
        assert_eq!(s.body["coverage"], 0.0);
        assert_eq!(s.body["alert"], "none");
        assert_eq!(s.body["attainment"], Value::Null);
        assert_eq!(s.body["revalidation_due"], false);
        let bad = app
            .get(&format!(
                "/api/v1/slos/{sid}/status/series?from={}&to={}",
                at(BASE + 86_400 * 100),
                at(BASE)
            ))
            .await;
        let p = assert_problem(&bad, 422, b);
        assert_eq!(error_fields(&p), vec!["to".to_owned()], "{p}");
        let r = app.get("/api/v1/slos/999/status").await;
        assert_eq!(r.status, 404, "{b}");
    }
}

/// With a production series, the baseline is production's per-window p95 and the proposal
/// carries a replay on the last period; the replay endpoint replays any range.
#[actix_web::test]
async fn recommendations_are_anchored_on_production_and_replayed() {
    use sloproof::simulate_series::{generate, ndjson as sim_ndjson, SeriesConfig};
    for app in apps().await {
        let b = app.backend;
        let id = app.analysed("exp", vec![0.0, 100.0, 200.0]).await;
        let url = format!("/api/v1/analyses/{id}/recommendations");
        let req = json!({"max_relative_kpi_loss": 0.1, "window_days": 7, "value_per_kpi_unit": 50.0, "units_per_day": 100000.0});
        let before = app.post_json(&url, &req).await;
        assert_eq!(before.status, 201, "{b}: {}", before.text);
        assert_eq!(
            before.body["derivation"]["baseline_source"]["kind"],
            "experiment"
        );
        assert_eq!(before.body["replay"], Value::Null);
        // A week of heavy-tailed production latency (log-normal σ 0.6) with incidents.
        let cfg = SeriesConfig {
            start: chrono::DateTime::from_timestamp(BASE, 0).unwrap(),
            windows: 7 * 1440,
            incidents_per_hour: 0.03,
            ..SeriesConfig::default()
        };
        // Bounds every 10 ms: the threshold snaps to one (the exported rules need a bound).
        let bounds: Vec<f64> = (1..=200).map(|i| f64::from(i) * 10.0).collect();
        let sim = generate(&cfg, &bounds).unwrap();
        let body = sim_ndjson(&sim, &bounds, 60).into_bytes();
        let r = app
            .post_raw(
                "/api/v1/metrics/checkout-latency/series",
                "application/x-ndjson",
                body,
            )
            .await;
        assert_eq!(r.body["inserted"], 7 * 1440, "{b}: {}", r.text);
        let after = app.post_json(&url, &req).await;
        assert_eq!(after.status, 201, "{b}: {}", after.text);
        let d = &after.body["derivation"];
        let source = &d["baseline_source"];
        assert_eq!(source["kind"], "production", "{b}: {d}");
        assert_eq!(source["from"], at(BASE));
        assert_eq!(source["to"], at(BASE + 7 * 86_400));
        assert_eq!(source["windows"], 7 * 288, "{source}");
        let experiment = before.body["derivation"]["baseline_sli"].as_f64().unwrap();
        assert_eq!(source["experiment_baseline"].as_f64().unwrap(), experiment);
        // Production's per-window p95 of a σ = 0.6 log-normal with median 250 ms (≈ 670 ms)
        // lies well above the experiment's per-unit p95 (σ = 0.35, median 300 ms: ≈ 530 ms).
        let production = d["baseline_sli"].as_f64().unwrap();
        assert!(
            production > experiment + 50.0,
            "{b}: {production} vs {experiment}"
        );
        let conservative = after.body["threshold_range"]["conservative"]
            .as_f64()
            .unwrap();
        let degradation = d["degradation"].as_f64().unwrap();
        assert!(
            (conservative - (production + degradation)).abs() < 1e-6 * conservative,
            "{d}"
        );
        let replay = &after.body["replay"];
        assert_eq!(replay["from"], at(BASE), "{replay}");
        assert_eq!(replay["coverage"], 1.0, "{replay}");
        assert_eq!(replay["weeks"].as_array().unwrap().len(), 1, "{replay}");
        let attainment = replay["attainment"].as_f64().unwrap();
        assert!(attainment > 0.5 && attainment <= 1.0, "{replay}");
        assert_eq!(replay["weeks_with_data"], 1, "{replay}");
        assert!(
            replay["summary"]
                .as_str()
                .unwrap()
                .contains("in the one week with data (attainment"),
            "{replay}"
        );
        let rid = after.body["id"].as_i64().unwrap();
        let again = app
            .post_json(
                &format!("/api/v1/recommendations/{rid}/replay"),
                &json!({"from": at(BASE), "to": at(BASE + 7 * 86_400)}),
            )
            .await;
        assert_eq!(again.status, 200, "{b}: {}", again.text);
        // The stored replay is rounded to 12 significant digits.
        let a2 = again.body["attainment"].as_f64().unwrap();
        assert!((a2 - attainment).abs() < 1e-11, "{a2} vs {attainment}");
        assert_eq!(again.body["pages"], replay["pages"]);
        let half = app
            .post_json(
                &format!("/api/v1/recommendations/{rid}/replay"),
                &json!({"from": at(BASE + 2 * 86_400), "to": at(BASE + 3 * 86_400)}),
            )
            .await;
        assert_eq!(half.body["coverage"], 1.0, "{}", half.text);
        let p = assert_problem(
            &app.post_json(
                &format!("/api/v1/recommendations/{rid}/replay"),
                &json!({"from": at(BASE), "to": at(BASE + 100 * 86_400)}),
            )
            .await,
            422,
            b,
        );
        assert_eq!(error_fields(&p), vec!["to".to_owned()], "{p}");
    }
}

/// A Prometheus that cannot be reached is a 502 naming it; nothing is written.
#[actix_web::test]
async fn an_unreachable_prometheus_is_a_502_and_writes_nothing() {
    for app in apps().await {
        let b = app.backend;
        sli(
            &app,
            "lat_remote_1",
            Some(json!({"url": "http://127.0.0.1:9", "buckets": "api_latency_seconds_bucket"})),
        )
        .await;
        let r = app
            .post_json(
                "/api/v1/metrics/lat_remote_1/series/sync",
                &json!({"from": at(BASE)}),
            )
            .await;
        let p = assert_problem(&r, 502, b);
        assert!(
            p["detail"].as_str().unwrap().contains("http://127.0.0.1:9"),
            "{p}"
        );
        assert_eq!(windows_stored(&app, "lat_remote_1").await, 0);
        // A URL with a query, or a selector that is a function or a range, is refused.
        for (source, field) in [
            (
                json!({"url": "http://prom:9090/?a=b", "buckets": "x_bucket"}),
                "prometheus.source.url",
            ),
            (
                json!({"url": "http://prom:9090", "buckets": "rate(x_bucket[5m])"}),
                "prometheus.source.buckets",
            ),
        ] {
            let m = json!({"key": "lat_bad_src", "name": "x", "kind": "sli", "value_type": "continuous",
                "unit": "ms", "direction": "lower_is_better", "layer": "journey", "prometheus": {"source": source}});
            let p = assert_problem(&app.post_json("/api/v1/metrics", &m).await, 422, b);
            assert_eq!(error_fields(&p), vec![field.to_owned()], "{p}");
        }
        // A metric that declares its bucket bounds gets windows with those bounds.
        let m = json!({"key": "lat_declared", "name": "x", "kind": "sli", "value_type": "continuous",
            "unit": "ms", "direction": "lower_is_better", "layer": "journey",
            "prometheus": {"buckets": [100, 250, 500]}});
        assert_eq!(app.post_json("/api/v1/metrics", &m).await.status, 201);
        let other = window(BASE, &[100.0, 300.0, 500.0], &[1, 2, 3, 4]);
        let p = assert_problem(&push(&app, "lat_declared", &[other]).await, 422, b);
        assert_eq!(error_fields(&p), vec!["buckets".to_owned()], "{p}");
        let same = window(BASE, &[100.0, 250.0, 500.0], &[1, 2, 3, 4]);
        assert_eq!(push(&app, "lat_declared", &[same]).await.status, 200);
        // Credentials in a source URL are refused when the metric is created.
        let m = json!({"key": "lat_secret", "name": "x", "kind": "sli", "value_type": "continuous", "unit": "ms",
            "direction": "lower_is_better", "layer": "journey",
            "prometheus": {"source": {"url": "http://user:pw@prom:9090", "buckets": "x_bucket"}}});
        let p = assert_problem(&app.post_json("/api/v1/metrics", &m).await, 422, b);
        assert_eq!(
            error_fields(&p),
            vec!["prometheus.source.url".to_owned()],
            "{p}"
        );
        assert!(!p.to_string().contains("pw"), "{p}");
    }
}

/// A real Prometheus server, backfilled by `promtool tsdb create-blocks-from openmetrics`.
struct RealPrometheus {
    child: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for RealPrometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RealPrometheus {
    /// Starts Prometheus on a loopback port with `openmetrics` backfilled; None when Prometheus
    /// or promtool is not installed (CI sets SLOPROOF_REQUIRE_PROMETHEUS=1: then it fails).
    fn start(openmetrics: &str) -> Option<RealPrometheus> {
        let required = std::env::var("SLOPROOF_REQUIRE_PROMETHEUS").is_ok_and(|v| v == "1");
        let (Some(prometheus), Some(promtool)) = (
            which(&["prometheus", "/usr/bin/prometheus"]),
            which(&["promtool", "/usr/bin/promtool"]),
        ) else {
            assert!(
                !required,
                "prometheus and promtool are required but not installed"
            );
            eprintln!("prometheus not installed; the pull test is skipped");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::write(dir.path().join("series.om"), openmetrics).unwrap();
        let out = Command::new(&promtool)
            .args(["tsdb", "create-blocks-from", "openmetrics"])
            .arg(dir.path().join("series.om"))
            .arg(&data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "backfill: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(
            dir.path().join("prometheus.yml"),
            "global:\n  scrape_interval: 1m\n",
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(&prometheus)
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg("--storage.tsdb.retention.time=100y")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let p = RealPrometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        for _ in 0..300 {
            if let Ok(s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                drop(s);
                let ready = Command::new("curl")
                    .args(["-sf", &format!("{}/-/ready", p.url)])
                    .output()
                    .is_ok_and(|o| o.status.success());
                if ready {
                    return Some(p);
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("prometheus did not become ready at {}", p.url);
    }
}

/// Windows of a metric as stored: (start, cumulative counts, count).
type Stored = (Vec<f64>, Vec<(i64, Vec<f64>, f64)>);

fn stored(app: &TestApp, key: &str) -> Stored {
    use sloproof::domain::series::WindowData;
    let db = sloproof::store::Db::open(&app.db_url, 1).unwrap();
    let conn = &mut *db.conn().unwrap();
    let m = sloproof::store::metrics::get(conn, key).unwrap();
    let layout = sloproof::store::series::layout(conn, m.id)
        .unwrap()
        .unwrap();
    let windows = sloproof::store::series::windows(conn, m.id, 0, i64::MAX).unwrap();
    let rows = windows
        .into_iter()
        .map(|w| match w.data {
            WindowData::Histogram {
                count, cumulative, ..
            } => (w.start, cumulative, count),
            _ => panic!("histogram expected"),
        })
        .collect();
    (layout.bounds, rows)
}

/// A series pulled from a real Prometheus is the same, window for window, as the same data
/// pushed; pulling again is idempotent; a failing query is a 502 naming Prometheus's status.
#[actix_web::test]
async fn a_series_pulled_from_prometheus_matches_the_pushed_one() {
    use sloproof::simulate_series::{
        generate, ndjson as sim_ndjson, openmetrics, SeriesConfig, DEFAULT_BOUNDS_MS,
    };
    let cfg = SeriesConfig {
        start: chrono::DateTime::from_timestamp(BASE, 0).unwrap(),
        windows: 360,
        seed: 11,
        incidents_per_hour: 0.3,
        ..SeriesConfig::default()
    };
    let sim = generate(&cfg, &DEFAULT_BOUNDS_MS).unwrap();
    let Some(prom) = RealPrometheus::start(&openmetrics(
        &sim,
        &DEFAULT_BOUNDS_MS,
        60,
        "api_latency_seconds",
    )) else {
        return;
    };
    for app in apps().await {
        let b = app.backend;
        sli(
            &app,
            "api_lat_v2",
            Some(json!({"url": prom.url, "buckets": "api_latency_seconds_bucket"})),
        )
        .await;
        sli(&app, "api_lat_v2_pushed", None).await;
        let r = app
            .post_raw(
                "/api/v1/metrics/api_lat_v2_pushed/series",
                "application/x-ndjson",
                sim_ndjson(&sim, &DEFAULT_BOUNDS_MS, 60).into_bytes(),
            )
            .await;
        assert_eq!(r.body["inserted"], 360, "{b}: {}", r.text);
        let range = json!({"from": at(BASE), "to": at(BASE + 360 * 60)});
        let r = app
            .post_json("/api/v1/metrics/api_lat_v2/series/sync", &range)
            .await;
        assert_eq!(r.status, 200, "{b}: {}", r.text);
        assert_eq!(r.body["stored"]["inserted"], 360, "{b}: {}", r.text);
        let pulled = stored(&app, "api_lat_v2");
        let pushed = stored(&app, "api_lat_v2_pushed");
        assert_eq!(pulled.0, pushed.0, "{b}: bounds");
        assert_eq!(pulled.1, pushed.1, "{b}: windows");
        let again = app
            .post_json("/api/v1/metrics/api_lat_v2/series/sync", &range)
            .await;
        assert_eq!(
            again.body["stored"]["duplicates"], 360,
            "{b}: {}",
            again.text
        );
        sli(
            &app,
            "api_lat_bad",
            Some(json!({"url": prom.url, "buckets": "api_latency_seconds_bucket{le=~\"[\"}"})),
        )
        .await;
        let p = assert_problem(
            &app.post_json("/api/v1/metrics/api_lat_bad/series/sync", &range)
                .await,
            502,
            b,
        );
        assert!(p["detail"].as_str().unwrap().contains("400"), "{p}");
        assert_eq!(windows_stored(&app, "api_lat_bad").await, 0);
    }
}

/// Two series uploads at once, to different metrics, both land (a deferred SQLite transaction
/// that read the layout first could not take the write lock: a 503 at once).
#[actix_web::test]
async fn concurrent_series_uploads_both_land() {
    for app in apps().await {
        let b = app.backend;
        let bounds = [100.0, 250.0, 500.0];
        let rows: Vec<Value> = (0..20_000)
            .map(|k| window(BASE + 60 * k, &bounds, &[1, 2, 3, 4]))
            .collect();
        let body = ndjson(&rows);
        for round in 0..3 {
            let (ka, kb) = (format!("lat_a_{round}"), format!("lat_b_{round}"));
            sli(&app, &ka, None).await;
            sli(&app, &kb, None).await;
            let (ua, ub) = (
                format!("/api/v1/metrics/{ka}/series"),
                format!("/api/v1/metrics/{kb}/series"),
            );
            let (ra, rb) = futures_util::join!(
                app.post_raw(&ua, "application/x-ndjson", body.clone()),
                app.post_raw(&ub, "application/x-ndjson", body.clone()),
            );
            assert_eq!(ra.body["inserted"], 20_000, "{b}: {}", ra.text);
            assert_eq!(rb.body["inserted"], 20_000, "{b}: {}", rb.text);
        }
    }
}

/// Re-validating an SLO with a new analysis: confirmed when the evidence holds, stale with
/// reasons when the new experiment shows no effect; the outcome shows on the SLO, its status
/// and its exports.
#[actix_web::test]
async fn revalidation_confirms_or_marks_an_slo_stale() {
    for app in apps().await {
        let b = app.backend;
        let (_, sid, _) = published(&app).await;
        let url = format!("/api/v1/slos/{sid}/revalidations");
        let r = app
            .post_json(&url, &json!({"experiment": "exp", "analysis": {"bootstrap": {"resamples": 200, "seed": 2}}}))
            .await;
        assert_eq!(r.status, 201, "{b}: {}", r.text);
        assert_eq!(r.body["outcome"], "confirmed", "{}", r.text);
        // A second experiment on the same SLI and KPI where latency does not matter.
        let sim = sloproof::simulate::generate(&sloproof::simulate::SimConfig {
            key: "exp-null".into(),
            units: 40_000,
            effect_per_100ms: 0.0,
            seed: 5,
            ..sloproof::simulate::SimConfig::default()
        })
        .unwrap();
        app.load_simulated(&sim).await;
        let r = app
            .post_json(&url, &json!({"experiment": "exp-null", "analysis": {"bootstrap": {"resamples": 200, "seed": 2}}}))
            .await;
        assert_eq!(r.status, 201, "{b}: {}", r.text);
        assert_eq!(r.body["outcome"], "stale", "{}", r.text);
        let codes: Vec<&str> = r.body["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["code"].as_str().unwrap())
            .collect();
        assert!(
            codes.contains(&"verdict_failed") && codes.contains(&"slope_changed"),
            "{codes:?}"
        );
        let slo = app.get(&format!("/api/v1/slos/{sid}")).await.body;
        assert_eq!(slo["validation"]["outcome"], "stale", "{slo}");
        let listed = app.get("/api/v1/slos").await.body;
        assert_eq!(listed["items"][0]["validation"]["outcome"], "stale");
        let status = app.get(&format!("/api/v1/slos/{sid}/status")).await.body;
        assert_eq!(status["validation"], "stale", "{status}");
        assert!(status["notes"].to_string().contains("stale"), "{status}");
        let openslo = app.get(&format!("/api/v1/slos/{sid}/openslo")).await.text;
        assert!(
            openslo.contains("sloproof.dev/validation: stale"),
            "{openslo}"
        );
        let rules = app
            .get(&format!("/api/v1/slos/{sid}/prometheus-rules"))
            .await
            .text;
        assert!(
            rules.contains("sloproof_validation: stale (verdict_failed, slope_changed)"),
            "{rules}"
        );
        let all = app.get(&url).await.body;
        assert_eq!(all["items"].as_array().unwrap().len(), 2, "{all}");
        assert_eq!(all["next_cursor"], Value::Null, "{all}");
        // A page at a time, oldest first.
        let first = app.get(&format!("{url}?limit=1")).await.body;
        assert_eq!(first["items"][0]["outcome"], "confirmed", "{first}");
        let cursor = first["next_cursor"]
            .as_str()
            .expect("a next page")
            .to_owned();
        let second = app
            .get(&format!("{url}?limit=1&cursor={cursor}"))
            .await
            .body;
        assert_eq!(second["items"][0]["outcome"], "stale", "{second}");
        assert_eq!(second["next_cursor"], Value::Null, "{second}");
        // An experiment that does not measure the SLO's SLI and KPI is refused.
        sli(&app, "other_sli", None).await;
        let e = json!({"key": "e-other", "name": "E", "hypothesis": "H", "sli": "other_sli", "kpis": ["checkout-conversion"],
            "variants": [{"key": "c", "weight": 0.5, "control": true, "dose": 0}, {"key": "t", "weight": 0.5, "dose": 100}]});
        assert_eq!(app.post_json("/api/v1/experiments", &e).await.status, 201);
        let p = assert_problem(
            &app.post_json(&url, &json!({"experiment": "e-other"})).await,
            422,
            b,
        );
        assert_eq!(error_fields(&p), vec!["experiment".to_owned()], "{p}");
    }
}

/// The server keeps decoded windows between statuses (checked against the series' revision):
/// after appends, a replaced earlier window, and two writes between statuses, a status equals
/// one computed from a fresh read of the database.
#[actix_web::test]
async fn cached_statuses_equal_fresh_reads_after_every_write() {
    use sloproof::simulate_series::{generate, ndjson as sim_ndjson, SeriesConfig};
    for app in apps().await {
        let b = app.backend;
        let (_, sid, _) = published(&app).await;
        let bounds: Vec<f64> = (1..=200).map(|i| f64::from(i) * 10.0).collect();
        let cfg = SeriesConfig {
            start: chrono::DateTime::from_timestamp(BASE, 0).unwrap(),
            windows: 2 * 1440,
            incidents_per_hour: 0.1,
            ..SeriesConfig::default()
        };
        let sim = generate(&cfg, &bounds).unwrap();
        let rows: Vec<Value> = sim_ndjson(&sim, &bounds, 60)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let status_at = BASE + 2 * 86_400;
        let fresh = sloproof::store::Db::open(&app.db_url, 1).unwrap();
        let check = |label: &'static str| {
            let app = &app;
            let fresh = &fresh;
            async move {
                let r = app
                    .get(&format!("/api/v1/slos/{sid}/status?at={}", at(status_at)))
                    .await;
                assert_eq!(r.status, 200, "{b} {label}: {}", r.text);
                let at = chrono::DateTime::from_timestamp(status_at, 0);
                let expected = sloproof::slo::live::service::status(fresh, sid, at, 90.0).unwrap();
                let expected: Value = serde_json::from_str(
                    &sloproof::domain::document::to_document(&expected).unwrap(),
                )
                .unwrap();
                assert_eq!(r.body, expected, "{b} {label}");
                r.body
            }
        };
        let push_range = |from: usize, to: usize| push(&app, "checkout-latency", &rows[from..to]);
        assert_eq!(push_range(0, 1440).await.status, 200);
        let first = check("first read").await;
        check("kept").await;
        assert_eq!(push_range(1440, 1500).await.status, 200);
        let appended = check("one append behind").await;
        assert_ne!(first["data_windows"], appended["data_windows"], "{b}");
        // An earlier window replaced by one whose every request is slow.
        let mut slow = rows[100].clone();
        let n = slow["count"].clone();
        for bucket in slow["buckets"].as_array_mut().unwrap() {
            bucket["count"] = if bucket["le"] == "+Inf" {
                n.clone()
            } else {
                json!(0)
            };
        }
        let r = app
            .post_raw(
                "/api/v1/metrics/checkout-latency/series?on_conflict=replace",
                "application/x-ndjson",
                ndjson(&[slow]),
            )
            .await;
        assert_eq!(r.body["replaced"], 1, "{b}: {}", r.text);
        let replaced = check("one replace behind").await;
        assert_ne!(
            appended["cost"]["relative_kpi_loss"], replaced["cost"]["relative_kpi_loss"],
            "{b}: the replaced window must count"
        );
        assert_eq!(push_range(1500, 1600).await.status, 200);
        assert_eq!(push_range(1600, 1700).await.status, 200);
        check("two writes behind").await;
    }
}
