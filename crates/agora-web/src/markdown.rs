//! README and changelog rendering: CommonMark (with tables, strikethrough, task lists) to
//! HTML, then sanitized with ammonia's allow-list, so a plugin's documentation cannot run
//! script, load frames or style the page. Rendered documents are cached by digest.

use std::collections::HashMap;
use std::sync::Mutex;

use agora_core::Digest;
use pulldown_cmark::{Options, Parser, html};

/// Largest document rendered; longer ones are cut (and say so).
pub const MAX_DOC_BYTES: usize = 512 * 1024;

/// Markdown to sanitized HTML.
pub fn render_markdown(source: &str) -> String {
    let (source, cut) = if source.len() > MAX_DOC_BYTES {
        let mut end = MAX_DOC_BYTES;
        while !source.is_char_boundary(end) {
            end -= 1;
        }
        (&source[..end], true)
    } else {
        (source, false)
    };
    // No footnotes or task lists: their anchors and checkboxes would not survive the
    // sanitizer (relative links and inputs are removed).
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
    let mut raw = String::with_capacity(source.len() * 3 / 2);
    html::push_html(&mut raw, Parser::new_ext(source, options));
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
        .clean(&raw)
        .to_string();
    if cut {
        clean.push_str(
            "<p><em>(The rest of this document is longer than this page shows.)</em></p>",
        );
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
    fn long_documents_are_cut_at_a_character_boundary() {
        let doc = "é".repeat(super::MAX_DOC_BYTES);
        let html = render_markdown(&doc);
        assert!(html.contains("longer than this page shows"));
    }
}
