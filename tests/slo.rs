//! Recommendations, review, published SLOs and their exports, end to end through HTTP.

// A failed unwrap is the test failing; reference tables make long test functions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{apps, assert_problem, TestApp};
use serde_json::{json, Value};
use sloproof::simulate::{generate, SimConfig};

async fn analysed(app: &TestApp, key: &str, doses: Vec<f64>) -> i64 {
    let sim = generate(&SimConfig {
        key: key.into(),
        units: 40_000,
        effect_per_100ms: -0.2,
        seed: 21,
        doses,
        ..SimConfig::default()
    })
    .unwrap();
    app.load_simulated(&sim).await;
    let r = app
        .post_json(
            &format!("/api/v1/experiments/{key}/analyses"),
            &json!({"bootstrap": {"resamples": 200, "seed": 1}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["id"].as_i64().unwrap()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

#[actix_web::test]
async fn a_validated_effect_becomes_a_priced_slo_that_reviewers_publish() {
    for app in apps().await {
        let b = app.backend;
        let id = analysed(&app, "exp", vec![0.0, 100.0, 200.0]).await;
        let analysis = app.get(&format!("/api/v1/analyses/{id}")).await.body;
        let req = json!({"max_relative_kpi_loss": 0.01, "value_per_kpi_unit": 50.0, "units_per_day": 100000.0});
        let r = app
            .post_json(&format!("/api/v1/analyses/{id}/recommendations"), &req)
            .await;
        assert_eq!(r.status, 201, "{b}: {}", r.text);
        let rec = r.body.clone();
        assert_eq!(rec["status"], "proposed");
        // The derivation, recomputed from the analysis.
        let ce = &analysis["causal_effects"][0];
        let mu = f(&ce["control_kpi_mean"]);
        let most = f(&ce["slope"]["ci_low"]);
        let p95 = f(&analysis["variants"][0]["sli"]["p95"]);
        let degradation = 0.01 / (most / mu).abs();
        let d = &rec["derivation"];
        assert!(
            (f(&d["degradation"]) - degradation).abs() < 1e-9 * degradation,
            "{b}: {d}"
        );
        assert!(
            (f(&rec["threshold_range"]["conservative"]) - (p95 + degradation)).abs() < 1e-9 * p95
        );
        let t = f(&rec["slo"]["threshold"]);
        assert!(
            t <= p95 + degradation && t > 0.99 * (p95 + degradation),
            "{b}: conservative rounding of {}",
            p95 + degradation
        );
        assert!(
            f(&rec["threshold_range"]["estimate"]) > f(&rec["threshold_range"]["conservative"])
        );
        assert_eq!(rec["slo"]["comparison"], "lt");
        let statement = rec["slo"]["statement"].as_str().unwrap();
        assert!(
            statement.starts_with("checkout latency p95 < ")
                && statement.ends_with(" ms in 99% of 5-minute windows over 28 days"),
            "{statement}"
        );
        // The budget: 28 days of 5-minute windows, 1% of them; priced at the tolerated loss.
        let eb = &rec["error_budget"];
        assert_eq!(eb["total_windows"], 8064);
        assert_eq!(eb["allowed_bad_windows"], 80);
        let value = 0.01 * 0.01 * mu * 100000.0 * 28.0 * 50.0;
        assert!(
            (f(&eb["value_at_risk"]) - value).abs() < 1e-9 * value,
            "{eb}"
        );
        assert_eq!(rec["evidence"]["analysis_id"], id);
        assert_eq!(rec["evidence"]["seed"], 1);

        // Review: approve → published SLO; a second decision is refused.
        let rid = rec["id"].as_i64().unwrap();
        let dec = app
            .post_json(
                &format!("/api/v1/recommendations/{rid}/decision"),
                &json!({"decision": "approve", "comment": "matches our checkout budget"}),
            )
            .await;
        assert_eq!(dec.status, 200, "{b}: {}", dec.text);
        assert_eq!(dec.body["status"], "approved");
        let slo_id = dec.body["slo_id"].as_i64().unwrap();
        assert_problem(
            &app.post_json(
                &format!("/api/v1/recommendations/{rid}/decision"),
                &json!({"decision": "reject"}),
            )
            .await,
            409,
            b,
        );
        let slo = app.get(&format!("/api/v1/slos/{slo_id}")).await;
        assert_eq!(slo.body["status"], "active");
        assert_eq!(slo.body["slo"]["threshold"], rec["slo"]["threshold"]);
        let hist = app
            .get(&format!("/api/v1/recommendations/{rid}/history"))
            .await;
        let actions: Vec<&str> = hist.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        assert_eq!(actions, ["proposed", "approved", "published"]);
        assert_eq!(
            hist.body["items"][1]["comment"],
            "matches our checkout budget"
        );

        // A newer approved recommendation supersedes the SLO; a rejected one changes nothing.
        let r2 = app
            .post_json(
                &format!("/api/v1/analyses/{id}/recommendations"),
                &json!({"max_relative_kpi_loss": 0.02, "target": 0.995}),
            )
            .await;
        let r3 = app
            .post_json(
                &format!("/api/v1/analyses/{id}/recommendations"),
                &json!({"max_relative_kpi_loss": 0.05}),
            )
            .await;
        let (rid2, rid3) = (
            r2.body["id"].as_i64().unwrap(),
            r3.body["id"].as_i64().unwrap(),
        );
        let proposed = app.get("/api/v1/recommendations?status=proposed").await;
        assert_eq!(proposed.body["items"].as_array().unwrap().len(), 2);
        let rej = app
            .post_json(
                &format!("/api/v1/recommendations/{rid3}/decision"),
                &json!({"decision": "reject", "comment": "too lax"}),
            )
            .await;
        assert_eq!(rej.body["status"], "rejected");
        assert!(rej.body["slo_id"].is_null());
        let dec2 = app
            .post_json(
                &format!("/api/v1/recommendations/{rid2}/decision"),
                &json!({"decision": "approve"}),
            )
            .await;
        let slo2 = dec2.body["slo_id"].as_i64().unwrap();
        let old = app.get(&format!("/api/v1/slos/{slo_id}")).await;
        assert_eq!(old.body["status"], "superseded");
        assert_eq!(old.body["superseded_by"], slo2);
        let hist = app
            .get(&format!("/api/v1/recommendations/{rid}/history"))
            .await;
        assert_eq!(
            hist.body["items"].as_array().unwrap().last().unwrap()["action"],
            "superseded"
        );
        let slos = app.get("/api/v1/slos").await;
        assert_eq!(slos.body["items"].as_array().unwrap().len(), 2);

        // Exports of the active SLO.
        check_openslo(&app, slo2).await;
        check_prometheus(&app, slo2, 0.995).await;
        check_openslo(&app, slo_id).await;
    }
}

#[actix_web::test]
async fn an_unvalidated_effect_is_refused_with_its_reasons() {
    for app in apps().await {
        let id = analysed(&app, "aa", vec![0.0, 0.0, 0.0]).await;
        let r = app
            .post_json(
                &format!("/api/v1/analyses/{id}/recommendations"),
                &json!({"max_relative_kpi_loss": 0.01}),
            )
            .await;
        let body = assert_problem(&r, 422, app.backend);
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("did not validate"),
            "{body}"
        );
        assert!(
            body["errors"].to_string().contains("weak_instrument"),
            "{body}"
        );
        let bad = app
            .post_json(
                &format!("/api/v1/analyses/{id}/recommendations"),
                &json!({"max_relative_kpi_loss": 2}),
            )
            .await;
        assert_problem(&bad, 422, app.backend);
        assert_problem(
            &app.post_json(
                "/api/v1/analyses/999/recommendations",
                &json!({"max_relative_kpi_loss": 0.01}),
            )
            .await,
            404,
            app.backend,
        );
        assert_problem(&app.get("/api/v1/slos/999/openslo").await, 404, app.backend);
    }
}

/// Parses the OpenSLO export and validates it against the OpenSLO v1 JSON Schema in ../shared.
async fn check_openslo(app: &TestApp, slo: i64) {
    let r = app.get(&format!("/api/v1/slos/{slo}/openslo")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.content_type.starts_with("application/yaml"));
    let doc: Value = serde_yaml_ng::from_str(&r.text).unwrap();
    assert_eq!(doc["kind"], "SLO");
    assert_eq!(doc["spec"]["budgetingMethod"], "Timeslices");
    assert_eq!(doc["spec"]["timeWindow"][0]["duration"], "28d");
    let annotations = doc["metadata"]["annotations"].as_object().unwrap();
    assert!(
        annotations.keys().all(|k| k.starts_with("sloproof.dev/")),
        "{annotations:?}"
    );
    assert!(annotations.contains_key("sloproof.dev/analysis-id"));
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/openslo/v1");
    if !dir.exists() {
        eprintln!(
            "OpenSLO schema not found at {}; schema validation skipped",
            dir.display()
        );
        return;
    }
    let load =
        |p: &Path| -> Value { serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap() };
    let root = load(&dir.join("openslo.schema.json"));
    let mut options = jsonschema::options();
    for entry in std::fs::read_dir(dir.join("parts")).unwrap() {
        let part = load(&entry.unwrap().path());
        let id = part["$id"].as_str().unwrap().to_owned();
        options.with_resource(id, jsonschema::Resource::from_contents(part).unwrap());
    }
    let validator = options.build(&root).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&doc)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "OpenSLO export is not valid: {errors:?}\n{}",
        r.text
    );
}

/// Checks the rules' burn factors, then runs promtool when available (CI sets
/// SLOPROOF_REQUIRE_PROMTOOL=1 so a missing promtool fails there).
async fn check_prometheus(app: &TestApp, slo: i64, target: f64) {
    let r = app
        .get(&format!("/api/v1/slos/{slo}/prometheus-rules"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let doc: Value = serde_yaml_ng::from_str(&r.text).unwrap();
    let groups = doc["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 3);
    let records: Vec<&str> = groups[0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["record"].as_str().unwrap())
        .collect();
    for w in ["5m", "30m", "1h", "2h", "6h", "1d", "3d", "28d"] {
        assert!(
            records.contains(&format!("slo:sli_error:ratio_rate{w}").as_str()),
            "{records:?}"
        );
    }
    // 28-day period: page at 2% of budget in 1h → 0.02·672/1 = 13.44 × budget.
    let page = groups[2]["rules"][0]["expr"].as_str().unwrap();
    let budget = 1.0 - target;
    assert!(
        page.contains(&format!("> ({})", format_num(13.44 * budget))),
        "{page}"
    );
    assert!(
        page.contains(&format!("> ({})", format_num(5.6 * budget))),
        "{page}"
    );
    let promtool = which_promtool();
    let required = std::env::var("SLOPROOF_REQUIRE_PROMTOOL").is_ok_and(|v| v == "1");
    let Some(promtool) = promtool else {
        assert!(!required, "promtool is required but not installed");
        eprintln!("promtool not installed; rule checks skipped");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yaml"), &r.text).unwrap();
    let out = Command::new(&promtool)
        .arg("check")
        .arg("rules")
        .arg(dir.path().join("rules.yaml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let slo_doc = app.get(&format!("/api/v1/slos/{slo}")).await.body;
    let name = slo_doc["name"].as_str().unwrap().to_owned();
    let le = format_num(slo_doc["slo"]["threshold"].as_f64().unwrap() / 1000.0);
    let statement = slo_doc["slo"]["statement"].as_str().unwrap().to_owned();
    std::fs::write(
        dir.path().join("test.yaml"),
        promtool_test(&name, &le, &statement),
    )
    .unwrap();
    if let Ok(d) = std::env::var("SLOPROOF_KEEP_PROMTOOL_FILES") {
        std::fs::create_dir_all(&d).unwrap();
        for f in ["rules.yaml", "test.yaml"] {
            std::fs::copy(dir.path().join(f), Path::new(&d).join(f)).unwrap();
        }
    }
    let out = Command::new(&promtool)
        .current_dir(dir.path())
        .arg("test")
        .arg("rules")
        .arg("test.yaml")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool test rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn format_num(x: f64) -> String {
    let s = format!("{x:.9}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn which_promtool() -> Option<String> {
    ["promtool", "/usr/bin/promtool"]
        .iter()
        .find(|p| Command::new(p).arg("--version").output().is_ok())
        .map(|p| p.to_string())
}

/// Synthetic series for the default histogram of `checkout-latency`: a fast burn (half of all
/// requests slow) must page; a healthy series (0.1% slow, under the 0.5% budget) must not.
fn promtool_test(name: &str, le: &str, statement: &str) -> String {
    format!(
        r#"rule_files:
  - rules.yaml
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'checkout_latency_seconds_bucket{{le="{le}"}}'
        values: '0+50x180'
      - series: 'checkout_latency_seconds_count'
        values: '0+100x180'
    alert_rule_test:
      - eval_time: 90m
        alertname: SloproofErrorBudgetBurnPage
        exp_alerts:
          - exp_labels:
              severity: page
              sloproof_severity: page
              sloproof_slo: {name}
            exp_annotations:
              summary: "{statement} is burning its error budget too fast"
              title: "(severity page) {name} error budget burn rate is too high"
  - interval: 1m
    input_series:
      - series: 'checkout_latency_seconds_bucket{{le="{le}"}}'
        values: '0+999x180'
      - series: 'checkout_latency_seconds_count'
        values: '0+1000x180'
    alert_rule_test:
      - eval_time: 90m
        alertname: SloproofErrorBudgetBurnPage
        exp_alerts: []
      - eval_time: 90m
        alertname: SloproofErrorBudgetBurnTicket
        exp_alerts: []
"#
    )
}
