//! The OpenAPI document served at `/api/v1/openapi.json` is valid OpenAPI 3.1 and complete
//! enough to generate a client from: it validates against the official OpenAPI 3.1 schema
//! (vendored in `tests/fixtures`, see the README there), every schema in it is a valid
//! JSON Schema 2020-12, and it keeps the rules a schema cannot express: path parameters
//! match the path templates, operation ids are unique, every `$ref` resolves, and every
//! error is documented as the problem document (`application/problem+json`) the server
//! really sends. That the server answers only what is documented is checked by the handler
//! tests (`src/api/testing.rs` checks every answer against this document).

use std::collections::{BTreeMap, BTreeSet};

use agora_core::ProblemKind;
use serde_json::Value;

/// The official JSON Schema of OpenAPI 3.1 documents (without validation of the schemas
/// inside them, which `every_schema_is_a_valid_json_schema` does).
const OAS_3_1_SCHEMA: &str = include_str!("fixtures/oas-3.1-schema-2022-10-07.json");

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

const PROBLEM_JSON: &str = "application/problem+json";

fn document() -> Value {
    serde_json::to_value(agora_server::openapi()).expect("the document is JSON")
}

/// Every operation: its method, path and object.
fn operations(doc: &Value) -> Vec<(&'static str, &str, &Value)> {
    let paths = doc["paths"].as_object().expect("paths");
    assert!(!paths.is_empty(), "the document has no paths");
    let mut out = Vec::new();
    for (path, item) in paths {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                out.push((method, path.as_str(), op));
            }
        }
    }
    out
}

/// `value` with a `$ref` to `#/...` replaced by what it points to.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => reference
            .strip_prefix('#')
            .and_then(|pointer| doc.pointer(pointer))
            .unwrap_or_else(|| panic!("{reference} does not resolve")),
        None => value,
    }
}

/// Every value of the document with the JSON pointer to it.
fn walk<'a>(pointer: String, value: &'a Value, out: &mut Vec<(String, &'a Value)>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                let key = key.replace('~', "~0").replace('/', "~1");
                walk(format!("{pointer}/{key}"), v, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                walk(format!("{pointer}/{i}"), v, out);
            }
        }
        _ => {}
    }
    out.push((pointer, value));
}

fn fail_listing(what: &str, problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{} {what}:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn the_document_validates_against_the_openapi_3_1_schema() {
    let doc = document();
    let version = doc["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3.1."), "openapi is {version:?}");
    let schema: Value = serde_json::from_str(OAS_3_1_SCHEMA).expect("the vendored schema");
    // Offline: the schema's only external reference is its meta-schema (draft 2020-12),
    // which the validator bundles.
    let validator = jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("the OpenAPI 3.1 schema compiles");
    let problems: Vec<String> = validator
        .iter_errors(&doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    fail_listing("errors against the OpenAPI 3.1 schema", &problems);
}

#[test]
fn every_schema_is_a_valid_json_schema() {
    let doc = document();
    let mut values = Vec::new();
    walk(String::new(), &doc, &mut values);
    let mut problems = Vec::new();
    let mut checked = 0;
    for (pointer, value) in values {
        let is_schema = pointer.ends_with("/schema")
            || pointer
                .rsplit_once('/')
                .is_some_and(|(parent, _)| parent == "/components/schemas");
        if !is_schema {
            continue;
        }
        checked += 1;
        if let Err(e) = jsonschema::meta::validate(value) {
            problems.push(format!("{pointer}: {e}"));
        }
    }
    assert!(checked > 0);
    fail_listing("schemas that are not JSON Schema 2020-12", &problems);
}

#[test]
fn path_parameters_match_the_path_templates() {
    let doc = document();
    let mut problems = Vec::new();
    for (method, path, op) in operations(&doc) {
        let template: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        let item_params = doc["paths"][path]["parameters"].as_array();
        let op_params = op["parameters"].as_array();
        let params: Vec<&Value> = item_params
            .into_iter()
            .chain(op_params)
            .flatten()
            .map(|p| resolve(&doc, p))
            .collect();
        let in_path: BTreeSet<&str> = params
            .iter()
            .filter(|p| p["in"] == "path")
            .filter_map(|p| p["name"].as_str())
            .collect();
        for name in in_path.difference(&template) {
            problems.push(format!(
                "{method} {path}: `{name}` is a path parameter but not in the path (a query parameter?)"
            ));
        }
        for name in template.difference(&in_path) {
            problems.push(format!("{method} {path}: {{{name}}} has no path parameter"));
        }
        let mut seen = BTreeSet::new();
        for p in &params {
            let key = (p["in"].as_str(), p["name"].as_str());
            if !seen.insert(key) {
                problems.push(format!("{method} {path}: parameter {key:?} twice"));
            }
        }
    }
    fail_listing("parameter problems", &problems);
}

#[test]
fn every_operation_has_a_unique_operation_id() {
    let doc = document();
    let mut ids: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut problems = Vec::new();
    for (method, path, op) in operations(&doc) {
        match op["operationId"].as_str() {
            Some(id) if !id.is_empty() => ids
                .entry(id)
                .or_default()
                .push(format!("{} {path}", method.to_uppercase())),
            _ => problems.push(format!("{method} {path} has no operationId")),
        }
    }
    for (id, ops) in ids {
        if ops.len() > 1 {
            problems.push(format!("operationId {id:?} is used by {}", ops.join(", ")));
        }
    }
    fail_listing("operation id problems", &problems);
}

#[test]
fn every_reference_resolves() {
    let doc = document();
    let mut values = Vec::new();
    walk(String::new(), &doc, &mut values);
    let mut problems = Vec::new();
    for (pointer, value) in values {
        let Some(reference) = value.get("$ref").and_then(Value::as_str) else {
            continue;
        };
        let resolves = reference
            .strip_prefix('#')
            .is_some_and(|target| doc.pointer(target).is_some());
        if !resolves {
            problems.push(format!("{pointer}: {reference} does not resolve"));
        }
    }
    fail_listing("unresolved references", &problems);
}

/// The statuses a problem document can have: each kind's own, and the `413` and `415`
/// of a JSON body that is too large or not sent as JSON (kind `invalid-body`).
fn problem_statuses() -> BTreeSet<String> {
    ProblemKind::ALL
        .iter()
        .map(|k| k.status())
        .chain([413, 415])
        .map(|s| s.to_string())
        .collect()
}

#[test]
fn errors_are_documented_as_problem_documents() {
    let doc = document();
    let statuses = problem_statuses();
    let mut problems = Vec::new();
    for (method, path, op) in operations(&doc) {
        let responses = op["responses"].as_object().expect("responses");
        let mut client_errors = 0;
        for (status, response) in responses {
            let code: u16 = status.parse().unwrap_or(0);
            if code < 400 {
                if code == 0 {
                    problems.push(format!(
                        "{method} {path}: response {status:?} names no status"
                    ));
                }
                continue;
            }
            if code < 500 {
                client_errors += 1;
            }
            if !statuses.contains(status) {
                problems.push(format!(
                    "{method} {path}: {status} is not the status of any problem kind"
                ));
            }
            let response = resolve(&doc, response);
            let content = response["content"].as_object();
            let types: Vec<&String> = content.into_iter().flat_map(|c| c.keys()).collect();
            if types != [PROBLEM_JSON] {
                problems.push(format!(
                    "{method} {path}: {status} is documented as {types:?}, not {PROBLEM_JSON}"
                ));
                continue;
            }
            if response["content"][PROBLEM_JSON]["schema"]["$ref"] != "#/components/schemas/Problem"
            {
                problems.push(format!(
                    "{method} {path}: {status} is not a Problem document"
                ));
            }
        }
        if client_errors == 0 {
            problems.push(format!("{method} {path} documents no 4xx problem"));
        }
    }
    fail_listing("undocumented or misdocumented errors", &problems);
}

#[test]
fn answers_every_endpoint_can_give_are_documented_everywhere() {
    // Outside any handler: a control character in the path or query is refused (422) on
    // every route; the server fails (500) or is at its connection limit (503) on any; and
    // a private registry refuses requests without a valid token (401) on every route but
    // the probes.
    let doc = document();
    let mut problems = Vec::new();
    for (method, path, op) in operations(&doc) {
        let probe = matches!(path, "/health" | "/ready");
        let wanted: &[&str] = if probe {
            &["422", "500", "503"]
        } else {
            &["401", "422", "500", "503"]
        };
        for status in wanted {
            if op["responses"].get(*status).is_none() {
                problems.push(format!("{method} {path} does not document {status}"));
            }
        }
        if op.get("requestBody").is_some_and(|body| {
            resolve(&doc, body)["content"]
                .get("application/json")
                .is_some()
        }) {
            for status in ["400", "413", "415", "422"] {
                if op["responses"].get(status).is_none() {
                    problems.push(format!(
                        "{method} {path} takes a JSON body but does not document {status}"
                    ));
                }
            }
        }
        let has_params = op["parameters"].as_array().is_some_and(|p| {
            p.iter()
                .any(|p| matches!(resolve(&doc, p)["in"].as_str(), Some("path" | "query")))
        });
        if has_params && op["responses"].get("400").is_none() {
            problems.push(format!(
                "{method} {path} has path or query parameters but does not document 400"
            ));
        }
    }
    fail_listing("missing answers", &problems);
}
