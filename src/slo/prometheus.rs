//! Prometheus rule groups for a published SLO, in the style Sloth generates: SLI error-ratio
//! recording rules over 5m, 30m, 1h, 2h, 6h, 1d, 3d and the full period; meta rules (objective,
//! error budget, burn rates, budget remaining); and multi-window multi-burn-rate alerts.
//!
//! What is budgeted follows the SLO's statement:
//! - **windows** ("p95 < T in 99% of 5-minute windows"): a window is bad when fewer than 95% of
//!   its requests are good (≤ T), i.e. when its p95 exceeds T. `slo:sli_error:ratio_rate5m` (for
//!   a 5-minute window) is 1 for a bad window and 0 for a good one, evaluated at every rule
//!   evaluation (sliding windows); longer ranges average it, so `ratio_rate1h` is the share of bad
//!   windows in the last hour, and the budget is the share of bad windows allowed (1 − target).
//!   A window without requests counts as good (its ratio is NaN, and NaN < q is false).
//! - **requests** ("T for 99% of requests"): the share of requests that are bad, budget 1 − target;
//!   over the period, bad events / events from 5-minute good and total rates (traffic-weighted).
//!
//! Burn-rate factors are budget_share × period_hours / long_window_hours, so they are right for
//! any period: page on 2% of the budget in 1h (checked over 1h and 5m) or 5% in 6h (6h and 30m);
//! ticket on 10% in 1d (1d and 2h) or 10% in 3d (3d and 6h). For 30 days these are Sloth's 14.4,
//! 6, 3 and 1.

use std::collections::BTreeMap;

use serde::Serialize;

use super::model::{Comparison, Evaluation, EvidenceBasis, Slo, SloSpec};
use crate::domain::calendar::{Calendar, Policy};
use crate::domain::metric::Metric;

/// Recording-rule windows besides the full period.
pub const WINDOWS: [&str; 7] = ["5m", "30m", "1h", "2h", "6h", "1d", "3d"];

/// (severity, budget share, long window, long window hours, short window).
pub const ALERT_WINDOWS: [(&str, f64, &str, f64, &str); 4] = [
    ("page", 0.02, "1h", 1.0, "5m"),
    ("page", 0.05, "6h", 6.0, "30m"),
    ("ticket", 0.10, "1d", 24.0, "2h"),
    ("ticket", 0.10, "3d", 72.0, "6h"),
];

#[derive(Debug, Serialize)]
pub struct RuleFile {
    pub groups: Vec<Group>,
}

#[derive(Debug, Serialize)]
pub struct Group {
    pub name: String,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Serialize)]
pub struct Rule {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    pub expr: String,
    /// How long the condition must hold before the alert fires.
    #[serde(rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_duration: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

pub(crate) fn num(x: f64) -> String {
    let s = format!("{x:.9}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

/// Default name of the Prometheus histogram of an SLI: the key with `-` and `.` as `_`; for a
/// millisecond SLI, base-unit seconds (`_seconds`, replacing a `_ms` suffix of the key).
pub fn histogram_name(m: &Metric) -> String {
    let base = m.key.replace(['-', '.'], "_");
    // A metric name cannot start with a digit: `9lat` becomes `sli_9lat`.
    let base = if base.starts_with(|c: char| c.is_ascii_digit()) {
        format!("sli_{base}")
    } else {
        base
    };
    if m.unit == "ms" {
        format!("{}_seconds", base.strip_suffix("_ms").unwrap_or(&base))
    } else {
        base
    }
}

/// The good- and total-event templates of an SLI: the metric's own, or defaults for a
/// Prometheus histogram named by [`histogram_name`]; for an events SLO, counters
/// `<name>_good_total` and `<name>_events_total`.
pub fn templates(m: &Metric, spec: &SloSpec) -> (String, String) {
    let comparison = spec.comparison;
    let name = histogram_name(m);
    if spec.evaluation == Evaluation::Events {
        return (
            m.prometheus
                .good_events
                .clone()
                .unwrap_or_else(|| format!("sum(rate({name}_good_total[{{{{window}}}}]))")),
            m.prometheus
                .total_events
                .clone()
                .unwrap_or_else(|| format!("sum(rate({name}_events_total[{{{{window}}}}]))")),
        );
    }
    let le = if m.unit == "ms" {
        "{{le_seconds}}"
    } else {
        "{{le}}"
    };
    // A regex matching every spelling of the bound: exporters write `1` or `1.0` for a bound
    // of one, and Prometheus 3 normalises `le` to the float form at ingestion.
    let below = format!("sum(rate({name}_bucket{{le=~\"{le}\"}}[{{{{window}}}}]))");
    let total = format!("sum(rate({name}_count[{{{{window}}}}]))");
    let good_default = match comparison {
        Comparison::Lt => below,
        Comparison::Gt => format!("({total} - {below})"),
    };
    (
        m.prometheus.good_events.clone().unwrap_or(good_default),
        m.prometheus.total_events.clone().unwrap_or(total),
    )
}

/// A PromQL regex (inside a double-quoted string) matching the spellings of a bucket bound:
/// `0.35` → `0\\.35`; a whole bound `1` → `1|1\\.0`.
pub fn le_pattern(bound: f64) -> String {
    let text = num(bound);
    let escaped = text.replace('.', "\\\\.");
    if text.contains('.') {
        escaped
    } else {
        format!("{escaped}|{escaped}\\\\.0")
    }
}

/// Fills `{{window}}`, `{{threshold}}`, `{{threshold_seconds}}` (threshold / 1000) and the
/// bucket-bound regexes `{{le}}` and `{{le_seconds}}` (see [`le_pattern`]).
pub fn render(template: &str, window: &str, threshold: f64) -> String {
    template
        .replace("{{window}}", window)
        .replace("{{threshold_seconds}}", &num(threshold / 1000.0))
        .replace("{{threshold}}", &num(threshold))
        .replace("{{le_seconds}}", &le_pattern(threshold / 1000.0))
        .replace("{{le}}", &le_pattern(threshold))
}

pub(crate) fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Minutes of a window written like `5m`, `2h` or `3d`.
pub(crate) fn minutes(window: &str) -> u32 {
    let (n, unit) = window.split_at(window.len() - 1);
    let n: u32 = n.parse().unwrap_or(0);
    match unit {
        "h" => n * 60,
        "d" => n * 1440,
        _ => n,
    }
}

/// The SLI error-ratio recording rules over [`WINDOWS`] and the period (see the module doc for
/// what an error is in each evaluation).
fn sli_recordings(slo: &Slo, sli: &Metric, period: &str) -> Vec<Rule> {
    let s = &slo.slo;
    let name = slo.name.as_str();
    let sel = format!("{{sloproof_slo=\"{name}\"}}");
    let (good, total) = templates(sli, s);
    let rule = |window: &str, expr: String| Rule {
        record: Some(format!("slo:sli_error:ratio_rate{window}")),
        alert: None,
        expr,
        for_duration: None,
        labels: labels(&[("sloproof_slo", name), ("sloproof_window", window)]),
        annotations: BTreeMap::new(),
    };
    let ratio = |w: &str| {
        format!(
            "(({}) / ({}))",
            render(&good, w, s.threshold),
            render(&total, w, s.threshold)
        )
    };
    match (s.evaluation, s.window_good_share(), s.window_minutes) {
        (Evaluation::Windows, Some(share), Some(w)) => {
            // 1 for a bad window, 0 for a good one; longer ranges average the indicator.
            let base = format!("{w}m");
            let q = num(share);
            let mut rules = vec![rule(&base, format!("{} < bool {q}", ratio(&base)))];
            for window in WINDOWS.iter().copied().chain([period]) {
                if window == base {
                    continue;
                }
                let indicator = format!("slo:sli_error:ratio_rate{base}{sel}");
                rules.push(if minutes(window) < w {
                    rule(window, indicator)
                } else {
                    rule(window, format!("avg_over_time({indicator}[{window}])"))
                });
            }
            rules
        }
        _ => {
            let mut rules: Vec<Rule> = WINDOWS
                .iter()
                .map(|w| rule(w, format!("1 - {}", ratio(w))))
                .collect();
            // The period's ratio weighs every 5 minutes by its traffic (bad events / events),
            // as the live status does; an average of 5-minute ratios would weigh a quiet night
            // like a busy day, and one idle 5 minutes (0/0) would make it NaN for the period.
            let rate = |record: &str, expr: String| Rule {
                record: Some(record.to_owned()),
                alert: None,
                expr,
                for_duration: None,
                labels: labels(&[("sloproof_slo", name), ("sloproof_window", "5m")]),
                annotations: BTreeMap::new(),
            };
            rules.push(rate(
                "slo:sli_good:rate5m",
                render(&good, "5m", s.threshold),
            ));
            rules.push(rate(
                "slo:sli_total:rate5m",
                render(&total, "5m", s.threshold),
            ));
            rules.push(rule(
                period,
                format!(
                    "1 - sum_over_time(slo:sli_good:rate5m{sel}[{period}]) / sum_over_time(slo:sli_total:rate5m{sel}[{period}])"
                ),
            ));
            rules
        }
    }
}

/// The multiwindow multi-burn-rate alerts (page and ticket) of an SLO.
fn alert_rules(
    slo: &Slo,
    sli: &Metric,
    (name, sel): (&str, &str),
    period_hours: f64,
    budget: f64,
    calendar: bool,
) -> Vec<Rule> {
    let s = &slo.slo;
    let floor = s.error_floor(budget);
    let condition = |long: &str, short: &str, factor: f64| {
        // With a calendar the headroom above the floor scales with the multiplier in force.
        let threshold = if calendar {
            format!(
                "{} + {} * scalar({MULTIPLIER}{sel})",
                num(floor),
                num(factor * (budget - floor))
            )
        } else {
            num(floor + factor * (budget - floor))
        };
        format!(
            "(max(slo:sli_error:ratio_rate{long}{sel} > ({threshold})) without (sloproof_window) and max(slo:sli_error:ratio_rate{short}{sel} > ({threshold})) without (sloproof_window))"
        )
    };
    let mut alerts = Vec::new();
    for severity in ["page", "ticket"] {
        let parts: Vec<String> = ALERT_WINDOWS
            .iter()
            .filter(|a| a.0 == severity)
            .map(|(_, share, long, hours, short)| {
                condition(long, short, share * period_hours / hours)
            })
            .collect();
        alerts.push(Rule {
            record: None,
            alert: Some(format!(
                "SloproofErrorBudgetBurn{}",
                if severity == "page" { "Page" } else { "Ticket" }
            )),
            expr: parts.join(" or "),
            for_duration: None,
            labels: labels(&[("severity", severity), ("sloproof_severity", severity)]),
            annotations: {
                let mut a = labels(&[
                    (
                        "summary",
                        &format!("{} is burning its error budget too fast", s.statement),
                    ),
                    (
                        "title",
                        &format!("(severity {severity}) {name} error budget burn rate is too high"),
                    ),
                ]);
                if let Some(v) = &slo.validation {
                    let reasons: Vec<&str> = v.reasons.iter().map(|r| r.code.as_str()).collect();
                    let text = match reasons.is_empty() {
                        true => v.outcome.as_str().to_owned(),
                        false => format!("{} ({})", v.outcome, reasons.join(", ")),
                    };
                    a.insert("sloproof_validation".to_owned(), text);
                }
                if slo.evidence.kind == EvidenceBasis::Correlational {
                    // Whoever is paged should know no experiment stands behind the threshold.
                    a.insert("sloproof_evidence".to_owned(), "correlational".to_owned());
                }
                a
            },
        });
    }
    alerts.push(absent_alert(slo, sli, name));
    alerts
}

/// A ticket when the SLI's good or total events are absent for 15 minutes: an SLO whose queries
/// select no series (an exporter down, a renamed histogram, a threshold that is not one of the
/// histogram's bucket bounds) records no bad window and would look perfect.
fn absent_alert(slo: &Slo, sli: &Metric, name: &str) -> Rule {
    let (good, total) = templates(sli, &slo.slo);
    let t = slo.slo.threshold;
    Rule {
        record: None,
        alert: Some("SloproofSliEventsAbsent".to_owned()),
        expr: format!(
            "absent({}) or absent({})",
            render(&total, "5m", t),
            render(&good, "5m", t)
        ),
        for_duration: Some("15m".to_owned()),
        labels: labels(&[
            ("severity", "ticket"),
            ("sloproof_severity", "ticket"),
            ("sloproof_slo", name),
        ]),
        annotations: labels(&[(
            "summary",
            &format!(
                "{}: no good or no total events of the SLI for 15 minutes ({}); its rules record nothing",
                slo.slo.statement,
                if slo.slo.evaluation == Evaluation::Events {
                    "are the good and total counters exported?"
                } else {
                    "is the threshold a bucket bound?"
                }
            ),
        )]),
    }
}

/// The recording rule of the calendar's budget multiplier.
pub const MULTIPLIER: &str = "sloproof:calendar_budget_multiplier";

/// The calendar's budget multiplier as a PromQL expression of `time()`: each multiplier period
/// [start, end) gives its value while `time()` lies in it, and 1 holds outside them (periods of
/// one policy type never overlap).
fn multiplier_expr(c: &Calendar) -> String {
    let mut parts: Vec<String> = c
        .periods
        .iter()
        .filter_map(|p| match p.policy {
            Policy::BudgetMultiplier { multiplier } => Some(format!(
                "(vector({}) and on() (vector(time()) >= {} < {}))",
                num(multiplier),
                p.start.timestamp(),
                p.end.timestamp()
            )),
            _ => None,
        })
        .collect();
    parts.push("vector(1)".to_owned());
    parts.join(" or on() ")
}

/// Builds the rule file of an SLO whose SLI is `sli`; with a calendar, the alerts group starts
/// with the recording rule of its budget multiplier ([`MULTIPLIER`]), which scales every burn
/// factor (rules of one group are evaluated in order, so the alerts read the multiplier of the
/// same evaluation).
pub fn rules(slo: &Slo, sli: &Metric, calendar: Option<&Calendar>) -> RuleFile {
    let s = &slo.slo;
    let name = slo.name.as_str();
    let period = format!("{}d", s.window_days);
    let period_hours = f64::from(s.window_days) * 24.0;
    let budget = 1.0 - s.target;
    let sel = format!("{{sloproof_slo=\"{name}\"}}");
    let recordings = sli_recordings(slo, sli, &period);
    let meta_rule = |record: &str, expr: String| Rule {
        record: Some(record.to_owned()),
        alert: None,
        expr,
        for_duration: None,
        labels: labels(&[("sloproof_slo", name)]),
        annotations: BTreeMap::new(),
    };
    let meta = vec![
        meta_rule("slo:objective:ratio", format!("vector({})", num(s.target))),
        meta_rule("slo:error_budget:ratio", format!("vector({})", num(budget))),
        meta_rule("slo:time_period:days", format!("vector({})", s.window_days)),
        meta_rule(
            "slo:current_burn_rate:ratio",
            format!("slo:sli_error:ratio_rate5m{sel} / on(sloproof_slo) group_left slo:error_budget:ratio{sel}"),
        ),
        meta_rule(
            "slo:period_burn_rate:ratio",
            format!("slo:sli_error:ratio_rate{period}{sel} / on(sloproof_slo) group_left slo:error_budget:ratio{sel}"),
        ),
        meta_rule("slo:period_error_budget_remaining:ratio", format!("1 - slo:period_burn_rate:ratio{sel}")),
    ];
    let mut alerts: Vec<Rule> = calendar
        .map(|c| meta_rule(MULTIPLIER, multiplier_expr(c)))
        .into_iter()
        .collect();
    alerts.extend(alert_rules(
        slo,
        sli,
        (name, &sel),
        period_hours,
        budget,
        calendar.is_some(),
    ));
    RuleFile {
        groups: vec![
            Group {
                name: format!("sloproof-{name}-sli-recordings"),
                rules: recordings,
            },
            Group {
                name: format!("sloproof-{name}-meta-recordings"),
                rules: meta,
            },
            Group {
                name: format!("sloproof-{name}-alerts"),
                rules: alerts,
            },
        ],
    }
}

/// The rule file as YAML.
pub fn rules_yaml(
    slo: &Slo,
    sli: &Metric,
    calendar: Option<&Calendar>,
) -> Result<String, serde_yaml_ng::Error> {
    serde_yaml_ng::to_string(&rules(slo, sli, calendar))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::metric::MetricKind;

    fn metric(key: &str, unit: &str) -> Metric {
        Metric::for_tests(key, unit, MetricKind::Sli)
    }

    /// A millisecond SLI is exported in base-unit seconds, without a doubled unit suffix.
    #[test]
    fn default_histogram_names_follow_prometheus_conventions() {
        assert_eq!(
            histogram_name(&metric("search_latency_ms", "ms")),
            "search_latency_seconds"
        );
        assert_eq!(
            histogram_name(&metric("checkout-latency", "ms")),
            "checkout_latency_seconds"
        );
        assert_eq!(histogram_name(&metric("ttft.p95", "s")), "ttft_p95");
        assert_eq!(
            histogram_name(&metric("9lat.v2_x", "ms")),
            "sli_9lat_v2_x_seconds"
        );
    }

    #[test]
    fn windows_are_read_in_minutes() {
        assert_eq!(minutes("5m"), 5);
        assert_eq!(minutes("2h"), 120);
        assert_eq!(minutes("28d"), 40_320);
    }

    #[test]
    fn bucket_bounds_match_every_spelling() {
        assert_eq!(le_pattern(0.35), r"0\\.35");
        assert_eq!(le_pattern(1.0), r"1|1\\.0");
        assert_eq!(le_pattern(2500.0), r"2500|2500\\.0");
    }
}
