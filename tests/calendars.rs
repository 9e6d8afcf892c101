//! Business calendars and the deploy gate: a Black Friday budget multiplier changes the alert
//! state exactly when its period starts and ends (and promtool agrees on the exported rules),
//! a value override reprices the budget spent in its period, bad calendars are refused by
//! field, and the gate decides by its table, records who asked, and drives the CLI's exit code.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

mod common;

use common::promtool::{format_num, promtool_agrees};
use common::{apps, at, error_fields, TestApp, ADMIN_TOKEN, BASE};
use serde_json::{json, Value};

/// A one-minute histogram window of 1,000 requests, `slow` of them above `t`.
fn window(start: i64, t: f64, slow: u64) -> Value {
    let fast = 1000 - slow;
    json!({"start": at(start), "seconds": 60, "count": 1000, "buckets": [
        {"le": t / 2.0, "count": fast}, {"le": t, "count": fast}, {"le": 2.0 * t, "count": 1000},
        {"le": "+Inf", "count": 1000}]})
}

async fn push(app: &TestApp, rows: &[Value]) {
    let r = app
        .post_json("/api/v1/metrics/checkout-latency/series", &json!(rows))
        .await;
    assert_eq!(r.status, 200, "{}: {}", app.backend, r.text);
}

/// Publishes "checkout latency < T for 99% of requests over 28 days", priced at 50 per
/// conversion; returns the SLO.
async fn published(app: &TestApp) -> Value {
    let id = app.analysed("exp", vec![0.0, 100.0, 200.0]).await;
    let rec = app
        .post_json(
            &format!("/api/v1/analyses/{id}/recommendations"),
            &json!({"max_relative_kpi_loss": 0.1, "evaluation": "requests", "target": 0.99,
                    "value_per_kpi_unit": 50.0, "units_per_day": 100000.0, "currency": "USD"}),
        )
        .await;
    assert_eq!(rec.status, 201, "{}", rec.text);
    let dec = app
        .post_json(
            &format!("/api/v1/recommendations/{}/decision", rec.body["id"]),
            &json!({"decision": "approve"}),
        )
        .await;
    let sid = dec.body["slo_id"].as_i64().unwrap();
    app.get(&format!("/api/v1/slos/{sid}")).await.body
}

fn multiplier(name: &str, start: &str, end: &str, m: f64) -> Value {
    json!({"name": name, "start": start, "end": end,
           "policy": {"type": "budget_multiplier", "multiplier": m}})
}

/// A steady 4% of slow requests burns the budget at 4×: a ticket (above 2.8) but no page
/// (below 5.6) — until Black Friday's multiplier 0.5 halves the factors (page above 2.8), from
/// the minute it starts to the minute it ends. Prometheus, evaluating the exported rules on the
/// same counters, agrees at every checkpoint (the calendar repeats the period on promtool's
/// clock, which starts in 1970). A value override doubles the price of what was spent in it.
#[actix_web::test]
async fn black_friday_changes_the_alerts_exactly_in_its_period() {
    for app in apps().await {
        let b = app.backend;
        let slo = published(&app).await;
        let sid = slo["id"].as_i64().unwrap();
        let t = slo["slo"]["threshold"].as_f64().unwrap();
        let minutes = 360;
        let rows: Vec<Value> = (0..minutes)
            .map(|k| window(BASE + 60 * k as i64, t, 40))
            .collect();
        push(&app, &rows).await;
        let (start, end) = (BASE + 180 * 60, BASE + 300 * 60);
        let cal = json!({"key": "retail_2026", "name": "Retail 2026", "periods": [
            multiplier("Black Friday", &at(start), &at(end), 0.5),
            {"name": "Black Friday value", "start": at(start), "end": at(end),
             "policy": {"type": "value_per_kpi_unit", "value": 100.0}},
            multiplier("Black Friday (promtool clock)", "1970-01-01T03:00:00Z", "1970-01-01T05:00:00Z", 0.5),
        ]});
        let r = app.post_json("/api/v1/calendars", &cal).await;
        assert_eq!(r.status, 201, "{b}: {}", r.text);
        assert_eq!(r.location.as_deref(), Some("/api/v1/calendars/retail_2026"));
        let status_at = |minute: i64| {
            let app = &app;
            async move {
                let s = app
                    .get(&format!(
                        "/api/v1/slos/{sid}/status?at={}",
                        at(BASE + 60 * minute)
                    ))
                    .await;
                assert_eq!(s.status, 200, "{}", s.text);
                s.body
            }
        };
        // Without the calendar: a ticket, never a page.
        let before = status_at(240).await;
        assert_eq!(before["alert"], "ticket", "{b}: {before}");
        assert!(before["calendar"].is_null());
        let unlinked_cost = before["cost"]["value_lost"].as_f64().unwrap();
        let r = app
            .call(
                "PUT",
                &format!("/api/v1/slos/{sid}/calendar"),
                Some(ADMIN_TOKEN),
                Some(&json!({"calendar": "retail_2026"})),
            )
            .await;
        assert_eq!(r.status, 200, "{b}: {}", r.text);
        assert_eq!(r.body["key"], "retail_2026");
        assert_eq!(
            app.get(&format!("/api/v1/slos/{sid}")).await.body["calendar"],
            "retail_2026"
        );
        let mut checks = Vec::new();
        for minute in [120, 179, 180, 240, 299, 300, 330] {
            let s = status_at(minute).await;
            let rules = s["alert_rules"].as_array().unwrap();
            let has = |sev: &str| rules.iter().any(|r| r["severity"] == sev);
            checks.push((minute as usize, has("page"), has("ticket")));
            let inside = (180..300).contains(&minute);
            let m = s["calendar"]["budget_multiplier"].as_f64().unwrap();
            assert_eq!(m, if inside { 0.5 } else { 1.0 }, "{b}: {minute}");
            if inside {
                assert!(
                    s["notes"].to_string().contains("Calendar 'retail_2026'"),
                    "{s}"
                );
                assert_eq!(
                    s["calendar"]["periods"],
                    json!(["Black Friday", "Black Friday value"])
                );
            }
        }
        assert_eq!(
            checks,
            vec![
                (120, false, true),
                (179, false, true),
                (180, true, true),
                (240, true, true),
                (299, true, true),
                (300, false, true),
                (330, false, true)
            ],
            "{b}"
        );
        // 120 of the 330 minutes spent at 100 instead of 50: (210·50 + 120·100) / (330·50).
        let linked_cost = status_at(330).await["cost"]["value_lost"].as_f64().unwrap();
        let unlinked_330 = {
            app.call(
                "PUT",
                &format!("/api/v1/slos/{sid}/calendar"),
                Some(ADMIN_TOKEN),
                Some(&json!({"calendar": null})),
            )
            .await;
            let c = status_at(330).await["cost"]["value_lost"].as_f64().unwrap();
            app.call(
                "PUT",
                &format!("/api/v1/slos/{sid}/calendar"),
                Some(ADMIN_TOKEN),
                Some(&json!({"calendar": "retail_2026"})),
            )
            .await;
            c
        };
        assert!(unlinked_cost > 0.0);
        let ratio = linked_cost / unlinked_330;
        assert!((ratio - 22_500.0 / 16_500.0).abs() < 1e-9, "{b}: {ratio}");

        // The exported rules read the multiplier from a recording rule of time().
        let rules = app
            .get(&format!("/api/v1/slos/{sid}/prometheus-rules"))
            .await
            .text;
        assert!(rules.contains("sloproof:calendar_budget_multiplier"), "{b}");
        let (mut bucket, mut count) = (vec![0u64], vec![0u64]);
        for k in 0..minutes {
            bucket.push(bucket[k] + 960);
            count.push(count[k] + 1000);
        }
        let series = [
            (
                format!(
                    "checkout_latency_seconds_bucket{{le=\"{}\"}}",
                    format_num(t / 1000.0)
                ),
                bucket,
            ),
            ("checkout_latency_seconds_count".to_owned(), count),
        ];
        let name = slo["name"].as_str().unwrap();
        let statement = slo["slo"]["statement"].as_str().unwrap();
        promtool_agrees(b, &rules, (&series, 1), &checks, (name, statement));
    }
}

/// Bad calendars are refused naming the field, a taken key is a 409, and nothing is written.
#[actix_web::test]
async fn bad_calendars_are_refused_by_field() {
    for app in apps().await {
        let b = app.backend;
        let ok = |periods: Value| json!({"key": "c1", "name": "C", "periods": periods});
        let cases = [
            (
                ok(json!([multiplier(
                    "a",
                    "2026-11-27T00:00:00Z",
                    "2026-11-26T00:00:00Z",
                    0.5
                )])),
                "periods[0].end",
            ),
            (
                ok(json!([multiplier(
                    "a",
                    "2026-11-26T00:00:00Z",
                    "2026-11-27T00:00:00Z",
                    0.0
                )])),
                "periods[0].policy.multiplier",
            ),
            (
                ok(json!([multiplier(
                    "a",
                    "2026-11-26T00:00:00Z",
                    "2026-11-27T00:00:00Z",
                    -2.0
                )])),
                "periods[0].policy.multiplier",
            ),
            (
                ok(json!([
                    multiplier("a", "2026-11-26T00:00:00Z", "2026-11-28T00:00:00Z", 0.5),
                    multiplier("b", "2026-11-27T00:00:00Z", "2026-11-29T00:00:00Z", 2.0),
                ])),
                "periods[1]",
            ),
            (
                ok(
                    json!([{"name": "v", "start": "2026-11-26T00:00:00Z", "end": "2026-11-27T00:00:00Z",
                        "policy": {"type": "value_per_kpi_unit", "value": 0}}]),
                ),
                "periods[0].policy.value",
            ),
            (
                ok(
                    json!([{"name": "f", "start": "2026-11-26T00:00:00Z", "end": "2026-11-27T00:00:00Z",
                        "policy": {"type": "holiday"}}]),
                ),
                "periods[0].policy",
            ),
            (
                json!({"key": "Black Friday", "name": "C", "periods": []}),
                "key",
            ),
            (json!({"key": "c1", "name": " ", "periods": []}), "name"),
        ];
        for (body, field) in cases {
            let r = app.post_json("/api/v1/calendars", &body).await;
            assert_eq!(r.status, 422, "{b}: {body}: {}", r.text);
            let fields = error_fields(&r.body);
            assert!(
                fields.iter().any(|f| f.starts_with(field)),
                "{b}: {body}: {fields:?}"
            );
        }
        assert_eq!(
            app.get("/api/v1/calendars").await.body["items"],
            json!([]),
            "{b}"
        );
        let r = app.post_json("/api/v1/calendars", &ok(json!([]))).await;
        assert_eq!(r.status, 201, "{b}: {}", r.text);
        let r = app.post_json("/api/v1/calendars", &ok(json!([]))).await;
        assert_eq!(r.status, 409, "{b}: {}", r.text);
        assert_eq!(app.get("/api/v1/calendars/nope").await.status, 404);
        let r = app
            .call(
                "PUT",
                "/api/v1/slos/999/calendar",
                Some(ADMIN_TOKEN),
                Some(&json!({"calendar": "c1"})),
            )
            .await;
        assert_eq!(r.status, 404, "{b}: {}", r.text);
    }
}

async fn gate(app: &TestApp, token: &str, body: &Value) -> common::Resp {
    app.call("POST", "/api/v1/deploy-checks", Some(token), Some(body))
        .await
}

fn change(sid: i64, priority: &str, expected: Option<f64>) -> Value {
    let mut c = json!({"description": "recommendation model v42", "priority": priority});
    if let Some(e) = expected {
        c["expected_budget_burn"] = json!(e);
    }
    json!({"slos": [sid], "change": c})
}

/// The gate on a live SLO, decision by decision: within budget, an expected burn above what
/// remains or across the floor, a freeze, a page-level burn; critical changes always ship;
/// every role may ask and each check is listed with who asked; bad checks are refused by field
/// and not recorded; `sloproof gate` exits 0, 1, 2 or 3.
#[actix_web::test]
async fn the_gate_decides_by_its_table_and_records_who_asked() {
    for app in apps().await {
        let b = app.backend;
        let slo = published(&app).await;
        let sid = slo["id"].as_i64().unwrap();
        let t = slo["slo"]["threshold"].as_f64().unwrap();
        let now = chrono::Utc::now().timestamp() / 60 * 60;
        let good: Vec<Value> = (61..=300).map(|k| window(now - 60 * k, t, 0)).collect();
        push(&app, &good).await;
        let decide = |body: Value| {
            let app = &app;
            async move {
                let r = gate(app, ADMIN_TOKEN, &body).await;
                assert_eq!(r.status, 201, "{body}: {}", r.text);
                let codes: Vec<String> = r.body["reasons"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["code"].as_str().unwrap().to_owned())
                    .collect();
                (
                    r.body["decision"].as_str().unwrap().to_owned(),
                    codes,
                    r.body,
                )
            }
        };
        let (d, codes, body) = decide(change(sid, "low", Some(0.2))).await;
        assert_eq!(
            (d.as_str(), codes),
            ("allow", vec!["within_budget".to_owned()]),
            "{b}"
        );
        let s = &body["slos"][0];
        assert_eq!(s["remaining"], 1.0, "{b}: {s}");
        assert_eq!(s["alert"], "none");
        // 0.2 of the remaining budget (all of it) priced at the budget's value at risk.
        let var = slo["error_budget"]["value_at_risk"].as_f64().unwrap();
        assert!((s["value_at_risk_of_change"].as_f64().unwrap() - 0.2 * var).abs() < 1e-6 * var);
        assert_eq!(s["currency"], "USD");
        let (d, codes, _) = decide(change(sid, "normal", Some(1.5))).await;
        assert_eq!(
            (d.as_str(), codes),
            (
                "needs_approval",
                vec!["expected_burn_exceeds_remaining".to_owned()]
            )
        );
        let (d, codes, _) = decide(change(sid, "low", Some(0.6))).await;
        assert_eq!(
            (d.as_str(), codes),
            (
                "needs_approval",
                vec!["expected_burn_crosses_floor".to_owned()]
            )
        );

        // A freeze in force denies all but critical changes.
        let day = 86_400;
        let freeze = json!({"key": "freeze_1", "name": "Code freeze", "periods": [
            {"name": "Year-end freeze", "start": at(now - day), "end": at(now + day), "policy": {"type": "freeze"}}]});
        assert_eq!(
            app.post_json("/api/v1/calendars", &freeze).await.status,
            201
        );
        let link = |key: Value| {
            let app = &app;
            async move {
                let r = app
                    .call(
                        "PUT",
                        &format!("/api/v1/slos/{sid}/calendar"),
                        Some(ADMIN_TOKEN),
                        Some(&json!({"calendar": key})),
                    )
                    .await;
                assert_eq!(r.status, 200, "{}", r.text);
            }
        };
        link(json!("freeze_1")).await;
        let (d, codes, body) = decide(change(sid, "high", None)).await;
        assert_eq!(
            (d.as_str(), codes),
            ("deny", vec!["freeze".to_owned()]),
            "{b}"
        );
        assert_eq!(
            body["slos"][0]["calendar_period"],
            json!(["Year-end freeze"])
        );
        let (d, codes, _) = decide(change(sid, "critical", None)).await;
        assert_eq!(
            (d.as_str(), codes),
            ("allow", vec!["critical_change".to_owned()])
        );
        // An empty body does not unlink by accident.
        let r = app
            .call(
                "PUT",
                &format!("/api/v1/slos/{sid}/calendar"),
                Some(ADMIN_TOKEN),
                Some(&json!({})),
            )
            .await;
        assert_eq!(error_fields(&r.body), vec!["calendar"], "{b}: {}", r.text);
        // A successor SLO follows its predecessor's calendar; the predecessor cannot be relinked.
        let aid = slo["evidence"]["analysis_id"].as_i64().unwrap();
        let rec = app
            .post_json(
                &format!("/api/v1/analyses/{aid}/recommendations"),
                &json!({"max_relative_kpi_loss": 0.1, "evaluation": "requests", "target": 0.99}),
            )
            .await;
        let next = app
            .post_json(
                &format!("/api/v1/recommendations/{}/decision", rec.body["id"]),
                &json!({"decision": "approve"}),
            )
            .await
            .body["slo_id"]
            .as_i64()
            .unwrap();
        let successor = app.get(&format!("/api/v1/slos/{next}")).await.body;
        assert_eq!(successor["calendar"], "freeze_1", "{b}: {successor}");
        let r = app
            .call(
                "PUT",
                &format!("/api/v1/slos/{sid}/calendar"),
                Some(ADMIN_TOKEN),
                Some(&json!({"calendar": null})),
            )
            .await;
        assert_eq!(r.status, 409, "{b}: {}", r.text);
        let sid = next;
        let (d, codes, _) = decide(change(sid, "high", None)).await;
        assert_eq!(
            (d.as_str(), codes),
            ("deny", vec!["freeze".to_owned()]),
            "{b}"
        );
        let r = app
            .call(
                "PUT",
                &format!("/api/v1/slos/{sid}/calendar"),
                Some(ADMIN_TOKEN),
                Some(&json!({"calendar": null})),
            )
            .await;
        assert_eq!(r.status, 200, "{b}: {}", r.text);
        let (d, _, _) = decide(change(sid, "high", None)).await;
        assert_eq!(d, "allow", "{b}");

        // The CLI, for pipelines: allow 0, needs approval 2, bad request 3 (deny below).
        let cli = |args: Vec<String>| {
            let base = app.base.clone();
            async move {
                actix_web::web::block(move || {
                    std::process::Command::new(env!("CARGO_BIN_EXE_sloproof"))
                        .args(["gate", "--api", &base, "--token", ADMIN_TOKEN])
                        .args(&args)
                        .output()
                        .unwrap()
                })
                .await
                .unwrap()
            }
        };
        let args = |slo: i64, priority: &str, extra: &[&str]| {
            let mut a = vec![
                "--slo".to_owned(),
                slo.to_string(),
                "--priority".into(),
                priority.into(),
                "--description".into(),
                "v42".into(),
            ];
            a.extend(extra.iter().map(|s| s.to_string()));
            a
        };
        let out = cli(args(sid, "low", &[])).await;
        assert_eq!(out.status.code(), Some(0), "{b}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("allow"),
            "{out:?}"
        );
        let out = cli(args(sid, "normal", &["--expected-budget-burn", "2"])).await;
        assert_eq!(out.status.code(), Some(2), "{b}: {out:?}");
        let out = cli(args(999, "low", &[])).await;
        assert_eq!(out.status.code(), Some(3), "{b}: {out:?}");
        // Usage errors and non-finite numbers are "could not check" (3), never "needs approval".
        let out = cli(args(sid, "low", &["--expected-budget-burn", "NaN"])).await;
        assert_eq!(out.status.code(), Some(3), "{b}: {out:?}");
        let out = cli(vec![
            "--priority".into(),
            "low".into(),
            "--description".into(),
            "x".into(),
        ])
        .await;
        assert_eq!(out.status.code(), Some(3), "{b}: {out:?}");

        // An hour of slow requests: page-level burn, and the budget is overspent.
        let slow: Vec<Value> = (1..=60).map(|k| window(now - 60 * k, t, 1000)).collect();
        push(&app, &slow).await;
        let (d, codes, _) = decide(change(sid, "high", None)).await;
        assert_eq!(
            (d.as_str(), codes),
            (
                "deny",
                vec!["page_burn".to_owned(), "budget_below_floor".to_owned()]
            ),
            "{b}"
        );
        let out = cli(args(sid, "high", &[])).await;
        assert_eq!(out.status.code(), Some(1), "{b}: {out:?}");
        let (d, _, _) = decide(change(sid, "critical", None)).await;
        assert_eq!(d, "allow");

        // Any role may ask; the check records its name.
        let viewer = app
            .post_json(
                "/api/v1/tokens",
                &json!({"name": "ci-pipeline", "role": "viewer"}),
            )
            .await
            .body["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let r = gate(&app, &viewer, &change(sid, "critical", None)).await;
        assert_eq!(r.status, 201, "{b}: {}", r.text);
        assert_eq!(r.body["actor"], "ci-pipeline");
        let listed = app.get("/api/v1/deploy-checks?limit=500").await;
        let items = listed.body["items"].as_array().unwrap();
        let recorded = items.len();
        assert_eq!(items.last().unwrap()["actor"], "ci-pipeline", "{b}");
        assert_eq!(items.last().unwrap()["id"], r.body["id"]);

        // Bad checks name the field and are not recorded.
        let mut no_desc = change(sid, "low", None);
        no_desc["change"]["description"] = json!("  ");
        for (body, field) in [
            (
                json!({"slos": [], "change": {"description": "d", "priority": "low"}}),
                "slos",
            ),
            (
                json!({"slos": [sid, sid], "change": {"description": "d", "priority": "low"}}),
                "slos[1]",
            ),
            (change(999, "low", None), "slos[0]"),
            (
                change(sid, "low", Some(-1.0)),
                "change.expected_budget_burn",
            ),
            (change(sid, "urgent", None), "change.priority"),
            (no_desc, "change.description"),
        ] {
            let r = gate(&app, ADMIN_TOKEN, &body).await;
            assert_eq!(r.status, 422, "{b}: {body}: {}", r.text);
            assert_eq!(error_fields(&r.body), vec![field], "{b}: {}", r.text);
        }
        let again = app.get("/api/v1/deploy-checks?limit=500").await;
        assert_eq!(
            again.body["items"].as_array().unwrap().len(),
            recorded,
            "{b}"
        );
    }
}
