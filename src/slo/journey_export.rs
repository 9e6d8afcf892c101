//! A journey's exports. Prometheus: a recording rule of the journey's error at each evaluation,
//! 1 − Π (1 − the step's `slo:sli_error:ratio_rate5m`), its averages over the alert windows,
//! and the multiwindow burn-rate alerts on the journey's budget (the steps' own rule files must
//! be loaded too). OpenSLO v1 has no composite kind: one `Service` for the journey and each
//! step's SLO in it, with the journey (objective, budget share) in annotations.

use serde_json::{json, Value};

use super::journeys::Journey;
use super::model::Slo;
use super::openslo::{dns_name, document};
use super::prometheus::{labels, num, Group, Rule, RuleFile, ALERT_WINDOWS};
use crate::domain::metric::Metric;

/// The journey's error at each evaluation.
pub const JOURNEY_ERROR: &str = "sloproof:journey_error:ratio_rate5m";

/// The ranges the journey's error is averaged over: every alert window but the 5m base.
fn ranges() -> Vec<&'static str> {
    let mut out: Vec<&str> = ALERT_WINDOWS
        .iter()
        .flat_map(|w| [w.2, w.4])
        .filter(|w| *w != "5m")
        .collect();
    out.sort_by_key(|w| super::live::seconds(w));
    out.dedup();
    out
}

fn record(name: &str, expr: String, journey: &str) -> Rule {
    Rule {
        record: Some(name.to_owned()),
        alert: None,
        expr,
        for_duration: None,
        labels: labels(&[("sloproof_journey", journey)]),
        annotations: Default::default(),
    }
}

/// The rule file of journey `j` whose steps' SLOs are named `step_names` (in order).
pub fn rules(j: &Journey, step_names: &[String]) -> RuleFile {
    let key = j.key.as_str();
    let sel = format!("{{sloproof_journey=\"{key}\"}}");
    // `>= 0` drops a step's NaN (no traffic) and `on()` joins the steps' single samples: an
    // evaluation where a step has no ratio records nothing (as the service skips times not
    // every step has), so one idle minute cannot turn the averages below NaN.
    let product: Vec<String> = step_names
        .iter()
        .map(|n| format!("(1 - max(slo:sli_error:ratio_rate5m{{sloproof_slo=\"{n}\"}} >= 0))"))
        .collect();
    let mut recordings = vec![record(
        JOURNEY_ERROR,
        format!("1 - {}", product.join(" * on() ")),
        key,
    )];
    for w in ranges() {
        recordings.push(record(
            &format!("sloproof:journey_error:ratio_rate{w}"),
            format!("avg_over_time({JOURNEY_ERROR}{sel}[{w}])"),
            key,
        ));
    }
    let budget = 1.0 - j.objective;
    let period_hours = f64::from(j.window_days) * 24.0;
    let mut alerts = Vec::new();
    for severity in ["page", "ticket"] {
        let parts: Vec<String> = ALERT_WINDOWS
            .iter()
            .filter(|a| a.0 == severity)
            .map(|(_, share, long, hours, short)| {
                let t = num(share * period_hours / hours * budget);
                format!(
                    "(sloproof:journey_error:ratio_rate{long}{sel} > {t} and sloproof:journey_error:ratio_rate{short}{sel} > {t})"
                )
            })
            .collect();
        let mut a = labels(&[
            (
                "summary",
                &format!("Journey {} is burning its error budget too fast", j.name),
            ),
            ("sloproof_journey_objective", &num(j.objective)),
        ]);
        a.insert(
            "title".to_owned(),
            format!("(severity {severity}) journey {key} error budget burn rate is too high"),
        );
        alerts.push(Rule {
            record: None,
            alert: Some(format!(
                "SloproofJourneyBudgetBurn{}",
                if severity == "page" { "Page" } else { "Ticket" }
            )),
            expr: parts.join(" or "),
            for_duration: None,
            labels: labels(&[("severity", severity), ("sloproof_journey", key)]),
            annotations: a,
        });
    }
    // One group: rules are evaluated in order, so the averages read this evaluation's error.
    recordings.extend(alerts);
    RuleFile {
        groups: vec![Group {
            name: format!("sloproof-journey-{key}"),
            rules: recordings,
        }],
    }
}

/// The OpenSLO documents: the journey's `Service`, then each step's SLO in it.
pub fn openslo(j: &Journey, steps: &[(Slo, Metric)]) -> Vec<Value> {
    let service = format!("journey-{}", dns_name(&j.key));
    let mut docs = vec![json!({
        "apiVersion": "openslo/v1",
        "kind": "Service",
        "metadata": {"name": service, "displayName": j.name},
        "spec": {"description": format!(
            "User journey of {} steps; objective {} over {} days (the product of its steps' good shares)",
            steps.len(), num(j.objective), j.window_days
        )},
    })];
    for (i, (slo, sli)) in steps.iter().enumerate() {
        let mut d = document(slo, sli);
        d["spec"]["service"] = json!(service);
        let share = j
            .budget
            .iter()
            .find(|b| b.slo_id == slo.id)
            .map_or(0.0, |b| b.share);
        let notes = &mut d["metadata"]["annotations"];
        notes["sloproof.dev/journey"] = json!(j.key);
        notes["sloproof.dev/journey-step"] = json!((i + 1).to_string());
        notes["sloproof.dev/journey-objective"] = json!(num(j.objective));
        notes["sloproof.dev/journey-budget-share"] = json!(num(share));
        docs.push(d);
    }
    docs
}
