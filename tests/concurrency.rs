//! Concurrent writers on both backends: parallel uploads and analyses lose and invent nothing,
//! racing approvals publish one active SLO, racing token changes keep names unique and an admin.

// A failed unwrap is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{apps, apps_with};
use futures_util::future::join_all;
use serde_json::{json, Value};
use sloproof::api::Limits;

/// NDJSON observations of `conversion` for units `from..to`; the value depends on the unit only,
/// so overlapping uploads repeat identical rows.
fn conversions(from: usize, to: usize) -> Vec<u8> {
    (from..to)
        .map(|u| {
            format!(
                "{{\"unit_id\":\"ü {u}\",\"metric\":\"conversion\",\"value\":{}}}\n",
                u % 2
            )
        })
        .collect::<String>()
        .into_bytes()
}

#[actix_web::test]
async fn parallel_uploads_and_analyses_lose_nothing() {
    let limits = Limits {
        max_concurrent_analyses: 4,
        ..Limits::default()
    };
    for app in apps_with(limits).await {
        let b = app.backend;
        app.seed_experiment("par").await;
        let variants = ["control", "plus-100", "plus-200"];
        let mut assignments = String::from("unit_id,variant\n");
        for u in 0..4_000 {
            assignments.push_str(&format!("ü {u},{}\n", variants[u % 3]));
        }
        let r = app
            .post_raw(
                "/api/v1/experiments/par/assignments",
                "text/csv",
                assignments.into_bytes(),
            )
            .await;
        assert_eq!(r.status, 200, "{b}: {}", r.text);
        // Eight uploads of 500 units each, every one overlapping the next by 100 identical rows,
        // with four analyses running among them.
        let url = "/api/v1/experiments/par/observations";
        let uploads = (0..8).map(|i| {
            let body = conversions(i * 500, i * 500 + 600);
            let app = &app;
            async move { app.post_raw(url, "application/x-ndjson", body).await }
        });
        let analyses = (0..4).map(|i| {
            let app = &app;
            async move {
                app.post_json(
                    "/api/v1/experiments/par/analyses",
                    &json!({"bootstrap": {"resamples": 100, "seed": i}}),
                )
                .await
            }
        });
        let (uploads, analyses) = futures_util::join!(join_all(uploads), join_all(analyses));
        let (mut inserted, mut duplicates) = (0, 0);
        for r in &uploads {
            assert_eq!(r.status, 200, "{b}: {}", r.text);
            assert_eq!(r.body["received"], 600, "{b}: {}", r.text);
            inserted += r.body["inserted"].as_u64().unwrap();
            duplicates += r.body["duplicates"].as_u64().unwrap();
        }
        // Units 0..4,100 are distinct rows; 7 overlaps of 100 rows are duplicates, whichever
        // upload committed first.
        assert_eq!(inserted, 4_100, "{b}");
        assert_eq!(duplicates, 700, "{b}");
        for r in &analyses {
            assert!(r.status < 500, "{b}: {} {}", r.status, r.text);
        }
        let e = app.get("/api/v1/experiments/par").await;
        assert_eq!(e.body["data"]["observations"], 4_100, "{b}: {}", e.text);
    }
}

#[actix_web::test]
async fn racing_approvals_publish_one_active_slo() {
    for app in apps().await {
        let b = app.backend;
        let analysis = app.analysed("race", vec![0.0, 100.0, 200.0]).await;
        let mut ids = Vec::new();
        for _ in 0..4 {
            let r = app
                .post_json(
                    &format!("/api/v1/analyses/{analysis}/recommendations"),
                    &json!({"max_relative_kpi_loss": 0.1}),
                )
                .await;
            assert_eq!(r.status, 201, "{b}: {}", r.text);
            ids.push(r.body["id"].as_i64().unwrap());
        }
        let decisions = ids.iter().map(|id| {
            let app = &app;
            async move {
                app.post_json(
                    &format!("/api/v1/recommendations/{id}/decision"),
                    &json!({"decision": "approve"}),
                )
                .await
            }
        });
        for r in join_all(decisions).await {
            assert_eq!(r.status, 200, "{b}: {}", r.text);
        }
        let slos = app.get("/api/v1/slos?limit=500").await;
        let items = slos.body["items"].as_array().unwrap();
        assert_eq!(items.len(), 4, "{b}: {}", slos.text);
        let active: Vec<&Value> = items.iter().filter(|s| s["status"] == "active").collect();
        assert_eq!(active.len(), 1, "{b}: {}", slos.text);
        // Every other SLO was superseded by a later one, and the chain ends at the active one.
        for s in items.iter().filter(|s| s["status"] == "superseded") {
            assert!(
                s["superseded_by"].as_i64().unwrap() > s["id"].as_i64().unwrap(),
                "{b}: {s}"
            );
        }
    }
}

#[actix_web::test]
async fn racing_token_changes_keep_names_unique_and_an_admin() {
    for app in apps().await {
        let b = app.backend;
        let creates = (0..6).map(|_| {
            let app = &app;
            async move {
                app.post_json(
                    "/api/v1/tokens",
                    &json!({"name": "ci bot", "role": "analyst"}),
                )
                .await
            }
        });
        let statuses: Vec<u16> = join_all(creates).await.iter().map(|r| r.status).collect();
        assert_eq!(
            statuses.iter().filter(|s| **s == 201).count(),
            1,
            "{b}: {statuses:?}"
        );
        assert_eq!(
            statuses.iter().filter(|s| **s == 409).count(),
            5,
            "{b}: {statuses:?}"
        );
        // Two more admins; then all three admin tokens are revoked at once: one must stay.
        let mut secrets = vec![common::ADMIN_TOKEN.to_owned()];
        for name in ["admin two", "admin three"] {
            let r = app
                .post_json("/api/v1/tokens", &json!({"name": name, "role": "admin"}))
                .await;
            assert_eq!(r.status, 201, "{b}: {}", r.text);
            secrets.push(r.body["token"].as_str().unwrap().to_owned());
        }
        let list = app.get("/api/v1/tokens?limit=500").await.body;
        let admins: Vec<i64> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["role"] == "admin")
            .map(|t| t["id"].as_i64().unwrap())
            .collect();
        assert_eq!(admins.len(), 3, "{b}: {list}");
        // Each admin is revoked by the next one (ids and secrets are both in creation order).
        let revokes = admins.iter().enumerate().map(|(i, id)| {
            let app = &app;
            let path = format!("/api/v1/tokens/{id}");
            let caller = secrets[(i + 1) % secrets.len()].clone();
            async move { app.call("DELETE", &path, Some(&caller), None).await }
        });
        let statuses: Vec<u16> = join_all(revokes).await.iter().map(|r| r.status).collect();
        // A request that authenticates after its own token was revoked is a 401.
        assert!(
            statuses.iter().all(|s| [200, 401, 409].contains(s)),
            "{b}: {statuses:?}"
        );
        let mut live_admins = 0;
        for secret in &secrets {
            let r = app
                .call("GET", "/api/v1/tokens?limit=500", Some(secret), None)
                .await;
            if r.status == 200 {
                live_admins += 1;
            }
        }
        assert!(live_admins >= 1, "{b}: {statuses:?}");
        assert_eq!(
            statuses.iter().filter(|s| **s == 200).count() + live_admins,
            3,
            "{b}: {statuses:?}"
        );
    }
}
