//! Access control: every operation with no token, an invalid token, each wrong role and each
//! right role. Run on each backend.

// A failed unwrap is the test failing; reference tables make long test functions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

mod common;

use common::{apps, assert_problem, TestApp, ADMIN_TOKEN};
use serde_json::{json, Value};
use sloproof::simulate::{generate, SimConfig};

const ROLES: [&str; 4] = ["viewer", "analyst", "reviewer", "admin"];
const READ: &[&str] = &["viewer", "analyst", "reviewer", "admin"];
const WRITE: &[&str] = &["analyst", "admin"];
const REVIEW: &[&str] = &["reviewer", "admin"];
const ADMIN: &[&str] = &["admin"];

/// Builds a value for a role.
type PerRole<T> = Box<dyn Fn(&str) -> T>;

struct Op {
    method: &'static str,
    path: String,
    allowed: &'static [&'static str],
    success: u16,
    /// Body for a given role (distinct per role where a success consumes something).
    body: PerRole<Option<Value>>,
    /// Path per role, for operations that consume a resource.
    path_for: Option<PerRole<String>>,
}

fn op(
    method: &'static str,
    path: impl Into<String>,
    allowed: &'static [&'static str],
    success: u16,
) -> Op {
    Op {
        method,
        path: path.into(),
        allowed,
        success,
        body: Box::new(|_| None),
        path_for: None,
    }
}

async fn token(app: &TestApp, role: &str) -> String {
    let r = app
        .post_json(
            "/api/v1/tokens",
            &json!({"name": format!("{role}-user"), "role": role}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    r.body["token"].as_str().unwrap().to_owned()
}

#[actix_web::test]
async fn every_operation_checks_the_token_and_role() {
    for app in apps().await {
        let b = app.backend;
        let sim = generate(&SimConfig {
            key: "exp".into(),
            units: 40_000,
            effect_per_100ms: -0.2,
            seed: 21,
            ..SimConfig::default()
        })
        .unwrap();
        app.load_simulated(&sim).await;
        let a = app
            .post_json(
                "/api/v1/experiments/exp/analyses",
                &json!({"bootstrap": {"resamples": 100, "seed": 1}}),
            )
            .await;
        let aid = a.body["id"].as_i64().unwrap();
        let mut recs = Vec::new();
        for _ in 0..3 {
            let r = app
                .post_json(
                    &format!("/api/v1/analyses/{aid}/recommendations"),
                    &json!({"max_relative_kpi_loss": 0.01}),
                )
                .await;
            assert_eq!(r.status, 201, "{b}: {}", r.text);
            recs.push(r.body["id"].as_i64().unwrap());
        }
        let published = app
            .post_json(
                &format!("/api/v1/recommendations/{}/decision", recs[0]),
                &json!({"decision": "approve"}),
            )
            .await;
        let sid = published.body["slo_id"].as_i64().unwrap();
        let throwaway = app
            .post_json(
                "/api/v1/tokens",
                &json!({"name": "throwaway", "role": "viewer"}),
            )
            .await
            .body["id"]
            .as_i64()
            .unwrap();
        let r = app
            .post_json(
                "/api/v1/calendars",
                &json!({"key": "retail", "name": "Retail", "periods": []}),
            )
            .await;
        assert_eq!(r.status, 201, "{b}: {}", r.text);
        let mut tokens = std::collections::HashMap::new();
        for role in ["viewer", "analyst", "reviewer"] {
            tokens.insert(role, token(&app, role).await);
        }
        tokens.insert("admin", ADMIN_TOKEN.to_owned());

        let (rev_a, rev_b) = (recs[1], recs[2]);
        let ops = vec![
            op("GET", "/api/v1/metrics", READ, 200),
            Op {
                body: Box::new(|role| {
                    Some(
                        json!({"key": format!("m-{role}"), "name": "M", "kind": "kpi", "value_type": "binary", "unit": "", "direction": "higher_is_better", "layer": "business"}),
                    )
                }),
                ..op("POST", "/api/v1/metrics", WRITE, 201)
            },
            op("GET", "/api/v1/metrics/checkout-latency", READ, 200),
            Op {
                body: Box::new(|_| Some(json!([]))),
                ..op("POST", "/api/v1/metrics/checkout-latency/series", WRITE, 200)
            },
            op("GET", "/api/v1/metrics/checkout-latency/series", READ, 200),
            // The metric names no Prometheus source: admitted roles get that 422.
            Op {
                body: Box::new(|_| Some(json!({"from": "2026-11-28T00:00:00Z"}))),
                ..op(
                    "POST",
                    "/api/v1/metrics/checkout-latency/series/sync",
                    WRITE,
                    422,
                )
            },
            op("GET", "/api/v1/experiments", READ, 200),
            Op {
                body: Box::new(|role| {
                    Some(
                        json!({"key": format!("e-{role}"), "name": "E", "hypothesis": "H", "sli": "checkout-latency", "kpis": ["checkout-conversion"],
                    "variants": [{"key": "c", "weight": 0.5, "control": true, "dose": 0}, {"key": "t", "weight": 0.5, "dose": 100}]}),
                    )
                }),
                ..op("POST", "/api/v1/experiments", WRITE, 201)
            },
            op("GET", "/api/v1/experiments/exp", READ, 200),
            Op {
                body: Box::new(|_| Some(json!([]))),
                ..op("POST", "/api/v1/experiments/exp/assignments", WRITE, 200)
            },
            Op {
                body: Box::new(|_| Some(json!([]))),
                ..op("POST", "/api/v1/experiments/exp/observations", WRITE, 200)
            },
            Op {
                body: Box::new(|_| Some(json!({"bootstrap": {"resamples": 100, "seed": 2}}))),
                ..op("POST", "/api/v1/experiments/exp/analyses", WRITE, 201)
            },
            op("GET", "/api/v1/experiments/exp/analyses", READ, 200),
            op("GET", format!("/api/v1/analyses/{aid}"), READ, 200),
            Op {
                body: Box::new(|_| Some(json!({"max_relative_kpi_loss": 0.02}))),
                ..op(
                    "POST",
                    format!("/api/v1/analyses/{aid}/recommendations"),
                    WRITE,
                    201,
                )
            },
            op("GET", "/api/v1/recommendations", READ, 200),
            op("GET", format!("/api/v1/recommendations/{rev_a}"), READ, 200),
            Op {
                body: Box::new(|_| Some(json!({"decision": "reject", "comment": "checked"}))),
                path_for: Some(Box::new(move |role| {
                    format!(
                        "/api/v1/recommendations/{}/decision",
                        if role == "admin" { rev_b } else { rev_a }
                    )
                })),
                ..op(
                    "POST",
                    format!("/api/v1/recommendations/{rev_a}/decision"),
                    REVIEW,
                    200,
                )
            },
            op(
                "GET",
                format!("/api/v1/recommendations/{rev_a}/history"),
                READ,
                200,
            ),
            Op {
                body: Box::new(|_| {
                    Some(json!({"from": "2026-11-01T00:00:00Z", "to": "2026-11-29T00:00:00Z"}))
                }),
                ..op(
                    "POST",
                    format!("/api/v1/recommendations/{rev_a}/replay"),
                    READ,
                    200,
                )
            },
            op("GET", format!("/api/v1/slos/{sid}/status"), READ, 200),
            op(
                "GET",
                format!("/api/v1/slos/{sid}/status/series?from=2026-11-28T00:00:00Z&to=2026-11-29T00:00:00Z"),
                READ,
                200,
            ),
            op("GET", "/api/v1/slos", READ, 200),
            op("GET", format!("/api/v1/slos/{sid}"), READ, 200),
            op("GET", format!("/api/v1/slos/{sid}/openslo"), READ, 200),
            op(
                "GET",
                format!("/api/v1/slos/{sid}/prometheus-rules"),
                READ,
                200,
            ),
            Op {
                body: Box::new(|role| {
                    Some(json!({"key": format!("cal-{role}"), "name": "Retail", "periods": []}))
                }),
                ..op("POST", "/api/v1/calendars", WRITE, 201)
            },
            op("GET", "/api/v1/calendars", READ, 200),
            op("GET", "/api/v1/calendars/retail", READ, 200),
            Op {
                body: Box::new(|_| Some(json!({"calendar": "retail"}))),
                ..op("PUT", format!("/api/v1/slos/{sid}/calendar"), WRITE, 200)
            },
            // Any role asks the deploy gate (recorded with its name).
            Op {
                body: Box::new(move |_| {
                    Some(json!({"slos": [sid], "change": {"description": "d", "priority": "critical"}}))
                }),
                ..op("POST", "/api/v1/deploy-checks", READ, 201)
            },
            op("GET", "/api/v1/deploy-checks", READ, 200),
            // A journey of one step is refused after the role check: admitted roles get 422.
            Op {
                body: Box::new(move |role| {
                    Some(json!({"key": format!("j-{role}"), "name": "J", "steps": [sid]}))
                }),
                ..op("POST", "/api/v1/journeys", WRITE, 422)
            },
            op("GET", "/api/v1/journeys", READ, 200),
            // No KPI series: every role may trace and gets that 422.
            Op {
                body: Box::new(|_| {
                    Some(json!({"from": "2026-11-02T00:00:00Z", "to": "2026-11-02T01:00:00Z",
                                "baseline_from": "2026-11-01T00:00:00Z", "baseline_to": "2026-11-01T01:00:00Z"}))
                }),
                ..op("POST", "/api/v1/metrics/checkout-conversion/traces", READ, 422)
            },
            op("GET", "/api/v1/journeys/nope", READ, 404),
            op("GET", "/api/v1/journeys/nope/status", READ, 404),
            op("GET", "/api/v1/journeys/nope/prometheus-rules", READ, 404),
            op("GET", "/api/v1/journeys/nope/openslo", READ, 404),
            Op {
                body: Box::new(|_| Some(json!({"name": "ci", "role": "viewer"}))),
                ..op("POST", "/api/v1/tokens", ADMIN, 201)
            },
            op("GET", "/api/v1/tokens", ADMIN, 200),
            op("DELETE", format!("/api/v1/tokens/{throwaway}"), ADMIN, 200),
        ];
        for o in &ops {
            let what = format!("{b}: {} {}", o.method, o.path);
            let body = (o.body)("anonymous");
            let r = app.call(o.method, &o.path, None, body.as_ref()).await;
            assert_problem(&r, 401, &what);
            assert_eq!(
                r.www_authenticate.as_deref(),
                Some("Bearer realm=\"sloproof\""),
                "{what}"
            );
            let r = app
                .call(
                    o.method,
                    &o.path,
                    Some("sp_not_a_real_token"),
                    body.as_ref(),
                )
                .await;
            assert_problem(&r, 401, &what);
            for role in ROLES {
                let path = o.path_for.as_ref().map_or(o.path.clone(), |f| f(role));
                let r = app
                    .call(
                        o.method,
                        &path,
                        Some(&tokens[role]),
                        (o.body)(role).as_ref(),
                    )
                    .await;
                if o.allowed.contains(&role) {
                    assert_eq!(r.status, o.success, "{what} as {role}: {}", r.text);
                } else {
                    let p = assert_problem(&r, 403, &format!("{what} as {role}"));
                    assert!(p["detail"].as_str().unwrap().contains(role), "{p}");
                    // The role is refused before the body is read: a body that breaks the
                    // schema is still a 403, not a 400/422 that would reveal the schema.
                    if o.method == "POST" {
                        let bad = json!("not the request body");
                        let r = app
                            .call(o.method, &path, Some(&tokens[role]), Some(&bad))
                            .await;
                        assert_problem(&r, 403, &format!("{what} as {role}, bad body"));
                    }
                }
            }
        }
        // Public endpoints need no token.
        for path in ["/healthz", "/readyz", "/api/v1/openapi.json", "/docs/"] {
            assert_eq!(
                app.call("GET", path, None, None).await.status,
                200,
                "{b}: {path}"
            );
        }
        // The reviewer's decision is recorded under the token's name.
        let hist = app
            .get(&format!("/api/v1/recommendations/{rev_a}/history"))
            .await;
        assert_eq!(
            hist.body["items"][1]["actor"], "reviewer-user",
            "{}",
            hist.text
        );
        // A revoked token stops working; tokens are listed without their secrets.
        let list = app.get("/api/v1/tokens").await;
        let analyst = list.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "analyst-user")
            .unwrap()
            .clone();
        assert!(analyst.get("token").is_none() && !list.text.contains(&tokens["analyst"]));
        let id = analyst["id"].as_i64().unwrap();
        assert_eq!(
            app.call(
                "DELETE",
                &format!("/api/v1/tokens/{id}"),
                Some(ADMIN_TOKEN),
                None
            )
            .await
            .status,
            200
        );
        assert_problem(
            &app.call("GET", "/api/v1/metrics", Some(&tokens["analyst"]), None)
                .await,
            401,
            b,
        );
    }
}

#[test]
fn the_openapi_document_declares_the_bearer_scheme_on_protected_operations() {
    let doc: Value = serde_json::from_str(&sloproof::api::openapi::document_json()).unwrap();
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let protected = path.starts_with("/api/v1/") && path != "/api/v1/openapi.json";
            assert_eq!(op.get("security").is_some(), protected, "{method} {path}");
            if protected {
                assert!(
                    op["responses"]["401"].is_object() && op["responses"]["403"].is_object(),
                    "{method} {path}"
                );
                assert!(
                    op["description"]
                        .as_str()
                        .unwrap()
                        .contains("Requires a bearer token with role"),
                    "{method} {path}"
                );
            }
        }
    }
}

/// The id of the first token in a `GET /api/v1/tokens` page that matches `pick`.
fn token_id(list: &Value, pick: impl Fn(&Value) -> bool) -> i64 {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| pick(t))
        .unwrap()["id"]
        .as_i64()
        .unwrap()
}

/// `DELETE /api/v1/tokens/{id}` with `bearer`.
async fn revoke(app: &TestApp, id: i64, bearer: &str) -> common::Resp {
    app.call(
        "DELETE",
        &format!("/api/v1/tokens/{id}"),
        Some(bearer),
        None,
    )
    .await
}

#[actix_web::test]
async fn changing_the_bootstrap_token_rotates_it() {
    use sloproof::access::service::bootstrap;
    for app in apps().await {
        let b = app.backend;
        let db = sloproof::store::Db::open(&app.db_url, 2).unwrap();
        let rotated = "sp_test_rotated_admin_token_0123456789";
        let status = |token: &'static str| {
            let app = &app;
            async move {
                app.call("GET", "/api/v1/tokens", Some(token), None)
                    .await
                    .status
            }
        };
        assert_eq!(status(common::ADMIN_TOKEN).await, 200, "{b}");
        bootstrap(&db, Some(rotated)).unwrap();
        assert_eq!(
            status(common::ADMIN_TOKEN).await,
            401,
            "{b}: the earlier value is revoked"
        );
        assert_eq!(status(rotated).await, 200, "{b}");
        // Starting again with the same value changes nothing.
        bootstrap(&db, Some(rotated)).unwrap();
        assert_eq!(status(rotated).await, 200, "{b}");
        // A bootstrap token revoked through the API stays revoked across starts (another
        // admin token exists first: the last live admin token cannot be revoked).
        let second = app
            .call(
                "POST",
                "/api/v1/tokens",
                Some(rotated),
                Some(&json!({"name": "second-admin", "role": "admin"})),
            )
            .await;
        assert_eq!(second.status, 201, "{b}: {second:?}");
        let list = app.call("GET", "/api/v1/tokens", Some(rotated), None).await;
        let id = token_id(&list.body, |t| {
            t["name"] == "bootstrap-admin" && t["revoked_at"].is_null()
        });
        let r = revoke(&app, id, rotated).await;
        assert_eq!(r.status, 200, "{b}: {r:?}");
        bootstrap(&db, Some(rotated)).unwrap();
        assert_eq!(status(rotated).await, 401, "{b}");
    }
}

/// A second start that cannot bind its address (the running server holds it) fails before it
/// touches the admin token: the running server's token stays valid.
#[actix_web::test]
async fn a_start_that_cannot_bind_does_not_rotate_the_admin_token() {
    for app in apps().await {
        let b = app.backend;
        let settings = sloproof::config::Settings {
            database_url: app.db_url.clone(),
            bind: app.base.trim_start_matches("http://").to_owned(),
            log_level: "warn".into(),
            log_format: sloproof::config::LogFormat::Text,
            ingest_body_limit: 1 << 20,
            json_body_limit: 1 << 20,
            max_concurrent_analyses: 1,
            max_analysis_cost: 1,
            max_analysis_units: 1,
            async_analysis_cost: 1,
            max_queued_jobs: 1,
            write_rate: 0,
            write_burst: 1,
            db_pool_size: 1,
            series_cache_mb: 0,
            admin_token: Some("sp_test_would_rotate_0123456789".into()),
            workers: Some(1),
            evidence_max_age_days: 90,
            sync_interval: 0,
        };
        let r = sloproof::server::serve(settings).await;
        assert!(
            r.as_ref()
                .is_err_and(|e| e.to_string().contains("cannot bind")),
            "{b}: {r:?}"
        );
        let list = app
            .call("GET", "/api/v1/tokens", Some(common::ADMIN_TOKEN), None)
            .await;
        assert_eq!(
            list.status, 200,
            "{b}: the running server's token still works"
        );
    }
}

/// Token names are the actors of the audit trail: unique among live tokens, the service's own
/// names reserved; the last live admin token cannot be revoked (everyone would be locked out).
#[actix_web::test]
async fn token_names_are_unique_and_the_last_admin_stays() {
    for app in apps().await {
        let b = app.backend;
        let create = |name: &'static str, role: &'static str| {
            let app = &app;
            async move {
                app.post_json("/api/v1/tokens", &json!({"name": name, "role": role}))
                    .await
            }
        };
        assert_eq!(create("pm-bob", "reviewer").await.status, 201, "{b}");
        assert_problem(&create("pm-bob", "viewer").await, 409, b);
        let p = assert_problem(&create("bootstrap-admin", "admin").await, 422, b);
        assert_eq!(p["errors"][0]["field"], "name", "{p}");
        // The bootstrap admin is the only live admin: refused.
        let list = app.get("/api/v1/tokens").await;
        let admin = token_id(&list.body, |t| {
            t["role"] == "admin" && t["revoked_at"].is_null()
        });
        assert_problem(&revoke(&app, admin, ADMIN_TOKEN).await, 409, b);
        // A revoked name can be reused.
        let bob = token_id(&list.body, |t| t["name"] == "pm-bob");
        assert_eq!(revoke(&app, bob, ADMIN_TOKEN).await.status, 200, "{b}");
        assert_eq!(create("pm-bob", "viewer").await.status, 201, "{b}");
    }
}

/// Each token's writes are rate limited (GCRA: a burst, then a steady rate): beyond it a 429
/// problem with `Retry-After`, before the body is read; reads and other tokens are unaffected.
#[actix_web::test]
async fn writes_beyond_a_tokens_rate_are_429_with_retry_after() {
    let limits = sloproof::api::Limits {
        write_rate_per_second: 1,
        write_burst: 3,
        ..sloproof::api::Limits::default()
    };
    for app in common::apps_with(limits).await {
        let b = app.backend;
        let metric = |i: usize| {
            json!({"key": format!("m_{i}"), "name": "M", "kind": "kpi", "value_type": "binary",
                   "unit": "", "direction": "higher_is_better", "layer": "business"})
        };
        // The admin's burst of three: a token and two metrics; the fourth write is refused.
        let other = token(&app, "analyst").await;
        for i in 0..2 {
            let r = app.post_json("/api/v1/metrics", &metric(i)).await;
            assert_eq!(r.status, 201, "{b}: {}", r.text);
        }
        let r = app.post_json("/api/v1/metrics", &metric(3)).await;
        let p = common::assert_problem(&r, 429, b);
        assert!(
            p["detail"]
                .as_str()
                .unwrap()
                .contains("1 writes per second"),
            "{b}: {p}"
        );
        let wait: u64 = r.retry_after.as_deref().unwrap().parse().unwrap();
        assert!((1..=2).contains(&wait), "{b}: {wait}");
        assert_eq!(app.get("/api/v1/metrics").await.status, 200, "{b}");
        // Nothing was stored by the refused request.
        assert_eq!(app.get("/api/v1/metrics/m_3").await.status, 404, "{b}");
        // Another token has its own budget.
        let r = app
            .call("POST", "/api/v1/metrics", Some(&other), Some(&metric(4)))
            .await;
        assert_eq!(r.status, 201, "{b}: {}", r.text);
    }
}

/// Token names are the actor of review decisions: invisible and control characters, and the
/// reserved names in another case, are refused, so one name cannot pass for another.
#[actix_web::test]
async fn token_names_cannot_impersonate() {
    for app in apps().await {
        let b = app.backend;
        for name in [
            "\u{200b}bootstrap-admin",
            "Bootstrap-Admin",
            "pm\u{0000}alice",
            "al\nice",
            "pm\u{202e}ecila",
        ] {
            let r = app
                .post_json("/api/v1/tokens", &json!({"name": name, "role": "reviewer"}))
                .await;
            let p = common::assert_problem(&r, 422, b);
            assert_eq!(p["errors"][0]["field"], "name", "{b} {name:?}: {p}");
        }
    }
}
