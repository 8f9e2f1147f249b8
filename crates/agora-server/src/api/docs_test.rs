//! Keeps `docs/api.md` true to the code: every problem kind is in a table row with its
//! status and title, and every operation of the OpenAPI document is in a table row with
//! its method and path.

use agora_core::ProblemKind;

const DOC: &str = include_str!("../../../../docs/api.md");

/// The rows of the doc's tables, each as its trimmed cells.
fn table_rows() -> Vec<Vec<&'static str>> {
    DOC.lines()
        .map(str::trim)
        .filter(|line| line.starts_with('|') && line.ends_with('|'))
        .map(|line| {
            line.trim_matches('|')
                .split(" | ")
                .map(str::trim)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn every_problem_kind_is_listed_with_its_status_and_title() {
    let rows = table_rows();
    for kind in ProblemKind::ALL {
        let name = format!("`{}`", kind.as_str());
        let status = kind.status().to_string();
        let row = rows
            .iter()
            .find(|cells| cells.first() == Some(&name.as_str()));
        let Some(row) = row else {
            panic!("docs/api.md has no table row for problem kind {name}");
        };
        assert!(
            row.contains(&status.as_str()),
            "docs/api.md lists {name} without its status {status}: {row:?}"
        );
        assert!(
            row.contains(&kind.title()),
            "docs/api.md lists {name} without its title {:?}: {row:?}",
            kind.title()
        );
    }
}

#[test]
fn every_api_operation_is_listed_with_its_method_and_path() {
    let rows = table_rows();
    let doc = super::openapi();
    assert!(!doc.paths.paths.is_empty());
    for (path, item) in &doc.paths.paths {
        let operations = [
            ("GET", item.get.is_some()),
            ("PUT", item.put.is_some()),
            ("POST", item.post.is_some()),
            ("DELETE", item.delete.is_some()),
            ("PATCH", item.patch.is_some()),
            ("HEAD", item.head.is_some()),
        ];
        let path_cell = format!("`{path}`");
        assert!(
            DOC.contains(&path_cell),
            "docs/api.md does not mention {path_cell}"
        );
        for (method, _) in operations.iter().filter(|(_, present)| *present) {
            let method_cell = format!("`{method}`");
            assert!(
                rows.iter().any(|cells| cells.len() >= 2
                    && cells[0] == method_cell
                    && cells[1] == path_cell),
                "docs/api.md has no table row for {method} {path}"
            );
        }
    }
}
