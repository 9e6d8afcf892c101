//! Composite journey SLOs: a user journey (search → recommendations → checkout) succeeds only if
//! every step does, so its good share at an evaluation is the product of the steps' good
//! shares, Π (1 − bad_i / weight_i), at the evaluation ends all steps share. Its objective is
//! given or the product of the steps' targets; its error budget is split across the steps by
//! each step's business cost per unit of error (`value_at_risk / (1 − target)`: what the step
//! would lose if all of its evaluations were bad for the whole period), equally when a step is
//! unpriced. `cost` (the default) gives each step a share ∝ its cost — the share of the
//! journey's money at risk it answers for; `inverse_cost` a share ∝ 1 / cost, so the budget
//! goes where errors are cheap and spending it all loses least; `equal` ignores prices. Every
//! split states what spending the whole budget would cost (`loss_at_budget`), so the choice is
//! visible in money. Pure: `slo::journeys` loads the steps and stores journeys.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::live::timeline::Timeline;
use super::model::Slo;
use crate::domain::text_enum;

text_enum! {
    /// How a journey's error budget is split across its steps: `cost` (∝ each step's cost per
    /// unit of error, the default), `inverse_cost` (∝ 1 / cost: cheap errors get the budget),
    /// `equal`. Any unpriced step makes the split equal.
    BudgetSplit { Cost => "cost", InverseCost => "inverse_cost", Equal => "equal" }
}

/// Fewest and most steps of a journey.
pub const MIN_STEPS: usize = 2;
pub const MAX_STEPS: usize = 10;

/// A journey as created.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateJourney {
    /// 1–64 characters of a-z, 0-9, `_`, `-`, `.`.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = "^[a-z0-9][a-z0-9_.-]{0,63}$"
    )]
    pub key: String,
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// Ids of active SLOs of one period, in the journey's order: 2 to 10, each once.
    #[schema(min_items = 2, max_items = 10)]
    pub steps: Vec<i64>,
    /// The journey's target, in (0, 1); default: the product of the steps' targets.
    #[schema(exclusive_minimum = 0.0, exclusive_maximum = 1.0)]
    #[serde(default)]
    pub objective: Option<f64>,
    /// Default `cost`.
    #[serde(default)]
    pub budget_split: Option<BudgetSplit>,
}

/// One step's share of the journey's error budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StepBudget {
    pub slo_id: i64,
    pub statement: String,
    /// Share of the journey's budget, summing to 1 over the steps.
    pub share: f64,
    /// share × (1 − objective): the error ratio this step may spend of the journey's budget.
    pub allotted: f64,
    /// The step's cost per unit of error ratio (value at risk / (1 − target)); null unpriced.
    pub cost_per_error: Option<f64>,
}

/// The budget split by `rule` over the steps' costs per unit of error (value at risk /
/// (1 − target)), equal when any step is unpriced; and whether every step was priced.
pub fn split(steps: &[Slo], objective: f64, rule: BudgetSplit) -> (Vec<StepBudget>, bool) {
    let cost: Vec<Option<f64>> = steps
        .iter()
        .map(|s| {
            s.error_budget
                .value_at_risk
                .map(|v| v / (1.0 - s.slo.target))
                .filter(|c| c.is_finite() && *c > 0.0)
        })
        .collect();
    // Money of different currencies does not add: such steps split equally, unpriced.
    let mut currencies: Vec<&str> = steps
        .iter()
        .filter_map(|s| s.error_budget.currency.as_deref())
        .collect();
    currencies.sort_unstable();
    currencies.dedup();
    let priced = cost.iter().all(Option::is_some) && currencies.len() <= 1;
    let weight = |c: f64| match rule {
        BudgetSplit::Cost => c,
        BudgetSplit::InverseCost => 1.0 / c,
        BudgetSplit::Equal => 1.0,
    };
    let total: f64 = cost.iter().flatten().map(|c| weight(*c)).sum();
    let n = steps.len() as f64;
    let budget = 1.0 - objective;
    let out = steps
        .iter()
        .zip(&cost)
        .map(|(s, c)| {
            let share = match (priced, c) {
                (true, Some(c)) => weight(*c) / total,
                _ => 1.0 / n,
            };
            StepBudget {
                slo_id: s.id,
                statement: s.slo.statement.clone(),
                share,
                allotted: share * budget,
                cost_per_error: if priced { *c } else { None },
            }
        })
        .collect();
    (out, priced)
}

/// What the journey loses over a period when every step spends exactly its allotment:
/// Σ cost per unit of error × allotted error ratio (null when a step is unpriced).
pub fn loss_at_budget(budget: &[StepBudget]) -> Option<f64> {
    budget
        .iter()
        .map(|b| b.cost_per_error.map(|c| c * b.allotted))
        .sum()
}

/// The journey's evaluations and each step's error at them: evaluation ends every step has
/// (an exact match of times), where the journey's error is 1 − Π (1 − e_i) with e_i the step's
/// bad / weight, each evaluation weighing 1, and the loss the sum of the steps' losses.
pub fn combine(steps: &[&Timeline]) -> (Timeline, Vec<Vec<f64>>) {
    let mut per_step = vec![Vec::new(); steps.len()];
    let (mut t, mut bad, mut weight, mut loss) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let Some(first) = steps.first() else {
        return (Timeline::default(), per_step);
    };
    for &at in &first.t {
        let found: Option<Vec<usize>> = steps.iter().map(|s| s.t.binary_search(&at).ok()).collect();
        let Some(idx) = found else { continue };
        let errors: Vec<f64> = steps
            .iter()
            .zip(&idx)
            .map(|(s, &i)| (s.bad[i] / s.weight[i]).clamp(0.0, 1.0))
            .collect();
        let good: f64 = errors.iter().map(|e| 1.0 - e).product();
        t.push(at);
        bad.push(1.0 - good);
        weight.push(1.0);
        loss.push(steps.iter().zip(&idx).map(|(s, &i)| s.loss_days[i]).sum());
        for (k, e) in errors.into_iter().enumerate() {
            per_step[k].push(e);
        }
    }
    let step = steps.iter().map(|s| s.step).max().unwrap_or(60);
    let span = steps.iter().map(|s| s.span).max().unwrap_or(step);
    let mut notes = Vec::new();
    if steps.iter().any(|s| s.t.len() > t.len()) {
        notes.push("The journey is evaluated only where every step has an evaluation at the same time; steps with data at other times (another window length, gaps) count there only.".to_owned());
    }
    (
        Timeline::from_evaluations((t, step, span), (bad, weight, loss), notes),
        per_step,
    )
}

/// Each step's share of the journey's error over evaluations `range` (indices): Σ_t e_i(t) /
/// Σ_t Σ_j e_j(t), a first-order split of the journey's burn (exact when at most one step is
/// bad at a time); null when nothing was bad.
pub fn contributions(per_step: &[Vec<f64>], range: std::ops::Range<usize>) -> Vec<Option<f64>> {
    let sums: Vec<f64> = per_step
        .iter()
        .map(|e| e[range.clone()].iter().sum())
        .collect();
    let total: f64 = sums.iter().sum();
    sums.iter()
        .map(|s| (total > 0.0).then(|| s / total))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tl(t: &[i64], bad: &[f64], weight: &[f64]) -> Timeline {
        Timeline::from_evaluations(
            (t.to_vec(), 60, 60),
            (bad.to_vec(), weight.to_vec(), vec![0.0; t.len()]),
            vec![],
        )
    }

    /// Hand-checkable: step A good shares 1, 0.9, 0.5, 1; step B 1, 1, 0.8, — (no evaluation
    /// at the last time): the journey's are 1, 0.9, 0.4 at the three common times.
    #[test]
    fn a_journey_succeeds_only_when_every_step_does() {
        let a = tl(&[60, 120, 180, 240], &[0.0, 10.0, 50.0, 0.0], &[100.0; 4]);
        let b = tl(&[60, 120, 180], &[0.0, 0.0, 1.0], &[1.0, 1.0, 5.0]);
        let (j, per) = combine(&[&a, &b]);
        assert_eq!(j.t, vec![60, 120, 180]);
        let good: Vec<f64> = j.bad.iter().map(|e| 1.0 - e).collect();
        assert!((good[0] - 1.0).abs() < 1e-12);
        assert!((good[1] - 0.9).abs() < 1e-12);
        assert!((good[2] - 0.4).abs() < 1e-12);
        // Attainment over the three: (1 + 0.9 + 0.4) / 3.
        let s = j.sums(0, 180);
        assert!((1.0 - s.error_ratio().unwrap() - 2.3 / 3.0).abs() < 1e-12);
        let c = contributions(&per, 0..3);
        // Errors: A 0, 0.1, 0.5; B 0, 0, 0.2 → 0.6 / 0.8 and 0.2 / 0.8.
        assert!((c[0].unwrap() - 0.75).abs() < 1e-12);
        assert!((c[1].unwrap() - 0.25).abs() < 1e-12);
        assert!(!j.notes.is_empty(), "the unmatched evaluation is noted");
    }
}
