//! Catalog search: full-text (SQLite FTS5 or PostgreSQL tsvector) plus exact filters,
//! ordered by relevance, downloads, recency or name, paged by keyset cursors.

use sqlx::AnyPool;
use sqlx::any::AnyRow;

use super::Dialect;
use super::rows::{PLUGIN_COLUMNS, plugin_from_row};
use crate::metadata::*;

/// Most words of a text query that are used; the rest are ignored.
const MAX_QUERY_WORDS: usize = 8;

/// A bound parameter of a dynamically built query.
enum Arg {
    Text(String),
    Int(i64),
    Float(f64),
}

#[derive(Default)]
struct Builder {
    conditions: Vec<String>,
    args: Vec<Arg>,
}

impl Builder {
    /// Adds an argument and returns its placeholder.
    fn arg(&mut self, arg: Arg) -> String {
        self.args.push(arg);
        format!("${}", self.args.len())
    }
}

/// Splits user text into plain words (letters and digits only), so no query syntax of
/// either engine can be injected, and lowercases them.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(MAX_QUERY_WORDS)
        .map(|w| w.chars().take(64).collect::<String>().to_lowercase())
        .collect()
}

/// ` AND (visibility condition)` for a non-admin viewer, with placeholders from `$first`.
pub(super) fn visibility_condition(viewer: &Viewer, first: usize) -> String {
    if viewer.private_publishers.is_empty() {
        return " AND p.visibility = 'public'".into();
    }
    let ids = (0..viewer.private_publishers.len())
        .map(|i| format!("${}", first + i))
        .collect::<Vec<_>>()
        .join(", ");
    format!(" AND (p.visibility = 'public' OR p.publisher_id IN ({ids}))")
}

/// A search as SQL, ready to run or to explain.
pub(super) struct Plan {
    pub sql: String,
    args: Vec<Arg>,
    sort: SearchSort,
    limit: i64,
}

impl Plan {
    pub fn bind<'q>(
        &self,
        mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
        for arg in &self.args {
            query = match arg {
                Arg::Text(s) => query.bind(s.clone()),
                Arg::Int(i) => query.bind(*i),
                Arg::Float(f) => query.bind(*f),
            };
        }
        query
    }
}

pub(super) fn plan(dialect: Dialect, q: &SearchQuery) -> Plan {
    let mut b = Builder::default();
    let words = q.text.as_deref().map(words).unwrap_or_default();
    let has_text = !words.is_empty();
    let sort = match q.sort {
        SearchSort::Relevance if !has_text => SearchSort::Downloads,
        other => other,
    };

    let (from, score) = if has_text {
        match dialect {
            Dialect::Sqlite => {
                let expr = words
                    .iter()
                    .map(|w| format!("\"{w}\"*"))
                    .collect::<Vec<_>>()
                    .join(" ");
                let ph = b.arg(Arg::Text(expr));
                b.conditions.push(format!("plugins_fts MATCH {ph}"));
                // CROSS JOIN fixes the join order in SQLite: the full-text match drives and
                // filters apply to its hits. Left to itself, the planner may scan a filter's
                // index and run the whole full-text query once per row (seconds, not ms).
                (
                    "plugins_fts CROSS JOIN plugins p ON p.id = plugins_fts.rowid",
                    "bm25(plugins_fts, 10.0, 10.0, 5.0, 1.0, 3.0)".to_owned(),
                )
            }
            Dialect::Postgres => {
                let expr = words
                    .iter()
                    .map(|w| format!("{w}:*"))
                    .collect::<Vec<_>>()
                    .join(" & ");
                let ph = b.arg(Arg::Text(expr));
                b.conditions
                    .push(format!("p.search @@ to_tsquery('simple', {ph})"));
                (
                    "plugins p",
                    format!(
                        "CAST(-ts_rank(p.search, to_tsquery('simple', {ph})) AS DOUBLE PRECISION)"
                    ),
                )
            }
        }
    } else {
        ("plugins p", "CAST(0 AS DOUBLE PRECISION)".to_owned())
    };

    b.conditions.push("p.latest_version IS NOT NULL".into());
    for (kind, value) in [
        ("tag", &q.tag),
        ("category", &q.category),
        ("capability", &q.capability),
    ] {
        if let Some(value) = value {
            let ph = b.arg(Arg::Text(value.clone()));
            b.conditions.push(format!(
                "p.id IN (SELECT plugin_id FROM plugin_labels WHERE kind = '{kind}' AND value = {ph})"
            ));
        }
    }
    if let Some(provider) = &q.provider {
        let ph = b.arg(Arg::Text(provider.clone()));
        b.conditions.push(format!("p.provider = {ph}"));
    }
    if let Some(runtime) = &q.runtime {
        let ph = b.arg(Arg::Text(runtime.clone()));
        b.conditions.push(format!("p.runtime = {ph}"));
    }
    if !q.viewer.admin {
        let first = b.args.len() + 1;
        let condition = visibility_condition(&q.viewer, first);
        for id in &q.viewer.private_publishers {
            b.args.push(Arg::Int(*id));
        }
        b.conditions
            .push(condition.trim_start_matches(" AND ").to_owned());
    }

    // Keyset: rows strictly after the cursor in the chosen order.
    let (order, keyset) = match sort {
        SearchSort::Relevance => (
            "score ASC, id ASC",
            match &q.after {
                Some(SearchCursor::Relevance { score, id }) => {
                    let s = b.arg(Arg::Float(*score));
                    let i = b.arg(Arg::Int(*id));
                    Some(format!("(score > {s} OR (score = {s} AND id > {i}))"))
                }
                _ => None,
            },
        ),
        SearchSort::Downloads => (
            "downloads DESC, id ASC",
            match &q.after {
                Some(SearchCursor::Downloads { downloads, id }) => {
                    let d = b.arg(Arg::Int(*downloads));
                    let i = b.arg(Arg::Int(*id));
                    Some(format!(
                        "(downloads < {d} OR (downloads = {d} AND id > {i}))"
                    ))
                }
                _ => None,
            },
        ),
        SearchSort::Recent => (
            "updated_at DESC, id ASC",
            match &q.after {
                Some(SearchCursor::Recent { updated_at, id }) => {
                    let u = b.arg(Arg::Int(*updated_at));
                    let i = b.arg(Arg::Int(*id));
                    Some(format!(
                        "(updated_at < {u} OR (updated_at = {u} AND id > {i}))"
                    ))
                }
                _ => None,
            },
        ),
        SearchSort::Name => (
            "name ASC, id ASC",
            match &q.after {
                Some(SearchCursor::Name { name, id }) => {
                    let n = b.arg(Arg::Text(name.clone()));
                    let i = b.arg(Arg::Int(*id));
                    Some(format!("(name > {n} OR (name = {n} AND id > {i}))"))
                }
                _ => None,
            },
        ),
    };
    let limit = q.limit.clamp(1, 1000) as i64;
    let limit_ph = b.arg(Arg::Int(limit + 1));
    let sql = format!(
        "SELECT * FROM (SELECT {PLUGIN_COLUMNS}, {score} AS score FROM {from} WHERE {conditions}) AS hits \
         {keyset} ORDER BY {order} LIMIT {limit_ph}",
        conditions = b.conditions.join(" AND "),
        keyset = keyset.map(|k| format!("WHERE {k}")).unwrap_or_default(),
    );
    Plan {
        sql,
        args: b.args,
        sort,
        limit,
    }
}

pub(super) async fn run(pool: &AnyPool, dialect: Dialect, q: &SearchQuery) -> Result<SearchResult> {
    let plan = plan(dialect, q);
    let (sort, limit) = (plan.sort, plan.limit);
    let rows: Vec<AnyRow> = plan
        .bind(sqlx::query(sqlx::AssertSqlSafe(plan.sql.clone())))
        .fetch_all(pool)
        .await?;
    let has_more = rows.len() as i64 > limit;
    let mut plugins = Vec::with_capacity(rows.len());
    let mut last_score = 0.0;
    for row in rows.iter().take(limit as usize) {
        plugins.push(plugin_from_row(row)?);
        last_score = sqlx::Row::try_get::<f64, _>(row, "score")?;
    }
    let next = match plugins.last() {
        Some(last) if has_more => Some(match sort {
            SearchSort::Relevance => SearchCursor::Relevance {
                score: last_score,
                id: last.id,
            },
            SearchSort::Downloads => SearchCursor::Downloads {
                downloads: last.downloads,
                id: last.id,
            },
            SearchSort::Recent => SearchCursor::Recent {
                updated_at: last.updated_at,
                id: last.id,
            },
            SearchSort::Name => SearchCursor::Name {
                name: last.name.clone(),
                id: last.id,
            },
        }),
        _ => None,
    };
    Ok(SearchResult { plugins, next })
}

#[cfg(test)]
mod tests {
    use super::words;

    #[test]
    fn query_text_is_reduced_to_plain_words() {
        assert_eq!(
            words("Jira \"ticket\"* OR x'; DROP TABLE plugins;--"),
            ["jira", "ticket", "or", "x", "drop", "table", "plugins"]
        );
        assert!(words("%%% ''' ***").is_empty());
        assert_eq!(words(&"a ".repeat(100)).len(), 8);
    }
}
