//! The summary computed from per-arm sums in the database (`GET /experiments/{key}/summary`)
//! agrees with the full per-unit analysis's closed-form numbers to 1e-9 relative, on both
//! backends: arm levels and intervals, every difference and relative change, the sample-ratio
//! check and the 2SLS slope with robust errors; under both missing-outcome rules, on data with
//! heavy tails, a saturating effect, missing values and unit ids with spaces and unicode.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

mod common;

use common::{apps, assert_problem, error_fields, find, TestApp};
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal};
use serde_json::{json, Value};

const KEY: &str = "latency_exp_2";

async fn load(app: &TestApp) {
    let metrics = [
        json!({"key": "checkout_latency_ms", "name": "Latency", "kind": "sli", "value_type": "continuous", "unit": "ms", "direction": "lower_is_better", "layer": "journey"}),
        json!({"key": "conversion_7d", "name": "Conversion", "kind": "kpi", "value_type": "binary", "unit": "", "direction": "higher_is_better", "layer": "business"}),
        json!({"key": "revenue_2", "name": "Revenue", "kind": "kpi", "value_type": "continuous", "unit": "USD", "direction": "higher_is_better", "layer": "business"}),
        json!({"key": "orders_30d", "name": "Orders", "kind": "kpi", "value_type": "count", "unit": "orders", "direction": "higher_is_better", "layer": "business"}),
    ];
    let body = json!({
        "key": KEY, "name": "Latency", "hypothesis": "Slower checkout converts less",
        "sli": "checkout_latency_ms", "kpis": ["conversion_7d", "revenue_2"],
        "guardrails": ["orders_30d"],
        "variants": [
            {"key": "control", "weight": 0.5, "control": true, "dose": 0},
            {"key": "plus_100", "weight": 0.25, "dose": 100},
            {"key": "plus_200", "weight": 0.25, "dose": 200}
        ]
    });
    app.create_experiment(&metrics, &body).await;
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(7);
    let latency = LogNormal::new(5.5, 0.7).unwrap();
    let basket = LogNormal::new(3.0, 1.1).unwrap();
    let noise = LogNormal::new(0.0, 0.5).unwrap();
    let (mut assignments, mut observations) = (String::new(), String::new());
    for i in 0..6000u32 {
        let (arm, dose) = match i % 4 {
            0 | 1 => ("control", 0.0),
            2 => ("plus_100", 100.0),
            _ => ("plus_200", 200.0),
        };
        let unit = format!("user {i} ü");
        assignments.push_str(&json!({"unit_id": unit, "variant": arm}).to_string());
        assignments.push('\n');
        // A few assigned units without any observation (they count only where a missing
        // value counts as 0).
        if i % 499 == 7 {
            continue;
        }
        let ms: f64 = latency.sample(&mut rng) + dose;
        // Saturating: conversion falls with latency and levels off.
        let converted = rng.random::<f64>() < 0.08 + 0.25 * (-ms / 600.0).exp();
        // A unit's typical basket drives its revenue and orders in both periods (what CUPED
        // uses); the pre-period values are heavy-tailed too.
        let typical: f64 = basket.sample(&mut rng);
        let revenue = if converted {
            typical * noise.sample(&mut rng)
        } else {
            0.0
        };
        let big = u8::from(typical > 30.0);
        let orders = f64::from(u8::from(converted) + big) + f64::from(rng.random_range(0..3u8));
        let mut obs = |metric: &str, value: f64, period: &str| {
            observations.push_str(
                &json!({"unit_id": unit, "metric": metric, "value": value, "period": period})
                    .to_string(),
            );
            observations.push('\n');
        };
        // Pre-period values, missing for some units (and present for some without a value).
        if i % 5 != 0 {
            let pre_revenue = if rng.random_bool(0.3) {
                typical * noise.sample(&mut rng)
            } else {
                0.0
            };
            obs("revenue_2", pre_revenue, "pre");
            let pre_orders = big + rng.random_range(0..3u8);
            obs("orders_30d", f64::from(pre_orders), "pre");
        }
        if i % 3 != 1 {
            obs(
                "conversion_7d",
                f64::from(u8::from(rng.random_bool(0.2))),
                "pre",
            );
        }
        if i % 9 == 4 {
            obs("checkout_latency_ms", latency.sample(&mut rng), "pre");
        }
        let mut obs = |metric: &str, value: f64| obs(metric, value, "post");
        if i % 13 != 5 {
            obs("checkout_latency_ms", ms);
        }
        if i % 11 != 3 {
            obs("conversion_7d", f64::from(u8::from(converted)));
        }
        if i % 7 != 2 {
            obs("revenue_2", revenue);
        }
        if i % 17 != 1 {
            obs("orders_30d", orders);
        }
    }
    // Observations of a unit that was never assigned count in no arm (of either period).
    for (metric, period) in [
        ("checkout_latency_ms", "post"),
        ("conversion_7d", "post"),
        ("revenue_2", "pre"),
    ] {
        observations.push_str(
            &json!({"unit_id": "ghost unit ✓", "metric": metric, "value": 1, "period": period})
                .to_string(),
        );
        observations.push('\n');
    }
    app.upload(KEY, assignments, observations).await;
}

/// Within 1e-9 relative (1e-12 absolute near zero).
#[track_caller]
fn close(got: &Value, want: &Value, what: &str) {
    let (g, w) = (got.as_f64(), want.as_f64());
    match (g, w) {
        (Some(g), Some(w)) => assert!(
            (g - w).abs() <= 1e-9 * g.abs().max(w.abs()) + 1e-12,
            "{what}: summary {g} vs analysis {w}"
        ),
        _ => assert_eq!(got, want, "{what}"),
    }
}

fn close_all(got: &Value, want: &Value, fields: &[&str], what: &str) {
    for f in fields {
        close(&got[f], &want[f], &format!("{what}.{f}"));
    }
}

const ESTIMATE: &[&str] = &[
    "estimate",
    "std_error",
    "ci_low",
    "ci_high",
    "p_value",
    "adjusted_p_value",
];

fn level(got: &Value, want: &Value, what: &str) {
    assert_eq!(got["units"], want["units"], "{what}.units");
    assert_eq!(got["successes"], want["successes"], "{what}.successes");
    close(&got["mean"], &want["mean"], &format!("{what}.mean"));
    close_all(
        &got["ci"],
        &want["ci"],
        &["low", "high"],
        &format!("{what}.ci"),
    );
}

/// The summary against the analysis; answers how many comparisons were CUPED-adjusted.
fn compare(summary: &Value, analysis: &Value, b: &str) -> usize {
    let (s, a) = (&summary["sample_ratio"], &analysis["sample_ratio"]);
    assert_eq!(s["observed"], a["observed"], "{b}");
    assert_eq!(s["analysed"], a["analysed"], "{b}");
    close_all(s, a, &["chi_square", "p_value", "analysed_p_value"], b);
    let effects = analysis["kpi_effects"].as_array().unwrap();
    let mut cuped_seen = 0;
    assert_eq!(effects.len(), 6, "{b}: 2 treatments × 3 metrics");
    assert_eq!(summary["effects"].as_array().unwrap().len(), 6, "{b}");
    for want in effects {
        let (v, m) = (&want["variant"], &want["metric"]);
        let what = format!("{b}: {v} {m}");
        let got = find(
            &summary["effects"],
            |e| e["variant"] == *v && e["metric"] == *m,
            &what,
        );
        assert_eq!(got["role"], want["role"], "{what}");
        level(
            &got["control"],
            &want["control"],
            &format!("{what} control"),
        );
        level(
            &got["treatment"],
            &want["treatment"],
            &format!("{what} treatment"),
        );
        // With CUPED, the primary is the adjusted difference and the unadjusted one an
        // alternative; in both the arm levels are unadjusted.
        let alt = &want["alternatives"];
        assert_eq!(got["cuped"].is_null(), alt["cuped"].is_null(), "{what}");
        if !alt["cuped"].is_null() {
            cuped_seen += 1;
            close_all(
                &got["cuped"],
                &alt["cuped"],
                &["theta", "variance_reduction"],
                &what,
            );
            close_all(&got["unadjusted"], &alt["unadjusted"], ESTIMATE, &what);
            close_all(
                &got["unadjusted_relative"],
                &alt["unadjusted_relative"],
                ESTIMATE,
                &what,
            );
        }
        assert_eq!(
            got["difference"]["method"], want["primary"]["method"],
            "{what}"
        );
        close_all(&got["difference"], &want["primary"], ESTIMATE, &what);
        close_all(&got["relative"], &want["relative"], ESTIMATE, &what);
    }
    assert_eq!(summary["cuped"], json!(cuped_seen > 0), "{b}");
    let causal = analysis["causal_effects"].as_array().unwrap();
    assert_eq!(causal.len(), 2, "{b}");
    for want in causal {
        let what = format!("{b}: slope of {}", want["kpi"]);
        let got = find(&summary["causal"], |c| c["kpi"] == want["kpi"], &what);
        assert_eq!(got["units"], want["units"], "{what}");
        close_all(&got["slope"], &want["slope"], ESTIMATE, &what);
        close_all(
            &got["relative_per_100"],
            &want["relative_per_100"],
            ESTIMATE,
            &what,
        );
        close_all(got, want, &["first_stage_f", "first_stage_robust_f"], &what);
    }
    cuped_seen
}

/// Two summaries agree in every number (1e-9 relative: the same sums added in another order).
fn compare_summaries(a: &Value, b: &Value, what: &str) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            assert_eq!(x.len(), y.len(), "{what}");
            for (k, v) in x {
                compare_summaries(v, &y[k], &format!("{what}.{k}"));
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{what}");
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                compare_summaries(v, w, &format!("{what}[{i}]"));
            }
        }
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!(
                (x - y).abs() <= 1e-9 * x.abs().max(y.abs()) + 1e-12,
                "{what}: {x} vs {y}"
            );
        }
        _ => assert_eq!(a, b, "{what}"),
    }
}

#[actix_web::test]
async fn the_database_summary_agrees_with_the_per_unit_analysis() {
    for app in apps().await {
        let b = app.backend;
        load(&app).await;
        for rule in ["by_value_type", "exclude", "zero"] {
            let what = format!("{b} ({rule})");
            let r = app
                .post_json(
                    &format!("/api/v1/experiments/{KEY}/analyses"),
                    &json!({"bootstrap": {"resamples": 200, "seed": 1}, "missing_outcomes": rule}),
                )
                .await;
            assert_eq!(r.status, 201, "{what}: {}", r.text);
            let s = app
                .get(&format!(
                    "/api/v1/experiments/{KEY}/summary?missing_outcomes={rule}"
                ))
                .await;
            assert_eq!(s.status, 200, "{what}: {}", s.text);
            assert_eq!(s.body["units"], 6000, "{what}");
            assert_eq!(s.body["unassigned_observations"], 3, "{what}");
            assert_eq!(s.body["not_summarised"], json!([]), "{what}");
            // Every KPI and guardrail has pre-period values: each comparison is adjusted.
            assert_eq!(compare(&s.body, &r.body, &what), 6, "{what}");
            // With a bootstrap, PostgreSQL reads the sums from a cursor over the units
            // instead: the same numbers.
            let s = app
                .get(&format!(
                    "/api/v1/experiments/{KEY}/summary?missing_outcomes={rule}&resamples=100"
                ))
                .await;
            assert_eq!(s.status, 200, "{what}: {}", s.text);
            assert_eq!(compare(&s.body, &r.body, &what), 6, "{what} (bootstrap)");
        }
        // Without CUPED, both give the unadjusted tests.
        let r = app
            .post_json(
                &format!("/api/v1/experiments/{KEY}/analyses"),
                &json!({"bootstrap": {"resamples": 200, "seed": 1}, "cuped": false, "missing_outcomes": "zero"}),
            )
            .await;
        let s = app
            .get(&format!(
                "/api/v1/experiments/{KEY}/summary?cuped=false&missing_outcomes=zero"
            ))
            .await;
        assert_eq!(compare(&s.body, &r.body, &format!("{b} (no CUPED)")), 0);
        // Another confidence level moves the intervals the same way in both.
        let r = app
            .post_json(
                &format!("/api/v1/experiments/{KEY}/analyses"),
                &json!({"bootstrap": {"resamples": 200, "seed": 1}, "confidence": 0.9}),
            )
            .await;
        let s = app
            .get(&format!("/api/v1/experiments/{KEY}/summary?confidence=0.9"))
            .await;
        assert_eq!(compare(&s.body, &r.body, &format!("{b} (90%)")), 6);
    }
}

#[actix_web::test]
async fn summary_parameters_and_unknown_experiments_are_refused_clearly() {
    for app in apps().await {
        let b = app.backend;
        load(&app).await;
        let r = app
            .get(&format!("/api/v1/experiments/{KEY}/summary?confidence=1.5"))
            .await;
        let p = assert_problem(&r, 422, b);
        assert_eq!(error_fields(&p), vec!["confidence"], "{b}: {p}");
        let r = app.get("/api/v1/experiments/no_such_exp/summary").await;
        assert_problem(&r, 404, b);
        // An experiment without assignments names what is missing.
        let body = json!({
            "key": "empty_1", "name": "Empty", "hypothesis": "None yet",
            "sli": "checkout_latency_ms", "kpis": ["conversion_7d"],
            "variants": [
                {"key": "control", "weight": 0.5, "control": true, "dose": 0},
                {"key": "plus_100", "weight": 0.5, "dose": 100}
            ]
        });
        app.create_experiment(&[], &body).await;
        let r = app.get("/api/v1/experiments/empty_1/summary").await;
        let p = assert_problem(&r, 422, b);
        assert_eq!(error_fields(&p), vec!["assignments"], "{b}: {p}");
    }
}

/// The two ways of computing the per-arm sums — the database's `GROUP BY` and the stream of
/// rows in key order — give the same sums on both backends (counts exactly, sums to 1e-12).
#[actix_web::test]
async fn sums_by_sql_and_by_streaming_rows_agree() {
    use sloproof::analysis::aggregate_stream::SumsBuilder;
    use sloproof::store::aggregates::arm_sums;
    use sloproof::store::analyses::{for_each_assignment, for_each_observation};
    for app in apps().await {
        let b = app.backend;
        load(&app).await;
        let e = app.get(&format!("/api/v1/experiments/{KEY}")).await.body;
        let url = app.db_url.clone();
        let (by_sql, streamed) = actix_web::web::block(move || {
            let db = sloproof::store::Db::open(&url, 2).unwrap();
            let mut conn = db.conn().unwrap();
            let mut ids = |key: &str| -> i64 {
                use diesel::prelude::*;
                use sloproof::store::schema::metrics::dsl as m;
                m::metrics
                    .filter(m::key.eq(key))
                    .select(m::id)
                    .first(&mut *conn)
                    .unwrap()
            };
            // Any shifts: both paths sum value − shift (pre-period values less their own).
            let sli = (ids("checkout_latency_ms"), 250.5, 240.0);
            let metrics = [
                (ids("conversion_7d"), 1.0, 0.0),
                (ids("revenue_2"), 20.25, 18.5),
                (ids("orders_30d"), 0.0, 1.0),
            ];
            let exp_id: i64 = {
                use diesel::prelude::*;
                use sloproof::store::schema::experiments::dsl as x;
                x::experiments
                    .filter(x::key.eq(KEY))
                    .select(x::id)
                    .first(&mut *conn)
                    .unwrap()
            };
            let variants: Vec<i64> = {
                use diesel::prelude::*;
                use sloproof::store::schema::variants::dsl as v;
                v::variants
                    .filter(v::experiment_id.eq(exp_id))
                    .order(v::position)
                    .select(v::id)
                    .load(&mut *conn)
                    .unwrap()
            };
            let by_sql = arm_sums(&mut conn, exp_id, sli, &metrics, (None, None)).unwrap();
            let mut s = SumsBuilder::new(variants, sli, &metrics);
            for_each_assignment(&mut conn, exp_id, None, None, |u, v| s.assignment(u, v)).unwrap();
            s.assignments_done();
            for_each_observation(&mut conn, exp_id, None, None, |u, m, pre, v| {
                s.observation(u, m, pre, v)
            })
            .unwrap();
            (by_sql, s.finish().map(|f| f.sums.into_sums()))
        })
        .await
        .unwrap();
        assert_eq!(e["key"], KEY, "{b}");
        // Streamed as two unit ranges at once (as large experiments are), the summary is the same.
        let url = app.db_url.clone();
        let split = actix_web::web::block(move || {
            use sloproof::analysis::report::MissingOutcomes;
            let db = sloproof::store::Db::open(&url, 4).unwrap();
            let e = sloproof::ingest::service::experiment(&db, KEY).unwrap();
            let r = sloproof::analysis::service::SummaryRequest {
                confidence: 0.95,
                rule: MissingOutcomes::ByValueType,
                correction: sloproof::analysis::report::Correction::Holm,
                bootstrap: None,
                cuped: None,
                thresholds: None,
            };
            let s = sloproof::analysis::service::summary_split(&db, &e, r, 2).unwrap();
            serde_json::to_value(s).unwrap()
        })
        .await
        .unwrap();
        let whole = app.get(&format!("/api/v1/experiments/{KEY}/summary")).await;
        compare_summaries(&split, &whole.body, b);
        // PostgreSQL returns rows in no particular order: its summaries use SQL, not the stream.
        let Some(streamed) = streamed else {
            assert_eq!(b, "postgres", "the SQLite stream is in key order");
            continue;
        };
        assert_eq!(by_sql.unassigned_observations, 3, "{b}");
        assert_eq!(streamed.assigned, by_sql.assigned, "{b}");
        assert_eq!(
            streamed.unassigned_observations, by_sql.unassigned_observations,
            "{b}"
        );
        // The SQL keeps arm × metric rows without units, the stream leaves them out.
        let non_empty: Vec<_> = (by_sql.metrics.iter())
            .filter(|m| m.units > 0 || m.pre_only_units > 0)
            .collect();
        assert_eq!(streamed.metrics.len(), non_empty.len(), "{b}");
        for x in &streamed.metrics {
            let y = non_empty
                .iter()
                .find(|y| (y.variant_id, y.metric_id) == (x.variant_id, x.metric_id))
                .unwrap();
            assert_eq!(
                (x.shift, x.pre_shift, x.sli_shift),
                (y.shift, y.pre_shift, y.sli_shift),
                "{b}"
            );
            assert_eq!(
                (x.variant_id, x.metric_id, x.units, x.ones, x.with_sli),
                (y.variant_id, y.metric_id, y.units, y.ones, y.with_sli),
                "{b}"
            );
            assert_eq!(
                (x.pre_units, x.pre_only_units),
                (y.pre_units, y.pre_only_units),
                "{b}"
            );
            for (p, q) in [
                (x.value_sum, y.value_sum),
                (x.value_sq, y.value_sq),
                (x.sum_with_sli, y.sum_with_sli),
                (x.sq_with_sli, y.sq_with_sli),
                (x.sli_sum, y.sli_sum),
                (x.sli_sq, y.sli_sq),
                (x.sli_cross, y.sli_cross),
                (x.pre_sum, y.pre_sum),
                (x.pre_sq, y.pre_sq),
                (x.pre_cross, y.pre_cross),
                (x.value_sum_with_pre, y.value_sum_with_pre),
                (x.pre_only_sum, y.pre_only_sum),
                (x.pre_only_sq, y.pre_only_sq),
            ] {
                assert!(
                    (p - q).abs() <= 1e-12 * p.abs().max(q.abs()),
                    "{b}: {p} vs {q}"
                );
            }
        }
    }
}

/// Values large next to their spread (an SLI in µs around 300,000 with a spread of a few µs; a
/// KPI around 10⁶): sums of raw values would cancel most digits of the variances, shifted sums
/// keep them, and the summary still agrees with the per-unit analysis (the slope to 1e-9).
#[actix_web::test]
async fn large_means_with_small_spreads_keep_their_digits() {
    for app in apps().await {
        let b = app.backend;
        let metrics = [
            json!({"key": "ttfb_us_9", "name": "TTFB", "kind": "sli", "value_type": "continuous", "unit": "us", "direction": "lower_is_better", "layer": "journey"}),
            json!({"key": "basket_value_1", "name": "Basket", "kind": "kpi", "value_type": "continuous", "unit": "USD", "direction": "higher_is_better", "layer": "business"}),
            json!({"key": "error_share_3", "name": "Errors", "kind": "kpi", "value_type": "continuous", "unit": "share", "direction": "lower_is_better", "layer": "business"}),
        ];
        let body = json!({
            "key": "us_scale", "name": "µs", "hypothesis": "h", "sli": "ttfb_us_9",
            "kpis": ["basket_value_1"], "guardrails": ["error_share_3"],
            "variants": [
                {"key": "control", "weight": 0.5, "control": true, "dose": 0},
                {"key": "plus_2", "weight": 0.25, "dose": 2},
                {"key": "plus_4", "weight": 0.25, "dose": 4}
            ]
        });
        app.create_experiment(&metrics, &body).await;
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(3);
        let noise = rand_distr::Normal::new(0.0, 3.0).unwrap();
        let (mut a, mut o) = (String::new(), String::new());
        for i in 0..3000u32 {
            let (arm, dose) = match i % 4 {
                0 | 1 => ("control", 0.0),
                2 => ("plus_2", 2.0),
                _ => ("plus_4", 4.0),
            };
            let unit = format!("u {i} 😀");
            a.push_str(&format!("{}\n", json!({"unit_id": unit, "variant": arm})));
            let us: f64 = 300_000.0 + dose + noise.sample(&mut rng);
            let habit: f64 = noise.sample(&mut rng);
            let basket = 1_000_000.0 - 0.5 * (us - 300_000.0) + habit + noise.sample(&mut rng);
            // The pre-period level is 2% lower with the same spread: shifted by the
            // experiment period's level, its sums would lose digits.
            let pre_basket = 980_000.0 + habit + noise.sample(&mut rng);
            let errors = 0.1 + 0.01 * noise.sample(&mut rng);
            for (metric, value, period) in [
                ("ttfb_us_9", us, "post"),
                ("basket_value_1", basket, "post"),
                ("basket_value_1", pre_basket, "pre"),
                ("error_share_3", errors, "post"),
                // A constant covariate (0.1 is not exact in binary): no adjustment in either.
                ("error_share_3", 0.1, "pre"),
            ] {
                o.push_str(&format!(
                    "{}\n",
                    json!({"unit_id": unit, "metric": metric, "value": value, "period": period})
                ));
            }
        }
        app.upload("us_scale", a, o).await;
        let r = app
            .post_json(
                "/api/v1/experiments/us_scale/analyses",
                &json!({"bootstrap": {"resamples": 200, "seed": 1}}),
            )
            .await;
        assert_eq!(r.status, 201, "{b}: {}", r.text);
        let s = app.get("/api/v1/experiments/us_scale/summary").await;
        assert_eq!(s.status, 200, "{b}: {}", s.text);
        let (got, want) = (&s.body["causal"][0], &r.body["causal_effects"][0]);
        close_all(&got["slope"], &want["slope"], ESTIMATE, b);
        let (got, want) = (&s.body["effects"][0], &r.body["kpi_effects"][0]);
        assert_eq!(got["metric"], "basket_value_1", "{b}");
        level(&got["control"], &want["control"], b);
        let cuped = &want["alternatives"]["cuped"];
        assert!(
            cuped["variance_reduction"].as_f64().unwrap() > 0.2,
            "{b}: {cuped}"
        );
        close_all(&got["cuped"], cuped, &["theta", "variance_reduction"], b);
        for e in s.body["effects"].as_array().unwrap() {
            if e["metric"] == "error_share_3" {
                assert!(e["cuped"].is_null(), "{b}: {e}");
                assert_eq!(e["difference"]["method"], "welch_t", "{b}");
            }
        }
        for e in r.body["kpi_effects"].as_array().unwrap() {
            if e["metric"] == "error_share_3" {
                assert_eq!(e["primary"]["method"], "welch_t", "{b}: {e}");
            }
        }
        // A difference of about 1 between means of about 10⁶ carries ~1e-10 of each mean's
        // rounding in either path, ~1e-9 of itself; raw sums would be off by 1e-4 or fail.
        for f in ESTIMATE {
            let (g, w) = (
                got["difference"][f].as_f64().unwrap(),
                want["primary"][f].as_f64().unwrap(),
            );
            assert!((g - w).abs() <= 1e-7 * w.abs(), "{b}: {f}: {g} vs {w}");
        }
        let sli = &s.body["variants"][0]["sli"]["ci"];
        assert!(
            sli["high"].as_f64().unwrap() - sli["low"].as_f64().unwrap() > 0.1,
            "{b}: {sli}"
        );
    }
}

/// A whale first by text id (revenue 1e12 among values around 20): were it the shift, the
/// other units' sums would cancel every digit; the shift is the median of the first units,
/// so the summary still agrees with the per-unit analysis, CUPED included.
#[actix_web::test]
async fn an_outlier_first_by_unit_id_does_not_cost_digits() {
    for app in apps().await {
        let b = app.backend;
        let metrics = [
            json!({"key": "page_ms_4", "name": "Page", "kind": "sli", "value_type": "continuous", "unit": "ms", "direction": "lower_is_better", "layer": "journey"}),
            json!({"key": "spend_5", "name": "Spend", "kind": "kpi", "value_type": "continuous", "unit": "USD", "direction": "higher_is_better", "layer": "business"}),
        ];
        let body = json!({
            "key": "whales", "name": "w", "hypothesis": "h", "sli": "page_ms_4",
            "kpis": ["spend_5"],
            "variants": [
                {"key": "control", "weight": 0.5, "control": true, "dose": 0},
                {"key": "plus_50", "weight": 0.5, "dose": 50}
            ]
        });
        app.create_experiment(&metrics, &body).await;
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(11);
        let spend = LogNormal::new(3.0, 0.8).unwrap();
        let latency = LogNormal::new(5.0, 0.6).unwrap();
        let (mut a, mut o) = (String::new(), String::new());
        for i in 0..900u32 {
            // "!whale" sorts before every "u …" id.
            let (unit, arm) = match i {
                0 => ("!whale".to_owned(), "control"),
                _ => (
                    format!("u {i}"),
                    if i % 2 == 0 { "control" } else { "plus_50" },
                ),
            };
            let (post, pre) = if i == 0 {
                (1e12, 0.9e12)
            } else {
                let habit: f64 = spend.sample(&mut rng);
                (habit * 1.1, habit)
            };
            a.push_str(&format!("{}\n", json!({"unit_id": unit, "variant": arm})));
            let ms = latency.sample(&mut rng) + if arm == "plus_50" { 50.0 } else { 0.0 };
            for (metric, value, period) in [
                ("page_ms_4", ms, "post"),
                ("spend_5", post, "post"),
                ("spend_5", pre, "pre"),
            ] {
                o.push_str(&format!(
                    "{}\n",
                    json!({"unit_id": unit, "metric": metric, "value": value, "period": period})
                ));
            }
        }
        app.upload("whales", a, o).await;
        let r = app
            .post_json(
                "/api/v1/experiments/whales/analyses",
                &json!({"bootstrap": {"resamples": 200, "seed": 1}, "missing_outcomes": "exclude"}),
            )
            .await;
        assert_eq!(r.status, 201, "{b}: {}", r.text);
        let s = app
            .get("/api/v1/experiments/whales/summary?missing_outcomes=exclude")
            .await;
        assert_eq!(s.status, 200, "{b}: {}", s.text);
        let (got, want) = (&s.body["effects"][0], &r.body["kpi_effects"][0]);
        level(&got["treatment"], &want["treatment"], b);
        level(&got["control"], &want["control"], b);
        close_all(
            &got["difference"],
            &want["alternatives"]["unadjusted"],
            &ESTIMATE[..5],
            b,
        );
        // CUPED would remove the whale from the control mean, leaving an adjusted variance
        // that sums cannot give to enough digits (1 − R² ≈ 1e-9 there): the summary says so
        // and stays unadjusted, where the analysis (summing residuals) adjusts.
        assert!(got["cuped"].is_null(), "{b}: {got}");
        assert_eq!(got["difference"]["method"], "welch_t", "{b}");
        assert!(!want["alternatives"]["cuped"].is_null(), "{b}");
        let skipped = find(&s.body["not_summarised"], |n| n["metric"] == "spend_5", b);
        assert!(
            skipped["reason"]
                .as_str()
                .unwrap()
                .contains("CUPED from sums"),
            "{b}: {skipped}"
        );
    }
}
