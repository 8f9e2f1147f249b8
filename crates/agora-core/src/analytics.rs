//! Analytics: the rules for what is counted, how it is rolled up and what a report holds.
//!
//! Events (a download, an install or removal an instance reported, a search, a batch of
//! plugin runs) are counted into **rollups**: per hour and per day, per plugin version and
//! tenant, added to (never overwritten), so events arriving late land in the bucket of the
//! time they happened and events taken by several servers add up exactly. Run durations
//! are counted into a fixed histogram ([`DURATION_BOUNDS_MS`]), so percentiles of any
//! period are read from summed histograms. Everything an outsider can grow has a bound:
//! distinct search queries per day ([`MAX_QUERIES_PER_DAY`]), error classes per version
//! ([`MAX_ERROR_CLASSES`]), the lengths of every stored text.
//!
//! Nothing here identifies a person: searches are kept as normalised query text with
//! counts, downloads as counts, instances by their id within a tenant.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::field::FieldError;

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// `2026-12-05`: the UTC day holding `at_ms` (Unix milliseconds).
pub fn day_name(at_ms: i64) -> String {
    // The civil date of a day number (Howard Hinnant's civil_from_days).
    let z = at_ms.div_euclid(DAY_MS) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The start (Unix milliseconds) of the UTC day written `YYYY-MM-DD`; `None` for
/// anything else, or a day that does not exist.
pub fn parse_day(day: &str) -> Option<i64> {
    if day.len() != 10 || day.as_bytes()[4] != b'-' || day.as_bytes()[7] != b'-' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let text = day.get(range)?;
        text.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| text.parse().ok())?
    };
    let (y, m, d) = (number(0..4)?, number(5..7)?, number(8..10)?);
    if y < 1970 || !(1..=12).contains(&m) {
        return None;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if d < 1 || d > days_in[(m - 1) as usize] {
        return None;
    }
    // Days since 1970-01-01 (Howard Hinnant's days_from_civil).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some((era * 146_097 + doe - 719_468) * DAY_MS)
}

/// A rollup's granularity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Period {
    Hour,
    Day,
}

impl Period {
    pub const ALL: [Period; 2] = [Period::Hour, Period::Day];

    pub fn as_str(self) -> &'static str {
        match self {
            Period::Hour => "hour",
            Period::Day => "day",
        }
    }

    pub fn len_ms(self) -> i64 {
        match self {
            Period::Hour => HOUR_MS,
            Period::Day => DAY_MS,
        }
    }

    /// The start (Unix milliseconds, UTC) of the bucket holding `at_ms`.
    pub fn bucket(self, at_ms: i64) -> i64 {
        at_ms.div_euclid(self.len_ms()) * self.len_ms()
    }
}

/// What a count counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CountKind {
    /// A download of a release (its manifest), once per client and release per hour.
    Download,
    /// An instance started running a version (reported by its agent).
    Install,
    /// An instance stopped running a version.
    Removal,
    /// Calls of a version on an instance (with failures and total duration).
    Run,
}

impl CountKind {
    pub const ALL: [CountKind; 4] = [
        CountKind::Download,
        CountKind::Install,
        CountKind::Removal,
        CountKind::Run,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CountKind::Download => "download",
            CountKind::Install => "install",
            CountKind::Removal => "removal",
            CountKind::Run => "run",
        }
    }

    pub fn parse(s: &str) -> Option<CountKind> {
        CountKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Upper bounds (inclusive, milliseconds) of the run-duration histogram's slots; the last
/// slot holds everything longer than the one before it.
pub const DURATION_BOUNDS_MS: [u64; 16] = [
    1,
    2,
    5,
    10,
    20,
    50,
    100,
    200,
    500,
    1_000,
    2_000,
    5_000,
    10_000,
    30_000,
    60_000,
    u64::MAX,
];
/// How many slots a duration histogram has.
pub const DURATION_SLOTS: usize = DURATION_BOUNDS_MS.len();

/// The histogram slot of a run that took `ms`.
pub fn duration_slot(ms: u64) -> usize {
    DURATION_BOUNDS_MS
        .iter()
        .position(|bound| ms <= *bound)
        .unwrap_or(DURATION_SLOTS - 1)
}

/// The `q`-quantile (0 < q ≤ 1) of a duration histogram, as the upper bound of the slot it
/// falls in (the last, open slot reports its lower bound): `None` without any run.
pub fn quantile_ms(histogram: &[u64], q: f64) -> Option<u64> {
    let total: u64 = histogram.iter().sum();
    if total == 0 || !(q > 0.0 && q <= 1.0) {
        return None;
    }
    // The rank of the run the quantile names: the smallest r with r >= q * total.
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0u64;
    for (slot, n) in histogram.iter().enumerate().take(DURATION_SLOTS) {
        seen += n;
        if seen >= rank {
            return Some(if slot == DURATION_SLOTS - 1 {
                DURATION_BOUNDS_MS[DURATION_SLOTS - 2]
            } else {
                DURATION_BOUNDS_MS[slot]
            });
        }
    }
    Some(DURATION_BOUNDS_MS[DURATION_SLOTS - 2])
}

/// Most distinct search queries counted per day; later new queries that day are counted
/// under [`OTHER_QUERY`], so nobody can grow the table by searching for random words.
pub const MAX_QUERIES_PER_DAY: usize = 5_000;
/// The row that counts the searches beyond [`MAX_QUERIES_PER_DAY`].
pub const OTHER_QUERY: &str = "(other)";
/// Longest query kept (in characters); longer ones are cut.
pub const MAX_QUERY_CHARS: usize = 64;

/// A search query as analytics keeps it: lower case, words separated by one space, at most
/// [`MAX_QUERY_CHARS`] characters, no control characters; a search without text (filters
/// only) is the empty query `""`.
pub fn query_key(q: &str) -> String {
    let mut out = String::new();
    for word in q.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(
            word.chars()
                .filter(|c| !c.is_control())
                .flat_map(char::to_lowercase),
        );
    }
    if out.chars().count() > MAX_QUERY_CHARS {
        out = out.chars().take(MAX_QUERY_CHARS).collect();
        out.truncate(out.trim_end().len());
    }
    out
}

/// Most distinct error classes kept per plugin version and tenant; later new classes are
/// counted under [`OTHER_ERROR`].
pub const MAX_ERROR_CLASSES: usize = 50;
/// The class that counts errors beyond [`MAX_ERROR_CLASSES`].
pub const OTHER_ERROR: &str = "other";
/// Longest error class.
pub const MAX_ERROR_CLASS_LEN: usize = 48;
/// Longest error sample (a crash report's first lines) kept, in characters.
pub const MAX_ERROR_SAMPLE_CHARS: usize = 1_000;
/// What an error class may look like, as errors say it.
pub const ERROR_CLASS_SYNTAX: &str =
    "1 to 48 characters of a-z, 0-9, '.', '_' and '-', starting with a letter or digit";

/// Checks an error class an agent sent (`field` names it in the error).
pub fn check_error_class(field: &str, class: &str) -> Result<(), FieldError> {
    let ok = !class.is_empty()
        && class.len() <= MAX_ERROR_CLASS_LEN
        && class
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && class
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!("{class:?} is not an error class"),
            Some(ERROR_CLASS_SYNTAX),
        ))
    }
}

/// The class of an error message the runner recorded, for agents that only have the text:
/// `refused`, `timeout`, `trap`, `killed`, `limit`, `status-4xx`, `status-5xx`, `crash`
/// or `error`.
pub fn classify(message: &str) -> &'static str {
    let m = message.to_ascii_lowercase();
    if m.starts_with("refused") {
        "refused"
    } else if let Some(rest) = m.strip_prefix("answered ") {
        match rest.as_bytes().first() {
            Some(b'4') => "status-4xx",
            Some(b'5') => "status-5xx",
            _ => "status-other",
        }
    } else if m.contains("timed out") || m.contains("timeout") || m.contains("deadline") {
        "timeout"
    } else if m.contains("trap") || m.contains("unreachable") || m.contains("panicked") {
        "trap"
    } else if m.contains("killed") || m.contains("signal") {
        "killed"
    } else if m.contains("limit") || m.contains("out of memory") || m.contains("fuel") {
        "limit"
    } else if m.contains("crash") || m.contains("exited") || m.contains("exit status") {
        "crash"
    } else {
        "error"
    }
}

/// How long analytics are kept. Raw events go after `raw_days` (counted from when they
/// arrived), hourly rollups after `hourly_days`, daily rollups after `daily_days` (0:
/// kept for ever).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub raw_days: u32,
    pub hourly_days: u32,
    pub daily_days: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            raw_days: 30,
            hourly_days: 14,
            daily_days: 0,
        }
    }
}

/// Most days a report covers.
pub const MAX_REPORT_DAYS: u32 = 366;
/// Rows a report's lists hold at most (top plugins, errors, pairs, searches).
pub const TOP_ROWS: usize = 20;
/// Version rows a report holds at most.
pub const MAX_VERSION_ROWS: usize = 200;

// ---- what agents send ----

/// Runs of one plugin version on an instance since its previous report (a delta, not a
/// running total): calls, failures, the duration histogram and the errors by class.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Execution {
    pub plugin: String,
    pub version: String,
    /// The digest of the code that ran (`sha256:...`), as the runner recorded it: with
    /// the instance that reported it, what a crash report names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// When these runs ended at the latest (Unix milliseconds): the hour and day they
    /// count for. A report may carry runs from before the previous one (sent late).
    pub at: i64,
    pub calls: u64,
    pub failures: u64,
    pub total_ms: u64,
    /// Calls per slot of [`DURATION_BOUNDS_MS`]; at most [`DURATION_SLOTS`] numbers.
    #[serde(default)]
    pub durations: Vec<u64>,
    #[serde(default)]
    pub errors: Vec<ErrorCount>,
}

/// Errors of one class among an [`Execution`]'s failures.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorCount {
    /// See [`ERROR_CLASS_SYNTAX`]; `crash` for a plugin that died.
    pub class: String,
    pub count: u64,
    /// The last message of this class (a crash report's first lines), cut at
    /// [`MAX_ERROR_SAMPLE_CHARS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

// ---- what a report holds ----

/// `GET /api/v1/analytics...`: one scope's analytics over `days` days up to `to`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AnalyticsReport {
    /// `registry`, `publisher:NAME`, `plugin:PUBLISHER/NAME` or `tenant:NAME`.
    pub scope: String,
    /// The first day covered (Unix milliseconds, UTC midnight).
    pub from: i64,
    /// The end of the last day covered (exclusive).
    pub to: i64,
    pub days: u32,
    /// Per day and (depending on the scope) per plugin or version.
    pub daily: Vec<DayRow>,
    /// Per plugin version, most downloaded and installed first.
    pub versions: Vec<VersionRow>,
    /// The most frequent error classes.
    pub errors: Vec<ErrorRow>,
    /// Plugins most often running together on one instance.
    pub together: Vec<PairRow>,
    /// The most frequent searches (registry scope only).
    pub searches: Vec<SearchRow>,
    /// The most frequent searches that found nothing (registry scope only).
    pub zero_searches: Vec<SearchRow>,
}

/// One day's counts. `plugin` and `version` are `*` where the scope sums over them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DayRow {
    pub day: String,
    pub plugin: String,
    pub version: String,
    pub downloads: u64,
    pub installs: u64,
    pub removals: u64,
    pub calls: u64,
    pub failures: u64,
    /// Searches that day (registry scope; 0 elsewhere).
    pub searches: u64,
}

/// One plugin version over the report's period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VersionRow {
    pub plugin: String,
    pub version: String,
    /// When it was published (Unix milliseconds).
    pub published_at: i64,
    pub downloads: u64,
    pub installs: u64,
    pub removals: u64,
    /// Instances running it now (as their agents last reported).
    pub active_instances: u64,
    pub calls: u64,
    pub failures: u64,
    /// Calls that succeeded, in percent; none without calls.
    pub success_rate: Option<f64>,
    pub p50_ms: Option<u64>,
    pub p90_ms: Option<u64>,
    pub p99_ms: Option<u64>,
}

/// One error class of one plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorRow {
    pub plugin: String,
    pub class: String,
    pub count: u64,
    pub first_seen: i64,
    pub last_seen: i64,
    /// The versions it occurred in, newest first.
    pub versions: Vec<String>,
    /// The last message of this class.
    pub sample: Option<String>,
}

/// Two plugins running together, and on how many instances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PairRow {
    pub first: String,
    pub second: String,
    pub instances: u64,
}

/// A search query and how often it was made, and how often it found nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SearchRow {
    pub query: String,
    pub count: u64,
    pub zero_results: u64,
}

/// A plugin's record from real runs, for its page: installs, success and issue rates.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Reputation {
    /// Instances running any version of it now.
    pub active_instances: u64,
    /// Installs reported in the last 30 days.
    pub installs_30d: u64,
    /// Calls in the last 30 days, and the percentage that succeeded.
    pub calls_30d: u64,
    pub success_rate: Option<f64>,
    /// Failed calls per 1,000 calls in the last 30 days.
    pub issues_per_1000: Option<f64>,
    /// When its latest version was last checked by the verification pipeline.
    pub last_checked: Option<i64>,
}

/// Calls that succeeded, in percent (one decimal), or none without calls.
pub fn success_rate(calls: u64, failures: u64) -> Option<f64> {
    (calls > 0).then(|| {
        let ok = calls.saturating_sub(failures) as f64;
        (ok * 1000.0 / calls as f64).round() / 10.0
    })
}

/// The table names of a report a CSV export can hold.
pub const CSV_TABLES: &[&str] = &[
    "daily",
    "versions",
    "errors",
    "together",
    "searches",
    "zero_searches",
];

/// One table of a report as CSV (RFC 4180: a header line, `\r\n` line ends, fields
/// quoted when they hold a comma, quote or line break). `None` for an unknown table.
pub fn to_csv(report: &AnalyticsReport, table: &str) -> Option<String> {
    let (header, rows): (&[&str], Vec<Vec<String>>) = match table {
        "daily" => (
            &[
                "day",
                "plugin",
                "version",
                "downloads",
                "installs",
                "removals",
                "calls",
                "failures",
                "searches",
            ],
            report
                .daily
                .iter()
                .map(|r| {
                    vec![
                        r.day.clone(),
                        r.plugin.clone(),
                        r.version.clone(),
                        r.downloads.to_string(),
                        r.installs.to_string(),
                        r.removals.to_string(),
                        r.calls.to_string(),
                        r.failures.to_string(),
                        r.searches.to_string(),
                    ]
                })
                .collect(),
        ),
        "versions" => (
            &[
                "plugin",
                "version",
                "published_at",
                "downloads",
                "installs",
                "removals",
                "active_instances",
                "calls",
                "failures",
                "success_rate",
                "p50_ms",
                "p90_ms",
                "p99_ms",
            ],
            report
                .versions
                .iter()
                .map(|r| {
                    let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
                    vec![
                        r.plugin.clone(),
                        r.version.clone(),
                        r.published_at.to_string(),
                        r.downloads.to_string(),
                        r.installs.to_string(),
                        r.removals.to_string(),
                        r.active_instances.to_string(),
                        r.calls.to_string(),
                        r.failures.to_string(),
                        r.success_rate.map(|s| s.to_string()).unwrap_or_default(),
                        opt(r.p50_ms),
                        opt(r.p90_ms),
                        opt(r.p99_ms),
                    ]
                })
                .collect(),
        ),
        "errors" => (
            &[
                "plugin",
                "class",
                "count",
                "first_seen",
                "last_seen",
                "versions",
                "sample",
            ],
            report
                .errors
                .iter()
                .map(|r| {
                    vec![
                        r.plugin.clone(),
                        r.class.clone(),
                        r.count.to_string(),
                        r.first_seen.to_string(),
                        r.last_seen.to_string(),
                        r.versions.join(" "),
                        r.sample.clone().unwrap_or_default(),
                    ]
                })
                .collect(),
        ),
        "together" => (
            &["first", "second", "instances"],
            report
                .together
                .iter()
                .map(|r| vec![r.first.clone(), r.second.clone(), r.instances.to_string()])
                .collect(),
        ),
        "searches" | "zero_searches" => (
            &["query", "count", "zero_results"],
            if table == "searches" {
                &report.searches
            } else {
                &report.zero_searches
            }
            .iter()
            .map(|r| {
                vec![
                    r.query.clone(),
                    r.count.to_string(),
                    r.zero_results.to_string(),
                ]
            })
            .collect(),
        ),
        _ => return None,
    };
    let mut out = String::new();
    let mut line = |fields: &mut dyn Iterator<Item = &str>| {
        let mut first = true;
        for f in fields {
            if !first {
                out.push(',');
            }
            first = false;
            // A leading = + - @ would be a formula to a spreadsheet: quote it with a '.
            let f = if f.starts_with(['=', '+', '-', '@']) && f.parse::<f64>().is_err() {
                format!("'{f}")
            } else {
                f.to_owned()
            };
            if f.contains([',', '"', '\r', '\n']) {
                out.push('"');
                out.push_str(&f.replace('"', "\"\""));
                out.push('"');
            } else {
                out.push_str(&f);
            }
        }
        out.push_str("\r\n");
    };
    line(&mut header.iter().copied());
    for row in &rows {
        line(&mut row.iter().map(String::as_str));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_start_at_utc_hours_and_days() {
        let t = 1_764_892_800_000 + 5 * HOUR_MS + 123; // 2025-12-05 05:00:00.123
        assert_eq!(Period::Hour.bucket(t), 1_764_892_800_000 + 5 * HOUR_MS);
        assert_eq!(Period::Day.bucket(t), 1_764_892_800_000);
        assert_eq!(Period::Day.bucket(-1), -DAY_MS, "before 1970 still floors");
    }

    #[test]
    fn days_are_named_and_read_in_utc() {
        assert_eq!(day_name(0), "1970-01-01");
        assert_eq!(day_name(1_764_892_800_000), "2025-12-05");
        assert_eq!(day_name(1_764_892_800_000 + DAY_MS - 1), "2025-12-05");
        assert_eq!(day_name(951_782_400_000), "2000-02-29");
        assert_eq!(parse_day("1970-01-01"), Some(0));
        assert_eq!(parse_day("2025-12-05"), Some(1_764_892_800_000));
        assert_eq!(parse_day("2000-02-29"), Some(951_782_400_000));
        for bad in [
            "2001-02-29",
            "2025-13-01",
            "2025-1-01",
            "x",
            "",
            "2025-12-05T00",
            "+025-12-05",
        ] {
            assert_eq!(parse_day(bad), None, "{bad}");
        }
        for ms in [0, 951_782_400_000, 1_764_892_800_000] {
            assert_eq!(parse_day(&day_name(ms)), Some(ms));
        }
    }

    #[test]
    fn durations_fall_in_their_slot_and_quantiles_read_back() {
        assert_eq!(duration_slot(0), 0);
        assert_eq!(duration_slot(1), 0);
        assert_eq!(duration_slot(2), 1);
        assert_eq!(duration_slot(3), 2);
        assert_eq!(duration_slot(60_000), 14);
        assert_eq!(duration_slot(60_001), 15);
        let mut h = [0u64; DURATION_SLOTS];
        // 90 runs of 10 ms or less (slot 3), 9 of 100 ms, 1 of two minutes.
        h[3] = 90;
        h[6] = 9;
        h[15] = 1;
        assert_eq!(quantile_ms(&h, 0.5), Some(10));
        assert_eq!(quantile_ms(&h, 0.9), Some(10));
        assert_eq!(quantile_ms(&h, 0.91), Some(100));
        assert_eq!(quantile_ms(&h, 0.99), Some(100));
        assert_eq!(quantile_ms(&h, 1.0), Some(60_000));
        assert_eq!(quantile_ms(&[0; DURATION_SLOTS], 0.5), None);
        assert_eq!(quantile_ms(&h, 0.0), None);
    }

    #[test]
    fn queries_are_normalised_and_bounded() {
        assert_eq!(query_key("  Network\t HTTP  "), "network http");
        assert_eq!(query_key(""), "");
        assert_eq!(query_key("a\u{0}b"), "ab");
        let long = "x".repeat(200);
        assert_eq!(query_key(&long).chars().count(), MAX_QUERY_CHARS);
        assert_eq!(query_key(&format!("{} y", "z".repeat(63))), "z".repeat(63));
    }

    #[test]
    fn error_classes_are_checked_and_messages_classified() {
        assert!(check_error_class("errors[0].class", "status-5xx").is_ok());
        assert!(check_error_class("errors[0].class", "crash").is_ok());
        for bad in ["", "Crash", "-x", "a b", &"x".repeat(49), "é"] {
            let e = check_error_class("errors[0].class", bad).unwrap_err();
            assert_eq!(e.field, "errors[0].class");
            assert_eq!(e.expected.as_deref(), Some(ERROR_CLASS_SYNTAX));
        }
        assert_eq!(classify("answered 503 to POST /x"), "status-5xx");
        assert_eq!(classify("answered 404 to GET /x"), "status-4xx");
        assert_eq!(classify("refused: grant: too much"), "refused");
        assert_eq!(classify("wasm trap: unreachable"), "trap");
        assert_eq!(classify("the call timed out after 5s"), "timeout");
        assert_eq!(classify("killed by signal 9"), "killed");
        assert_eq!(classify("something odd"), "error");
        for s in ["refused", "status-4xx", "trap", "crash", "error", "limit"] {
            assert!(check_error_class("c", s).is_ok());
        }
    }

    #[test]
    fn success_rates_have_one_decimal() {
        assert_eq!(success_rate(0, 0), None);
        assert_eq!(success_rate(3, 1), Some(66.7));
        assert_eq!(success_rate(10, 0), Some(100.0));
        assert_eq!(success_rate(1, 5), Some(0.0), "never negative");
    }

    #[test]
    fn csv_quotes_what_needs_quoting_and_defuses_formulas() {
        let report = AnalyticsReport {
            scope: "registry".into(),
            from: 0,
            to: DAY_MS,
            days: 1,
            daily: vec![],
            versions: vec![],
            errors: vec![],
            together: vec![],
            searches: vec![
                SearchRow {
                    query: "a, \"b\"".into(),
                    count: 2,
                    zero_results: 0,
                },
                SearchRow {
                    query: "=cmd|' /C calc'!A0".into(),
                    count: 1,
                    zero_results: 1,
                },
            ],
            zero_searches: vec![],
        };
        let csv = to_csv(&report, "searches").unwrap();
        assert_eq!(
            csv,
            "query,count,zero_results\r\n\"a, \"\"b\"\"\",2,0\r\n'=cmd|' /C calc'!A0,1,1\r\n"
        );
        assert_eq!(
            to_csv(&report, "daily").unwrap(),
            "day,plugin,version,downloads,installs,removals,calls,failures,searches\r\n"
        );
        assert!(to_csv(&report, "nope").is_none());
        for t in CSV_TABLES {
            assert!(to_csv(&report, t).is_some(), "{t}");
        }
    }
}
