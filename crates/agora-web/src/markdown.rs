//! README and changelog rendering: CommonMark (with tables, strikethrough, task lists) to
//! HTML, then sanitized with ammonia's allow-list, so a plugin's documentation cannot run
//! script, load frames or style the page. Rendered documents are cached by digest.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use agora_core::Digest;
use pulldown_cmark::{Event, Options, Parser, Tag, html};

/// Largest document rendered; longer ones are cut (and say so).
pub const MAX_DOC_BYTES: usize = 512 * 1024;
/// Most HTML rendered from one document, before sanitizing. Markdown can expand a lot
/// (a table row is padded to its header's width: 144 KB once became 71 MB), so the output
/// is bounded, not only the input.
pub const MAX_HTML_BYTES: usize = 1024 * 1024;
/// Most table cells rendered from one document.
pub const MAX_TABLE_CELLS: usize = 20_000;
/// Most time spent rendering one document.
pub const MAX_RENDER_TIME: Duration = Duration::from_secs(1);

/// Why a document was not rendered whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    Input,
    Output,
    Cells,
    Time,
}

/// The parser's events, stopping at the first budget exhausted.
struct Budgeted<'a, I> {
    events: I,
    cells: usize,
    seen: usize,
    started: Instant,
    cut: &'a Cell<Option<Cut>>,
}

impl<'e, I: Iterator<Item = Event<'e>>> Iterator for Budgeted<'_, I> {
    type Item = Event<'e>;

    fn next(&mut self) -> Option<Event<'e>> {
        if self.cut.get().is_some() {
            return None;
        }
        let event = self.events.next()?;
        self.seen += 1;
        if matches!(event, Event::Start(Tag::TableCell)) {
            self.cells += 1;
            if self.cells > MAX_TABLE_CELLS {
                self.cut.set(Some(Cut::Cells));
                return None;
            }
        }
        if self.seen.is_multiple_of(1024) && self.started.elapsed() > MAX_RENDER_TIME {
            self.cut.set(Some(Cut::Time));
            return None;
        }
        Some(event)
    }
}

/// HTML output that refuses to grow past [`MAX_HTML_BYTES`].
struct Capped<'a> {
    html: String,
    cut: &'a Cell<Option<Cut>>,
}

impl std::fmt::Write for Capped<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if self.html.len() + s.len() > MAX_HTML_BYTES {
            self.cut.set(Some(Cut::Output));
            return Err(std::fmt::Error);
        }
        self.html.push_str(s);
        Ok(())
    }
}

/// Markdown to sanitized HTML, within the size, table and time budgets above; a document
/// over budget is cut, and says so.
pub fn render_markdown(source: &str) -> String {
    let cut = Cell::new(None);
    let source = if source.len() > MAX_DOC_BYTES {
        let mut end = MAX_DOC_BYTES;
        while !source.is_char_boundary(end) {
            end -= 1;
        }
        cut.set(Some(Cut::Input));
        &source[..end]
    } else {
        source
    };
    // No footnotes or task lists: their anchors and checkboxes would not survive the
    // sanitizer (relative links and inputs are removed).
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
    let input_cut = cut.get();
    let render_cut = Cell::new(None);
    let events = Budgeted {
        events: Parser::new_ext(source, options),
        cells: 0,
        seen: 0,
        started: Instant::now(),
        cut: &render_cut,
    };
    let mut raw = Capped {
        html: String::with_capacity(source.len().min(MAX_HTML_BYTES) * 3 / 2),
        cut: &render_cut,
    };
    // An error here only means the output budget was reached; what was written stays.
    let _ = html::write_html_fmt(&mut raw, events);
    let mut clean = ammonia::Builder::default()
        .link_rel(Some("noopener noreferrer nofollow ugc"))
        .url_schemes(["http", "https", "mailto"].into_iter().collect())
        // Relative links and images point into the plugin's files, which are not served
        // as pages: they would only be broken links and failed loads.
        .url_relative(ammonia::UrlRelative::Deny)
        // Images only over https, as the page's Content-Security-Policy allows.
        .attribute_filter(|element, attribute, value| {
            if element == "img" && attribute == "src" && !value.starts_with("https://") {
                None
            } else {
                Some(value.into())
            }
        })
        .clean(&raw.html)
        .to_string();
    match render_cut.get().or(input_cut) {
        None => {}
        Some(Cut::Input) => clean.push_str(
            "<p><em>(The rest of this document is longer than this page shows.)</em></p>",
        ),
        Some(Cut::Output | Cut::Cells | Cut::Time) => clean.push_str(
            "<p><em>(This document is too large or complex to show in full here; the rest is \
             cut. Install the plugin to read it whole.)</em></p>",
        ),
    }
    clean
}

/// Rendered documents by content digest (a digest's bytes never change), bounded by
/// their total size.
pub struct DocCache {
    entries: Mutex<(HashMap<Digest, std::sync::Arc<str>>, usize)>,
    max_bytes: usize,
}

impl DocCache {
    pub fn new(max_bytes: usize) -> DocCache {
        DocCache {
            entries: Mutex::new((HashMap::new(), 0)),
            max_bytes,
        }
    }

    pub fn get(&self, digest: &Digest) -> Option<std::sync::Arc<str>> {
        self.entries.lock().ok()?.0.get(digest).cloned()
    }

    pub fn put(&self, digest: Digest, html: String) -> std::sync::Arc<str> {
        let html: std::sync::Arc<str> = html.into();
        if let Ok(mut guard) = self.entries.lock() {
            let (entries, bytes) = &mut *guard;
            if *bytes + html.len() > self.max_bytes {
                // Forgetting everything at once is crude but bounded and rare: the
                // working set of documents is small next to the catalog.
                entries.clear();
                *bytes = 0;
            }
            if html.len() <= self.max_bytes && entries.insert(digest, html.clone()).is_none() {
                *bytes += html.len();
            }
        }
        html
    }
}

#[cfg(test)]
mod tests {
    use super::render_markdown;

    #[test]
    fn renders_markdown_and_removes_anything_active() {
        let html = render_markdown(
            "# Title\n\nSome *text* and a [link](https://example.com).\n\n\
             <script>alert(1)</script>\n\n<img src=x onerror=alert(2)>\n\n\
             [bad](javascript:alert(3))\n\n<iframe src=https://evil.test></iframe>\n\n\
             <a href=\"https://x.test\" onclick=\"alert(4)\" style=\"color:red\">x</a>\n\n| a | b |\n|---|---|\n| 1 | 2 |\n",
        );
        assert!(html.contains("<h1>Title</h1>"));
        assert!(html.contains("<em>text</em>"));
        assert!(html.contains("<table>"));
        assert!(html.contains("rel=\"noopener noreferrer nofollow ugc\""));
        let images = render_markdown(
            "![a](https://ok.test/a.png) ![b](http://plain.test/b.png) ![c](c.png)",
        );
        assert!(images.contains("src=\"https://ok.test/a.png\""), "{images}");
        assert!(
            !images.contains("plain.test") && !images.contains("c.png"),
            "{images}"
        );
        for bad in [
            "<script",
            "onerror",
            "javascript:",
            "<iframe",
            "onclick",
            "style=",
        ] {
            assert!(!html.contains(bad), "{bad} survived in {html}");
        }
    }

    #[test]
    fn the_document_cache_is_bounded_by_bytes() {
        let cache = super::DocCache::new(100);
        let d = |b: &[u8]| agora_core::Digest::of(b);
        cache.put(d(b"a"), "x".repeat(60));
        assert!(cache.get(&d(b"a")).is_some());
        cache.put(d(b"b"), "y".repeat(60)); // over 100 bytes: starts over
        assert!(cache.get(&d(b"a")).is_none());
        assert!(cache.get(&d(b"b")).is_some());
        cache.put(d(b"c"), "z".repeat(101)); // larger than the cache: not kept
        assert!(cache.get(&d(b"c")).is_none());
    }

    #[test]
    fn a_table_that_pads_to_millions_of_cells_is_cut_and_says_so() {
        // A wide header and many one-cell rows: each row is padded to the header's width.
        let columns = 2_000;
        let mut doc = String::from("|");
        doc.push_str(&"h|".repeat(columns));
        doc.push_str("\n|");
        doc.push_str(&"-|".repeat(columns));
        doc.push('\n');
        doc.push_str(&"|x\n".repeat(20_000));
        assert!(doc.len() < super::MAX_DOC_BYTES);
        let html = render_markdown(&doc);
        assert!(
            html.len() <= super::MAX_HTML_BYTES + 1024,
            "{} bytes",
            html.len()
        );
        assert!(
            html.contains("too large or complex"),
            "the cut is announced"
        );
        assert!(html.contains("<table>"), "what fits is shown");
    }

    #[test]
    fn output_is_bounded_even_without_tables() {
        // Every `<` becomes `&lt;`: 400 KB of them render to 1.6 MB.
        let doc = "<".repeat(400_000);
        let html = render_markdown(&doc);
        assert!(
            html.len() <= super::MAX_HTML_BYTES + 1024,
            "{} bytes",
            html.len()
        );
        assert!(html.contains("too large or complex"));
    }

    #[test]
    fn long_documents_are_cut_at_a_character_boundary() {
        let doc = "é".repeat(super::MAX_DOC_BYTES);
        let html = render_markdown(&doc);
        assert!(html.contains("longer than this page shows"));
    }
}
