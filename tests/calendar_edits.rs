//! Calendars and their SLOs after creation: a PUT replaces a calendar's periods and the SLOs
//! that follow it apply the new ones at once (here Black Friday moves a day: the page at the
//! old time becomes a ticket); bad replacements are refused by field with nothing changed; a
//! calendar cannot be deleted while an SLO follows it, and can once it is unlinked.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

mod common;

use common::{apps, at, error_fields, TestApp, ADMIN_TOKEN, BASE};
use serde_json::{json, Value};

/// A one-minute histogram window of 1,000 requests, 40 of them above `t` (4%: a ticket-level
/// burn of a 99% SLO, a page when a period's multiplier is 0.5).
fn window(start: i64, t: f64) -> Value {
    json!({"start": at(start), "seconds": 60, "count": 1000, "buckets": [
        {"le": t, "count": 960}, {"le": 2.0 * t, "count": 1000}, {"le": "+Inf", "count": 1000}]})
}

async fn published(app: &TestApp) -> Value {
    let id = app.analysed("exp", vec![0.0, 100.0, 200.0]).await;
    let rec = app
        .post_json(
            &format!("/api/v1/analyses/{id}/recommendations"),
            &json!({"max_relative_kpi_loss": 0.1, "evaluation": "requests", "target": 0.99}),
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

fn calendar(key: &str, start: i64, end: i64) -> Value {
    json!({"key": key, "name": "Retail", "periods": [
        {"name": "Black Friday", "start": at(start), "end": at(end),
         "policy": {"type": "budget_multiplier", "multiplier": 0.5}}]})
}

#[actix_web::test]
async fn a_calendar_is_replaced_in_place_and_deleted_once_unlinked() {
    for app in apps().await {
        let b = app.backend;
        let slo = published(&app).await;
        let sid = slo["id"].as_i64().unwrap();
        let t = slo["slo"]["threshold"].as_f64().unwrap();
        let rows: Vec<Value> = (0..360).map(|k| window(BASE + 60 * k, t)).collect();
        let r = app
            .post_json("/api/v1/metrics/checkout-latency/series", &json!(rows))
            .await;
        assert_eq!(r.status, 200, "{b}: {}", r.text);
        let hour = 3600;
        let r = app
            .post_json(
                "/api/v1/calendars",
                &calendar("retail", BASE + 3 * hour, BASE + 5 * hour),
            )
            .await;
        assert_eq!(r.status, 201, "{b}: {}", r.text);
        assert!(r.body["updated_at"].is_null(), "{b}: {}", r.text);
        let link = app
            .call(
                "PUT",
                &format!("/api/v1/slos/{sid}/calendar"),
                Some(ADMIN_TOKEN),
                Some(&json!({"calendar": "retail"})),
            )
            .await;
        assert_eq!(link.status, 200, "{b}: {}", link.text);
        let alert_at = |seconds: i64| {
            let app = &app;
            async move {
                let s = app
                    .get(&format!(
                        "/api/v1/slos/{sid}/status?at={}",
                        at(BASE + seconds)
                    ))
                    .await;
                assert_eq!(s.status, 200, "{}", s.text);
                (
                    s.body["alert"].as_str().unwrap().to_owned(),
                    s.body["calendar"]["budget_multiplier"].as_f64().unwrap(),
                )
            }
        };
        assert_eq!(alert_at(4 * hour).await, ("page".to_owned(), 0.5), "{b}");

        // Bad replacements name the field and change nothing.
        let put = |key: &'static str, body: Value| {
            let app = &app;
            async move {
                app.call(
                    "PUT",
                    &format!("/api/v1/calendars/{key}"),
                    Some(ADMIN_TOKEN),
                    Some(&body),
                )
                .await
            }
        };
        let mut backwards = calendar("retail", BASE + 5 * hour, BASE + 3 * hour);
        backwards["name"] = json!("Backwards");
        for (key, body, status, field) in [
            (
                "retail",
                calendar("other", BASE, BASE + hour),
                422,
                Some("key"),
            ),
            ("retail", backwards, 422, Some("periods[0].end")),
            ("nope", calendar("nope", BASE, BASE + hour), 404, None),
        ] {
            let r = put(key, body).await;
            assert_eq!(r.status, status, "{b}: {}", r.text);
            if let Some(f) = field {
                assert_eq!(error_fields(&r.body), vec![f], "{b}: {}", r.text);
            }
        }
        assert_eq!(
            app.get("/api/v1/calendars/retail").await.body["name"],
            "Retail"
        );
        assert_eq!(alert_at(4 * hour).await.1, 0.5, "{b}");

        // The sale moves a day later: at the old time the burn is a ticket again.
        let r = put(
            "retail",
            calendar("retail", BASE + 27 * hour, BASE + 29 * hour),
        )
        .await;
        assert_eq!(r.status, 200, "{b}: {}", r.text);
        assert_eq!(
            r.body["updated_by"], r.body["created_by"],
            "{b}: {}",
            r.text
        );
        assert!(r.body["updated_at"].is_string(), "{b}: {}", r.text);
        assert_eq!(alert_at(4 * hour).await, ("ticket".to_owned(), 1.0), "{b}");

        // Not deleted while the SLO follows it; deleted once unlinked.
        let delete = || {
            app.call(
                "DELETE",
                "/api/v1/calendars/retail",
                Some(ADMIN_TOKEN),
                None,
            )
        };
        let r = delete().await;
        assert_eq!(r.status, 409, "{b}: {}", r.text);
        assert!(r.text.contains(&format!("SLO {sid}")), "{b}: {}", r.text);
        let unlink = app
            .call(
                "PUT",
                &format!("/api/v1/slos/{sid}/calendar"),
                Some(ADMIN_TOKEN),
                Some(&json!({"calendar": null})),
            )
            .await;
        assert_eq!(unlink.status, 200, "{b}: {}", unlink.text);
        assert_eq!(delete().await.status, 204, "{b}");
        assert_eq!(app.get("/api/v1/calendars/retail").await.status, 404, "{b}");
        assert_eq!(delete().await.status, 404, "{b}");
    }
}
