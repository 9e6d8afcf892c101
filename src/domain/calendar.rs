//! Business calendars: named periods (a sale, a release week, a freeze) with the policy that
//! holds during each. SLOs link to one calendar; their status, alerts, costs and the deploy
//! gate apply the periods in force.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{plain_text, Slug};
use crate::error::Issue;

/// Most periods one calendar holds.
pub const MAX_PERIODS: usize = 500;
/// Bounds of a budget multiplier: from a hundredth to a hundred times the usual burn.
pub const MIN_MULTIPLIER: f64 = 0.01;
pub const MAX_MULTIPLIER: f64 = 100.0;
/// Largest value of a KPI unit an override may set (as a recommendation's).
pub const MAX_VALUE_PER_KPI_UNIT: f64 = 1e9;

/// What holds during a period.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Policy {
    /// No risky deploys: the gate denies every change but critical ones.
    Freeze {},
    /// The budget may burn `multiplier` times as fast: the burn-rate alerts' factors are
    /// multiplied by it (below 1, e.g. 0.5 on Black Friday, alerts fire at half the usual burn
    /// rate; above 1 on a quiet week, later).
    BudgetMultiplier {
        #[schema(minimum = 0.01, maximum = 100.0)]
        multiplier: f64,
    },
    /// A KPI unit is worth `value` (in the SLO's currency) during the period, e.g. a conversion
    /// during a sale: costs and the value at risk of a change use it.
    ValuePerKpiUnit {
        #[schema(exclusive_minimum = 0.0, maximum = 1e9)]
        value: f64,
    },
}

impl Policy {
    /// The kind, as written in `type`: two overlapping periods of one kind conflict.
    pub fn kind(&self) -> &'static str {
        match self {
            Policy::Freeze {} => "freeze",
            Policy::BudgetMultiplier { .. } => "budget_multiplier",
            Policy::ValuePerKpiUnit { .. } => "value_per_kpi_unit",
        }
    }
}

/// A period of a calendar: [start, end) in UTC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CalendarPeriod {
    /// 1 to 200 characters, e.g. "Black Friday".
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    pub start: DateTime<Utc>,
    /// After `start`; the period ends before this instant.
    pub end: DateTime<Utc>,
    pub policy: Policy,
}

impl CalendarPeriod {
    /// True when `t` (Unix seconds) lies in [start, end).
    pub fn holds_at(&self, t: i64) -> bool {
        self.start.timestamp() <= t && t < self.end.timestamp()
    }
}

/// A calendar as created: key, name and periods (checked by [`Calendar::parse`]).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCalendar {
    /// 1–64 characters of a-z, 0-9, `_`, `-`, `.`.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = "^[a-z0-9][a-z0-9_.-]{0,63}$"
    )]
    pub key: String,
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// At most 500 periods; periods of one policy type must not overlap.
    #[schema(max_items = 500)]
    pub periods: Vec<CalendarPeriod>,
}

/// A validated calendar.
#[derive(Debug, Clone, PartialEq)]
pub struct Calendar {
    pub key: Slug,
    pub name: String,
    /// Sorted by start.
    pub periods: Vec<CalendarPeriod>,
}

/// The policies in force at a moment, merged over the periods that hold then.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
pub struct InForce {
    /// Names of the periods that hold, in start order.
    pub periods: Vec<String>,
    pub freeze: bool,
    /// The freeze periods among them (a freeze denies all but critical deploys).
    pub frozen_by: Vec<String>,
    /// 1 outside any multiplier period.
    pub budget_multiplier: f64,
    /// The override of the value of a KPI unit, when one holds.
    pub value_per_kpi_unit: Option<f64>,
}

impl Calendar {
    /// Checks a request: a valid key and name, at most [`MAX_PERIODS`] periods each with a
    /// name, `start < end` and a policy in range, and no two overlapping periods of one policy
    /// type (which would leave two values in force). Every problem is named by its field.
    pub fn parse(c: &CreateCalendar) -> Result<Calendar, Vec<Issue>> {
        let mut issues = Vec::new();
        let key = Slug::parse("key", &c.key).map_err(|i| issues.push(i)).ok();
        let name = plain_text("name", &c.name, 200, &mut issues);
        if c.periods.len() > MAX_PERIODS {
            issues.push(Issue::field(
                "periods",
                format!("at most {MAX_PERIODS} periods"),
            ));
        }
        let mut periods = Vec::with_capacity(c.periods.len());
        for (i, p) in c.periods.iter().enumerate() {
            let at = |f: &str| format!("periods[{i}].{f}");
            let name = plain_text(&at("name"), &p.name, 200, &mut issues);
            if p.end <= p.start {
                issues.push(Issue::field(at("end"), "must be after start"));
            }
            // Prometheus compares time() in whole seconds.
            for (f, t) in [("start", p.start), ("end", p.end)] {
                if t.timestamp_subsec_nanos() != 0 {
                    issues.push(Issue::field(at(f), "must be a whole second"));
                }
            }
            match p.policy {
                Policy::BudgetMultiplier { multiplier: m }
                    if !(MIN_MULTIPLIER..=MAX_MULTIPLIER).contains(&m) =>
                {
                    issues.push(Issue::field(
                        at("policy.multiplier"),
                        format!("must be between {MIN_MULTIPLIER} and {MAX_MULTIPLIER} (1 is the usual burn; 0.5 alerts at half of it)"),
                    ));
                }
                Policy::ValuePerKpiUnit { value: v }
                    if !(v > 0.0 && v <= MAX_VALUE_PER_KPI_UNIT) =>
                {
                    issues.push(Issue::field(
                        at("policy.value"),
                        format!("must be positive and at most {MAX_VALUE_PER_KPI_UNIT:e}"),
                    ));
                }
                _ => {}
            }
            periods.push((i, CalendarPeriod { name, ..p.clone() }));
        }
        conflicts(&periods, &mut issues);
        // A problem lists at most 100 issues (as uploads do).
        if issues.len() > 100 {
            let more = issues.len() - 100;
            issues.truncate(100);
            issues.push(Issue::field("periods", format!("and {more} more problems")));
        }
        match key {
            Some(key) if issues.is_empty() => {
                let mut periods: Vec<CalendarPeriod> =
                    periods.into_iter().map(|(_, p)| p).collect();
                periods.sort_by_key(|p| (p.start, p.end));
                Ok(Calendar { key, name, periods })
            }
            _ => Err(issues),
        }
    }

    /// The policies in force at `t` (Unix seconds).
    pub fn in_force(&self, t: i64) -> InForce {
        let mut f = InForce {
            budget_multiplier: 1.0,
            ..InForce::default()
        };
        for p in self.periods.iter().filter(|p| p.holds_at(t)) {
            f.periods.push(p.name.clone());
            match p.policy {
                Policy::Freeze {} => {
                    f.freeze = true;
                    f.frozen_by.push(p.name.clone());
                }
                Policy::BudgetMultiplier { multiplier } => f.budget_multiplier = multiplier,
                Policy::ValuePerKpiUnit { value } => f.value_per_kpi_unit = Some(value),
            }
        }
        f
    }
}

/// Periods of one policy type that overlap: each is named by its index in the request, with
/// the earlier-starting period it overlaps.
fn conflicts(periods: &[(usize, CalendarPeriod)], issues: &mut Vec<Issue>) {
    let mut sorted: Vec<&(usize, CalendarPeriod)> =
        periods.iter().filter(|(_, p)| p.start < p.end).collect();
    sorted.sort_by_key(|(i, p)| (p.policy.kind(), p.start, *i));
    // The period of the same type reaching furthest so far.
    let mut reach: Option<&(usize, CalendarPeriod)> = None;
    for cur in sorted {
        let (j, b) = cur;
        match reach {
            Some((i, a)) if a.policy.kind() == b.policy.kind() && b.start < a.end => {
                issues.push(Issue::field(
                    format!("periods[{j}]"),
                    format!(
                        "overlaps period '{}' (periods[{i}]) and both set {}: one value must hold at a time",
                        a.name,
                        a.policy.kind()
                    ),
                ));
                if b.end > a.end {
                    reach = Some(cur);
                }
            }
            _ => reach = Some(cur),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn period(name: &str, start: i64, end: i64, policy: Policy) -> CalendarPeriod {
        CalendarPeriod {
            name: name.into(),
            start: DateTime::from_timestamp(start, 0).unwrap(),
            end: DateTime::from_timestamp(end, 0).unwrap(),
            policy,
        }
    }

    fn create(periods: Vec<CalendarPeriod>) -> CreateCalendar {
        CreateCalendar {
            key: "retail_2026".into(),
            name: "Retail".into(),
            periods,
        }
    }

    fn fields(r: Result<Calendar, Vec<Issue>>) -> Vec<String> {
        r.err()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|i| i.field)
            .collect()
    }

    #[test]
    fn periods_in_force_merge_their_policies() {
        let c = Calendar::parse(&create(vec![
            period(
                "sale",
                100,
                200,
                Policy::BudgetMultiplier { multiplier: 0.5 },
            ),
            period(
                "sale value",
                100,
                200,
                Policy::ValuePerKpiUnit { value: 80.0 },
            ),
            period("freeze", 150, 300, Policy::Freeze {}),
        ]))
        .unwrap();
        let at = |t| c.in_force(t);
        assert_eq!(at(99).budget_multiplier, 1.0);
        assert!(at(99).periods.is_empty());
        assert_eq!(at(100).budget_multiplier, 0.5);
        assert_eq!(at(100).value_per_kpi_unit, Some(80.0));
        assert!(!at(100).freeze);
        assert!(at(150).freeze);
        assert_eq!(at(150).periods.len(), 3);
        assert_eq!(at(200).budget_multiplier, 1.0, "end is exclusive");
        assert!(at(299).freeze && !at(300).freeze);
    }

    /// A policy takes only its own fields; overlaps name the later-starting period by its
    /// index in the request, however the request orders them.
    #[test]
    fn policies_and_overlaps_are_strict() {
        for bad in [
            r#"{"type": "freeze", "multiplier": 2}"#,
            r#"{"type": "budget_multiplier", "multiplier": 2, "value": 3}"#,
            r#"{"type": "holiday"}"#,
        ] {
            assert!(serde_json::from_str::<Policy>(bad).is_err(), "{bad}");
        }
        let m = |x| Policy::BudgetMultiplier { multiplier: x };
        let r = Calendar::parse(&create(vec![
            period("B", 60, 120, m(2.0)),
            period("A", 0, 90, m(0.5)),
        ]));
        let issues = r.err().unwrap();
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].field.as_deref(), Some("periods[0]"));
        assert!(
            issues[0].message.contains("'A' (periods[1])"),
            "{}",
            issues[0].message
        );
        // A long period overlapping two later ones: both are named.
        let r = Calendar::parse(&create(vec![
            period("long", 0, 100, m(0.5)),
            period("x", 10, 20, m(2.0)),
            period("y", 30, 40, m(2.0)),
        ]));
        let fields: Vec<String> = r
            .err()
            .unwrap()
            .into_iter()
            .filter_map(|i| i.field)
            .collect();
        assert_eq!(fields, vec!["periods[1]", "periods[2]"]);
        let mut sub = period("s", 0, 10, Policy::Freeze {});
        sub.end = DateTime::from_timestamp(10, 500_000_000).unwrap();
        assert_eq!(
            fields_of(Calendar::parse(&create(vec![sub]))),
            vec!["periods[0].end"]
        );
        let ctl = period("a\u{1b}[31m", 0, 10, Policy::Freeze {});
        assert_eq!(
            fields_of(Calendar::parse(&create(vec![ctl]))),
            vec!["periods[0].name"]
        );
    }

    fn fields_of(r: Result<Calendar, Vec<Issue>>) -> Vec<String> {
        fields(r)
    }

    #[test]
    fn bad_calendars_name_the_field() {
        let m = |x| Policy::BudgetMultiplier { multiplier: x };
        assert_eq!(
            fields(Calendar::parse(&create(vec![period(
                "a",
                200,
                100,
                Policy::Freeze {}
            )]))),
            vec!["periods[0].end"]
        );
        assert_eq!(
            fields(Calendar::parse(&create(vec![period("a", 1, 2, m(0.0))]))),
            vec!["periods[0].policy.multiplier"]
        );
        assert_eq!(
            fields(Calendar::parse(&create(vec![period(
                "a",
                1,
                2,
                m(f64::NAN)
            )]))),
            vec!["periods[0].policy.multiplier"]
        );
        assert_eq!(
            fields(Calendar::parse(&create(vec![
                period("a", 1, 10, m(0.5)),
                period("b", 20, 30, Policy::Freeze {}),
                period("c", 5, 12, m(2.0)),
            ]))),
            vec!["periods[2]"]
        );
        // Touching periods do not overlap; different policy types may.
        assert!(Calendar::parse(&create(vec![
            period("a", 1, 10, m(0.5)),
            period("b", 10, 20, m(2.0)),
            period("c", 5, 15, Policy::Freeze {}),
        ]))
        .is_ok());
        let mut bad_key = create(vec![]);
        bad_key.key = "Black Friday".into();
        assert_eq!(fields(Calendar::parse(&bad_key)), vec!["key"]);
        assert_eq!(
            fields(Calendar::parse(&create(vec![period(
                " ",
                1,
                2,
                Policy::Freeze {}
            )]))),
            vec!["periods[0].name"]
        );
    }
}
