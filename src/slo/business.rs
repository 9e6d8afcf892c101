//! The seam of the deploy gate (`slo::gate`): checks a change against the live state of the
//! SLOs it touches, records every check with who asked, and lists them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::gate::{decide, Change, GateDecision, GateReason, GateSlo};
use super::live::service as live;
use super::model::SloStatus;
use super::service::slo_with_derivation;
use crate::domain::Page;
use crate::error::{AppError, AppResult, Issue};
use crate::store::calendars as store;
use crate::store::Db;

/// Most SLOs one check names.
pub const MAX_SLOS: usize = 50;

/// A deploy check: the SLOs a change touches and the change.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDeployCheck {
    /// Ids of active SLOs the change touches: 1 to 50, each once (or give `journey`).
    #[schema(max_items = 50)]
    #[serde(default)]
    pub slos: Vec<i64>,
    /// A journey's key: the change touches every step of it (instead of `slos`).
    #[serde(default)]
    pub journey: Option<String>,
    pub change: Change,
}

/// A recorded check and the gate's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeployCheck {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// Who asked (the token's name).
    pub actor: String,
    /// The journey asked about, when the check named one.
    #[serde(default)]
    pub journey: Option<String>,
    pub change: Change,
    /// `allow`, `deny` or `needs_approval`; the CLI exits 0, 1 or 2.
    pub decision: GateDecision,
    pub reasons: Vec<GateReason>,
    pub slos: Vec<GateSlo>,
}

/// A page of deploy checks.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeployCheckList {
    pub items: Vec<DeployCheck>,
    pub next_cursor: Option<String>,
}

/// 422s naming the field: no SLOs, too many or repeated, a description that is empty or too
/// long, an expected burn outside [0, 100].
fn check_request(req: &CreateDeployCheck) -> AppResult<()> {
    let mut issues = Vec::new();
    if req.journey.is_some() {
        if !req.slos.is_empty() {
            issues.push(Issue::field("journey", "give slos or journey, not both"));
        }
    } else if req.slos.is_empty() || req.slos.len() > MAX_SLOS {
        issues.push(Issue::field(
            "slos",
            format!("name 1 to {MAX_SLOS} SLO ids"),
        ));
    }
    for (i, id) in req.slos.iter().enumerate() {
        if req.slos[..i].contains(id) {
            issues.push(Issue::field(
                format!("slos[{i}]"),
                format!("SLO {id} is named twice"),
            ));
        }
    }
    crate::domain::plain_text(
        "change.description",
        &req.change.description,
        500,
        &mut issues,
    );
    if let Some(e) = req.change.expected_budget_burn {
        if !(0.0..=100.0).contains(&e) {
            issues.push(Issue::field(
                "change.expected_budget_burn",
                "must be a share of the remaining budget between 0 and 100 (0.2 for a fifth)",
            ));
        }
    }
    if issues.is_empty() {
        Ok(())
    } else {
        Err(AppError::invalid("invalid deploy check", issues))
    }
}

/// One SLO's state now: 422 naming `slos[i]` for an unknown or superseded SLO.
fn state_of(db: &Db, (i, id): (usize, i64), change: &Change, max_age: f64) -> AppResult<GateSlo> {
    let field = format!("slos[{i}]");
    let (slo, _, inputs) = match slo_with_derivation(&mut *db.conn()?, id) {
        Err(AppError::NotFound { .. }) => {
            return Err(AppError::invalid(
                "unknown SLO",
                vec![Issue::field(field, format!("no SLO has id {id}"))],
            ))
        }
        other => other?,
    };
    if slo.status != SloStatus::Active {
        return Err(AppError::invalid(
            "the SLO is not active",
            vec![Issue::field(
                field,
                format!("SLO {id} is {}; check its successor", slo.status),
            )],
        ));
    }
    let s = live::status(db, id, None, max_age)?;
    let rate = |w: &str| {
        s.burn_rates
            .iter()
            .find(|b| b.window == w)
            .and_then(|b| b.burn_rate)
    };
    let in_force = s.calendar.map_or_else(
        || crate::domain::calendar::InForce {
            budget_multiplier: 1.0,
            ..Default::default()
        },
        |c| c.in_force,
    );
    let remaining = s.error_budget.remaining;
    // The budget's value at risk, repriced when the calendar overrides the KPI unit's value.
    let scale = match (in_force.value_per_kpi_unit, inputs.value_per_kpi_unit) {
        (Some(now), Some(usual)) => now / usual,
        _ => 1.0,
    };
    let value_at_risk_of_change = change
        .expected_budget_burn
        .zip(remaining)
        .zip(slo.error_budget.value_at_risk)
        .map(|((e, r), v)| e * r.max(0.0) * v * scale);
    Ok(GateSlo {
        id,
        statement: slo.slo.statement,
        remaining,
        burn_1h: rate("1h"),
        burn_1d: rate("1d"),
        alert: s.alert,
        calendar_period: in_force.periods,
        freeze: in_force.freeze,
        frozen_by: in_force.frozen_by,
        budget_multiplier: in_force.budget_multiplier,
        value_at_risk_of_change,
        currency: slo.error_budget.currency,
    })
}

/// Checks `req` now and records it as asked by `actor`.
pub fn check(
    db: &Db,
    req: &CreateDeployCheck,
    actor: &str,
    max_age: f64,
) -> AppResult<DeployCheck> {
    check_request(req)?;
    let mut change = req.change.clone();
    change.description = change.description.trim().to_owned();
    // -0 reads as 0.
    change.expected_budget_burn = change.expected_budget_burn.map(|e| e + 0.0);
    let ids = match &req.journey {
        Some(key) => match super::journeys::get(db, key) {
            Ok((j, _)) => j.steps,
            Err(AppError::NotFound { .. }) => {
                return Err(AppError::invalid(
                    "unknown journey",
                    vec![Issue::field(
                        "journey",
                        format!("no journey has the key '{key}'"),
                    )],
                ))
            }
            Err(e) => return Err(e),
        },
        None => req.slos.clone(),
    };
    let slos = ids
        .iter()
        .enumerate()
        .map(|(i, id)| state_of(db, (i, *id), &change, max_age))
        .collect::<AppResult<Vec<_>>>()?;
    let (decision, reasons) = decide(&change, &slos);
    let mut answer = DeployCheck {
        id: 0,
        at: Utc::now(),
        actor: actor.to_owned(),
        journey: req.journey.clone(),
        change,
        decision,
        reasons,
        slos,
    };
    let row = store::record_check(&mut *db.conn()?, actor, decision.as_str(), |id, at| {
        answer.id = id;
        answer.at = at.and_utc();
        serde_json::to_string(&answer).map_err(|e| AppError::Internal(e.into()))
    })?;
    parse(&row.document)
}

fn parse(text: &str) -> AppResult<DeployCheck> {
    serde_json::from_str(text)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("stored deploy check cannot be read: {e}")))
}

/// Deploy checks, oldest first, one page (`limit + 1` items).
pub fn checks(db: &Db, page: Page) -> AppResult<Vec<DeployCheck>> {
    store::list_checks(&mut *db.conn()?, page)?
        .iter()
        .map(|r| parse(&r.document))
        .collect()
}
