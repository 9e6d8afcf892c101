//! Composite journey SLOs end to end: a journey of two published SLOs (checkout latency, profile
//! freshness) whose attainment on a hand-checkable series is the mean product of the steps'
//! good shares, its budget split by the steps' prices, its bad input refused by field, its
//! Prometheus rules checked by promtool (silent on a compliant series, paging on a breaking
//! one) and its OpenSLO documents valid; the deploy gate takes a journey for its steps.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

mod common;

use std::process::Command;

use common::promtool::{format_num, which};
use common::{apps, at, error_fields, TestApp, ADMIN_TOKEN, BASE};
use serde_json::{json, Value};
use sloproof::simulate::{generate, Scenario, SimConfig};

/// A one-minute histogram window of 1,000 requests, `slow` of them above `t`.
fn window(start: i64, t: f64, slow: u64) -> Value {
    let fast = 1000 - slow;
    json!({"start": at(start), "seconds": 60, "count": 1000, "buckets": [
        {"le": t / 2.0, "count": fast}, {"le": t, "count": fast}, {"le": 2.0 * t, "count": 1000},
        {"le": "+Inf", "count": 1000}]})
}

async fn publish(app: &TestApp, analysis: i64, body: Value) -> Value {
    let r = app
        .post_json(
            &format!("/api/v1/analyses/{analysis}/recommendations"),
            &body,
        )
        .await;
    assert_eq!(r.status, 201, "{}: {}", app.backend, r.text);
    let d = app
        .post_json(
            &format!("/api/v1/recommendations/{}/decision", r.body["id"]),
            &json!({"decision": "approve"}),
        )
        .await;
    let sid = d.body["slo_id"].as_i64().unwrap();
    app.get(&format!("/api/v1/slos/{sid}")).await.body
}

/// Step A: checkout latency for 99% of requests (priced at 50 per conversion); step B: profile
/// freshness for 99% of requests (priced in clicks); and B' over 7 days, published first and
/// superseded by B.
async fn steps(app: &TestApp) -> (Value, Value, Value) {
    let a = app.analysed("exp", vec![0.0, 100.0, 200.0]).await;
    let slo_a = publish(
        app,
        a,
        json!({"max_relative_kpi_loss": 0.1, "evaluation": "requests", "target": 0.99,
               "value_per_kpi_unit": 50.0, "units_per_day": 100000.0, "currency": "USD"}),
    )
    .await;
    let sim = generate(&SimConfig {
        scenario: Scenario::MarketingFreshness,
        units: 60_000,
        seed: 5,
        ..SimConfig::default()
    })
    .unwrap();
    app.load_simulated(&sim).await;
    let key = sim.experiment["key"].as_str().unwrap();
    let r = app
        .post_json(
            &format!("/api/v1/experiments/{key}/analyses"),
            &json!({"bootstrap": {"resamples": 200, "seed": 1}}),
        )
        .await;
    let fresh = r.body["id"].as_i64().unwrap();
    let body = |days: u32| {
        json!({"kpi": "ad_ctr", "evaluation": "requests", "target": 0.99, "max_relative_kpi_loss": 0.05,
               "window_days": days, "value_per_kpi_unit": 0.8, "currency": "USD", "units_per_day": 3_000_000.0})
    };
    let short = publish(app, fresh, body(7)).await;
    (slo_a, short, json!({"analysis": fresh, "body": body(28)}))
}

#[actix_web::test]
async fn a_journey_is_the_product_of_its_steps() {
    for app in apps().await {
        let b = app.backend;
        let (slo_a, short, later) = steps(&app).await;
        let (ida, ids) = (slo_a["id"].as_i64().unwrap(), short["id"].as_i64().unwrap());
        let create = |body: Value| {
            let app = &app;
            async move { app.post_json("/api/v1/journeys", &body).await }
        };
        // Steps of different periods are refused, naming the step.
        let r = create(json!({"key": "checkout", "name": "Checkout", "steps": [ida, ids]})).await;
        assert_eq!(r.status, 422, "{b}: {}", r.text);
        assert_eq!(error_fields(&r.body), vec!["steps[1]"], "{b}");
        assert!(r.text.contains("7 days"), "{b}: {}", r.text);
        let slo_b = publish(
            &app,
            later["analysis"].as_i64().unwrap(),
            later["body"].clone(),
        )
        .await;
        let idb = slo_b["id"].as_i64().unwrap();
        for (body, field) in [
            (json!({"key": "j", "name": "J", "steps": [ida]}), "steps"),
            (
                json!({"key": "j", "name": "J", "steps": [ida, ida]}),
                "steps[1]",
            ),
            (
                json!({"key": "j", "name": "J", "steps": [ida, 999]}),
                "steps[1]",
            ),
            (
                json!({"key": "j", "name": "J", "steps": [ida, ids]}),
                "steps[1]",
            ),
            (
                json!({"key": "j", "name": "J", "steps": [ida, idb], "objective": 1.2}),
                "objective",
            ),
            (
                json!({"key": "J J", "name": "J", "steps": [ida, idb]}),
                "key",
            ),
        ] {
            let r = create(body.clone()).await;
            assert_eq!(r.status, 422, "{b}: {body}: {}", r.text);
            assert_eq!(
                error_fields(&r.body),
                vec![field],
                "{b}: {body}: {}",
                r.text
            );
        }
        assert_eq!(
            app.get("/api/v1/journeys").await.body["items"],
            json!([]),
            "{b}"
        );

        let r = create(json!({"key": "checkout", "name": "Checkout journey", "steps": [ida, idb]}))
            .await;
        assert_eq!(r.status, 201, "{b}: {}", r.text);
        let j = &r.body;
        assert!(
            (j["objective"].as_f64().unwrap() - 0.9801).abs() < 1e-12,
            "{b}: {j}"
        );
        assert_eq!(j["objective_source"], "product_of_steps");
        assert_eq!(j["priced"], true);
        // Shares ∝ value at risk / (1 − target).
        let cost = |s: &Value| s["error_budget"]["value_at_risk"].as_f64().unwrap() / 0.01;
        let (ca, cb) = (cost(&slo_a), cost(&slo_b));
        let share_a = j["budget"][0]["share"].as_f64().unwrap();
        assert!((share_a - ca / (ca + cb)).abs() < 1e-12, "{b}: {j}");
        assert_eq!(j["budget_split"], "cost");
        // Spending the whole budget costs Σ cost × allotted.
        let budget = 1.0 - 0.9801;
        let loss_cost = j["loss_at_budget"].as_f64().unwrap();
        let want = (ca * ca + cb * cb) / (ca + cb) * budget;
        assert!((loss_cost / want - 1.0).abs() < 1e-12, "{b}: {j}");
        assert!(
            (j["budget"][1]["allotted"].as_f64().unwrap() - cb / (ca + cb) * (1.0 - 0.9801)).abs()
                < 1e-12
        );
        assert_eq!(
            create(json!({"key": "checkout", "name": "x", "steps": [ida, idb]}))
                .await
                .status,
            409
        );

        // Two hours: checkout loses 2% of requests throughout, freshness 5% in the second hour.
        let (ta, tb) = (
            slo_a["slo"]["threshold"].as_f64().unwrap(),
            slo_b["slo"]["threshold"].as_f64().unwrap(),
        );
        let rows_a: Vec<Value> = (0..120).map(|k| window(BASE + 60 * k, ta, 20)).collect();
        let rows_b: Vec<Value> = (0..120)
            .map(|k| window(BASE + 60 * k, tb, if k >= 60 { 50 } else { 0 }))
            .collect();
        for (key, rows) in [
            ("checkout-latency", rows_a),
            ("profile_feature_freshness_min", rows_b),
        ] {
            let r = app
                .post_json(&format!("/api/v1/metrics/{key}/series"), &json!(rows))
                .await;
            assert_eq!(r.status, 200, "{b}: {}", r.text);
        }
        let s = app
            .get(&format!(
                "/api/v1/journeys/checkout/status?at={}",
                at(BASE + 7200)
            ))
            .await;
        assert_eq!(s.status, 200, "{b}: {}", s.text);
        let s = s.body;
        // (60 · 0.98 + 60 · 0.98 · 0.95) / 120.
        let want = 0.98 * 1.95 / 2.0;
        assert!(
            (s["attainment"].as_f64().unwrap() - want).abs() < 1e-9,
            "{b}: {s}"
        );
        assert_eq!(s["evaluations"], 120);
        // Errors: checkout 120 · 0.02 = 2.4, freshness 60 · 0.05 = 3.
        let contribution = |i: usize| s["steps"][i]["contribution"].as_f64().unwrap();
        assert!((contribution(0) - 2.4 / 5.4).abs() < 1e-9, "{b}: {s}");
        assert!((contribution(1) - 3.0 / 5.4).abs() < 1e-9, "{b}: {s}");
        assert!((s["steps"][1]["attainment"].as_f64().unwrap() - 0.975).abs() < 1e-9);
        let consumed = s["error_budget"]["consumed"].as_f64().unwrap();
        assert!(
            (consumed - (1.0 - want) / (1.0 - 0.9801)).abs() < 1e-6,
            "{b}: {s}"
        );

        // Exports.
        let rules = app
            .get("/api/v1/journeys/checkout/prometheus-rules")
            .await
            .text;
        assert!(
            rules.contains("sloproof:journey_error:ratio_rate5m"),
            "{b}: {rules}"
        );
        let openslo = app.get("/api/v1/journeys/checkout/openslo").await.text;
        let docs: Vec<Value> = openslo
            .split("---\n")
            .filter(|d| !d.trim().is_empty())
            .map(|d| serde_yaml_ng::from_str(d).unwrap())
            .collect();
        assert_eq!(docs.len(), 3, "{b}: {openslo}");
        assert_eq!(docs[0]["kind"], "Service");
        for d in &docs {
            let errors = common::openslo::schema_errors(d);
            assert!(errors.is_empty(), "{b}: {errors:?}\n{openslo}");
        }
        assert_eq!(docs[1]["spec"]["service"], docs[0]["metadata"]["name"]);
        assert_eq!(
            docs[2]["metadata"]["annotations"]["sloproof.dev/journey"],
            "checkout"
        );
        promtool_journey(&app, &[&slo_a, &slo_b], &rules, (ta, tb)).await;

        // The gate takes a journey for its steps.
        let r = app
            .call("POST", "/api/v1/deploy-checks", Some(ADMIN_TOKEN),
                  Some(&json!({"journey": "checkout", "change": {"description": "v42", "priority": "critical"}})))
            .await;
        assert_eq!(r.status, 201, "{b}: {}", r.text);
        let ids: Vec<i64> = r.body["slos"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_i64().unwrap())
            .collect();
        assert_eq!(ids, vec![ida, idb]);
        assert_eq!(r.body["journey"], "checkout");
        // The CLI gates a journey too: a critical change is allowed (exit 0).
        let base = app.base.clone();
        let out = actix_web::web::block(move || {
            Command::new(env!("CARGO_BIN_EXE_sloproof"))
                .args([
                    "gate",
                    "--api",
                    &base,
                    "--token",
                    ADMIN_TOKEN,
                    "--journey",
                    "checkout",
                ])
                .args(["--priority", "critical", "--description", "v42"])
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        assert_eq!(out.status.code(), Some(0), "{b}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(&format!("SLO {ida}")),
            "{out:?}"
        );
        let r = app
            .call("POST", "/api/v1/deploy-checks", Some(ADMIN_TOKEN),
                  Some(&json!({"journey": "nope", "change": {"description": "v42", "priority": "low"}})))
            .await;
        assert_eq!(error_fields(&r.body), vec!["journey"], "{b}: {}", r.text);
        replace_and_delete(&app, (ida, idb), (ca, cb), loss_cost).await;
    }
}

/// PUT replaces a journey (here its split: inverse to cost, which loses less at budget), never
/// its key; DELETE removes it; bad input is refused naming the field, with nothing changed.
async fn replace_and_delete(
    app: &TestApp,
    (ida, idb): (i64, i64),
    (ca, cb): (f64, f64),
    loss_cost: f64,
) {
    let b = app.backend;
    let put = |key: &'static str, body: Value| async move {
        app.call(
            "PUT",
            &format!("/api/v1/journeys/{key}"),
            Some(ADMIN_TOKEN),
            Some(&body),
        )
        .await
    };
    let body = |key: &str, split: &str| {
        json!({"key": key, "name": "Checkout, cheap errors first", "steps": [ida, idb],
               "budget_split": split})
    };
    for (key, body, status, field) in [
        ("checkout", body("other", "inverse_cost"), 422, Some("key")),
        (
            "checkout",
            body("checkout", "magic"),
            422,
            Some("budget_split"),
        ),
        ("nope", body("nope", "equal"), 404, None),
    ] {
        let r = put(key, body).await;
        assert_eq!(r.status, status, "{b}: {}", r.text);
        if let Some(f) = field {
            assert_eq!(error_fields(&r.body), vec![f], "{b}: {}", r.text);
        }
    }
    assert_eq!(
        app.get("/api/v1/journeys/checkout").await.body["budget_split"],
        "cost"
    );
    let r = put("checkout", body("checkout", "inverse_cost")).await;
    assert_eq!(r.status, 200, "{b}: {}", r.text);
    let j = &r.body;
    assert_eq!(j["name"], "Checkout, cheap errors first");
    assert_eq!(j["budget_split"], "inverse_cost");
    assert_eq!(j["updated_by"], j["created_by"], "{b}: {j}");
    assert!(j["updated_at"].is_string(), "{b}: {j}");
    let share_a = j["budget"][0]["share"].as_f64().unwrap();
    assert!((share_a - cb / (ca + cb)).abs() < 1e-12, "{b}: {j}");
    let loss = j["loss_at_budget"].as_f64().unwrap();
    assert!(
        (loss / (2.0 * ca * cb / (ca + cb) * (1.0 - 0.9801)) - 1.0).abs() < 1e-12,
        "{b}: {j}"
    );
    assert!(loss < loss_cost, "{b}: {loss} vs {loss_cost}");
    let r = put("checkout", body("checkout", "equal")).await;
    assert!(
        (r.body["budget"][0]["share"].as_f64().unwrap() - 0.5).abs() < 1e-15,
        "{b}"
    );

    let delete = || {
        app.call(
            "DELETE",
            "/api/v1/journeys/checkout",
            Some(ADMIN_TOKEN),
            None,
        )
    };
    assert_eq!(delete().await.status, 204, "{b}");
    assert_eq!(
        app.get("/api/v1/journeys/checkout").await.status,
        404,
        "{b}"
    );
    assert_eq!(delete().await.status, 404, "{b}");
}

/// `promtool test rules` with both steps' rule files and the journey's: silent while every
/// request is fast, paging once every request of both steps is slow — also when the freshness
/// step is idle (no requests, its ratio NaN) for ten minutes of the hour: the journey records
/// nothing for those evaluations and its averages come from the rest, so an idle step neither
/// hides the burn nor pages on its own.
async fn promtool_journey(
    app: &TestApp,
    slos: &[&Value],
    journey_rules: &str,
    (ta, tb): (f64, f64),
) {
    let Some(promtool) = which(&["promtool", "/usr/bin/promtool"]) else {
        let required = std::env::var("SLOPROOF_REQUIRE_PROMTOOL").is_ok_and(|v| v == "1");
        assert!(!required, "promtool is required but not installed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for (i, s) in slos.iter().enumerate() {
        let text = app
            .get(&format!("/api/v1/slos/{}/prometheus-rules", s["id"]))
            .await
            .text;
        std::fs::write(dir.path().join(format!("step{i}.yaml")), text).unwrap();
    }
    std::fs::write(dir.path().join("journey.yaml"), journey_rules).unwrap();
    let minutes = 180u64;
    // Minutes 1 … k with requests: none during `idle`.
    let active =
        |k: u64, idle: (u64, u64)| (1..=k).filter(|m| !(idle.0..idle.1).contains(m)).count() as u64;
    let series = |name: &str, le: f64, good_per_min: u64, idle: (u64, u64)| {
        let bucket: Vec<String> = (0..=minutes)
            .map(|k| (active(k, idle) * good_per_min).to_string())
            .collect();
        let count: Vec<String> = (0..=minutes)
            .map(|k| (active(k, idle) * 1000).to_string())
            .collect();
        format!(
            "      - series: '{name}_bucket{{le=\"{}\"}}'\n        values: '{}'\n      - series: '{name}_count'\n        values: '{}'\n",
            format_num(le), bucket.join(" "), count.join(" ")
        )
    };
    const JOURNEY: &str = "sloproof:journey_error:ratio_rate5m";
    let case = |good: u64, idle: (u64, u64), fires: bool| {
        let expected = if fires {
            "\n          - exp_labels:\n              severity: page\n              sloproof_journey: checkout\n            exp_annotations:\n              summary: \"Journey Checkout journey is burning its error budget too fast\"\n              sloproof_journey_objective: \"0.9801\"\n              title: \"(severity page) journey checkout error budget burn rate is too high\"".to_owned()
        } else {
            " []".to_owned()
        };
        // While the step is idle the journey records nothing; a minute later it does again.
        let idle_check = if idle == (0, 0) {
            String::new()
        } else {
            format!(
                "    promql_expr_test:\n      - expr: '{JOURNEY}'\n        eval_time: {}m\n        exp_samples: []\n      - expr: 'count({JOURNEY})'\n        eval_time: {}m\n        exp_samples:\n          - labels: '{{}}'\n            value: 1\n",
                idle.1 - 2,
                idle.1 + 1
            )
        };
        format!(
            "  - interval: 1m\n    input_series:\n{}{}{idle_check}    alert_rule_test:\n      - eval_time: 120m\n        alertname: SloproofJourneyBudgetBurnPage\n        exp_alerts:{expected}\n",
            series("checkout_latency_seconds", ta / 1000.0, good, (0, 0)),
            series("profile_feature_freshness_min", tb, good, idle),
        )
    };
    let test = format!(
        "rule_files:\n  - step0.yaml\n  - step1.yaml\n  - journey.yaml\nevaluation_interval: 1m\ntests:\n{}{}{}{}",
        case(1000, (0, 0), false),
        case(0, (0, 0), true),
        case(1000, (95, 105), false),
        case(0, (95, 105), true),
    );
    std::fs::write(dir.path().join("test.yaml"), &test).unwrap();
    let out = Command::new(&promtool)
        .current_dir(dir.path())
        .args(["test", "rules", "test.yaml"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: promtool disagrees:\n{}{}\n{test}\n{journey_rules}",
        app.backend,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
