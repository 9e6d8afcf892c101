//! Experiments for data scientists: the list, and one experiment's design with its analyses.
//! The page counts no rows: it stays fast however large the experiment (each analysis says
//! how many units it read; `GET /api/v1/experiments/{key}` counts what was uploaded).

use actix_web::{web, HttpResponse};
use maud::{html, Markup};
use serde::Deserialize;

use super::{age_naive, num, page, PageCaller, PageError};
use crate::analysis::report::{AnalysisSummary, CallStatus};
use crate::analysis::service as analyses;
use crate::api::AppState;
use crate::domain::experiment::Experiment;
use crate::domain::metric::Metric;
use crate::domain::Page;
use crate::ingest::service;

/// Experiments per page of the list, and analyses per page of an experiment.
const ROWS: i64 = 100;

/// Where a list page starts (the id to list after).
#[derive(Debug, Deserialize)]
pub struct After {
    #[serde(default)]
    after: i64,
}

/// "Conversion (cart_conversion)".
pub(super) fn metric_name(m: &Metric) -> Markup {
    html! { (m.name) " " span.key { "(" code { (m.key) } ")" } }
}

/// The headline's call as a badge.
pub(super) fn call_badge(s: CallStatus) -> Markup {
    let class = match s {
        CallStatus::ReadyToCall => "ok",
        CallStatus::KeepRunning => "warn",
        CallStatus::Invalid => "bad",
    };
    html! { span class={ "badge " (class) } { (s.as_str().replace('_', " ")) } }
}

/// The experiments, oldest first, [`ROWS`] per page.
pub async fn list(
    who: PageCaller,
    state: web::Data<AppState>,
    q: web::Query<After>,
) -> Result<HttpResponse, PageError> {
    let after = q.after.max(0);
    let mut rows = state
        .run(move |db| {
            service::experiments(
                db,
                Page {
                    after_id: after,
                    limit: ROWS,
                },
            )
        })
        .await?;
    let more = rows.len() as i64 > ROWS;
    rows.truncate(ROWS as usize);
    let main = html! {
        h1 { "Experiments" }
        @if rows.is_empty() { p { "No experiment yet." } } @else {
            table {
                thead { tr { th scope="col" { "Experiment" } th scope="col" { "SLI" } th scope="col" { "KPIs" } th scope="col" { "Arms (dose)" } th scope="col" { "Created" } } }
                tbody {
                    @for e in &rows {
                        tr {
                            td { a href={ "/ui/experiments/" (e.key) } { (e.name) } br; code { (e.key) } }
                            td { (e.sli.name) " (" (e.sli.unit) ")" }
                            td { @for (i, k) in e.kpis.iter().enumerate() { @if i > 0 { ", " } (k.name) } }
                            td { @for (i, v) in e.variants.iter().enumerate() { @if i > 0 { ", " } (v.key) " (" (num(v.dose, 4)) ")" } }
                            td { (age_naive(e.created_at)) }
                        }
                    }
                }
            }
        }
        @if more { @if let Some(last) = rows.last() { p { a href={ "/ui/experiments?after=" (last.id) } { "More experiments →" } } } }
    };
    Ok(page("Experiments", &who, main))
}

/// Where an experiment's analyses list starts (the id to list before).
#[derive(Debug, Deserialize)]
pub struct Before {
    before: Option<i64>,
}

fn design(e: &Experiment) -> Markup {
    html! {
        p { (e.hypothesis) }
        dl {
            dt { @if e.extra_slis.is_empty() { "SLI" } @else { "SLIs" } }
            @for s in e.slis() { dd { (metric_name(s)) ", in " (s.unit) ", " (s.direction.as_str().replace('_', " ")) } }
            dt { "KPIs" } dd { @for (i, k) in e.kpis.iter().enumerate() { @if i > 0 { "; " } (metric_name(k)) } }
            @if !e.guardrails.is_empty() {
                dt { "Guardrails" } dd { @for (i, k) in e.guardrails.iter().enumerate() { @if i > 0 { "; " } (metric_name(k)) } }
            }
            @if let Some(j) = &e.journey { dt { "Journey" } dd { (j) } }
        }
        table {
            caption { "Arms" }
            thead { tr { th scope="col" { "Arm" } @for s in e.slis() { th scope="col" { "Dose of " (s.name) " (" (s.unit) ")" } } th scope="col" { "Weight" } th scope="col" { "Control" } } }
            tbody { @for v in &e.variants { tr { td { (v.key) } @for j in 0..=e.extra_slis.len() { td { (num(v.dose_of(j), 4)) } } td { (num(v.weight, 4)) } td { @if v.control { "yes" } } } } }
        }
    }
}

fn analyses_table(rows: &[AnalysisSummary], e: &Experiment) -> Markup {
    let rows_several = !e.extra_slis.is_empty();
    let name = |key: &str| {
        e.metric(key)
            .map_or_else(|| key.to_owned(), |m| m.name.clone())
    };
    html! {
        table {
            caption { "Analyses, newest first" }
            thead { tr { th scope="col" { "Analysis" } th scope="col" { "Units" } th scope="col" { "Headline" } th scope="col" { "Verdicts" } th scope="col" { "Run" } } }
            tbody {
                @for a in rows {
                    tr {
                        td { a href={ "/ui/analyses/" (a.id) } { "#" (a.id) } }
                        td { (a.units) }
                        td { @if let Some(h) = &a.headline { (call_badge(h.status)) " " (name(&h.kpi)) } @else { "–" } }
                        td { @for v in &a.verdicts {
                            span class={ "badge " (if v.validated { "ok" } else { "bad" }) } { (name(&v.kpi)) @if let Some(s) = &v.sli { @if rows_several { " ← " (name(s)) } } (if v.validated { " ✓" } else { " ✗" }) } " "
                        } }
                        td { time datetime=(a.created_at.to_rfc3339()) { (super::age(a.created_at)) } }
                    }
                }
            }
        }
    }
}

/// One experiment: hypothesis, SLI, KPIs, arms and doses, the data uploaded and its analyses.
pub async fn detail(
    who: PageCaller,
    state: web::Data<AppState>,
    key: web::Path<String>,
    q: web::Query<Before>,
) -> Result<HttpResponse, PageError> {
    let key = key.into_inner();
    let before = q.before.filter(|b| *b > 0);
    // The rows uploaded are not counted here: counting millions of observations takes longer
    // than the page may (each analysis below says how many units it read).
    let (e, mut rows) = state
        .run(move |db| {
            let e = service::experiment(db, &key)?;
            let rows = analyses::list(db, &key, before, ROWS + 1)?;
            Ok((e, rows))
        })
        .await?;
    let more = rows.len() as i64 > ROWS;
    rows.truncate(ROWS as usize);
    let main = html! {
        p { a href="/ui/experiments" { "← Experiments" } }
        h1 { (e.name) }
        p { code { (e.key) } " · " a href={ "/api/v1/experiments/" (e.key) } { "JSON" } }
        section aria-labelledby="design" {
            h2 #design { "Design" }
            (design(&e))
        }
        section aria-labelledby="analyses" {
            h2 #analyses { "Analyses" }
            @if before.is_some() { p { a href={ "/ui/experiments/" (e.key) } { "← Newest analyses" } } }
            @if rows.is_empty() && before.is_some() { p { "No older analyses." } }
            @else if rows.is_empty() { p { "Not analysed yet: " code { "POST /api/v1/experiments/" (e.key) "/analyses" } "." } }
            @else { (analyses_table(&rows, &e)) }
            @if more { @if let Some(last) = rows.last() { p { a href={ "/ui/experiments/" (e.key) "?before=" (last.id) } { "Older analyses →" } } } }
        }
    };
    Ok(page(&e.name, &who, main))
}
