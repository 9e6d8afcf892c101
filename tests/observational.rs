//! Correlational evidence from production history: a KPI's windows regressed on an SLI's, whose
//! verdict can never be `validated`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

mod common;

use common::promtool::{format_num, promtool_agrees};
use common::{apps, at, error_fields, TestApp, BASE};
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use serde_json::{json, Value};

const BOUNDS: [f64; 8] = [100.0, 200.0, 250.0, 300.0, 350.0, 400.0, 500.0, 1000.0];
const WINDOW: i64 = 900;
const WINDOWS: i64 = 7 * 96;

/// A histogram window of `n` requests whose latency is log-normal (σ 0.5) with median `m`.
fn histogram(start: i64, m: f64, n: f64) -> Value {
    let cdf = |b: f64| {
        let z = (b.ln() - m.ln()) / 0.5;
        0.5 * libm_erfc(-z / std::f64::consts::SQRT_2)
    };
    let mut buckets: Vec<Value> = BOUNDS
        .iter()
        .map(|b| json!({"le": b, "count": (n * cdf(*b)).round()}))
        .collect();
    buckets.push(json!({"le": "+Inf", "count": n}));
    json!({"start": at(start), "seconds": WINDOW, "count": n, "buckets": buckets})
}

/// erfc by the Abramowitz–Stegun 7.1.26 approximation (|error| < 1.5e-7): bucket counts only.
fn libm_erfc(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let e = poly * (-x * x).exp();
    if x >= 0.0 {
        e
    } else {
        2.0 - e
    }
}

/// Seven days of 15-minute windows: the SLI's median latency jitters around 250 ms with a daily
/// cycle and a few 30-minute incidents; `conversion_lag2` falls by 0.01 per +100 ms of median
/// latency two windows (30 minutes) earlier, on its own daily cycle; `conversion_noise` ignores
/// latency. Returns the medians.
async fn load(app: &TestApp) -> Vec<f64> {
    load_with(app, (WINDOWS, 11), 0.12, |_| 0.02).await
}

/// Two weeks for a recommendation: in the first week the median latency has incidents (one
/// window in twenty), in the second it is calm (σ 0.05 around its daily cycle). Production's
/// last week is healthy while history saw the SLI far from its baseline.
async fn load_two_weeks(app: &TestApp) {
    load_with(app, (2 * WINDOWS, 12), 0.05, |k| {
        if k < WINDOWS {
            0.05
        } else {
            0.0
        }
    })
    .await;
}

/// `n` windows from BASE (random stream `seed`): log-normal jitter `sd` around a daily cycle,
/// +0.8 in log with probability `incident(k)`, and the two KPIs as in [`load`].
async fn load_with(
    app: &TestApp,
    (n, seed): (i64, u64),
    sd: f64,
    incident: impl Fn(i64) -> f64,
) -> Vec<f64> {
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
    let jitter = Normal::new(0.0, sd).unwrap();
    let noise = Normal::new(0.0, 0.002).unwrap();
    let day = |k: i64| (2.0 * std::f64::consts::PI * k as f64 / 96.0).sin();
    let medians: Vec<f64> = (0..n)
        .map(|k| {
            let bump = if rng.random::<f64>() < incident(k) {
                0.8
            } else {
                0.0
            };
            250.0 * (0.1 * day(k) + jitter.sample(&mut rng) + bump).exp()
        })
        .collect();
    let sli: Vec<Value> = (0..n)
        .map(|k| histogram(BASE + k * WINDOW, medians[k as usize], 2000.0))
        .collect();
    let r = app
        .post_json("/api/v1/metrics/latency_ms_7/series", &json!(sli))
        .await;
    assert_eq!(r.status, 200, "{}: {}", app.backend, r.text);
    for (kpi, effect) in [("conversion_lag2", 0.0001), ("conversion_noise", 0.0)] {
        let rows: Vec<Value> = (0..n)
            .map(|k| {
                let earlier = medians[(k - 2).max(0) as usize];
                let v = 0.05 + 0.004 * day(k) - effect * (earlier - 250.0) + noise.sample(&mut rng);
                json!({"start": at(BASE + k * WINDOW), "seconds": WINDOW, "value": v, "units": 1200})
            })
            .collect();
        let r = app
            .post_json(&format!("/api/v1/metrics/{kpi}/series"), &json!(rows))
            .await;
        assert_eq!(r.status, 200, "{}: {}", app.backend, r.text);
    }
    medians
}

async fn catalog(app: &TestApp) {
    for m in [
        json!({"key": "conversion_lag2", "name": "Conversion", "kind": "kpi", "value_type": "binary",
               "unit": "", "direction": "higher_is_better", "layer": "business"}),
        json!({"key": "conversion_noise", "name": "Unrelated conversion", "kind": "kpi", "value_type": "binary",
               "unit": "", "direction": "higher_is_better", "layer": "business"}),
        json!({"key": "latency_ms_7", "name": "Checkout latency", "kind": "sli", "value_type": "continuous",
               "unit": "ms", "direction": "lower_is_better", "layer": "journey",
               "parents": ["conversion_lag2"]}),
    ] {
        let r = app.post_json("/api/v1/metrics", &m).await;
        assert_eq!(r.status, 201, "{}: {}", app.backend, r.text);
    }
}

fn ask(kpi: &str) -> Value {
    json!({"sli": "latency_ms_7", "kpi": kpi, "from": at(BASE), "to": at(BASE + WINDOWS * WINDOW),
           "statistic": "p50", "max_lag_windows": 6})
}

/// A KPI that follows the SLI 30 minutes later is found at lag 2 with a negative slope and a
/// `correlational` verdict that is not validated; an unrelated KPI is not significant; the
/// stored document is returned as first produced.
#[actix_web::test]
async fn history_finds_a_lagged_association_and_never_validates_it() {
    for app in apps().await {
        let b = app.backend;
        catalog(&app).await;
        load(&app).await;
        let r = app
            .post_json("/api/v1/observational-analyses", &ask("conversion_lag2"))
            .await;
        assert_eq!(r.status, 201, "{b}: {}", r.text);
        let a = &r.body;
        assert_eq!(a["verdict"]["validated"], false, "{b}");
        assert_eq!(a["verdict"]["evidence"], "correlational", "{b}");
        assert_eq!(a["verdict"]["status"], "correlational", "{b}: {a}");
        assert_eq!(a["best"]["lag_windows"], 2, "{b}: {}", a["lags"]);
        assert_eq!(a["best"]["lag_minutes"], 30.0, "{b}");
        // Truth: −0.0001 per ms of median latency (the p50 of each window's histogram is its
        // median up to bucket interpolation).
        let (lo, hi) = (
            a["best"]["ci_low"].as_f64().unwrap(),
            a["best"]["ci_high"].as_f64().unwrap(),
        );
        assert!(hi < 0.0, "{b}: {}", a["best"]);
        assert!(lo < -0.00006 && hi > -0.00016, "{b}: {}", a["best"]);
        assert_eq!(a["lags"].as_array().unwrap().len(), 7, "{b}");
        assert_eq!(a["lags_skipped"], 0, "{b}");
        let p = a["best"]["p_value"].as_f64().unwrap();
        assert_eq!(
            a["best_p_adjusted"].as_f64().unwrap(),
            (7.0 * p).min(1.0),
            "{b}"
        );
        assert_eq!(a["window_seconds"], 900, "{b}");
        let summary = a["summary"].as_str().unwrap();
        eprintln!("{b}: {summary}");
        assert!(
            summary.contains("30 minutes later") && summary.contains("Correlational"),
            "{b}: {summary}"
        );
        let id = a["id"].as_i64().unwrap();
        let again = app
            .get(&format!("/api/v1/observational-analyses/{id}"))
            .await;
        assert_eq!(again.status, 200, "{b}");
        assert_eq!(again.text, r.text, "{b}");

        let r = app
            .post_json("/api/v1/observational-analyses", &ask("conversion_noise"))
            .await;
        assert_eq!(r.status, 201, "{b}: {}", r.text);
        assert_eq!(
            r.body["verdict"]["status"], "not_significant",
            "{b}: {}",
            r.body["best"]
        );
        assert_eq!(r.body["verdict"]["validated"], false, "{b}");
    }
}

/// What cannot be analysed is refused, naming the field; a KPI's series takes value windows
/// only, an SLI's never.
#[actix_web::test]
async fn observational_requests_that_cannot_run_are_refused() {
    for app in apps().await {
        let b = app.backend;
        catalog(&app).await;
        // Before any series: the SLI has none.
        let r = app
            .post_json("/api/v1/observational-analyses", &ask("conversion_lag2"))
            .await;
        assert_eq!(r.status, 422, "{b}: {}", r.text);
        assert_eq!(error_fields(&r.body), vec!["sli"], "{b}");
        // Value rows for an SLI, histogram rows for a KPI.
        let row = json!([{"start": at(BASE), "seconds": 900, "value": 0.05, "units": 10}]);
        let r = app
            .post_json("/api/v1/metrics/latency_ms_7/series", &row)
            .await;
        assert_eq!(r.status, 422, "{b}: {}", r.text);
        let r = app
            .post_json(
                "/api/v1/metrics/conversion_lag2/series",
                &json!([histogram(BASE, 250.0, 10.0)]),
            )
            .await;
        assert_eq!(r.status, 422, "{b}: {}", r.text);
        // A binary KPI's window is a share: 2 is not one.
        let share = json!([{"start": at(BASE), "seconds": 900, "value": 2, "units": 10}]);
        let r = app
            .post_json("/api/v1/metrics/conversion_lag2/series", &share)
            .await;
        assert_eq!(r.status, 422, "{b}: {}", r.text);
        assert_eq!(error_fields(&r.body), vec!["value"], "{b}: {}", r.text);
        let bad_units = json!([{"start": at(BASE), "seconds": 900, "value": 0.05, "units": 0}]);
        let r = app
            .post_json("/api/v1/metrics/conversion_lag2/series", &bad_units)
            .await;
        assert_eq!(r.status, 422, "{b}: {}", r.text);
        assert_eq!(common::error_rows(&r.body), vec![1], "{b}");
        load(&app).await;
        for (change, field) in [
            (json!({"sli": "conversion_lag2"}), "sli"),
            (json!({"kpi": "latency_ms_7"}), "kpi"),
            (json!({"kpi": "no_such_kpi"}), "kpi"),
            (json!({"statistic": "good_share"}), "statistic"),
            (json!({"to": at(BASE)}), "to"),
            (json!({"max_lag_windows": 49}), "max_lag_windows"),
            (json!({"confidence": 1.0}), "confidence"),
        ] {
            let mut body = ask("conversion_lag2");
            for (k, v) in change.as_object().unwrap() {
                body[k] = v.clone();
            }
            let r = app.post_json("/api/v1/observational-analyses", &body).await;
            assert_eq!(r.status, 422, "{b}: {body}: {}", r.text);
            assert_eq!(error_fields(&r.body), vec![field], "{b}: {}", r.text);
        }
        // A range with too few windows for hour-of-week effects.
        let mut short = ask("conversion_lag2");
        short["to"] = json!(at(BASE + 20 * WINDOW));
        let r = app
            .post_json("/api/v1/observational-analyses", &short)
            .await;
        assert_eq!(r.status, 422, "{b}: {}", r.text);
        assert_eq!(error_fields(&r.body), vec!["from"], "{b}: {}", r.text);
        let r = app.get("/api/v1/observational-analyses/999999").await;
        assert_eq!(r.status, 404, "{b}");
    }
}

/// A recommendation from history: windows SLO on the analysed percentile at the analysis's
/// window length, its statement labelled `(evidence: correlational)`, evidence never
/// validated; refused for a non-significant analysis or a request that does not fit; approval
/// needs `acknowledge_correlational_evidence` (and nothing changes without it); the exports
/// carry the label, OpenSLO stays valid and promtool agrees on its alerts.
#[actix_web::test]
async fn a_correlational_recommendation_is_labelled_and_needs_acknowledgement() {
    for app in apps().await {
        let b = app.backend;
        catalog(&app).await;
        load_two_weeks(&app).await;
        let two_weeks = |kpi: &str| {
            let mut a = ask(kpi);
            a["to"] = json!(at(BASE + 2 * WINDOWS * WINDOW));
            a
        };
        let r = app
            .post_json(
                "/api/v1/observational-analyses",
                &two_weeks("conversion_lag2"),
            )
            .await;
        assert_eq!(r.status, 201, "{b}: {}", r.text);
        let oid = r.body["id"].as_i64().unwrap();
        // 2,000 requests per window measure the median well: little attenuation to undo.
        let lr = &r.body["long_run"];
        let lambda = lr["reliability"].as_f64().unwrap();
        assert!((0.8..=1.0).contains(&lambda), "{b}: {lr}");
        assert!(lr["slope"].as_f64().unwrap() < 0.0, "{b}: {lr}");
        let url = format!("/api/v1/observational-analyses/{oid}/recommendations");
        for (body, field) in [
            (
                json!({"max_relative_kpi_loss": 0.2, "evaluation": "events"}),
                "evaluation",
            ),
            (
                json!({"max_relative_kpi_loss": 0.2, "evaluation": "requests"}),
                "evaluation",
            ),
            (
                json!({"max_relative_kpi_loss": 0.2, "window_minutes": 5}),
                "window_minutes",
            ),
            // Over two weeks production's own incident week would spend the budget many times.
            (
                json!({"max_relative_kpi_loss": 0.2, "window_days": 14}),
                "max_relative_kpi_loss",
            ),
            (
                json!({"max_relative_kpi_loss": 0.2, "percentile": 95}),
                "percentile",
            ),
            (
                json!({"max_relative_kpi_loss": 0.2, "kpi": "conversion_noise"}),
                "kpi",
            ),
            (
                json!({"max_relative_kpi_loss": 0.2, "sli": "other_sli"}),
                "sli",
            ),
            (
                json!({"max_relative_kpi_loss": 1.5}),
                "max_relative_kpi_loss",
            ),
        ] {
            let r = app.post_json(&url, &body).await;
            assert_eq!(r.status, 422, "{b}: {body}: {}", r.text);
            assert_eq!(error_fields(&r.body), vec![field], "{b}: {}", r.text);
        }
        let listed = app.get("/api/v1/recommendations").await;
        assert_eq!(listed.body["items"], json!([]), "{b}: nothing half-written");

        let r = app
            .post_json(
                &url,
                &json!({"max_relative_kpi_loss": 0.3, "window_days": 7, "units_per_day": 50000,
                        "value_per_kpi_unit": 40, "currency": "EUR"}),
            )
            .await;
        assert_eq!(r.status, 201, "{b}: {}", r.text);
        let rec = &r.body;
        let statement = rec["slo"]["statement"].as_str().unwrap();
        eprintln!("{b}: {statement}\n{}", rec["error_budget"]);
        assert!(
            statement.starts_with("Checkout latency p50 < ")
                && statement.contains("of 15-minute windows over 7 days")
                && statement.ends_with("(evidence: correlational)"),
            "{b}: {statement}"
        );
        let e = &rec["evidence"];
        assert_eq!(e["kind"], "correlational", "{b}");
        assert_eq!(e["validated"], false, "{b}");
        assert_eq!(e["observational_analysis_id"], oid, "{b}");
        assert!(
            e["analysis_id"].is_null() && e["experiment"].is_null(),
            "{b}: {e}"
        );
        // The slope used is the harmful end of the simultaneous interval, within the truth's
        // reach (−0.0001 per ms), and the threshold lies above production's p50.
        let used = rec["derivation"]["slope_used"].as_f64().unwrap();
        assert!(
            used < e["slope"]["estimate"].as_f64().unwrap(),
            "{b}: {rec}"
        );
        assert!(used > -0.0004 && used < -0.00005, "{b}: {used}");
        let threshold = rec["slo"]["threshold"].as_f64().unwrap();
        assert!(
            threshold > rec["derivation"]["baseline_sli"].as_f64().unwrap(),
            "{b}: {rec}"
        );
        assert!(
            BOUNDS.contains(&threshold),
            "{b}: snapped to a bucket bound"
        );
        assert_eq!(rec["derivation"]["baseline_source"]["kind"], "production");
        assert!(rec["error_budget"]["value_at_risk"].as_f64().unwrap() > 0.0);
        assert!(
            rec["derivation"]["notes"]
                .to_string()
                .contains("Correlational evidence"),
            "{b}"
        );
        let rid = rec["id"].as_i64().unwrap();
        let decision = format!("/api/v1/recommendations/{rid}/decision");
        let r = app
            .post_json(&decision, &json!({"decision": "approve"}))
            .await;
        assert_eq!(r.status, 422, "{b}: {}", r.text);
        assert_eq!(
            error_fields(&r.body),
            vec!["acknowledge_correlational_evidence"],
            "{b}"
        );
        let unchanged = app.get(&format!("/api/v1/recommendations/{rid}")).await;
        assert_eq!(unchanged.body["status"], "proposed", "{b}");
        let r = app
            .post_json(
                &decision,
                &json!({"decision": "approve", "acknowledge_correlational_evidence": true}),
            )
            .await;
        assert_eq!(r.status, 200, "{b}: {}", r.text);
        let sid = r.body["slo_id"].as_i64().unwrap();
        let slo = app.get(&format!("/api/v1/slos/{sid}")).await.body;
        assert_eq!(slo["evidence"]["kind"], "correlational", "{b}");

        let openslo = app.get(&format!("/api/v1/slos/{sid}/openslo")).await;
        let doc: Value = serde_yaml_ng::from_str(&openslo.text).unwrap();
        let notes = &doc["metadata"]["annotations"];
        assert_eq!(notes["sloproof.dev/evidence"], "correlational", "{b}");
        assert_eq!(notes["sloproof.dev/verdict"], "correlational", "{b}");
        assert_eq!(
            notes["sloproof.dev/observational-analysis-id"],
            oid.to_string(),
            "{b}"
        );
        let errors = common::openslo::schema_errors(&doc);
        assert!(errors.is_empty(), "{b}: {errors:?}");

        let rules = app
            .get(&format!("/api/v1/slos/{sid}/prometheus-rules"))
            .await
            .text;
        assert!(rules.contains("sloproof_evidence: correlational"), "{b}");
        let name = slo["name"].as_str().unwrap();
        // The SLI in ms is exported in seconds, as Prometheus histograms are.
        let le = format!("{{le=\"{}\"}}", format_num(threshold / 1000.0));
        let metric = "latency_ms_7_seconds";
        assert!(rules.contains(&format!("{metric}_bucket")), "{b}: {rules}");
        let minutes = 180;
        let fast: Vec<u64> = (0..=minutes).map(|k| 1000 * k as u64).collect();
        let slow: Vec<u64> = vec![0; minutes + 1];
        for (bucket, fires) in [(fast.clone(), false), (slow, true)] {
            let series = [
                (format!("{metric}_bucket{le}"), bucket),
                (format!("{metric}_count"), fast.clone()),
            ];
            promtool_agrees(
                b,
                &rules,
                (&series, 1),
                &[(120, fires, fires)],
                (name, slo["slo"]["statement"].as_str().unwrap()),
            );
        }

        // An analysis that found nothing yields no recommendation.
        let r = app
            .post_json(
                "/api/v1/observational-analyses",
                &two_weeks("conversion_noise"),
            )
            .await;
        let nid = r.body["id"].as_i64().unwrap();
        let r = app
            .post_json(
                &format!("/api/v1/observational-analyses/{nid}/recommendations"),
                &json!({"max_relative_kpi_loss": 0.2}),
            )
            .await;
        assert_eq!(r.status, 422, "{b}: {}", r.text);
        assert!(r.text.contains("no harmful association"), "{b}: {}", r.text);
        let r = app
            .post_json(
                "/api/v1/observational-analyses/999999/recommendations",
                &json!({"max_relative_kpi_loss": 0.2}),
            )
            .await;
        assert_eq!(r.status, 404, "{b}");
    }
}
