//! The summary's bootstrap, run on counted cells of each arm's values instead of on units
//! (`GET /experiments/{key}/summary?resamples=…`), agrees with the full analysis's per-unit
//! Poisson bootstrap within Monte-Carlo error on both backends: the interval of every
//! difference from control (binary, continuous heavy-tailed and count metrics), of every
//! causal slope and of each arm's p95 shift, by BCa, percentile and basic, under the three
//! missing-outcome rules (with values missing in one arm only). The latency is continuous
//! (log-normal σ = 0.7), so its cells are binned; cells keep their values' means, so only the
//! p95's tolerance carries the reported error bound. The cells hold exactly the units the
//! sums do. The same seed gives the same intervals however the rows were read.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

mod common;

use common::{apps, assert_problem, error_fields, find, TestApp};
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal};
use serde_json::{json, Value};

const KEY: &str = "boot_exp_3";
const UNITS: u32 = 24_000;

async fn load(app: &TestApp) {
    let metrics = [
        json!({"key": "api_latency_ms", "name": "Latency", "kind": "sli", "value_type": "continuous", "unit": "ms", "direction": "lower_is_better", "layer": "journey"}),
        json!({"key": "converted_7d", "name": "Conversion", "kind": "kpi", "value_type": "binary", "unit": "", "direction": "higher_is_better", "layer": "business"}),
        json!({"key": "revenue_usd_2", "name": "Revenue", "kind": "kpi", "value_type": "continuous", "unit": "USD", "direction": "higher_is_better", "layer": "business"}),
        json!({"key": "tickets_30d", "name": "Tickets", "kind": "kpi", "value_type": "count", "unit": "tickets", "direction": "lower_is_better", "layer": "business"}),
    ];
    let body = json!({
        "key": KEY, "name": "Latency", "hypothesis": "Slower answers convert less",
        "sli": "api_latency_ms", "kpis": ["converted_7d", "revenue_usd_2"],
        "guardrails": ["tickets_30d"],
        "variants": [
            {"key": "control", "weight": 0.5, "control": true, "dose": 0},
            {"key": "plus_100", "weight": 0.25, "dose": 100},
            {"key": "plus_250", "weight": 0.25, "dose": 250}
        ]
    });
    app.create_experiment(&metrics, &body).await;
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(21);
    let latency = LogNormal::new(5.5, 0.7).unwrap();
    let basket = LogNormal::new(3.2, 1.0).unwrap();
    let (mut assignments, mut observations) = (String::new(), String::new());
    for i in 0..UNITS {
        let (arm, dose) = match i % 4 {
            0 | 1 => ("control", 0.0),
            2 => ("plus_100", 100.0),
            _ => ("plus_250", 250.0),
        };
        let unit = format!("usér {i} · {}", i % 7);
        assignments.push_str(&json!({"unit_id": unit, "variant": arm}).to_string());
        assignments.push('\n');
        let ms: f64 = latency.sample(&mut rng) + dose;
        // Saturating in latency.
        let converted = rng.random::<f64>() < 0.06 + 0.3 * (-ms / 500.0).exp();
        let revenue = if converted {
            basket.sample(&mut rng)
        } else {
            0.0
        };
        let tickets = f64::from(rng.random_range(0..3u8)) + f64::from(u8::from(ms > 600.0));
        let mut obs = |metric: &str, value: f64| {
            observations
                .push_str(&json!({"unit_id": unit, "metric": metric, "value": value}).to_string());
            observations.push('\n');
        };
        if i % 19 != 4 {
            obs("api_latency_ms", ms);
        }
        if i % 23 != 5 {
            obs("converted_7d", f64::from(u8::from(converted)));
        }
        // Revenue is missing for some units of one arm only (the rules then differ by arm).
        if !(i % 4 == 3 && i % 11 == 0) {
            obs("revenue_usd_2", revenue);
        }
        if i % 29 != 6 {
            obs("tickets_30d", tickets);
        }
    }
    app.upload(KEY, assignments, observations).await;
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// The largest relative error of the cells a statistic of `metric` ran on.
fn cell_error(summary: &Value, metric: &str) -> f64 {
    summary["bootstrap"]["cells"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["metric"] == metric)
        .map(|c| f(&c["relative_error"]))
        .fold(0.0, f64::max)
}

/// Both endpoints within `tolerance`.
#[track_caller]
fn endpoints(got: &Value, want: &Value, tolerance: f64, what: &str) {
    for end in ["ci_low", "ci_high"] {
        let (g, w) = (f(&got[end]), f(&want[end]));
        assert!(
            (g - w).abs() <= tolerance,
            "{what}.{end}: from cells {g}, per unit {w}, tolerance {tolerance}"
        );
    }
}

/// A 2,000-resample interval endpoint has a Monte-Carlo sd of about 0.06–0.08 standard errors
/// (percentile and BCa at 95%); two independent runs differ by about 0.1 se, so 0.4 se is four
/// of those.
const MC: f64 = 0.4;

/// The cells hold the units the sums do under the missing-outcome rule: each arm's units of
/// each compared metric, and each slope's units (checked exactly, whatever the seeds).
fn same_units(summary: &Value, what: &str) {
    let cells = &summary["bootstrap"]["cells"];
    let units = |variant: &Value, metric: &Value, paired: bool| -> Value {
        let c = find(
            cells,
            |c| {
                c["variant"] == *variant
                    && c["metric"] == *metric
                    && c["paired_with"].is_null() != paired
            },
            what,
        );
        c["units"].clone()
    };
    for e in summary["effects"].as_array().unwrap() {
        let w = format!("{what}: {} {}", e["variant"], e["metric"]);
        let (v, m) = (&e["variant"], &e["metric"]);
        assert_eq!(units(v, m, false), e["treatment"]["units"], "{w}");
        assert_eq!(
            units(&json!("control"), m, false),
            e["control"]["units"],
            "{w}"
        );
    }
    for c in summary["causal"].as_array().unwrap() {
        let total: u64 = ["control", "plus_100", "plus_250"]
            .iter()
            .map(|v| units(&json!(v), &c["kpi"], true).as_u64().unwrap())
            .sum();
        assert_eq!(json!(total), c["units"], "{what}: slope of {}", c["kpi"]);
    }
}

/// Two summaries' counts and closed-form estimates agree (1e-9 relative).
fn same_closed_form(a: &Value, b: &Value, what: &str) {
    for k in ["units", "unassigned_observations", "sample_ratio"] {
        assert_eq!(a[k], b[k], "{what}: {k}");
    }
    let close = |x: &Value, y: &Value, w: &str| {
        let (x, y) = (f(x), f(y));
        assert!(
            (x - y).abs() <= 1e-9 * x.abs().max(y.abs()) + 1e-15,
            "{what}: {w}: {x} vs {y}"
        );
    };
    for (list, field) in [("effects", "difference"), ("causal", "slope")] {
        let (x, y) = (a[list].as_array().unwrap(), b[list].as_array().unwrap());
        assert_eq!(x.len(), y.len(), "{what}: {list}");
        for (p, q) in x.iter().zip(y) {
            for k in ["estimate", "std_error", "p_value", "adjusted_p_value"] {
                close(&p[field][k], &q[field][k], &format!("{list}.{field}.{k}"));
            }
        }
    }
}

fn compare(summary: &Value, analysis: &Value, what: &str) {
    same_units(summary, what);
    for want in analysis["kpi_effects"].as_array().unwrap() {
        let (v, m) = (&want["variant"], &want["metric"]);
        let w = format!("{what}: {v} {m}");
        let got = find(
            &summary["effects"],
            |e| e["variant"] == *v && e["metric"] == *m,
            &w,
        );
        let se = f(&want["primary"]["std_error"]);
        assert_eq!(
            got["bootstrap"]["method"],
            want["alternatives"]["bootstrap"]["method"]
        );
        endpoints(
            &got["bootstrap"],
            &want["alternatives"]["bootstrap"],
            MC * se,
            &w,
        );
    }
    for want in analysis["causal_effects"].as_array().unwrap() {
        let w = format!("{what}: slope of {}", want["kpi"]);
        let got = find(&summary["causal"], |c| c["kpi"] == want["kpi"], &w);
        let se = f(&want["slope"]["std_error"]);
        endpoints(&got["bootstrap"], &want["bootstrap"], MC * se, &w);
    }
    // A p95 moves by less than the relative error times its value (< 2,000 ms here).
    let slack = cell_error(summary, "api_latency_ms") * 2.0 * 2000.0;
    for want in analysis["first_stage"].as_array().unwrap() {
        let w = format!("{what}: p95 shift of {}", want["variant"]);
        let got = find(
            &summary["variants"],
            |v| v["variant"] == want["variant"],
            &w,
        );
        let (g, x) = (&got["p95_shift"], &want["p95_shift"]);
        let gap = (f(&g["estimate"]) - f(&x["estimate"])).abs();
        assert!(gap <= slack, "{w}: estimate {g} vs {x}, slack {slack}");
        endpoints(g, x, MC * f(&x["std_error"]) + slack, &w);
    }
}

#[actix_web::test]
async fn the_bootstrap_from_cells_agrees_with_the_per_unit_bootstrap() {
    for app in apps().await {
        let b = app.backend;
        load(&app).await;
        let cases = [
            ("bca", "by_value_type"),
            ("percentile", "exclude"),
            ("basic", "zero"),
        ];
        for (method, rule) in cases {
            let what = format!("{b} ({method}, {rule})");
            let r = app
                .post_json(
                    &format!("/api/v1/experiments/{KEY}/analyses"),
                    &json!({"bootstrap": {"resamples": 2000, "seed": 5, "method": method},
                            "missing_outcomes": rule}),
                )
                .await;
            assert_eq!(r.status, 201, "{what}: {}", r.text);
            let s = app
                .get(&format!(
                    "/api/v1/experiments/{KEY}/summary?resamples=2000&seed=9\
                     &bootstrap_method={method}&missing_outcomes={rule}"
                ))
                .await;
            assert_eq!(s.status, 200, "{what}: {}", s.text);
            assert_eq!(s.body["not_summarised"], json!([]), "{what}");
            // With a bootstrap, PostgreSQL reads the units once through a cursor for both the
            // sums and the cells: its closed-form numbers are those of the SQL sums.
            let plain = app
                .get(&format!(
                    "/api/v1/experiments/{KEY}/summary?missing_outcomes={rule}"
                ))
                .await;
            same_closed_form(&s.body, &plain.body, &what);
            let cells = s.body["bootstrap"]["cells"].as_array().unwrap();
            // SLI values per arm, every metric per arm, and the two KPIs' (SLI, KPI) pairs.
            assert_eq!(cells.len(), 3 + 3 * 3 + 2 * 3, "{what}: {cells:?}");
            for c in cells {
                assert!(f(&c["cells"]) <= 4096.0, "{what}: {c}");
                let binary = c["metric"] == "converted_7d" && c["paired_with"].is_null();
                let counts = c["metric"] == "tickets_30d";
                if binary || counts {
                    assert_eq!(c["exact"], true, "{what}: repeated values stay exact: {c}");
                }
                if c["metric"] == "api_latency_ms" {
                    assert_eq!(
                        c["exact"], false,
                        "{what}: continuous values are binned: {c}"
                    );
                    assert!(f(&c["relative_error"]) <= 1.0 / 256.0, "{what}: {c}");
                }
            }
            compare(&s.body, &r.body, &what);
        }
    }
}

#[actix_web::test]
async fn the_same_seed_gives_the_same_intervals_however_the_rows_are_read() {
    for app in apps().await {
        let b = app.backend;
        load(&app).await;
        let path = format!(
            "/api/v1/experiments/{KEY}/summary?resamples=300&seed=4&bootstrap_method=percentile"
        );
        let whole = app.get(&path).await;
        assert_eq!(whole.status, 200, "{b}: {}", whole.text);
        let again = app.get(&path).await;
        assert_eq!(whole.body, again.body, "{b}");
        let url = app.db_url.clone();
        let split = actix_web::web::block(move || {
            use sloproof::analysis::aggregate_boot::BootSettings;
            use sloproof::analysis::report::{BootstrapMethod, MissingOutcomes};
            use sloproof::analysis::service::{summary_split, SummaryRequest};
            let db = sloproof::store::Db::open(&url, 4).unwrap();
            let e = sloproof::ingest::service::experiment(&db, KEY).unwrap();
            let bootstrap = Some(BootSettings {
                resamples: 300,
                method: BootstrapMethod::Percentile,
                seed: 4,
                confidence: 0.95,
            });
            let r = SummaryRequest {
                confidence: 0.95,
                rule: MissingOutcomes::ByValueType,
                correction: sloproof::analysis::report::Correction::Holm,
                bootstrap,
                cuped: None,
                thresholds: None,
            };
            // Through JSON text, as the HTTP answer is (serde_json may parse a float 1 ulp off).
            let text = serde_json::to_string(&summary_split(&db, &e, r, 2).unwrap()).unwrap();
            serde_json::from_str::<Value>(&text).unwrap()
        })
        .await
        .unwrap();
        assert_eq!(
            split["bootstrap"], whole.body["bootstrap"],
            "{b}: the same cells"
        );
        for (list, field) in [
            ("effects", "bootstrap"),
            ("causal", "bootstrap"),
            ("variants", "p95_shift"),
        ] {
            let (x, y) = (
                split[list].as_array().unwrap(),
                whole.body[list].as_array().unwrap(),
            );
            assert_eq!(x.len(), y.len(), "{b}");
            for (p, q) in x.iter().zip(y) {
                assert_eq!(p[field], q[field], "{b}: {list}.{field}");
            }
        }
        // Another seed draws other replicates.
        let other = app
            .get(&format!("/api/v1/experiments/{KEY}/summary?resamples=300&seed=5&bootstrap_method=percentile"))
            .await;
        assert_ne!(
            other.body["effects"][0]["bootstrap"], whole.body["effects"][0]["bootstrap"],
            "{b}"
        );
        // Without `resamples` there is no bootstrap.
        let plain = app.get(&format!("/api/v1/experiments/{KEY}/summary")).await;
        assert!(plain.body["bootstrap"].is_null(), "{b}");
        assert!(plain.body["effects"][0]["bootstrap"].is_null(), "{b}");
    }
}

#[actix_web::test]
async fn bootstrap_parameters_are_checked_by_name() {
    for app in apps().await {
        let b = app.backend;
        load(&app).await;
        for (query, field) in [
            ("resamples=99", "resamples"),
            ("resamples=100001", "resamples"),
            ("resamples=200&seed=9007199254740992", "seed"),
            ("seed=3", "resamples"),
            ("bootstrap_method=bca", "resamples"),
        ] {
            let r = app
                .get(&format!("/api/v1/experiments/{KEY}/summary?{query}"))
                .await;
            let p = assert_problem(&r, 422, b);
            assert_eq!(error_fields(&p), vec![field], "{b}: {query}: {p}");
        }
        // Values that do not parse are 400s naming the parameter.
        for (query, field) in [
            ("resamples=abc", "resamples"),
            ("seed=-1", "seed"),
            ("resamples=200&seed=1.5", "seed"),
            ("bootstrap_method=xyz", "bootstrap_method"),
            ("resamples=200&resamples=300", "resamples"),
            ("colour=red", "colour"),
        ] {
            let r = app
                .get(&format!("/api/v1/experiments/{KEY}/summary?{query}"))
                .await;
            let p = assert_problem(&r, 400, b);
            assert_eq!(error_fields(&p), vec![field], "{b}: {query}: {p}");
        }
    }
}

/// A metric whose values are tiny next to 1 (one unit at 1e-170, the rest 0): PostgreSQL
/// refuses a product that underflows, which made every summary of the experiment a 500 there;
/// now both backends answer 200 and say why the metric is left out.
#[actix_web::test]
async fn tiny_values_do_not_break_the_database_sums() {
    for app in apps().await {
        let b = app.backend;
        load(&app).await;
        app.create_experiment(&[json!({"key": "tiny_kpi_1", "name": "Tiny", "kind": "kpi", "value_type": "continuous", "unit": "", "direction": "higher_is_better", "layer": "business"})], &json!({"key": "tiny_exp", "name": "Tiny", "hypothesis": "h",
                        "sli": "api_latency_ms", "kpis": ["tiny_kpi_1"],
                        "variants": [{"key": "control", "weight": 0.5, "control": true, "dose": 0},
                                     {"key": "slow", "weight": 0.5, "dose": 100}]}))
            .await;
        let (mut assignments, mut observations) = (String::new(), String::new());
        for i in 0..40u32 {
            let arm = if i % 2 == 0 { "control" } else { "slow" };
            assignments.push_str(&json!({"unit_id": format!("t {i}"), "variant": arm}).to_string());
            assignments.push('\n');
            let tiny = if i == 3 { 1e-170 } else { 0.0 };
            for (metric, value) in [
                ("api_latency_ms", 200.0 + f64::from(i * 7 % 13)),
                ("tiny_kpi_1", tiny),
            ] {
                observations.push_str(
                    &json!({"unit_id": format!("t {i}"), "metric": metric, "value": value})
                        .to_string(),
                );
                observations.push('\n');
            }
        }
        app.upload("tiny_exp", assignments, observations).await;
        for query in ["", "?resamples=100"] {
            let s = app
                .get(&format!("/api/v1/experiments/tiny_exp/summary{query}"))
                .await;
            assert_eq!(s.status, 200, "{b}{query}: {}", s.text);
            // Its squares underflow to 0 in doubles on both backends: a clear reason, not a 500.
            let n = find(
                &s.body["not_summarised"],
                |n| n["metric"] == "tiny_kpi_1",
                &s.text,
            );
            assert!(
                n["reason"].as_str().unwrap().contains("zero variance"),
                "{b}: {n}"
            );
        }
    }
}

/// A KPI at a level far above its spread (1e6 ± 5, falling 0.01 per ms of latency): its values
/// are counted into cells less the KPI's shift, so the cells bin its spread, and the bootstrap
/// intervals from them are the per-unit ones within Monte-Carlo error, on both backends.
/// Counted raw (as before 2026-12-01), the whole spread fell into 2 cells per arm and the
/// intervals came out 5–6 times too narrow (an outside tester's finding).
#[actix_web::test]
async fn a_kpi_at_a_level_keeps_its_spread_in_the_cells() {
    use rand_distr::Normal;
    for app in apps().await {
        let b = app.backend;
        load(&app).await;
        app.create_experiment(&[json!({"key": "level_kpi_1e6", "name": "Level", "kind": "kpi", "value_type": "continuous", "unit": "", "direction": "higher_is_better", "layer": "business"})], &json!({"key": "level_exp", "name": "Level", "hypothesis": "h",
                        "sli": "api_latency_ms", "kpis": ["level_kpi_1e6"],
                        "variants": [{"key": "control", "weight": 0.5, "control": true, "dose": 0},
                                     {"key": "plus_100", "weight": 0.25, "dose": 100},
                                     {"key": "plus_250", "weight": 0.25, "dose": 250}]}))
            .await;
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(5);
        let latency = LogNormal::new(5.5, 0.5).unwrap();
        let noise = Normal::new(0.0, 5.0).unwrap();
        let (mut assignments, mut observations) = (String::new(), String::new());
        for i in 0..20_000u32 {
            let (arm, dose) = match i % 4 {
                0 | 1 => ("control", 0.0),
                2 => ("plus_100", 100.0),
                _ => ("plus_250", 250.0),
            };
            let unit = format!("lvl {i} ü");
            assignments.push_str(&json!({"unit_id": unit, "variant": arm}).to_string());
            assignments.push('\n');
            let ms: f64 = latency.sample(&mut rng) + dose;
            let kpi = 1e6 + noise.sample(&mut rng) - 0.01 * ms;
            for (metric, value) in [("api_latency_ms", ms), ("level_kpi_1e6", kpi)] {
                observations.push_str(
                    &json!({"unit_id": unit, "metric": metric, "value": value}).to_string(),
                );
                observations.push('\n');
            }
        }
        app.upload("level_exp", assignments, observations).await;
        let s = app
            .get("/api/v1/experiments/level_exp/summary?resamples=2000&seed=4")
            .await;
        assert_eq!(s.status, 200, "{b}: {}", s.text);
        let a = app
            .post_json(
                "/api/v1/experiments/level_exp/analyses",
                &json!({"bootstrap": {"resamples": 2000, "seed": 4}}),
            )
            .await;
        assert_eq!(a.status, 201, "{b}: {}", a.text);
        let kpi_cells = (s.body["bootstrap"]["cells"].as_array().unwrap().iter())
            .filter(|c| c["metric"] == "level_kpi_1e6" && c["paired_with"].is_null())
            .map(|c| c["cells"].as_u64().unwrap())
            .min()
            .unwrap();
        assert!(kpi_cells > 1000, "{b}: {kpi_cells} cells per arm");
        compare(&s.body, &a.body, &format!("{b} level"));
    }
}
