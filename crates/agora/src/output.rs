//! How results reach the user: text for people, JSON (with `--json`) for programs.

use serde::Serialize;

/// An error and its causes on one line.
pub fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
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
                println!("{}", text.trim_end());
            }
        }
        Ok(())
    }

    /// A progress or status message: stderr, never with `-q`.
    pub fn note(&self, message: &str) {
        if !self.quiet {
            eprintln!("{message}");
        }
    }
}
