//! An analysis as a results page for data scientists: the headline, the sample-ratio check,
//! the first stage, a forest plot of every arm × metric effect, the causal slopes with their
//! dose-response charts, power, thresholds and verdicts with reasons, and a link to the JSON.

use actix_web::{web, HttpResponse};
use maud::{html, Markup};

use super::experiments::call_badge;
use super::forest::{forest, ForestRow};
use super::{dose, num, page, svg, PageCaller, PageError};
use crate::analysis::report::{
    Analysis, ArShape, Correction, Estimate, KpiEffect, MetricRole, ThresholdTestMethod,
};
use crate::api::AppState;
use crate::domain::experiment::Experiment;
use crate::domain::metric::Metric;
use crate::domain::metric::{Direction, ValueType};

fn metric<'a>(e: &'a Experiment, key: &str) -> Option<&'a Metric> {
    e.metric(key)
}

fn name<'a>(e: &'a Experiment, key: &'a str) -> &'a str {
    metric(e, key).map_or(key, |m| m.name.as_str())
}

fn pct(x: f64) -> String {
    format!("{}%", num(x * 100.0, 3))
}

/// Percent with a fixed number of decimals, for an estimate and its CI to read alike.
fn pct_fixed(x: f64, decimals: usize) -> String {
    format!("{:.decimals$}%", x * 100.0)
}

/// Decimals that show an estimate and its interval with about three significant digits.
fn decimals(values: &[f64]) -> usize {
    let largest = values
        .iter()
        .filter(|v| v.is_finite())
        .fold(0.0_f64, |m, v| m.max(v.abs()));
    if largest == 0.0 {
        return 2;
    }
    (2 - largest.log10().floor() as i64).clamp(0, 6) as usize
}

/// "−1.2% (95% CI −2.0% to −0.4%)", with equal decimals.
fn pct_ci(e: &Estimate, level: &str) -> String {
    let d = decimals(&[e.estimate * 100.0, e.ci_low * 100.0, e.ci_high * 100.0]);
    format!(
        "{} ({level} CI {} to {})",
        pct_fixed(e.estimate, d),
        pct_fixed(e.ci_low, d),
        pct_fixed(e.ci_high, d)
    )
}

/// An estimate and its interval with equal decimals, scaled by `scale`.
fn est_ci(e: &Estimate, scale: f64) -> (String, String, String) {
    let (a, b, c) = (e.estimate * scale, e.ci_low * scale, e.ci_high * scale);
    let d = decimals(&[a, b, c]);
    (format!("{a:.d$}"), format!("{b:.d$}"), format!("{c:.d$}"))
}

/// A p-value as a table cell: "< 0.0001", "0.0012", "0.050".
fn p_value(p: Option<f64>) -> String {
    match p {
        Some(p) if p < 1e-4 => "< 0.0001".into(),
        Some(p) if p < 1e-3 => format!("{p:.4}"),
        Some(p) => format!("{p:.3}"),
        None => "–".into(),
    }
}

/// A p-value in a sentence: "p < 0.0001", "p = 0.050".
fn p_is(p: Option<f64>) -> String {
    match p {
        Some(p) if p < 1e-4 => "p < 0.0001".into(),
        other => format!("p = {}", p_value(other)),
    }
}

fn correction_name(c: Correction) -> &'static str {
    match c {
        Correction::Holm => "Holm",
        Correction::BenjaminiHochberg => "Benjamini–Hochberg",
        Correction::None => "no correction",
    }
}

/// The confidence level in words, e.g. "95%".
fn level(a: &Analysis) -> String {
    format!("{}%", num(a.parameters.confidence * 100.0, 3))
}

fn sample_ratio(a: &Analysis) -> Markup {
    let s = &a.sample_ratio;
    let total: u64 = s.observed.iter().sum();
    html! {
        section aria-labelledby="srm" {
            h2 #srm { "Sample ratio" }
            p {
                @if s.passed { span.badge.ok { "passed" } } @else { span.badge.bad { "mismatch" } }
                " χ² = " (num(s.chi_square, 3)) ", " (p_is(Some(s.p_value)))
                " (alarm below " (num(s.alarm_p_value, 2)) ")."
                @if !s.analysed_passed { " The units analysed (with an SLI value) are out of ratio too (" (p_is(s.analysed_p_value)) ")." }
            }
            table {
                thead { tr { th scope="col" { "Arm" } th scope="col" { "Units" } th scope="col" { "Share" } th scope="col" { "Planned share" } th scope="col" { "Expected units" } th scope="col" { "Analysed" } } }
                tbody {
                    @for (i, v) in s.variants.iter().enumerate() {
                        @let o = s.observed.get(i).copied().unwrap_or(0);
                        @let expected = s.expected.get(i).copied().unwrap_or(f64::NAN);
                        tr {
                            td { (v) } td { (o) }
                            td { (pct_fixed(o as f64 / total.max(1) as f64, 2)) }
                            td { (pct_fixed(expected / total.max(1) as f64, 2)) }
                            td { (format!("{expected:.1}")) }
                            td { (s.analysed.get(i).map_or_else(|| "–".into(), u64::to_string)) }
                        }
                    }
                }
            }
            @let q = &a.data_quality;
            @if !q.excluded.is_empty() || q.unassigned_units > 0 {
                ul {
                    @if q.unassigned_units > 0 { li { (q.unassigned_units) " units have observations but no assignment (" (q.unassigned_observations) " observations, not analysed)." } }
                    @for x in &q.excluded { li { (x.units) " units excluded: " (x.description) } }
                }
            }
        }
    }
}

fn first_stage(a: &Analysis, e: &Experiment) -> Markup {
    html! {
        @for (j, sli) in e.slis().enumerate() {
            (first_stage_of(a, sli, j))
        }
    }
}

fn first_stage_of(a: &Analysis, sli: &crate::domain::metric::Metric, j: usize) -> Markup {
    let unit = &sli.unit;
    let level = level(a);
    let id = if j == 0 {
        "first-stage".to_owned()
    } else {
        format!("first-stage-{j}")
    };
    html! {
        section aria-labelledby=(id) {
            h2 id=(id) { "Did the arms move " (sli.name) " as planned?" }
            table {
                thead { tr { th scope="col" { "Arm" } th scope="col" { "Planned dose" } th scope="col" { "Mean shift (" (level) " CI)" } th scope="col" { "p95 shift (" (level) " CI, bootstrap)" } th scope="col" { "Observed / planned" } } }
                tbody {
                    @for f in a.first_stage.iter().filter(|f| crate::analysis::report::is_about(f.sli.as_deref(), &sli.key)) {
                        tr {
                            td { (f.variant) }
                            td { (num(f.planned_dose, 4)) " " (unit) }
                            @let (m, ml, mh) = est_ci(&f.mean_shift, 1.0);
                            @let (q, ql, qh) = est_ci(&f.p95_shift, 1.0);
                            td { (m) " " (unit) " (" (ml) " to " (mh) ")" }
                            td { (q) " " (unit) " (" (ql) " to " (qh) ")" }
                            td { (f.dose_ratio.map_or_else(|| "–".into(), |r| num(r, 3))) }
                        }
                    }
                }
            }
        }
    }
}

fn role(r: MetricRole) -> &'static str {
    match r {
        MetricRole::Kpi => "KPI",
        MetricRole::Guardrail => "guardrail",
        MetricRole::Sli => "SLI",
    }
}

/// "↑ better" or "↓ better".
fn better(e: &Experiment, key: &str) -> &'static str {
    match metric(e, key).map(|m| m.direction) {
        Some(Direction::LowerIsBetter) => "↓ better",
        _ => "↑ better",
    }
}

fn effect_row(k: &KpiEffect, e: &Experiment) -> Markup {
    let binary = metric(e, &k.metric).is_some_and(|m| m.value_type == ValueType::Binary);
    let arm = |m: &crate::analysis::report::ArmMean| {
        html! {
            (m.units) " units"
            @if let Some(s) = m.successes { ", " (s) " with it" }
            br;
            @if binary { (pct(m.mean)) @if let Some(ci) = &m.ci { " (" (pct(ci.low)) " – " (pct(ci.high)) ")" } }
            @else { (num(m.mean, 4)) @if let Some(ci) = &m.ci { " (" (num(ci.low, 4)) " – " (num(ci.high, 4)) ")" } }
        }
    };
    // A binary metric's difference is a proportion: in percentage points.
    let (scale, suffix) = if binary { (100.0, " pp") } else { (1.0, "") };
    let (d, dl, dh) = est_ci(&k.primary, scale);
    let cuped = k.alternatives.cuped.as_ref();
    let ratio = metric(e, &k.metric).and_then(|m| m.ratio.as_ref());
    let top = k.alternatives.top_box.as_ref();
    html! {
        tr {
            td { (name(e, &k.metric)) " (" (role(k.role)) ", " (better(e, &k.metric)) ")" }
            td { (k.variant) }
            td { (arm(&k.control)) }
            td { (arm(&k.treatment)) }
            td { (d) (suffix) " (" (dl) " to " (dh) ")"
                @if let Some(c) = cuped { br; small { "CUPED-adjusted, variance −" (pct(c.variance_reduction)) } }
                @if let Some(r) = ratio { br; small { "Σ " (name(e, &r.numerator)) " / Σ " (name(e, &r.denominator)) ", delta method" } }
                @if let Some(t) = top {
                    br; small { "Top box (≥ " (t.from_score) "): " (pct(t.control.mean)) " → " (pct(t.treatment.mean))
                        ", " (num(t.difference.estimate * 100.0, 2)) " pp (" (num(t.difference.ci_low * 100.0, 2)) " to " (num(t.difference.ci_high * 100.0, 2)) "), p " (p_value(t.difference.p_value)) }
                } }
            td { (k.relative.as_ref().map_or_else(|| "undefined (control mean 0)".into(), |r| pct_ci(r, ""))) }
            td.nowrap { (p_value(k.primary.p_value)) }
            td.nowrap { (p_value(k.primary.adjusted_p_value)) }
            td { code { (k.primary.method.as_str()) } }
        }
    }
}

fn effects(a: &Analysis, e: &Experiment) -> Markup {
    let rows: Vec<ForestRow> = a
        .kpi_effects
        .iter()
        .filter_map(|k| Some((k, k.relative.as_ref()?)))
        .map(|(k, relative)| ForestRow {
            label: format!(
                "{} · {} ({})",
                name(e, &k.metric),
                k.variant,
                better(e, &k.metric)
            ),
            estimate: relative.estimate,
            low: relative.ci_low,
            high: relative.ci_high,
            higher_is_better: metric(e, &k.metric)
                .is_none_or(|m| m.direction == Direction::HigherIsBetter),
            side: if k.primary.ci_high < 0.0 {
                -1
            } else if k.primary.ci_low > 0.0 {
                1
            } else {
                0
            },
        })
        .collect();
    let level = level(a);
    let correction = correction_name(a.parameters.correction);
    let chart = (!rows.is_empty()).then(|| {
        forest(
            &rows,
            &format!("Relative change of every KPI and guardrail in every arm against control, with {level} CIs"),
            "forest",
        )
    });
    html! {
        section aria-labelledby="effects" {
            h2 #effects { "Effects on KPIs and guardrails" }
            @match chart {
                Some(Ok(doc)) => {
                    figure.chart-card {
                        (svg(&doc))
                        figcaption { "Each row is one arm against control: the square is the relative change, the bar its " (level) " CI, unadjusted for multiple comparisons. "
                            "Colour follows the test of the absolute difference behind p (its " (level) " CI): red when it lies wholly on the harmful side (a fall for a metric where higher is better, a rise where lower is better), blue wholly on the beneficial side, grey when it includes no change. "
                            "The relative CI (delta method) can disagree with it in small samples. "
                            "The adjusted p-values (" (correction) " across the arm × metric comparisons of each role) are in the table." }
                    }
                }
                Some(Err(err)) => { p { "The forest plot could not be drawn (" (err) "); the numbers follow." } }
                None => { p { "No comparison could be computed." } }
            }
            details open[rows.len() <= 6] {
                summary { "Counts, per-arm means and changes" }
                div.scroll {
                    table {
                        thead { tr {
                            th scope="col" { "Metric" } th scope="col" { "Arm" } th scope="col" { "Control (" (level) " CI)" } th scope="col" { "Arm (" (level) " CI)" }
                            th scope="col" { "Absolute change (CI)" } th scope="col" { "Relative change (CI)" } th scope="col" { "p" } th scope="col" { "Adjusted p" } th scope="col" { "Method" }
                        } }
                        tbody { @for k in &a.kpi_effects { (effect_row(k, e)) } }
                    }
                }
                p { "Binary metrics are shown as rates and their differences in percentage points (pp). Arm means are unadjusted; a CUPED-adjusted change uses the pre-period to remove variance, so it need not equal the difference of the means." }
            }
            @if !a.failed_comparisons.is_empty() {
                h3 { "Comparisons not computed" }
                ul { @for f in &a.failed_comparisons { li { (name(e, &f.metric)) " · " (f.variant) ": " (f.reason) } } }
            }
        }
    }
}

fn ar_set(c: &crate::analysis::report::CausalEffect, (step, words): (f64, &str)) -> String {
    let Some(ar) = &c.anderson_rubin else {
        return "–".into();
    };
    let per100 = |b: Option<f64>, inf: &str| b.map_or_else(|| inf.to_owned(), |b| num(b * step, 3));
    let level = format!("{}%", num(ar.confidence * 100.0, 3));
    let set = match ar.shape {
        ArShape::Interval => format!(
            "{} to {} per {words}",
            per100(ar.lower, "−∞"),
            per100(ar.upper, "∞")
        ),
        ArShape::TwoRays => format!(
            "below {} or above {} per {words} (unbounded: weak instruments)",
            per100(ar.lower, "−∞"),
            per100(ar.upper, "∞")
        ),
        ArShape::WholeLine => "every slope (the data cannot bound it)".into(),
        ArShape::Empty => "empty (no single slope fits every arm)".into(),
    };
    format!("{set}; {level}, valid however weak the instruments, assuming constant variance")
}

/// An estimate scaled by `f` (its standard error and interval too).
fn scaled(e: &Estimate, f: f64) -> Estimate {
    Estimate {
        estimate: e.estimate * f,
        std_error: e.std_error * f.abs(),
        ci_low: e.ci_low * f,
        ci_high: e.ci_high * f,
        ..e.clone()
    }
}

fn causal(a: &Analysis, e: &Experiment) -> Markup {
    let level = level(a);
    let several = !e.extra_slis.is_empty();
    let names: Vec<&str> = e.slis().map(|m| m.name.as_str()).collect();
    html! {
        section aria-labelledby="causal" {
            h2 #causal { "Causal slope of each KPI on " (names.join(" and ")) }
            @if several {
                p { "Two-stage least squares with every SLI as an endogenous regressor and the arms as instruments (robust errors): each slope holds the other SLIs fixed." }
            } @else {
                p { "Two-stage least squares with the arms as instruments (robust errors): the KPI change per " (super::per_step(&e.sli.unit).1) " of " (e.sli.name) "." }
            }
            @for c in &a.causal_effects {
                @let sli_metric = metric(e, &c.sli).unwrap_or(&e.sli);
                @let unit = sli_metric.unit.as_str();
                @let (step, words) = super::per_step(unit);
                @let kpi_name = name(e, &c.kpi);
                @let kpi_unit = metric(e, &c.kpi).map_or("", |m| m.unit.as_str());
                @let (b, bl, bh) = est_ci(&c.slope, step);
                @let boot = Estimate { estimate: c.slope.estimate, ci_low: c.bootstrap.ci_low, ci_high: c.bootstrap.ci_high, ..c.slope.clone() };
                @let (_, ol, oh) = est_ci(&boot, step);
                @let rel = scaled(&c.relative_per_100, step / 100.0);
                h3 { (kpi_name) @if several { " on " (sli_metric.name) } }
                dl {
                    dt { "Relative change per " (words) } dd { (pct_ci(&rel, &level)) ", " (p_is(c.slope.p_value)) @if c.slope.adjusted_p_value.is_some() { " (adjusted across KPIs: " (p_value(c.slope.adjusted_p_value)) ")" } }
                    dt { "Slope per " (words) } dd { (b) " " (if kpi_unit.is_empty() { "(KPI units)" } else { kpi_unit }) " (" (level) " CI " (bl) " to " (bh) "); bootstrap " (c.bootstrap.method.as_str()) " " (ol) " to " (oh) " (" (c.bootstrap.resamples) " resamples)" }
                    dt { "First stage" } dd { "classical F = " (num(c.first_stage_f, 4)) ", robust F = " (num(c.first_stage_robust_f, 4))
                        @if let Some(f) = c.first_stage_effective_f { ", effective F (Montiel Olea–Pflueger) = " (num(f, 4)) }
                        @if let Some(f) = c.conditional_first_stage_f { ", conditional F given " (c.holding_fixed.join(", ")) " (Sanderson–Windmeijer) = " (num(f, 4)) }
                        @if c.weak_instrument { " " span.badge.bad { "weak instruments (F < 10)" } } }
                    @if c.conditional_first_stage_f.is_none() {
                        dt { "Anderson–Rubin set" } dd { (ar_set(c, (step, &words))) }
                    }
                    @if let Some(t) = a.dose_response.iter().find(|d| d.kpi == c.kpi && d.sli == c.sli).and_then(|d| d.linearity.as_ref()) {
                        dt { "Linearity" } dd { "Over-identification test across arms: χ² = " (num(t.statistic, 3)) " on " (t.df) " df, " (p_is(Some(t.p_value)))
                            (if t.linear { " — consistent with a straight line" } else { " — the arms depart from a straight line" }) }
                    }
                    dt { "Units" } dd { (c.units) }
                }
                @let labels = dose::Labels { sli: &sli_metric.name, kpi: kpi_name, unit, level: &level };
                @if let Some((plot, rows)) = dose::plot(a, &c.kpi, &labels).filter(|_| !several) {
                    (dose::figure(&plot, &rows, &labels, &format!("dose-{}", c.kpi),
                        html! { "Each point is an arm against control (the origin), with " (level) " CIs of its shift in " (e.sli.name) " and of its relative change in " (kpi_name) " (unadjusted). The blue line is the 2SLS slope; the band spans the slopes in its " (level) " CI." }))
                }
            }
        }
    }
}

fn power(a: &Analysis, e: &Experiment) -> Markup {
    let several = !e.extra_slis.is_empty();
    let (step, words) = super::per_step(&e.sli.unit);
    html! {
        section aria-labelledby="power" {
            h2 #power { "Power" }
            p { "The smallest changes the design could detect with 80% power in a two-sided test at α = " (num(a.parameters.alpha, 3)) ", before any multiple-comparison correction. "
                "A KPI is informative when its slope's CI excludes zero, or when the design could have detected the change observed." }
            table {
                thead { tr { th scope="col" { "KPI" } @if several { th scope="col" { "SLI" } } th scope="col" { "Arm compared" } th scope="col" { "Smallest detectable change, this arm" } th scope="col" { "Observed, this arm" } th scope="col" { "Smallest detectable change per " @if several { "SLI step" } @else { (words) } } th scope="col" { "Observed per " @if several { "SLI step" } @else { (words) } } th scope="col" { "Informative" } } }
                tbody {
                    @for p in &a.power {
                        @let observed = a.kpi_effects.iter().find(|k| k.metric == p.kpi && k.variant == p.variant);
                        @let step = p.sli.as_deref().and_then(|s| metric(e, s)).map_or(step, |m| super::per_step(&m.unit).0);
                        tr {
                            td { (name(e, &p.kpi)) } @if several { td { (p.sli.as_deref().map_or("–", |s| name(e, s))) } } td { (p.variant) }
                            td { (p.mde_relative.map_or_else(|| "–".into(), |m| format!("±{}", pct(m)))) }
                            td { (observed.and_then(|k| k.relative.as_ref()).map_or_else(|| "–".into(), |r| pct(r.estimate))) }
                            td { (p.mde_relative_per_100.map_or_else(|| "–".into(), |m| format!("±{}", pct(m * step / 100.0)))) }
                            td { (pct(p.observed_relative_per_100 * step / 100.0)) }
                            td { @if p.informative { "yes" } @else { span.badge.bad { "no" } } }
                        }
                    }
                }
            }
        }
    }
}

fn test_name(m: ThresholdTestMethod) -> &'static str {
    match m {
        ThresholdTestMethod::Davies => "Davies' test of a slope change at an unknown point",
        ThresholdTestMethod::SlopeHomogeneity => {
            "Cochran's Q of equal injection slopes across baseline strata"
        }
    }
}

fn thresholds(a: &Analysis, e: &Experiment) -> Markup {
    let unit = &e.sli.unit;
    let (step, words) = super::per_step(unit);
    let level = level(a);
    let slope = |v: f64, ci: Option<&crate::analysis::report::Interval>| {
        html! { (num(v * step, 3)) @if let Some(c) = ci { " (" (level) " CI " (num(c.low * step, 3)) " to " (num(c.high * step, 3)) ")" } }
    };
    html! {
        section aria-labelledby="thresholds" {
            h2 #thresholds { "Thresholds (knees)" }
            @if a.threshold.is_empty() { p { "No threshold analysis." } }
            @for t in &a.threshold {
                h3 { (name(e, &t.kpi)) " · " (t.evidence.as_str()) " evidence" }
                @match &t.breakpoint {
                    Some(b) => { p { "The slope of " (name(e, &t.kpi)) " on " (e.sli.name) " changes at " strong { (num(b.estimate, 4)) " " (unit) } " (" (level) " CI " (num(b.ci_low, 4)) " to " (num(b.ci_high, 4)) ")"
                        @if t.evidence.as_str() == "observational" { ": a correlation across units, not an effect" } "." } }
                    None => { p { "No knee found" @if let Some(r) = &t.reason { ": " (r) } "." } }
                }
                ul {
                    @if let (Some(_), Some(lo), Some(hi)) = (&t.breakpoint, t.slope_below, t.slope_above) {
                        li { "Slope per " (words) " below the knee " (slope(lo, t.slope_below_ci.as_ref())) ", above it " (slope(hi, t.slope_above_ci.as_ref())) "." }
                    }
                    @if let Some(test) = &t.no_threshold_test {
                        li { (test_name(test.method)) ": "
                            @if test.method == ThresholdTestMethod::Davies { "p ≤ " (p_value(Some(test.p_value))) " (an upper bound)" } @else { (p_is(Some(test.p_value))) }
                            @if let (Some(s), Some(df)) = (test.statistic, test.df) { ", Q = " (num(s, 4)) " on " (df) " df" } "." }
                    }
                    @if t.breakpoint.is_some() { @if let Some(r) = &t.reason { li { (r) } } }
                }
            }
        }
    }
}

fn verdicts(a: &Analysis, e: &Experiment) -> Markup {
    html! {
        section aria-labelledby="verdicts" {
            h2 #verdicts { "Verdicts" }
            ul.verdicts {
                @for v in &a.verdicts {
                    li {
                        @if v.validated { span.badge.ok { "validated" } } @else { span.badge.bad { "not validated" } }
                        " " strong { (name(e, &v.kpi)) }
                        @if let Some(s) = v.sli.as_ref().filter(|_| !e.extra_slis.is_empty()) { " on " (name(e, s)) }
                        @if !v.reasons.is_empty() { ul { @for r in &v.reasons { li { (r.message) " " code.key { (r.code.as_str()) } } } } }
                    }
                }
            }
        }
    }
}

fn parameters(a: &Analysis) -> Markup {
    let p = &a.parameters;
    html! {
        section aria-labelledby="parameters" {
            h2 #parameters { "Parameters and provenance" }
            dl {
                dt { "Significance level" } dd { (num(p.alpha, 3)) " (" (num(p.confidence * 100.0, 3)) "% intervals)" }
                dt { "Correction" } dd { (p.correction.as_str()) }
                dt { "CUPED" } dd { (if p.cuped { "on (pre-period covariate)" } else { "off" }) }
                dt { "Missing outcomes" } dd { (p.missing_outcomes.as_str()) }
                @if let Some(w) = p.winsorize {
                    dt { "Winsorized" } dd { "at the " (num(w, 3)) "th percentile: "
                        @if a.winsorized.is_empty() { "nothing capped (no continuous or count KPI)" }
                        @for (i, c) in a.winsorized.iter().enumerate() {
                            @if i > 0 { "; " } (c.metric) " (" (c.period) ") capped at " (num(c.cap, 4)) ", " (c.units_capped) " units" } }
                }
                dt { "Bootstrap" } dd { (p.bootstrap.resamples) " resamples, " (p.bootstrap.method.as_str()) ", seed " (p.bootstrap.seed) }
                dt { "Fingerprint" } dd { code { (a.fingerprint) } }
                @if let Some(d) = &a.dates { dt { "Ran" } dd { (d.first_assignment.format("%Y-%m-%d")) " to " (d.last_assignment.format("%Y-%m-%d")) " (" (d.days) " days)" } }
            }
        }
    }
}

/// The analysis page.
pub async fn detail(
    who: PageCaller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    let id = id.into_inner();
    let (a, e) = state
        .run(move |db| {
            let a = crate::analysis::service::document(db, id)?;
            let e = crate::ingest::service::experiment(db, &a.experiment)?;
            Ok((a, e))
        })
        .await?;
    let units: u64 = a.sample_ratio.observed.iter().sum();
    let main = html! {
        p { a href={ "/ui/experiments/" (e.key) } { "← " (e.name) } }
        h1 { "Analysis #" (a.id) " of " (e.name) }
        p { (units) " units · run " (a.created_at.format("%Y-%m-%d %H:%M UTC")) " · "
            a href={ "/api/v1/analyses/" (a.id) } { "raw JSON" } }
        @if let Some(h) = &a.headline {
            p.headline { (call_badge(h.status)) " " strong { (name(&e, &h.kpi)) } ": " (h.reason) }
        }
        p { (a.summary) }
        (verdicts(&a, &e))
        (sample_ratio(&a))
        (first_stage(&a, &e))
        (effects(&a, &e))
        (causal(&a, &e))
        (power(&a, &e))
        (thresholds(&a, &e))
        (parameters(&a))
    };
    Ok(page(&format!("Analysis {id}"), &who, main))
}
