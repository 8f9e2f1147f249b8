//! The one rule for text that comes from outside: no control characters. NUL cannot be
//! stored by PostgreSQL (and SQLite would keep it), and escape sequences would rewrite a
//! terminal that prints the text later. Only text that is meant to span lines (a review's
//! body, a public key) may hold line breaks and tabs; every other field (names,
//! descriptions, reasons, contacts, parameters, paths, every string of a manifest being
//! published) is one line.
//!
//! The rule is applied twice, so the answer is the same 422 naming the field on every
//! backend and through every door: the HTTP layer refuses what no field may hold (paths,
//! query strings, JSON bodies and web forms, [`Lines::Multi`]) before any handler runs,
//! and each use case of `agora-registry` checks each of its fields with the field's own
//! rule before the store sees the value.

use crate::field::FieldError;

/// Where a text may contain line breaks and tabs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    /// One line: no control character at all.
    Single,
    /// Line breaks (`\n`, `\r`) and tabs are allowed; other control characters are not.
    Multi,
}

/// The first character of `text` that is not allowed, if any (C0 and C1 controls, DEL).
pub fn forbidden_char(text: &str, lines: Lines) -> Option<char> {
    text.chars()
        .find(|&c| c.is_control() && !(lines == Lines::Multi && matches!(c, '\n' | '\r' | '\t')))
}

/// How a forbidden character is named in an error: `U+0000`, with a name for the ones
/// people meet (`U+000A (a line break)`).
pub fn describe(c: char) -> String {
    let name = match c {
        '\0' => " (NUL)",
        '\n' | '\r' => " (a line break)",
        '\t' => " (a tab)",
        '\u{1b}' => " (escape)",
        '\u{7f}' => " (delete)",
        _ => "",
    };
    format!("U+{:04X}{name}", c as u32)
}

/// What a field with this rule accepts, as an error says it.
pub fn accepted(lines: Lines) -> &'static str {
    match lines {
        Lines::Single => "one line of text without control characters (no NUL, tab or line break)",
        Lines::Multi => "text without control characters (line breaks and tabs are fine)",
    }
}

/// Checks one field; the error names it, the character and what is accepted.
pub fn check(field: &str, text: &str, lines: Lines) -> Result<(), FieldError> {
    match forbidden_char(text, lines) {
        None => Ok(()),
        Some(c) => Err(FieldError::new(
            field,
            format!("contains the control character {}", describe(c)),
            Some(accepted(lines)),
        )),
    }
}

/// Checks a field that may be absent.
pub fn check_opt(field: &str, text: Option<&str>, lines: Lines) -> Result<(), FieldError> {
    text.map_or(Ok(()), |t| check(field, t, lines))
}

/// Checks every string (object keys included) of a JSON document; fields are named by
/// their path (`artifacts[0].path`), under `prefix`.
pub fn check_json(value: &serde_json::Value, prefix: &str, lines: Lines) -> Vec<FieldError> {
    let mut errors = Vec::new();
    walk(value, prefix.to_owned(), lines, &mut errors);
    errors
}

fn walk(value: &serde_json::Value, path: String, lines: Lines, errors: &mut Vec<FieldError>) {
    use serde_json::Value;
    match value {
        Value::String(s) => {
            if let Err(e) = check(&path, s, lines) {
                errors.push(e);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, format!("{path}[{i}]"), lines, errors);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                if forbidden_char(key, Lines::Single).is_some() {
                    let shown: String = key.escape_debug().take(80).collect();
                    errors.push(FieldError::new(
                        if path.is_empty() { "(key)" } else { &path },
                        format!("has a key with a control character: \"{shown}\""),
                        Some("keys without control characters"),
                    ));
                    continue;
                }
                walk(item, child, lines, errors);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_found_and_named() {
        assert_eq!(forbidden_char("plain text", Lines::Single), None);
        assert_eq!(forbidden_char("a\0b", Lines::Multi), Some('\0'));
        assert_eq!(forbidden_char("a\nb", Lines::Single), Some('\n'));
        assert_eq!(forbidden_char("a\nb\tc\r", Lines::Multi), None);
        assert_eq!(forbidden_char("\u{1b}[31m", Lines::Multi), Some('\u{1b}'));
        assert_eq!(forbidden_char("del\u{7f}", Lines::Multi), Some('\u{7f}'));
        assert_eq!(forbidden_char("c1\u{9b}", Lines::Multi), Some('\u{9b}'));
        assert_eq!(forbidden_char("é ü 漢字 🙂", Lines::Single), None);
        let e = check("reason", "x\0", Lines::Multi).unwrap_err();
        assert_eq!(e.field, "reason");
        assert!(e.problem.contains("U+0000 (NUL)"), "{e}");
        let e = check("description", "one\ntwo", Lines::Single).unwrap_err();
        assert!(e.problem.contains("U+000A (a line break)"), "{e}");
        assert!(e.expected.unwrap().contains("one line"));
        assert!(check_opt("display_name", None, Lines::Single).is_ok());
        assert!(check_opt("display_name", Some("a\tb"), Lines::Single).is_err());
        assert!(check_opt("body", Some("a\tb\r\n"), Lines::Multi).is_ok());
    }

    #[test]
    fn every_string_of_a_json_document_is_checked_with_its_path() {
        let doc = serde_json::json!({
            "name": "ok",
            "artifacts": [{"path": "a"}, {"path": "b\u{0}"}],
            "nested": {"deep": ["fine", "esc\u{1b}"]},
            "bad\u{0}key": 1,
        });
        let errors = check_json(&doc, "", Lines::Multi);
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"artifacts[1].path"), "{fields:?}");
        assert!(fields.contains(&"nested.deep[1]"), "{fields:?}");
        assert!(fields.contains(&"(key)"), "{fields:?}");
        assert_eq!(errors.len(), 3);
        assert!(check_json(&serde_json::json!({"a": "line\nbreak"}), "", Lines::Multi).is_empty());
    }
}
