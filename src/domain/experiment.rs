//! Experiments: a hypothesis, the SLI under test, the KPIs it should move, and the arms.

use super::metric::Metric;
use super::{required_text, text_enum, Slug};
use crate::error::{AppError, Issue};

text_enum! {
    /// Whether an observation was measured before the experiment started (`pre`, a covariate for
    /// CUPED) or during it (`post`, the outcome).
    Period { Pre => "pre", Post => "post" }
}

text_enum! {
    /// A metric's role in an experiment: the SLI under test, a KPI it should move, or a guardrail.
    MetricRole { Sli => "sli", Kpi => "kpi", Guardrail => "guardrail" }
}

/// Counts of the data stored for an experiment.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub struct ExperimentData {
    /// Units with an assignment.
    pub assigned_units: i64,
    /// Stored observations (all metrics and periods).
    pub observations: i64,
}

/// A stored variant (arm).
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    pub id: i64,
    pub key: String,
    pub weight: f64,
    pub control: bool,
    /// Planned change of the SLI in this arm, in the SLI's unit.
    pub dose: f64,
}

/// A stored experiment, with its metrics resolved from the catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct Experiment {
    pub id: i64,
    pub key: String,
    pub name: String,
    pub hypothesis: String,
    pub journey: Option<String>,
    pub sli: Metric,
    pub kpis: Vec<Metric>,
    pub guardrails: Vec<Metric>,
    pub variants: Vec<Variant>,
    pub created_at: chrono::NaiveDateTime,
    /// The numerators and denominators of ratio KPIs and guardrails that the experiment does not
    /// list itself: their observations are uploaded, and the ratio is analysed from them.
    pub components: Vec<Metric>,
}

impl Experiment {
    /// Every metric of the experiment: SLI, KPIs, guardrails, then the parts of its ratios.
    pub fn metrics(&self) -> impl Iterator<Item = &Metric> {
        std::iter::once(&self.sli)
            .chain(&self.kpis)
            .chain(&self.guardrails)
            .chain(&self.components)
    }

    /// The experiment's metric with this key (SLI, KPI or guardrail).
    pub fn metric(&self, key: &str) -> Option<&Metric> {
        self.metrics().find(|m| m.key == key)
    }
}

/// Tolerance on the sum of variant weights.
pub const WEIGHT_SUM_TOLERANCE: f64 = 1e-9;

/// Most variants (arms) of an experiment. An analysis costs about the cube of the arm count in
/// time and its square in memory; 20 arms is far beyond any dose–response design.
pub const MAX_VARIANTS: usize = 20;
/// Most KPIs, and most guardrails, of an experiment (each adds a section per arm).
pub const MAX_METRICS_PER_ROLE: usize = 20;

/// An issue when a list is longer than `max` (checked before any per-item work).
fn too_many(field: &str, len: usize, max: usize) -> Option<Issue> {
    (len > max).then(|| Issue::field(field, format!("at most {max} are allowed; got {len}")))
}

/// Unvalidated variant input.
pub struct VariantInput {
    pub key: String,
    pub weight: f64,
    pub control: bool,
    pub dose: f64,
}

/// Unvalidated experiment input.
pub struct ExperimentInput {
    pub key: String,
    pub name: String,
    pub hypothesis: String,
    pub journey: Option<String>,
    pub sli: String,
    pub kpis: Vec<String>,
    pub guardrails: Vec<String>,
    pub variants: Vec<VariantInput>,
}

/// A validated variant (arm).
#[derive(Debug, Clone, PartialEq)]
pub struct NewVariant {
    pub key: Slug,
    pub weight: f64,
    pub control: bool,
    pub dose: f64,
}

/// A validated experiment. Metric keys are well-formed and distinct; whether they exist and have
/// the right kind is checked against the catalog when it is stored.
#[derive(Debug, Clone)]
pub struct NewExperiment {
    pub key: Slug,
    pub name: String,
    pub hypothesis: String,
    pub journey: Option<String>,
    pub sli: Slug,
    pub kpis: Vec<Slug>,
    pub guardrails: Vec<Slug>,
    pub variants: Vec<NewVariant>,
}

impl NewExperiment {
    pub fn parse(input: ExperimentInput) -> Result<NewExperiment, AppError> {
        let mut issues = Vec::new();
        let key = Slug::parse("key", &input.key)
            .map_err(|i| issues.push(i))
            .ok();
        let name = required_text("name", &input.name, 200, &mut issues);
        let hypothesis = required_text("hypothesis", &input.hypothesis, 2000, &mut issues);
        let journey = input
            .journey
            .map(|j| j.trim().to_owned())
            .filter(|j| !j.is_empty());
        let sli = Slug::parse("sli", &input.sli)
            .map_err(|i| issues.push(i))
            .ok();

        let mut seen: Vec<Slug> = sli.iter().cloned().collect();
        let mut metric_list = |field: &str, raw: &[String], issues: &mut Vec<Issue>| -> Vec<Slug> {
            let mut out = Vec::new();
            for (i, k) in raw.iter().enumerate() {
                let f = format!("{field}[{i}]");
                match Slug::parse(&f, k) {
                    Ok(s) if seen.contains(&s) => issues.push(Issue::field(
                        f,
                        format!(
                            "metric '{s}' appears more than once among sli, kpis and guardrails"
                        ),
                    )),
                    Ok(s) => {
                        seen.push(s.clone());
                        out.push(s)
                    }
                    Err(e) => issues.push(e),
                }
            }
            out
        };
        // Caps first: the per-item checks below compare items pairwise.
        let oversize: Vec<Issue> = [
            too_many("kpis", input.kpis.len(), MAX_METRICS_PER_ROLE),
            too_many("guardrails", input.guardrails.len(), MAX_METRICS_PER_ROLE),
            too_many("variants", input.variants.len(), MAX_VARIANTS),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !oversize.is_empty() {
            return Err(AppError::invalid("the experiment is too large", oversize));
        }
        let kpis = metric_list("kpis", &input.kpis, &mut issues);
        let guardrails = metric_list("guardrails", &input.guardrails, &mut issues);
        if input.kpis.is_empty() {
            issues.push(Issue::field(
                "kpis",
                "at least one KPI is required; the first is the primary KPI",
            ));
        }

        let variants = parse_variants(&input.variants, &mut issues);
        match (key, sli) {
            (Some(key), Some(sli)) if issues.is_empty() => Ok(NewExperiment {
                key,
                name,
                hypothesis,
                journey,
                sli,
                kpis,
                guardrails,
                variants,
            }),
            _ => Err(AppError::invalid("the experiment is not valid", issues)),
        }
    }

    /// All metric keys of the experiment: the SLI, then the KPIs, then the guardrails.
    pub fn metric_keys(&self) -> impl Iterator<Item = &Slug> {
        std::iter::once(&self.sli)
            .chain(&self.kpis)
            .chain(&self.guardrails)
    }
}

fn parse_variants(raw: &[VariantInput], issues: &mut Vec<Issue>) -> Vec<NewVariant> {
    if raw.len() < 2 {
        issues.push(Issue::field(
            "variants",
            "an experiment needs at least two variants (one control)",
        ));
    }
    let mut out: Vec<NewVariant> = Vec::new();
    for (i, v) in raw.iter().enumerate() {
        let f = |name: &str| format!("variants[{i}].{name}");
        let key = match Slug::parse(&f("key"), &v.key) {
            Ok(k) if out.iter().any(|o| o.key == k) => {
                issues.push(Issue::field(
                    f("key"),
                    format!("variant key '{k}' is used twice"),
                ));
                None
            }
            Ok(k) => Some(k),
            Err(e) => {
                issues.push(e);
                None
            }
        };
        if !(v.weight.is_finite() && v.weight > 0.0) {
            issues.push(Issue::field(f("weight"), "must be a positive number"));
        }
        if !v.dose.is_finite() {
            issues.push(Issue::field(f("dose"), "must be a finite number"));
        }
        if v.control && v.dose != 0.0 {
            issues.push(Issue::field(f("dose"), "the control arm's dose must be 0"));
        }
        if let Some(key) = key {
            out.push(NewVariant {
                key,
                weight: v.weight,
                control: v.control,
                dose: v.dose,
            });
        }
    }
    let controls = raw.iter().filter(|v| v.control).count();
    if controls != 1 {
        issues.push(Issue::field(
            "variants",
            format!("exactly one variant must be the control; found {controls}"),
        ));
    }
    let sum: f64 = raw.iter().map(|v| v.weight).sum();
    if raw.iter().all(|v| v.weight.is_finite()) && (sum - 1.0).abs() > WEIGHT_SUM_TOLERANCE {
        issues.push(Issue::field(
            "variants",
            format!("weights must sum to 1 (±1e-9); they sum to {sum}"),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(variants: Vec<VariantInput>) -> ExperimentInput {
        ExperimentInput {
            key: "exp-1".into(),
            name: "Latency injection".into(),
            hypothesis: "Slower checkout lowers conversion".into(),
            journey: None,
            sli: "latency".into(),
            kpis: vec!["conversion".into()],
            guardrails: vec![],
            variants,
        }
    }

    fn v(key: &str, weight: f64, control: bool, dose: f64) -> VariantInput {
        VariantInput {
            key: key.into(),
            weight,
            control,
            dose,
        }
    }

    #[test]
    fn weights_within_tolerance_are_accepted() {
        let e = NewExperiment::parse(input(vec![
            v("a", 0.1, true, 0.0),
            v("b", 0.2, false, 100.0),
            v("c", 0.7, false, 200.0),
        ]));
        assert_eq!(e.unwrap().variants.len(), 3);
    }

    #[test]
    fn oversized_lists_are_refused_naming_the_field() {
        let many: Vec<VariantInput> = (0..=MAX_VARIANTS)
            .map(|i| VariantInput {
                key: format!("v{i}"),
                weight: 1.0 / (MAX_VARIANTS + 1) as f64,
                control: i == 0,
                dose: if i == 0 { 0.0 } else { 1.0 },
            })
            .collect();
        let Err(AppError::Invalid { issues, .. }) = NewExperiment::parse(input(many)) else {
            panic!("21 variants must be refused");
        };
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].field.as_deref(), Some("variants"));
        let mut kpis = input(vec![v("a", 0.5, true, 0.0), v("b", 0.5, false, 1.0)]);
        kpis.kpis = (0..=MAX_METRICS_PER_ROLE)
            .map(|i| format!("k{i}"))
            .collect();
        let Err(AppError::Invalid { issues, .. }) = NewExperiment::parse(kpis) else {
            panic!("21 KPIs must be refused");
        };
        assert_eq!(issues[0].field.as_deref(), Some("kpis"));
    }

    #[test]
    fn two_controls_and_bad_sum_are_both_reported() {
        let Err(AppError::Invalid { issues, .. }) =
            NewExperiment::parse(input(vec![v("a", 0.5, true, 0.0), v("b", 0.6, true, 0.0)]))
        else {
            panic!("expected invalid")
        };
        let messages: Vec<_> = issues.iter().map(|i| i.message.as_str()).collect();
        assert!(
            messages.iter().any(|m| m.contains("exactly one variant")),
            "{messages:?}"
        );
        assert!(
            messages.iter().any(|m| m.contains("sum to 1")),
            "{messages:?}"
        );
    }
}
