//! The analytics pages: the registry's (`/admin/analytics`, administrators), a publisher's
//! (`/publishers/{publisher}/analytics`), a plugin's (`/plugins/{publisher}/{name}/analytics`)
//! and a tenant's (`/tenants/{tenant}/analytics`). Each shows one report of
//! `agora_registry::analytics::report` over a period chosen with a plain GET form
//! (`?days=7|30|90|365`, 30 by default): downloads, installs and removals per day (per
//! version of a plugin, per plugin of a publisher or tenant), calls and failures per day,
//! success rate and duration percentiles per version, top errors, plugins run together,
//! and on the registry's page the top searches and those that found nothing.
//!
//! Every chart (`crate::charts`, SVG drawn here) has its numbers in a table beside it, and
//! every table a CSV download (`…/analytics.csv?table=NAME&days=N`, the same report through
//! `agora_core::analytics::to_csv`). Who may read what is the registry's decision, as for
//! the API.

use std::collections::HashMap;

use agora_core::analytics::{AnalyticsReport, CSV_TABLES, DAY_MS, Period, to_csv};
use agora_registry::analytics::{self, Scope};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::tenants::{TenantHead, signed_in_caller};
use crate::charts::{Bar, Chart, Series, bar_chart, time_chart};
use crate::error::PageError;
use crate::format;
use crate::layout::Layout;
use crate::session::Visitor;
use crate::state::Web;

/// The periods the selector offers, in days.
pub const PERIODS: [u32; 4] = [7, 30, 90, 365];
/// The period shown without `?days=`.
pub const DEFAULT_DAYS: u32 = 30;
/// Most series of a chart by plugin or version.
const TOP_SERIES: usize = 8;

#[derive(Debug, Default, Deserialize)]
pub struct AnalyticsQuery {
    #[serde(default)]
    days: Option<String>,
    #[serde(default)]
    table: Option<String>,
}

impl AnalyticsQuery {
    fn days(&self) -> Result<u32, PageError> {
        match self.days.as_deref().map(str::trim) {
            None | Some("") => Ok(DEFAULT_DAYS),
            Some(d) => d.parse().map_err(|_| {
                PageError::BadInput(format!(
                    "days: {d:?} is not a number of days; choose 7, 30, 90 or 365"
                ))
            }),
        }
    }
}

/// Whose analytics a page shows.
enum Which {
    Registry,
    Publisher(String),
    Plugin(String, String),
    Tenant(String),
}

impl Which {
    fn scope(&self) -> Scope<'_> {
        match self {
            Which::Registry => Scope::Registry,
            Which::Publisher(p) => Scope::Publisher(p),
            Which::Plugin(p, n) => Scope::Plugin(p, n),
            Which::Tenant(t) => Scope::Tenant(t),
        }
    }

    /// The page's path.
    fn path(&self) -> String {
        match self {
            Which::Registry => "/admin/analytics".to_owned(),
            Which::Publisher(p) => format!("/publishers/{p}/analytics"),
            Which::Plugin(p, n) => format!("/plugins/{p}/{n}/analytics"),
            Which::Tenant(t) => format!("/tenants/{t}/analytics"),
        }
    }
}

/// One table cell: text, and a link when it names a page.
pub struct Cell {
    pub text: String,
    pub href: Option<String>,
}

impl Cell {
    fn text(text: impl Into<String>) -> Cell {
        Cell {
            text: text.into(),
            href: None,
        }
    }

    fn link(text: impl Into<String>, href: String) -> Cell {
        Cell {
            text: text.into(),
            href: Some(href),
        }
    }

    fn number(n: u64) -> Cell {
        Cell::text(n.to_string())
    }
}

/// A table of numbers, with its CSV download.
pub struct Table {
    pub caption: String,
    pub headers: Vec<&'static str>,
    pub rows: Vec<Vec<Cell>>,
    /// What the table says when it has no row.
    pub empty: &'static str,
    /// The report's table it comes from (`daily`, `versions`, …), for the CSV link.
    pub csv: &'static str,
}

/// A chart with its title shown above it (the SVG's own title is read, not shown).
pub struct Figure {
    pub title: String,
    pub chart: Chart,
}

fn figure_time(id: &str, title: &str, description: &str, unit: &str, series: &[Series]) -> Figure {
    Figure {
        title: title.to_owned(),
        chart: time_chart(id, title, description, unit, series),
    }
}

fn figure_bars(id: &str, title: &str, description: &str, unit: &str, bars: &[Bar]) -> Figure {
    Figure {
        title: title.to_owned(),
        chart: bar_chart(id, title, description, unit, bars),
    }
}

/// One part of the page: a heading, charts, and the table with their numbers.
pub struct Section {
    pub id: &'static str,
    pub heading: String,
    pub note: String,
    pub charts: Vec<Figure>,
    pub table: Table,
}

#[derive(Template)]
#[template(path = "analytics.html")]
struct AnalyticsPage {
    layout: Layout,
    notice: Option<String>,
    /// The tenant's heading and tabs, on a tenant's page.
    tenant: Option<TenantHead>,
    heading: String,
    /// Where the scope's own page is (publisher, plugin), with its name.
    back: Option<(String, String)>,
    intro: String,
    path: String,
    csv: String,
    days: u32,
    /// The period choices, and whether each is the one shown.
    periods: Vec<(u32, bool)>,
    /// `2026-11-06 to 2026-12-05`.
    range: String,
    totals: Vec<(&'static str, String)>,
    sections: Vec<Section>,
}

pub async fn admin(
    State(web): State<Web>,
    visitor: Visitor,
    Query(query): Query<AnalyticsQuery>,
) -> Result<Response, PageError> {
    page(&web, &visitor, Which::Registry, &query).await
}

pub async fn publisher(
    State(web): State<Web>,
    visitor: Visitor,
    Path(publisher): Path<String>,
    Query(query): Query<AnalyticsQuery>,
) -> Result<Response, PageError> {
    page(&web, &visitor, Which::Publisher(publisher), &query).await
}

pub async fn plugin(
    State(web): State<Web>,
    visitor: Visitor,
    Path((publisher, name)): Path<(String, String)>,
    Query(query): Query<AnalyticsQuery>,
) -> Result<Response, PageError> {
    page(&web, &visitor, Which::Plugin(publisher, name), &query).await
}

pub async fn tenant(
    State(web): State<Web>,
    visitor: Visitor,
    Path(tenant): Path<String>,
    Query(query): Query<AnalyticsQuery>,
) -> Result<Response, PageError> {
    page(&web, &visitor, Which::Tenant(tenant), &query).await
}

pub async fn admin_csv(
    State(web): State<Web>,
    visitor: Visitor,
    Query(query): Query<AnalyticsQuery>,
) -> Result<Response, PageError> {
    csv(&web, &visitor, Which::Registry, &query).await
}

pub async fn publisher_csv(
    State(web): State<Web>,
    visitor: Visitor,
    Path(publisher): Path<String>,
    Query(query): Query<AnalyticsQuery>,
) -> Result<Response, PageError> {
    csv(&web, &visitor, Which::Publisher(publisher), &query).await
}

pub async fn plugin_csv(
    State(web): State<Web>,
    visitor: Visitor,
    Path((publisher, name)): Path<(String, String)>,
    Query(query): Query<AnalyticsQuery>,
) -> Result<Response, PageError> {
    csv(&web, &visitor, Which::Plugin(publisher, name), &query).await
}

pub async fn tenant_csv(
    State(web): State<Web>,
    visitor: Visitor,
    Path(tenant): Path<String>,
    Query(query): Query<AnalyticsQuery>,
) -> Result<Response, PageError> {
    csv(&web, &visitor, Which::Tenant(tenant), &query).await
}

/// One table of the report as a CSV file (`text/csv`, a file name by scope, table and
/// period).
async fn csv(
    web: &Web,
    visitor: &Visitor,
    which: Which,
    query: &AnalyticsQuery,
) -> Result<Response, PageError> {
    let days = query.days()?;
    let table = query.table.as_deref().unwrap_or("daily");
    if !CSV_TABLES.contains(&table) {
        return Err(PageError::BadInput(format!(
            "table: {table:?} is not a table of the report; choose {}",
            CSV_TABLES.join(", ")
        )));
    }
    let back = format!("{}?days={days}", which.path());
    let caller = signed_in_caller(visitor, &back)?;
    let report = analytics::report(&web.registry, &caller, which.scope(), days, None).await?;
    let body = to_csv(&report, table).unwrap_or_default();
    let file = format!(
        "attachment; filename=\"agora-{}-{table}-{days}d.csv\"",
        report.scope.replace([':', '/'], "-")
    );
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8; header=present"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    if let Ok(value) = HeaderValue::from_str(&file) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

async fn page(
    web: &Web,
    visitor: &Visitor,
    which: Which,
    query: &AnalyticsQuery,
) -> Result<Response, PageError> {
    let days = query.days()?;
    let path = which.path();
    let caller = signed_in_caller(visitor, &format!("{path}?days={days}"))?;
    // A tenant's page is headed like its other pages (and refused like them first).
    let tenant = match &which {
        Which::Tenant(name) => {
            let t = agora_registry::tenants::get(&web.registry, &caller, name).await?;
            Some(TenantHead::of(&t, visitor, "/analytics"))
        }
        _ => None,
    };
    let report = analytics::report(&web.registry, &caller, which.scope(), days, None).await?;
    let (heading, back, intro) = match &which {
        Which::Registry => (
            "Registry analytics".to_owned(),
            None,
            "Every plugin of this registry: downloads, what instances installed, removed and ran, errors, and what people searched for.".to_owned(),
        ),
        Which::Publisher(p) => (
            format!("Analytics · {p}"),
            Some((format!("/publishers/{p}"), p.clone())),
            format!("The plugins of publisher {p}, per plugin."),
        ),
        Which::Plugin(p, n) => (
            format!("Analytics · {p}/{n}"),
            Some((format!("/plugins/{p}/{n}"), format!("{p}/{n}"))),
            "This plugin, per version: how each version was taken up after its release, and how it runs.".to_owned(),
        ),
        Which::Tenant(_) => (
            "Analytics".to_owned(),
            None,
            "What this tenant's instances installed, removed and ran.".to_owned(),
        ),
    };
    let view = View::of(&report, &which);
    let mut periods: Vec<(u32, bool)> = PERIODS.iter().map(|&d| (d, d == days)).collect();
    if !PERIODS.contains(&days) {
        periods.push((days, true));
        periods.sort();
    }
    let title = match &tenant {
        Some(t) => format!("Analytics · {}", t.title),
        None => heading.clone(),
    };
    crate::notice::render(
        &AnalyticsPage {
            layout: visitor.layout(web, title),
            notice: visitor.notice.clone(),
            tenant,
            heading,
            back,
            intro,
            csv: format!("{path}.csv"),
            path,
            days,
            periods,
            range: format!(
                "{} to {}",
                format::date(report.from),
                format::date(report.to - DAY_MS)
            ),
            totals: view.totals(&which),
            sections: view.sections(&report, &which),
        },
        visitor,
    )
}

/// A day's counts: downloads, installs, removals, calls, failures, searches.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    downloads: u64,
    installs: u64,
    removals: u64,
    calls: u64,
    failures: u64,
    searches: u64,
}

/// The report's daily rows laid out by day (every day of the period, zeros included).
struct View {
    /// Each day's start (Unix ms).
    days: Vec<i64>,
    /// The position in `days` of each day, by the name the report's rows give it.
    index: HashMap<String, usize>,
    totals: Vec<Counts>,
    /// Per plugin (publisher, tenant) or version (plugin): its day-by-day downloads and
    /// installs, and the day it starts from.
    groups: Vec<Group>,
}

struct Group {
    name: String,
    start: i64,
    per_day: Vec<u64>,
    total: u64,
}

impl View {
    fn of(report: &AnalyticsReport, which: &Which) -> View {
        let days: Vec<i64> = (0..i64::from(report.days))
            .map(|i| report.from + i * DAY_MS)
            .collect();
        let index: HashMap<String, usize> = days
            .iter()
            .enumerate()
            .map(|(i, &d)| (format::date(d), i))
            .collect();
        let mut totals = vec![Counts::default(); days.len()];
        let mut groups: Vec<Group> = Vec::new();
        for row in &report.daily {
            let Some(&i) = index.get(&row.day) else {
                continue;
            };
            let t = &mut totals[i];
            t.downloads += row.downloads;
            t.installs += row.installs;
            t.removals += row.removals;
            t.calls += row.calls;
            t.failures += row.failures;
            t.searches += row.searches;
            let name = match which {
                Which::Registry => continue,
                Which::Plugin(..) => row.version.clone(),
                Which::Publisher(_) | Which::Tenant(_) => row.plugin.clone(),
            };
            let taken = row.downloads + row.installs;
            let group = match groups.iter_mut().position(|g| g.name == name) {
                Some(g) => &mut groups[g],
                None => {
                    // A version counts from the day it came out (within the period).
                    let published = report
                        .versions
                        .iter()
                        .find(|v| matches!(which, Which::Plugin(..)) && v.version == name)
                        .map(|v| Period::Day.bucket(v.published_at));
                    groups.push(Group {
                        start: published.unwrap_or(report.from).clamp(report.from, days[i]),
                        name,
                        per_day: vec![0; days.len()],
                        total: 0,
                    });
                    groups.last_mut().expect("just pushed")
                }
            };
            group.per_day[i] += taken;
            group.total += taken + row.calls;
        }
        // The most used, at most eight; versions then in the order they came out.
        groups.sort_by(|a, b| b.total.cmp(&a.total).then(a.name.cmp(&b.name)));
        groups.truncate(TOP_SERIES);
        if matches!(which, Which::Plugin(..)) {
            groups.sort_by(|a, b| a.start.cmp(&b.start).then(a.name.cmp(&b.name)));
        }
        View {
            days,
            index,
            totals,
            groups,
        }
    }

    fn sum(&self) -> Counts {
        self.totals.iter().fold(Counts::default(), |a, c| Counts {
            downloads: a.downloads + c.downloads,
            installs: a.installs + c.installs,
            removals: a.removals + c.removals,
            calls: a.calls + c.calls,
            failures: a.failures + c.failures,
            searches: a.searches + c.searches,
        })
    }

    fn totals(&self, which: &Which) -> Vec<(&'static str, String)> {
        let s = self.sum();
        let mut out = vec![
            ("Downloads", s.downloads.to_string()),
            ("Installs", s.installs.to_string()),
            ("Removals", s.removals.to_string()),
            ("Calls", s.calls.to_string()),
            ("Failures", s.failures.to_string()),
            (
                "Success rate",
                agora_core::analytics::success_rate(s.calls, s.failures)
                    .map_or_else(|| "no calls".to_owned(), |r| format!("{r}%")),
            ),
        ];
        if matches!(which, Which::Tenant(_)) {
            // Downloads are not counted per tenant.
            out.remove(0);
        }
        if matches!(which, Which::Registry) {
            out.push(("Searches", s.searches.to_string()));
        }
        out
    }

    /// Per version (the charted ones), the instances running it at the end of each day
    /// since it came out: those running it now, less the installs and plus the removals
    /// reported after that day (never below zero).
    fn running(&self, report: &AnalyticsReport) -> Vec<Series> {
        self.groups
            .iter()
            .filter_map(|g| {
                let now = report.versions.iter().find(|v| v.version == g.name)?;
                let mut net = vec![0i64; self.days.len()];
                for row in report.daily.iter().filter(|r| r.version == g.name) {
                    if let Some(&i) = self.index.get(&row.day) {
                        net[i] += row.installs as i64 - row.removals as i64;
                    }
                }
                let mut running = vec![0f64; self.days.len()];
                let mut count = now.active_instances as i64;
                for i in (0..self.days.len()).rev() {
                    running[i] = count.max(0) as f64;
                    count -= net[i];
                }
                Some(self.series(&g.name, g.start, |i| running[i]))
            })
            .collect()
    }

    /// A series over every day of the period (from `start`), of `value`.
    fn series(&self, name: &str, start: i64, value: impl Fn(usize) -> f64) -> Series {
        Series {
            name: name.to_owned(),
            points: self
                .days
                .iter()
                .enumerate()
                .filter(|(_, d)| **d >= start)
                .map(|(i, &d)| (d, value(i)))
                .collect(),
        }
    }

    fn sections(&self, report: &AnalyticsReport, which: &Which) -> Vec<Section> {
        let first = self.days.first().copied().unwrap_or(report.from);
        let mut sections = Vec::new();

        // Downloads, installs and removals per day.
        let t = &self.totals;
        let mut activity = vec![
            self.series("Downloads", first, |i| t[i].downloads as f64),
            self.series("Installs", first, |i| t[i].installs as f64),
            self.series("Removals", first, |i| t[i].removals as f64),
        ];
        let mut headers = vec!["Day", "Downloads", "Installs", "Removals"];
        if matches!(which, Which::Tenant(_)) {
            activity.remove(0);
            headers.remove(1);
        }
        let rows = self
            .days
            .iter()
            .zip(t)
            .filter(|(_, c)| c.downloads + c.installs + c.removals > 0)
            .map(|(&d, c)| {
                let mut row = vec![Cell::text(format::date(d))];
                if !matches!(which, Which::Tenant(_)) {
                    row.push(Cell::number(c.downloads));
                }
                row.push(Cell::number(c.installs));
                row.push(Cell::number(c.removals));
                row
            })
            .collect();
        let what = if matches!(which, Which::Tenant(_)) {
            "Installs and removals"
        } else {
            "Downloads, installs and removals"
        };
        let mut charts = vec![figure_time(
            "activity",
            &format!("{what} per day"),
            &format!("{what} per day over the period."),
            "",
            &activity,
        )];
        // The same by plugin or by version.
        let by = match which {
            Which::Registry => None,
            Which::Plugin(..) => Some("version"),
            Which::Publisher(_) | Which::Tenant(_) => Some("plugin"),
        };
        if let Some(by) = by {
            let taken = if matches!(which, Which::Tenant(_)) {
                "Installs"
            } else {
                "Downloads and installs"
            };
            let series: Vec<Series> = self
                .groups
                .iter()
                .map(|g| self.series(&g.name, g.start, |i| g.per_day[i] as f64))
                .collect();
            let title = if by == "version" {
                format!("{taken} of each version after its release")
            } else {
                format!("{taken} per plugin (the {TOP_SERIES} most used)")
            };
            charts.push(figure_time(
                "adoption",
                &title,
                &format!("{taken} per day, one line per {by}."),
                "",
                &series,
            ));
            if by == "version" {
                charts.push(figure_time(
                    "running",
                    "Instances running each version",
                    "How many instances ran each version at the end of each day: the number \
                     running now, less the installs and plus the removals reported after that day.",
                    "",
                    &self.running(report),
                ));
            }
        }
        sections.push(Section {
            id: "downloads",
            heading: what.to_owned(),
            note: "Days without any are left out of the table.".to_owned(),
            charts,
            table: Table {
                caption: format!("{what} per day"),
                headers,
                rows,
                empty: "Nothing counted in this period.",
                csv: "daily",
            },
        });
        if by.is_some() {
            let column = if matches!(which, Which::Plugin(..)) {
                "Version"
            } else {
                "Plugin"
            };
            let rows = report
                .daily
                .iter()
                .filter(|r| r.downloads + r.installs + r.removals + r.calls > 0)
                .map(|r| {
                    let name = match which {
                        Which::Plugin(..) => Cell::text(r.version.clone()),
                        _ => Cell::link(r.plugin.clone(), format!("/plugins/{}", r.plugin)),
                    };
                    let mut row = vec![Cell::text(r.day.clone()), name];
                    if !matches!(which, Which::Tenant(_)) {
                        row.push(Cell::number(r.downloads));
                    }
                    row.extend([
                        Cell::number(r.installs),
                        Cell::number(r.removals),
                        Cell::number(r.calls),
                        Cell::number(r.failures),
                    ]);
                    row
                })
                .collect();
            let mut headers = vec![
                "Day",
                column,
                "Downloads",
                "Installs",
                "Removals",
                "Calls",
                "Failures",
            ];
            if matches!(which, Which::Tenant(_)) {
                headers.remove(2);
            }
            sections.push(Section {
                id: "by-day",
                heading: format!("Per {} and day", column.to_lowercase()),
                note: String::new(),
                charts: Vec::new(),
                table: Table {
                    caption: format!("Counts per {} and day", column.to_lowercase()),
                    headers,
                    rows,
                    empty: "Nothing counted in this period.",
                    csv: "daily",
                },
            });
        }

        // Calls and failures per day.
        let runs = vec![
            self.series("Calls", first, |i| t[i].calls as f64),
            self.series("Failures", first, |i| t[i].failures as f64),
        ];
        let rows = self
            .days
            .iter()
            .zip(t)
            .filter(|(_, c)| c.calls > 0)
            .map(|(&d, c)| {
                vec![
                    Cell::text(format::date(d)),
                    Cell::number(c.calls),
                    Cell::number(c.failures),
                    Cell::text(rate(agora_core::analytics::success_rate(
                        c.calls, c.failures,
                    ))),
                ]
            })
            .collect();
        sections.push(Section {
            id: "runs",
            heading: "Calls and failures".to_owned(),
            note: "Calls of plugins on instances, as their agents reported them.".to_owned(),
            charts: vec![figure_time(
                "runs",
                "Calls and failures per day",
                "Calls of plugins and how many failed, per day.",
                "",
                &runs,
            )],
            table: Table {
                caption: "Calls and failures per day".to_owned(),
                headers: vec!["Day", "Calls", "Failures", "Success rate"],
                rows,
                empty: "No runs reported in this period.",
                csv: "daily",
            },
        });

        // Per version: success rate and durations.
        let label = |plugin: &str, version: &str| match which {
            Which::Plugin(..) => version.to_owned(),
            _ => format!("{plugin}@{version}"),
        };
        let bars: Vec<Bar> = report
            .versions
            .iter()
            .filter_map(|v| {
                v.success_rate.map(|r| Bar {
                    label: label(&v.plugin, &v.version),
                    value: r,
                    href: None,
                })
            })
            .collect();
        let p99: Vec<Bar> = report
            .versions
            .iter()
            .filter_map(|v| {
                v.p99_ms.map(|ms| Bar {
                    label: label(&v.plugin, &v.version),
                    value: ms as f64,
                    href: None,
                })
            })
            .collect();
        let ms = |v: Option<u64>| v.map_or_else(|| "–".to_owned(), |v| format!("≤ {v} ms"));
        let rows = report
            .versions
            .iter()
            .map(|v| {
                vec![
                    Cell::link(
                        label(&v.plugin, &v.version),
                        format!(
                            "/plugins/{}?version={}",
                            v.plugin,
                            format::percent(&v.version)
                        ),
                    ),
                    Cell::text(format::date(v.published_at)),
                    Cell::number(v.downloads),
                    Cell::number(v.installs),
                    Cell::number(v.removals),
                    Cell::number(v.active_instances),
                    Cell::number(v.calls),
                    Cell::number(v.failures),
                    Cell::text(rate(v.success_rate)),
                    Cell::text(ms(v.p50_ms)),
                    Cell::text(ms(v.p90_ms)),
                    Cell::text(ms(v.p99_ms)),
                ]
            })
            .collect();
        sections.push(Section {
            id: "versions",
            heading: "Versions".to_owned(),
            note: "Success rate and run durations per version (a duration is the upper bound of its histogram slot).".to_owned(),
            charts: vec![
                figure_bars(
                    "success",
                    "Success rate per version",
                    "Calls that succeeded, in percent, per version with calls.",
                    "%",
                    &bars,
                ),
                figure_bars(
                    "p99",
                    "99th percentile duration per version",
                    "99 of 100 calls took at most this long.",
                    "ms",
                    &p99,
                ),
            ],
            table: Table {
                caption: "Versions over the period".to_owned(),
                headers: vec![
                    "Version",
                    "Published",
                    "Downloads",
                    "Installs",
                    "Removals",
                    "Running now",
                    "Calls",
                    "Failures",
                    "Success rate",
                    "p50",
                    "p90",
                    "p99",
                ],
                rows,
                empty: "No version was downloaded, installed or run in this period.",
                csv: "versions",
            },
        });

        // Top errors.
        let rows = report
            .errors
            .iter()
            .map(|e| {
                vec![
                    Cell::link(e.plugin.clone(), format!("/plugins/{}", e.plugin)),
                    Cell::text(e.class.clone()),
                    Cell::number(e.count),
                    Cell::text(format::date_time(e.first_seen)),
                    Cell::text(format::date_time(e.last_seen)),
                    Cell::text(e.versions.join(", ")),
                    Cell::text(e.sample.clone().unwrap_or_default()),
                ]
            })
            .collect();
        sections.push(Section {
            id: "errors",
            heading: "Top errors".to_owned(),
            note: "The most frequent error classes, with the versions they occurred in and the last message.".to_owned(),
            charts: Vec::new(),
            table: Table {
                caption: "Top errors".to_owned(),
                headers: vec![
                    "Plugin",
                    "Class",
                    "Count",
                    "First seen",
                    "Last seen",
                    "Versions",
                    "Sample",
                ],
                rows,
                empty: "No error reported in this period.",
                csv: "errors",
            },
        });

        // Plugins run together.
        let bars: Vec<Bar> = report
            .together
            .iter()
            .map(|p| Bar {
                label: format!("{} + {}", p.first, p.second),
                value: p.instances as f64,
                href: None,
            })
            .collect();
        let rows = report
            .together
            .iter()
            .map(|p| {
                vec![
                    Cell::link(p.first.clone(), format!("/plugins/{}", p.first)),
                    Cell::link(p.second.clone(), format!("/plugins/{}", p.second)),
                    Cell::number(p.instances),
                ]
            })
            .collect();
        sections.push(Section {
            id: "together",
            heading: "Installed together".to_owned(),
            note: "Plugins most often running on the same instance now.".to_owned(),
            charts: vec![figure_bars(
                "together",
                "Plugins most often installed together",
                "Pairs of plugins and on how many instances both run.",
                "instances",
                &bars,
            )],
            table: Table {
                caption: "Plugins installed together".to_owned(),
                headers: vec!["Plugin", "With", "Instances"],
                rows,
                empty: "No instance runs two of these plugins.",
                csv: "together",
            },
        });

        if matches!(which, Which::Registry) {
            let searches = vec![self.series("Searches", first, |i| t[i].searches as f64)];
            for (id, heading, list, empty) in [
                (
                    "searches",
                    "Top searches",
                    &report.searches,
                    "No search in this period.",
                ),
                (
                    "zero_searches",
                    "Top searches with no results",
                    &report.zero_searches,
                    "Every search found something.",
                ),
            ] {
                let search_url = |q: &str| format!("/search?q={}", format::percent(q));
                let shown = |q: &str| {
                    if q.is_empty() {
                        "(no text: filters only)".to_owned()
                    } else {
                        q.to_owned()
                    }
                };
                let bars: Vec<Bar> = list
                    .iter()
                    .map(|s| Bar {
                        label: shown(&s.query),
                        value: s.count as f64,
                        href: Some(search_url(&s.query)),
                    })
                    .collect();
                let rows = list
                    .iter()
                    .map(|s| {
                        vec![
                            Cell::link(shown(&s.query), search_url(&s.query)),
                            Cell::number(s.count),
                            Cell::number(s.zero_results),
                        ]
                    })
                    .collect();
                let mut charts = Vec::new();
                if id == "searches" {
                    charts.push(figure_time(
                        "searches-per-day",
                        "Searches per day",
                        "Searches made on the site and through the API, per day.",
                        "",
                        &searches,
                    ));
                }
                charts.push(figure_bars(
                    id,
                    heading,
                    "Search queries (lower case) and how often they were made.",
                    "searches",
                    &bars,
                ));
                sections.push(Section {
                    id: if id == "searches" {
                        "searches"
                    } else {
                        "zero-searches"
                    },
                    heading: heading.to_owned(),
                    note: String::new(),
                    charts,
                    table: Table {
                        caption: heading.to_owned(),
                        headers: vec!["Query", "Searches", "With no results"],
                        rows,
                        empty,
                        csv: id,
                    },
                });
            }
        }
        sections
    }
}

/// `99.5%`, or `–` without calls.
fn rate(r: Option<f64>) -> String {
    r.map_or_else(|| "–".to_owned(), |r| format!("{r}%"))
}
