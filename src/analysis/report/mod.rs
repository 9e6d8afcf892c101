//! The analysis document: what `POST /experiments/{key}/analyses` returns and what is stored.
//! Field names are a contract for generated clients; units are documented per field.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use crate::domain::experiment::MetricRole;
use crate::domain::text_enum;

mod causal;
mod listing;
pub use causal::*;
pub use listing::{AnalysisSummary, VerdictBrief};

text_enum! {
    /// How an estimate was obtained.
    Method {
        WelchT => "welch_t",
        TwoProportionZ => "two_proportion_z",
        DeltaMethod => "delta_method",
        RatioDeltaZ => "ratio_delta_z",
        CupedWelchT => "cuped_welch_t",
        TwoSlsRobust => "two_sls_robust",
        BootstrapPercentile => "bootstrap_percentile",
        BootstrapBasic => "bootstrap_basic",
        BootstrapBca => "bootstrap_bca",
        Scaled => "scaled",
        NeweyWestHac => "newey_west_hac",
        LogAdjustedRatio => "log_adjusted_ratio",
        Exact => "exact",
    }
}

text_enum! {
    /// Bootstrap interval kind.
    BootstrapMethod { Bca => "bca", Percentile => "percentile", Basic => "basic" }
}

text_enum! {
    /// Multiple-testing correction across comparisons.
    Correction { Holm => "holm", BenjaminiHochberg => "benjamini_hochberg", None => "none" }
}

text_enum! {
    /// What a KPI value is for a unit with no observation: 0 (a unit that did not convert
    /// converted 0 times), excluded from that KPI's analyses, or `by_value_type` (the default):
    /// 0 for binary and count metrics, excluded for continuous ones (a task time that was never
    /// measured is not 0). SLIs are never imputed.
    MissingOutcomes { Zero => "zero", Exclude => "exclude", ByValueType => "by_value_type" }
}

impl MissingOutcomes {
    /// The rule applied to a metric of value type `vt`: `Zero` or `Exclude`.
    pub fn for_value_type(self, vt: crate::domain::metric::ValueType) -> MissingOutcomes {
        use crate::domain::metric::ValueType;
        match (self, vt) {
            (MissingOutcomes::ByValueType, ValueType::Continuous) => MissingOutcomes::Exclude,
            (MissingOutcomes::ByValueType, _) => MissingOutcomes::Zero,
            (rule, _) => rule,
        }
    }
}

text_enum! {
    /// Why a verdict is not "validated".
    ReasonCode {
        SrmFailed => "srm_failed",
        WeakInstrument => "weak_instrument",
        CiIncludesZero => "ci_includes_zero",
        Underpowered => "underpowered",
        DirectionMismatch => "direction_mismatch",
        EstimationFailed => "estimation_failed",
        DifferentialMissingness => "differential_missingness",
        Observational => "observational",
    }
}

text_enum! {
    /// Whether the experiment can be called on its headline KPI: `ready_to_call` (the effect is
    /// established, or the design could have detected an effect that matters and found none),
    /// `keep_running` (not significant and underpowered: more units may decide it), `invalid`
    /// (a sample-ratio mismatch, differential missingness, a weak instrument or a failed
    /// estimate: the design must be fixed before any reading).
    CallStatus { ReadyToCall => "ready_to_call", KeepRunning => "keep_running", Invalid => "invalid" }
}

text_enum! {
    /// Whether a threshold comes from per-unit correlation (observational) or from randomized
    /// variation within baseline strata (causal).
    Evidence { Observational => "observational", Causal => "causal" }
}

/// A point estimate with its uncertainty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Estimate {
    pub estimate: f64,
    pub std_error: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    /// Two-sided p-value of estimate = 0; null when no test applies. Below about 1e-308 a
    /// double underflows to 0: `log10_p_value` keeps the magnitude.
    pub p_value: Option<f64>,
    /// log₁₀ of `p_value`; where the p-value is below 1e-300 it comes from the normal tail of
    /// estimate / std_error (asymptotic series, as scipy's `norm.logsf`). Null when no test applies.
    #[serde(default)]
    pub log10_p_value: Option<f64>,
    /// p-value after the requested correction across the comparisons of its family; null for
    /// an estimate that is not part of a corrected family.
    #[serde(default)]
    pub adjusted_p_value: Option<f64>,
    pub method: Method,
}

/// A bootstrap confidence interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BootstrapInterval {
    pub method: BootstrapMethod,
    pub resamples: u32,
    pub ci_low: f64,
    pub ci_high: f64,
}

/// Resolved parameters (defaults filled in), stored with the analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Parameters {
    /// Significance level of tests and verdicts.
    pub alpha: f64,
    /// Two-sided coverage of confidence intervals.
    pub confidence: f64,
    pub bootstrap: BootstrapParameters,
    /// Whether CUPED adjustment with pre-period values was used.
    pub cuped: bool,
    pub correction: Correction,
    pub missing_outcomes: MissingOutcomes,
    /// The percentile at which continuous and count KPI values were capped (upper tail;
    /// guardrails are not capped), or null when they were not (see `Analysis.winsorized`).
    #[serde(default)]
    pub winsorize: Option<f64>,
}

/// One metric's values as winsorized: every value above `cap` (the `percentile`-th percentile
/// of all arms' values pooled, linear interpolation) became `cap`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Winsorized {
    pub metric: String,
    /// `post` (experiment period) or `pre` (the CUPED covariate).
    pub period: String,
    pub percentile: f64,
    pub cap: f64,
    pub units_capped: u64,
}

/// Bootstrap settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BootstrapParameters {
    pub resamples: u32,
    pub method: BootstrapMethod,
    /// Seed of every random draw (0 ≤ seed < 2⁵³, so JSON clients keep it exact).
    pub seed: u64,
}

/// Units per variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VariantCount {
    pub variant: String,
    pub units: u64,
}

/// Units with a value of a metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MetricCoverage {
    pub metric: String,
    pub role: MetricRole,
    /// Assigned units with an experiment-period value.
    pub units: u64,
    /// Assigned units with a pre-period value.
    pub units_pre: u64,
}

/// Units left out of part of the analysis, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Exclusion {
    /// Machine-readable reason, e.g. `no_sli_value`, `no_kpi_value:revenue`.
    pub reason: String,
    pub units: u64,
    pub description: String,
}

/// What data the analysis saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DataQuality {
    pub assigned_units: Vec<VariantCount>,
    pub metrics: Vec<MetricCoverage>,
    /// Observations of units with no assignment (ignored).
    pub unassigned_observations: u64,
    /// Distinct units with observations but no assignment (ignored).
    pub unassigned_units: u64,
    pub excluded: Vec<Exclusion>,
}

/// Sample-ratio mismatch check, in variant order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SampleRatio {
    pub variants: Vec<String>,
    pub observed: Vec<u64>,
    pub expected: Vec<f64>,
    pub chi_square: f64,
    pub p_value: f64,
    /// False when p < `alarm_p_value`: the split is not as planned and validation is blocked.
    pub passed: bool,
    pub alarm_p_value: f64,
    /// Units with an SLI value per variant: the population the slopes are fitted on.
    #[serde(default)]
    pub analysed: Vec<u64>,
    /// χ² test that the share of assigned units with an SLI value is the same in every arm (2 ×
    /// k table, given the assignment counts); when it fails (p < `alarm_p_value`), whether a unit
    /// has an SLI value depends on its arm (timeouts, abandonment): differential missingness,
    /// which biases the slopes.
    #[serde(default)]
    pub analysed_p_value: Option<f64>,
    #[serde(default = "passed_by_default")]
    pub analysed_passed: bool,
}

fn passed_by_default() -> bool {
    true
}

/// SLI distribution of a variant, in the SLI's unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SliSummary {
    pub units: u64,
    pub mean: f64,
    /// The low tail, harmful for higher-is-better SLIs (absent in analyses stored before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p1: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p5: Option<f64>,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    /// Quantiles at probabilities 0, 0.005, …, 1 (201 points, NumPy-linear): the distribution
    /// a recommendation uses to tell whether a threshold sits inside the noise of per-window
    /// percentiles (empty in analyses stored before it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quantiles: Vec<f64>,
}

/// A KPI or guardrail's mean in a variant (after the missing-outcome rule).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MetricSummary {
    pub metric: String,
    pub role: MetricRole,
    pub units: u64,
    /// Units with the outcome, for a binary metric (x of x / n); null otherwise.
    #[serde(default)]
    pub successes: Option<u64>,
    pub mean: f64,
    /// Wilson (binary), t (continuous) or delta-method (ratio: `mean` is Σ numerator /
    /// Σ denominator) interval of the mean; null with fewer than two units.
    #[serde(default)]
    pub ci: Option<Interval>,
    /// Standard deviation of the unit values (of the linearized values, for a ratio).
    pub std_dev: f64,
}

/// One variant's data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VariantSummary {
    pub variant: String,
    pub control: bool,
    /// Planned SLI change, in the SLI's unit.
    pub dose: f64,
    pub units: u64,
    /// Null when no unit of the variant has an SLI value.
    pub sli: Option<SliSummary>,
    /// The experiment's extra SLIs in this variant (absent for a one-SLI experiment).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_slis: Vec<ExtraSliSummary>,
    pub metrics: Vec<MetricSummary>,
}

/// An extra SLI's distribution in a variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ExtraSliSummary {
    pub sli: String,
    /// Planned change of this SLI in the variant.
    pub dose: f64,
    /// Null when no unit of the variant has a value of it.
    pub summary: Option<SliSummary>,
}

/// Did the treatment move the SLI as planned?
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FirstStageArm {
    pub variant: String,
    /// The SLI this row is about (absent in analyses stored before experiments had several).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sli: Option<String>,
    pub planned_dose: f64,
    /// Treatment − control SLI mean (Welch), in the SLI's unit.
    pub mean_shift: Estimate,
    /// Treatment − control SLI p95 with a Poisson-bootstrap percentile interval.
    pub p95_shift: Estimate,
    /// Observed mean shift / planned dose (1 = exactly as planned); null for dose 0.
    pub dose_ratio: Option<f64>,
}

/// CUPED's adjustment of a comparison (its adjusted difference is the comparison's primary).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CupedAdjustment {
    /// Pooled θ = cov(post, pre)/var(pre).
    pub theta: f64,
    /// Share of the outcome variance removed (pooled over arms).
    pub variance_reduction: f64,
}

/// One arm's level of a metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ArmMean {
    pub units: u64,
    /// Units with the outcome, for a binary metric (the x of x / n); null otherwise.
    pub successes: Option<u64>,
    pub mean: f64,
    /// Wilson interval (binary), t interval (continuous) or delta-method normal interval
    /// (ratio; `mean` is then Σ numerator / Σ denominator) at the analysis's confidence; null
    /// with fewer than two units.
    pub ci: Option<Interval>,
}

/// The other estimates of a comparison, for cross-checking its primary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EffectAlternatives {
    /// The unadjusted difference (two-proportion z or Welch), when the primary is CUPED's.
    pub unadjusted: Option<Estimate>,
    /// The unadjusted relative change (delta method), when the primary is CUPED's.
    pub unadjusted_relative: Option<Estimate>,
    /// Fieller's interval of the relative change (same moments as `relative`); null when
    /// unbounded, when `relative` is null, and when the treatment's values are all 0 (it would
    /// be the single point −1; `relative` says how its interval was formed instead).
    pub fieller: Option<Interval>,
    /// Bootstrap interval of the unadjusted difference.
    pub bootstrap: BootstrapInterval,
    /// CUPED's θ and variance reduction, when the primary is CUPED's.
    pub cuped: Option<CupedAdjustment>,
    /// Mann–Whitney U, for continuous and ordinal metrics.
    pub mann_whitney: Option<MannWhitneyOut>,
    /// The top-box share of an ordinal metric (e.g. CSAT 4–5 of 1–5) per arm and its
    /// difference (two-proportion z; its p-value is not part of the multiple-testing
    /// correction or the verdict, which rest on the mean).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_box: Option<TopBoxEffect>,
}

/// The share of units scoring at least `from_score` in each arm, and treatment − control.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TopBoxEffect {
    /// The lowest score in the top box.
    pub from_score: i32,
    pub control: ArmMean,
    pub treatment: ArmMean,
    pub difference: Estimate,
}

/// Mann–Whitney U reported beside Welch for continuous metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MannWhitneyOut {
    pub u: f64,
    pub p_value: f64,
    /// P(treatment > control) + ½P(tie).
    pub prob_superiority: f64,
}

/// Effect of one treatment arm on one KPI or guardrail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct KpiEffect {
    pub variant: String,
    pub metric: String,
    pub role: MetricRole,
    pub control: ArmMean,
    pub treatment: ArmMean,
    /// The primary estimate of treatment − control, in the metric's unit (a proportion for a
    /// binary metric: × 100 gives percentage points). CUPED-adjusted Welch when the analysis
    /// uses a pre-period covariate (same estimand, less variance), otherwise the
    /// two-proportion z-test (binary) or Welch's t-test (continuous). `adjusted_p_value` is
    /// corrected across all arm × metric comparisons of the same role.
    pub primary: Estimate,
    /// The primary divided by the control mean, by the delta method on the same moments; its
    /// p-values are the primary's (the same null hypothesis). Where the delta method's variance
    /// vanishes (a treatment whose values are all 0) the primary's interval over the control
    /// mean (`scaled`). Null when the control mean is 0: a relative change is undefined.
    pub relative: Option<Estimate>,
    pub alternatives: EffectAlternatives,
}

/// An arm × metric comparison that could not be computed (the others are reported as usual).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FailedComparison {
    pub variant: String,
    pub metric: String,
    pub role: MetricRole,
    pub reason: String,
}

/// A closed interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

/// Sensitivity of the experiment for a KPI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PowerSummary {
    pub kpi: String,
    /// The SLI whose slope this is about (absent in analyses stored before experiments had
    /// several).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sli: Option<String>,
    /// The highest-dose arm, compared with control.
    pub variant: String,
    /// Minimum detectable relative lift at 80% power, two-sided alpha; null when undefined
    /// (no variance, or a control mean of zero).
    pub mde_relative: Option<f64>,
    /// Minimum detectable relative KPI change per +100 SLI units (from the slope's SE).
    /// Null when undefined (e.g. an alpha so small that no effect is detectable).
    pub mde_relative_per_100: Option<f64>,
    /// The observed relative change per +100 SLI units.
    pub observed_relative_per_100: f64,
    /// True when the slope's CI excludes zero or the design could detect the observed effect.
    pub informative: bool,
}

/// One reason a verdict is not validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Reason {
    pub code: ReasonCode,
    pub message: String,
}

/// Whether the SLI causally moves this KPI, and why not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Verdict {
    pub kpi: String,
    /// The SLI whose effect on the KPI this verdict is about: an experiment with several SLIs
    /// has one verdict per KPI and SLI (absent in analyses stored before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sli: Option<String>,
    pub validated: bool,
    pub reasons: Vec<Reason>,
}

/// When the experiment ran, from its units' `assigned_at` (uploads may omit it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ExperimentDates {
    pub first_assignment: DateTime<Utc>,
    pub last_assignment: DateTime<Utc>,
    /// Whole days from the first to the last assignment, plus one.
    pub days: u32,
}

/// The headline: the experiment's primary KPI (its first) and whether it can be called.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Headline {
    pub kpi: String,
    pub status: CallStatus,
    /// Why, in one sentence.
    pub reason: String,
}

/// Whether a section entry tagged with `tag` (an SLI key, or none in analyses stored before
/// experiments had several SLIs, when it is the only SLI's) is about SLI `sli`.
pub fn is_about(tag: Option<&str>, sli: &str) -> bool {
    tag.is_none_or(|t| t == sli)
}

/// A complete analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Analysis {
    pub id: i64,
    /// Experiment key.
    pub experiment: String,
    pub created_at: DateTime<Utc>,
    /// Null when no assignment carries `assigned_at`.
    #[serde(default)]
    pub dates: Option<ExperimentDates>,
    pub parameters: Parameters,
    /// Fingerprint of the assignments and observations used; equal data give equal fingerprints.
    pub fingerprint: String,
    pub data_quality: DataQuality,
    pub sample_ratio: SampleRatio,
    pub variants: Vec<VariantSummary>,
    pub first_stage: Vec<FirstStageArm>,
    pub kpi_effects: Vec<KpiEffect>,
    /// Metrics whose values were capped before every comparison (with `parameters.winsorize`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub winsorized: Vec<Winsorized>,
    /// Comparisons that could not be computed, with the reason (empty when all were).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_comparisons: Vec<FailedComparison>,
    pub causal_effects: Vec<CausalEffect>,
    pub dose_response: Vec<DoseResponse>,
    pub threshold: Vec<Threshold>,
    pub power: Vec<PowerSummary>,
    pub verdicts: Vec<Verdict>,
    /// The primary KPI's status (null in analyses stored before it existed).
    #[serde(default)]
    pub headline: Option<Headline>,
    /// A few plain sentences for a product manager, led by the headline KPI.
    pub summary: String,
}
