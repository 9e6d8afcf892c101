//! OpenSLO v1 export of a published SLO.
//!
//! A "p95 < T in 99% of 5-minute windows" SLO is the `Timeslices` form of a good/total ratio:
//! an event is good when the SLI is on the good side of T (the threshold sits in the good-events
//! query), a window is good when at least 95% of its events are good (`timeSliceTarget` 0.95),
//! and 99% of windows must be good (`target`). A requests SLO uses `Occurrences`: 99% of events
//! good. A ratio metric carries no `op`/`value` (those belong to threshold metrics). Evidence
//! travels in `metadata.annotations` under the `sloproof.dev/` prefix.

use serde_json::{json, Map, Value};

use super::model::{Evaluation, EvidenceBasis, RecommendationEvidence, Slo};
use super::prometheus::{render, templates};
use crate::domain::metric::Metric;

/// A key as an OpenSLO name (`^[a-z0-9][a-z0-9.|/\\-]*[a-z0-9]*$`): `_` becomes `-`.
pub fn dns_name(key: &str) -> String {
    key.replace('_', "-").to_ascii_lowercase()
}

/// What the SLO rests on: its kind (causal or correlational) and the ids that reproduce it.
fn evidence_annotations(e: &RecommendationEvidence) -> Vec<(&'static str, String)> {
    let mut out = vec![("evidence", e.kind.as_str().to_owned())];
    out.extend(e.analysis_id.map(|a| ("analysis-id", a.to_string())));
    out.extend(
        e.observational_analysis_id
            .map(|o| ("observational-analysis-id", o.to_string())),
    );
    out.extend(e.experiment.clone().map(|x| ("experiment", x)));
    out.extend(e.seed.map(|s| ("seed", s.to_string())));
    out.extend(e.fingerprint.clone().map(|f| ("fingerprint", f)));
    out
}

/// The OpenSLO document as a JSON value (serialised to YAML by [`openslo_yaml`]).
pub fn document(slo: &Slo, sli: &Metric) -> Value {
    let s = &slo.slo;
    let (good, total) = templates(sli, s);
    let window = s
        .window_minutes
        .map(|w| format!("{w}m"))
        .unwrap_or_else(|| "5m".to_owned());
    let source = |template: &str| json!({"metricSource": {"type": "Prometheus", "spec": {"query": render(template, &window, s.threshold)}}});
    let e = &slo.evidence;
    let mut annotations = Map::new();
    let mut note = |k: &str, v: String| {
        annotations.insert(format!("sloproof.dev/{k}"), Value::String(v));
    };
    note("slo-id", slo.id.to_string());
    note("recommendation-id", slo.recommendation_id.to_string());
    for (k, v) in evidence_annotations(e) {
        note(k, v);
    }
    note("kpi", s.kpi.clone());
    note(
        "verdict",
        if e.validated {
            "validated".into()
        } else if e.kind == EvidenceBasis::Correlational {
            "correlational".into()
        } else {
            "not-validated".into()
        },
    );
    if let Some(v) = &slo.validation {
        let reasons: Vec<&str> = v.reasons.iter().map(|r| r.code.as_str()).collect();
        note("validation", v.outcome.as_str().to_owned());
        note("validation-reasons", reasons.join(","));
        note("revalidated-at", v.at.to_rfc3339());
    }
    note("slope", format!("{:e}", e.slope.estimate));
    note(
        "slope-ci",
        format!("[{:e}, {:e}]", e.slope.ci_low, e.slope.ci_high),
    );
    note(
        "relative-kpi-change-per-100",
        format!("{:.6}", e.relative_per_100.estimate),
    );
    let op = s.comparison.symbol();
    match (s.evaluation, s.baseline_share) {
        // An events SLO has no per-event threshold: its target is a share of good events.
        (Evaluation::Events, Some(b)) => {
            note("target-share", format!(">= {}", s.target));
            note("baseline-share", format!("{b:.6}"));
        }
        _ => note(
            "threshold",
            format!("{op} {} {}", s.threshold, s.unit)
                .trim_end()
                .to_owned(),
        ),
    }
    note("threshold-source", slo.threshold_source.to_string());
    note("statement", s.statement.clone());
    let mut objective = json!({
        "displayName": s.statement,
        "target": s.target,
    });
    let budgeting = match s.evaluation {
        Evaluation::Windows => {
            objective["timeSliceTarget"] = json!(s.window_good_share().unwrap_or(0.95));
            objective["timeSliceWindow"] = json!(window);
            "Timeslices"
        }
        Evaluation::Requests | Evaluation::Events => "Occurrences",
    };
    json!({
        "apiVersion": "openslo/v1",
        "kind": "SLO",
        "metadata": {
            "name": slo.name,
            "displayName": format!("{} ({})", s.sli_name, s.kpi),
            "annotations": annotations,
        },
        "spec": {
            "description": s.statement,
            "service": dns_name(&s.sli),
            "indicator": {
                "metadata": {"name": dns_name(&s.sli), "displayName": s.sli_name},
                "spec": {"ratioMetric": {"counter": false, "good": source(&good), "total": source(&total)}}
            },
            "timeWindow": [{"duration": format!("{}d", s.window_days), "isRolling": true}],
            "budgetingMethod": budgeting,
            "objectives": [objective],
        }
    })
}

/// The OpenSLO document as YAML.
pub fn openslo_yaml(slo: &Slo, sli: &Metric) -> Result<String, serde_yaml_ng::Error> {
    serde_yaml_ng::to_string(&document(slo, sli))
}
