//! An SLO evaluated on a production series, the way its exported Prometheus rules evaluate it:
//! one evaluation at the end of every data window, each judging the trailing SLO window (windows
//! evaluation) or counting the window's bad events (requests evaluation). Ranges of evaluations
//! (burn rates over 1h, the period's budget) are prefix-sum differences, so any range costs a
//! binary search.
//!
//! - **Windows** ("p95 < T in 99% of 5-minute windows"): at each data window's end t, the data
//!   windows starting in [t − W, t) are summed (W the SLO window, a multiple of the data
//!   window); the evaluation is bad when fewer than the governed share q of its events are good
//!   (for a histogram, the share at or below T by [`count_at_or_below`], i.e. its p95 is above
//!   T); one evaluation weighs 1. Evaluations with no events are no data. This is the
//!   export's `slo:sli_error:ratio_rate5m` indicator sampled once per data window.
//! - **Requests** ("T for 99% of requests"): each data window contributes its bad events (total
//!   − good, good at or below T interpolated inside the bucket) and weighs its events.
//!
//! A range's error ratio is Σ bad / Σ weight over evaluations ending in (t − range, t]; its burn
//! rate is that ratio over the budget (1 − target), as `slo:sli_error:ratio_rate1h` / budget.

use crate::domain::series::{SeriesKind, SeriesLayout, SeriesWindow, WindowData};
use crate::slo::model::{Comparison, Evaluation, SloSpec};
use crate::stats::histogram::{count_at_or_below, mean_excess, quantile};

/// What a bad evaluation costs, from the recommendation's derivation (see `status`).
#[derive(Debug, Clone, Copy)]
pub struct CostModel {
    /// The SLI at the baseline P (the governed percentile per window, or for requests
    /// evaluation the quantile at the target's share).
    pub baseline: f64,
    /// |relative KPI change per SLI unit| (the CI end the threshold used).
    pub relative_slope: f64,
    /// SLI degradation that costs the tolerated loss (Δ = L/|r|, before knees and rounding).
    pub degradation: f64,
}

/// Evaluations of one SLO over one series.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    /// End of each evaluation (Unix seconds), increasing.
    pub t: Vec<i64>,
    /// Seconds between evaluations (the data window).
    pub step: i64,
    /// Seconds judged by one evaluation (the SLO window, or the data window).
    pub span: i64,
    /// Per evaluation: bad weight, weight, relative-KPI-loss × days, and (windows evaluation)
    /// the governed value of the trailing window.
    pub bad: Vec<f64>,
    pub weight: Vec<f64>,
    pub loss_days: Vec<f64>,
    pub value: Vec<f64>,
    bad_sum: Vec<f64>,
    weight_sum: Vec<f64>,
    loss_sum: Vec<f64>,
    /// Caveats found while building (window lengths that do not divide).
    pub notes: Vec<String>,
    /// The error ratio alerts do not count as burning ([`SloSpec::error_floor`]).
    pub error_floor: f64,
}

/// Sums over a range of evaluations.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RangeSums {
    pub bad: f64,
    pub weight: f64,
    pub loss_days: f64,
    pub evaluations: usize,
}

impl RangeSums {
    /// Σ bad / Σ weight; None without data.
    pub fn error_ratio(&self) -> Option<f64> {
        (self.weight > 0.0).then(|| self.bad / self.weight)
    }
}

/// Is a window whose good share is `ratio` good? (windows evaluation)
fn good_events(spec: &SloSpec, layout: &SeriesLayout, d: &WindowData) -> f64 {
    match d {
        WindowData::Histogram {
            count, cumulative, ..
        } => {
            let below = count_at_or_below(&layout.bounds, cumulative, spec.threshold).min(*count);
            match spec.comparison {
                Comparison::Lt => below,
                Comparison::Gt => count - below,
            }
        }
        WindowData::Events { good, .. } => *good,
        // A KPI's windows have no good events (SLOs are on SLIs).
        WindowData::Values { .. } => 0.0,
    }
}

/// (bad, weight, governed value) of one trailing window (windows evaluation); None without
/// events.
fn judge_window(spec: &SloSpec, layout: &SeriesLayout, d: &WindowData) -> Option<(f64, f64)> {
    let total = d.total();
    if total <= 0.0 {
        return None;
    }
    match (layout.kind, d) {
        (SeriesKind::Histogram, WindowData::Histogram { cumulative, .. }) => {
            let q = spec.window_good_share().unwrap_or(spec.target);
            let ratio = good_events(spec, layout, d) / total;
            let p = f64::from(spec.percentile.unwrap_or(95)) / 100.0;
            let v = quantile(p, &layout.bounds, cumulative, total);
            Some((f64::from(u8::from(ratio < q)), v))
        }
        (_, WindowData::Events { good, .. }) => {
            // An event SLI's value in a window is its good share, judged against T.
            let share = good / total;
            let ok = match spec.comparison {
                Comparison::Lt => share < spec.threshold,
                Comparison::Gt => share > spec.threshold,
            };
            Some((f64::from(u8::from(!ok)), share))
        }
        _ => None,
    }
}

impl Timeline {
    /// Evaluates `spec` at the end of every window of `windows` (sorted by start, one layout).
    pub fn build(
        spec: &SloSpec,
        layout: &SeriesLayout,
        windows: &[SeriesWindow],
        cost: &CostModel,
    ) -> Timeline {
        let step = i64::from(layout.seconds);
        let mut tl = Timeline {
            step,
            span: step,
            error_floor: spec.error_floor(crate::domain::document::round_significant(
                1.0 - spec.target,
            )),
            ..Timeline::default()
        };
        let worse = match spec.comparison {
            Comparison::Lt => 1.0,
            Comparison::Gt => -1.0,
        };
        match (spec.evaluation, spec.window_minutes) {
            (Evaluation::Events, _) if layout.kind != SeriesKind::Events => {
                tl.notes.push(
                    "An events SLO is judged on good and total event counts; this SLI's series is a histogram, so nothing is evaluated.".to_owned(),
                );
            }
            (Evaluation::Windows, Some(minutes)) => {
                let w = i64::from(minutes) * 60;
                if w % step == 0 && w >= step {
                    tl.span = w;
                } else {
                    tl.notes.push(format!(
                        "The series' {step}-second windows do not divide the SLO's {minutes}-minute windows; each data window is judged as one SLO window."
                    ));
                }
                tl.windows(spec, layout, windows, cost, worse);
            }
            _ => tl.requests(spec, layout, windows, cost, worse),
        }
        tl.prefix();
        tl
    }

    fn windows(
        &mut self,
        spec: &SloSpec,
        layout: &SeriesLayout,
        windows: &[SeriesWindow],
        cost: &CostModel,
        worse: f64,
    ) {
        let day_share = self.step as f64 / 86_400.0;
        let mut agg = WindowData::empty(layout);
        let mut first = 0;
        for (i, w) in windows.iter().enumerate() {
            agg.add(&w.data);
            let end = w.start + self.step;
            while windows[first].start < end - self.span {
                agg.subtract(&windows[first].data);
                first += 1;
            }
            // Recomputed from the windows now and then, so running sums cannot drift.
            if i % 1024 == 1023 {
                agg = WindowData::empty(layout);
                for x in &windows[first..=i] {
                    agg.add(&x.data);
                }
            }
            let Some((bad, value)) = judge_window(spec, layout, &agg) else {
                continue;
            };
            // A window cannot lose more than all of its KPI: the linear slope is capped there.
            let loss = if bad > 0.0 {
                (cost.relative_slope * (worse * (value - cost.baseline)).max(0.0)).min(1.0)
                    * day_share
            } else {
                0.0
            };
            self.push(end, bad, 1.0, loss, value);
        }
    }

    fn requests(
        &mut self,
        spec: &SloSpec,
        layout: &SeriesLayout,
        windows: &[SeriesWindow],
        cost: &CostModel,
        worse: f64,
    ) {
        let day_share = self.step as f64 / 86_400.0;
        // Bad requests are priced by traffic: a window's loss is its bad events over the mean
        // events per window with traffic, so a quiet window's errors cost what they are.
        let busy: Vec<f64> = windows
            .iter()
            .map(|w| w.data.total())
            .filter(|t| *t > 0.0)
            .collect();
        let mean_events = busy.iter().sum::<f64>() / busy.len().max(1) as f64;
        // How far past the baseline the threshold itself is (T − P on the harmful side).
        let at_threshold = (worse * (spec.threshold - cost.baseline)).max(0.0);
        for w in windows {
            let total = w.data.total();
            if total <= 0.0 {
                continue;
            }
            let bad = (total - good_events(spec, layout, &w.data)).max(0.0);
            // An events SLO: the KPI falls with the good share's shortfall from the baseline,
            // weighted by traffic and signed (a window above the baseline offsets one below),
            // so noise around the baseline costs nothing; a range's sum is clipped at zero.
            if let (Evaluation::Events, WindowData::Events { good, .. }) =
                (spec.evaluation, &w.data)
            {
                let shortfall = (cost.baseline * total - good) / mean_events;
                let loss = cost.relative_slope * shortfall * day_share;
                self.push(w.start + self.step, bad, total, loss, good / total);
                continue;
            }
            let excess = match &w.data {
                WindowData::Histogram { cumulative, .. } => mean_excess(
                    &layout.bounds,
                    cumulative,
                    total,
                    spec.threshold,
                    worse > 0.0,
                ),
                WindowData::Events { .. } | WindowData::Values { .. } => 0.0,
            };
            let loss = bad / mean_events
                * (cost.relative_slope * (at_threshold + excess)).min(1.0)
                * day_share;
            self.push(w.start + self.step, bad, total, loss, bad / total);
        }
    }

    /// A timeline of given evaluations (ends increasing, then bad, weight and loss per
    /// evaluation), e.g. a journey's, with its range sums ready.
    pub fn from_evaluations(
        (t, step, span): (Vec<i64>, i64, i64),
        (bad, weight, loss_days): (Vec<f64>, Vec<f64>, Vec<f64>),
        notes: Vec<String>,
    ) -> Timeline {
        let value = vec![f64::NAN; t.len()];
        let mut tl = Timeline {
            t,
            step,
            span,
            bad,
            weight,
            loss_days,
            value,
            notes,
            ..Timeline::default()
        };
        tl.prefix();
        tl
    }

    fn push(&mut self, t: i64, bad: f64, weight: f64, loss_days: f64, value: f64) {
        self.t.push(t);
        self.bad.push(bad);
        self.weight.push(weight);
        self.loss_days.push(loss_days);
        self.value.push(value);
    }

    fn prefix(&mut self) {
        let run = |xs: &[f64]| {
            let mut acc = 0.0;
            let mut out = Vec::with_capacity(xs.len() + 1);
            out.push(0.0);
            for x in xs {
                acc += x;
                out.push(acc);
            }
            out
        };
        self.bad_sum = run(&self.bad);
        self.weight_sum = run(&self.weight);
        self.loss_sum = run(&self.loss_days);
    }

    /// Index range of evaluations ending in (from, to].
    fn span_of(&self, from: i64, to: i64) -> (usize, usize) {
        let a = self.t.partition_point(|&t| t <= from);
        let b = self.t.partition_point(|&t| t <= to);
        (a, b.max(a))
    }

    /// Sums of the evaluations ending in (from, to].
    pub fn sums(&self, from: i64, to: i64) -> RangeSums {
        let (a, b) = self.span_of(from, to);
        if self.bad_sum.is_empty() {
            return RangeSums::default();
        }
        RangeSums {
            bad: self.bad_sum[b] - self.bad_sum[a],
            weight: self.weight_sum[b] - self.weight_sum[a],
            loss_days: self.loss_sum[b] - self.loss_sum[a],
            evaluations: b - a,
        }
    }

    /// Error ratio over the `seconds` before `at`, as the exported rules compute it: a range no
    /// longer than one evaluation's span reads the latest evaluation in it.
    pub fn error_ratio(&self, at: i64, seconds: i64) -> Option<f64> {
        let reach = seconds.max(self.step);
        if seconds <= self.span && self.span > self.step {
            // Shorter than the SLO window: the indicator itself (the latest evaluation).
            let (a, b) = self.span_of(at - reach, at);
            return (b > a).then(|| self.bad[b - 1] / self.weight[b - 1]);
        }
        self.sums(at - reach, at).error_ratio()
    }
}
