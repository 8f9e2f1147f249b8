//! The rules of a catalog search that do not depend on any engine: how user text becomes
//! words (no query syntax of either engine can be injected), which words match as
//! prefixes, how many matches a search considers, and the orders a search comes in.

/// The orders a search comes in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SearchSort {
    #[default]
    Relevance,
    Downloads,
    Recent,
    Name,
    Rating,
}

/// Most words of a text query that are used; the rest are ignored.
pub const MAX_QUERY_WORDS: usize = 8;
/// Words at least this long also match as prefixes (`atlass` finds `atlassian`); shorter
/// ones match whole words only. A one- or two-letter prefix matches a large part of any
/// catalog and makes the engine merge thousands of terms for one query.
pub const MIN_PREFIX_CHARS: usize = 3;

/// Most matches a text search considers: the most recently added ones, when more match.
/// Ranking and facet counts cost in proportion to the matches, so this is what bounds
/// the cost of any one query however broad its words (a word in every description
/// matches the whole catalog). Narrower searches are exact.
pub const MAX_TEXT_MATCHES: i64 = 10_000;

/// Whether a query word (from [`query_words`]) matches as a prefix.
pub fn matches_as_prefix(word: &str) -> bool {
    word.chars().count() >= MIN_PREFIX_CHARS
}

/// Splits user text into plain words (letters and digits only), so no query syntax of
/// either engine can be injected, and lowercases them.
pub fn query_words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(MAX_QUERY_WORDS)
        .map(|w| w.chars().take(64).collect::<String>().to_lowercase())
        .collect()
}

impl SearchSort {
    /// The order a search with this text really comes in: relevance needs words to rank
    /// by, so without any it is downloads. Cursors must be issued and read in this order.
    pub fn for_text(self, text: Option<&str>) -> SearchSort {
        match self {
            SearchSort::Relevance if text.is_none_or(|t| query_words(t).is_empty()) => {
                SearchSort::Downloads
            }
            other => other,
        }
    }

    pub fn parse(s: &str) -> Option<SearchSort> {
        Some(match s {
            "relevance" => SearchSort::Relevance,
            "downloads" => SearchSort::Downloads,
            "recent" => SearchSort::Recent,
            "name" => SearchSort::Name,
            "rating" => SearchSort::Rating,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_text_is_reduced_to_plain_words() {
        assert_eq!(
            query_words("Jira \"ticket\"* OR x'; DROP TABLE plugins;--"),
            ["jira", "ticket", "or", "x", "drop", "table", "plugins"]
        );
        assert!(query_words("%%% ''' ***").is_empty());
        assert_eq!(query_words(&"a ".repeat(100)).len(), 8);
    }

    #[test]
    fn relevance_needs_words() {
        assert_eq!(
            SearchSort::Relevance.for_text(Some("**")),
            SearchSort::Downloads
        );
        assert_eq!(
            SearchSort::Relevance.for_text(Some("jira")),
            SearchSort::Relevance
        );
        assert!(matches_as_prefix("jir") && !matches_as_prefix("ji"));
    }
}
