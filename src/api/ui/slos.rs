//! The list of published SLOs with their live status: budget remaining as a bar, the alert,
//! and links to the exports.

use actix_web::{web, HttpResponse};
use maud::html;

use super::{num, page, PageCaller, PageError};
use crate::api::AppState;
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
                    // A status that cannot be computed shows as unknown; the list still loads.
                    let st = live::status(db, s.id, None, age).ok();
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
                h2 id={ "slo-" (s.id) "-title" } { (s.slo.statement) }
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
