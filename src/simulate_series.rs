//! Simulated production series of a latency SLI, for demos, tests and benchmarks: one Prometheus
//! histogram per window, as NDJSON rows for `POST /api/v1/metrics/{key}/series` or as
//! OpenMetrics counters for `promtool tsdb create-blocks-from openmetrics`.
//!
//! Data-generating process, per window k of `window_seconds` starting at tₖ:
//! - traffic nₖ ~ Poisson(rps · window · (1 + 0.5·sin(2π·tₖ/day))) (a daily cycle);
//! - request latency ~ LogNormal(ln(median) + ln(fₖ), σ), heavy-tailed for σ ≥ 0.5, where
//!   fₖ = 1 outside incidents; each hour an incident starts with probability `incidents_per_hour`
//!   and lasts 10–60 minutes with a slowdown factor f ~ Uniform(1.5, 3);
//! - bucket counts: a multinomial draw of nₖ requests over the buckets, with probabilities
//!   from the log-normal CDF at the bounds (sequential binomials); `sum` = Σ bucket midpoints.
//!
//! Deterministic for a seed: the same flags give the same windows on any machine.

use rand::{Rng, SeedableRng};
use rand_distr::{Binomial, Distribution, Poisson};
use rand_xoshiro::Xoshiro256PlusPlus;
use statrs::distribution::{ContinuousCDF, LogNormal};

/// Default bucket bounds in ms (Prometheus-style, denser around usual thresholds).
pub const DEFAULT_BOUNDS_MS: [f64; 16] = [
    25.0, 50.0, 100.0, 150.0, 200.0, 250.0, 300.0, 400.0, 500.0, 600.0, 750.0, 1000.0, 1500.0,
    2000.0, 3000.0, 5000.0,
];

/// Settings of a simulated series.
#[derive(Debug, Clone, clap::Args)]
pub struct SeriesConfig {
    /// Start of the first window (RFC 3339, aligned to the window length).
    #[arg(long, default_value = "2026-11-28T00:00:00Z")]
    pub start: chrono::DateTime<chrono::Utc>,
    /// Number of windows.
    #[arg(long, default_value_t = 1440)]
    pub windows: u32,
    #[arg(long, default_value_t = 60)]
    pub window_seconds: u32,
    /// Mean requests per second.
    #[arg(long, default_value_t = 20.0)]
    pub rps: f64,
    /// Median latency in ms outside incidents.
    #[arg(long, default_value_t = 250.0)]
    pub median_ms: f64,
    /// Log-normal σ of request latency.
    #[arg(long, default_value_t = 0.6)]
    pub sigma: f64,
    /// Chance per hour that an incident starts.
    #[arg(long, default_value_t = 0.05)]
    pub incidents_per_hour: f64,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

impl Default for SeriesConfig {
    fn default() -> Self {
        SeriesConfig {
            start: chrono::DateTime::from_timestamp(1_764_288_000, 0).unwrap_or_default(),
            windows: 1440,
            window_seconds: 60,
            rps: 20.0,
            median_ms: 250.0,
            sigma: 0.6,
            incidents_per_hour: 0.05,
            seed: 7,
        }
    }
}

/// One simulated window: start (Unix seconds) and cumulative counts per bound, then the total.
#[derive(Debug, Clone, PartialEq)]
pub struct SimWindow {
    pub start: i64,
    pub cumulative: Vec<u64>,
    pub count: u64,
    pub sum: f64,
}

/// The windows of a simulated series over `bounds` (ms).
pub fn generate(c: &SeriesConfig, bounds: &[f64]) -> anyhow::Result<Vec<SimWindow>> {
    anyhow::ensure!(
        c.sigma > 0.0 && c.median_ms > 0.0 && c.rps >= 0.0,
        "invalid settings"
    );
    anyhow::ensure!(c.window_seconds > 0, "window_seconds must be positive");
    let w = i64::from(c.window_seconds);
    anyhow::ensure!(
        c.start.timestamp() % w == 0,
        "start must be aligned to the window length"
    );
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(c.seed);
    let mut out = Vec::with_capacity(c.windows as usize);
    let mut slow_until = i64::MIN;
    let mut factor = 1.0;
    let mut hour = i64::MIN;
    for k in 0..i64::from(c.windows) {
        let t = c.start.timestamp() + k * w;
        if t / 3600 != hour {
            hour = t / 3600;
            if t >= slow_until && rng.random::<f64>() < c.incidents_per_hour {
                slow_until = t + rng.random_range(10..=60) * 60;
                factor = rng.random_range(1.5..3.0);
            }
        }
        let f = if t < slow_until { factor } else { 1.0 };
        let day = (t.rem_euclid(86_400)) as f64 / 86_400.0;
        let mean = c.rps * w as f64 * (1.0 + 0.5 * (std::f64::consts::TAU * day).sin());
        let n = if mean > 0.0 {
            Poisson::new(mean)?.sample(&mut rng) as u64
        } else {
            0
        };
        let dist = LogNormal::new((c.median_ms * f).ln(), c.sigma)?;
        let mut left = n;
        let mut p_done = 0.0;
        let mut cumulative = Vec::with_capacity(bounds.len());
        let mut running = 0;
        let mut sum = 0.0;
        let mut lower = 0.0;
        for &b in bounds {
            let p = dist.cdf(b);
            let share = if 1.0 - p_done > 0.0 {
                ((p - p_done) / (1.0 - p_done)).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let x = if left > 0 {
                Binomial::new(left, share)?.sample(&mut rng)
            } else {
                0
            };
            left -= x;
            running += x;
            sum += x as f64 * 0.5 * (lower + b);
            cumulative.push(running);
            p_done = p;
            lower = b;
        }
        sum += left as f64 * lower;
        out.push(SimWindow {
            start: t,
            cumulative,
            count: n,
            sum,
        });
    }
    Ok(out)
}

fn rfc3339(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// One upload row (JSON) per window.
pub fn ndjson(windows: &[SimWindow], bounds: &[f64], window_seconds: u32) -> String {
    let mut out = String::new();
    for w in windows {
        let mut buckets: Vec<serde_json::Value> = bounds
            .iter()
            .zip(&w.cumulative)
            .map(|(le, c)| serde_json::json!({"le": le, "count": c}))
            .collect();
        buckets.push(serde_json::json!({"le": "+Inf", "count": w.count}));
        let row = serde_json::json!({
            "start": rfc3339(w.start), "seconds": window_seconds,
            "count": w.count, "sum": (w.sum * 1000.0).round() / 1000.0, "buckets": buckets,
        });
        out.push_str(&row.to_string());
        out.push('\n');
    }
    out
}

/// The series as OpenMetrics counters of a histogram named `name` with bounds in seconds
/// (bounds / 1000), sampled at every window boundary from the first start (all zero) on.
pub fn openmetrics(
    windows: &[SimWindow],
    bounds: &[f64],
    window_seconds: u32,
    name: &str,
) -> String {
    use std::fmt::Write as _;
    let mut out = format!("# TYPE {name} histogram\n");
    let les: Vec<String> = bounds
        .iter()
        .map(|b| {
            let s = format!("{:.6}", b / 1000.0);
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        })
        .collect();
    let mut totals = vec![0u64; bounds.len()];
    let mut count = 0u64;
    let mut sum = 0.0;
    let first = windows.first().map_or(0, |w| w.start);
    let emit = |t: i64, totals: &[u64], count: u64, sum: f64, out: &mut String| {
        for (le, c) in les.iter().zip(totals) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {c} {t}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count} {t}");
        let _ = writeln!(out, "{name}_count {count} {t}");
        let _ = writeln!(out, "{name}_sum {:.3} {t}", sum / 1000.0);
    };
    emit(first, &totals, count, sum, &mut out);
    for w in windows {
        for (t, c) in totals.iter_mut().zip(&w.cumulative) {
            *t += c;
        }
        count += w.count;
        sum += w.sum;
        emit(
            w.start + i64::from(window_seconds),
            &totals,
            count,
            sum,
            &mut out,
        );
    }
    out.push_str("# EOF\n");
    out
}
