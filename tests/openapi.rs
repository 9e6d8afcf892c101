//! The committed OpenAPI document matches the code, and the server serves the same document.
//! Regenerate with `UPDATE_OPENAPI=1 cargo test --test openapi` (or `sloproof openapi`).

// A failed unwrap is the test failing; reference tables make long test functions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

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

/// Names of every type in `src/` that becomes an OpenAPI schema: types deriving `ToSchema`
/// (under their `#[schema(as = …)]` name when they have one) and `text_enum!` enums.
fn schema_names(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            schema_names(&path, out);
            continue;
        }
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        let file = path.display().to_string();
        for (i, line) in lines.iter().enumerate() {
            // A derive may span lines: read up to its closing `)]`.
            let derive = if line.starts_with("#[derive(") {
                let end = (i..lines.len())
                    .find(|j| lines[*j].ends_with(")]"))
                    .unwrap_or(i);
                lines[i..=end].join(" ")
            } else {
                String::new()
            };
            if derive.contains("ToSchema") {
                let mut renamed = None;
                for next in &lines[i + 1..] {
                    if let Some(rest) = next.strip_prefix("#[schema(as = ") {
                        renamed = Some(rest.trim_end_matches(")]").to_owned());
                    }
                    let item = next
                        .strip_prefix("pub struct ")
                        .or_else(|| next.strip_prefix("pub enum "));
                    if let Some(item) = item {
                        let name: String = item
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        out.push((renamed.unwrap_or(name), file.clone()));
                        break;
                    }
                }
            }
            // A schema written by hand.
            if let Some(rest) = line.strip_prefix("impl utoipa::ToSchema for ") {
                let name: String = rest.chars().take_while(|c| c.is_alphanumeric()).collect();
                out.push((name, file.clone()));
            }
            if *line == "text_enum! {" {
                let decl = lines[i + 1..]
                    .iter()
                    .find(|l| !l.starts_with("///") && !l.starts_with("#["));
                if let Some(decl) = decl {
                    let name: String = decl.chars().take_while(|c| c.is_alphanumeric()).collect();
                    out.push((name, file.clone()));
                }
            }
        }
    }
}

/// utoipa keeps one schema per name, so two types with one name would silently share a schema
/// and generated clients would reject one of them: every schema name must be unique.
#[test]
fn schema_names_are_unique() {
    let mut names = Vec::new();
    schema_names(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut names,
    );
    assert!(names.len() > 40, "found only {} schema types", names.len());
    names.sort();
    let duplicates: Vec<_> = names
        .windows(2)
        .filter(|w| w[0].0 == w[1].0)
        .map(|w| format!("{} in {} and {}", w[0].0, w[0].1, w[1].1))
        .collect();
    assert!(
        duplicates.is_empty(),
        "schema names used twice: {duplicates:?}"
    );
    // Every schema of the document is one of these types.
    let doc: serde_json::Value =
        serde_json::from_str(&sloproof::api::openapi::document_json()).unwrap();
    for name in doc["components"]["schemas"].as_object().unwrap().keys() {
        assert!(
            names.iter().any(|(n, _)| n == name),
            "schema {name} not found among the scanned types"
        );
    }
}

/// The declaration each handler enforces names the method and route the document has for it.
#[test]
fn protected_operations_match_the_document() {
    let doc: serde_json::Value =
        serde_json::from_str(&sloproof::api::openapi::document_json()).unwrap();
    for op in sloproof::api::caller::PROTECTED {
        let found = &doc["paths"][op.path][op.method.to_ascii_lowercase()];
        assert_eq!(
            found["operationId"], op.id,
            "{} {} is not {} in the document",
            op.method, op.path, op.id
        );
        assert!(found.get("security").is_some(), "{} has no security", op.id);
    }
}

/// The schema object at `/components/schemas/{schema}/properties/{field}`.
fn property<'a>(doc: &'a serde_json::Value, schema: &str, field: &str) -> &'a serde_json::Value {
    let p = &doc["components"]["schemas"][schema]["properties"][field];
    assert!(p.is_object(), "{schema}.{field} is not in the document");
    p
}

/// Every limit the server enforces is declared, with the value the code enforces: the constants
/// behind the checks are compared with the document, and the server is probed on both sides of
/// each declared bound of an analysis request and a list page.
#[actix_web::test]
async fn declared_limits_are_the_enforced_ones() {
    use serde_json::json;
    use sloproof::domain::experiment::{MAX_METRICS_PER_ROLE, MAX_VARIANTS};
    let doc: serde_json::Value =
        serde_json::from_str(&sloproof::api::openapi::document_json()).unwrap();
    let n = |v: &serde_json::Value| v.as_f64().unwrap();
    let exp = &doc["components"]["schemas"]["CreateExperiment"]["properties"];
    assert_eq!(n(&exp["variants"]["maxItems"]), MAX_VARIANTS as f64);
    assert_eq!(n(&exp["kpis"]["maxItems"]), MAX_METRICS_PER_ROLE as f64);
    assert_eq!(
        n(&exp["guardrails"]["maxItems"]),
        MAX_METRICS_PER_ROLE as f64
    );
    assert_eq!(
        n(&property(&doc, "CreateMetric", "parents")["maxItems"]),
        sloproof::domain::metric::MAX_PARENTS as f64
    );
    let rec = "CreateRecommendation";
    let pct: Vec<u32> = property(&doc, rec, "percentile")["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    assert_eq!(pct, sloproof::slo::request::PERCENTILES);
    assert_eq!(
        n(&property(&doc, rec, "window_days")["maximum"]),
        f64::from(sloproof::slo::request::MAX_WINDOW_DAYS)
    );
    assert_eq!(
        n(&property(&doc, rec, "window_minutes")["maximum"]),
        f64::from(sloproof::slo::request::MAX_WINDOW_MINUTES)
    );
    let unit = &doc["components"]["schemas"]["UnitId"]["oneOf"][0];
    assert_eq!(
        n(&unit["maxLength"]),
        sloproof::ingest::MAX_UNIT_ID_LEN as f64
    );
    let seed = property(&doc, "BootstrapRequest", "seed");
    assert_eq!(
        seed["maximum"].as_u64().unwrap(),
        sloproof::analysis::MAX_SEED
    );

    // Probes: at a declared bound the field is accepted, one step beyond it is a 422 naming it.
    let resamples = property(&doc, "BootstrapRequest", "resamples");
    let (lo, hi) = (
        resamples["minimum"].as_u64().unwrap(),
        resamples["maximum"].as_u64().unwrap(),
    );
    let alpha_max = n(&property(&doc, "AnalysisRequest", "alpha")["maximum"]);
    let conf_min = n(&property(&doc, "AnalysisRequest", "confidence")["minimum"]);
    let cases = [
        (
            json!({"bootstrap": {"resamples": lo}}),
            "bootstrap.resamples",
            true,
        ),
        (
            json!({"bootstrap": {"resamples": lo - 1}}),
            "bootstrap.resamples",
            false,
        ),
        (
            json!({"bootstrap": {"resamples": hi}}),
            "bootstrap.resamples",
            true,
        ),
        (
            json!({"bootstrap": {"resamples": hi + 1}}),
            "bootstrap.resamples",
            false,
        ),
        (json!({"alpha": alpha_max}), "alpha", true),
        (json!({"alpha": alpha_max + 1e-9}), "alpha", false),
        (json!({"confidence": conf_min}), "confidence", true),
        (json!({"confidence": conf_min - 1e-9}), "confidence", false),
        (
            json!({"bootstrap": {"seed": sloproof::analysis::MAX_SEED}}),
            "bootstrap.seed",
            true,
        ),
        (
            json!({"bootstrap": {"seed": sloproof::analysis::MAX_SEED + 1}}),
            "bootstrap.seed",
            false,
        ),
    ];
    let app = common::apps().await.remove(0);
    // An experiment without data: every request fails, but only the out-of-bound ones name
    // their field.
    app.seed_experiment("limits").await;
    for (body, field, inside) in cases {
        let r = app
            .post_json("/api/v1/experiments/limits/analyses", &body)
            .await;
        assert!(r.status >= 400 && r.status < 500, "{body}: {r:?}");
        let named = common::error_fields(&r.body).iter().any(|f| f == field);
        assert_eq!(named, !inside, "{body}: {}", r.text);
    }
    let limit = doc["paths"]["/api/v1/metrics"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap()["schema"]
        .clone();
    for (value, status) in [
        (limit["minimum"].as_u64().unwrap(), 200),
        (limit["maximum"].as_u64().unwrap(), 200),
        (limit["minimum"].as_u64().unwrap() - 1, 422),
        (limit["maximum"].as_u64().unwrap() + 1, 422),
    ] {
        let r = app.get(&format!("/api/v1/metrics?limit={value}")).await;
        assert_eq!(r.status, status, "limit={value}: {}", r.text);
    }
    // Every list operation declares the same paging parameters.
    for (path, item) in doc["paths"].as_object().unwrap() {
        let Some(params) = item["get"]["parameters"].as_array() else {
            continue;
        };
        for name in ["limit", "cursor"] {
            if let Some(p) = params.iter().find(|p| p["name"] == name) {
                let listed = doc["paths"]["/api/v1/metrics"]["get"]["parameters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|q| q["name"] == name)
                    .unwrap();
                assert_eq!(p["schema"], listed["schema"], "{path} {name}");
            }
        }
    }
    for limit in ["-1", "4294967296"] {
        let r = app.get(&format!("/api/v1/metrics?limit={limit}")).await;
        assert_eq!(r.status, 422, "limit={limit}: {}", r.text);
    }
    for cursor in ["", "x1", "c"] {
        let r = app.get(&format!("/api/v1/metrics?cursor={cursor}")).await;
        assert_eq!(r.status, 422, "cursor={cursor}: {}", r.text);
    }
}
