//! Data a real experiment can produce that breaks textbook formulas, on both backends and in
//! both the full analysis and the database summary: a treatment arm in which no unit converts
//! (its relative change is −100% and the delta method's variance vanishes), a control in which
//! none does (a relative change is undefined, the difference is not), a KPI with the same value
//! for every unit (0.3: not a sum that rounds exactly), a KPI whose control mean is 0 up to
//! rounding, a KPI that stops falling at a floor (a slope change past which the harm does not
//! grow), and an SLI the arms did not move. Each comparison that can be made is reported;
//! what cannot be is reported with a reason that says why.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{apps, find, TestApp};
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal};
use serde_json::{json, Value};

const KEY: &str = "degenerate_exp_1";
const UNITS: u32 = 9000;

/// Three arms (+0, +200, +400 ms on a log-normal latency, σ = 0.5; control has half the units).
/// `conv_floor_2` falls past 700 ms and is 0 in the +400 arm; `conv_ctrl_0` is 0 in control;
/// `score_const_3` is 0.3; `net_delta_4` is ±0.1 in control (mean 0 up to rounding), 0.2 more
/// in the treatments.
async fn load(app: &TestApp, sli: &str, constant_sli: bool) {
    let metrics = [
        json!({"key": sli, "name": "Latency", "kind": "sli", "value_type": "continuous", "unit": "ms", "direction": "lower_is_better", "layer": "journey"}),
        json!({"key": "conv_floor_2", "name": "Conversion", "kind": "kpi", "value_type": "binary", "unit": "", "direction": "higher_is_better", "layer": "business"}),
        json!({"key": "conv_ctrl_0", "name": "Second conversion", "kind": "kpi", "value_type": "binary", "unit": "", "direction": "higher_is_better", "layer": "business"}),
        json!({"key": "score_const_3", "name": "Score", "kind": "kpi", "value_type": "continuous", "unit": "", "direction": "higher_is_better", "layer": "business"}),
        json!({"key": "net_delta_4", "name": "Net", "kind": "kpi", "value_type": "continuous", "unit": "", "direction": "higher_is_better", "layer": "business"}),
    ];
    let key = format!("{KEY}_{sli}");
    let body = json!({
        "key": key, "name": "Degenerate", "hypothesis": "Slower answers convert less",
        "sli": sli, "kpis": ["conv_floor_2", "conv_ctrl_0", "score_const_3", "net_delta_4"],
        "variants": [
            {"key": "control", "weight": 0.5, "control": true, "dose": 0},
            {"key": "plus_200", "weight": 0.25, "dose": 200},
            {"key": "plus_400", "weight": 0.25, "dose": 400}
        ]
    });
    app.create_experiment(&metrics, &body).await;
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(3);
    let latency = LogNormal::new(500f64.ln(), 0.5).unwrap();
    let (mut assignments, mut observations) = (String::new(), String::new());
    for i in 0..UNITS {
        let (a, dose) = [
            ("control", 0.0),
            ("control", 0.0),
            ("plus_200", 200.0),
            ("plus_400", 400.0),
        ][i as usize % 4];
        let unit = format!("ünit {i} ✓");
        assignments.push_str(&json!({"unit_id": unit, "variant": a}).to_string());
        assignments.push('\n');
        let ms = if constant_sli {
            300.0
        } else {
            latency.sample(&mut rng) + dose
        };
        let p = 0.3 * (1.0 - 0.3 * ((ms - 700.0) / 100.0).max(0.0)).max(0.0);
        let floor = dose < 400.0 && rng.random::<f64>() < p;
        let second = dose > 0.0 && rng.random::<f64>() < 0.2;
        let net = if (i / 4) % 2 == 0 { 0.1 } else { -0.1 } + if dose > 0.0 { 0.2 } else { 0.0 };
        for (metric, value) in [
            (sli, ms),
            ("conv_floor_2", f64::from(u8::from(floor))),
            ("conv_ctrl_0", f64::from(u8::from(second))),
            ("score_const_3", 0.3),
            ("net_delta_4", net),
        ] {
            observations
                .push_str(&json!({"unit_id": unit, "metric": metric, "value": value}).to_string());
            observations.push('\n');
        }
    }
    app.upload(&key, assignments, observations).await;
}

async fn analyse(app: &TestApp, key: &str) -> (Value, Value) {
    let r = app
        .post_json(
            &format!("/api/v1/experiments/{key}/analyses"),
            &json!({"bootstrap": {"resamples": 200, "seed": 1}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}: {}", app.backend, r.text);
    let s = app
        .get(&format!(
            "/api/v1/experiments/{key}/summary?thresholds=true"
        ))
        .await;
    assert_eq!(s.status, 200, "{}: {}", app.backend, s.text);
    (r.body, s.body)
}

#[track_caller]
fn close(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() <= 1e-9 * want.abs().max(1e-12),
        "{what}: {got} vs {want}"
    );
}

#[actix_web::test]
async fn every_comparison_that_can_be_made_is_reported_and_the_rest_say_why() {
    for app in apps().await {
        let b = app.backend;
        load(&app, "latency_ms_1", false).await;
        let (a, s) = analyse(&app, &format!("{KEY}_latency_ms_1")).await;
        // No unit converts in the +400 arm: −100% (the delta method's variance is 0 there),
        // with the log interval of the ratio of proportions with 0.5 added (statsmodels'
        // `log-adjusted`, tests/stats_reference.rs): above −100%, as a rate's fall must be. The
        // same numbers in both, with the difference's p-value.
        let mut intervals = Vec::new();
        for (doc, primary) in [
            (&a["kpi_effects"], "primary"),
            (&s["effects"], "difference"),
        ] {
            let e = find(
                doc,
                |e| e["variant"] == "plus_400" && e["metric"] == "conv_floor_2",
                b,
            );
            let (rel, diff) = (&e["relative"], &e[primary]);
            assert_eq!(rel["method"], "log_adjusted_ratio", "{b}: {e}");
            assert_eq!(rel["estimate"], -1.0, "{b}: {e}");
            let (low, high) = (
                rel["ci_low"].as_f64().unwrap(),
                rel["ci_high"].as_f64().unwrap(),
            );
            assert!(-1.0 < low && low < high && high < -0.95, "{b}: {e}");
            intervals.push((low, high));
            assert_eq!(rel["p_value"], diff["p_value"], "{b}: {e}");
            assert!(diff["p_value"].as_f64().unwrap() < 1e-10, "{b}: {e}");
            // A control mean of 0 up to rounding: no relative change, the difference stands.
            for arm in ["plus_200", "plus_400"] {
                let e = find(
                    doc,
                    |e| e["variant"] == arm && e["metric"] == "net_delta_4",
                    b,
                );
                assert!(e["relative"].is_null(), "{b}: {e}");
                close(e[primary]["estimate"].as_f64().unwrap(), 0.2, b);
            }
            // No unit converts in control: no relative change, the difference stands.
            let e = find(
                doc,
                |e| e["variant"] == "plus_200" && e["metric"] == "conv_ctrl_0",
                b,
            );
            assert!(e["relative"].is_null(), "{b}: {e}");
            assert!(e[primary]["estimate"].as_f64().unwrap() > 0.15, "{b}: {e}");
        }
        close(intervals[0].0, intervals[1].0, b);
        close(intervals[0].1, intervals[1].1, b);
        assert_eq!(a["kpi_effects"].as_array().unwrap().len(), 6, "{b}: {a}");
        assert_eq!(s["effects"].as_array().unwrap().len(), 6, "{b}: {s}");
        // A constant KPI: every comparison and its slope are refused, each saying why.
        let failed = a["failed_comparisons"].as_array().unwrap();
        assert_eq!(failed.len(), 2, "{b}: {failed:?}");
        for f in failed {
            assert_eq!(f["metric"], "score_const_3", "{b}: {f}");
            let reason = f["reason"].as_str().unwrap();
            assert!(
                reason.contains("both samples are constant"),
                "{b}: {reason}"
            );
        }
        let verdict = find(&a["verdicts"], |v| v["kpi"] == "score_const_3", b);
        assert_eq!(verdict["validated"], false, "{b}: {verdict}");
        let said = verdict.to_string();
        assert!(
            said.contains("the same value for every unit"),
            "{b}: {said}"
        );
        let not = s["not_summarised"].to_string();
        assert!(not.contains("the same value for every unit"), "{b}: {not}");
        assert!(
            !not.contains("non-finite") && !said.contains("non-finite"),
            "{b}"
        );
        // A control mean of 0 leaves the slope's relative reading undefined: said so.
        assert!(not.contains("control KPI mean is zero"), "{b}: {not}");
        // conv_floor_2 falls until about 1,000 ms and stays at 0 above: a slope change, but
        // no harm that grows past it, so neither reading reports a threshold.
        for (doc, field) in [(&a, "threshold"), (&s, "thresholds")] {
            let t = find(
                &doc[field],
                |t| t["kpi"] == "conv_floor_2" && t["evidence"] == "observational",
                b,
            );
            assert!(t["breakpoint"].is_null(), "{b} {field}: {t}");
            let reason = t["reason"].as_str().unwrap();
            assert!(reason.contains("does not grow"), "{b} {field}: {reason}");
            assert!(t["slope_below"].as_f64().unwrap() < 0.0, "{b}: {t}");
        }
    }
}

#[actix_web::test]
async fn an_sli_the_arms_did_not_move_gives_an_analysis_that_says_so() {
    for app in apps().await {
        let b = app.backend;
        load(&app, "latency_ms_2", true).await;
        let (a, s) = analyse(&app, &format!("{KEY}_latency_ms_2")).await;
        for arm in a["first_stage"].as_array().unwrap() {
            assert_eq!(arm["mean_shift"]["estimate"], 0.0, "{b}: {arm}");
            assert!(arm["mean_shift"]["p_value"].is_null(), "{b}: {arm}");
        }
        let verdict = find(&a["verdicts"], |v| v["kpi"] == "conv_floor_2", b);
        assert_eq!(verdict["validated"], false, "{b}: {verdict}");
        let said = verdict.to_string();
        assert!(said.contains("same value for every unit"), "{b}: {said}");
        let not = s["not_summarised"].to_string();
        assert!(not.contains("same value for every unit"), "{b}: {not}");
        // Asked for, the thresholds are listed even when no KPI has one.
        assert_eq!(s["thresholds"], json!([]), "{b}: {s}");
    }
}

#[actix_web::test]
async fn an_arm_without_sli_values_has_no_sli_level() {
    for app in apps().await {
        let b = app.backend;
        let metrics = [
            json!({"key": "lat_ms_9", "name": "Latency", "kind": "sli", "value_type": "continuous", "unit": "ms", "direction": "lower_is_better", "layer": "journey"}),
            json!({"key": "conv_9", "name": "Conversion", "kind": "kpi", "value_type": "binary", "unit": "", "direction": "higher_is_better", "layer": "business"}),
        ];
        let body = json!({
            "key": "no_sli_arm", "name": "No SLI", "hypothesis": "h", "sli": "lat_ms_9",
            "kpis": ["conv_9"],
            "variants": [{"key": "a0", "weight": 0.5, "control": true, "dose": 0},
                         {"key": "a1", "weight": 0.5, "dose": 200}]
        });
        app.create_experiment(&metrics, &body).await;
        let (mut assignments, mut observations) = (String::new(), String::new());
        for i in 0..200u32 {
            let unit = format!("u {i} é");
            let arm = if i % 2 == 0 { "a0" } else { "a1" };
            assignments.push_str(&format!("{}\n", json!({"unit_id": unit, "variant": arm})));
            let conv = json!({"unit_id": unit, "metric": "conv_9", "value": u8::from(i % 3 == 0)});
            observations.push_str(&format!("{conv}\n"));
            if arm == "a0" {
                let ms = json!({"unit_id": unit, "metric": "lat_ms_9", "value": 300 + i});
                observations.push_str(&format!("{ms}\n"));
            }
        }
        app.upload("no_sli_arm", assignments, observations).await;
        let s = app
            .get("/api/v1/experiments/no_sli_arm/summary?thresholds=true")
            .await;
        assert_eq!(s.status, 200, "{b}: {}", s.text);
        let v = find(&s.body["variants"], |v| v["variant"] == "a1", b);
        assert_eq!(v["units"], 100, "{b}: {v}");
        assert!(v["sli"].is_null(), "{b}: {v}");
        let c = find(&s.body["variants"], |v| v["variant"] == "a0", b);
        assert_eq!(c["sli"]["mean"], 399.0, "{b}: {c}");
        let r = app
            .post_json("/api/v1/experiments/no_sli_arm/analyses", &json!({}))
            .await;
        let p = common::assert_problem(&r, 422, b);
        assert_eq!(common::error_fields(&p), vec!["observations"], "{p}");
    }
}
