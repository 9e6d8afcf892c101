//! Production time series of an SLI: one row per window of fixed length, either a Prometheus
//! classic histogram of the SLI's values (latency, time to first token, freshness) or counts of
//! good and total events (share of faithful answers, successful checkouts).

use super::text_enum;

text_enum! {
    /// What each window of a series records.
    SeriesKind { Histogram => "histogram", Events => "events", Values => "values" }
}

/// Longest window of a series: one day.
pub const MAX_WINDOW_SECONDS: u32 = 86_400;

/// Most finite bucket bounds of a histogram window (Prometheus's `+Inf` comes on top).
pub const MAX_SERIES_BUCKETS: usize = 200;

/// The shape every window of one metric shares, fixed by its first upload.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesLayout {
    pub kind: SeriesKind,
    /// Length of every window, in seconds; every `start` is a multiple of it (Unix time).
    pub seconds: u32,
    /// Finite bucket upper bounds in the metric's unit, strictly increasing (histograms).
    pub bounds: Vec<f64>,
}

/// What one window holds.
#[derive(Debug, Clone, PartialEq)]
pub enum WindowData {
    /// Cumulative counts per finite bound of the layout; `count` is the `+Inf` bucket.
    Histogram {
        count: f64,
        /// Sum of the values, when known.
        sum: Option<f64>,
        cumulative: Vec<f64>,
    },
    Events {
        good: f64,
        total: f64,
    },
    /// A KPI's window: its mean `sum / units` over `units` (users, sessions, impressions), e.g.
    /// conversion 0.052 over 1,300 sessions is sum 67.6.
    Values {
        units: f64,
        sum: f64,
    },
}

impl WindowData {
    /// Events in the window.
    pub fn total(&self) -> f64 {
        match self {
            WindowData::Histogram { count, .. } => *count,
            WindowData::Events { total, .. } => *total,
            WindowData::Values { units, .. } => *units,
        }
    }

    /// Adds another window's counts (same layout): windows aggregate into longer ones.
    pub fn add(&mut self, other: &WindowData) {
        self.combine(other, 1.0);
    }

    /// Removes a window added before (a sliding aggregate dropping its oldest window).
    pub fn subtract(&mut self, other: &WindowData) {
        self.combine(other, -1.0);
    }

    fn combine(&mut self, other: &WindowData, sign: f64) {
        match (self, other) {
            (
                WindowData::Histogram {
                    count,
                    sum,
                    cumulative,
                },
                WindowData::Histogram {
                    count: c2,
                    sum: s2,
                    cumulative: k2,
                },
            ) => {
                *count += sign * c2;
                *sum = sum.zip(*s2).map(|(a, b)| a + sign * b);
                for (a, b) in cumulative.iter_mut().zip(k2) {
                    *a += sign * b;
                }
            }
            (WindowData::Events { good, total }, WindowData::Events { good: g, total: t }) => {
                *good += sign * g;
                *total += sign * t;
            }
            (WindowData::Values { units, sum }, WindowData::Values { units: u, sum: s }) => {
                *units += sign * u;
                *sum += sign * s;
            }
            _ => {}
        }
    }

    /// An empty window of the layout.
    pub fn empty(layout: &SeriesLayout) -> WindowData {
        match layout.kind {
            SeriesKind::Histogram => WindowData::Histogram {
                count: 0.0,
                sum: Some(0.0),
                cumulative: vec![0.0; layout.bounds.len()],
            },
            SeriesKind::Events => WindowData::Events {
                good: 0.0,
                total: 0.0,
            },
            SeriesKind::Values => WindowData::Values {
                units: 0.0,
                sum: 0.0,
            },
        }
    }
}

/// One validated window; `row` is its 1-based position in the upload (0 when not uploaded).
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesWindow {
    pub row: u64,
    /// Unix seconds, a multiple of the layout's window length.
    pub start: i64,
    pub data: WindowData,
}

/// Where a metric's production series is pulled from: a Prometheus server and the counters of
/// the SLI's histogram (or of its good and total events). The selectors name counters, not
/// rates: each window's counts are the counters' increase over the window, taken per series
/// (a counter reset starts from zero) and summed, so windows are exact at scrape boundaries.
#[derive(
    Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(deny_unknown_fields)]
pub struct PrometheusSource {
    /// Base URL of the Prometheus HTTP API (`http://`), without credentials.
    #[schema(example = "http://prometheus.internal:9090", max_length = 500)]
    pub url: String,
    /// Series selector of the histogram's bucket counters (with an `le` label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        example = "checkout_latency_seconds_bucket{job=\"api\"}",
        max_length = 1000
    )]
    pub buckets: Option<String>,
    /// Series selector of good-event counters (event SLIs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 1000)]
    pub good: Option<String>,
    /// Series selector of total-event counters (event SLIs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 1000)]
    pub total: Option<String>,
    /// Factor from the histogram's unit to the metric's (1000 when a millisecond SLI is
    /// recorded in seconds); default 1000 for a metric in `ms`, else 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(exclusive_minimum = 0, maximum = 1e9)]
    pub scale: Option<f64>,
    /// Window length in seconds of the pulled series (default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 86400)]
    pub window_seconds: Option<u32>,
}

impl PrometheusSource {
    /// Problems with the source, as (field, message) pairs under `prefix`.
    pub fn problems(&self, prefix: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let f = |name: &str| format!("{prefix}.{name}");
        match url::Url::parse(&self.url) {
            // The client speaks plain HTTP (reach an https-only server through a local proxy).
            Ok(u) if u.scheme() != "http" => out.push((
                f("url"),
                "must be an http:// URL (https is not supported by this build)".to_owned(),
            )),
            Ok(u) if !u.username().is_empty() || u.password().is_some() => out.push((
                f("url"),
                "must not carry credentials (they would be shown to every reader)".to_owned(),
            )),
            Ok(_) if self.url.len() > 500 => {
                out.push((f("url"), "must be at most 500 characters".to_owned()))
            }
            Ok(u) if u.query().is_some() || u.fragment().is_some() => out.push((
                f("url"),
                "must be the server's base URL, without a query or fragment".to_owned(),
            )),
            Ok(_) => {}
            Err(e) => out.push((f("url"), format!("is not a URL: {e}"))),
        }
        match (&self.buckets, &self.good, &self.total) {
            (Some(_), None, None) | (None, Some(_), Some(_)) => {}
            _ => out.push((
                prefix.to_owned(),
                "name either `buckets` (a histogram) or both `good` and `total` (events)"
                    .to_owned(),
            )),
        }
        for (name, s) in [
            ("buckets", &self.buckets),
            ("good", &self.good),
            ("total", &self.total),
        ] {
            if s.as_ref().is_some_and(|s| !is_selector(s)) {
                out.push((
                    f(name),
                    "must be a series selector of 1 to 1000 characters naming counters, e.g. checkout_latency_seconds_bucket{job=\"api\"} (no functions or ranges)".into(),
                ));
            }
        }
        if self
            .scale
            .is_some_and(|s| !(s.is_finite() && s > 0.0 && s <= 1e9))
        {
            out.push((f("scale"), "must be a number in (0, 1e9]".to_owned()));
        }
        if self
            .window_seconds
            .is_some_and(|w| w == 0 || w > MAX_WINDOW_SECONDS)
        {
            out.push((
                f("window_seconds"),
                format!("must be between 1 and {MAX_WINDOW_SECONDS}"),
            ));
        }
        out
    }
}

/// Whether `s` looks like a series selector: a metric name and optional label matchers, or
/// matchers alone; no function call or range (Prometheus checks the rest).
fn is_selector(s: &str) -> bool {
    let s = s.trim();
    if s.is_empty() || s.len() > 1000 {
        return false;
    }
    let name_end = s.find('{').unwrap_or(s.len());
    let (name, matchers) = s.split_at(name_end);
    let name_ok = name.chars().enumerate().all(|(i, c)| {
        c == '_' || c == ':' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())
    });
    let matchers_ok = matchers.is_empty() || (matchers.starts_with('{') && matchers.ends_with('}'));
    (name_ok && !(name.is_empty() && matchers.is_empty())) && matchers_ok
}

#[cfg(test)]
mod tests {
    use super::is_selector;

    #[test]
    fn selectors_are_names_and_matchers() {
        for ok in [
            "x_bucket",
            "x_bucket{job=\"api\"}",
            "{__name__=\"x\"}",
            "ns:x_bucket",
        ] {
            assert!(is_selector(ok), "{ok}");
        }
        for bad in [
            "",
            "rate(x_bucket[5m])",
            "x_bucket[5m]",
            "9x",
            "x_bucket{job=\"a\"",
        ] {
            assert!(!is_selector(bad), "{bad}");
        }
    }
}
