//! Recommendations, review, published SLOs and their exports, end to end through HTTP.

// A failed unwrap is the test failing; reference tables make long test functions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{apps, assert_problem, TestApp};
use serde_json::{json, Value};
use sloproof::simulate::{generate, SimConfig};

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

#[actix_web::test]
async fn a_validated_effect_becomes_a_priced_slo_that_reviewers_publish() {
    for app in apps().await {
        let b = app.backend;
        let id = app.analysed("exp", vec![0.0, 100.0, 200.0]).await;
        let analysis = app.get(&format!("/api/v1/analyses/{id}")).await.body;
        // At 1% the threshold sits ~5 ms above the control p95: with ~350 requests per 5-minute
        // window an unchanged service would break it in a large share of windows, at any window
        // length up to an hour. Refused, saying why.
        let noisy = json!({"max_relative_kpi_loss": 0.01, "value_per_kpi_unit": 50.0, "units_per_day": 100000.0});
        let url = format!("/api/v1/analyses/{id}/recommendations");
        let p = assert_problem(&app.post_json(&url, &noisy).await, 422, b);
        assert_eq!(p["errors"][0]["field"], "window_minutes", "{p}");
        assert!(
            p["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("unchanged service"),
            "{p}"
        );
        let req = json!({"max_relative_kpi_loss": 0.1, "value_per_kpi_unit": 50.0, "units_per_day": 100000.0});
        let r = app.post_json(&url, &req).await;
        assert_eq!(r.status, 201, "{b}: {}", r.text);
        let rec = r.body.clone();
        assert_eq!(rec["status"], "proposed");
        // The derivation, recomputed from the analysis.
        let ce = &analysis["causal_effects"][0];
        let mu = f(&ce["control_kpi_mean"]);
        let most = f(&ce["slope"]["ci_low"]);
        let p95 = f(&analysis["variants"][0]["sli"]["p95"]);
        let degradation = 0.1 / (most / mu).abs();
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
        // The default 5-minute window is too noisy at this threshold: widened, and said so.
        let noise = &d["window_noise"];
        let w = rec["slo"]["window_minutes"].as_u64().unwrap();
        assert!(w > 5 && noise["window_minutes"] == w, "{b}: {noise}");
        assert!(
            f(&noise["expected_bad_window_share"]) <= 0.1 * 0.01,
            "{noise}"
        );
        assert!(
            d["notes"].to_string().contains("Window widened from 5"),
            "{d}"
        );
        let statement = rec["slo"]["statement"].as_str().unwrap();
        assert!(
            statement.starts_with("checkout latency p95 < ")
                && statement.ends_with(&format!(" ms in 99% of {w}-minute windows over 28 days")),
            "{statement}"
        );
        // The budget: 28 days of w-minute windows, 1% of them; priced at the tolerated loss.
        let eb = &rec["error_budget"];
        let windows = 28 * 1440 / w;
        assert_eq!(eb["total_windows"], windows);
        assert_eq!(eb["allowed_bad_windows"], windows / 100);
        let value = 0.01 * 0.1 * mu * 100000.0 * 28.0 * 50.0;
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

        // A request-based SLO: its rules budget the share of bad requests.
        let r4 = app
            .post_json(
                &format!("/api/v1/analyses/{id}/recommendations"),
                &json!({"max_relative_kpi_loss": 0.02, "evaluation": "requests", "target": 0.99}),
            )
            .await;
        assert_eq!(r4.status, 201, "{b}: {}", r4.text);
        let statement = r4.body["slo"]["statement"].as_str().unwrap();
        assert!(statement.contains("for 99% of requests"), "{statement}");
        let dec4 = app
            .post_json(
                &format!("/api/v1/recommendations/{}/decision", r4.body["id"]),
                &json!({"decision": "approve"}),
            )
            .await;
        let slo4 = dec4.body["slo_id"].as_i64().unwrap();
        let openslo = app.get(&format!("/api/v1/slos/{slo4}/openslo")).await;
        let doc: Value = serde_yaml_ng::from_str(&openslo.text).unwrap();
        assert_eq!(doc["spec"]["budgetingMethod"], "Occurrences");
        check_prometheus(&app, slo4, 0.99).await;
    }
}

/// The simulated experiment with its metrics renamed: `checkout-latency` → `search_latency_ms`
/// (underscores and digits, as catalogs have), `checkout-conversion` → `conv_2026`. The SLI
/// declares its histogram buckets when `buckets` is given.
fn renamed(key: &str, buckets: Option<Vec<f64>>) -> sloproof::simulate::Simulated {
    let sim = generate(&SimConfig {
        key: key.into(),
        units: 40_000,
        effect_per_100ms: -0.2,
        seed: 21,
        ..SimConfig::default()
    })
    .unwrap();
    let rename = |t: &str| {
        t.replace("checkout-latency", "search_latency_ms")
            .replace("checkout-conversion", "conv_2026")
    };
    let json = |v: &Value| -> Value { serde_json::from_str(&rename(&v.to_string())).unwrap() };
    let mut metrics: Vec<Value> = sim.metrics.iter().map(json).collect();
    if let Some(b) = buckets {
        for m in &mut metrics {
            if m["key"] == "search_latency_ms" {
                m["prometheus"] = json!({"buckets": b});
            }
        }
    }
    sloproof::simulate::Simulated {
        metrics,
        experiment: json(&sim.experiment),
        assignments_ndjson: sim.assignments_ndjson,
        observations_ndjson: rename(&String::from_utf8(sim.observations_ndjson).unwrap())
            .into_bytes(),
        true_conversion_slope: sim.true_conversion_slope,
    }
}

/// Keys with underscores export as valid OpenSLO; a threshold snaps to a declared histogram
/// bucket bound towards the strict side, and the statement and rules show the snapped value.
#[actix_web::test]
async fn thresholds_snap_to_declared_buckets_and_underscored_keys_export() {
    for app in apps().await {
        let b = app.backend;
        let buckets: Vec<f64> = (1..=40).map(|i| f64::from(i) * 25.0).collect();
        app.load_simulated(&renamed("snap", Some(buckets.clone())))
            .await;
        let r = app
            .post_json(
                "/api/v1/experiments/snap/analyses",
                &json!({"bootstrap": {"resamples": 200, "seed": 1}}),
            )
            .await;
        assert_eq!(r.status, 201, "{b}: {}", r.text);
        let id = r.body["id"].as_i64().unwrap();
        let rec = app
            .post_json(
                &format!("/api/v1/analyses/{id}/recommendations"),
                &json!({"kpi": "conv_2026", "max_relative_kpi_loss": 0.1}),
            )
            .await;
        assert_eq!(rec.status, 201, "{b}: {}", rec.text);
        let t = f(&rec.body["slo"]["threshold"]);
        let conservative = f(&rec.body["threshold_range"]["conservative"]);
        assert!(buckets.contains(&t), "{b}: {t} is not a bucket bound");
        assert!(
            t <= conservative && t > conservative - 25.0,
            "{b}: {t} vs {conservative}"
        );
        let statement = rec.body["slo"]["statement"].as_str().unwrap();
        assert!(statement.contains(&format!("< {t} ms")), "{statement}");
        let notes = rec.body["derivation"]["notes"].to_string();
        assert!(notes.contains("bucket bound"), "{notes}");
        let dec = app
            .post_json(
                &format!("/api/v1/recommendations/{}/decision", rec.body["id"]),
                &json!({"decision": "approve"}),
            )
            .await;
        let slo = dec.body["slo_id"].as_i64().unwrap();
        check_openslo(&app, slo).await;
        let rules = app
            .get(&format!("/api/v1/slos/{slo}/prometheus-rules"))
            .await
            .text;
        let doc: Value = serde_yaml_ng::from_str(&rules).unwrap();
        let pattern = sloproof::slo::prometheus::le_pattern(t / 1000.0);
        let le = format!("search_latency_seconds_bucket{{le=~\"{pattern}\"}}");
        let first = doc["groups"][0]["rules"][0]["expr"].as_str().unwrap();
        assert!(first.contains(&le), "{b}: {le} not in\n{rules}");
    }
}

/// A higher-is-better SLI (a quality score) is governed by its low tail: "p5 > T", with T below
/// the control arm's p5. The simulated latency data stand in for the score, and its KPI is
/// declared lower-is-better, so the harmful direction is the same as in the data.
#[actix_web::test]
async fn a_higher_is_better_sli_is_governed_by_its_low_tail() {
    for app in apps().await {
        let b = app.backend;
        let mut sim = renamed("quality", None);
        for m in &mut sim.metrics {
            if m["key"] == "search_latency_ms" {
                m["direction"] = json!("higher_is_better");
                m["unit"] = json!("points");
            }
            if m["key"] == "conv_2026" {
                m["direction"] = json!("lower_is_better");
            }
        }
        app.load_simulated(&sim).await;
        let r = app
            .post_json(
                "/api/v1/experiments/quality/analyses",
                &json!({"bootstrap": {"resamples": 200, "seed": 1}}),
            )
            .await;
        let id = r.body["id"].as_i64().unwrap();
        let p5 = f(&r.body["variants"][0]["sli"]["p5"]);
        assert!(p5 < f(&r.body["variants"][0]["sli"]["p50"]), "{b}");
        let rec = app
            .post_json(
                &format!("/api/v1/analyses/{id}/recommendations"),
                // The arms raised the score (the stand-in data), so its harmful side was not
                // tested: the derivation is an extrapolation, accepted here.
                &json!({"kpi": "conv_2026", "max_relative_kpi_loss": 0.02, "allow_extrapolation": true}),
            )
            .await;
        assert_eq!(rec.status, 201, "{b}: {}", rec.text);
        assert_eq!(rec.body["derivation"]["extrapolated"], true);
        let slo = &rec.body["slo"];
        assert_eq!(slo["comparison"], "gt", "{slo}");
        assert_eq!(slo["percentile"], 5, "{slo}");
        assert_eq!(f(&rec.body["derivation"]["baseline_sli"]), p5);
        assert!(f(&slo["threshold"]) < p5, "{slo}");
        let statement = slo["statement"].as_str().unwrap();
        assert!(statement.contains(" p5 > "), "{statement}");
    }
}

/// Without a bucket bound on the strict side, no threshold can be exported: 422 naming the field.
#[actix_web::test]
async fn a_threshold_below_every_declared_bucket_is_refused() {
    for app in apps().await {
        app.load_simulated(&renamed("coarse", Some(vec![5000.0, 10000.0])))
            .await;
        let r = app
            .post_json(
                "/api/v1/experiments/coarse/analyses",
                &json!({"bootstrap": {"resamples": 200, "seed": 1}}),
            )
            .await;
        let id = r.body["id"].as_i64().unwrap();
        let rec = app
            .post_json(
                &format!("/api/v1/analyses/{id}/recommendations"),
                &json!({"kpi": "conv_2026", "max_relative_kpi_loss": 0.02}),
            )
            .await;
        let p = assert_problem(&rec, 422, app.backend);
        assert_eq!(p["errors"][0]["field"], "prometheus.buckets", "{p}");
    }
}

/// A loss reached only beyond the doses tested is an extrapolation: refused unless accepted, and
/// then marked. An analysis at alpha 0.1 is loose evidence: approval needs an acknowledgement.
#[actix_web::test]
async fn extrapolations_and_loose_evidence_need_consent() {
    for app in apps().await {
        let b = app.backend;
        let id = app.analysed("far", vec![0.0, 100.0, 200.0]).await;
        let url = format!("/api/v1/analyses/{id}/recommendations");
        // −0.2 per 100 ms: a 60% loss needs ~300 ms, beyond the 200 ms tested.
        let far = json!({"max_relative_kpi_loss": 0.6});
        let p = assert_problem(&app.post_json(&url, &far).await, 422, b);
        assert_eq!(p["errors"][0]["field"], "allow_extrapolation", "{p}");
        let accepted = json!({"max_relative_kpi_loss": 0.6, "allow_extrapolation": true});
        let r = app.post_json(&url, &accepted).await;
        assert_eq!(r.status, 201, "{b}: {}", r.text);
        let d = &r.body["derivation"];
        assert_eq!(d["extrapolated"], true, "{d}");
        assert!(f(&d["degradation"]) > f(&d["max_tested_shift"]), "{d}");
        let near = app
            .post_json(&url, &json!({"max_relative_kpi_loss": 0.01}))
            .await;
        assert_eq!(near.body["derivation"]["extrapolated"], false);
        assert_eq!(near.body["derivation"]["loose_evidence"], false);

        let loose = app
            .post_json(
                "/api/v1/experiments/far/analyses",
                &json!({"alpha": 0.1, "bootstrap": {"resamples": 200, "seed": 1}}),
            )
            .await;
        let lid = loose.body["id"].as_i64().unwrap();
        let rec = app
            .post_json(
                &format!("/api/v1/analyses/{lid}/recommendations"),
                &json!({"max_relative_kpi_loss": 0.01}),
            )
            .await;
        assert_eq!(
            rec.body["derivation"]["loose_evidence"], true,
            "{}",
            rec.text
        );
        let decide = format!("/api/v1/recommendations/{}/decision", rec.body["id"]);
        let p = assert_problem(
            &app.post_json(&decide, &json!({"decision": "approve"}))
                .await,
            422,
            b,
        );
        assert_eq!(p["errors"][0]["field"], "acknowledge_loose_evidence", "{p}");
        let ok = app
            .post_json(
                &decide,
                &json!({"decision": "approve", "acknowledge_loose_evidence": true}),
            )
            .await;
        assert_eq!(ok.status, 200, "{b}: {}", ok.text);
    }
}

#[actix_web::test]
async fn an_unvalidated_effect_is_refused_with_its_reasons() {
    for app in apps().await {
        let id = app.analysed("aa", vec![0.0, 0.0, 0.0]).await;
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
    // A ratio metric carries its threshold in the good-events query, not as op/value.
    let objective = &doc["spec"]["objectives"][0];
    assert!(
        objective.get("op").is_none() && objective.get("value").is_none(),
        "{objective}"
    );
    assert_eq!(objective["timeSliceTarget"], 0.95);
    let errors = common::openslo::schema_errors(&doc);
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
    let test = if slo_doc["slo"]["evaluation"] == "windows" {
        promtool_test_windows(&name, &le, &statement)
    } else {
        promtool_test_requests(&name, &le, &statement)
    };
    std::fs::write(dir.path().join("test.yaml"), test).unwrap();
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

/// A promtool test case: the default histogram of `checkout-latency` with `slow` of every
/// 1,000 requests per minute over the threshold bucket `le`, for three hours.
fn series(le: &str, slow: u32) -> String {
    format!(
        r#"      - series: 'checkout_latency_seconds_bucket{{le="{le}"}}'
        values: '0+{}x180'
      - series: 'checkout_latency_seconds_count'
        values: '0+1000x180'
"#,
        1000 - slow
    )
}

/// The page alert as promtool expects it.
fn page(name: &str, statement: &str) -> String {
    format!(
        r#"          - exp_labels:
              severity: page
              sloproof_severity: page
              sloproof_slo: {name}
            exp_annotations:
              summary: "{statement} is burning its error budget too fast"
              title: "(severity page) {name} error budget burn rate is too high"
"#
    )
}

/// A case where no alert fires and the budget is (nearly) intact: its remaining share over the
/// period is above `floor`.
fn silent(name: &str, floor: f64, period: &str) -> String {
    format!(
        r#"    alert_rule_test:
      - eval_time: 90m
        alertname: SloproofErrorBudgetBurnPage
        exp_alerts: []
      - eval_time: 90m
        alertname: SloproofErrorBudgetBurnTicket
        exp_alerts: []
    promql_expr_test:
      - eval_time: 90m
        expr: 'slo:period_error_budget_remaining:ratio{{sloproof_slo="{name}"}} > bool {floor}'
        exp_samples:
          - labels: '{{sloproof_slo="{name}", sloproof_window="{period}"}}'
            value: 1
"#
    )
}

/// Window-based SLO "p95 < T in 99.5% of 5-minute windows": half the requests slow breaks every
/// window and pages; 4.5% slow keeps every window's p95 under T, so nothing fires and the whole
/// budget remains (a request-ratio rule would page here: 4.5% is 9× the 0.5% budget).
fn promtool_test_windows(name: &str, le: &str, statement: &str) -> String {
    format!(
        "rule_files:\n  - rules.yaml\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n{}    alert_rule_test:\n      - eval_time: 90m\n        alertname: SloproofErrorBudgetBurnPage\n        exp_alerts:\n{}  - interval: 1m\n    input_series:\n{}{}  - interval: 1m\n    input_series:\n{}{}{}",
        series(le, 500),
        page(name, statement),
        series(le, 45),
        silent(name, 0.999, "28d"),
        series(le, 1),
        silent(name, 0.999, "28d"),
        absent(name, statement),
    )
}

/// No SLI events at all (the exporter is down or the histogram is renamed): a ticket after 15
/// minutes, since rules that select nothing record no bad window.
fn absent(name: &str, statement: &str) -> String {
    format!(
        r#"  - interval: 1m
    input_series:
      - series: 'unrelated_metric'
        values: '0+1x60'
    alert_rule_test:
      - eval_time: 30m
        alertname: SloproofSliEventsAbsent
        exp_alerts:
          - exp_labels:
              severity: ticket
              sloproof_severity: ticket
              sloproof_slo: {name}
            exp_annotations:
              summary: "{statement}: no good or no total events of the SLI for 15 minutes (is the threshold a bucket bound?); its rules record nothing"
"#
    )
}

/// Request-based SLO "T for 99% of requests": half the requests slow pages; 0.1% slow stays
/// silent and spends a tenth of the budget (90% remains).
fn promtool_test_requests(name: &str, le: &str, statement: &str) -> String {
    format!(
        "rule_files:\n  - rules.yaml\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n{}    alert_rule_test:\n      - eval_time: 90m\n        alertname: SloproofErrorBudgetBurnPage\n        exp_alerts:\n{}  - interval: 1m\n    input_series:\n{}{}",
        series(le, 500),
        page(name, statement),
        series(le, 1),
        silent(name, 0.85, "28d"),
    )
}

/// An analysis at an extreme alpha has an undefined minimum detectable effect; it is stored as
/// null (declared so) and a recommendation from it is refused with the verdict's reasons, not
/// a 500 for a stored document that cannot be read (issue 12, finding 2).
#[actix_web::test]
async fn an_analysis_with_an_undefined_mde_still_answers_recommendations() {
    for app in apps().await {
        let b = app.backend;
        let sim = generate(&SimConfig {
            key: "tiny-alpha".into(),
            units: 20_000,
            effect_per_100ms: -0.2,
            seed: 3,
            ..SimConfig::default()
        })
        .unwrap();
        app.load_simulated(&sim).await;
        let r = app
            .post_json(
                "/api/v1/experiments/tiny-alpha/analyses",
                &json!({"alpha": 1e-300, "bootstrap": {"resamples": 100, "seed": 1}}),
            )
            .await;
        assert_eq!(r.status, 201, "{b}: {}", r.text);
        assert!(
            r.body["power"][0]["mde_relative_per_100"].is_null(),
            "{b}: {}",
            r.body["power"]
        );
        let id = r.body["id"].as_i64().unwrap();
        let rec = app
            .post_json(
                &format!("/api/v1/analyses/{id}/recommendations"),
                &json!({"max_relative_kpi_loss": 0.05}),
            )
            .await;
        assert_problem(&rec, 422, b);
    }
}

/// Magnitudes whose price overflows were stored as a recommendation with nulls where numbers
/// are declared, and every later read of it (and of the list) answered 500. They are refused.
#[actix_web::test]
async fn a_recommendation_priced_beyond_finite_numbers_is_refused() {
    for app in apps().await {
        let b = app.backend;
        let id = app.analysed("huge", vec![0.0, 100.0, 200.0]).await;
        let url = format!("/api/v1/analyses/{id}/recommendations");
        let huge = json!({"max_relative_kpi_loss": 0.1, "units_per_day": 4.931773181234852e307,
                          "value_per_kpi_unit": 1.0880793651784815e-293, "target": 0.99});
        let p = assert_problem(&app.post_json(&url, &huge).await, 422, b);
        assert_eq!(p["errors"][0]["field"], "units_per_day", "{b}: {p}");
        let tiny = json!({"max_relative_kpi_loss": 0.1, "units_per_day": 5e-324,
                          "value_per_kpi_unit": 5e-324, "max_budget_value_at_risk": 1e15});
        let r = app.post_json(&url, &tiny).await;
        assert!(r.status == 201 || r.status == 422, "{b}: {}", r.text);
        let list = app.get("/api/v1/recommendations").await;
        assert_eq!(list.status, 200, "{b}: {}", list.text);
        if r.status == 201 {
            let rid = r.body["id"].as_i64().unwrap();
            let again = app.get(&format!("/api/v1/recommendations/{rid}")).await;
            assert_eq!(again.status, 200, "{b}: {}", again.text);
        }
    }
}
