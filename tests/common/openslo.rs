//! Validation of OpenSLO exports against the OpenSLO v1 JSON Schema in ../shared/openslo.

use std::path::Path;

use serde_json::Value;

/// The schema's complaints about `doc` (empty when valid). Without the schema next to the
/// project (a checkout outside its workspace) nothing can be checked: a note is printed and
/// no error returned.
pub fn schema_errors(doc: &Value) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/openslo/v1");
    if !dir.exists() {
        eprintln!(
            "OpenSLO schema not found at {}; schema validation skipped",
            dir.display()
        );
        return Vec::new();
    }
    let load =
        |p: &Path| -> Value { serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap() };
    let root = load(&dir.join("openslo.schema.json"));
    let mut options = jsonschema::options();
    for entry in std::fs::read_dir(dir.join("parts")).unwrap() {
        let part = load(&entry.unwrap().path());
        let id = part["$id"].as_str().unwrap().to_owned();
        options.with_resource(id, jsonschema::Resource::from_contents(part).unwrap());
    }
    let validator = options.build(&root).unwrap();
    validator
        .iter_errors(doc)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect()
}
