//! How results reach the user: text for people, JSON (with `--json`) for programs.
//!
//! Text that came from a registry (descriptions, names, reasons, error details) is
//! never printed raw: a control character in it could recolour or rewrite the user's
//! terminal. Everything printed for people passes [`terminal_safe`] (JSON output escapes
//! control characters by itself).

use std::borrow::Cow;

use serde::Serialize;

/// `text` with every control character but line breaks and tabs shown escaped (`\u{1b}`)
/// instead of sent to the terminal.
pub fn terminal_safe(text: &str) -> Cow<'_, str> {
    escape(text, |c| c.is_control() && c != '\n' && c != '\t')
}

/// One field of registry text on one line: every control character escaped, line breaks
/// included, so a field cannot forge the lines around it.
pub fn shown(text: &str) -> Cow<'_, str> {
    escape(text, char::is_control)
}

fn escape(text: &str, bad: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !text.chars().any(&bad) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if bad(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// An error and its causes on one line, joined by `: `, safe to print. Each text is said
/// once: a cause that a message before it already quotes (an error that prints its
/// source and also returns it as `source()`) is left out, and a context that its cause
/// repeats word for word ("invalid registry URL" then `invalid registry URL "x"`) gives
/// way to the cause.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string().replace('\n', " ");
        let text = text.trim();
        if text.is_empty() || parts.iter().any(|p| p.contains(text)) {
            continue;
        }
        if parts
            .last()
            .is_some_and(|last| text.starts_with(last.as_str()))
        {
            parts.pop();
        }
        parts.push(text.to_owned());
    }
    shown(&parts.join(": ")).into_owned()
}

pub struct Output {
    pub json: bool,
    pub quiet: bool,
}

impl Output {
    /// Prints `value` as JSON with `--json`, else the text `human` renders.
    pub fn show<T: Serialize>(
        &self,
        value: &T,
        human: impl FnOnce(&T) -> String,
    ) -> anyhow::Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(value)?);
        } else if !self.quiet {
            let text = human(value);
            if !text.is_empty() {
                println!("{}", terminal_safe(text.trim_end()));
            }
        }
        Ok(())
    }

    /// A progress or status message: stderr, never with `-q`.
    pub fn note(&self, message: &str) {
        if !self.quiet {
            eprintln!("{}", terminal_safe(message));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_from_a_registry_never_reach_the_terminal() {
        let evil = "nice plugin\u{1b}[2J\u{1b}]0;pwned\u{7}\rverified: yes\u{9b}31m";
        let safe = terminal_safe(evil);
        assert!(!safe.chars().any(|c| c.is_control()), "{safe}");
        assert!(safe.contains("\\u{1b}[2J"), "{safe}");
        assert_eq!(
            terminal_safe("two\nlines\tand a tab"),
            "two\nlines\tand a tab"
        );
        assert_eq!(shown("forged\nline"), "forged\\nline");
        assert!(matches!(terminal_safe("plain"), Cow::Borrowed(_)));
        let e = anyhow::anyhow!("registry said: \u{1b}[31mred");
        assert!(!one_line(&e).contains('\u{1b}'));
    }

    /// An error that prints its source and also returns it, as `thiserror` makes with
    /// `#[error("...: {source}")]`.
    #[derive(Debug)]
    struct Quoting(std::io::Error);

    impl std::fmt::Display for Quoting {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "cannot reach the registry at http://x/: {}", self.0)
        }
    }

    impl std::error::Error for Quoting {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn no_message_is_printed_twice() {
        let refused = || std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = anyhow::Error::new(Quoting(refused()));
        assert_eq!(
            one_line(&e),
            "cannot reach the registry at http://x/: refused"
        );
        let e = anyhow::Error::new(Quoting(refused())).context("whoami");
        assert_eq!(
            one_line(&e),
            "whoami: cannot reach the registry at http://x/: refused"
        );
        // A context its cause repeats gives way to the cause.
        let e = anyhow::anyhow!("invalid registry URL \"x\": it has no scheme")
            .context("invalid registry URL");
        assert_eq!(one_line(&e), "invalid registry URL \"x\": it has no scheme");
        // Causes that differ are all kept, in order.
        let e = anyhow::Error::new(refused())
            .context("uploading plugin.wasm")
            .context("publish failed");
        assert_eq!(
            one_line(&e),
            "publish failed: uploading plugin.wasm: refused"
        );
        // Line breaks in a message do not start a new line.
        let e = anyhow::anyhow!("two\nlines");
        assert_eq!(one_line(&e), "two lines");
    }
}
