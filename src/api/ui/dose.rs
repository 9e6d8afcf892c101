//! The dose-response chart of one KPI from an analysis, shared by the analysis page and the
//! recommendation page (which adds the knee it used and its threshold).

use maud::{html, Markup};

use super::charts::{dose_response, ArmPoint, DosePlot, FitLine};
use super::{num, svg};
use crate::analysis::report::Analysis;

/// One arm's numbers under the chart: name, SLI mean, KPI mean and its 95% CI.
pub struct ArmRow {
    pub arm: String,
    pub sli: f64,
    pub kpi: f64,
    pub low: f64,
    pub high: f64,
}

/// What the axes say: the metrics' names and the SLI's unit.
pub struct Labels<'a> {
    pub sli: &'a str,
    pub kpi: &'a str,
    pub unit: &'a str,
}

/// The chart's arms, the 2SLS line through the control arm with the slope's CI as a band,
/// and the control arm's SLI mean; None when the analysis has no dose-response for `kpi`.
pub fn plot(a: &Analysis, kpi: &str, l: &Labels<'_>) -> Option<(DosePlot, Vec<ArmRow>, f64)> {
    let dr = a.dose_response.iter().find(|d| d.kpi == kpi)?;
    let mut rows = Vec::new();
    let arms: Vec<ArmPoint> = dr
        .points
        .iter()
        .map(|p| {
            let ci = a
                .variants
                .iter()
                .find(|v| v.variant == p.variant)
                .and_then(|v| v.metrics.iter().find(|m| m.metric == kpi))
                .and_then(|m| m.ci.clone());
            let (lo, hi) = ci.map_or((p.kpi_mean, p.kpi_mean), |c| (c.low, c.high));
            rows.push(ArmRow {
                arm: p.variant.clone(),
                sli: p.sli_mean,
                kpi: p.kpi_mean,
                low: lo,
                high: hi,
            });
            ArmPoint {
                x: p.sli_mean,
                y: p.kpi_mean,
                y_low: lo,
                y_high: hi,
            }
        })
        .collect();
    let control = a
        .variants
        .iter()
        .find(|v| v.control)
        .and_then(|v| dr.points.iter().find(|p| p.variant == v.variant))?;
    let line = a
        .causal_effects
        .iter()
        .find(|c| c.kpi == kpi)
        .map(|c| FitLine {
            anchor: (control.sli_mean, control.kpi_mean),
            slope: c.slope.estimate,
            ci: (c.slope.ci_low, c.slope.ci_high),
        });
    let plot = DosePlot {
        title: format!(
            "{} by arm against mean {} ({}), with the causal slope",
            l.kpi, l.sli, l.unit
        ),
        x_label: format!("mean {} per unit ({})", l.sli, l.unit),
        y_label: format!("{} (mean per unit)", l.kpi),
        arms,
        line,
        knee: None,
        threshold: None,
    };
    Some((plot, rows, control.sli_mean))
}

/// The chart's numbers in a table under a disclosure.
pub fn table(rows: &[ArmRow], l: &Labels<'_>) -> Markup {
    html! {
        details {
            summary { "The chart's numbers" }
            table {
                thead { tr { th scope="col" { "Arm" } th scope="col" { "Mean " (l.sli) " (" (l.unit) ")" } th scope="col" { (l.kpi) } th scope="col" { "95% CI" } } }
                tbody { @for r in rows { tr { td { (r.arm) } td { (num(r.sli, 4)) } td { (num(r.kpi, 4)) } td { (num(r.low, 4)) " – " (num(r.high, 4)) } } } }
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
