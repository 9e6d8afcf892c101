//! Metric catalog, experiments, health, routing and error shapes, on every backend.

// A failed unwrap is the test failing; reference tables make long test functions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

mod common;

use common::{apps, assert_problem, error_fields};
use serde_json::json;

fn metric(key: &str) -> serde_json::Value {
    json!({"key": key, "name": "Conversion", "kind": "kpi", "value_type": "binary", "unit": "",
           "direction": "higher_is_better", "layer": "business"})
}

#[actix_web::test]
async fn health_probes_answer() {
    for app in apps().await {
        assert_eq!(
            app.get("/healthz").await.body["status"],
            "ok",
            "{}",
            app.backend
        );
        assert_eq!(
            app.get("/readyz").await.body["status"],
            "ok",
            "{}",
            app.backend
        );
    }
}

#[actix_web::test]
async fn unknown_route_and_wrong_method_are_problems() {
    for app in apps().await {
        assert_problem(&app.get("/api/v1/nothing-here").await, 404, app.backend);
        let r = app.post_json("/healthz", &json!({})).await;
        assert_problem(&r, 405, app.backend);
        assert_eq!(r.allow.as_deref(), Some("GET"), "{}", app.backend);
        let r = app.call("PUT", "/api/v1/metrics", None, None).await;
        assert_eq!(r.status, 401, "{}: authentication comes first", app.backend);
        let r = app
            .call("PUT", "/api/v1/metrics", Some(common::ADMIN_TOKEN), None)
            .await;
        assert_problem(&r, 405, app.backend);
        assert_eq!(r.allow.as_deref(), Some("POST, GET"), "{}", app.backend);
    }
}

#[actix_web::test]
async fn metric_round_trip_with_hierarchy() {
    for app in apps().await {
        let r = app
            .post_json("/api/v1/metrics", &metric("conversion"))
            .await;
        assert_eq!(r.status, 201, "{}: {r:?}", app.backend);
        assert_eq!(r.location.as_deref(), Some("/api/v1/metrics/conversion"));
        assert_eq!(r.body["kind"], "kpi");
        let sli = json!({"key": "latency", "name": "Latency", "kind": "sli", "value_type": "continuous",
                         "unit": "ms", "direction": "lower_is_better", "layer": "journey",
                         "parents": ["conversion"], "description": "p95 of checkout"});
        let r = app.post_json("/api/v1/metrics", &sli).await;
        assert_eq!(r.status, 201, "{}: {r:?}", app.backend);
        let got = app.get("/api/v1/metrics/latency").await;
        assert_eq!(got.status, 200);
        assert_eq!(got.body["parents"], json!(["conversion"]));
        assert_eq!(got.body["description"], "p95 of checkout");
        assert_eq!(got.body["direction"], "lower_is_better");
        assert_eq!(got.body["layer"], "journey");
        assert_problem(&app.get("/api/v1/metrics/missing").await, 404, app.backend);
    }
}

#[actix_web::test]
async fn metric_rejections_name_the_field() {
    for app in apps().await {
        let b = app.backend;
        assert_eq!(
            app.post_json("/api/v1/metrics", &metric("conversion"))
                .await
                .status,
            201
        );
        // duplicate key
        assert_problem(
            &app.post_json("/api/v1/metrics", &metric("conversion"))
                .await,
            409,
            b,
        );
        // bad slug
        let body = assert_problem(
            &app.post_json("/api/v1/metrics", &metric("Bad Key")).await,
            422,
            b,
        );
        assert_eq!(error_fields(&body), vec!["key"]);
        // unknown parent and self-parent
        let mut m = metric("child");
        m["parents"] = json!(["nope", "child"]);
        let body = assert_problem(&app.post_json("/api/v1/metrics", &m).await, 422, b);
        assert_eq!(
            error_fields(&body),
            vec!["parents[1]"],
            "self-parent is caught before the lookup"
        );
        m["parents"] = json!(["nope"]);
        let body = assert_problem(&app.post_json("/api/v1/metrics", &m).await, 422, b);
        assert_eq!(error_fields(&body), vec!["parents[0]"]);
        // Too many parents: one issue for the list, before any per-parent check (a 1 MiB body
        // holds ~100,000 parent keys, and duplicate checks were pairwise).
        let many: Vec<String> = (0..100_000).map(|i| format!("p{i}")).collect();
        m["parents"] = json!(many);
        let body = assert_problem(&app.post_json("/api/v1/metrics", &m).await, 422, b);
        assert_eq!(error_fields(&body), vec!["parents"]);
        // unknown field, wrong enum value, missing field
        let mut m = metric("x");
        m["colour"] = json!("red");
        let body = assert_problem(&app.post_json("/api/v1/metrics", &m).await, 422, b);
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("colour"),
            "{body}"
        );
        let mut m = metric("x");
        m["kind"] = json!("okr");
        let body = assert_problem(&app.post_json("/api/v1/metrics", &m).await, 422, b);
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("okr"),
            "{body}"
        );
        let mut m = metric("x");
        m.as_object_mut().unwrap().remove("name");
        let body = assert_problem(&app.post_json("/api/v1/metrics", &m).await, 422, b);
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("name"),
            "{body}"
        );
        // malformed JSON and wrong content type
        let r = app
            .post_raw(
                "/api/v1/metrics",
                "application/json",
                b"{\"key\": ".to_vec(),
            )
            .await;
        assert_problem(&r, 400, b);
        let r = app
            .post_raw(
                "/api/v1/metrics",
                "text/plain",
                metric("y").to_string().into_bytes(),
            )
            .await;
        assert_problem(&r, 415, b);
        // over the 1 MiB JSON limit
        let mut m = metric("big");
        m["description"] = json!("x".repeat(2 << 20));
        assert_problem(&app.post_json("/api/v1/metrics", &m).await, 413, b);
        // nothing of the rejected requests was stored
        let list = app.get("/api/v1/metrics").await;
        assert_eq!(
            list.body["items"].as_array().unwrap().len(),
            1,
            "{b}: {list:?}"
        );
    }
}

#[actix_web::test]
async fn lists_paginate_in_stable_order() {
    for app in apps().await {
        for k in ["m1", "m2", "m3", "m4", "m5"] {
            assert_eq!(
                app.post_json("/api/v1/metrics", &metric(k)).await.status,
                201
            );
        }
        let mut keys = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let path = match &cursor {
                Some(c) => format!("/api/v1/metrics?limit=2&cursor={c}"),
                None => "/api/v1/metrics?limit=2".to_owned(),
            };
            let r = app.get(&path).await;
            assert_eq!(r.status, 200, "{r:?}");
            pages += 1;
            keys.extend(
                r.body["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m["key"].as_str().unwrap().to_owned()),
            );
            match r.body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        assert_eq!(keys, ["m1", "m2", "m3", "m4", "m5"], "{}", app.backend);
        assert_eq!(pages, 3);
        let b = app.backend;
        let body = assert_problem(&app.get("/api/v1/metrics?limit=0").await, 422, b);
        assert_eq!(error_fields(&body), vec!["limit"]);
        assert_problem(&app.get("/api/v1/metrics?limit=501").await, 422, b);
        let body = assert_problem(&app.get("/api/v1/metrics?cursor=zzz").await, 422, b);
        assert_eq!(error_fields(&body), vec!["cursor"]);
        // A query parameter that does not parse is a 400 naming it.
        for (query, field) in [("limit=abc", "limit"), ("colour=red", "colour")] {
            let p = assert_problem(&app.get(&format!("/api/v1/metrics?{query}")).await, 400, b);
            assert_eq!(error_fields(&p), vec![field], "{b}: {query}: {p}");
        }
    }
}

fn experiment(key: &str) -> serde_json::Value {
    json!({
        "key": key, "name": "Latency injection", "hypothesis": "Slower checkout converts less",
        "journey": "search → product → cart → checkout",
        "sli": "latency", "kpis": ["conversion", "revenue"], "guardrails": ["orders"],
        "variants": [
            {"key": "control", "weight": 0.5, "control": true, "dose": 0},
            {"key": "plus-100", "weight": 0.25, "dose": 100},
            {"key": "plus-200", "weight": 0.25, "dose": 200}
        ]
    })
}

#[actix_web::test]
async fn experiment_round_trip() {
    for app in apps().await {
        app.seed_experiment("seeded").await;
        let r = app
            .post_json("/api/v1/experiments", &experiment("exp-a"))
            .await;
        assert_eq!(r.status, 201, "{}: {r:?}", app.backend);
        assert_eq!(r.location.as_deref(), Some("/api/v1/experiments/exp-a"));
        let got = app.get("/api/v1/experiments/exp-a").await;
        assert_eq!(got.body["sli"], "latency");
        assert_eq!(got.body["extra_slis"], json!([]));
        assert_eq!(got.body["kpis"], json!(["conversion", "revenue"]));
        assert_eq!(got.body["guardrails"], json!(["orders"]));
        assert_eq!(got.body["journey"], "search → product → cart → checkout");
        assert_eq!(
            got.body["variants"][1],
            json!({"key": "plus-100", "weight": 0.25, "control": false, "dose": 100.0,
                   "doses": {"latency": 100.0}})
        );
        assert_eq!(
            got.body["data"],
            json!({"assigned_units": 0, "observations": 0})
        );
        let list = app.get("/api/v1/experiments").await;
        let keys: Vec<_> = list.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["key"].clone())
            .collect();
        assert_eq!(keys, vec![json!("seeded"), json!("exp-a")]);
        assert_problem(
            &app.post_json("/api/v1/experiments", &experiment("exp-a"))
                .await,
            409,
            app.backend,
        );
        assert_problem(&app.get("/api/v1/experiments/none").await, 404, app.backend);
    }
}

#[actix_web::test]
async fn experiment_rejections_name_the_field() {
    for app in apps().await {
        let b = app.backend;
        app.seed_experiment("seeded").await;
        let mut e = experiment("bad");
        e["variants"][0]["weight"] = json!(0.6);
        let body = assert_problem(&app.post_json("/api/v1/experiments", &e).await, 422, b);
        assert_eq!(error_fields(&body), vec!["variants"]);
        assert!(body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("sum to 1"));

        let mut e = experiment("bad");
        e["variants"][1]["control"] = json!(true);
        e["variants"][1]["dose"] = json!(0);
        let body = assert_problem(&app.post_json("/api/v1/experiments", &e).await, 422, b);
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("exactly one"),
            "{body}"
        );

        let mut e = experiment("bad");
        e["variants"][2]["weight"] = json!(-0.25);
        e["variants"][1]["weight"] = json!(0.75);
        let body = assert_problem(&app.post_json("/api/v1/experiments", &e).await, 422, b);
        assert_eq!(error_fields(&body), vec!["variants[2].weight"]);

        let mut e = experiment("bad");
        e["sli"] = json!("conversion");
        e["kpis"] = json!(["revenue", "missing"]);
        let body = assert_problem(&app.post_json("/api/v1/experiments", &e).await, 422, b);
        assert_eq!(error_fields(&body), vec!["sli", "kpis[1]"]);

        let mut e = experiment("bad");
        e["kpis"] = json!(["latency"]);
        let body = assert_problem(&app.post_json("/api/v1/experiments", &e).await, 422, b);
        assert_eq!(
            error_fields(&body),
            vec!["kpis[0]"],
            "the SLI cannot be a KPI too"
        );

        let mut e = experiment("bad");
        e["variants"][0]["dose"] = json!(50);
        let body = assert_problem(&app.post_json("/api/v1/experiments", &e).await, 422, b);
        assert_eq!(error_fields(&body), vec!["variants[0].dose"]);

        let list = app.get("/api/v1/experiments").await;
        assert_eq!(
            list.body["items"].as_array().unwrap().len(),
            1,
            "{b}: rejected experiments were not stored"
        );
    }
}
