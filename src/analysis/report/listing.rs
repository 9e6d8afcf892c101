//! An analysis as a list shows it: what it found, in brief, and the link to the full document.
//! A full analysis runs to hundreds of kilobytes with 20 KPIs; a page of 500 summaries stays
//! small.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Headline;

/// One KPI's verdict, without its reasons.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VerdictBrief {
    pub kpi: String,
    /// The SLI, for experiments with several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sli: Option<String>,
    pub validated: bool,
}

/// One analysis of a list; `href` is the full document.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AnalysisSummary {
    pub id: i64,
    /// Experiment key.
    pub experiment: String,
    pub created_at: DateTime<Utc>,
    /// Fingerprint of the data analysed.
    pub fingerprint: String,
    /// Seed of every random draw.
    pub seed: u64,
    /// Assigned units analysed.
    pub units: u64,
    /// The headline KPI's result, when there is one.
    pub headline: Option<Headline>,
    pub verdicts: Vec<VerdictBrief>,
    /// The analysis in plain words.
    pub summary: String,
    /// URL of the full analysis.
    #[schema(example = "/api/v1/analyses/42")]
    pub href: String,
}

/// The fields of a stored analysis document a summary needs; the rest is skipped unparsed.
#[derive(Deserialize)]
struct Stored {
    id: i64,
    experiment: String,
    created_at: DateTime<Utc>,
    fingerprint: String,
    parameters: StoredParameters,
    sample_ratio: StoredRatio,
    headline: Option<Headline>,
    verdicts: Vec<VerdictBrief>,
    summary: String,
}

#[derive(Deserialize)]
struct StoredParameters {
    bootstrap: StoredBootstrap,
}

#[derive(Deserialize)]
struct StoredBootstrap {
    seed: u64,
}

#[derive(Deserialize)]
struct StoredRatio {
    observed: Vec<u64>,
}

impl AnalysisSummary {
    /// The summary of a stored analysis document.
    pub fn of_document(document: &str) -> serde_json::Result<AnalysisSummary> {
        let s: Stored = serde_json::from_str(document)?;
        Ok(AnalysisSummary {
            href: format!("/api/v1/analyses/{}", s.id),
            id: s.id,
            experiment: s.experiment,
            created_at: s.created_at,
            fingerprint: s.fingerprint,
            seed: s.parameters.bootstrap.seed,
            units: s.sample_ratio.observed.iter().sum(),
            headline: s.headline,
            verdicts: s.verdicts,
            summary: s.summary,
        })
    }
}
