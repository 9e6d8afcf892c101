//! The causal sections of the analysis document: slopes, dose–response and thresholds.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{BootstrapInterval, Estimate, Evidence, Interval};
use crate::domain::text_enum;

/// The causal slope of a KPI on the SLI, by 2SLS with the arms as instruments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CausalEffect {
    pub kpi: String,
    pub sli: String,
    /// Units in the regression (those with an SLI value).
    pub units: u64,
    /// KPI change per SLI unit (e.g. per ms); robust (HC) errors with small-sample scaling;
    /// `adjusted_p_value` is corrected across KPIs.
    pub slope: Estimate,
    /// Relative KPI change per +100 SLI units: 100·slope/control mean (e.g. −0.009 = −0.9%).
    pub relative_per_100: Estimate,
    /// Bootstrap interval of the slope.
    pub bootstrap: BootstrapInterval,
    pub first_stage_f: f64,
    /// Heteroskedasticity-robust first-stage Wald statistic on the F scale.
    pub first_stage_robust_f: f64,
    /// Montiel Olea & Pflueger's effective first-stage F (robust to heteroskedasticity; absent
    /// in analyses stored before it).
    #[serde(default)]
    pub first_stage_effective_f: Option<f64>,
    /// True when the effective first-stage F is below 10 (with several SLIs: or the
    /// conditional first-stage F).
    pub weak_instrument: bool,
    /// With several SLIs: the Sanderson–Windmeijer conditional first-stage F, whether the arms
    /// move this SLI apart from the others (below 10: they cannot be told apart). The
    /// first-stage F fields above are then this SLI's own first stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditional_first_stage_f: Option<f64>,
    /// With several SLIs: the other SLIs, held fixed in this slope (2SLS with every SLI as an
    /// endogenous regressor).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holding_fixed: Vec<String>,
    /// Anderson–Rubin confidence set of the slope, valid however weak the instruments (absent
    /// in analyses stored before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anderson_rubin: Option<AndersonRubinSet>,
    pub control_kpi_mean: f64,
    /// For a ratio KPI: the numerator per control unit (e.g. clicks per user), which prices a
    /// relative loss of the ratio in numerator units; null otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_numerator_per_unit: Option<f64>,
}

text_enum! {
    /// The shape of an Anderson–Rubin confidence set.
    ArShape { Interval => "interval", TwoRays => "two_rays", WholeLine => "whole_line", Empty => "empty" }
}

/// The slopes an Anderson–Rubin test (homoskedastic, F form) does not reject at the analysis's
/// confidence: `interval` is [lower, upper]; `two_rays` is (−∞, lower] ∪ [upper, ∞), unbounded
/// because the instruments are weak; `whole_line` means the data cannot bound the slope at all;
/// `empty` means no single slope fits every arm. Unlike the 2SLS interval it stays valid with a
/// weak first stage; it is not robust to heteroskedasticity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AndersonRubinSet {
    pub shape: ArShape,
    /// Null when infinite or not applicable.
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    pub confidence: f64,
}

/// One arm's point on the dose–response line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DosePoint {
    pub variant: String,
    pub dose: f64,
    pub units: u64,
    pub sli_mean: f64,
    pub kpi_mean: f64,
}

/// Test that the arms lie on one line (Sargan over-identification test, needs ≥ 3 arms).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LinearityTest {
    pub statistic: f64,
    pub df: u32,
    pub p_value: f64,
    /// False when p < alpha: the response departs from a line.
    pub linear: bool,
}

/// Arm-level KPI means against measured SLI means, with the fitted line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DoseResponse {
    pub kpi: String,
    pub sli: String,
    pub points: Vec<DosePoint>,
    pub intercept: f64,
    pub slope: f64,
    pub linearity: Option<LinearityTest>,
}

/// A breakpoint estimate with its interval, in the SLI's unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Breakpoint {
    pub estimate: f64,
    pub ci_low: f64,
    pub ci_high: f64,
}

/// Which test of "no threshold" (one slope over the whole range) a threshold reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdTestMethod {
    /// Davies (1987) upper bound for a slope change at an unknown breakpoint (observational).
    Davies,
    /// Cochran's Q across baseline strata of the injection's 2SLS slope (causal): under no
    /// threshold the injection has the same effect at every baseline.
    SlopeHomogeneity,
}

/// The test that the KPI–SLI curve has no threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ThresholdTest {
    pub method: ThresholdTestMethod,
    /// Cochran's Q and its degrees of freedom (null for Davies, which reports a bound only).
    pub statistic: Option<f64>,
    pub df: Option<u32>,
    /// Davies' bound is capped at 1.
    pub p_value: f64,
}

/// Causal injection slope within one baseline-SLI stratum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BaselineBucket {
    pub bucket: u32,
    pub baseline_low: f64,
    pub baseline_high: f64,
    pub units: u64,
    pub slope: Option<Estimate>,
}

/// Where the KPI starts to fall as the SLI worsens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Threshold {
    pub kpi: String,
    pub sli: String,
    pub evidence: Evidence,
    /// Null when the data do not support a threshold; `reason` says why.
    pub breakpoint: Option<Breakpoint>,
    /// KPI change per SLI unit below and above the breakpoint.
    pub slope_below: Option<f64>,
    pub slope_above: Option<f64>,
    /// Bootstrap percentile intervals of the slopes (causal evidence only).
    pub slope_below_ci: Option<Interval>,
    pub slope_above_ci: Option<Interval>,
    /// Bootstrap interval of the slope change (above − below) at the breakpoint (causal
    /// evidence only): a breakpoint is reported only when it excludes zero on the harmful side.
    pub slope_change_ci: Option<Interval>,
    /// The test that there is no threshold; null when it could not be run (`reason` says why).
    pub no_threshold_test: Option<ThresholdTest>,
    pub reason: Option<String>,
    /// Per stratum of the pre-period SLI (causal evidence only): quintiles, or deciles from
    /// 20,000 units with a pre-period value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buckets: Vec<BaselineBucket>,
}
