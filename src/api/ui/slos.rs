//! The list of published SLOs with their live status: budget remaining as a bar, the alert,
//! and links to the exports.

use actix_web::{web, HttpResponse};
use maud::{html, Markup};

use super::charts::{time_series, TimePlot};
use super::{money, num, page, svg, PageCaller, PageError};
use crate::api::AppState;
use crate::domain::review::SloStatus;
use crate::domain::Page;
use crate::slo::live::service as live;
use crate::slo::live::status::SloLiveStatus;
use crate::slo::model::Slo;
use crate::slo::service;

/// Most SLOs the list shows.
const LIST_ROWS: i64 = 100;

pub async fn list(who: PageCaller, state: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    let age = f64::from(state.limits.evidence_max_age_days);
    let rows: Vec<(Slo, Option<SloLiveStatus>)> = state
        .run(move |db| {
            let slos = service::slos(
                db,
                Page {
                    after_id: 0,
                    limit: LIST_ROWS,
                },
            )?;
            Ok(slos
                .into_iter()
                .take(LIST_ROWS as usize)
                .map(|s| {
                    // Only active SLOs are tracked (a superseded one's budget means nothing
                    // now); a status that cannot be computed shows as unknown.
                    let st = (s.status == SloStatus::Active)
                        .then(|| live::status(db, s.id, None, age).ok())
                        .flatten();
                    (s, st)
                })
                .collect())
        })
        .await?;
    let main = html! {
        h1 { "Published SLOs" }
        @if rows.is_empty() { p { "No SLO is published yet." } }
        @for (s, st) in &rows {
            article.slo id={ "slo-" (s.id) } aria-labelledby={ "slo-" (s.id) "-title" } {
                h2 id={ "slo-" (s.id) "-title" } { a href={ "/ui/slos/" (s.id) } { (s.slo.statement) } }
                p { span class={ "badge status-" (s.status.as_str()) } { (s.status.as_str()) }
                    " · SLO " (s.id) " · from recommendation "
                    a href={ "/ui/recommendations/" (s.recommendation_id) } { "#" (s.recommendation_id) } }
                @match st.as_ref().and_then(|st| st.error_budget.remaining.map(|r| (st, r))) {
                    Some((st, remaining)) => {
                        @let pct = (remaining.clamp(0.0, 1.0) * 100.0).round();
                        p {
                            label for={ "budget-" (s.id) } { "Error budget remaining: " strong { (num(remaining * 100.0, 3)) "%" } }
                            meter id={ "budget-" (s.id) } min="0" max="100" low="25" high="50" optimum="100" value=(pct) { (pct) "%" }
                        }
                        p { "Alert: " strong class={ "alert-" (st.alert.as_str()) } { (st.alert.as_str()) }
                            " · coverage " (num(st.coverage * 100.0, 3)) "%"
                            @if let Some(a) = st.attainment { " · attainment " (num(a * 100.0, 4)) "%" } }
                    }
                    None if s.status == SloStatus::Superseded => { p { "Superseded: its budget is no longer tracked." } }
                    None => { p { "No production data yet: the budget is not tracked." } }
                }
                p.links {
                    a href={ "/api/v1/slos/" (s.id) "/openslo" } { "OpenSLO" } " · "
                    a href={ "/api/v1/slos/" (s.id) "/prometheus-rules" } { "Prometheus rules" } " · "
                    a href={ "/api/v1/slos/" (s.id) "/status" } { "Status (JSON)" }
                }
            }
        }
    };
    Ok(page("SLOs", &who, main))
}

/// Points of the burn-down over one period.
const CHART_POINTS: i64 = 168;

fn chart_block(svg_doc: &str, caption: &str, label: &str, rows: Markup) -> Markup {
    html! {
        figure.chart-card {
            (svg(svg_doc))
            figcaption { (caption) }
        }
        details {
            summary { (label) }
            (rows)
        }
    }
}

fn percent(x: Option<f64>) -> String {
    x.map_or_else(|| "no data".into(), |v| format!("{}%", num(v * 100.0, 4)))
}

/// One SLO: its live status, the budget burn-down over the period and the 1-hour burn rate,
/// and its exports.
pub async fn detail(
    who: PageCaller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    let id = id.into_inner();
    let age = f64::from(state.limits.evidence_max_age_days);
    let (s, st, points) = state
        .run(move |db| {
            let s = service::slo(db, id)?;
            let st = live::status(db, id, None, age)?;
            let to = st.at.timestamp();
            let period = i64::from(s.slo.window_days) * 86_400;
            let step = (period / CHART_POINTS).max(60);
            let points = live::status_series(db, id, to - period, to, step)?;
            Ok((s, st, points))
        })
        .await?;
    let burn_down = TimePlot {
        title: format!(
            "Error budget remaining over the last {} days",
            s.slo.window_days
        ),
        y_label: "budget remaining (share)".into(),
        points: points
            .iter()
            .map(|p| (p.at.timestamp(), p.budget_remaining))
            .collect(),
        reference: Some(0.0),
        y_floor: (0.0, 1.0),
    };
    let burn = TimePlot {
        title: "Burn rate over the last hour (1 = spending the budget exactly over the period)"
            .into(),
        y_label: "1-hour burn rate".into(),
        points: points
            .iter()
            .map(|p| (p.at.timestamp(), p.burn_rate_1h))
            .collect(),
        reference: Some(1.0),
        y_floor: (0.0, 1.0),
    };
    let burn_down_svg = time_series(&burn_down, "burndown")
        .map_err(|e| crate::error::AppError::Internal(anyhow::anyhow!("burn-down chart: {e}")))?;
    let burn_svg = time_series(&burn, "burnrate")
        .map_err(|e| crate::error::AppError::Internal(anyhow::anyhow!("burn-rate chart: {e}")))?;
    let rows = html! {
        table {
            thead { tr { th scope="col" { "At" } th scope="col" { "Budget remaining" } th scope="col" { "1-hour burn rate" } th scope="col" { "Alert" } } }
            tbody { @for p in &points { tr {
                td { (p.at.format("%Y-%m-%d %H:%M")) }
                td { (percent(p.budget_remaining)) }
                td { (p.burn_rate_1h.map_or_else(|| "no data".into(), |b| num(b, 3))) }
                td { (p.alert.as_str()) }
            } } }
        }
    };
    let main = html! {
        p { a href="/ui/slos" { "← SLOs" } }
        h1 { (s.slo.statement) }
        p { span class={ "badge status-" (s.status.as_str()) } { (s.status.as_str()) }
            " · from recommendation " a href={ "/ui/recommendations/" (s.recommendation_id) } { "#" (s.recommendation_id) } }
        (now_section(&s, &st))
        section aria-labelledby="burndown-h" {
            h2 #burndown-h { "Budget burn-down" }
            (chart_block(&burn_down_svg, "The share of the error budget left over the period ending at each point; below the red line the budget is spent.", "The burn-down's numbers", rows.clone()))
        }
        section aria-labelledby="burnrate-h" {
            h2 #burnrate-h { "Burn rate" }
            (chart_block(&burn_svg, "The error ratio of the last hour over the budget; above the red line (1) the budget would run out before the period ends.", "The burn rate's numbers", rows))
            table {
                caption { "Burn rates now" }
                thead { tr { th scope="col" { "Over" } th scope="col" { "Burn rate" } } }
                tbody { @for r in &st.burn_rates { tr { td { (r.window) } td { (r.burn_rate.map_or_else(|| "no data".into(), |v| num(v, 3))) } } } }
            }
        }
        section aria-labelledby="exports" {
            h2 #exports { "Exports" }
            p.links {
                a href={ "/api/v1/slos/" (s.id) "/openslo" } { "OpenSLO (YAML)" } " · "
                a href={ "/api/v1/slos/" (s.id) "/prometheus-rules" } { "Prometheus rules (YAML)" } " · "
                a href={ "/api/v1/slos/" (s.id) "/status" } { "Status (JSON)" }
            }
        }
    };
    Ok(page(&format!("SLO {id}"), &who, main))
}

/// The status now: budget, alert, attainment, coverage, exhaustion, cost so far.
fn now_section(s: &Slo, st: &SloLiveStatus) -> Markup {
    let b = &st.error_budget;
    let cur = st.cost.currency.as_deref();
    html! {
        section aria-labelledby="now" {
            h2 #now { "Now" }
            dl {
                dt { "Error budget remaining" } dd { (percent(b.remaining)) " (" (num(b.bad, 4)) " of " (num(b.allowed_bad, 4)) " bad " (b.unit) " allowed)" }
                dt { "Alert" } dd { strong class={ "alert-" (st.alert.as_str()) } { (st.alert.as_str()) } }
                dt { "Attainment" } dd { (percent(st.attainment)) " (target " (num(st.target * 100.0, 4)) "%)" }
                dt { "Coverage" } dd { (num(st.coverage * 100.0, 3)) "% of the period's windows have data" }
                @for e in &st.exhaustion { dt { "At the " (e.at_rate_of) " rate" } dd { (e.text) } }
                dt { "Cost so far" } dd {
                    @match (st.cost.value_lost.filter(|_| st.coverage > 0.0), st.cost.budgeted_value_at_risk) {
                        (Some(v), Some(r)) => { (money(v, cur)) " lost, against " (money(r, cur)) " budgeted per period" }
                        (Some(v), None) => { (money(v, cur)) " lost" }
                        _ if st.coverage == 0.0 => { "not measured: no production data in the period" }
                        _ => { (num(st.cost.relative_kpi_loss * 100.0, 3)) "% of " (s.slo.kpi) " lost" }
                    }
                }
            }
            @if !st.notes.is_empty() { ul { @for n in &st.notes { li { (n) } } } }
        }
    }
}
