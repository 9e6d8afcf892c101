//! An analysis as a results page for data scientists: the headline, the sample-ratio check,
//! the first stage, a forest plot of every arm × metric effect, the causal slopes with their
//! dose-response charts, power, thresholds and verdicts with reasons, and a link to the JSON.

use actix_web::{web, HttpResponse};
use maud::{html, Markup};

use super::experiments::call_badge;
use super::forest::{forest, ForestRow};
use super::{dose, num, page, svg, PageCaller, PageError};
use crate::analysis::report::{Analysis, ArShape, Estimate, KpiEffect, MetricRole};
use crate::api::AppState;
use crate::domain::experiment::Experiment;
use crate::domain::metric::Metric;
use crate::error::AppError;

/// The catalog entry of `key` among the experiment's metrics.
fn metric<'a>(e: &'a Experiment, key: &str) -> Option<&'a Metric> {
    std::iter::once(&e.sli)
        .chain(&e.kpis)
        .chain(&e.guardrails)
        .find(|m| m.key == key)
}

fn name<'a>(e: &'a Experiment, key: &'a str) -> &'a str {
    metric(e, key).map_or(key, |m| m.name.as_str())
}

fn pct(x: f64) -> String {
    format!("{}%", num(x * 100.0, 3))
}

/// "−1.2% (95% CI −2.0% to −0.4%)".
fn pct_ci(e: &Estimate, level: &str) -> String {
    format!(
        "{} ({level} CI {} to {})",
        pct(e.estimate),
        pct(e.ci_low),
        pct(e.ci_high)
    )
}

fn p_value(p: Option<f64>) -> String {
    match p {
        Some(p) if p < 1e-4 => "< 0.0001".into(),
        Some(p) => num(p, 2),
        None => "–".into(),
    }
}

fn sample_ratio(a: &Analysis) -> Markup {
    let s = &a.sample_ratio;
    let total: u64 = s.observed.iter().sum();
    html! {
        section aria-labelledby="srm" {
            h2 #srm { "Sample ratio" }
            p {
                @if s.passed { span.badge.ok { "passed" } } @else { span.badge.bad { "mismatch" } }
                " χ² = " (num(s.chi_square, 3)) ", p = " (p_value(Some(s.p_value)))
                " (alarm below " (num(s.alarm_p_value, 2)) ")."
                @if !s.analysed_passed { " The units analysed (with an SLI value) are out of ratio too (p = " (p_value(s.analysed_p_value)) ")." }
            }
            table {
                thead { tr { th scope="col" { "Arm" } th scope="col" { "Units" } th scope="col" { "Share" } th scope="col" { "Expected" } th scope="col" { "Analysed" } } }
                tbody {
                    @for (i, v) in s.variants.iter().enumerate() {
                        @let o = s.observed.get(i).copied().unwrap_or(0);
                        tr {
                            td { (v) } td { (o) }
                            td { (pct(o as f64 / total.max(1) as f64)) }
                            td { (num(s.expected.get(i).copied().unwrap_or(f64::NAN), 6)) }
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
    let unit = &e.sli.unit;
    html! {
        section aria-labelledby="first-stage" {
            h2 #first-stage { "Did the arms move " (e.sli.name) " as planned?" }
            table {
                thead { tr { th scope="col" { "Arm" } th scope="col" { "Planned dose" } th scope="col" { "Mean shift (95% CI)" } th scope="col" { "p95 shift (95% CI)" } th scope="col" { "Observed / planned" } } }
                tbody {
                    @for f in &a.first_stage {
                        tr {
                            td { (f.variant) }
                            td { (num(f.planned_dose, 4)) " " (unit) }
                            td { (num(f.mean_shift.estimate, 4)) " " (unit) " (" (num(f.mean_shift.ci_low, 4)) " to " (num(f.mean_shift.ci_high, 4)) ")" }
                            td { (num(f.p95_shift.estimate, 4)) " " (unit) " (" (num(f.p95_shift.ci_low, 4)) " to " (num(f.p95_shift.ci_high, 4)) ")" }
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

fn effect_row(k: &KpiEffect, e: &Experiment) -> Markup {
    let arm = |m: &crate::analysis::report::ArmMean| {
        html! {
            (m.units) " units"
            @if let Some(s) = m.successes { ", " (s) " converted" }
            br; (num(m.mean, 4))
            @if let Some(ci) = &m.ci { " (" (num(ci.low, 4)) " – " (num(ci.high, 4)) ")" }
        }
    };
    html! {
        tr {
            td { (name(e, &k.metric)) " (" (role(k.role)) ")" }
            td { (k.variant) }
            td { (arm(&k.control)) }
            td { (arm(&k.treatment)) }
            td { (num(k.primary.estimate, 4)) " (" (num(k.primary.ci_low, 4)) " to " (num(k.primary.ci_high, 4)) ")" }
            td { (pct_ci(&k.relative, "95%")) }
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
        .map(|k| ForestRow {
            label: format!("{} · {}", name(e, &k.metric), k.variant),
            estimate: k.relative.estimate,
            low: k.relative.ci_low,
            high: k.relative.ci_high,
        })
        .collect();
    let level = format!("{}%", num(a.parameters.confidence * 100.0, 3));
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
                        figcaption { "Each row is one arm against control: the square is the relative change, the bar its " (level) " CI (red: wholly below zero, blue: wholly above, grey: includes zero). p-values are adjusted by " (a.parameters.correction.as_str().replace('_', "–")) " across comparisons." }
                    }
                }
                Some(Err(err)) => { p { "The forest plot could not be drawn (" (err) "); the numbers follow." } }
                None => { p { "No comparison could be computed." } }
            }
            details open[rows.len() <= 6] {
                summary { "Counts, per-arm means and lifts" }
                div.scroll {
                    table {
                        thead { tr {
                            th scope="col" { "Metric" } th scope="col" { "Arm" } th scope="col" { "Control (CI)" } th scope="col" { "Arm (CI)" }
                            th scope="col" { "Absolute change (CI)" } th scope="col" { "Relative change" } th scope="col" { "p" } th scope="col" { "Adjusted p" } th scope="col" { "Method" }
                        } }
                        tbody { @for k in &a.kpi_effects { (effect_row(k, e)) } }
                    }
                }
            }
            @if !a.failed_comparisons.is_empty() {
                h3 { "Comparisons not computed" }
                ul { @for f in &a.failed_comparisons { li { (name(e, &f.metric)) " · " (f.variant) ": " (f.reason) } } }
            }
        }
    }
}

fn ar_set(c: &crate::analysis::report::CausalEffect, unit: &str) -> String {
    let Some(ar) = &c.anderson_rubin else {
        return "–".into();
    };
    let per100 = |b: Option<f64>| b.map_or_else(|| "∞".into(), |b| num(b * 100.0, 3));
    match ar.shape {
        ArShape::Interval => format!(
            "{} to {} per 100 {unit}",
            per100(ar.lower),
            per100(ar.upper)
        ),
        ArShape::TwoRays => format!(
            "below {} or above {} per 100 {unit} (unbounded: weak instruments)",
            per100(ar.lower),
            per100(ar.upper)
        ),
        ArShape::WholeLine => "every slope (the data cannot bound it)".into(),
        ArShape::Empty => "empty (no single slope fits every arm)".into(),
    }
}

fn causal(a: &Analysis, e: &Experiment) -> Markup {
    let unit = e.sli.unit.as_str();
    html! {
        section aria-labelledby="causal" {
            h2 #causal { "Causal slope of each KPI on " (e.sli.name) }
            p { "Two-stage least squares with the arms as instruments: the KPI change per 100 " (unit) " of " (e.sli.name) "." }
            @for c in &a.causal_effects {
                @let kpi_name = name(e, &c.kpi);
                h3 { (kpi_name) }
                dl {
                    dt { "Relative change per 100 " (unit) } dd { (pct_ci(&c.relative_per_100, "95%")) ", p = " (p_value(c.slope.p_value)) @if c.slope.adjusted_p_value.is_some() { ", adjusted " (p_value(c.slope.adjusted_p_value)) } }
                    dt { "Slope per 100 " (unit) } dd { (num(c.slope.estimate * 100.0, 3)) " (95% CI " (num(c.slope.ci_low * 100.0, 3)) " to " (num(c.slope.ci_high * 100.0, 3)) "); bootstrap " (c.bootstrap.method.as_str()) " " (num(c.bootstrap.ci_low * 100.0, 3)) " to " (num(c.bootstrap.ci_high * 100.0, 3)) " (" (c.bootstrap.resamples) " resamples)" }
                    dt { "First stage" } dd { "F = " (num(c.first_stage_f, 4)) ", robust F = " (num(c.first_stage_robust_f, 4))
                        @if let Some(f) = c.first_stage_effective_f { ", effective F = " (num(f, 4)) }
                        @if c.weak_instrument { " " span.badge.bad { "weak instruments" } } }
                    dt { "Anderson–Rubin set" } dd { (ar_set(c, unit)) }
                    dt { "Units" } dd { (c.units) }
                }
                @let labels = dose::Labels { sli: &e.sli.name, kpi: kpi_name, unit };
                @if let Some((plot, rows, _)) = dose::plot(a, &c.kpi, &labels) {
                    (dose::figure(&plot, &rows, &labels, &format!("dose-{}", c.kpi),
                        html! { "Each point is an arm (95% CI of " (kpi_name) "); the blue line is the 2SLS slope through the control arm's means; the band spans the slopes in its 95% CI, pivoted on the control arm (the control's own uncertainty is its bar)." }))
                }
            }
        }
    }
}

fn power(a: &Analysis, e: &Experiment) -> Markup {
    let unit = &e.sli.unit;
    html! {
        section aria-labelledby="power" {
            h2 #power { "Power" }
            table {
                thead { tr { th scope="col" { "KPI" } th scope="col" { "Arm compared" } th scope="col" { "Smallest detectable lift (80% power)" } th scope="col" { "Smallest detectable change per 100 " (unit) } th scope="col" { "Observed per 100 " (unit) } th scope="col" { "Informative" } } }
                tbody {
                    @for p in &a.power {
                        tr {
                            td { (name(e, &p.kpi)) } td { (p.variant) }
                            td { (p.mde_relative.map_or_else(|| "–".into(), pct)) }
                            td { (p.mde_relative_per_100.map_or_else(|| "–".into(), pct)) }
                            td { (pct(p.observed_relative_per_100)) }
                            td { @if p.informative { "yes" } @else { span.badge.bad { "no" } } }
                        }
                    }
                }
            }
        }
    }
}

fn thresholds(a: &Analysis, e: &Experiment) -> Markup {
    let unit = &e.sli.unit;
    html! {
        section aria-labelledby="thresholds" {
            h2 #thresholds { "Thresholds (knees)" }
            @if a.threshold.is_empty() { p { "No threshold analysis." } }
            @for t in &a.threshold {
                h3 { (name(e, &t.kpi)) " · " (t.evidence.as_str()) " evidence" }
                @match &t.breakpoint {
                    Some(b) => { p { "The KPI starts to fall at " strong { (num(b.estimate, 4)) " " (unit) } " (95% CI " (num(b.ci_low, 4)) " to " (num(b.ci_high, 4)) ")." } }
                    None => { p { "No knee found" @if let Some(r) = &t.reason { ": " (r) } "." } }
                }
                ul {
                    @if let (Some(lo), Some(hi)) = (t.slope_below, t.slope_above) {
                        li { "Slope below the knee " (num(lo * 100.0, 3)) ", above " (num(hi * 100.0, 3)) " per 100 " (unit) "." }
                    }
                    @if let Some(test) = &t.no_threshold_test {
                        li { "Test of no threshold (" (format!("{:?}", test.method).to_lowercase()) "): p = " (p_value(Some(test.p_value)))
                            @if let (Some(s), Some(df)) = (test.statistic, test.df) { ", statistic " (num(s, 4)) " on " (df) " df" } "." }
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
                        @if !v.reasons.is_empty() { ul { @for r in &v.reasons { li { code { (r.code.as_str()) } ": " (r.message) } } } }
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
            let stored = crate::analysis::service::get(db, id)?;
            let a: Analysis = serde_json::from_str(&stored.result).map_err(|err| {
                AppError::Internal(anyhow::anyhow!(
                    "stored analysis {id} cannot be read: {err}"
                ))
            })?;
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
