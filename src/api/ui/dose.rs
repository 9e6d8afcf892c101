//! The dose-response chart of one KPI from an analysis, shared by the analysis page and the
//! recommendation page (which adds the knee it used, its threshold and the tolerated loss).
//!
//! Both axes are changes against the control arm: x is each arm's SLI mean shift (Welch CI),
//! y its relative KPI change (delta-method CI of the unadjusted difference, as the 2SLS slope
//! uses the unadjusted KPI). The control arm is the origin. The line through the origin has the
//! 2SLS slope in relative terms (`relative_per_100` / 100 per SLI unit) and the band spans the
//! slopes in its CI: at each shift, the KPI changes the slope's CI allows. This is the same
//! picture as the recommendation's arithmetic (tolerated loss / |slope| = degradation).

use maud::{html, Markup};

use super::charts::{dose_response, ArmPoint, DosePlot, FitLine};
use super::{num, svg};
use crate::analysis::report::Analysis;

/// One arm's numbers under the chart: name, SLI shift and relative KPI change (percent), with
/// their CIs.
pub struct ArmRow {
    pub arm: String,
    pub shift: (f64, f64, f64),
    pub change: (f64, f64, f64),
}

/// What the axes say: the metrics' names, the SLI's unit and the analysis's confidence level
/// (e.g. "95%").
pub struct Labels<'a> {
    pub sli: &'a str,
    pub kpi: &'a str,
    pub unit: &'a str,
    pub level: &'a str,
}

/// The chart's arms (control at the origin), the 2SLS line with its band; None when the
/// analysis has no causal slope or comparisons for `kpi`.
pub fn plot(a: &Analysis, kpi: &str, l: &Labels<'_>) -> Option<(DosePlot, Vec<ArmRow>)> {
    let c = a.causal_effects.iter().find(|c| c.kpi == kpi)?;
    let control = a.variants.iter().find(|v| v.control)?;
    let mut rows = vec![ArmRow {
        arm: control.variant.clone(),
        shift: (0.0, 0.0, 0.0),
        change: (0.0, 0.0, 0.0),
    }];
    for f in &a.first_stage {
        let Some(k) = a
            .kpi_effects
            .iter()
            .find(|k| k.metric == kpi && k.variant == f.variant)
        else {
            continue;
        };
        let Some(rel) = k
            .alternatives
            .unadjusted_relative
            .as_ref()
            .or(k.relative.as_ref())
        else {
            continue;
        };
        rows.push(ArmRow {
            arm: f.variant.clone(),
            shift: (
                f.mean_shift.estimate,
                f.mean_shift.ci_low,
                f.mean_shift.ci_high,
            ),
            change: (
                rel.estimate * 100.0,
                rel.ci_low * 100.0,
                rel.ci_high * 100.0,
            ),
        });
    }
    let arms = rows
        .iter()
        .map(|r| ArmPoint {
            x: r.shift.0,
            x_low: r.shift.1,
            x_high: r.shift.2,
            y: r.change.0,
            y_low: r.change.1,
            y_high: r.change.2,
        })
        .collect();
    // relative_per_100 is a fraction per 100 SLI units: × 100 for percent, / 100 per unit.
    let r = &c.relative_per_100;
    let plot = DosePlot {
        title: format!(
            "Change in {} against the shift in mean {} ({}), each arm against control, with the causal slope",
            l.kpi, l.sli, l.unit
        ),
        x_label: format!("shift in mean {} vs control ({})", l.sli, l.unit),
        y_label: format!("change in {} vs control (%)", l.kpi),
        arms,
        line: Some(FitLine {
            anchor: (0.0, 0.0),
            slope: r.estimate,
            ci: (r.ci_low, r.ci_high),
        }),
        knee: None,
        threshold: None,
        tolerance: None,
    };
    Some((plot, rows))
}

/// The chart's numbers in a table under a disclosure.
pub fn table(rows: &[ArmRow], l: &Labels<'_>) -> Markup {
    html! {
        details {
            summary { "The chart's numbers" }
            table {
                thead { tr {
                    th scope="col" { "Arm" }
                    th scope="col" { "Shift in mean " (l.sli) " (" (l.unit) "), " (l.level) " CI" }
                    th scope="col" { "Change in " (l.kpi) ", " (l.level) " CI" }
                } }
                tbody { @for r in rows { tr {
                    td { (r.arm) }
                    td { (num(r.shift.0, 4)) " (" (num(r.shift.1, 4)) " to " (num(r.shift.2, 4)) ")" }
                    td { (num(r.change.0, 3)) "% (" (num(r.change.1, 3)) "% to " (num(r.change.2, 3)) "%)" }
                } } }
            }
        }
    }
}

/// The chart as a figure with its caption, then its table; or a sentence when it cannot be
/// drawn.
pub fn figure(
    plot: &DosePlot,
    rows: &[ArmRow],
    l: &Labels<'_>,
    id: &str,
    caption: Markup,
) -> Markup {
    match dose_response(plot, id) {
        Ok(doc) => html! {
            figure.chart-card { (svg(&doc)) figcaption { (caption) } }
            (table(rows, l))
        },
        Err(e) => {
            tracing::warn!(error = %e, "dose-response chart not drawn");
            html! { p { "The chart could not be drawn; its numbers:" } (table(rows, l)) }
        }
    }
}
