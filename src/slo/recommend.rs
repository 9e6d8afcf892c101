//! From a validated causal effect and the business's tolerance to an SLO (see
//! docs/methodology.md for the formulas), in steps: the validated effect, the baseline, the
//! slope-based threshold, knees, the target, the error budget and the statement.

use super::live::baseline::{
    self as production_baseline, BaselineKind, BaselineSource, BaselineSpec,
};
use super::model::{
    Comparison, Derivation, ErrorBudget, Evaluation, EvidenceBasis, RecommendationEvidence,
    RecommendationInputs, SloSpec, ThresholdRange, ThresholdSource, WindowNoise,
};
use super::noise::NoiseCheck;
use super::request::resolve;
pub use super::request::CreateRecommendation;
use super::threshold::{
    apply_knees, baseline, check_beyond_baseline, check_support, detectable_loss,
    governed_percentile, max_tested_shift, request_baseline, round_conservative, slope_threshold,
    snap_to_bucket,
};
use crate::analysis::report::{Analysis, CausalEffect, Correction, SliSummary};
use crate::domain::metric::{Direction, Metric};
use crate::domain::series::{SeriesLayout, SeriesWindow};
use crate::error::{AppError, AppResult, Issue};

/// Everything of a recommendation but its identity and review state.
#[derive(Debug, Clone)]
pub struct Derived {
    pub slo: SloSpec,
    pub threshold_range: ThresholdRange,
    pub error_budget: ErrorBudget,
    pub derivation: Derivation,
    pub evidence: RecommendationEvidence,
    pub inputs: RecommendationInputs,
}

/// Target bounds when derived from a value at risk.
const MIN_TARGET: f64 = 0.9;
const MAX_TARGET: f64 = 0.99999;

pub(crate) fn fmt_num(x: f64) -> String {
    let s = format!("{x:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// The validated causal effect of the SLI on the KPI and the control arm's SLI summary; 422
/// with the verdict's reasons when the effect on that KPI was not validated.
fn validated_effect<'a>(
    a: &'a Analysis,
    sli: &Metric,
    kpi: &Metric,
) -> AppResult<(&'a CausalEffect, &'a SliSummary)> {
    let about = |tag: Option<&str>| crate::analysis::report::is_about(tag, &sli.key);
    let verdict = a
        .verdicts
        .iter()
        .find(|v| v.kpi == kpi.key && about(v.sli.as_deref()))
        .ok_or_else(|| {
            AppError::invalid(
                "the analysis has no verdict for this KPI",
                vec![Issue::field(
                    "kpi",
                    format!("'{}' is not a KPI of analysis {}", kpi.key, a.id),
                )],
            )
        })?;
    if !verdict.validated {
        let issues = verdict
            .reasons
            .iter()
            .map(|r| Issue::field("kpi", format!("{}: {}", r.code, r.message)))
            .collect();
        return Err(AppError::invalid(
            format!("analysis {} did not validate the effect of {} on {}; no SLO can be derived from it", a.id, sli.key, kpi.key),
            issues,
        ));
    }
    let effect = a
        .causal_effects
        .iter()
        .find(|c| c.kpi == kpi.key && c.sli == sli.key)
        .ok_or_else(|| {
            AppError::Internal(anyhow::anyhow!(
                "validated KPI {} has no causal effect in analysis {}",
                kpi.key,
                a.id
            ))
        })?;
    let control = a
        .variants
        .iter()
        .find(|v| v.control)
        .and_then(|v| match v.extra_slis.iter().find(|x| x.sli == sli.key) {
            Some(x) => x.summary.as_ref(),
            None => v.sli.as_ref(),
        })
        .ok_or_else(|| AppError::invalid("the analysis has no control SLI summary", vec![]))?;
    Ok((effect, control))
}

/// The window-noise check of a window-based SLO (see `slo::noise`): keeps the window, widens a
/// default one (recorded in the inputs and the notes), or refuses. Without `units_per_day` or
/// the control arm's quantiles (older analyses) it cannot be made, and a note says so.
fn check_window_noise(
    control: &SliSummary,
    inputs: &mut RecommendationInputs,
    (threshold, comparison, target): (f64, Comparison, f64),
    explicit_window: bool,
    notes: &mut Vec<String>,
) -> AppResult<Option<WindowNoise>> {
    let (Evaluation::Windows, Some(p), Some(w)) =
        (inputs.evaluation, inputs.percentile, inputs.window_minutes)
    else {
        return Ok(None);
    };
    let Some(units_per_day) = inputs
        .units_per_day
        .filter(|_| !control.quantiles.is_empty())
    else {
        notes.push("Give units_per_day to check that the threshold is not inside the noise of per-window percentiles.".to_owned());
        return Ok(None);
    };
    let check = NoiseCheck {
        quantiles: &control.quantiles,
        threshold,
        comparison,
        good_share: f64::from(p) / 100.0,
        units_per_day,
        window_days: inputs.window_days,
        budget_fraction: 1.0 - target,
    };
    let choice = check.choose(w, explicit_window)?;
    inputs.window_minutes = Some(choice.window_minutes);
    notes.extend(choice.note);
    Ok(Some(choice.noise))
}

/// The target: given, derived from the largest tolerated value at risk, or 0.99.
pub(super) fn target(
    inputs: &RecommendationInputs,
    value_per_budget: Option<f64>,
    notes: &mut Vec<String>,
) -> f64 {
    match (
        inputs.target,
        inputs.max_budget_value_at_risk,
        value_per_budget,
    ) {
        (Some(t), _, _) => t,
        (None, Some(max), Some(per_budget)) => {
            // At least one bad window per period must be allowed.
            let most = inputs.window_minutes.map_or(MAX_TARGET, |w| {
                let windows = f64::from(inputs.window_days) * 1440.0 / f64::from(w);
                MAX_TARGET.min(1.0 - 1.0 / windows)
            });
            let wanted = 1.0 - max / per_budget;
            let t = wanted.clamp(MIN_TARGET, most);
            notes.push(if t == wanted {
                format!("Target derived from a value at risk of at most {}.", fmt_num(max))
            } else {
                format!(
                    "A value at risk of at most {} needs a target of {}; clamped to {} (between {MIN_TARGET} and at least one bad window per period).",
                    fmt_num(max),
                    fmt_num(wanted),
                    fmt_num(t)
                )
            });
            // Upwards, so the value at risk stays within the cap.
            ((t * 1e5).ceil() / 1e5).min(most)
        }
        _ => 0.99,
    }
}

/// The error budget of `target` over the period, in windows or requests and in business terms.
fn error_budget(
    inputs: &RecommendationInputs,
    target: f64,
    mu: f64,
    period_units: Option<f64>,
    value_per_budget: Option<f64>,
) -> ErrorBudget {
    let fraction = 1.0 - target;
    let loss = inputs.max_relative_kpi_loss;
    let total_windows = inputs
        .window_minutes
        .map(|w| u64::from(inputs.window_days) * 1440 / u64::from(w));
    ErrorBudget {
        fraction,
        total_windows,
        allowed_bad_windows: total_windows.map(|n| (fraction * n as f64 + 1e-9).floor() as u64),
        allowed_bad_requests: match inputs.evaluation {
            Evaluation::Requests | Evaluation::Events => period_units.map(|u| fraction * u),
            Evaluation::Windows => None,
        },
        expected_relative_kpi_loss: fraction * loss,
        expected_kpi_units_lost: period_units.map(|u| fraction * loss * mu * u),
        value_at_risk: value_per_budget.map(|v| fraction * v),
        currency: inputs.currency.clone(),
    }
}

/// The SLO in words, e.g. "checkout latency p95 < 474 ms in 99% of 5-minute windows over 28 days".
pub(super) fn statement(
    sli: &Metric,
    inputs: &RecommendationInputs,
    governed: Option<u32>,
    comparison: Comparison,
    threshold: f64,
    target: f64,
) -> String {
    let op = comparison.symbol();
    let target_pct = fmt_num(100.0 * target);
    let unit = if sli.unit.is_empty() {
        String::new()
    } else {
        format!(" {}", sli.unit)
    };
    match (inputs.evaluation, governed, inputs.window_minutes) {
        (Evaluation::Windows, Some(p), Some(w)) => format!(
            "{} p{p} {op} {}{unit} in {target_pct}% of {w}-minute windows over {} days",
            sli.name,
            fmt_num(threshold),
            inputs.window_days
        ),
        _ => format!(
            "{} {op} {}{unit} for {target_pct}% of requests over {} days",
            sli.name,
            fmt_num(threshold),
            inputs.window_days
        ),
    }
}

/// Notes on the strength of the evidence: loose analysis parameters (returned as a flag that
/// approval must acknowledge) and the loss the experiment could detect at the degradation.
fn evidence_notes(
    a: &Analysis,
    (sli, kpi): (&Metric, &Metric),
    degradation: f64,
    loss: f64,
    notes: &mut Vec<String>,
) -> (bool, Option<f64>) {
    let p = &a.parameters;
    let loose = p.alpha > 0.05 || p.confidence < 0.95 || p.correction == Correction::None;
    if loose {
        notes.push(format!(
            "The analysis used alpha {}, {}% intervals and correction '{}'; approving needs the reviewer to acknowledge these looser parameters.",
            p.alpha,
            100.0 * p.confidence,
            p.correction
        ));
    }
    if let Some(e) = a
        .causal_effects
        .iter()
        .find(|e| e.kpi == kpi.key && e.sli == sli.key && !e.holding_fixed.is_empty())
    {
        notes.push(format!(
            "The slope holds {} fixed (the experiment moved it too): the loss this SLO allows assumes the other SLIs stay at their baseline, and each SLI's SLO spends its own tolerated loss, so together they may allow the sum.",
            e.holding_fixed.join(" and ")
        ));
    }
    let detectable = detectable_loss(a, sli, kpi, degradation);
    if let Some(d) = detectable.filter(|d| *d > loss) {
        notes.push(format!(
            "Underpowered for this tolerance: at this degradation the experiment could only detect a loss of {:.2}% (80% power), more than the {:.2}% the SLO protects against.",
            100.0 * d,
            100.0 * loss
        ));
    }
    (loose, detectable)
}

/// The SLI's production series, when it has one: windows starting in [from, to) (Unix seconds).
pub struct Production<'a> {
    pub layout: &'a SeriesLayout,
    pub windows: &'a [SeriesWindow],
    pub to: i64,
}

fn time(t: i64) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(t, 0)
}

/// The metric whose bucket bounds a threshold snaps to: its declared ones, else those of its
/// production histogram (a threshold between bounds is read by interpolation here but selects
/// nothing in the exported rules).
fn snapping<'a>(
    sli: &'a Metric,
    production: Option<&Production>,
    notes: &mut Vec<String>,
) -> std::borrow::Cow<'a, Metric> {
    match production {
        Some(p) if sli.prometheus.buckets.is_none() && !p.layout.bounds.is_empty() => {
            notes.push(
                "The threshold snaps to a bucket bound of the production histogram.".to_owned(),
            );
            let mut m = sli.clone();
            m.prometheus.buckets = Some(p.layout.bounds.clone());
            std::borrow::Cow::Owned(m)
        }
        _ => std::borrow::Cow::Borrowed(sli),
    }
}

/// The production baseline over the last period before `production.to`, when one can be read.
pub(super) fn baseline_from(
    production: Option<&Production>,
    inputs: &RecommendationInputs,
    governed: Option<u32>,
    target: f64,
    direction: Direction,
) -> Option<(f64, BaselineSource)> {
    let p = production?;
    let from = p.to - i64::from(inputs.window_days) * 86_400;
    let first = p.windows.partition_point(|w| w.start < from);
    let source = |n| BaselineSource {
        kind: BaselineKind::Production,
        from: time(from),
        to: time(p.to),
        windows: Some(n),
        experiment_baseline: None,
    };
    if inputs.evaluation == Evaluation::Events {
        let (share, n) = super::events::production_share(p.layout, &p.windows[first..])?;
        return Some((share, source(n)));
    }
    let spec = BaselineSpec {
        evaluation: inputs.evaluation,
        percentile: governed,
        window_minutes: inputs.window_minutes,
        request_level: match direction {
            Direction::LowerIsBetter => target,
            Direction::HigherIsBetter => 1.0 - target,
        },
    };
    let (value, n) = production_baseline::production(p.layout, &p.windows[first..], &spec)?;
    Some((value, source(n)))
}

/// The baseline: production's when the SLI has a production series to read it from (noted
/// next to the experiment's), else the control arm's.
fn choose_baseline(
    control: &SliSummary,
    production: Option<&Production>,
    inputs: &RecommendationInputs,
    (governed, target, direction): (Option<u32>, f64, Direction),
    notes: &mut Vec<String>,
) -> AppResult<(f64, BaselineSource)> {
    let experiment = match (governed, inputs.evaluation) {
        (Some(_), _) | (None, Evaluation::Events) => baseline(control, governed)?,
        (None, _) => request_baseline(control, target, direction)?,
    };
    Ok(
        match baseline_from(production, inputs, governed, target, direction) {
            Some((value, mut source)) => {
                source.experiment_baseline = Some(experiment);
                notes.push(format!(
                    "The baseline {} is production's (the experiment's control arm gave {}).",
                    fmt_num(value),
                    fmt_num(experiment)
                ));
                (value, source)
            }
            None => (experiment, BaselineSource::experiment()),
        },
    )
}

/// The threshold after the KPI's knees; an events SLO governs the pooled share, while a knee
/// is a breakpoint in per-unit values, so it keeps the slope's (with a note).
fn knees(
    a: &Analysis,
    (sli, kpi): (&Metric, &Metric),
    (baseline, slope_based): (f64, f64),
    events: bool,
    notes: &mut Vec<String>,
) -> (f64, ThresholdSource, Option<super::model::KneeUsed>) {
    if events {
        notes.push(events_note());
        (slope_based, ThresholdSource::Slope, None)
    } else {
        apply_knees(a, sli, kpi, baseline, slope_based, notes)
    }
}

/// The error budget: an events SLO's costs |relative slope|·(baseline − T) when spent.
pub(super) fn budget_of(
    inputs: &RecommendationInputs,
    events: bool,
    (target, baseline, relative_slope): (f64, f64, f64),
    mu: f64,
    (period_units, value_per_budget): (Option<f64>, Option<f64>),
) -> ErrorBudget {
    if events {
        let spent = relative_slope.abs() * (baseline - target);
        super::events::error_budget(inputs, (target, spent), mu, period_units)
    } else {
        error_budget(inputs, target, mu, period_units, value_per_budget)
    }
}

/// Units over the period, and the currency of the whole tolerated loss over it (L·μ·units·value).
pub(super) fn pricing(
    inputs: &RecommendationInputs,
    mu: f64,
    notes: &mut Vec<String>,
) -> (Option<f64>, Option<f64>) {
    if inputs.value_per_kpi_unit.is_some() && inputs.units_per_day.is_none() {
        notes.push(
            "value_per_kpi_unit is given without units_per_day: the budget is not priced."
                .to_owned(),
        );
    }
    let period_units = inputs
        .units_per_day
        .map(|u| u * f64::from(inputs.window_days));
    let value = period_units
        .zip(inputs.value_per_kpi_unit)
        .map(|(units, v)| inputs.max_relative_kpi_loss * mu * units * v);
    (period_units, value)
}

/// What the KPI's kind and the analysis's capping mean for the price: a ratio's loss is priced
/// in numerator units per unit; a winsorized analysis describes the capped KPI.
fn kpi_notes(a: &Analysis, kpi: &Metric, price_mu: f64) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(r) = &kpi.ratio {
        notes.push(format!(
            "{} is a ratio: a relative loss of it is priced in {} per unit ({} per unit in control), with units_per_day counting the experiment's units, not {}.",
            kpi.key, r.numerator, fmt_num(price_mu), r.denominator
        ));
    }
    if let Some(w) = a.parameters.winsorize {
        notes.push(format!(
            "The analysis capped KPI values at their {}th percentile: the slope and the KPI mean describe the capped KPI, so losses in its tail are not priced.",
            fmt_num(w)
        ));
    }
    notes
}

/// The assumptions of an events SLO.
fn events_note() -> String {
    "The slope is estimated on each unit's share of good events, and the SLO counts events pooled across units: the two agree when a unit's number of events is unrelated to its share and to the degradation. Knees (breakpoints in per-unit shares) are not used.".to_owned()
}

/// The assumption behind a threshold on a percentile: a degradation moves the whole
/// distribution.
pub(super) fn shift_note(governed: Option<u32>, target: f64) -> String {
    format!(
        "Assumes a degradation shifts the SLI's distribution, so the baseline ({}) moves by the same amount as its mean (as a latency injection does).",
        governed.map_or_else(|| format!("the {} quantile", fmt_num(target)), |g| format!("p{g}"))
    )
}

/// What a recommendation rests on: the analysis, its data and the validated effect.
fn evidence_of(a: &Analysis, effect: &CausalEffect) -> RecommendationEvidence {
    RecommendationEvidence {
        kind: EvidenceBasis::Causal,
        analysis_id: Some(a.id),
        observational_analysis_id: None,
        experiment: Some(a.experiment.clone()),
        seed: Some(a.parameters.bootstrap.seed),
        fingerprint: Some(a.fingerprint.clone()),
        validated: true,
        slope: effect.slope.clone(),
        relative_per_100: effect.relative_per_100.clone(),
        summary: a.summary.clone(),
    }
}

/// The threshold rounded conservatively and (histograms) snapped to a bucket bound, checked to
/// lie beyond the baseline; and the target, which for an events SLO is that share floor itself
/// (T = baseline − degradation).
pub(super) fn settle(
    sli: &Metric,
    production: Option<&Production>,
    (threshold, baseline, target): (f64, f64, f64),
    events: bool,
    notes: &mut Vec<String>,
) -> AppResult<(f64, f64)> {
    let lower_is_better = sli.direction == Direction::LowerIsBetter;
    let rounded = round_conservative(threshold, lower_is_better);
    if events && rounded >= baseline {
        return Err(AppError::invalid(
            "no events SLO fits this tolerance",
            vec![Issue::field(
                "max_relative_kpi_loss",
                format!("the share it allows rounds to {} (3 significant digits), not below the baseline share {}; tolerate a larger loss", fmt_num(rounded), fmt_num(baseline)),
            )],
        ));
    }
    let threshold = if events {
        rounded
    } else {
        let snap = snapping(sli, production, notes);
        snap_to_bucket(&snap, rounded, lower_is_better, notes)?
    };
    check_beyond_baseline(sli, threshold, baseline, threshold != rounded)?;
    if events {
        Ok((threshold, super::events::check_target(threshold)?))
    } else {
        Ok((threshold, target))
    }
}

/// The SLO of a derivation: the threshold on the SLI's good side, the target, and its
/// statement (events: the share floor; otherwise the threshold), passed through `label`.
pub(super) fn spec_of(
    (sli, kpi): (&Metric, &Metric),
    inputs: &RecommendationInputs,
    (governed, threshold, target): (Option<u32>, f64, f64),
    baseline: f64,
    label: impl FnOnce(String) -> String,
) -> SloSpec {
    let events = inputs.evaluation == Evaluation::Events;
    let comparison = Comparison::good_side(sli.direction);
    let text = if events {
        super::events::statement(sli, target, inputs.window_days)
    } else {
        statement(sli, inputs, governed, comparison, threshold, target)
    };
    SloSpec {
        sli: sli.key.clone(),
        sli_name: sli.name.clone(),
        kpi: kpi.key.clone(),
        percentile: governed,
        comparison,
        threshold,
        unit: sli.unit.clone(),
        target,
        window_days: inputs.window_days,
        evaluation: inputs.evaluation,
        window_minutes: inputs.window_minutes,
        baseline_share: events.then_some(baseline),
        statement: label(text),
    }
}

/// Derives a recommendation from an analysis; 422 with the verdict's reasons when the effect
/// on that KPI was not validated. With a production series, the baseline is production's.
pub fn derive(
    a: &Analysis,
    sli: &Metric,
    kpi: &Metric,
    req: &CreateRecommendation,
    production: Option<&Production>,
) -> AppResult<Derived> {
    let mut inputs = resolve(req, &kpi.key)?;
    let (effect, control) = validated_effect(a, sli, kpi)?;
    let events = inputs.evaluation == Evaluation::Events;
    if events {
        super::events::check_share_sli(sli, control)?;
    }
    let mu = effect.control_kpi_mean;
    let loss = inputs.max_relative_kpi_loss;
    // A ratio's loss is priced with its numerator per unit (clicks per user), not the ratio.
    let price_mu = effect.control_numerator_per_unit.unwrap_or(mu);
    let mut notes = kpi_notes(a, kpi, price_mu);
    let (period_units, value_per_budget) = pricing(&inputs, price_mu, &mut notes);
    let target = target(&inputs, value_per_budget, &mut notes);
    let governed = inputs
        .percentile
        .map(|p| governed_percentile(p, sli.direction));
    let context = (governed, target, sli.direction);
    let (baseline, origin) = choose_baseline(control, production, &inputs, context, &mut notes)?;
    let slope = slope_threshold((&effect.slope, mu), baseline, loss, sli, kpi)?;
    if !events {
        notes.insert(0, shift_note(governed, target));
    }
    let tested = max_tested_shift(a, sli);
    let (threshold, source, knee_used) = knees(
        a,
        (sli, kpi),
        (baseline, slope.range.conservative),
        events,
        &mut notes,
    );
    let extrapolated = source == ThresholdSource::Slope && slope.degradation > tested;
    if source == ThresholdSource::Slope {
        check_support(a, sli, kpi, &inputs, slope.degradation, tested, &mut notes)?;
    }
    let (loose_evidence, detectable) =
        evidence_notes(a, (sli, kpi), slope.degradation, loss, &mut notes);
    let comparison = Comparison::good_side(sli.direction);
    let (threshold, target) = settle(
        sli,
        production,
        (threshold, baseline, target),
        events,
        &mut notes,
    )?;
    let window_noise = check_window_noise(
        control,
        &mut inputs,
        (threshold, comparison, target),
        req.window_minutes.is_some(),
        &mut notes,
    )?;
    Ok(Derived {
        slo: spec_of(
            (sli, kpi),
            &inputs,
            (governed, threshold, target),
            baseline,
            |s| s,
        ),
        threshold_range: slope.range,
        error_budget: budget_of(
            &inputs,
            events,
            (target, baseline, slope.slope_used / mu),
            price_mu,
            (period_units, value_per_budget),
        ),
        derivation: Derivation {
            baseline_sli: baseline,
            baseline_source: Some(origin),
            control_kpi_mean: mu,
            slope_used: slope.slope_used,
            relative_slope_per_unit: slope.slope_used / mu,
            max_relative_kpi_loss: loss,
            degradation: slope.degradation,
            threshold_source: source,
            knee: knee_used,
            max_tested_shift: tested,
            extrapolated,
            analysis_alpha: Some(a.parameters.alpha),
            analysis_correction: Some(a.parameters.correction),
            loose_evidence,
            detectable_relative_loss: detectable,
            window_noise,
            notes,
        },
        evidence: evidence_of(a, effect),
        inputs,
    })
}
