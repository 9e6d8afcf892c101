//! The committed OpenAPI document matches the code, and the server serves the same document.
//! Regenerate with `UPDATE_OPENAPI=1 cargo test --test openapi` (or `sloproof openapi`).

mod common;

use std::path::Path;

#[test]
fn committed_openapi_document_is_current() {
    let generated = sloproof::api::openapi::document_json();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.json");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/openapi.json is stale; regenerate it with `UPDATE_OPENAPI=1 cargo test --test openapi`"
    );
}

#[test]
fn every_operation_has_a_stable_id_and_typed_errors() {
    let doc: serde_json::Value =
        serde_json::from_str(&sloproof::api::openapi::document_json()).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let mut ids = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            ids.push(id.to_owned());
            for (status, resp) in op["responses"].as_object().unwrap() {
                if status.starts_with('4') || status.starts_with('5') {
                    let text = resp.to_string();
                    assert!(
                        text.contains("Problem") || text.contains("#/components/responses/"),
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
    // Every reference resolves.
    let text = doc.to_string();
    for part in text.split("\"$ref\":\"#/").skip(1) {
        let pointer = format!("/{}", &part[..part.find('"').unwrap()]);
        assert!(
            doc.pointer(&pointer).is_some(),
            "dangling reference #{pointer}"
        );
    }
    ids.sort();
    let expected = [
        "create_experiment",
        "create_metric",
        "get_experiment",
        "get_metric",
        "healthz",
        "ingest_assignments",
        "ingest_observations",
        "list_experiments",
        "list_metrics",
        "readyz",
    ];
    for e in expected {
        assert!(
            ids.iter().any(|i| i == e),
            "missing operationId {e}: {ids:?}"
        );
    }
}

#[actix_web::test]
async fn served_document_equals_generated() {
    for app in common::apps().await {
        let r = app.get("/api/v1/openapi.json").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.text, sloproof::api::openapi::document_json());
        let docs = app.get("/docs/").await;
        assert_eq!(docs.status, 200, "interactive docs are served offline");
        assert!(
            docs.text.contains("swagger"),
            "{}",
            &docs.text[..docs.text.len().min(200)]
        );
    }
}
