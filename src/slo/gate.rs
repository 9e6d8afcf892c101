//! The deploy gate: may a change ship now, given the SLOs it touches? A decision table over
//! each SLO's live state (budget remaining, burn rates, alert, calendar in force) and the
//! change's priority and expected burn. Pure; `slo::business` loads the states and records
//! every check.
//!
//! Rules, in order (the strictest outcome wins: deny, then needs_approval, then allow):
//! 1. a `critical` change is always allowed (the states are still reported);
//! 2. a calendar freeze in force on any SLO denies;
//! 3. a page-level burn on any SLO denies;
//! 4. an SLO whose remaining budget is below the priority's floor (low 50%, normal 25%,
//!    high 10%) denies;
//! 5. an SLO without data to judge asks for approval;
//! 6. an expected burn (share of the remaining budget the change may spend) above 1 — more
//!    than remains — or one that would take the remaining budget below the floor asks for
//!    approval;
//! 7. otherwise the change is allowed.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::text_enum;
use crate::slo::live::AlertLevel;

text_enum! {
    /// How urgent a change is: `critical` fixes always ship.
    Priority { Low => "low", Normal => "normal", High => "high", Critical => "critical" }
}

text_enum! {
    /// The gate's answer; the CLI exits 0, 1 or 2 for them.
    GateDecision { Allow => "allow", Deny => "deny", NeedsApproval => "needs_approval" }
}

text_enum! {
    /// Why the gate decided as it did.
    GateReasonCode {
        CriticalChange => "critical_change",
        Freeze => "freeze",
        PageBurn => "page_burn",
        BudgetBelowFloor => "budget_below_floor",
        NoData => "no_data",
        ExpectedBurnExceedsRemaining => "expected_burn_exceeds_remaining",
        ExpectedBurnCrossesFloor => "expected_burn_crosses_floor",
        WithinBudget => "within_budget",
    }
}

impl Priority {
    /// Least share of the error budget that must remain for a change of this priority to ship
    /// without a decision; none for critical changes.
    pub fn floor(self) -> Option<f64> {
        match self {
            Priority::Low => Some(0.5),
            Priority::Normal => Some(0.25),
            Priority::High => Some(0.1),
            Priority::Critical => None,
        }
    }
}

/// The change asking to ship.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Change {
    /// What ships, 1 to 500 characters.
    #[schema(min_length = 1, max_length = 500)]
    pub description: String,
    pub priority: Priority,
    /// Share of each SLO's remaining error budget the change may spend (e.g. 0.2 for a fifth),
    /// in [0, 100]; above 1 it would spend more than remains.
    #[schema(minimum = 0.0, maximum = 100.0)]
    #[serde(default)]
    pub expected_budget_burn: Option<f64>,
}

/// One SLO's state as the gate saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GateSlo {
    pub id: i64,
    pub statement: String,
    /// Share of the error budget left over the period; null without data.
    pub remaining: Option<f64>,
    pub burn_1h: Option<f64>,
    pub burn_1d: Option<f64>,
    /// The most severe burn-rate alert firing (with the calendar's multiplier).
    pub alert: AlertLevel,
    /// Calendar periods in force (empty outside them or without a calendar).
    pub calendar_period: Vec<String>,
    /// True when a calendar freeze is in force.
    pub freeze: bool,
    /// The freeze periods in force.
    #[serde(default)]
    pub frozen_by: Vec<String>,
    /// The calendar's budget multiplier in force (1 outside its periods): alerts fire at this
    /// multiple of the usual burn rates.
    #[serde(default = "one")]
    pub budget_multiplier: f64,
    /// expected_budget_burn × remaining (0 once overspent) × the budget's value at risk (with
    /// the calendar's value per KPI unit in force): what the change puts at stake; null when
    /// unpriced.
    pub value_at_risk_of_change: Option<f64>,
    pub currency: Option<String>,
}

/// A reason for the decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GateReason {
    pub code: GateReasonCode,
    pub message: String,
    /// The SLO it is about; null for the change as a whole.
    pub slo_id: Option<i64>,
}

fn one() -> f64 {
    1.0
}

fn reason(code: GateReasonCode, slo: Option<&GateSlo>, message: String) -> GateReason {
    GateReason {
        code,
        message,
        slo_id: slo.map(|s| s.id),
    }
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

/// The reasons one SLO gives to deny or to ask for approval (rules 2–6).
fn judge(change: &Change, floor: f64, s: &GateSlo, out: &mut Vec<(GateDecision, GateReason)>) {
    let deny = GateDecision::Deny;
    let ask = GateDecision::NeedsApproval;
    if s.freeze {
        let why = format!(
            "SLO {}: deploys are frozen ({})",
            s.id,
            s.frozen_by.join(", ")
        );
        out.push((deny, reason(GateReasonCode::Freeze, Some(s), why)));
    }
    if s.alert == AlertLevel::Page {
        let mut why = format!("SLO {} is burning its budget at page level", s.id);
        if s.budget_multiplier != 1.0 {
            why.push_str(&format!(
                " (the calendar's multiplier {} in force: alerts fire at that multiple of the usual burn rates)",
                s.budget_multiplier
            ));
        }
        out.push((deny, reason(GateReasonCode::PageBurn, Some(s), why)));
    }
    let Some(remaining) = s.remaining else {
        let why = format!(
            "SLO {} has no data over its period to judge the budget by",
            s.id
        );
        out.push((ask, reason(GateReasonCode::NoData, Some(s), why)));
        return;
    };
    if remaining < floor {
        let left = if remaining < 0.0 {
            format!("the budget is overspent by {}", pct(-remaining))
        } else {
            format!("{} of the budget remains", pct(remaining))
        };
        let why = format!(
            "SLO {}: {left}, below the {} floor of a {} change",
            s.id,
            pct(floor),
            change.priority
        );
        out.push((deny, reason(GateReasonCode::BudgetBelowFloor, Some(s), why)));
        return;
    }
    if let Some(e) = change.expected_budget_burn {
        if e > 1.0 {
            let why = format!(
                "SLO {}: the change may spend {} of the remaining budget, more than remains",
                s.id,
                pct(e)
            );
            out.push((
                ask,
                reason(GateReasonCode::ExpectedBurnExceedsRemaining, Some(s), why),
            ));
        } else if remaining * (1.0 - e) < floor {
            let why = format!(
                "SLO {}: spending {} of the remaining {} would leave {}, below the {} floor",
                s.id,
                pct(e),
                pct(remaining),
                pct(remaining * (1.0 - e)),
                pct(floor)
            );
            out.push((
                ask,
                reason(GateReasonCode::ExpectedBurnCrossesFloor, Some(s), why),
            ));
        }
    }
}

/// The decision and its reasons for `change` over the SLOs' states.
pub fn decide(change: &Change, slos: &[GateSlo]) -> (GateDecision, Vec<GateReason>) {
    let Some(floor) = change.priority.floor() else {
        return (
            GateDecision::Allow,
            vec![reason(
                GateReasonCode::CriticalChange,
                None,
                "critical changes are always allowed; the SLOs' states are reported for the record"
                    .to_owned(),
            )],
        );
    };
    let mut found = Vec::new();
    for s in slos {
        judge(change, floor, s, &mut found);
    }
    let rank = |d: GateDecision| match d {
        GateDecision::Deny => 2,
        GateDecision::NeedsApproval => 1,
        GateDecision::Allow => 0,
    };
    let decision = found
        .iter()
        .map(|(d, _)| *d)
        .max_by_key(|d| rank(*d))
        .unwrap_or(GateDecision::Allow);
    if found.is_empty() {
        let why = format!(
            "every SLO keeps at least the {} floor of a {} change and none is paging or frozen",
            pct(floor),
            change.priority
        );
        return (
            decision,
            vec![reason(GateReasonCode::WithinBudget, None, why)],
        );
    }
    (decision, found.into_iter().map(|(_, r)| r).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slo(remaining: Option<f64>, alert: AlertLevel, freeze: bool) -> GateSlo {
        GateSlo {
            id: 7,
            statement: "s".into(),
            remaining,
            burn_1h: None,
            burn_1d: None,
            alert,
            calendar_period: if freeze {
                vec!["Black Friday".into()]
            } else {
                vec![]
            },
            freeze,
            frozen_by: if freeze {
                vec!["Black Friday".into()]
            } else {
                vec![]
            },
            budget_multiplier: 1.0,
            value_at_risk_of_change: None,
            currency: None,
        }
    }

    fn change(priority: Priority, expected: Option<f64>) -> Change {
        Change {
            description: "deploy".into(),
            priority,
            expected_budget_burn: expected,
        }
    }

    /// The decision table, row by row: (priority, expected burn, remaining, alert, freeze) →
    /// decision and the codes of its reasons.
    #[test]
    fn the_decision_table_row_by_row() {
        use AlertLevel::{None as Quiet, Page, Ticket};
        use GateDecision::{Allow, Deny, NeedsApproval as Ask};
        use GateReasonCode as C;
        use Priority::{Critical, High, Low, Normal};
        #[rustfmt::skip]
        let rows = [
            (Critical, None, Some(0.0), Page, true, Allow, vec![C::CriticalChange]),
            (High, None, Some(0.9), Quiet, true, Deny, vec![C::Freeze]),
            (High, None, Some(0.9), Page, false, Deny, vec![C::PageBurn]),
            (High, None, Some(0.9), Ticket, false, Allow, vec![C::WithinBudget]),
            (Low, None, Some(0.49), Quiet, false, Deny, vec![C::BudgetBelowFloor]),
            (Low, None, Some(0.5), Quiet, false, Allow, vec![C::WithinBudget]),
            (Normal, None, Some(0.24), Quiet, false, Deny, vec![C::BudgetBelowFloor]),
            (Normal, None, Some(0.25), Quiet, false, Allow, vec![C::WithinBudget]),
            (High, None, Some(0.09), Quiet, false, Deny, vec![C::BudgetBelowFloor]),
            (High, None, Some(0.1), Quiet, false, Allow, vec![C::WithinBudget]),
            (High, None, Some(-0.2), Quiet, false, Deny, vec![C::BudgetBelowFloor]),
            (Normal, None, None, Quiet, false, Ask, vec![C::NoData]),
            (Normal, Some(1.5), Some(0.8), Quiet, false, Ask, vec![C::ExpectedBurnExceedsRemaining]),
            (Normal, Some(0.75), Some(0.8), Quiet, false, Ask, vec![C::ExpectedBurnCrossesFloor]),
            (Normal, Some(0.5), Some(0.8), Quiet, false, Allow, vec![C::WithinBudget]),
            (Low, Some(0.5), Some(0.3), Page, true, Deny, vec![C::Freeze, C::PageBurn, C::BudgetBelowFloor]),
        ];
        for (i, (p, e, remaining, alert, freeze, want, codes)) in rows.into_iter().enumerate() {
            let (d, reasons) = decide(&change(p, e), &[slo(remaining, alert, freeze)]);
            let got: Vec<GateReasonCode> = reasons.iter().map(|r| r.code).collect();
            assert_eq!((d, got), (want, codes), "row {i}");
        }
    }

    /// Several SLOs: the strictest outcome wins and each reason names its SLO.
    #[test]
    fn the_strictest_slo_decides() {
        let mut ok = slo(Some(0.9), AlertLevel::None, false);
        ok.id = 1;
        let mut unknown = slo(None, AlertLevel::None, false);
        unknown.id = 2;
        let (d, r) = decide(
            &change(Priority::Normal, None),
            &[ok.clone(), unknown.clone()],
        );
        assert_eq!(d, GateDecision::NeedsApproval);
        assert_eq!(r[0].slo_id, Some(2));
        let mut paging = slo(Some(0.9), AlertLevel::Page, false);
        paging.id = 3;
        let (d, _) = decide(&change(Priority::Normal, None), &[ok, unknown, paging]);
        assert_eq!(d, GateDecision::Deny);
    }
}
