//! Tracing a KPI drop to its SLIs: a simulation degrades checkout latency's p95 by 180 ms in one
//! hour and lowers conversion by exactly what the published SLO's validated slope assigns to
//! that; the trace finds checkout latency with a 100% share (its interval from the slope's),
//! lists an SLI two levels down without evidence as unquantified, and refuses bad ranges.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

mod common;

use common::{apps, at, error_fields, BASE};
use serde_json::{json, Value};

const BOUNDS: [f64; 8] = [100.0, 200.0, 300.0, 400.0, 500.0, 580.0, 700.0, 1000.0];

/// A minute of 1,000 requests whose p95 is exactly `p95` (a bucket bound: 950 at or below it).
fn window(start: i64, p95: f64) -> Value {
    let mut buckets: Vec<Value> = BOUNDS
        .iter()
        .map(|b| {
            let c = if *b < p95 {
                (900.0 * b / p95).round()
            } else if *b == p95 {
                950.0
            } else {
                990.0
            };
            json!({"le": b, "count": c})
        })
        .collect();
    buckets.push(json!({"le": "+Inf", "count": 1000}));
    json!({"start": at(start), "seconds": 60, "count": 1000, "buckets": buckets})
}

#[actix_web::test]
async fn a_kpi_drop_is_traced_to_the_sli_that_caused_it() {
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
        let slope = rec.body["evidence"]["slope"].clone();
        let d = app
            .post_json(
                &format!("/api/v1/recommendations/{}/decision", rec.body["id"]),
                &json!({"decision": "approve"}),
            )
            .await;
        let sid = d.body["slo_id"].as_i64().unwrap();
        // An SLI two levels under the KPI, without evidence or data.
        let r = app
            .post_json(
                "/api/v1/metrics",
                &json!({"key": "cache_miss_rate_2", "name": "Cache miss rate", "kind": "sli",
                        "value_type": "continuous", "unit": "", "direction": "lower_is_better",
                        "layer": "platform", "parents": ["checkout-latency"]}),
            )
            .await;
        assert_eq!(r.status, 201, "{b}: {}", r.text);
        // Baseline hour: p95 400 ms; an hour later: 580 ms, and conversion lower by the slope's
        // estimate × 180.
        let est = slope["estimate"].as_f64().unwrap();
        let hour = 3600;
        let sli: Vec<Value> = (0..60)
            .map(|k| window(BASE + 60 * k, 400.0))
            .chain((0..60).map(|k| window(BASE + 2 * hour + 60 * k, 580.0)))
            .collect();
        let r = app
            .post_json("/api/v1/metrics/checkout-latency/series", &json!(sli))
            .await;
        assert_eq!(r.status, 200, "{b}: {}", r.text);
        let kpi: Vec<Value> = (0..60)
            .map(|k| (BASE + 60 * k, 0.05))
            .chain((0..60).map(|k| (BASE + 2 * hour + 60 * k, 0.05 + est * 180.0)))
            .map(|(t, v)| json!({"start": at(t), "seconds": 60, "value": v, "units": 500}))
            .collect();
        let r = app
            .post_json("/api/v1/metrics/checkout-conversion/series", &json!(kpi))
            .await;
        assert_eq!(r.status, 200, "{b}: {}", r.text);

        let ask = json!({"from": at(BASE + 2 * hour), "to": at(BASE + 3 * hour),
                         "baseline_from": at(BASE), "baseline_to": at(BASE + hour)});
        let r = app
            .post_json("/api/v1/metrics/checkout-conversion/traces", &ask)
            .await;
        assert_eq!(r.status, 200, "{b}: {}", r.text);
        let t = &r.body;
        eprintln!("{b}: {}", t["summary"]);
        let change = t["change"].as_f64().unwrap();
        assert!((change - est * 180.0).abs() < 1e-9, "{b}: {t}");
        let top = &t["slis"][0];
        assert_eq!(top["sli"], "checkout-latency");
        assert_eq!(top["slo_id"], sid);
        assert_eq!(top["statistic"], "p95");
        assert!(
            (top["shift"].as_f64().unwrap() - 180.0).abs() < 1e-9,
            "{b}: {top}"
        );
        assert!(
            (top["share"].as_f64().unwrap() - 1.0).abs() < 1e-6,
            "{b}: {top}"
        );
        let ci = top["share_ci"].as_array().unwrap();
        let (lo, hi) = (ci[0].as_f64().unwrap(), ci[1].as_f64().unwrap());
        // The KPI's and the SLI's windows are constant within each range: no noise in the
        // change or the shift, so the interval is the slope's relative error: 1 ± z·SE/|b|.
        assert!(t["change_std_error"].as_f64().unwrap() < 1e-15, "{b}: {t}");
        assert_eq!(top["shift_std_error"], 0.0, "{b}: {top}");
        let rel = 1.959963984540054 * slope["std_error"].as_f64().unwrap() / est.abs();
        assert!(
            (lo - (1.0 - rel)).abs() < 1e-6 && (hi - (1.0 + rel)).abs() < 1e-6,
            "{b}: {top}"
        );
        assert_eq!(
            t["unquantified"],
            json!([{"sli": "cache_miss_rate_2", "reason": "no production windows of the SLI in both ranges"}]),
            "{b}"
        );
        let summary = t["summary"].as_str().unwrap();
        assert!(
            summary.starts_with("Checkout conversion fell")
                && summary.contains("checkout latency p95 rose 180 ms")
                && summary.contains("(100% of the change"),
            "{b}: {summary}"
        );

        for (change, field) in [
            (json!({"to": at(BASE + 2 * hour)}), "to"),
            (
                json!({"baseline_to": at(BASE + 100 * 86_400)}),
                "baseline_to",
            ),
            (
                json!({"from": at(BASE + 50 * hour), "to": at(BASE + 51 * hour)}),
                "from",
            ),
        ] {
            let mut body = ask.clone();
            for (k, v) in change.as_object().unwrap() {
                body[k] = v.clone();
            }
            let r = app
                .post_json("/api/v1/metrics/checkout-conversion/traces", &body)
                .await;
            assert_eq!(r.status, 422, "{b}: {body}: {}", r.text);
            assert_eq!(error_fields(&r.body), vec![field], "{b}: {}", r.text);
        }
        let r = app
            .post_json("/api/v1/metrics/checkout-latency/traces", &ask)
            .await;
        assert_eq!(error_fields(&r.body), vec!["key"], "{b}: {}", r.text);
        let r = app.post_json("/api/v1/metrics/nope/traces", &ask).await;
        assert_eq!(r.status, 404, "{b}");
    }
}
