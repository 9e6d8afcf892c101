//! Experiments whose arms change several SLIs (the `rag-knowledge-base` scenario: a 2×2
//! factorial of retrieval precision × time to first token): one joint 2SLS per KPI, a verdict
//! per KPI and SLI, and one priced SLO per SLI from the same analysis; and designs that cannot
//! separate their SLIs refused up front.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

mod common;

use common::{apps, error_fields, TestApp};
use serde_json::{json, Value};
use sloproof::simulate::rag::true_deflection_slopes;
use sloproof::simulate::{generate, Scenario, SimConfig};

fn effect<'a>(a: &'a Value, kpi: &str, sli: &str) -> &'a Value {
    a["causal_effects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kpi"] == kpi && c["sli"] == sli)
        .unwrap_or_else(|| panic!("no causal effect of {sli} on {kpi}: {a}"))
}

fn verdict<'a>(a: &'a Value, kpi: &str, sli: &str) -> &'a Value {
    a["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["kpi"] == kpi && v["sli"] == sli)
        .unwrap_or_else(|| panic!("no verdict of {sli} on {kpi}: {a}"))
}

/// Within 3 standard errors of the simulated truth (0.3% of seeds fail by chance alone).
fn near_truth(e: &Value, truth: f64) -> bool {
    let (est, se) = (
        e["slope"]["estimate"].as_f64().unwrap(),
        e["slope"]["std_error"].as_f64().unwrap(),
    );
    (est - truth).abs() < 3.0 * se
}

async fn recommend(app: &TestApp, aid: i64, body: &Value) -> Value {
    let r = app
        .post_json(&format!("/api/v1/analyses/{aid}/recommendations"), body)
        .await;
    assert_eq!(r.status, 201, "{}: {}", app.backend, r.text);
    r.body
}

#[actix_web::test]
async fn rag_knowledge_base_yields_two_priced_slos_from_one_experiment() {
    for app in apps().await {
        let b = app.backend;
        let sim = generate(&SimConfig {
            scenario: Scenario::RagKnowledgeBase,
            units: 80_000,
            seed: 5,
            ..SimConfig::default()
        })
        .unwrap();
        app.load_simulated(&sim).await;
        let e = app.get("/api/v1/experiments/rag-knowledge-base-sim").await;
        assert_eq!(e.body["extra_slis"], json!(["ttft_ms"]), "{b}: {}", e.text);
        assert_eq!(
            e.body["variants"][3]["doses"],
            json!({"retrieval_precision_at5": -0.2, "ttft_ms": 400.0}),
            "{b}"
        );
        let r = app
            .post_json(
                "/api/v1/experiments/rag-knowledge-base-sim/analyses",
                &json!({"bootstrap": {"resamples": 200, "seed": 1}}),
            )
            .await;
        assert_eq!(r.status, 201, "{b}: {}", r.text);
        let a = r.body;

        // Each SLI's slope holds the other fixed, with the simulated truth within 3 SE and a
        // verdict of its own.
        let (truth_prec, truth_ttft) = true_deflection_slopes(0.05);
        let prec = effect(&a, "ticket_deflection", "retrieval_precision_at5");
        let ttft = effect(&a, "ticket_deflection", "ttft_ms");
        assert!(near_truth(prec, truth_prec), "{b}: {prec}");
        assert!(near_truth(ttft, truth_ttft), "{b}: {ttft}");
        assert_eq!(prec["holding_fixed"], json!(["ttft_ms"]), "{b}");
        assert_eq!(
            ttft["holding_fixed"],
            json!(["retrieval_precision_at5"]),
            "{b}"
        );
        for e in [prec, ttft] {
            // A factorial moves each SLI apart from the other.
            assert!(
                e["conditional_first_stage_f"].as_f64().unwrap() > 100.0,
                "{b}: {e}"
            );
            assert_eq!(e["weak_instrument"], false, "{b}: {e}");
            // The bootstrap interval brackets the estimate.
            let est = e["slope"]["estimate"].as_f64().unwrap();
            assert!(e["bootstrap"]["ci_low"].as_f64().unwrap() < est, "{b}: {e}");
            assert!(
                e["bootstrap"]["ci_high"].as_f64().unwrap() > est,
                "{b}: {e}"
            );
        }
        for sli in ["retrieval_precision_at5", "ttft_ms"] {
            for kpi in ["ticket_deflection", "task_completion_time_s"] {
                let v = verdict(&a, kpi, sli);
                assert_eq!(v["validated"], true, "{b}: {v}");
            }
        }
        // Longer tasks with worse retrieval (negative slope on precision) and a slower token.
        let time_prec = effect(&a, "task_completion_time_s", "retrieval_precision_at5");
        assert!(
            time_prec["slope"]["ci_high"].as_f64().unwrap() < 0.0,
            "{b}: {time_prec}"
        );
        let time_ttft = effect(&a, "task_completion_time_s", "ttft_ms");
        assert!(
            time_ttft["slope"]["ci_low"].as_f64().unwrap() > 0.0,
            "{b}: {time_ttft}"
        );
        // The first stage has each SLI's shift per arm, against its planned dose.
        let first = a["first_stage"].as_array().unwrap();
        let shift = |arm: &str, sli: &str| {
            first
                .iter()
                .find(|f| f["variant"] == arm && f["sli"] == sli)
                .unwrap_or_else(|| panic!("{b}: no first stage of {sli} in {arm}"))["mean_shift"]
                ["estimate"]
                .as_f64()
                .unwrap()
        };
        assert!((shift("both", "ttft_ms") - 400.0).abs() < 20.0, "{b}");
        assert!(
            shift("slow-ttft", "retrieval_precision_at5").abs() < 0.01,
            "{b}"
        );
        assert!((shift("degraded-retrieval", "retrieval_precision_at5") + 0.2).abs() < 0.01);
        // Each variant's summary carries the extra SLI's distribution.
        let control = &a["variants"][0];
        let extra = &control["extra_slis"][0];
        assert_eq!(extra["sli"], "ttft_ms", "{b}: {control}");
        let p95 = extra["summary"]["p95"].as_f64().unwrap();
        assert!((1000.0..2000.0).contains(&p95), "{b}: {extra}");
        let summary = a["summary"].as_str().unwrap();
        assert!(
            summary.contains("of Retrieval precision@5 raises ticket_deflection")
                && summary.contains("of Time to first token lowers ticket_deflection"),
            "{b}: {summary}"
        );

        // Two SLOs, one per SLI, each priced in deflected tickets.
        let aid = a["id"].as_i64().unwrap();
        let priced = json!({"kpi": "ticket_deflection", "max_relative_kpi_loss": 0.02,
                            "value_per_kpi_unit": 15.0, "currency": "USD", "units_per_day": 40000.0});
        let mut ask = priced.clone();
        ask["sli"] = json!("retrieval_precision_at5");
        ask["evaluation"] = json!("events");
        let quality = recommend(&app, aid, &ask).await;
        let statement = quality["slo"]["statement"].as_str().unwrap();
        assert!(
            statement.starts_with("Retrieval precision@5: ≥ ")
                && statement.ends_with("% of events good over 28 days"),
            "{b}: {statement}"
        );
        let mut ask = priced.clone();
        ask["sli"] = json!("ttft_ms");
        let speed = recommend(&app, aid, &ask).await;
        let statement = speed["slo"]["statement"].as_str().unwrap();
        assert!(
            statement.starts_with("Time to first token p95 < ")
                && statement.contains(" ms in 99% of ")
                && statement.ends_with("windows over 28 days"),
            "{b}: {statement}"
        );
        // The TTFT threshold sits above the control arm's p95 and is derived from the TTFT
        // slope (not the precision one).
        let t = speed["slo"]["threshold"].as_f64().unwrap();
        assert!(t > p95, "{b}: {t} vs {p95}: {}", speed["slo"]);
        for rec in [&quality, &speed] {
            assert_eq!(rec["slo"]["kpi"], "ticket_deflection", "{b}");
            let var = rec["error_budget"]["value_at_risk"].as_f64().unwrap();
            assert!(var > 0.0, "{b}: {}", rec["error_budget"]);
            assert_eq!(rec["error_budget"]["currency"], "USD", "{b}");
        }
        assert_eq!(quality["slo"]["sli"], "retrieval_precision_at5", "{b}");
        assert_eq!(speed["slo"]["sli"], "ttft_ms", "{b}");
        let used = |r: &Value| r["derivation"]["relative_slope_per_unit"].as_f64().unwrap();
        assert!(used(&quality) > 0.0 && used(&speed) < 0.0, "{b}");

        // An SLI the analysis does not have is refused, naming the field.
        let mut ask = priced.clone();
        ask["sli"] = json!("checkout-latency");
        let r = app
            .post_json(&format!("/api/v1/analyses/{aid}/recommendations"), &ask)
            .await;
        assert_eq!(r.status, 422, "{b}: {}", r.text);
        assert_eq!(error_fields(&r.body), vec!["sli"], "{b}");
    }
}

/// Arms that move two SLIs in proportion cannot separate them: refused when the experiment is
/// created, naming `variants`; a variant without the dose of every SLI is refused naming it.
#[actix_web::test]
async fn designs_that_cannot_separate_their_slis_are_refused() {
    for app in apps().await {
        let b = app.backend;
        for m in sloproof::simulate::rag::metrics() {
            let r = app.post_json("/api/v1/metrics", &m).await;
            assert!(r.status == 201 || r.status == 409, "{b}: {}", r.text);
        }
        let exp = |variants: Value| {
            json!({"key": "rag-bad", "name": "n", "hypothesis": "h", "sli": "retrieval_precision_at5",
                   "extra_slis": ["ttft_ms"], "kpis": ["ticket_deflection"], "variants": variants})
        };
        let doses = |p: f64, t: f64| json!({"retrieval_precision_at5": p, "ttft_ms": t});
        let proportional = exp(json!([
            {"key": "control", "weight": 0.34, "control": true, "doses": doses(0.0, 0.0)},
            {"key": "a", "weight": 0.33, "doses": doses(-0.1, 200.0)},
            {"key": "b", "weight": 0.33, "doses": doses(-0.2, 400.0)},
        ]));
        let r = app.post_json("/api/v1/experiments", &proportional).await;
        assert_eq!(r.status, 422, "{b}: {}", r.text);
        assert_eq!(error_fields(&r.body), vec!["variants"], "{b}");
        assert!(r.text.contains("cannot separate"), "{b}: {}", r.text);

        let incomplete = exp(json!([
            {"key": "control", "weight": 0.5, "control": true, "doses": doses(0.0, 0.0)},
            {"key": "a", "weight": 0.5, "dose": 200.0},
        ]));
        let r = app.post_json("/api/v1/experiments", &incomplete).await;
        assert_eq!(r.status, 422, "{b}: {}", r.text);
        assert_eq!(error_fields(&r.body), vec!["variants[1].doses"], "{b}");

        let unknown = exp(json!([
            {"key": "control", "weight": 0.5, "control": true, "doses": doses(0.0, 0.0)},
            {"key": "a", "weight": 0.5, "doses": {"retrieval_precision_at5": -0.1, "ttft_ms": 1.0, "cpu": 3.0}},
        ]));
        let r = app.post_json("/api/v1/experiments", &unknown).await;
        assert_eq!(r.status, 422, "{b}: {}", r.text);
        assert_eq!(error_fields(&r.body), vec!["variants[1].doses.cpu"], "{b}");
        // An SLI named twice in one doses object is refused, not silently the last value.
        let repeated = r#"{"key": "rag-bad", "name": "n", "hypothesis": "h", "sli": "retrieval_precision_at5",
            "extra_slis": ["ttft_ms"], "kpis": ["ticket_deflection"], "variants": [
            {"key": "control", "weight": 0.5, "control": true, "doses": {"retrieval_precision_at5": 0, "ttft_ms": 0}},
            {"key": "a", "weight": 0.5, "doses": {"retrieval_precision_at5": -0.1, "ttft_ms": 0, "ttft_ms": 400}}]}"#;
        let r = app
            .post_raw(
                "/api/v1/experiments",
                "application/json",
                repeated.as_bytes().to_vec(),
            )
            .await;
        assert_eq!(r.status, 422, "{b}: {}", r.text);
        assert_eq!(
            error_fields(&r.body),
            vec!["variants[1].doses"],
            "{b}: {}",
            r.text
        );
        assert!(r.text.contains("given twice"), "{b}: {}", r.text);
        // Nothing was written.
        let r = app.get("/api/v1/experiments/rag-bad").await;
        assert_eq!(r.status, 404, "{b}: {}", r.text);
    }
}

/// Sessions abandoned before the first token (no TTFT value) in the slow arms, and more often
/// when the ticket was not deflected: the joint model keeps only units with every SLI, so this
/// biases every slope. It must void the verdicts, though the first SLI is complete.
#[actix_web::test]
async fn missing_values_of_an_extra_sli_that_depend_on_the_arm_void_the_verdicts() {
    for app in apps().await {
        let b = app.backend;
        let mut sim = generate(&SimConfig {
            scenario: Scenario::RagKnowledgeBase,
            units: 20_000,
            seed: 9,
            key: "rag-missing".into(),
            ..SimConfig::default()
        })
        .unwrap();
        let lines = |bytes: &[u8]| -> Vec<Value> {
            String::from_utf8_lossy(bytes)
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        };
        let arm: std::collections::HashMap<String, String> = lines(&sim.assignments_ndjson)
            .into_iter()
            .map(|r| {
                (
                    r["unit_id"].as_str().unwrap().to_owned(),
                    r["variant"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let rows = lines(&sim.observations_ndjson);
        let failed: std::collections::HashSet<String> = rows
            .iter()
            .filter(|r| {
                r["metric"] == "ticket_deflection" && r.get("period").is_none() && r["value"] == 0.0
            })
            .map(|r| r["unit_id"].as_str().unwrap().to_owned())
            .collect();
        let mut kept = String::new();
        for r in &rows {
            let unit = r["unit_id"].as_str().unwrap();
            let slow = arm
                .get(unit)
                .is_some_and(|a| a == "slow-ttft" || a == "both");
            let abandoned = r["metric"] == "ttft_ms"
                && r.get("period").is_none()
                && slow
                && failed.contains(unit)
                && unit
                    .bytes()
                    .rfind(u8::is_ascii_digit)
                    .is_some_and(|d| d % 2 == 0);
            if !abandoned {
                kept.push_str(&r.to_string());
                kept.push('\n');
            }
        }
        sim.observations_ndjson = kept.into_bytes();
        app.load_simulated(&sim).await;
        let r = app
            .post_json(
                "/api/v1/experiments/rag-missing/analyses",
                &json!({"bootstrap": {"resamples": 100, "seed": 1}}),
            )
            .await;
        assert_eq!(r.status, 201, "{b}: {}", r.text);
        let a = r.body;
        assert_eq!(
            a["sample_ratio"]["analysed_passed"], false,
            "{b}: {}",
            a["sample_ratio"]
        );
        let verdicts = a["verdicts"].as_array().unwrap();
        assert_eq!(verdicts.len(), 4, "{b}");
        for v in verdicts {
            assert_eq!(v["validated"], false, "{b}: {v}");
            let codes: Vec<&str> = v["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["code"].as_str().unwrap())
                .collect();
            assert!(codes.contains(&"differential_missingness"), "{b}: {v}");
            // The message names every SLI (the joint model needs them all).
            let text = v.to_string();
            assert!(
                text.contains("retrieval_precision_at5 and ttft_ms")
                    || text.contains("ttft_ms and retrieval_precision_at5"),
                "{b}: {v}"
            );
        }
        assert_eq!(a["headline"]["status"], "invalid", "{b}: {}", a["headline"]);
    }
}
