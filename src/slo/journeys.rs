//! The seam of composite journey SLOs (`slo::journey`): create, read and list journeys, their
//! live status from the steps' production series, and their exports.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::journey::{
    combine, contributions, loss_at_budget, split, BudgetSplit, CreateJourney, StepBudget,
    MAX_STEPS, MIN_STEPS,
};
use super::live::service::slo_timeline;
use super::live::status::{budget, BudgetStatus};
use super::live::{alerts, burn_rate, burn_rates, AlertLevel, BurnRate, FiredRule};
use super::model::{Evaluation, Slo, SloStatus};
use crate::domain::{plain_text, Page, Slug};
use crate::error::{AppError, AppResult, Issue};
use crate::store::journeys::{self as store, StoredJourney};
use crate::store::Db;

/// A journey: its steps, objective and how its budget is split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Journey {
    pub id: i64,
    pub key: String,
    pub name: String,
    /// Step SLO ids, in order; a superseded step is replaced by its active successor.
    pub steps: Vec<i64>,
    pub objective: f64,
    /// `given`, or `product_of_steps` (the product of the steps' targets).
    pub objective_source: String,
    /// The steps' common period.
    pub window_days: u32,
    /// How the budget is split: `cost`, `inverse_cost` or `equal`.
    pub budget_split: BudgetSplit,
    /// Each step's share of the journey's budget (by `budget_split`; equal when a step is
    /// unpriced, see `priced`).
    pub budget: Vec<StepBudget>,
    pub priced: bool,
    /// What the journey loses over a period if every step spends exactly its allotment, in the
    /// steps' money (null when a step is unpriced): the price of the split.
    pub loss_at_budget: Option<f64>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    /// The last replacement (PUT), if any.
    pub updated_at: Option<DateTime<Utc>>,
    pub updated_by: Option<String>,
}

/// A page of journeys.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JourneyList {
    pub items: Vec<Journey>,
    pub next_cursor: Option<String>,
}

/// One step in a journey's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JourneyStepStatus {
    pub slo_id: i64,
    pub statement: String,
    /// Mean good share of the step over the journey's evaluations in the period.
    pub attainment: Option<f64>,
    pub budget_share: f64,
    /// Share of the journey's error over the period caused by this step (Σ its errors / Σ all
    /// steps' errors); null when nothing was bad.
    pub contribution: Option<f64>,
    /// The step's own burn rate over the last hour (against its own budget).
    pub burn_rate_1h: Option<f64>,
}

/// A journey's status at `at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JourneyStatus {
    pub key: String,
    pub at: DateTime<Utc>,
    pub period_start: DateTime<Utc>,
    pub objective: f64,
    /// Mean over the journey's evaluations in the period of Π (step good shares).
    pub attainment: Option<f64>,
    /// Evaluations in the period (times every step has one).
    pub evaluations: u64,
    pub error_budget: BudgetStatus,
    pub burn_rates: Vec<BurnRate>,
    pub alert: AlertLevel,
    pub alert_rules: Vec<FiredRule>,
    pub steps: Vec<JourneyStepStatus>,
    pub notes: Vec<String>,
}

fn time(t: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(t, 0).unwrap_or_default()
}

/// The steps as SLOs; 422 naming `steps[i]` for an unknown or superseded one.
fn step_slos(db: &Db, steps: &[i64]) -> AppResult<Vec<Slo>> {
    let mut out = Vec::new();
    for (i, id) in steps.iter().enumerate() {
        let field = format!("steps[{i}]");
        let slo = match super::service::slo(db, *id) {
            Err(AppError::NotFound { .. }) => {
                return Err(AppError::invalid(
                    "unknown step",
                    vec![Issue::field(field, format!("no SLO has id {id}"))],
                ))
            }
            other => other?,
        };
        if slo.status != SloStatus::Active {
            return Err(AppError::invalid(
                "a step is not active",
                vec![Issue::field(field, format!("SLO {id} is {}", slo.status))],
            ));
        }
        out.push(slo);
    }
    Ok(out)
}

/// 422s naming the field: key, name, 2–10 steps each once, objective in (0, 1).
fn check(req: &CreateJourney) -> AppResult<Slug> {
    let mut issues = Vec::new();
    let key = Slug::parse("key", &req.key)
        .map_err(|i| issues.push(i))
        .ok();
    plain_text("name", &req.name, 200, &mut issues);
    if !(MIN_STEPS..=MAX_STEPS).contains(&req.steps.len()) {
        issues.push(Issue::field(
            "steps",
            format!("name {MIN_STEPS} to {MAX_STEPS} SLOs"),
        ));
    }
    for (i, id) in req.steps.iter().enumerate() {
        if req.steps[..i].contains(id) {
            issues.push(Issue::field(
                format!("steps[{i}]"),
                format!("SLO {id} is named twice"),
            ));
        }
    }
    if req.objective.is_some_and(|o| !(o > 0.0 && o < 1.0)) {
        issues.push(Issue::field("objective", "must be in (0, 1), e.g. 0.97"));
    }
    match key {
        Some(k) if issues.is_empty() => Ok(k),
        _ => Err(AppError::invalid("invalid journey", issues)),
    }
}

/// The checked steps and the stored form of a journey's fields (key, steps JSON, split).
fn prepare(db: &Db, req: &CreateJourney) -> AppResult<(Slug, Vec<Slo>, String, BudgetSplit)> {
    let key = check(req)?;
    let slos = step_slos(db, &req.steps)?;
    let days = slos[0].slo.window_days;
    if let Some((i, s)) = slos
        .iter()
        .enumerate()
        .find(|(_, s)| s.slo.window_days != days)
    {
        return Err(AppError::invalid(
            "the steps have different periods",
            vec![Issue::field(
                format!("steps[{i}]"),
                format!("SLO {} is over {} days, steps[0] over {days}: a journey's steps share one period", s.id, s.slo.window_days),
            )],
        ));
    }
    check_currencies(&slos)?;
    let steps = serde_json::to_string(&req.steps).map_err(|e| AppError::Internal(e.into()))?;
    Ok((
        key,
        slos,
        steps,
        req.budget_split.unwrap_or(BudgetSplit::Cost),
    ))
}

/// 422 naming the first priced step whose currency differs from an earlier priced step's: the
/// split and its loss add the steps' money.
fn check_currencies(slos: &[Slo]) -> AppResult<()> {
    let mut first: Option<&str> = None;
    for (i, s) in slos.iter().enumerate() {
        let b = &s.error_budget;
        let Some(c) = b.currency.as_deref().filter(|_| b.value_at_risk.is_some()) else {
            continue;
        };
        match first {
            None => first = Some(c),
            Some(f) if f != c => {
                return Err(AppError::invalid(
                    "the steps are priced in different currencies",
                    vec![Issue::field(
                        format!("steps[{i}]"),
                        format!("SLO {} is priced in {c}, an earlier step in {f}: the budget split and its loss add the steps' money", s.id),
                    )],
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Creates a journey (422 naming the field, 409 for a taken key); nothing is written on error.
pub fn create(db: &Db, req: &CreateJourney, actor: &str) -> AppResult<Journey> {
    let (key, slos, steps, rule) = prepare(db, req)?;
    let row = store::insert(
        &mut *db.conn()?,
        (
            key.as_str(),
            req.name.trim(),
            req.objective,
            &steps,
            rule.as_str(),
        ),
        actor,
    )?;
    view(&row, &slos)
}

/// Replaces journey `key` with `req` (whose key must be `key`: 422 naming `key` otherwise);
/// 404 for an unknown journey. Its status and exports follow the new steps at once.
pub fn replace(db: &Db, key: &str, req: &CreateJourney, actor: &str) -> AppResult<Journey> {
    if req.key != key {
        return Err(AppError::invalid(
            "the key does not match the URL",
            vec![Issue::field(
                "key",
                format!("the journey in the URL is '{key}'; keys cannot be changed"),
            )],
        ));
    }
    let (key, slos, steps, rule) = prepare(db, req)?;
    let row = store::replace(
        &mut *db.conn()?,
        (
            key.as_str(),
            req.name.trim(),
            req.objective,
            &steps,
            rule.as_str(),
        ),
        actor,
    )?;
    view(&row, &slos)
}

/// Deletes journey `key`; 404 for an unknown one.
pub fn delete(db: &Db, key: &str) -> AppResult<()> {
    store::delete(&mut *db.conn()?, key)
}

fn view(row: &StoredJourney, slos: &[Slo]) -> AppResult<Journey> {
    // The steps as they stand: successors replace superseded SLOs.
    let steps: Vec<i64> = slos.iter().map(|s| s.id).collect();
    let product: f64 = slos.iter().map(|s| s.slo.target).product();
    let objective = row.objective.unwrap_or(product);
    let rule = BudgetSplit::parse(&row.budget_split).ok_or_else(|| {
        AppError::Internal(anyhow::anyhow!(
            "stored journey {} has budget split '{}'",
            row.id,
            row.budget_split
        ))
    })?;
    let (budget, priced) = split(slos, objective, rule);
    Ok(Journey {
        id: row.id,
        key: row.key.clone(),
        name: row.name.clone(),
        steps,
        objective,
        objective_source: if row.objective.is_some() {
            "given"
        } else {
            "product_of_steps"
        }
        .to_owned(),
        window_days: slos.first().map_or(28, |s| s.slo.window_days),
        budget_split: rule,
        loss_at_budget: loss_at_budget(&budget),
        budget,
        priced,
        created_at: row.created_at.and_utc(),
        created_by: row.created_by.clone(),
        updated_at: row.updated_at.map(|t| t.and_utc()),
        updated_by: row.updated_by.clone(),
    })
}

fn load(db: &Db, row: &StoredJourney) -> AppResult<(Journey, Vec<Slo>)> {
    let ids: Vec<i64> = serde_json::from_str(&row.steps).map_err(|e| {
        AppError::Internal(anyhow::anyhow!(
            "stored journey {} cannot be read: {e}",
            row.id
        ))
    })?;
    let slos = ids
        .iter()
        .map(|id| current(db, *id))
        .collect::<AppResult<Vec<_>>>()?;
    Ok((view(row, &slos)?, slos))
}

/// SLO `id`, or the active SLO that (transitively) superseded it: a journey follows its steps'
/// successors, as a re-approval replaces an SLO.
fn current(db: &Db, id: i64) -> AppResult<Slo> {
    let mut slo = super::service::slo(db, id)?;
    for _ in 0..1000 {
        match (slo.status, slo.superseded_by) {
            (SloStatus::Superseded, Some(next)) => slo = super::service::slo(db, next)?,
            _ => break,
        }
    }
    Ok(slo)
}

/// The journey with this key and its step SLOs, or 404.
pub fn get(db: &Db, key: &str) -> AppResult<(Journey, Vec<Slo>)> {
    let row = store::get(&mut *db.conn()?, key)?;
    load(db, &row)
}

/// Journeys in creation order, one page (`limit + 1` items).
pub fn list(db: &Db, page: Page) -> AppResult<Vec<Journey>> {
    let rows = store::list(&mut *db.conn()?, page)?;
    rows.iter().map(|r| load(db, r).map(|(j, _)| j)).collect()
}

/// The journey's status at `at` (default now) from its steps' production series.
pub fn status(db: &Db, key: &str, at: Option<DateTime<Utc>>) -> AppResult<JourneyStatus> {
    let (j, slos) = get_running(db, key)?;
    let at = at.unwrap_or_else(Utc::now).timestamp();
    let period = i64::from(j.window_days) * 86_400;
    let from = at - period;
    // A day before the period, for the 1d and 3d alert windows at its start.
    let read_from = from - 3 * 86_400;
    let timelines = slos
        .iter()
        .map(|s| slo_timeline(db, s.id, (read_from, at)).map(|(_, tl)| tl))
        .collect::<AppResult<Vec<_>>>()?;
    let refs: Vec<&super::live::Timeline> = timelines.iter().collect();
    let (tl, per_step) = combine(&refs);
    let fraction = 1.0 - j.objective;
    let fired = alerts(&tl, at, (j.window_days, fraction), 1.0);
    let a = tl.t.partition_point(|&t| t <= from);
    let b = tl.t.partition_point(|&t| t <= at);
    let shares = contributions(&per_step, a..b);
    let mut notes = tl.notes.clone();
    for s in slos.iter().filter(|s| s.status != SloStatus::Active) {
        notes.push(format!(
            "Step SLO {} is {}: the journey still follows it; create a journey with its successor.",
            s.id, s.status
        ));
    }
    let steps = slos
        .iter()
        .enumerate()
        .map(|(i, s)| JourneyStepStatus {
            slo_id: s.id,
            statement: s.slo.statement.clone(),
            attainment: (b > a)
                .then(|| 1.0 - per_step[i][a..b].iter().sum::<f64>() / (b - a) as f64),
            budget_share: j.budget[i].share,
            contribution: shares[i],
            burn_rate_1h: burn_rate(&timelines[i], at, "1h", 1.0 - s.slo.target),
        })
        .collect();
    let sums = tl.sums(from, at);
    Ok(JourneyStatus {
        key: j.key.clone(),
        at: time(at),
        period_start: time(from),
        objective: j.objective,
        attainment: sums.error_ratio().map(|r| 1.0 - r),
        evaluations: sums.evaluations as u64,
        error_budget: budget(&tl, from, at, fraction, Evaluation::Requests),
        burn_rates: burn_rates(&tl, at, j.window_days, fraction),
        alert: fired.first().map_or(AlertLevel::None, |f| f.severity),
        alert_rules: fired,
        steps,
        notes,
    })
}

/// The journey and its steps, 409 when a successor has given its steps different periods.
fn get_running(db: &Db, key: &str) -> AppResult<(Journey, Vec<Slo>)> {
    let (j, slos) = get(db, key)?;
    if let Some(s) = slos.iter().find(|s| s.slo.window_days != j.window_days) {
        return Err(AppError::Conflict(format!(
            "the journey's steps now have different periods (SLO {} is over {} days, the first step over {}): a successor replaced a step; replace the steps (PUT /api/v1/journeys/{key})",
            s.id, s.slo.window_days, j.window_days
        )));
    }
    Ok((j, slos))
}

/// The journey's Prometheus rules as YAML.
pub fn rules_yaml(db: &Db, key: &str) -> AppResult<String> {
    let (j, slos) = get_running(db, key)?;
    let names: Vec<String> = slos.iter().map(|s| s.name.clone()).collect();
    serde_yaml_ng::to_string(&super::journey_export::rules(&j, &names))
        .map_err(|e| AppError::Internal(e.into()))
}

/// The journey's OpenSLO documents as one multi-document YAML stream.
pub fn openslo_yaml(db: &Db, key: &str) -> AppResult<String> {
    let (j, slos) = get_running(db, key)?;
    let mut steps = Vec::new();
    for s in slos {
        let sli = crate::store::metrics::get(&mut *db.conn()?, &s.slo.sli)?;
        steps.push((s, sli));
    }
    let mut out = String::new();
    for d in super::journey_export::openslo(&j, &steps) {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(&d).map_err(|e| AppError::Internal(e.into()))?);
    }
    Ok(out)
}
