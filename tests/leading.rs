//! Leading indicators through the API, on one day of 1-minute windows from
//! `tests/fixtures/stats/lead_lag.json`: the checkout success share follows the cache hit share
//! 10 minutes later; a ledger sync share and a drifting queue share are unrelated. The service
//! finds the 10-minute lead with the reference numbers (pre-whitened ccf, the max test's z and
//! p-values, Granger F and p, Holm), ranks the unrelated SLIs as not significant, and
//! refuses bad queries naming the parameter.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

mod common;

use common::{apps, assert_problem, at, error_fields, TestApp};
use serde_json::{json, Value};

fn fixture() -> Value {
    let path = format!(
        "{}/tests/fixtures/stats/lead_lag.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn close(what: &str, a: f64, b: f64, rel: f64) {
    assert!(
        (a - b).abs() <= rel * b.abs() + 1e-300,
        "{what}: got {a}, want {b}"
    );
}

async fn sli(app: &TestApp, key: &str, name: &str, parents: &[&str]) {
    let r = app
        .post_json(
            "/api/v1/metrics",
            &json!({"key": key, "name": name, "kind": "sli", "value_type": "continuous",
                    "unit": "", "direction": "higher_is_better",
                    "layer": if parents.is_empty() { "journey" } else { "platform" },
                    "parents": parents}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
}

/// The share series as event windows of one event each: good/total is the value exactly.
async fn shares(app: &TestApp, key: &str, start: i64, values: &[f64], skip: Option<usize>) {
    let windows: Vec<Value> = values
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != skip)
        .map(|(i, v)| {
            json!({"start": at(start + 60 * i as i64), "seconds": 60, "good": v, "total": 1})
        })
        .collect();
    let r = app
        .post_json(&format!("/api/v1/metrics/{key}/series"), &json!(windows))
        .await;
    assert_eq!(r.status, 200, "{key}: {}", r.text);
}

#[actix_web::test]
async fn a_ten_minute_lead_is_found_with_statsmodels_numbers() {
    let fx = fixture();
    let start = fx["start"].as_i64().unwrap();
    let target = fx["target"]["key"].as_str().unwrap();
    let values = |v: &Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    for app in apps().await {
        let b = app.backend;
        sli(&app, target, "Checkout success share", &[]).await;
        shares(&app, target, start, &values(&fx["target"]["values"]), None).await;
        for c in fx["candidates"].as_array().unwrap() {
            let key = c["key"].as_str().unwrap();
            sli(&app, key, key, &[target]).await;
            shares(&app, key, start, &values(&c["values"]), None).await;
        }
        let r = app
            .get(&format!(
                "/api/v1/metrics/{target}/leading-indicators?max_lag=1h"
            ))
            .await;
        assert_eq!(r.status, 200, "{b}: {}", r.text);
        let body = &r.body;
        eprintln!("{b}: {}", body["summary"]);
        assert_eq!(body["window_seconds"], 60);
        assert_eq!(body["max_lag_windows"], 60);
        assert_eq!(body["statistic"], "good_share");
        let got = body["indicators"].as_array().unwrap();
        assert_eq!(got.len(), 3, "{b}: {body}");
        for want in fx["candidates"].as_array().unwrap() {
            let key = want["key"].as_str().unwrap();
            let g = got.iter().find(|g| g["sli"] == key).unwrap();
            assert_eq!(g["changes"], 1439, "{b} {key}");
            assert_eq!(g["ar_order"], want["order"], "{b} {key}");
            assert_eq!(g["lead_windows"], want["best_lag"], "{b} {key}");
            // The service rounds stored numbers to 12 significant digits.
            for (k, (a, w)) in g["ccf"]
                .as_array()
                .unwrap()
                .iter()
                .zip(want["r"].as_array().unwrap())
                .enumerate()
            {
                close(
                    &format!("{b} {key} r[{k}]"),
                    a.as_f64().unwrap(),
                    w.as_f64().unwrap(),
                    1e-9,
                );
            }
            let gr = &g["granger"];
            close(
                &format!("{b} {key} F"),
                gr["f"].as_f64().unwrap(),
                want["f"].as_f64().unwrap(),
                1e-8,
            );
            close(
                &format!("{b} {key} p"),
                gr["p_value"].as_f64().unwrap(),
                want["p"].as_f64().unwrap(),
                1e-6,
            );
            let st = &g["lead_test"];
            close(
                &format!("{b} {key} Šidák p"),
                st["p_lead_sidak"].as_f64().unwrap(),
                want["p_lead"].as_f64().unwrap(),
                1e-9,
            );
            let k = want["best_lag"].as_u64().unwrap() as usize;
            close(
                &format!("{b} {key} z"),
                st["z"].as_f64().unwrap(),
                want["z_lead"][k].as_f64().unwrap(),
                1e-9,
            );
            let lt = &g["lag_test"];
            assert_eq!(lt["own_lags"], want["own"], "{b} {key}");
            close(
                &format!("{b} {key} lag b"),
                lt["estimate"].as_f64().unwrap(),
                want["lag_estimate"].as_f64().unwrap(),
                1e-8,
            );
            close(
                &format!("{b} {key} lag p"),
                lt["p_value"].as_f64().unwrap(),
                want["lag_p"].as_f64().unwrap(),
                1e-6,
            );
        }
        let lead = &got[0];
        assert_eq!(lead["sli"], "cache_hit_2", "{b}");
        assert_eq!(lead["status"], "leads", "{b}");
        assert_eq!(lead["lead_seconds"], 600, "{b}");
        // No shuffle of the candidate's blocks comes near: the smallest p, Holm over three.
        assert_eq!(lead["lead_test"]["p_lead"], 1.0 / 2000.0, "{b}: {lead}");
        assert_eq!(lead["p_holm"], 3.0 / 2000.0, "{b}: {lead}");
        assert!(lead["r"].as_f64().unwrap() > 0.4, "{b}: {lead}");
        assert_eq!(got[1]["status"], "not_significant", "{b}");
        assert_eq!(got[2]["status"], "not_significant", "{b}");
        let summary = body["summary"].as_str().unwrap();
        assert!(
            summary.starts_with(
                "cache_hit_2 good_share leads checkout_success_1 good_share by 10 min (r = 0.59"
            ),
            "{b}: {summary}"
        );

        // Bad queries name the parameter.
        for (query, field) in [
            ("max_lag=soon", "max_lag"),
            ("max_lag=30s", "max_lag"),
            ("max_lag=3h", "max_lag"),
            ("max_lag=1h&alpha=0.9", "alpha"),
            (
                "max_lag=1h&candidates=cache_hit_2,cache_hit_2",
                "candidates",
            ),
            ("max_lag=1h&candidates=nope", "candidates"),
            ("max_lag=1h&candidates=checkout_success_1", "candidates"),
            ("max_lag=1h&statistic=p95", "statistic"),
            (
                "max_lag=1h&from=2030-01-02T00:00:00Z&to=2030-01-01T00:00:00Z",
                "to",
            ),
        ] {
            let r = app
                .get(&format!(
                    "/api/v1/metrics/{target}/leading-indicators?{query}"
                ))
                .await;
            let p = assert_problem(&r, 422, b);
            assert_eq!(error_fields(&p), vec![field.to_owned()], "{b} {query}: {p}");
        }
        let r = app
            .get("/api/v1/metrics/nope/leading-indicators?max_lag=1h")
            .await;
        assert_problem(&r, 404, b);
        // A candidate without enough data in common is reported, not dropped.
        let r = app
            .get(&format!(
                "/api/v1/metrics/{target}/leading-indicators?max_lag=1h&from={}&to={}",
                at(start),
                at(start + 60 * 150)
            ))
            .await;
        assert_eq!(r.status, 200, "{b}: {}", r.text);
        for g in r.body["indicators"].as_array().unwrap() {
            assert_eq!(g["status"], "insufficient_data", "{b}: {g}");
            assert!(
                g["summary"]
                    .as_str()
                    .unwrap()
                    .contains("149 window-to-window changes"),
                "{b}: {g}"
            );
        }
    }
}

/// A latency histogram window of 400 requests, log-normal (σ = 0.6) with this p95.
fn latency_window(r: &mut impl rand::Rng, start: i64, p95: f64, bounds: &[f64]) -> Value {
    use rand_distr::{Distribution, LogNormal};
    let median = p95 / (1.645f64 * 0.6).exp();
    let d = LogNormal::new(median.ln(), 0.6).unwrap();
    let mut counts = vec![0u64; bounds.len()];
    let n = 400;
    for _ in 0..n {
        let v: f64 = d.sample(r);
        if let Some(i) = bounds.iter().position(|b| v <= *b) {
            counts[i] += 1;
        }
    }
    let mut cum = 0;
    let mut buckets: Vec<Value> = bounds
        .iter()
        .zip(&counts)
        .map(|(b, c)| {
            cum += c;
            json!({"le": b, "count": cum})
        })
        .collect();
    buckets.push(json!({"le": "+Inf", "count": n}));
    json!({"start": at(start), "seconds": 60, "count": n, "buckets": buckets})
}

/// An early warning on a published latency SLO: the cache hit share leads checkout latency's
/// p95 by 10 minutes (heavy-tailed requests, a saturating response to cold caches); attached
/// to the SLO it warns below a level predicted from history, is replayed on it, and is
/// exported as a Prometheus alert on the cache's counters that promtool fires when the share
/// drops and keeps silent while it holds.
#[actix_web::test]
async fn an_early_warning_is_attached_replayed_and_exported() {
    use rand::SeedableRng;
    use rand_distr::{Distribution, Normal};
    for app in apps().await {
        let b = app.backend;
        let id = app.analysed("exp", vec![0.0, 100.0, 200.0]).await;
        let rec = app
            .post_json(
                &format!("/api/v1/analyses/{id}/recommendations"),
                &json!({"max_relative_kpi_loss": 0.1}),
            )
            .await;
        assert_eq!(rec.status, 201, "{b}: {}", rec.text);
        let d = app
            .post_json(
                &format!("/api/v1/recommendations/{}/decision", rec.body["id"]),
                &json!({"decision": "approve"}),
            )
            .await;
        let sid = d.body["slo_id"].as_i64().unwrap();
        let slo = app.get(&format!("/api/v1/slos/{sid}")).await.body;
        let threshold = slo["slo"]["threshold"].as_f64().unwrap();
        assert_eq!(slo["slo"]["percentile"], 95, "{b}: {slo}");
        for (key, parents) in [
            ("cache_hit_3", vec!["checkout-latency"]),
            ("ledger sync", vec![]),
        ] {
            let key = key.replace(' ', "_");
            sli(&app, &key, "upstream", &parents).await;
        }
        // One day of minutes: the hit share wanders around 0.9; p95 is 0.8 T when the cache is
        // warm and rises by 4 T per unit of hit share below 0.9, 10 minutes later.
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(7);
        let shock = Normal::new(0.0, 0.01).unwrap();
        let n = 1440usize;
        let mut u = 0.0f64;
        let hit: Vec<f64> = (0..n)
            .map(|_| {
                u = 0.95 * u + shock.sample(&mut rng);
                (0.9f64 + u).clamp(0.0, 1.0)
            })
            .collect();
        let unrelated: Vec<f64> = (0..n)
            .map(|_| (0.97f64 + shock.sample(&mut rng)).clamp(0.0, 1.0))
            .collect();
        let bounds: Vec<f64> = (1..=160).map(|i| f64::from(i) * 12.5).collect();
        let start = common::BASE;
        let windows: Vec<Value> = (0..n)
            .map(|t| {
                let past = if t >= 10 { hit[t - 10] } else { 0.9 };
                let p95 = threshold * (0.8 + 4.0 * (0.9f64 - past).max(0.0));
                latency_window(&mut rng, start + 60 * t as i64, p95, &bounds)
            })
            .collect();
        let r = app
            .post_json("/api/v1/metrics/checkout-latency/series", &json!(windows))
            .await;
        assert_eq!(r.status, 200, "{b}: {}", r.text);
        shares(&app, "cache_hit_3", start, &hit, None).await;
        shares(&app, "ledger_sync", start, &unrelated, Some(700)).await;

        let r = app
            .get("/api/v1/metrics/checkout-latency/leading-indicators?max_lag=30m&candidates=cache_hit_3,ledger_sync")
            .await;
        assert_eq!(r.status, 200, "{b}: {}", r.text);
        eprintln!("{b}: {}", r.body["summary"]);
        let top = &r.body["indicators"][0];
        assert_eq!(top["sli"], "cache_hit_3", "{b}");
        assert_eq!(top["status"], "leads", "{b}: {top}");
        assert_eq!(top["lead_seconds"], 600, "{b}: {top}");
        assert!(
            top["r"].as_f64().unwrap() < 0.0,
            "{b}: a colder cache slows checkout: {top}"
        );
        // The ledger series has a gap at minute 700: the longer side of it is used.
        assert_eq!(r.body["indicators"][1]["changes"], 738, "{b}");

        let path = format!("/api/v1/slos/{sid}/early-warnings/cache_hit_3");
        let put = |body: Value| {
            let app = &app;
            let path = path.clone();
            async move {
                app.call("PUT", &path, Some(common::ADMIN_TOKEN), Some(&body))
                    .await
            }
        };
        let r = put(json!({"max_lag": "30m"})).await;
        assert_eq!(r.status, 201, "{b}: {}", r.text);
        let w = r.body.clone();
        eprintln!("{b}: {}", w["statement"]);
        assert_eq!(w["when"], "below", "{b}: {w}");
        assert_eq!(w["level_source"], "learned", "{b}");
        assert_eq!(w["lead_seconds"], 600, "{b}");
        assert_eq!(w["target_statistic"], "p95", "{b}");
        let level = w["level"].as_f64().unwrap();
        // p95 reaches T where the hit share 10 minutes earlier is 0.85; the SLO judges 5-minute
        // windows, so both are read per 5 minutes, and per-window noise moves the best level a
        // little.
        assert_eq!(w["window_seconds"], 300, "{b}: {w}");
        assert!((0.83..0.88).contains(&level), "{b}: {w}");
        let held_out = &w["held_out"];
        assert!(held_out["bad_windows"].as_u64().unwrap() >= 10, "{b}: {w}");
        let (rc, pr) = (
            held_out["recall"].as_f64().unwrap(),
            held_out["precision"].as_f64().unwrap(),
        );
        assert!(2.0 * rc * pr / (rc + pr) > 0.6, "{b}: held-out F1: {w}");
        // Warnings at random would be followed by a bad window far less often.
        let chance = held_out["chance_precision"].as_f64().unwrap();
        assert!(pr > 1.5 * chance, "{b}: {w}");
        // Again: replaced, still one warning.
        let r = put(json!({"max_lag": "30m", "level": 0.86})).await;
        assert_eq!(r.status, 200, "{b}: {}", r.text);
        assert_eq!(r.body["level_source"], "given");
        let list = app.get(&format!("/api/v1/slos/{sid}/early-warnings")).await;
        assert_eq!(list.body.as_array().unwrap().len(), 1, "{b}: {}", list.text);

        // The exported alert: promtool fires it when the share falls to 0.8 and not at 0.95.
        let rules = app
            .get(&format!("/api/v1/slos/{sid}/prometheus-rules"))
            .await;
        assert!(
            rules.text.contains("alert: SloproofEarlyWarning")
                && rules.text.contains("cache_hit_3_good_total[5m]"),
            "{b}: {}",
            rules.text
        );
        if let Some(promtool) = common::promtool::promtool() {
            // Counters every 15 s: 100 events per scrape; 95 good for 20 minutes, then 80. The
            // 5-minute share is 0.89 at minute 22 and 0.83 at minute 24.
            let (mut good, mut total) = (Vec::new(), Vec::new());
            let (mut g, mut t) = (0u64, 0u64);
            for i in 0..160 {
                g += if i < 80 { 95 } else { 80 };
                t += 100;
                good.push(g.to_string());
                total.push(t.to_string());
            }
            let name = slo["name"].as_str().unwrap();
            let test = format!(
                "rule_files:\n  - rules.yaml\nevaluation_interval: 15s\ntests:\n  - interval: 15s\n    input_series:\n      - series: 'cache_hit_3_good_total'\n        values: '{}'\n      - series: 'cache_hit_3_events_total'\n        values: '{}'\n    alert_rule_test:\n      - eval_time: 19m\n        alertname: SloproofEarlyWarning\n        exp_alerts: []\n      - eval_time: 22m\n        alertname: SloproofEarlyWarning\n        exp_alerts: []\n      - eval_time: 24m\n        alertname: SloproofEarlyWarning\n        exp_alerts:\n          - exp_labels:\n              severity: warning\n              sloproof_slo: {name}\n              sloproof_indicator: cache_hit_3\n            exp_annotations:\n              summary: \"{}\"\n              lead: 10 min\n",
                good.join(" "),
                total.join(" "),
                r.body["statement"].as_str().unwrap().replace('"', "\\\"")
            );
            common::promtool::run_promtool(b, &promtool, &rules.text, &test);
        }

        // Bad input names the field; nothing is stored.
        for (body, field) in [
            (json!({"max_lag": "soon"}), "max_lag"),
            (json!({"max_lag": "30m", "alpha": 2}), "alpha"),
            (json!({"max_lag": "30m", "colour": 1}), "colour"),
        ] {
            let r = put(body).await;
            let p = assert_problem(&r, 422, b);
            assert_eq!(error_fields(&p), vec![field.to_owned()], "{b}: {p}");
        }
        let other = |key: &str| {
            let app = &app;
            let path = format!("/api/v1/slos/{sid}/early-warnings/{key}");
            async move {
                app.call(
                    "PUT",
                    &path,
                    Some(common::ADMIN_TOKEN),
                    Some(&json!({"max_lag": "30m"})),
                )
                .await
            }
        };
        let p = assert_problem(&other("ledger_sync").await, 422, b);
        assert_eq!(error_fields(&p), vec!["indicator".to_owned()], "{b}: {p}");
        let p = assert_problem(&other("checkout-latency").await, 422, b);
        assert_eq!(error_fields(&p), vec!["indicator".to_owned()], "{b}: {p}");
        assert_problem(&other("nope").await, 404, b);
        let list = app.get(&format!("/api/v1/slos/{sid}/early-warnings")).await;
        assert_eq!(list.body.as_array().unwrap().len(), 1, "{b}");
        // Removing it removes the alert.
        let del = app
            .call("DELETE", &path, Some(common::ADMIN_TOKEN), None)
            .await;
        assert_eq!(del.status, 204, "{b}: {}", del.text);
        let del = app
            .call("DELETE", &path, Some(common::ADMIN_TOKEN), None)
            .await;
        assert_problem(&del, 404, b);
        let rules = app
            .get(&format!("/api/v1/slos/{sid}/prometheus-rules"))
            .await;
        assert!(!rules.text.contains("SloproofEarlyWarning"), "{b}");
    }
}
