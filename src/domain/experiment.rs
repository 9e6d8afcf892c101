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
    /// Planned change of the (first) SLI in this arm, in the SLI's unit.
    pub dose: f64,
    /// Planned change of each of the experiment's `extra_slis`, in order.
    pub extra_doses: Vec<f64>,
}

impl Variant {
    /// The planned change of SLI `j` (0 = the experiment's first SLI).
    pub fn dose_of(&self, j: usize) -> f64 {
        if j == 0 {
            self.dose
        } else {
            self.extra_doses.get(j - 1).copied().unwrap_or(0.0)
        }
    }
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
    /// The other SLIs the arms change on purpose (a factorial design); empty for the usual
    /// one-SLI experiment.
    pub extra_slis: Vec<Metric>,
    pub kpis: Vec<Metric>,
    pub guardrails: Vec<Metric>,
    pub variants: Vec<Variant>,
    pub created_at: chrono::NaiveDateTime,
    /// The numerators and denominators of ratio KPIs and guardrails that the experiment does not
    /// list itself: their observations are uploaded, and the ratio is analysed from them.
    pub components: Vec<Metric>,
}

impl Experiment {
    /// Every metric of the experiment: SLIs, KPIs, guardrails, then the parts of its ratios.
    pub fn metrics(&self) -> impl Iterator<Item = &Metric> {
        self.slis()
            .chain(&self.kpis)
            .chain(&self.guardrails)
            .chain(&self.components)
    }

    /// The SLIs under test: the first, then the extra ones.
    pub fn slis(&self) -> impl Iterator<Item = &Metric> {
        std::iter::once(&self.sli).chain(&self.extra_slis)
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

/// Most SLIs of one experiment (the first and up to two extra): each needs its own dimension of
/// dose across the arms, and the joint bootstrap carries every SLI and a KPI per arm.
pub const MAX_SLIS: usize = 3;

/// Largest magnitude of a planned dose (as of an observed value).
pub const MAX_DOSE: f64 = 1e15;

/// An issue when a list is longer than `max` (checked before any per-item work).
fn too_many(field: &str, len: usize, max: usize) -> Option<Issue> {
    (len > max).then(|| Issue::field(field, format!("at most {max} are allowed; got {len}")))
}

/// Unvalidated variant input.
pub struct VariantInput {
    pub key: String,
    pub weight: f64,
    pub control: bool,
    pub dose: Option<f64>,
    pub doses: Option<std::collections::BTreeMap<String, f64>>,
}

/// Unvalidated experiment input.
pub struct ExperimentInput {
    pub key: String,
    pub name: String,
    pub hypothesis: String,
    pub journey: Option<String>,
    pub sli: String,
    pub extra_slis: Vec<String>,
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
    /// Doses of the experiment's `extra_slis`, in order.
    pub extra_doses: Vec<f64>,
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
    pub extra_slis: Vec<Slug>,
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
                            "metric '{s}' appears more than once among sli, extra_slis, kpis and guardrails"
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
            too_many("extra_slis", input.extra_slis.len(), MAX_SLIS - 1),
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
        let extra_slis = metric_list("extra_slis", &input.extra_slis, &mut issues);
        let kpis = metric_list("kpis", &input.kpis, &mut issues);
        let guardrails = metric_list("guardrails", &input.guardrails, &mut issues);
        if input.kpis.is_empty() {
            issues.push(Issue::field(
                "kpis",
                "at least one KPI is required; the first is the primary KPI",
            ));
        }

        let sli_keys: Vec<&str> = std::iter::once(input.sli.as_str())
            .chain(input.extra_slis.iter().map(String::as_str))
            .collect();
        let variants = parse_variants(&input.variants, &sli_keys, &mut issues);
        if issues.is_empty() && sli_keys.len() > 1 {
            check_separable(&variants, &sli_keys, &mut issues);
        }
        match (key, sli) {
            (Some(key), Some(sli)) if issues.is_empty() => Ok(NewExperiment {
                key,
                name,
                hypothesis,
                journey,
                sli,
                extra_slis,
                kpis,
                guardrails,
                variants,
            }),
            _ => Err(AppError::invalid("the experiment is not valid", issues)),
        }
    }

    /// All metric keys of the experiment: the SLIs, then the KPIs, then the guardrails.
    pub fn metric_keys(&self) -> impl Iterator<Item = &Slug> {
        std::iter::once(&self.sli)
            .chain(&self.extra_slis)
            .chain(&self.kpis)
            .chain(&self.guardrails)
    }
}

/// A variant's doses of the SLIs `slis` (in order) from `dose` or `doses`: `dose` is the
/// shorthand of a one-SLI experiment; `doses` names every SLI, exactly once.
fn variant_doses(
    v: &VariantInput,
    slis: &[&str],
    f: impl Fn(&str) -> String,
    issues: &mut Vec<Issue>,
) -> Option<Vec<f64>> {
    let doses = match (v.dose, &v.doses) {
        (Some(_), Some(_)) => {
            issues.push(Issue::field(f("doses"), "give dose or doses, not both"));
            return None;
        }
        (None, None) if slis.len() == 1 => {
            issues.push(Issue::field(
                f("dose"),
                "required: the planned change of the SLI in this arm (0 for the control)",
            ));
            return None;
        }
        (Some(_), None) | (None, None) if slis.len() > 1 => {
            issues.push(Issue::field(
                f("doses"),
                format!("required: the experiment has several SLIs, so give each one's planned change, e.g. {{\"{}\": 0, \"{}\": 0}}", slis[0], slis[1]),
            ));
            return None;
        }
        (Some(d), None) => vec![d],
        (None, None) => return None,
        (None, Some(map)) => {
            let before = issues.len();
            for k in map.keys().filter(|k| !slis.contains(&k.as_str())) {
                issues.push(Issue::field(
                    f(&format!("doses.{k}")),
                    format!(
                        "'{k}' is not an SLI of the experiment ({})",
                        slis.join(", ")
                    ),
                ));
            }
            for s in slis.iter().filter(|s| !map.contains_key(**s)) {
                issues.push(Issue::field(
                    f("doses"),
                    format!("missing the dose of SLI '{s}'"),
                ));
            }
            if issues.len() > before {
                return None;
            }
            slis.iter().map(|s| map[*s]).collect()
        }
    };
    let before = issues.len();
    for (s, d) in slis.iter().zip(&doses) {
        let field = if v.doses.is_some() {
            f(&format!("doses.{s}"))
        } else {
            f("dose")
        };
        if !d.is_finite() || d.abs() > MAX_DOSE {
            issues.push(Issue::field(
                field,
                "must be a finite number of magnitude at most 1e15",
            ));
        } else if v.control && *d != 0.0 {
            issues.push(Issue::field(field, "the control arm's dose must be 0"));
        }
    }
    (issues.len() == before).then_some(doses)
}

/// Rank of the treatment arms' dose vectors (rows), by Gaussian elimination with partial
/// pivoting on columns scaled to a largest |dose| of 1; a pivot below 1e-9 counts as zero.
pub fn dose_rank(rows: &[Vec<f64>]) -> usize {
    let k = rows.first().map_or(0, Vec::len);
    let scale: Vec<f64> = (0..k)
        .map(|j| rows.iter().map(|r| r[j].abs()).fold(0.0, f64::max))
        .collect();
    let mut m: Vec<Vec<f64>> = rows
        .iter()
        .map(|r| {
            r.iter()
                .zip(&scale)
                .map(|(v, s)| if *s > 0.0 { v / s } else { 0.0 })
                .collect()
        })
        .collect();
    let mut rank = 0;
    for j in 0..k {
        let Some(p) = (rank..m.len()).max_by(|a, b| m[*a][j].abs().total_cmp(&m[*b][j].abs()))
        else {
            break;
        };
        if m[p][j].abs() < 1e-9 {
            continue;
        }
        m.swap(rank, p);
        let pivot = m[rank].clone();
        for row in m.iter_mut().skip(rank + 1) {
            let factor = row[j] / pivot[j];
            for (v, p) in row.iter_mut().zip(&pivot).skip(j) {
                *v -= factor * p;
            }
        }
        rank += 1;
    }
    rank
}

/// With several SLIs, the treatment arms' doses must move them independently (the dose matrix
/// has full column rank); otherwise no analysis can tell their effects on a KPI apart.
fn check_separable(variants: &[NewVariant], slis: &[&str], issues: &mut Vec<Issue>) {
    let rows: Vec<Vec<f64>> = variants
        .iter()
        .filter(|v| !v.control)
        .map(|v| {
            std::iter::once(v.dose)
                .chain(v.extra_doses.iter().copied())
                .collect()
        })
        .collect();
    let rank = dose_rank(&rows);
    if rank < slis.len() {
        issues.push(Issue::field(
            "variants",
            format!(
                "the arms' doses cannot separate the SLIs {}: across the treatment arms their doses are linearly dependent (rank {rank} of {}), so no analysis could tell their effects apart; add arms that change one SLI without the others, e.g. a 2×2 factorial",
                slis.join(" and "),
                slis.len()
            ),
        ));
    }
}

fn parse_variants(raw: &[VariantInput], slis: &[&str], issues: &mut Vec<Issue>) -> Vec<NewVariant> {
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
        let doses = variant_doses(v, slis, f, issues);
        if let (Some(key), Some(doses)) = (key, doses) {
            out.push(NewVariant {
                key,
                weight: v.weight,
                control: v.control,
                dose: doses[0],
                extra_doses: doses[1..].to_vec(),
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
            extra_slis: vec![],
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
            dose: Some(dose),
            doses: None,
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
                dose: Some(if i == 0 { 0.0 } else { 1.0 }),
                doses: None,
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

    #[test]
    fn dose_rank_tells_a_factorial_from_proportional_arms() {
        // 2×2 factorial: three treatment arms, two independent directions.
        let factorial = vec![vec![-0.2, 0.0], vec![0.0, 400.0], vec![-0.2, 400.0]];
        assert_eq!(dose_rank(&factorial), 2);
        // Both SLIs moved in proportion, on very different scales: one direction only.
        let proportional = vec![vec![-0.1, 200.0], vec![-0.2, 400.0]];
        assert_eq!(dose_rank(&proportional), 1);
        // An SLI no arm moves adds no direction.
        assert_eq!(dose_rank(&[vec![1.0, 0.0], vec![2.0, 0.0]]), 1);
    }

    #[test]
    fn several_slis_need_every_dose_and_a_separating_design() {
        let doses = |p: f64, t: f64| {
            Some(std::collections::BTreeMap::from([
                ("latency".to_owned(), t),
                ("precision".to_owned(), p),
            ]))
        };
        let arm = |key: &str, control: bool, d| VariantInput {
            key: key.into(),
            weight: 0.25,
            control,
            dose: None,
            doses: d,
        };
        let mut e = input(vec![
            arm("c", true, doses(0.0, 0.0)),
            arm("p", false, doses(-0.2, 0.0)),
            arm("t", false, doses(0.0, 400.0)),
            arm("pt", false, doses(-0.2, 400.0)),
        ]);
        e.extra_slis = vec!["precision".into()];
        let ok = NewExperiment::parse(e).unwrap();
        assert_eq!(ok.variants[3].dose, 400.0);
        assert_eq!(ok.variants[3].extra_doses, vec![-0.2]);

        let mut e = input(vec![
            arm("c", true, doses(0.1, 0.0)),
            arm("p", false, doses(-0.2, 0.0)),
            VariantInput {
                dose: Some(5.0),
                ..arm("t", false, None)
            },
            arm("pt", false, doses(-0.2, 400.0)),
        ]);
        e.extra_slis = vec!["precision".into()];
        let Err(AppError::Invalid { issues, .. }) = NewExperiment::parse(e) else {
            panic!("a control dose and a missing doses map must be refused");
        };
        let fields: Vec<_> = issues.iter().filter_map(|i| i.field.as_deref()).collect();
        assert_eq!(
            fields,
            vec!["variants[0].doses.precision", "variants[2].doses"]
        );
    }
}
