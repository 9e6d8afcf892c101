//! Metric catalog entries: SLIs and KPIs and the hierarchy they form.

use super::{required_text, text_enum, Slug};
use crate::error::{AppError, Issue};

text_enum! {
    /// Whether a metric is a service level indicator or a business key performance indicator.
    MetricKind { Sli => "sli", Kpi => "kpi" }
}

text_enum! {
    /// The type of a unit-level value: a real number, 0/1, a non-negative whole count, a whole
    /// score on an ordinal scale (`scale`), or a ratio of two other metrics per unit (`ratio`,
    /// e.g. clicks / impressions), which takes no values of its own.
    ValueType { Continuous => "continuous", Binary => "binary", Count => "count", Ordinal => "ordinal", Ratio => "ratio" }
}

/// A ratio metric's parts: per unit, the numerator's and the denominator's values (both metrics
/// of the catalog). Its per-arm value is Σ numerator / Σ denominator, analysed by the delta
/// method (see `stats::ratio`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RatioOf {
    /// Key of the numerator metric (e.g. clicks).
    #[schema(example = "clicks")]
    pub numerator: String,
    /// Key of the denominator metric (e.g. impressions).
    #[schema(example = "impressions")]
    pub denominator: String,
}

/// An ordinal metric's scale: whole scores from `min` to `max` (at most 100 apart). Its
/// top-`top_box`-box share is the share of units scoring `max − top_box + 1` or more (top-2-box
/// of a 1–5 CSAT: 4 or 5).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(deny_unknown_fields)]
pub struct OrdinalScale {
    #[schema(example = 1, minimum = -1000, maximum = 1000)]
    pub min: i32,
    #[schema(example = 5, minimum = -1000, maximum = 1000)]
    pub max: i32,
    /// How many top scores count as "top box" (default 2), 1 to max − min.
    #[serde(default = "default_top_box")]
    #[schema(example = 2, minimum = 1)]
    pub top_box: i32,
}

fn default_top_box() -> i32 {
    2
}

/// Widest ordinal scale (max − min).
pub const MAX_SCALE_SPAN: i32 = 100;

impl OrdinalScale {
    /// The lowest score in the top box.
    pub fn top_from(&self) -> i32 {
        self.max - self.top_box + 1
    }

    fn problems(&self) -> Vec<Issue> {
        let mut out = Vec::new();
        if self.min.abs() > 1000 || self.max.abs() > 1000 {
            out.push(Issue::field("scale", "min and max must be within ±1000"));
        }
        let span = self.max.saturating_sub(self.min);
        if !(1..=MAX_SCALE_SPAN).contains(&span) {
            out.push(Issue::field(
                "scale.max",
                format!("must be 1 to {MAX_SCALE_SPAN} above scale.min"),
            ));
        } else if !(1..=span).contains(&self.top_box) {
            out.push(Issue::field(
                "scale.top_box",
                format!("must be 1 to {span} (max − min)"),
            ));
        }
        out
    }
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
            ValueType::Ordinal if value.fract() == 0.0 => Ok(()),
            ValueType::Ordinal => Err(format!(
                "value {value} is not a whole score (ordinal metric)"
            )),
            ValueType::Ratio => Err(
                "a ratio metric takes no values of its own; upload its numerator and denominator"
                    .into(),
            ),
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
    /// The parts of a ratio metric (value type `ratio`).
    pub ratio: Option<RatioOf>,
    /// The scale of an ordinal metric (value type `ordinal`).
    pub scale: Option<OrdinalScale>,
}

#[cfg(test)]
impl Metric {
    /// A lower-is-better continuous metric of `kind` with this key and unit, for unit tests.
    pub(crate) fn for_tests(key: &str, unit: &str, kind: MetricKind) -> Metric {
        Metric {
            id: 1,
            key: key.into(),
            name: key.into(),
            description: None,
            kind,
            value_type: ValueType::Continuous,
            unit: unit.into(),
            direction: Direction::LowerIsBetter,
            layer: Layer::Journey,
            parents: vec![],
            created_at: chrono::NaiveDateTime::default(),
            prometheus: PrometheusQueries::default(),
            ratio: None,
            scale: None,
        }
    }
}

impl Metric {
    /// Checks one unit-level value against the value type and, for ordinal metrics, the scale.
    pub fn check(&self, value: f64) -> Result<(), String> {
        self.value_type.check(value)?;
        match self.scale {
            Some(s) if value < f64::from(s.min) || value > f64::from(s.max) => Err(format!(
                "value {value} is outside the scale {} to {}",
                s.min, s.max
            )),
            _ => Ok(()),
        }
    }
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
    pub ratio: Option<RatioOf>,
    pub scale: Option<OrdinalScale>,
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
    pub ratio: Option<RatioOf>,
    pub scale: Option<OrdinalScale>,
}

/// Issues with a ratio metric's parts (their existence is checked when it is stored).
fn check_ratio(
    key: Option<&Slug>,
    kind: MetricKind,
    ratio: Option<&RatioOf>,
    issues: &mut Vec<Issue>,
) -> Option<RatioOf> {
    let Some(r) = ratio else {
        issues.push(Issue::field(
            "ratio",
            "a ratio metric names its numerator and denominator metrics",
        ));
        return None;
    };
    if kind != MetricKind::Kpi {
        issues.push(Issue::field(
            "value_type",
            "only a KPI can be a ratio (an SLI is one value per unit)",
        ));
    }
    let mut part = |field: &str, k: &str| match Slug::parse(field, k) {
        Ok(s) if Some(&s) == key => {
            issues.push(Issue::field(field, "a ratio cannot name itself"));
            None
        }
        Ok(s) => Some(s),
        Err(e) => {
            issues.push(e);
            None
        }
    };
    let num = part("ratio.numerator", &r.numerator);
    let den = part("ratio.denominator", &r.denominator);
    let (num, den) = (num?, den?);
    if num == den {
        issues.push(Issue::field(
            "ratio.denominator",
            "must differ from the numerator",
        ));
    }
    Some(RatioOf {
        numerator: num.to_string(),
        denominator: den.to_string(),
    })
}

/// Issues with the shape fields: `ratio` only with value type `ratio`, `scale` only (and
/// always) with `ordinal`.
fn check_shape(
    input: &MetricInput,
    key: Option<&Slug>,
    issues: &mut Vec<Issue>,
) -> Option<RatioOf> {
    let ratio = match input.value_type {
        ValueType::Ratio => check_ratio(key, input.kind, input.ratio.as_ref(), issues),
        _ if input.ratio.is_some() => {
            issues.push(Issue::field(
                "ratio",
                "only a metric of value type 'ratio' has parts",
            ));
            None
        }
        _ => None,
    };
    match (input.value_type, input.scale) {
        (ValueType::Ordinal, Some(s)) => issues.extend(s.problems()),
        (ValueType::Ordinal, None) => issues.push(Issue::field(
            "scale",
            "an ordinal metric needs its scale (min, max)",
        )),
        (_, Some(_)) => issues.push(Issue::field(
            "scale",
            "only a metric of value type 'ordinal' has a scale",
        )),
        _ => {}
    }
    if input.value_type == ValueType::Ordinal && input.kind == MetricKind::Sli {
        issues.push(Issue::field("value_type", "an SLI cannot be ordinal"));
    }
    ratio
}

impl NewMetric {
    pub fn parse(input: MetricInput) -> Result<NewMetric, AppError> {
        let mut issues = Vec::new();
        let key = Slug::parse("key", &input.key)
            .map_err(|i| issues.push(i))
            .ok();
        let name = required_text("name", &input.name, 200, &mut issues);
        let ratio = check_shape(&input, key.as_ref(), &mut issues);
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
                ratio,
                scale: input.scale,
            }),
            _ => Err(AppError::invalid("the metric is not valid", issues)),
        }
    }
}
