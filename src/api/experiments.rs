//! `/api/v1/experiments`: experiments, their metrics and variants.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

use super::body::Body;
use super::caller::{Access, Caller, Operation};
use super::pagination::{page_of, ListQuery};
use super::AppState;
use crate::analysis::aggregate::AggregateSummary;
use crate::analysis::aggregate_boot::BootSettings;
use crate::analysis::report::{BootstrapMethod, Correction, MissingOutcomes};
use crate::analysis::service::{KneeRequest, SummaryRequest};
use crate::domain::experiment::{
    Experiment, ExperimentData, ExperimentInput, NewExperiment, VariantInput,
};
use crate::error::{AppError, Issue};
use crate::ingest::service;

pub const CREATE_EXPERIMENT: Operation = Operation::new(
    "create_experiment",
    "POST",
    "/api/v1/experiments",
    Access::Write,
);
pub const LIST_EXPERIMENTS: Operation = Operation::new(
    "list_experiments",
    "GET",
    "/api/v1/experiments",
    Access::Read,
);
pub const GET_EXPERIMENT: Operation = Operation::new(
    "get_experiment",
    "GET",
    "/api/v1/experiments/{key}",
    Access::Read,
);

pub const GET_EXPERIMENT_SUMMARY: Operation = Operation::new(
    "get_experiment_summary",
    "GET",
    "/api/v1/experiments/{key}/summary",
    Access::Read,
);

/// Doses by SLI key, refusing a repeated key: JSON allows one, and a map would silently keep
/// only its last value.
struct UniqueDoses(BTreeMap<String, f64>);

impl<'de> Deserialize<'de> for UniqueDoses {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = UniqueDoses;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of doses by SLI key")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<UniqueDoses, A::Error> {
                let mut out = BTreeMap::new();
                while let Some((key, dose)) = map.next_entry::<String, f64>()? {
                    if out.contains_key(&key) {
                        return Err(serde::de::Error::custom(format!(
                            "the dose of SLI '{key}' is given twice"
                        )));
                    }
                    out.insert(key, dose);
                }
                Ok(UniqueDoses(out))
            }
        }
        de.deserialize_map(Visitor)
    }
}

fn unique_doses<'de, D: serde::Deserializer<'de>>(
    de: D,
) -> Result<Option<BTreeMap<String, f64>>, D::Error> {
    Ok(Option::<UniqueDoses>::deserialize(de)?.map(|u| u.0))
}

/// One arm of a new experiment.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVariant {
    /// Variant key, unique within the experiment: 1-64 characters of a-z, 0-9, `_`, `-`, `.`,
    /// starting with a letter or digit.
    #[schema(example = "plus-100ms", pattern = r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
    pub key: String,
    /// Planned share of units, > 0; the weights of all variants sum to 1.
    #[schema(example = 0.3333333333333333)]
    pub weight: f64,
    /// True for the one control arm.
    #[serde(default)]
    pub control: bool,
    /// Planned change of the SLI in this arm, in the SLI's unit (e.g. +100 ms injected); 0 for
    /// control. The shorthand of a one-SLI experiment: give `dose` or `doses`, not both.
    #[serde(default)]
    #[schema(example = 100.0)]
    pub dose: Option<f64>,
    /// Planned change of each SLI of the experiment (`sli` and every `extra_slis`), by SLI key,
    /// in each SLI's unit; all 0 for the control. Required when the experiment has extra SLIs.
    /// An SLI named twice is refused.
    #[serde(default, deserialize_with = "unique_doses")]
    #[schema(example = json!({"retrieval_precision_at5": -20.0, "ttft_ms": 0.0}))]
    pub doses: Option<BTreeMap<String, f64>>,
}

/// A new experiment.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateExperiment {
    /// Unique key: 1-64 characters of a-z, 0-9, `_`, `-`, `.`, starting with a letter or digit.
    #[schema(
        example = "checkout-latency-2026-11",
        pattern = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
    )]
    pub key: String,
    /// At most 200 characters (surrounding whitespace is trimmed).
    #[schema(
        example = "Checkout latency injection",
        min_length = 1,
        max_length = 200
    )]
    pub name: String,
    /// At most 2,000 characters.
    #[schema(
        example = "Added checkout latency lowers conversion",
        min_length = 1,
        max_length = 2000
    )]
    pub hypothesis: String,
    /// The critical user journey, e.g. "search → product → cart → checkout".
    #[serde(default)]
    pub journey: Option<String>,
    /// Key of the SLI under test (a metric of kind `sli`).
    #[schema(example = "checkout-latency", pattern = r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
    pub sli: String,
    /// Other SLIs the arms change on purpose, at most 2 (e.g. a 2×2 factorial of retrieval
    /// quality × time to first token). Each variant then gives `doses` for every SLI, and the
    /// treatment arms' doses must move the SLIs independently (otherwise 422 `variants`). The
    /// analysis fits one 2SLS with every SLI as an endogenous regressor.
    #[serde(default)]
    #[schema(max_items = 2)]
    pub extra_slis: Vec<String>,
    /// Keys of KPI metrics; the first is the primary KPI.
    #[schema(min_items = 1, max_items = 20)]
    pub kpis: Vec<String>,
    /// Keys of guardrail metrics (any kind).
    #[serde(default)]
    #[schema(max_items = 20)]
    pub guardrails: Vec<String>,
    /// The arms: at least two, exactly one control, weights summing to 1 (±1e-9).
    #[schema(min_items = 2, max_items = 20)]
    pub variants: Vec<CreateVariant>,
}

/// One arm of an experiment.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = Variant)]
pub struct VariantResponse {
    pub key: String,
    pub weight: f64,
    pub control: bool,
    /// Planned change of the (first) SLI, in the SLI's unit.
    pub dose: f64,
    /// Planned change of every SLI of the experiment, by key.
    pub doses: BTreeMap<String, f64>,
}

/// An experiment.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = Experiment)]
pub struct ExperimentResponse {
    pub key: String,
    pub name: String,
    pub hypothesis: String,
    pub journey: Option<String>,
    /// Key of the SLI under test (the first, when there are several).
    pub sli: String,
    /// The other SLIs the arms change (empty for a one-SLI experiment).
    pub extra_slis: Vec<String>,
    /// KPI keys; the first is primary.
    pub kpis: Vec<String>,
    pub guardrails: Vec<String>,
    pub variants: Vec<VariantResponse>,
    pub created_at: DateTime<Utc>,
    /// What has been uploaded so far; present when one experiment is fetched, absent in lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<ExperimentData>,
}

impl From<Experiment> for ExperimentResponse {
    fn from(e: Experiment) -> Self {
        let sli_keys: Vec<String> = e.slis().map(|m| m.key.clone()).collect();
        ExperimentResponse {
            key: e.key,
            name: e.name,
            hypothesis: e.hypothesis,
            journey: e.journey,
            sli: e.sli.key,
            extra_slis: e.extra_slis.into_iter().map(|m| m.key).collect(),
            kpis: e.kpis.into_iter().map(|m| m.key).collect(),
            guardrails: e.guardrails.into_iter().map(|m| m.key).collect(),
            variants: e
                .variants
                .into_iter()
                .map(|v| VariantResponse {
                    doses: sli_keys
                        .iter()
                        .enumerate()
                        .map(|(j, k)| (k.clone(), v.dose_of(j)))
                        .collect(),
                    key: v.key,
                    weight: v.weight,
                    control: v.control,
                    dose: v.dose,
                })
                .collect(),
            created_at: e.created_at.and_utc(),
            data: None,
        }
    }
}

/// A page of experiments.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ExperimentList {
    pub items: Vec<ExperimentResponse>,
    /// Cursor of the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Registers an experiment.
#[utoipa::path(
    post, path = "/api/v1/experiments", operation_id = "create_experiment", tag = "experiments",
    request_body = CreateExperiment,
    responses(
        (status = 201, description = "The experiment was created", body = ExperimentResponse,
         headers(("Location" = String, description = "URL of the new experiment"))),
        (status = 409, description = "An experiment with this key exists", body = super::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_experiment(
    state: web::Data<AppState>,
    caller: Caller,
    body: Body<CreateExperiment>,
) -> Result<HttpResponse, AppError> {
    caller.require(&CREATE_EXPERIMENT)?;
    let b = body.into_inner();
    let new = NewExperiment::parse(ExperimentInput {
        key: b.key,
        name: b.name,
        hypothesis: b.hypothesis,
        journey: b.journey,
        sli: b.sli,
        extra_slis: b.extra_slis,
        kpis: b.kpis,
        guardrails: b.guardrails,
        variants: b
            .variants
            .into_iter()
            .map(|v| VariantInput {
                key: v.key,
                weight: v.weight,
                control: v.control,
                dose: v.dose,
                doses: v.doses,
            })
            .collect(),
    })?;
    let e = state
        .run(move |db| service::create_experiment(db, &new))
        .await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/experiments/{}", e.key)))
        .json(ExperimentResponse::from(e)))
}

/// Lists experiments in creation order.
#[utoipa::path(
    get, path = "/api/v1/experiments", operation_id = "list_experiments", tag = "experiments",
    params(ListQuery),
    responses((status = 200, description = "A page of experiments", body = ExperimentList))
)]
pub async fn list_experiments(
    state: web::Data<AppState>,
    caller: Caller,
    q: super::query::Query<ListQuery>,
) -> Result<web::Json<ExperimentList>, AppError> {
    caller.require(&LIST_EXPERIMENTS)?;
    let page = q.page()?;
    let rows = state.run(move |db| service::experiments(db, page)).await?;
    let (items, next_cursor) = page_of(rows, page.limit, |r| r.id, |r| Ok(r.into()))?;
    Ok(web::Json(ExperimentList { items, next_cursor }))
}

/// Fetches one experiment.
#[utoipa::path(
    get, path = "/api/v1/experiments/{key}", operation_id = "get_experiment", tag = "experiments",
    params(("key" = String, Path, description = "Experiment key")),
    responses((status = 200, description = "The experiment", body = ExperimentResponse))
)]
pub async fn get_experiment(
    state: web::Data<AppState>,
    caller: Caller,
    key: web::Path<String>,
) -> Result<web::Json<ExperimentResponse>, AppError> {
    caller.require(&GET_EXPERIMENT)?;
    let key = key.into_inner();
    let (e, counts) = state
        .run(move |db| service::experiment_with_data(db, &key))
        .await?;
    Ok(web::Json(ExperimentResponse {
        data: Some(counts),
        ..e.into()
    }))
}

/// How the summary is computed.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SummaryQuery {
    /// Confidence level of the intervals, in [0.5, 1); default 0.95.
    pub confidence: Option<f64>,
    /// How a unit without a metric's value counts (as for an analysis); default `by_value_type`.
    pub missing_outcomes: Option<MissingOutcomes>,
    /// Multiple-testing correction of the p-values (`adjusted_p_value`), as an analysis's;
    /// default `holm`. The differences are adjusted within each family (KPIs, guardrails),
    /// the slopes across KPIs.
    pub correction: Option<Correction>,
    /// Bootstrap resamples, 100 to 100,000; absent: no bootstrap. The Poisson bootstrap runs on
    /// each arm's values counted into at most 4,096 cells per metric (and per KPI's (SLI, KPI)
    /// pairs, for its slope), not on units: exact when an arm has at most 4,096 distinct
    /// values, otherwise binned into cells that keep their values' means, with the resolution
    /// reported in `bootstrap.cells`.
    #[param(minimum = 100, maximum = 100_000)]
    pub resamples: Option<u32>,
    /// Bootstrap interval kind; default `bca`.
    pub bootstrap_method: Option<BootstrapMethod>,
    /// Seed of the bootstrap's draws, 0 ≤ seed < 2⁵³; default 0, so the same data give the
    /// same summary.
    #[param(minimum = 0, maximum = 9_007_199_254_740_991_u64)]
    pub seed: Option<u64>,
    /// Adjust each KPI and guardrail with its own pre-period values (CUPED, as an analysis's
    /// `cuped`); default: true when any of them has pre-period values.
    pub cuped: Option<bool>,
    /// Also find each KPI's thresholds (knees) as an analysis does (its `threshold` entries):
    /// the observational one (hinge of the KPI on the SLI over all units, Davies test at
    /// `alpha`, on their (SLI, KPI) rows counted into at most 4,096 cells, bootstrapped with
    /// min(resamples, 100) replicates) and the causal one (units stratified by their
    /// pre-period SLI, Cochran's Q on the strata's 2SLS slopes at `alpha`, and the hinge fitted
    /// on each arm × stratum cell's (SLI, KPI) rows counted into at most 4,096 cells,
    /// bootstrapped with min(resamples, 500) replicates); 100 and 500 without `resamples`, from
    /// `seed`. Reads the units twice; default false.
    pub thresholds: Option<bool>,
    /// Significance level of the thresholds' no-threshold test, in (0, 0.5] (as an analysis's
    /// `alpha`); default 0.05. Only with `thresholds=true`.
    #[param(exclusive_minimum = 0.0, maximum = 0.5)]
    pub alpha: Option<f64>,
}

/// The summary's parameters, checked, each problem naming its query parameter.
fn summary_request(q: &SummaryQuery) -> Result<SummaryRequest, AppError> {
    use crate::analysis::{MAX_SEED, RESAMPLES};
    let mut issues = Vec::new();
    let confidence = q.confidence.unwrap_or(0.95);
    if !(0.5..1.0).contains(&confidence) {
        issues.push(Issue::field("confidence", "must be in [0.5, 1)"));
    }
    if q.resamples.is_some_and(|r| !RESAMPLES.contains(&r)) {
        issues.push(Issue::field(
            "resamples",
            format!(
                "must be between {} and {}",
                RESAMPLES.start(),
                RESAMPLES.end()
            ),
        ));
    }
    let seed = q.seed.unwrap_or(0);
    if seed > MAX_SEED {
        issues.push(Issue::field(
            "seed",
            format!("must be at most {MAX_SEED} (2^53 - 1)"),
        ));
    }
    let thresholds = q.thresholds.unwrap_or(false);
    let alpha = q.alpha.unwrap_or(0.05);
    if !(alpha > 0.0 && alpha <= 0.5) {
        issues.push(Issue::field("alpha", "must be in (0, 0.5]"));
    }
    if q.alpha.is_some() && !thresholds {
        issues.push(Issue::field(
            "alpha",
            "is the level of the thresholds' test: it needs thresholds=true",
        ));
    }
    if q.resamples.is_none() && (q.seed.is_some() && !thresholds || q.bootstrap_method.is_some()) {
        issues.push(Issue::field(
            "resamples",
            "is needed with seed (unless thresholds=true) or bootstrap_method (the summary has \
             no bootstrap without it)",
        ));
    }
    if !issues.is_empty() {
        return Err(AppError::invalid("invalid summary parameters", issues));
    }
    Ok(SummaryRequest {
        confidence,
        rule: q.missing_outcomes.unwrap_or(MissingOutcomes::ByValueType),
        correction: q.correction.unwrap_or(Correction::Holm),
        bootstrap: q.resamples.map(|resamples| BootSettings {
            resamples,
            method: q.bootstrap_method.unwrap_or(BootstrapMethod::Bca),
            seed,
            confidence,
        }),
        cuped: q.cuped,
        thresholds: thresholds.then_some(KneeRequest { alpha, seed }),
    })
}

/// Summarises an experiment from per-arm sums computed in the database: sample ratio, arm
/// levels, every treatment's difference from control per KPI and guardrail, and the causal
/// SLI→KPI slope, CUPED-adjusted where metrics have pre-period values; with `resamples`, bootstrap
/// intervals from counted cells, and with `thresholds=true` each KPI's observational and causal
/// thresholds. It never holds the units' values, so its memory does not grow with the
/// experiment; ratio metrics, winsorizing and several SLIs' joint slopes are left to the full
/// analysis (listed in `not_summarised`).
#[utoipa::path(
    get, path = "/api/v1/experiments/{key}/summary", operation_id = "get_experiment_summary",
    tag = "experiments",
    params(("key" = String, Path, description = "Experiment key"), SummaryQuery),
    responses(
        (status = 200, description = "The summary", body = AggregateSummary),
        (status = 422, description = "Invalid parameters, or too little data to summarise", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 503, description = "As many analyses and summaries are running as the server computes at once (SLOPROOF_MAX_CONCURRENT_ANALYSES, default 2); retry after `Retry-After` seconds", body = super::problem::Problem, content_type = "application/problem+json",
         headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn get_experiment_summary(
    state: web::Data<AppState>,
    caller: Caller,
    key: web::Path<String>,
    q: super::query::Query<SummaryQuery>,
) -> Result<web::Json<AggregateSummary>, AppError> {
    caller.require(&GET_EXPERIMENT_SUMMARY)?;
    let request = summary_request(&q)?;
    let key = key.into_inner();
    // A summary reads every row and may bootstrap: it takes one of the server's analysis
    // slots (SLOPROOF_MAX_CONCURRENT_ANALYSES), so concurrent summaries cannot take every core.
    let slot = state.analysis_slot()?;
    let summary = state
        .run(move |db| {
            let e = service::experiment(db, &key)?;
            crate::analysis::service::summary(db, &e, request)
        })
        .await;
    drop(slot);
    Ok(web::Json(summary?))
}
