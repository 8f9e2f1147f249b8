use super::*;

const GOOD: &str = r#"
api_version: agora/v1
publisher: acme
name: jira-ticket
version: 1.2.0
display_name: Jira Ticket Plugin
description: Create and update Jira issues
license: Apache-2.0
homepage: https://example.com/jira
provider: atlassian
categories: [ticketing]
tags: [jira, issues]
runtime:
  type: wasm
  module: plugin.wasm
entrypoints:
  send: { path: /send, timeout_ms: 5000 }
compatibility: { runner_api: v1, min_core: 1.2.0 }
dependencies: { acme/http-utils: "^1.0" }
capabilities: [outbound_http, secrets_read]
network: { outbound_hosts: [jira.example.com] }
resources: { memory_mb: 128, timeout_ms: 30000, max_fds: 64 }
secrets: [JIRA_TOKEN]
contact: { support: support@example.com }
"#;

fn errors_of(text: &str) -> Vec<FieldError> {
    match Manifest::from_yaml(text) {
        Err(ManifestError::Invalid(errors)) => errors,
        other => panic!("expected field errors, got {other:?}"),
    }
}

fn with(line_from: &str, line_to: &str) -> String {
    assert!(GOOD.contains(line_from), "fixture lacks {line_from}");
    GOOD.replace(line_from, line_to)
}

#[test]
fn a_complete_manifest_parses() {
    let m = Manifest::from_yaml(GOOD).unwrap();
    assert_eq!(m.plugin_ref().to_string(), "acme/jira-ticket");
    assert_eq!(m.version, semver::Version::new(1, 2, 0));
    assert_eq!(m.runtime.kind, RuntimeKind::Wasm);
    assert_eq!(m.visibility, Visibility::Public);
    assert_eq!(m.parsed_dependencies().len(), 1);
    assert_eq!(m.role_of("plugin.wasm"), Some(ArtifactRole::Module));
    assert_eq!(m.role_of("README.md"), Some(ArtifactRole::Readme));
    assert_eq!(m.role_of("notes.txt"), None);
}

#[test]
fn unknown_fields_are_named() {
    let errors = errors_of(&format!("{GOOD}\nfavourite_colour: blue\n"));
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].problem.contains("favourite_colour"),
        "{:?}",
        errors[0]
    );
}

#[test]
fn an_invalid_name_names_the_field_and_the_rule() {
    let errors = errors_of(&with("publisher: acme", "publisher: ../Acme"));
    assert_eq!(errors[0].field, "publisher");
    assert!(
        errors[0]
            .expected
            .as_deref()
            .unwrap()
            .contains("lowercase letters")
    );
}

#[test]
fn an_invalid_version_is_refused() {
    for bad in ["1.2", "01.2.0", "v1.2.0", "latest"] {
        let errors = errors_of(&with("version: 1.2.0", &format!("version: \"{bad}\"")));
        assert_eq!(errors[0].field, "version", "{bad}");
        assert!(
            errors[0]
                .expected
                .as_deref()
                .unwrap()
                .contains("semantic version")
        );
    }
}

#[test]
fn a_wrong_runtime_type_lists_what_is_accepted() {
    let errors = errors_of(&with("type: wasm", "type: python"));
    assert_eq!(errors[0].field, "runtime.type");
    assert!(errors[0].expected.as_deref().unwrap().contains("\"exec\""));
}

#[test]
fn a_runtime_must_name_its_files() {
    let errors = errors_of(&with("  module: plugin.wasm\n", ""));
    assert!(
        errors
            .iter()
            .any(|e| e.field == "runtime" && e.problem.contains("module")),
        "{errors:?}"
    );
}

#[test]
fn path_tricks_in_files_are_refused() {
    for bad in ["../../etc/passwd", "/etc/passwd", "a/../../b", "a//b"] {
        let errors = errors_of(&with("module: plugin.wasm", &format!("module: \"{bad}\"")));
        assert_eq!(errors[0].field, "runtime.module", "{bad}: {errors:?}");
    }
}

#[test]
fn bad_dependency_requirements_are_named() {
    let errors = errors_of(&with("\"^1.0\"", "\"one point oh\""));
    assert_eq!(errors[0].field, "dependencies.acme/http-utils");
}

#[test]
fn hosts_without_the_capability_are_refused() {
    let errors = errors_of(&with(
        "capabilities: [outbound_http, secrets_read]",
        "capabilities: [secrets_read]",
    ));
    assert_eq!(errors[0].field, "capabilities");
}

#[test]
fn callbacks_are_dotted_lowercase_names_named_when_wrong() {
    let m =
        Manifest::from_yaml(&format!("{GOOD}callbacks: [notes.add, kv.get, a-b.c2]\n")).unwrap();
    assert_eq!(m.callbacks, ["notes.add", "kv.get", "a-b.c2"]);
    assert!(Manifest::from_yaml(GOOD).unwrap().callbacks.is_empty());
    for (bad, field) in [
        ("[notes.add, Notes.Add]", "callbacks[1]"),
        ("[notes..add]", "callbacks[0]"),
        ("[.notes]", "callbacks[0]"),
        ("[notes.]", "callbacks[0]"),
        ("[2notes]", "callbacks[0]"),
        ("[notes.add/x]", "callbacks[0]"),
        ("[notes_add]", "callbacks[0]"),
        ("[\"\"]", "callbacks[0]"),
        ("notes.add", "callbacks"),
        ("[notes.add, notes.add]", "callbacks"),
    ] {
        let errors = errors_of(&format!("{GOOD}callbacks: {bad}\n"));
        assert_eq!(errors[0].field, field, "{bad}: {errors:?}");
        assert!(errors[0].expected.is_some(), "{bad}: {errors:?}");
    }
    let long = format!("a{}", ".b".repeat(32));
    assert_eq!(long.len(), 65);
    let errors = errors_of(&format!("{GOOD}callbacks: [{long}]\n"));
    assert_eq!(errors[0].field, "callbacks[0]");
    assert!(
        errors[0]
            .expected
            .as_deref()
            .unwrap()
            .contains("64 characters")
    );
    assert!(Manifest::from_yaml(&format!("{GOOD}callbacks: [{}]\n", &long[..63])).is_ok());
    let many: Vec<String> = (0..33).map(|i| format!("c{i}")).collect();
    let errors = errors_of(&format!("{GOOD}callbacks: [{}]\n", many.join(", ")));
    assert_eq!(errors[0].field, "callbacks");
    assert!(
        errors[0]
            .expected
            .as_deref()
            .unwrap()
            .contains("at most 32")
    );
    assert!(
        Manifest::from_yaml(&format!("{GOOD}callbacks: [{}]\n", many[..32].join(", "))).is_ok()
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = with("publisher: acme", "publisher: ACME").replace("license: Apache-2.0\n", "");
    let errors = errors_of(&text);
    assert!(errors.len() >= 2, "{errors:?}");
}

#[test]
fn oversize_manifests_are_refused_before_parsing() {
    let text = format!("{GOOD}\n# {}\n", "x".repeat(MAX_MANIFEST_BYTES));
    assert!(matches!(
        Manifest::from_yaml(&text),
        Err(ManifestError::TooLarge { .. })
    ));
}

#[test]
fn alias_bombs_are_refused() {
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 0..9u8 {
        let prev = (b'a' + i) as char;
        let next = (b'a' + i + 1) as char;
        bomb.push_str(&format!("{next}: &{next} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
    }
    assert!(matches!(
        Manifest::from_yaml(&bomb),
        Err(ManifestError::Yaml(_))
    ));
}

#[test]
fn malformed_yaml_and_duplicate_keys_are_refused() {
    assert!(matches!(
        Manifest::from_yaml("name: [unclosed"),
        Err(ManifestError::Yaml(_))
    ));
    assert!(matches!(
        Manifest::from_yaml(&format!("{GOOD}\nname: other\n")),
        Err(ManifestError::Yaml(_))
    ));
    assert!(matches!(
        Manifest::from_yaml("- a\n- b\n"),
        Err(ManifestError::Invalid(_))
    ));
}

#[test]
fn deep_nesting_is_refused() {
    let deep = format!("{}{}", "[".repeat(500), "]".repeat(500));
    assert!(Manifest::from_yaml(&deep).is_err());
}

#[test]
fn very_long_strings_are_refused_with_the_limit() {
    let errors = errors_of(&with(
        "description: Create and update Jira issues",
        &format!("description: {}", "d".repeat(5000)),
    ));
    assert_eq!(errors[0].field, "description");
    assert!(errors[0].expected.as_deref().unwrap().contains("1000"));
}

#[test]
fn the_schema_is_valid_json_schema() {
    jsonschema::meta::validate(&SCHEMA).expect("schema conforms to its meta-schema");
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Any text at all: an answer, never a panic.
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
            let _ = Manifest::from_yaml(&text);
        }

        /// YAML-looking noise (keys, anchors, aliases, flow collections, tags).
        #[test]
        fn yaml_shaped_noise_never_panics(text in "([a-z_]{1,8}: ?|- |&a |\\*a|\\[|\\]|\\{|\\}|!!str |\"|'|#|\n|  |[0-9.]{1,4}|~){0,80}") {
            let _ = Manifest::from_yaml(&text);
        }

        /// Any value in any field of a valid manifest: either a manifest that survives a
        /// round trip, or errors that all name a field.
        #[test]
        fn any_field_value_is_accepted_or_named(line in 0usize..27, value in "\\PC{0,60}") {
            let lines: Vec<&str> = GOOD.lines().collect();
            let line = line % lines.len();
            let Some((key, _)) = lines[line].split_once(':') else { return Ok(()) };
            let mut edited = lines.clone();
            let replaced = format!("{key}: {}", serde_json::to_string(&value).unwrap());
            edited[line] = &replaced;
            match Manifest::from_yaml(&edited.join("\n")) {
                Ok(m) => {
                    let back = Manifest::from_value(serde_json::to_value(&m).unwrap()).unwrap();
                    prop_assert_eq!(back, m);
                }
                Err(ManifestError::Invalid(errors)) => prop_assert!(!errors.is_empty()),
                Err(_) => {}
            }
        }

        /// A path the checker accepts never leaves the plugin directory.
        #[test]
        fn accepted_paths_stay_inside(path in "[a-zA-Z0-9./_+\\\\:-]{0,40}") {
            if relative_path_problem(&path).is_none() {
                prop_assert!(!path.starts_with('/'));
                prop_assert!(path.split('/').all(|seg| !seg.is_empty() && seg != ".." && seg != "."));
            }
        }
    }
}

#[test]
fn long_non_ascii_values_are_reported_without_panicking() {
    let errors = errors_of(&with(
        "description: Create and update Jira issues",
        &format!("description: {}", "é".repeat(2000)),
    ));
    assert_eq!(errors[0].field, "description");
    assert!(errors[0].problem.ends_with('…'));
}

/// docs/plugin-contract.md is how a plugin author learns the manifest: every field the
/// schema accepts (and every field of `runtime`) is in its table.
#[test]
fn the_plugin_contract_lists_every_manifest_field() {
    let doc = include_str!("../../../../docs/plugin-contract.md");
    let table = &doc[doc.find("## The manifest").expect("a manifest section")..];
    let schema: serde_json::Value = serde_json::from_str(SCHEMA_JSON).unwrap();
    let mut fields: Vec<String> = schema["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    fields.extend(["type", "module", "binaries", "image"].map(String::from));
    for field in fields {
        assert!(
            table.contains(&format!("`{field}`")),
            "docs/plugin-contract.md does not describe the manifest field `{field}`"
        );
    }
}

fn publish_errors_of(text: &str) -> Vec<FieldError> {
    match Manifest::from_yaml_to_publish(text) {
        Err(ManifestError::Invalid(errors)) => errors,
        other => panic!("expected field errors, got {other:?}"),
    }
}

#[test]
fn control_characters_are_refused_naming_the_field() {
    let nul = with(
        "description: Create and update Jira issues",
        "description: \"nul \\0 here\"",
    );
    for errors in [errors_of(&nul), publish_errors_of(&nul)] {
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].field, "description");
        assert!(errors[0].problem.contains("U+0000 (NUL)"), "{errors:?}");
    }
    let escape = with(
        "display_name: Jira Ticket Plugin",
        "display_name: \"\\e[2Jverified\"",
    );
    let errors = publish_errors_of(&escape);
    assert_eq!(errors[0].field, "display_name");
    assert!(errors[0].problem.contains("U+001B (escape)"), "{errors:?}");
    let c1 = with(
        "contact: { support: support@example.com }",
        "contact: { support: \"support\\u0085@example.com\" }",
    );
    assert_eq!(publish_errors_of(&c1)[0].field, "contact.support");
    // A name: the slug rule and the text rule both name it.
    let name = with("name: jira-ticket", "name: \"jira\\x07\"");
    assert!(publish_errors_of(&name).iter().all(|e| e.field == "name"));
}

#[test]
fn a_manifest_being_published_is_one_line_per_field() {
    for (from, to, field) in [
        (
            "description: Create and update Jira issues",
            "description: >\n  Create and update\n  Jira issues\n",
            "description",
        ),
        (
            "description: Create and update Jira issues",
            "description: \"tab\\there\"",
            "description",
        ),
        (
            "display_name: Jira Ticket Plugin",
            "display_name: \"Jira\\rTicket\"",
            "display_name",
        ),
        (
            "license: Apache-2.0",
            "license: \"MIT\\nOR GPL\"",
            "license",
        ),
    ] {
        let text = with(from, to);
        let errors = publish_errors_of(&text);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].field, field, "{errors:?}");
        assert!(
            errors[0]
                .expected
                .as_deref()
                .unwrap()
                .starts_with("one line"),
            "{errors:?}"
        );
        // Read (a release published before the rule), the same manifest still parses.
        Manifest::from_yaml(&text).unwrap();
    }
    let folded = with(
        "description: Create and update Jira issues",
        "description: >-\n  Create and update\n  Jira issues\n",
    );
    assert_eq!(
        Manifest::from_yaml_to_publish(&folded).unwrap().description,
        "Create and update Jira issues"
    );
    Manifest::from_yaml_to_publish(GOOD).unwrap();
}
