//! Pulling an SLI's production windows from a real Prometheus (`/api/v1/query_range`).
//!
//! The source's selectors name **counters** (a histogram's `_bucket` series, or good and total
//! event counters). They are read at every window boundary (`step` = the window length); each
//! window's count is the counters' increase between its two boundaries, per histogram (the
//! series sharing every label but `le`; a drop in any of its buckets is a restart, and the new
//! values are the increase), summed over histograms by bound (parsed, so `le="1"` and
//! `le="1.0"` are one bound). Unlike `increase()`, nothing is extrapolated, so a window is exact
//! when scrapes fall on its boundaries and no counter restarted or appeared inside it (events
//! before a restart, or before a new series' first sample, are lost, as in Prometheus), and
//! consecutive windows never count an event twice.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::series::{BucketRow, SeriesRow};
use crate::domain::series::{PrometheusSource, SeriesKind};
use crate::error::{AppError, AppResult, Issue};

/// Steps per `query_range` request (Prometheus refuses more than 11,000 points per series).
/// Each chunk is turned into windows before the next is read, so memory holds one chunk's
/// answer (at most [`MAX_RESPONSE_BYTES`]) and the windows.
pub const STEPS_PER_QUERY: i64 = 2_000;

/// Longest one query to Prometheus may take, answer included.
const QUERY_SECONDS: u64 = 30;

/// Most series a selector may match.
pub const MAX_SERIES: usize = 1_000;

/// Largest response body read from Prometheus.
const MAX_RESPONSE_BYTES: usize = 32 << 20;

#[derive(Debug, Deserialize)]
struct ApiResponse {
    status: String,
    #[serde(default)]
    data: Option<MatrixData>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct MatrixData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Vec<MatrixSeries>,
}

/// One series of a range query: its labels and `[unix time, "value"]` samples.
#[derive(Debug, Deserialize)]
pub struct MatrixSeries {
    pub metric: BTreeMap<String, String>,
    pub values: Vec<(f64, String)>,
}

/// The base URL without a trailing slash, for messages (sources carry no credentials).
fn base(src: &PrometheusSource) -> &str {
    src.url.trim_end_matches('/')
}

/// Runs one range query over [start, end] every `step` seconds.
async fn query_range(
    client: &awc::Client,
    src: &PrometheusSource,
    query: &str,
    (start, end, step): (i64, i64, i64),
) -> AppResult<Vec<MatrixSeries>> {
    let url = format!("{}/api/v1/query_range", base(src));
    let form = [
        ("query", query.to_owned()),
        ("start", start.to_string()),
        ("end", end.to_string()),
        ("step", step.to_string()),
    ];
    let exchange = async {
        let mut response = client.post(&url).send_form(&form).await.map_err(|e| {
            AppError::BadGateway(format!(
                "the Prometheus source at {} could not be reached: {e}",
                base(src)
            ))
        })?;
        let status = response.status();
        let body = response
            .body()
            .limit(MAX_RESPONSE_BYTES)
            .await
            .map_err(|e| {
                AppError::BadGateway(format!(
                    "the Prometheus source at {} answered {status} with a body that could not be read: {e}",
                    base(src)
                ))
            })?;
        Ok::<_, AppError>((status, body))
    };
    // The whole exchange, body included: a source that trickles its answer is cut off too.
    let (status, body) =
        actix_web::rt::time::timeout(std::time::Duration::from_secs(QUERY_SECONDS), exchange)
            .await
            .map_err(|_| {
                AppError::BadGateway(format!(
                    "the Prometheus source at {} did not answer within {QUERY_SECONDS} s",
                    base(src)
                ))
            })??;
    let parsed: Option<ApiResponse> = serde_json::from_slice(&body).ok();
    match parsed {
        Some(ApiResponse {
            status: ok,
            data: Some(data),
            ..
        }) if status.is_success() && ok == "success" && data.result_type == "matrix" => {
            if data.result.len() > MAX_SERIES {
                return Err(AppError::invalid(
                    "the Prometheus selector matches too many series",
                    vec![Issue::field(
                        "prometheus.source",
                        format!(
                            "'{query}' matches {} series; at most {MAX_SERIES} (narrow it with labels)",
                            data.result.len()
                        ),
                    )],
                ));
            }
            Ok(data.result)
        }
        Some(r) => {
            let why: String = r.error.unwrap_or_default().chars().take(300).collect();
            Err(AppError::BadGateway(format!(
                "the Prometheus source at {} answered {status} to '{query}': {why}",
                base(src)
            )))
        }
        None => Err(AppError::BadGateway(format!(
            "the Prometheus source at {} answered {status} with a body that is not a Prometheus API response",
            base(src)
        ))),
    }
}

/// The chunks [start, end] of [from, to] that one query each reads: consecutive chunks share
/// their boundary sample, so every window lies inside one chunk.
fn chunks(from: i64, to: i64, w: i64) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut start = from;
    while start < to {
        let end = (start + STEPS_PER_QUERY * w).min(to);
        out.push((start, end));
        start = end;
    }
    out
}

/// Per window start, the summed increase of every series, keyed by `key(labels)`.
fn increases(
    series: &[MatrixSeries],
    w: i64,
    key: impl Fn(&BTreeMap<String, String>) -> AppResult<String>,
) -> AppResult<BTreeMap<i64, BTreeMap<String, f64>>> {
    let mut out: BTreeMap<i64, BTreeMap<String, f64>> = BTreeMap::new();
    for s in series {
        let k = key(&s.metric)?;
        let mut previous: Option<(i64, f64)> = None;
        for (t, v) in &s.values {
            let t = t.round() as i64;
            let Some(v) = v.parse::<f64>().ok().filter(|v| v.is_finite()) else {
                previous = None;
                continue;
            };
            if let Some((pt, pv)) = previous.filter(|(pt, _)| t - pt == w) {
                let delta = if v >= pv { v - pv } else { v };
                *out.entry(pt).or_default().entry(k.clone()).or_default() += delta;
            }
            previous = Some((t, v));
        }
    }
    Ok(out)
}

fn time(t: i64) -> String {
    DateTime::<Utc>::from_timestamp(t, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Rounds a scaled bound to 9 decimals (0.1 s × 1000 is 100 ms, not 100.00000000000001).
fn scaled(le: f64, scale: f64) -> f64 {
    if le.is_finite() {
        (le * scale * 1e9).round() / 1e9
    } else {
        le
    }
}

fn bad_selector(message: impl Into<String>) -> AppError {
    AppError::invalid(
        "the Prometheus selector does not select histogram buckets",
        vec![Issue::field("prometheus.source.buckets", message)],
    )
}

/// One histogram (one label set without `le`): per bucket bound (parsed, so `1` and `1.0` are
/// one bound), its samples by time.
type Group = BTreeMap<u64, (f64, BTreeMap<i64, f64>)>;

/// The series grouped into histograms by their labels other than `le`.
fn groups(series: &[MatrixSeries]) -> AppResult<Vec<Group>> {
    let mut by_labels: BTreeMap<Vec<(String, String)>, Group> = BTreeMap::new();
    for s in series {
        let raw = s.metric.get("le").ok_or_else(|| {
            bad_selector(
                "a selected series has no `le` label; select the histogram's `_bucket` counters",
            )
        })?;
        let le = super::series::parse_bound(raw)
            .ok_or_else(|| bad_selector(format!("le=\"{raw}\" is not a number")))?;
        let labels: Vec<(String, String)> = s
            .metric
            .iter()
            .filter(|(k, _)| k.as_str() != "le")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let key = if le == 0.0 { 0 } else { le.to_bits() };
        let samples = &mut by_labels
            .entry(labels)
            .or_default()
            .entry(key)
            .or_insert_with(|| (le, BTreeMap::new()))
            .1;
        for (t, v) in &s.values {
            // A NaN (or infinite) sample is no sample: its windows are missing.
            if let Some(v) = v.parse::<f64>().ok().filter(|v| v.is_finite()) {
                *samples.entry(t.round() as i64).or_default() += v;
            }
        }
    }
    Ok(by_labels.into_values().collect())
}

/// Histogram windows from bucket-counter series: each histogram's increase between window
/// boundaries, a reset of any of its buckets (a restart) read as a reset of all of them, summed
/// over histograms by bound; complete windows only (every bound seen).
pub fn histogram_rows(series: &[MatrixSeries], w: i64, scale: f64) -> AppResult<Vec<SeriesRow>> {
    let groups = groups(series)?;
    let mut bounds: Vec<f64> = groups
        .iter()
        .flat_map(|g| g.values().map(|(le, _)| *le))
        .collect();
    bounds.sort_by(f64::total_cmp);
    bounds.dedup();
    let mut windows: BTreeMap<i64, BTreeMap<u64, f64>> = BTreeMap::new();
    for g in &groups {
        let times: std::collections::BTreeSet<i64> =
            g.values().flat_map(|(_, s)| s.keys().copied()).collect();
        for &t in &times {
            let at = |t: i64| -> Option<Vec<(u64, f64)>> {
                g.iter()
                    .map(|(k, (_, s))| s.get(&t).map(|v| (*k, *v)))
                    .collect()
            };
            let (Some(before), Some(now)) = (at(t - w), at(t)) else {
                continue;
            };
            let reset = before.iter().zip(&now).any(|(b, n)| n.1 < b.1);
            let out = windows.entry(t - w).or_default();
            for ((k, b), (_, n)) in before.iter().zip(&now) {
                *out.entry(*k).or_default() += if reset { *n } else { n - b };
            }
        }
    }
    let keys: Vec<u64> = bounds
        .iter()
        .map(|b| if *b == 0.0 { 0 } else { b.to_bits() })
        .collect();
    let mut rows = Vec::new();
    for (start, counts) in windows {
        if keys.iter().any(|k| !counts.contains_key(k)) {
            continue;
        }
        // Cumulative counts summed over histograms stay monotone; a running maximum guards
        // against float noise only.
        let mut running = 0.0_f64;
        let buckets: Vec<BucketRow> = bounds
            .iter()
            .zip(&keys)
            .map(|(le, k)| {
                running = running.max(counts[k]);
                BucketRow {
                    le: scaled(*le, scale),
                    count: running,
                }
            })
            .collect();
        rows.push(SeriesRow {
            value: None,
            units: None,
            start: time(start),
            seconds: w,
            count: buckets.last().map(|b| b.count),
            sum: None,
            buckets: Some(buckets),
            good: None,
            total: None,
        });
    }
    Ok(rows)
}

/// Event windows from good- and total-counter series.
pub fn event_rows(
    good: &[MatrixSeries],
    total: &[MatrixSeries],
    w: i64,
) -> AppResult<Vec<SeriesRow>> {
    let one = |_: &BTreeMap<String, String>| Ok(String::new());
    let no_good_series = good.is_empty();
    let good = increases(good, w, one)?;
    let total = increases(total, w, one)?;
    Ok(total
        .into_iter()
        .filter_map(|(start, t)| {
            let t = t.values().sum::<f64>();
            // A window without a good sample is missing, unless nothing counts good events.
            let g = match good.get(&start) {
                Some(g) => g.values().sum::<f64>().min(t),
                None if no_good_series => 0.0,
                None => return None,
            };
            Some(SeriesRow {
                value: None,
                units: None,
                start: time(start),
                seconds: w,
                count: None,
                sum: None,
                buckets: None,
                good: Some(g),
                total: Some(t),
            })
        })
        .collect())
}

/// Pulls the windows starting in [from, to) (aligned to the source's window length) as upload
/// rows, validated later like pushed ones.
pub async fn pull(
    src: &PrometheusSource,
    unit: &str,
    from: i64,
    to: i64,
) -> AppResult<(SeriesKind, Vec<SeriesRow>)> {
    let w = i64::from(src.window_seconds.unwrap_or(60));
    let client = awc::Client::builder()
        .timeout(std::time::Duration::from_secs(QUERY_SECONDS))
        .finish();
    let mut rows = Vec::new();
    if let Some(buckets) = &src.buckets {
        let scale = src.scale.unwrap_or(if unit == "ms" { 1000.0 } else { 1.0 });
        for range in chunks(from, to, w) {
            let series = query_range(&client, src, buckets, (range.0, range.1, w)).await?;
            rows.extend(histogram_rows(&series, w, scale)?);
        }
        return Ok((SeriesKind::Histogram, rows));
    }
    let (Some(good), Some(total)) = (&src.good, &src.total) else {
        return Err(AppError::invalid(
            "the metric's Prometheus source names no series",
            vec![Issue::field(
                "prometheus.source",
                "name buckets, or good and total",
            )],
        ));
    };
    for range in chunks(from, to, w) {
        let g = query_range(&client, src, good, (range.0, range.1, w)).await?;
        let t = query_range(&client, src, total, (range.0, range.1, w)).await?;
        rows.extend(event_rows(&g, &t, w)?);
    }
    Ok((SeriesKind::Events, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(le: &str, values: &[(f64, f64)]) -> MatrixSeries {
        MatrixSeries {
            metric: [("le".to_owned(), le.to_owned())].into_iter().collect(),
            values: values.iter().map(|(t, v)| (*t, v.to_string())).collect(),
        }
    }

    /// A restart shows in one bucket only (0.1 rose 5 → 7 while +Inf fell 20 → 12): the whole
    /// histogram restarted, so both buckets' increases are their new values.
    #[test]
    fn a_reset_in_one_bucket_resets_the_histogram() {
        let s = vec![
            series("0.1", &[(0.0, 5.0), (60.0, 7.0)]),
            series("+Inf", &[(0.0, 20.0), (60.0, 12.0)]),
        ];
        let rows = histogram_rows(&s, 60, 1000.0).unwrap();
        let b = rows[0].buckets.as_ref().unwrap();
        assert_eq!((b[0].count, b[1].count), (7.0, 12.0));
    }

    /// `le="1"` and `le="1.0"` (two exporters, or Prometheus 3's normalisation) are one bound.
    #[test]
    fn spellings_of_a_bound_merge() {
        let mut a = series("1", &[(0.0, 1.0), (60.0, 4.0)]);
        a.metric.insert("instance".into(), "a".into());
        let mut b = series("1.0", &[(0.0, 2.0), (60.0, 3.0)]);
        b.metric.insert("instance".into(), "b".into());
        let mut ia = series("+Inf", &[(0.0, 2.0), (60.0, 6.0)]);
        ia.metric.insert("instance".into(), "a".into());
        let mut ib = series("+Inf", &[(0.0, 2.0), (60.0, 4.0)]);
        ib.metric.insert("instance".into(), "b".into());
        let rows = histogram_rows(&[a, b, ia, ib], 60, 1.0).unwrap();
        let k = rows[0].buckets.as_ref().unwrap();
        assert_eq!(k.len(), 2);
        assert_eq!((k[0].le, k[0].count, k[1].count), (1.0, 4.0, 6.0));
    }

    /// Increases between boundaries, with a counter reset read as a restart from zero.
    #[test]
    fn windows_are_counter_increases_with_resets() {
        let s = vec![
            series("0.1", &[(0.0, 10.0), (60.0, 15.0), (120.0, 3.0)]),
            series("+Inf", &[(0.0, 20.0), (60.0, 30.0), (120.0, 4.0)]),
        ];
        let rows = histogram_rows(&s, 60, 1000.0).unwrap();
        assert_eq!(rows.len(), 2);
        let b = rows[0].buckets.as_ref().unwrap();
        assert_eq!((b[0].le, b[0].count, b[1].count), (100.0, 5.0, 10.0));
        let b = rows[1].buckets.as_ref().unwrap();
        assert_eq!((b[0].count, b[1].count), (3.0, 4.0));
        assert_eq!(rows[1].count, Some(4.0));
    }
}
