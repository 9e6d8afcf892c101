//! Leading indicators through the API, on one day of 1-minute windows from
//! `tests/fixtures/stats/lead_lag.json`: the checkout success share follows the cache hit share
//! 10 minutes later; a ledger sync share is unrelated. The service finds the 10-minute lead
//! with statsmodels' numbers (pre-whitened ccf, Granger F and p, Holm), ranks the unrelated SLI
//! as not significant, and refuses bad queries naming the parameter.

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
        assert_eq!(got.len(), 2, "{b}: {body}");
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
            close(
                &format!("{b} {key} Holm"),
                g["p_holm"].as_f64().unwrap(),
                want["p_holm"].as_f64().unwrap(),
                1e-6,
            );
        }
        let lead = &got[0];
        assert_eq!(lead["sli"], "cache_hit_2", "{b}");
        assert_eq!(lead["status"], "leads", "{b}");
        assert_eq!(lead["lead_seconds"], 600, "{b}");
        assert!(lead["r"].as_f64().unwrap() > 0.4, "{b}: {lead}");
        assert_eq!(got[1]["status"], "not_significant", "{b}");
        let summary = body["summary"].as_str().unwrap();
        assert!(
            summary.starts_with(
                "cache_hit_2 good_share leads checkout_success_1 good_share by 10 min (r = 0.55"
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
