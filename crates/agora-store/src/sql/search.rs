//! Catalog search: full-text (SQLite FTS5 or PostgreSQL tsvector) plus exact filters,
//! ordered by relevance, downloads, recency or name, paged by keyset cursors.

use sqlx::AnyPool;
use sqlx::any::AnyRow;

use super::Dialect;
use super::rows::{PLUGIN_COLUMNS, plugin_from_row};
use crate::metadata::*;

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

/// ` AND (visibility condition)` for a non-admin viewer, with placeholders from `$first`
/// for [`Viewer::visibility_ids`]: public, a private publisher's, or offered to one of the
/// viewer's tenants.
pub(super) fn visibility_condition(viewer: &Viewer, first: usize) -> String {
    if viewer.private_publishers.is_empty() && viewer.tenants.is_empty() {
        return " AND p.visibility = 'public'".into();
    }
    let placeholders = |from: usize, n: usize| {
        (from..from + n)
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut any = vec!["p.visibility = 'public'".to_owned()];
    if !viewer.private_publishers.is_empty() {
        any.push(format!(
            "p.publisher_id IN ({})",
            placeholders(first, viewer.private_publishers.len())
        ));
    }
    if !viewer.tenants.is_empty() {
        any.push(format!(
            "EXISTS (SELECT 1 FROM entitlements e WHERE e.plugin_id = p.id AND e.tenant_id IN ({}))",
            placeholders(first + viewer.private_publishers.len(), viewer.tenants.len())
        ));
    }
    format!(" AND ({})", any.join(" OR "))
}

/// A label as PostgreSQL's `plugins.labels` array holds it: `kind:value` (kinds hold no
/// colon, so the first one splits it). The array is written from `plugin_labels` with the
/// same concatenation ([`label_array_update`], migration 0019).
fn label_key(kind: &str, value: &str) -> String {
    format!("{kind}:{value}")
}

/// The `SET` item that rewrites a plugin's label array from its `plugin_labels` rows
/// (`, labels = ...`, with `plugin` the placeholder of its id), or nothing on SQLite,
/// which searches `plugin_labels` itself.
pub(super) fn label_array_update(dialect: Dialect, plugin: &str) -> String {
    match dialect {
        Dialect::Sqlite => String::new(),
        Dialect::Postgres => format!(
            ", labels = ARRAY(SELECT kind || ':' || value FROM plugin_labels \
             WHERE plugin_id = {plugin} ORDER BY 1)"
        ),
    }
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

/// Ratings scale relevance by 0.8 (rank 1.0) to 1.2 (rank 5.0): among equally good
/// text matches the better rated plugin comes first, and no rating buries a close match.
const RATING_BOOST: &str = "(1.0 + (p.rating_rank - 3000) / 10000.0)";

/// The `FROM` clause and score expression of a search (its `WHERE` conditions go into
/// the builder).
struct Source {
    from: &'static str,
    score: String,
    /// A text search: its matches are capped at `max_matches`, newest first.
    text: bool,
    max_matches: i64,
}

impl Source {
    /// What limits the matches of a text search to the newest `max_matches`, in the
    /// order the full-text index yields them (so the engine stops there).
    fn cap(&self, dialect: Dialect) -> String {
        let n = self.max_matches.max(1);
        match (self.text, dialect) {
            (false, _) => String::new(),
            (true, Dialect::Sqlite) => format!(" ORDER BY plugins_fts.rowid DESC LIMIT {n}"),
            (true, Dialect::Postgres) => format!(" ORDER BY p.id DESC LIMIT {n}"),
        }
    }
}

/// The source and the `WHERE` conditions of a search.
fn filters(dialect: Dialect, q: &SearchQuery, b: &mut Builder) -> Source {
    let words = q.text.as_deref().map(query_words).unwrap_or_default();
    let has_text = !words.is_empty();
    let (from, score) = if has_text {
        match dialect {
            Dialect::Sqlite => {
                let expr = words
                    .iter()
                    .map(|w| {
                        let star = if matches_as_prefix(w) { "*" } else { "" };
                        format!("\"{w}\"{star}")
                    })
                    .collect::<Vec<_>>()
                    .join(" ");
                let ph = b.arg(Arg::Text(expr));
                b.conditions.push(format!("plugins_fts MATCH {ph}"));
                // CROSS JOIN fixes the join order in SQLite: the full-text match drives and
                // filters apply to its hits. Left to itself, the planner may scan a filter's
                // index and run the whole full-text query once per row (seconds, not ms).
                (
                    "plugins_fts CROSS JOIN plugins p ON p.id = plugins_fts.rowid",
                    format!("bm25(plugins_fts, 10.0, 10.0, 5.0, 1.0, 3.0) * {RATING_BOOST}"),
                )
            }
            Dialect::Postgres => {
                let expr = words
                    .iter()
                    .map(|w| {
                        let star = if matches_as_prefix(w) { ":*" } else { "" };
                        format!("{w}{star}")
                    })
                    .collect::<Vec<_>>()
                    .join(" & ");
                let ph = b.arg(Arg::Text(expr));
                b.conditions
                    .push(format!("p.search @@ to_tsquery('simple', {ph})"));
                (
                    "plugins p",
                    format!(
                        "CAST(-ts_rank(p.search, to_tsquery('simple', {ph})) * {RATING_BOOST} AS DOUBLE PRECISION)"
                    ),
                )
            }
        }
    } else {
        ("plugins p", "CAST(0 AS DOUBLE PRECISION)".to_owned())
    };
    let source = Source {
        from,
        score,
        text: has_text,
        max_matches: q.max_matches,
    };

    b.conditions.push("p.latest_version IS NOT NULL".into());
    let wanted: Vec<(&str, &String)> = [
        ("tag", &q.tag),
        ("category", &q.category),
        ("capability", &q.capability),
    ]
    .into_iter()
    .filter_map(|(kind, value)| Some((kind, value.as_ref()?)))
    .collect();
    if !wanted.is_empty() {
        let condition = match dialect {
            // One index condition on the plugin's label array, which PostgreSQL estimates
            // from the array's statistics and ANDs with the full-text index in one bitmap.
            Dialect::Postgres => {
                let keys: Vec<String> = wanted
                    .iter()
                    .map(|(kind, value)| b.arg(Arg::Text(label_key(kind, value))))
                    .collect();
                format!("p.labels @> ARRAY[{}]::TEXT[]", keys.join(", "))
            }
            // All label filters in one pass over the labels: the plugins holding every
            // wanted (kind, value). Written as one IN per label, a planner with stale
            // statistics may join the label sets to each other; this shape has no such plan.
            Dialect::Sqlite => {
                let any: Vec<String> = wanted
                    .iter()
                    .map(|(kind, value)| {
                        let ph = b.arg(Arg::Text((*value).clone()));
                        format!("(kind = '{kind}' AND value = {ph})")
                    })
                    .collect();
                format!(
                    "p.id IN (SELECT plugin_id FROM plugin_labels WHERE {} GROUP BY plugin_id HAVING COUNT(*) = {})",
                    any.join(" OR "),
                    any.len()
                )
            }
        };
        b.conditions.push(condition);
    }
    if let Some(provider) = &q.provider {
        let ph = b.arg(Arg::Text(provider.clone()));
        b.conditions.push(format!("p.provider = {ph}"));
    }
    if let Some(runtime) = &q.runtime {
        let ph = b.arg(Arg::Text(runtime.clone()));
        // A third of the catalog holds each runtime: never worth its index. SQLite takes
        // an equality on an indexed column for a selective one (with statistics too) and,
        // at 100,000 plugins, sorted the 33,000 `runtime=wasm` rows for the page (17 ms)
        // instead of walking the sort order's index (1 ms); `+` keeps it off the index.
        let column = match dialect {
            Dialect::Sqlite => "+p.runtime",
            Dialect::Postgres => "p.runtime",
        };
        b.conditions.push(format!("{column} = {ph}"));
    }
    if let Some(publisher) = &q.publisher {
        let ph = b.arg(Arg::Text(publisher.clone()));
        b.conditions.push(format!("p.publisher = {ph}"));
    }
    if q.verified {
        b.conditions.push("p.verified = 1".into());
    }
    if q.verified_release {
        b.conditions
            .push("p.latest_verification = 'verified'".into());
    }
    if let Some(min) = q.min_rating {
        let ph = b.arg(Arg::Int(min.clamp(1, 5)));
        b.conditions.push(format!(
            "(p.rating_count > 0 AND p.rating_sum >= {ph} * p.rating_count)"
        ));
    }
    if let Some(host) = &q.compatible_with {
        let ph = b.arg(Arg::Text(version_key(host)));
        b.conditions.push(format!(
            "(p.min_core_key IS NULL OR p.min_core_key <= {ph})"
        ));
    }
    if !q.viewer.admin {
        let first = b.args.len() + 1;
        let condition = visibility_condition(&q.viewer, first);
        for id in q.viewer.visibility_ids() {
            b.args.push(Arg::Int(id));
        }
        b.conditions
            .push(condition.trim_start_matches(" AND ").to_owned());
    }
    source
}

pub(super) fn plan(dialect: Dialect, q: &SearchQuery) -> Plan {
    let mut b = Builder::default();
    let sort = q.sort.for_text(q.text.as_deref());
    let source = filters(dialect, q, &mut b);

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
        SearchSort::Rating => (
            "rating_rank DESC, id ASC",
            match &q.after {
                Some(SearchCursor::Rating { rank, id }) => {
                    let r = b.arg(Arg::Int(*rank));
                    let i = b.arg(Arg::Int(*id));
                    Some(format!(
                        "(rating_rank < {r} OR (rating_rank = {r} AND id > {i}))"
                    ))
                }
                _ => None,
            },
        ),
    };
    let limit = q.limit.clamp(1, 1000) as i64;
    let limit_ph = b.arg(Arg::Int(limit + 1));
    let (from, conditions, cap) = (source.from, b.conditions.join(" AND "), source.cap(dialect));
    // The matches (capped for text), then the score over just those, then the page.
    // On SQLite bm25 can only be computed inside the full-text query, for the rows it
    // emits; on PostgreSQL ts_rank is computed over the capped rows only.
    let hits = match dialect {
        Dialect::Sqlite => format!(
            "SELECT {PLUGIN_COLUMNS}, {score} AS score FROM {from} WHERE {conditions}{cap}",
            score = source.score
        ),
        Dialect::Postgres => format!(
            "SELECT p.*, {score} AS score FROM (SELECT {PLUGIN_COLUMNS}, p.search FROM {from} \
             WHERE {conditions}{cap}) AS p",
            score = source.score
        ),
    };
    let sql = format!(
        "SELECT {PLUGIN_COLUMNS}, p.score FROM ({hits}) AS p {keyset} ORDER BY {order} LIMIT {limit_ph}",
        keyset = keyset.map(|k| format!("WHERE {k}")).unwrap_or_default(),
    );
    Plan {
        sql,
        args: b.args,
        sort,
        limit,
    }
}

/// A search statement, planned for its own arguments on PostgreSQL. A named (cached)
/// statement gets PostgreSQL's generic plan from its sixth run on, made without knowing
/// how many plugins the words or labels match: at 100,000 plugins a one-word search then
/// read all ~10,000 matches through the full-text index (66 ms) where its own plan stops
/// after the newest 1,000 (10 ms). An unnamed statement is planned with its arguments
/// every time, and search SQL, built per filter combination, would only crowd the
/// statement cache anyway. SQLite's plans do not depend on the arguments: it caches.
fn statement(
    dialect: Dialect,
    sql: &str,
) -> sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments> {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).persistent(dialect == Dialect::Sqlite)
}

pub(super) async fn run(pool: &AnyPool, dialect: Dialect, q: &SearchQuery) -> Result<SearchResult> {
    let plan = plan(dialect, q);
    let (sort, limit) = (plan.sort, plan.limit);
    let rows: Vec<AnyRow> = plan
        .bind(statement(dialect, &plan.sql))
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
            SearchSort::Rating => SearchCursor::Rating {
                rank: last.rating_rank,
                id: last.id,
            },
        }),
        _ => None,
    };
    Ok(SearchResult { plugins, next })
}

/// Most values listed per facet (the most frequent ones).
const MAX_FACET_VALUES: usize = 12;

/// Counts the search's hits by provider, runtime, label, rating and verification (of the
/// publisher, and of the latest version) in one statement over the filtered set.
pub(super) async fn facets(pool: &AnyPool, dialect: Dialect, q: &SearchQuery) -> Result<Facets> {
    let mut b = Builder::default();
    let source = filters(dialect, q, &mut b);
    // Label counts: from the hits' label arrays on PostgreSQL (no second table to join),
    // from plugin_labels on SQLite.
    let (label_column, label_counts) = match dialect {
        Dialect::Postgres => (
            ", p.labels",
            "SELECT split_part(l, ':', 1), substr(l, strpos(l, ':') + 1), COUNT(*) \
             FROM hits CROSS JOIN LATERAL unnest(hits.labels) AS l GROUP BY l",
        ),
        Dialect::Sqlite => (
            "",
            "SELECT l.kind, l.value, COUNT(*) FROM hits JOIN plugin_labels l ON l.plugin_id = hits.id \
             GROUP BY l.kind, l.value",
        ),
    };
    let sql = format!(
        "WITH hits AS (SELECT p.id, p.provider, p.runtime, p.verified, p.latest_verification, \
         p.rating_count, p.rating_sum{label_column} \
         FROM {from} WHERE {conditions}{cap}) \
         SELECT 'total' AS kind, '' AS value, COUNT(*) AS n FROM hits \
         UNION ALL SELECT 'provider', provider, COUNT(*) FROM hits WHERE provider IS NOT NULL GROUP BY provider \
         UNION ALL SELECT 'runtime', runtime, COUNT(*) FROM hits GROUP BY runtime \
         UNION ALL {label_counts} \
         UNION ALL SELECT 'verified', '', COUNT(*) FROM hits WHERE verified = 1 \
         UNION ALL SELECT 'verified-release', '', COUNT(*) FROM hits WHERE latest_verification = 'verified' \
         UNION ALL SELECT 'rating', '4', COUNT(*) FROM hits WHERE rating_count > 0 AND rating_sum >= 4 * rating_count \
         UNION ALL SELECT 'rating', '3', COUNT(*) FROM hits WHERE rating_count > 0 AND rating_sum >= 3 * rating_count \
         UNION ALL SELECT 'rating', '2', COUNT(*) FROM hits WHERE rating_count > 0 AND rating_sum >= 2 * rating_count \
         UNION ALL SELECT 'rating', '1', COUNT(*) FROM hits WHERE rating_count > 0",
        from = source.from,
        conditions = b.conditions.join(" AND "),
        cap = source.cap(dialect),
    );
    let plan = Plan {
        sql,
        args: b.args,
        sort: SearchSort::Name,
        limit: 0,
    };
    let rows: Vec<AnyRow> = plan
        .bind(statement(dialect, &plan.sql))
        .fetch_all(pool)
        .await?;
    let mut facets = Facets::default();
    for row in &rows {
        let kind: String = sqlx::Row::try_get(row, "kind")?;
        let value: String = sqlx::Row::try_get(row, "value")?;
        let n: i64 = sqlx::Row::try_get(row, "n")?;
        let list = match kind.as_str() {
            "total" => {
                facets.total = n;
                continue;
            }
            "verified" => {
                facets.verified = n;
                continue;
            }
            "verified-release" => {
                facets.verified_releases = n;
                continue;
            }
            "rating" => {
                if n > 0 {
                    facets.ratings.push((value.parse().unwrap_or(1), n));
                }
                continue;
            }
            "provider" => &mut facets.providers,
            "runtime" => &mut facets.runtimes,
            "tag" => &mut facets.tags,
            "category" => &mut facets.categories,
            _ => &mut facets.capabilities,
        };
        list.push((value, n));
    }
    for list in [
        &mut facets.providers,
        &mut facets.runtimes,
        &mut facets.tags,
        &mut facets.categories,
        &mut facets.capabilities,
    ] {
        list.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        list.truncate(MAX_FACET_VALUES);
    }
    facets.ratings.sort_by_key(|r| std::cmp::Reverse(r.0));
    facets.capped = source.text && facets.total >= source.max_matches;
    Ok(facets)
}

#[async_trait::async_trait]
impl CatalogStore for super::SqlStore {
    async fn search(&self, query: &SearchQuery) -> Result<SearchResult> {
        let mut result = run(&self.read, self.dialect, query).await?;
        self.load_derived(&mut result.plugins).await?;
        Ok(result)
    }
    async fn facets(&self, query: &SearchQuery) -> Result<Facets> {
        facets(&self.read, self.dialect, query).await
    }
    async fn catalog_stamp(&self) -> Result<i64> {
        Ok(
            // Both ids only grow, so their sum changes whenever either table does: the worker
            // records runs without an audit event, and runs change the catalog's verdicts.
            sqlx::query_scalar(
                "SELECT CAST((SELECT COALESCE(MAX(id), 0) FROM audit_events) \
                 + (SELECT COALESCE(MAX(id), 0) FROM verifications) AS BIGINT)",
            )
            .fetch_one(&self.read)
            .await?,
        )
    }
}
