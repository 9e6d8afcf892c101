//! Metric catalog entries: SLIs and KPIs and the hierarchy they form.

use super::{required_text, text_enum, Slug};
use crate::error::{AppError, Issue};

text_enum! {
    /// Whether a metric is a service level indicator or a business key performance indicator.
    MetricKind { Sli => "sli", Kpi => "kpi" }
}

text_enum! {
    /// The type of a unit-level value: a real number, 0/1, or a non-negative whole count.
    ValueType { Continuous => "continuous", Binary => "binary", Count => "count" }
}

text_enum! {
    /// Which direction of change is an improvement.
    Direction { LowerIsBetter => "lower_is_better", HigherIsBetter => "higher_is_better" }
}

text_enum! {
    /// Level of the metric hierarchy: business KPI → journey SLI → platform SLI → infrastructure.
    Layer { Business => "business", Journey => "journey", Platform => "platform", Infrastructure => "infrastructure" }
}

impl Direction {
    /// +1 when a larger value is worse (lower is better), −1 when a smaller value is worse.
    pub fn worse_sign(self) -> f64 {
        match self {
            Direction::LowerIsBetter => 1.0,
            Direction::HigherIsBetter => -1.0,
        }
    }

    /// Expected sign of the slope of a KPI (direction `kpi`) on an SLI (direction `self`) if a
    /// worse SLI worsens the KPI: worse is "up" for lower-is-better metrics and "down" for
    /// higher-is-better ones.
    pub fn harmful_slope_sign(self, kpi: Direction) -> f64 {
        self.worse_sign() * kpi.worse_sign()
    }
}

impl ValueType {
    /// Checks one unit-level value against the type; `Err` says why it is not acceptable.
    pub fn check(self, value: f64) -> Result<(), String> {
        if !value.is_finite() {
            return Err(format!("value {value} is not a finite number"));
        }
        // Sums of squares of a million such values stay far inside f64's range.
        if value.abs() > MAX_ABS_VALUE {
            return Err(format!(
                "value {value} is larger in magnitude than {MAX_ABS_VALUE:e}"
            ));
        }
        match self {
            ValueType::Continuous => Ok(()),
            ValueType::Binary if value == 0.0 || value == 1.0 => Ok(()),
            ValueType::Binary => Err(format!("value {value} is not 0 or 1 (binary metric)")),
            ValueType::Count if value >= 0.0 && value.fract() == 0.0 => Ok(()),
            ValueType::Count => Err(format!(
                "value {value} is not a non-negative whole number (count metric)"
            )),
        }
    }
}

/// Largest magnitude of an observed value. Larger finite values (1e300) made variances and
/// intervals overflow to infinity; no latency, rate or amount of money comes near it.
pub const MAX_ABS_VALUE: f64 = 1e15;

/// A catalog metric as stored, with the keys of its parents in the order they were given.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub id: i64,
    pub key: String,
    pub name: String,
    pub description: Option<String>,
    pub kind: MetricKind,
    pub value_type: ValueType,
    pub unit: String,
    pub direction: Direction,
    pub layer: Layer,
    pub parents: Vec<String>,
    pub created_at: chrono::NaiveDateTime,
    /// PromQL templates of good and total events (see `slo::prometheus`).
    pub prometheus: PrometheusQueries,
}

/// Unvalidated input for a new metric, as a request carries it.
pub struct MetricInput {
    pub key: String,
    pub name: String,
    pub description: Option<String>,
    pub kind: MetricKind,
    pub value_type: ValueType,
    pub unit: String,
    pub direction: Direction,
    pub layer: Layer,
    pub parents: Vec<String>,
    pub prometheus: PrometheusQueries,
}

/// PromQL templates counting an SLI's good and total events over `{{window}}`, with
/// `{{threshold}}` (the SLO threshold in the metric's unit) and `{{threshold_seconds}}`
/// (threshold / 1000, for millisecond SLIs recorded in second-based histogram buckets).
/// Unset templates default to a Prometheus histogram named after the key (see `slo::prometheus`).
#[derive(
    Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(deny_unknown_fields)]
pub struct PrometheusQueries {
    #[schema(
        example = "sum(rate(checkout_latency_seconds_bucket{le=\"{{threshold_seconds}}\"}[{{window}}]))"
    )]
    pub good_events: Option<String>,
    #[schema(example = "sum(rate(checkout_latency_seconds_count[{{window}}]))")]
    pub total_events: Option<String>,
    /// Upper bounds of the SLI's histogram buckets, in the metric's unit (e.g. ms), strictly
    /// increasing, without `+Inf`; at most 200. An SLO threshold snaps to one of them (towards
    /// the strict side), since a query on a bound the histogram lacks selects nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_items = 200, example = json!([100, 250, 300, 400, 500, 750, 1000]))]
    pub buckets: Option<Vec<f64>>,
    /// Where the SLI's production series can be pulled from (`POST .../series/sync`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<super::series::PrometheusSource>,
}

/// Most bucket bounds a histogram may declare.
pub const MAX_BUCKETS: usize = 200;

impl PrometheusQueries {
    /// The bucket bound nearest to `threshold` on its strict side: the largest bound ≤ it when
    /// good is "below" (`below`), else the smallest bound ≥ it. `None` without declared buckets
    /// or when no bound lies on that side.
    pub fn snap(&self, threshold: f64, below: bool) -> Option<f64> {
        let b = self.buckets.as_ref()?;
        if below {
            b.iter().copied().rev().find(|v| *v <= threshold)
        } else {
            b.iter().copied().find(|v| *v >= threshold)
        }
    }
}

/// Issues with declared bucket bounds.
fn check_buckets(buckets: &[f64], issues: &mut Vec<Issue>) {
    let field = "prometheus.buckets";
    if buckets.is_empty() || buckets.len() > MAX_BUCKETS {
        issues.push(Issue::field(
            field,
            format!("must list 1 to {MAX_BUCKETS} bucket bounds"),
        ));
    }
    if let Some(i) = buckets.iter().position(|b| !b.is_finite()) {
        issues.push(Issue::field(
            format!("{field}[{i}]"),
            "must be a finite number (+Inf is implied)",
        ));
    } else if let Some(i) = buckets.windows(2).position(|w| w[0] >= w[1]) {
        issues.push(Issue::field(
            format!("{field}[{}]", i + 1),
            "bounds must be strictly increasing",
        ));
    }
}

/// Most parents a metric may name (checked before any per-parent work).
pub const MAX_PARENTS: usize = 50;

/// A validated new metric. Parents are keys that must already exist in the catalog; because
/// metrics are immutable and can only name existing metrics as parents, the hierarchy is acyclic.
#[derive(Debug, Clone)]
pub struct NewMetric {
    pub key: Slug,
    pub name: String,
    pub description: Option<String>,
    pub kind: MetricKind,
    pub value_type: ValueType,
    pub unit: String,
    pub direction: Direction,
    pub layer: Layer,
    pub parents: Vec<Slug>,
    pub prometheus: PrometheusQueries,
}

impl NewMetric {
    pub fn parse(input: MetricInput) -> Result<NewMetric, AppError> {
        let mut issues = Vec::new();
        let key = Slug::parse("key", &input.key)
            .map_err(|i| issues.push(i))
            .ok();
        let name = required_text("name", &input.name, 200, &mut issues);
        let unit = input.unit.trim().to_owned();
        if unit.chars().count() > 50 {
            issues.push(Issue::field("unit", "must be at most 50 characters"));
        }
        let description = input
            .description
            .map(|d| d.trim().to_owned())
            .filter(|d| !d.is_empty());
        if input.parents.len() > MAX_PARENTS {
            return Err(AppError::invalid(
                "the metric is not valid",
                vec![Issue::field(
                    "parents",
                    format!(
                        "at most {MAX_PARENTS} are allowed; got {}",
                        input.parents.len()
                    ),
                )],
            ));
        }
        let mut parents: Vec<Slug> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, p) in input.parents.iter().enumerate() {
            let field = format!("parents[{i}]");
            match Slug::parse(&field, p) {
                Ok(s) if Some(&s) == key.as_ref() => {
                    issues.push(Issue::field(field, "a metric cannot be its own parent"))
                }
                Ok(s) if !seen.insert(s.clone()) => {
                    issues.push(Issue::field(field, format!("'{s}' is listed twice")))
                }
                Ok(s) => parents.push(s),
                Err(e) => issues.push(e),
            }
        }
        let clean = |t: Option<String>| t.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
        let prometheus = PrometheusQueries {
            good_events: clean(input.prometheus.good_events),
            total_events: clean(input.prometheus.total_events),
            buckets: input.prometheus.buckets,
            source: input.prometheus.source,
        };
        if let Some(src) = &prometheus.source {
            for (field, message) in src.problems("prometheus.source") {
                issues.push(Issue::field(field, message));
            }
            if input.kind != MetricKind::Sli {
                issues.push(Issue::field(
                    "prometheus.source",
                    "only an SLI has a production series to pull",
                ));
            }
        }
        if let Some(b) = &prometheus.buckets {
            check_buckets(b, &mut issues);
        }
        for (field, t) in [
            ("prometheus.good_events", &prometheus.good_events),
            ("prometheus.total_events", &prometheus.total_events),
        ] {
            if t.as_ref()
                .is_some_and(|t| !t.contains("{{window}}") || t.len() > 4000)
            {
                issues.push(Issue::field(
                    field,
                    "must be a PromQL template of at most 4000 characters containing {{window}}",
                ));
            }
        }
        match key {
            Some(key) if issues.is_empty() => Ok(NewMetric {
                key,
                name,
                description,
                kind: input.kind,
                value_type: input.value_type,
                unit,
                direction: input.direction,
                layer: input.layer,
                parents,
                prometheus,
            }),
            _ => Err(AppError::invalid("the metric is not valid", issues)),
        }
    }
}
