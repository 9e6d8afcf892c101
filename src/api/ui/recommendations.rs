//! The recommendations inbox and a recommendation's review page.

use actix_web::{web, HttpResponse};
use maud::{html, Markup};
use serde::Deserialize;

use super::{age, dose, money, num, page, see_other, PageCaller, PageError};
use crate::analysis::report::Analysis;
use crate::api::recommendations::{decision_comment, DECIDE_RECOMMENDATION};
use crate::api::AppState;
use crate::domain::experiment::Experiment;
use crate::domain::metric::{Direction, Metric};
use crate::domain::review::{Decision, RecommendationStatus};
use crate::domain::Page;
use crate::error::AppError;
use crate::slo::model::{
    Evaluation, EvidenceBasis, HistoryEvent, Recommendation, RecommendationEvidence,
};
use crate::slo::service;

/// Recommendations per page of each section of the inbox.
const INBOX_ROWS: i64 = 100;

fn verdict_badge(validated: bool) -> Markup {
    html! {
        @if validated { span.badge.ok { "validated" } } @else { span.badge.bad { "not validated" } }
    }
}

/// Validated, not validated, or correlational (never validated, by construction).
fn evidence_badge(e: &RecommendationEvidence) -> Markup {
    if e.kind == EvidenceBasis::Correlational {
        html! { span.badge.warn { "correlational evidence" } }
    } else {
        verdict_badge(e.validated)
    }
}

fn status_badge(s: RecommendationStatus) -> Markup {
    html! { span class={ "badge status-" (s.as_str()) } { (s.as_str()) } }
}

/// Value at risk per period in words (in the currency of `value_per_kpi_unit`).
fn value_at_risk(r: &Recommendation) -> String {
    match r.error_budget.value_at_risk {
        Some(v) => format!(
            "{} per {} days",
            money(v, r.error_budget.currency.as_deref()),
            r.slo.window_days
        ),
        None => "not priced".into(),
    }
}

/// Where each section of the inbox starts (ids to list after).
#[derive(Debug, Deserialize)]
pub struct InboxQuery {
    #[serde(default)]
    proposed_after: i64,
    #[serde(default)]
    decided_after: i64,
}

/// The inbox: proposed recommendations first (oldest first: they have waited longest), then
/// the decided ones, each a page of [`INBOX_ROWS`] with a link to the next.
pub async fn inbox(
    who: PageCaller,
    state: web::Data<AppState>,
    q: web::Query<InboxQuery>,
) -> Result<HttpResponse, PageError> {
    let (pa, da) = (q.proposed_after.max(0), q.decided_after.max(0));
    let (mut proposed, mut decided, names) = state
        .run(move |db| {
            let page_at = |after_id| Page {
                after_id,
                limit: INBOX_ROWS,
            };
            let proposed =
                service::recommendations(db, Some(RecommendationStatus::Proposed), page_at(pa))?;
            let decided = service::decided_recommendations(db, page_at(da))?;
            // The KPIs' catalog names (a few distinct KPIs for hundreds of rows).
            let mut names = std::collections::BTreeMap::new();
            for r in proposed.iter().chain(&decided) {
                if !names.contains_key(&r.slo.kpi) {
                    let m = crate::ingest::service::metric(db, &r.slo.kpi)?;
                    names.insert(r.slo.kpi.clone(), m.name);
                }
            }
            Ok((proposed, decided, names))
        })
        .await?;
    let more = |rows: &mut Vec<Recommendation>| {
        let more = rows.len() as i64 > INBOX_ROWS;
        rows.truncate(INBOX_ROWS as usize);
        more.then(|| rows.last().map_or(0, |r| r.id))
    };
    let (next_p, next_d) = (more(&mut proposed), more(&mut decided));
    let table = |rows: &[Recommendation]| {
        html! {
            table {
                thead { tr {
                    th scope="col" { "SLO" } th scope="col" { "KPI" } th scope="col" { "Evidence" }
                    th scope="col" { "Value at risk" } th scope="col" { "Tolerated loss" } th scope="col" { "Proposed" } th scope="col" { "By" }
                    th scope="col" { "Status" }
                } }
                tbody {
                    @for r in rows {
                        tr {
                            td { a href={ "/ui/recommendations/" (r.id) } { (r.slo.statement) } " (#" (r.id) ")" }
                            td { (names.get(&r.slo.kpi).unwrap_or(&r.slo.kpi)) }
                            td { (evidence_badge(&r.evidence)) }
                            td { (value_at_risk(r)) }
                            td { (num(r.derivation.max_relative_kpi_loss * 100.0, 3)) "%" }
                            td { time datetime=(r.created_at.to_rfc3339()) { (age(r.created_at)) } }
                            td { (r.created_by) }
                            td { (status_badge(r.status)) }
                        }
                    }
                }
            }
        }
    };
    let main = html! {
        h1 { "Recommendations" }
        section aria-labelledby="proposed" {
            h2 #proposed { "Waiting for review" }
            @if proposed.is_empty() { p { "Nothing waits for review." } } @else { (table(&proposed)) }
            @if let Some(n) = next_p { p { a href={ "/ui/recommendations?proposed_after=" (n) "&decided_after=" (da) } { "More waiting for review →" } } }
        }
        section aria-labelledby="decided" {
            h2 #decided { "Decided" }
            @if decided.is_empty() { p { "No decision yet." } } @else { (table(&decided)) }
            @if let Some(n) = next_d { p { a href={ "/ui/recommendations?proposed_after=" (pa) "&decided_after=" (n) } { "More decided →" } } }
        }
    };
    Ok(page("Recommendations", &who, main))
}

/// The dose-response chart of the recommendation's KPI (changes against control), with the
/// tolerated loss, the degradation that costs it, and the knee it used (as a shift from the
/// same baseline the threshold adds the degradation to); axes named from the catalog.
fn dose_chart(r: &Recommendation, a: &Analysis, e: &Experiment, level: &str) -> Option<Markup> {
    let kpi = e.metric(&r.slo.kpi)?;
    // A factorial's arms do not lie on one dose line of this SLI.
    if !e.extra_slis.is_empty() {
        return None;
    }
    let labels = dose::Labels {
        sli: &e.sli.name,
        kpi: &kpi.name,
        unit: &r.slo.unit,
        level,
    };
    let (mut plot, rows) = dose::plot(a, &kpi.key, &labels)?;
    let d = &r.derivation;
    let worse = e.sli.direction.worse_sign();
    plot.knee = d.knee.as_ref().map(|k| {
        let shift = |x: f64| x - d.baseline_sli;
        (shift(k.estimate), shift(k.ci_low), shift(k.ci_high))
    });
    plot.threshold = Some(worse * d.degradation);
    // The tolerated loss: a fall for a higher-is-better KPI, a rise for a lower-is-better one.
    plot.tolerance = Some(kpi.direction.worse_sign() * d.max_relative_kpi_loss * 100.0);
    plot.title
        .push_str(", the tolerated loss and the degradation that costs it");
    let caption = html! {
        "Each point is an arm against control (the origin), with " (level) " CIs of both changes. The blue line is the causal (2SLS) slope, the band the slopes in its " (level) " CI. "
        "The dashed red line is the tolerated loss (" (num(d.max_relative_kpi_loss * 100.0, 3)) "%); the solid red line is the degradation that costs it at the harmful end of the slope's CI ("
        (num(d.degradation, 4)) " " (r.slo.unit) "), which the " (if r.slo.evaluation == Evaluation::Events { "target subtracts from the baseline share" } else if worse > 0.0 { "threshold adds to the baseline" } else { "threshold subtracts from the baseline" }) " of " (num(d.baseline_sli, 4)) " " (r.slo.unit) "."
        @if plot.knee.is_some() { " The orange line and shade are the knee used and its CI, as shifts from that baseline." }
    };
    Some(dose::figure(&plot, &rows, &labels, "dose", caption))
}

fn history_list(events: &[HistoryEvent]) -> Markup {
    html! {
        ol.timeline {
            @for e in events {
                li {
                    time datetime=(e.at.to_rfc3339()) { (e.at.format("%Y-%m-%d %H:%M UTC")) }
                    " — " strong { (e.action.as_str()) } " by " (e.actor)
                    @if let Some(c) = &e.comment { blockquote { (c) } }
                }
            }
        }
    }
}

/// How the KPI's tolerated loss reads: "lowers conversion by", or "raises chargebacks by"
/// for a lower-is-better KPI.
fn harm(kpi: &Metric) -> &'static str {
    match kpi.direction {
        Direction::LowerIsBetter => "raises",
        Direction::HigherIsBetter => "lowers",
    }
}

fn cost_section(r: &Recommendation, kpi: &Metric) -> Markup {
    let b = &r.error_budget;
    let events = r.slo.evaluation == Evaluation::Events;
    let unit = &r.slo.unit;
    let (step, step_words) = super::per_step(unit);
    html! {
        section aria-labelledby="cost" {
            h2 #cost { "What this SLO costs" }
            p {
                "The error budget is " (num(b.fraction * 100.0, 3)) "% of the "
                @if let Some(w) = b.total_windows { (w) " windows" } @else if events { "events" } @else { "requests" }
                " in " (r.slo.window_days) " days"
                @if let Some(n) = b.allowed_bad_windows { " (" (n) " bad windows allowed)" }
                @if events { ". Spending all of it (the good share down at the target) " } @else { ". Spending all of it with the SLI at the threshold " }
                (harm(kpi)) " " (kpi.name) " by about " (num(b.expected_relative_kpi_loss * 100.0, 2)) "%"
                @if let Some(u) = b.expected_kpi_units_lost { " (" (money(u, None)) " " (if kpi.unit.is_empty() { "units" } else { kpi.unit.as_str() }) ")" }
                "."
            }
            p.headline {
                "Value at risk: " strong { (value_at_risk(r)) }
            }
            p { "The SLI may " (if events { "fall" } else { "degrade" }) " by " (num(r.derivation.degradation, 3)) " " (unit)
                " before " (kpi.name) " " (if kpi.direction == Direction::LowerIsBetter { "rises" } else { "falls" }) " by the tolerated "
                (num(r.derivation.max_relative_kpi_loss * 100.0, 3)) "%, reading the slope at the harmful end of its CI (the conservative reading; "
                (num(r.evidence.relative_per_100.estimate * step / 100.0 * 100.0, 3)) "% per " (step_words) " at its estimate). "
                "At the slope's estimate the " (if events { "target" } else { "threshold" }) " would be " (num(r.threshold_range.estimate, 4)) " " (unit)
                @if let Some(o) = r.threshold_range.optimistic { ", at the CI's other end " (num(o, 4)) " " (unit) }
                "; the recommended " (if events { "target" } else { "threshold" }) " is " (num(r.slo.threshold, 4)) " " (unit)
                @if r.derivation.extrapolated { ", beyond the largest shift the experiment tested (a linear extrapolation)" }
                "." }
        }
    }
}

fn replay_section(r: &Recommendation) -> Markup {
    html! {
        section aria-labelledby="replay" {
            h2 #replay { "Replayed on production" }
            @if let Some(p) = &r.replay {
                p.headline { (p.summary) }
                @if let Some(t) = p.budget_exhausted_at {
                    p { "The budget would have run out on " (t.format("%Y-%m-%d %H:%M UTC")) "." }
                }
                p { "Pages: " (p.pages) ", tickets: " (p.tickets) "." }
                table {
                    caption { "Attainment per week" }
                    thead { tr { th scope="col" { "Week from" } th scope="col" { "Attainment" } th scope="col" { "Met" } } }
                    tbody {
                        @for w in &p.weeks {
                            tr {
                                td { (w.from.format("%Y-%m-%d")) }
                                td { @if let Some(a) = w.attainment { (num(a * 100.0, 4)) "%" } @else { "no data" } }
                                td { @match w.met { Some(true) => "yes", Some(false) => "no", None => "–" } }
                            }
                        }
                    }
                }
            } @else {
                p { "The SLI has no production series yet: nothing to replay." }
            }
        }
    }
}

/// What a review page shows besides the recommendation: its history, and the analysis and
/// experiment of causal evidence (none for correlational evidence).
struct Detail {
    r: Recommendation,
    history: Vec<HistoryEvent>,
    analysis: Option<Analysis>,
    experiment: Option<Experiment>,
    kpi: Metric,
}

fn load_detail(db: &crate::store::Db, id: i64) -> Result<Detail, AppError> {
    let r = service::recommendation(db, id)?;
    let history = service::history(db, id)?;
    // A stored analysis that cannot be read leaves the page without its chart.
    let analysis = r
        .evidence
        .analysis_id
        .and_then(|a| crate::analysis::service::document(db, a).ok());
    let experiment = r
        .evidence
        .experiment
        .as_deref()
        .map(|e| crate::ingest::service::experiment(db, e))
        .transpose()?;
    let kpi = crate::ingest::service::metric(db, &r.slo.kpi)?;
    Ok(Detail {
        r,
        history,
        analysis,
        experiment,
        kpi,
    })
}

/// A recommendation's review page.
pub async fn detail(
    who: PageCaller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    let id = id.into_inner();
    let Detail {
        r,
        history,
        analysis,
        experiment,
        kpi: kpi_metric,
    } = state.run(move |db| load_detail(db, id)).await?;
    let correlational = r.evidence.kind == EvidenceBasis::Correlational;
    let level = analysis.as_ref().map_or_else(String::new, |a| {
        format!("{}%", num(a.parameters.confidence * 100.0, 3))
    });
    let chart = analysis
        .as_ref()
        .zip(experiment.as_ref())
        .and_then(|(a, x)| dose_chart(&r, a, x, &level));
    let may_decide = who.caller.require(&DECIDE_RECOMMENDATION).is_ok()
        && r.status == RecommendationStatus::Proposed;
    let e = &r.evidence;
    let kpi_metric = &kpi_metric;
    let main = html! {
        p { a href="/ui/recommendations" { "← Recommendations" } }
        h1 { (r.slo.statement) }
        p { (status_badge(r.status)) " " (evidence_badge(e)) " proposed by " (r.created_by) " " (age(r.created_at))
            @if let Some(s) = r.slo_id { " · published as " a href={ "/ui/slos#slo-" (s) } { "SLO " (s) } } }
        section aria-labelledby="proof" {
            @if correlational {
                h2 #proof { "What production history shows" }
                p { (e.summary) }
                p { strong { "Correlational evidence:" } " no experiment validated this effect; a common cause may drive both series." }
            } @else {
                h2 #proof { "What the experiment proved" }
                p { (e.summary) }
                @if let Some(chart) = chart {
                    (chart)
                } @else {
                    p { "The analysis has no dose-response data for this KPI." }
                }
            }
        }
        (cost_section(&r, kpi_metric))
        (replay_section(&r))
        section aria-labelledby="evidence" {
            h2 #evidence { "Evidence" }
            dl {
                dt { "Kind" } dd { (e.kind) }
                @if let (Some(x), Some(key)) = (&experiment, &e.experiment) {
                    dt { "Experiment" } dd { a href={ "/ui/experiments/" (key) } { (x.name) } " (" code { (key) } ")" }
                }
                @if let Some(id) = e.analysis_id {
                    dt { "Analysis" } dd { a href={ "/ui/analyses/" (id) } { "#" (id) } " (" a href={ "/api/v1/analyses/" (id) } { "JSON" } ")" }
                }
                @if let Some(id) = e.observational_analysis_id {
                    dt { "Observational analysis" } dd { "#" (id) " (" a href={ "/api/v1/observational-analyses/" (id) } { "JSON" } ")" }
                }
                @if let Some(seed) = e.seed { dt { "Seed" } dd { (seed) } }
                @if let Some(f) = &e.fingerprint { dt { "Fingerprint" } dd { code { (f) } } }
                @let (step, step_words) = super::per_step(&r.slo.unit);
                @let pct = |x: f64| num(x * step / 100.0 * 100.0, 3);
                dt { "Relative change per " (step_words) } dd { (pct(e.relative_per_100.estimate)) "% (" (level) " CI " (pct(e.relative_per_100.ci_low)) "% to " (pct(e.relative_per_100.ci_high)) "%)" }
            }
            @if !r.derivation.notes.is_empty() {
                h3 { "Notes" }
                ul { @for n in &r.derivation.notes { li { (n) } } }
            }
        }
        @if may_decide {
            section aria-labelledby="decide" {
                h2 #decide { "Decision" }
                form method="post" action={ "/ui/recommendations/" (r.id) "/decision" } {
                    input type="hidden" name="csrf" value=(who.csrf);
                    label for="comment" { "Comment (recorded in the history)" }
                    textarea #comment name="comment" rows="3" maxlength="2000" {}
                    @if r.derivation.loose_evidence {
                        label { input type="checkbox" name="acknowledge_loose_evidence" value="true"; " I approve despite loose evidence (alpha above 0.05 or no multiple-testing correction)" }
                    }
                    @if correlational {
                        label { input type="checkbox" name="acknowledge_correlational_evidence" value="true"; " I approve on correlational evidence: production history, not an experiment, and a common cause may drive both" }
                    }
                    div.actions {
                        button type="submit" name="decision" value="approve" { "Approve and publish" }
                        button.secondary type="submit" name="decision" value="reject" { "Reject" }
                    }
                }
            }
        }
        section aria-labelledby="history" {
            h2 #history { "History" }
            (history_list(&history))
        }
    };
    Ok(page(&format!("Recommendation {id}"), &who, main))
}

#[derive(Debug, Deserialize)]
pub struct DecisionForm {
    csrf: String,
    decision: Decision,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    acknowledge_loose_evidence: Option<String>,
    #[serde(default)]
    acknowledge_correlational_evidence: Option<String>,
}

/// Approves or rejects from the review page, then shows it again.
pub async fn decide(
    who: PageCaller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    form: web::Form<DecisionForm>,
) -> Result<HttpResponse, PageError> {
    who.check_csrf(&form.csrf)?;
    who.caller.require(&DECIDE_RECOMMENDATION)?;
    let f = form.into_inner();
    let comment = decision_comment(f.comment)?;
    let ack = service::Acknowledged {
        loose_evidence: f.acknowledge_loose_evidence.as_deref() == Some("true"),
        correlational_evidence: f.acknowledge_correlational_evidence.as_deref() == Some("true"),
    };
    let id = id.into_inner();
    let actor = who.caller.name.clone();
    state
        .run(move |db| service::decide(db, id, f.decision, ack, &actor, comment.as_deref()))
        .await
        .map_err(|e: AppError| PageError(e))?;
    Ok(see_other(&format!("/ui/recommendations/{id}")))
}
