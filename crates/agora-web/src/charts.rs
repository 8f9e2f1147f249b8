//! Charts for the analytics pages, drawn on the server as inline SVG: a value over days
//! (`time_chart`: downloads over time, success rate, duration percentiles) and horizontal
//! bars (`bar_chart`: top errors, top searches). No script: a chart reads, scales and
//! prints as it is.
//!
//! Each chart is `<svg role="img" aria-labelledby="ID-title ID-desc" viewBox=… class="chart">`
//! with a `<title>` and a `<desc>`; the description is the caller's text followed by a
//! summary of the data drawn (first, latest and highest values; every bar's value), so a
//! screen reader, which reads an `img` as one whole, hears the numbers too. Every point's
//! dot and every bar carries its own `<title>` as a tooltip. Bar labels with a link are
//! reached by keyboard, but inside an `img` a screen reader does not announce them: a
//! page that links its bars offers the same links in text too. The SVG has no width or height
//! of its own: the `.chart` rule of `app.css` makes it as wide as its box (up to a
//! maximum) and the viewBox keeps its proportions, so a phone's narrow page never
//! scrolls sideways. Colours come only from the stylesheet (classes `series-0` …
//! `series-7`, `chart-*`, through the site's CSS variables), so charts follow the dark
//! mode and print black on white; series also differ by dash pattern, for print and for
//! readers who do not tell the colours apart. There are no `style` attributes (the
//! Content-Security-Policy allows none).
//!
//! All text is escaped here, so a `Chart` goes into a template unescaped:
//! `{{ chart|safe }}`. The same input always gives the same markup.

use std::fmt;
use std::fmt::Write as _;

use crate::format;

/// One named line of a time chart; `points` are (day start as Unix milliseconds, value),
/// in time order. Values that are not finite are left out; negative values are drawn at 0.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(i64, f64)>,
}

/// One bar: its label and value (and an optional link for the label). A link is kept
/// only when it is relative or `http(s)`; any other scheme leaves the label plain text.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub href: Option<String>,
}

/// A rendered chart: SVG markup that is safe to insert unescaped (every text escaped
/// inside).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chart {
    pub svg: String,
}

impl fmt::Display for Chart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.svg)
    }
}

const DAY_MS: i64 = 86_400_000;
/// The viewBox's width; the stylesheet sets the drawn width.
const WIDTH: f64 = 640.0;
const MAX_SERIES: usize = 8;
const MAX_BARS: usize = 20;
/// A series of at most this many points gets a dot (with its tooltip) per point.
const DOT_LIMIT: usize = 31;
const MAX_DATE_LABELS: usize = 6;
/// Longest bar label drawn, in characters (the whole label is in the row's `<title>`).
const LABEL_CHARS: usize = 40;
/// Longest series name in a legend.
const LEGEND_CHARS: usize = 36;

// The time chart's plot area.
const PLOT_LEFT: f64 = 60.0;
const PLOT_RIGHT: f64 = WIDTH - 16.0;
const PLOT_TOP: f64 = 28.0;
const PLOT_BOTTOM: f64 = PLOT_TOP + 200.0;

// The bar chart's columns and rows.
const BAR_LEFT: f64 = 272.0;
const BAR_MAX: f64 = WIDTH - 64.0 - BAR_LEFT;
const ROW_HEIGHT: f64 = 28.0;

/// A time chart of up to 8 series over days; more series are dropped (the description
/// says how many). `unit` names the value ("downloads", "ms", "%"). The y axis starts at
/// 0 with round ticks (1, 2 or 5 × 10^k); the x axis has at most six dates. Series with at
/// most 31 points get a dot per point, whose tooltip reads `2026-12-01: 42 downloads`;
/// more than one series gets a legend. With no point at all the chart says "No data yet".
pub fn time_chart(
    id: &str,
    title: &str,
    description: &str,
    unit: &str,
    series: &[Series],
) -> Chart {
    let id = sanitize_id(id);
    let drawn: Vec<(&str, Vec<(i64, f64)>)> = series
        .iter()
        .take(MAX_SERIES)
        .map(|s| {
            let points = s.points.iter().copied().filter(|(_, v)| v.is_finite());
            (s.name.as_str(), points.collect())
        })
        .collect();
    let all = || drawn.iter().flat_map(|(_, points)| points.iter().copied());
    let (Some(t_min), Some(t_max)) = (all().map(|p| p.0).min(), all().map(|p| p.0).max()) else {
        return empty_chart(&id, title, description);
    };
    let v_max = all().map(|p| p.1).fold(0.0, f64::max);
    let integers = all().all(|p| p.1.fract() == 0.0);
    let (step, ticks) = nice_ticks(v_max, integers);
    let top = step * ticks as f64;
    let span = t_max.saturating_sub(t_min);
    let x = |t: i64| {
        if span == 0 {
            (PLOT_LEFT + PLOT_RIGHT) / 2.0
        } else {
            PLOT_LEFT + t.saturating_sub(t_min) as f64 / span as f64 * (PLOT_RIGHT - PLOT_LEFT)
        }
    };
    let y = |v: f64| PLOT_BOTTOM - v.clamp(0.0, top) / top * (PLOT_BOTTOM - PLOT_TOP);

    let legend_rows = if drawn.len() > 1 {
        drawn.len().div_ceil(2)
    } else {
        0
    };
    let legend_top = PLOT_BOTTOM + 40.0;
    let height = if legend_rows > 0 {
        legend_top + legend_rows as f64 * 20.0
    } else {
        PLOT_BOTTOM + 28.0
    };

    let mut summary = Vec::new();
    for (name, points) in &drawn {
        if let Some(s) = series_summary(name, points, unit) {
            summary.push(s);
        }
    }
    let dropped = series.len().saturating_sub(MAX_SERIES);
    if dropped > 0 {
        summary.push(format!("{dropped} more series not shown."));
    }

    let mut svg = open_svg(&id, title, description, &summary.join(" "), height, "");
    if !unit.is_empty() {
        let _ = write!(
            svg,
            r#"<text class="chart-unit" x="{}" y="16">{}</text>"#,
            num(PLOT_LEFT),
            escape(unit)
        );
    }
    // The y axis: grid lines at round values, the zero line drawn as the axis.
    svg.push_str(r#"<g class="chart-y">"#);
    for i in 0..=ticks {
        let v = step * i as f64;
        let class = if i == 0 { "chart-axis" } else { "chart-grid" };
        let _ = write!(
            svg,
            r#"<line class="{class}" x1="{l}" y1="{y}" x2="{r}" y2="{y}"/><text class="chart-tick" x="{tx}" y="{ty}" text-anchor="end">{label}</text>"#,
            l = num(PLOT_LEFT),
            r = num(PLOT_RIGHT),
            y = num(y(v)),
            tx = num(PLOT_LEFT - 6.0),
            ty = num(y(v) + 4.0),
            label = escape(&tick_label(v, step)),
        );
    }
    svg.push_str("</g>");
    // The x axis: a few dates, the first and last aligned to the plot's edges.
    svg.push_str(r#"<g class="chart-x">"#);
    let dates = date_ticks(t_min, t_max);
    for (i, t) in dates.iter().enumerate() {
        let anchor = if span == 0 {
            "middle"
        } else if i == 0 {
            "start"
        } else if i + 1 == dates.len() {
            "end"
        } else {
            "middle"
        };
        let _ = write!(
            svg,
            r#"<line class="chart-axis" x1="{x}" y1="{b}" x2="{x}" y2="{b4}"/><text class="chart-tick" x="{x}" y="{ty}" text-anchor="{anchor}">{label}</text>"#,
            x = num(x(*t)),
            b = num(PLOT_BOTTOM),
            b4 = num(PLOT_BOTTOM + 4.0),
            ty = num(PLOT_BOTTOM + 18.0),
            label = escape(&format::date(*t)),
        );
    }
    svg.push_str("</g>");
    // The series: a line each, and a dot per point when there are few.
    for (i, (name, points)) in drawn.iter().enumerate() {
        let _ = write!(svg, r#"<g class="chart-series series-{i}">"#);
        if points.len() > 1 {
            let coordinates: Vec<String> = points
                .iter()
                .map(|&(t, v)| format!("{},{}", num(x(t)), num(y(v))))
                .collect();
            let _ = write!(
                svg,
                r#"<polyline class="chart-line" fill="none" stroke="currentColor" points="{}"/>"#,
                coordinates.join(" ")
            );
        }
        if points.len() <= DOT_LIMIT {
            for &(t, v) in points {
                let what = format!("{}: {}", format::date(t), with_unit(v, unit));
                let tip = if drawn.len() > 1 && !name.is_empty() {
                    format!("{name}, {what}")
                } else {
                    what
                };
                let _ = write!(
                    svg,
                    r#"<circle class="chart-dot" fill="currentColor" cx="{}" cy="{}" r="3.5"><title>{}</title></circle>"#,
                    num(x(t)),
                    num(y(v)),
                    escape(&tip)
                );
            }
        }
        svg.push_str("</g>");
    }
    // The legend: two columns under the plot, each name beside a sample of its line.
    if legend_rows > 0 {
        svg.push_str(r#"<g class="chart-legend">"#);
        let column = (PLOT_RIGHT - PLOT_LEFT) / 2.0;
        for (i, (name, _)) in drawn.iter().enumerate() {
            let lx = PLOT_LEFT + (i % 2) as f64 * column;
            let ly = legend_top - 8.0 + (i / 2) as f64 * 20.0;
            let shown = truncate(name, LEGEND_CHARS);
            let full = if shown == *name {
                String::new()
            } else {
                format!("<title>{}</title>", escape(name))
            };
            let _ = write!(
                svg,
                r#"<g class="series-{i}"><line class="chart-line" stroke="currentColor" x1="{x1}" y1="{y}" x2="{x2}" y2="{y}"/><text class="chart-legend-text" x="{tx}" y="{ty}">{full}{text}</text></g>"#,
                x1 = num(lx),
                x2 = num(lx + 20.0),
                y = num(ly),
                tx = num(lx + 26.0),
                ty = num(ly + 4.0),
                text = escape(&shown),
            );
        }
        svg.push_str("</g>");
    }
    svg.push_str("</svg>");
    Chart { svg }
}

/// Horizontal bars, largest first as given (at most 20 are drawn; the description says
/// how many more there were). Each row has its label on the left (cut to 40 characters,
/// whole in the row's tooltip; a link when the bar has an `href`), a bar as long as its
/// share of the largest value, and the value at the bar's end. With no bars the chart says
/// "No data yet".
pub fn bar_chart(id: &str, title: &str, description: &str, unit: &str, bars: &[Bar]) -> Chart {
    let id = sanitize_id(id);
    if bars.is_empty() {
        return empty_chart(&id, title, description);
    }
    let drawn = &bars[..bars.len().min(MAX_BARS)];
    let amount = |b: &Bar| if b.value.is_finite() { b.value } else { 0.0 };
    let max = drawn.iter().map(amount).fold(0.0, f64::max);
    let height = 8.0 + drawn.len() as f64 * ROW_HEIGHT;

    let mut summary: Vec<String> = drawn
        .iter()
        .map(|b| format!("{}: {}", b.label, with_unit(amount(b), unit)))
        .collect();
    let dropped = bars.len() - drawn.len();
    if dropped > 0 {
        summary.push(format!("{dropped} more not shown"));
    }
    let summary = format!("{}.", summary.join("; "));

    let mut svg = open_svg(&id, title, description, &summary, height, " chart-bars");
    for (i, bar) in drawn.iter().enumerate() {
        let v = amount(bar);
        let middle = 4.0 + ROW_HEIGHT * (i as f64 + 0.5);
        let length = if max > 0.0 && v > 0.0 {
            (v / max * BAR_MAX).max(1.0)
        } else {
            0.0
        };
        let _ = write!(
            svg,
            r#"<g class="chart-row"><title>{}</title>"#,
            escape(&format!("{}: {}", bar.label, with_unit(v, unit)))
        );
        let label = format!(
            r#"<text class="chart-label" x="0" y="{}">{}</text>"#,
            num(middle + 4.0),
            escape(&truncate(&bar.label, LABEL_CHARS))
        );
        match bar.href.as_deref().filter(|h| safe_href(h)) {
            Some(href) => {
                let _ = write!(svg, r#"<a href="{}">{label}</a>"#, escape(href.trim()));
            }
            None => svg.push_str(&label),
        }
        let _ = write!(
            svg,
            r#"<rect class="chart-bar" x="{}" y="{}" width="{}" height="16" rx="2"/><text class="chart-value" x="{}" y="{}">{}</text></g>"#,
            num(BAR_LEFT),
            num(middle - 8.0),
            num(length),
            num(BAR_LEFT + length + 6.0),
            num(middle + 4.0),
            escape(&bar_value(v, unit)),
        );
    }
    svg.push_str("</svg>");
    Chart { svg }
}

/// The opening `<svg>` with its title and description (the caller's, then the summary).
fn open_svg(
    id: &str,
    title: &str,
    description: &str,
    summary: &str,
    height: f64,
    class: &str,
) -> String {
    let desc = match (description.trim(), summary.trim()) {
        (d, "") => d.to_owned(),
        ("", s) => s.to_owned(),
        (d, s) => format!("{d} {s}"),
    };
    format!(
        r#"<svg role="img" aria-labelledby="{id}-title {id}-desc" viewBox="0 0 {w} {h}" class="chart{class}" xmlns="http://www.w3.org/2000/svg"><title id="{id}-title">{title}</title><desc id="{id}-desc">{desc}</desc>"#,
        w = num(WIDTH),
        h = num(height),
        title = escape(title),
        desc = escape(&desc),
    )
}

/// A chart with nothing to draw: a frame that says so.
fn empty_chart(id: &str, title: &str, description: &str) -> Chart {
    let height = 120.0;
    let mut svg = open_svg(
        id,
        title,
        description,
        "No data yet.",
        height,
        " chart-nodata",
    );
    let _ = write!(
        svg,
        r#"<rect class="chart-frame" fill="none" x="0.5" y="0.5" width="{}" height="{}" rx="8"/><text class="chart-empty" x="{}" y="{}" text-anchor="middle">No data yet</text></svg>"#,
        num(WIDTH - 1.0),
        num(height - 1.0),
        num(WIDTH / 2.0),
        num(height / 2.0 + 5.0),
    );
    Chart { svg }
}

/// One series told in a sentence: its range of days, latest and highest values.
fn series_summary(name: &str, points: &[(i64, f64)], unit: &str) -> Option<String> {
    let &(first_t, _) = points.first()?;
    let &(last_t, last_v) = points.last()?;
    let lead = if name.is_empty() {
        String::new()
    } else {
        format!("{name}: ")
    };
    if points.len() == 1 {
        return Some(format!(
            "{lead}{} on {}.",
            with_unit(last_v, unit),
            format::date(last_t)
        ));
    }
    // The first of equal highest values.
    let (peak_t, peak_v) = points
        .iter()
        .copied()
        .fold(points[0], |best, p| if p.1 > best.1 { p } else { best });
    Some(format!(
        "{lead}{} to {}, latest {} on {}, highest {} on {}.",
        format::date(first_t),
        format::date(last_t),
        with_unit(last_v, unit),
        format::date(last_t),
        with_unit(peak_v, unit),
        format::date(peak_t),
    ))
}

/// The step between the y axis's ticks (1, 2 or 5 × 10^k, at least 1 for whole numbers)
/// and how many steps reach from 0 to at least `max`: about five. A `max` of 0 (or less,
/// or not finite) is taken as 1, so an all-zero chart still has an axis.
fn nice_ticks(max: f64, integers: bool) -> (f64, usize) {
    let max = if max.is_finite() && max > 0.0 {
        max
    } else {
        1.0
    };
    let raw = max / 5.0;
    let magnitude = 10f64.powi(raw.log10().floor() as i32);
    let step = match raw / magnitude {
        n if n <= 1.0 => magnitude,
        n if n <= 2.0 => 2.0 * magnitude,
        n if n <= 5.0 => 5.0 * magnitude,
        _ => 10.0 * magnitude,
    };
    let step = if integers { step.max(1.0) } else { step };
    let ticks = (max / step - 1e-9).ceil().max(1.0) as usize;
    (step, ticks)
}

/// A tick's value: compact for whole steps, else as many decimals as the step needs.
fn tick_label(v: f64, step: f64) -> String {
    if step >= 1.0 {
        format::count(v.round() as i64)
    } else {
        let decimals = (-step.log10()).ceil().clamp(1.0, 6.0) as usize;
        format!("{v:.decimals$}")
    }
}

/// The days the x axis names: at most six, evenly spread, the first and the last day
/// always among them.
fn date_ticks(t_min: i64, t_max: i64) -> Vec<i64> {
    let days = t_max.saturating_sub(t_min) / DAY_MS;
    let labels = usize::try_from(days)
        .unwrap_or(usize::MAX)
        .saturating_add(1)
        .clamp(2, MAX_DATE_LABELS);
    let mut ticks: Vec<i64> = (0..labels - 1)
        .map(|i| t_min + (i as f64 * days as f64 / (labels - 1) as f64).round() as i64 * DAY_MS)
        .collect();
    ticks.push(t_max);
    ticks.dedup_by_key(|t| format::date(*t));
    ticks
}

/// `42`, `12.3k`, `99.5`: whole numbers compact, fractions with one decimal.
fn value(v: f64) -> String {
    let v = if v.is_finite() { v } else { 0.0 };
    if (v.fract() == 0.0 || v.abs() >= 1000.0) && v.abs() < 1e15 {
        format::count(v.round() as i64)
    } else {
        format!("{v:.1}")
    }
}

/// `42 downloads`, `99.5%`.
fn with_unit(v: f64, unit: &str) -> String {
    match unit {
        "" => value(v),
        "%" => format!("{}%", value(v)),
        unit => format!("{} {unit}", value(v)),
    }
}

/// The value at a bar's end: with its unit when that is short (`%`, `ms`), else the
/// number alone (the unit is in the tooltip and the description).
fn bar_value(v: f64, unit: &str) -> String {
    if unit.chars().count() <= 2 {
        with_unit(v, unit)
    } else {
        value(v)
    }
}

/// A coordinate with at most one decimal: `12`, `12.5`.
fn num(v: f64) -> String {
    if !v.is_finite() {
        return "0".to_owned();
    }
    let s = format!("{v:.1}");
    match s.strip_suffix(".0") {
        Some("-0") => "0".to_owned(),
        Some(whole) => whole.to_owned(),
        None => s,
    }
}

/// At most `max` characters, the last one an ellipsis when cut.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(max - 1).collect();
        cut.push('…');
        cut
    }
}

/// The id as `[a-z0-9-]`: lower case, anything else a hyphen; `chart` when empty.
fn sanitize_id(id: &str) -> String {
    let id: String = id
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '-') => c,
            _ => '-',
        })
        .collect();
    if id.is_empty() {
        "chart".to_owned()
    } else {
        id
    }
}

/// Whether a link may be drawn: relative (`/search?q=…`, `?page=2`, `#top`) or http(s);
/// never `javascript:`, `data:` or another scheme.
fn safe_href(href: &str) -> bool {
    let href = href.trim();
    if href.is_empty() {
        return false;
    }
    let head = href.split(['/', '?', '#']).next().unwrap_or("");
    match head.split_once(':') {
        None => true,
        Some((scheme, _)) => {
            scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("http")
        }
    }
}

/// Text for SVG markup, in an element or an attribute.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-01 00:00 UTC.
    const DEC_1: i64 = 1_796_083_200_000;

    fn daily(name: &str, values: &[f64]) -> Series {
        Series {
            name: name.to_owned(),
            points: values
                .iter()
                .enumerate()
                .map(|(i, v)| (DEC_1 + i as i64 * DAY_MS, *v))
                .collect(),
        }
    }

    fn bar(label: &str, value: f64) -> Bar {
        Bar {
            label: label.to_owned(),
            value,
            href: None,
        }
    }

    /// Tags balance, quotes close, and every `&` starts one of the escapes.
    fn assert_well_formed(svg: &str) {
        let mut open: Vec<&str> = Vec::new();
        let mut rest = svg;
        while let Some(start) = rest.find('<') {
            assert!(!rest[..start].contains('>'), "stray > in {svg}");
            let end = rest[start..].find('>').expect("unclosed tag") + start;
            let tag = &rest[start + 1..end];
            assert!(!tag.contains('<'), "< inside a tag: {tag}");
            assert_eq!(tag.matches('"').count() % 2, 0, "unbalanced quotes: {tag}");
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(open.pop(), Some(name), "mismatched </{name}> in {svg}");
            } else if !tag.ends_with('/') {
                open.push(tag.split(' ').next().unwrap());
            }
            rest = &rest[end + 1..];
        }
        assert!(!rest.contains('>'));
        assert!(open.is_empty(), "unclosed {open:?}");
        for (i, _) in svg.match_indices('&') {
            let after = &svg[i..];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"]
                    .iter()
                    .any(|e| after.starts_with(e)),
                "bare & at {}",
                &after[..after.len().min(12)]
            );
        }
        assert!(svg.starts_with(r#"<svg role="img" aria-labelledby=""#));
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
        assert!(!svg.contains("style="));
        let opening = &svg[..svg.find('>').unwrap()];
        assert!(!opening.contains("width=") && !opening.contains("height="));
    }

    #[test]
    fn a_time_chart_is_accessible_and_well_formed() {
        let chart = time_chart(
            "downloads",
            "Downloads",
            "Downloads per day.",
            "downloads",
            &[daily("all", &[3.0, 42.0, 17.0])],
        );
        let svg = chart.to_string();
        assert_well_formed(&svg);
        assert!(svg.contains(r#"aria-labelledby="downloads-title downloads-desc""#));
        assert!(svg.contains(r#"<title id="downloads-title">Downloads</title>"#));
        assert!(svg.contains(r#"<desc id="downloads-desc">Downloads per day. all: 2026-12-01 to 2026-12-03, latest 17 downloads on 2026-12-03, highest 42 downloads on 2026-12-02.</desc>"#));
        assert!(svg.contains(r#"viewBox="0 0 640 256""#));
        assert!(svg.contains("<title>2026-12-02: 42 downloads</title>"));
        assert_eq!(svg.matches("<circle").count(), 3);
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert!(svg.contains(">2026-12-01</text>") && svg.contains(">2026-12-03</text>"));
        // Ticks 0, 10, …, 50; no legend for one series.
        assert!(svg.contains(">50</text>") && !svg.contains(">60</text>"));
        assert!(!svg.contains("chart-legend"));
        // The same input, the same markup.
        let again = time_chart(
            "downloads",
            "Downloads",
            "Downloads per day.",
            "downloads",
            &[daily("all", &[3.0, 42.0, 17.0])],
        );
        assert_eq!(chart, again);
    }

    #[test]
    fn many_points_have_few_dates_and_no_dots() {
        let values: Vec<f64> = (0..90).map(|i| (i * 7 % 31) as f64 + 0.5).collect();
        let svg = time_chart("p95", "Duration", "", "ms", &[daily("p95", &values)]).svg;
        assert_well_formed(&svg);
        assert_eq!(svg.matches("<circle").count(), 0);
        let dates = svg.matches(r#"y="246" text-anchor"#).count();
        assert!(dates <= MAX_DATE_LABELS, "{dates} date labels");
        assert!(svg.contains(">2026-12-01</text>"));
        assert!(svg.contains(&format!(">{}</text>", format::date(DEC_1 + 89 * DAY_MS))));
        assert!(svg.contains(r#"<text class="chart-unit" x="60" y="16">ms</text>"#));
    }

    #[test]
    fn legends_and_the_eight_series_bound() {
        let series: Vec<Series> = (0..10)
            .map(|i| daily(&format!("s{i}"), &[i as f64, 1.0]))
            .collect();
        let svg = time_chart("rates", "Rates", "", "%", &series).svg;
        assert_well_formed(&svg);
        assert!(svg.contains("series-7") && !svg.contains("series-8"));
        assert_eq!(svg.matches("<polyline").count(), 8);
        assert!(svg.contains("chart-legend"));
        assert!(svg.contains(">s7</text>") && !svg.contains(">s8</text>"));
        assert!(svg.contains("2 more series not shown."));
        assert!(svg.contains("<title>s3, 2026-12-01: 3%</title>"));
    }

    #[test]
    fn empty_one_point_all_zero_and_bad_values_still_draw() {
        for svg in [
            time_chart("e", "Empty", "Nothing.", "downloads", &[]).svg,
            time_chart("e", "Empty", "", "downloads", &[daily("a", &[])]).svg,
            bar_chart("e", "Empty", "", "searches", &[]).svg,
        ] {
            assert_well_formed(&svg);
            assert!(svg.contains(">No data yet</text>"), "{svg}");
        }
        let one = time_chart("one", "One", "", "downloads", &[daily("a", &[5.0])]).svg;
        assert_well_formed(&one);
        assert_eq!(one.matches("<circle").count(), 1);
        assert!(
            one.contains(r#"cx="342""#),
            "a lone day sits in the middle: {one}"
        );
        assert!(one.contains("a: 5 downloads on 2026-12-01."));
        let zeros = time_chart("z", "Zero", "", "downloads", &[daily("a", &[0.0; 5])]).svg;
        assert_well_formed(&zeros);
        assert!(
            zeros.contains(">1</text>"),
            "an all-zero chart keeps an axis to 1"
        );
        let odd = time_chart(
            "odd",
            "Odd",
            "",
            "ms",
            &[
                daily("a", &[f64::NAN, f64::INFINITY, -3.0, 2.5]),
                daily("b", &[f64::NEG_INFINITY]),
            ],
        )
        .svg;
        assert_well_formed(&odd);
        let bars = bar_chart(
            "b",
            "Zero",
            "",
            "errors",
            &[bar("a", 0.0), bar("b", f64::NAN), bar("c", f64::INFINITY)],
        )
        .svg;
        assert_well_formed(&bars);
        assert!(bars.contains(r#"width="0""#));
        // Points on one day but not at its start.
        let same_day = time_chart(
            "d",
            "D",
            "",
            "",
            &[Series {
                name: String::new(),
                points: vec![(DEC_1, 1.0), (DEC_1 + 3_600_000, 2.0)],
            }],
        )
        .svg;
        assert_well_formed(&same_day);
        assert_eq!(same_day.matches(">2026-12-01</text>").count(), 1);
    }

    #[test]
    fn bar_charts_scale_cut_link_and_stop_at_twenty() {
        let long = "x".repeat(60);
        let bars = vec![
            Bar {
                label: "timeout".into(),
                value: 200.0,
                href: Some("/search?q=timeout&page=2".into()),
            },
            bar(&long, 100.0),
            Bar {
                label: "evil".into(),
                value: 50.0,
                href: Some(" JavaScript:alert(1)".into()),
            },
            bar("tiny", 0.001),
        ];
        let svg = bar_chart(
            "errors",
            "Top errors",
            "Most frequent errors.",
            "failures",
            &bars,
        )
        .svg;
        assert_well_formed(&svg);
        assert!(
            svg.contains(r#"<a href="/search?q=timeout&amp;page=2"><text class="chart-label""#)
        );
        assert_eq!(svg.matches("<a ").count(), 1, "no javascript: link");
        assert!(svg.contains(&format!(">{}…</text>", "x".repeat(39))));
        assert!(svg.contains(&format!("<title>{long}: 100 failures</title>")));
        assert!(svg.contains(&format!(r#"width="{}""#, num(BAR_MAX))));
        assert!(svg.contains(&format!(r#"width="{}""#, num(BAR_MAX / 2.0))));
        assert!(svg.contains(r#"width="1""#), "a small value still shows");
        assert!(svg.contains(r#">200</text>"#));
        assert!(svg.contains("Most frequent errors. timeout: 200 failures; "));

        let many: Vec<Bar> = (0..25)
            .map(|i| bar(&format!("b{i}"), (25 - i) as f64))
            .collect();
        let svg = bar_chart("top", "Top", "", "%", &many).svg;
        assert_well_formed(&svg);
        assert_eq!(svg.matches(r#"class="chart-bar""#).count(), 20);
        assert!(svg.contains(">b19</text>") && !svg.contains(">b20</text>"));
        assert!(svg.contains("5 more not shown."));
        assert!(svg.contains(">25%</text>"));
    }

    #[test]
    fn text_is_escaped_everywhere() {
        let evil = "<script>alert(1)</script>";
        let quote = r#"a"b'c&d"#;
        let svg = bar_chart(
            "x",
            evil,
            quote,
            evil,
            &[Bar {
                label: evil.into(),
                value: 1.0,
                href: Some(format!("/s?q=\"{evil}")),
            }],
        )
        .svg;
        assert_well_formed(&svg);
        assert!(!svg.contains("<script"));
        assert!(svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(svg.contains("a&quot;b&#39;c&amp;d"));
        assert!(svg.contains(r#"href="/s?q=&quot;&lt;script&gt;"#));
        let svg = time_chart(
            evil,
            evil,
            evil,
            evil,
            &[daily(evil, &[1.0]), daily(quote, &[2.0])],
        )
        .svg;
        assert_well_formed(&svg);
        assert!(!svg.contains("<script"));
        assert_eq!(escape(quote), "a&quot;b&#39;c&amp;d");
    }

    #[test]
    fn ids_are_sanitized() {
        assert_eq!(sanitize_id("Top Errors_7d"), "top-errors-7d");
        assert_eq!(sanitize_id("\"><x"), "---x");
        assert_eq!(sanitize_id(""), "chart");
        let svg = time_chart("A b", "t", "", "", &[]).svg;
        assert!(svg.contains(r#"aria-labelledby="a-b-title a-b-desc""#));
        assert!(svg.contains(r#"<desc id="a-b-desc">"#));
    }

    #[test]
    fn nice_ticks_are_round() {
        assert_eq!(nice_ticks(42.0, true), (10.0, 5));
        assert_eq!(nice_ticks(100.0, true), (20.0, 5));
        assert_eq!(nice_ticks(7.0, true), (2.0, 4));
        assert_eq!(nice_ticks(3.0, true), (1.0, 3));
        assert_eq!(nice_ticks(0.0, true), (1.0, 1));
        assert_eq!(nice_ticks(f64::NAN, false), (0.2, 5));
        assert_eq!(nice_ticks(12_345.0, true), (5_000.0, 3));
        let (step, ticks) = nice_ticks(0.35, false);
        assert!((step - 0.1).abs() < 1e-12 && ticks == 4);
        assert_eq!(tick_label(0.30000000000000004, 0.1), "0.3");
        assert_eq!(tick_label(0.05, 0.05), "0.05");
        assert_eq!(tick_label(15_000.0, 5_000.0), "15.0k");
        for max in [0.001, 0.9, 1.0, 9.99, 10.0, 55.5, 1e6, 3.3e9] {
            let (step, ticks) = nice_ticks(max, false);
            let mantissa = step / 10f64.powi(step.log10().floor() as i32);
            assert!(
                [1.0, 2.0, 5.0].iter().any(|m| (mantissa - m).abs() < 1e-9),
                "{max}: {step}"
            );
            assert!(
                step * ticks as f64 >= max * (1.0 - 1e-9) && (2..=10).contains(&ticks),
                "{max}: {step} × {ticks}"
            );
        }
    }

    #[test]
    fn values_are_compact() {
        assert_eq!(value(42.0), "42");
        assert_eq!(value(12_345.0), "12.3k");
        assert_eq!(value(99.46), "99.5");
        assert_eq!(value(1_234.5), "1.2k");
        assert_eq!(with_unit(99.5, "%"), "99.5%");
        assert_eq!(with_unit(120.0, "ms"), "120 ms");
        assert_eq!(bar_value(7.0, "searches"), "7");
        assert_eq!(num(-0.01), "0");
        assert_eq!(num(12.25), "12.2");
        assert_eq!(num(f64::NAN), "0");
        assert!(
            safe_href("https://example.com/a:b") && safe_href("?page=2") && safe_href("/a?x=y:z")
        );
        assert!(!safe_href("data:text/html,x") && !safe_href("  ") && !safe_href("vbscript:x"));
    }
}
